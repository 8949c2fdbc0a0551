// One Service's reconcile: thin I/O around the pure decisions (service-config, daemonset, status, conflicts,
// conditions). It reads only from the informers' caches, and writes only what differs: the finalizer when it is
// missing, the DaemonSet when its spec hash differs from the live one, /status when the computed status differs,
// Events on transitions. So a resync of an unchanged cluster costs no API request at all (k3s servicelb patches
// status only when it differs; we extend that to every write). Every step is idempotent and level-based: a
// reconcile killed half-way is finished by the next one (docs/architecture.md, "Reliability").
import { hostname } from "node:os";
import { isConflict, isNotFound, Resources, type KubeClient, type KubeObject, type LogFn } from "../lib/kube/client.js";
import type { Clock } from "../lib/kube/clock.js";
import type { V1LoadBalancerIngress } from "@kubernetes/client-node";
import { CONTROLLER_NAME, FIELD_MANAGER, FINALIZER, LABELS, MODES, type EventType } from "../lib/names.js";
import {
  appliedDaemonSetEvent,
  clearedLoadBalancerEvent,
  decideConditions,
  deletedDaemonSetEvent,
  removeOurConditions,
} from "./conditions.js";
import { findPortConflicts } from "./conflicts.js";
import { buildDaemonSet, ownedFieldsDiffer, recordedHash } from "./daemonset.js";
import { ownership, parseServiceConfig } from "./service-config.js";
import { computeStatus, podTargetNode, statusEquals } from "./status.js";
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

/**
 * Our own writes that the informers have not shown us yet. Right after a write, the cache still holds the old
 * object; reconciling from it would send a stale resourceVersion (a certain 409) or re-apply an unchanged
 * DaemonSet. The write's own watch event re-queues the key, so until then there is nothing to do. Entries expire,
 * so a lost event costs at most `ttlMs` of delay, never a stuck Service.
 */
export class PendingWrites {
  private readonly services = new Map<string, { rv: string; at: number }>();
  private readonly daemonSets = new Map<string, { hash: string; at: number }>();

  constructor(private readonly now: () => number, private readonly ttlMs = 5000) {}

  /** We wrote the Service whose cached resourceVersion was `rv`. */
  wroteService(key: string, rv: string | undefined): void {
    if (rv) this.services.set(key, { rv, at: this.now() });
  }

  /** True while the cache still shows the Service as it was before our last write. */
  serviceStale(key: string, rv: string | undefined): boolean {
    const w = this.services.get(key);
    if (!w) return false;
    if (w.rv === rv && this.now() - w.at < this.ttlMs) return true;
    this.services.delete(key);
    return false;
  }

  appliedDaemonSet(key: string, hash: string | undefined): void {
    if (hash) this.daemonSets.set(key, { hash, at: this.now() });
  }

  /** True when we applied exactly this spec hash and the cache has not caught up yet. */
  daemonSetPending(key: string, hash: string | undefined, liveHash: string | undefined): boolean {
    const w = this.daemonSets.get(key);
    if (!w) return false;
    if (liveHash === w.hash || this.now() - w.at >= this.ttlMs) {
      this.daemonSets.delete(key);
      return false;
    }
    return w.hash === hash;
  }

  forget(key: string): void {
    this.services.delete(key);
    this.daemonSets.delete(key);
  }
}

export interface ReconcileDeps {
  client: KubeClient;
  config: ControllerConfig;
  view: ReconcileView;
  events: EventRecorder;
  pending: PendingWrites;
  now: () => Date;
  log: LogFn;
}

/** How a reconcile ended; a fixed token for logs and the reconcile_total{result} metric. */
export type ReconcileResult =
  | "unchanged"
  | "updated"
  | "cleaned"
  | "deleted"
  | "invalid"
  | "vip-unavailable"
  | "not-ours"
  | "waiting-for-cache";

/** Reconciles one Service key; throws on API errors (the queue retries with backoff). */
export async function reconcileService(key: string, deps: ReconcileDeps): Promise<ReconcileResult> {
  const { client, config, view, pending } = deps;
  const service = view.service(key);
  const existing = view.daemonSetsFor(key);

  if (!service) {
    // The Service is gone (our finalizer was removed by someone, or it was never ours): its DaemonSets are orphans.
    pending.forget(key);
    for (const ds of existing) await deleteDaemonSet(client, config.namespace, ds);
    return existing.length > 0 ? "deleted" : "unchanged";
  }
  if (pending.serviceStale(key, service.metadata?.resourceVersion)) return "waiting-for-cache";

  const hasFinalizer = (service.metadata?.finalizers ?? []).includes(FINALIZER);
  const emit = (ev: EventDecision): void => deps.events.emit(service, ev);

  if (service.metadata?.deletionTimestamp) {
    if (!hasFinalizer) return "unchanged";
    for (const ds of existing) {
      await deleteDaemonSet(client, config.namespace, ds);
      emit(deletedDaemonSetEvent(config.namespace, ds.metadata?.name as string));
    }
    await removeFinalizer(client, service);
    return "deleted";
  }

  const owned = ownership(service, config);
  if (!owned.ours) {
    // Not ours (any more). Clean up only what we wrote: a Service of another class we never touched has neither
    // our finalizer, nor a DaemonSet, nor our conditions, and stays untouched.
    const previous = service.status?.conditions ?? [];
    const kept = removeOurConditions(previous);
    const wroteStatus = kept.length !== previous.length;
    if (!hasFinalizer && existing.length === 0 && !wroteStatus) return "not-ours";
    for (const ds of existing) {
      await deleteDaemonSet(client, config.namespace, ds);
      emit(deletedDaemonSetEvent(config.namespace, ds.metadata?.name as string));
    }
    // Ingress is ours to clear only if we wrote it: our conditions or finalizer say we did.
    let latest = service;
    if (wroteStatus || (hasFinalizer && (service.status?.loadBalancer?.ingress?.length ?? 0) > 0)) {
      latest = await patchStatus(client, service, [], kept);
    }
    // With the resourceVersion the status write returned: the cached one is now stale and would be a 409.
    if (hasFinalizer) await removeFinalizer(client, latest);
    pending.wroteService(key, service.metadata?.resourceVersion);
    emit(clearedLoadBalancerEvent(owned.reason));
    return "cleaned";
  }

  let current = service;
  let wrote = false;
  if (!hasFinalizer) {
    current = await addFinalizer(client, service);
    wrote = true;
  }
  const nodes = view.nodes();
  const parsed = parseServiceConfig(current, config);

  if (!parsed.ok || parsed.value.mode === MODES.vip) {
    // Invalid: nothing is applied for this Service (an existing DaemonSet keeps the last good configuration serving
    // while the user fixes it). VIP mode: not in this version, so no DaemonSet and no address.
    const vip = parsed.ok;
    if (vip) for (const ds of existing) await deleteDaemonSet(client, config.namespace, ds);
    const decision = decideConditions({ service: current, now: deps.now(), ownership: owned, config: parsed, nodes });
    const ingress = vip ? [] : (current.status?.loadBalancer?.ingress ?? []);
    const ingressChanged = !statusEquals(current.status?.loadBalancer?.ingress, ingress);
    if (decision.conditionsChanged || ingressChanged) {
      await patchStatus(client, current, ingress, decision.conditions);
      wrote = true;
    }
    if (wrote) pending.wroteService(key, service.metadata?.resourceVersion);
    decision.events.forEach(emit);
    return vip ? "vip-unavailable" : "invalid";
  }

  let changed = wrote;
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
  const want = recordedHash(desired);
  if ((recordedHash(live) !== want || ownedFieldsDiffer(live, desired) !== undefined) && !pending.daemonSetPending(key, want, recordedHash(live))) {
    await client.apply(Resources.daemonSets, desired, { namespace: config.namespace, fieldManager: FIELD_MANAGER, force: true });
    pending.appliedDaemonSet(key, want);
    emit(appliedDaemonSetEvent(desired));
    changed = true;
  }

  const pods = view.podsFor(key).filter((p) => p.metadata?.labels?.[LABELS.serviceUid] === undefined ||
    p.metadata.labels[LABELS.serviceUid] === current.metadata?.uid);
  const status = computeStatus({ service: current, serviceConfig: parsed.value, pods, nodes, endpointSlices: view.endpointSlicesFor(key) });
  const conflicts = findPortConflicts({
    service: current,
    daemonSetPods: pods,
    allPods: [...view.allPods(), ...await podsHoldingPorts(client, pods)],
    otherServices: view.services().filter((s) => s !== service && ownership(s, config).ours),
  });
  const decision = decideConditions({ service: current, now: deps.now(), ownership: owned, config: parsed, nodes, status, conflicts });
  if (decision.conditionsChanged || !statusEquals(current.status?.loadBalancer?.ingress, status.ingress)) {
    await patchStatus(client, current, status.ingress, decision.conditions);
    wrote = true;
    changed = true;
  }
  if (wrote) pending.wroteService(key, service.metadata?.resourceVersion);
  decision.events.forEach(emit);
  return changed ? "updated" : "unchanged";
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
async function patchStatus(client: KubeClient, service: V1Service, ingress: readonly V1LoadBalancerIngress[], conditions: V1Condition[]): Promise<V1Service> {
  return client.patchStatus<V1Service & KubeObject>(Resources.services, service.metadata?.name as string, "merge", {
    metadata: { resourceVersion: service.metadata?.resourceVersion },
    // null, not an empty list or object: a merge patch removes a field only when told null (RFC 7386).
    status: { loadBalancer: { ingress: ingress.length > 0 ? ingress : null }, conditions: conditions.length > 0 ? conditions : null },
  }, { namespace: service.metadata?.namespace as string, fieldManager: FIELD_MANAGER });
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
