import { strict as assert } from "node:assert";

import { computeStatus, statusEquals, type NodeDecision } from "../../../src/controller/status.js";
import type { V1EndpointSlice, V1Node, V1Pod, V1Service } from "../../../src/controller/types.js";
import { node, pod, service } from "./fixtures.js";

const uid = "3f2a9c1e-7b4d-4e6f-9a8b-0c1d2e3f4a5b";
const lbLabels = { "berth.dev/service-name": "web", "berth.dev/service-namespace": "default", "berth.dev/service-uid": uid };

function lbPod(name: string, nodeName: string, options: { ready?: boolean; deleting?: boolean; uid?: string } = {}): V1Pod {
  return pod(name, {
    node: nodeName,
    ready: options.ready ?? true,
    ...(options.deleting ? { deleting: true } : {}),
    labels: { ...lbLabels, ...(options.uid ? { "berth.dev/service-uid": options.uid } : {}) },
  });
}

function internal(address: string) {
  return { type: "InternalIP", address };
}
function external(address: string) {
  return { type: "ExternalIP", address };
}

function slice(endpoints: { node: string; ready?: boolean | null; serving?: boolean; terminating?: boolean }[], serviceName = "web"): V1EndpointSlice {
  return {
    addressType: "IPv4",
    metadata: { name: `${serviceName}-abc`, namespace: "default", labels: { "kubernetes.io/service-name": serviceName } },
    endpoints: endpoints.map((e, index) => ({
      addresses: [`10.42.0.${index + 1}`],
      nodeName: e.node,
      conditions: {
        ...(e.ready === null ? {} : { ready: e.ready ?? true }),
        ...(e.serving !== undefined ? { serving: e.serving } : {}),
        ...(e.terminating !== undefined ? { terminating: e.terminating } : {}),
      },
    })),
  };
}

const REJECTION = 'Pod was rejected: forbidden sysctl: "net.ipv6.conf.all.forwarding" not allowlisted';

/** A pod as the kubelet leaves it after refusing it at admission (pkg/kubelet rejectPod). */
function rejected(name: string, nodeName: string): V1Pod {
  const p = pod(name, { node: nodeName, labels: lbLabels });
  return { ...p, status: { phase: "Failed", reason: "SysctlForbidden", message: REJECTION } };
}

const local = service({ spec: { externalTrafficPolicy: "Local", ports: [{ protocol: "TCP", port: 80, nodePort: 30080 }] } });
const dual = (families: string[]) => service({ spec: { ipFamilies: families, clusterIPs: families.map((f) => (f === "IPv4" ? "10.43.0.10" : "fd00:43::a")) } });

describe("controller: Service status", () => {
  const rows: {
    name: string;
    svc?: V1Service;
    nodes: V1Node[];
    pods: V1Pod[];
    slices?: V1EndpointSlice[];
    /** The Service's node pool (berth.dev/pool), when pinned. */
    pool?: string;
    ingress: string[];
    perNode?: NodeDecision[];
  }[] = [
    {
      name: "lists the InternalIP of every node whose lb-pod is Ready, with a reason per node",
      nodes: [node("a", { addresses: [internal("192.168.1.11")] }), node("b", { addresses: [internal("192.168.1.12")] })],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b", { ready: false })],
      ingress: ["192.168.1.11"],
      perNode: [
        { node: "a", included: true, reason: "serving on 192.168.1.11" },
        { node: "b", included: false, reason: "lb-pod p-b is not Ready" },
      ],
    },
    {
      name: "is empty with no pods, and says why for each node",
      nodes: [node("a")],
      pods: [],
      ingress: [],
      perNode: [{ node: "a", included: false, reason: "no lb-pod of this Service on the node", notStarted: true }],
    },
    {
      name: "prefers a node's ExternalIP, per node: a node without one still counts with its InternalIP (k3s drops it)",
      nodes: [
        node("a", { addresses: [internal("192.168.1.11"), external("203.0.113.7")] }),
        node("b", { addresses: [internal("192.168.1.12")] }),
      ],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b")],
      ingress: ["192.168.1.12", "203.0.113.7"],
    },
    {
      name: "sorts numerically, not as strings (10.0.0.9 before 10.0.0.10)",
      nodes: [node("a", { addresses: [internal("10.0.0.10")] }), node("b", { addresses: [internal("10.0.0.9")] }), node("c", { addresses: [internal("9.1.1.1")] })],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b"), lbPod("p-c", "c")],
      ingress: ["9.1.1.1", "10.0.0.9", "10.0.0.10"],
    },
    {
      name: "lists only the Service's families: an IPv4 Service on dual-stack nodes gets no IPv6 address",
      nodes: [node("a", { addresses: [internal("fd00::11"), internal("192.168.1.11")] })],
      pods: [lbPod("p-a", "a")],
      ingress: ["192.168.1.11"],
    },
    {
      name: "dual-stack IPv6-first: IPv6 addresses first, each family sorted, IPv6 canonical",
      svc: dual(["IPv6", "IPv4"]),
      nodes: [
        node("a", { addresses: [internal("192.168.1.12"), internal("fd00:0::12")] }),
        node("b", { addresses: [internal("192.168.1.11"), internal("fd00::11")] }),
      ],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b")],
      ingress: ["fd00::11", "fd00::12", "192.168.1.11", "192.168.1.12"],
    },
    {
      name: "chooses External over Internal per family (IPv4 external, IPv6 internal on the same node)",
      svc: dual(["IPv4", "IPv6"]),
      nodes: [node("a", { addresses: [internal("192.168.1.11"), internal("fd00::11"), external("203.0.113.7")] })],
      pods: [lbPod("p-a", "a")],
      ingress: ["203.0.113.7", "fd00::11"],
    },
    {
      name: "deduplicates an address two nodes report",
      nodes: [node("a", { addresses: [external("203.0.113.7")] }), node("b", { addresses: [external("203.0.113.7")] })],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b")],
      ingress: ["203.0.113.7"],
    },
    {
      name: "skips malformed node addresses instead of failing the Service",
      nodes: [node("a", { addresses: [internal("192.168.001.11"), internal("192.168.1.12")] })],
      pods: [lbPod("p-a", "a")],
      ingress: ["192.168.1.12"],
    },
    {
      name: "a node with no address of the Service's family is left out, with the reason",
      svc: dual(["IPv6"]),
      nodes: [node("a", { addresses: [internal("192.168.1.11")] })],
      pods: [lbPod("p-a", "a")],
      ingress: [],
      perNode: [{ node: "a", included: false, reason: "node has no InternalIP or ExternalIP of the Service's families (ipv6)" }],
    },
    {
      name: "leaves out NotReady, unknown, deleted and vanished nodes even when their pod still says Ready",
      nodes: [
        node("a", { ready: false, addresses: [internal("192.168.1.11")] }),
        node("b", { ready: "Unknown", addresses: [internal("192.168.1.12")] }),
        node("c", { deleting: true, addresses: [internal("192.168.1.13")] }),
        node("e", { addresses: [internal("192.168.1.15")] }),
      ],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b"), lbPod("p-c", "c"), lbPod("p-d", "d"), lbPod("p-e", "e")],
      ingress: ["192.168.1.15"],
      perNode: [
        { node: "a", included: false, reason: "node is not Ready (Ready=False)" },
        { node: "b", included: false, reason: "node is not Ready (Ready=Unknown)" },
        { node: "c", included: false, reason: "node is being deleted" },
        { node: "d", included: false, reason: "node does not exist" },
        { node: "e", included: true, reason: "serving on 192.168.1.15" },
      ],
    },
    {
      name: "a terminating lb-pod does not count; its Ready replacement on the same node does",
      nodes: [node("a", { addresses: [internal("192.168.1.11")] }), node("b", { addresses: [internal("192.168.1.12")] })],
      pods: [lbPod("old-a", "a", { deleting: true }), lbPod("new-a", "a"), lbPod("old-b", "b", { deleting: true })],
      ingress: ["192.168.1.11"],
      perNode: [
        { node: "a", included: true, reason: "serving on 192.168.1.11" },
        { node: "b", included: false, reason: "lb-pod old-b is terminating" },
      ],
    },
    {
      name: "ignores lb-pods of an earlier Service with the same name (another UID)",
      nodes: [node("a")],
      pods: [lbPod("stale", "a", { uid: "99999999-0000" })],
      ingress: [],
    },
    {
      name: "an unbound Pending lb-pod is attributed to the node the DaemonSet pinned it to, and its reason carries the scheduler's message",
      nodes: [node("a")],
      pods: [pod("p-a", { targetNode: "a", ready: false, labels: lbLabels, unschedulable: "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports." })],
      ingress: [],
      perNode: [{
        node: "a", included: false, notStarted: true,
        reason: "lb-pod p-a is not Ready (Unschedulable: 0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.)",
      }],
    },
    {
      name: "Local: only nodes with a ready endpoint",
      svc: local,
      nodes: [node("a", { addresses: [internal("192.168.1.11")] }), node("b", { addresses: [internal("192.168.1.12")] }), node("c", { addresses: [internal("192.168.1.13")] })],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b"), lbPod("p-c", "c")],
      slices: [slice([{ node: "a" }, { node: "b", ready: false }])],
      ingress: ["192.168.1.11"],
      perNode: [
        { node: "a", included: true, reason: "serving on 192.168.1.11" },
        { node: "b", included: false, reason: "no ready endpoint of the Service on the node (externalTrafficPolicy Local)" },
        { node: "c", included: false, reason: "no ready endpoint of the Service on the node (externalTrafficPolicy Local)" },
      ],
    },
    {
      name: "Local: a ready endpoint without an lb-pod does not count",
      svc: local,
      nodes: [node("a", { addresses: [internal("192.168.1.11")] })],
      pods: [],
      slices: [slice([{ node: "a" }])],
      ingress: [],
    },
    {
      name: "Local: an endpoint with no ready condition counts as ready, as kube-proxy reads it",
      svc: local,
      nodes: [node("a", { addresses: [internal("192.168.1.11")] })],
      pods: [lbPod("p-a", "a")],
      slices: [slice([{ node: "a", ready: null }])],
      ingress: ["192.168.1.11"],
    },
    {
      name: "Local: a serving, terminating endpoint keeps its node (kube-proxy's fallback during a rollout)",
      svc: local,
      nodes: [node("a", { addresses: [internal("192.168.1.11")] }), node("b", { addresses: [internal("192.168.1.12")] })],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b")],
      slices: [slice([{ node: "a", ready: false, serving: true, terminating: true }, { node: "b", ready: false, serving: false, terminating: true }])],
      ingress: ["192.168.1.11"],
    },
    {
      name: "Local: another Service's EndpointSlice is ignored",
      svc: local,
      nodes: [node("a", { addresses: [internal("192.168.1.11")] })],
      pods: [lbPod("p-a", "a")],
      slices: [slice([{ node: "a" }], "other")],
      ingress: [],
    },
    {
      name: "Cluster: EndpointSlices do not matter",
      nodes: [node("a", { addresses: [internal("192.168.1.11")] })],
      pods: [lbPod("p-a", "a")],
      slices: [slice([{ node: "b" }])],
      ingress: ["192.168.1.11"],
    },
    {
      name: "drops a node labelled exclude-from-external-load-balancers at once, while its lb-pod is still Ready",
      nodes: [
        node("a", { addresses: [internal("192.168.1.11")] }),
        node("b", { addresses: [internal("192.168.1.12")], labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "" } }),
      ],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b")],
      ingress: ["192.168.1.11"],
      perNode: [
        { node: "a", included: true, reason: "serving on 192.168.1.11" },
        { node: "b", included: false, ineligible: true, reason: "node may not serve this Service: labelled node.kubernetes.io/exclude-from-external-load-balancers" },
      ],
    },
    {
      name: "drops a node that lost berth.dev/enabled=true once selection is on, while its lb-pod is still Ready",
      nodes: [
        node("a", { addresses: [internal("192.168.1.11")], labels: { "berth.dev/enabled": "true" } }),
        node("b", { addresses: [internal("192.168.1.12")], labels: { "berth.dev/enabled": "false" } }),
      ],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b")],
      ingress: ["192.168.1.11"],
    },
    {
      name: "drops a node outside the Service's pool, while its lb-pod is still Ready",
      pool: "edge",
      nodes: [
        node("a", { addresses: [internal("192.168.1.11")], labels: { "berth.dev/pool": "edge" } }),
        node("b", { addresses: [internal("192.168.1.12")], labels: { "berth.dev/pool": "core" } }),
      ],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b")],
      ingress: ["192.168.1.11"],
    },
    {
      name: "drops a node being deleted, while its lb-pod is still Ready",
      nodes: [node("a", { addresses: [internal("192.168.1.11")] }), node("b", { addresses: [internal("192.168.1.12")], deleting: true })],
      pods: [lbPod("p-a", "a"), lbPod("p-b", "b")],
      ingress: ["192.168.1.11"],
    },
    {
      name: "says the kubelet rejected a node's lb-pod (SysctlForbidden), with the kubelet's message",
      nodes: [node("a", { addresses: [internal("192.168.1.11")] })],
      pods: [rejected("p-a", "a")],
      ingress: [],
      perNode: [{
        node: "a", included: false, sysctlForbidden: REJECTION,
        reason: `lb-pod p-a was rejected by the kubelet (SysctlForbidden: ${REJECTION})`,
      }],
    },
    {
      name: "a rejected pod next to a Running one is not a rejection (the kubelet admitted the newer pod)",
      nodes: [node("a", { addresses: [internal("192.168.1.11")] })],
      pods: [rejected("p-a", "a"), pod("p-a2", { node: "a", ready: false, phase: "Running", labels: lbLabels })],
      ingress: [],
      perNode: [{ node: "a", included: false, reason: "lb-pod p-a, p-a2 is not Ready" }],
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const status = computeStatus({
        service: row.svc ?? service(), serviceConfig: row.pool !== undefined ? { nodePool: row.pool } : {},
        pods: row.pods, nodes: row.nodes, endpointSlices: row.slices ?? [],
      });
      assert.deepEqual(status.ingress, row.ingress.map((ip) => ({ ip, ipMode: "VIP" })));
      if (row.perNode) assert.deepEqual(status.perNode, row.perNode);
    });
  }

  it("gives the same status whatever order nodes, pods and slices come in", () => {
    const nodes = [1, 2, 3, 4].map((i) => node(`n${i}`, { addresses: [internal(`192.168.1.${i}`), internal(`fd00::${i}`)] }));
    const pods = nodes.map((n, i) => lbPod(`p${i}`, n.metadata?.name as string, { ready: i !== 2 }));
    const svc = dual(["IPv4", "IPv6"]);
    const forward = computeStatus({ service: svc, serviceConfig: {}, nodes, pods, endpointSlices: [] });
    const backward = computeStatus({ service: svc, serviceConfig: {}, nodes: [...nodes].reverse(), pods: [...pods].reverse(), endpointSlices: [] });
    assert.deepEqual(backward, forward);
    assert.deepEqual(forward.ingress.map((i) => i.ip), ["192.168.1.1", "192.168.1.2", "192.168.1.4", "fd00::1", "fd00::2", "fd00::4"]);
  });
});

describe("controller: status change detection", () => {
  const rows: { name: string; a: Parameters<typeof statusEquals>[0]; b: Parameters<typeof statusEquals>[1]; equal: boolean }[] = [
    { name: "same IPs in the same order are equal", a: [{ ip: "1.1.1.1", ipMode: "VIP" }], b: [{ ip: "1.1.1.1", ipMode: "VIP" }], equal: true },
    { name: "an absent ipMode equals VIP (older servers drop the field: no patch loop)", a: [{ ip: "1.1.1.1", ipMode: "VIP" }], b: [{ ip: "1.1.1.1" }], equal: true },
    { name: "ipMode Proxy differs from VIP", a: [{ ip: "1.1.1.1", ipMode: "VIP" }], b: [{ ip: "1.1.1.1", ipMode: "Proxy" }], equal: false },
    { name: "order matters", a: [{ ip: "1.1.1.1" }, { ip: "2.2.2.2" }], b: [{ ip: "2.2.2.2" }, { ip: "1.1.1.1" }], equal: false },
    { name: "absent and empty lists are equal", a: undefined, b: [], equal: true },
    { name: "an added IP is a change", a: [{ ip: "1.1.1.1" }], b: [{ ip: "1.1.1.1" }, { ip: "2.2.2.2" }], equal: false },
    { name: "a hostname someone else wrote is a change", a: [{ ip: "1.1.1.1" }], b: [{ ip: "1.1.1.1", hostname: "lb.example" }], equal: false },
    { name: "ports someone else wrote are a change", a: [{ ip: "1.1.1.1" }], b: [{ ip: "1.1.1.1", ports: [{ port: 80, protocol: "TCP" }] }], equal: false },
  ];
  for (const row of rows) {
    it(row.name, () => {
      assert.equal(statusEquals(row.a, row.b), row.equal);
      assert.equal(statusEquals(row.b, row.a), row.equal);
    });
  }
});
