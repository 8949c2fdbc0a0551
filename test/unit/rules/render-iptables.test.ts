import { strict as assert } from "node:assert";

import { planRules } from "../../../src/lb-pod/plan.js";
import type { LbPodConfig } from "../../../src/lib/rules/model.js";
import {
  iptablesComment, presentIptablesJumps, renderIptablesCleanup, renderIptablesRestore, requiredIptablesJumps,
  type IptablesJump,
} from "../../../src/lib/rules/render-iptables.js";

const lines = (...text: string[]): string => `${text.join("\n")}\n`;

const HEADER = (family: string) => `# berth lb-pod rules (${family}), rendered by berth; every chain declared here is flushed and rewritten whole`;
const MANGLE_DECLARE = [":BERTH-FILTER - [0:0]", ":BERTH-SOURCES - [0:0]", ":BERTH-IPVS-MARK - [0:0]"];
const NAT_DECLARE = [":BERTH-DNAT - [0:0]", ":BERTH-MASQ - [0:0]", ":BERTH-IPVS-MASQ - [0:0]"];

const jumps = {
  filter: { table: "mangle", chain: "PREROUTING", target: "BERTH-FILTER", rule: "-A PREROUTING -m comment --comment berth -j BERTH-FILTER" },
  ipvsMark: { table: "mangle", chain: "PREROUTING", target: "BERTH-IPVS-MARK", rule: "-A PREROUTING -m comment --comment berth -j BERTH-IPVS-MARK" },
  dnat: { table: "nat", chain: "PREROUTING", target: "BERTH-DNAT", rule: "-A PREROUTING -m comment --comment berth -j BERTH-DNAT" },
  masq: { table: "nat", chain: "POSTROUTING", target: "BERTH-MASQ", rule: "-A POSTROUTING -m comment --comment berth -j BERTH-MASQ" },
  ipvsMasq: { table: "nat", chain: "POSTROUTING", target: "BERTH-IPVS-MASQ", rule: "-A POSTROUTING -m comment --comment berth -j BERTH-IPVS-MASQ" },
} satisfies Record<string, IptablesJump>;

const single: LbPodConfig = { ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: ["10.43.0.10"], sourceRanges: [] };

describe("iptables renderer", () => {
  const cases: { name: string; config: LbPodConfig; family: "ipv4" | "ipv6"; present: IptablesJump[]; want: string }[] = [
    {
      name: "forwards one TCP port to one destination, adding the missing jumps, no source check",
      config: single, family: "ipv4", present: [],
      want: lines(
        HEADER("ipv4"),
        "*mangle", ...MANGLE_DECLARE,
        "-X BERTH-FILTER", "-X BERTH-SOURCES", "-X BERTH-IPVS-MARK",
        "COMMIT",
        "*nat", ...NAT_DECLARE,
        "-I PREROUTING 1 -m comment --comment berth -j BERTH-DNAT",
        "-I POSTROUTING 1 -m comment --comment berth -j BERTH-MASQ",
        "-X BERTH-IPVS-MASQ",
        '-A BERTH-DNAT -p tcp -m tcp --dport 80 -m comment --comment "tcp/80 -> 10.43.0.10:80" -j DNAT --to-destination 10.43.0.10:80',
        '-A BERTH-MASQ -d 10.43.0.10/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 80 -m comment --comment "tcp/80 -> 10.43.0.10:80" -j MASQUERADE',
        "COMMIT",
      ),
    },
    {
      name: "adds no jump that is already present (re-apply after a container restart)",
      config: single, family: "ipv4", present: [jumps.dnat, jumps.masq],
      want: lines(
        HEADER("ipv4"),
        "*mangle", ...MANGLE_DECLARE, "-X BERTH-FILTER", "-X BERTH-SOURCES", "-X BERTH-IPVS-MARK", "COMMIT",
        "*nat", ...NAT_DECLARE, "-X BERTH-IPVS-MASQ",
        '-A BERTH-DNAT -p tcp -m tcp --dport 80 -m comment --comment "tcp/80 -> 10.43.0.10:80" -j DNAT --to-destination 10.43.0.10:80',
        '-A BERTH-MASQ -d 10.43.0.10/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 80 -m comment --comment "tcp/80 -> 10.43.0.10:80" -j MASQUERADE',
        "COMMIT",
      ),
    },
    {
      name: "deletes duplicate jumps and jumps this plan no longer needs (sources once restricted, IPVS mode before)",
      config: single, family: "ipv4", present: [jumps.dnat, jumps.dnat, jumps.dnat, jumps.masq, jumps.filter, jumps.ipvsMasq],
      want: lines(
        HEADER("ipv4"),
        "*mangle", ...MANGLE_DECLARE,
        "-D PREROUTING -m comment --comment berth -j BERTH-FILTER",
        "-X BERTH-FILTER", "-X BERTH-SOURCES", "-X BERTH-IPVS-MARK", "COMMIT",
        "*nat", ...NAT_DECLARE,
        "-D PREROUTING -m comment --comment berth -j BERTH-DNAT",
        "-D PREROUTING -m comment --comment berth -j BERTH-DNAT",
        "-D POSTROUTING -m comment --comment berth -j BERTH-IPVS-MASQ",
        "-X BERTH-IPVS-MASQ",
        '-A BERTH-DNAT -p tcp -m tcp --dport 80 -m comment --comment "tcp/80 -> 10.43.0.10:80" -j DNAT --to-destination 10.43.0.10:80',
        '-A BERTH-MASQ -d 10.43.0.10/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 80 -m comment --comment "tcp/80 -> 10.43.0.10:80" -j MASQUERADE',
        "COMMIT",
      ),
    },
    {
      name: "spreads a port over several destinations with statistic nth and masquerades towards each",
      config: { ports: [{ protocol: "udp", port: 53, destinationPort: 30053 }], destinationIps: ["10.0.0.3", "10.0.0.1", "10.0.0.2"], sourceRanges: [] },
      family: "ipv4", present: [jumps.dnat, jumps.masq],
      want: lines(
        HEADER("ipv4"),
        "*mangle", ...MANGLE_DECLARE, "-X BERTH-FILTER", "-X BERTH-SOURCES", "-X BERTH-IPVS-MARK", "COMMIT",
        "*nat", ...NAT_DECLARE, "-X BERTH-IPVS-MASQ",
        '-A BERTH-DNAT -p udp -m udp --dport 53 -m comment --comment "udp/53 -> 10.0.0.1:30053" -m statistic --mode nth --every 3 --packet 0 -j DNAT --to-destination 10.0.0.1:30053',
        '-A BERTH-DNAT -p udp -m udp --dport 53 -m comment --comment "udp/53 -> 10.0.0.2:30053" -m statistic --mode nth --every 2 --packet 0 -j DNAT --to-destination 10.0.0.2:30053',
        '-A BERTH-DNAT -p udp -m udp --dport 53 -m comment --comment "udp/53 -> 10.0.0.3:30053" -j DNAT --to-destination 10.0.0.3:30053',
        '-A BERTH-MASQ -d 10.0.0.1/32 -p udp -m udp --dport 30053 -m conntrack --ctstate DNAT --ctorigdstport 53 -m comment --comment "udp/53 -> 10.0.0.1:30053" -j MASQUERADE',
        '-A BERTH-MASQ -d 10.0.0.2/32 -p udp -m udp --dport 30053 -m conntrack --ctstate DNAT --ctorigdstport 53 -m comment --comment "udp/53 -> 10.0.0.2:30053" -j MASQUERADE',
        '-A BERTH-MASQ -d 10.0.0.3/32 -p udp -m udp --dport 30053 -m conntrack --ctstate DNAT --ctorigdstport 53 -m comment --comment "udp/53 -> 10.0.0.3:30053" -j MASQUERADE',
        "COMMIT",
      ),
    },
    {
      name: "checks sources of every TCP, UDP and SCTP port before DNAT and drops the rest, IPv4 ranges only",
      config: {
        ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }, { protocol: "udp", port: 53, destinationPort: 53 }, { protocol: "sctp", port: 9, destinationPort: 9 }],
        destinationIps: ["10.43.0.10", "fd00::10"], sourceRanges: ["192.168.0.0/16", "10.0.0.0/8", "fd00::/8"],
      },
      family: "ipv4", present: [jumps.filter, jumps.dnat, jumps.masq],
      want: lines(
        HEADER("ipv4"),
        "*mangle", ...MANGLE_DECLARE, "-X BERTH-IPVS-MARK",
        '-A BERTH-FILTER -p sctp -m sctp --dport 9 -m conntrack --ctdir ORIGINAL -m comment --comment "sctp/9" -j BERTH-SOURCES',
        '-A BERTH-FILTER -p tcp -m tcp --dport 80 -m conntrack --ctdir ORIGINAL -m comment --comment "tcp/80" -j BERTH-SOURCES',
        '-A BERTH-FILTER -p udp -m udp --dport 53 -m conntrack --ctdir ORIGINAL -m comment --comment "udp/53" -j BERTH-SOURCES',
        '-A BERTH-SOURCES -s 10.0.0.0/8 -m comment --comment "allowed source" -j RETURN',
        '-A BERTH-SOURCES -s 192.168.0.0/16 -m comment --comment "allowed source" -j RETURN',
        '-A BERTH-SOURCES -m comment --comment "source not allowed" -j DROP',
        "COMMIT",
        "*nat", ...NAT_DECLARE, "-X BERTH-IPVS-MASQ",
        '-A BERTH-DNAT -p sctp -m sctp --dport 9 -m comment --comment "sctp/9 -> 10.43.0.10:9" -j DNAT --to-destination 10.43.0.10:9',
        '-A BERTH-DNAT -p tcp -m tcp --dport 80 -m comment --comment "tcp/80 -> 10.43.0.10:80" -j DNAT --to-destination 10.43.0.10:80',
        '-A BERTH-DNAT -p udp -m udp --dport 53 -m comment --comment "udp/53 -> 10.43.0.10:53" -j DNAT --to-destination 10.43.0.10:53',
        '-A BERTH-MASQ -d 10.43.0.10/32 -p sctp -m sctp --dport 9 -m conntrack --ctstate DNAT --ctorigdstport 9 -m comment --comment "sctp/9 -> 10.43.0.10:9" -j MASQUERADE',
        '-A BERTH-MASQ -d 10.43.0.10/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 80 -m comment --comment "tcp/80 -> 10.43.0.10:80" -j MASQUERADE',
        '-A BERTH-MASQ -d 10.43.0.10/32 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT --ctorigdstport 53 -m comment --comment "udp/53 -> 10.43.0.10:53" -j MASQUERADE',
        "COMMIT",
      ),
    },
    {
      name: "renders the IPv6 half of a dual-stack plan with bracketed destinations and /128 hosts",
      config: { ports: [{ protocol: "tcp", port: 443, destinationPort: 8443 }], destinationIps: ["10.43.0.10", "fd00::10"], sourceRanges: [] },
      family: "ipv6", present: [jumps.dnat, jumps.masq],
      want: lines(
        HEADER("ipv6"),
        "*mangle", ...MANGLE_DECLARE, "-X BERTH-FILTER", "-X BERTH-SOURCES", "-X BERTH-IPVS-MARK", "COMMIT",
        "*nat", ...NAT_DECLARE, "-X BERTH-IPVS-MASQ",
        '-A BERTH-DNAT -p tcp -m tcp --dport 443 -m comment --comment "tcp/443 -> [fd00::10]:8443" -j DNAT --to-destination [fd00::10]:8443',
        '-A BERTH-MASQ -d fd00::10/128 -p tcp -m tcp --dport 8443 -m conntrack --ctstate DNAT --ctorigdstport 443 -m comment --comment "tcp/443 -> [fd00::10]:8443" -j MASQUERADE',
        "COMMIT",
      ),
    },
    {
      name: "drops every IPv6 source when source ranges are given for IPv4 only",
      config: { ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: ["10.43.0.10", "fd00::10"], sourceRanges: ["0.0.0.0/0"] },
      family: "ipv6", present: [jumps.dnat, jumps.masq],
      want: lines(
        HEADER("ipv6"),
        "*mangle", ...MANGLE_DECLARE,
        "-I PREROUTING 1 -m comment --comment berth -j BERTH-FILTER",
        "-X BERTH-IPVS-MARK",
        '-A BERTH-FILTER -p tcp -m tcp --dport 80 -m conntrack --ctdir ORIGINAL -m comment --comment "tcp/80" -j BERTH-SOURCES',
        '-A BERTH-SOURCES -m comment --comment "source not allowed" -j DROP',
        "COMMIT",
        "*nat", ...NAT_DECLARE, "-X BERTH-IPVS-MASQ",
        '-A BERTH-DNAT -p tcp -m tcp --dport 80 -m comment --comment "tcp/80 -> [fd00::10]:80" -j DNAT --to-destination [fd00::10]:80',
        '-A BERTH-MASQ -d fd00::10/128 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 80 -m comment --comment "tcp/80 -> [fd00::10]:80" -j MASQUERADE',
        "COMMIT",
      ),
    },
  ];
  for (const { name, config, family, present, want } of cases) {
    it(name, () => {
      assert.equal(renderIptablesRestore(planRules(config), family, { presentJumps: present }), want);
    });
  }

  it("renders byte-identical text for the same configuration given in another order", () => {
    const a = planRules({ ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }, { protocol: "udp", port: 53, destinationPort: 53 }],
      destinationIps: ["10.0.0.2", "10.0.0.1"], sourceRanges: ["10.0.0.0/8", "192.168.0.0/16"] });
    const b = planRules({ ports: [{ protocol: "udp", port: 53, destinationPort: 53 }, { protocol: "tcp", port: 80, destinationPort: 80 }],
      destinationIps: ["10.0.0.1", "10.0.0.2"], sourceRanges: ["192.168.0.0/16", "10.0.0.0/8"] });
    assert.equal(renderIptablesRestore(a, "ipv4", { presentJumps: [] }), renderIptablesRestore(b, "ipv4", { presentJumps: [] }));
  });

  it("refuses to render a family the plan does not touch", () => {
    assert.throws(() => renderIptablesRestore(planRules(single), "ipv6", { presentJumps: [] }), /no ipv6 destinations/);
  });

  const required: { name: string; config: LbPodConfig; family: "ipv4" | "ipv6"; want: IptablesJump[] }[] = [
    { name: "requires the DNAT and MASQUERADE jumps when every source is allowed", config: single, family: "ipv4", want: [jumps.dnat, jumps.masq] },
    { name: "also requires the source-check jump when sources are restricted", family: "ipv4",
      config: { ...single, sourceRanges: ["10.0.0.0/8"] }, want: [jumps.filter, jumps.dnat, jumps.masq] },
    { name: "requires nothing in a family the plan does not touch", config: single, family: "ipv6", want: [] },
  ];
  for (const { name, config, family, want } of required) {
    it(name, () => {
      assert.deepEqual(requiredIptablesJumps(planRules(config), family), want);
    });
  }

  it("cleans up by deleting each present jump, then flushing and deleting every berth chain", () => {
    assert.equal(renderIptablesCleanup({ presentJumps: [jumps.filter, jumps.dnat, jumps.masq, jumps.masq] }), lines(
      "# berth lb-pod cleanup, rendered by berth; every chain declared here is flushed and rewritten whole",
      "*mangle", ...MANGLE_DECLARE,
      "-D PREROUTING -m comment --comment berth -j BERTH-FILTER",
      "-X BERTH-FILTER", "-X BERTH-SOURCES", "-X BERTH-IPVS-MARK", "COMMIT",
      "*nat", ...NAT_DECLARE,
      "-D PREROUTING -m comment --comment berth -j BERTH-DNAT",
      "-D POSTROUTING -m comment --comment berth -j BERTH-MASQ",
      "-D POSTROUTING -m comment --comment berth -j BERTH-MASQ",
      "-X BERTH-DNAT", "-X BERTH-MASQ", "-X BERTH-IPVS-MASQ", "COMMIT",
    ));
  });

  it("finds our jumps in iptables-save output, per table and per occurrence, and nothing else", () => {
    const save = lines(
      "# Generated by iptables-nft-save v1.8.9 (nf_tables) on Tue Nov 24 06:52:29 2026",
      "*mangle", ":PREROUTING ACCEPT [0:0]",
      "-A PREROUTING -m comment --comment berth -j BERTH-FILTER",
      "-A PREROUTING -m comment --comment berth -j BERTH-DNAT",
      "COMMIT",
      "*nat", ":PREROUTING ACCEPT [0:0]",
      "-A PREROUTING -m comment --comment berth -j BERTH-DNAT",
      "-A PREROUTING -j BERTH-DNAT",
      "-A PREROUTING -m comment --comment berth -j BERTH-DNAT",
      "-A POSTROUTING -m comment --comment berth -j BERTH-MASQ",
      "-A BERTH-MASQ -m comment --comment berth -j BERTH-MASQ",
      "COMMIT",
    );
    assert.deepEqual(presentIptablesJumps(save), [jumps.filter, jumps.dnat, jumps.dnat, jumps.masq]);
  });

  const comments: [string, string][] = [["berth", "berth"], ["tcp/80", '"tcp/80"'], ["a.b", '"a.b"'], ['say "hi"', '"say \\"hi\\""']];
  for (const [text, want] of comments) {
    it(`quotes the comment ${JSON.stringify(text)} as iptables-save prints it`, () => {
      assert.equal(iptablesComment(text), want);
    });
  }
});
