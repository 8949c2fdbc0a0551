// Limits: 10k objects and 100 concurrent watches, over HTTP, with bounded memory and latency.
import assert from "node:assert/strict";
import { request } from "node:http";
import { startApiServer, type ApiServerHandle } from "../../src/sandbox/apiserver/index.js";
import { CM, configMap, useServer, type Watch } from "./apiserver-client.js";

const OBJECTS = 10_000;
const WATCHES = 100;

describe("sandbox apiserver: scale", function () {
  this.timeout(120_000);
  const { server, client } = useServer({ historyLimit: 1000 });

  it("holds 10k objects and 100 watches with bounded memory, fast lists and fast fan-out", async () => {
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const t0 = Date.now();
    let next = 0;
    // 16 concurrent writers over keep-alive connections, as a busy controller would.
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < OBJECTS) {
        const i = next++;
        const r = await client().post(CM, configMap(`cm-${i}`, { app: `a${i % 10}` }, { key: `value-${i}` }));
        if (r.status !== 201) throw new Error(`create ${i}: ${r.status} ${r.text}`);
      }
    }));
    const createMs = Date.now() - t0;
    assert.equal(server().store.size() >= OBJECTS, true);

    const t1 = Date.now();
    const list = await client().get(CM);
    const listMs = Date.now() - t1;
    assert.equal(list.body.items.length, OBJECTS);

    const t2 = Date.now();
    const page = await client().get(`${CM}?limit=500&labelSelector=app%3Da3`);
    const pageMs = Date.now() - t2;
    assert.equal(page.body.items.length, 500);

    const rv = list.body.metadata.resourceVersion as string;
    const watches: Watch[] = [];
    for (let i = 0; i < WATCHES; i++) watches.push(await client().watch(`${CM}?resourceVersion=${rv}&labelSelector=app%3Da${i % 10}`));
    assert.equal(server().store.watcherCount(), WATCHES);

    // One update per label value: every watch sees exactly one MODIFIED.
    const t3 = Date.now();
    for (let i = 0; i < 10; i++) {
      const r = await client().patch(`${CM}/cm-${i}`, "application/merge-patch+json", { data: { key: "changed" } });
      assert.equal(r.status, 200);
    }
    const events = await Promise.all(watches.map((w) => w.next(10_000)));
    const fanoutMs = Date.now() - t3;
    assert.ok(events.every((e) => e?.type === "MODIFIED"), "every watch got its MODIFIED");

    global.gc?.();
    const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024;
    console.log(`      10k creates ${createMs} ms (${Math.round(OBJECTS / (createMs / 1000))}/s), list 10k ${listMs} ms, ` +
      `selector page ${pageMs} ms, fan-out to ${WATCHES} watches ${fanoutMs} ms, heap growth ${heapMiB.toFixed(1)} MiB`);
    // Generous bounds for 2 cores under a parallel test run; the measured numbers are printed above.
    assert.ok(listMs < 5000, `list took ${listMs} ms`);
    assert.ok(fanoutMs < 5000, `fan-out took ${fanoutMs} ms`);
    assert.ok(heapMiB < 400, `heap grew ${heapMiB.toFixed(1)} MiB`);
  });

  it("terminates a namespace of 10k objects, half of them owned by the other half, in seconds", async () => {
    const store = server().store;
    await client().post("/api/v1/namespaces", { metadata: { name: "bulk" } });
    const cm = store.resourceFor("v1", "ConfigMap");
    for (let i = 0; i < OBJECTS / 2; i++) {
      const owner = store.create(cm, "bulk", { metadata: { name: `owner-${i}` } });
      store.create(cm, "bulk", { metadata: { name: `child-${i}`, ownerReferences: [
        { apiVersion: "v1", kind: "ConfigMap", name: `owner-${i}`, uid: owner.metadata.uid as string },
      ] } });
    }
    const t0 = Date.now();
    const d = await client().del("/api/v1/namespaces/bulk");
    assert.equal(d.status, 200);
    const ms = Date.now() - t0;
    assert.equal((await client().get("/api/v1/namespaces/bulk")).status, 404);
    console.log(`      namespace with ${OBJECTS} objects terminated in ${ms} ms`);
    assert.ok(ms < 10_000, `took ${ms} ms`);
  });
});

describe("sandbox apiserver: slow watchers", () => {
  let server: ApiServerHandle | undefined;
  afterEach(async () => server?.close());

  it("drops a watch whose client stops reading once its backlog passes the limit, and keeps serving others", async () => {
    server = await startApiServer({ port: 0, maxWatchBufferBytes: 256 * 1024 });
    const s = server;
    const url = new URL(`${s.url}${CM}?watch=true&resourceVersion=${s.store.resourceVersion()}`);
    const stalled = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
      const req = request(url, { headers: { Authorization: `Bearer ${s.token}` } }, (res) => {
        res.pause(); // never read
        resolve(res);
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(s.store.watcherCount(), 1);
    const cm = s.store.resourceFor("v1", "ConfigMap");
    const big = "x".repeat(64 * 1024);
    for (let i = 0; i < 200 && s.store.watcherCount() > 0; i++) {
      s.store.create(cm, "default", { metadata: { name: `big-${i}` }, data: { big } });
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(s.store.watcherCount(), 0, "the stalled watch was dropped");
    stalled.destroy();
    const ok = await fetch(`${s.url}${CM}?limit=1`, { headers: { Authorization: `Bearer ${s.token}` } });
    assert.equal(ok.status, 200);
  });
});
