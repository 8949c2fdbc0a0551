// The sandbox's Deployment controller, as pure decisions over a Deployment and the ReplicaSets it controls (the I/O
// is in workloads.ts). Mirrors kubernetes/kubernetes pkg/controller/deployment/:
// - sync.go getNewReplicaSet: the new ReplicaSet is the oldest one whose template equals the Deployment's, ignoring
//   the pod-template-hash label (util.EqualIgnoreHash); none: one is created, named `<deployment>-<hash>`, with the
//   hash in its selector, labels and template labels, revision = the old ones' highest + 1
//   (annotation deployment.kubernetes.io/revision, copied onto the Deployment), desired-replicas and max-replicas
//   annotations, and the Deployment's other annotations (kubernetes.io/change-cause for `rollout history`); a
//   template that returns to an old ReplicaSet's (`rollout undo`) makes that one new again with the next revision;
// - sync.go scale: a scaling event (desired-replicas differs from spec.replicas) with one active ReplicaSet sets it
//   to spec.replicas at once (several active ones: the rolling update below moves them, the real controller splits
//   proportionally);
// - rolling.go: reconcileNewReplicaSet (util.NewRSNewReplicas: up to replicas + maxSurge pods in all) then
//   reconcileOldReplicaSets (cleanupUnhealthyReplicas, then scaleDownOldReplicaSetsForRollingUpdate: never below
//   replicas - maxUnavailable available pods), one of them per sync as the real controller returns after either;
//   resolveFenceposts rounds maxSurge up and maxUnavailable down, and makes maxUnavailable 1 when both are 0;
// - recreate.go: old ReplicaSets to 0, then (once their pods are gone) the new one to spec.replicas;
// - sync.go cleanupDeployment: old ReplicaSets without pods beyond revisionHistoryLimit deleted, oldest first;
// - sync.go calculateStatus and progress.go: replicas, updated, ready, available, unavailable, observedGeneration,
//   and the Available and Progressing conditions with the reasons and messages `kubectl rollout status`, `kubectl
//   wait --for=condition=Available` and `kubectl describe` show.
// - progress.go: a rollout that makes no progress (no pod updated, ready or available, no old one gone) for
//   progressDeadlineSeconds gets Progressing=False, reason ProgressDeadlineExceeded, which `kubectl rollout status`
//   fails on; the runner's periodic pass notices the time passing.
// Not there: proportional scaling across several active ReplicaSets, collisionCount (the hash is this file's, not kube's, so a collision
// cannot happen between two different templates of one Deployment in practice).
import type { V1Deployment, V1DeploymentCondition, V1DeploymentStatus, V1PodTemplateSpec, V1ReplicaSet } from "@kubernetes/client-node";
import { ownedBy } from "./replicasets.js";

export const REVISION_ANNOTATION = "deployment.kubernetes.io/revision";
export const DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas";
export const MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas";
export const HASH_LABEL = "pod-template-hash";

/** Annotations of the Deployment not copied to its ReplicaSets (util.skipCopyAnnotation). */
const NOT_COPIED = new Set([
  "kubectl.kubernetes.io/last-applied-configuration", REVISION_ANNOTATION, "deployment.kubernetes.io/revision-history",
  DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, "deprecated.deployment.rollback.to",
]);

export type DeploymentAction =
  | { kind: "createReplicaSet"; rs: V1ReplicaSet }
  | { kind: "scaleReplicaSet"; rs: V1ReplicaSet; replicas: number; annotations: Record<string, string> }
  | { kind: "annotateReplicaSet"; rs: V1ReplicaSet; annotations: Record<string, string> }
  | { kind: "deleteReplicaSet"; rs: V1ReplicaSet }
  | { kind: "annotateDeployment"; annotations: Record<string, string> }
  | { kind: "status"; status: V1DeploymentStatus };

/** intstr.GetScaledValueFromIntOrPercent. */
export function scaledValue(value: number | string | undefined, total: number, roundUp: boolean): number {
  if (value === undefined) return 0;
  if (typeof value === "number") return value;
  const m = /^(\d+)%$/.exec(value);
  if (!m) return Number.parseInt(value, 10) || 0;
  const exact = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

/** util.ResolveFenceposts: [maxSurge, maxUnavailable] as pod counts. */
export function fenceposts(d: V1Deployment): [number, number] {
  const replicas = d.spec?.replicas ?? 1;
  const rolling = d.spec?.strategy?.rollingUpdate;
  const surge = scaledValue(rolling?.maxSurge as number | string | undefined ?? "25%", replicas, true);
  let unavailable = scaledValue(rolling?.maxUnavailable as number | string | undefined ?? "25%", replicas, false);
  if (surge === 0 && unavailable === 0) unavailable = 1;
  return [surge, unavailable];
}

/** A JSON text with object keys sorted, so equal templates give equal text whatever the key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function withoutHash(template: V1PodTemplateSpec | undefined): V1PodTemplateSpec {
  const t = structuredClone(template ?? {});
  if (t.metadata?.labels) {
    delete t.metadata.labels[HASH_LABEL];
    if (Object.keys(t.metadata.labels).length === 0) delete t.metadata.labels;
  }
  return t;
}

/** util.EqualIgnoreHash. */
export function templatesEqual(a: V1PodTemplateSpec | undefined, b: V1PodTemplateSpec | undefined): boolean {
  return canonical(withoutHash(a)) === canonical(withoutHash(b));
}

/**
 * controller.ComputeHash's shape: FNV-32a of the template, the 32-bit sum's decimal digits mapped through
 * rand.SafeEncodeString's alphabet (so names look like kube's, `web-5d5f8b6c4`); the hashed text is this file's
 * canonical JSON rather than kube's spew dump, so the values differ from a real cluster's.
 */
export function podTemplateHash(template: V1PodTemplateSpec | undefined): string {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(canonical(withoutHash(template)), "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  return [...String(hash >>> 0)].map((c) => alphabet[c.charCodeAt(0) % alphabet.length]).join("");
}

export function revisionOf(obj: { metadata?: { annotations?: Record<string, string> } }): number {
  return Number.parseInt(obj.metadata?.annotations?.[REVISION_ANNOTATION] ?? "0", 10) || 0;
}

const created = (rs: V1ReplicaSet): number => Date.parse(String(rs.metadata?.creationTimestamp ?? 0)) || 0;
const byAge = (a: V1ReplicaSet, b: V1ReplicaSet): number => created(a) - created(b) || (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? "");
const replicasOf = (rs: V1ReplicaSet): number => rs.spec?.replicas ?? 0;
const sum = (list: V1ReplicaSet[], f: (rs: V1ReplicaSet) => number): number => list.reduce((n, rs) => n + f(rs), 0);

/** The new ReplicaSet of `d` among `owned` (sorted oldest first, the first match wins, as FindNewReplicaSet). */
export function findNewReplicaSet(d: V1Deployment, owned: V1ReplicaSet[]): V1ReplicaSet | undefined {
  return [...owned].sort(byAge).find((rs) => templatesEqual(rs.spec?.template, d.spec?.template));
}

function copiedAnnotations(d: V1Deployment): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(d.metadata?.annotations ?? {})) if (!NOT_COPIED.has(k)) out[k] = v;
  return out;
}

function replicaAnnotations(d: V1Deployment): Record<string, string> {
  const replicas = d.spec?.replicas ?? 1;
  const [surge] = fenceposts(d);
  const rolling = d.spec?.strategy?.type !== "Recreate";
  return { [DESIRED_REPLICAS_ANNOTATION]: String(replicas), [MAX_REPLICAS_ANNOTATION]: String(replicas + (rolling ? surge : 0)) };
}

/** util.NewRSNewReplicas for RollingUpdate: how far the new ReplicaSet may grow now. */
function newReplicasRolling(d: V1Deployment, all: V1ReplicaSet[], current: number): number {
  const replicas = d.spec?.replicas ?? 1;
  const [surge] = fenceposts(d);
  const total = sum(all, replicasOf);
  const maxTotal = replicas + surge;
  if (total >= maxTotal) return current;
  return current + Math.max(0, Math.min(maxTotal - total, replicas - current));
}

/** The ReplicaSet a Deployment creates for its current template (sync.go getNewReplicaSet). */
export function newReplicaSetFor(d: V1Deployment, revision: number, replicas: number): V1ReplicaSet {
  const hash = podTemplateHash(d.spec?.template);
  const template = structuredClone(d.spec?.template ?? {});
  template.metadata = { ...(template.metadata ?? {}), labels: { ...(template.metadata?.labels ?? {}), [HASH_LABEL]: hash } };
  const selector = structuredClone(d.spec?.selector ?? {});
  selector.matchLabels = { ...(selector.matchLabels ?? {}), [HASH_LABEL]: hash };
  return {
    apiVersion: "apps/v1",
    kind: "ReplicaSet",
    metadata: {
      name: `${d.metadata?.name ?? ""}-${hash}`,
      namespace: d.metadata?.namespace ?? "",
      labels: { ...(template.metadata.labels ?? {}) },
      annotations: { ...copiedAnnotations(d), ...replicaAnnotations(d), [REVISION_ANNOTATION]: String(revision) },
      ownerReferences: [{
        apiVersion: "apps/v1", kind: "Deployment", name: d.metadata?.name ?? "", uid: d.metadata?.uid ?? "",
        controller: true, blockOwnerDeletion: true,
      }],
    },
    spec: {
      replicas,
      ...(d.spec?.minReadySeconds ? { minReadySeconds: d.spec.minReadySeconds } : {}),
      selector,
      template,
    },
  };
}

/** One sync of one Deployment over every ReplicaSet (only those it controls are looked at). */
export function planDeployment(d: V1Deployment, allReplicaSets: V1ReplicaSet[], now: string): DeploymentAction[] {
  if (d.metadata?.deletionTimestamp) return [];
  const owned = ownedBy(d, allReplicaSets).filter((rs) => !rs.metadata?.deletionTimestamp);
  const replicas = d.spec?.replicas ?? 1;
  const recreate = d.spec?.strategy?.type === "Recreate";
  const found = findNewReplicaSet(d, owned);
  const olds = owned.filter((rs) => rs !== found);
  const maxOldRevision = Math.max(0, ...olds.map(revisionOf));
  const actions: DeploymentAction[] = [];

  if (!found) {
    if (d.spec?.paused) return [statusAction(d, owned, undefined, now)].filter(isAction);
    const oldActive = olds.some((rs) => replicasOf(rs) > 0 || (rs.status?.replicas ?? 0) > 0);
    const start = recreate ? (oldActive ? 0 : replicas) : newReplicasRolling(d, olds, 0);
    const rs = newReplicaSetFor(d, maxOldRevision + 1, start);
    actions.push({ kind: "createReplicaSet", rs });
    actions.push({ kind: "annotateDeployment", annotations: { [REVISION_ANNOTATION]: String(maxOldRevision + 1) } });
    const status = statusAction(d, owned, undefined, now, `Created new replica set "${rs.metadata?.name ?? ""}"`);
    if (status) actions.push(status);
    return actions;
  }
  const newRS = found;

  // Back to an old template (rollout undo): that ReplicaSet is new again, with the next revision.
  const revision = revisionOf(newRS) <= maxOldRevision ? maxOldRevision + 1 : revisionOf(newRS);
  const rsAnnotations: Record<string, string> = {};
  if (revision !== revisionOf(newRS)) rsAnnotations[REVISION_ANNOTATION] = String(revision);
  for (const [k, v] of Object.entries(copiedAnnotations(d))) if (newRS.metadata?.annotations?.[k] !== v) rsAnnotations[k] = v;
  if (Object.keys(rsAnnotations).length > 0) actions.push({ kind: "annotateReplicaSet", rs: newRS, annotations: rsAnnotations });
  if (d.metadata?.annotations?.[REVISION_ANNOTATION] !== String(revision)) {
    actions.push({ kind: "annotateDeployment", annotations: { [REVISION_ANNOTATION]: String(revision) } });
  }

  const scale = (rs: V1ReplicaSet, to: number): DeploymentAction =>
    ({ kind: "scaleReplicaSet", rs, replicas: to, annotations: rs === newRS || to > 0 ? replicaAnnotations(d) : {} });
  const activeOlds = olds.filter((rs) => replicasOf(rs) > 0);

  if (d.spec?.paused) {
    // A paused Deployment only scales (sync.go sync): the active ReplicaSet follows spec.replicas.
    if (activeOlds.length === 0 && replicasOf(newRS) !== replicas) actions.push(scale(newRS, replicas));
  } else if (recreate) {
    if (activeOlds.length > 0) {
      for (const rs of activeOlds) actions.push(scale(rs, 0));
    } else if (olds.every((rs) => (rs.status?.replicas ?? 0) === 0) && replicasOf(newRS) !== replicas) {
      actions.push(scale(newRS, replicas));
    }
  } else {
    actions.push(...rollingStep(d, newRS, olds, scale));
  }

  if (!actions.some((a) => a.kind === "scaleReplicaSet")) {
    // Nothing moved: the rollout is done or waits for pods. Old ReplicaSets past the history limit go.
    const limit = d.spec?.revisionHistoryLimit ?? 10;
    const idle = olds.filter((rs) => replicasOf(rs) === 0 && (rs.status?.replicas ?? 0) === 0)
      .sort((a, b) => revisionOf(a) - revisionOf(b) || byAge(a, b));
    for (const rs of idle.slice(0, Math.max(0, idle.length - limit))) actions.push({ kind: "deleteReplicaSet", rs });
  }
  const status = statusAction(d, owned, newRS, now);
  if (status) actions.push(status);
  return actions;
}

/** rolling.go rolloutRolling: scale the new ReplicaSet up, or else the old ones down, within the fenceposts. */
function rollingStep(d: V1Deployment, newRS: V1ReplicaSet, olds: V1ReplicaSet[],
  scale: (rs: V1ReplicaSet, to: number) => DeploymentAction): DeploymentAction[] {
  const replicas = d.spec?.replicas ?? 1;
  const all = [newRS, ...olds];
  const activeOlds = olds.filter((rs) => replicasOf(rs) > 0);
  // sync.go scale: a scaling event with one active ReplicaSet moves it straight to spec.replicas.
  if (activeOlds.length === 0 && replicasOf(newRS) !== replicas &&
      newRS.metadata?.annotations?.[DESIRED_REPLICAS_ANNOTATION] !== String(replicas)) {
    return [scale(newRS, replicas)];
  }
  // reconcileNewReplicaSet
  if (replicasOf(newRS) > replicas) return [scale(newRS, replicas)];
  if (replicasOf(newRS) < replicas) {
    const next = newReplicasRolling(d, all, replicasOf(newRS));
    if (next !== replicasOf(newRS)) return [scale(newRS, next)];
  }
  // reconcileOldReplicaSets
  const oldPods = sum(olds, replicasOf);
  if (oldPods === 0) return [];
  const [, maxUnavailable] = fenceposts(d);
  const minAvailable = replicas - maxUnavailable;
  const newUnavailable = replicasOf(newRS) - (newRS.status?.availableReplicas ?? 0);
  let budget = sum(all, replicasOf) - minAvailable - newUnavailable;
  if (budget <= 0) return [];
  const out: DeploymentAction[] = [];
  const sorted = [...activeOlds].sort(byAge);
  const target = new Map(sorted.map((rs) => [rs, replicasOf(rs)]));
  // cleanupUnhealthyReplicas: pods of old ReplicaSets that are not available go first.
  for (const rs of sorted) {
    if (budget <= 0) break;
    const unhealthy = replicasOf(rs) - (rs.status?.availableReplicas ?? 0);
    const cut = Math.min(budget, Math.max(0, unhealthy));
    if (cut > 0) {
      target.set(rs, replicasOf(rs) - cut);
      budget -= cut;
    }
  }
  // scaleDownOldReplicaSetsForRollingUpdate: available pods above minAvailable.
  const cleaned = sum(all, (rs) => rs.status?.availableReplicas ?? 0);
  let room = cleaned - minAvailable;
  for (const rs of sorted) {
    if (room <= 0) break;
    const now = target.get(rs) ?? 0;
    const cut = Math.min(now, room);
    if (cut > 0) {
      target.set(rs, now - cut);
      room -= cut;
    }
  }
  for (const rs of sorted) if (target.get(rs) !== replicasOf(rs)) out.push(scale(rs, target.get(rs) ?? 0));
  return out;
}

function isAction(a: DeploymentAction | undefined): a is DeploymentAction {
  return a !== undefined;
}

function condition(type: string, status: "True" | "False", reason: string, message: string, previous: V1DeploymentCondition[], now: string): V1DeploymentCondition {
  const old = previous.find((c) => c.type === type);
  const same = old?.status === status && old.reason === reason && old.message === message;
  return {
    type, status,
    lastUpdateTime: (same ? old.lastUpdateTime : now) as unknown as Date,
    lastTransitionTime: (old?.status === status ? old.lastTransitionTime : now) as unknown as Date,
    reason, message,
  };
}

/**
 * sync.go calculateStatus plus progress.go's conditions; undefined when nothing would change. `createdMessage`:
 * the ReplicaSet this sync creates (Progressing: NewReplicaSetCreated).
 */
export function deploymentStatus(d: V1Deployment, owned: V1ReplicaSet[], newRS: V1ReplicaSet | undefined, now: string,
  createdMessage?: string): V1DeploymentStatus {
  const replicas = d.spec?.replicas ?? 1;
  const [, maxUnavailable] = fenceposts(d);
  const count = (f: (rs: V1ReplicaSet) => number | undefined): number => owned.reduce((n, rs) => n + (f(rs) ?? 0), 0);
  const total = count((rs) => rs.status?.replicas);
  const available = count((rs) => rs.status?.availableReplicas);
  const updated = newRS?.status?.replicas ?? 0;
  const previous = d.status?.conditions ?? [];
  const conditions: V1DeploymentCondition[] = [];
  conditions.push(available >= replicas - maxUnavailable
    ? condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", previous, now)
    : condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", previous, now));
  const name = newRS?.metadata?.name ?? "";
  const complete = newRS !== undefined && updated === replicas && total === replicas && available === replicas &&
    (newRS.spec?.replicas ?? 0) === replicas;
  const ready = count((rs) => rs.status?.readyReplicas);
  const old = d.status ?? {};
  // util.DeploymentProgressing: more pods updated, ready or available, or fewer old ones, than the last status said.
  const progressed = updated > (old.updatedReplicas ?? 0) || ready > (old.readyReplicas ?? 0) || available > (old.availableReplicas ?? 0) ||
    total - updated < (old.replicas ?? 0) - (old.updatedReplicas ?? 0);
  const progressing = previous.find((c) => c.type === "Progressing");
  const deadline = d.spec?.progressDeadlineSeconds;
  if (createdMessage) {
    conditions.push(condition("Progressing", "True", "NewReplicaSetCreated", createdMessage, previous, now));
  } else if (complete) {
    conditions.push(condition("Progressing", "True", "NewReplicaSetAvailable", `ReplicaSet "${name}" has successfully progressed.`, previous, now));
  } else if (newRS && progressed) {
    // Progress made: the condition's lastUpdateTime moves on even when its reason stays (progress.go).
    conditions.push({ ...condition("Progressing", "True", "ReplicaSetUpdated", `ReplicaSet "${name}" is progressing.`, previous, now), lastUpdateTime: now as unknown as Date });
  } else if (newRS && progressing?.reason !== "ProgressDeadlineExceeded" && deadline !== undefined && progressing?.lastUpdateTime !== undefined &&
      Date.parse(String(progressing.lastUpdateTime)) + deadline * 1000 < Date.parse(now)) {
    // util.DeploymentTimedOut: no progress for progressDeadlineSeconds; `kubectl rollout status` fails on this.
    conditions.push(condition("Progressing", "False", "ProgressDeadlineExceeded", `ReplicaSet "${name}" has timed out progressing.`, previous, now));
  } else if (newRS && progressing?.reason === "ProgressDeadlineExceeded") {
    conditions.push(progressing);
  } else if (newRS) {
    conditions.push(condition("Progressing", "True", "ReplicaSetUpdated", `ReplicaSet "${name}" is progressing.`, previous, now));
  }
  // Conditions are kept in the order kube keeps them: first set first.
  conditions.sort((a, b) => {
    const ia = previous.findIndex((c) => c.type === a.type);
    const ib = previous.findIndex((c) => c.type === b.type);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
  return {
    observedGeneration: d.metadata?.generation ?? 0,
    replicas: total,
    updatedReplicas: updated,
    readyReplicas: ready,
    availableReplicas: available,
    unavailableReplicas: Math.max(0, replicas - available),
    conditions,
  };
}

function statusAction(d: V1Deployment, owned: V1ReplicaSet[], newRS: V1ReplicaSet | undefined, now: string,
  createdMessage?: string): DeploymentAction | undefined {
  const status = deploymentStatus(d, owned, newRS, now, createdMessage);
  return statusEqual(status, d.status) ? undefined : { kind: "status", status };
}

/** Equal as kube stores them (zero counts are omitempty, so absent and 0 are the same). */
export function statusEqual(a: V1DeploymentStatus | undefined, b: V1DeploymentStatus | undefined): boolean {
  const norm = (s: V1DeploymentStatus | undefined) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s ?? {})) if (v !== 0 && v !== undefined && v !== null) out[k] = v;
    return canonical(out);
  };
  return norm(a) === norm(b);
}
