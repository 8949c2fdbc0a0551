// Pieces of reconcile.ts and controller.ts that decide when the controller talks to the API server: the port-holder
// lookups (against the sandbox API server over HTTP, counting requests), the requeue of a reconcile that waits for
// its own write to reach the cache, and the node fingerprint that decides which Node updates wake every Service.
import assert from "node:assert/strict";
import { nodeFingerprint } from "../../../src/controller/controller.js";
import { EventRecorder, PendingWrites, PortHolderLookups, reconcileService, StatusPacer, type ReconcileView } from "../../../src/controller/reconcile.js";
import { defaultControllerConfig, type V1Pod } from "../../../src/controller/types.js";
import { KubeClient, Resources, noLog } from "../../../src/lib/kube/client.js";
import { FakeClock } from "../../../src/lib/kube/clock.js";
import { startFixture, type Fixture } from "../../integration/kube/fixture.js";
import { node, pod, service } from "./fixtures.js";

const PORTS_MESSAGE = "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. 2 node(s) didn't match Pod's node affinity/selector.";

describe("controller: port-holder lookups", function () {
  this.timeout(15_000);
  let f: Fixture;
  beforeEach(async () => {
    f = await startFixture();
    await f.client.create(Resources.pods, {
      apiVersion: "v1", kind: "Pod", metadata: { name: "ingress", namespace: "default" },
      spec: { nodeName: "n2", containers: [{ name: "c", image: "x", ports: [{ containerPort: 80, hostPort: 80 }] }] },
    } as never, { namespace: "default" });
  });
  afterEach(async () => {
    await f.close();
  });
  const lists = (): number => f.requests.filter((r) => r.startsWith("list pods")).length;
  const withUid = (p: V1Pod, uid: string, rv: string): V1Pod => ({ ...p, metadata: { ...p.metadata, uid, resourceVersion: rv } });

  it("costs no request for pods merely waiting for the scheduler, or bound", async () => {
    const holders = new PortHolderLookups();
    const found = await holders.holders(f.client, [
      withUid(pod("svclb-web-1", { targetNode: "n1" }), "u1", "1"),
      withUid(pod("svclb-web-2", { node: "n2", ready: true }), "u2", "1"),
    ]);
    assert.deepEqual(found, []);
    assert.equal(lists(), 0);
  });

  it("lists the node's pods once for a pod the scheduler reported on NodePorts, again only when that pod changes", async () => {
    const holders = new PortHolderLookups();
    const stuck = withUid(pod("svclb-web-2", { targetNode: "n2", unschedulable: PORTS_MESSAGE }), "u2", "7");
    const first = await holders.holders(f.client, [stuck]);
    assert.deepEqual(first.map((p) => p.metadata?.name), ["ingress"]);
    assert.equal(lists(), 1);
    for (let i = 0; i < 5; i++) await holders.holders(f.client, [stuck]);
    assert.equal(lists(), 1, "an unchanged pod is not looked up again");
    await holders.holders(f.client, [withUid(stuck, "u2", "8")]);
    assert.equal(lists(), 2, "a changed pod is");
    holders.forget("u2");
    assert.equal(holders.size, 0);
  });
});

describe("controller: a reconcile waiting for its own write", () => {
  it("asks to be requeued when the wait expires, not at the next resync (the write may bring no watch event)", async () => {
    const clock = new FakeClock(1_000_000);
    const svc = { ...service(), metadata: { ...service().metadata, resourceVersion: "5" } };
    const pending = new PendingWrites(() => clock.now(), 5000);
    pending.wroteService("default/web", "5");
    await clock.advance(1200);
    const view: ReconcileView = {
      service: () => svc, nodes: () => [node("n1")], daemonSetsFor: () => [], podsFor: () => [], podsHoldingPort: () => [],
      endpointSlicesFor: () => [], servicesWithPort: () => [], configMapsFor: () => [],
    };
    const requeues: number[] = [];
    // No request is made before the stale-cache check returns; a client that cannot connect proves it.
    const client = new KubeClient({ server: "http://127.0.0.1:9", authHeaders: () => ({}) });
    const result = await reconcileService("default/web", {
      client, config: defaultControllerConfig({ namespace: "berth-system", lbPodImage: "berth:test" }), view,
      events: new EventRecorder(client, clock, noLog), pending, pacer: new StatusPacer(() => clock.now()), holders: new PortHolderLookups(),
      now: () => new Date(clock.now()), log: noLog, requeueAfter: (ms) => requeues.push(ms),
    });
    client.close();
    assert.equal(result, "waiting-for-cache");
    assert.deepEqual(requeues, [3800]);
  });
});

describe("controller: node fingerprint (which Node updates reconcile every Service)", () => {
  const base = node("n1", { labels: { a: "1" } });
  const rows: { name: string; change: (n: typeof base) => typeof base; differs: boolean }[] = [
    { name: "a heartbeat", change: (n) => ({ ...n, status: { ...n.status, conditions: [{ type: "Ready", status: "True", lastHeartbeatTime: new Date() }] } }), differs: false },
    { name: "a new image on the node", change: (n) => ({ ...n, status: { ...n.status, images: [{ names: ["x"] }] } }), differs: false },
    { name: "deletionTimestamp set", change: (n) => ({ ...n, metadata: { ...n.metadata, deletionTimestamp: new Date("2026-01-01T00:00:00Z") } }), differs: true },
    { name: "a label", change: (n) => ({ ...n, metadata: { ...n.metadata, labels: { a: "2" } } }), differs: true },
    { name: "Ready turning False", change: (n) => ({ ...n, status: { ...n.status, conditions: [{ type: "Ready", status: "False" }] } }), differs: true },
    { name: "a taint", change: (n) => ({ ...n, spec: { taints: [{ key: "k", effect: "NoSchedule" }] } }), differs: true },
  ];
  for (const row of rows) {
    it(`${row.differs ? "sees" : "ignores"} ${row.name}`, () => {
      assert.equal(nodeFingerprint(row.change(base)) !== nodeFingerprint(base), row.differs);
    });
  }
});

describe("controller: PendingWrites for the rules ConfigMap", () => {
  const rows: { name: string; applied?: string; advanceMs: number; ask: string; cached: boolean; pending: boolean }[] = [
    { name: "nothing applied: not pending (a missing ConfigMap is repaired)", advanceMs: 0, ask: "svclb-web-aaa", cached: false, pending: false },
    { name: "just applied, not in the cache yet: pending (no second write)", applied: "svclb-web-aaa", advanceMs: 100, ask: "svclb-web-aaa", cached: false, pending: true },
    { name: "applied and now in the cache: done", applied: "svclb-web-aaa", advanceMs: 100, ask: "svclb-web-aaa", cached: true, pending: false },
    { name: "applied another name (the rules changed since): not pending", applied: "svclb-web-aaa", advanceMs: 100, ask: "svclb-web-bbb", cached: false, pending: false },
    { name: "the wait expired (a lost watch event): not pending, written again", applied: "svclb-web-aaa", advanceMs: 5000, ask: "svclb-web-aaa", cached: false, pending: false },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const clock = new FakeClock(1_000_000);
      const pending = new PendingWrites(() => clock.now(), 5000);
      if (row.applied) pending.appliedConfigMap("default/web", row.applied);
      await clock.advance(row.advanceMs);
      assert.equal(pending.configMapPending("default/web", row.ask, row.cached), row.pending);
    });
  }

  it("forgets a Service's entry with the Service", () => {
    const clock = new FakeClock(1_000_000);
    const pending = new PendingWrites(() => clock.now(), 5000);
    pending.appliedConfigMap("default/web", "svclb-web-aaa");
    pending.forget("default/web");
    assert.equal(pending.configMapPending("default/web", "svclb-web-aaa", false), false);
  });
});
