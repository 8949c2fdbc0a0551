// Controller replicas (`sandbox up --controller-replicas N`) and a node's kubelet stopped and started
// (`sandbox kubelet stop|start`): the flag, the replicas' command lines, the leader shown by `status`, the control
// socket's routes, and what the node lifecycle writes (pure functions, table-tested), then NodeLifecycle against a
// real in-memory API server over HTTP.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { UsageError } from "../../../src/lib/errors.js";
import { KubeClient, Resources } from "../../../src/lib/kube/client.js";
import { parseUpFlags } from "../../../src/sandbox/command.js";
import { startApiServer, type ApiServerHandle } from "../../../src/sandbox/apiserver/index.js";
import { callControl, controlRoute, serveControl } from "../../../src/sandbox/cluster/control.js";
import { NodeLifecycle, podMarkedNotReady, reachableNode, unreachableNode, UNREACHABLE_TAINT_KEY, type NodeKubelet } from "../../../src/sandbox/cluster/node-lifecycle.js";
import { leaderGauge } from "../../../src/sandbox/cluster/replicas.js";
import { controllerArgs, controllerIdentity, controllerLogName } from "../../../src/sandbox/cluster/supervisor.js";

const defaults = { nodes: "3", lbIpCapture: true, prefix: "bsb" };
const at = new Date("2026-01-02T03:04:05.678Z");

describe("sandbox: controller replicas", () => {
  it("leaves controllerReplicas out for 2 (the default, as deploy/berth.yaml) and takes 1 to 5", () => {
    assert.equal(parseUpFlags({ ...defaults, controllerReplicas: "2" }).options.controllerReplicas, undefined);
    assert.equal(parseUpFlags({ ...defaults, controllerReplicas: "1" }).options.controllerReplicas, 1);
    assert.equal(parseUpFlags({ ...defaults, controllerReplicas: "5" }).options.controllerReplicas, 5);
  });

  for (const bad of ["0", "6", "two", ""]) {
    it(`refuses --controller-replicas ${JSON.stringify(bad)} in one line`, () => {
      assert.throws(() => parseUpFlags({ ...defaults, controllerReplicas: bad }),
        (err: unknown) => err instanceof UsageError && /^invalid --controller-replicas .*from 1 to 5$/.test(err.message));
    });
  }

  const base = { cli: "/r/dist/cli.js", kubeconfig: "/k", port: 4000 };
  it("runs every replica with leader election and its own identity, a single one too (berth doctor finds the Lease)", () => {
    assert.deepEqual(controllerArgs({ ...base, identity: "sandbox-controller-1" }), [
      "/r/dist/cli.js", "controller", "--kubeconfig", "/k", "--identity", "sandbox-controller-1", "--listen", "127.0.0.1:4000", "--lb-image", "berth.dev/sandbox/lb-pod:dev",
    ]);
    assert.deepEqual([controllerLogName(1, 0), controllerLogName(2, 0), controllerLogName(2, 1)], ["controller", "controller-1", "controller-2"]);
  });

  it("gives every replica its own identity", () => {
    assert.deepEqual([0, 1, 2].map((i) => controllerIdentity(i)), ["sandbox-controller-1", "sandbox-controller-2", "sandbox-controller-3"]);
    assert.equal(controllerIdentity(0, 2), "sandbox-controller-1-2", "a replacement after its pod was deleted gets a new name");
  });

  const gauges: [string, boolean | undefined][] = [
    ["# HELP berth_leader x\n# TYPE berth_leader gauge\nberth_leader 1\n", true],
    ["berth_leader 0\nberth_leader_changes_total 3\n", false],
    ["berth_leader_changes_total 1\n", undefined],
  ];
  for (const [text, want] of gauges) {
    it(`reads berth_leader ${String(want)} from ${JSON.stringify(text.split("\n").find((l) => l.startsWith("berth_")))}`, () => {
      assert.equal(leaderGauge(text), want);
    });
  }
});

describe("sandbox: control socket", () => {
  const routes: [string, string, ReturnType<typeof controlRoute>][] = [
    ["POST", "/v1/nodes/node-2/kubelet/stop", { action: "stop", node: "node-2" }],
    ["POST", "/v1/nodes/node-10/kubelet/start", { action: "start", node: "node-10" }],
    ["GET", "/v1/nodes/node-2/kubelet/stop", { error: "/v1/nodes/node-2/kubelet/stop takes POST, not GET" }],
    ["POST", "/v1/nodes/node-2/kubelet/restart", { error: "no such control request: POST /v1/nodes/node-2/kubelet/restart" }],
  ];
  for (const [method, path, want] of routes) {
    it(`${method} ${path}`, () => assert.deepEqual(controlRoute(method, path), want));
  }

  it("answers over a Unix socket: the handler's message, or its error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-control-"));
    const socket = join(dir, "control.sock");
    const server = await serveControl(socket, {
      stopKubelet: async (node) => `stopped ${node}`,
      startKubelet: async (node) => {
        throw new Error(`no node ${node}`);
      },
    });
    try {
      assert.equal(await callControl(socket, "/v1/nodes/node-1/kubelet/stop"), "stopped node-1");
      await assert.rejects(callControl(socket, "/v1/nodes/node-9/kubelet/start"), /no node node-9/);
      await assert.rejects(callControl(socket, "/v1/other"), /no such control request/);
    } finally {
      await new Promise((done) => server.close(done));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function node(conditions: Record<string, unknown>[], taints?: Record<string, unknown>[]): V1Node {
  return { metadata: { name: "node-1" }, spec: { ...(taints ? { taints } : {}) }, status: { conditions } } as unknown as V1Node;
}

const readyTrue = { type: "Ready", status: "True", reason: "KubeletReady", message: "ready", lastHeartbeatTime: "2026-01-02T03:00:00Z", lastTransitionTime: "2026-01-01T00:00:00Z" };

describe("sandbox: node lifecycle (kube-controller-manager's node lifecycle controller)", () => {
  it("marks every condition Unknown once the kubelet stopped posting, keeping the last heartbeat", () => {
    const pressure = { type: "MemoryPressure", status: "False", reason: "KubeletHasSufficientMemory", message: "", lastHeartbeatTime: "2026-01-02T03:00:00Z", lastTransitionTime: "2026-01-01T00:00:00Z" };
    const { conditions } = unreachableNode(node([readyTrue, pressure]), at);
    assert.deepEqual(conditions, [
      { ...readyTrue, status: "Unknown", reason: "NodeStatusUnknown", message: "Kubelet stopped posting node status.", lastTransitionTime: "2026-01-02T03:04:05Z" },
      { ...pressure, status: "Unknown", reason: "NodeStatusUnknown", message: "Kubelet stopped posting node status.", lastTransitionTime: "2026-01-02T03:04:05Z" },
    ]);
  });

  it("keeps a condition that already is Unknown as it is (its transition time does not move)", () => {
    const unknown = { ...readyTrue, status: "Unknown", reason: "NodeStatusUnknown", lastTransitionTime: "2026-01-02T03:01:00Z" };
    assert.deepEqual(unreachableNode(node([unknown]), at).conditions, [unknown]);
  });

  it("adds both unreachable taints (NoExecute with timeAdded), keeps others, never twice", () => {
    const other = { key: "dedicated", value: "lb", effect: "NoSchedule" };
    const once = unreachableNode(node([readyTrue], [other]), at).taints;
    assert.deepEqual(once, [
      other,
      { key: UNREACHABLE_TAINT_KEY, effect: "NoSchedule" },
      { key: UNREACHABLE_TAINT_KEY, effect: "NoExecute", timeAdded: "2026-01-02T03:04:05Z" },
    ]);
    assert.equal(unreachableNode(node([readyTrue], once as never), at).taints.length, 3);
  });

  it("on return: Ready=True from the kubelet, the unreachable taints lifted, other taints kept", () => {
    const before = unreachableNode(node([readyTrue], [{ key: "dedicated", effect: "NoSchedule" }]), at);
    const after = reachableNode(node(before.conditions as never, before.taints as never), new Date("2026-01-02T03:05:00Z"));
    assert.deepEqual(after.taints, [{ key: "dedicated", effect: "NoSchedule" }]);
    assert.deepEqual(after.conditions, [{
      type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status",
      lastHeartbeatTime: "2026-01-02T03:05:00Z", lastTransitionTime: "2026-01-02T03:05:00Z",
    }]);
  });

  const pods: [string, Record<string, unknown>[], Record<string, unknown>[] | undefined][] = [
    ["a Ready pod turns not Ready", [{ type: "PodScheduled", status: "True" }, { type: "Ready", status: "True", lastTransitionTime: "2026-01-01T00:00:00Z" }],
      [{ type: "PodScheduled", status: "True" }, { type: "Ready", status: "False", lastTransitionTime: "2026-01-02T03:04:05Z" }]],
    ["a pod already not Ready is left alone", [{ type: "Ready", status: "False" }], undefined],
    ["a pod without a Ready condition is left alone", [{ type: "PodScheduled", status: "True" }], undefined],
  ];
  for (const [title, conditions, want] of pods) {
    it(`MarkPodsNotReady: ${title}`, () => {
      assert.deepEqual(podMarkedNotReady({ status: { conditions } } as unknown as V1Pod, at), want);
    });
  }
});

describe("sandbox: NodeLifecycle against the API server", () => {
  let api: ApiServerHandle;
  let client: KubeClient;
  const paused = new Set<string>();
  const resumed: string[] = [];
  const kubelet: NodeKubelet = {
    pause: (n) => void paused.add(n),
    resume: (n) => {
      paused.delete(n);
      resumed.push(n);
    },
    paused: (n) => paused.has(n),
  };

  before(async () => {
    api = await startApiServer({});
    client = new KubeClient({ server: api.url, authHeaders: () => ({ Authorization: `Bearer ${api.token}` }) });
    await client.create(Resources.nodes, { metadata: { name: "node-1" } } as never);
    await client.patchStatus(Resources.nodes, "node-1", "merge", { status: { conditions: [readyTrue] } });
    await client.create(Resources.namespaces, { metadata: { name: "default" } } as never).catch(() => undefined);
    for (const [name, nodeName] of [["on-1", "node-1"], ["on-2", "node-2"]]) {
      await client.create(Resources.pods, { metadata: { name, namespace: "default" }, spec: { nodeName, containers: [{ name: "c", image: "i" }] } } as never, { namespace: "default" });
      await client.patchStatus(Resources.pods, name as string, "merge", { status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] } }, { namespace: "default" });
    }
  });
  after(async () => {
    client.close();
    await api.close();
  });

  it("stops the kubelet at once, marks the node and its pods after the grace period, and undoes it on start", async () => {
    const lifecycle = new NodeLifecycle({ client, kubelet, nodes: ["node-1", "node-2"], graceMs: 200, log: () => undefined });
    assert.deepEqual(lifecycle.stopKubelet("node-1"), { graceMs: 200 });
    assert.ok(paused.has("node-1"), "the kubelet is paused at once");
    const early = await client.get<V1Node>(Resources.nodes, "node-1");
    assert.equal(early.status?.conditions?.[0]?.status, "True", "still Ready within the grace period");
    await new Promise((r) => setTimeout(r, 600));
    const marked = await client.get<V1Node>(Resources.nodes, "node-1");
    assert.equal(marked.status?.conditions?.[0]?.status, "Unknown");
    assert.deepEqual(marked.spec?.taints?.map((t) => `${t.key}:${t.effect}`), [`${UNREACHABLE_TAINT_KEY}:NoSchedule`, `${UNREACHABLE_TAINT_KEY}:NoExecute`]);
    const ready = async (name: string): Promise<string | undefined> =>
      (await client.get<V1Pod>(Resources.pods, name, { namespace: "default" })).status?.conditions?.find((c) => c.type === "Ready")?.status;
    assert.equal(await ready("on-1"), "False", "the node's pod is marked not Ready");
    assert.equal(await ready("on-2"), "True", "a pod on another node is not touched");

    await lifecycle.startKubelet("node-1");
    const back = await client.get<V1Node>(Resources.nodes, "node-1");
    assert.equal(back.status?.conditions?.[0]?.status, "True");
    assert.equal(back.spec?.taints, undefined);
    assert.deepEqual(resumed, ["node-1"]);
    assert.throws(() => lifecycle.stopKubelet("node-7"), /no node "node-7" in this sandbox \(nodes: node-1, node-2\)/);
    lifecycle.stop();
  });
});
