// Fault injection: each switch, in-process and through the /_sandbox/faults admin endpoint.
import assert from "node:assert/strict";
import { Faults } from "../../src/sandbox/apiserver/faults.js";
import { CM, Client, configMap, useServer } from "./apiserver-client.js";

describe("sandbox apiserver: fault injection", () => {
  const { server, client } = useServer();

  it("delays matching requests by latencyMs", async () => {
    server().faults.add({ verb: "list", resource: "configmaps", latencyMs: 300 });
    const t0 = Date.now();
    await client().get(CM);
    assert.ok(Date.now() - t0 >= 290, `took ${Date.now() - t0} ms`);
    const t1 = Date.now();
    await client().get("/api/v1/namespaces/default/services");
    assert.ok(Date.now() - t1 < 200, "other resources are not delayed");
  });

  for (const [code, reason] of [[409, "Conflict"], [500, "InternalError"], [503, "ServiceUnavailable"]] as const) {
    it(`answers ${code} ${reason} as a Status for matching requests`, async () => {
      await client().post(CM, configMap("a"));
      server().faults.add({ verb: "update", resource: "configmaps", error: code });
      const r = await client().put(`${CM}/a`, configMap("a"));
      assert.equal(r.status, code);
      assert.equal(r.body.kind, "Status");
      assert.equal(r.body.reason, reason);
    });
  }

  it("answers 429 with a Retry-After header and retryAfterSeconds", async () => {
    server().faults.add({ verb: "get", error: 429, retryAfterSeconds: 3 });
    const r = await client().get(`${CM}/a`);
    assert.equal(r.status, 429);
    assert.equal(r.headers.get("retry-after"), "3");
    assert.equal(r.body.reason, "TooManyRequests");
    assert.equal(r.body.details.retryAfterSeconds, 3);
  });

  it("applies a rule with times only that many times", async () => {
    server().faults.add({ verb: "list", error: 500, times: 2 });
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await client().get(CM)).status);
    assert.deepEqual(codes, [500, 500, 200]);
    assert.deepEqual(server().faults.list(), []);
  });

  it("never fires a rule with probability 0 and always fires one with probability 1", async () => {
    server().faults.add({ verb: "list", resource: "configmaps", error: 503, probability: 0 });
    assert.equal((await client().get(CM)).status, 200);
    server().faults.add({ verb: "list", resource: "services", error: 503, probability: 1 });
    assert.equal((await client().get("/api/v1/namespaces/default/services")).status, 503);
  });

  it("fires a probabilistic rule when the random source falls under the probability", () => {
    const draws = [0.1, 0.9, 0.4, 0.6];
    const faults = new Faults(() => draws.shift() ?? 1);
    faults.add({ error: 500, probability: 0.5 });
    const hits = [0, 1, 2, 3].map(() => faults.decide({ verb: "get", resource: "pods" }).error?.code);
    assert.deepEqual(hits, [500, undefined, 500, undefined]);
  });

  it("matches a subresource rule only on that subresource", async () => {
    await client().post("/api/v1/namespaces/default/services", { metadata: { name: "s" }, spec: { ports: [{ port: 80 }] } });
    server().faults.add({ resource: "services/status", error: 409 });
    const s = await client().get("/api/v1/namespaces/default/services/s");
    assert.equal(s.status, 200);
    const st = await client().put("/api/v1/namespaces/default/services/s/status", s.body);
    assert.equal(st.status, 409);
  });

  it("matches a namespace rule only in that namespace", async () => {
    server().faults.add({ namespace: "kube-system", error: 500 });
    assert.equal((await client().get(CM)).status, 200);
    assert.equal((await client().get("/api/v1/namespaces/kube-system/configmaps")).status, 500);
  });

  it("matches a userAgent rule only on requests whose User-Agent starts with it", async () => {
    server().faults.add({ userAgent: "berth-controller", error: 500 });
    assert.equal((await client().get(CM, { "User-Agent": "berth-chaos" })).status, 200);
    assert.equal((await client().get(CM, { "User-Agent": "berth-controller/0.1.0" })).status, 500);
    assert.equal((await client().get(CM)).status, 200, "a request without the header is not hit");
  });

  it("ends watches after closeWatchAfterEvents events", async () => {
    server().faults.add({ resource: "configmaps", closeWatchAfterEvents: 2 });
    const w = await client().watch(CM);
    for (const n of ["a", "b", "c"]) await client().post(CM, configMap(n));
    const evs = await w.take(3, 1000);
    assert.equal(evs.length, 2);
    assert.ok(await w.waitEnd());
  });

  it("ends a watch at once with closeWatchAfterEvents 0", async () => {
    server().faults.add({ resource: "configmaps", closeWatchAfterEvents: 0 });
    const w = await client().watch(CM);
    assert.ok(await w.waitEnd(1000));
  });

  it("ends watches after closeWatchAfterSeconds", async () => {
    server().faults.add({ resource: "configmaps", closeWatchAfterSeconds: 0.3 });
    const w = await client().watch(CM);
    const t0 = Date.now();
    assert.ok(await w.waitEnd(2000));
    assert.ok(Date.now() - t0 >= 250);
  });

  it("does not end non-watch requests for watch-only rules", async () => {
    server().faults.add({ closeWatchAfterEvents: 0 });
    assert.equal((await client().get(CM)).status, 200);
  });

  it("makes the next watch from an earlier resourceVersion get 410 after history expiry", async () => {
    const c = await client().post(CM, configMap("a"));
    server().faults.expireHistory();
    const w = await client().watch(`${CM}?resourceVersion=${c.body.metadata.resourceVersion}`);
    const ev = await w.next();
    assert.equal(ev?.type, "ERROR");
    assert.equal(ev?.object.code, 410);
    const relist = await client().get(CM);
    const again = await client().watch(`${CM}?resourceVersion=${relist.body.metadata.resourceVersion}`);
    await client().post(CM, configMap("b"));
    assert.equal((await again.next())?.type, "ADDED");
  });

  it("ends every open watch on closeWatches, in-process and through the admin endpoint", async () => {
    const a = await client().watch(CM);
    const b = await client().watch("/api/v1/namespaces/default/services");
    assert.equal(server().faults.closeWatches(), 2);
    assert.ok(await a.waitEnd());
    assert.ok(await b.waitEnd());
    const c = await client().watch(CM);
    const r = await client().post("/_sandbox/faults/close-watches", {});
    assert.equal(r.body.closed, 1);
    assert.ok(await c.waitEnd());
  });

  it("adds, lists and removes rules through the admin endpoint", async () => {
    const add = await client().post("/_sandbox/faults", { verb: "list", resource: "configmaps", error: 503 });
    assert.equal(add.status, 201);
    assert.equal((await client().get(CM)).status, 503);
    const list = await client().get("/_sandbox/faults");
    assert.equal(list.body.rules.length, 1);
    assert.equal(list.body.rules[0].hits, 1);
    const del = await client().del(`/_sandbox/faults/${add.body.id}`);
    assert.equal(del.status, 200);
    assert.equal((await client().get(CM)).status, 200);
  });

  it("clears all rules with DELETE /_sandbox/faults", async () => {
    await client().post("/_sandbox/faults", { error: 500, verb: "list" });
    await client().post("/_sandbox/faults", { latencyMs: 10 });
    await client().del("/_sandbox/faults");
    assert.deepEqual(server().faults.list(), []);
  });

  it("expires watch history through the admin endpoint", async () => {
    const c = await client().post(CM, configMap("a"));
    const r = await client().post("/_sandbox/faults/expire-history", {});
    assert.equal(r.status, 200);
    const w = await client().watch(`${CM}?resourceVersion=${c.body.metadata.resourceVersion}`);
    assert.equal((await w.next())?.object.code, 410);
  });

  it("answers 400 to an invalid rule", async () => {
    for (const bad of [{ error: 418 }, { verb: "list" }, { latencyMs: -1 }, { probability: 2, error: 500 }, { typo: 1, error: 500 }]) {
      const r = await client().post("/_sandbox/faults", bad);
      assert.equal(r.status, 400, JSON.stringify(bad));
    }
  });

  it("requires the bearer token on the admin endpoint", async () => {
    const r = await new Client(server(), null).post("/_sandbox/faults", { error: 500 });
    assert.equal(r.status, 401);
  });
});
