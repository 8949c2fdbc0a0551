// docs/architecture.md, "Reliability": two replicas with exactly one writer; API faults (409, 429, 500), dropped watches and forced 410s
// are retried with backoff and everything converges.
import assert from "node:assert/strict";
import { CONDITION_TYPES } from "../../../src/lib/names.js";
import {
  condition, create, daemonSetsFor, getObj, node, nodePath, NS, startController, startEnv, service, svcPath, updateNode, waitFor,
  waitForIngress, type Env, type TestController,
} from "./support.js";

const SVCS = "/api/v1/namespaces/default/services";
const ALL = ["192.0.2.31", "192.0.2.32"];

describe("controller: replicas and API faults", function () {
  let env: Env;
  const running: TestController[] = [];
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.31" }));
    await create(env.client, nodePath(), node("n2", { internalIp: "192.0.2.32" }));
  });
  afterEach(async () => {
    for (const c of running.splice(0)) await c.stop();
    await env?.close();
  });
  const start = async (opts: Parameters<typeof startController>[1] = {}): Promise<TestController> => {
    const c = await startController(env, opts);
    running.push(c);
    return c;
  };

  it("with two replicas exactly one writes, and the other takes over when the leader releases the Lease", async () => {
    const a = await start({ identity: "replica-a" });
    await waitFor("a leads", async () => a.controller.isLeader());
    const b = await start({ identity: "replica-b" });
    for (const name of ["s1", "s2", "s3"]) await create(env.client, SVCS, service(name, { ports: [{ port: 80 + Number(name[1]) }] }));
    for (const name of ["s1", "s2", "s3"]) await waitForIngress(env.client, name, ALL);
    assert.equal(b.controller.isLeader(), false);
    assert.ok(a.writes().length > 0);
    assert.deepEqual(b.writes(), [], "the follower wrote nothing but the Lease");

    // The leader shuts down (SIGTERM path: workers stop, Lease released); the follower leads within a retry period.
    await a.stop();
    running.splice(running.indexOf(a), 1);
    await waitFor("b leads", async () => b.controller.isLeader(), 3000);
    await create(env.client, SVCS, service("s4", { ports: [{ port: 90 }] }));
    await waitForIngress(env.client, "s4", ALL);
    assert.ok(b.writes().length > 0);
  });

  it("a crashed leader (no release) is replaced once its Lease expires, and its follower never wrote before", async () => {
    const a = await start({ identity: "replica-a" });
    await waitFor("a leads", async () => a.controller.isLeader());
    const b = await start({ identity: "replica-b" });
    await create(env.client, SVCS, service("s1"));
    await waitForIngress(env.client, "s1", ALL);
    const writesBefore = b.writes().length;
    assert.equal(writesBefore, 0);
    const crashed = Date.now();
    await a.stop({ release: false });
    running.splice(running.indexOf(a), 1);
    await waitFor("b leads", async () => b.controller.isLeader(), 6000);
    // Lease 2 s: b may only lead once a's record has gone unchanged for the lease duration.
    assert.ok(Date.now() - crashed >= 1500, `took over after ${Date.now() - crashed} ms, before the lease expired`);
    await updateNode(env.client, "n2", (n) => (n.metadata.labels["node.kubernetes.io/exclude-from-external-load-balancers"] = "true"));
    await waitForIngress(env.client, "s1", ["192.0.2.31"]);
  });

  it("converges through 409, 429 and 500 answers on every write it makes", async () => {
    const f = env.server.faults;
    f.add({ verb: "patch", resource: "services", error: 500, times: 2 });
    f.add({ verb: "patch", resource: "services/status", error: 409, times: 3 });
    f.add({ verb: "patch", resource: "daemonsets", error: 429, retryAfterSeconds: 0, times: 3 });
    f.add({ verb: "create", resource: "events", error: 500, times: 2 });
    f.add({ verb: "list", resource: "services", error: 500, times: 2 });
    const c = await start();
    for (const name of ["a", "b"]) await create(env.client, SVCS, service(name, { ports: [{ port: name === "a" ? 80 : 81 }] }));
    for (const name of ["a", "b"]) await waitForIngress(env.client, name, ALL, 10_000);
    assert.ok(c.calls.some((x) => x.code === "409") && c.calls.some((x) => x.code === "429") && c.calls.some((x) => x.code === "500"),
      "the faults were hit");
    assert.ok(c.controller.stats.reconciles.error > 0);
    for (const name of ["a", "b"]) assert.equal((await daemonSetsFor(env.client, name)).length, 1, `one DaemonSet for ${name}`);
  });

  it("keeps up through dropped watches and forced 410 Gone, missing no change made meanwhile", async () => {
    const c = await start();
    await create(env.client, SVCS, service("a"));
    await waitForIngress(env.client, "a", ALL);
    // Every watch ends after one event for a while, and history is compacted under the controller twice.
    const rule = env.server.faults.add({ verb: "watch", closeWatchAfterEvents: 1 });
    env.server.faults.expireHistory();
    env.server.faults.closeWatches();
    await create(env.client, SVCS, service("b", { ports: [{ port: 81 }] }));
    await updateNode(env.client, "n1", (n) => (n.metadata.labels["berth.dev/enabled"] = "true"));
    env.server.faults.expireHistory();
    env.server.faults.closeWatches();
    await env.client.del(svcPath("a"));
    env.server.faults.remove(rule);
    await waitForIngress(env.client, "b", ["192.0.2.31"], 10_000);
    await waitFor("a deleted", async () => (await getObj(env.client, svcPath("a"))) === undefined && (await daemonSetsFor(env.client, "a")).length === 0, 10_000);
    const stats = c.controller.informerStats();
    assert.ok(Object.values(stats).some((s) => s.relists > 0), `some informer relisted after 410: ${JSON.stringify(stats)}`);
    const b = await getObj(env.client, svcPath("b"));
    assert.equal(condition(b, CONDITION_TYPES.ready)?.status, "True");
    void NS;
  });

  it("makes no API request while nothing changes, beyond its Lease renewals", async () => {
    const c = await start({ identity: "solo", resyncMs: 200 });
    await waitFor("leads", async () => c.controller.isLeader());
    await create(env.client, SVCS, service("a"));
    await waitForIngress(env.client, "a", ALL);
    await env.kubelet.settled();
    await new Promise((r) => setTimeout(r, 300));
    const before = c.calls.length;
    const resyncsBefore = Object.values(c.controller.stats.reconciles).reduce((x, y) => x + y, 0);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = c.calls.slice(before).filter((x) => x.verb !== "watch" && !x.resource.startsWith("leases"));
    const resyncs = Object.values(c.controller.stats.reconciles).reduce((x, y) => x + y, 0) - resyncsBefore;
    assert.ok(resyncs >= 3, `resyncs ran (${resyncs})`);
    assert.deepEqual(idle, [], "idle requests other than the Lease");
  });
});
