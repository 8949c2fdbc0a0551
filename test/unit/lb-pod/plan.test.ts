import { strict as assert } from "node:assert";

import { planRules } from "../../../src/lb-pod/plan.js";
import { UsageError } from "../../../src/lib/errors.js";
import type { LbPodConfig, RulePlan } from "../../../src/lib/rules/model.js";

describe("lb-pod rule planner", () => {
  const cases: { name: string; config: LbPodConfig; want: RulePlan }[] = [
    {
      name: "forwards one port to one IPv4 destination and never touches IPv6",
      config: { ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: ["10.43.0.10"], sourceRanges: [] },
      want: {
        families: ["ipv4"],
        forwards: [{ family: "ipv4", protocol: "tcp", port: 80, destinations: [{ ip: "10.43.0.10", port: 80 }] }],
        allowedSources: {},
      },
    },
    {
      name: "splits a dual-stack destination list by family, each port in each family",
      config: {
        ports: [{ protocol: "udp", port: 53, destinationPort: 30053 }, { protocol: "tcp", port: 80, destinationPort: 8080 }],
        destinationIps: ["fd00:43::a", "10.43.0.10"],
        sourceRanges: [],
      },
      want: {
        families: ["ipv4", "ipv6"],
        forwards: [
          { family: "ipv4", protocol: "tcp", port: 80, destinations: [{ ip: "10.43.0.10", port: 8080 }] },
          { family: "ipv4", protocol: "udp", port: 53, destinations: [{ ip: "10.43.0.10", port: 30053 }] },
          { family: "ipv6", protocol: "tcp", port: 80, destinations: [{ ip: "fd00:43::a", port: 8080 }] },
          { family: "ipv6", protocol: "udp", port: 53, destinations: [{ ip: "fd00:43::a", port: 30053 }] },
        ],
        allowedSources: {},
      },
    },
    {
      name: "plans only IPv6 for an IPv6-only Service",
      config: { ports: [{ protocol: "tcp", port: 443, destinationPort: 443 }], destinationIps: ["2001:db8::1"], sourceRanges: [] },
      want: {
        families: ["ipv6"],
        forwards: [{ family: "ipv6", protocol: "tcp", port: 443, destinations: [{ ip: "2001:db8::1", port: 443 }] }],
        allowedSources: {},
      },
    },
    {
      name: "sorts ports by protocol then number and destinations numerically, removing duplicates",
      config: {
        ports: [
          { protocol: "udp", port: 1000, destinationPort: 1000 }, { protocol: "tcp", port: 9000, destinationPort: 9000 },
          { protocol: "sctp", port: 5, destinationPort: 5 }, { protocol: "tcp", port: 80, destinationPort: 80 },
          { protocol: "tcp", port: 9000, destinationPort: 9000 },
        ],
        destinationIps: ["10.43.0.9", "10.43.0.10", "10.43.0.9", "9.0.0.1"],
        sourceRanges: [],
      },
      want: {
        families: ["ipv4"],
        forwards: [
          { family: "ipv4", protocol: "sctp", port: 5, destinations: [{ ip: "9.0.0.1", port: 5 }, { ip: "10.43.0.9", port: 5 }, { ip: "10.43.0.10", port: 5 }] },
          { family: "ipv4", protocol: "tcp", port: 80, destinations: [{ ip: "9.0.0.1", port: 80 }, { ip: "10.43.0.9", port: 80 }, { ip: "10.43.0.10", port: 80 }] },
          { family: "ipv4", protocol: "tcp", port: 9000, destinations: [{ ip: "9.0.0.1", port: 9000 }, { ip: "10.43.0.9", port: 9000 }, { ip: "10.43.0.10", port: 9000 }] },
          { family: "ipv4", protocol: "udp", port: 1000, destinations: [{ ip: "9.0.0.1", port: 1000 }, { ip: "10.43.0.9", port: 1000 }, { ip: "10.43.0.10", port: 1000 }] },
        ],
        allowedSources: {},
      },
    },
    {
      name: "canonicalises IPv6 so that two spellings of one address are one destination",
      config: {
        ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }],
        destinationIps: ["FD00:0:0:0:0:0:0:1", "fd00::1", "fd00::0:2"],
        sourceRanges: ["2001:DB8:0::/48", "2001:db8::/48"],
      },
      want: {
        families: ["ipv6"],
        forwards: [{ family: "ipv6", protocol: "tcp", port: 80, destinations: [{ ip: "fd00::1", port: 80 }, { ip: "fd00::2", port: 80 }] }],
        allowedSources: { ipv6: ["2001:db8::/48"] },
      },
    },
    {
      name: "gives each family only its own source ranges, sorted and deduplicated",
      config: {
        ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }],
        destinationIps: ["10.43.0.10", "fd00:43::a"],
        sourceRanges: ["fd00::/8", "192.168.0.0/16", "10.0.0.0/8", "10.9.9.9/8", "10.0.0.0/16"],
      },
      want: {
        families: ["ipv4", "ipv6"],
        forwards: [
          { family: "ipv4", protocol: "tcp", port: 80, destinations: [{ ip: "10.43.0.10", port: 80 }] },
          { family: "ipv6", protocol: "tcp", port: 80, destinations: [{ ip: "fd00:43::a", port: 80 }] },
        ],
        allowedSources: { ipv4: ["10.0.0.0/8", "10.0.0.0/16", "192.168.0.0/16"], ipv6: ["fd00::/8"] },
      },
    },
    {
      name: "drops a whole family that has no source range of its own when ranges are given (kube-proxy semantics)",
      config: {
        ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }],
        destinationIps: ["10.43.0.10", "fd00:43::a"],
        sourceRanges: ["0.0.0.0/0"],
      },
      want: {
        families: ["ipv4", "ipv6"],
        forwards: [
          { family: "ipv4", protocol: "tcp", port: 80, destinations: [{ ip: "10.43.0.10", port: 80 }] },
          { family: "ipv6", protocol: "tcp", port: 80, destinations: [{ ip: "fd00:43::a", port: 80 }] },
        ],
        allowedSources: { ipv4: ["0.0.0.0/0"], ipv6: [] },
      },
    },
    {
      name: "ignores source ranges of a family that has no destination",
      config: {
        ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }],
        destinationIps: ["10.43.0.10"],
        sourceRanges: ["fd00::/8"],
      },
      want: {
        families: ["ipv4"],
        forwards: [{ family: "ipv4", protocol: "tcp", port: 80, destinations: [{ ip: "10.43.0.10", port: 80 }] }],
        allowedSources: { ipv4: [] },
      },
    },
  ];
  for (const { name, config, want } of cases) {
    it(name, () => {
      assert.deepEqual(planRules(config), want);
    });
  }

  it("plans identically whatever the input order", () => {
    const a = planRules({
      ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }, { protocol: "udp", port: 53, destinationPort: 53 }],
      destinationIps: ["10.43.0.10", "fd00::1", "10.43.0.2"],
      sourceRanges: ["10.0.0.0/8", "fd00::/8"],
    });
    const b = planRules({
      ports: [{ protocol: "udp", port: 53, destinationPort: 53 }, { protocol: "tcp", port: 80, destinationPort: 80 }],
      destinationIps: ["fd00::1", "10.43.0.2", "10.43.0.10"],
      sourceRanges: ["fd00::/8", "10.0.0.0/8"],
    });
    assert.equal(JSON.stringify(a), JSON.stringify(b));
  });

  const rejected: { name: string; config: LbPodConfig; message: string }[] = [
    { name: "a malformed destination", config: { ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: ["10.0.0.256"], sourceRanges: [] },
      message: 'destination IP: "10.0.0.256" is not a valid IP address' },
    { name: "a malformed source range", config: { ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: ["10.0.0.1"], sourceRanges: ["10.0.0.0/40"] },
      message: 'source range: "10.0.0.0/40" is not a valid CIDR: prefix length "40" is not a number from 0 to 32' },
    { name: "no ports", config: { ports: [], destinationIps: ["10.0.0.1"], sourceRanges: [] }, message: "no ports to forward" },
    { name: "no destinations", config: { ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: [], sourceRanges: [] },
      message: "no destination IPs to forward to" },
    { name: "a port out of range", config: { ports: [{ protocol: "tcp", port: 80, destinationPort: 0 }], destinationIps: ["10.0.0.1"], sourceRanges: [] },
      message: "ports: port 0 of tcp/80 is out of range (1-65535)" },
    { name: "one port with two destination ports",
      config: { ports: [{ protocol: "udp", port: 53, destinationPort: 53 }, { protocol: "udp", port: 53, destinationPort: 5353 }], destinationIps: ["10.0.0.1"], sourceRanges: [] },
      message: "ports: port udp/53 is listed twice with different destination ports (53 and 5353)" },
  ];
  for (const { name, config, message } of rejected) {
    it(`refuses to plan ${name}`, () => {
      assert.throws(() => planRules(config), (error: unknown) => error instanceof UsageError && error.message === message);
    });
  }
});
