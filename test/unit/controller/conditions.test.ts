import { strict as assert } from "node:assert";

import { decideConditions, describeSysctlRejection, truncate, type ConditionInputs } from "../../../src/controller/conditions.js";
import type { ConflictReport } from "../../../src/controller/conflicts.js";
import { ownership, parseServiceConfig } from "../../../src/controller/service-config.js";
import type { ComputedStatus } from "../../../src/controller/status.js";
import { defaultControllerConfig, type V1Condition, type V1Service } from "../../../src/controller/types.js";
import { node, service } from "./fixtures.js";

const config = defaultControllerConfig();
const now = new Date("2026-11-24T08:00:00.750Z");
const nowSeconds = new Date("2026-11-24T08:00:00Z");
const earlier = new Date("2026-11-24T07:00:00Z");

const serving: ComputedStatus = {
  ingress: [{ ip: "192.168.1.11", ipMode: "VIP" }],
  perNode: [{ node: "a", included: true, reason: "serving on 192.168.1.11" }],
};
const partly: ComputedStatus = {
  ingress: [{ ip: "192.168.1.11", ipMode: "VIP" }],
  perNode: [
    { node: "a", included: true, reason: "serving on 192.168.1.11" },
    { node: "b", included: false, reason: "lb-pod p-b is not Ready" },
    { node: "c", included: false, reason: "no lb-pod of this Service on the node" },
  ],
};
const waiting: ComputedStatus = { ingress: [], perNode: [{ node: "a", included: false, reason: "lb-pod p-a is not Ready" }] };
const REJECTED = 'Pod was rejected: forbidden sysctl: "net.ipv6.conf.all.forwarding" not allowlisted';
const rejectedOn = (...nodes: string[]): ComputedStatus => ({
  ingress: [],
  perNode: nodes.map((n) => ({ node: n, included: false, reason: `lb-pod p-${n} was rejected by the kubelet (SysctlForbidden: ${REJECTED})`, sysctlForbidden: REJECTED })),
});
const FLAG = /--allowed-unsafe-sysctls=net\.ipv6\.conf\.all\.forwarding \(kubeadm: allowedUnsafeSysctls in the KubeletConfiguration; k3s: --kubelet-arg=allowed-unsafe-sysctls=net\.ipv6\.conf\.all\.forwarding\)/;
const noConflict: ConflictReport = { conflicts: [], competingServices: [] };
const conflictOnB: ConflictReport = {
  conflicts: [{ node: "b", protocol: "tcp", port: 80, holder: { kind: "pod", pod: "infra/nginx" }, description: "TCP/80 on node b: held by pod infra/nginx" }],
  competingServices: [],
};
const conflictOnA: ConflictReport = {
  conflicts: [{ node: "a", protocol: "tcp", port: 80, holder: { kind: "service", service: "shop/other", pod: "berth-system/svclb-other-1" }, description: "TCP/80 on node a: held by Service shop/other (pod berth-system/svclb-other-1)" }],
  competingServices: [{ service: "shop/other", ports: ["TCP/80"] }],
};

function cond(type: string, status: string, reason: string, message = "m", at = earlier): V1Condition {
  return { type, status, reason, message, lastTransitionTime: at };
}

/** A Service carrying the given previous conditions and ingress. */
function withStatus(svc: V1Service, conditions: V1Condition[], ingress: string[] = []): V1Service {
  return { ...svc, status: { conditions, loadBalancer: { ingress: ingress.map((ip) => ({ ip, ipMode: "VIP" })) } } };
}

function inputs(svc: V1Service, extra: Partial<ConditionInputs> = {}): ConditionInputs {
  return { service: svc, now, ownership: ownership(svc, config), config: parseServiceConfig(svc, config), nodes: [node("a"), node("b"), node("c")], ...extra };
}

describe("controller: conditions and Events", () => {
  const rows: {
    name: string;
    in: ConditionInputs;
    want: { type: string; status: string; reason: string; message?: RegExp }[];
    events: { type: string; reason: string; message?: RegExp }[];
    changed?: boolean;
  }[] = [
    {
      name: "a serving Service is Ready (Serving) with no conflict, and its first address is announced",
      in: inputs(service(), { status: serving, conflicts: { conflicts: [], competingServices: [] } }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "True", reason: "Serving", message: /^Serving on 192\.168\.1\.11\.$/ },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [{ type: "Normal", reason: "UpdatedLoadBalancer", message: /^Updated LoadBalancer with new IPs: \[\] -> \[192\.168\.1\.11\]$/ }],
    },
    {
      name: "nothing changed: no Event, no write",
      in: inputs(withStatus(service(), [
        cond("berth.dev/LoadBalancerReady", "True", "Serving", "Serving on 192.168.1.11."),
        cond("berth.dev/PortConflict", "False", "NoConflict", "No port this Service needs is held by anything else."),
      ], ["192.168.1.11"]), { status: serving, conflicts: { conflicts: [], competingServices: [] } }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "True", reason: "Serving" },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [],
      changed: false,
    },
    {
      name: "some nodes serve and others cannot: PartiallyServing names them (nodes without an lb-pod are not trouble)",
      in: inputs(service(), { status: partly, conflicts: { conflicts: [], competingServices: [] } }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "True", reason: "PartiallyServing", message: /^Serving on 192\.168\.1\.11; not on b \(lb-pod p-b is not Ready\)\.$/ },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [{ type: "Normal", reason: "UpdatedLoadBalancer" }],
    },
    {
      name: "a conflict on one node: Warning naming the holder; the Service still gets the nodes that work",
      in: inputs(withStatus(service(), [], ["192.168.1.11"]), {
        status: { ...partly, perNode: [partly.perNode[0]!, { node: "b", included: false, reason: "lb-pod p-b is not Ready" }] },
        conflicts: conflictOnB,
      }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "True", reason: "PartiallyServing", message: /not on b \(port conflict\)/ },
        { type: "berth.dev/PortConflict", status: "True", reason: "PortInUse", message: /^TCP\/80 on node b: held by pod infra\/nginx\. Those nodes cannot serve this Service: free the port there, or change this Service's port\.$/ },
      ],
      events: [{ type: "Warning", reason: "PortConflict", message: /held by pod infra\/nginx/ }],
    },
    {
      name: "the same conflict again: no second Event",
      in: inputs(withStatus(service(), [
        cond("berth.dev/PortConflict", "True", "PortInUse", "TCP/80 on node b: held by pod infra/nginx. Those nodes cannot serve this Service: free the port there, or change this Service's port."),
      ], ["192.168.1.11"]), { status: serving, conflicts: conflictOnB }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "True", reason: "Serving" },
        { type: "berth.dev/PortConflict", status: "True", reason: "PortInUse" },
      ],
      events: [],
    },
    {
      name: "a conflict resolved: Normal PortConflictResolved",
      in: inputs(withStatus(service(), [cond("berth.dev/PortConflict", "True", "PortInUse")], ["192.168.1.11"]), { status: serving, conflicts: { conflicts: [], competingServices: [] } }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "True", reason: "Serving" },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [{ type: "Normal", reason: "PortConflictResolved" }],
    },
    {
      name: "every node conflicted: Ready False with reason PortConflict, naming the other Service",
      in: inputs(service(), { status: waiting, conflicts: conflictOnA }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "False", reason: "PortConflict" },
        { type: "berth.dev/PortConflict", status: "True", reason: "PortInUse", message: /held by Service shop\/other/ },
      ],
      events: [{ type: "Warning", reason: "PortConflict" }],
    },
    {
      name: "no conflict yet but another Service wants the same port: said in the condition, no Warning",
      in: inputs(service(), { status: serving, conflicts: { conflicts: [], competingServices: conflictOnA.competingServices } }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "True", reason: "Serving" },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict", message: /shop\/other \(TCP\/80\) ask for the same ports/ },
      ],
      events: [{ type: "Normal", reason: "UpdatedLoadBalancer" }],
    },
    {
      name: "pods not Ready yet: WaitingForPods, and no Warning (that is normal at creation)",
      in: inputs(service(), { status: waiting, conflicts: { conflicts: [], competingServices: [] } }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "False", reason: "WaitingForPods", message: /^Waiting for lb-pods to become Ready: a \(lb-pod p-a is not Ready\)\.$/ },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [],
    },
    {
      name: "the last node stops serving: Warning UnavailableLoadBalancer (k3s's Event, conventional spelling)",
      in: inputs(withStatus(service(), [cond("berth.dev/LoadBalancerReady", "True", "Serving")], ["192.168.1.11"]), { status: waiting, conflicts: { conflicts: [], competingServices: [] } }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "False", reason: "WaitingForPods" },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [{ type: "Warning", reason: "UnavailableLoadBalancer", message: /^There are no available nodes for LoadBalancer: Waiting for lb-pods/ }],
    },
    {
      name: "no node may serve: NoEligibleNodes with each node's reason, and a Warning",
      in: inputs(service({ labels: { "berth.dev/pool": "edge" } }), {
        nodes: [node("a"), node("b", { labels: { "berth.dev/pool": "core" } })],
        status: { ingress: [], perNode: [] },
        conflicts: { conflicts: [], competingServices: [] },
      }),
      want: [
        {
          type: "berth.dev/LoadBalancerReady", status: "False", reason: "NoEligibleNodes",
          message: /^No node may serve this Service: a \(not in node pool edge \(no berth\.dev\/pool label\)\), b \(in node pool core, not edge\)\. Check the node labels and this Service's pool\.$/,
        },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [{ type: "Warning", reason: "UnavailableLoadBalancer", message: /No node may serve/ }],
    },
    {
      name: "Local with no ready endpoint on any serving node: NoReadyEndpoints",
      in: inputs(service({ spec: { externalTrafficPolicy: "Local", ports: [{ protocol: "TCP", port: 80, nodePort: 30080 }] } }), {
        status: { ingress: [], perNode: [{ node: "a", included: false, reason: "no ready endpoint of the Service on the node (externalTrafficPolicy Local)" }] },
        conflicts: { conflicts: [], competingServices: [] },
      }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "False", reason: "NoReadyEndpoints" },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [{ type: "Warning", reason: "UnavailableLoadBalancer", message: /Local/ }],
    },
    {
      name: "Local nodes without endpoints are not trouble while others serve",
      in: inputs(service({ spec: { externalTrafficPolicy: "Local", ports: [{ protocol: "TCP", port: 80, nodePort: 30080 }] } }), {
        status: { ingress: serving.ingress, perNode: [serving.perNode[0]!, { node: "b", included: false, reason: "no ready endpoint of the Service on the node (externalTrafficPolicy Local)" }] },
        conflicts: { conflicts: [], competingServices: [] },
      }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "True", reason: "Serving" },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [{ type: "Normal", reason: "UpdatedLoadBalancer" }],
    },
    {
      name: "bad configuration: Ready False naming every field, Warning once, conflict condition dropped",
      in: inputs(withStatus(service({ annotations: { "berth.dev/mode": "bgp", "berth.dev/priority-class": "A" } }), [cond("berth.dev/PortConflict", "False", "NoConflict")])),
      want: [{
        type: "berth.dev/LoadBalancerReady", status: "False", reason: "InvalidConfiguration",
        message: /^metadata\.annotations\[berth\.dev\/mode\]: "bgp" is not a mode.*; metadata\.annotations\[berth\.dev\/priority-class\]: "A" is not a valid PriorityClass name.*Nothing is applied for this Service until this is fixed/,
      }],
      events: [{ type: "Warning", reason: "InvalidConfiguration", message: /berth\.dev\/mode/ }],
    },
    {
      name: "the same bad configuration again: no second Warning",
      in: inputs(withStatus(service({ annotations: { "berth.dev/mode": "bgp" } }), [cond("berth.dev/LoadBalancerReady", "False", "InvalidConfiguration",
        'metadata.annotations[berth.dev/mode]: "bgp" is not a mode; use "hostport" (the default) or "vip". Nothing is applied for this Service until this is fixed; other Services are not affected.')])),
      want: [{ type: "berth.dev/LoadBalancerReady", status: "False", reason: "InvalidConfiguration" }],
      events: [],
      changed: false,
    },
    {
      name: "a different bad field: a new Warning",
      in: inputs(withStatus(service({ annotations: { "berth.dev/mode": "x" } }), [cond("berth.dev/LoadBalancerReady", "False", "InvalidConfiguration", "old problem")])),
      want: [{ type: "berth.dev/LoadBalancerReady", status: "False", reason: "InvalidConfiguration" }],
      events: [{ type: "Warning", reason: "InvalidConfiguration", message: /"x" is not a mode/ }],
    },
    {
      name: "configuration fixed: Normal ConfigurationAccepted",
      in: inputs(withStatus(service(), [cond("berth.dev/LoadBalancerReady", "False", "InvalidConfiguration")]), { status: waiting, conflicts: { conflicts: [], competingServices: [] } }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "False", reason: "WaitingForPods" },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [{ type: "Normal", reason: "ConfigurationAccepted" }],
    },
    {
      name: "VIP mode: Warning and condition saying it is not available in this version, nothing else",
      in: inputs(service({ annotations: { "berth.dev/mode": "vip" } })),
      want: [{ type: "berth.dev/LoadBalancerReady", status: "False", reason: "VIPModeUnavailable", message: /vip is not available in this version/ }],
      events: [{ type: "Warning", reason: "VIPModeUnavailable" }],
    },
    {
      name: "kubelets rejecting the lb-pods (SysctlForbidden): Ready=False naming the nodes and the kubelet flag, one Warning",
      in: inputs(service(), { status: rejectedOn("a", "b"), conflicts: noConflict }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "False", reason: "SysctlForbidden", message: /^The kubelet on nodes a, b rejects this Service's lb-pods/ },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [{ type: "Warning", reason: "SysctlForbidden", message: FLAG }],
    },
    {
      name: "SysctlForbidden: another node rejecting too updates the condition, and adds no Event",
      in: inputs(withStatus(service(), [
        cond("berth.dev/LoadBalancerReady", "False", "SysctlForbidden", "The kubelet on node a rejects this Service's lb-pods (...)"),
        cond("berth.dev/PortConflict", "False", "NoConflict", "No port this Service needs is held by anything else."),
      ]), { status: rejectedOn("a", "b"), conflicts: noConflict }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "False", reason: "SysctlForbidden", message: /nodes a, b/ },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [],
      changed: true,
    },
    {
      name: "SysctlForbidden: while a rejected pod's replacement waits for the kubelet, the condition stays as it is",
      in: inputs(withStatus(service(), [
        cond("berth.dev/LoadBalancerReady", "False", "SysctlForbidden", "The kubelet on node a rejects this Service's lb-pods (x)"),
        cond("berth.dev/PortConflict", "False", "NoConflict", "No port this Service needs is held by anything else."),
      ]), {
        status: { ingress: [], perNode: [
          { node: "a", included: false, reason: "lb-pod p-a2 is not Ready", notStarted: true },
          { node: "b", included: false, reason: "no lb-pod of this Service on the node", notStarted: true },
        ] },
        conflicts: noConflict,
      }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "False", reason: "SysctlForbidden", message: /^The kubelet on node a rejects this Service's lb-pods \(x\)$/ },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [],
      changed: false,
    },
    {
      name: "SysctlForbidden on some nodes only: PartiallyServing, the fix first, and one Warning",
      in: inputs(service(), {
        status: { ingress: serving.ingress, perNode: [...serving.perNode, ...rejectedOn("b").perNode] },
        conflicts: noConflict,
      }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "True", reason: "PartiallyServing", message: /^Serving on 192\.168\.1\.11\. The kubelet on node b rejects/ },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [{ type: "Normal", reason: "UpdatedLoadBalancer" }, { type: "Warning", reason: "SysctlForbidden", message: FLAG }],
    },
    {
      name: "a node that may not serve (labelled for exclusion) is not trouble: Serving, not PartiallyServing",
      in: inputs(service(), {
        status: { ingress: serving.ingress, perNode: [...serving.perNode, { node: "b", included: false, ineligible: true, reason: "node may not serve this Service: labelled x" }] },
        conflicts: noConflict,
      }),
      want: [
        { type: "berth.dev/LoadBalancerReady", status: "True", reason: "Serving" },
        { type: "berth.dev/PortConflict", status: "False", reason: "NoConflict" },
      ],
      events: [{ type: "Normal", reason: "UpdatedLoadBalancer" }],
    },
    {
      name: "not ours any more: our conditions are removed, others' kept, no Event",
      in: {
        service: withStatus(service({ spec: { type: "ClusterIP" } }), [cond("berth.dev/LoadBalancerReady", "True", "Serving"), cond("example.com/Other", "True", "X")]),
        now, ownership: ownership(service({ spec: { type: "ClusterIP" } }), config),
      },
      want: [{ type: "example.com/Other", status: "True", reason: "X" }],
      events: [],
      changed: true,
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const decision = decideConditions(row.in);
      assert.deepEqual(decision.conditions.map((c) => ({ type: c.type, status: c.status, reason: c.reason })),
        row.want.map((w) => ({ type: w.type, status: w.status, reason: w.reason })));
      row.want.forEach((w, i) => { if (w.message) assert.match(decision.conditions[i]!.message, w.message); });
      assert.deepEqual(decision.events.map((e) => ({ type: e.type, reason: e.reason })), row.events.map((e) => ({ type: e.type, reason: e.reason })));
      row.events.forEach((e, i) => { if (e.message) assert.match(decision.events[i]!.message, e.message); });
      if (row.changed !== undefined) assert.equal(decision.conditionsChanged, row.changed);
    });
  }

  it("keeps the transition time while the status stays, and sets it when the status flips; records the generation", () => {
    const svc = withStatus({ ...service(), metadata: { ...service().metadata, generation: 7 } }, [
      cond("berth.dev/LoadBalancerReady", "True", "Serving", "Serving on 192.168.1.9."),
      cond("berth.dev/PortConflict", "True", "PortInUse"),
    ], ["192.168.1.9"]);
    const decision = decideConditions(inputs(svc, { status: serving, conflicts: { conflicts: [], competingServices: [] } }));
    const byType = Object.fromEntries(decision.conditions.map((c) => [c.type, c]));
    assert.equal(byType["berth.dev/LoadBalancerReady"]?.lastTransitionTime, earlier);
    assert.equal(byType["berth.dev/LoadBalancerReady"]?.message, "Serving on 192.168.1.11.");
    assert.deepEqual(byType["berth.dev/PortConflict"]?.lastTransitionTime, nowSeconds, "whole seconds, as metav1.Time stores them");
    assert.equal(byType["berth.dev/LoadBalancerReady"]?.observedGeneration, 7);
    assert.equal(decision.conditionsChanged, true);
  });

  it("names a few nodes and a count, so the kubelet flag survives on a cluster of any size", () => {
    const nodes = Array.from({ length: 200 }, (_, i) => `worker-node-with-a-long-name-${i}`);
    const message = describeSysctlRejection(rejectedOn(...nodes).perNode) ?? "";
    assert.match(message, /and 195 more/);
    assert.match(truncate(message), FLAG);
  });

  it("cuts long messages to fit an Event (1 KiB)", () => {
    const many: ConflictReport = {
      conflicts: Array.from({ length: 200 }, (_, i) => ({
        node: `node-${i}`, protocol: "tcp" as const, port: 80, holder: { kind: "pod" as const, pod: "x/y" }, description: `TCP/80 on node node-${i}: held by pod x/y`,
      })),
      competingServices: [],
    };
    const decision = decideConditions(inputs(service(), { status: serving, conflicts: many }));
    for (const text of [...decision.conditions.map((c) => c.message), ...decision.events.map((e) => e.message)]) {
      assert.ok(text.length <= 1000, `${text.length} characters`);
    }
    assert.match(truncate("x".repeat(2000)), /… \(truncated\)$/);
  });
});
