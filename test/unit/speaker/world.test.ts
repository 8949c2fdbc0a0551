import { strict as assert } from "node:assert";
import type { V1EndpointSlice, V1Node, V1Service } from "@kubernetes/client-node";

import type { AddressPool } from "../../../src/lib/vip/address-pool.js";
import { buildWorld, type WorldInput } from "../../../src/speaker/world.js";

function vipService(name: string, opts: { ips?: string[]; pool?: string; mode?: string; ipMode?: string; local?: boolean; cls?: string; type?: string } = {}): V1Service {
  return {
    metadata: {
      name, namespace: "default", uid: `uid-${name}`,
      annotations: {
        ...(opts.mode !== "" ? { "berth.dev/mode": opts.mode ?? "vip" } : {}),
        ...(opts.pool !== "" ? { "berth.dev/allocated-from-pool": opts.pool ?? "lan" } : {}),
      },
    },
    spec: {
      type: opts.type ?? "LoadBalancer",
      ...(opts.cls ? { loadBalancerClass: opts.cls } : {}),
      ...(opts.local ? { externalTrafficPolicy: "Local" } : {}),
      ports: [{ port: 80 }],
    },
    status: { loadBalancer: { ingress: (opts.ips ?? ["10.0.0.5"]).map((ip) => ({ ip, ipMode: opts.ipMode ?? "VIP" })) } },
  };
}
function node(name: string, opts: { ready?: boolean; ip?: string; labels?: Record<string, string> } = {}): V1Node {
  return {
    metadata: { name, labels: opts.labels ?? {} },
    status: {
      conditions: [{ type: "Ready", status: opts.ready === false ? "False" : "True" }],
      addresses: [{ type: "Hostname", address: name }, { type: "InternalIP", address: opts.ip ?? "192.168.1.10" }, { type: "ExternalIP", address: "203.0.113.1" }],
    },
  };
}
function pool(name: string, valid: "True" | "False" | undefined, announce: NonNullable<AddressPool["spec"]>["announce"] = {}): AddressPool {
  return {
    metadata: { name },
    spec: { addresses: ["10.0.0.0/24"], announce },
    ...(valid ? { status: { conditions: [{ type: "Valid", status: valid, reason: "x", message: "", lastTransitionTime: "2026-12-07T00:00:00Z" }] } } : {}),
  };
}
function slice(service: string, endpoints: { node: string; ready?: boolean }[]): V1EndpointSlice {
  return {
    addressType: "IPv4",
    metadata: { name: `${service}-abc`, namespace: "default", labels: { "kubernetes.io/service-name": service } },
    endpoints: endpoints.map((e) => ({ addresses: ["10.42.0.9"], nodeName: e.node, ...(e.ready === undefined ? {} : { conditions: { ready: e.ready } }) })),
  };
}
const base: WorldInput = { services: [], nodes: [node("n1")], endpointSlices: [], pools: [pool("lan", "True")], claimUnsetClass: true };

describe("speaker: what it reads of the cluster", () => {
  const rows: { name: string; input: Partial<WorldInput>; vips: string[] }[] = [
    { name: "a VIP-mode Service with a VIP ingress address is announced", input: { services: [vipService("web")] }, vips: ["10.0.0.5 lan default/web"] },
    { name: "dual-stack: each address on its own", input: { services: [vipService("web", { ips: ["10.0.0.5", "fd00::5"] })] }, vips: ["10.0.0.5 lan default/web", "fd00::5 lan default/web"] },
    { name: "a shared address lists every Service using it", input: { services: [vipService("b"), vipService("a")] }, vips: ["10.0.0.5 lan default/a,default/b"] },
    { name: "hostPort mode (no annotation) is not announced", input: { services: [vipService("web", { mode: "" })] }, vips: [] },
    { name: "an ingress address without ipMode VIP (a hostPort node address) is not announced", input: { services: [vipService("web", { ipMode: "Proxy" })] }, vips: [] },
    { name: "without the allocated-from-pool annotation (allocation not finished) nothing is announced", input: { services: [vipService("web", { pool: "" })] }, vips: [] },
    { name: "another loadBalancerClass is not ours", input: { services: [vipService("web", { cls: "metallb" })] }, vips: [] },
    { name: "an unset class is not ours with --ignore-unset-class", input: { services: [vipService("web")], claimUnsetClass: false }, vips: [] },
    { name: "a Service no longer of type LoadBalancer is not announced", input: { services: [vipService("web", { type: "ClusterIP" })] }, vips: [] },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const { world } = buildWorld({ ...base, ...row.input });
      assert.deepEqual(world.vips.map((v) => `${v.ip} ${v.pool} ${v.services.map((s) => s.key).join(",")}`), row.vips);
    });
  }

  it("reads nodes: Ready, labels, InternalIP addresses only", () => {
    const { world } = buildWorld({ ...base, nodes: [node("n2", { ready: false, ip: "192.168.1.12", labels: { zone: "a" } }), node("n1")] });
    assert.deepEqual(world.nodes, [
      { name: "n1", labels: {}, ready: true, addresses: ["192.168.1.10"] },
      { name: "n2", labels: { zone: "a" }, ready: false, addresses: ["192.168.1.12"] },
    ]);
  });

  it("Local: the nodes with a ready endpoint (a missing ready condition counts as ready)", () => {
    const { world } = buildWorld({
      ...base,
      services: [vipService("web", { local: true })],
      endpointSlices: [slice("web", [{ node: "n1" }, { node: "n2", ready: false }, { node: "n3", ready: true }]), slice("other", [{ node: "n4" }])],
    });
    const service = world.vips[0]!.services[0]!;
    assert.equal(service.externalTrafficPolicy, "Local");
    assert.deepEqual([...service.endpointNodes].sort(), ["n1", "n3"]);
  });

  it("a valid pool's announce settings are used; a pool never valid is unknown", () => {
    const { world } = buildWorld({ ...base, pools: [pool("lan", "True", { interfaces: ["eth1"], nodeSelectors: [{ matchLabels: { zone: "a" } }] }), pool("new", undefined)] });
    assert.deepEqual(world.pools.get("lan"), { interfaces: ["eth1"], nodeSelectors: [{ matchLabels: { zone: "a" } }] });
    assert.equal(world.pools.has("new"), false);
  });

  it("a pool marked Invalid keeps announcing with its last valid settings", () => {
    const first = buildWorld({ ...base, pools: [pool("lan", "True", { interfaces: ["eth1"] })] });
    const broken = buildWorld({ ...base, pools: [pool("lan", "False", { interfaces: ["nonsense"] })] }, first.pools);
    assert.deepEqual(broken.world.pools.get("lan"), { interfaces: ["eth1"] });
  });
});
