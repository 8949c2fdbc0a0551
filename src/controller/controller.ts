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
import { EventRecorder, PendingWrites, reconcileService, type ReconcileResult, type ReconcileView } from "./reconcile.js";
import type { ControllerConfig, V1DaemonSet, V1EndpointSlice, V1Node, V1Pod, V1Service } from "./types.js";

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
  /** Unset: this replica always leads. */
  leadership?: Leadership;
  /** Informer tuning (tests shorten the backoff and relist). */
  informer?: Pick<InformerOptions, "relistIntervalMs" | "backoff" | "watchTimeoutSeconds">;
  /** Per-key failure backoff of the queue. */
  queueBackoff?: BackoffConfig;
  clock?: Clock;
  log?: LogFn;
  /** Pod and DaemonSet events wait this long in the queue so a burst becomes one reconcile; default 100 ms. */
  podBatchMs?: number;
  /** Prometheus metrics (reconciles, durations, queue depth, watch restarts); the client records API requests itself. */
  metrics?: ControllerMetrics;
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

const keyOf = (o: KubeObject): string => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

/**
 * Objects of one informer grouped by the Service key in their berth.dev/service-* labels, kept up to date by
 * informer handlers, so a reconcile finds its pods and DaemonSets without scanning every one (client-go's
 * Indexer; at 1k Services x 10 nodes a scan per reconcile was most of the controller's CPU).
 */
class ServiceKeyIndex<T extends KubeObject> {
  private readonly byKey = new Map<string, Map<string, T>>();

  constructor(inf: Informer<T>, private readonly keyFn: (o: T) => string | undefined = (o) => serviceKeyOfLabels(o.metadata?.labels)) {
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
    const key = this.keyFn(o);
    if (key === undefined) return;
    let m = this.byKey.get(key);
    if (!m) this.byKey.set(key, (m = new Map()));
    m.set(keyOf(o), o);
  }

  private drop(o: T): void {
    const key = this.keyFn(o);
    if (key === undefined) return;
    const m = this.byKey.get(key);
    m?.delete(keyOf(o));
    if (m?.size === 0) this.byKey.delete(key);
  }
}

/** What about a Node can change a DaemonSet or a status: not its heartbeats (every 10 s to 1 min per node). */
function nodeFingerprint(n: V1Node): string {
  const ready = n.status?.conditions?.find((c) => c.type === "Ready")?.status ?? "";
  return JSON.stringify([n.metadata?.labels ?? {}, n.status?.addresses ?? [], ready, n.spec?.taints ?? [], n.spec?.unschedulable ?? false]);
}

/**
 * The parts of a pod the decisions read (status.ts, conflicts.ts): a full pod with managedFields is ~10-25 KiB in
 * memory, this ~1 KiB, and the controller caches one pod per Service per node (100k at 1k Services x 100 nodes).
 * client-go controllers do the same with an informer transform (SetTransform, e.g. dropping managedFields).
 */
export function trimPod(pod: V1Pod & KubeObject): V1Pod & KubeObject {
  const m = pod.metadata as V1Pod["metadata"] & KubeObject["metadata"];
  const required = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  const ports = (c: { name: string; ports?: unknown; restartPolicy?: string }) => ({
    name: c.name, ...(c.ports ? { ports: c.ports } : {}), ...(c.restartPolicy ? { restartPolicy: c.restartPolicy } : {}),
  });
  return {
    apiVersion: pod.apiVersion, kind: pod.kind,
    metadata: {
      name: m?.name, namespace: m?.namespace, uid: m?.uid, resourceVersion: m?.resourceVersion, labels: m?.labels,
      ...(m?.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    spec: {
      ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
      ...(pod.spec?.hostNetwork ? { hostNetwork: true } : {}),
      ...(required ? { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: required } } } : {}),
      containers: (pod.spec?.containers ?? []).map(ports),
      ...(pod.spec?.initContainers ? { initContainers: pod.spec.initContainers.map(ports) } : {}),
    },
    status: {
      ...(pod.status?.phase ? { phase: pod.status.phase } : {}), ...(pod.status?.conditions ? { conditions: pod.status.conditions } : {}),
      // A pod the kubelet rejected (SysctlForbidden): computeStatus and the Service's condition name the reason.
      ...(pod.status?.phase === "Failed" ? { reason: pod.status.reason, message: pod.status.message } : {}),
    },
  } as V1Pod & KubeObject;
}

/**
 * The client as one informer sees it, with every listed and watched object passed through `trim` before the
 * informer caches it (the informer has no transform hook of its own).
 */
function trimmingClient<T extends KubeObject>(client: KubeClient, trim: (o: T) => T): KubeClient {
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === "listAll") {
        return async (...args: Parameters<KubeClient["listAll"]>) => {
          const r = await target.listAll<T>(...args);
          return { ...r, items: r.items.map(trim) };
        };
      }
      if (prop === "watch") {
        return async function* (...args: Parameters<KubeClient["watch"]>) {
          for await (const ev of target.watch<T>(...args)) yield ev.type === "BOOKMARK" ? ev : { ...ev, object: trim(ev.object) };
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
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

  constructor(private readonly options: ControllerOptions) {
    this.clock = options.clock ?? realClock;
    this.log = options.log ?? noLog;
    const { client, config } = options;
    const common = { client, clock: this.clock, log: this.log, ...(options.metrics ? { metrics: options.metrics } : {}), ...(options.informer ?? {}) };
    // Our own objects are selected by label, so a busy berth-system (or a shared one) costs nothing.
    const ours = `${LABELS.managedBy}=${MANAGED_BY}`;
    this.services = new Informer<Svc>({ ...common, resource: Resources.services });
    this.nodes = new Informer({ ...common, resource: Resources.nodes });
    this.pods = new Informer({
      ...common, client: trimmingClient(client, trimPod), resource: Resources.pods, namespace: config.namespace, labelSelector: ours,
    });
    this.daemonSets = new Informer({ ...common, resource: Resources.daemonSets, namespace: config.namespace, labelSelector: ours });
    this.slices = new Informer({ ...common, resource: Resources.endpointSlices });
    this.pending = new PendingWrites(() => this.clock.now());

    // Registered before the enqueueing handlers, so a reconcile never sees an index behind its cache.
    const podIndex = new ServiceKeyIndex(this.pods);
    const daemonSetIndex = new ServiceKeyIndex(this.daemonSets);
    const sliceIndex = new ServiceKeyIndex(this.slices, sliceServiceKey);
    this.view = {
      service: (key) => this.services.get(key),
      nodes: () => this.nodes.list(),
      daemonSetsFor: (key) => daemonSetIndex.get(key),
      podsFor: (key) => podIndex.get(key),
      allPods: () => this.pods.list(),
      endpointSlicesFor: (key) => sliceIndex.get(key),
      services: () => this.services.list(),
    };
    this.wireHandlers();
  }

  /** Starts informers (and, once synced and leading, workers); resolves when the caches are synced. */
  async start(): Promise<void> {
    for (const inf of this.informers()) inf.start();
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
    for (const [name, inf] of Object.entries({ services: this.services, nodes: this.nodes, pods: this.pods, daemonsets: this.daemonSets, endpointslices: this.slices })) {
      out[name] = { watchRestarts: inf.stats.watchRestarts, relists: inf.stats.relists, errors: inf.stats.errors };
    }
    return out;
  }

  private informers(): Informer<KubeObject>[] {
    return [this.services, this.nodes, this.pods, this.daemonSets, this.slices] as Informer<KubeObject>[];
  }

  private enqueue(key: string | undefined): void {
    if (key !== undefined) this.queue?.add(key);
  }

  /** Every Service that is a LoadBalancer or carries something of ours, and every DaemonSet's Service. */
  private enqueueAll(): void {
    for (const s of this.services.list()) {
      if (s.spec?.type === "LoadBalancer" || s.metadata?.finalizers?.length) this.enqueue(keyOf(s));
    }
    // DaemonSets whose Service is gone or not ours: the orphan sweep (at start, and on every resync).
    for (const ds of this.daemonSets.list()) this.enqueue(serviceKeyOfLabels(ds.metadata?.labels));
  }

  private wireHandlers(): void {
    this.services.addHandlers({
      onAdd: (s) => this.enqueue(keyOf(s)),
      onUpdate: (_old, s) => this.enqueue(keyOf(s)),
      onDelete: (s) => this.enqueue(keyOf(s)),
    });
    // Pods of one DaemonSet are created, scheduled and become Ready node by node, a few ms apart: a short batching
    // window turns that burst into one reconcile and one status write instead of one per pod event.
    const batchMs = this.options.podBatchMs ?? 100;
    const byLabels = (delayMs: number) => {
      const add = (o: KubeObject): void => {
        const key = serviceKeyOfLabels(o.metadata?.labels);
        if (key !== undefined) this.queue?.addAfter(key, delayMs);
      };
      return { onAdd: add, onUpdate: (_old: KubeObject, o: KubeObject) => add(o), onDelete: add };
    };
    this.pods.addHandlers(byLabels(batchMs));
    this.daemonSets.addHandlers(byLabels(batchMs));
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
    const queue = new WorkQueue({ clock: this.clock, log: this.log, name: "services", ...(this.options.queueBackoff ? { backoff: this.options.queueBackoff } : {}) });
    this.queue = queue;
    this.options.metrics?.observeQueue("services", queue);
    // Fenced: stop handing out keys at once, without waiting for the election loop to report the step-down.
    term.addEventListener("abort", () => {
      if (this.queue === queue) void this.stopWorkers();
    }, { once: true });
    const results = new Map<string, ReconcileResult>();
    this.running = queue.run(async (key) => {
      if (term.aborted) return;
      const result = await reconcileService(key, {
        client, config: this.options.config, view: this.view, events,
        pending: this.pending, now: () => new Date(this.clock.now()), log: this.log,
      });
      results.set(key, result);
    }, {
      concurrency: this.options.workers ?? 4,
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
    forwardingSysctls: cmd.forwardingSysctls,
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
