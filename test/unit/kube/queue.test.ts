// The work queue's client-go semantics, driven by a fake clock: dedup, no concurrent processing of one key,
// re-run after a re-add during processing, delays, per-key backoff, and shutdown.
import assert from "node:assert/strict";
import { FakeClock, flushMicrotasks } from "../../../src/lib/kube/clock.js";
import { WorkQueue } from "../../../src/lib/kube/queue.js";

/** A promise the test resolves by hand, to hold a worker "in progress". */
function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe("work queue", () => {
  let clock: FakeClock;
  let q: WorkQueue;
  beforeEach(() => {
    clock = new FakeClock();
    q = new WorkQueue({ clock });
  });
  afterEach(async () => {
    await q.shutdown();
  });

  it("hands out a key queued several times once, in first-added order", async () => {
    for (const k of ["a", "b", "a", "c", "b"]) q.add(k);
    assert.equal(q.depth, 3);
    assert.deepEqual([await q.get(), await q.get(), await q.get()], ["a", "b", "c"]);
    assert.equal(q.depth, 0);
    assert.equal(q.processing, 3);
  });

  it("does not hand out a key being processed; re-added meanwhile, it comes back once after done()", async () => {
    q.add("a");
    assert.equal(await q.get(), "a");
    q.add("a");
    q.add("a");
    assert.equal(q.depth, 0, "held back while processing");
    q.done("a");
    assert.equal(q.depth, 1);
    assert.equal(await q.get(), "a");
    q.done("a");
    assert.equal(q.depth, 0);
  });

  // Urgent keys (a new Service waiting for its DaemonSet) are served before ordinary ones (status-only work), each
  // lane in first-added order, a key still once. "a!" = add("a", { urgent: true }), "take" = get() + done().
  const lanes: { name: string; steps: string[]; want: string[] }[] = [
    { name: "urgent keys go first, each lane in order", steps: ["a", "b", "c!", "d", "e!"], want: ["c", "e", "a", "b", "d"] },
    { name: "an urgent add moves an ordinarily queued key up, once", steps: ["a", "b", "c", "b!"], want: ["b", "a", "c"] },
    { name: "an ordinary add leaves an urgent key where it is", steps: ["a", "b!", "b"], want: ["b", "a"] },
    { name: "a key handed out from the urgent lane is not handed out again from its old place", steps: ["a", "b", "b!", "take", "b"], want: ["b", "a", "b"] },
    { name: "urgent twice is still once", steps: ["a!", "a!", "b"], want: ["a", "b"] },
  ];
  for (const t of lanes) {
    it(`urgent lane: ${t.name}`, async () => {
      const got: string[] = [];
      for (const step of t.steps) {
        if (step === "take") {
          const key = await q.get() as string;
          got.push(key);
          q.done(key);
        } else q.add(step.replace("!", ""), { urgent: step.endsWith("!") });
      }
      assert.equal(q.depth, t.want.length - got.length, "depth counts each queued key once");
      while (q.depth > 0) {
        const key = await q.get() as string;
        got.push(key);
        q.done(key);
      }
      assert.deepEqual(got, t.want);
      assert.equal(q.depth, 0);
    });
  }

  it("urgent lane: a key re-added urgently while processing comes back ahead of ordinary keys", async () => {
    q.add("a");
    assert.equal(await q.get(), "a");
    q.add("b");
    q.add("a", { urgent: true });
    q.done("a");
    assert.deepEqual([await q.get(), await q.get()], ["a", "b"]);
  });

  it("reports how long each key waited and in which lane, from when it was first queued", async () => {
    const waits: string[] = [];
    const w = new WorkQueue({ clock, observeWait: (lane, ms) => waits.push(`${lane} ${ms}`) });
    w.add("a");
    await clock.advance(30);
    w.add("b");
    await clock.advance(10);
    w.add("c", { urgent: true });
    w.add("b", { urgent: true });
    await clock.advance(5);
    assert.deepEqual([await w.get(), await w.get(), await w.get()], ["c", "b", "a"]);
    const idle = w.get();
    w.add("d", { urgent: true });
    assert.equal(await idle, "d");
    assert.deepEqual(waits, ["urgent 5", "urgent 15", "normal 45", "urgent 0"], "b counts from its first, ordinary add");
    await w.shutdown();
  });

  it("wakes a waiting get() when a key arrives", async () => {
    const next = q.get();
    q.add("x");
    assert.equal(await next, "x");
  });

  it("delays addAfter keys, and the earlier of two delays wins", async () => {
    q.addAfter("a", 1000);
    q.addAfter("a", 300);
    q.addAfter("a", 2000);
    assert.equal(q.waiting, 1);
    await clock.advance(299);
    assert.equal(q.depth, 0);
    await clock.advance(1);
    assert.equal(q.depth, 1);
    assert.equal(q.waiting, 0);
    await clock.advance(5000);
    assert.equal(q.depth, 1, "the later delays were dropped");
  });

  it("backs a failing key off exponentially per key until forget()", async () => {
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      q.addRateLimited("a");
      const t0 = clock.now();
      while (q.depth === 0) await clock.advance(1);
      delays.push(clock.now() - t0);
      assert.equal(await q.get(), "a");
      q.done("a");
    }
    assert.deepEqual(delays, [5, 10, 20, 40]);
    assert.equal(q.numRequeues("a"), 4);
    assert.equal(q.numRequeues("b"), 0, "backoff is per key");
    q.forget("a");
    assert.equal(q.numRequeues("a"), 0);
  });

  it("runs workers with bounded concurrency and never one key twice at once", async () => {
    const gates = new Map<string, ReturnType<typeof gate>>();
    let running = 0;
    let maxRunning = 0;
    const runningKeys = new Set<string>();
    const processed: string[] = [];
    const done = q.run(async (key) => {
      assert.ok(!runningKeys.has(key), `${key} processed concurrently`);
      runningKeys.add(key);
      running++;
      maxRunning = Math.max(maxRunning, running);
      const g = gate();
      gates.set(key, g);
      await g.promise;
      running--;
      runningKeys.delete(key);
      processed.push(key);
    }, { concurrency: 2 });
    for (const k of ["a", "b", "c"]) q.add(k);
    await flushMicrotasks();
    assert.equal(running, 2);
    q.add("a"); // re-added while in progress
    gates.get("a")?.open();
    await flushMicrotasks();
    // c takes the free slot first (it was queued earlier); a's second run waits for a slot too.
    gates.get("b")?.open();
    await flushMicrotasks();
    gates.get("c")?.open();
    await flushMicrotasks();
    gates.get("a")?.open();
    await flushMicrotasks();
    assert.deepEqual(processed, ["a", "b", "c", "a"]);
    assert.equal(maxRunning, 2);
    await q.shutdown();
    await done;
  });

  it("urgent-only workers take an urgent key while every other worker is busy, and never an ordinary one", async () => {
    const gates = new Map<string, ReturnType<typeof gate>>();
    const started: string[] = [];
    const runningKeys = new Set<string>();
    const done = q.run(async (key) => {
      assert.ok(!runningKeys.has(key), `${key} processed concurrently`);
      runningKeys.add(key);
      started.push(key);
      const g = gate();
      gates.set(key, g);
      await g.promise;
      runningKeys.delete(key);
    }, { concurrency: 2, urgentConcurrency: 1 });
    // Two ordinary keys fill the two ordinary workers; a third ordinary key waits: the urgent-only worker stays free.
    for (const k of ["status-1", "status-2", "status-3"]) q.add(k);
    await flushMicrotasks();
    assert.deepEqual(started, ["status-1", "status-2"]);
    // A new Service's key starts at once on the urgent-only worker instead of waiting for a status write to finish.
    q.add("new-1", { urgent: true });
    await flushMicrotasks();
    assert.deepEqual(started, ["status-1", "status-2", "new-1"]);
    // A key already queued ordinarily and moved up is handed out as well once the urgent-only worker is free.
    gates.get("new-1")?.open();
    await flushMicrotasks();
    assert.deepEqual(started, ["status-1", "status-2", "new-1"], "the urgent-only worker left status-3 queued");
    q.add("status-3", { urgent: true });
    await flushMicrotasks();
    assert.deepEqual(started, ["status-1", "status-2", "new-1", "status-3"]);
    // The same key is not run twice at once, even by two kinds of worker.
    q.add("status-1", { urgent: true });
    await flushMicrotasks();
    assert.equal(started.filter((k) => k === "status-1").length, 1);
    gates.get("status-1")?.open();
    await flushMicrotasks();
    assert.equal(started.filter((k) => k === "status-1").length, 2, "status-1 again, after its first run");
    for (const g of gates.values()) g.open();
    await flushMicrotasks();
    for (const g of gates.values()) g.open();
    await q.shutdown();
    await done;
  });

  it("retries a throwing worker with backoff and forgets the key after it succeeds", async () => {
    let calls = 0;
    const errors: number[] = [];
    const results: string[] = [];
    const done = q.run(async () => {
      calls++;
      if (calls <= 2) throw new Error(`fail ${calls}`);
    }, {
      onError: (_k, _e, n) => errors.push(n),
      onDone: (_k, r) => results.push(r),
    });
    q.add("svc");
    await flushMicrotasks();
    assert.equal(calls, 1);
    await clock.advance(5);
    assert.equal(calls, 2);
    await clock.advance(9);
    assert.equal(calls, 2, "second retry waits 10 ms");
    await clock.advance(1);
    assert.equal(calls, 3);
    assert.deepEqual(errors, [1, 2]);
    assert.deepEqual(results, ["error", "error", "success"]);
    assert.equal(q.numRequeues("svc"), 0);
    await q.shutdown();
    await done;
  });

  it("requeues a key when the worker asks to look again later", async () => {
    let calls = 0;
    const done = q.run(async () => {
      calls++;
      return calls === 1 ? { requeueAfterMs: 30_000 } : undefined;
    });
    q.add("k");
    await flushMicrotasks();
    await clock.advance(29_999);
    assert.equal(calls, 1);
    await clock.advance(1);
    assert.equal(calls, 2);
    await q.shutdown();
    await done;
  });

  it("shutdown stops the workers, drops queued and delayed keys, and waits for the key in progress", async () => {
    const g = gate();
    let finished = false;
    const done = q.run(async () => {
      await g.promise;
      finished = true;
    });
    q.add("a");
    q.add("b");
    q.addAfter("c", 1000);
    await flushMicrotasks();
    const stopping = q.shutdown();
    let stopped = false;
    void stopping.then(() => (stopped = true));
    await flushMicrotasks();
    assert.equal(stopped, false, "waits for the key in progress");
    g.open();
    await stopping;
    await done;
    assert.ok(finished);
    assert.equal(q.depth, 0);
    assert.equal(clock.pending, 0, "delay timers cancelled");
    q.add("d");
    assert.equal(q.depth, 0, "adds after shutdown are ignored");
    assert.equal(await q.get(), undefined);
  });
});
