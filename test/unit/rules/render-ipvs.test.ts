import { strict as assert } from "node:assert";

import { planRules } from "../../../src/lb-pod/plan.js";
import type { IptablesJump } from "../../../src/lib/rules/render-iptables.js";
import { renderIpvs } from "../../../src/lib/rules/render-ipvs.js";

const lines = (...text: string[]): string => `${text.join("\n")}\n`;
const MANGLE_DECLARE = [":BERTH-FILTER - [0:0]", ":BERTH-SOURCES - [0:0]", ":BERTH-IPVS-MARK - [0:0]"];
const NAT_DECLARE = [":BERTH-DNAT - [0:0]", ":BERTH-MASQ - [0:0]", ":BERTH-IPVS-MASQ - [0:0]"];
const jump = (table: "mangle" | "nat", chain: "PREROUTING" | "POSTROUTING", target: string): IptablesJump =>
  ({ table, chain, target, rule: `-A ${chain} -m comment --comment berth -j ${target}` });

describe("IPVS renderer", () => {
  const dualStack = planRules({
    ports: [{ protocol: "tcp", port: 80, destinationPort: 8080 }, { protocol: "udp", port: 53, destinationPort: 53 }],
    destinationIps: ["10.43.0.11", "10.43.0.10", "fd00::10"],
    sourceRanges: [],
  });

  it("defines one round-robin fwmark service per forwarded port and family, destinations as masquerading real servers", () => {
    assert.equal(renderIpvs(dualStack).ipvsadmRestore, lines(
      "-A -f 199688192 -s rr",
      "-a -f 199688192 -r 10.43.0.10:8080 -m -w 1",
      "-a -f 199688192 -r 10.43.0.11:8080 -m -w 1",
      "-A -f 199688193 -s rr",
      "-a -f 199688193 -r 10.43.0.10:53 -m -w 1",
      "-a -f 199688193 -r 10.43.0.11:53 -m -w 1",
      "-A -f 199688194 -s rr -6",
      "-a -f 199688194 -r [fd00::10]:8080 -m -w 1",
      "-A -f 199688195 -s rr -6",
      "-a -f 199688195 -r [fd00::10]:53 -m -w 1",
    ));
  });

  it("marks each port's packets and masquerades marked packets per family, removing iptables-mode chains and jumps", () => {
    const rendering = renderIpvs(dualStack, { presentJumps: { ipv6: [jump("nat", "PREROUTING", "BERTH-DNAT"), jump("nat", "POSTROUTING", "BERTH-MASQ")] } });
    assert.equal(rendering.iptablesRestore.ipv6, lines(
      "# berth lb-pod rules for IPVS mode (ipv6), rendered by berth; every chain declared here is flushed and rewritten whole",
      "*mangle", ...MANGLE_DECLARE,
      "-I PREROUTING 1 -m comment --comment berth -j BERTH-IPVS-MARK",
      "-X BERTH-FILTER", "-X BERTH-SOURCES",
      '-A BERTH-IPVS-MARK -p tcp -m tcp --dport 80 -m comment --comment "tcp/80" -j MARK --set-xmark 0xbe70002/0xffffffff',
      '-A BERTH-IPVS-MARK -p udp -m udp --dport 53 -m comment --comment "udp/53" -j MARK --set-xmark 0xbe70003/0xffffffff',
      "COMMIT",
      "*nat", ...NAT_DECLARE,
      "-D PREROUTING -m comment --comment berth -j BERTH-DNAT",
      "-D POSTROUTING -m comment --comment berth -j BERTH-MASQ",
      "-I POSTROUTING 1 -m comment --comment berth -j BERTH-IPVS-MASQ",
      "-X BERTH-DNAT", "-X BERTH-MASQ",
      '-A BERTH-IPVS-MASQ -m mark --mark 0xbe70002 -m comment --comment "tcp/80" -j MASQUERADE',
      '-A BERTH-IPVS-MASQ -m mark --mark 0xbe70003 -m comment --comment "udp/53" -j MASQUERADE',
      "COMMIT",
    ));
    assert.deepEqual(rendering.requiredJumps.ipv6, [jump("mangle", "PREROUTING", "BERTH-IPVS-MARK"), jump("nat", "POSTROUTING", "BERTH-IPVS-MASQ")]);
    assert.deepEqual(Object.keys(rendering.iptablesRestore), ["ipv4", "ipv6"]);
  });

  it("keeps the source check in front of IPVS and requires its jump", () => {
    const plan = planRules({ ports: [{ protocol: "sctp", port: 9, destinationPort: 9 }], destinationIps: ["10.43.0.10"], sourceRanges: ["10.0.0.0/8"] });
    const rendering = renderIpvs(plan);
    assert.equal(rendering.iptablesRestore.ipv4, lines(
      "# berth lb-pod rules for IPVS mode (ipv4), rendered by berth; every chain declared here is flushed and rewritten whole",
      "*mangle", ...MANGLE_DECLARE,
      "-I PREROUTING 1 -m comment --comment berth -j BERTH-FILTER",
      "-I PREROUTING 1 -m comment --comment berth -j BERTH-IPVS-MARK",
      '-A BERTH-FILTER -p sctp -m sctp --dport 9 -m conntrack --ctdir ORIGINAL -m comment --comment "sctp/9" -j BERTH-SOURCES',
      '-A BERTH-SOURCES -s 10.0.0.0/8 -m comment --comment "allowed source" -j RETURN',
      '-A BERTH-SOURCES -m comment --comment "source not allowed" -j DROP',
      '-A BERTH-IPVS-MARK -p sctp -m sctp --dport 9 -m comment --comment "sctp/9" -j MARK --set-xmark 0xbe70000/0xffffffff',
      "COMMIT",
      "*nat", ...NAT_DECLARE,
      "-I POSTROUTING 1 -m comment --comment berth -j BERTH-IPVS-MASQ",
      "-X BERTH-DNAT", "-X BERTH-MASQ",
      '-A BERTH-IPVS-MASQ -m mark --mark 0xbe70000 -m comment --comment "sctp/9" -j MASQUERADE',
      "COMMIT",
    ));
    assert.deepEqual(rendering.requiredJumps.ipv4?.map((j) => j.target), ["BERTH-FILTER", "BERTH-IPVS-MARK", "BERTH-IPVS-MASQ"]);
    assert.equal(rendering.iptablesRestore.ipv6, undefined);
    assert.equal(rendering.ipvsadmRestore, lines("-A -f 199688192 -s rr", "-a -f 199688192 -r 10.43.0.10:9 -m -w 1"));
  });

  it("asks for IPVS conntrack, without which MASQUERADE never sees IPVS traffic", () => {
    assert.deepEqual(renderIpvs(dualStack).sysctls, { "net.ipv4.vs.conntrack": "1" });
  });
});
