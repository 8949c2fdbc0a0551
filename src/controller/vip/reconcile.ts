// One VIP-mode Service's reconcile: thin I/O around the allocator. It writes the berth.dev/allocated-from-pool
// annotation first and the status second (status.loadBalancer.ingress [{ip, ipMode: "VIP"}] and the Ready
// condition), so a speaker that sees the addresses also sees their pool (src/lib/vip/address-pool.ts, the contract).
// Every reason a Service has no address is the Ready condition's reason and one Warning Event that says what to do;
// both are written only when they change, as for hostPort mode (src/controller/conditions.ts).
import type { V1LoadBalancerIngress } from "@kubernetes/client-node";

import { Resources, type KubeClient, type KubeObject } from "../../lib/kube/client.js";
import { CONDITION_TYPES, EVENT_REASONS, FIELD_MANAGER } from "../../lib/names.js";
import { ALLOCATED_FROM_POOL_ANNOTATION, VIP_INGRESS_IP_MODE } from "../../lib/vip/address-pool.js";
import { removeOurConditions, truncate } from "../conditions.js";
import type { EventDecision, ServiceLbConfig, V1Condition, V1Service } from "../types.js";
import { heldVipIps, poolKey, type VipState } from "./state.js";

/** Ready reasons of VIP-mode Services (besides the allocator's failure codes, which are reasons as they are). */
export const VIP_REASONS = {
  /** Ready=True: the Service has its addresses. */
  addressAssigned: "AddressAssigned",
  /** Ready=True: it keeps addresses no pool contains any more (a pool was edited or deleted). */
  assignedOutsidePools: "AssignedOutsidePools",
  /** Ready=False: the pools cannot be read yet (or at all: the CRD is missing). */
  noAddressPools: "NoAddressPools",
} as const;

/** Event reasons of VIP mode. */
export const VIP_EVENT_REASONS = {
  /** Warning: the Service's status listed an address another Service holds (two writers raced); it got another. */
  addressConflict: "AddressConflict",
} as const;

export interface VipReconcileInput {
  client: KubeClient;
  service: V1Service;
  config: ServiceLbConfig;
  vip: VipState;
  now: Date;
  emit(event: EventDecision): void;
  requeueAfter(ms: number): void;
  enqueue(key: string): void;
}

type Desired = Pick<V1Condition, "type" | "status" | "reason" | "message">;

/** Reconciles a valid VIP-mode Service that is ours; throws on API errors (the queue retries). */
export async function reconcileVipService(input: VipReconcileInput): Promise<{ result: "updated" | "unchanged" | "vip-unavailable" | "waiting-for-cache"; wrote: boolean }> {
  const { vip, service } = input;
  const key = `${service.metadata?.namespace}/${service.metadata?.name}`;
  const wait = vip.staleWaitMs(key, service.metadata?.resourceVersion, input.now.getTime());
  if (wait > 0) {
    input.requeueAfter(wait);
    return { result: "waiting-for-cache", wrote: false };
  }
  if (!vip.ready()) {
    const unreadable = vip.poolsUnreadable();
    if (unreadable === undefined) {
      // The pool cache is still filling: no decision without every pool known.
      input.requeueAfter(250);
      return { result: "waiting-for-cache", wrote: false };
    }
    input.requeueAfter(5000);
    const wrote = await writeOutcome(input, service, heldVipIps(service), service.metadata?.annotations?.[ALLOCATED_FROM_POOL_ANNOTATION],
      { type: CONDITION_TYPES.ready, status: "False", reason: VIP_REASONS.noAddressPools, message: `No address can be given: ${unreadable}` }, []);
    return { result: "vip-unavailable", wrote };
  }

  const allocator = vip.allocator;
  const svc = vip.describe(service, input.config);
  const events: EventDecision[] = [];
  const before = allocator.heldBy(key);
  const listed = heldVipIps(service);
  if (before === undefined && listed.length > 0) {
    // Status says more than the allocator knows (written by another replica, or before a restart): rebuild first.
    const { conflicts } = allocator.restore(svc, listed, service.metadata?.annotations?.[ALLOCATED_FROM_POOL_ANNOTATION]);
    for (const c of conflicts) {
      events.push({
        type: "Warning",
        reason: VIP_EVENT_REASONS.addressConflict,
        message: `The status listed ${c.ip}, which ${c.holder} holds (two controllers wrote at once); this Service gets another address.`,
      });
    }
  }
  const result = allocator.allocate(svc);
  const held = allocator.heldBy(key);
  // In spec.ipFamilies order, as hostPort mode lists its addresses (and as kube-proxy reads them).
  const rank = (ip: string): number => svc.families.indexOf(ip.includes(":") ? "ipv6" : "ipv4");
  const ips = [...(held?.ips ?? [])].sort((a, b) => rank(a) - rank(b));
  let ready: Desired;
  if (result.ok && result.outsidePools.length === 0) {
    ready = { type: CONDITION_TYPES.ready, status: "True", reason: VIP_REASONS.addressAssigned, message: `Assigned ${ips.join(", ")} from pool ${result.pool}.` };
  } else if (result.ok) {
    ready = {
      type: CONDITION_TYPES.ready, status: "True", reason: VIP_REASONS.assignedOutsidePools,
      message: `Keeps ${result.outsidePools.join(", ")}, which no valid AddressPool contains any more (a pool was edited or deleted): ` +
        "an address in use is never taken away. Put it back into a pool, or remove this Service's address (delete it, or change its type) to free it.",
    };
  } else if (held !== undefined) {
    ready = {
      type: CONDITION_TYPES.ready, status: "True", reason: result.failure.code,
      message: `Keeps ${ips.join(", ")}: the changed request cannot be met. ${result.failure.message}`,
    };
  } else {
    ready = { type: CONDITION_TYPES.ready, status: "False", reason: result.failure.code, message: result.failure.message };
  }
  const wrote = await writeOutcome(input, service, ips, held?.pool, ready, events);
  if (result.ok && result.changed) {
    if (before?.pool !== undefined && before.pool !== held?.pool) input.enqueue(poolKey(before.pool));
    if (held?.pool) input.enqueue(poolKey(held.pool));
  }
  return { result: held === undefined ? "vip-unavailable" : wrote ? "updated" : "unchanged", wrote };
}

/** Writes the annotation, then status, each only when it differs; emits Events on transitions. */
async function writeOutcome(input: VipReconcileInput, service: V1Service, ips: string[], pool: string | undefined,
  ready: Desired, extraEvents: EventDecision[]): Promise<boolean> {
  const { client, now } = input;
  let current = service;
  let wrote = false;
  /** The versions each write started from: the cache may still show them after the writes. */
  const bases: (string | undefined)[] = [];
  const annotation = service.metadata?.annotations?.[ALLOCATED_FROM_POOL_ANNOTATION];
  const wantAnnotation = ips.length > 0 && pool ? pool : undefined;
  if (annotation !== wantAnnotation) {
    bases.push(current.metadata?.resourceVersion);
    current = await setPoolAnnotation(client, current, wantAnnotation ?? null);
    wrote = true;
  }
  const previous = service.status?.conditions ?? [];
  const before = previous.find((c) => c.type === CONDITION_TYPES.ready);
  const transition = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const generation = service.metadata?.generation;
  const condition: V1Condition = {
    type: ready.type,
    status: ready.status,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    lastTransitionTime: before && before.status === ready.status ? before.lastTransitionTime : transition,
    reason: ready.reason,
    message: truncate(ready.message),
  };
  const conditions = [...removeOurConditions(previous), condition];
  const ingress: V1LoadBalancerIngress[] = ips.map((ip) => ({ ip, ipMode: VIP_INGRESS_IP_MODE }));
  const oldIngress = service.status?.loadBalancer?.ingress ?? [];
  const ingressChanged = JSON.stringify(oldIngress.map((i) => [i.ip, i.ipMode ?? VIP_INGRESS_IP_MODE])) !== JSON.stringify(ingress.map((i) => [i.ip, i.ipMode]));
  const conditionsChanged = !before || before.status !== condition.status || before.reason !== condition.reason ||
    before.message !== condition.message || before.observedGeneration !== condition.observedGeneration ||
    previous.filter((c) => c.type.startsWith("berth.dev/")).length !== 1;
  if (ingressChanged || conditionsChanged) {
    bases.push(current.metadata?.resourceVersion);
    await client.patchStatus<V1Service & KubeObject>(Resources.services, current.metadata?.name as string, "merge", {
      metadata: { resourceVersion: current.metadata?.resourceVersion },
      status: { loadBalancer: { ingress: ingress.length > 0 ? ingress : null }, conditions },
    }, { namespace: current.metadata?.namespace as string, fieldManager: FIELD_MANAGER });
    wrote = true;
  }
  const events = [...extraEvents];
  const changedProblem = !before || before.reason !== condition.reason || before.message !== condition.message;
  if (condition.reason !== VIP_REASONS.addressAssigned && changedProblem) {
    events.push({ type: "Warning", reason: condition.reason, message: condition.message as string });
  }
  if (ingressChanged && ingress.length > 0) {
    events.push({
      type: "Normal", reason: EVENT_REASONS.updatedLoadBalancer,
      message: `Updated LoadBalancer with new IPs: [${oldIngress.map((i) => i.ip ?? "").join(" ")}] -> [${ips.join(" ")}] (pool ${pool ?? ""})`,
    });
  }
  input.vip.wroteOver(`${service.metadata?.namespace}/${service.metadata?.name}`, bases, now.getTime());
  // Written or not (a status we already wrote): the Events follow the decision, once per transition.
  if (ingressChanged || conditionsChanged || extraEvents.length > 0) events.forEach((e) => input.emit(e));
  return wrote;
}

/** Sets (or with null removes) the allocated-from-pool annotation; the resourceVersion makes a race a 409, retried. */
export async function setPoolAnnotation(client: KubeClient, service: V1Service, pool: string | null): Promise<V1Service> {
  return client.patch<V1Service & KubeObject>(Resources.services, service.metadata?.name as string, "merge",
    { metadata: { annotations: { [ALLOCATED_FROM_POOL_ANNOTATION]: pool }, resourceVersion: service.metadata?.resourceVersion } },
    { namespace: service.metadata?.namespace as string, fieldManager: FIELD_MANAGER }) as Promise<V1Service>;
}

/**
 * A Service that leaves VIP mode (deleted, another mode, not ours): frees its addresses and, when still there,
 * removes the annotation. Returns the Service as written (or as given when nothing was written).
 */
export async function releaseVip(vip: VipState | undefined, key: string, client: KubeClient, service: V1Service | undefined,
  enqueue: (key: string) => void): Promise<{ service: V1Service | undefined; wrote: boolean }> {
  const held = vip?.allocator.heldBy(key);
  if (held && vip?.allocator.release(key) && held.pool) enqueue(poolKey(held.pool));
  if (service && !service.metadata?.deletionTimestamp && service.metadata?.annotations?.[ALLOCATED_FROM_POOL_ANNOTATION] !== undefined) {
    return { service: await setPoolAnnotation(client, service, null), wrote: true };
  }
  return { service, wrote: false };
}
