// The sandbox's DaemonSet controller and pod GC, as pure decisions over the objects an informer holds: which nodes a
// DaemonSet's pod may run on, which pods to create or delete, and the DaemonSet's status. The kubelet stand-in
// (kubelet.ts) carries the decisions out over HTTP; the scheduler stand-in (scheduler.ts) binds the pods created here.
// The controller tests' FakeKubelet (test/support/kubelet.ts) uses the same filters, so both place pods the same way.
//
// What it reproduces, and from where (kubernetes/kubernetes, pkg/...):
// - controller/daemon: one pod per node that passes the template's nodeSelector, required node affinity and taints,
//   with the tolerations every daemon pod gets (daemon/util.AddOrUpdateDaemonPodTolerations), created UNBOUND with
//   its required node affinity replaced by `matchFields metadata.name In [node]`
//   (util.ReplaceDaemonSetPodNodeNameNodeAffinity; the scheduler binds it, as since 1.12's ScheduleDaemonSetPods);
//   pods on nodes that no longer match deleted, and unbound ones whose node is gone (getUnscheduledPodsWithoutNode);
//   a changed template rolled out (RollingUpdate without surge: at most maxUnavailable nodes without an available
//   pod at a time; OnDelete: only pods deleted by someone else are replaced), the replacement created once the old
//   pod is gone (podsShouldBeOnNode counts a terminating pod as existing); the status counts (updateDaemonSetStatus:
//   per node, its pods bound or not).
// - controller/podgc (gcOrphaned): pods bound to a node that no longer exists are deleted at once.
// - Failed daemon pods (a kubelet's admission rejected them) are deleted and replaced, after FAILED_POD_DELAY_MS;
//   Succeeded ones are deleted at once.
import { createHash } from "node:crypto";
import type { V1DaemonSet, V1Node, V1Pod, V1PodCondition, V1PodTemplateSpec, V1Toleration } from "@kubernetes/client-node";

/**
 * The pod label the DaemonSet controller stamps with the template revision it made the pod from. The real
 * controller puts a ControllerRevision's hash there; the sandbox (which keeps no ControllerRevisions) puts
 * templateHash(), which changes exactly when the template does.
 */
export const TEMPLATE_HASH_LABEL = "controller-revision-hash";

/** The tolerations the DaemonSet controller adds to every daemon pod (daemon/util.AddOrUpdateDaemonPodTolerations). */
export const DAEMON_POD_TOLERATIONS: readonly V1Toleration[] = [
  { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute" },
  { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute" },
  { key: "node.kubernetes.io/disk-pressure", operator: "Exists", effect: "NoSchedule" },
  { key: "node.kubernetes.io/memory-pressure", operator: "Exists", effect: "NoSchedule" },
  { key: "node.kubernetes.io/pid-pressure", operator: "Exists", effect: "NoSchedule" },
  { key: "node.kubernetes.io/unschedulable", operator: "Exists", effect: "NoSchedule" },
];

interface Requirement {
  key: string;
  operator: string;
  values?: string[];
}

/**
 * Why a node does not get a DaemonSet's pod (nodeSelector, required node affinity, an untolerated taint); undefined
 * when it does. `running`: whether a pod already there may stay (daemon/util NodeShouldRunDaemonPod's
 * shouldContinueRunning), where only NoExecute taints count: a node tainted NoSchedule (unreachable, say) gets no
 * new pod but keeps the one it has.
 */
export function nodeMismatch(template: V1PodTemplateSpec | undefined, node: V1Node, running = false): string | undefined {
  const spec = template?.spec;
  const labels = node.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(spec?.nodeSelector ?? {})) {
    if (labels[k] !== v) return `nodeSelector ${k}=${v}`;
  }
  if (!requiredAffinityMatches(spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms, node)) return "node affinity";
  const tolerations = [...(spec?.tolerations ?? []), ...DAEMON_POD_TOLERATIONS];
  for (const taint of node.spec?.taints ?? []) {
    if (taint.effect === "PreferNoSchedule") continue;
    if (running && taint.effect !== "NoExecute") continue;
    if (!tolerations.some((t) => toleratesTaint(t, taint))) return `taint ${taint.key}:${taint.effect}`;
  }
  return undefined;
}

/**
 * Required node affinity (component-helpers/scheduling/corev1/nodeaffinity): no terms = every node; otherwise the
 * terms are ORed, the requirements in a term ANDed, and an empty term matches nothing. matchFields knows
 * metadata.name only.
 */
export function requiredAffinityMatches(terms: { matchExpressions?: Requirement[]; matchFields?: Requirement[] }[] | undefined, node: V1Node): boolean {
  if (!terms || terms.length === 0) return true;
  const labels = node.metadata?.labels ?? {};
  return terms.some((term) => {
    const exprs = term.matchExpressions ?? [];
    const fields = term.matchFields ?? [];
    if (exprs.length === 0 && fields.length === 0) return false;
    return exprs.every((e) => requirementMatches(e, labels[e.key])) &&
      fields.every((f) => f.key === "metadata.name" && requirementMatches(f, node.metadata?.name));
  });
}

function requirementMatches(req: Requirement, value: string | undefined): boolean {
  const values = req.values ?? [];
  // Gt/Lt compare integers; a label that is not one never matches (labels.Requirement.Matches).
  const int = (v: string | undefined): number | undefined => (v !== undefined && /^-?\d+$/.test(v) ? Number(v) : undefined);
  switch (req.operator) {
    case "In": return value !== undefined && values.includes(value);
    case "NotIn": return value === undefined || !values.includes(value);
    case "Exists": return value !== undefined;
    case "DoesNotExist": return value === undefined;
    case "Gt": return int(value) !== undefined && (int(value) as number) > Number(values[0]);
    case "Lt": return int(value) !== undefined && (int(value) as number) < Number(values[0]);
    default: return false;
  }
}

/** core/v1 Toleration.ToleratesTaint: an empty key matches every key, an empty effect every effect; Equal compares values. */
export function toleratesTaint(t: V1Toleration, taint: { key: string; value?: string; effect: string }): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key && t.key !== taint.key) return false;
  switch (t.operator ?? "") {
    case "":
    case "Equal":
      return (t.value ?? "") === (taint.value ?? "");
    case "Exists":
      return true;
    default:
      return false;
  }
}

export function nodeReady(node: V1Node): boolean {
  return (node.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
}

function hostPorts(pod: V1Pod): { key: string; hostIP: string }[] {
  const out: { key: string; hostIP: string }[] = [];
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (p.hostPort) out.push({ key: `${p.protocol ?? "TCP"}/${p.hostPort}`, hostIP: p.hostIP ?? "0.0.0.0" });
    }
  }
  return out;
}

/**
 * The scheduler's NodePorts check between two pods: the first `PROTOCOL/port` both ask for with overlapping host
 * IPs (0.0.0.0, the default, overlaps every address), or undefined.
 */
export function portsClash(a: V1Pod, b: V1Pod): string | undefined {
  for (const pa of hostPorts(a)) {
    for (const pb of hostPorts(b)) {
      if (pa.key === pb.key && (pa.hostIP === pb.hostIP || pa.hostIP === "0.0.0.0" || pb.hostIP === "0.0.0.0")) return pa.key;
    }
  }
  return undefined;
}

function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(",")}]`;
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${stable(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** A hash of the DaemonSet's pod template (key order does not matter): changes exactly when the template does. */
export function templateHash(ds: V1DaemonSet): string {
  return createHash("sha256").update(stable(ds.spec?.template ?? {})).digest("hex").slice(0, 10);
}

/**
 * How long a Failed daemon pod stays before it is replaced. The DaemonSet controller backs off from 1 s doubling to
 * 15 min per node (failedPodsBackoff); a fixed few seconds is enough for a sandbox and never leaves it stuck.
 */
export const FAILED_POD_DELAY_MS = 5000;

/** The UID of the DaemonSet that owns a pod, if one does. */
export function ownerDaemonSetUid(pod: V1Pod): string | undefined {
  return (pod.metadata?.ownerReferences ?? []).find((o) => o.kind === "DaemonSet")?.uid;
}

/** The node a pod is bound to, else the one its DaemonSet meant it for (the matchFields term newDaemonPod writes). */
export function podTargetNode(pod: V1Pod): string | undefined {
  if (pod.spec?.nodeName) return pod.spec.nodeName;
  const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  return terms[0]?.matchFields?.[0]?.values?.[0];
}

function shortHash(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 5);
}

/**
 * The pod the DaemonSet controller creates for one node: the template, a name unique per DaemonSet and node,
 * the controller owner reference, the daemon tolerations, and node affinity pinned to that node.
 */
export function newDaemonPod(ds: V1DaemonSet, nodeName: string): V1Pod {
  const template = structuredClone(ds.spec?.template ?? {}) as V1PodTemplateSpec;
  const spec = template.spec ?? { containers: [] };
  spec.affinity = {
    ...(spec.affinity ?? {}),
    nodeAffinity: {
      ...(spec.affinity?.nodeAffinity ?? {}),
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchFields: [{ key: "metadata.name", operator: "In", values: [nodeName] }] }],
      },
    },
  };
  const tolerations = [...(spec.tolerations ?? [])];
  for (const t of DAEMON_POD_TOLERATIONS) {
    if (!tolerations.some((x) => x.key === t.key && x.effect === t.effect)) tolerations.push({ ...t });
  }
  spec.tolerations = tolerations;
  const name = ds.metadata?.name ?? "";
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `${name}-${shortHash(nodeName)}`,
      namespace: ds.metadata?.namespace ?? "default",
      labels: { ...(template.metadata?.labels ?? {}), [TEMPLATE_HASH_LABEL]: templateHash(ds) },
      ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
      ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name, uid: ds.metadata?.uid ?? "", controller: true, blockOwnerDeletion: true }],
    },
    spec,
  };
}

/**
 * PodScheduled=False as kube-scheduler 1.32 writes it for a DaemonSet pod whose one node has its host port taken,
 * in a cluster of `nodeCount` nodes: the NodePorts reason for that node, NodeAffinity's PreFilter for the others,
 * then the preemption verdict (no victims there, not helpful elsewhere). The scheduler stand-in (scheduler.ts
 * schedulePod) composes the same text from the cluster; this is that text for the common case, for stand-ins that
 * place daemon pods without a scheduler. Both lists are in Go's sort.Strings order, which for these reasons is
 * always the order below.
 */
export function unschedulableCondition(nodeCount: number): V1PodCondition {
  return {
    type: "PodScheduled",
    status: "False",
    reason: "Unschedulable",
    message: `0/${nodeCount} nodes are available: 1 node(s) didn't have free ports for the requested pod ports` +
      (nodeCount > 1 ? `, ${nodeCount - 1} node(s) didn't satisfy plugin(s) [NodeAffinity]` : "") +
      `. preemption: 0/${nodeCount} nodes are available: 1 No preemption victims found for incoming pod` +
      (nodeCount > 1 ? `, ${nodeCount - 1} Preemption is not helpful for scheduling` : "") + ".",
  };
}

function isReady(pod: V1Pod): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
}

function terminal(pod: V1Pod): boolean {
  return pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";
}

/** Oldest first (creationTimestamp, then resourceVersion, then name). */
function byAge(a: V1Pod, b: V1Pod): number {
  return String(a.metadata?.creationTimestamp ?? "").localeCompare(String(b.metadata?.creationTimestamp ?? "")) ||
    Number(a.metadata?.resourceVersion ?? 0) - Number(b.metadata?.resourceVersion ?? 0) ||
    String(a.metadata?.name).localeCompare(String(b.metadata?.name));
}

/** daemon.podByCreationTimestampAndPhase: bound pods first, then the oldest; the first of a node's pods is the one kept. */
function boundThenOldest(a: V1Pod, b: V1Pod): number {
  return Number(!a.spec?.nodeName) - Number(!b.spec?.nodeName) || byAge(a, b);
}

export interface DaemonSetStatusCounts {
  currentNumberScheduled: number;
  desiredNumberScheduled: number;
  numberMisscheduled: number;
  numberReady: number;
  numberAvailable: number;
  numberUnavailable?: number;
  updatedNumberScheduled: number;
  observedGeneration?: number;
}

/** One write the DaemonSet controller or the pod GC decided on (binding is the scheduler's, scheduler.ts). */
export type PlacementAction =
  /** Create this pod, unbound (the scheduler binds it). */
  | { kind: "create"; pod: V1Pod }
  /** Delete (graceful unless `force`): why is for logs and tests. */
  | { kind: "delete"; pod: V1Pod; why: string; force: boolean }
  /** Replace the DaemonSet's status counts (only listed when they differ from the live ones). */
  | { kind: "daemonSetStatus"; daemonSet: V1DaemonSet; status: DaemonSetStatusCounts };

/**
 * Everything the DaemonSet controller and the pod GC would do now, given every DaemonSet, Node and Pod in the
 * cluster. Pure; apply the actions in order. Pods not owned by a DaemonSet are never created or deleted here
 * (except by the pod GC).
 */
export function planPlacement(input: {
  daemonSets: readonly V1DaemonSet[];
  nodes: readonly V1Node[];
  pods: readonly V1Pod[];
  /** Epoch ms; default the current time. */
  now?: number;
}): PlacementAction[] {
  const actions: PlacementAction[] = [];
  const nodes = [...input.nodes].sort((a, b) => String(a.metadata?.name).localeCompare(String(b.metadata?.name)));
  const nodeByName = new Map(nodes.map((n) => [n.metadata?.name ?? "", n]));
  const dsByUid = new Map<string, V1DaemonSet>();
  for (const ds of input.daemonSets) if (!ds.metadata?.deletionTimestamp) dsByUid.set(ds.metadata?.uid ?? "", ds);

  // Pod GC: bound to a node that is gone. Force-deleted, as podgc does (the node's kubelet cannot confirm).
  const gone = new Set<V1Pod>();
  for (const pod of input.pods) {
    const nodeName = pod.spec?.nodeName;
    if (nodeName && !nodeByName.has(nodeName)) {
      gone.add(pod);
      actions.push({ kind: "delete", pod, why: `node ${nodeName} no longer exists`, force: true });
    }
  }

  // Daemon pods that must go: owner gone, node gone or no longer matching, or a second pod for one node (the bound,
  // then oldest, one stays); Succeeded ones at once, Failed ones (rejected by the kubelet) after FAILED_POD_DELAY_MS,
  // so that a kubelet that keeps rejecting them (SysctlForbidden) sees a replacement every few seconds rather than
  // in a hot loop. Unbound pods are deleted at once (force), as the API server does for a pod no kubelet runs.
  const now = input.now ?? Date.now();
  const live: V1Pod[] = [];
  const seen = new Set<string>();
  const terminating = new Set<string>();
  for (const pod of [...input.pods].sort(boundThenOldest)) {
    if (gone.has(pod)) continue;
    const uid = ownerDaemonSetUid(pod);
    if (uid === undefined) continue;
    const nodeKey = `${uid}/${podTargetNode(pod)}`;
    if (terminal(pod)) {
      terminating.add(nodeKey);
      if (pod.metadata?.deletionTimestamp) continue;
      const since = Date.parse(String(pod.status?.startTime ?? pod.metadata?.creationTimestamp ?? ""));
      if (pod.status?.phase === "Succeeded") {
        actions.push({ kind: "delete", pod, why: "it succeeded", force: true });
      } else if (!(now - since < FAILED_POD_DELAY_MS)) {
        actions.push({ kind: "delete", pod, why: `it failed (${pod.status?.reason ?? "no reason"})`, force: true });
      }
      continue;
    }
    const deleting = Boolean(pod.metadata?.deletionTimestamp);
    const ds = dsByUid.get(uid);
    const nodeName = podTargetNode(pod);
    const node = nodeName === undefined ? undefined : nodeByName.get(nodeName);
    let why: string | undefined;
    if (!ds) why = "its DaemonSet is gone";
    else if (!node) why = `its node ${nodeName ?? "(none)"} does not exist`;
    else if (nodeMismatch(ds.spec?.template, node, true) !== undefined) why = `node ${nodeName} no longer matches: ${nodeMismatch(ds.spec?.template, node, true)}`;
    else if (!deleting && seen.has(nodeKey)) why = `a second pod for node ${nodeName}`;
    if (deleting) {
      // The replacement waits until this one is gone (podsShouldBeOnNode: a terminating pod still "exists").
      terminating.add(nodeKey);
      continue;
    }
    if (why !== undefined) {
      actions.push({ kind: "delete", pod, why, force: !pod.spec?.nodeName });
      terminating.add(nodeKey);
    } else {
      live.push(pod);
      seen.add(nodeKey);
    }
  }

  // Rolling update: pods of an older template go, but no more at once than maxUnavailable allows.
  for (const ds of dsByUid.values()) {
    for (const pod of rollingUpdateDeletions(ds, nodes, live.filter((p) => ownerDaemonSetUid(p) === ds.metadata?.uid))) {
      actions.push({ kind: "delete", pod, why: "made from an older template", force: !pod.spec?.nodeName });
      terminating.add(`${ds.metadata?.uid}/${podTargetNode(pod)}`);
      live.splice(live.indexOf(pod), 1);
    }
  }

  // Missing pods, created unbound: the scheduler places them (or reports why it cannot).
  for (const ds of dsByUid.values()) {
    for (const node of nodes) {
      const nodeName = node.metadata?.name ?? "";
      const key = `${ds.metadata?.uid}/${nodeName}`;
      if (seen.has(key) || terminating.has(key)) continue;
      if (nodeMismatch(ds.spec?.template, node) !== undefined) continue;
      actions.push({ kind: "create", pod: newDaemonPod(ds, nodeName) });
    }
  }

  // Status from the pods as the informer holds them (deletions just decided on have not happened yet), as
  // updateDaemonSetStatus reads its lister.
  for (const ds of dsByUid.values()) {
    const status = daemonSetStatus(ds, nodes, input.pods.filter((p) => ownerDaemonSetUid(p) === ds.metadata?.uid));
    const cur = (ds.status ?? {}) as unknown as Record<string, unknown>;
    if (Object.entries(status).some(([k, v]) => cur[k] !== v) || (status.numberUnavailable === undefined && cur.numberUnavailable !== undefined)) {
      actions.push({ kind: "daemonSetStatus", daemonSet: ds, status });
    }
  }
  return actions;
}

/**
 * The outdated pods (made from an older template) that a RollingUpdate deletes now (daemon/update.go, without
 * surge): any that is not Ready at once (it serves nothing anyway), Ready ones while fewer than maxUnavailable of
 * the desired nodes lack an available pod (default 1; a percentage of the desired nodes, rounded up). OnDelete:
 * none. `pods` are the DaemonSet's live (bound or not, not terminating) pods.
 */
export function rollingUpdateDeletions(ds: V1DaemonSet, nodes: readonly V1Node[], pods: readonly V1Pod[]): V1Pod[] {
  if (ds.spec?.updateStrategy?.type === "OnDelete") return [];
  const hash = templateHash(ds);
  const outdated = pods.filter((p) => p.metadata?.labels?.[TEMPLATE_HASH_LABEL] !== hash)
    .sort((a, b) => String(podTargetNode(a)).localeCompare(String(podTargetNode(b))));
  if (outdated.length === 0) return [];
  const desired = nodes.filter((n) => nodeMismatch(ds.spec?.template, n) === undefined);
  const max = Math.max(1, scaled(ds.spec?.updateStrategy?.rollingUpdate?.maxUnavailable ?? 1, desired.length));
  let unavailable = desired.filter((n) => !pods.some((p) => podTargetNode(p) === n.metadata?.name && isReady(p))).length;
  const out = outdated.filter((p) => !isReady(p));
  for (const pod of outdated.filter(isReady)) {
    if (unavailable >= max) break;
    out.push(pod);
    unavailable++;
  }
  return out;
}

/** An IntOrString of Kubernetes: a number, or a percentage of `total` rounded up. */
function scaled(value: number | string, total: number): number {
  if (typeof value === "number") return value;
  const percent = /^(\d+)%$/.exec(value);
  return percent ? Math.ceil((Number(percent[1]) * total) / 100) : Number(value) || 0;
}

/**
 * The counts the DaemonSet controller keeps in status (daemon_controller.go updateDaemonSetStatus, minReadySeconds
 * taken as 0: available = ready). Per node: desired when the node should run the pod; scheduled when it has one of
 * the DaemonSet's pods, bound or not (getNodesToDaemonPods groups by the target node; only finished pods being
 * deleted are left out); misscheduled when it has one but should not; ready and updated judged on its first pod
 * (bound, then oldest). `pods` are the DaemonSet's pods.
 */
export function daemonSetStatus(ds: V1DaemonSet, nodes: readonly V1Node[], pods: readonly V1Pod[]): DaemonSetStatusCounts {
  const byNode = new Map<string, V1Pod[]>();
  for (const pod of pods) {
    if (terminal(pod) && pod.metadata?.deletionTimestamp) continue;
    const nodeName = podTargetNode(pod);
    if (nodeName === undefined) continue;
    byNode.set(nodeName, [...(byNode.get(nodeName) ?? []), pod]);
  }
  const hash = templateHash(ds);
  let desired = 0, scheduled = 0, misscheduled = 0, ready = 0, updated = 0;
  for (const node of nodes) {
    const own = (byNode.get(node.metadata?.name ?? "") ?? []).sort(boundThenOldest);
    if (nodeMismatch(ds.spec?.template, node) !== undefined) {
      if (own.length > 0) misscheduled++;
      continue;
    }
    desired++;
    const first = own[0];
    if (!first) continue;
    scheduled++;
    if (isReady(first)) ready++;
    if (first.metadata?.labels?.[TEMPLATE_HASH_LABEL] === hash) updated++;
  }
  return {
    currentNumberScheduled: scheduled,
    desiredNumberScheduled: desired,
    numberMisscheduled: misscheduled,
    numberReady: ready,
    numberAvailable: ready,
    updatedNumberScheduled: updated,
    ...(ds.metadata?.generation !== undefined ? { observedGeneration: ds.metadata.generation } : {}),
    ...(desired - ready > 0 ? { numberUnavailable: desired - ready } : {}),
  };
}
