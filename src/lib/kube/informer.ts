// Our own list-then-watch (docs/architecture.md, "Reliability"). client-node 1.x informers stop for good on their first
// non-410 error and reconnect with no backoff; this one never gives up and never crashes the process:
// - list (paged), then watch from the list's resourceVersion with bookmarks, resuming from the last version seen;
// - a watch the server ends (timeoutSeconds, an API server restart, a proxy idle timeout) is reopened at once,
//   unless it ended without delivering anything within a second: then it backs off, like client-go's reflector
//   ("very short watch") does, so a server that closes every watch immediately cannot spin us;
// - 410 Gone (history compacted) relists and diffs the fresh list against the cache, so objects deleted while we
//   were away are reported as deletes and changed ones as updates;
// - other errors back off exponentially with jitter; 429 waits at least its Retry-After;
// - a periodic full relist (kubernetes-fluent-client's relistInterval) can be asked for (relistIntervalMs); it is off
//   by default, as in client-go's reflector: at 1,000 Services x 100 nodes each one cost ~200 list pages, the only
//   requests an idle controller made besides its Lease (docs/design/0003-our-own-informer.md).
// Handlers are meant to only enqueue keys (docs/architecture.md, "Conventions"): they run synchronously and a throwing handler is logged,
// never fatal.
import { Backoff, type BackoffConfig } from "./backoff.js";
import { realClock, type Clock, type TimerHandle } from "./clock.js";
import { isGone, KubeError, noLog, type KubeClient, type KubeObject, type LogFn, type Resource } from "./client.js";

/** client-go's MetaNamespaceKeyFunc: "namespace/name", or "name" for cluster-scoped objects. */
export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? "";
  return ns ? `${ns}/${name}` : name;
}

/** The inverse of objectKey. */
export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf("/");
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

export interface InformerHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  /** The object's last known state. */
  onDelete?(obj: T): void;
}

/** Hooks for metrics.ts (the informer does not depend on prom-client). */
export interface InformerMetrics {
  /** reason: "closed" (server ended it), "expired" (410), "error", "relist" (periodic). */
  watchRestart(resource: string, reason: string): void;
  /** reason: "expired" (410), "periodic". The initial list is not a relist. */
  relist(resource: string, reason: string): void;
}

export interface InformerOptions<T extends KubeObject = KubeObject> {
  client: KubeClient;
  resource: Resource;
  /** Watch one namespace; unset = all namespaces (or a cluster-scoped resource). */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Full relist every this many ms; 0 = never (the default, as client-go's reflector). */
  relistIntervalMs?: number;
  /** Re-deliver every cached object as onUpdate(obj, obj) this often (client-go's resync); 0 = never (default). */
  resyncIntervalMs?: number;
  /** Server-side watch timeout, randomised in [t, 2t) like client-go's reflector; default 300 s. */
  watchTimeoutSeconds?: number;
  /** Default: 800 ms doubling to 30 s, jitter 1.0 (client-go's reflector backoff). */
  backoff?: BackoffConfig;
  /** List and watch metadata only (PartialObjectMetadata): for objects whose content the caller never reads. */
  metadataOnly?: boolean;
  /** List page size; default 500. */
  pageSize?: number;
  clock?: Clock;
  random?: () => number;
  metrics?: InformerMetrics;
  log?: LogFn;
  /** Label for logs and metrics; default the resource plural. */
  name?: string;
  /**
   * Applied to every listed and watched object before it is cached or handed to a handler (client-go's
   * SharedIndexInformer.SetTransform): a controller keeps only the fields it reads, so a cache of 100k pods costs
   * ~1 KiB each instead of 10-25 KiB. Must be pure and keep metadata.name, namespace and resourceVersion.
   */
  transform?: (obj: T) => T;
}

/** Counters a test or a metric can read. */
export interface InformerStats {
  /** Watches that ended and were reopened (any reason). */
  watchRestarts: number;
  /** Lists after the first (410 or periodic). */
  relists: number;
  /** Watch events applied (not counting bookmarks). */
  events: number;
  bookmarks: number;
  /** Failed list or watch calls. */
  errors: number;
  /** resourceVersion the next watch resumes from. */
  resourceVersion: string;
  lastError?: string;
}

const DEFAULT_BACKOFF: BackoffConfig = { baseMs: 800, maxMs: 30_000, factor: 2, jitter: 1 };

export class Informer<T extends KubeObject = KubeObject> {
  /** Resolves after the first complete list has been delivered to the handlers; never rejects. */
  readonly synced: Promise<void>;
  readonly stats: InformerStats = { watchRestarts: 0, relists: 0, events: 0, bookmarks: 0, errors: 0, resourceVersion: "" };

  private cache = new Map<string, T>();
  private readonly handlers = new Set<InformerHandlers<T>>();
  private resolveSynced: () => void = () => undefined;
  private hasSynced = false;
  private loop: Promise<void> | undefined;
  private stopper = new AbortController();
  private watchAbort: AbortController | undefined;
  private relistDue = false;
  private timers: TimerHandle[] = [];
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: LogFn;
  private readonly label: string;

  constructor(private readonly options: InformerOptions<T>) {
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.log = options.log ?? noLog;
    this.label = options.name ?? options.resource.plural;
    this.synced = new Promise<void>((resolve) => {
      this.resolveSynced = resolve;
    });
  }

  /** Registers handlers (before start() to see the initial adds); returns a function that removes them. */
  addHandlers(h: InformerHandlers<T>): () => void {
    this.handlers.add(h);
    return () => this.handlers.delete(h);
  }

  isSynced(): boolean {
    return this.hasSynced;
  }

  /** Starts listing and watching in the background; calling it again does nothing. */
  start(): void {
    if (this.loop) return;
    this.stopper = new AbortController();
    this.loop = this.run().catch((e: unknown) => {
      // run() catches everything it expects; this is a bug guard, logged rather than crashing the process.
      this.log("error", `informer ${this.label} stopped unexpectedly`, { error: String(e) });
    });
    const resync = this.options.resyncIntervalMs ?? 0;
    if (resync > 0) this.scheduleResync(resync);
  }

  /** Stops the watch and all timers; resolves once the loop has exited. */
  async stop(): Promise<void> {
    this.stopper.abort();
    this.watchAbort?.abort();
    for (const t of this.timers) t.cancel();
    this.timers = [];
    await this.loop;
    this.loop = undefined;
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(filter?: (obj: T) => boolean): T[] {
    const all = [...this.cache.values()];
    return filter ? all.filter(filter) : all;
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  get size(): number {
    return this.cache.size;
  }

  // ---- the loop ----

  private get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(this.options.backoff ?? DEFAULT_BACKOFF, this.random);
    let needList = true;
    let listReason = "initial";
    let relistTimer: TimerHandle | undefined;
    while (!this.stopped) {
      if (needList) {
        try {
          this.stats.resourceVersion = await this.listAndReplace(listReason);
          needList = false;
          this.relistDue = false;
          backoff.reset();
          relistTimer?.cancel();
          relistTimer = this.scheduleRelist();
        } catch (e) {
          if (this.stopped) break;
          await this.waitAfterError(e, backoff, "list");
          continue;
        }
      }
      if (this.stopped) break;
      const opened = this.clock.now();
      let received = 0;
      const watchAbort = new AbortController();
      this.watchAbort = watchAbort;
      const signal = watchAbort.signal;
      const onStop = (): void => watchAbort.abort();
      this.stopper.signal.addEventListener("abort", onStop, { once: true });
      const timeout = this.options.watchTimeoutSeconds ?? 300;
      const timeoutSeconds = Math.floor(timeout * (1 + this.random()));
      // The server ends the watch after timeoutSeconds; if a silently dead connection (no FIN, e.g. a NAT entry
      // dropped) means that end never arrives, this watchdog ends it a little later on our side.
      const watchdog = this.clock.setTimer((timeoutSeconds + 30) * 1000, () => {
        this.log("info", `watch ${this.label}: no end from the server after ${timeoutSeconds + 30} s, reopening`);
        watchAbort.abort();
      });
      let restartReason: string;
      try {
        for await (const ev of this.options.client.watch<T>(this.options.resource, {
          ...(this.options.namespace !== undefined ? { namespace: this.options.namespace } : {}),
          ...(this.options.labelSelector ? { labelSelector: this.options.labelSelector } : {}),
          ...(this.options.fieldSelector ? { fieldSelector: this.options.fieldSelector } : {}),
          ...(this.options.metadataOnly ? { metadataOnly: true } : {}),
          resourceVersion: this.stats.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
          signal,
        })) {
          received++;
          this.apply(ev.type, ev.object);
        }
        watchdog.cancel();
        this.stopper.signal.removeEventListener("abort", onStop);
        if (this.stopped) break;
        if (this.relistDue) {
          needList = true;
          listReason = "periodic";
          restartReason = "relist";
        } else {
          restartReason = "closed";
        }
      } catch (e) {
        watchdog.cancel();
        this.stopper.signal.removeEventListener("abort", onStop);
        if (this.stopped) break;
        this.stats.watchRestarts++;
        if (this.relistDue) {
          // Our own periodic relist aborted the watch while it was still opening.
          this.options.metrics?.watchRestart(this.label, "relist");
          needList = true;
          listReason = "periodic";
          continue;
        }
        if (isGone(e)) {
          // The cacher answers a resume from a compacted resourceVersion with 410 (as an ERROR event): relist.
          this.options.metrics?.watchRestart(this.label, "expired");
          this.log("info", `watch ${this.label}: resourceVersion ${this.stats.resourceVersion} expired, relisting`);
          needList = true;
          listReason = "expired";
          continue;
        }
        this.options.metrics?.watchRestart(this.label, "error");
        await this.waitAfterError(e, backoff, "watch");
        continue;
      }
      this.stats.watchRestarts++;
      this.options.metrics?.watchRestart(this.label, restartReason);
      if (restartReason === "closed" && received === 0 && this.clock.now() - opened < 1000) {
        // client-go reflector: a watch that ends within a second having delivered nothing is treated as an error.
        const delay = backoff.next();
        this.log("debug", `watch ${this.label} closed immediately, reopening in ${delay} ms`);
        await this.clock.sleep(delay, this.stopper.signal);
      } else if (received > 0) {
        backoff.reset();
      }
    }
    relistTimer?.cancel();
  }

  private scheduleRelist(): TimerHandle | undefined {
    const every = this.options.relistIntervalMs ?? 0;
    if (every <= 0) return undefined;
    return this.clock.setTimer(every, () => {
      this.relistDue = true;
      this.watchAbort?.abort();
    });
  }

  private scheduleResync(every: number): void {
    const t = this.clock.setTimer(every, () => {
      this.timers = this.timers.filter((x) => x !== t);
      if (this.stopped) return;
      if (this.hasSynced) for (const obj of this.cache.values()) this.emit("update", obj, obj);
      this.scheduleResync(every);
    });
    this.timers.push(t);
  }

  private async waitAfterError(e: unknown, backoff: Backoff, what: string): Promise<void> {
    this.stats.errors++;
    this.stats.lastError = e instanceof Error ? e.message : String(e);
    let delay = backoff.next();
    if (e instanceof KubeError && e.retryAfterSeconds !== undefined && (e.code === 429 || e.code === 503)) {
      // The server said when to come back (APF's 429, a 503 during startup): never sooner than that.
      delay = Math.max(delay, e.retryAfterSeconds * 1000);
    }
    this.log(e instanceof KubeError && e.code !== 0 && e.code < 500 && e.code !== 429 ? "warn" : "info",
      `${what} ${this.label} failed, retrying in ${delay} ms`, { error: this.stats.lastError });
    await this.clock.sleep(delay, this.stopper.signal);
  }

  /**
   * Lists everything and brings the cache to it, emitting add / update / delete for the differences, item by item
   * as the pages arrive (client.listAll's `each`), then deletes for what the list no longer has. Nothing of the
   * list is held besides the cache itself and the set of objects it matched:
   * - an object whose resourceVersion is the one cached is the cached object (every write changes it): the cached
   *   one stays, the listed copy is dropped untransformed (a relist of 100,000 unchanged lb-pods held a second copy
   *   of each until the list ended: +65 MiB of heap at 1,000 x 100);
   * - a changed or new object replaces its entry at once, rather than in a second map of every key built beside
   *   the first and swapped in at the end (~12 MiB more at the relist's peak at 1,000 x 100, with a fresh key
   *   string per object).
   * A list that fails part-way leaves the entries it already replaced (each a newer state, as a watch event would
   * have made it, and reported as such) and deletes nothing; the next list finishes the job. As in client-go, where
   * a Replace reaches the indexer delta by delta, a reader may see part of a relist applied before its end.
   */
  private async listAndReplace(reason: string): Promise<string> {
    const transform = this.options.transform;
    let seen = new Set<T>();
    const take = (raw: T): void => {
      const key = objectKey(raw);
      const prev = this.cache.get(key);
      if (prev !== undefined && raw.metadata?.resourceVersion !== undefined && prev.metadata?.resourceVersion === raw.metadata.resourceVersion) {
        seen.add(prev);
        return;
      }
      const obj = transform ? transform(raw) : raw;
      this.cache.set(key, obj);
      seen.add(obj);
      if (prev === undefined) this.emit("add", obj);
      else this.emit("update", prev, obj);
    };
    const { resourceVersion } = await this.options.client.listAll<T>(this.options.resource, {
      ...(this.options.namespace !== undefined ? { namespace: this.options.namespace } : {}),
      ...(this.options.labelSelector ? { labelSelector: this.options.labelSelector } : {}),
      ...(this.options.fieldSelector ? { fieldSelector: this.options.fieldSelector } : {}),
      ...(this.options.pageSize !== undefined ? { pageSize: this.options.pageSize } : {}),
      ...(this.options.metadataOnly ? { metadataOnly: true } : {}),
      each: take,
      // An expired continue token restarts the list: what the abandoned attempt saw may be gone since.
      onRestart: () => (seen = new Set<T>()),
      signal: this.stopper.signal,
    });
    if (this.stopped) return resourceVersion;
    if (reason !== "initial") {
      this.stats.relists++;
      this.options.metrics?.relist(this.label, reason);
    }
    for (const [key, obj] of this.cache) {
      if (seen.has(obj)) continue;
      this.cache.delete(key);
      this.emit("delete", obj);
    }
    if (!this.hasSynced) {
      this.hasSynced = true;
      this.resolveSynced();
    }
    return resourceVersion;
  }

  private apply(type: string, raw: T): void {
    const rv = raw.metadata?.resourceVersion;
    if (type === "BOOKMARK") {
      this.stats.bookmarks++;
      if (rv) this.stats.resourceVersion = rv;
      return;
    }
    this.stats.events++;
    const obj = this.options.transform ? this.options.transform(raw) : raw;
    const key = objectKey(obj);
    if (type === "DELETED") {
      const prev = this.cache.get(key);
      this.cache.delete(key);
      this.emit("delete", obj ?? prev);
    } else {
      const prev = this.cache.get(key);
      this.cache.set(key, obj);
      if (prev) this.emit("update", prev, obj);
      else this.emit("add", obj);
    }
    if (rv) this.stats.resourceVersion = rv;
  }

  private emit(kind: "add" | "update" | "delete", a: T, b?: T): void {
    for (const h of this.handlers) {
      try {
        if (kind === "add") h.onAdd?.(a);
        else if (kind === "update") h.onUpdate?.(a, b as T);
        else h.onDelete?.(a);
      } catch (e) {
        this.log("error", `informer ${this.label}: ${kind} handler threw`, { error: String(e), key: objectKey(a) });
      }
    }
  }
}
