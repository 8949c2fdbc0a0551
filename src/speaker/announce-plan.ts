// The announcer's pure decisions: on which interface an address goes, the exact `ip` and neighbour-packet command
// lines, and when the gratuitous packets go out. src/speaker/announcer.ts runs them. Why the address lives on the
// interface at all (and not in a user-space ARP responder) is docs/design/0015-how-the-speaker-announces.md.
import { familyOf, parseCidr } from "../lib/addresses.js";

/** One interface as `ip -j address show` reports it (the fields read). */
export interface LinkInfo {
  ifname: string;
  /** Link-layer address ("aa:bb:..."), for the NA's target link-layer option. */
  address?: string;
  up: boolean;
  addrs: { family: "inet" | "inet6"; local: string; prefixlen: number }[];
}

/** Parses `ip -j address show` output. */
export function parseLinks(json: string): LinkInfo[] {
  const raw = JSON.parse(json) as {
    ifname?: string; address?: string; flags?: string[]; operstate?: string;
    addr_info?: { family?: string; local?: string; prefixlen?: number }[];
  }[];
  return raw.filter((l) => typeof l.ifname === "string").map((l) => ({
    ifname: l.ifname!,
    ...(l.address ? { address: l.address } : {}),
    up: (l.flags ?? []).includes("UP"),
    addrs: (l.addr_info ?? [])
      .filter((a) => (a.family === "inet" || a.family === "inet6") && typeof a.local === "string" && typeof a.prefixlen === "number")
      .map((a) => ({ family: a.family as "inet" | "inet6", local: a.local!, prefixlen: a.prefixlen! })),
  }));
}

export type InterfaceChoice =
  | { ifname: string; mac?: string; why: "onLinkPrefix" | "allowedInterface" }
  | { ifname?: undefined; why: "noAllowedInterface" | "noInterfaceOnPrefix" };

/**
 * Where to put an address: among the pool's allowed interfaces (all but loopback when the pool lists none), the
 * first that is up and holds an on-link prefix containing the address, which is where neighbours will ask for it.
 * If the pool names interfaces and none holds such a prefix, the first allowed one that is up (the operator said so:
 * the address may sit on a LAN the node reaches only at layer 2). Host routes (/32, /128: our own VIPs) never count.
 */
export function chooseInterface(ip: string, allowed: readonly string[] | undefined, links: readonly LinkInfo[]): InterfaceChoice {
  const family = familyOf(ip) === "ipv4" ? "inet" : "inet6";
  const max = family === "inet" ? 32 : 128;
  const pool = allowed !== undefined && allowed.length > 0;
  const candidates = links.filter((l) => l.up && l.ifname !== "lo" && (!pool || allowed.includes(l.ifname)));
  if (pool) candidates.sort((a, b) => allowed.indexOf(a.ifname) - allowed.indexOf(b.ifname));
  for (const link of candidates) {
    for (const a of link.addrs) {
      if (a.family !== family || a.prefixlen >= max) continue;
      // Link-local prefixes (fe80::/64) are on every interface and say nothing about where a global VIP lives.
      if (family === "inet6" && a.local.toLowerCase().startsWith("fe80:")) continue;
      if (parseCidr(`${a.local}/${a.prefixlen}`).text === parseCidr(`${ip}/${a.prefixlen}`).text) {
        return { ifname: link.ifname, ...(link.address ? { mac: link.address } : {}), why: "onLinkPrefix" };
      }
    }
  }
  if (pool) {
    const first = candidates[0];
    if (first !== undefined) return { ifname: first.ifname, ...(first.address ? { mac: first.address } : {}), why: "allowedInterface" };
    return { why: "noAllowedInterface" };
  }
  return { why: "noInterfaceOnPrefix" };
}

export interface LifetimeConfig {
  /** valid_lft of every address we add: how long it outlives a dead or hung speaker. */
  lifetimeSec: number;
}

/**
 * The `ip -batch` line that adds or renews an address. `replace` both adds and refreshes the lifetimes. The address
 * is a host address (/32, /128) so it adds no prefix route and never becomes the source the kernel picks for the
 * LAN (routes carry the node's own address as their preferred source). IPv6: `nodad` (DAD would hold the address
 * tentative for ~1 s, and we send our own NA) and preferred_lft 0, which marks it deprecated so the kernel never
 * picks it as a source address, while it still answers NDP and accepts traffic for it.
 */
export function addressLine(ip: string, ifname: string, config: LifetimeConfig): string {
  if (familyOf(ip) === "ipv4") {
    return `address replace ${ip}/32 dev ${ifname} valid_lft ${config.lifetimeSec} preferred_lft ${config.lifetimeSec}`;
  }
  return `address replace ${ip}/128 dev ${ifname} valid_lft ${config.lifetimeSec} preferred_lft 0 nodad`;
}

export function deleteLine(ip: string, ifname: string): string {
  return `address del ${ip}/${familyOf(ip) === "ipv4" ? 32 : 128} dev ${ifname}`;
}

/**
 * The command that makes neighbours move their entry to this node at once.
 * IPv4: `arping -U` (Habets' arping, Debian's `arping` package): an unsolicited ARP request, sender and target the
 * VIP, to broadcast; `-w 0` returns right after sending instead of waiting a second for replies none will send.
 * IPv6: ipv6toolkit's `na6`: an unsolicited NA to all-nodes with the override flag and our link-layer address; the
 * kernel sends one only after DAD and with ndisc_notify set (a host-wide setting we must not change).
 * An existing neighbour entry is updated; none is created (RFC 826 / RFC 4861), which is what we want.
 */
export function gratuitousCommand(ip: string, ifname: string, mac: string | undefined): { file: string; args: string[] } {
  if (familyOf(ip) === "ipv4") return { file: "arping", args: ["-q", "-U", "-c", "1", "-w", "0", "-i", ifname, "-S", ip, ip] };
  return { file: "na6", args: ["-i", ifname, "-t", ip, "-d", "ff02::1", "-o", ...(mac ? ["-E", mac] : [])] };
}

export interface GratuitousConfig {
  /** Packets after the first, at burstIntervalMs apart (MetalLB sends for 5 s, every 1.1 s). */
  burstCount: number;
  burstIntervalMs: number;
  /** Then one every refreshIntervalMs while we own the address (0 = never): stale switch tables heal by themselves. */
  refreshIntervalMs: number;
}

/** Delay, from now, of the next gratuitous packet for an address announced `sent` times so far (0 = takeover). */
export function nextGratuitousDelay(sent: number, config: GratuitousConfig): number | undefined {
  if (sent === 0) return 0;
  if (sent <= config.burstCount) return config.burstIntervalMs;
  return config.refreshIntervalMs > 0 ? config.refreshIntervalMs : undefined;
}
