// The sandbox's ReplicaSet controller, as pure decisions over the objects an informer holds (the I/O is in
// workloads.ts). Mirrors kubernetes/kubernetes pkg/controller/replicaset/replica_set.go:
// - syncReplicaSet / manageReplicas: the active pods a ReplicaSet controls (its controller ownerReference; active =
//   not Succeeded/Failed and not being deleted, controller.FilterActivePods) compared with spec.replicas; missing
//   pods created from the template (unbound, named `<rs>-<5 random>` by generateName; the scheduler stand-in binds
//   them), surplus pods deleted, at most BURST_REPLICAS per sync, as the real controller's burstReplicas;
// - getPodsToDelete: the surplus chosen by controller.ActivePods' ranking (unassigned before assigned, Pending before
//   Unknown before Running, not ready before ready, the ready one that has been ready for less time, more restarts,
//   newer);
// - calculateStatus: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (ready for minReadySeconds),
//   observedGeneration.
// Not there: adoption of orphaned pods that match the selector, the ReplicaFailure condition, expectations (the
// runner reads its own writes instead: workloads.ts).
import type { V1OwnerReference, V1Pod, V1ReplicaSet, V1ReplicaSetStatus } from "@kubernetes/client-node";

/** pkg/controller/replicaset: BurstReplicas, the most pods one sync creates or deletes. */
export const BURST_REPLICAS = 500;

export function controllerRef(obj: { metadata?: { ownerReferences?: V1OwnerReference[] } }): V1OwnerReference | undefined {
  return obj.metadata?.ownerReferences?.find((o) => o.controller === true);
}

/** Pods whose controller ownerReference names `owner` (by uid). */
export function ownedBy<T extends { metadata?: { ownerReferences?: V1OwnerReference[] } }>(owner: { metadata?: { uid?: string } }, objects: T[]): T[] {
  const uid = owner.metadata?.uid;
  return objects.filter((o) => uid !== undefined && controllerRef(o)?.uid === uid);
}

/** controller.IsPodActive: not finished, not being deleted. */
export function isPodActive(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== "Succeeded" && phase !== "Failed" && !pod.metadata?.deletionTimestamp;
}

export function isPodReady(pod: V1Pod): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
}

function readySince(pod: V1Pod): number | undefined {
  const c = (pod.status?.conditions ?? []).find((x) => x.type === "Ready" && x.status === "True");
  return c?.lastTransitionTime ? Date.parse(String(c.lastTransitionTime)) : undefined;
}

/** podutil.IsPodAvailable: Ready for at least minReadySeconds. */
export function isPodAvailable(pod: V1Pod, minReadySeconds: number, nowMs: number): boolean {
  if (!isPodReady(pod)) return false;
  if (minReadySeconds <= 0) return true;
  const since = readySince(pod);
  return since !== undefined && since + minReadySeconds * 1000 <= nowMs;
}

const PHASE_RANK: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

/**
 * controller.ActivePods' Less: which of two pods goes first when scaling down (the first ones are deleted). Negative
 * when `a` goes before `b`.
 */
export function deletionOrder(a: V1Pod, b: V1Pod): number {
  const assigned = (p: V1Pod) => (p.spec?.nodeName ? 1 : 0);
  if (assigned(a) !== assigned(b)) return assigned(a) - assigned(b);
  const phase = (p: V1Pod) => PHASE_RANK[p.status?.phase ?? "Pending"] ?? 0;
  if (phase(a) !== phase(b)) return phase(a) - phase(b);
  const ready = (p: V1Pod) => (isPodReady(p) ? 1 : 0);
  if (ready(a) !== ready(b)) return ready(a) - ready(b);
  if (ready(a) === 1) {
    // The one ready for less time goes first.
    const sa = readySince(a) ?? 0;
    const sb = readySince(b) ?? 0;
    if (sa !== sb) return sb - sa;
  }
  const restarts = (p: V1Pod) => Math.max(0, ...(p.status?.containerStatuses ?? []).map((c) => c.restartCount));
  if (restarts(a) !== restarts(b)) return restarts(b) - restarts(a);
  const created = (p: V1Pod) => Date.parse(String(p.metadata?.creationTimestamp ?? 0)) || 0;
  return created(b) - created(a);
}

export interface ReplicaSetPlan {
  /** How many pods to create from the template. */
  create: number;
  /** Pods to delete, in order. */
  delete: V1Pod[];
  /** The status to write, or undefined when it would not change. */
  status: V1ReplicaSetStatus | undefined;
}

/** One sync of one ReplicaSet over the pods it controls (any pods may be passed: only its own are counted). */
export function planReplicaSet(rs: V1ReplicaSet, allPods: V1Pod[], nowMs: number): ReplicaSetPlan {
  const pods = ownedBy(rs, allPods);
  const active = pods.filter(isPodActive);
  const want = rs.spec?.replicas ?? 1;
  const deleting = !!rs.metadata?.deletionTimestamp;
  const diff = active.length - want;
  const plan: ReplicaSetPlan = { create: 0, delete: [], status: undefined };
  if (!deleting) {
    if (diff < 0) plan.create = Math.min(-diff, BURST_REPLICAS);
    else if (diff > 0) plan.delete = [...active].sort(deletionOrder).slice(0, Math.min(diff, BURST_REPLICAS));
  }
  const minReady = rs.spec?.minReadySeconds ?? 0;
  const templateLabels = rs.spec?.template?.metadata?.labels ?? {};
  const status: V1ReplicaSetStatus = {
    replicas: active.length,
    fullyLabeledReplicas: active.filter((p) => Object.entries(templateLabels).every(([k, v]) => p.metadata?.labels?.[k] === v)).length,
    readyReplicas: active.filter(isPodReady).length,
    availableReplicas: active.filter((p) => isPodAvailable(p, minReady, nowMs)).length,
    observedGeneration: rs.metadata?.generation ?? 0,
  };
  const current = rs.status ?? { replicas: 0 };
  const same = (Object.keys(status) as (keyof V1ReplicaSetStatus)[]).every((k) => (current[k] ?? 0) === (status[k] ?? 0));
  if (!same) plan.status = status;
  return plan;
}

/** A pod of `rs` as the controller creates it (controller.GetPodFromTemplate): unbound, owned, named by the server. */
export function podFromTemplate(rs: V1ReplicaSet): V1Pod {
  const template = rs.spec?.template ?? {};
  const meta = template.metadata ?? {};
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      generateName: `${rs.metadata?.name ?? ""}-`,
      namespace: rs.metadata?.namespace ?? "",
      ...(meta.labels ? { labels: { ...meta.labels } } : {}),
      ...(meta.annotations ? { annotations: { ...meta.annotations } } : {}),
      ...(meta.finalizers ? { finalizers: [...meta.finalizers] } : {}),
      ownerReferences: [{
        apiVersion: "apps/v1", kind: "ReplicaSet", name: rs.metadata?.name ?? "", uid: rs.metadata?.uid ?? "",
        controller: true, blockOwnerDeletion: true,
      }],
    },
    spec: structuredClone(template.spec ?? { containers: [] }),
  };
}
