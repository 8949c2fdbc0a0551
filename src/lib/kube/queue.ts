// A deduplicating, rate-limited work queue with client-go's workqueue semantics (k8s.io/client-go/util/workqueue):
// - a key queued twice is processed once (one live entry per key);
// - a key is never processed by two workers at once; re-added while processing, it runs again right after
//   ("processing" set: done() re-queues it);
// - add(key, { urgent: true }) puts a key in a lane served before the ordinary one (a key already queued ordinarily
//   moves up), so work that someone is waiting for (a new Service's DaemonSet) does not queue behind a flood of
//   status-only keys; client-go has no such lane, kube-controller-manager gets the same effect from separate queues;
// - addAfter() delays a key (the earliest pending time wins), addRateLimited() delays it by a per-key exponential
//   backoff (client-go's ItemExponentialFailureRateLimiter, 5 ms doubling) until forget() after a success.
// Informer handlers only add keys (docs/architecture.md, "Conventions"); run() drives reconcile workers. Time comes from a Clock, so tests
// use a FakeClock.
import { backoffDelay, type BackoffConfig } from "./backoff.js";
import { realClock, type Clock, type TimerHandle } from "./clock.js";
import { noLog, type LogFn } from "./client.js";

export interface WorkQueueOptions {
  clock?: Clock;
  /** Per-key failure backoff; default 5 ms doubling to 5 min, no jitter (client-go: 5 ms to 1000 s). */
  backoff?: BackoffConfig;
  log?: LogFn;
  /** For logs. */
  name?: string;
  /**
   * Called as a worker takes a key: which lane it waited in and for how long since it was queued there
   * (client-go's workqueue_queue_duration_seconds), so a slow Service -> DaemonSet splits into queue wait and the rest.
   */
  observeWait?(lane: Lane, waitMs: number): void;
}

export type Lane = "urgent" | "normal";

/** What a worker returns: nothing (done), or a request to look at the key again later (a level-based poll). */
export type WorkerResult = void | { requeueAfterMs: number };

export interface RunOptions {
  /** Workers running at once; default 1. A key is still never processed twice at the same time. */
  concurrency?: number;
  /**
   * More workers that take urgent keys only; default 0. With every worker busy on ordinary keys (or on earlier
   * urgent ones), an urgent key would wait for one to finish; these add room for urgent bursts without letting
   * ordinary work (status writes of rollouts) run wider against the API server.
   */
  urgentConcurrency?: number;
  /** Called when the worker throws; the key is then re-added with addRateLimited(). */
  onError?(key: string, error: unknown, requeues: number): void;
  /** Called after every processed key, with how it ended and how long it took (for metrics). */
  onDone?(key: string, result: "success" | "error" | "requeue", durationMs: number): void;
}

const DEFAULT_BACKOFF: BackoffConfig = { baseMs: 5, maxMs: 300_000, factor: 2 };

/** A lane entry; stale once its key was handed out or moved to the urgent lane (its seq no longer matches). */
interface Entry {
  key: string;
  seq: number;
}

export interface AddOptions {
  /** Served before every ordinary key (first-added order within each lane). */
  urgent?: boolean;
}

export class WorkQueue {
  private readonly urgentLane: Entry[] = [];
  private readonly normalLane: Entry[] = [];
  /** Keys waiting in a lane: the seq of their live entry, and its lane. */
  private readonly queued = new Map<string, { seq: number; urgent: boolean; since: number }>();
  private seq = 0;
  private readonly inProgress = new Set<string>();
  /** Keys re-added while being processed, queued again by done() (value: urgent). */
  private readonly again = new Map<string, boolean>();
  private readonly waitingTimers = new Map<string, { at: number; timer: TimerHandle }>();
  private readonly failures = new Map<string, number>();
  /** Workers waiting for a key; urgentOnly ones take nothing from the ordinary lane. */
  private readonly getters: { resolve: (key: string | undefined) => void; urgentOnly: boolean }[] = [];
  private readonly runners: Promise<void>[] = [];
  private shuttingDown = false;
  private readonly clock: Clock;
  private readonly backoff: BackoffConfig;
  private readonly log: LogFn;
  private readonly observeWait: ((lane: Lane, waitMs: number) => void) | undefined;

  constructor(options: WorkQueueOptions = {}) {
    this.clock = options.clock ?? realClock;
    this.observeWait = options.observeWait;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.log = options.log ?? noLog;
  }

  /**
   * Queues `key` unless it is already queued (an urgent add moves an ordinarily queued key to the urgent lane); a key
   * being processed is queued again after it is done.
   */
  add(key: string, options: AddOptions = {}): void {
    if (this.shuttingDown) return;
    const urgent = options.urgent === true;
    if (this.inProgress.has(key)) {
      this.again.set(key, (this.again.get(key) ?? false) || urgent);
      return;
    }
    const queued = this.queued.get(key);
    if (queued && (queued.urgent || !urgent)) return;
    // A moved key's ordinary entry stays behind, stale: skipped when reached (cheaper than a splice per move). Its
    // wait counts from when it was first queued.
    const seq = ++this.seq;
    this.queued.set(key, { seq, urgent, since: queued?.since ?? this.clock.now() });
    (urgent ? this.urgentLane : this.normalLane).push({ key, seq });
    this.dispatch();
  }

  /**
   * Hands queued keys to waiting workers: urgent keys to urgent-only workers first (the others stay free for the
   * ordinary lane), ordinary keys to the others.
   */
  private dispatch(): void {
    for (const urgentOnly of [true, false]) {
      for (let i = 0; i < this.getters.length;) {
        const getter = this.getters[i] as { resolve: (key: string | undefined) => void; urgentOnly: boolean };
        if (getter.urgentOnly !== urgentOnly) {
          i++;
          continue;
        }
        const key = this.take(urgentOnly);
        if (key === undefined) break;
        this.getters.splice(i, 1);
        getter.resolve(key);
      }
    }
  }

  /** Queues `key` after `ms`; if the key already waits, the earlier time wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + ms;
    const existing = this.waitingTimers.get(key);
    if (existing && existing.at <= at) return;
    existing?.timer.cancel();
    const timer = this.clock.setTimer(ms, () => {
      this.waitingTimers.delete(key);
      this.add(key);
    });
    this.waitingTimers.set(key, { at, timer });
  }

  /** Queues `key` after its next backoff step (base x 2^failures); counts a failure. */
  addRateLimited(key: string): void {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.addAfter(key, backoffDelay(n, this.backoff));
  }

  /** Ends the backoff of `key` (call after it was processed successfully). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Failures counted for `key` since its last forget(). */
  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Keys ready to be processed (not counting those being processed or waiting for a delay). */
  get depth(): number {
    return this.queued.size;
  }

  get processing(): number {
    return this.inProgress.size;
  }

  /** Keys waiting for their addAfter / backoff delay. */
  get waiting(): number {
    return this.waitingTimers.size;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * The next key, marked as processing; undefined once the queue shuts down. Call done(key) when finished.
   * `urgentOnly`: only a key of the urgent lane.
   */
  get(urgentOnly = false): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.take(urgentOnly);
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.getters.push({ resolve, urgentOnly }));
  }

  /** The first live entry, urgent lane first (or only), marked as processing. */
  private take(urgentOnly = false): string | undefined {
    for (const lane of urgentOnly ? [this.urgentLane] : [this.urgentLane, this.normalLane]) {
      for (let e = lane.shift(); e !== undefined; e = lane.shift()) {
        const queued = this.queued.get(e.key);
        if (queued?.seq !== e.seq) continue;
        this.queued.delete(e.key);
        this.inProgress.add(e.key);
        this.observeWait?.(queued.urgent ? "urgent" : "normal", this.clock.now() - queued.since);
        return e.key;
      }
    }
    return undefined;
  }

  /** Marks `key` processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.inProgress.delete(key);
    const urgent = this.again.get(key);
    if (urgent !== undefined && !this.shuttingDown) {
      this.again.delete(key);
      this.add(key, { urgent });
    }
  }

  /**
   * Runs `worker` on keys with `concurrency` loops until shutdown(). A worker that throws gets its key back with
   * addRateLimited(); one that succeeds has its backoff forgotten. Resolves when every loop has stopped.
   */
  run(worker: (key: string) => Promise<WorkerResult>, options: RunOptions = {}): Promise<void> {
    const n = Math.max(1, options.concurrency ?? 1);
    const loops: Promise<void>[] = [];
    for (let i = 0; i < n; i++) loops.push(this.loop(worker, options, false));
    for (let i = 0; i < (options.urgentConcurrency ?? 0); i++) loops.push(this.loop(worker, options, true));
    const all = Promise.all(loops).then(() => undefined);
    this.runners.push(all);
    return all;
  }

  /**
   * Stops handing out keys and drops the queued and delayed ones (reconciles are level-based: whoever runs next
   * relists and resyncs everything), then waits for the keys in progress to finish.
   */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    for (const { timer } of this.waitingTimers.values()) timer.cancel();
    this.waitingTimers.clear();
    this.urgentLane.length = 0;
    this.normalLane.length = 0;
    this.queued.clear();
    this.again.clear();
    for (const g of this.getters.splice(0)) g.resolve(undefined);
    await Promise.all(this.runners);
  }

  private async loop(worker: (key: string) => Promise<WorkerResult>, options: RunOptions, urgentOnly: boolean): Promise<void> {
    for (;;) {
      const key = await this.get(urgentOnly);
      if (key === undefined) return;
      const started = this.clock.now();
      let outcome: "success" | "error" | "requeue" = "success";
      try {
        const result = await worker(key);
        this.forget(key);
        if (result && result.requeueAfterMs >= 0) {
          outcome = "requeue";
          this.addAfter(key, result.requeueAfterMs);
        }
      } catch (error) {
        outcome = "error";
        this.addRateLimited(key);
        const requeues = this.numRequeues(key);
        if (options.onError) {
          try {
            options.onError(key, error, requeues);
          } catch {
            // An error reporter must not stop the worker loop.
          }
        } else {
          this.log("warn", `processing ${key} failed (retry ${requeues})`, { error: String(error) });
        }
      } finally {
        this.done(key);
      }
      try {
        options.onDone?.(key, outcome, this.clock.now() - started);
      } catch {
        // Metrics must not stop the worker loop.
      }
    }
  }
}
