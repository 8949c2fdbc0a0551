// The fake kubelet is what the controller tests stand on, so it is proven first: placement as the DaemonSet
// controller and scheduler decide it, hostPort conflicts left Pending, readiness under the test's control.
import assert from "node:assert/strict";
import { create, dsPath, node, nodePath, NS, setNodeReady, startEnv, updateNode, waitFor, type Env, type Obj } from "./support.js";

function daemonSet(name: string, opts: { port?: number; nodeSelector?: Record<string, string>; tolerations?: Obj[]; affinity?: Obj } = {}): Obj {
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name, labels: { app: name } },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [{ name: "lb", image: "berth:test", ports: [{ containerPort: opts.port ?? 80, hostPort: opts.port ?? 80, protocol: "TCP" }] }],
          ...(opts.nodeSelector ? { nodeSelector: opts.nodeSelector } : {}),
          ...(opts.tolerations ? { tolerations: opts.tolerations } : {}),
          ...(opts.affinity ? { affinity: opts.affinity } : {}),
        },
      },
    },
  };
}

describe("fake kubelet (test stand-in for the DaemonSet controller, scheduler and kubelet)", function () {
  let env: Env;
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.1", labels: { zone: "a" } }));
    await create(env.client, nodePath(), node("n2", { internalIp: "192.0.2.2", labels: { zone: "b" } }));
    await create(env.client, nodePath(), node("n3", { internalIp: "192.0.2.3", taints: [{ key: "dedicated", value: "db", effect: "NoSchedule" }] }));
  });
  afterEach(async () => {
    await env?.close();
  });

  const podsOf = async (ds: string): Promise<Obj[]> => {
    const res = await env.client.get(`/api/v1/namespaces/${NS}/pods?labelSelector=app%3D${ds}`);
    return res.body.items as Obj[];
  };
  const readyNodes = (pods: Obj[]): string[] => pods
    .filter((p) => (p.status?.conditions ?? []).some((c: Obj) => c.type === "Ready" && c.status === "True"))
    .map((p) => p.spec.nodeName as string).sort();

  it("runs one Ready pod per node that passes nodeSelector, affinity and taints", async () => {
    await create(env.client, dsPath(), daemonSet("all"));
    await create(env.client, dsPath(), daemonSet("zone-a", { port: 81, nodeSelector: { zone: "a" } }));
    await create(env.client, dsPath(), daemonSet("tolerant", { port: 82, tolerations: [{ key: "dedicated", operator: "Exists" }] }));
    await create(env.client, dsPath(), daemonSet("not-b", { port: 83, affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [{ matchExpressions: [{ key: "zone", operator: "NotIn", values: ["b"] }] }] } } } }));
    await waitFor("pods placed", async () => (await podsOf("tolerant")).length === 3 && readyNodes(await podsOf("not-b")).length === 1);
    assert.deepEqual(readyNodes(await podsOf("all")), ["n1", "n2"]);
    assert.deepEqual(readyNodes(await podsOf("zone-a")), ["n1"]);
    assert.deepEqual(readyNodes(await podsOf("tolerant")), ["n1", "n2", "n3"]);
    // n3 is tainted and has no zone label; NotIn matches a missing label, but the taint keeps it out.
    assert.deepEqual(readyNodes(await podsOf("not-b")), ["n1"]);
    const pod = (await podsOf("zone-a"))[0] as Obj;
    assert.equal(pod.status.hostIP, "192.0.2.1");
    assert.deepEqual(pod.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms,
      [{ matchFields: [{ key: "metadata.name", operator: "In", values: ["n1"] }] }]);
  });

  it("creates every pod unbound (node affinity only) and binds it through pods/binding after the bind delay", async () => {
    const watch = await env.client.watch(`/api/v1/namespaces/${NS}/pods?watch=true&labelSelector=app%3Dall`);
    const created = Date.now();
    await create(env.client, dsPath(), daemonSet("all"));
    const added: Obj[] = [];
    const boundAt = new Map<string, number>();
    while (boundAt.size < 2) {
      const ev = await watch.next(5000);
      if (!ev) assert.fail(`not every pod was bound; bound: ${[...boundAt.keys()].join(", ")}`);
      const pod = ev.object as Obj;
      if (ev.type === "ADDED") added.push(structuredClone(pod));
      if (pod.spec?.nodeName && !boundAt.has(pod.metadata.name as string)) boundAt.set(pod.metadata.name as string, Date.now());
    }
    assert.equal(added.length, 2);
    for (const pod of added) {
      assert.equal(pod.spec.nodeName, undefined, "the DaemonSet controller leaves binding to the scheduler");
      assert.deepEqual(pod.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key, "metadata.name");
    }
    for (const at of boundAt.values()) assert.ok(at - created >= 20, "bound no sooner than the default 20 ms bind delay");
  });

  it("leaves a pod Pending and unbound when its hostPort is taken on the node, and binds it once the port frees", async () => {
    await create(env.client, dsPath(), daemonSet("first", { port: 8080 }));
    await waitFor("first pods", async () => readyNodes(await podsOf("first")).length === 2);
    await create(env.client, dsPath(), daemonSet("second", { port: 8080 }));
    const pending = await waitFor("second pending", async () => {
      const pods = await podsOf("second");
      // The API server creates every pod Pending; wait for the scheduler's verdict too.
      const unschedulable = (p: Obj): boolean => (p.status?.conditions ?? []).some((c: Obj) => c.type === "PodScheduled" && c.status === "False");
      return pods.length === 2 && pods.every((p) => p.status?.phase === "Pending" && unschedulable(p)) ? pods : undefined;
    });
    for (const p of pending) {
      assert.equal(p.spec.nodeName, undefined);
      const sched = (p.status.conditions as Obj[]).find((c) => c.type === "PodScheduled");
      assert.equal(sched?.reason, "Unschedulable");
      assert.match(sched?.message as string, /didn't have free ports/);
    }
    const del = await env.client.del(dsPath("first"));
    assert.equal(del.status, 200);
    await waitFor("second bound and ready", async () => readyNodes(await podsOf("second")).length === 2);
  });

  it("follows setReady, node readiness, and node label changes", async () => {
    await create(env.client, dsPath(), daemonSet("web", { nodeSelector: { zone: "a" } }));
    await waitFor("ready on n1", async () => readyNodes(await podsOf("web")).join() === "n1");
    env.kubelet.setReady({ daemonSet: "web", node: "n1", ready: false });
    await waitFor("unready", async () => readyNodes(await podsOf("web")).length === 0 && (await podsOf("web")).length === 1);
    env.kubelet.setReady({ daemonSet: "web", ready: true });
    await waitFor("ready again", async () => readyNodes(await podsOf("web")).join() === "n1");
    await updateNode(env.client, "n1", (n) => setNodeReady(n, false), "status");
    await waitFor("unready with its node", async () => readyNodes(await podsOf("web")).length === 0);
    await updateNode(env.client, "n2", (n) => (n.metadata.labels.zone = "a"));
    await updateNode(env.client, "n1", (n) => (n.metadata.labels.zone = "b"));
    await waitFor("moved to n2", async () => {
      const pods = await podsOf("web");
      return pods.length === 1 && readyNodes(pods).join() === "n2";
    });
  });
});

describe("fake kubelet: client-side rate limits of the components it plays", function () {
  this.timeout(20_000);
  let env: Env | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  /** 60 nodes and a DaemonSet over all of them; the server's arrival times (ms) of the pod creates, in order. */
  const createsOnSixtyNodes = async (e: Env): Promise<number[]> => {
    for (let i = 0; i < 60; i++) await create(e.client, nodePath(), node(`n${i}`, { internalIp: `192.0.2.${i + 1}` }));
    await create(e.client, dsPath(), daemonSet("all"));
    await waitFor("60 Ready pods", async () => e.kubelet.podList().filter((p) => p.status?.phase === "Running").length === 60, 15_000);
    return e.server.requestLog.entries()
      .filter((r) => r.method === "POST" && r.path.startsWith(`/api/v1/namespaces/${NS}/pods`) && !r.path.includes("/binding"))
      .map((r) => r.arrivedAt);
  };

  it("creates pods no faster than the DaemonSet controller's default client (a burst of 30, then 20/s)", async () => {
    env = await startEnv();
    const creates = await createsOnSixtyNodes(env);
    assert.equal(creates.length, 60);
    // The 60th create needed 30 tokens beyond the burst: 1.5 s of refill after the first. Only the first create's
    // own trip (token taken -> request arrived, milliseconds) can shorten the span; 0.3 s is left for it.
    const span = (creates[59] as number) - (creates[0] as number);
    assert.ok(span >= 1200, `60 creates arrived within ${span.toFixed(0)} ms`);
    // No second of the run saw more than the burst plus a second's refill (and the 4 writes one pass has in flight).
    for (let i = 0; i < creates.length; i++) {
      const inWindow = creates.filter((t) => t >= (creates[i] as number) && t < (creates[i] as number) + 1000).length;
      assert.ok(inWindow <= 30 + 20 + 4, `${inWindow} creates within 1 s from #${i}`);
    }
    assert.ok(env.kubelet.deferredWrites > 0);
  });

  it("takes tokens in the order its writes were decided: the oldest DaemonSet's pods first, none overtaking", async () => {
    env = await startEnv();
    for (let i = 0; i < 50; i++) await create(env.client, nodePath(), node(`n${i}`, { internalIp: `192.0.2.${i + 1}` }));
    const watch = await env.client.watch(`/api/v1/namespaces/${NS}/pods`);
    for (const [i, name] of ["a", "b", "c"].entries()) await create(env.client, dsPath(), daemonSet(name, { port: 80 + i }));
    const added: string[] = [];
    const until = Date.now() + 15_000;
    while (added.length < 150 && Date.now() < until) {
      const ev = await watch.next(until - Date.now());
      if (ev?.type === "ADDED") added.push(ev.object.metadata.labels.app as string);
    }
    // 150 creates at 20/s after a burst of 30: ~6 s, in three runs of 50 (client-go's limiter is first come, first
    // served; a pass that let a later write take a token first spread each DaemonSet's pods over the whole rollout).
    assert.equal(added.join(""), "a".repeat(50) + "b".repeat(50) + "c".repeat(50));
  });

  it("with clientLimits: false, sends every write in the pass that decided it", async () => {
    env = await startEnv({ clientLimits: false });
    const creates = await createsOnSixtyNodes(env);
    assert.equal(creates.length, 60);
    assert.equal(env.kubelet.deferredWrites, 0);
  });
});
