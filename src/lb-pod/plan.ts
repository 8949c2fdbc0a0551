// The lb-pod's desired state as a pure function of its configuration. Renderers (src/lib/rules/render-*.ts) turn
// the plan into backend text; the same configuration always yields the same plan, so the same bytes on the wire.
import { AddressError, compareAddresses, parseCidr, parseIp, type Cidr, type IpAddress } from "../lib/addresses.js";
import { UsageError } from "../lib/errors.js";
import type { Family, Forward, LbPodConfig, PortConfig, RulePlan } from "../lib/rules/model.js";
import { checkNoConflictingPorts } from "./config.js";

const FAMILIES: readonly Family[] = ["ipv4", "ipv6"];

/**
 * Plans the lb-pod's rules (klipper-lb semantics, improved where noted):
 * - every port is forwarded, in each family that has destinations, to every destination IP of that family at the
 *   port's destinationPort (klipper-lb stacks one DNAT rule per destination with `-I`, so only the last one ever
 *   matches; berth spreads new connections evenly over all of them);
 * - `families` lists only families with at least one destination: the other family is never touched, so an
 *   IPv4-only Service works on a node whose kernel has IPv6 disabled (a servicelb pain point);
 * - source ranges: none = every source allowed (`allowedSources` empty). Otherwise each planned family gets its
 *   own ranges only, and a family with none of its own gets [] (all of its sources dropped), as kube-proxy applies
 *   loadBalancerSourceRanges; IPv4 ranges never reach IPv6 rules or the other way round.
 * Addresses are canonicalised (RFC 5952 IPv6, host bits cleared), duplicates removed, and everything sorted
 * (forwards by family, protocol name, port; addresses numerically, IPv4 first).
 * Throws UsageError for invalid addresses or one protocol/port with two destination ports, so a config built
 * without parseLbPodConfig is held to the same rules.
 */
export function planRules(config: LbPodConfig): RulePlan {
  const destinations = uniqueSorted(config.destinationIps.map((ip) => checked("destination IP", () => parseIp(ip))));
  const ranges = uniqueSorted(config.sourceRanges.map((range) => checked("source range", () => parseCidr(range))));
  const ports = uniquePorts(config.ports);
  if (ports.length === 0) throw new UsageError("no ports to forward");
  if (destinations.length === 0) throw new UsageError("no destination IPs to forward to");

  const families = FAMILIES.filter((family) => destinations.some((destination) => destination.family === family));
  const forwards: Forward[] = [];
  for (const family of families) {
    const targets = destinations.filter((destination) => destination.family === family);
    for (const port of ports) {
      forwards.push({
        family,
        protocol: port.protocol,
        port: port.port,
        destinations: targets.map((target) => ({ ip: target.text, port: port.destinationPort })),
      });
    }
  }

  const allowedSources: RulePlan["allowedSources"] = {};
  if (ranges.length > 0) {
    for (const family of families) {
      allowedSources[family] = ranges.filter((range) => range.family === family).map((range) => range.text);
    }
  }
  return { families, forwards, allowedSources };
}

function checked<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof AddressError) throw new UsageError(`${what}: ${error.message}`);
    throw error;
  }
}

function uniqueSorted<T extends IpAddress | Cidr>(items: T[]): T[] {
  const byText = new Map<string, T>();
  for (const item of items) byText.set(item.text, item);
  return [...byText.values()].sort(compareAddresses);
}

function uniquePorts(ports: PortConfig[]): PortConfig[] {
  for (const port of ports) {
    for (const value of [port.port, port.destinationPort]) {
      if (!Number.isInteger(value) || value < 1 || value > 65535) {
        throw new UsageError(`ports: port ${value} of ${port.protocol}/${port.port} is out of range (1-65535)`);
      }
    }
    if (!["tcp", "udp", "sctp"].includes(port.protocol)) throw new UsageError(`ports: unknown protocol "${port.protocol}"`);
  }
  checkNoConflictingPorts("ports", ports);
  const byKey = new Map<string, PortConfig>();
  for (const port of ports) byKey.set(`${port.protocol}/${port.port}`, { ...port });
  return [...byKey.values()].sort((a, b) =>
    (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0) || a.port - b.port);
}
