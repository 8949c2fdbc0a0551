// What the speaker reads of the cluster, from the informers' caches: a pure function from Services, Nodes,
// EndpointSlices and AddressPools to the SpeakerWorld the election runs on (src/speaker/speaker.ts). The contract
// with the controller is src/lib/vip/address-pool.ts: a VIP-mode Service of ours whose status lists addresses with
// ipMode "VIP", and the pool they came from in the berth.dev/allocated-from-pool annotation.
import type { V1EndpointSlice, V1Node, V1Service } from "@kubernetes/client-node";
import { ownership } from "../controller/service-config.js";
import { MODES, SERVICE_ANNOTATIONS } from "../lib/names.js";
import { ALLOCATED_FROM_POOL_ANNOTATION, VIP_INGRESS_IP_MODE, type AddressPool } from "../lib/vip/address-pool.js";
import type { ElectionService, ElectionVip } from "./election.js";
import type { SpeakerNode, SpeakerPool, SpeakerWorld } from "./speaker.js";

export interface WorldInput {
  services: readonly V1Service[];
  nodes: readonly V1Node[];
  endpointSlices: readonly V1EndpointSlice[];
  pools: readonly AddressPool[];
  /** Services without spec.loadBalancerClass are ours unless the speaker runs with --ignore-unset-class. */
  claimUnsetClass: boolean;
}

/**
 * The world, and the pools to remember. A pool the controller has marked Valid=False keeps the announce settings of
 * its last valid version (`previousPools`): an edit that broke the pool must not stop announcing addresses already
 * allocated from it (issue 11: "the last valid configuration keeps serving"). A pool never seen valid is unknown.
 */
export function buildWorld(input: WorldInput, previousPools: ReadonlyMap<string, SpeakerPool> = new Map()): { world: SpeakerWorld; pools: Map<string, SpeakerPool> } {
  const pools = new Map<string, SpeakerPool>();
  for (const pool of input.pools) {
    const name = pool.metadata?.name;
    if (!name) continue;
    const valid = pool.status?.conditions?.find((c) => c.type === "Valid")?.status;
    if (valid === "True") {
      const announce = pool.spec?.announce ?? {};
      pools.set(name, {
        ...(announce.nodeSelectors?.length ? { nodeSelectors: announce.nodeSelectors } : {}),
        ...(announce.interfaces?.length ? { interfaces: announce.interfaces } : {}),
      });
    } else {
      const previous = previousPools.get(name);
      if (previous) pools.set(name, previous);
    }
  }

  const nodes: SpeakerNode[] = input.nodes
    .filter((n) => n.metadata?.name && !n.metadata.deletionTimestamp)
    .map((n) => ({
      name: n.metadata!.name!,
      labels: n.metadata?.labels ?? {},
      ready: (n.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
      addresses: (n.status?.addresses ?? []).filter((a) => a.type === "InternalIP").map((a) => a.address),
    }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));

  // Nodes with a ready endpoint, per Service ("namespace/name"), read only for Local Services.
  const endpointNodes = new Map<string, Set<string>>();
  for (const slice of input.endpointSlices) {
    const service = slice.metadata?.labels?.["kubernetes.io/service-name"];
    if (!service) continue;
    const key = `${slice.metadata?.namespace}/${service}`;
    const set = endpointNodes.get(key) ?? new Set<string>();
    for (const ep of slice.endpoints ?? []) {
      // EndpointSlice semantics: a nil ready condition means ready (discovery/v1 EndpointConditions).
      if (ep.conditions?.ready !== false && ep.nodeName) set.add(ep.nodeName);
    }
    endpointNodes.set(key, set);
  }

  const byIp = new Map<string, { pool: string; services: ElectionService[] }>();
  for (const svc of input.services) {
    if (!ownership(svc, { claimUnsetClass: input.claimUnsetClass }).ours) continue;
    if (svc.metadata?.annotations?.[SERVICE_ANNOTATIONS.mode] !== MODES.vip) continue;
    const pool = svc.metadata?.annotations?.[ALLOCATED_FROM_POOL_ANNOTATION];
    if (!pool) continue;
    const key = `${svc.metadata?.namespace}/${svc.metadata?.name}`;
    const service: ElectionService = {
      key,
      externalTrafficPolicy: svc.spec?.externalTrafficPolicy === "Local" ? "Local" : "Cluster",
      endpointNodes: endpointNodes.get(key) ?? new Set(),
    };
    for (const ingress of svc.status?.loadBalancer?.ingress ?? []) {
      if (!ingress.ip || ingress.ipMode !== VIP_INGRESS_IP_MODE) continue;
      const entry = byIp.get(ingress.ip) ?? { pool, services: [] };
      entry.services.push(service);
      byIp.set(ingress.ip, entry);
    }
  }
  const vips: ElectionVip[] = [...byIp.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([ip, e]) => ({ ip, pool: e.pool, services: e.services.sort((a, b) => (a.key < b.key ? -1 : 1)) }));
  return { world: { nodes, pools, vips }, pools };
}
