// Who holds a hostPort this Service's lb-pods need, per node. A DaemonSet pod whose hostPort is taken stays Pending
// forever (the scheduler's NodePorts filter), and k3s servicelb then shows only `<pending>`; berth names the holder
// so the user knows what to move. Pure: the pods and Services come in, the conflicts (with reasons) go out.
import { LABELS, MODES, SERVICE_ANNOTATIONS } from "../lib/names.js";
import type { Protocol } from "../lib/rules/model.js";
import { comparePorts } from "./service-config.js";
import { podTargetNode } from "./status.js";
import type { V1Pod, V1Service } from "./types.js";

/** k3s servicelb's pod labels, so a port held by a k3s svclb pod (mid-migration) is named by its Service. */
const K3S_SERVICE_NAME_LABEL = "svccontroller.k3s.cattle.io/svcname";
const K3S_SERVICE_NAMESPACE_LABEL = "svccontroller.k3s.cattle.io/svcnamespace";

/** The scheduler's NodePorts filter message (k8s.io/kubernetes pkg/scheduler/framework/plugins/nodeports ErrReason). */
const SCHEDULER_PORTS_MESSAGE = "didn't have free ports for the requested pod ports";

export type PortHolder =
  /** An lb-pod of another Service (berth's, or k3s servicelb's during a migration). */
  | { kind: "service"; service: string; pod: string }
  /** Any other pod with the same hostPort and protocol. */
  | { kind: "pod"; pod: string }
  /** The scheduler says the port is taken, but the holder is not among the pods the controller sees. */
  | { kind: "unknown"; detail: string };

export interface PortConflict {
  node: string;
  protocol: Protocol;
  port: number;
  holder: PortHolder;
  /** One line for logs, Events and conditions. */
  description: string;
}

export interface CompetingService {
  /** `namespace/name` */
  service: string;
  /** Ports both Services ask for on every node, as `TCP/80`. */
  ports: string[];
}

export interface ConflictInputs {
  service: V1Service;
  /** This Service's lb-pods (its DaemonSet's pods). */
  daemonSetPods: readonly V1Pod[];
  /** Every pod the controller sees, on every node (this Service's own pods are skipped). */
  allPods: readonly V1Pod[];
  /** Other LoadBalancer Services berth handles (hostPort mode); VIP-mode ones and this Service are skipped. */
  otherServices: readonly V1Service[];
}

export interface ConflictReport {
  /** Per node and port, sorted by node, protocol, port, holder. */
  conflicts: PortConflict[];
  /** Other hostPort-mode Services asking for one of the same ports: they compete for it on every node. */
  competingServices: CompetingService[];
}

const PROTOCOLS: Record<string, Protocol> = { TCP: "tcp", UDP: "udp", SCTP: "sctp" };

interface HostPort {
  protocol: Protocol;
  port: number;
}

/**
 * Conflicts exist only on nodes where this Service's lb-pod cannot take its ports: a node where one of our pods is
 * bound and not failed already holds them (any other claimant is the one left Pending). On the rest, the holders
 * are the bound, non-terminal pods there with the same hostPort and protocol (whatever their hostIP: ours is
 * unspecified, which overlaps every host IP in the scheduler's NodePorts filter). If none is visible but the
 * scheduler reported the ports as taken, the holder is "unknown".
 */
export function findPortConflicts({ service, daemonSetPods, allPods, otherServices }: ConflictInputs): ConflictReport {
  const uid = service.metadata?.uid;
  const ours = new Set(daemonSetPods.map(podKey));
  const wanted = servicePorts(service);

  const oursByNode = new Map<string, V1Pod[]>();
  for (const pod of daemonSetPods) {
    const node = podTargetNode(pod);
    if (node === undefined) continue;
    const list = oursByNode.get(node);
    if (list) list.push(pod);
    else oursByNode.set(node, [pod]);
  }

  // The other pods by the node they are bound to, once: scanning every pod for every node of ours was
  // O(nodes x pods) per reconcile, 10,000,000 steps for a new Service at 1,000 x 100, and blocked the controller's
  // event loop for seconds during a rollout (its Lease renewals and new Services' DaemonSets waited).
  const othersByNode = new Map<string, V1Pod[]>();
  for (const other of allPods) {
    const node = other.spec?.nodeName;
    if (node === undefined || !oursByNode.has(node) || isTerminal(other)) continue;
    if (ours.has(podKey(other)) || isOurServicePod(other, service, uid)) continue;
    const list = othersByNode.get(node);
    if (list) list.push(other);
    else othersByNode.set(node, [other]);
  }

  const conflicts: PortConflict[] = [];
  for (const [node, pods] of oursByNode) {
    if (pods.some((pod) => pod.spec?.nodeName && !isTerminal(pod) && !pod.metadata?.deletionTimestamp)) continue;
    const found: PortConflict[] = [];
    for (const other of othersByNode.get(node) ?? []) {
      for (const held of hostPorts(other)) {
        const clash = wanted.find((port) => port.protocol === held.protocol && port.port === held.port);
        if (clash) found.push(conflict(node, clash.protocol, clash.port, holderOf(other)));
      }
    }
    if (found.length === 0) {
      const evidence = pods.map(schedulerPortsMessage).find((message) => message !== undefined);
      if (evidence !== undefined) {
        for (const port of wanted) {
          found.push(conflict(node, port.protocol, port.port, { kind: "unknown", detail: evidence }));
        }
      }
    }
    conflicts.push(...found);
  }
  conflicts.sort((a, b) => (a.node !== b.node ? (a.node < b.node ? -1 : 1) : comparePorts(a, b) || compareText(a.description, b.description)));
  return { conflicts: dedupe(conflicts), competingServices: competing(service, wanted, otherServices) };
}

/** One line listing every conflict, grouped as `TCP/80 on node a: held by ...`, for the condition message. */
export function describeConflicts(conflicts: readonly PortConflict[]): string {
  return conflicts.map((c) => c.description).join("; ");
}

function conflict(node: string, protocol: Protocol, port: number, holder: PortHolder): PortConflict {
  const what = `${protocol.toUpperCase()}/${port} on node ${node}`;
  const by = holder.kind === "service"
    ? `held by Service ${holder.service} (pod ${holder.pod})`
    : holder.kind === "pod"
      ? `held by pod ${holder.pod}`
      : `taken (${holder.detail}), by something the controller cannot see`;
  return { node, protocol, port, holder, description: `${what}: ${by}` };
}

function holderOf(pod: V1Pod): PortHolder {
  const labels = pod.metadata?.labels ?? {};
  const name = `${pod.metadata?.namespace ?? ""}/${pod.metadata?.name ?? ""}`;
  const berthService = labels[LABELS.serviceName];
  const berthNamespace = labels[LABELS.serviceNamespace];
  if (berthService && berthNamespace) return { kind: "service", service: `${berthNamespace}/${berthService}`, pod: name };
  const k3sService = labels[K3S_SERVICE_NAME_LABEL];
  const k3sNamespace = labels[K3S_SERVICE_NAMESPACE_LABEL];
  if (k3sService && k3sNamespace) return { kind: "service", service: `${k3sNamespace}/${k3sService}`, pod: name };
  return { kind: "pod", pod: name };
}

/** A pod of this Service that is not in daemonSetPods (a leftover of an earlier DaemonSet generation). */
function isOurServicePod(pod: V1Pod, service: V1Service, uid: string | undefined): boolean {
  const labels = pod.metadata?.labels ?? {};
  return labels[LABELS.serviceName] === service.metadata?.name
    && labels[LABELS.serviceNamespace] === service.metadata?.namespace
    && (labels[LABELS.serviceUid] === undefined || labels[LABELS.serviceUid] === uid);
}

function podKey(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? ""}/${pod.metadata?.name ?? ""}`;
}

function isTerminal(pod: V1Pod): boolean {
  return pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";
}

/** Host ports a pod holds; on the host network every container port is a host port (the API defaults it so). */
function hostPorts(pod: V1Pod): HostPort[] {
  const result: HostPort[] = [];
  const hostNetwork = pod.spec?.hostNetwork === true;
  for (const container of [...(pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === "Always"), ...(pod.spec?.containers ?? [])]) {
    for (const port of container.ports ?? []) {
      const hostPort = port.hostPort ?? (hostNetwork ? port.containerPort : undefined);
      const protocol = PROTOCOLS[port.protocol ?? "TCP"];
      if (!hostPort || !protocol) continue;
      result.push({ protocol, port: hostPort });
    }
  }
  return result;
}

/**
 * Index keys of the host ports a bound pod holds on its node ("node<TAB>tcp/80"): the controller indexes its cached
 * lb-pods by them, so a Service's conflict check visits only the pods holding one of its ports on its waiting nodes,
 * not every lb-pod there (at 1,000 Services x 20 nodes that walk of ~20,000 pods per reconcile of a new Service was
 * most of the controller's time; docs/design/0012-api-discipline-at-scale.md, addendum 5).
 */
export function hostPortIndexKeys(pod: V1Pod): string[] {
  const node = pod.spec?.nodeName;
  if (!node) return [];
  return [...new Set(hostPorts(pod).map((held) => hostPortIndexKey(node, held.protocol, held.port)))];
}

export function hostPortIndexKey(node: string, protocol: Protocol, port: number): string {
  return `${node}\t${protocol}/${port}`;
}

export function servicePorts(service: V1Service): { protocol: Protocol; port: number }[] {
  const ports: { protocol: Protocol; port: number }[] = [];
  for (const port of service.spec?.ports ?? []) {
    const protocol = PROTOCOLS[port.protocol ?? "TCP"];
    if (protocol && !ports.some((p) => p.protocol === protocol && p.port === port.port)) ports.push({ protocol, port: port.port });
  }
  return ports.sort(comparePorts);
}

/** Whether the scheduler reported this pod as not fitting because its host ports are taken (NodePorts). */
export function waitsForPorts(pod: V1Pod): boolean {
  return schedulerPortsMessage(pod) !== undefined;
}

function schedulerPortsMessage(pod: V1Pod): string | undefined {
  const scheduled = pod.status?.conditions?.find((condition) => condition.type === "PodScheduled");
  if (scheduled?.status === "False" && scheduled.message?.includes(SCHEDULER_PORTS_MESSAGE)) return `scheduler: ${scheduled.message}`;
  return undefined;
}

function competing(service: V1Service, wanted: { protocol: Protocol; port: number }[], others: readonly V1Service[]): CompetingService[] {
  const result: CompetingService[] = [];
  for (const other of others) {
    if (other.metadata?.uid !== undefined && other.metadata.uid === service.metadata?.uid) continue;
    if (other.metadata?.namespace === service.metadata?.namespace && other.metadata?.name === service.metadata?.name) continue;
    if (other.spec?.type !== "LoadBalancer") continue;
    if ((other.metadata?.annotations?.[SERVICE_ANNOTATIONS.mode] ?? "").trim().toLowerCase() === MODES.vip) continue;
    const shared = servicePorts(other).filter((port) => wanted.some((w) => w.protocol === port.protocol && w.port === port.port));
    if (shared.length > 0) {
      result.push({
        service: `${other.metadata?.namespace ?? ""}/${other.metadata?.name ?? ""}`,
        ports: shared.map((port) => `${port.protocol.toUpperCase()}/${port.port}`),
      });
    }
  }
  return result.sort((a, b) => compareText(a.service, b.service));
}

function dedupe(conflicts: PortConflict[]): PortConflict[] {
  const seen = new Set<string>();
  return conflicts.filter((c) => {
    const key = c.description;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
