// The chaos soak's arithmetic (bench/chaos-report.ts): outages only while advertised, attribution to faults, lost
// addresses, duplicate rules in iptables-save and nft listings.
import assert from "node:assert/strict";
import {
  duplicateIptablesRules, duplicateNftRules, ingressAt, lostAddresses, outagePerFault, outages, percentile, type Target,
} from "../../../bench/chaos-report.js";

const targets: Target[] = [
  { id: 0, svc: "a", node: "node-1", ip: "198.18.0.11", port: 1 },
  { id: 1, svc: "a", node: "node-2", ip: "198.18.0.12", port: 1 },
];
const both = new Map([["a", [{ t: 0, ips: ["198.18.0.11", "198.18.0.12"] }]]]);

describe("bench/chaos report", () => {
  const pct: [number[], number, number][] = [[[], 50, 0], [[5], 99, 5], [[1, 2, 3, 4], 50, 2], [[1, 2, 3, 4], 99, 4]];
  for (const [values, p, want] of pct) it(`percentile ${p} of [${values.join(",")}] = ${want}`, () => assert.equal(percentile(values, p), want));

  it("reads the ingress in force at a time", () => {
    const samples = [{ t: 10, ips: ["x"] }, { t: 20, ips: [] }];
    assert.deepEqual([5, 10, 15, 25].map((t) => ingressAt(samples, t)), [[], ["x"], ["x"], []]);
  });

  it("joins failures closer than the gap into one outage, counted only while the address is advertised", () => {
    const failures = new Map([[0, [1000, 1050, 1100, 5000]], [1, [2000, 2050]]]);
    const ingress = new Map([["a", [{ t: 0, ips: ["198.18.0.11", "198.18.0.12"] }, { t: 1900, ips: ["198.18.0.11"] }]]]);
    assert.deepEqual(outages({ failures, targets, ingress, periodMs: 50, gapMs: 150 }), [
      { target: 0, from: 1000, to: 1150 },
      { target: 0, from: 5000, to: 5050 },
    ]);
  });

  it("splits a fault's window into touched and other targets", () => {
    const all = [{ target: 0, from: 100, to: 400 }, { target: 1, from: 150, to: 200 }, { target: 1, from: 900, to: 1000 }];
    const fault = { kind: "k", start: 100, end: 200, touched: [0], detail: "" };
    assert.deepEqual(outagePerFault(fault, all, { from: 100, to: 500 }), { touchedMs: 300, othersMs: 50, worstOther: 1 });
  });

  it("reports an address gone while no fault touched it, not one a fault explains", () => {
    const ingress = new Map([["a", [{ t: 0, ips: ["198.18.0.11", "198.18.0.12"] }, { t: 100, ips: ["198.18.0.11"] }, { t: 300, ips: ["198.18.0.11", "198.18.0.12"] }]]]);
    const lost = (touched: number[]): unknown => lostAddresses({ ingress, targets, since: 0, end: 1000, windows: [{ from: 50, to: 400, touched: new Set(touched) }] });
    assert.deepEqual(lost([1]), []);
    assert.deepEqual(lost([0]), [{ svc: "a", ip: "198.18.0.12", from: 100, to: 300 }]);
    assert.deepEqual(lostAddresses({ ingress: both, targets, since: 0, end: 10, windows: [] }), []);
  });

  it("finds a rule repeated in one iptables table, ignoring counters; the same rule in two tables is no duplicate", () => {
    const save = ["*nat", "[0:0] -A BERTH -p tcp --dport 80 -j DNAT --to-destination 1.2.3.4", "[5:300] -A BERTH -p tcp --dport 80 -j DNAT --to-destination 1.2.3.4",
      "COMMIT", "*filter", "-A BERTH -p tcp --dport 80 -j DNAT --to-destination 1.2.3.4", "COMMIT"].join("\n");
    assert.deepEqual(duplicateIptablesRules(save), ["nat -A BERTH -p tcp --dport 80 -j DNAT --to-destination 1.2.3.4"]);
    assert.deepEqual(duplicateIptablesRules("*nat\n-A X -j ACCEPT\n-A Y -j ACCEPT\nCOMMIT"), []);
  });

  it("finds a rule repeated in one nft chain, ignoring handles and counters", () => {
    const ruleset = `table ip berth {
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\ttcp dport 80 counter packets 3 bytes 180 dnat to 10.0.0.1 # handle 4
\t\ttcp dport 80 counter packets 0 bytes 0 dnat to 10.0.0.1 # handle 7
\t}
\tchain postrouting {
\t\ttcp dport 80 counter packets 0 bytes 0 dnat to 10.0.0.1 # handle 9
\t}
}`;
    assert.deepEqual(duplicateNftRules(ruleset), ["ip berth prerouting tcp dport 80 counter dnat to 10.0.0.1"]);
  });
});
