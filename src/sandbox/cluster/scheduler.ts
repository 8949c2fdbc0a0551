// The sandbox's scheduler stand-in: it binds every unbound pod whose schedulerName is default-scheduler (or unset),
// as kube-scheduler 1.32 would, through POST pods/<name>/binding, or leaves it Pending with PodScheduled=False,
// reason Unschedulable and kube-scheduler's own FitError text, plus a FailedScheduling Warning Event.
//
// Two halves: pure decisions (the filters, the node choice, the FitError text, the scheduling queue's timing), table
// tested, then the I/O loop (SchedulerStandIn) that watches pods and nodes and carries the decisions out.
//
// What it mirrors, and from where (kubernetes/kubernetes, pkg/scheduler/...):
// - framework/plugins: the Filter plugins of the default profile that can reject a pod here, in the profile's order
//   (apis/config/v1/default_plugins.go): NodeUnschedulable, NodeName, TaintToleration, NodeAffinity (nodeSelector,
//   required node affinity, matchFields; its PreFilter narrows a pod pinned by `matchFields metadata.name In [...]`,
//   as every DaemonSet pod is, to those nodes), NodePorts. A node fails on the first plugin that rejects it, with that
//   plugin's reason string verbatim. A node's Ready condition is not a filter (its taints are).
// - framework/types.go FitError.Error and framework/preemption: "0/N nodes are available: <count reason, ...
//   sorted as strings>. preemption: 0/N nodes are available: <count reason, ...>." Nodes a PreFilterResult left out
//   count as "didn't satisfy plugin(s) [NodeAffinity]" (schedule_one.go findNodesThatFitPod).
// - schedule_one.go handleSchedulingFailure/updatePod: the condition is patched only when it changes (status,
//   reason, message), the Event recorded on every attempt (the recorder aggregates repeats).
// - backend/queue/scheduling_queue.go: a pod that did not fit waits in the unschedulable pool until something that
//   may help happens (an assigned pod deleted or finished, a node added or its labels/taints/spec changed, the pod's
//   own spec or labels changed), then retries once its backoff (1 s doubling to 10 s per attempt) has passed; after
//   5 min in the pool it is retried anyway (podMaxInUnschedulablePodsDuration).
// - framework/plugins/defaultbinder: one binding per pod; the pod is "assumed" on its node (cache.AssumePod) from the
//   decision on, so the next pod's NodePorts filter already sees its ports while the bind is in flight.
// Not there: resources (NodeResourcesFit: no pod requests anything here), volumes, pod (anti-)affinity, topology
// spread, scheduling gates' own handling (gated pods are just skipped), extenders, and preemption: every pod counts
// as the same priority, so preemption never finds victims and the message says so.
import type { V1Node, V1Pod, V1PodCondition, V1Taint } from "@kubernetes/client-node";
import { isConflict, isNotFound, noLog, Resources, type KubeClient, type LogFn, type Resource } from "../../lib/kube/client.js";
import { Informer } from "../../lib/kube/informer.js";
import { EventRecorder, involved } from "./kubelet/events.js";
import { portsClash, requiredAffinityMatches, toleratesTaint } from "./scheduling.js";

export const DEFAULT_SCHEDULER_NAME = "default-scheduler";

/** The plugins' reason strings, verbatim (kube-scheduler 1.32). */
export const REASONS = {
  /** nodeunschedulable.ErrReasonUnschedulable */
  nodeUnschedulable: "node(s) were unschedulable",
  /** nodename.ErrReason */
  nodeName: "node(s) didn't match the requested node name",
  /** nodeaffinity.ErrReasonPod */
  nodeAffinity: "node(s) didn't match Pod's node affinity/selector",
  /** nodeaffinity errReasonConflict (PreFilter: the terms' matchFields pin the pod to no node at all) */
  affinityConflict: "pod affinity terms conflict",
  /** nodeports.ErrReason */
  nodePorts: "node(s) didn't have free ports for the requested pod ports",
  /** schedule_one.go: the status of nodes a PreFilterResult left out */
  preFilterNodeAffinity: "node(s) didn't satisfy plugin(s) [NodeAffinity]",
  /** preemption.go: nodes where only UnschedulableAndUnresolvable statuses were found */
  preemptionNotHelpful: "Preemption is not helpful for scheduling",
  /** preemption.go SelectVictimsOnNode: no pod of lower priority on the node */
  noVictims: "No preemption victims found for incoming pod",
  /** schedule_one.go ErrNoNodesAvailable */
  noNodes: "no nodes available to schedule pods",
} as const;

/** tainttoleration: the first NoSchedule/NoExecute taint (in the node's order) the pod does not tolerate. */
export function untoleratedTaintReason(taint: V1Taint): string {
  return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ""}}`;
}

/** component-helpers nodeaffinity.GetRequiredNodeAffinity(pod).Match(node): the nodeSelector AND the required terms. */
export function podMatchesNodeAffinity(pod: V1Pod, node: V1Node): boolean {
  const labels = node.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(pod.spec?.nodeSelector ?? {})) if (labels[k] !== v) return false;
  return requiredAffinityMatches(pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms, node);
}

/**
 * NodeAffinity's PreFilter: the nodes the required terms' `metadata.name In` fields allow (a union over the terms,
 * an intersection within one), undefined when some term does not pin names (every node stays a candidate). An empty
 * set is the conflict PreFilter rejects the pod for.
 */
export function preFilterNodeNames(pod: V1Pod): Set<string> | undefined {
  const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  if (terms.length === 0) return undefined;
  let names: Set<string> | undefined;
  for (const term of terms) {
    let termNames: Set<string> | undefined;
    for (const f of term.matchFields ?? []) {
      if (f.key !== "metadata.name" || f.operator !== "In") continue;
      const values = new Set(f.values ?? []);
      termNames = termNames === undefined ? values : new Set([...termNames].filter((n) => values.has(n)));
    }
    if (termNames === undefined) return undefined;
    names = new Set([...(names ?? []), ...termNames]);
  }
  return names;
}

/** One node's Filter verdict: the first plugin's rejection, or undefined when the pod fits. */
export interface NodeRejection {
  reason: string;
  /** UnschedulableAndUnresolvable: preemption cannot help (every plugin here but NodePorts). */
  unresolvable: boolean;
}

/**
 * The default profile's Filter plugins that can reject a pod in the sandbox, in order; `onNode` are the pods the
 * scheduler's cache has on this node (bound or assumed, not finished; terminating ones still hold their ports).
 */
export function filterNode(pod: V1Pod, node: V1Node, onNode: readonly V1Pod[]): NodeRejection | undefined {
  const tolerations = pod.spec?.tolerations ?? [];
  if (node.spec?.unschedulable && !tolerations.some((t) => toleratesTaint(t, { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }))) {
    return { reason: REASONS.nodeUnschedulable, unresolvable: true };
  }
  if (pod.spec?.nodeName && pod.spec.nodeName !== node.metadata?.name) return { reason: REASONS.nodeName, unresolvable: true };
  const taint = (node.spec?.taints ?? []).find((t) =>
    (t.effect === "NoSchedule" || t.effect === "NoExecute") && !tolerations.some((tol) => toleratesTaint(tol, t)));
  if (taint) return { reason: untoleratedTaintReason(taint), unresolvable: true };
  if (!podMatchesNodeAffinity(pod, node)) return { reason: REASONS.nodeAffinity, unresolvable: true };
  if (onNode.some((other) => other !== pod && other.metadata?.uid !== pod.metadata?.uid && portsClash(pod, other) !== undefined)) {
    return { reason: REASONS.nodePorts, unresolvable: false };
  }
  return undefined;
}

/** Go's sort.Strings on "<count> <reason>": byte order, so "10 x" sorts before "2 y", as in kube-scheduler. */
function histogram(counts: Map<string, number>): string {
  return [...counts].map(([reason, n]) => `${n} ${reason}`).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).join(", ");
}

function count(into: Map<string, number>, reason: string, n = 1): void {
  into.set(reason, (into.get(reason) ?? 0) + n);
}

/** What one scheduling attempt decided. */
export type ScheduleResult = { node: string } | { message: string };

/**
 * One scheduling cycle for `pod` (schedule_one.go schedulePod + the DefaultPreemption PostFilter's message), pure:
 * `pods` are every pod the scheduler knows (bound ones count on their node). Feasible nodes are scored by spreading:
 * the fewest pods, then the name (kube-scheduler's scoring plugins would weigh resources and topology too).
 */
export function schedulePod(pod: V1Pod, nodes: readonly V1Node[], pods: readonly V1Pod[]): ScheduleResult {
  if (nodes.length === 0) return { message: REASONS.noNodes };
  const total = nodes.length;
  const preemption = (explicitResolvable: number): string => {
    if (pod.spec?.preemptionPolicy === "Never") return " preemption: not eligible due to preemptionPolicy=Never.";
    const counts = new Map<string, number>();
    if (explicitResolvable > 0) count(counts, REASONS.noVictims, explicitResolvable);
    if (total - explicitResolvable > 0) count(counts, REASONS.preemptionNotHelpful, total - explicitResolvable);
    return ` preemption: 0/${total} nodes are available: ${histogram(counts)}.`;
  };
  const pinned = preFilterNodeNames(pod);
  if (pinned !== undefined && pinned.size === 0) {
    return { message: `0/${total} nodes are available: ${REASONS.affinityConflict}.${preemption(0)}` };
  }
  const candidates = pinned === undefined ? nodes : nodes.filter((n) => pinned.has(n.metadata?.name ?? ""));
  // The pods on the candidate nodes only, appended in place: a DaemonSet pod has one candidate, and copying every
  // node's list per pod made one attempt O(pods per node^2 x nodes) (0.7 s at 100 nodes x 1,000 pods each).
  const wanted = new Set(candidates.map((n) => n.metadata?.name ?? ""));
  const onNode = new Map<string, V1Pod[]>();
  for (const p of pods) {
    const name = p.spec?.nodeName;
    if (!name || !wanted.has(name) || p.status?.phase === "Succeeded" || p.status?.phase === "Failed") continue;
    const list = onNode.get(name);
    if (list) list.push(p);
    else onNode.set(name, [p]);
  }
  const feasible: V1Node[] = [];
  const reasons = new Map<string, number>();
  let resolvable = 0;
  for (const node of candidates) {
    const rejection = filterNode(pod, node, onNode.get(node.metadata?.name ?? "") ?? []);
    if (!rejection) {
      feasible.push(node);
      continue;
    }
    count(reasons, rejection.reason);
    if (!rejection.unresolvable) resolvable++;
  }
  if (feasible.length > 0) {
    const load = (n: V1Node): number => (onNode.get(n.metadata?.name ?? "") ?? []).length;
    const [best] = feasible.sort((a, b) => load(a) - load(b) || String(a.metadata?.name).localeCompare(String(b.metadata?.name)));
    return { node: best?.metadata?.name ?? "" };
  }
  if (total - candidates.length > 0) count(reasons, REASONS.preFilterNodeAffinity, total - candidates.length);
  return { message: `0/${total} nodes are available: ${histogram(reasons)}.${preemption(resolvable)}` };
}

/** PodScheduled=False as handleSchedulingFailure writes it for a pod that does not fit. */
export function unschedulable(message: string): V1PodCondition {
  return { type: "PodScheduled", status: "False", reason: "Unschedulable", message };
}

/** Whether the pod carries this condition already (podutil.UpdatePodCondition: no write when nothing changed). */
export function conditionCurrent(pod: V1Pod, condition: V1PodCondition): boolean {
  const cur = (pod.status?.conditions ?? []).find((c) => c.type === condition.type);
  return cur !== undefined && cur.status === condition.status && (cur.reason ?? "") === (condition.reason ?? "") && (cur.message ?? "") === (condition.message ?? "");
}

/**
 * Whether this scheduler should place the pod: unbound, ours (schedulerName default-scheduler or unset), not
 * terminating, not finished (kube-scheduler's informer does not even see Succeeded/Failed pods), not gated.
 */
export function needsScheduling(pod: V1Pod): boolean {
  const spec = pod.spec;
  return !spec?.nodeName && (spec?.schedulerName ?? DEFAULT_SCHEDULER_NAME) === DEFAULT_SCHEDULER_NAME &&
    !pod.metadata?.deletionTimestamp && pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed" &&
    (spec?.schedulingGates ?? []).length === 0;
}

/** A pod that holds a place on a node in the scheduler's cache: bound and not finished. */
function holdsNode(pod: V1Pod): boolean {
  return Boolean(pod.spec?.nodeName) && pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed";
}

/** Pod events that may make an unschedulable pod fit: an assigned pod gone or finished (its ports free up). */
export function podChangeMayHelp(before: V1Pod | undefined, after: V1Pod | undefined): boolean {
  return before !== undefined && holdsNode(before) && (after === undefined || !holdsNode(after));
}

/** Node events that may help: a new node, or one whose labels, taints or spec (unschedulable) changed. */
export function nodeChangeMayHelp(before: V1Node | undefined, after: V1Node | undefined): boolean {
  if (after === undefined) return false;
  if (before === undefined) return true;
  return JSON.stringify(before.metadata?.labels ?? {}) !== JSON.stringify(after.metadata?.labels ?? {}) ||
    JSON.stringify(before.spec ?? {}) !== JSON.stringify(after.spec ?? {});
}

/** The pod's own update that may help (its spec or labels changed; not its status, which we write ourselves). */
export function ownUpdateMayHelp(before: V1Pod, after: V1Pod): boolean {
  return JSON.stringify(before.spec ?? {}) !== JSON.stringify(after.spec ?? {}) ||
    JSON.stringify(before.metadata?.labels ?? {}) !== JSON.stringify(after.metadata?.labels ?? {});
}

export interface QueueTiming {
  /** A new pod's wait before its first attempt: the real queue and bind latency, default 20 ms. */
  firstAttemptDelayMs: number;
  /** kube-scheduler's podInitialBackoffSeconds (1) and podMaxBackoffSeconds (10). */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** podMaxInUnschedulablePodsDuration: an unschedulable pod is retried after this long anyway (5 min). */
  maxUnschedulableMs: number;
}

export const DEFAULT_QUEUE_TIMING: QueueTiming = { firstAttemptDelayMs: 20, initialBackoffMs: 1000, maxBackoffMs: 10_000, maxUnschedulableMs: 300_000 };

/** scheduling_queue.go calculateBackoffDuration: initial, doubled per attempt after the first, capped. */
export function backoffMs(attempts: number, timing: Pick<QueueTiming, "initialBackoffMs" | "maxBackoffMs">): number {
  let d = timing.initialBackoffMs;
  for (let i = 1; i < attempts && d < timing.maxBackoffMs; i++) d *= 2;
  return Math.min(d, timing.maxBackoffMs);
}

interface QueuedPod {
  key: string;
  /** When the pod may be attempted next. */
  readyAt: number;
  /** When it entered the queue (FIFO among equals, as PrioritySort with equal priorities). */
  since: number;
  attempts: number;
  lastAttempt: number;
  /** In the unschedulable pool: waits for an event that may help (or maxUnschedulableMs). */
  unschedulable: boolean;
}

/**
 * The scheduling queue's timing, without I/O: activeQ (ready now), backoffQ (ready later) and the unschedulable
 * pool are one map of ready times. Keys are pod UIDs; `now` is epoch ms.
 */
export class SchedulingQueue {
  private readonly pods = new Map<string, QueuedPod>();

  constructor(private readonly timing: QueueTiming = DEFAULT_QUEUE_TIMING) {}

  /** A pod that needs scheduling was seen; a pod already queued keeps its place and history. */
  add(uid: string, key: string, now: number): void {
    if (this.pods.has(uid)) return;
    this.pods.set(uid, { key, readyAt: now + this.timing.firstAttemptDelayMs, since: now, attempts: 0, lastAttempt: 0, unschedulable: false });
  }

  remove(uid: string): void {
    this.pods.delete(uid);
  }

  has(uid: string): boolean {
    return this.pods.has(uid);
  }

  isUnschedulable(uid: string): boolean {
    return this.pods.get(uid)?.unschedulable ?? false;
  }

  /** The attempt failed because nothing fits: into the unschedulable pool. */
  unschedulable(uid: string, now: number): void {
    const p = this.pods.get(uid);
    if (!p) return;
    p.attempts++;
    p.lastAttempt = now;
    p.unschedulable = true;
    p.readyAt = now + this.timing.maxUnschedulableMs;
  }

  /** The attempt failed on an error (a bind refused): retried after its backoff, no event needed. */
  failed(uid: string, now: number): void {
    const p = this.pods.get(uid);
    if (!p) return;
    p.attempts++;
    p.lastAttempt = now;
    p.unschedulable = false;
    p.readyAt = now + backoffMs(p.attempts, this.timing);
  }

  /** Something that may help happened: every unschedulable pod (or just `uid`) is retried once its backoff is over. */
  move(now: number, uid?: string): void {
    for (const [id, p] of this.pods) {
      if (!p.unschedulable || (uid !== undefined && id !== uid)) continue;
      p.unschedulable = false;
      p.readyAt = Math.max(now, p.lastAttempt + backoffMs(p.attempts, this.timing));
    }
  }

  /** The next pod to attempt now (earliest ready, then longest queued), taken out of the ready set until re-queued. */
  pop(now: number): { uid: string; key: string } | undefined {
    let best: [string, QueuedPod] | undefined;
    for (const entry of this.pods) {
      const p = entry[1];
      if (p.readyAt > now) continue;
      if (!best || p.readyAt < best[1].readyAt || (p.readyAt === best[1].readyAt && p.since < best[1].since)) best = entry;
    }
    if (!best) return undefined;
    // In flight: not ready again until unschedulable()/failed()/remove() says what happened.
    best[1].readyAt = Number.POSITIVE_INFINITY;
    return { uid: best[0], key: best[1].key };
  }

  /** When the next pod becomes ready, or undefined when none will without an event. */
  nextReadyAt(): number | undefined {
    let next: number | undefined;
    for (const p of this.pods.values()) if (Number.isFinite(p.readyAt) && (next === undefined || p.readyAt < next)) next = p.readyAt;
    return next;
  }

  get size(): number {
    return this.pods.size;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The I/O loop.

/** POST pods/<name>/binding (KubeClient has no subresource create, so the path carries it). */
function bindingResource(podName: string): Resource {
  return { group: "", version: "v1", plural: `pods/${encodeURIComponent(podName)}/binding`, kind: "Binding", namespaced: true };
}

export interface SchedulerOptions {
  client: KubeClient;
  /** Queue timing; defaults DEFAULT_QUEUE_TIMING (first attempt 20 ms after a pod appears, backoff 1-10 s). */
  timing?: Partial<QueueTiming>;
  log?: LogFn;
}

export class SchedulerStandIn {
  private readonly log: LogFn;
  private readonly queue: SchedulingQueue;
  private readonly events: EventRecorder;
  private readonly pods: Informer<V1Pod>;
  private readonly nodes: Informer<V1Node>;
  /** Pods bound by us (or being bound) that the informer does not show bound yet: cache.AssumePod. */
  private readonly assumed = new Map<string, V1Pod>();
  private readonly binds = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Counters for tests and logs. */
  readonly stats = { attempts: 0, binds: 0, conditionWrites: 0 };

  constructor(private readonly o: SchedulerOptions) {
    this.log = o.log ?? noLog;
    this.queue = new SchedulingQueue({ ...DEFAULT_QUEUE_TIMING, ...(o.timing ?? {}) });
    this.events = new EventRecorder(o.client, this.log);
    this.pods = new Informer<V1Pod>({ client: o.client, resource: Resources.pods, log: this.log, name: "scheduler-pods" });
    this.nodes = new Informer<V1Node>({ client: o.client, resource: Resources.nodes, log: this.log, name: "scheduler-nodes" });
    this.pods.addHandlers({
      onAdd: (pod) => this.podSeen(undefined, pod),
      onUpdate: (before, after) => this.podSeen(before, after),
      onDelete: (pod) => {
        const uid = pod.metadata?.uid ?? "";
        this.queue.remove(uid);
        this.assumed.delete(uid);
        if (podChangeMayHelp(pod, undefined)) this.moveAll();
      },
    });
    const nodeChanged = (before: V1Node | undefined, after: V1Node | undefined): void => {
      if (nodeChangeMayHelp(before, after)) this.moveAll();
    };
    this.nodes.addHandlers({ onAdd: (n) => nodeChanged(undefined, n), onUpdate: nodeChanged });
  }

  /** Starts watching; resolves once both caches are synced (pods found unbound then are queued). */
  async start(): Promise<void> {
    this.pods.start();
    this.nodes.start();
    await Promise.all([this.pods.synced, this.nodes.synced]);
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all([this.pods.stop(), this.nodes.stop()]);
    await this.running;
    await Promise.all([...this.binds]);
  }

  private podSeen(before: V1Pod | undefined, pod: V1Pod): void {
    const uid = pod.metadata?.uid ?? "";
    if (pod.spec?.nodeName) this.assumed.delete(uid);
    if (this.assumed.has(uid)) {
      // Its bind is in flight: nothing to queue.
    } else if (needsScheduling(pod)) {
      if (!this.queue.has(uid)) this.queue.add(uid, `${pod.metadata?.namespace}/${pod.metadata?.name}`, Date.now());
      else if (before && this.queue.isUnschedulable(uid) && ownUpdateMayHelp(before, pod)) this.queue.move(Date.now(), uid);
    } else {
      this.queue.remove(uid);
    }
    if (podChangeMayHelp(before, pod)) this.moveAll();
    this.kick();
  }

  private moveAll(): void {
    this.queue.move(Date.now());
    this.kick();
  }

  /** Runs the worker now or when the next pod becomes ready; one worker at a time. */
  private kick(): void {
    if (this.stopped || this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const next = this.queue.nextReadyAt();
    if (next === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.work().finally(() => {
        this.running = undefined;
        this.kick();
      });
    }, Math.max(0, next - Date.now()));
  }

  private async work(): Promise<void> {
    for (let next = this.queue.pop(Date.now()); next && !this.stopped; next = this.queue.pop(Date.now())) {
      try {
        await this.attempt(next.uid, next.key);
      } catch (e) {
        this.log("warn", `scheduling ${next.key} failed; retrying after backoff`, { error: String(e) });
        this.queue.failed(next.uid, Date.now());
      }
    }
  }

  /** The pods the cache holds: the informer's, with our assumed bindings laid over them. */
  private cachedPods(): V1Pod[] {
    return this.pods.list().map((p) => this.assumed.get(p.metadata?.uid ?? "") ?? p);
  }

  private async attempt(uid: string, key: string): Promise<void> {
    const pod = this.pods.get(key);
    if (!pod || pod.metadata?.uid !== uid || !needsScheduling(pod) || this.assumed.has(uid)) {
      this.queue.remove(uid);
      return;
    }
    this.stats.attempts++;
    const result = schedulePod(pod, this.nodes.list(), this.cachedPods());
    if ("node" in result) {
      this.assume(pod, result.node);
      return;
    }
    const condition = unschedulable(result.message);
    this.log("info", `pod ${key} does not fit: ${result.message}`);
    this.queue.unschedulable(uid, Date.now());
    this.events.record({ component: DEFAULT_SCHEDULER_NAME }, involved("Pod", pod), "Warning", "FailedScheduling", result.message);
    if (conditionCurrent(pod, condition)) return;
    const cur = (pod.status?.conditions ?? []).find((c) => c.type === "PodScheduled");
    const transition = cur?.status === "False" && cur.lastTransitionTime ? cur.lastTransitionTime : new Date().toISOString();
    try {
      this.stats.conditionWrites++;
      await this.o.client.patchStatus(Resources.pods, pod.metadata?.name ?? "", "strategic", {
        status: { conditions: [{ ...condition, lastProbeTime: null, lastTransitionTime: transition }] },
      }, { namespace: pod.metadata?.namespace ?? "" });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  /** Assumes the pod on the node (the next decision sees it there) and binds it in the background. */
  private assume(pod: V1Pod, node: string): void {
    const uid = pod.metadata?.uid ?? "";
    const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    this.assumed.set(uid, { ...pod, spec: { ...(pod.spec ?? { containers: [] }), nodeName: node } });
    this.queue.remove(uid);
    const bind = (async () => {
      try {
        await this.o.client.create(bindingResource(pod.metadata?.name ?? ""), {
          apiVersion: "v1", kind: "Binding", metadata: { name: pod.metadata?.name ?? "", namespace: pod.metadata?.namespace ?? "", uid },
          target: { apiVersion: "v1", kind: "Node", name: node },
        } as { metadata: { name: string; namespace: string } }, { namespace: pod.metadata?.namespace ?? "" });
        this.stats.binds++;
        this.log("info", `pod ${key} bound to ${node}`);
        this.events.record({ component: DEFAULT_SCHEDULER_NAME }, involved("Pod", pod), "Normal", "Scheduled", `Successfully assigned ${key} to ${node}`);
      } catch (e) {
        // schedule_one.go handleBindingCycleError: forget the assumption (cache.ForgetPod) and retry every
        // unschedulable pod (AssignedPodDelete), as the ports the assumed pod held are free again in the cache.
        this.assumed.delete(uid);
        this.log(isNotFound(e) || isConflict(e) ? "info" : "warn", `binding ${key} to ${node} failed`, { error: String(e) });
        // handleSchedulingFailure: whatever the error (a 404 or 409 too), a pod the informer still shows unbound
        // goes back to the queue after its backoff; one that is gone or bound meanwhile is dropped.
        const live = this.pods.get(key);
        if (live && live.metadata?.uid === uid && needsScheduling(live)) {
          this.queue.add(uid, key, Date.now());
          this.queue.failed(uid, Date.now());
        }
        this.moveAll();
      }
    })();
    this.binds.add(bind);
    void bind.finally(() => this.binds.delete(bind));
  }
}
