// The sandbox's DaemonSet controller and pod GC decisions (src/sandbox/cluster/scheduling.ts), on literal objects:
// which daemon pods are created (unbound, pinned by node affinity), what gets deleted, and the status counts. The
// scheduler's decisions are in scheduling-scheduler.test.ts.
import assert from "node:assert/strict";
import type { V1DaemonSet, V1Node, V1Pod, V1Taint } from "@kubernetes/client-node";
import {
  daemonSetStatus,
  newDaemonPod,
  nodeMismatch,
  planPlacement,
  podTargetNode,
  portsClash,
  TEMPLATE_HASH_LABEL,
  templateHash,
  unschedulableCondition,
  type PlacementAction,
} from "../../../src/sandbox/cluster/scheduling.js";

function node(name: string, o: { labels?: Record<string, string>; taints?: V1Taint[] } = {}): V1Node {
  return {
    metadata: { name, labels: { "kubernetes.io/hostname": name, ...(o.labels ?? {}) } },
    spec: { ...(o.taints ? { taints: o.taints } : {}) },
    status: { conditions: [{ type: "Ready", status: "True" }] },
  };
}

function daemonSet(name: string, o: { hostPort?: number; nodeSelector?: Record<string, string>; uid?: string; generation?: number } = {}): V1DaemonSet {
  return {
    metadata: { name, namespace: "ns", uid: o.uid ?? `uid-${name}`, ...(o.generation !== undefined ? { generation: o.generation } : {}) },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          ...(o.nodeSelector ? { nodeSelector: o.nodeSelector } : {}),
          containers: [{ name: "c", image: "img", ...(o.hostPort ? { ports: [{ containerPort: o.hostPort, hostPort: o.hostPort, protocol: "TCP" }] } : {}) }],
        },
      },
    },
  };
}

/** A pod as the API server holds it after create (uid, creationTimestamp), optionally bound. */
function placed(pod: V1Pod, o: { bound?: boolean; created: string; uid: string; ready?: boolean; deleting?: boolean }): V1Pod {
  return {
    ...pod,
    metadata: {
      ...pod.metadata, uid: o.uid, creationTimestamp: o.created as unknown as Date,
      ...(o.deleting ? { deletionTimestamp: "2026-01-01T00:10:00Z" as unknown as Date } : {}),
    },
    spec: { ...(pod.spec ?? { containers: [] }), ...(o.bound ? { nodeName: pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[0]?.matchFields?.[0]?.values?.[0] ?? "" } : {}) },
    ...(o.ready ? { status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] } } : {}),
  };
}

const kinds = (actions: PlacementAction[]): string[] => actions.map((a) => {
  switch (a.kind) {
    case "create": return `create ${a.pod.metadata?.name} ${a.pod.spec?.nodeName ? "bound" : "unbound"}`;
    case "delete": return `delete ${a.pod.metadata?.name}${a.force ? " force" : ""}`;
    case "daemonSetStatus": return `status ${a.daemonSet.metadata?.name}`;
  }
});

describe("sandbox scheduling: node filters", () => {
  const cases: { name: string; node: V1Node; template: V1DaemonSet; want: string | undefined }[] = [
    { name: "no constraints", node: node("n1"), template: daemonSet("a"), want: undefined },
    { name: "nodeSelector matches", node: node("n1", { labels: { zone: "a" } }), template: daemonSet("a", { nodeSelector: { zone: "a" } }), want: undefined },
    { name: "nodeSelector differs", node: node("n1", { labels: { zone: "b" } }), template: daemonSet("a", { nodeSelector: { zone: "a" } }), want: "nodeSelector zone=a" },
    {
      name: "untolerated NoSchedule taint", node: node("n1", { taints: [{ key: "dedicated", value: "db", effect: "NoSchedule" }] }),
      template: daemonSet("a"), want: "taint dedicated:NoSchedule",
    },
    { name: "PreferNoSchedule is no obstacle", node: node("n1", { taints: [{ key: "x", effect: "PreferNoSchedule" }] }), template: daemonSet("a"), want: undefined },
    {
      name: "not-ready taint tolerated by every daemon pod", node: node("n1", { taints: [{ key: "node.kubernetes.io/not-ready", effect: "NoExecute" }] }),
      template: daemonSet("a"), want: undefined,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.want ?? "fits"}`, () => assert.equal(nodeMismatch(c.template.spec?.template, c.node), c.want));
  }

  it("required node affinity: terms ORed, expressions ANDed, an empty term matches nothing", () => {
    const withTerms = (terms: object[]): V1DaemonSet => {
      const ds = daemonSet("a");
      (ds.spec as { template: { spec: object } }).template.spec = {
        ...ds.spec?.template.spec, affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } },
      };
      return ds;
    };
    const n = node("n1", { labels: { zone: "a", disk: "ssd" } });
    const zoneA = { matchExpressions: [{ key: "zone", operator: "In", values: ["a"] }] };
    const zoneAndHdd = { matchExpressions: [{ key: "zone", operator: "In", values: ["a"] }, { key: "disk", operator: "In", values: ["hdd"] }] };
    assert.equal(nodeMismatch(withTerms([zoneA]).spec?.template, n), undefined);
    assert.equal(nodeMismatch(withTerms([zoneAndHdd]).spec?.template, n), "node affinity");
    assert.equal(nodeMismatch(withTerms([zoneAndHdd, zoneA]).spec?.template, n), undefined);
    assert.equal(nodeMismatch(withTerms([{}]).spec?.template, n), "node affinity");
    assert.equal(nodeMismatch(withTerms([{ matchFields: [{ key: "metadata.name", operator: "In", values: ["n2"] }] }]).spec?.template, n), "node affinity");
  });

  it("hostPorts clash on the same protocol and port when the host IPs overlap", () => {
    const pod = (port: number, protocol = "TCP", hostIP?: string): V1Pod => ({
      spec: { containers: [{ name: "c", ports: [{ containerPort: port, hostPort: port, protocol, ...(hostIP ? { hostIP } : {}) }] }] },
    });
    assert.equal(portsClash(pod(80), pod(80)), "TCP/80");
    assert.equal(portsClash(pod(80), pod(80, "UDP")), undefined);
    assert.equal(portsClash(pod(80), pod(81)), undefined);
    assert.equal(portsClash(pod(80, "TCP", "10.0.0.1"), pod(80, "TCP", "10.0.0.2")), undefined);
    assert.equal(portsClash(pod(80, "TCP", "10.0.0.1"), pod(80)), "TCP/80");
  });
});

describe("sandbox scheduling: planPlacement", () => {
  const nodes = [node("n1"), node("n2")];

  it("creates one UNBOUND pod per matching node, pinned by node affinity, with the daemon tolerations and the template hash", () => {
    const ds = daemonSet("a", { hostPort: 80 });
    const actions = planPlacement({ daemonSets: [ds], nodes, pods: [] });
    const creates = actions.filter((a) => a.kind === "create").map((a) => a.pod);
    assert.deepEqual(creates.map((p) => p.spec?.nodeName), [undefined, undefined]);
    assert.deepEqual(creates.map((p) => podTargetNode(p)), ["n1", "n2"]);
    const pod = creates[0] as V1Pod;
    assert.deepEqual(pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms,
      [{ matchFields: [{ key: "metadata.name", operator: "In", values: ["n1"] }] }]);
    assert.equal(pod.metadata?.labels?.[TEMPLATE_HASH_LABEL], templateHash(ds));
    assert.equal(pod.metadata?.ownerReferences?.[0]?.uid, "uid-a");
    assert.ok(pod.spec?.tolerations?.some((t) => t.key === "node.kubernetes.io/unschedulable"));
    assert.deepEqual(kinds(actions).at(-1), "status a");
  });

  it("creates a daemon pod unbound even where its hostPort is held, and keeps it (Pending is the scheduler's verdict, not a reason to delete)", () => {
    const a = daemonSet("a", { hostPort: 80, nodeSelector: { "kubernetes.io/hostname": "n1" } });
    const b = daemonSet("b", { hostPort: 80, nodeSelector: { "kubernetes.io/hostname": "n1" } });
    const podA = placed(newDaemonPod(a, "n1"), { bound: true, created: "2026-01-01T00:00:00Z", uid: "pa", ready: true });
    const first = planPlacement({ daemonSets: [a, b], nodes, pods: [podA] });
    assert.deepEqual(kinds(first).filter((k) => !k.startsWith("status")), [`create ${newDaemonPod(b, "n1").metadata?.name} unbound`]);
    const podB = placed(newDaemonPod(b, "n1"), { created: "2026-01-01T00:01:00Z", uid: "pb" });
    const pending = { ...podB, status: { phase: "Pending", conditions: [unschedulableCondition(2)] } };
    assert.deepEqual(kinds(planPlacement({ daemonSets: [a, b], nodes, pods: [podA, pending] })).filter((k) => !k.startsWith("status")), []);
  });

  it("deletes an unbound pod at once (force) when its node no longer matches or is gone", () => {
    const a = daemonSet("a", { nodeSelector: { role: "lb" } });
    const both = [node("n1", { labels: { role: "lb" } }), node("n2", { labels: { role: "lb" } })];
    const p1 = placed(newDaemonPod(a, "n1"), { created: "2026-01-01T00:00:00Z", uid: "p1" });
    const p2 = placed(newDaemonPod(a, "n2"), { created: "2026-01-01T00:00:00Z", uid: "p2" });
    assert.deepEqual(kinds(planPlacement({ daemonSets: [a], nodes: both, pods: [p1, p2] })).filter((k) => k.startsWith("delete")), []);
    const relabelled = [node("n1"), node("n2", { labels: { role: "lb" } })];
    assert.deepEqual(kinds(planPlacement({ daemonSets: [a], nodes: relabelled, pods: [p1, p2] })).filter((k) => k.startsWith("delete")), [`delete ${p1.metadata?.name} force`]);
    assert.deepEqual(kinds(planPlacement({ daemonSets: [a], nodes: [both[1] as V1Node], pods: [p1, p2] })).filter((k) => k.startsWith("delete")), [`delete ${p1.metadata?.name} force`]);
  });

  it("keeps the bound pod, not the older unbound one, when a node has two (podByCreationTimestampAndPhase)", () => {
    const a = daemonSet("a");
    const unbound = placed(newDaemonPod(a, "n1"), { created: "2026-01-01T00:00:00Z", uid: "old" });
    const newer = placed(newDaemonPod(a, "n1"), { bound: true, created: "2026-01-01T00:01:00Z", uid: "new" });
    const bound = { ...newer, metadata: { ...newer.metadata, name: "other" } };
    assert.deepEqual(kinds(planPlacement({ daemonSets: [a], nodes: [node("n1")], pods: [unbound, bound] })).filter((k) => k.startsWith("delete")), [`delete ${unbound.metadata?.name} force`]);
  });

  it("deletes pods of a gone DaemonSet and of a node that no longer matches; force-deletes pods of a gone node", () => {
    const a = daemonSet("a");
    const p1 = placed(newDaemonPod(a, "n1"), { bound: true, created: "2026-01-01T00:00:00Z", uid: "p1", ready: true });
    const p2 = placed(newDaemonPod(a, "n2"), { bound: true, created: "2026-01-01T00:00:00Z", uid: "p2", ready: true });
    const deletes = [`delete ${p1.metadata?.name}`, `delete ${p2.metadata?.name}`].sort();
    assert.deepEqual(kinds(planPlacement({ daemonSets: [], nodes, pods: [p1, p2] })).sort(), deletes);

    const relabelled = [node("n1", { taints: [{ key: "dedicated", effect: "NoExecute" }] }), node("n2")];
    assert.deepEqual(kinds(planPlacement({ daemonSets: [a], nodes: relabelled, pods: [p1, p2] })).filter((k) => k.startsWith("delete")), [`delete ${p1.metadata?.name}`]);
    // A NoSchedule taint keeps new pods off the node but leaves a running one alone (shouldContinueRunning), as for
    // a node the node lifecycle tainted node.kubernetes.io/unreachable:NoSchedule.
    for (const key of ["dedicated", "node.kubernetes.io/unreachable"]) {
      const tainted = [node("n1", { taints: [{ key, effect: "NoSchedule" }] }), node("n2")];
      assert.deepEqual(kinds(planPlacement({ daemonSets: [a], nodes: tainted, pods: [p1, p2] })).filter((k) => k.startsWith("delete")), [], key);
    }

    const bare: V1Pod = { metadata: { name: "bare", namespace: "default", uid: "b" }, spec: { nodeName: "n2", containers: [] } };
    assert.deepEqual(kinds(planPlacement({ daemonSets: [a], nodes: [node("n1")], pods: [p1, p2, bare] })).filter((k) => k.startsWith("delete")),
      [`delete ${p2.metadata?.name} force`, "delete bare force"]);
  });

  it("rolls a changed template out one node at a time (maxUnavailable 1), at once where a pod is not Ready, never under OnDelete", () => {
    const three = [node("n1"), node("n2"), node("n3")];
    const old = daemonSet("a");
    const pods = three.map((n, i) => placed(newDaemonPod(old, n.metadata?.name ?? ""), { bound: true, created: "2026-01-01T00:00:00Z", uid: `p${i}`, ready: true }));
    const changed = daemonSet("a");
    changed.spec?.template.spec?.containers.push({ name: "sidecar", image: "img" });
    const deletes = (ds: V1DaemonSet, ps: V1Pod[]) => kinds(planPlacement({ daemonSets: [ds], nodes: three, pods: ps })).filter((k) => k.startsWith("delete"));
    assert.deepEqual(deletes(changed, pods), [`delete ${pods[0]?.metadata?.name}`]);
    // n1's pod is terminating: that node is the one unavailable, nothing else goes yet.
    const terminating = { ...pods[0], metadata: { ...pods[0]?.metadata, deletionTimestamp: "2026-01-01T00:05:00Z" as unknown as Date } } as V1Pod;
    assert.deepEqual(deletes(changed, [terminating, pods[1] as V1Pod, pods[2] as V1Pod]), []);
    // n1 runs the new template and is Ready: n2 is next.
    const fresh = placed(newDaemonPod(changed, "n1"), { bound: true, created: "2026-01-01T00:06:00Z", uid: "q0", ready: true });
    assert.deepEqual(deletes(changed, [fresh, pods[1] as V1Pod, pods[2] as V1Pod]), [`delete ${pods[1]?.metadata?.name}`]);
    // An outdated pod that is not Ready goes at once, whatever the budget.
    const unready = placed(newDaemonPod(old, "n3"), { bound: true, created: "2026-01-01T00:00:00Z", uid: "p2" });
    assert.deepEqual(deletes(changed, [pods[0] as V1Pod, pods[1] as V1Pod, unready]), [`delete ${unready.metadata?.name}`]);
    // maxUnavailable as a percentage of the desired nodes, rounded up: 50% of 3 is 2.
    const half = structuredClone(changed);
    (half.spec as { updateStrategy?: object }).updateStrategy = { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "50%" } };
    assert.equal(deletes(half, pods).length, 2);
    const onDelete = structuredClone(changed);
    (onDelete.spec as { updateStrategy?: object }).updateStrategy = { type: "OnDelete" };
    assert.deepEqual(deletes(onDelete, pods), []);
  });

  it("replaces a pod of an older template only once the old one is gone, as the DaemonSet controller waits for a terminating pod", () => {
    const a = daemonSet("a", { hostPort: 80 });
    const old = placed(newDaemonPod(a, "n1"), { bound: true, created: "2026-01-01T00:00:00Z", uid: "p1", ready: true });
    const changed = daemonSet("a", { hostPort: 81 });
    const n1 = [node("n1")];
    assert.deepEqual(kinds(planPlacement({ daemonSets: [changed], nodes: n1, pods: [old] })), [`delete ${old.metadata?.name}`, "status a"]);
    const terminating = { ...old, metadata: { ...old.metadata, deletionTimestamp: "2026-01-01T00:05:00Z" as unknown as Date } };
    assert.deepEqual(kinds(planPlacement({ daemonSets: [changed], nodes: n1, pods: [terminating] })).filter((k) => !k.startsWith("status")), []);
    assert.deepEqual(kinds(planPlacement({ daemonSets: [changed], nodes: n1, pods: [] })), [`create ${old.metadata?.name} unbound`, "status a"]);
  });

  it("replaces a Failed daemon pod (rejected by its kubelet) after a few seconds, never two at once", () => {
    const a = daemonSet("a");
    const n1 = [node("n1")];
    const pod = placed(newDaemonPod(a, "n1"), { bound: true, created: "2026-01-01T00:00:00Z", uid: "p1" });
    const rejected = { ...pod, status: { phase: "Failed", reason: "SysctlForbidden", startTime: "2026-01-01T00:00:01Z" as unknown as Date } };
    const at = (iso: string) => kinds(planPlacement({ daemonSets: [a], nodes: n1, pods: [rejected], now: Date.parse(iso) })).filter((k) => !k.startsWith("status"));
    assert.deepEqual(at("2026-01-01T00:00:03Z"), []);
    assert.deepEqual(at("2026-01-01T00:00:06Z"), [`delete ${pod.metadata?.name} force`]);
    const [status] = planPlacement({ daemonSets: [a], nodes: n1, pods: [rejected], now: Date.parse("2026-01-01T00:00:03Z") });
    assert.ok(status?.kind === "daemonSetStatus");
    assert.equal(status.status.currentNumberScheduled, 1);
    assert.equal(status.status.numberReady, 0);
  });

  it("keeps the DaemonSet status counts and writes them only when they change", () => {
    const a = daemonSet("a", { generation: 3 });
    const p1 = placed(newDaemonPod(a, "n1"), { bound: true, created: "2026-01-01T00:00:00Z", uid: "p1", ready: true });
    const p2 = placed(newDaemonPod(a, "n2"), { bound: true, created: "2026-01-01T00:00:00Z", uid: "p2" });
    const [action] = planPlacement({ daemonSets: [a], nodes, pods: [p1, p2] });
    assert.ok(action?.kind === "daemonSetStatus");
    assert.deepEqual(action.status, {
      currentNumberScheduled: 2, desiredNumberScheduled: 2, numberMisscheduled: 0, numberReady: 1, numberAvailable: 1,
      updatedNumberScheduled: 2, observedGeneration: 3, numberUnavailable: 1,
    });
    const current = { ...a, status: action.status };
    assert.deepEqual(planPlacement({ daemonSets: [current], nodes, pods: [p1, p2] }), []);
  });

  it("counts as the DaemonSet controller does: per node, a pod bound or not is scheduled, one on a node that should not run it is misscheduled", () => {
    const a = daemonSet("a", { nodeSelector: { role: "lb" } });
    const three = [node("n1", { labels: { role: "lb" } }), node("n2", { labels: { role: "lb" } }), node("n3")];
    const bound = placed(newDaemonPod(a, "n1"), { bound: true, created: "2026-01-01T00:00:00Z", uid: "p1", ready: true });
    const unbound = placed(newDaemonPod(a, "n2"), { created: "2026-01-01T00:00:00Z", uid: "p2" });
    const stray = placed(newDaemonPod(a, "n3"), { bound: true, created: "2026-01-01T00:00:00Z", uid: "p3", ready: true });
    assert.deepEqual(daemonSetStatus(a, three, [bound, unbound, stray]), {
      currentNumberScheduled: 2, desiredNumberScheduled: 2, numberMisscheduled: 1, numberReady: 1, numberAvailable: 1,
      updatedNumberScheduled: 2, numberUnavailable: 1,
    });
    // A finished pod being deleted no longer counts; one not yet deleted does.
    const failed = { ...unbound, status: { phase: "Failed" } };
    const failedDeleting = { ...failed, metadata: { ...failed.metadata, deletionTimestamp: "2026-01-01T00:02:00Z" as unknown as Date } };
    assert.equal(daemonSetStatus(a, three, [bound, failed]).currentNumberScheduled, 2);
    assert.equal(daemonSetStatus(a, three, [bound, failedDeleting]).currentNumberScheduled, 1);
  });

  it("deletes a Succeeded daemon pod at once and replaces it only once it is gone", () => {
    const a = daemonSet("a");
    const done = { ...placed(newDaemonPod(a, "n1"), { bound: true, created: "2026-01-01T00:00:00Z", uid: "p1" }), status: { phase: "Succeeded" } };
    assert.deepEqual(kinds(planPlacement({ daemonSets: [a], nodes: [node("n1")], pods: [done] })).filter((k) => !k.startsWith("status")), [`delete ${done.metadata?.name} force`]);
  });
});
