// The sandbox API server's own request log, and what it does with a request whose client goes away while the
// request waits in the latency injector (nothing: kube-apiserver drops a request whose context is cancelled while it
// queues). Both over HTTP with the real KubeClient, as the fencing test uses them.
import assert from "node:assert/strict";
import { KubeClient, KubeError, Resources } from "../../../src/lib/kube/client.js";
import { requestLogNow } from "../../../src/sandbox/apiserver/index.js";
import { configMap, startFixture, waitFor, type Fixture } from "./fixture.js";

describe("sandbox API server: request log and abandoned requests (over HTTP)", function () {
  let f: Fixture;
  beforeEach(async () => {
    f = await startFixture({}, { userAgent: "berth-test/1 (replica-a)" });
  });
  afterEach(async () => {
    await f.close();
  });

  it("records arrival, end, verb, resource, name, User-Agent and status of each request", async () => {
    const before = requestLogNow();
    await f.client.create(Resources.configMaps, configMap("one"), { namespace: "default" });
    await assert.rejects(f.client.get(Resources.configMaps, "absent", { namespace: "default" }));
    const log = f.api.requestLog.entries().filter((e) => e.resource === "configmaps");
    assert.deepEqual(log.map((e) => [e.method, e.verb, e.namespace, e.name, e.code, e.outcome, e.userAgent]), [
      ["POST", "create", "default", undefined, 201, "answered", "berth-test/1 (replica-a)"],
      ["GET", "get", "default", "absent", 404, "answered", "berth-test/1 (replica-a)"],
    ]);
    const [a, b] = log as [typeof log[0], typeof log[0]];
    assert.ok(a.arrivedAt >= before && (a.endedAt ?? 0) >= a.arrivedAt && b.arrivedAt >= (a.endedAt ?? Infinity));
    assert.ok(a.seq < (a.endSeq ?? 0) && (a.endSeq ?? 0) < b.seq, "one counter orders arrivals and ends");
    assert.equal(a.path, "/api/v1/namespaces/default/configmaps");
  });

  it("does nothing with a write whose client went away while it waited, and logs it abandoned", async () => {
    f.api.faults.add({ verb: "create", resource: "configmaps", latencyMs: 300 });
    const ac = new AbortController();
    const write = f.client.create(Resources.configMaps, configMap("never"), { namespace: "default", signal: ac.signal });
    await waitFor("the write reached the server", () => f.api.requestLog.entries().some((e) => e.verb === "create"));
    ac.abort();
    await assert.rejects(write, (e: unknown) => e instanceof KubeError && e.reason === "Aborted");
    await waitFor("the server saw it go", () => f.api.requestLog.entries().some((e) => e.outcome === "abandoned"));
    // Past the latency: the write would have been applied by now had the server gone on with it.
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(await f.client.tryGet(Resources.configMaps, "never", { namespace: "default" }), undefined);
    const entry = f.api.requestLog.entries().find((e) => e.verb === "create");
    assert.equal(entry?.outcome, "abandoned");
    assert.equal(entry?.code, undefined);
    assert.ok((entry?.endedAt ?? Infinity) - (entry?.arrivedAt ?? 0) < 250, "it ended when the client went, not after the latency");
    // A client that waits gets the write done.
    await f.client.create(Resources.configMaps, configMap("waited"), { namespace: "default" });
    assert.ok(await f.client.tryGet(Resources.configMaps, "waited", { namespace: "default" }));
  });

  it("narrows a fault to the clients whose User-Agent contains a string", async () => {
    const other = new KubeClient({ server: f.api.url, authHeaders: () => ({ Authorization: `Bearer ${f.api.token}` }), userAgent: "berth-test/1 (replica-b)" });
    try {
      f.api.faults.add({ resource: "configmaps", error: 503, userAgent: "(replica-a)" });
      await assert.rejects(f.client.list(Resources.configMaps, { namespace: "default" }), (e: unknown) => e instanceof KubeError && e.code === 503);
      assert.deepEqual((await other.list(Resources.configMaps, { namespace: "default" })).items, []);
    } finally {
      other.close();
    }
  });
});
