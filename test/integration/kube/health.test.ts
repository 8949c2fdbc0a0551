// /healthz, /readyz and /metrics over HTTP, with metrics fed by a real client, informer, queue and elector
// talking to the sandbox API server.
import assert from "node:assert/strict";
import { KubeClient, Resources } from "../../../src/lib/kube/client.js";
import { startHealthServer, type HealthServer } from "../../../src/lib/kube/health.js";
import { Informer } from "../../../src/lib/kube/informer.js";
import { LeaderElector } from "../../../src/lib/kube/leader.js";
import { ControllerMetrics } from "../../../src/lib/kube/metrics.js";
import { WorkQueue } from "../../../src/lib/kube/queue.js";
import { configMap, startFixture, waitFor, type Fixture } from "./fixture.js";

/** The value of one sample line, e.g. sample(text, 'berth_leader') or with labels. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("health server and Prometheus metrics", function () {
  this.timeout(10_000);
  let f: Fixture;
  let health: HealthServer | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  beforeEach(async () => {
    f = await startFixture();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await health?.close();
    health = undefined;
    await f.close();
  });

  it("answers /healthz, reports /readyz not ready with the reason until informers sync, then ready", async () => {
    const metrics = new ControllerMetrics({ processMetrics: false });
    f.api.faults.add({ verb: "list", resource: "configmaps", error: 500, times: 2 });
    const client = new KubeClient({ server: f.api.url, authHeaders: () => ({ Authorization: `Bearer ${f.api.token}` }), metrics });
    cleanups.push(async () => client.close());
    const inf = new Informer({ client, resource: Resources.configMaps, backoff: { baseMs: 150, maxMs: 300 }, metrics });
    cleanups.push(() => inf.stop());
    health = await startHealthServer({ host: "127.0.0.1", port: 0, ready: () => inf.isSynced() || "informers not synced", metrics });
    inf.start();
    const healthz = await fetch(`${health.url}/healthz`);
    assert.equal(healthz.status, 200);
    assert.equal(await healthz.text(), "ok\n");
    const notReady = await fetch(`${health.url}/readyz`);
    assert.equal(notReady.status, 503);
    assert.equal(await notReady.text(), "informers not synced\n");
    await inf.synced;
    assert.equal((await fetch(`${health.url}/readyz`)).status, 200);
    assert.equal((await fetch(`${health.url}/nope`)).status, 404);
    assert.equal((await fetch(`${health.url}/metrics`)).status, 200);
    assert.equal((await fetch(`${health.url}/readyz`, { method: "POST" })).status, 405);
  });

  it("reports a failing liveness check, and a throwing one, as 503 with the reason", async () => {
    let live: () => boolean | string = () => "event loop stalled";
    health = await startHealthServer({ host: "127.0.0.1", port: 0, ready: () => true, live: () => live() });
    const res = await fetch(`${health.url}/healthz`);
    assert.equal(res.status, 503);
    assert.equal(await res.text(), "event loop stalled\n");
    live = () => { throw new Error("boom"); };
    const thrown = await fetch(`${health.url}/livez`);
    assert.equal(thrown.status, 503);
    assert.equal(await thrown.text(), "check failed: Error: boom\n");
    assert.equal((await fetch(`${health.url}/metrics`)).status, 404, "no metrics source given");
  });

  it("exports API requests, watch restarts, relists, queue depth, reconciles and leadership", async () => {
    const metrics = new ControllerMetrics();
    const client = new KubeClient({ server: f.api.url, authHeaders: () => ({ Authorization: `Bearer ${f.api.token}` }), metrics });
    cleanups.push(async () => client.close());
    const queue = new WorkQueue();
    cleanups.push(() => queue.shutdown());
    metrics.observeQueue("services", queue);
    const inf = new Informer({ client, resource: Resources.configMaps, namespace: "default", backoff: { baseMs: 10, maxMs: 50 }, metrics });
    cleanups.push(() => inf.stop());
    inf.addHandlers({ onAdd: (o) => queue.add(o.metadata?.name ?? "") });
    const elector = new LeaderElector({
      client, namespace: "kube-system", name: "berth-metrics-test", identity: "me",
      leaseDurationSeconds: 2, renewDeadlineMs: 1000, retryPeriodMs: 200, metrics,
    });
    cleanups.push(() => elector.stop());
    await f.client.create(Resources.configMaps, configMap("a"));
    await f.client.create(Resources.configMaps, configMap("b"));
    inf.start();
    elector.start();
    await inf.synced;
    await waitFor("leadership", () => elector.isLeader());
    f.api.faults.expireHistory();
    f.api.faults.closeWatches();
    await waitFor("the relist", () => inf.stats.relists === 1);
    metrics.reconcile("success", 0.02);
    metrics.reconcile("success", 0.2);
    metrics.reconcile("error", 0.004);
    health = await startHealthServer({ host: "127.0.0.1", port: 0, ready: () => true, metrics });
    const res = await fetch(`${health.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.equal(sample(text, 'berth_api_requests_total{verb="list",resource="configmaps",code="200"}'), 2);
    assert.ok((sample(text, 'berth_api_requests_total{verb="watch",resource="configmaps",code="200"}') ?? 0) >= 2);
    assert.equal(sample(text, 'berth_api_requests_total{verb="create",resource="leases",code="201"}'), 1);
    assert.equal(sample(text, 'berth_watch_restarts_total{resource="configmaps",reason="expired"}'), 1);
    assert.equal(sample(text, 'berth_relists_total{resource="configmaps",reason="expired"}'), 1);
    assert.equal(sample(text, 'berth_workqueue_depth{name="services"}'), 2);
    assert.equal(sample(text, 'berth_reconcile_total{result="success"}'), 2);
    assert.equal(sample(text, 'berth_reconcile_duration_seconds_bucket{le="0.025",result="success"}'), 1);
    assert.equal(sample(text, 'berth_reconcile_duration_seconds_count{result="error"}'), 1);
    assert.equal(sample(text, "berth_leader"), 1);
    assert.ok(sample(text, "process_resident_memory_bytes") !== undefined, "process metrics exported");
    await elector.stop();
    assert.equal(sample(await metrics.render(), "berth_leader"), 0);
  });
});
