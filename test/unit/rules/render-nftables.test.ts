import { strict as assert } from "node:assert";

import { planRules } from "../../../src/lb-pod/plan.js";
import type { LbPodConfig } from "../../../src/lib/rules/model.js";
import { renderNftables, renderNftablesCleanup, renderNftablesTable } from "../../../src/lib/rules/render-nftables.js";

const DNAT_HOOK = "\t\ttype nat hook prerouting priority dstnat; policy accept;";
const MASQ_HOOK = "\t\ttype nat hook postrouting priority srcnat; policy accept;";
const FILTER_HOOK = "\t\ttype filter hook prerouting priority mangle; policy accept;";
const text = (...lines: string[]): string => `${lines.join("\n")}\n`;

describe("nftables renderer", () => {
  const cases: { name: string; config: LbPodConfig; want: string }[] = [
    {
      name: "forwards one TCP port to one IPv4 destination with no source check",
      config: { ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: ["10.43.0.10"], sourceRanges: [] },
      want: text(
        "table inet berth {",
        "\tchain dnat-prerouting {", DNAT_HOOK,
        '\t\tmeta nfproto ipv4 tcp dport 80 dnat ip to 10.43.0.10:80 comment "tcp/80 -> 10.43.0.10:80"',
        "\t}",
        "",
        "\tchain masquerade-postrouting {", MASQ_HOOK,
        '\t\tip daddr 10.43.0.10 tcp dport 80 ct status dnat ct original proto-dst 80 masquerade comment "tcp/80 -> 10.43.0.10:80"',
        "\t}",
        "}",
      ),
    },
    {
      name: "spreads TCP, UDP and SCTP ports over several destinations with a numgen map",
      config: {
        ports: [{ protocol: "udp", port: 53, destinationPort: 30053 }, { protocol: "sctp", port: 9, destinationPort: 9 }, { protocol: "tcp", port: 80, destinationPort: 8080 }],
        destinationIps: ["10.0.0.2", "10.0.0.1"], sourceRanges: [],
      },
      want: text(
        "table inet berth {",
        "\tchain dnat-prerouting {", DNAT_HOOK,
        '\t\tmeta nfproto ipv4 sctp dport 9 dnat ip to numgen inc mod 2 map { 0 : 10.0.0.1 . 9, 1 : 10.0.0.2 . 9 } comment "sctp/9"',
        '\t\tmeta nfproto ipv4 tcp dport 80 dnat ip to numgen inc mod 2 map { 0 : 10.0.0.1 . 8080, 1 : 10.0.0.2 . 8080 } comment "tcp/80"',
        '\t\tmeta nfproto ipv4 udp dport 53 dnat ip to numgen inc mod 2 map { 0 : 10.0.0.1 . 30053, 1 : 10.0.0.2 . 30053 } comment "udp/53"',
        "\t}",
        "",
        "\tchain masquerade-postrouting {", MASQ_HOOK,
        '\t\tip daddr 10.0.0.1 sctp dport 9 ct status dnat ct original proto-dst 9 masquerade comment "sctp/9 -> 10.0.0.1:9"',
        '\t\tip daddr 10.0.0.2 sctp dport 9 ct status dnat ct original proto-dst 9 masquerade comment "sctp/9 -> 10.0.0.2:9"',
        '\t\tip daddr 10.0.0.1 tcp dport 8080 ct status dnat ct original proto-dst 80 masquerade comment "tcp/80 -> 10.0.0.1:8080"',
        '\t\tip daddr 10.0.0.2 tcp dport 8080 ct status dnat ct original proto-dst 80 masquerade comment "tcp/80 -> 10.0.0.2:8080"',
        '\t\tip daddr 10.0.0.1 udp dport 30053 ct status dnat ct original proto-dst 53 masquerade comment "udp/53 -> 10.0.0.1:30053"',
        '\t\tip daddr 10.0.0.2 udp dport 30053 ct status dnat ct original proto-dst 53 masquerade comment "udp/53 -> 10.0.0.2:30053"',
        "\t}",
        "}",
      ),
    },
    {
      name: "checks sources per family before DNAT in a dual-stack plan, hosts written without a prefix",
      config: {
        ports: [{ protocol: "tcp", port: 443, destinationPort: 443 }],
        destinationIps: ["fd00::10", "10.43.0.10"], sourceRanges: ["192.0.2.7", "10.0.0.0/8", "2001:db8::/32", "2001:db8:1::1/128"],
      },
      want: text(
        "table inet berth {",
        "\tchain sources-ipv4 {",
        '\t\tip saddr 10.0.0.0/8 return comment "allowed source"',
        '\t\tip saddr 192.0.2.7 return comment "allowed source"',
        '\t\tdrop comment "source not allowed"',
        "\t}",
        "",
        "\tchain sources-ipv6 {",
        '\t\tip6 saddr 2001:db8::/32 return comment "allowed source"',
        '\t\tip6 saddr 2001:db8:1::1 return comment "allowed source"',
        '\t\tdrop comment "source not allowed"',
        "\t}",
        "",
        "\tchain filter-prerouting {", FILTER_HOOK,
        '\t\tmeta nfproto ipv4 tcp dport 443 ct direction original jump sources-ipv4 comment "tcp/443"',
        '\t\tmeta nfproto ipv6 tcp dport 443 ct direction original jump sources-ipv6 comment "tcp/443"',
        "\t}",
        "",
        "\tchain dnat-prerouting {", DNAT_HOOK,
        '\t\tmeta nfproto ipv4 tcp dport 443 dnat ip to 10.43.0.10:443 comment "tcp/443 -> 10.43.0.10:443"',
        '\t\tmeta nfproto ipv6 tcp dport 443 dnat ip6 to [fd00::10]:443 comment "tcp/443 -> [fd00::10]:443"',
        "\t}",
        "",
        "\tchain masquerade-postrouting {", MASQ_HOOK,
        '\t\tip daddr 10.43.0.10 tcp dport 443 ct status dnat ct original proto-dst 443 masquerade comment "tcp/443 -> 10.43.0.10:443"',
        '\t\tip6 daddr fd00::10 tcp dport 443 ct status dnat ct original proto-dst 443 masquerade comment "tcp/443 -> [fd00::10]:443"',
        "\t}",
        "}",
      ),
    },
    {
      name: "drops every IPv6 source when the ranges are IPv4 only, and forwards IPv6 over a numgen map",
      config: {
        ports: [{ protocol: "udp", port: 53, destinationPort: 53 }],
        destinationIps: ["fd00::2", "fd00::1", "10.43.0.10"], sourceRanges: ["0.0.0.0/0"],
      },
      want: text(
        "table inet berth {",
        "\tchain sources-ipv4 {",
        '\t\tip saddr 0.0.0.0/0 return comment "allowed source"',
        '\t\tdrop comment "source not allowed"',
        "\t}",
        "",
        "\tchain sources-ipv6 {",
        '\t\tdrop comment "source not allowed"',
        "\t}",
        "",
        "\tchain filter-prerouting {", FILTER_HOOK,
        '\t\tmeta nfproto ipv4 udp dport 53 ct direction original jump sources-ipv4 comment "udp/53"',
        '\t\tmeta nfproto ipv6 udp dport 53 ct direction original jump sources-ipv6 comment "udp/53"',
        "\t}",
        "",
        "\tchain dnat-prerouting {", DNAT_HOOK,
        '\t\tmeta nfproto ipv4 udp dport 53 dnat ip to 10.43.0.10:53 comment "udp/53 -> 10.43.0.10:53"',
        '\t\tmeta nfproto ipv6 udp dport 53 dnat ip6 to numgen inc mod 2 map { 0 : fd00::1 . 53, 1 : fd00::2 . 53 } comment "udp/53"',
        "\t}",
        "",
        "\tchain masquerade-postrouting {", MASQ_HOOK,
        '\t\tip daddr 10.43.0.10 udp dport 53 ct status dnat ct original proto-dst 53 masquerade comment "udp/53 -> 10.43.0.10:53"',
        '\t\tip6 daddr fd00::1 udp dport 53 ct status dnat ct original proto-dst 53 masquerade comment "udp/53 -> [fd00::1]:53"',
        '\t\tip6 daddr fd00::2 udp dport 53 ct status dnat ct original proto-dst 53 masquerade comment "udp/53 -> [fd00::2]:53"',
        "\t}",
        "}",
      ),
    },
  ];
  for (const { name, config, want } of cases) {
    it(name, () => {
      assert.equal(renderNftablesTable(planRules(config)), want);
    });
  }

  it("wraps the table in one transaction that replaces it whether or not it exists", () => {
    const plan = planRules({ ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: ["10.43.0.10"], sourceRanges: [] });
    assert.equal(renderNftables(plan), "# berth lb-pod rules, rendered by berth: one transaction that replaces table inet berth whole\n" +
      `table inet berth {}\ndelete table inet berth\n${renderNftablesTable(plan)}`);
  });

  it("cleans up by deleting the whole table, whether or not it exists", () => {
    assert.equal(renderNftablesCleanup(), "# berth lb-pod cleanup, rendered by berth\ntable inet berth {}\ndelete table inet berth\n");
  });

  it("renders byte-identical scripts for the same configuration given in another order", () => {
    const a = planRules({ ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }, { protocol: "udp", port: 53, destinationPort: 53 }],
      destinationIps: ["10.0.0.2", "fd00::1", "10.0.0.1"], sourceRanges: ["10.0.0.0/8", "fd00::/8"] });
    const b = planRules({ ports: [{ protocol: "udp", port: 53, destinationPort: 53 }, { protocol: "tcp", port: 80, destinationPort: 80 }],
      destinationIps: ["10.0.0.1", "10.0.0.2", "fd00::1"], sourceRanges: ["fd00::/8", "10.0.0.0/8"] });
    assert.equal(renderNftables(a), renderNftables(b));
  });
});
