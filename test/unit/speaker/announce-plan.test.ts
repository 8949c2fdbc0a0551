import { strict as assert } from "node:assert";

import {
  addressLine,
  chooseInterface,
  deleteLine,
  gratuitousCommand,
  nextGratuitousDelay,
  parseLinks,
  type LinkInfo,
} from "../../../src/speaker/announce-plan.js";

// `ip -j address show` of a node with a LAN (eth0), a storage network (eth1), a down interface and one of our VIPs.
const IP_JSON = JSON.stringify([
  { ifname: "lo", flags: ["LOOPBACK", "UP"], address: "00:00:00:00:00:00", addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8 }] },
  {
    ifname: "eth0", flags: ["BROADCAST", "UP", "LOWER_UP"], address: "02:00:00:00:00:01",
    addr_info: [
      { family: "inet", local: "192.168.1.10", prefixlen: 24 },
      { family: "inet", local: "192.168.1.240", prefixlen: 32 },
      { family: "inet6", local: "fd00::10", prefixlen: 64 },
      { family: "inet6", local: "fe80::1", prefixlen: 64 },
    ],
  },
  { ifname: "eth1", flags: ["BROADCAST", "UP"], address: "02:00:00:00:00:02", addr_info: [{ family: "inet", local: "10.10.0.10", prefixlen: 16 }] },
  { ifname: "eth2", flags: ["BROADCAST"], address: "02:00:00:00:00:03", addr_info: [{ family: "inet", local: "172.16.0.10", prefixlen: 24 }] },
]);
const links: LinkInfo[] = parseLinks(IP_JSON);

describe("speaker: where an address goes", () => {
  const rows: { name: string; ip: string; allowed?: string[]; want: ReturnType<typeof chooseInterface> }[] = [
    { name: "no pool interfaces: the interface on the address's prefix", ip: "192.168.1.241", want: { ifname: "eth0", mac: "02:00:00:00:00:01", why: "onLinkPrefix" } },
    { name: "IPv6 by its global prefix, not the link-local one every interface has", ip: "fd00::240", want: { ifname: "eth0", mac: "02:00:00:00:00:01", why: "onLinkPrefix" } },
    { name: "our own /32 on eth0 is not a prefix: an address beside it still goes to eth0 by the /24", ip: "192.168.1.240", want: { ifname: "eth0", mac: "02:00:00:00:00:01", why: "onLinkPrefix" } },
    { name: "a second network: its own interface", ip: "10.10.3.3", want: { ifname: "eth1", mac: "02:00:00:00:00:02", why: "onLinkPrefix" } },
    { name: "no interface holds the prefix and the pool names none: not announced", ip: "203.0.113.5", want: { why: "noInterfaceOnPrefix" } },
    { name: "a down interface does not count", ip: "172.16.0.50", want: { why: "noInterfaceOnPrefix" } },
    { name: "the pool's interfaces only: the LAN address is not put on eth1 just because eth1 is allowed", ip: "192.168.1.241", allowed: ["eth1"], want: { ifname: "eth1", mac: "02:00:00:00:00:02", why: "allowedInterface" } },
    { name: "the pool's interfaces, one on the prefix", ip: "192.168.1.241", allowed: ["eth1", "eth0"], want: { ifname: "eth0", mac: "02:00:00:00:00:01", why: "onLinkPrefix" } },
    { name: "the pool names only interfaces this node lacks or has down", ip: "192.168.1.241", allowed: ["bond0", "eth2"], want: { why: "noAllowedInterface" } },
    { name: "loopback is never used", ip: "127.0.0.5", want: { why: "noInterfaceOnPrefix" } },
  ];
  for (const row of rows) it(row.name, () => assert.deepEqual(chooseInterface(row.ip, row.allowed, links), row.want));
});

describe("speaker: announce command lines", () => {
  it("IPv4: a host address with the lifetime, renewed by replace", () => {
    assert.equal(addressLine("192.168.1.240", "eth0", { lifetimeSec: 3 }), "address replace 192.168.1.240/32 dev eth0 valid_lft 3 preferred_lft 3");
  });
  it("IPv6: a host address, no DAD, deprecated at once so the kernel never picks it as a source", () => {
    assert.equal(addressLine("fd00::240", "eth0", { lifetimeSec: 3 }), "address replace fd00::240/128 dev eth0 valid_lft 3 preferred_lft 0 nodad");
  });
  it("removes exactly the host address it added", () => {
    assert.equal(deleteLine("192.168.1.240", "eth0"), "address del 192.168.1.240/32 dev eth0");
    assert.equal(deleteLine("fd00::240", "eth0"), "address del fd00::240/128 dev eth0");
  });
  it("IPv4 gratuitous ARP: unsolicited, from and for the VIP, without waiting for replies", () => {
    assert.deepEqual(gratuitousCommand("192.168.1.240", "eth0", "02:00:00:00:00:01"), {
      file: "arping", args: ["-q", "-U", "-c", "1", "-w", "0", "-i", "eth0", "-S", "192.168.1.240", "192.168.1.240"],
    });
  });
  it("IPv6 unsolicited NA: to all nodes, override flag, our link-layer address", () => {
    assert.deepEqual(gratuitousCommand("fd00::240", "eth0", "02:00:00:00:00:01"), {
      file: "na6", args: ["-i", "eth0", "-t", "fd00::240", "-d", "ff02::1", "-o", "-E", "02:00:00:00:00:01"],
    });
  });
});

describe("speaker: when gratuitous packets go out", () => {
  const config = { burstCount: 3, burstIntervalMs: 500, refreshIntervalMs: 30_000 };
  it("at once on takeover, then a burst, then the periodic refresh", () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((sent) => nextGratuitousDelay(sent, config)), [0, 500, 500, 500, 30_000, 30_000]);
  });
  it("no refresh when it is turned off", () => {
    assert.equal(nextGratuitousDelay(4, { ...config, refreshIntervalMs: 0 }), undefined);
  });
});
