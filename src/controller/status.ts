// status.loadBalancer.ingress for a hostPort-mode Service, as a pure function of the Service, its lb-pods, the nodes
// and (for externalTrafficPolicy Local) its EndpointSlices. Modelled on k3s servicelb's getStatus / podIPs /
// filterByIPFamily, with three deliberate differences, each tested:
// - Addresses are chosen per node and per family (that node's ExternalIP of the family, else its InternalIP of the
//   family). k3s chooses cluster-wide: one node with an ExternalIP makes it list only ExternalIPs, silently dropping
//   every node that has none.
// - Each family is sorted numerically (10.0.0.9 before 10.0.0.10), not as strings as k3s's sort.Strings does.
// - The node must exist, be Ready, not be going away and still be eligible (nodeEligibility, the rule the
//   DaemonSet's node affinity is built from: a node labelled for exclusion leaves the status at once, not when its
//   pod is gone), and its lb-pod must be Ready and not terminating; every node gets a reason, included or not (for
//   logs, Events and tests).
import type { V1LoadBalancerIngress } from "@kubernetes/client-node";

import { AddressError, compareAddresses, parseIp, type IpAddress } from "../lib/addresses.js";
import { LABELS } from "../lib/names.js";
import type { Family } from "../lib/rules/model.js";
import { nodeEligibility } from "./daemonset.js";
import type { ServiceLbConfig, V1EndpointSlice, V1Node, V1Pod, V1Service } from "./types.js";

/** One ingress entry as berth writes it. */
export interface Ingress {
  ip: string;
  /**
   * VIP (the API default): kube-proxy captures traffic to the address on every node, which is what makes a node's
   * own IP on the Service port work and keeps the client address under Local (see docs/architecture.md, "How traffic really flows").
   */
  ipMode: "VIP";
}

export interface NodeDecision {
  node: string;
  included: boolean;
  reason: string;
  /** The node may not serve this Service (its reason starts with NOT_ELIGIBLE): expected, not trouble. */
  ineligible?: true;
  /** The kubelet rejected the node's lb-pod at admission (pod Failed, reason SysctlForbidden): its message. */
  sysctlForbidden?: string;
  /** No lb-pod of the node has got past the kubelet's admission yet (none, or every one Pending). */
  notStarted?: true;
}

/** Start of the reason of a node that may not serve the Service. */
export const NOT_ELIGIBLE = "node may not serve this Service: ";

/** The kubelet's pod status reason for a pod asking for a sysctl it does not allow (pkg/kubelet/sysctl). */
export const SYSCTL_FORBIDDEN = "SysctlForbidden";

export interface ComputedStatus {
  ingress: Ingress[];
  /** One entry per node known or hosting an lb-pod, sorted by node name. */
  perNode: NodeDecision[];
}

export interface StatusInputs {
  service: V1Service;
  /** parseServiceConfig's value for the Service (its node pool decides which nodes are eligible). */
  serviceConfig: Pick<ServiceLbConfig, "nodePool">;
  /** The lb-pods of this Service (selected by the berth.dev/service-* labels); pods of another UID are ignored. */
  pods: readonly V1Pod[];
  nodes: readonly V1Node[];
  /** The Service's EndpointSlices; only read for externalTrafficPolicy Local. */
  endpointSlices: readonly V1EndpointSlice[];
}

/** The EndpointSlice label naming its Service (discovery.k8s.io/v1 LabelServiceName). */
const ENDPOINTSLICE_SERVICE_LABEL = "kubernetes.io/service-name";

export function computeStatus({ service, serviceConfig, pods, nodes, endpointSlices }: StatusInputs): ComputedStatus {
  const families = serviceFamilies(service);
  const local = service.spec?.externalTrafficPolicy === "Local";
  const uid = service.metadata?.uid;
  const endpointNodes = local ? nodesWithReadyEndpoints(service, endpointSlices) : undefined;

  const podsByNode = new Map<string, V1Pod[]>();
  for (const pod of pods) {
    const podUid = pod.metadata?.labels?.[LABELS.serviceUid];
    if (podUid !== undefined && uid !== undefined && podUid !== uid) continue;
    const nodeName = podTargetNode(pod);
    if (nodeName === undefined) continue;
    const list = podsByNode.get(nodeName) ?? [];
    list.push(pod);
    podsByNode.set(nodeName, list);
  }
  const nodesByName = new Map(nodes.map((node) => [node.metadata?.name ?? "", node]));
  const names = [...new Set([...nodesByName.keys(), ...podsByNode.keys()])].filter((name) => name !== "").sort();

  const chosen: IpAddress[] = [];
  const perNode: NodeDecision[] = [];
  for (const name of names) {
    const node = nodesByName.get(name);
    const eligibility = node === undefined ? undefined : nodeEligibility(node, serviceConfig, nodes);
    const decision: ReturnType<typeof decideNode> = eligibility?.eligible === false
      ? { reason: `${NOT_ELIGIBLE}${eligibility.reason}` }
      : decideNode(name, node, podsByNode.get(name) ?? [], families, endpointNodes);
    perNode.push({
      node: name, included: decision.addresses !== undefined, reason: decision.reason,
      ...(eligibility?.eligible === false ? { ineligible: true as const } : {}),
      ...(decision.sysctlForbidden !== undefined ? { sysctlForbidden: decision.sysctlForbidden } : {}),
      ...(decision.notStarted ? { notStarted: true as const } : {}),
    });
    if (decision.addresses) chosen.push(...decision.addresses);
  }

  const ingress: Ingress[] = [];
  for (const family of families) {
    const seen = new Set<string>();
    for (const address of chosen.filter((a) => a.family === family).sort(compareAddresses)) {
      if (seen.has(address.text)) continue;
      seen.add(address.text);
      ingress.push({ ip: address.text, ipMode: "VIP" });
    }
  }
  return { ingress, perNode };
}

function decideNode(
  name: string,
  node: V1Node | undefined,
  pods: V1Pod[],
  families: Family[],
  endpointNodes: Set<string> | undefined,
): { addresses?: IpAddress[]; reason: string; sysctlForbidden?: string; notStarted?: boolean } {
  if (node === undefined) return { reason: "node does not exist" };
  if (node.metadata?.deletionTimestamp) return { reason: "node is being deleted" };
  const ready = node.status?.conditions?.find((condition) => condition.type === "Ready");
  if (ready?.status !== "True") return { reason: `node is not Ready (Ready=${ready?.status ?? "unknown"})` };
  if (pods.length === 0) return { reason: "no lb-pod of this Service on the node", notStarted: true };
  const live = pods.filter((pod) => !pod.metadata?.deletionTimestamp);
  // A rejected pod being deleted has not got past admission either (notStarted), nor has its replacement.
  if (live.length === 0) return { reason: `lb-pod ${podNames(pods)} is terminating`, notStarted: pods.every((pod) => pod.status?.phase === "Failed") };
  const rejected = live.find((pod) => pod.status?.phase === "Failed" && pod.status.reason === SYSCTL_FORBIDDEN);
  // Rejected unless a pod has got past admission since (the DaemonSet controller replaces a rejected pod, and the
  // replacement is rejected in turn: a kubelet re-admits nothing).
  if (rejected && !live.some((pod) => pod.status?.phase === "Running" || pod.status?.phase === "Succeeded")) {
    const message = rejected.status?.message ?? SYSCTL_FORBIDDEN;
    return { reason: `lb-pod ${podNames([rejected])} was rejected by the kubelet (${SYSCTL_FORBIDDEN}: ${message})`, sysctlForbidden: message };
  }
  if (!live.some(isPodReady)) {
    const notStarted = live.every((pod) => (pod.status?.phase ?? "Pending") === "Pending");
    return { reason: `lb-pod ${podNames(live)} is not Ready${pendingDetail(live)}`, notStarted };
  }
  if (endpointNodes !== undefined && !endpointNodes.has(name)) {
    return { reason: "no ready endpoint of the Service on the node (externalTrafficPolicy Local)" };
  }
  const addresses = nodeAddresses(node, families);
  if (addresses.length === 0) {
    return { reason: `node has no InternalIP or ExternalIP of the Service's families (${families.join(", ")})` };
  }
  return { addresses, reason: `serving on ${addresses.map((a) => a.text).join(", ")}` };
}

/**
 * The node a pod runs on or, not yet bound, is meant for: the DaemonSet controller pins each pod to its node with a
 * required node affinity on `metadata.name` (ScheduleDaemonSetPods, default since 1.12), and a pod whose hostPort is
 * taken stays Pending and unbound, so its node is only visible there.
 */
export function podTargetNode(pod: V1Pod): string | undefined {
  const bound = pod.spec?.nodeName;
  if (bound) return bound;
  const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  for (const term of terms) {
    for (const field of term.matchFields ?? []) {
      if (field.key === "metadata.name" && field.operator === "In" && field.values?.length === 1) return field.values[0];
    }
  }
  return undefined;
}

function podNames(pods: V1Pod[]): string {
  return pods.map((pod) => pod.metadata?.name ?? "?").sort().join(", ");
}

function pendingDetail(pods: V1Pod[]): string {
  for (const pod of pods) {
    const scheduled = pod.status?.conditions?.find((condition) => condition.type === "PodScheduled");
    if (scheduled?.status === "False" && scheduled.message) return ` (${scheduled.reason ?? "Pending"}: ${scheduled.message})`;
  }
  return "";
}

export function isPodReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((condition) => condition.type === "Ready" && condition.status === "True") ?? false;
}

/**
 * The node's addresses to advertise: per family, its ExternalIPs of that family if it has any, else its
 * InternalIPs of that family. Malformed addresses are skipped (a node's status is not ours to reject).
 */
export function nodeAddresses(node: V1Node, families: readonly Family[]): IpAddress[] {
  const byType = { ExternalIP: [] as IpAddress[], InternalIP: [] as IpAddress[] };
  for (const address of node.status?.addresses ?? []) {
    if (address.type !== "ExternalIP" && address.type !== "InternalIP") continue;
    try {
      byType[address.type].push(parseIp(address.address));
    } catch (error) {
      if (!(error instanceof AddressError)) throw error;
    }
  }
  const result: IpAddress[] = [];
  for (const family of families) {
    const external = byType.ExternalIP.filter((a) => a.family === family);
    result.push(...(external.length > 0 ? external : byType.InternalIP.filter((a) => a.family === family)));
  }
  return result;
}

/**
 * Nodes with an endpoint that kube-proxy would send this node's Local traffic to: ready (a nil `ready` means ready,
 * as the EndpointSlice API documents and kube-proxy reads it), or serving and terminating (kube-proxy's fallback when
 * a node has no ready local endpoint, KEP-1669), so a rolling update of the backend does not drop the node.
 */
function nodesWithReadyEndpoints(service: V1Service, slices: readonly V1EndpointSlice[]): Set<string> {
  const nodes = new Set<string>();
  for (const slice of slices) {
    if (slice.metadata?.namespace !== undefined && slice.metadata.namespace !== service.metadata?.namespace) continue;
    const owner = slice.metadata?.labels?.[ENDPOINTSLICE_SERVICE_LABEL];
    if (owner !== undefined && owner !== service.metadata?.name) continue;
    for (const endpoint of slice.endpoints ?? []) {
      if (!endpoint.nodeName) continue;
      const conditions = endpoint.conditions ?? {};
      const ready = conditions.ready ?? true;
      if (ready || (conditions.serving === true && conditions.terminating === true)) nodes.add(endpoint.nodeName);
    }
  }
  return nodes;
}

/** spec.ipFamilies in order; on servers without it, the family of the ClusterIP. */
export function serviceFamilies(service: V1Service): Family[] {
  const families: Family[] = [];
  for (const name of service.spec?.ipFamilies ?? []) {
    const family = name === "IPv4" ? "ipv4" : name === "IPv6" ? "ipv6" : undefined;
    if (family && !families.includes(family)) families.push(family);
  }
  if (families.length > 0) return families;
  const clusterIp = service.spec?.clusterIPs?.[0] ?? service.spec?.clusterIP ?? "";
  return [clusterIp.includes(":") ? "ipv6" : "ipv4"];
}

/**
 * Whether two ingress lists are the same, in order (order is part of what users and kube-proxy see, so a reorder
 * is a change). An absent ipMode equals "VIP": servers before 1.29 drop the field, and treating that as a difference
 * would patch the status on every reconcile.
 */
export function statusEquals(
  a: readonly V1LoadBalancerIngress[] | undefined,
  b: readonly V1LoadBalancerIngress[] | undefined,
): boolean {
  const left = a ?? [];
  const right = b ?? [];
  if (left.length !== right.length) return false;
  return left.every((entry, index) => {
    const other = right[index] as V1LoadBalancerIngress;
    return (entry.ip ?? "") === (other.ip ?? "")
      && (entry.hostname ?? "") === (other.hostname ?? "")
      && (entry.ipMode ?? "VIP") === (other.ipMode ?? "VIP")
      && JSON.stringify(entry.ports ?? []) === JSON.stringify(other.ports ?? []);
  });
}
