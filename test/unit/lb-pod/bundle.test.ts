import { strict as assert } from "node:assert";

import { HOST_IP_PLACEHOLDER, JUMPS_MARKER, renderBundle, renderHostIpsBundle } from "../../../src/lb-pod/bundle.js";
import { planHash } from "../../../src/lb-pod/check.js";
import { planRules } from "../../../src/lb-pod/plan.js";
import type { LbPodConfig } from "../../../src/lib/rules/model.js";

const TCP80 = { protocol: "tcp" as const, port: 80, destinationPort: 30080 };
const UDP53 = { protocol: "udp" as const, port: 53, destinationPort: 30053 };

describe("lb-pod rules bundle", () => {
  const files = (bundle: Record<string, string>): string[] => Object.keys(bundle).sort();

  const cases: { name: string; bundle: () => Record<string, string>; files: string[]; families: string }[] = [
    {
      name: "ClusterIPs, IPv4 only: the ipv4 texts and one nftables table",
      bundle: () => renderBundle({ ports: [TCP80], destinationIps: ["10.43.0.10"], sourceRanges: [] }),
      files: ["families", "format", "iptables-ipv4.jumps", "iptables-ipv4.restore", "iptables-ipv4.want", "iptables.known",
        "nftables-ipv4.nft", "nftables-ipv4.want", "nftables.cleanup", "plan-hash", "ports", "udp-ipv4"],
      families: "ipv4",
    },
    {
      name: "ClusterIPs, dual-stack: both families' iptables texts, one nftables table for both",
      bundle: () => renderBundle({ ports: [TCP80, UDP53], destinationIps: ["fd00::10", "10.43.0.10"], sourceRanges: [] }),
      files: ["families", "format", "iptables-ipv4.jumps", "iptables-ipv4.restore", "iptables-ipv4.want", "iptables-ipv6.jumps",
        "iptables-ipv6.restore", "iptables-ipv6.want", "iptables.known", "nftables-ipv4-ipv6.nft", "nftables-ipv4-ipv6.want",
        "nftables.cleanup", "plan-hash", "ports", "udp-ipv4", "udp-ipv6"],
      families: "ipv4 ipv6",
    },
    {
      name: "node addresses, dual-stack: an nftables table for each set of families a node may have, no plan hash",
      bundle: () => renderHostIpsBundle({ ports: [TCP80], sourceRanges: [] }, ["ipv6", "ipv4"]),
      files: ["families", "format", "host-ips", "iptables-ipv4.jumps", "iptables-ipv4.restore", "iptables-ipv4.want",
        "iptables-ipv6.jumps", "iptables-ipv6.restore", "iptables-ipv6.want", "iptables.known", "nftables-ipv4-ipv6.nft",
        "nftables-ipv4-ipv6.want", "nftables-ipv4.nft", "nftables-ipv4.want", "nftables-ipv6.nft", "nftables-ipv6.want",
        "nftables.cleanup", "ports", "udp-ipv4", "udp-ipv6"],
      families: "ipv4 ipv6",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const bundle = c.bundle();
      assert.deepEqual(files(bundle), c.files);
      assert.equal(bundle.families, c.families);
      assert.equal(bundle.format, "1");
      for (const name of Object.keys(bundle)) assert.match(name, /^[-._a-zA-Z0-9]+$/, `${name} is not a valid ConfigMap key`);
    });
  }

  it("records the plan's hash, so `berth lb-pod check` accepts what the entrypoint applied", () => {
    const config: LbPodConfig = { ports: [TCP80], destinationIps: ["10.43.0.10"], sourceRanges: ["10.0.0.0/8"] };
    assert.equal(renderBundle(config)["plan-hash"], planHash(planRules(config)));
  });

  it("marks, in each table of the iptables text, where the jump changes go: after the chains are declared, before any is deleted", () => {
    const text = renderBundle({ ports: [TCP80], destinationIps: ["10.43.0.10"], sourceRanges: [] })["iptables-ipv4.restore"] ?? "";
    const lines = text.split("\n");
    for (const table of ["mangle", "nat"]) {
      const start = lines.indexOf(`*${table}`);
      const marker = lines.indexOf(`${JUMPS_MARKER} ${table}`);
      assert.ok(start >= 0 && marker > start, `${table}: marker after *${table}`);
      assert.ok(lines.slice(start + 1, marker).every((line) => line.startsWith(":")), `${table}: only declarations before the marker`);
      assert.ok(!lines[marker + 1]?.startsWith(":"), `${table}: no declaration after the marker`);
    }
    // Jumps come from the marker alone: the text itself adds or deletes none.
    assert.doesNotMatch(text, /^-[AID] (PREROUTING|POSTROUTING) /m);
  });

  it("puts the node-address placeholders wherever a destination stands, in every text, and no rendering address", () => {
    const bundle = renderHostIpsBundle({ ports: [TCP80], sourceRanges: [] }, ["ipv4", "ipv6"]);
    assert.match(bundle["iptables-ipv4.restore"] ?? "", new RegExp(`--to-destination ${HOST_IP_PLACEHOLDER.ipv4}:30080`));
    assert.match(bundle["iptables-ipv4.restore"] ?? "", new RegExp(`-d ${HOST_IP_PLACEHOLDER.ipv4}/32 `));
    assert.match(bundle["iptables-ipv6.want"] ?? "", new RegExp(`--to-destination \\[${HOST_IP_PLACEHOLDER.ipv6}\\]:30080`));
    assert.match(bundle["nftables-ipv4-ipv6.nft"] ?? "", new RegExp(`ip6 daddr ${HOST_IP_PLACEHOLDER.ipv6} tcp dport 30080`));
    assert.doesNotMatch(bundle["nftables-ipv4.want"] ?? "", /ip6|@HOST_IPV6@/);
    for (const [name, text] of Object.entries(bundle)) assert.doesNotMatch(text, /192\.0\.2\.254|2001:db8:be47::fe/, name);
    // Every destination was a placeholder: as many as the DNAT and MASQUERADE rules together.
    assert.equal((bundle["iptables-ipv4.restore"]?.match(/@HOST_IPV4@/g) ?? []).length, 4);
  });

  it("keeps a source range that resembles a rendering address, or is one, as a source", () => {
    const bundle = renderHostIpsBundle({ ports: [TCP80], sourceRanges: ["192.0.2.0/24", "192.0.2.254/32", "2001:db8:be47::fe/128"] }, ["ipv4", "ipv6"]);
    assert.match(bundle["iptables-ipv4.restore"] ?? "", /-s 192\.0\.2\.0\/24 /);
    assert.match(bundle["iptables-ipv4.restore"] ?? "", /-s 192\.0\.2\.254\/32 /);
    assert.match(bundle["nftables-ipv4-ipv6.nft"] ?? "", /ip saddr 192\.0\.2\.254 return/);
    assert.match(bundle["nftables-ipv4-ipv6.nft"] ?? "", /ip6 saddr 2001:db8:be47::fe return/);
    assert.match(bundle["iptables-ipv4.restore"] ?? "", /--to-destination @HOST_IPV4@:30080/);
  });
});
