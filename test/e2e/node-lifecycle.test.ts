// End-to-end: two controller replicas (`sandbox up --controller-replicas 2`) and a node whose kubelet stops and
// comes back (`sandbox kubelet stop|start`), as a cluster sees them: one replica leads; the stopped node goes
// NotReady with the unreachable taints, its pods stop being Ready while their processes keep running, and berth
// takes its address out of the EXTERNAL-IP list; once the kubelet is back, the address returns.
import assert from "node:assert/strict";
import {
  APP_NAMESPACE,
  BERTH,
  appDaemonSet,
  isReady,
  lbService,
  type Obj,
  suiteSandbox,
} from "./fixture.js";

describe("e2e: controller replicas and a node whose kubelet stops (2 nodes)", function () {
  this.timeout(150_000);
  const sb = suiteSandbox("k", { nodes: 2, controllerReplicas: 2 }, async (s) => {
    await s.create(appDaemonSet("web"), lbService("web", "web", [{ port: 8091 }], { externalTrafficPolicy: "Local" }));
    await s.waitForReadyPods("app=web", 2);
    await s.waitForIngress("web", s.nodes.map((n) => n.ipv4), 90_000);
  });

  it("runs two replicas, one of them the leader, as `sandbox status` shows", async () => {
    const status = await sb().runner.run(BERTH, ["sandbox", "status", "--prefix", sb().prefix], { timeoutMs: 30_000 });
    const roles = [...status.stdout.matchAll(/controller sandbox-controller-\d: pid \d+, (LEADER|standby)/g)].map((m) => m[1]);
    assert.deepEqual(roles.sort(), ["LEADER", "standby"], status.stdout);
  });

  it("takes a node whose kubelet stopped out of the status, and puts it back when the kubelet returns", async () => {
    const s = sb();
    const [node1, node2] = s.nodes;
    if (!node1 || !node2) throw new Error("two nodes expected");
    const stopped = await s.runner.run(BERTH, ["sandbox", "kubelet", "stop", "node-2", "--prefix", s.prefix], { timeoutMs: 30_000 });
    assert.equal(stopped.exitCode, 0, stopped.stderr);

    await s.waitFor("node-2 Ready=Unknown and tainted unreachable", async () => {
      const node = await s.getJson(["get", "node", "node-2"]);
      const ready = ((node.status?.conditions ?? []) as Obj[]).find((c) => c.type === "Ready");
      const taints = ((node.spec?.taints ?? []) as Obj[]).map((t) => `${t.key}:${t.effect}`).sort();
      const want = ["node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"];
      return ready?.status === "Unknown" && JSON.stringify(taints) === JSON.stringify(want) ? undefined : `Ready=${ready?.status}, taints ${taints.join(",")}`;
    });
    // The node lifecycle marks the node first, then its pods (MarkPodsNotReady).
    let onNode2: Obj | undefined;
    await s.waitFor("the app pod on node-2 marked not Ready", async () => {
      const pods = (await s.getJson(["get", "pods", "-n", APP_NAMESPACE, "-l", "app=web"])).items as Obj[];
      onNode2 = pods.find((p) => p.spec?.nodeName === "node-2");
      return onNode2 && !isReady(onNode2) ? undefined : `pod on node-2: ${onNode2 ? "Ready" : "none"}`;
    });
    if (!onNode2) throw new Error("no app pod on node-2");
    const uidBefore = String(onNode2.metadata?.uid);
    const inside = await s.runner.run("ip", ["netns", "pids", s.podNamespace(onNode2)]);
    assert.notEqual(inside.stdout.trim(), "", "its process keeps running (containers outlive their kubelet)");
    await s.waitForIngress("web", [node1.ipv4], 60_000);

    const started = await s.runner.run(BERTH, ["sandbox", "kubelet", "start", "node-2", "--prefix", s.prefix], { timeoutMs: 30_000 });
    assert.equal(started.exitCode, 0, started.stderr);
    await s.waitForIngress("web", [node1.ipv4, node2.ipv4], 60_000);
    const node = await s.getJson(["get", "node", "node-2"]);
    assert.equal(node.spec?.taints, undefined, "the unreachable taints are lifted");
    // DaemonSet pods tolerate the unreachable NoExecute taint, and the NoSchedule one only keeps new pods away:
    // the pod that ran on node-2 all along is the one that serves again (the DaemonSet controller deleted none).
    const after = ((await s.getJson(["get", "pods", "-n", APP_NAMESPACE, "-l", "app=web"])).items as Obj[]).find((p) => p.spec?.nodeName === "node-2");
    assert.equal(after?.metadata?.uid, uidBefore, "the same pod, not a replacement");
  });

  it("refuses an unknown node in one line", async () => {
    const r = await sb().runner.run(BERTH, ["sandbox", "kubelet", "stop", "node-9", "--prefix", sb().prefix], { timeoutMs: 30_000 });
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stderr.trim(), /^berth: no node "node-9" in this sandbox \(nodes: node-1, node-2\)$/);
  });
});
