// Lease leader election between real electors over HTTP against the sandbox API server, with short timings
// (lease 1 s, renew deadline 600 ms, retry 100 ms) so takeovers take about a second.
import assert from "node:assert/strict";
import { Resources } from "../../../src/lib/kube/client.js";
import { LeaderElector, LeadershipLost, microTime, type Lease, type LeaderElectionOptions } from "../../../src/lib/kube/leader.js";
import { requestLogNow } from "../../../src/sandbox/apiserver/index.js";
import { startFixture, waitFor, type Fixture } from "./fixture.js";

describe("leader election on a Lease (sandbox API server over HTTP)", function () {
  this.timeout(15_000);
  let f: Fixture;
  let electors: LeaderElector[] = [];
  const events: string[] = [];
  const make = (identity: string, extra: Partial<LeaderElectionOptions> = {}): LeaderElector => {
    const e = new LeaderElector({
      client: f.client, namespace: "kube-system", name: "berth-controller", identity,
      leaseDurationSeconds: 1, renewDeadlineMs: 600, retryPeriodMs: 100,
      onStartedLeading: () => events.push(`${identity} started`),
      onStoppedLeading: () => events.push(`${identity} stopped`),
      ...extra,
    });
    electors.push(e);
    return e;
  };
  const leaders = (): LeaderElector[] => electors.filter((e) => e.isLeader());
  const lease = (): Promise<Lease> => f.client.get<Lease>(Resources.leases, "berth-controller", { namespace: "kube-system" });

  beforeEach(async () => {
    f = await startFixture();
    electors = [];
    events.length = 0;
  });
  afterEach(async () => {
    for (const e of electors) await e.stop({ release: false });
    await f.close();
  });

  it("writes MicroTime with six fractional digits", () => {
    assert.equal(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), "2026-01-02T03:04:05.678000Z");
  });

  it("elects exactly one of two candidates, which keeps leading while it renews", async () => {
    const a = make("a");
    const b = make("b");
    a.start();
    b.start();
    // Both must have seen the holder: the loser's create can still be on its way back (409) when the winner leads.
    await waitFor("a leader both candidates see", () => leaders().length === 1 && a.leader !== undefined && a.leader === b.leader);
    const first = leaders()[0];
    const requestsBefore = f.requests.length;
    // Over two lease durations, never two leaders, never a change of leader.
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      assert.equal(leaders().length, 1);
      assert.equal(leaders()[0], first);
      await new Promise((r) => setTimeout(r, 20));
    }
    // The leader renews with one write per retry period (no read first); the standby reads once per period.
    const during = f.requests.slice(requestsBefore);
    const updates = during.filter((r) => r === "update leases 200").length;
    const gets = during.filter((r) => r === "get leases 200").length;
    assert.ok(updates >= 8 && updates <= 21, `${updates} renewals in 2 s at a 100 ms period`);
    assert.ok(gets >= 6 && gets <= 21, `${gets} standby reads in 2 s at 100-120 ms`);
    assert.deepEqual(during.filter((r) => !r.endsWith("leases 200")), [], "nothing but lease reads and writes");
    const l = await lease();
    assert.equal(l.spec?.holderIdentity, first === a ? "a" : "b");
    assert.equal(l.spec?.leaseDurationSeconds, 1);
    assert.equal(l.spec?.leaseTransitions, 0);
    assert.match(l.spec?.renewTime ?? "", /\.\d{6}Z$/);
    assert.equal(a.leader, b.leader, "both observe the same holder");
  });

  it("a standby takes over within the lease duration after the leader stops renewing", async () => {
    const a = make("a");
    a.start();
    await waitFor("a leads", () => a.isLeader());
    const b = make("b");
    b.start();
    await waitFor("b sees a", () => b.leader === "a");
    // "Kill" a: it stops renewing without releasing, as a crashed pod would.
    const killedAt = Date.now();
    await a.stop({ release: false });
    await waitFor("b leads", () => b.isLeader(), 3000);
    const takeover = Date.now() - killedAt;
    // b counts the lease duration from when it last saw a renewal (at most a retry period before the kill).
    assert.ok(takeover >= 800 && takeover <= 1400, `takeover after ${takeover} ms with a 1000 ms lease`);
    const l = await lease();
    assert.equal(l.spec?.holderIdentity, "b");
    assert.equal(l.spec?.leaseTransitions, 1);
    assert.deepEqual(events, ["a started", "a stopped", "b started"]);
  });

  it("a leader that stops releases the lease, so the standby takes over at once", async () => {
    const a = make("a");
    a.start();
    await waitFor("a leads", () => a.isLeader());
    const b = make("b");
    b.start();
    await waitFor("b sees a", () => b.leader === "a");
    const stoppedAt = Date.now();
    await a.stop();
    await waitFor("b leads", () => b.isLeader(), 3000);
    const takeover = Date.now() - stoppedAt;
    assert.ok(takeover < 500, `takeover after ${takeover} ms`);
  });

  it("releases the lease even when its copy went stale (a renewal aborted by stop() that still reached the server)", async () => {
    // Long periods so no renewal runs during the test: the Lease is changed behind the leader's back instead, which
    // leaves its cached resourceVersion behind exactly as an aborted-but-applied renewal does.
    const a = make("a", { leaseDurationSeconds: 30, renewDeadlineMs: 20_000, retryPeriodMs: 10_000 });
    a.start();
    await waitFor("a leads", () => a.isLeader());
    await f.client.patch(Resources.leases, "berth-controller", "merge", { metadata: { annotations: { touched: "yes" } } }, { namespace: "kube-system" });
    await a.stop();
    assert.equal((await lease()).spec?.holderIdentity ?? "", "");
  });

  it("settles create races and 409s on renewal: one leader among five, and conflicts do not depose it", async () => {
    const all = ["a", "b", "c", "d", "e"].map((id) => make(id));
    for (const e of all) e.start();
    await waitFor("one leader", () => leaders().length === 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(leaders().length, 1);
    const conflicts = all.reduce((n, e) => n + e.stats.conflicts, 0);
    assert.ok(conflicts >= 1, "the losers of the create race saw a conflict");
    const leader = leaders()[0] as LeaderElector;
    const before = leader.stats.conflicts;
    // Two renewals answered 409: the leader re-reads, finds itself still the holder, renews; it keeps leading.
    f.api.faults.add({ verb: "update", resource: "leases", error: 409, times: 2 });
    await waitFor("the conflicts", () => leader.stats.conflicts >= before + 1, 2000);
    await new Promise((r) => setTimeout(r, 400));
    assert.ok(leader.isLeader());
    assert.equal(leaders().length, 1);
    assert.equal(leader.stats.lost, 0);
  });

  it("steps down when it cannot renew within the deadline, and leads again once the API recovers", async () => {
    const a = make("a");
    const changes: boolean[] = [];
    a.onChange((leading) => changes.push(leading));
    a.start();
    await waitFor("a leads", () => a.isLeader());
    const fault = f.api.faults.add({ resource: "leases", error: 503 });
    const failedAt = Date.now();
    // isLeader() turns false at the fence; onStoppedLeading follows as soon as the renew loop wakes up.
    await waitFor("a steps down", () => !a.isLeader() && events.includes("a stopped"), 2000);
    const after = Date.now() - failedAt;
    // It must stop before the lease (1 s) could expire for anyone else.
    assert.ok(after < 1000, `stepped down after ${after} ms`);
    assert.deepEqual(events, ["a started", "a stopped"]);
    f.api.faults.remove(fault);
    await waitFor("a leads again", () => a.isLeader(), 3000);
    assert.deepEqual(events, ["a started", "a stopped", "a started"]);
    assert.deepEqual(changes, [true, false, true]);
  });

  it("ends the term's signal at its last renewal + renew deadline even while a renewal hangs, and counts it", async () => {
    const a = make("a");
    a.start();
    await waitFor("a leads", () => a.isLeader());
    const term = a.term as AbortSignal;
    let fencedAt = 0;
    term.addEventListener("abort", () => (fencedAt = requestLogNow()), { once: true });
    // Renewals now wait 5 s in the API server: the loop is stuck in one, and only the fence timer can end the term.
    f.api.faults.add({ verb: "update", resource: "leases", latencyMs: 5000 });
    await waitFor("the term ends", () => term.aborted, 2000);
    const renewals = f.api.requestLog.entries().filter((e) => e.resource === "leases" && (e.verb === "update" || e.verb === "create") && e.code !== undefined && e.code < 300);
    const last = renewals.pop();
    // a stamped its last renewal before sending it, so its deadline is at most that renewal's arrival + 600 ms;
    // timers fire late on a loaded machine (measured up to 12 ms here), which the 400 ms to the lease's end absorbs.
    assert.ok(last && fencedAt <= last.arrivedAt + 600 + 100, `fenced ${fencedAt - (last?.arrivedAt ?? 0)} ms after the last renewal arrived`);
    assert.ok(fencedAt >= last.arrivedAt + 600 - 200, "not before the renew deadline (the renewal started at most a moment before it arrived)");
    assert.equal(a.isLeader(), false);
    assert.equal(a.stats.fenced, 1);
    assert.ok(term.reason instanceof LeadershipLost);
  });

  it("campaigns again only once the work of its last term has drained", async () => {
    let drained: () => void = () => undefined;
    let steppedDown = 0;
    // The first step-down drains until the test says so; later ones (the test's own stop) at once.
    const a = make("a", { onStoppedLeading: () => (++steppedDown === 1 ? new Promise<void>((r) => (drained = r)) : undefined) });
    a.start();
    await waitFor("a leads", () => a.isLeader());
    const fault = f.api.faults.add({ resource: "leases", error: 503 });
    await waitFor("a steps down", () => !a.isLeader(), 2000);
    f.api.faults.remove(fault);
    // The Lease is a's for the taking, but its last term's workers are still running: no campaign meanwhile.
    const before = f.api.requestLog.entries().length;
    await new Promise((r) => setTimeout(r, 500));
    const during = f.api.requestLog.entries().slice(before).filter((e) => e.resource === "leases");
    assert.deepEqual(during.map((e) => `${e.verb} ${e.code}`), [], "lease requests while the last term drained");
    assert.equal(a.isLeader(), false);
    drained();
    await waitFor("a leads again", () => a.isLeader(), 3000);
  });
});
