// The lb-pod's input: klipper-lb's environment contract, berth's own multi-port contract, and CLI flags on top.
// Pure: the environment is passed in, never read from process.env here.
import { AddressError, familyOf, parseCidr, parseIp } from "../lib/addresses.js";
import { UsageError } from "../lib/errors.js";
import type { Family, LbPodConfig, PortConfig, Protocol } from "../lib/rules/model.js";

/** Environment variables the lb-pod reads. The controller writes the same names into the DaemonSet. */
export const LB_POD_ENV = {
  /** berth: every port of the Service, `<protocol>:<port>:<destPort>` separated by commas and/or spaces. */
  ports: "BERTH_PORTS",
  /** Both contracts: destination IPs (either family, mixed), separated by commas and/or spaces. */
  destinationIps: "DEST_IPS",
  /** Both contracts: allowed source CIDRs; unset or empty = every source allowed. */
  sourceRanges: "SRC_RANGES",
  /** klipper-lb: the one port this container receives. */
  klipperSourcePort: "SRC_PORT",
  /** klipper-lb: the port traffic is DNATed to. */
  klipperDestinationPort: "DEST_PORT",
  /** klipper-lb: TCP, UDP or SCTP (k3s writes the ServicePort's protocol, upper case). */
  klipperProtocol: "DEST_PROTO",
  /**
   * berth: the Service's families (`IPv4,IPv6` as spec.ipFamilies spells them). Destination IPs of other families
   * are ignored. Needed for externalTrafficPolicy Local, where DEST_IPS comes from the downward API's
   * status.hostIPs and so lists every node IP, also of families the Service does not have.
   */
  families: "BERTH_FAMILIES",
} as const;

/** CLI flag spellings, used in error messages; the command that defines the flags should use the same ones. */
export const LB_POD_FLAGS = {
  ports: "--port",
  destinationIps: "--destination-ip",
  sourceRanges: "--source-range",
} as const;

/**
 * CLI flags. Each one, when given (not undefined), replaces the corresponding environment input entirely; every
 * element may itself hold several values separated by commas and/or spaces. `ports` use BERTH_PORTS syntax.
 */
export interface LbPodFlags {
  ports?: string[];
  destinationIps?: string[];
  sourceRanges?: string[];
}

const PROTOCOLS: readonly Protocol[] = ["tcp", "udp", "sctp"];

/**
 * Turns the lb-pod's environment (and optional CLI flags) into a validated LbPodConfig with canonical addresses
 * (IPv6 in RFC 5952 form, CIDR host bits cleared; see src/lib/addresses.ts for what is accepted and why).
 *
 * Contract selection: flags.ports, if given, supply the ports; else BERTH_PORTS if it is set and not blank; else
 * klipper-lb's SRC_PORT / DEST_PORT / DEST_PROTO (one port; DEST_PROTO defaults to TCP, Kubernetes' default
 * ServicePort protocol). DEST_IPS and SRC_RANGES are shared by both contracts (flags override them).
 *
 * Differences from klipper-lb's entry script, on purpose: klipper-lb with SRC_RANGES unset adds only its DROP
 * rules, so it forwards nothing; here an unset or empty SRC_RANGES means "allow every source", the meaning of an
 * empty spec.loadBalancerSourceRanges (k3s always passes a value, "0.0.0.0/0" by default, so k3s-made pods behave
 * the same). Input klipper-lb would hand to iptables unchecked is validated here instead.
 *
 * Throws UsageError with one line naming the variable or flag and the bad value: a port that is not a number or is
 * outside 1-65535, an unknown protocol, a malformed IP or CIDR, no ports, no destination IPs, the same
 * protocol and port listed twice with different destination ports. Exact duplicates are accepted (the planner
 * deduplicates them).
 */
export function parseLbPodConfig(env: Record<string, string | undefined>, flags: LbPodFlags = {}): LbPodConfig {
  const { where, ports } = parsePorts(env, flags);
  checkNoConflictingPorts(where, ports);

  const destinations = flags.destinationIps !== undefined
    ? { where: LB_POD_FLAGS.destinationIps, values: splitAll(flags.destinationIps) }
    : { where: LB_POD_ENV.destinationIps, values: splitList(env[LB_POD_ENV.destinationIps]) };
  if (destinations.values.length === 0) {
    throw new UsageError(`no destination IPs: ${destinations.where} is empty (it must list the ClusterIPs or node IPs to forward to)`);
  }
  const allDestinationIps = destinations.values.map((value) => addressOrUsageError(destinations.where, value, () => parseIp(value).text));
  const families = parseFamilies(env[LB_POD_ENV.families]);
  const destinationIps = families === undefined ? allDestinationIps : allDestinationIps.filter((ip) => families.includes(familyOf(ip)));
  if (destinationIps.length === 0) {
    throw new UsageError(`no destination IPs: ${destinations.where} (${allDestinationIps.join(",")}) holds none of the families in ${LB_POD_ENV.families} (${env[LB_POD_ENV.families]})`);
  }

  const ranges = flags.sourceRanges !== undefined
    ? { where: LB_POD_FLAGS.sourceRanges, values: splitAll(flags.sourceRanges) }
    : { where: LB_POD_ENV.sourceRanges, values: splitList(env[LB_POD_ENV.sourceRanges]) };
  const sourceRanges = ranges.values.map((value) => addressOrUsageError(ranges.where, value, () => parseCidr(value).text));

  return { ports, destinationIps, sourceRanges };
}

/** BERTH_FAMILIES: undefined when unset or blank (every family kept); IPv4/IPv6 in any letter case. */
function parseFamilies(text: string | undefined): Family[] | undefined {
  const names = splitList(text);
  if (names.length === 0) return undefined;
  return names.map((name) => {
    const family = name.toLowerCase();
    if (family !== "ipv4" && family !== "ipv6") {
      throw new UsageError(`${LB_POD_ENV.families}: unknown family "${name}" (expected IPv4 or IPv6)`);
    }
    return family;
  });
}

/** Parses one BERTH_PORTS entry, `<protocol>:<port>:<destPort>` (protocol case-insensitive). */
export function parsePortSpec(where: string, spec: string): PortConfig {
  const parts = spec.split(":");
  if (parts.length !== 3) {
    throw new UsageError(`${where}: "${spec}" is not <protocol>:<port>:<destPort> (for example tcp:80:80)`);
  }
  const [protocol, port, destinationPort] = parts as [string, string, string];
  return {
    protocol: parseProtocol(`${where} "${spec}"`, protocol),
    port: parsePort(`${where} "${spec}"`, port),
    destinationPort: parsePort(`${where} "${spec}"`, destinationPort),
  };
}

function parsePorts(env: Record<string, string | undefined>, flags: LbPodFlags): { where: string; ports: PortConfig[] } {
  if (flags.ports !== undefined) {
    const specs = splitAll(flags.ports);
    if (specs.length === 0) throw new UsageError(`no ports: ${LB_POD_FLAGS.ports} was given no value`);
    return { where: LB_POD_FLAGS.ports, ports: specs.map((spec) => parsePortSpec(LB_POD_FLAGS.ports, spec)) };
  }
  const berthPorts = env[LB_POD_ENV.ports];
  if (berthPorts !== undefined && berthPorts.trim() !== "") {
    return { where: LB_POD_ENV.ports, ports: splitList(berthPorts).map((spec) => parsePortSpec(LB_POD_ENV.ports, spec)) };
  }
  const sourcePort = env[LB_POD_ENV.klipperSourcePort];
  if (sourcePort === undefined || sourcePort.trim() === "") {
    throw new UsageError(`no ports: set ${LB_POD_ENV.ports} (berth) or ${LB_POD_ENV.klipperSourcePort}, ` +
      `${LB_POD_ENV.klipperDestinationPort} and ${LB_POD_ENV.klipperProtocol} (klipper-lb), or pass ${LB_POD_FLAGS.ports}`);
  }
  const destinationPort = env[LB_POD_ENV.klipperDestinationPort];
  if (destinationPort === undefined || destinationPort.trim() === "") {
    throw new UsageError(`${LB_POD_ENV.klipperDestinationPort} is not set (klipper-lb contract: ${LB_POD_ENV.klipperSourcePort} is "${sourcePort}")`);
  }
  const protocol = env[LB_POD_ENV.klipperProtocol];
  return {
    where: LB_POD_ENV.klipperSourcePort,
    ports: [{
      protocol: protocol === undefined || protocol.trim() === "" ? "tcp" : parseProtocol(LB_POD_ENV.klipperProtocol, protocol.trim()),
      port: parsePort(LB_POD_ENV.klipperSourcePort, sourcePort.trim()),
      destinationPort: parsePort(LB_POD_ENV.klipperDestinationPort, destinationPort.trim()),
    }],
  };
}

function parseProtocol(where: string, text: string): Protocol {
  const protocol = text.toLowerCase();
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) {
    throw new UsageError(`${where}: unknown protocol "${text}" (expected TCP, UDP or SCTP)`);
  }
  return protocol as Protocol;
}

function parsePort(where: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${where}: port "${text}" is not a number`);
  const port = Number(text);
  if (port < 1 || port > 65535) throw new UsageError(`${where}: port ${text} is out of range (1-65535)`);
  return port;
}

/** Two entries for one protocol and port cannot both be honoured: the first DNAT rule would win silently. */
export function checkNoConflictingPorts(where: string, ports: PortConfig[]): void {
  const seen = new Map<string, PortConfig>();
  for (const port of ports) {
    const key = `${port.protocol}/${port.port}`;
    const earlier = seen.get(key);
    if (earlier && earlier.destinationPort !== port.destinationPort) {
      throw new UsageError(`${where}: port ${key} is listed twice with different destination ports (${earlier.destinationPort} and ${port.destinationPort})`);
    }
    seen.set(key, port);
  }
}

function addressOrUsageError(where: string, value: string, parse: () => string): string {
  try {
    return parse();
  } catch (error) {
    if (error instanceof AddressError) throw new UsageError(`${where}: ${error.message}`);
    throw error;
  }
}

/** klipper-lb splits lists on spaces (`for x in ${VAR//,/ }`): commas, spaces, tabs and newlines all separate. */
function splitList(value: string | undefined): string[] {
  return (value ?? "").split(/[\s,]+/).filter((part) => part !== "");
}

function splitAll(values: string[]): string[] {
  return values.flatMap((value) => splitList(value));
}
