// One Service's reconcile: thin I/O around the pure decisions (service-config, daemonset, status, conflicts,
// conditions). It reads only from the informers' caches, and writes only what differs: the finalizer when it is
// missing, the DaemonSet when its spec hash differs from the live one, /status when the computed status differs,
// Events on transitions. So a resync of an unchanged cluster costs no API request at all (k3s servicelb patches
// status only when it differs; we extend that to every write). Every step is idempotent and level-based: a
// reconcile killed half-way is finished by the next one (DESIGN.md 5).
import { hostname } from "node:os";
import { isConflict, isNotFound, Resources, type KubeClient, type KubeObject, type LogFn } from "../lib/kube/client.js";
import type { Clock } from "../lib/kube/clock.js";
import {
  CONDITION_REASONS,
  CONDITION_TYPES,
  CONTROLLER_NAME,
  EVENT_REASONS,
  FIELD_MANAGER,
  FINALIZER,
  LABELS,
  MODES,
  type EventType,
} from "../lib/names.js";
import { buildDaemonSet, daemonSetName, recordedHash } from "./daemonset.js";
import { describeConflicts, findPortConflicts, type ConflictReport } from "./conflicts.js";
import { computeStatus, podTargetNode, statusEquals, type ComputedStatus } from "./status.js";
import { describeProblems, ownership, parseServiceConfig } from "./service-config.js";
import type {
  ControllerConfig,
  EventDecision,
  V1Condition,
  V1DaemonSet,
  V1EndpointSlice,
  V1Node,
  V1Pod,
  V1Service,
} from "./types.js";

/** What reconcile reads: the informers' caches, indexed by the controller. */
export interface ReconcileView {
  service(key: string): V1Service | undefined;
  nodes(): V1Node[];
  /** DaemonSets in our namespace labelled for this Service key (any uid). */
  daemonSetsFor(key: string): V1DaemonSet[];
  /** Pods in our namespace labelled for this Service key. */
  podsFor(key: string): V1Pod[];
  /** lb-pods of every Service (for port conflicts). */
  allPods(): V1Pod[];
  /** EndpointSlices of this Service (kubernetes.io/service-name). */
  endpointSlicesFor(key: string): V1EndpointSlice[];
  /** Every Service the controller knows (for naming the holder of a conflicting port). */
  services(): V1Service[];
}

export interface ReconcileDeps {
  client: KubeClient;
  config: ControllerConfig;
  view: ReconcileView;
  events: EventRecorder;
  log: LogFn;
}

/** How a reconcile ended; a fixed token for logs and the reconciles_total{result} metric. */
export type ReconcileResult =
  | "unchanged"
  | "updated"
  | "cleaned"
  | "deleted"
  | "invalid"
  | "vip-unavailable"
  | "not-ours";

/** Reconciles one Service key; throws on API errors (the queue retries with backoff). */
export async function reconcileService(key: string, deps: ReconcileDeps): Promise<ReconcileResult> {
  const { client, config, view } = deps;
  const service = view.service(key);
  const existing = view.daemonSetsFor(key);

  if (!service) {
    // The Service is gone (our finalizer was removed by someone, or it was never ours): its DaemonSets are orphans.
    for (const ds of existing) await deleteDaemonSet(client, config.namespace, ds);
    return existing.length > 0 ? "deleted" : "unchanged";
  }

  const hasFinalizer = (service.metadata?.finalizers ?? []).includes(FINALIZER);

  if (service.metadata?.deletionTimestamp) {
    if (!hasFinalizer) return "unchanged";
    for (const ds of existing) await deleteDaemonSet(client, config.namespace, ds);
    if (existing.length > 0) deps.events.emit(service, { type: "Normal", reason: EVENT_REASONS.deletedDaemonSet, message: `Deleted DaemonSet ${config.namespace}/${existing.map((d) => d.metadata?.name).join(", ")}` });
    await removeFinalizer(client, service);
    return "deleted";
  }

  const owned = ownership(service, config);
  if (!owned.ours) {
    // Not ours (any more). Clean up only what we wrote: a Service of another class we never touched has neither
    // our finalizer, nor a DaemonSet, nor our conditions, and stays untouched.
    const ourConditions = (service.status?.conditions ?? []).filter(isOurCondition);
    if (!hasFinalizer && existing.length === 0 && ourConditions.length === 0) return "not-ours";
    for (const ds of existing) await deleteDaemonSet(client, config.namespace, ds);
    if (ourConditions.length > 0 || (owned.code === "NotLoadBalancer" && (service.status?.loadBalancer?.ingress?.length ?? 0) > 0 && hasFinalizer)) {
      await patchStatus(client, service, [], (service.status?.conditions ?? []).filter((c) => !isOurCondition(c)));
    }
    if (existing.length > 0 || ourConditions.length > 0) {
      deps.events.emit(service, { type: "Normal", reason: EVENT_REASONS.clearedLoadBalancer, message: `No longer handled by berth: ${owned.reason}` });
    }
    if (hasFinalizer) await removeFinalizer(client, service);
    return "cleaned";
  }

  let current = service;
  if (!hasFinalizer) current = await addFinalizer(client, service);

  const parsed = parseServiceConfig(current, config);
  if (!parsed.ok) {
    // Nothing is applied for this Service (an existing DaemonSet is left as it was: the last good configuration
    // keeps serving while the user fixes the annotation), and the condition names every bad field.
    const message = `Invalid configuration: ${describeProblems(parsed.problems)}`;
    await setConditionOnly(deps, current, "False", "InvalidConfiguration", message, { type: "Warning", reason: EVENT_REASONS.invalidConfiguration, message });
    return "invalid";
  }
  if (parsed.value.mode === MODES.vip) {
    const message = "VIP mode (berth.dev/mode: vip) is not available in this version; remove the annotation or set it to hostport";
    for (const ds of existing) await deleteDaemonSet(client, config.namespace, ds);
    await setConditionOnly(deps, current, "False", "VIPModeUnavailable", message, { type: "Warning", reason: EVENT_REASONS.vipModeUnavailable, message });
    return "vip-unavailable";
  }

  let changed = !hasFinalizer;
  const nodes = view.nodes();
  const desired = buildDaemonSet(current, parsed.value, nodes, config);
  const desiredName = desired.metadata?.name as string;
  // DaemonSets of an earlier incarnation of this Service (same name, other uid) are orphans.
  for (const ds of existing) {
    if (ds.metadata?.name !== desiredName) {
      await deleteDaemonSet(client, config.namespace, ds);
      changed = true;
    }
  }
  const live = existing.find((ds) => ds.metadata?.name === desiredName);
  if (!live || recordedHash(live) !== recordedHash(desired)) {
    await client.apply(Resources.daemonSets, desired, { namespace: config.namespace, fieldManager: FIELD_MANAGER, force: true });
    deps.events.emit(current, { type: "Normal", reason: EVENT_REASONS.appliedDaemonSet, message: `Applied LoadBalancer DaemonSet ${config.namespace}/${desiredName}` });
    changed = true;
  }

  const pods = view.podsFor(key).filter((p) => p.metadata?.labels?.[LABELS.serviceUid] === undefined ||
    p.metadata.labels[LABELS.serviceUid] === current.metadata?.uid);
  const conflicts = findPortConflicts({
    service: current,
    daemonSetPods: pods,
    allPods: [...view.allPods(), ...await podsHoldingPorts(client, pods)],
    otherServices: view.services().filter((s) => s !== service && ownership(s, config).ours),
  });
  const decision = decideStatus({ service: current, pods, nodes, endpointSlices: view.endpointSlicesFor(key), conflicts });
  if (decision.statusChanged) {
    await patchStatus(client, current, decision.ingress, decision.conditions);
    changed = true;
  }
  for (const ev of decision.events) deps.events.emit(current, ev);
  return changed ? "updated" : "unchanged";
}

export interface StatusDecision {
  ingress: { ip: string; ipMode?: string }[];
  conditions: V1Condition[];
  statusChanged: boolean;
  events: EventDecision[];
}

interface StatusInputs {
  service: V1Service;
  pods: V1Pod[];
  nodes: V1Node[];
  endpointSlices: V1EndpointSlice[];
  conflicts: ConflictReport;
}

/**
 * Pods in every namespace bound to the nodes where one of ours waits unscheduled: the candidates for holding its
 * ports. Looked up only then (one list per such node, by spec.nodeName, as the kubelet lists its pods), so the
 * controller needs no cluster-wide pod watch and a cluster without conflicts costs nothing.
 */
async function podsHoldingPorts(client: KubeClient, ours: V1Pod[]): Promise<V1Pod[]> {
  const nodes = new Set<string>();
  for (const pod of ours) {
    if (pod.spec?.nodeName) continue;
    const target = podTargetNode(pod);
    if (target) nodes.add(target);
  }
  const found: V1Pod[] = [];
  for (const node of [...nodes].sort()) {
    const list = await client.list<V1Pod & KubeObject>(Resources.pods, { fieldSelector: `spec.nodeName=${node}` });
    found.push(...list.items);
  }
  return found;
}

const nowStamp = (): string => new Date().toISOString().replace(/\.\d+Z$/, "Z");

/** Keeps lastTransitionTime while a condition's status stays the same (metav1.Condition semantics). */
function withTransition(cur: V1Condition | undefined, next: Omit<V1Condition, "lastTransitionTime">): V1Condition {
  const lastTransitionTime = (cur && cur.status === next.status ? cur.lastTransitionTime : nowStamp()) as unknown as Date;
  return { ...next, lastTransitionTime };
}

function sameCondition(a: V1Condition | undefined, b: V1Condition | undefined): boolean {
  if (!a || !b) return a === b;
  return a.type === b.type && a.status === b.status && a.reason === b.reason && a.message === b.message &&
    (a.observedGeneration ?? undefined) === (b.observedGeneration ?? undefined);
}

/** Status, conditions and transition Events from the pure decisions. */
export function decideStatus(inputs: StatusInputs): StatusDecision {
  const { service } = inputs;
  const computed: ComputedStatus = computeStatus({ service, pods: inputs.pods, nodes: inputs.nodes, endpointSlices: inputs.endpointSlices });
  const current = service.status?.conditions ?? [];
  const curReady = current.find((c) => c.type === CONDITION_TYPES.ready);
  const serving = computed.perNode.filter((n) => n.included).map((n) => n.node);
  const left = computed.perNode.filter((n) => !n.included);
  const generation = service.metadata?.generation;
  const gen = generation !== undefined ? { observedGeneration: generation } : {};
  let ready: Omit<V1Condition, "lastTransitionTime">;
  if (computed.ingress.length > 0) {
    ready = left.length === 0
      ? { type: CONDITION_TYPES.ready, status: "True", reason: CONDITION_REASONS.serving, message: `Served by ${serving.join(", ")}`, ...gen }
      : { type: CONDITION_TYPES.ready, status: "True", reason: CONDITION_REASONS.partiallyServing,
        message: `Served by ${serving.join(", ")}; not by ${left.map((n) => `${n.node} (${n.reason})`).join("; ")}`, ...gen };
  } else {
    ready = { type: CONDITION_TYPES.ready, status: "False", reason: CONDITION_REASONS.waitingForPods,
      message: left.length > 0 ? `No node serves yet: ${left.map((n) => `${n.node} (${n.reason})`).join("; ")}` : "No node is eligible to serve", ...gen };
  }
  const events: EventDecision[] = [];
  const { conflicts: found, competingServices } = inputs.conflicts;
  const curConflict = current.find((c) => c.type === CONDITION_TYPES.portConflict);
  let conflict: Omit<V1Condition, "lastTransitionTime">;
  if (found.length > 0) {
    const competing = competingServices.length > 0
      ? `; Services asking for the same ports: ${competingServices.map((c) => `${c.service} (${c.ports.join(", ")})`).join(", ")}`
      : "";
    conflict = { type: CONDITION_TYPES.portConflict, status: "True", reason: CONDITION_REASONS.portInUse,
      message: `${describeConflicts(found)}${competing}`.slice(0, 32_000), ...gen };
    if (computed.ingress.length === 0) {
      ready = { ...ready, reason: CONDITION_REASONS.portConflict, message: `Every node that would serve has a port taken: ${describeConflicts(found)}`.slice(0, 32_000) };
    }
  } else {
    conflict = { type: CONDITION_TYPES.portConflict, status: "False", reason: CONDITION_REASONS.noConflict, message: "No port conflicts", ...gen };
  }
  if (found.length > 0 && (curConflict?.status !== "True" || curConflict.message !== conflict.message)) {
    events.push({ type: "Warning", reason: EVENT_REASONS.portConflict, message: conflict.message });
  } else if (found.length === 0 && curConflict?.status === "True") {
    events.push({ type: "Normal", reason: EVENT_REASONS.portConflictResolved, message: "The ports this Service needs are free on every node again" });
  }
  const nextReady = withTransition(curReady, ready);
  const nextConflict = withTransition(curConflict, conflict);
  const conditions = [...current.filter((c) => !isOurCondition(c)), nextReady, nextConflict];
  const ingressChanged = !statusEquals(service.status?.loadBalancer?.ingress, computed.ingress);
  if (ingressChanged) {
    events.push(computed.ingress.length > 0
      ? { type: "Normal", reason: EVENT_REASONS.updatedLoadBalancer, message: `Updated LoadBalancer with new IPs: ${computed.ingress.map((i) => i.ip).join(", ")}` }
      : { type: "Warning", reason: EVENT_REASONS.unavailableLoadBalancer, message: `No node serves this Service: ${ready.message}` });
  }
  const statusChanged = ingressChanged || !sameCondition(curReady, nextReady) || !sameCondition(curConflict, nextConflict) ||
    current.filter(isOurCondition).length !== 2;
  return { ingress: computed.ingress, conditions, statusChanged, events };
}

function isOurCondition(c: V1Condition): boolean {
  return Object.values(CONDITION_TYPES).includes(c.type as (typeof CONDITION_TYPES)[keyof typeof CONDITION_TYPES]);
}

async function deleteDaemonSet(client: KubeClient, namespace: string, ds: V1DaemonSet): Promise<void> {
  try {
    // Background: the garbage collector removes the pods; the uid precondition makes sure we delete the object we
    // decided about, never a new one of the same name.
    await client.delete(Resources.daemonSets, ds.metadata?.name as string, {
      namespace, propagationPolicy: "Background",
      ...(ds.metadata?.uid ? { preconditions: { uid: ds.metadata.uid } } : {}),
    });
  } catch (e) {
    if (!isNotFound(e) && !isConflict(e)) throw e;
  }
}

async function addFinalizer(client: KubeClient, service: V1Service): Promise<V1Service> {
  const finalizers = [...(service.metadata?.finalizers ?? []), FINALIZER];
  // A merge patch replaces the whole list; the resourceVersion makes it fail (409, retried) instead of dropping a
  // finalizer another controller added since our cache saw the Service.
  return client.patch<V1Service & { metadata: object }>(Resources.services, service.metadata?.name as string, "merge",
    { metadata: { finalizers, resourceVersion: service.metadata?.resourceVersion } },
    { namespace: service.metadata?.namespace as string, fieldManager: FIELD_MANAGER }) as Promise<V1Service>;
}

async function removeFinalizer(client: KubeClient, service: V1Service): Promise<void> {
  const finalizers = (service.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER);
  try {
    await client.patch(Resources.services, service.metadata?.name as string, "merge",
      { metadata: { finalizers: finalizers.length > 0 ? finalizers : null, resourceVersion: service.metadata?.resourceVersion } },
      { namespace: service.metadata?.namespace as string, fieldManager: FIELD_MANAGER });
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}

/** Writes ingress and conditions through /status; the resourceVersion keeps other writers' conditions safe. */
async function patchStatus(client: KubeClient, service: V1Service, ingress: { ip: string; ipMode?: string }[], conditions: V1Condition[]): Promise<void> {
  await client.patchStatus(Resources.services, service.metadata?.name as string, "merge", {
    metadata: { resourceVersion: service.metadata?.resourceVersion },
    // null, not an empty list or object: a merge patch removes a field only when told null (RFC 7386).
    status: { loadBalancer: { ingress: ingress.length > 0 ? ingress : null }, conditions: conditions.length > 0 ? conditions : null },
  }, { namespace: service.metadata?.namespace as string, fieldManager: FIELD_MANAGER });
}

/** Sets the ready condition to a failure reason (invalid configuration, VIP mode) without touching ingress. */
async function setConditionOnly(deps: ReconcileDeps, service: V1Service, status: "False", reason: string, message: string, event: EventDecision): Promise<void> {
  const conditions = service.status?.conditions ?? [];
  const cur = conditions.find((c) => c.type === CONDITION_TYPES.ready);
  if (cur && cur.status === status && cur.reason === reason && cur.message === message) return;
  const next: V1Condition = {
    type: CONDITION_TYPES.ready, status, reason, message,
    lastTransitionTime: (cur && cur.status === status ? cur.lastTransitionTime : new Date().toISOString().replace(/\.\d+Z$/, "Z")) as unknown as Date,
    ...(service.metadata?.generation !== undefined ? { observedGeneration: service.metadata.generation } : {}),
  };
  await patchStatus(deps.client, service, (service.status?.loadBalancer?.ingress ?? []) as { ip: string }[],
    [...conditions.filter((c) => c.type !== CONDITION_TYPES.ready), next]);
  deps.events.emit(service, event);
}

// ---- Events ----

interface SeenEvent {
  name: string;
  count: number;
  firstTimestamp: string;
  lastSent: number;
}

/**
 * core/v1 Events on Services, with client-go's aggregation in its simplest form (record/events_cache.go
 * EventCorrelator): the same reason + message on the same object within `windowMs` bumps `count` and
 * `lastTimestamp` on the existing Event (a PATCH) instead of creating another. Emitting never throws and never
 * blocks a reconcile: an Event that cannot be written is logged and dropped, as client-go's recorder does.
 */
export class EventRecorder {
  private readonly seen = new Map<string, SeenEvent>();
  private readonly instance = hostname();

  constructor(
    private readonly client: KubeClient,
    private readonly clock: Clock,
    private readonly log: LogFn,
    private readonly windowMs = 10 * 60_000,
  ) {}

  emit(service: V1Service, ev: { type: EventType; reason: string; message: string }): void {
    void this.write(service, ev).catch((e: unknown) => {
      this.log("warn", "cannot write event", { reason: ev.reason, service: `${service.metadata?.namespace}/${service.metadata?.name}`, error: String(e) });
    });
  }

  private async write(service: V1Service, ev: { type: EventType; reason: string; message: string }): Promise<void> {
    const namespace = service.metadata?.namespace as string;
    const key = `${service.metadata?.uid}/${ev.type}/${ev.reason}/${ev.message}`;
    const now = this.clock.now();
    const stamp = new Date(now).toISOString().replace(/\.\d+Z$/, "Z");
    for (const [k, v] of this.seen) if (now - v.lastSent > this.windowMs) this.seen.delete(k);
    const prev = this.seen.get(key);
    if (prev) {
      prev.count++;
      prev.lastSent = now;
      try {
        await this.client.patch(Resources.events, prev.name, "merge", { count: prev.count, lastTimestamp: stamp }, { namespace });
        return;
      } catch (e) {
        if (!isNotFound(e)) throw e;
        // The Event expired (kube-apiserver's event TTL) or was deleted: create it again below.
      }
    }
    // client-go names Events <object name>.<unix nanos in hex>.
    const name = `${service.metadata?.name}.${(BigInt(now) * 1_000_000n + BigInt(Math.floor(Math.random() * 1e6))).toString(16)}`;
    await this.client.create(Resources.events, {
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: "v1", kind: "Service", namespace, name: service.metadata?.name,
        uid: service.metadata?.uid, resourceVersion: service.metadata?.resourceVersion,
      },
      reason: ev.reason,
      message: ev.message.slice(0, 1024),
      type: ev.type,
      source: { component: "berth-controller" },
      firstTimestamp: prev?.firstTimestamp ?? stamp,
      lastTimestamp: stamp,
      count: prev?.count ?? 1,
      reportingComponent: CONTROLLER_NAME,
      reportingInstance: this.instance,
    } as never, { namespace });
    this.seen.set(key, { name, count: prev?.count ?? 1, firstTimestamp: prev?.firstTimestamp ?? stamp, lastSent: now });
  }
}

export { daemonSetName, LABELS };
