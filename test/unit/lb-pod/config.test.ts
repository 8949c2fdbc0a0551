import { strict as assert } from "node:assert";

import { parseLbPodConfig, type LbPodFlags } from "../../../src/lb-pod/config.js";
import { UsageError } from "../../../src/lib/errors.js";
import type { LbPodConfig } from "../../../src/lib/rules/model.js";

type Env = Record<string, string | undefined>;

describe("lb-pod configuration", () => {
  const accepted: { name: string; env: Env; flags?: LbPodFlags; want: LbPodConfig }[] = [
    {
      name: "reads klipper-lb's contract as k3s writes it (upper-case protocol, default source range)",
      env: { SRC_PORT: "80", DEST_PROTO: "TCP", DEST_PORT: "80", DEST_IPS: "10.43.0.10", SRC_RANGES: "0.0.0.0/0" },
      want: { ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: ["10.43.0.10"], sourceRanges: ["0.0.0.0/0"] },
    },
    {
      name: "splits klipper-lb lists on commas and spaces alike, dual-stack destinations included",
      env: { SRC_PORT: "53", DEST_PROTO: "UDP", DEST_PORT: "30053", DEST_IPS: "10.43.0.10, fd00:43::a  10.43.0.11",
        SRC_RANGES: "10.0.0.0/8,\t192.168.0.0/16 fd00::/8" },
      want: {
        ports: [{ protocol: "udp", port: 53, destinationPort: 30053 }],
        destinationIps: ["10.43.0.10", "fd00:43::a", "10.43.0.11"],
        sourceRanges: ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"],
      },
    },
    {
      name: "defaults DEST_PROTO to TCP, Kubernetes' default ServicePort protocol",
      env: { SRC_PORT: "443", DEST_PORT: "443", DEST_IPS: "10.43.0.10" },
      want: { ports: [{ protocol: "tcp", port: 443, destinationPort: 443 }], destinationIps: ["10.43.0.10"], sourceRanges: [] },
    },
    {
      name: "treats an unset or blank SRC_RANGES as 'allow every source'",
      env: { SRC_PORT: "80", DEST_PORT: "80", DEST_PROTO: "tcp", DEST_IPS: "10.43.0.10", SRC_RANGES: "  " },
      want: { ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: ["10.43.0.10"], sourceRanges: [] },
    },
    {
      name: "reads berth's multi-port contract, protocols case-insensitive, and prefers it to klipper-lb's",
      env: { BERTH_PORTS: "tcp:80:80, UDP:53:30053 Sctp:9999:9999", SRC_PORT: "1", DEST_PORT: "1",
        DEST_IPS: "10.43.0.10,fd00:43::a", SRC_RANGES: "" },
      want: {
        ports: [
          { protocol: "tcp", port: 80, destinationPort: 80 },
          { protocol: "udp", port: 53, destinationPort: 30053 },
          { protocol: "sctp", port: 9999, destinationPort: 9999 },
        ],
        destinationIps: ["10.43.0.10", "fd00:43::a"],
        sourceRanges: [],
      },
    },
    {
      name: "keeps only the destination IPs of the families in BERTH_FAMILIES (Local: status.hostIPs lists every node IP)",
      env: { BERTH_PORTS: "tcp:80:30080", DEST_IPS: "192.168.1.11,fd00::11", BERTH_FAMILIES: "IPv4" },
      want: { ports: [{ protocol: "tcp", port: 80, destinationPort: 30080 }], destinationIps: ["192.168.1.11"], sourceRanges: [] },
    },
    {
      name: "keeps every family when BERTH_FAMILIES names both, in any letter case",
      env: { BERTH_PORTS: "tcp:80:30080", DEST_IPS: "192.168.1.11,fd00::11", BERTH_FAMILIES: "ipv6, IPV4" },
      want: { ports: [{ protocol: "tcp", port: 80, destinationPort: 30080 }], destinationIps: ["192.168.1.11", "fd00::11"], sourceRanges: [] },
    },
    {
      name: "canonicalises addresses: RFC 5952 IPv6, host bits cleared, a bare address is one host",
      env: { BERTH_PORTS: "tcp:80:80", DEST_IPS: "FD00:0043:0:0:0:0:0:000A", SRC_RANGES: "10.1.2.3/8 192.168.1.7 2001:DB8::1/32 2001:db8::5" },
      want: {
        ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }],
        destinationIps: ["fd00:43::a"],
        sourceRanges: ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32", "2001:db8::5/128"],
      },
    },
    {
      name: "accepts the same port listed twice with the same destination",
      env: { BERTH_PORTS: "tcp:80:80,TCP:80:80", DEST_IPS: "10.43.0.10" },
      want: {
        ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }, { protocol: "tcp", port: 80, destinationPort: 80 }],
        destinationIps: ["10.43.0.10"], sourceRanges: [],
      },
    },
    {
      name: "lets flags replace each environment input, values split like the environment's",
      env: { BERTH_PORTS: "tcp:80:80", DEST_IPS: "10.43.0.10", SRC_RANGES: "10.0.0.0/8" },
      flags: { ports: ["udp:53:53,tcp:8080:80"], destinationIps: ["10.43.0.99", "fd00::1"], sourceRanges: [] },
      want: {
        ports: [{ protocol: "udp", port: 53, destinationPort: 53 }, { protocol: "tcp", port: 8080, destinationPort: 80 }],
        destinationIps: ["10.43.0.99", "fd00::1"], sourceRanges: [],
      },
    },
    {
      name: "lets flags supply everything with no environment at all",
      env: {},
      flags: { ports: ["tcp:80:80"], destinationIps: ["10.43.0.10"], sourceRanges: ["192.0.2.0/24"] },
      want: { ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: ["10.43.0.10"], sourceRanges: ["192.0.2.0/24"] },
    },
    {
      name: "keeps environment inputs whose flag was not given",
      env: { DEST_IPS: "10.43.0.10", SRC_RANGES: "10.0.0.0/8" },
      flags: { ports: ["tcp:80:80"] },
      want: { ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }], destinationIps: ["10.43.0.10"], sourceRanges: ["10.0.0.0/8"] },
    },
  ];
  for (const { name, env, flags, want } of accepted) {
    it(name, () => {
      assert.deepEqual(parseLbPodConfig(env, flags), want);
    });
  }

  const klipper = { SRC_PORT: "80", DEST_PROTO: "TCP", DEST_PORT: "80", DEST_IPS: "10.43.0.10" };
  const berth = { BERTH_PORTS: "tcp:80:80", DEST_IPS: "10.43.0.10" };
  const rejected: { name: string; env: Env; flags?: LbPodFlags; message: string }[] = [
    { name: "an unknown family in BERTH_FAMILIES", env: { ...berth, BERTH_FAMILIES: "IPv4,inet6" },
      message: 'BERTH_FAMILIES: unknown family "inet6" (expected IPv4 or IPv6)' },
    { name: "no destination IP of the families in BERTH_FAMILIES", env: { ...berth, BERTH_FAMILIES: "IPv6" },
      message: "no destination IPs: DEST_IPS (10.43.0.10) holds none of the families in BERTH_FAMILIES (IPv6)" },
    { name: "no port in either contract", env: { DEST_IPS: "10.43.0.10" },
      message: "no ports: set BERTH_PORTS (berth) or SRC_PORT, DEST_PORT and DEST_PROTO (klipper-lb), or pass --port" },
    { name: "a port flag with no value", env: berth, flags: { ports: [" , "] }, message: "no ports: --port was given no value" },
    { name: "klipper-lb's SRC_PORT without DEST_PORT", env: { ...klipper, DEST_PORT: undefined },
      message: 'DEST_PORT is not set (klipper-lb contract: SRC_PORT is "80")' },
    { name: "a SRC_PORT that is not a number", env: { ...klipper, SRC_PORT: "http" }, message: 'SRC_PORT: port "http" is not a number' },
    { name: "a SRC_PORT holding two ports", env: { ...klipper, SRC_PORT: "80,443" }, message: 'SRC_PORT: port "80,443" is not a number' },
    { name: "a DEST_PORT out of range", env: { ...klipper, DEST_PORT: "65536" }, message: "DEST_PORT: port 65536 is out of range (1-65535)" },
    { name: "port zero", env: { ...klipper, SRC_PORT: "0" }, message: "SRC_PORT: port 0 is out of range (1-65535)" },
    { name: "an unknown DEST_PROTO", env: { ...klipper, DEST_PROTO: "ICMP" }, message: 'DEST_PROTO: unknown protocol "ICMP" (expected TCP, UDP or SCTP)' },
    { name: "a BERTH_PORTS entry with two fields", env: { ...berth, BERTH_PORTS: "tcp:80" },
      message: 'BERTH_PORTS: "tcp:80" is not <protocol>:<port>:<destPort> (for example tcp:80:80)' },
    { name: "a BERTH_PORTS entry with an unknown protocol", env: { ...berth, BERTH_PORTS: "tcp:80:80,quic:443:443" },
      message: 'BERTH_PORTS "quic:443:443": unknown protocol "quic" (expected TCP, UDP or SCTP)' },
    { name: "a BERTH_PORTS destination port out of range", env: { ...berth, BERTH_PORTS: "udp:53:70000" },
      message: 'BERTH_PORTS "udp:53:70000": port 70000 is out of range (1-65535)' },
    { name: "a BERTH_PORTS port that is not a number", env: { ...berth, BERTH_PORTS: "udp:-1:53" },
      message: 'BERTH_PORTS "udp:-1:53": port "-1" is not a number' },
    { name: "a --port flag that is malformed", env: berth, flags: { ports: ["tcp:80:80:80"] },
      message: '--port: "tcp:80:80:80" is not <protocol>:<port>:<destPort> (for example tcp:80:80)' },
    { name: "one port listed twice with different destinations", env: { ...berth, BERTH_PORTS: "tcp:80:8080 TCP:80:9090" },
      message: "BERTH_PORTS: port tcp/80 is listed twice with different destination ports (8080 and 9090)" },
    { name: "no destination IPs", env: { ...berth, DEST_IPS: " " },
      message: "no destination IPs: DEST_IPS is empty (it must list the ClusterIPs or node IPs to forward to)" },
    { name: "an empty destination flag", env: berth, flags: { destinationIps: [] },
      message: "no destination IPs: --destination-ip is empty (it must list the ClusterIPs or node IPs to forward to)" },
    { name: "a malformed destination IP", env: { ...berth, DEST_IPS: "10.43.0.10,10.43.0.300" },
      message: 'DEST_IPS: "10.43.0.300" is not a valid IP address' },
    { name: "a destination IP with a leading zero", env: { ...berth, DEST_IPS: "10.043.0.1" },
      message: 'DEST_IPS: "10.043.0.1" has an octet with a leading zero, which is ambiguous (octal or decimal?)' },
    { name: "a destination given as a CIDR", env: { ...berth, DEST_IPS: "10.43.0.0/16" },
      message: 'DEST_IPS: "10.43.0.0/16" is not a valid IP address' },
    { name: "a malformed IPv6 destination", env: { ...berth, DEST_IPS: "fd00::1::2" },
      message: 'DEST_IPS: "fd00::1::2" is not a valid IPv6 address' },
    { name: "an IPv4-mapped IPv6 destination", env: { ...berth, DEST_IPS: "::ffff:10.43.0.10" },
      message: 'DEST_IPS: "::ffff:10.43.0.10" is an IPv4-mapped IPv6 address; write the IPv4 address 10.43.0.10 instead' },
    { name: "an IPv6 destination with a zone", env: { ...berth, DEST_IPS: "fe80::1%eth0" },
      message: 'DEST_IPS: "fe80::1%eth0" carries an IPv6 zone identifier, which is not allowed' },
    { name: "a malformed destination flag", env: berth, flags: { destinationIps: ["example.com"] },
      message: '--destination-ip: "example.com" is not a valid IP address' },
    { name: "a CIDR prefix length too long", env: { ...berth, SRC_RANGES: "10.0.0.0/33" },
      message: 'SRC_RANGES: "10.0.0.0/33" is not a valid CIDR: prefix length "33" is not a number from 0 to 32' },
    { name: "an IPv6 CIDR prefix length too long", env: { ...berth, SRC_RANGES: "fd00::/129" },
      message: 'SRC_RANGES: "fd00::/129" is not a valid CIDR: prefix length "129" is not a number from 0 to 128' },
    { name: "a CIDR with an empty prefix length", env: { ...berth, SRC_RANGES: "10.0.0.0/" },
      message: 'SRC_RANGES: "10.0.0.0/" is not a valid CIDR: prefix length "" is not a number from 0 to 32' },
    { name: "a CIDR with a malformed address", env: { ...berth, SRC_RANGES: "10.0.0/8" },
      message: 'SRC_RANGES: "10.0.0/8" is not a valid CIDR: "10.0.0" is not a valid IP address' },
    { name: "a malformed source range flag", env: berth, flags: { sourceRanges: ["10.0.0.0/8", "any"] },
      message: '--source-range: "any" is not a valid CIDR: "any" is not a valid IP address' },
  ];
  for (const { name, env, flags, message } of rejected) {
    it(`rejects ${name} with one line naming the input`, () => {
      assert.throws(() => parseLbPodConfig(env, flags), (error: unknown) => {
        assert.ok(error instanceof UsageError, `expected a UsageError, got ${String(error)}`);
        assert.equal(error.message, message);
        assert.ok(!error.message.includes("\n"));
        return true;
      });
    });
  }
});
