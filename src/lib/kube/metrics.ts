// Prometheus metrics of a berth process (controller; the speaker can reuse it), on prom-client with a Registry of
// its own per instance: no global default registry (docs/architecture.md, "Conventions"), so tests can make as many as they like.
// The client, informers, queue and elector report through small hook interfaces, so they do not import this file.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ApiRequestRecorder } from "./client.js";
import type { FenceRecorder } from "./fence.js";
import type { InformerMetrics } from "./informer.js";

export interface MetricsOptions {
  /** Prefix of every metric name; default "berth_". */
  prefix?: string;
  /** Also export process_* and nodejs_* metrics (CPU, memory, event loop lag); default true. */
  processMetrics?: boolean;
}

/** What /metrics needs; ControllerMetrics is one. */
export interface MetricsSource {
  readonly contentType: string;
  render(): Promise<string>;
}

/** Anything with a depth, e.g. a WorkQueue. */
export interface QueueLike {
  readonly depth: number;
  readonly processing?: number;
  readonly waiting?: number;
}

export class ControllerMetrics implements ApiRequestRecorder, InformerMetrics, FenceRecorder, MetricsSource {
  readonly registry = new Registry();
  private readonly reconciles: Counter<"result">;
  private readonly reconcileDuration: Histogram<"result">;
  private readonly queueWait: Histogram<"name" | "lane">;
  private readonly requestDuration: Histogram<"verb">;
  private readonly apiRequests: Counter<"verb" | "resource" | "code">;
  private readonly watchRestarts: Counter<"resource" | "reason">;
  private readonly relists: Counter<"resource" | "reason">;
  private readonly leaderGauge: Gauge;
  private readonly fencedWrites: Counter<"verb" | "stage">;
  private readonly queues = new Map<string, QueueLike>();

  constructor(options: MetricsOptions = {}) {
    const p = options.prefix ?? "berth_";
    const registers = [this.registry];
    this.reconciles = new Counter({ name: `${p}reconcile_total`, help: "Reconciles by result.", labelNames: ["result"], registers });
    this.reconcileDuration = new Histogram({
      name: `${p}reconcile_duration_seconds`, help: "Time spent in one reconcile.", labelNames: ["result"], registers,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.queueWait = new Histogram({
      name: `${p}workqueue_queue_duration_seconds`, help: "Time a key waited in the queue before a worker took it, by queue and lane (urgent, normal).",
      labelNames: ["name", "lane"], registers,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    });
    this.requestDuration = new Histogram({
      name: `${p}api_request_duration_seconds`, help: "Time from sending an API request to its answer's headers, by verb (watches excluded).",
      labelNames: ["verb"], registers,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    });
    this.apiRequests = new Counter({
      name: `${p}api_requests_total`, help: "Kubernetes API requests by verb, resource and HTTP status code (\"error\" when no answer came).",
      labelNames: ["verb", "resource", "code"], registers,
    });
    this.watchRestarts = new Counter({
      name: `${p}watch_restarts_total`, help: "Watches reopened, by resource and reason (closed, expired, error, relist).",
      labelNames: ["resource", "reason"], registers,
    });
    this.relists = new Counter({
      name: `${p}relists_total`, help: "Full relists after the initial list, by resource and reason (expired, periodic).",
      labelNames: ["resource", "reason"], registers,
    });
    this.leaderGauge = new Gauge({ name: `${p}leader`, help: "1 while this replica holds the leader Lease.", registers });
    this.fencedWrites = new Counter({
      name: `${p}fenced_writes_total`,
      help: "Writes stopped because this replica lost the leader Lease, by verb and stage (refused before sending, aborted in flight).",
      labelNames: ["verb", "stage"], registers,
    });
    const queues = this.queues;
    new Gauge({
      name: `${p}workqueue_depth`, help: "Keys waiting to be processed, by queue.", labelNames: ["name"], registers,
      collect() {
        this.reset();
        for (const [name, q] of queues) this.set({ name }, q.depth);
      },
    });
    new Gauge({
      name: `${p}workqueue_in_progress`, help: "Keys being processed, by queue.", labelNames: ["name"], registers,
      collect() {
        this.reset();
        for (const [name, q] of queues) this.set({ name }, q.processing ?? 0);
      },
    });
    new Gauge({
      name: `${p}workqueue_delayed`, help: "Keys waiting for a retry or requeue delay, by queue.", labelNames: ["name"], registers,
      collect() {
        this.reset();
        for (const [name, q] of queues) this.set({ name }, q.waiting ?? 0);
      },
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  apiRequest(verb: string, resource: string, code: string, seconds?: number): void {
    this.apiRequests.inc({ verb, resource, code });
    if (seconds !== undefined && verb !== "watch") this.requestDuration.observe({ verb }, seconds);
  }

  watchRestart(resource: string, reason: string): void {
    this.watchRestarts.inc({ resource, reason });
  }

  relist(resource: string, reason: string): void {
    this.relists.inc({ resource, reason });
  }

  leader(isLeader: boolean): void {
    this.leaderGauge.set(isLeader ? 1 : 0);
  }

  fencedWrite(verb: string, stage: "refused" | "aborted"): void {
    this.fencedWrites.inc({ verb, stage });
  }

  /** One finished reconcile: result is a short reason ("success", "error", "requeue", or a decision's reason). */
  reconcile(result: string, seconds: number): void {
    this.reconciles.inc({ result });
    this.reconcileDuration.observe({ result }, seconds);
  }

  /** A key of queue `name` taken by a worker after waiting `seconds` in `lane`. */
  queued(name: string, lane: string, seconds: number): void {
    this.queueWait.observe({ name, lane }, seconds);
  }

  /** Exports a queue's depth under `name`, read at scrape time. */
  observeQueue(name: string, queue: QueueLike): void {
    this.queues.set(name, queue);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
