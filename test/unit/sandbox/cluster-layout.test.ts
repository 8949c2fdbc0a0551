import { strict as assert } from "node:assert";

import { UsageError } from "../../../src/lib/errors.js";
import type { CommandRunner } from "../../../src/lib/exec.js";
import { planLayout, podNamespaceName } from "../../../src/sandbox/cluster/layout.js";
import { hostRoutesInto, podIp } from "../../../src/sandbox/cluster/network.js";

describe("sandbox cluster layout", () => {
  it("plans a single-stack cluster: LAN 198.18.0.0/24, node i at .10+i, pod CIDR 10.42.i.0/24, client at .100", () => {
    assert.deepEqual(planLayout({ prefix: "bsb", nodes: 2, dualStack: false }), {
      prefix: "bsb",
      dualStack: false,
      lanNs: "bsb-lan",
      bridge: "lan0",
      lanCidrs: ["198.18.0.0/24"],
      nodes: [
        { name: "node-1", ns: "bsb-node-1", lanIps: ["198.18.0.11"], podCidrs: ["10.42.1.0/24"], podGatewayIps: ["10.42.1.1"] },
        { name: "node-2", ns: "bsb-node-2", lanIps: ["198.18.0.12"], podCidrs: ["10.42.2.0/24"], podGatewayIps: ["10.42.2.1"] },
      ],
      client: { ns: "bsb-client", lanIps: ["198.18.0.100"] },
      serviceCidrs: ["10.43.0.0/16"],
    });
  });

  it("adds the IPv6 addresses after the IPv4 ones when dual-stack, numbering in hex", () => {
    const layout = planLayout({ prefix: "bsb", nodes: 12, dualStack: true });
    assert.deepEqual(layout.lanCidrs, ["198.18.0.0/24", "fd42:b5e7:7a00::/64"]);
    assert.deepEqual(layout.serviceCidrs, ["10.43.0.0/16", "fd00:43::/112"]);
    assert.deepEqual(layout.client.lanIps, ["198.18.0.100", "fd42:b5e7:7a00::100"]);
    assert.deepEqual(layout.nodes[0], {
      name: "node-1", ns: "bsb-node-1",
      lanIps: ["198.18.0.11", "fd42:b5e7:7a00::b"],
      podCidrs: ["10.42.1.0/24", "fd42:b5e7:7a42:1::/64"],
      podGatewayIps: ["10.42.1.1", "fd42:b5e7:7a42:1::1"],
    });
    assert.deepEqual(layout.nodes[11]?.lanIps, ["198.18.0.22", "fd42:b5e7:7a00::16"]);
    assert.deepEqual(layout.nodes[11]?.podCidrs, ["10.42.12.0/24", "fd42:b5e7:7a42:c::/64"]);
  });

  it("keeps every namespace name within 30 characters at the longest prefix", () => {
    const layout = planLayout({ prefix: "a2345678901234567", nodes: 20, dualStack: true });
    const names = [layout.lanNs, layout.client.ns, ...layout.nodes.map((n) => n.ns), podNamespaceName(layout.prefix, "0123456789abcdef")];
    for (const name of names) assert.ok(name.length <= 30, `${name} is ${name.length} characters`);
    assert.equal(podNamespaceName("bsb", "3F2504E0-4F89-11D3-9A0C-0305E82C3301"), "bsb-pod-3f2504e0");
  });

  it("refuses node counts outside 1..20 and prefixes that could match another sandbox's namespaces", () => {
    for (const nodes of [0, 21, 1.5]) {
      assert.throws(() => planLayout({ prefix: "bsb", nodes, dualStack: false }), UsageError);
    }
    for (const prefix of ["", "bsb-x", "Bsb", "1bsb", "a23456789012345678", "b sb"]) {
      assert.throws(() => planLayout({ prefix, nodes: 1, dualStack: false }), UsageError, prefix);
    }
  });
});

describe("sandbox network address helpers", () => {
  it("numbers pod hosts inside the pod CIDR in both families", () => {
    assert.equal(podIp("10.42.3.0/24", 2), "10.42.3.2");
    assert.equal(podIp("10.42.3.0/24", 254), "10.42.3.254");
    assert.equal(podIp("fd42:b5e7:7a42:3::/64", 2), "fd42:b5e7:7a42:3::2");
    assert.equal(podIp("fd42:b5e7:7a42:3::/64", 254), "fd42:b5e7:7a42:3::fe");
  });

  it("finds host routes that overlap the LAN prefixes, ignoring default routes and other families", async () => {
    const tables: Record<string, string> = {
      "-4": [
        "default via 10.0.0.1 dev eth0",
        "10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.5",
        "198.18.0.0/15 via 10.0.0.9 dev eth0",
        "local 198.18.0.7 dev lo table local proto kernel scope host src 198.18.0.7",
        "198.19.5.0/24 dev eth1",
      ].join("\n"),
      "-6": ["default via fe80::1 dev eth0", "fd42:b5e7:7a00:0:1::/80 dev eth2", "fd42:b5e7:7a01::/64 dev eth3"].join("\n"),
    };
    const runner: CommandRunner = {
      run: async (file, args) => ({ command: `${file} ${args.join(" ")}`, exitCode: 0, stdout: tables[args[0] ?? ""] ?? "", stderr: "" }),
    };
    assert.deepEqual(await hostRoutesInto(["198.18.0.0/24", "fd42:b5e7:7a00::/64"], runner), [
      "198.18.0.0/24: 198.18.0.0/15 via 10.0.0.9 dev eth0",
      "198.18.0.0/24: local 198.18.0.7 dev lo table local proto kernel scope host src 198.18.0.7",
      "fd42:b5e7:7a00::/64: fd42:b5e7:7a00:0:1::/80 dev eth2",
    ]);
  });
});
