// `berth convert metallb` (src/convert/): MetalLB's custom resources and its older `config` ConfigMap to berth
// AddressPools; BGP named, never silently dropped; bad input one error naming the object and field.
import { strict as assert } from "node:assert";
import * as yaml from "js-yaml";

import { runConvertMetallb, type ConvertIo } from "../../../src/convert/command.js";
import { convertMetallb } from "../../../src/convert/metallb.js";
import { UsageError } from "../../../src/lib/errors.js";

const pool = (name: string, spec: string, labels = ""): string =>
  `apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: ${name}, namespace: metallb-system${labels ? `, labels: ${labels}` : ""}}\nspec: ${spec}\n`;
const l2 = (name: string, spec: string): string =>
  `apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: ${name}, namespace: metallb-system}\nspec: ${spec}\n`;
const stream = (...docs: string[]): string => docs.map((d) => `---\n${d}`).join("");

describe("berth convert metallb: custom resources", () => {
  const rows: { name: string; input: string; pools: unknown[]; dropped?: RegExp[]; notes?: RegExp[] }[] = [
    {
      name: "a pool with an L2Advertisement for every pool (the common guide's setup)",
      input: stream(pool("first-pool", "{addresses: [192.168.1.240-192.168.1.250]}"), l2("example", "{}")),
      pools: [{ name: "first-pool", spec: { addresses: ["192.168.1.240-192.168.1.250"] } }],
    },
    {
      name: "autoAssign, avoidBuggyIPs and serviceAllocation carried over",
      input: stream(pool("p", "{addresses: [10.0.0.0/24], autoAssign: false, avoidBuggyIPs: true, serviceAllocation: {namespaces: [a], serviceSelectors: [{matchLabels: {x: y}}]}}"), l2("all", "{ipAddressPools: [p]}")),
      pools: [{ name: "p", spec: { addresses: ["10.0.0.0/24"], autoAssign: false, avoidBuggyIPs: true, serviceAllocation: { namespaces: ["a"], serviceSelectors: [{ matchLabels: { x: "y" } }] } } }],
    },
    {
      name: "MetalLB's priority (lowest first, unset last) kept in order",
      input: stream(pool("a", "{addresses: [10.0.0.0/30]}"), pool("b", "{addresses: [10.0.1.0/30], serviceAllocation: {priority: 20}}"),
        pool("c", "{addresses: [10.0.2.0/30], serviceAllocation: {priority: 10}}"), l2("all", "{}")),
      pools: [
        { name: "a", spec: { addresses: ["10.0.0.0/30"], priority: 21 } },
        { name: "b", spec: { addresses: ["10.0.1.0/30"], priority: 20 } },
        { name: "c", spec: { addresses: ["10.0.2.0/30"], priority: 10 } },
      ],
    },
    {
      name: "an L2Advertisement's nodes and interfaces become the pool's announce, by name or by pool selector",
      input: stream(pool("lan", "{addresses: [10.0.0.0/30]}", "{zone: a}"), pool("other", "{addresses: [10.0.1.0/30]}"),
        l2("byname", "{ipAddressPools: [other], interfaces: [eth1]}"),
        l2("bylabel", "{ipAddressPoolSelectors: [{matchLabels: {zone: a}}], nodeSelectors: [{matchLabels: {rack: r1}}], interfaces: [eth0]}")),
      pools: [
        { name: "lan", labels: { zone: "a" }, spec: { addresses: ["10.0.0.0/30"], announce: { nodeSelectors: [{ matchLabels: { rack: "r1" } }], interfaces: ["eth0"] } } },
        { name: "other", spec: { addresses: ["10.0.1.0/30"], announce: { interfaces: ["eth1"] } } },
      ],
    },
    {
      name: "two advertisements: one for every node makes the pool's nodes unrestricted",
      input: stream(pool("lan", "{addresses: [10.0.0.0/30]}"), l2("some", "{nodeSelectors: [{matchLabels: {rack: r1}}]}"), l2("every", "{ipAddressPools: [lan]}")),
      pools: [{ name: "lan", spec: { addresses: ["10.0.0.0/30"] } }],
    },
    {
      name: "BGP objects and a BGP-only pool are named as not carried over",
      input: stream(pool("l2pool", "{addresses: [10.0.0.0/30]}"), pool("bgppool", "{addresses: [10.0.9.0/30]}"), l2("a", "{ipAddressPools: [l2pool]}"),
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: adv, namespace: metallb-system}\nspec: {ipAddressPools: [bgppool]}\n",
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: router, namespace: metallb-system}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1}\n"),
      pools: [{ name: "l2pool", spec: { addresses: ["10.0.0.0/30"] } }],
      dropped: [/BGPAdvertisement metallb-system\/adv: BGP/, /BGPPeer metallb-system\/router: BGP/, /IPAddressPool metallb-system\/bgppool: announced by BGP only/],
    },
    {
      name: "a pool no advertisement selects is converted, with a note",
      input: stream(pool("quiet", "{addresses: [10.0.0.0/30]}")),
      pools: [{ name: "quiet", spec: { addresses: ["10.0.0.0/30"] } }],
      notes: [/no L2Advertisement selects it, so MetalLB gives out its addresses without announcing them/],
    },
    {
      name: "a kubectl List of objects, and objects that are not MetalLB's left out by name",
      input: yaml.dump({ apiVersion: "v1", kind: "List", items: [yaml.load(pool("p", "{addresses: [10.0.0.0/30]}")), yaml.load(l2("a", "{}")), { apiVersion: "v1", kind: "Namespace", metadata: { name: "metallb-system" } }] }),
      pools: [{ name: "p", spec: { addresses: ["10.0.0.0/30"] } }],
      dropped: [/Namespace metallb-system: not MetalLB configuration/],
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const result = convertMetallb(row.input);
      assert.deepEqual(result.pools, row.pools.map((p) => {
        const { name, labels, spec } = p as { name: string; labels?: Record<string, string>; spec: unknown };
        return { apiVersion: "berth.dev/v1alpha1", kind: "AddressPool", metadata: { name, ...(labels ? { labels } : {}) }, spec };
      }));
      assert.equal(result.dropped.length, (row.dropped ?? []).length, result.dropped.join("\n"));
      for (const re of row.dropped ?? []) assert.ok(result.dropped.some((d) => re.test(d)), `${re} in ${result.dropped.join("\n")}`);
      assert.equal(result.notes.length, (row.notes ?? []).length, result.notes.join("\n"));
      for (const re of row.notes ?? []) assert.ok(result.notes.some((d) => re.test(d)), `${re} in ${result.notes.join("\n")}`);
    });
  }
});

describe("berth convert metallb: the config ConfigMap (MetalLB before 0.13)", () => {
  const configMap = (config: string): string => yaml.dump({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "config", namespace: "metallb-system" }, data: { config } });

  it("converts layer2 address-pools and names bgp pools and peers as not carried over", () => {
    const result = convertMetallb(configMap([
      "peers:", "- peer-address: 10.0.0.1", "  peer-asn: 64501", "  my-asn: 64500",
      "address-pools:",
      "- name: default", "  protocol: layer2", "  addresses: [192.168.1.240/28]",
      "- name: cheap", "  protocol: layer2", "  auto-assign: false", "  avoid-buggy-ips: true", "  addresses: [10.0.0.0/24, fd00::/120]",
      "- name: routed", "  protocol: bgp", "  addresses: [198.51.100.0/24]",
    ].join("\n")));
    assert.deepEqual(result.pools.map((p) => [p.metadata?.name, p.spec]), [
      ["default", { addresses: ["192.168.1.240/28"] }],
      ["cheap", { addresses: ["10.0.0.0/24", "fd00::/120"], autoAssign: false, avoidBuggyIPs: true }],
    ]);
    assert.equal(result.dropped.length, 2, result.dropped.join("\n"));
    assert.match(result.dropped.join("\n"), /peers is BGP/);
    assert.match(result.dropped.join("\n"), /address-pools\[2\] \(routed\): protocol bgp is not carried over/);
  });

  it("refuses a pool whose protocol is neither layer2 nor bgp", () => {
    assert.throws(() => convertMetallb(configMap("address-pools:\n- name: x\n  protocol: l2\n  addresses: [10.0.0.0/30]\n")), /address-pools\[0\]\.protocol is "l2", not layer2 or bgp/);
  });
});

describe("berth convert metallb: bad input", () => {
  const rows: { name: string; input: string; error: RegExp }[] = [
    { name: "not YAML", input: "kind: [", error: /not YAML/ },
    { name: "nothing", input: "", error: /holds no objects/ },
    { name: "no MetalLB object", input: "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", error: /no MetalLB configuration/ },
    { name: "a malformed address", input: pool("p", "{addresses: [10.0.0.300/24]}"), error: /IPAddressPool metallb-system\/p: spec.addresses\[0\].*10.0.0.300/ },
    { name: "addresses not a list", input: pool("p", "{addresses: 10.0.0.0/24}"), error: /IPAddressPool metallb-system\/p: spec.addresses must be a list of strings/ },
    { name: "two pools of one name", input: stream(pool("p", "{addresses: [10.0.0.0/30]}"), pool("p", "{addresses: [10.0.1.0/30]}")), error: /a second pool named p/ },
    { name: "autoAssign not a boolean", input: pool("p", "{addresses: [10.0.0.0/30], autoAssign: 'no'}"), error: /spec.autoAssign must be true or false/ },
  ];
  for (const row of rows) {
    it(row.name, () => assert.throws(() => convertMetallb(row.input), row.error));
  }
});

describe("berth convert metallb: the command", () => {
  const io = (input: Record<string, string>): ConvertIo & { stdout: string; stderr: string } => {
    const r = {
      stdout: "", stderr: "",
      readStdin: () => input["-"] ?? "",
      readFile: (path: string) => {
        const text = input[path];
        if (text === undefined) throw Object.assign(new Error("no such file"), { code: "ENOENT" });
        return text;
      },
      out: (t: string) => void (r.stdout += t),
      err: (t: string) => void (r.stderr += t),
    };
    return r;
  };

  it("prints AddressPools YAML that reads back as the converted objects, and the BGP left out on stderr", async () => {
    const input = stream(pool("p", "{addresses: [10.0.0.0/30]}"), l2("a", "{}"),
      "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r, namespace: metallb-system}\nspec: {}\n");
    for (const file of ["-", "in.yaml", undefined]) {
      const fake = io({ "-": input, "in.yaml": input });
      await runConvertMetallb(file, fake);
      assert.deepEqual(yaml.loadAll(fake.stdout), [{ apiVersion: "berth.dev/v1alpha1", kind: "AddressPool", metadata: { name: "p" }, spec: { addresses: ["10.0.0.0/30"] } }]);
      assert.equal(fake.stderr, "berth convert: not carried over: BGPPeer metallb-system/r: BGP is not carried over (berth announces in layer 2 only: ARP and NDP)\n");
    }
  });

  it("turns bad input and a missing file into one UsageError line (exit code 2)", async () => {
    await assert.rejects(runConvertMetallb("missing.yaml", io({})), (e: Error) => e instanceof UsageError && /cannot read missing.yaml: ENOENT/.test(e.message));
    await assert.rejects(runConvertMetallb("-", io({ "-": "kind: [" })), (e: Error) => e instanceof UsageError && /^convert metallb: the input is not YAML/.test(e.message));
  });
});
