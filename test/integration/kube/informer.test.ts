// The informer against the sandbox API server over HTTP, with the server's fault switches: watches it drops,
// history it expires (410), errors it answers (429/500/503). Each test checks both the handler stream (nothing
// lost, deletes seen) and the counters a metric would export.
import assert from "node:assert/strict";
import { Resources, type KubeObject } from "../../../src/lib/kube/client.js";
import { FakeClock } from "../../../src/lib/kube/clock.js";
import { Informer, objectKey, splitKey, type InformerOptions } from "../../../src/lib/kube/informer.js";
import { configMap, startFixture, waitFor, type Fixture } from "./fixture.js";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

/** Handlers that record "add a", "update a", "delete a" and the cache in a plain array. */
function recorder(informer: Informer<ConfigMap>): string[] {
  const log: string[] = [];
  informer.addHandlers({
    onAdd: (o) => log.push(`add ${o.metadata?.name}`),
    onUpdate: (a, b) => log.push(`update ${b.metadata?.name}${a.metadata?.resourceVersion === b.metadata?.resourceVersion ? " (resync)" : ""}`),
    onDelete: (o) => log.push(`delete ${o.metadata?.name}`),
  });
  return log;
}

describe("informer (sandbox API server over HTTP)", function () {
  this.timeout(15_000);
  let f: Fixture;
  let informer: Informer<ConfigMap> | undefined;
  const make = (extra: Partial<InformerOptions> = {}): Informer<ConfigMap> => {
    informer = new Informer<ConfigMap>({
      client: f.client, resource: Resources.configMaps, namespace: "default",
      backoff: { baseMs: 20, maxMs: 200, jitter: 0.5 }, ...extra,
    });
    return informer;
  };
  const names = (inf: Informer<ConfigMap>): string[] => inf.list().map((o) => o.metadata?.name as string).sort();

  beforeEach(async () => {
    f = await startFixture();
  });
  afterEach(async () => {
    await informer?.stop();
    informer = undefined;
    await f.close();
  });

  it("lists before it is synced, then reports adds, updates and deletes from the watch", async () => {
    await f.client.create(Resources.configMaps, configMap("a"));
    await f.client.create(Resources.configMaps, configMap("b"));
    const inf = make();
    const log = recorder(inf);
    assert.equal(inf.isSynced(), false);
    inf.start();
    await inf.synced;
    assert.deepEqual(log.sort(), ["add a", "add b"]);
    assert.deepEqual(names(inf), ["a", "b"]);
    log.length = 0;
    await f.client.create(Resources.configMaps, configMap("c"));
    await f.client.patch(Resources.configMaps, "a", "merge", { data: { x: "1" } }, { namespace: "default" });
    await f.client.delete(Resources.configMaps, "b", { namespace: "default" });
    await waitFor("three watch events", () => log.length === 3);
    assert.deepEqual(log, ["add c", "update a", "delete b"]);
    assert.equal(inf.get("default/a")?.data?.x, "1");
    assert.deepEqual(inf.list((o) => o.metadata?.name === "c").map(objectKey), ["default/c"]);
    assert.equal(inf.stats.relists, 0);
  });

  it("lists in pages and watches from the list's resourceVersion", async () => {
    for (let i = 0; i < 7; i++) await f.client.create(Resources.configMaps, configMap(`p${i}`));
    const inf = make({ pageSize: 3 });
    const log = recorder(inf);
    inf.start();
    await inf.synced;
    assert.equal(log.length, 7);
    assert.equal(f.requests.filter((r) => r === "list configmaps 200").length, 3, "7 objects in pages of 3");
    await f.client.create(Resources.configMaps, configMap("p7"));
    await waitFor("the add after the paged list", () => log.includes("add p7"));
    assert.equal(log.length, 8, "nothing from the list replayed by the watch");
  });

  it("resumes a watch the server keeps dropping from the last resourceVersion without losing events", async () => {
    const inf = make();
    const log = recorder(inf);
    inf.start();
    await inf.synced;
    // Every watch ends after 2 events, as a flaky proxy or an API server rollout would end it.
    f.api.faults.add({ verb: "watch", resource: "configmaps", closeWatchAfterEvents: 2 });
    f.api.faults.closeWatches();
    for (let i = 0; i < 12; i++) await f.client.create(Resources.configMaps, configMap(`o${i}`));
    await waitFor("12 adds", () => log.length >= 12);
    assert.deepEqual(log, Array.from({ length: 12 }, (_, i) => `add o${i}`), "each object added exactly once, in order");
    assert.ok(inf.stats.watchRestarts >= 5, `watch restarts: ${inf.stats.watchRestarts}`);
    assert.equal(inf.stats.relists, 0, "resuming needs no relist");
  });

  it("relists after 410 Gone and reports what changed while it was disconnected, deletes included", async () => {
    for (const n of ["keep", "gone", "changed"]) await f.client.create(Resources.configMaps, configMap(n));
    const inf = make();
    const log = recorder(inf);
    inf.start();
    await inf.synced;
    log.length = 0;
    // Cut the informer off: its watch ends and new ones fail until the fault is removed.
    const block = f.api.faults.add({ verb: "watch", resource: "configmaps", error: 500 });
    f.api.faults.closeWatches();
    await f.client.delete(Resources.configMaps, "gone", { namespace: "default" });
    await f.client.patch(Resources.configMaps, "changed", "merge", { data: { v: "2" } }, { namespace: "default" });
    await f.client.create(Resources.configMaps, configMap("new"));
    await waitFor("a failed watch", () => inf.stats.errors >= 1);
    f.api.faults.expireHistory();
    f.api.faults.remove(block);
    await waitFor("the relist", () => inf.stats.relists === 1 && log.length === 3);
    assert.deepEqual(log.sort(), ["add new", "delete gone", "update changed"]);
    assert.deepEqual(names(inf), ["changed", "keep", "new"]);
    assert.equal(inf.get("default/changed")?.data?.v, "2");
    // And it watches again from the fresh list.
    await f.client.delete(Resources.configMaps, "keep", { namespace: "default" });
    await waitFor("the delete after the relist", () => log.includes("delete keep"));
  });

  it("backs off and recovers from 500 and 503 on list and watch", async () => {
    f.api.faults.add({ verb: "list", resource: "configmaps", error: 500, times: 3 });
    f.api.faults.add({ verb: "watch", resource: "configmaps", error: 503, times: 2 });
    await f.client.create(Resources.configMaps, configMap("a"));
    const inf = make();
    const log = recorder(inf);
    inf.start();
    await inf.synced;
    assert.deepEqual(log, ["add a"]);
    await f.client.create(Resources.configMaps, configMap("b"));
    await waitFor("the add after the watch errors", () => log.includes("add b"));
    assert.equal(inf.stats.errors, 5, "3 failed lists + 2 failed watches");
    assert.equal(f.requests.filter((r) => r === "list configmaps 500").length, 3);
    assert.equal(f.requests.filter((r) => r === "watch configmaps 503").length, 2);
  });

  it("waits at least Retry-After when the server answers 429", async () => {
    // With the client's own Retry-After retries off, the informer's wait is what is measured.
    await f.close();
    f = await startFixture({}, { maxRetries: 0 });
    f.api.faults.add({ verb: "list", resource: "configmaps", error: 429, retryAfterSeconds: 1, times: 1 });
    const inf = make();
    const t0 = Date.now();
    inf.start();
    await inf.synced;
    const waited = Date.now() - t0;
    assert.ok(waited >= 950, `synced after ${waited} ms, before the 1 s Retry-After`);
    assert.ok(waited < 3000, `synced after ${waited} ms`);
  });

  it("does not spin when every watch ends at once: it backs off", async () => {
    const inf = make({ backoff: { baseMs: 50, maxMs: 400, jitter: 0 } });
    inf.start();
    await inf.synced;
    f.api.faults.add({ verb: "watch", resource: "configmaps", closeWatchAfterEvents: 0 });
    f.api.faults.closeWatches();
    const before = f.requests.length;
    await new Promise((r) => setTimeout(r, 800));
    const watches = f.requests.slice(before).filter((r) => r.startsWith("watch ")).length;
    // 50+100+200+400 ms: about 4-5 reopens in 800 ms, where a hot loop would make hundreds.
    assert.ok(watches >= 2 && watches <= 8, `${watches} watches in 800 ms`);
  });

  it("reports a relist's changes as their pages arrive, not once the whole list is in", async () => {
    for (const n of ["a", "b", "c"]) await f.client.create(Resources.configMaps, configMap(n));
    const inf = make({ pageSize: 1 });
    inf.start();
    await inf.synced;
    // Per event of the relist: was the list still under way (relists counts a relist once its last page is in)?
    const during: string[] = [];
    inf.addHandlers({
      onAdd: (o) => during.push(`add ${o.metadata?.name} ${inf.stats.relists === 0 ? "mid-list" : "after"}`),
      onUpdate: (_a, b) => during.push(`update ${b.metadata?.name} ${inf.stats.relists === 0 ? "mid-list" : "after"}`),
      onDelete: (o) => during.push(`delete ${o.metadata?.name} ${inf.stats.relists === 0 ? "mid-list" : "after"}`),
    });
    const block = f.api.faults.add({ verb: "watch", resource: "configmaps", error: 500 });
    f.api.faults.closeWatches();
    await waitFor("a failed watch", () => inf.stats.errors >= 1);
    await f.client.patch(Resources.configMaps, "a", "merge", { data: { v: "2" } }, { namespace: "default" });
    await f.client.delete(Resources.configMaps, "b", { namespace: "default" });
    await f.client.create(Resources.configMaps, configMap("b2"));
    f.api.faults.expireHistory();
    f.api.faults.remove(block);
    await waitFor("the relist", () => inf.stats.relists === 1);
    // A delete is known only once every page is in; an update or an add as soon as its page is.
    assert.deepEqual(during, ["update a mid-list", "add b2 mid-list", "delete b after"]);
    assert.deepEqual(names(inf), ["a", "b2", "c"]);
  });

  it("a relist that starts over after its continue token expired deletes what vanished meanwhile", async () => {
    for (const n of ["a", "b", "c"]) await f.client.create(Resources.configMaps, configMap(n));
    const inf = make({ pageSize: 1 });
    const log = recorder(inf);
    inf.start();
    await inf.synced;
    const block = f.api.faults.add({ verb: "watch", resource: "configmaps", error: 500 });
    f.api.faults.closeWatches();
    await waitFor("a failed watch", () => inf.stats.errors >= 1);
    await f.client.patch(Resources.configMaps, "a", "merge", { data: { v: "2" } }, { namespace: "default" });
    log.length = 0;
    // The first page's update, reported mid-list, is the moment to delete "a" and compact the history: the next
    // page's continue token is then too old (410), so the list starts over, and "a" is no longer in it.
    const cmRes = f.api.store.resourceFor("v1", "ConfigMap");
    const off = inf.addHandlers({
      onUpdate: (_old, o) => {
        if (o.metadata?.name !== "a") return;
        off();
        f.api.store.delete(cmRes, "default", "a");
        f.api.faults.expireHistory();
      },
    });
    f.api.faults.expireHistory();
    f.api.faults.remove(block);
    await waitFor("the relist", () => inf.stats.relists === 1);
    assert.deepEqual(names(inf), ["b", "c"]);
    assert.deepEqual(log, ["update a", "delete a"]);
    assert.ok(f.requests.includes("list configmaps 410"), "the continue token expired mid-list");
  });

  it("relists periodically without reporting unchanged objects", async () => {
    await f.client.create(Resources.configMaps, configMap("a"));
    const inf = make({ relistIntervalMs: 150 });
    const log = recorder(inf);
    inf.start();
    await inf.synced;
    await waitFor("two periodic relists", () => inf.stats.relists >= 2);
    assert.deepEqual(log, ["add a"]);
    await f.client.create(Resources.configMaps, configMap("b"));
    await waitFor("the watch after relisting", () => log.includes("add b"));
  });

  it("replays the cache on resync, follows bookmarks, and survives a throwing handler", async () => {
    await f.close();
    f = await startFixture({ bookmarkIntervalMs: 50 });
    await f.client.create(Resources.configMaps, configMap("a"));
    const inf = make({ resyncIntervalMs: 100 });
    inf.addHandlers({ onAdd: () => { throw new Error("handler bug"); } });
    const log = recorder(inf);
    inf.start();
    await inf.synced;
    await waitFor("a resync and bookmarks", () => log.includes("update a (resync)") && inf.stats.bookmarks >= 2);
    await f.client.create(Resources.configMaps, configMap("b"));
    await waitFor("the add after a throwing handler", () => log.includes("add b"));
  });

  it("ends and reopens a watch the server never ends (a silently dead connection) after timeoutSeconds + 30 s", async () => {
    const clock = new FakeClock();
    const inf = make({ clock, random: () => 0, watchTimeoutSeconds: 100 });
    const log = recorder(inf);
    inf.start();
    await inf.synced;
    await waitFor("the watch", () => f.requests.includes("watch configmaps 200"));
    await clock.advance(129_000);
    assert.equal(inf.stats.watchRestarts, 0);
    await clock.advance(1_000);
    await waitFor("the watchdog's restart", () => inf.stats.watchRestarts === 1 && f.requests.filter((r) => r.startsWith("watch")).length === 2);
    await f.client.create(Resources.configMaps, configMap("after"));
    await waitFor("the add on the new watch", () => log.includes("add after"));
  });

  it("converges to the server's exact state through random dropped watches, errors and expired history", async function () {
    this.timeout(20_000);
    const inf = make({ backoff: { baseMs: 5, maxMs: 40, jitter: 1 } });
    // Mirror the handler stream into a map: if any event were lost or doubled, the mirror would differ.
    // (Handler exceptions are caught by the informer, so violations are collected, then asserted.)
    const mirror = new Map<string, string>();
    const violations: string[] = [];
    inf.addHandlers({
      onAdd: (o) => {
        if (mirror.has(objectKey(o))) violations.push(`double add ${objectKey(o)}`);
        mirror.set(objectKey(o), o.metadata?.resourceVersion ?? "");
      },
      onUpdate: (_a, b) => {
        if (!mirror.has(objectKey(b))) violations.push(`update before add ${objectKey(b)}`);
        mirror.set(objectKey(b), b.metadata?.resourceVersion ?? "");
      },
      onDelete: (o) => {
        if (!mirror.delete(objectKey(o))) violations.push(`delete of unknown ${objectKey(o)}`);
      },
    });
    inf.start();
    await inf.synced;
    f.api.faults.add({ verb: "watch", resource: "configmaps", closeWatchAfterEvents: 3, probability: 0.5 });
    f.api.faults.add({ verb: "watch", resource: "configmaps", error: 500, probability: 0.2 });
    f.api.faults.add({ verb: "list", resource: "configmaps", error: 503, probability: 0.3 });
    f.api.faults.add({ verb: "list", resource: "configmaps", error: 500, times: 1 });
    const alive = new Set<string>();
    for (let i = 0; i < 150; i++) {
      const name = `c${i % 40}`;
      if (alive.has(name) && i % 3 === 0) {
        await f.client.delete(Resources.configMaps, name, { namespace: "default" });
        alive.delete(name);
      } else if (alive.has(name)) {
        await f.client.patch(Resources.configMaps, name, "merge", { data: { i: String(i) } }, { namespace: "default" });
      } else {
        await f.client.create(Resources.configMaps, configMap(name, { i: String(i) }));
        alive.add(name);
      }
      if (i % 37 === 36) {
        f.api.faults.expireHistory();
        f.api.faults.closeWatches();
      }
    }
    f.api.faults.clear();
    const truth = await f.client.list(Resources.configMaps, { namespace: "default" });
    const want = new Map(truth.items.map((o) => [objectKey(o), o.metadata?.resourceVersion ?? ""]));
    const same = (m: Map<string, string>): boolean => m.size === want.size && [...want].every(([k, v]) => m.get(k) === v);
    await waitFor("the informer to converge", () => same(mirror) && same(new Map(inf.list().map((o) => [objectKey(o), o.metadata?.resourceVersion ?? ""]))), 10_000);
    assert.deepEqual(violations, []);
    // The faults did happen: four forced closes (fewer restarts when one lands while the informer is listing or
    // backing off from a failed list, with no watch open to close) plus random ones. CI once saw 2 restarts
    // (with 3 list errors); 2 still proves restarts happened, and convergence above is what the test is about.
    assert.ok(inf.stats.relists >= 1 && inf.stats.watchRestarts >= 2 && inf.stats.errors >= 1, JSON.stringify(inf.stats));
  });

  it("splits keys back into namespace and name", () => {
    assert.deepEqual(splitKey("ns/name"), { namespace: "ns", name: "name" });
    assert.deepEqual(splitKey("node-1"), { name: "node-1" });
    assert.equal(objectKey({ metadata: { name: "n" } }), "n");
  });
});
