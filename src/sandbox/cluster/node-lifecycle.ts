// A node whose kubelet stops, and comes back, as a cluster sees it (`berth sandbox kubelet stop|start <node>`).
// Mirrors kubernetes pkg/controller/nodelifecycle/node_lifecycle_controller.go (tryUpdateNodeHealth,
// doNoScheduleTaintingPass, doNoExecuteTaintingPass) and pkg/controller/util/node/controller_utils.go
// (MarkPodsNotReady):
// - the kubelet stops: it posts nothing more (no node status, no pod status, no pod starts or deletions), while the
//   processes it started keep running, as containers outlive a dead kubelet;
// - after the node monitor grace period, the node lifecycle controller sets every node condition to Unknown
//   ("Kubelet stopped posting node status."), taints the node node.kubernetes.io/unreachable (NoSchedule, and
//   NoExecute with timeAdded; DaemonSet pods tolerate both, so nothing is evicted) and marks the node's pods not
//   Ready, so their endpoints turn not ready;
// - the kubelet starts again: it posts Ready=True and every pod's real status, and the lifecycle controller lifts
//   the taints.
// The sandbox shortens the grace period from kube-controller-manager's 40 s (--node-monitor-grace-period) to
// NODE_MONITOR_GRACE_MS, as it shortens probe periods: a test or a chaos run sees the node go NotReady in seconds.
import type { V1Node, V1NodeCondition, V1Pod, V1PodCondition, V1Taint } from "@kubernetes/client-node";
import { isNotFound, Resources, type KubeClient, type LogFn } from "../../lib/kube/client.js";

/** The sandbox's node monitor grace period (kube-controller-manager: 40 s). */
export const NODE_MONITOR_GRACE_MS = 3000;

export const UNREACHABLE_TAINT_KEY = "node.kubernetes.io/unreachable";
const STOPPED_REASON = "NodeStatusUnknown";
const STOPPED_MESSAGE = "Kubelet stopped posting node status.";

/** Kubernetes' seconds-precision timestamps. */
export function kubeTime(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * What the node lifecycle controller writes once the kubelet's grace period passed: every condition Unknown with
 * reason NodeStatusUnknown (the transition time moves only for conditions that were not Unknown yet; the last
 * heartbeat stays the kubelet's last one), and both unreachable taints added (the NoExecute one with timeAdded).
 */
export function unreachableNode(node: V1Node, now: Date): { conditions: V1NodeCondition[]; taints: V1Taint[] } {
  const time = kubeTime(now);
  const conditions = (node.status?.conditions ?? []).map((c): V1NodeCondition => (c.status === "Unknown" ? c : {
    ...c, status: "Unknown", reason: STOPPED_REASON, message: STOPPED_MESSAGE, lastTransitionTime: time as unknown as Date,
  }));
  if (!conditions.some((c) => c.type === "Ready")) {
    // A node whose kubelet never posted: the controller adds Ready=Unknown ("Kubelet never posted node status.").
    conditions.push({ type: "Ready", status: "Unknown", reason: STOPPED_REASON, message: "Kubelet never posted node status.",
      lastHeartbeatTime: time as unknown as Date, lastTransitionTime: time as unknown as Date });
  }
  const others = (node.spec?.taints ?? []).filter((t) => t.key !== UNREACHABLE_TAINT_KEY);
  const taints: V1Taint[] = [
    ...others,
    { key: UNREACHABLE_TAINT_KEY, effect: "NoSchedule" },
    { key: UNREACHABLE_TAINT_KEY, effect: "NoExecute", timeAdded: time as unknown as Date },
  ];
  return { conditions, taints };
}

/** What the kubelet (Ready=True, a fresh heartbeat) and then the lifecycle controller (taints lifted) write on return. */
export function reachableNode(node: V1Node, now: Date): { conditions: V1NodeCondition[]; taints: V1Taint[] } {
  const time = kubeTime(now);
  const ready: V1NodeCondition = {
    type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status",
    lastHeartbeatTime: time as unknown as Date, lastTransitionTime: time as unknown as Date,
  };
  const before = node.status?.conditions ?? [];
  const conditions = before.some((c) => c.type === "Ready")
    ? before.map((c) => (c.type !== "Ready" ? c : c.status === "True" ? { ...c, lastHeartbeatTime: time as unknown as Date } : ready))
    : [...before, ready];
  const taints = (node.spec?.taints ?? []).filter((t) => t.key !== UNREACHABLE_TAINT_KEY);
  return { conditions, taints };
}

/**
 * MarkPodsNotReady for one pod: its Ready condition set to False (transition time now, unless it already was), the
 * rest untouched. Undefined when there is nothing to write (no Ready condition, or already False).
 */
export function podMarkedNotReady(pod: V1Pod, now: Date): V1PodCondition[] | undefined {
  const conditions = pod.status?.conditions ?? [];
  const ready = conditions.find((c) => c.type === "Ready");
  if (ready === undefined || ready.status === "False") return undefined;
  return conditions.map((c) => (c.type === "Ready" ? { ...c, status: "False", lastTransitionTime: kubeTime(now) as unknown as Date } : c));
}

/** The part of the kubelet stand-in the lifecycle needs: stop and resume acting for one node. */
export interface NodeKubelet {
  /** Stop posting and acting for this node's pods (the processes keep running). */
  pause(node: string): void;
  /** Act again: post every pod's status afresh. */
  resume(node: string): void;
  paused(node: string): boolean;
}

/**
 * The sandbox's node lifecycle: stops and starts a node's kubelet and, after the grace period, marks the node and
 * its pods the way kube-controller-manager would.
 */
export class NodeLifecycle {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly nodeNames: Set<string>;

  constructor(private readonly o: {
    client: KubeClient;
    kubelet: NodeKubelet;
    nodes: string[];
    graceMs?: number;
    log: LogFn;
    clock?: () => Date;
  }) {
    this.nodeNames = new Set(o.nodes);
  }

  private now(): Date {
    return (this.o.clock ?? (() => new Date()))();
  }

  private known(node: string): void {
    if (!this.nodeNames.has(node)) throw new Error(`no node ${JSON.stringify(node)} in this sandbox (nodes: ${[...this.nodeNames].join(", ")})`);
  }

  /** Stops the node's kubelet; the node turns NotReady (Ready=Unknown) after the grace period. */
  stopKubelet(node: string): { graceMs: number } {
    this.known(node);
    const graceMs = this.o.graceMs ?? NODE_MONITOR_GRACE_MS;
    if (this.o.kubelet.paused(node)) return { graceMs };
    this.o.kubelet.pause(node);
    this.o.log("info", `kubelet of ${node} stopped; the node lifecycle marks it after ${graceMs} ms`);
    this.timers.set(node, setTimeout(() => {
      this.timers.delete(node);
      this.markUnreachable(node).catch((err: unknown) => this.o.log("error", `marking ${node} unreachable failed`, { error: String(err) }));
    }, graceMs));
    return { graceMs };
  }

  /** Starts the node's kubelet again: Ready=True, taints lifted, pod statuses posted afresh. */
  async startKubelet(node: string): Promise<void> {
    this.known(node);
    const timer = this.timers.get(node);
    if (timer) clearTimeout(timer);
    this.timers.delete(node);
    if (!this.o.kubelet.paused(node)) return;
    const current = await this.o.client.get<V1Node>(Resources.nodes, node);
    const { conditions, taints } = reachableNode(current, this.now());
    await this.o.client.patchStatus(Resources.nodes, node, "merge", { status: { conditions } });
    await this.o.client.patch(Resources.nodes, node, "merge", { spec: { taints: taints.length > 0 ? taints : null } });
    this.o.kubelet.resume(node);
    this.o.log("info", `kubelet of ${node} started again; node Ready`);
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private async markUnreachable(node: string): Promise<void> {
    if (!this.o.kubelet.paused(node)) return;
    const current = await this.o.client.get<V1Node>(Resources.nodes, node);
    const { conditions, taints } = unreachableNode(current, this.now());
    await this.o.client.patchStatus(Resources.nodes, node, "merge", { status: { conditions } });
    await this.o.client.patch(Resources.nodes, node, "merge", { spec: { taints } });
    const pods = await this.o.client.list<V1Pod>(Resources.pods);
    let marked = 0;
    for (const pod of pods.items.filter((p) => p.spec?.nodeName === node)) {
      const conditions = podMarkedNotReady(pod, this.now());
      if (conditions === undefined) continue;
      try {
        await this.o.client.patchStatus(Resources.pods, pod.metadata?.name ?? "", "merge", { status: { conditions } }, { namespace: pod.metadata?.namespace ?? "" });
        marked++;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    this.o.log("info", `node ${node}: Ready=Unknown (kubelet stopped posting), tainted unreachable, ${marked} pods marked not Ready`);
  }
}
