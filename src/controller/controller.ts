// The controller process: informers on Services (all namespaces), Nodes, our lb-pods and DaemonSets (our
// namespace, label-selected) and EndpointSlices; handlers that only enqueue Service keys (k3s servicelb's
// onChangePod / onChangeNode / onChangeEndpointSlice do the same); one deduplicating, rate-limited queue whose
// workers run reconcileService; a periodic full resync. Workers start only once every informer has synced, and
// only while this replica leads (client-go's leaderelection: the informers run in every replica so a new leader
// starts from a warm cache). Leadership is fenced (docs/design/0011-fenced-leadership-steps-down-in-process.md):
// each term's reconciles and Events write through a client bound to the term's AbortSignal, so losing the Lease
// cuts off their requests at once; the term's workers drain before the replica campaigns again, and a new term's
// queue never starts while the old term's reconciles still run.
import { FIELD_MANAGER, LABELS, MANAGED_BY } from "../lib/names.js";
import { noLog, Resources, type KubeClient, type KubeObject, type LogFn } from "../lib/kube/client.js";
import { realClock, type Clock, type TimerHandle } from "../lib/kube/clock.js";
import { Informer, type InformerOptions } from "../lib/kube/informer.js";
import { WorkQueue } from "../lib/kube/queue.js";
import type { BackoffConfig } from "../lib/kube/backoff.js";
import { fencedClient } from "../lib/kube/fence.js";
import { LeaderElector, type LeaderElectionOptions } from "../lib/kube/leader.js";
import type { ControllerMetrics } from "../lib/kube/metrics.js";
import { trimConfigMap, trimDaemonSet, trimEndpointSlice, trimNode, trimPod, trimService } from "./cache-trim.js";
import { hostPortIndexKey, hostPortIndexKeys } from "./conflicts.js";
import {
  EventRecorder,
  PendingWrites,
  PortHolderLookups,
  reconcileService,
  StatusPacer,
  type ReconcileResult,
  type ReconcileView,
  type StatusPacing,
} from "./reconcile.js";
import type { V1ConfigMap } from "@kubernetes/client-node";
import type { ControllerConfig, V1DaemonSet, V1EndpointSlice, V1Node, V1Pod, V1Service } from "./types.js";
import { parseServiceConfig } from "./service-config.js";
import { decideRulesConfigMapRepair, repairRulesConfigMaps, RULES_ORPHAN_GRACE_MS, RulesOrphanClock, wantedRulesConfigMap } from "./rules-configmap.js";
import { isPoolKey, isVipService, POOL_KEY_PREFIX, poolKey, VipState } from "./vip/state.js";

/** Who may write: the Lease election, or "always" for a single replica. */
export interface Leadership {
  start(): void;
  stop(): Promise<void>;
  isLeader(): boolean;
  /** While leading, the term's signal: aborted the moment this replica can no longer be sure it leads. */
  term(): AbortSignal | undefined;
  /**
   * Called on every change of isLeader(). On a step-down, the promise the listener returns (the workers drained)
   * is awaited before this replica campaigns again.
   */
  onChange(listener: (leading: boolean) => unknown): void;
}

export interface ControllerStats {
  reconciles: Record<ReconcileResult | "error", number>;
}

export interface ControllerOptions {
  client: KubeClient;
  config: ControllerConfig;
  /** Every Service is reconciled this often even without events. */
  resyncMs: number;
  workers?: number;
  /**
   * More workers that take only urgent keys (a Service waiting for its DaemonSet); default: as many as `workers`.
   * In a burst of new Services every ordinary worker can be busy with status writes of the earlier ones' rollouts,
   * and a new Service waited for one of them to finish; these let it start at once without letting ordinary work
   * run any wider against the API server (docs/design/0012-api-discipline-at-scale.md).
   */
  urgentWorkers?: number;
  /** Unset: this replica always leads. */
  leadership?: Leadership;
  /** Informer tuning (tests shorten the backoff and relist). */
  informer?: Pick<InformerOptions, "relistIntervalMs" | "backoff" | "watchTimeoutSeconds">;
  /** Per-key failure backoff of the queue. */
  queueBackoff?: BackoffConfig;
  clock?: Clock;
  log?: LogFn;
  /** How often one Service's status may be written during a burst (see StatusPacer); tests shorten it. */
  statusPacing?: StatusPacing;
  /** Prometheus metrics (reconciles, durations, queue depth, watch restarts); the client records API requests itself. */
  metrics?: ControllerMetrics;
  /** How long a rules ConfigMap must look orphaned before it is adopted or deleted (RULES_ORPHAN_GRACE_MS); tests shorten it. */
  rulesOrphanGraceMs?: number;
  /** Hook for tests: one call per processed key. */
  onReconcile?(key: string, result: ReconcileResult | "error", durationMs: number): void;
}

/** Leadership from a Lease (C2's LeaderElector, client-go semantics), as the Controller consumes it. */
export function leaseLeadership(options: Omit<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading">): Leadership & { elector: LeaderElector } {
  const listeners: ((leading: boolean) => unknown)[] = [];
  const elector = new LeaderElector({
    ...options,
    onStartedLeading: () => listeners.forEach((l) => l(true)),
    onStoppedLeading: () => Promise.all(listeners.map((l) => l(false))),
  });
  return {
    elector,
    start: () => elector.start(),
    stop: () => elector.stop(),
    isLeader: () => elector.isLeader(),
    term: () => elector.term,
    onChange: (l) => listeners.push(l),
  };
}

type Svc = V1Service & KubeObject;

const serviceKeyOfLabels = (labels: Record<string, string> | undefined): string | undefined => {
  const ns = labels?.[LABELS.serviceNamespace];
  const name = labels?.[LABELS.serviceName];
  return ns && name ? `${ns}/${name}` : undefined;
};

/** An EndpointSlice's Service (the kubernetes.io/service-name label the EndpointSlice controller sets). */
const sliceServiceKey = (s: KubeObject): string | undefined => {
  const svc = s.metadata?.labels?.["kubernetes.io/service-name"];
  return svc ? `${s.metadata?.namespace}/${svc}` : undefined;
};

const portKey = (protocol: string | undefined, port: number): string => `${protocol ?? "TCP"}/${port}`;

const keyOf = (o: KubeObject): string => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

/**
 * Objects of one informer grouped by keys derived from them (a Service key from the berth.dev/service-* labels, a
 * node name, a port), kept up to date by informer handlers, so a reconcile finds what it needs without scanning every
 * object (client-go's Indexer; at 1k Services x 10 nodes a scan per reconcile was most of the controller's CPU, and
 * a scan of every pod and Service per reconcile made one resync O(Services^2)).
 */
class KeyIndex<T extends KubeObject> {
  private readonly byKey = new Map<string, Map<string, T>>();

  constructor(inf: Informer<T>, private readonly keysOf: (o: T) => readonly string[] = (o) => optional(serviceKeyOfLabels(o.metadata?.labels))) {
    inf.addHandlers({
      onAdd: (o) => this.put(o),
      onUpdate: (old, o) => {
        this.drop(old);
        this.put(o);
      },
      onDelete: (o) => this.drop(o),
    });
  }

  get(key: string): T[] {
    return [...(this.byKey.get(key)?.values() ?? [])];
  }

  private put(o: T): void {
    for (const key of this.keysOf(o)) {
      let m = this.byKey.get(key);
      if (!m) this.byKey.set(key, (m = new Map()));
      m.set(keyOf(o), o);
    }
  }

  private drop(o: T): void {
    for (const key of this.keysOf(o)) {
      const m = this.byKey.get(key);
      m?.delete(keyOf(o));
      if (m?.size === 0) this.byKey.delete(key);
    }
  }
}

const optional = (key: string | undefined): string[] => (key === undefined ? [] : [key]);

/**
 * What about a Node can change a DaemonSet or a status: not its heartbeats (every 10 s to 1 min per node). A node
 * being deleted leaves the status at once (status.ts), so its deletionTimestamp counts.
 */
export function nodeFingerprint(n: V1Node): string {
  const ready = n.status?.conditions?.find((c) => c.type === "Ready")?.status ?? "";
  return JSON.stringify([n.metadata?.labels ?? {}, n.status?.addresses ?? [], ready, n.spec?.taints ?? [], n.spec?.unschedulable ?? false,
    n.metadata?.deletionTimestamp ?? null]);
}

export class Controller {
  readonly stats: ControllerStats = {
    reconciles: { unchanged: 0, updated: 0, cleaned: 0, deleted: 0, invalid: 0, "vip-unavailable": 0, "not-ours": 0, "waiting-for-cache": 0, error: 0 },
  };

  private readonly clock: Clock;
  private readonly log: LogFn;
  private readonly services: Informer<Svc>;
  private readonly nodes: Informer<V1Node & KubeObject>;
  private readonly pods: Informer<V1Pod & KubeObject>;
  private readonly daemonSets: Informer<V1DaemonSet & KubeObject>;
  private readonly slices: Informer<V1EndpointSlice & KubeObject>;
  /**
   * Our rules ConfigMaps, trimmed to names, labels and owners' uids: to notice one deleted (reconcile.ts writes it
   * again) or left without owner or mount (rules-configmap.ts repairs it).
   */
  private readonly configMaps: Informer<V1ConfigMap & KubeObject>;
  private readonly configMapIndex: KeyIndex<V1ConfigMap & KubeObject>;
  /** This term's first looks at rules ConfigMaps needing a repair (a new term starts with none). */
  private orphanClock: RulesOrphanClock | undefined;
  private queue: WorkQueue | undefined;
  private running: Promise<void> | undefined;
  /** The last term's workers finishing; a new term's queue waits for it. */
  private draining: Promise<void> | undefined;
  /** The term of a controller without leader election: never fenced. */
  private readonly alwaysLeading = new AbortController();
  private resyncTimer: TimerHandle | undefined;
  private synced = false;
  private stopped = false;
  private readonly pending: PendingWrites;
  private readonly view: ReconcileView;
  private readonly pacer: StatusPacer;
  private readonly holders = new PortHolderLookups();
  /** VIP mode: AddressPools, the allocator, pool status (src/controller/vip/). */
  private readonly vip: VipState;

  constructor(private readonly options: ControllerOptions) {
    this.clock = options.clock ?? realClock;
    this.log = options.log ?? noLog;
    const { client, config } = options;
    const common = { client, clock: this.clock, log: this.log, ...(options.metrics ? { metrics: options.metrics } : {}), ...(options.informer ?? {}) };
    // Our own objects are selected by label, so a busy berth-system (or a shared one) costs nothing.
    const ours = `${LABELS.managedBy}=${MANAGED_BY}`;
    this.services = new Informer<Svc>({ ...common, resource: Resources.services, transform: trimService });
    this.nodes = new Informer<V1Node & KubeObject>({ ...common, resource: Resources.nodes, transform: trimNode });
    this.pods = new Informer<V1Pod & KubeObject>({
      ...common, resource: Resources.pods, namespace: config.namespace, labelSelector: ours, transform: trimPod,
    });
    this.daemonSets = new Informer<V1DaemonSet & KubeObject>({
      ...common, resource: Resources.daemonSets, namespace: config.namespace, labelSelector: ours, transform: trimDaemonSet,
    });
    this.slices = new Informer<V1EndpointSlice & KubeObject>({ ...common, resource: Resources.endpointSlices, transform: trimEndpointSlice });
    // Metadata only (PartialObjectMetadata, as client-go's metadata informers): each ConfigMap holds up to 1 MiB of
    // rules the controller never reads, and a plain list at start would carry them all.
    this.configMaps = new Informer<V1ConfigMap & KubeObject>({
      ...common, resource: Resources.configMaps, namespace: config.namespace, labelSelector: ours, transform: trimConfigMap, metadataOnly: true,
    });
    this.vip = new VipState({
      client, clock: this.clock, log: this.log, ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.informer ? { informer: options.informer } : {}),
      enqueue: (key) => this.enqueue(key),
      vipServiceKeys: () => this.services.list(isVipService).map(keyOf),
    });
    this.pending = new PendingWrites(() => this.clock.now());
    this.pacer = new StatusPacer(() => this.clock.now(), options.statusPacing);

    // Registered before the enqueueing handlers, so a reconcile never sees an index behind its cache.
    const podIndex = new KeyIndex(this.pods);
    const podsByHostPort = new KeyIndex(this.pods, hostPortIndexKeys);
    const daemonSetIndex = new KeyIndex(this.daemonSets);
    const sliceIndex = new KeyIndex(this.slices, (s) => optional(sliceServiceKey(s)));
    const configMapIndex = (this.configMapIndex = new KeyIndex(this.configMaps));
    const servicesByPort = new KeyIndex(this.services, (s) => (s.spec?.type === "LoadBalancer" ? (s.spec.ports ?? []).map((p) => portKey(p.protocol, p.port)) : []));
    this.view = {
      service: (key) => this.services.get(key),
      nodes: () => this.nodes.list(),
      daemonSetsFor: (key) => daemonSetIndex.get(key),
      podsFor: (key) => podIndex.get(key),
      podsHoldingPort: (node, protocol, port) => podsByHostPort.get(hostPortIndexKey(node, protocol, port)),
      endpointSlicesFor: (key) => sliceIndex.get(key),
      servicesWithPort: (protocol, port) => servicesByPort.get(portKey(protocol, port)),
      configMapsFor: (key) => configMapIndex.get(key).map((cm) => cm.metadata?.name as string),
    };
    // A deleted pod's holder lookup is never needed again.
    this.pods.addHandlers({ onDelete: (p) => this.holders.forget(p.metadata?.uid) });
    this.services.addHandlers({ onDelete: (s) => this.pacer.forget(keyOf(s)) });
    this.wireHandlers();
  }

  /** Starts informers (and, once synced and leading, workers); resolves when the caches are synced. */
  async start(): Promise<void> {
    for (const inf of this.informers()) inf.start();
    // Not waited for: VIP-mode Services wait for the pools (the CRD may be missing; hostPort mode must not wait).
    this.vip.start();
    const leadership = this.options.leadership;
    leadership?.onChange((leading) => {
      if (leading) return this.startWorkers();
      // Returned: the election campaigns again only once this term's reconciles have drained.
      return this.stopWorkers();
    });
    leadership?.start();
    await Promise.all(this.informers().map((inf) => inf.synced));
    if (this.stopped) return;
    this.synced = true;
    this.log("info", "caches synced", { services: this.services.size, nodes: this.nodes.size, daemonSets: this.daemonSets.size });
    if (!leadership || leadership.isLeader()) this.startWorkers();
  }

  /** Stops workers (finishing the reconcile in flight), informers and the election (releasing the lease). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.stopWorkers();
    await this.options.leadership?.stop();
    await Promise.all(this.informers().map((inf) => inf.stop()));
    await this.vip.stop();
  }

  /** /readyz: caches synced (a follower is ready too: it is ready to take over). */
  isReady(): boolean {
    return this.synced && !this.stopped;
  }

  isLeader(): boolean {
    return this.options.leadership ? this.options.leadership.isLeader() : true;
  }

  /** Keys waiting or in progress (for the queue depth gauge). */
  queueDepth(): number {
    return this.queue ? this.queue.depth + this.queue.processing + this.queue.waiting : 0;
  }

  informerStats(): Record<string, { watchRestarts: number; relists: number; errors: number }> {
    const out: Record<string, { watchRestarts: number; relists: number; errors: number }> = {};
    for (const [name, inf] of Object.entries({
      services: this.services, nodes: this.nodes, pods: this.pods, daemonsets: this.daemonSets, endpointslices: this.slices,
      configmaps: this.configMaps, ...this.vip.informers(),
    })) {
      out[name] = { watchRestarts: inf.stats.watchRestarts, relists: inf.stats.relists, errors: inf.stats.errors };
    }
    return out;
  }

  private informers(): Informer<KubeObject>[] {
    return [this.services, this.nodes, this.pods, this.daemonSets, this.slices, this.configMaps] as Informer<KubeObject>[];
  }

  private enqueue(key: string | undefined): void {
    if (key !== undefined) this.queue?.add(key);
  }

  /**
   * A Service event: urgent when the Service waits for its DaemonSet (new without one, or its spec changed), so a
   * new Service is not queued behind the status-only keys of a rollout in progress (at 1k Services the pod events of
   * earlier Services kept a new one waiting seconds for its DaemonSet). Our own status and finalizer writes come back
   * as ordinary keys, even when their echo arrives before our DaemonSet's (a separate watch): taken as "no DaemonSet
   * yet", those echoes were ~40% of the urgent lane in a 1,000-Service burst, each a reconcile ahead of a new Service.
   */
  private enqueueService(old: Svc | undefined, s: Svc): void {
    const key = keyOf(s);
    const waitsForDaemonSet = s.spec?.type === "LoadBalancer" && !s.metadata?.deletionTimestamp &&
      (old === undefined ? this.view.daemonSetsFor(key).length === 0 : old.metadata?.generation !== s.metadata?.generation);
    this.queue?.add(key, { urgent: waitsForDaemonSet });
  }

  /** For events that can only change a status: when the pacer would let this Service's status be written. */
  private enqueueForStatus(key: string | undefined): void {
    if (key !== undefined) this.queue?.addAfter(key, this.pacer.event(key));
  }

  /** Every Service that is a LoadBalancer or carries something of ours, and every DaemonSet's Service. */
  private enqueueAll(): void {
    for (const s of this.services.list()) {
      if (s.spec?.type === "LoadBalancer" || s.metadata?.finalizers?.length) this.enqueue(keyOf(s));
    }
    // DaemonSets whose Service is gone or not ours: the orphan sweep (at start, and on every resync).
    for (const ds of this.daemonSets.list()) this.enqueue(serviceKeyOfLabels(ds.metadata?.labels));
    for (const name of this.vip.poolNames()) this.enqueue(poolKey(name));
    // Rules ConfigMaps left without owner or mount (rules-configmap.ts): their Services' reconciles repair them.
    const repair = new Set<string>();
    for (const cm of this.configMaps.list()) {
      const key = serviceKeyOfLabels(cm.metadata?.labels);
      if (key === undefined || repair.has(key)) continue;
      const look = decideRulesConfigMapRepair({ configMap: cm, daemonSets: this.view.daemonSetsFor(key), wanted: undefined, suspectForMs: 0, graceMs: 1 });
      if (look.action !== "none") repair.add(key);
    }
    for (const key of repair) this.enqueue(key);
    this.orphanClock?.retainKeys(repair);
  }

  private wireHandlers(): void {
    this.services.addHandlers({
      onAdd: (s) => this.enqueueService(undefined, s),
      onUpdate: (old, s) => this.enqueueService(old, s),
      onDelete: (s) => this.enqueue(keyOf(s)),
    });
    // Pods of one DaemonSet are created, scheduled and become Ready node by node, a few ms to minutes apart. Their
    // events only matter for the status: a Service whose status was written recently waits in the queue until the
    // pacer lets it write again, so that burst costs one reconcile per write, not one per pod event; a quiet
    // Service is reconciled at once (an isolated readiness change reaches the status in milliseconds).
    const byLabels = {
      onAdd: (o: KubeObject) => this.enqueueForStatus(serviceKeyOfLabels(o.metadata?.labels)),
      onUpdate: (_old: KubeObject, o: KubeObject) => this.enqueueForStatus(serviceKeyOfLabels(o.metadata?.labels)),
      onDelete: (o: KubeObject) => this.enqueueForStatus(serviceKeyOfLabels(o.metadata?.labels)),
    };
    this.pods.addHandlers(byLabels);
    this.daemonSets.addHandlers({
      onAdd: (o) => this.enqueue(serviceKeyOfLabels(o.metadata?.labels)),
      onUpdate: (_old, o) => this.enqueue(serviceKeyOfLabels(o.metadata?.labels)),
      onDelete: (o) => this.enqueue(serviceKeyOfLabels(o.metadata?.labels)),
    });
    // A rules ConfigMap gone (deleted by hand, or by anything else): its Service's reconcile writes it again if its
    // DaemonSet still mounts it. Adds and updates are our own writes and need nothing. One being deleted still counts
    // as there until it is gone (writing it again meanwhile would not stop the deletion); the garbage collector's
    // deletes after a DaemonSet's cost one reconcile that finds nothing to do.
    this.configMaps.addHandlers({ onDelete: (cm) => this.enqueue(serviceKeyOfLabels(cm.metadata?.labels)) });
    // Only Local-policy Services read EndpointSlices; the cheap filter saves waking the queue for every endpoint
    // change in the cluster.
    const sliceMatters = (s: V1EndpointSlice & KubeObject): void => {
      const key = sliceServiceKey(s);
      if (key && this.services.get(key)?.spec?.externalTrafficPolicy === "Local") this.enqueue(key);
    };
    this.slices.addHandlers({ onAdd: sliceMatters, onUpdate: (_o, s) => sliceMatters(s), onDelete: sliceMatters });
    const allOurs = (): void => {
      for (const s of this.services.list()) if (s.spec?.type === "LoadBalancer") this.enqueue(keyOf(s));
    };
    this.nodes.addHandlers({
      onAdd: allOurs,
      onUpdate: (old, n) => {
        if (nodeFingerprint(old) !== nodeFingerprint(n)) allOurs();
      },
      onDelete: allOurs,
    });
  }

  private startWorkers(): void {
    if (this.queue || !this.synced || this.stopped) return;
    const term = this.options.leadership ? this.options.leadership.term() : this.alwaysLeading.signal;
    if (!term || term.aborted) return;
    if (this.draining) {
      // The previous term's reconciles still run: a key must never be reconciled by two terms at once.
      void this.draining.then(() => this.startWorkers());
      return;
    }
    this.log("info", "leading: starting workers", { fieldManager: FIELD_MANAGER });
    // Everything this term writes, its Events included, goes through the term's client (src/lib/kube/fence.ts).
    const client = fencedClient(this.options.client, term, this.options.metrics);
    const events = new EventRecorder(client, this.clock, this.log);
    const metrics = this.options.metrics;
    const queue = new WorkQueue({
      clock: this.clock, log: this.log, name: "services", ...(this.options.queueBackoff ? { backoff: this.options.queueBackoff } : {}),
      ...(metrics ? { observeWait: (lane: string, ms: number) => metrics.queued("services", lane, ms / 1000) } : {}),
    });
    this.queue = queue;
    this.options.metrics?.observeQueue("services", queue);
    // Fenced: stop handing out keys at once, without waiting for the election loop to report the step-down.
    term.addEventListener("abort", () => {
      if (this.queue === queue) void this.stopWorkers();
    }, { once: true });
    const results = new Map<string, ReconcileResult>();
    const orphanClock = (this.orphanClock = new RulesOrphanClock(() => this.clock.now()));
    // Before the term's first reconcile: the allocator rebuilt from what the Services' status says.
    this.vip.reset(this.services.list(), (s) => {
      const parsed = parseServiceConfig(s, this.options.config);
      return parsed.ok ? this.vip.describe(s, parsed.value) : undefined;
    });
    this.running = queue.run(async (key) => {
      if (term.aborted) return;
      if (isPoolKey(key)) {
        results.set(key, await this.vip.reconcilePool(key.slice(POOL_KEY_PREFIX.length), client, new Date(this.clock.now())));
        return undefined;
      }
      let requeueAfterMs: number | undefined;
      const result = await reconcileService(key, {
        client, config: this.options.config, view: this.view, events,
        pending: this.pending, pacer: this.pacer, holders: this.holders, now: () => new Date(this.clock.now()), log: this.log,
        vip: this.vip, enqueue: (k) => this.enqueue(k),
        requeueAfter: (ms) => {
          requeueAfterMs = Math.min(requeueAfterMs ?? ms, ms);
        },
      });
      results.set(key, result);
      // Then this Service's rules ConfigMaps left without owner or mount, from the cache (no request when none):
      // after its reconcile, in the same key, so never between the writes of its own applyWithRules.
      await repairRulesConfigMaps(key, {
        client, namespace: this.options.config.namespace, configMaps: this.configMapIndex.get(key), daemonSets: this.view.daemonSetsFor(key),
        wanted: () => wantedRulesConfigMap(this.services.get(key), this.options.config), clock: orphanClock,
        graceMs: this.options.rulesOrphanGraceMs ?? RULES_ORPHAN_GRACE_MS, log: this.log,
      });
      return requeueAfterMs !== undefined ? { requeueAfterMs } : undefined;
    }, {
      concurrency: this.options.workers ?? 4,
      urgentConcurrency: this.options.urgentWorkers ?? this.options.workers ?? 4,
      onError: (key, error, requeues) => {
        this.log(requeues > 5 ? "warn" : "info", "reconcile failed, retrying", { key, error: String(error), requeues });
      },
      onDone: (key, result, durationMs) => {
        const r: ReconcileResult | "error" = result === "error" ? "error" : (results.get(key) ?? "unchanged");
        results.delete(key);
        this.stats.reconciles[r]++;
        this.options.metrics?.reconcile(r, durationMs / 1000);
        this.options.onReconcile?.(key, r, durationMs);
      },
    });
    this.enqueueAll();
    const resync = (): void => {
      this.resyncTimer = this.clock.setTimer(this.options.resyncMs, () => {
        this.enqueueAll();
        resync();
      });
    };
    resync();
  }

  /** Stops the term's queue; resolves once its reconciles have finished (the same promise to every caller). */
  private stopWorkers(): Promise<void> {
    this.resyncTimer?.cancel();
    this.resyncTimer = undefined;
    const queue = this.queue;
    this.queue = undefined;
    if (!queue) return this.draining ?? Promise.resolve();
    const started = this.clock.now();
    const inFlight = queue.processing;
    this.log("info", "stopping workers", { inFlight });
    const running = this.running;
    const drained: Promise<void> = (async () => {
      await queue.shutdown();
      await running;
    })().finally(() => {
      if (this.draining === drained) this.draining = undefined;
      this.log("info", "workers stopped", { inFlight, drainMs: this.clock.now() - started });
    });
    this.draining = drained;
    return drained;
  }
}

/** `berth controller`: builds the client, the election and the health server from the parsed flags, runs until SIGTERM. */
export async function runController(cmd: import("./command.js").ControllerCommandConfig): Promise<void> {
  const [{ KubeClient }, { defaultControllerConfig }, { ControllerMetrics }, { startHealthServer }] = await Promise.all([
    import("../lib/kube/client.js"), import("./types.js"), import("../lib/kube/metrics.js"), import("../lib/kube/health.js"),
  ]);
  const log: LogFn = (level, message, fields) => {
    if (level === "debug") return;
    process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level, msg: message, ...(fields ?? {}) })}\n`);
  };
  const metrics = new ControllerMetrics();
  const client = await KubeClient.fromKubeconfig({ ...(cmd.kubeconfig ? { kubeconfig: cmd.kubeconfig } : {}), userAgent: "berth-controller", metrics });
  const config = defaultControllerConfig({
    namespace: cmd.namespace, lbPodImage: cmd.lbPodImage, imagePullPolicy: cmd.imagePullPolicy, claimUnsetClass: cmd.claimUnsetClass,
    forwardingSysctls: cmd.forwardingSysctls, lbPodBackend: cmd.lbPodBackend,
  });
  const leadership = cmd.leaderElect
    ? leaseLeadership({
      client, namespace: cmd.leaseNamespace, name: cmd.leaseName, identity: cmd.identity,
      leaseDurationSeconds: Math.max(1, Math.round(cmd.leaseDurationMs / 1000)), renewDeadlineMs: cmd.renewDeadlineMs,
      retryPeriodMs: cmd.retryPeriodMs, metrics, log,
      onNewLeader: (identity) => log("info", "leader", { identity: identity || "(none)" }),
    })
    : undefined;
  const controller = new Controller({ client, config, resyncMs: cmd.resyncMs, workers: cmd.workers, log, metrics, ...(leadership ? { leadership } : {}) });
  const health = cmd.listen
    ? await startHealthServer({
      host: cmd.listen.host, port: cmd.listen.port, metrics,
      ready: () => controller.isReady() || "informers not synced yet",
    })
    : undefined;
  if (health) log("info", "serving /healthz /readyz /metrics", { url: health.url });
  const done = new Promise<void>((resolve) => {
    const onSignal = (signal: string): void => {
      log("info", "stopping", { signal });
      // Workers first (the reconcile in flight finishes), then the Lease is released so a standby takes over at
      // once instead of waiting out the lease duration (client-go ReleaseOnCancel).
      void controller.stop().then(async () => {
        await health?.close();
        client.close();
        log("info", "stopped");
        resolve();
      });
    };
    process.once("SIGTERM", () => onSignal("SIGTERM"));
    process.once("SIGINT", () => onSignal("SIGINT"));
  });
  log("info", "starting", { namespace: cmd.namespace, leaderElect: cmd.leaderElect, identity: cmd.identity });
  await controller.start();
  log("info", "caches synced; reconciling while leader");
  await done;
}
