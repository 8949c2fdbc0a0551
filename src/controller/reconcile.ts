// One Service's reconcile: thin I/O around the pure decisions (service-config, daemonset, status, conflicts,
// conditions). It reads only from the informers' caches, and writes only what differs: the finalizer when it is
// missing, the DaemonSet when its spec hash differs from the live one, /status when the computed status differs,
// Events on transitions. So a resync of an unchanged cluster costs no API request at all (k3s servicelb patches
// status only when it differs; we extend that to every write). Every step is idempotent and level-based: a
// reconcile killed half-way is finished by the next one (docs/architecture.md, "Reliability").
import { hostname } from "node:os";
import { isConflict, isNotFound, Resources, type KubeClient, type KubeObject, type LogFn } from "../lib/kube/client.js";
import type { Clock } from "../lib/kube/clock.js";
import { eventStamp, serviceEvent } from "../lib/kube/events.js";
import type { V1LoadBalancerIngress } from "@kubernetes/client-node";
import { CONTROLLER_NAME, FIELD_MANAGER, FINALIZER, LABELS, MODES, type EventType } from "../lib/names.js";
import {
  appliedDaemonSetEvent,
  clearedLoadBalancerEvent,
  decideConditions,
  deletedDaemonSetEvent,
  removeOurConditions,
} from "./conditions.js";
import { trimPod } from "./cache-trim.js";
import { findPortConflicts, servicePorts, waitsForPorts } from "./conflicts.js";
import type { Protocol } from "../lib/rules/model.js";
import { buildDaemonSet, ownedFieldsDiffer, recordedHash, rulesBytesFor, rulesConfigMapOf, rulesTooLargeMessage } from "./daemonset.js";
import { applyRulesConfigMap, applyWithRules } from "./rules-configmap.js";
import { ownership, parseServiceConfig } from "./service-config.js";
import { computeStatus, podTargetNode, statusEquals } from "./status.js";
import { reconcileVipService, releaseVip } from "./vip/reconcile.js";
import type { VipState } from "./vip/state.js";
import { ALLOCATED_FROM_POOL_ANNOTATION } from "../lib/vip/address-pool.js";
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
  /**
   * lb-pods of every Service bound to this node and holding this host port (the holders of a port conflict we can
   * see without a request), from an index: never a walk of every pod on the node.
   */
  podsHoldingPort(node: string, protocol: Protocol, port: number): V1Pod[];
  /** EndpointSlices of this Service (kubernetes.io/service-name). */
  endpointSlicesFor(key: string): V1EndpointSlice[];
  /** LoadBalancer Services asking for this port (protocol as in the Service spec, e.g. "TCP"): competing Services. */
  servicesWithPort(protocol: string, port: number): V1Service[];
  /** Names of the rules ConfigMaps in our namespace labelled for this Service key. */
  configMapsFor(key: string): string[];
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
  private readonly configMaps = new Map<string, { name: string; at: number }>();

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

  /** We applied the rules ConfigMap `name` for this Service (its watch event has not arrived yet). */
  appliedConfigMap(key: string, name: string | undefined): void {
    if (name) this.configMaps.set(key, { name, at: this.now() });
  }

  /** True when we applied exactly this ConfigMap and the cache does not show it yet (`cached`: it does). */
  configMapPending(key: string, name: string, cached: boolean): boolean {
    const w = this.configMaps.get(key);
    if (!w) return false;
    if (cached || this.now() - w.at >= this.ttlMs) {
      this.configMaps.delete(key);
      return false;
    }
    return w.name === name;
  }

  /** How long until a stale-cache wait for this Service expires (0 when there is none). */
  serviceWaitMs(key: string): number {
    const w = this.services.get(key);
    return w ? Math.max(0, this.ttlMs - (this.now() - w.at)) : 0;
  }

  forget(key: string): void {
    this.services.delete(key);
    this.daemonSets.delete(key);
    this.configMaps.delete(key);
  }
}

export interface StatusPacing {
  /** Pause after the first write of a burst; default 250 ms. */
  baseMs?: number;
  /** Each write of a burst multiplies the pause by this; default 3. */
  factor?: number;
  /** Longest pause between two writes of one Service; default 60 s. */
  maxMs?: number;
  /** A burst has ended once no event touched the Service for this long; default 30 s. */
  quietMs?: number;
}

/**
 * When one Service's status may be written next. A DaemonSet's pods are created, bound and become Ready node by
 * node over seconds to minutes; writing the status on each of those changes cost ~2 writes and ~1 Event per node
 * (200 requests per Service at 100 nodes). Here the first change after a quiet spell is written at once (an isolated
 * readiness change reaches the status in one reconcile), and later ones in the same burst wait a pause that triples
 * after every write (250 ms, 0.75 s, 2.25 s, ... up to `maxMs`), so a burst costs O(log(duration)) writes (7 for
 * three minutes). A burst ends when no event about the Service's pods or DaemonSet arrived for `quietMs`. The cost:
 * during a long burst a change can take up to the current pause (at most `maxMs`) to show, and a restarted
 * controller starts quiet. docs/design/0012-api-discipline-at-scale.md.
 */
export class StatusPacer {
  private readonly state = new Map<string, { lastWrite: number; pauseMs: number; lastEvent: number; fresh: boolean }>();
  private readonly baseMs: number;
  private readonly factor: number;
  private readonly maxMs: number;
  private readonly quietMs: number;

  constructor(private readonly now: () => number, pacing: StatusPacing = {}) {
    this.baseMs = pacing.baseMs ?? 250;
    this.factor = pacing.factor ?? 3;
    this.maxMs = pacing.maxMs ?? 60_000;
    this.quietMs = pacing.quietMs ?? 30_000;
  }

  /**
   * An event that can change this Service's status arrived (its pods, its DaemonSet); returns how long to wait
   * before reconciling it. After a quiet spell the burst starts over: no wait, and the next write's pause is the base.
   */
  event(key: string): number {
    const s = this.state.get(key);
    if (!s) return 0;
    const t = this.now();
    if (t - s.lastEvent >= this.quietMs) {
      s.fresh = true;
      s.lastEvent = t;
      return 0;
    }
    s.lastEvent = t;
    return this.waitMs(key);
  }

  /** Milliseconds until this Service's status may be written; 0 = now. */
  waitMs(key: string): number {
    const s = this.state.get(key);
    const t = this.now();
    if (!s || s.fresh || (t - s.lastEvent >= this.quietMs && t - s.lastWrite >= this.quietMs)) return 0;
    return Math.max(0, s.lastWrite + s.pauseMs - t);
  }

  /** Records a write: the pause grows inside a burst and starts over after a quiet spell. */
  wrote(key: string): void {
    const t = this.now();
    const s = this.state.get(key);
    const pauseMs = !s || s.fresh || t - s.lastEvent >= this.quietMs ? this.baseMs : Math.min(this.maxMs, s.pauseMs * this.factor);
    this.state.set(key, { lastWrite: t, pauseMs, lastEvent: Math.max(s?.lastEvent ?? t, t), fresh: false });
    // Quiet Services need no entry: drop them now and then so the map holds only Services in a burst.
    if (this.state.size % 256 === 0) {
      for (const [k, v] of this.state) if (t - v.lastEvent >= this.quietMs && t - v.lastWrite >= this.quietMs) this.state.delete(k);
    }
  }

  forget(key: string): void {
    this.state.delete(key);
  }
}

/**
 * The pods that may hold the ports of our lb-pods the scheduler reported as not fitting (NodePorts), looked up with
 * one list per such node (by spec.nodeName, as the kubelet lists its pods) and remembered per pod uid and
 * resourceVersion: an ordinary pending pod costs no request, and a pod stuck on a port costs one request until it
 * changes, however often its Service is reconciled. So the controller needs no cluster-wide pod watch.
 */
export class PortHolderLookups {
  private readonly byPod = new Map<string, { rv: string | undefined; pods: V1Pod[] }>();

  async holders(client: KubeClient, ours: readonly V1Pod[]): Promise<V1Pod[]> {
    const found: V1Pod[] = [];
    for (const pod of ours) {
      if (pod.spec?.nodeName || !waitsForPorts(pod)) continue;
      const node = podTargetNode(pod);
      const uid = pod.metadata?.uid;
      if (!node || !uid) continue;
      const cached = this.byPod.get(uid);
      if (cached && cached.rv === pod.metadata?.resourceVersion) {
        found.push(...cached.pods);
        continue;
      }
      const list = await client.list<V1Pod & KubeObject>(Resources.pods, { fieldSelector: `spec.nodeName=${node}` });
      const pods = list.items.map((p) => trimPod(p));
      this.byPod.set(uid, { rv: pod.metadata?.resourceVersion, pods });
      found.push(...pods);
    }
    return found;
  }

  forget(uid: string | undefined): void {
    if (uid) this.byPod.delete(uid);
  }

  get size(): number {
    return this.byPod.size;
  }
}

export interface ReconcileDeps {
  client: KubeClient;
  config: ControllerConfig;
  view: ReconcileView;
  events: EventRecorder;
  pending: PendingWrites;
  pacer: StatusPacer;
  holders: PortHolderLookups;
  now: () => Date;
  log: LogFn;
  /** Look at this key again after `ms` (a status write the pacer deferred, a cache we wait for). */
  requeueAfter(ms: number): void;
  /** VIP mode (pools, allocator); without it VIP-mode Services get the "not available" condition. */
  vip?: VipState;
  /** Queue another key (a pool whose status changed). */
  enqueue?(key: string): void;
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

  const enqueue = (k: string): void => deps.enqueue?.(k);
  if (!service) {
    // The Service is gone (our finalizer was removed by someone, or it was never ours): its DaemonSets are orphans.
    pending.forget(key);
    await releaseVip(deps.vip, key, client, undefined, enqueue);
    for (const ds of existing) await deleteDaemonSet(client, config.namespace, ds);
    return existing.length > 0 ? "deleted" : "unchanged";
  }
  if (pending.serviceStale(key, service.metadata?.resourceVersion)) {
    // Our write's watch event re-queues the key; if the write changed nothing on the server there is no event, so
    // look again when the wait expires rather than at the next resync.
    deps.requeueAfter(pending.serviceWaitMs(key));
    return "waiting-for-cache";
  }

  const hasFinalizer = (service.metadata?.finalizers ?? []).includes(FINALIZER);
  const emit = (ev: EventDecision): void => deps.events.emit(service, ev);

  if (service.metadata?.deletionTimestamp) {
    await releaseVip(deps.vip, key, client, service, enqueue);
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
    const released = await releaseVip(deps.vip, key, client, service, enqueue);
    if (!hasFinalizer && existing.length === 0 && !wroteStatus && !released.wrote) return "not-ours";
    for (const ds of existing) {
      await deleteDaemonSet(client, config.namespace, ds);
      emit(deletedDaemonSetEvent(config.namespace, ds.metadata?.name as string));
    }
    // Ingress is ours to clear only if we wrote it: our conditions or finalizer say we did.
    let latest = released.service ?? service;
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
  // The finalizer and the DaemonSet go out together (one round trip less from a new Service to its DaemonSet): a
  // DaemonSet whose Service then vanishes without our finalizer is an orphan the next reconcile of the key deletes.
  let finalizerWrite: Promise<V1Service> | undefined;
  if (!hasFinalizer) {
    finalizerWrite = addFinalizer(client, service);
    // Awaited below; this only keeps a rejection that arrives first from counting as unhandled.
    finalizerWrite.catch(() => undefined);
    wrote = true;
  }
  const finalizerDone = async (): Promise<void> => {
    if (finalizerWrite) current = await finalizerWrite;
    finalizerWrite = undefined;
  };
  const nodes = view.nodes();
  const parsed = parseServiceConfig(current, config);

  if (parsed.ok && parsed.value.mode === MODES.vip && deps.vip) {
    // VIP mode: no DaemonSet (a Service switched from hostPort mode loses its own), an address from a pool.
    await finalizerDone();
    for (const ds of existing) {
      await deleteDaemonSet(client, config.namespace, ds);
      emit(deletedDaemonSetEvent(config.namespace, ds.metadata?.name as string));
    }
    const vip = await reconcileVipService({
      client, service: current, config: parsed.value, vip: deps.vip, now: deps.now(), emit, requeueAfter: deps.requeueAfter, enqueue,
    });
    if (wrote || vip.wrote) pending.wroteService(key, service.metadata?.resourceVersion);
    return vip.result;
  }
  if (parsed.ok && parsed.value.mode !== MODES.vip && deps.vip &&
    (deps.vip.allocator.heldBy(key) !== undefined || current.metadata?.annotations?.[ALLOCATED_FROM_POOL_ANNOTATION] !== undefined)) {
    // Left VIP mode for hostPort mode: the address goes back to its pool, the annotation goes.
    await finalizerDone();
    const released = await releaseVip(deps.vip, key, client, current, enqueue);
    if (released.service) current = released.service;
    wrote ||= released.wrote;
  }

  if (!parsed.ok || parsed.value.mode === MODES.vip) {
    // Invalid: nothing is applied for this Service (an existing DaemonSet keeps the last good configuration serving
    // while the user fixes it). VIP mode: not in this version, so no DaemonSet and no address.
    await finalizerDone();
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
  const tooLarge = rulesTooLargeMessage(rulesBytesFor(desiredName, parsed.value), parsed.value);
  if (tooLarge !== undefined) {
    // Rules no ConfigMap can hold: the API server would refuse every apply, and a DaemonSet mounting that
    // ConfigMap would leave its new pods waiting. Nothing is written but the condition (once: it is then unchanged),
    // and the key is not retried; a change of the Service re-queues it. An existing DaemonSet keeps serving.
    await finalizerDone();
    const decision = decideConditions({ service: current, now: deps.now(), ownership: owned, config: parsed, nodes, rulesTooLarge: tooLarge });
    if (decision.conditionsChanged) {
      await patchStatus(client, current, current.status?.loadBalancer?.ingress ?? [], decision.conditions);
      wrote = true;
    }
    if (wrote) pending.wroteService(key, service.metadata?.resourceVersion);
    decision.events.forEach(emit);
    return "invalid";
  }
  const live = existing.find((ds) => ds.metadata?.name === desiredName);
  const want = recordedHash(desired);
  const rulesName = rulesConfigMapOf(desired);
  const rulesCached = rulesName !== undefined && view.configMapsFor(key).includes(rulesName);
  // The DaemonSet side (rules ConfigMap, then DaemonSet, then the ConfigMap's owner) and the status side (finalizer,
  // then status) go out concurrently: the status is decided from the cache and the finalizer write alone, never
  // from what the applies return, so nothing orders them, and a new Service's reconcile (a worker held while
  // others wait in the urgent lane) is one round trip shorter. Both are awaited before the reconcile ends (a
  // stepped-down replica's drain covers them); the first failure fails the reconcile, which is retried whole.
  let appliedEvent: EventDecision | undefined;
  const daemonSetSide = async (): Promise<void> => {
    if (recordedHash(live) !== want || ownedFieldsDiffer(live, desired) !== undefined) {
      if (!pending.daemonSetPending(key, want, recordedHash(live))) {
        await applyWithRules(client, config.namespace, parsed.value, desired, live,
          () => client.apply(Resources.daemonSets, desired, { namespace: config.namespace, fieldManager: FIELD_MANAGER, force: true }));
        pending.appliedDaemonSet(key, want);
        pending.appliedConfigMap(key, rulesName);
        appliedEvent = appliedDaemonSetEvent(desired);
        changed = true;
      }
    } else if (live?.metadata?.uid && rulesName !== undefined && !pending.configMapPending(key, rulesName, rulesCached) && !rulesCached) {
      // The DaemonSet is as we want it but the ConfigMap its pods mount is gone (deleted by hand or by anything
      // else): new and restarted lb-pods could not start. Written again, owned by the live DaemonSet, as an edited
      // DaemonSet is re-applied. Decided from the cache alone, so a resync of an unchanged cluster sends nothing.
      await applyRulesConfigMap(client, config.namespace, parsed.value, desired, live.metadata.uid);
      pending.appliedConfigMap(key, rulesName);
      changed = true;
    }
  };
  let statusEvents: EventDecision[] = [];
  const statusSide = async (): Promise<void> => {
    // The status write needs the resourceVersion the finalizer write returned.
    await finalizerDone();
    const pods = view.podsFor(key).filter((p) => p.metadata?.labels?.[LABELS.serviceUid] === undefined ||
      p.metadata.labels[LABELS.serviceUid] === current.metadata?.uid);
    const status = computeStatus({ service: current, serviceConfig: parsed.value, pods, nodes, endpointSlices: view.endpointSlicesFor(key) });
    const conflicts = findPortConflicts({
      service: current,
      daemonSetPods: pods,
      allPods: [...visibleHolders(view, unboundNodes(pods), servicePorts(current)), ...await deps.holders.holders(client, pods)],
      otherServices: competingCandidates(current, view).filter((s) => ownership(s, config).ours),
    });
    const decision = decideConditions({ service: current, now: deps.now(), ownership: owned, config: parsed, nodes, status, conflicts });
    if (decision.conditionsChanged || !statusEquals(current.status?.loadBalancer?.ingress, status.ingress)) {
      const wait = deps.pacer.waitMs(key);
      if (wait > 0) {
        // Inside a burst: the pacer decides when; the decision (and its Events) is made again then, from what the
        // cache shows at that time, so the changes in between become one write.
        deps.requeueAfter(wait);
      } else {
        await patchStatus(client, current, status.ingress, decision.conditions);
        deps.pacer.wrote(key);
        wrote = true;
        changed = true;
        statusEvents = decision.events;
      }
    } else {
      statusEvents = decision.events;
    }
  };
  const [daemonSetDone, statusDone] = await Promise.allSettled([daemonSetSide(), statusSide()]);
  // Events in the order the writes had when they went one after the other: the DaemonSet's, then the status's.
  if (appliedEvent) emit(appliedEvent);
  if (statusDone.status === "fulfilled") statusEvents.forEach(emit);
  if (wrote) pending.wroteService(key, service.metadata?.resourceVersion);
  if (daemonSetDone.status === "rejected") throw daemonSetDone.reason;
  if (statusDone.status === "rejected") throw statusDone.reason;
  return changed ? "updated" : "unchanged";
}

/** Our cached lb-pods holding one of `ports` on one of `nodes`, each once. */
function visibleHolders(view: ReconcileView, nodes: readonly string[], ports: readonly { protocol: Protocol; port: number }[]): V1Pod[] {
  const found = new Map<string, V1Pod>();
  for (const node of nodes) {
    for (const { protocol, port } of ports) {
      for (const pod of view.podsHoldingPort(node, protocol, port)) found.set(`${pod.metadata?.namespace}/${pod.metadata?.name}`, pod);
    }
  }
  return [...found.values()];
}

/** Nodes where one of these pods waits unbound: the only nodes where a port conflict can be. */
function unboundNodes(pods: readonly V1Pod[]): string[] {
  const nodes = new Set<string>();
  for (const pod of pods) {
    if (pod.spec?.nodeName) continue;
    const node = podTargetNode(pod);
    if (node) nodes.add(node);
  }
  return [...nodes];
}

/** Other Services asking for one of this Service's ports, from the port index (not a scan of every Service). */
function competingCandidates(service: V1Service, view: ReconcileView): V1Service[] {
  const found = new Map<string, V1Service>();
  for (const port of service.spec?.ports ?? []) {
    for (const other of view.servicesWithPort(port.protocol ?? "TCP", port.port)) {
      if (other === service || (other.metadata?.namespace === service.metadata?.namespace && other.metadata?.name === service.metadata?.name)) continue;
      found.set(`${other.metadata?.namespace}/${other.metadata?.name}`, other);
    }
  }
  return [...found.values()];
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
    const stamp = eventStamp(now);
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
    const body = serviceEvent({
      service, type: ev.type, reason: ev.reason, message: ev.message, now,
      source: { component: "berth-controller" },
      reporting: { component: CONTROLLER_NAME, instance: this.instance },
      ...(prev ? { first: { firstTimestamp: prev.firstTimestamp, count: prev.count } } : {}),
    });
    await this.client.create(Resources.events, body as never, { namespace });
    const name = (body.metadata as { name: string }).name;
    this.seen.set(key, { name, count: prev?.count ?? 1, firstTimestamp: prev?.firstTimestamp ?? stamp, lastSent: now });
  }
}
