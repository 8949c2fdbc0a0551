// Fenced leadership (docs/design/0011-fenced-leadership-steps-down-in-process.md): a leader that loses the Lease
// while its writes wait in a slow API server has no write take effect after that moment, by the API server's own
// request log; it steps down in process, keeps its caches, and its term's work drains before it campaigns again.
// Each replica sends its identity in its User-Agent, so the log says who sent what.
import assert from "node:assert/strict";
import { Controller, leaseLeadership, type Leadership } from "../../../src/controller/controller.js";
import { defaultControllerConfig } from "../../../src/controller/types.js";
import { isConflict, KubeClient, Resources } from "../../../src/lib/kube/client.js";
import type { Lease, LeaderElector } from "../../../src/lib/kube/leader.js";
import { microTime } from "../../../src/lib/kube/leader.js";
import { ControllerMetrics } from "../../../src/lib/kube/metrics.js";
import { requestLogNow, type LoggedRequest } from "../../../src/sandbox/apiserver/index.js";
import { create, node, nodePath, NS, service, startEnv, waitFor, waitForIngress, type Env } from "./support.js";

const SVCS = "/api/v1/namespaces/default/services";
const WRITES = new Set(["create", "update", "patch", "delete", "deletecollection"]);
// Lease 2 s, renew deadline 1 s, retry 200 ms (the ratios of client-go's 15/10/2 s defaults, shortened).
const TIMINGS = { leaseDurationSeconds: 2, renewDeadlineMs: 1000, retryPeriodMs: 200 };
/**
 * How long every write of the replica under test waits in the API server. The rule is in place before the writes
 * begin and the Lease is lost within ~1.2 s of them, so no write's wait can end near the moment of the loss: a
 * write either took effect long before it or was still waiting then (no race between the two in the assertions).
 */
const WRITE_LATENCY_MS = 3000;
/** Timers fire late on a loaded machine; the 1 s between renew deadline and lease duration is there to absorb it. */
const TIMER_SLACK_MS = 100;

interface Replica {
  identity: string;
  controller: Controller;
  elector: LeaderElector;
  client: KubeClient;
  metrics: ControllerMetrics;
  /** requestLogNow() at each abort of a leadership term of this replica (when it fenced itself). */
  fencedAt: number[];
  logs: string[];
  stop(opts?: { release?: boolean }): Promise<void>;
}

describe("controller: fenced leadership against a slow API server", function () {
  this.timeout(30_000);
  let env: Env;
  const replicas: Replica[] = [];
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.41" }));
    await create(env.client, nodePath(), node("n2", { internalIp: "192.0.2.42" }));
  });
  afterEach(async () => {
    for (const r of replicas.splice(0)) await r.stop({ release: false });
    await env?.close();
  });

  const startReplica = async (identity: string): Promise<Replica> => {
    const metrics = new ControllerMetrics({ processMetrics: false });
    const client = new KubeClient({
      server: env.server.url, authHeaders: () => ({ Authorization: `Bearer ${env.server.token}` }),
      userAgent: `berth-controller/test (${identity})`, metrics,
    });
    const logs: string[] = [];
    const leadership = leaseLeadership({
      client, namespace: NS, name: "berth-controller", identity, ...TIMINGS, metrics,
      log: (level, msg) => logs.push(`${level} ${msg}`),
    });
    const fencedAt: number[] = [];
    leadership.onChange((leading) => {
      const term = leadership.term();
      if (leading && term) term.addEventListener("abort", () => fencedAt.push(requestLogNow()), { once: true });
    });
    const controller = new Controller({
      client, metrics, leadership,
      config: defaultControllerConfig({ namespace: NS, lbPodImage: "berth:test", claimUnsetClass: true }),
      resyncMs: 60_000, workers: 2,
      informer: { backoff: { baseMs: 20, maxMs: 200, factor: 2, jitter: 0.2 }, relistIntervalMs: 0 },
      queueBackoff: { baseMs: 10, maxMs: 300, factor: 2 },
      log: (level, msg) => logs.push(`${level} ${msg}`),
    });
    await controller.start();
    const r: Replica = {
      identity, controller, elector: leadership.elector, client, metrics, fencedAt, logs,
      async stop(opts = {}) {
        if (opts.release === false) await leadership.elector.stop({ release: false });
        await controller.stop();
        client.close();
      },
    };
    replicas.push(r);
    return r;
  };

  const log = (): LoggedRequest[] => env.server.requestLog.entries();
  const from = (r: Replica) => (e: LoggedRequest): boolean => e.userAgent.includes(`(${r.identity})`);
  const isLease = (e: LoggedRequest): boolean => e.resource === "leases";
  /** Writes that changed something: answered with a 2xx. */
  const tookEffect = (e: LoggedRequest): boolean => WRITES.has(e.verb ?? "") && !isLease(e) && e.outcome === "answered" && (e.code ?? 0) < 300;
  const show = (e: LoggedRequest): string => `#${e.seq} ${e.verb} ${e.resource} ${e.name ?? ""} ${e.outcome} ${e.code ?? "-"}`;
  /** Delays every write of `r` except its Lease's (create, patch, delete: the verbs reconciles and Events use). */
  const slowWritesOf = (r: Replica): void => {
    for (const verb of ["create", "patch", "delete"]) env.server.faults.add({ verb, latencyMs: WRITE_LATENCY_MS, userAgent: `(${r.identity})` });
  };
  /** The log's entries now for the same requests (log() returns copies). */
  const latest = (entries: LoggedRequest[]): LoggedRequest[] => entries.map((e) => log().find((x) => x.seq === e.seq) ?? e);
  const inFlightWritesOf = (r: Replica): LoggedRequest[] => log().filter((e) => from(r)(e) && WRITES.has(e.verb ?? "") && !isLease(e) && !e.outcome);
  const fencedWrites = async (r: Replica): Promise<number> => {
    const text = await r.metrics.render();
    return [...text.matchAll(/^berth_fenced_writes_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
  };

  it("a leader whose Lease is taken while its writes wait has none take effect after its renewal is refused", async () => {
    const a = await startReplica("replica-a");
    await waitFor("a leads", async () => a.controller.isLeader());
    slowWritesOf(a);
    for (let i = 1; i <= 6; i++) await create(env.client, SVCS, service(`s${i}`, { ports: [{ port: 80 + i }] }));
    await waitFor("writes of a waiting in the API server", async () => inFlightWritesOf(a).length >= 2);

    // Someone else writes the Lease (an operator, or a replica that misjudged expiry): a cannot know until its next
    // renewal, which the API server refuses (409, the resourceVersion it holds is stale).
    const intruder = new KubeClient({ server: env.server.url, authHeaders: () => ({ Authorization: `Bearer ${env.server.token}` }), userAgent: "test (intruder)" });
    let taken: Lease | undefined;
    // a renews every 200 ms: read and write again when a renewal slips in between.
    for (let attempt = 0; !taken && attempt < 10; attempt++) {
      const lease = await intruder.get<Lease>(Resources.leases, "berth-controller", { namespace: NS });
      taken = await intruder.replace(Resources.leases, {
        ...lease, spec: { ...lease.spec, holderIdentity: "intruder", leaseDurationSeconds: 30, renewTime: microTime(Date.now()), acquireTime: microTime(Date.now()) },
      }, { namespace: NS }).catch((e: unknown) => {
        if (isConflict(e)) return undefined;
        throw e;
      });
    }
    intruder.close();
    assert.equal(taken?.spec?.holderIdentity, "intruder");
    const takenSeq = (log().filter((e) => e.userAgent === "test (intruder)" && e.verb === "update" && e.code === 200).pop() as LoggedRequest).endSeq ?? 0;
    await waitFor("a fenced itself", async () => a.fencedAt.length === 1 && !a.controller.isLeader(), 3000);

    // The moment a lost the Lease, as far as it could know: the API server's answer refusing its first renewal
    // after the Lease was taken. Everything of a's that waited in the server then must not take effect.
    const refused = log().find((e) => from(a)(e) && isLease(e) && e.verb === "update" && e.code === 409 && (e.seq > takenSeq));
    assert.ok(refused?.endSeq, "a's renewal was refused");
    const inFlightAtLoss = log().filter((e) => from(a)(e) && WRITES.has(e.verb ?? "") && !isLease(e) && e.seq < (refused.endSeq ?? 0) &&
      (e.endSeq === undefined || e.endSeq > (refused.endSeq ?? 0)));
    assert.ok(inFlightAtLoss.length >= 1, "some writes of a were waiting in the API server when it lost the Lease");

    // Every write of a has ended: cut off at once, or (without fencing) landed after the latency.
    await waitFor("a's writes ended", async () => latest(inFlightAtLoss).every((e) => e.outcome), WRITE_LATENCY_MS + 2000);
    const late = log().filter((e) => from(a)(e) && tookEffect(e) && (e.endSeq ?? 0) > (refused.endSeq ?? 0));
    assert.deepEqual(late.map(show), [], "writes of a that took effect after it lost the Lease");
    for (const e of latest(inFlightAtLoss)) {
      assert.equal(e.outcome, "abandoned", `${show(e)}: cut off while it waited, so the server did nothing with it`);
    }
    // Nothing but Lease requests left a once it had fenced itself (a request already on the wire may arrive a
    // moment later, within a few ms on loopback; it is abandoned like the rest).
    const fencedAt = a.fencedAt[0] as number;
    const after = log().filter((e) => from(a)(e) && !isLease(e) && WRITES.has(e.verb ?? "") && e.arrivedAt > fencedAt + 50);
    assert.deepEqual(after.map(show), [], "writes sent by a after it fenced itself");
    assert.ok(await fencedWrites(a) >= inFlightAtLoss.length, "the aborted writes are counted");
    assert.ok(a.logs.some((l) => /^warn leader election: replica-a lost the lease .* held by intruder/.test(l)), a.logs.join("\n"));

    // Stepped down in process: still running, caches warm (no relist), a candidate again.
    assert.ok(a.controller.isReady());
    assert.equal(Object.values(a.controller.informerStats()).reduce((n, s) => n + s.relists, 0), 0);
    assert.equal(a.elector.stats.fenced, 1);
  });

  it("never starts a new term's workers while the last term's reconciles still run", async () => {
    // Leadership lost and regained back to back (an elector whose term ends and a new one begins at once): the
    // new queue must wait until the old term's reconciles have drained, or one key could be reconciled twice at
    // once. This stand-in ends terms the way LeaderElector does (abort, then onChange(false)), without the wait
    // for the drain that the elector adds, so only the controller's own guard keeps the terms apart.
    const listeners: ((leading: boolean) => unknown)[] = [];
    let term = new AbortController();
    let leading = true;
    const leadership: Leadership = {
      start: () => undefined, stop: async () => undefined, isLeader: () => leading,
      term: () => (leading ? term.signal : undefined), onChange: (l) => listeners.push(l),
    };
    const logs: string[] = [];
    const client = new KubeClient({ server: env.server.url, authHeaders: () => ({ Authorization: `Bearer ${env.server.token}` }), userAgent: "berth-controller/test (solo)" });
    const controller = new Controller({
      client, leadership, config: defaultControllerConfig({ namespace: NS, lbPodImage: "berth:test", claimUnsetClass: true }),
      resyncMs: 60_000, workers: 2, log: (_level, msg) => logs.push(msg),
    });
    try {
      await controller.start();
      const slow = env.server.faults.add({ verb: "patch", latencyMs: 800, userAgent: "(solo)" });
      for (let i = 1; i <= 2; i++) await create(env.client, SVCS, service(`s${i}`, { ports: [{ port: 80 + i }] }));
      await waitFor("reconciles waiting on their writes", async () => log().filter((e) => e.userAgent.includes("(solo)") && e.verb === "patch" && !e.outcome).length >= 1);
      logs.length = 0;
      leading = false;
      term.abort();
      for (const l of listeners) void l(false);
      term = new AbortController();
      leading = true;
      for (const l of listeners) void l(true);
      await waitFor("the new term's workers", async () => logs.includes("leading: starting workers"));
      assert.deepEqual(logs.filter((m) => /workers/.test(m)), ["stopping workers", "workers stopped", "leading: starting workers"]);
      env.server.faults.remove(slow);
      for (let i = 1; i <= 2; i++) await waitForIngress(env.client, `s${i}`, ["192.0.2.41", "192.0.2.42"], 10_000);
    } finally {
      await controller.stop();
      client.close();
    }
  });

  it("a leader whose renewals fail stops writing at its last renewal + renew deadline, before the standby takes the Lease", async () => {
    const a = await startReplica("replica-a");
    await waitFor("a leads", async () => a.controller.isLeader());
    const b = await startReplica("replica-b");
    await waitFor("b sees a", async () => b.elector.leader === "replica-a");
    slowWritesOf(a);
    for (let i = 1; i <= 8; i++) await create(env.client, SVCS, service(`s${i}`, { ports: [{ port: 80 + i }] }));
    await waitFor("writes of a waiting in the API server", async () => inFlightWritesOf(a).length >= 2);
    await waitFor("a renewed", async () => log().some((e) => from(a)(e) && isLease(e) && e.verb === "update" && e.code === 200));

    // a's renewals fail from now on (a partition between a and the API server, as far as the Lease goes).
    env.server.faults.add({ resource: "leases", verb: "update", error: 500, userAgent: "(replica-a)" });
    await waitFor("b leads", async () => b.controller.isLeader(), 6000);

    // The moment a lost the Lease: a stamps its renewal time before sending, so it is no later than the arrival of
    // its last successful renewal; a must stop by that + renewDeadline. Others may take the Lease only once they
    // have seen that renewal unchanged for the lease duration, later still (2 s - 1 s of margin).
    const lastRenewal = log().filter((e) => from(a)(e) && isLease(e) && e.verb === "update" && e.code === 200).pop() as LoggedRequest;
    const lostAt = lastRenewal.arrivedAt + TIMINGS.renewDeadlineMs;
    assert.ok(a.fencedAt.length === 1 && (a.fencedAt[0] as number) <= lostAt + TIMER_SLACK_MS,
      `a fenced ${(a.fencedAt[0] ?? NaN) - lastRenewal.arrivedAt} ms after its last renewal arrived`);
    const bTook = log().find((e) => from(b)(e) && isLease(e) && e.verb === "update" && e.code === 200) as LoggedRequest;
    assert.ok(bTook.arrivedAt > lostAt, "b took the Lease after a's renew deadline");

    // The writes of a still waiting in the server when a fenced itself (at lostAt at the latest).
    const fencedAt = a.fencedAt[0] as number;
    const inFlightAtLoss = log().filter((e) => from(a)(e) && WRITES.has(e.verb ?? "") && !isLease(e) && e.arrivedAt < fencedAt &&
      (e.endedAt === undefined || e.endedAt >= fencedAt));
    assert.ok(inFlightAtLoss.length >= 1, "some writes of a were waiting in the API server when it lost the Lease");
    await waitFor("a's writes ended", async () => latest(inFlightAtLoss).every((e) => e.outcome), WRITE_LATENCY_MS + 2000);
    const late = log().filter((e) => from(a)(e) && tookEffect(e) && (e.endedAt ?? 0) > lostAt);
    assert.deepEqual(late.map(show), [], "writes of a that took effect after it lost the Lease");
    for (const e of latest(inFlightAtLoss)) assert.equal(e.outcome, "abandoned", `${show(e)}: cut off while it waited`);
    // No two writers: nothing of a's took effect after b's first write.
    const bFirst = log().find((e) => from(b)(e) && tookEffect(e));
    if (bFirst) assert.deepEqual(log().filter((e) => from(a)(e) && tookEffect(e) && (e.endSeq ?? 0) > (bFirst.endSeq ?? 0)).map(show), []);
    assert.ok(a.logs.some((l) => /^warn leader election: replica-a lost the lease .*renew deadline/.test(l)), a.logs.join("\n"));

    // b converges everything a left half-done.
    for (let i = 1; i <= 8; i++) await waitForIngress(env.client, `s${i}`, ["192.0.2.41", "192.0.2.42"], 10_000);
  });
});
