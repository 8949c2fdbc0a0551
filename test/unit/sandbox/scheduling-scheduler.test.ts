// The sandbox's scheduler stand-in (src/sandbox/cluster/scheduler.ts): its pure decisions on literal objects (each
// Filter plugin, the node choice, kube-scheduler 1.32's FitError text, the queue's timing), then the I/O loop against
// an in-process sandbox API server over HTTP (bare pods bound through pods/binding, a pod that does not fit left
// Pending with one condition write however often it is retried, bound once the port frees).
import assert from "node:assert/strict";
import { PerformanceObserver } from "node:perf_hooks";
import type { V1Node, V1Pod, V1Taint } from "@kubernetes/client-node";
import { KubeClient, Resources, type KubeObject, type WatchEvent } from "../../../src/lib/kube/client.js";
import { startApiServer, type ApiServerHandle } from "../../../src/sandbox/apiserver/index.js";
import {
  backoffMs,
  conditionCurrent,
  filterNode,
  needsScheduling,
  nodeChangeMayHelp,
  ownUpdateMayHelp,
  podChangeMayHelp,
  preFilterNodeNames,
  REASONS,
  schedulePod,
  SchedulerStandIn,
  SchedulingQueue,
  unschedulable,
} from "../../../src/sandbox/cluster/scheduler.js";
import { newDaemonPod, unschedulableCondition } from "../../../src/sandbox/cluster/scheduling.js";

function node(name: string, o: { labels?: Record<string, string>; taints?: V1Taint[]; unschedulable?: boolean; ready?: boolean } = {}): V1Node {
  return {
    metadata: { name, labels: { "kubernetes.io/hostname": name, ...(o.labels ?? {}) } },
    spec: { ...(o.taints ? { taints: o.taints } : {}), ...(o.unschedulable ? { unschedulable: true } : {}) },
    status: { conditions: [{ type: "Ready", status: o.ready === false ? "False" : "True" }] },
  };
}

let uids = 0;
function pod(name: string, o: { hostPort?: number; hostIP?: string; nodeName?: string; nodeSelector?: Record<string, string>; spec?: object; phase?: string } = {}): V1Pod {
  return {
    metadata: { name, namespace: "default", uid: `uid-${name}-${uids++}` },
    spec: {
      ...(o.nodeName ? { nodeName: o.nodeName } : {}),
      ...(o.nodeSelector ? { nodeSelector: o.nodeSelector } : {}),
      containers: [{ name: "c", image: "img", ...(o.hostPort ? { ports: [{ containerPort: o.hostPort, hostPort: o.hostPort, protocol: "TCP", ...(o.hostIP ? { hostIP: o.hostIP } : {}) }] } : {}) }],
      ...(o.spec ?? {}),
    },
    ...(o.phase ? { status: { phase: o.phase } } : {}),
  };
}

/** A DaemonSet's pod for `nodeName`, as the DaemonSet controller creates it (unbound, pinned by matchFields). */
function daemonPod(nodeName: string, hostPort = 80): V1Pod {
  const p = newDaemonPod({
    metadata: { name: "svclb", namespace: "kube-system", uid: "ds" },
    spec: { selector: {}, template: { metadata: { labels: { app: "lb" } }, spec: { containers: [{ name: "lb", image: "img", ports: [{ containerPort: hostPort, hostPort, protocol: "TCP" }] }] } } },
  }, nodeName);
  return { ...p, metadata: { ...p.metadata, uid: `uid-daemon-${uids++}` } };
}

describe("sandbox scheduler: Filter plugins, in the default profile's order", () => {
  const taint = (key: string, effect: string, value?: string): V1Taint => ({ key, effect, ...(value !== undefined ? { value } : {}) });
  const cases: { name: string; pod: V1Pod; node: V1Node; onNode?: V1Pod[]; want: string | undefined; resolvable?: boolean }[] = [
    { name: "nothing in the way", pod: pod("p"), node: node("n1"), want: undefined },
    { name: "NodeUnschedulable: cordoned", pod: pod("p"), node: node("n1", { unschedulable: true }), want: REASONS.nodeUnschedulable },
    {
      name: "NodeUnschedulable: cordoned, but the pod tolerates node.kubernetes.io/unschedulable", node: node("n1", { unschedulable: true }),
      pod: pod("p", { spec: { tolerations: [{ key: "node.kubernetes.io/unschedulable", operator: "Exists", effect: "NoSchedule" }] } }), want: undefined,
    },
    { name: "NodeUnschedulable comes before TaintToleration", pod: pod("p"), node: node("n1", { unschedulable: true, taints: [taint("a", "NoSchedule")] }), want: REASONS.nodeUnschedulable },
    { name: "NodeName: another node asked for", pod: pod("p", { nodeName: "n2" }), node: node("n1"), want: REASONS.nodeName },
    { name: "TaintToleration: NoSchedule, with its value", pod: pod("p"), node: node("n1", { taints: [taint("dedicated", "NoSchedule", "db")] }), want: "node(s) had untolerated taint {dedicated: db}" },
    { name: "TaintToleration: NoExecute, no value", pod: pod("p"), node: node("n1", { taints: [taint("node.kubernetes.io/not-ready", "NoExecute")] }), want: "node(s) had untolerated taint {node.kubernetes.io/not-ready: }" },
    { name: "TaintToleration: PreferNoSchedule is no filter", pod: pod("p"), node: node("n1", { taints: [taint("x", "PreferNoSchedule")] }), want: undefined },
    {
      name: "TaintToleration: the first untolerated taint in the node's order", node: node("n1", { taints: [taint("a", "NoSchedule"), taint("b", "NoSchedule")] }),
      pod: pod("p", { spec: { tolerations: [{ key: "a", operator: "Exists" }] } }), want: "node(s) had untolerated taint {b: }",
    },
    { name: "TaintToleration: Equal compares values", pod: pod("p", { spec: { tolerations: [{ key: "a", operator: "Equal", value: "x" }] } }), node: node("n1", { taints: [taint("a", "NoSchedule", "y")] }), want: "node(s) had untolerated taint {a: y}" },
    { name: "TaintToleration: an empty key with Exists tolerates all", pod: pod("p", { spec: { tolerations: [{ operator: "Exists" }] } }), node: node("n1", { taints: [taint("a", "NoExecute", "y")] }), want: undefined },
    { name: "a node that is not Ready is no filter (its taints are)", pod: pod("p"), node: node("n1", { ready: false }), want: undefined },
    { name: "NodeAffinity: nodeSelector", pod: pod("p", { nodeSelector: { zone: "a" } }), node: node("n1", { labels: { zone: "b" } }), want: REASONS.nodeAffinity },
    {
      name: "NodeAffinity: matchFields metadata.name", pod: pod("p", { spec: { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: "metadata.name", operator: "In", values: ["n2"] }] }] } } } } }),
      node: node("n1"), want: REASONS.nodeAffinity,
    },
    {
      name: "NodeAffinity: matchExpressions Gt on an integer label", node: node("n1", { labels: { cores: "8" } }), want: undefined,
      pod: pod("p", { spec: { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "cores", operator: "Gt", values: ["4"] }] }] } } } } }),
    },
    { name: "NodeAffinity comes before NodePorts", pod: pod("p", { hostPort: 80, nodeSelector: { zone: "a" } }), node: node("n1"), onNode: [pod("h", { hostPort: 80, nodeName: "n1" })], want: REASONS.nodeAffinity },
    { name: "NodePorts: the port is held", pod: pod("p", { hostPort: 80 }), node: node("n1"), onNode: [pod("h", { hostPort: 80, nodeName: "n1" })], want: REASONS.nodePorts, resolvable: true },
    { name: "NodePorts: another host IP", pod: pod("p", { hostPort: 80, hostIP: "10.0.0.1" }), node: node("n1"), onNode: [pod("h", { hostPort: 80, hostIP: "10.0.0.2", nodeName: "n1" })], want: undefined },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.want ?? "fits"}`, () => {
      const got = filterNode(c.pod, c.node, c.onNode ?? []);
      assert.equal(got?.reason, c.want);
      if (got) assert.equal(got.unresolvable, !c.resolvable);
    });
  }

  it("NodeAffinity's PreFilter: matchFields names, a union over terms and an intersection within one; a term without names keeps every node", () => {
    const withTerms = (terms: object[]): V1Pod => pod("p", { spec: { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } } } });
    const names = (values: string[]) => ({ key: "metadata.name", operator: "In", values });
    assert.equal(preFilterNodeNames(pod("p")), undefined);
    assert.deepEqual(preFilterNodeNames(daemonPod("n2")), new Set(["n2"]));
    assert.deepEqual(preFilterNodeNames(withTerms([{ matchFields: [names(["a", "b"])] }, { matchFields: [names(["c"])] }])), new Set(["a", "b", "c"]));
    assert.deepEqual(preFilterNodeNames(withTerms([{ matchFields: [names(["a", "b"]), names(["b", "c"])] }])), new Set(["b"]));
    assert.deepEqual(preFilterNodeNames(withTerms([{ matchFields: [names(["a"]), names(["b"])] }])), new Set());
    assert.equal(preFilterNodeNames(withTerms([{ matchFields: [names(["a"])] }, { matchExpressions: [{ key: "zone", operator: "Exists" }] }])), undefined);
  });
});

describe("sandbox scheduler: one scheduling cycle (schedulePod)", () => {
  const three = [node("n1"), node("n2"), node("n3")];

  it("spreads: the feasible node with the fewest pods, then the first name", () => {
    assert.deepEqual(schedulePod(pod("p"), three, []), { node: "n1" });
    const busy = [pod("a", { nodeName: "n1" }), pod("b", { nodeName: "n1" }), pod("c", { nodeName: "n2" })];
    assert.deepEqual(schedulePod(pod("p"), three, busy), { node: "n3" });
    // Finished pods do not count; terminating ones do (they hold the node until gone).
    const finished = [pod("a", { nodeName: "n3", phase: "Succeeded" }), pod("b", { nodeName: "n1" }), pod("c", { nodeName: "n2" })];
    assert.deepEqual(schedulePod(pod("p"), three, finished), { node: "n3" });
    // Only the feasible nodes are scored.
    assert.deepEqual(schedulePod(pod("p", { nodeSelector: { "kubernetes.io/hostname": "n1" } }), three, busy), { node: "n1" });
  });

  it("a DaemonSet pod goes to its node only", () => {
    assert.deepEqual(schedulePod(daemonPod("n2"), three, []), { node: "n2" });
  });

  const messages: { name: string; pod: V1Pod; nodes: V1Node[]; pods?: V1Pod[]; want: string }[] = [
    {
      name: "a DaemonSet pod whose port is held on its node (the other nodes left out by NodeAffinity's PreFilter)",
      pod: daemonPod("n1"), nodes: three, pods: [pod("h", { hostPort: 80, nodeName: "n1" })],
      want: "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]." +
        " preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.",
    },
    {
      name: "a one-node cluster",
      pod: daemonPod("n1"), nodes: [node("n1")], pods: [pod("h", { hostPort: 80, nodeName: "n1" })],
      want: "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
    },
    {
      name: "mixed reasons, counted and sorted as strings",
      pod: pod("p", { hostPort: 80, nodeSelector: { role: "lb" } }),
      nodes: [node("n1", { labels: { role: "lb" } }), node("n2", { labels: { role: "lb" }, taints: [{ key: "dedicated", value: "db", effect: "NoSchedule" }] }), node("n3"), node("n4", { unschedulable: true })],
      pods: [pod("h", { hostPort: 80, nodeName: "n1" })],
      want: "0/4 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) didn't match Pod's node affinity/selector," +
        " 1 node(s) had untolerated taint {dedicated: db}, 1 node(s) were unschedulable." +
        " preemption: 0/4 nodes are available: 1 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling.",
    },
    {
      name: "Go's sort.Strings: \"10 ...\" before \"2 ...\"",
      pod: pod("p", { nodeSelector: { role: "lb" } }),
      nodes: [...Array.from({ length: 10 }, (_, i) => node(`a${i}`)), node("b1", { unschedulable: true }), node("b2", { unschedulable: true })],
      want: "0/12 nodes are available: 10 node(s) didn't match Pod's node affinity/selector, 2 node(s) were unschedulable." +
        " preemption: 0/12 nodes are available: 12 Preemption is not helpful for scheduling.",
    },
    {
      name: "a DaemonSet pod whose node is gone",
      pod: daemonPod("gone"), nodes: three,
      want: "0/3 nodes are available: 3 node(s) didn't satisfy plugin(s) [NodeAffinity]. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
    },
    {
      name: "matchFields that pin no node at all (NodeAffinity's PreFilter rejects the pod)",
      pod: pod("p", { spec: { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: "metadata.name", operator: "In", values: ["n1"] }, { key: "metadata.name", operator: "In", values: ["n2"] }] }] } } } } }),
      nodes: three,
      want: "0/3 nodes are available: pod affinity terms conflict. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
    },
    {
      name: "preemptionPolicy Never",
      pod: pod("p", { hostPort: 80, spec: { preemptionPolicy: "Never" } }), nodes: [node("n1")], pods: [pod("h", { hostPort: 80, nodeName: "n1" })],
      want: "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: not eligible due to preemptionPolicy=Never.",
    },
    { name: "no nodes at all", pod: pod("p"), nodes: [], want: "no nodes available to schedule pods" },
  ];
  for (const c of messages) {
    it(`FitError text: ${c.name}`, () => assert.deepEqual(schedulePod(c.pod, c.nodes, c.pods ?? []), { message: c.want }));
  }

  it("unschedulableCondition(n), for stand-ins without a scheduler, is the text schedulePod writes for a DaemonSet pod whose port is held", () => {
    for (const n of [1, 2, 3, 11, 20]) {
      const nodes = Array.from({ length: n }, (_, i) => node(`n${i + 1}`));
      const result = schedulePod(daemonPod("n1"), nodes, [pod("h", { hostPort: 80, nodeName: "n1" })]);
      assert.deepEqual(unschedulableCondition(n), unschedulable("message" in result ? result.message : "bound?"));
    }
  });
});

describe("sandbox scheduler: one attempt's cost at scale", () => {
  // One attempt per DaemonSet pod, at 50 nodes x 800 pods each (40,000 pods). While each node's list was copied per
  // pod it moved ~16 million references per attempt (80-140 ms here; 0.5 s at 100 nodes x 1,000), so garbage
  // collections came by the dozen; gathering only the candidate node's pods in place makes almost no garbage. Counted
  // in collections rather than milliseconds, which another process's load on a shared machine cannot blur.
  it("decides for a DaemonSet pod among 40,000 bound pods without churning the heap", async () => {
    const nodes = Array.from({ length: 50 }, (_, i) => node(`n${i}`));
    const pods: V1Pod[] = [];
    for (let s = 0; s < 800; s++) for (let i = 0; i < 50; i++) pods.push(pod(`p${s}-${i}`, { hostPort: 10_000 + s, nodeName: `n${i}` }));
    const daemonPods = [0, 1, 2, 3].map((i) => daemonPod(`n${i}`, 9999));
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));
    await settle();
    let collections = 0;
    const observer = new PerformanceObserver((list) => {
      collections += list.getEntries().length;
    });
    observer.observe({ entryTypes: ["gc"] });
    try {
      for (const [i, p] of daemonPods.entries()) assert.deepEqual(schedulePod(p, nodes, pods), { node: `n${i}` });
      await settle();
    } finally {
      observer.disconnect();
    }
    assert.ok(collections <= 4, `${collections} garbage collections for 4 attempts`);
  });
});

describe("sandbox scheduler: which pods, which changes, the queue's timing", () => {
  it("schedules unbound, unfinished, ungated pods of default-scheduler (or no schedulerName) that are not being deleted", () => {
    assert.equal(needsScheduling(pod("p")), true);
    assert.equal(needsScheduling(pod("p", { spec: { schedulerName: "default-scheduler" } })), true);
    assert.equal(needsScheduling(pod("p", { spec: { schedulerName: "other" } })), false);
    assert.equal(needsScheduling(pod("p", { nodeName: "n1" })), false);
    assert.equal(needsScheduling(pod("p", { phase: "Failed" })), false);
    assert.equal(needsScheduling(pod("p", { spec: { schedulingGates: [{ name: "wait" }] } })), false);
    const deleting = pod("p");
    deleting.metadata = { ...deleting.metadata, deletionTimestamp: "2026-01-01T00:00:00Z" as unknown as Date };
    assert.equal(needsScheduling(deleting), false);
  });

  it("retries unschedulable pods on an assigned pod gone or finished, a node added or changed, the pod's own spec changed; not on status writes", () => {
    const bound = pod("h", { nodeName: "n1" });
    assert.equal(podChangeMayHelp(bound, undefined), true);
    assert.equal(podChangeMayHelp(bound, { ...bound, status: { phase: "Failed" } }), true);
    assert.equal(podChangeMayHelp(bound, { ...bound, status: { phase: "Running" } }), false);
    assert.equal(podChangeMayHelp(pod("unbound"), undefined), false);
    assert.equal(nodeChangeMayHelp(undefined, node("n1")), true);
    assert.equal(nodeChangeMayHelp(node("n1"), node("n1", { labels: { role: "lb" } })), true);
    assert.equal(nodeChangeMayHelp(node("n1"), node("n1", { unschedulable: true })), true);
    assert.equal(nodeChangeMayHelp(node("n1"), node("n1", { ready: false })), false);
    assert.equal(nodeChangeMayHelp(node("n1"), undefined), false);
    const p = pod("p");
    assert.equal(ownUpdateMayHelp(p, { ...p, status: { conditions: [unschedulable("x")] } }), false);
    assert.equal(ownUpdateMayHelp(p, { ...p, spec: { ...p.spec, tolerations: [{ operator: "Exists" }] } as V1Pod["spec"] }), true);
  });

  it("writes the condition only when it changes", () => {
    const p = { ...pod("p"), status: { conditions: [{ ...unschedulable("m"), lastTransitionTime: "2026-01-01T00:00:00Z" as unknown as Date }] } };
    assert.equal(conditionCurrent(p, unschedulable("m")), true);
    assert.equal(conditionCurrent(p, unschedulable("other")), false);
    assert.equal(conditionCurrent(pod("p"), unschedulable("m")), false);
  });

  it("backs off 1 s doubling to 10 s per attempt", () => {
    const t = { initialBackoffMs: 1000, maxBackoffMs: 10_000 };
    assert.deepEqual([1, 2, 3, 4, 5, 6, 20].map((n) => backoffMs(n, t)), [1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
  });

  it("queue: first attempt after the delay, unschedulable pods wait for an event (then their backoff) or the 5 min flush", () => {
    const q = new SchedulingQueue({ firstAttemptDelayMs: 20, initialBackoffMs: 1000, maxBackoffMs: 10_000, maxUnschedulableMs: 300_000 });
    q.add("b", "ns/b", 1005);
    q.add("a", "ns/a", 1000);
    assert.equal(q.pop(1010), undefined);
    assert.equal(q.nextReadyAt(), 1020);
    assert.deepEqual(q.pop(1030), { uid: "a", key: "ns/a" });
    assert.deepEqual(q.pop(1030), { uid: "b", key: "ns/b" });
    assert.equal(q.pop(1030), undefined, "in flight: not popped twice");
    q.unschedulable("a", 2000);
    assert.equal(q.nextReadyAt(), 302_000, "only the flush, without an event");
    q.move(2500);
    assert.equal(q.nextReadyAt(), 3000, "an event: retried once 1 s of backoff has passed");
    assert.deepEqual(q.pop(3000), { uid: "a", key: "ns/a" });
    q.unschedulable("a", 3000);
    q.move(9000);
    assert.equal(q.nextReadyAt(), 9000, "second attempt's 2 s backoff long over");
    q.add("a", "ns/a", 9000);
    assert.equal(q.nextReadyAt(), 9000, "a known pod keeps its state");
    q.remove("a");
    q.remove("b");
    assert.equal(q.size, 0);
    assert.equal(q.nextReadyAt(), undefined);
  });
});

describe("sandbox scheduler stand-in (against the sandbox API server)", function () {
  this.timeout(20_000);
  let server: ApiServerHandle;
  let client: KubeClient;
  let scheduler: SchedulerStandIn | undefined;

  beforeEach(async () => {
    server = await startApiServer();
    client = new KubeClient({ server: server.url, authHeaders: () => ({ Authorization: `Bearer ${server.token}` }) });
    for (const name of ["node-1", "node-2"]) {
      await client.create<V1Node>(Resources.nodes, { metadata: { name, labels: { "kubernetes.io/hostname": name } } });
      await client.patchStatus(Resources.nodes, name, "merge", { status: { conditions: [{ type: "Ready", status: "True" }] } });
    }
  });
  afterEach(async () => {
    await scheduler?.stop();
    scheduler = undefined;
    client.close();
    await server.close();
  });

  /** Every watch event on pods in `default` until stop() (a raw watch: what any client sees). */
  function watchPods(): { events: WatchEvent<V1Pod>[]; stop: () => void } {
    const events: WatchEvent<V1Pod>[] = [];
    const abort = new AbortController();
    void (async () => {
      try {
        for await (const ev of client.watch<V1Pod>(Resources.pods, { namespace: "default", resourceVersion: "0", signal: abort.signal })) events.push(ev);
      } catch {
        // Aborted.
      }
    })();
    return { events, stop: () => abort.abort() };
  }

  async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  const get = (name: string): Promise<V1Pod> => client.get<V1Pod>(Resources.pods, name, { namespace: "default" });
  type Event = KubeObject & { type?: string; reason?: string; message?: string; count?: number; source?: { component?: string }; involvedObject?: { name?: string } };
  const eventsFor = async (name: string, reason: string): Promise<Event[]> =>
    (await client.list<Event>(Resources.events, { namespace: "default" })).items.filter((e) => e.involvedObject?.name === name && e.reason === reason);

  it("binds pods created unbound through pods/binding, spread over the nodes: ADDED without nodeName, then MODIFIED with it", async () => {
    scheduler = new SchedulerStandIn({ client });
    await scheduler.start();
    const watch = watchPods();
    for (const name of ["a", "b", "c", "d"]) await client.create<V1Pod>(Resources.pods, pod(name));
    const bound = await waitFor("four pods bound", async () => {
      const items = (await client.list<V1Pod>(Resources.pods, { namespace: "default" })).items;
      return items.length === 4 && items.every((p) => p.spec?.nodeName) ? items : undefined;
    });
    watch.stop();
    assert.deepEqual(bound.map((p) => p.spec?.nodeName).sort(), ["node-1", "node-1", "node-2", "node-2"]);
    for (const p of bound) {
      const mine = watch.events.filter((e) => e.object.metadata?.name === p.metadata?.name);
      assert.equal(mine[0]?.type, "ADDED");
      assert.equal(mine[0]?.object.spec?.nodeName, undefined);
      const first = mine.find((e) => e.object.spec?.nodeName);
      assert.equal(first?.type, "MODIFIED");
      assert.equal(first?.object.status?.conditions?.find((c) => c.type === "PodScheduled")?.status, "True");
    }
    assert.equal(scheduler.stats.binds, 4);
    const [scheduled] = await waitFor("a Scheduled Event", async () => ((await eventsFor("a", "Scheduled")).length > 0 ? eventsFor("a", "Scheduled") : undefined));
    assert.match(scheduled?.message ?? "", /^Successfully assigned default\/a to node-[12]$/);
    assert.equal(scheduled?.source?.component, "default-scheduler");
  });

  it("leaves a pod whose hostPort is held Pending (condition written once however often retried), and binds it once the holder is deleted", async () => {
    scheduler = new SchedulerStandIn({ client, timing: { initialBackoffMs: 50, maxBackoffMs: 200 } });
    await scheduler.start();
    await client.create<V1Pod>(Resources.pods, pod("holder", { hostPort: 80, nodeName: "node-1" }));
    const watch = watchPods();
    await client.create<V1Pod>(Resources.pods, pod("waiting", { hostPort: 80, nodeSelector: { "kubernetes.io/hostname": "node-1" } }));
    const want = "0/2 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) didn't match Pod's node affinity/selector." +
      " preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling.";
    const pending = await waitFor("PodScheduled=False", async () => {
      const p = await get("waiting");
      return p.status?.conditions?.some((c) => c.type === "PodScheduled" && c.status === "False") ? p : undefined;
    });
    const cond = pending.status?.conditions?.find((c) => c.type === "PodScheduled");
    assert.deepEqual({ reason: cond?.reason, message: cond?.message }, { reason: "Unschedulable", message: want });
    assert.equal(pending.status?.phase, "Pending");
    assert.equal(pending.spec?.nodeName, undefined);
    const [failed] = await waitFor("a FailedScheduling Event", async () => ((await eventsFor("waiting", "FailedScheduling")).length > 0 ? eventsFor("waiting", "FailedScheduling") : undefined));
    assert.equal(failed?.message, want);
    assert.equal(failed?.type, "Warning");

    // Node changes that might help: each one retries the pod (after its backoff), none rewrites its condition.
    const attempts = scheduler.stats.attempts;
    for (let i = 0; i < 5; i++) {
      await client.patch(Resources.nodes, "node-2", "merge", { metadata: { labels: { round: String(i) } } });
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(scheduler.stats.attempts >= attempts + 3, `retried ${scheduler.stats.attempts - attempts} times`);
    assert.equal(scheduler.stats.conditionWrites, 1);
    const writes = watch.events.filter((e) => e.type === "MODIFIED" && e.object.metadata?.name === "waiting");
    assert.equal(writes.length, 1, "one status write for the pod that does not fit");

    // Nothing else happens while nothing changes: no retry without an event.
    const idle = scheduler.stats.attempts;
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(scheduler.stats.attempts, idle);

    await client.delete(Resources.pods, "holder", { namespace: "default", gracePeriodSeconds: 0 });
    const bound = await waitFor("bound once the port is free", async () => {
      const p = await get("waiting");
      return p.spec?.nodeName ? p : undefined;
    });
    watch.stop();
    assert.equal(bound.spec?.nodeName, "node-1");
    assert.equal(bound.status?.conditions?.find((c) => c.type === "PodScheduled")?.status, "True");
  });

  // schedule_one.go handleBindingCycleError: a failed bind forgets the assumed pod and moves every unschedulable pod
  // (AssignedPodDelete), since the ports it held in the cache are free again.
  it("retries the pods a failed bind's assumed pod kept out, at once: the holder deleted while its bind was in flight", async () => {
    scheduler = new SchedulerStandIn({ client, timing: { initialBackoffMs: 50, maxBackoffMs: 200, maxUnschedulableMs: 60_000 } });
    await scheduler.start();
    server.faults.add({ verb: "create", resource: "pods/binding", latencyMs: 1500, times: 1 });
    await client.create<V1Pod>(Resources.pods, pod("assumed", { hostPort: 80, nodeSelector: { "kubernetes.io/hostname": "node-1" } }));
    await waitFor("the first bind in flight", () => (scheduler?.stats.attempts === 1 ? true : undefined));
    await client.create<V1Pod>(Resources.pods, pod("waiting", { hostPort: 80, nodeSelector: { "kubernetes.io/hostname": "node-1" } }));
    await waitFor("PodScheduled=False behind the assumed pod", async () =>
      ((await get("waiting")).status?.conditions?.some((c) => c.type === "PodScheduled" && c.status === "False") ? true : undefined));
    // Gone before its bind is served: the bind fails (404), and the informer never saw it hold the port.
    await client.delete(Resources.pods, "assumed", { namespace: "default", gracePeriodSeconds: 0 });
    const bound = await waitFor("bound once the failed bind freed the port", async () => {
      const p = await get("waiting");
      return p.spec?.nodeName ? p : undefined;
    }, 5000);
    assert.equal(bound.spec?.nodeName, "node-1");
  });

  // schedule_one.go handleSchedulingFailure: whatever the bind error, a pod the informer still shows unbound goes
  // back to the queue (only one that is gone or already bound is dropped).
  it("binds a pod again after its bind was refused (409) while the pod is still there unbound", async () => {
    scheduler = new SchedulerStandIn({ client, timing: { initialBackoffMs: 50, maxBackoffMs: 200, maxUnschedulableMs: 60_000 } });
    await scheduler.start();
    server.faults.add({ verb: "create", resource: "pods/binding", error: 409, times: 1 });
    await client.create<V1Pod>(Resources.pods, pod("refused"));
    const bound = await waitFor("bound on the second try", async () => {
      const p = await get("refused");
      return p.spec?.nodeName ? p : undefined;
    }, 5000);
    assert.ok(bound.spec?.nodeName);
    assert.equal(scheduler.stats.binds, 1);
  });

  it("leaves pods of another scheduler alone", async () => {
    scheduler = new SchedulerStandIn({ client });
    await scheduler.start();
    await client.create<V1Pod>(Resources.pods, pod("theirs", { spec: { schedulerName: "other-scheduler" } }));
    await client.create<V1Pod>(Resources.pods, pod("ours"));
    await waitFor("ours bound", async () => ((await get("ours")).spec?.nodeName ? true : undefined));
    const theirs = await get("theirs");
    assert.equal(theirs.spec?.nodeName, undefined);
    assert.equal(theirs.status?.conditions, undefined);
  });
});
