import { strict as assert } from "node:assert";

import { findPortConflicts, hostPortIndexKey, hostPortIndexKeys, type ConflictReport } from "../../../src/controller/conflicts.js";
import type { V1Pod, V1Service } from "../../../src/controller/types.js";
import { pod, service } from "./fixtures.js";

const uid = "3f2a9c1e-7b4d-4e6f-9a8b-0c1d2e3f4a5b";
const web = service({ spec: { ports: [{ protocol: "TCP", port: 80 }, { protocol: "UDP", port: 53 }] } });
const ourLabels = { "berth.dev/service-name": "web", "berth.dev/service-namespace": "default", "berth.dev/service-uid": uid };
const fullMessage = "0/2 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.";

/** Our lb-pod, Pending and unbound, pinned to a node by the DaemonSet controller. */
function pendingOurs(name: string, targetNode: string, unschedulable?: string): V1Pod {
  return pod(name, { targetNode, labels: ourLabels, ready: false, ...(unschedulable ? { unschedulable } : {}) });
}
function runningOurs(name: string, node: string): V1Pod {
  return pod(name, { node, labels: ourLabels, ready: true });
}

describe("controller: port conflicts", () => {
  const rows: {
    name: string;
    ours: V1Pod[];
    others?: V1Pod[];
    otherServices?: V1Service[];
    want: { node: string; what: string; holder: ConflictReport["conflicts"][number]["holder"] }[];
    competing?: ConflictReport["competingServices"];
  }[] = [
    {
      name: "names the other berth Service whose lb-pod holds the port",
      ours: [pendingOurs("svclb-web-1", "a", fullMessage)],
      others: [pod("svclb-other-2", {
        node: "a", hostPorts: [{ port: 80 }],
        labels: { "berth.dev/service-name": "other", "berth.dev/service-namespace": "shop" },
      })],
      want: [{ node: "a", what: "TCP/80", holder: { kind: "service", service: "shop/other", pod: "berth-system/svclb-other-2" } }],
    },
    {
      name: "names a k3s servicelb pod's Service (mid-migration)",
      ours: [pendingOurs("svclb-web-1", "a")],
      others: [pod("svclb-traefik-x", {
        namespace: "kube-system", node: "a", hostPorts: [{ port: 80 }],
        labels: { "svccontroller.k3s.cattle.io/svcname": "traefik", "svccontroller.k3s.cattle.io/svcnamespace": "kube-system" },
      })],
      want: [{ node: "a", what: "TCP/80", holder: { kind: "service", service: "kube-system/traefik", pod: "kube-system/svclb-traefik-x" } }],
    },
    {
      name: "names any pod with the same hostPort and protocol, whatever its hostIP",
      ours: [pendingOurs("svclb-web-1", "a")],
      others: [pod("dns", { namespace: "infra", node: "a", hostPorts: [{ port: 53, protocol: "UDP", hostIP: "192.168.1.11" }] })],
      want: [{ node: "a", what: "UDP/53", holder: { kind: "pod", pod: "infra/dns" } }],
    },
    {
      name: "a host-network pod's container ports are host ports",
      ours: [pendingOurs("svclb-web-1", "a")],
      others: [{ ...pod("ingress", { namespace: "infra", node: "a" }), spec: { nodeName: "a", hostNetwork: true, containers: [{ name: "c", ports: [{ containerPort: 80 }] }] } }],
      want: [{ node: "a", what: "TCP/80", holder: { kind: "pod", pod: "infra/ingress" } }],
    },
    {
      name: "the same port over another protocol is no conflict",
      ours: [pendingOurs("svclb-web-1", "a")],
      others: [pod("x", { node: "a", hostPorts: [{ port: 80, protocol: "UDP" }, { port: 53, protocol: "TCP" }] })],
      want: [],
    },
    {
      name: "a holder on another node is no conflict here",
      ours: [pendingOurs("svclb-web-1", "a")],
      others: [pod("x", { node: "b", hostPorts: [{ port: 80 }] })],
      want: [],
    },
    {
      name: "finished pods hold nothing",
      ours: [pendingOurs("svclb-web-1", "a")],
      others: [pod("done", { node: "a", phase: "Succeeded", hostPorts: [{ port: 80 }] }), pod("failed", { node: "a", phase: "Failed", hostPorts: [{ port: 80 }] })],
      want: [],
    },
    {
      name: "where our lb-pod is bound it holds the port: the other claimant is the one left waiting",
      ours: [runningOurs("svclb-web-1", "a")],
      others: [pod("late", { targetNode: "a", hostPorts: [{ port: 80 }] })],
      want: [],
    },
    {
      name: "our own pods (this generation or an earlier one) are never holders",
      ours: [pendingOurs("svclb-web-new", "a")],
      others: [pendingOurs("svclb-web-new", "a"), pod("svclb-web-old", { node: "a", labels: ourLabels, hostPorts: [{ port: 80 }] })],
      want: [],
    },
    {
      name: "the scheduler's 'no free ports' is evidence even when the holder is invisible",
      ours: [pendingOurs("svclb-web-1", "a", fullMessage)],
      want: [
        { node: "a", what: "TCP/80", holder: { kind: "unknown", detail: `scheduler: ${fullMessage}` } },
        { node: "a", what: "UDP/53", holder: { kind: "unknown", detail: `scheduler: ${fullMessage}` } },
      ],
    },
    {
      name: "a Pending pod for another reason (no conflict message, no holder) is no conflict",
      ours: [pendingOurs("svclb-web-1", "a", "0/1 nodes are available: 1 Insufficient cpu.")],
      want: [],
    },
    {
      name: "lists every node and port, sorted by node then protocol and port",
      ours: [pendingOurs("p-b", "b"), pendingOurs("p-a", "a")],
      others: [
        pod("x", { namespace: "n", node: "b", hostPorts: [{ port: 80 }] }),
        pod("y", { namespace: "n", node: "a", hostPorts: [{ port: 53, protocol: "UDP" }, { port: 80 }] }),
      ],
      want: [
        { node: "a", what: "TCP/80", holder: { kind: "pod", pod: "n/y" } },
        { node: "a", what: "UDP/53", holder: { kind: "pod", pod: "n/y" } },
        { node: "b", what: "TCP/80", holder: { kind: "pod", pod: "n/x" } },
      ],
    },
    {
      name: "reports other hostPort-mode Services asking for the same ports (they compete on every node), not VIP-mode ones or itself",
      ours: [],
      otherServices: [
        service({ name: "zeta", namespace: "b", uid: "z", spec: { ports: [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 8080 }] } }),
        service({ name: "alpha", namespace: "a", uid: "a", spec: { ports: [{ protocol: "TCP", port: 80 }, { protocol: "UDP", port: 53 }] } }),
        service({ name: "vip", uid: "v", annotations: { "berth.dev/mode": "vip" }, spec: { ports: [{ protocol: "TCP", port: 80 }] } }),
        service({ name: "udp80", uid: "u", spec: { ports: [{ protocol: "UDP", port: 80 }] } }),
        web,
      ],
      want: [],
      competing: [{ service: "a/alpha", ports: ["TCP/80", "UDP/53"] }, { service: "b/zeta", ports: ["UDP/53"] }],
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const report = findPortConflicts({ service: web, daemonSetPods: row.ours, allPods: [...row.ours, ...(row.others ?? [])], otherServices: row.otherServices ?? [] });
      assert.deepEqual(report.conflicts.map((c) => ({ node: c.node, what: `${c.protocol.toUpperCase()}/${c.port}`, holder: c.holder })), row.want);
      assert.deepEqual(report.competingServices, row.competing ?? []);
    });
  }

  it("describes a conflict in one line naming the node, the port and the holder", () => {
    const report = findPortConflicts({
      service: web,
      daemonSetPods: [pendingOurs("svclb-web-1", "a")],
      allPods: [pod("svclb-other-2", { node: "a", hostPorts: [{ port: 80 }], labels: { "berth.dev/service-name": "other", "berth.dev/service-namespace": "shop" } })],
      otherServices: [],
    });
    assert.deepEqual(report.conflicts.map((c) => c.description), ["TCP/80 on node a: held by Service shop/other (pod berth-system/svclb-other-2)"]);
  });
  it("a new Service's 100 unbound lb-pods among 100,000 pods cost one pass over the pods, not one per node", () => {
    // At 1,000 Services x 100 nodes every node of a new Service is unbound; a scan of every pod per node was
    // 10,000,000 steps per reconcile and stalled the controller for seconds (measured: 7.9 s at 50 x 100).
    const ours = Array.from({ length: 100 }, (_, n) => pendingOurs(`svclb-web-${n}`, `node-${n}`));
    const others = Array.from({ length: 100_000 }, (_, i) => pod(`svclb-s${i % 1000}-${i}`, {
      node: `node-${Math.floor(i / 1000)}`, hostPorts: [{ port: 10_000 + (i % 1000) }],
      labels: { "berth.dev/service-name": `s${i % 1000}`, "berth.dev/service-namespace": "default" },
    }));
    const started = performance.now();
    const report = findPortConflicts({ service: web, daemonSetPods: ours, allPods: [...ours, ...others], otherServices: [] });
    const ms = performance.now() - started;
    assert.deepEqual(report.conflicts, []);
    assert.ok(ms < 600, `${Math.round(ms)} ms (one scan per node: ~1,700 ms here; one pass: ~130 ms)`);
  });
});

// The controller indexes its cached lb-pods by these keys, and a reconcile asks the index for its ports on its waiting
// nodes only (docs/design/0012, addendum 5): a key missing here is a holder the conflict check never sees.
describe("controller: host-port index keys of a pod", () => {
  const hostNetwork = (p: V1Pod): V1Pod => ({ ...p, spec: { ...p.spec, hostNetwork: true, containers: [{ name: "c", image: "x", ports: [{ containerPort: 9100 }] }] } });
  const sidecar = (p: V1Pod, restartPolicy?: string): V1Pod => ({
    ...p, spec: { ...p.spec, containers: p.spec?.containers ?? [], initContainers: [{ name: "init", image: "x", ...(restartPolicy ? { restartPolicy } : {}), ports: [{ containerPort: 53, hostPort: 53, protocol: "UDP" }] }] },
  });
  const rows: { name: string; pod: V1Pod; keys: string[] }[] = [
    { name: "a bound pod: one key per host port and protocol", pod: pod("a", { node: "n1", hostPorts: [{ port: 80 }, { port: 53, protocol: "UDP" }] }), keys: ["n1\ttcp/80", "n1\tudp/53"] },
    { name: "an unbound pod: none (it holds nothing yet)", pod: pod("b", { targetNode: "n1", hostPorts: [{ port: 80 }] }), keys: [] },
    { name: "the same port twice (two host IPs): one key", pod: pod("c", { node: "n1", hostPorts: [{ port: 80, hostIP: "192.0.2.1" }, { port: 80, hostIP: "192.0.2.2" }] }), keys: ["n1\ttcp/80"] },
    { name: "host network: every container port is a host port", pod: hostNetwork(pod("d", { node: "n2" })), keys: ["n2\ttcp/9100"] },
    { name: "a sidecar (init container that keeps running) holds its ports", pod: sidecar(pod("e", { node: "n1" }), "Always"), keys: ["n1\tudp/53"] },
    { name: "a plain init container holds none", pod: sidecar(pod("f", { node: "n1" })), keys: [] },
    { name: "no ports: none", pod: pod("g", { node: "n1" }), keys: [] },
  ];
  for (const row of rows) {
    it(row.name, () => {
      assert.deepEqual(hostPortIndexKeys(row.pod).sort(), row.keys.sort());
      for (const key of row.keys) {
        const [node, port] = key.split("\t") as [string, string];
        const [protocol, number] = port.split("/") as ["tcp" | "udp", string];
        assert.equal(hostPortIndexKey(node, protocol, Number(number)), key);
      }
    });
  }
});
