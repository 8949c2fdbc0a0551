// Lease-based leader election (coordination.k8s.io/v1 Lease), following client-go's leaderelection package:
// - a candidate takes the Lease when it is free (no holder) or expired, where "expired" is judged by *local* time
//   since this process last saw the Lease's record change (client-go's observedTime), so clock skew between
//   replicas does not matter;
// - every write carries the resourceVersion read, so two candidates racing get one success and one 409;
// - the leader renews every retryPeriod and gives up leading if it could not renew within renewDeadline, which is
//   shorter than leaseDuration: it stops writing before anyone else may start (no two writers);
// - seeing someone else hold the Lease while leading means stepping down at once.
// Fencing: each leadership term has an AbortSignal, aborted the moment this replica can no longer be sure it holds
// the Lease: by a timer at (start of the last successful renewal + renewDeadline), whatever the renew loop is doing,
// or at once when a renewal finds another holder. Writers pass it to every request (src/lib/kube/fence.ts), so
// in-flight writes are cut off at that moment, not when the loop gets round to stepping down.
// Unlike client-go's RunOrDie, losing the lease sends the elector back to being a candidate instead of exiting
// (docs/design/0011-fenced-leadership-steps-down-in-process.md): onStoppedLeading may return a promise (the
// controller's workers draining) and the elector campaigns again only once it settles, so two terms of one
// replica never overlap. While leading, renewals write with the cached resourceVersion (no GET): one API request
// per retry period.
import { realClock, type Clock, type TimerHandle } from "./clock.js";
import { isAlreadyExists, isConflict, isNotFound, KubeError, noLog, Resources, type KubeClient, type KubeObject, type LogFn } from "./client.js";

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  /** Lease name. */
  name: string;
  /** This replica's identity (pod name, or hostname + random suffix). */
  identity: string;
  /** Default 15 s (client-go / kube-controller-manager). Whole seconds, as the Lease stores them. */
  leaseDurationSeconds?: number;
  /** Default 10 s; must be shorter than the lease duration. */
  renewDeadlineMs?: number;
  /** Default 2 s. */
  retryPeriodMs?: number;
  /** On stop(), hand the Lease over at once (client-go's ReleaseOnCancel); default true. */
  releaseOnStop?: boolean;
  /** `term` aborts the moment this replica can no longer be sure it holds the Lease (see fencing above). */
  onStartedLeading?(term: AbortSignal): void;
  /** The elector campaigns again only once the returned promise settles (the term's work has drained). */
  onStoppedLeading?(): unknown;
  /** Called when the observed holder changes (including to this identity); "" when nobody holds it. */
  onNewLeader?(identity: string): void;
  metrics?: { leader(isLeader: boolean): void };
  clock?: Clock;
  random?: () => number;
  log?: LogFn;
}

/** Counters for tests and logs. */
export interface LeaderStats {
  /** Times this elector became leader. */
  acquired: number;
  /** Times it stopped leading (lost or stopped). */
  lost: number;
  /** Writes answered 409 (a race with another candidate, or a stale cached resourceVersion). */
  conflicts: number;
  /** Failed API calls other than conflicts. */
  errors: number;
  /** Terms fenced because the Lease was lost (renew deadline passed, or another holder seen); not counting stop(). */
  fenced: number;
}

/** The abort reason of a fenced term. */
export class LeadershipLost extends Error {
  override readonly name = "LeadershipLost";
}

/** kube's MicroTime: RFC 3339 with exactly six fractional digits ("2026-01-02T03:04:05.678000Z"). */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

type Attempt = "ok" | "held" | "error";

export class LeaderElector {
  readonly stats: LeaderStats = { acquired: 0, lost: 0, conflicts: 0, errors: 0, fenced: 0 };
  private leading = false;
  /** The current leadership term; aborted when it is fenced. */
  private termController: AbortController | undefined;
  private fenceTimer: TimerHandle | undefined;
  private lastRenew = 0;
  private observed: LeaseSpec | undefined;
  private observedTime = 0;
  private observedHolder: string | undefined;
  /** The Lease as last written or read, for renewals without a GET. */
  private cached: Lease | undefined;
  private loop: Promise<void> | undefined;
  private stopper = new AbortController();
  private releaseOnStop: boolean;
  private readonly listeners = new Set<(leading: boolean) => unknown>();
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: LogFn;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;

  constructor(private readonly options: LeaderElectionOptions) {
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.log = options.log ?? noLog;
    const leaseSeconds = options.leaseDurationSeconds ?? 15;
    if (!Number.isInteger(leaseSeconds) || leaseSeconds < 1) throw new Error("leaseDurationSeconds must be a whole number >= 1");
    this.leaseMs = leaseSeconds * 1000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (this.renewDeadlineMs >= this.leaseMs) throw new Error("renewDeadline must be shorter than the lease duration");
    if (this.retryPeriodMs >= this.renewDeadlineMs) throw new Error("retryPeriod must be shorter than renewDeadline");
    this.releaseOnStop = options.releaseOnStop ?? true;
  }

  /** True while this replica leads and its term is not fenced (it renewed within the renew deadline). */
  isLeader(): boolean {
    const term = this.termController;
    return this.leading && term !== undefined && !term.signal.aborted && this.clock.now() - this.lastRenew < this.renewDeadlineMs;
  }

  /** The current term's signal while leading (aborted once fenced); undefined when not leading. */
  get term(): AbortSignal | undefined {
    return this.leading ? this.termController?.signal : undefined;
  }

  /**
   * Adds a listener called on every change of leadership (after onStartedLeading / onStoppedLeading); like
   * onStoppedLeading, a promise it returns on a step-down is awaited before the elector campaigns again.
   */
  onChange(listener: (leading: boolean) => unknown): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The holder last seen on the Lease ("" if free, undefined before the first read). */
  get leader(): string | undefined {
    return this.observedHolder;
  }

  start(): void {
    if (this.loop) return;
    this.stopper = new AbortController();
    this.loop = this.run().catch((e: unknown) => {
      this.log("error", "leader election stopped unexpectedly", { error: String(e) });
    });
  }

  /**
   * Stops campaigning. By default a leader releases the Lease (holder cleared) so a standby takes over at once;
   * `{ release: false }` just stops renewing, as a crashed process would, and the Lease expires on its own.
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    if (opts.release !== undefined) this.releaseOnStop = opts.release;
    this.stopper.abort();
    await this.loop;
    this.loop = undefined;
  }

  private get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      // Candidate: try every retryPeriod, jittered by up to 20% like client-go's JitterFactor 1.2.
      while (!this.stopped) {
        if (await this.tryAcquireOrRenew() === "ok") break;
        await this.clock.sleep(this.retryPeriodMs * (1 + 0.2 * this.random()), this.stopper.signal);
      }
      if (this.stopped) break;
      const term = new AbortController();
      this.termController = term;
      this.armFence();
      await this.setLeading(true);
      // Leader: renew every retryPeriod; the fence timer ends the term once renewDeadline has passed without a
      // successful renewal, and a renewal that finds another holder ends it at once.
      const wake = AbortSignal.any([this.stopper.signal, term.signal]);
      while (!this.stopped && !term.signal.aborted) {
        await this.clock.sleep(this.retryPeriodMs, wake);
        if (this.stopped || term.signal.aborted) break;
        const result = await this.tryAcquireOrRenew(this.lastRenew + this.renewDeadlineMs);
        // A renewal answered after the fence fired does not revive the term: writers have been cut off already.
        if (result === "ok" && !term.signal.aborted) this.armFence();
        if (result === "held") this.fence(`the lease is now held by ${this.observedHolder || "nobody"}`);
      }
      if (this.stopped) break;
      await this.setLeading(false);
    }
    if (this.leading) {
      // No write of this term may follow the release: end the term first, then hand the Lease over.
      this.endTerm();
      if (this.releaseOnStop) await this.release();
      await this.setLeading(false);
    }
  }

  /** (Re)arms the term's fence at the last successful renewal (its start, as written in renewTime) + renewDeadline. */
  private armFence(): void {
    this.fenceTimer?.cancel();
    const at = this.lastRenew + this.renewDeadlineMs;
    this.fenceTimer = this.clock.setTimer(Math.max(0, at - this.clock.now()),
      () => this.fence(`no successful renewal within the renew deadline (${this.renewDeadlineMs} ms)`));
  }

  /** The Lease is lost: aborts the term's signal, which cuts off every request made with it. */
  private fence(why: string): void {
    const term = this.termController;
    if (!term || term.signal.aborted) return;
    this.stats.fenced++;
    this.log("warn", `leader election: ${this.options.identity} lost the lease ${this.options.namespace}/${this.options.name}: ${why}; its writes stop now`);
    this.endTerm(why);
  }

  private endTerm(why = "stopped"): void {
    this.fenceTimer?.cancel();
    this.fenceTimer = undefined;
    this.termController?.abort(new LeadershipLost(why));
  }

  private async setLeading(leading: boolean): Promise<void> {
    if (this.leading === leading) return;
    this.leading = leading;
    this.options.metrics?.leader(leading);
    if (leading) {
      this.stats.acquired++;
      this.log("info", `leader election: ${this.options.identity} is now the leader`);
      const term = this.termController?.signal as AbortSignal;
      await this.callbacks([() => this.options.onStartedLeading?.(term), ...[...this.listeners].map((l) => () => l(true))]);
      return;
    }
    this.stats.lost++;
    this.log("info", `leader election: ${this.options.identity} stopped leading`);
    const started = this.clock.now();
    await this.callbacks([() => this.options.onStoppedLeading?.(), ...[...this.listeners].map((l) => () => l(false))]);
    this.log("info", `leader election: ${this.options.identity} drained its term in ${this.clock.now() - started} ms`);
  }

  /** Runs callbacks in order and waits for the promises they return; a failing one is logged, never thrown. */
  private async callbacks(fns: (() => unknown)[]): Promise<void> {
    const pending: Promise<unknown>[] = [];
    for (const fn of fns) {
      try {
        const r = fn();
        if (r instanceof Promise) pending.push(r.catch((e: unknown) => this.log("error", "leader election callback failed", { error: String(e) })));
      } catch (e) {
        this.log("error", "leader election callback threw", { error: String(e) });
      }
    }
    await Promise.all(pending);
  }

  private callback(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log("error", "leader election callback threw", { error: String(e) });
    }
  }

  private observe(spec: LeaseSpec | undefined): void {
    const s = spec ?? {};
    const o = this.observed;
    if (!o || o.holderIdentity !== s.holderIdentity || o.renewTime !== s.renewTime || o.acquireTime !== s.acquireTime ||
      o.leaseDurationSeconds !== s.leaseDurationSeconds || o.leaseTransitions !== s.leaseTransitions) {
      this.observed = { ...s };
      this.observedTime = this.clock.now();
    }
    const holder = s.holderIdentity ?? "";
    if (holder !== this.observedHolder) {
      this.observedHolder = holder;
      this.callback(() => this.options.onNewLeader?.(holder));
    }
  }

  /** One attempt; `deadline` (clock ms) bounds the API calls of a renewal. */
  private async tryAcquireOrRenew(deadline?: number): Promise<Attempt> {
    const ac = new AbortController();
    const stopListener = (): void => ac.abort();
    this.stopper.signal.addEventListener("abort", stopListener, { once: true });
    const timer = deadline !== undefined ? this.clock.setTimer(Math.max(0, deadline - this.clock.now()), () => ac.abort()) : undefined;
    try {
      return await this.attempt(ac.signal);
    } catch (e) {
      if (isConflict(e)) {
        this.stats.conflicts++;
        this.cached = undefined;
      } else if (!this.stopped) {
        this.stats.errors++;
        this.log("info", "leader election: lease request failed", { error: e instanceof Error ? e.message : String(e) });
      }
      return "error";
    } finally {
      timer?.cancel();
      this.stopper.signal.removeEventListener("abort", stopListener);
    }
  }

  private async attempt(signal: AbortSignal): Promise<Attempt> {
    const { client, namespace, name, identity } = this.options;
    const now = this.clock.now();
    const leaseSeconds = this.leaseMs / 1000;
    if (this.leading && this.cached) {
      // Optimistic renewal: write over the Lease we last wrote. A 409 means someone else wrote it: read it now, not
      // a retry period later, so a leader whose Lease was taken stops writing as soon as it can know.
      const spec = { ...this.cached.spec, holderIdentity: identity, leaseDurationSeconds: leaseSeconds, renewTime: microTime(now) };
      try {
        await this.write({ ...this.cached, spec }, signal);
        this.lastRenew = now;
        return "ok";
      } catch (e) {
        if (!isConflict(e)) throw e;
        this.stats.conflicts++;
        this.cached = undefined;
      }
    }
    let lease: Lease | undefined;
    try {
      lease = await client.get<Lease>(Resources.leases, name, { namespace, signal });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    if (!lease) {
      const fresh: Lease = {
        apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name, namespace },
        spec: { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
      };
      try {
        this.cached = await client.create(Resources.leases, fresh, { namespace, signal });
      } catch (e) {
        // Another candidate created it first: a lost race, not an error.
        if (isAlreadyExists(e)) {
          this.stats.conflicts++;
          return "held";
        }
        throw e;
      }
      this.observe(this.cached.spec);
      this.lastRenew = now;
      return "ok";
    }
    this.observe(lease.spec);
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    const duration = (spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (holder !== "" && holder !== identity && this.observedTime + duration > now) return "held";
    const mine = holder === identity;
    const next: LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: leaseSeconds,
      acquireTime: mine && spec.acquireTime ? spec.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
    };
    await this.write({ ...lease, spec: next }, signal);
    this.lastRenew = now;
    return "ok";
  }

  private async write(lease: Lease, signal: AbortSignal): Promise<void> {
    const written = await this.options.client.replace(Resources.leases, lease, { namespace: this.options.namespace, signal });
    this.cached = written;
    this.observe(written.spec);
  }

  /**
   * client-go's release(): clear the holder (and shorten the duration) so candidates need not wait for expiry.
   * A renewal that stop() aborted may still have reached the server, leaving our cached copy one resourceVersion
   * behind: on a 409 the Lease is read again and released once more if it is still ours (measured: a loaded CI
   * machine lost the release this way, and the standby then waited out the whole lease duration).
   */
  private async release(): Promise<void> {
    const { client, namespace, name, identity } = this.options;
    const clear = async (lease: Lease): Promise<void> => {
      const now = this.clock.now();
      await client.replace(Resources.leases, {
        ...lease, spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime(now), acquireTime: microTime(now) },
      }, { namespace });
    };
    const lease = this.cached;
    if (!lease) return;
    try {
      try {
        await clear(lease);
      } catch (e) {
        if (!isConflict(e)) throw e;
        const fresh = await client.get<Lease>(Resources.leases, name, { namespace });
        if (fresh.spec?.holderIdentity === identity) await clear(fresh);
      }
      this.cached = undefined;
    } catch (e) {
      // Whoever comes next waits for the lease to expire instead; nothing else to do on the way out.
      this.log("info", "leader election: could not release the lease", { error: e instanceof KubeError ? e.message : String(e) });
    }
  }
}
