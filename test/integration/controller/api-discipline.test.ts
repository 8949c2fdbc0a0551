// How many requests the controller sends, counted by its own client against the sandbox API server while the fake
// kubelet runs the DaemonSet controller and scheduler flow (pods created unbound, bound through pods/binding):
// lb-pods waiting for the scheduler cost a bounded handful per Service, a rollout a few paced status writes, and an
// idle cluster, including a Service whose lb-pod stays Pending on a taken port, nothing.
import assert from "node:assert/strict";
import { ControllerMetrics } from "../../../src/lib/kube/metrics.js";
import { create, daemonSetsFor, node, nodePath, service, startController, startEnv, updateNode, waitFor, waitForIngress, type Env, type TestController } from "./support.js";

const SVCS = "/api/v1/namespaces/default/services";
const NODES = 10;
const ips = Array.from({ length: NODES }, (_, i) => `192.0.2.${i + 1}`);

describe("controller: API requests at scale", function () {
  this.timeout(60_000);
  let env: Env;
  let ctl: TestController | undefined;
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });
  const addNodes = async (): Promise<void> => {
    for (let i = 0; i < NODES; i++) await create(env.client, nodePath(), node(`n${i + 1}`, { internalIp: ips[i] as string }));
  };
  const count = (c: TestController, from = 0): Record<string, number> => {
    const out: Record<string, number> = {};
    // Watches are the informers' standing streams (recorded when one ends), not requests a reconcile sent.
    for (const call of c.calls.slice(from)) if (!call.resource.startsWith("leases") && call.verb !== "watch") out[`${call.verb} ${call.resource}`] = (out[`${call.verb} ${call.resource}`] ?? 0) + 1;
    return out;
  };

  it("while the lb-pods wait for the scheduler: a few requests per Service, no lookup per node", async () => {
    env = await startEnv({ bindDelayMs: 4000 });
    await addNodes();
    ctl = await startController(env, { statusPacing: {} });
    const from = ctl.calls.length;
    await create(env.client, SVCS, service("web"));
    await waitFor("the DaemonSet and its 10 unbound pods", async () => env.kubelet.podList().length === NODES && (await daemonSetsFor(env.client, "web")).length === 1);
    // Let the pod events reach the controller and its paced reconciles run, well short of the bind delay.
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok(env.kubelet.podList().every((p) => !p.spec.nodeName), "still unbound");
    const calls = count(ctl, from);
    const total = Object.values(calls).reduce((a, b) => a + b, 0);
    assert.equal(calls["list pods"], undefined, `no port-holder lookups: ${JSON.stringify(calls)}`);
    assert.ok(total <= 10, `at most 10 requests, got ${JSON.stringify(calls)}`);
  });

  it("a rollout to every node ready costs a few paced status writes and Events, not one per node", async () => {
    env = await startEnv({ readyByDefault: false });
    await addNodes();
    ctl = await startController(env, { statusPacing: {} });
    const from = ctl.calls.length;
    await create(env.client, SVCS, service("web"));
    await waitFor("10 running lb-pods", async () => env.kubelet.podList().filter((p) => p.status?.phase === "Running").length === NODES);
    // Nodes become ready one by one, 150 ms apart, as a real rollout spreads out.
    for (let i = 0; i < NODES; i++) {
      env.kubelet.setReady({ node: `n${i + 1}`, ready: true });
      await new Promise((r) => setTimeout(r, 150));
    }
    await waitForIngress(env.client, "web", ips, 20_000);
    await env.kubelet.settled();
    await new Promise((r) => setTimeout(r, 500));
    const calls = count(ctl, from);
    // One write per readiness change would be 11 or more.
    assert.ok((calls["patch services/status"] ?? 0) <= 6, JSON.stringify(calls));
    assert.ok((calls["create events"] ?? 0) + (calls["patch events"] ?? 0) <= 6, JSON.stringify(calls));
  });

  it("an idle cluster with a Service whose lb-pod stays Pending on a taken port sends nothing, resync after resync", async () => {
    env = await startEnv();
    await addNodes();
    await create(env.client, "/api/v1/namespaces/default/pods", {
      metadata: { name: "ingress" },
      spec: { nodeName: "n1", containers: [{ name: "c", image: "x", ports: [{ containerPort: 80, hostPort: 80, protocol: "TCP" }] }] },
    });
    ctl = await startController(env, { resyncMs: 500 });
    await create(env.client, SVCS, service("web"));
    await waitForIngress(env.client, "web", ips.slice(1), 20_000);
    await waitFor("the conflict named", async () => ctl?.calls.some((c) => c.verb === "list" && c.resource === "pods"));
    await env.kubelet.settled();
    await new Promise((r) => setTimeout(r, 1000));
    const from = ctl.calls.length;
    const resyncs = ctl.controller.stats.reconciles.unchanged;
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok(ctl.controller.stats.reconciles.unchanged >= resyncs + 3, "resyncs ran");
    assert.deepEqual(count(ctl, from), {}, "no request at all");
  });
  it("a new Service is reconciled ahead of a backlog of status-only work (the urgent lane)", async () => {
    // 80 served Services on two nodes; excluding node n2 gives each a status write (its ingress loses n2's address)
    // queued ordinarily; a Service created right then waits for its DaemonSet, so it must not queue behind them.
    env = await startEnv();
    for (let i = 0; i < 2; i++) await create(env.client, nodePath(), node(`n${i + 1}`, { internalIp: ips[i] as string }));
    const order: string[] = [];
    ctl = await startController(env, { workers: 1, resyncMs: 600_000, onReconcile: (key) => order.push(key) });
    const SERVICES = 80;
    for (let i = 0; i < SERVICES; i++) await create(env.client, SVCS, service(`s${i}`, { ports: [{ port: 10_000 + i }] }));
    for (let i = 0; i < SERVICES; i++) await waitForIngress(env.client, `s${i}`, ips.slice(0, 2), 30_000);
    await waitFor("the queue empty", async () => ctl?.controller.queueDepth() === 0);
    await new Promise((r) => setTimeout(r, 800));
    const from = order.length;
    await updateNode(env.client, "n2", (n) => {
      n.metadata.labels["node.kubernetes.io/exclude-from-external-load-balancers"] = "";
    });
    await waitFor("the backlog queued", async () => (ctl?.controller.queueDepth() ?? 0) >= SERVICES / 2, 5000, 1);
    await create(env.client, SVCS, service("late", { ports: [{ port: 9000 }] }));
    await waitFor("late's DaemonSet", async () => (await daemonSetsFor(env.client, "late")).length === 1, 20_000);
    await waitFor("the backlog drained", async () => ctl?.controller.queueDepth() === 0, 20_000);
    const after = order.slice(from);
    const lateAt = after.indexOf("default/late");
    const backlog = after.filter((k) => /^default\/s\d+$/.test(k)).length;
    assert.ok(backlog >= SERVICES, `every Service reconciled after the node change (${backlog})`);
    assert.ok(lateAt >= 0 && lateAt < SERVICES / 2, `late reconciled as key ${lateAt} of ${after.length}, not behind the backlog`);
  });
  it("only a Service that waits for its DaemonSet is urgent, not the echo of our own finalizer write", async () => {
    // The finalizer patch and the DaemonSet apply go out together; the Service's update (the finalizer) often comes
    // back before the DaemonSet's ADDED event (another watch). Taken as "no DaemonSet yet", each echo was one more
    // urgent reconcile ahead of the next new Service: 600-800 of them in a 1,000-Service burst.
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: ips[0] as string }));
    const metrics = new ControllerMetrics({ processMetrics: false });
    ctl = await startController(env, { metrics });
    const SERVICES = 30;
    for (let i = 0; i < SERVICES; i++) await create(env.client, SVCS, service(`s${i}`, { ports: [{ port: 10_000 + i }] }));
    for (let i = 0; i < SERVICES; i++) await waitForIngress(env.client, `s${i}`, ips.slice(0, 1), 30_000);
    await waitFor("the queue empty", async () => ctl?.controller.queueDepth() === 0);
    const taken = /berth_workqueue_queue_duration_seconds_count\{name="services",lane="urgent"\} (\d+)/.exec(await metrics.render())?.[1];
    assert.equal(Number(taken), SERVICES, "one urgent reconcile per new Service");
  });
});
