// The sandbox API server's own record of requests, like kube-apiserver's httplog / audit log lines: when each
// request arrived and when it ended, who sent it (User-Agent), what it was, and how it ended. Tests use it to see
// what really reached the server and when, e.g. that no write of a replica took effect after it lost the Lease
// (test/integration/controller/fencing.test.ts). A ring: the oldest entries go once `limit` is reached.
import { performance } from "node:perf_hooks";

/**
 * How a request ended:
 * - "answered": a complete answer was sent (any status code);
 * - "abandoned": the client went away while the request waited before being served (the latency injector), and
 *   nothing was done: kube-apiserver drops a request whose context is cancelled while it waits in API Priority and
 *   Fairness' queue (k8s.io/apiserver/pkg/util/flowcontrol/fairqueuing/queueset), and a storage call made with a
 *   cancelled context fails before reaching etcd;
 * - "client-gone": the client went away while the request was being served (watches end this way).
 */
export type RequestOutcome = "answered" | "abandoned" | "client-gone";

export interface LoggedRequest {
  /** Order of arrival. */
  seq: number;
  method: string;
  /** URL path without the query. */
  path: string;
  /** kube's verb (get, list, watch, create, update, patch, delete, deletecollection) for resource requests. */
  verb?: string;
  /** Resource plural, with "/subresource". */
  resource?: string;
  namespace?: string;
  name?: string;
  userAgent: string;
  /** Milliseconds since the epoch with sub-millisecond precision (requestLogNow()). */
  arrivedAt: number;
  /** When the answer was complete or the connection went away; unset while in progress. */
  endedAt?: number;
  /** Order of ending, on the same counter as seq: "ended before that arrived" is endSeq < seq. */
  endSeq?: number;
  /** HTTP status sent, when headers went out. */
  code?: number;
  outcome?: RequestOutcome;
}

/** The log's clock: wall-clock milliseconds with sub-millisecond precision, monotonic within the process. */
export function requestLogNow(): number {
  return performance.timeOrigin + performance.now();
}

export class RequestLog {
  /** A circular buffer: `start` is the oldest entry once `limit` entries are held. */
  private readonly ring: LoggedRequest[] = [];
  private start = 0;
  private counter = 0;
  private readonly endListeners = new Set<(entry: LoggedRequest) => void>();

  constructor(private readonly limit = 10_000) {}

  /** Records an arrival; the caller fills in the rest through the returned entry and end(). */
  arrive(method: string, path: string, userAgent: string): LoggedRequest {
    const entry: LoggedRequest = { seq: ++this.counter, method, path, userAgent, arrivedAt: requestLogNow() };
    // Overwrites the oldest in place once full: dropping it with splice moved every other entry, per request.
    if (this.ring.length < this.limit) this.ring.push(entry);
    else {
      this.ring[this.start] = entry;
      this.start = (this.start + 1) % this.limit;
    }
    return entry;
  }

  end(entry: LoggedRequest, outcome: RequestOutcome, code: number | undefined): void {
    if (entry.outcome) return;
    entry.endedAt = requestLogNow();
    entry.endSeq = ++this.counter;
    entry.outcome = outcome;
    if (code !== undefined) entry.code = code;
    for (const listener of this.endListeners) listener({ ...entry });
  }

  /**
   * Calls `listener` with a copy of every entry as it ends, until the returned function is called: for a reader
   * that needs every request of a long burst, which the ring may drop and whose copy per poll costs O(limit).
   */
  onEnd(listener: (entry: LoggedRequest) => void): () => void {
    this.endListeners.add(listener);
    return () => this.endListeners.delete(listener);
  }

  /** A copy of the entries kept, oldest first. */
  entries(): LoggedRequest[] {
    const ordered = this.start === 0 ? this.ring : [...this.ring.slice(this.start), ...this.ring.slice(0, this.start)];
    return ordered.map((e) => ({ ...e }));
  }

  clear(): void {
    this.ring.length = 0;
    this.start = 0;
  }
}
