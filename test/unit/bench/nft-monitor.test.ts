// bench/lb-pod's "rules in place" clock (bench/nft-monitor.ts): which `nft monitor` lines change the rule count, when
// the last change arrived, and the refusal to report a figure when the monitor's lines do not add up to the rules
// the namespace holds. The lines are nft 1.0.6's, as printed for iptables-nft's and nft's own transactions.
import assert from "node:assert/strict";
import { countRules, ruleChange, rulesInPlace, type MonitorLine } from "../../../bench/nft-monitor.js";

const lines = (...entries: [number, string][]): MonitorLine[] => entries.map(([at, line]) => ({ atNs: BigInt(at), line }));

describe("bench/nft-monitor", () => {
  const changes: [string, number][] = [
    ["add rule ip filter FORWARD ip daddr 10.43.0.10 tcp dport 80 counter packets 0 bytes 0 drop", 1],
    ["insert rule ip nat PREROUTING tcp dport 80 counter packets 0 bytes 0 dnat to 10.43.0.10:80", 1],
    ["delete rule inet t c handle 2", -1],
    ["add table ip nat", 0],
    ["add chain ip nat PREROUTING { type nat hook prerouting priority dstnat; policy accept; }", 0],
    ["delete table inet berth", 0],
    ["# new generation 4 by process 29540 (iptables-nft)", 0],
    ["", 0],
  ];
  for (const [line, want] of changes) it(`counts "${line.slice(0, 40)}" as ${want}`, () => assert.equal(ruleChange(line), want));

  it("is in place at the last rule change, not at a later table, chain or generation line", () => {
    const seen = lines(
      [10, "add table ip nat"],
      [11, "insert rule ip nat PREROUTING tcp dport 80 dnat to 10.43.0.10:80"],
      [12, "# new generation 2 by process 1 (iptables-nft)"],
      [20, "add rule ip filter FORWARD tcp dport 80 drop"],
      [21, "# new generation 3 by process 2 (iptables-nft)"],
      [30, "add table ip bench_sync_2"],
    );
    assert.deepEqual(rulesInPlace(seen, 2), { atNs: 20n, changes: 2 });
  });

  it("counts a replace (delete then add) and a table deleted with its rules, so the last change is the last delete", () => {
    const seen = lines(
      [1, "add rule inet t c tcp dport 1 accept"],
      [2, "add rule inet t c tcp dport 2 accept"],
      [3, "delete rule inet t c handle 2"],
      [4, "add rule inet t c tcp dport 1 drop"],
      [5, "delete rule inet t c handle 3"],
    );
    assert.deepEqual(rulesInPlace(seen, 1), { atNs: 5n, changes: 5 });
  });

  it("refuses a figure when the monitor missed a change", () => {
    const seen = lines([1, "add rule ip filter FORWARD drop"]);
    assert.throws(() => rulesInPlace(seen, 2), /saw a net 1 rules added but the namespace holds 2/);
  });

  it("refuses a figure when nothing was applied", () => {
    assert.throws(() => rulesInPlace(lines([1, "add table ip nat"]), 0), /saw no rule change/);
  });

  it("counts the rules of every table in nft -j list ruleset", () => {
    const json = JSON.stringify({ nftables: [
      { metainfo: { version: "1.0.6" } },
      { table: { family: "ip", name: "nat" } },
      { chain: { family: "ip", table: "nat", name: "PREROUTING" } },
      { rule: { family: "ip", table: "nat", chain: "PREROUTING" } },
      { table: { family: "inet", name: "berth" } },
      { rule: { family: "inet", table: "berth", chain: "dnat-prerouting" } },
      { rule: { family: "inet", table: "berth", chain: "masquerade-postrouting" } },
    ] });
    assert.equal(countRules(json), 3);
    assert.throws(() => countRules("{}"), /no "nftables" array/);
  });
});
