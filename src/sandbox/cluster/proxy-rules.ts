// The sandbox's kube-proxy (iptables mode) and CNI portmap (hostPort) stand-ins, as a pure function: Services,
// EndpointSlices and Pods in, the iptables rules of ONE node and ONE address family out, rendered as input for
// `iptables-restore --noflush` (ip6tables-restore for IPv6). proxy.ts runs the text in each node's namespace.
//
// What it reproduces of kube-proxy's iptables proxier (pkg/proxy/iptables/proxier.go), with the same chain layout
// under our own names (KUBE-SERVICES -> BSB-SERVICES, KUBE-SVC-* -> BSB-SVC-*, and so on):
// - ClusterIP:port -> ready endpoints, spread with `statistic --mode random` (probability 1/n, 1/(n-1), ...);
//   traffic to a ClusterIP from outside the cluster CIDR is masqueraded (masqueradeAll=false with a local
//   detector), and so is an endpoint reaching itself (hairpin, the `-s <endpoint>` rule in each SEP chain);
// - NodePorts on the node's own LAN IPs (as `--nodeport-addresses primary`), spec.externalIPs, and every
//   status.loadBalancer.ingress IP whose ipMode is VIP or unset (KEP-1860), unless captureLoadBalancerIps is off;
// - externalTrafficPolicy: Cluster masquerades and uses every ready endpoint; Local uses only this node's ready
//   endpoints without SNAT (client address kept) and drops the traffic when there are none, while traffic from
//   pods (the cluster CIDR) and from the node itself takes the cluster-wide chain, as kube-proxy's "pod traffic for
//   external destinations" and `--src-type LOCAL` rules do (with a local detector, i.e. --cluster-cidr set, as k3s
//   and kubeadm set it). Consequence: traffic an lb-pod DNATs to its node's IP:NodePort (Local) and masquerades to
//   its own pod IP is pod traffic, so kube-proxy sends it to endpoints on ANY node, exactly as on a real cluster;
// - loadBalancerSourceRanges (spec field, as kube-proxy reads it): a FW chain lets the listed ranges (of this
//   family) and the LB IP itself through and marks the rest for DROP (KUBE-MARK-DROP, filter-table drop);
// - a ClusterIP, external IP or NodePort with no ready endpoints is REJECTed in the filter table.
// What it leaves out: session affinity, internalTrafficPolicy, terminating-endpoint fallback, topology hints,
// loadBalancerSourceRanges from the annotation (kube-proxy reads only the field), healthCheckNodePort, SCTP
// specifics, and localhost NodePorts. Stale UDP conntrack entries are cleared as kube-proxy does (staleUdpFlows).
//
// What it reproduces of the CNI portmap plugin (containernetworking/plugins, plugins/meta/portmap): for each pod on
// the node with hostPorts and an IP of this family, traffic to a LOCAL destination (dst-type LOCAL; hostIP when the
// port sets one) on the hostPort and protocol is DNATed to podIP:containerPort, and a pod reaching its own hostPort
// (hairpin) is masqueraded (portmap's 0x2000 SETMARK). The hostPort chain runs AFTER the services chain: kube-proxy
// installs its jump first, so on a real cluster it captures LB IPs before the hostPort rule (docs/architecture.md, "How traffic really flows").
//
// Ruleset shape: all our chains are declared `:CHAIN - [0:0]` (created or flushed in the same transaction) and
// rewritten whole, so a sync replaces everything atomically; chains no longer used are flushed and then deleted
// (`-X`) after the parent chains stopped referring to them; jumps from built-in chains are added only when missing.
import { createHash } from "node:crypto";

import { compareAddresses, parseCidr, parseIp } from "../../lib/addresses.js";
import type { Family } from "../../lib/rules/model.js";
import { ENDPOINTSLICE_SERVICE_LABEL, type EndpointSlice, type Pod, type Service } from "./endpoints.js";

/** Chains every node has (both tables), whatever the Services. */
export const PROXY_CHAINS = {
  services: "BSB-SERVICES",
  nodePorts: "BSB-NODEPORTS",
  postrouting: "BSB-POSTROUTING",
  markMasq: "BSB-MARK-MASQ",
  markDrop: "BSB-MARK-DROP",
  hostPorts: "BSB-HOSTPORTS",
  hostPortSetMark: "BSB-HOSTPORT-SETMARK",
  firewall: "BSB-FIREWALL",
} as const;

/** kube-proxy's marks (masquerade bit 14, drop bit 15) and portmap's hairpin mark. */
const MASQ_MARK = "0x4000";
const DROP_MARK = "0x8000";
const HOSTPORT_MARK = "0x2000";

export type Table = "nat" | "filter";

export interface TableRules {
  /** Every chain of ours this table should have, base chains first. */
  chains: string[];
  /** `-A CHAIN ...` lines, in order. */
  rules: string[];
}

/** A UDP way in (an address and port as the client sends to) and the endpoints behind it, for conntrack cleanup. */
export interface UdpEntry {
  ip: string;
  port: number;
  endpoints: string[];
}

export type ProxyRules = Record<Table, TableRules> & {
  /** UDP entry points with endpoints, sorted (not rules: what staleUdpFlows compares between two syncs). */
  udp: UdpEntry[];
};

export interface ProxyRulesInput {
  family: Family;
  /** The node these rules are for (Node name, to pick its endpoints and pods). */
  nodeName: string;
  /** The node's own IPs of this family (NodePorts listen there). */
  nodeIps: string[];
  /** The cluster CIDR of this family (kube-proxy's local detector). */
  clusterCidr: string;
  services: readonly Service[];
  endpointSlices: readonly EndpointSlice[];
  pods: readonly Pod[];
  /** Install rules for status.loadBalancer.ingress IPs (kube-proxy does); off = leave LB traffic to hostPorts. */
  captureLoadBalancerIps: boolean;
}

interface Endpoint {
  ip: string;
  port: number;
  nodeName: string | undefined;
}

/** The jumps from built-in chains into ours, in the order they must appear (services before hostPorts). */
export const PROXY_JUMPS: Record<Table, { chain: string; match: string; target: string }[]> = {
  nat: [
    { chain: "PREROUTING", match: "", target: PROXY_CHAINS.services },
    { chain: "OUTPUT", match: "", target: PROXY_CHAINS.services },
    { chain: "PREROUTING", match: "-m addrtype --dst-type LOCAL", target: PROXY_CHAINS.hostPorts },
    { chain: "OUTPUT", match: "-m addrtype --dst-type LOCAL", target: PROXY_CHAINS.hostPorts },
    { chain: "POSTROUTING", match: "", target: PROXY_CHAINS.postrouting },
  ],
  filter: [
    { chain: "INPUT", match: "-m conntrack --ctstate NEW", target: PROXY_CHAINS.services },
    { chain: "FORWARD", match: "-m conntrack --ctstate NEW", target: PROXY_CHAINS.services },
    { chain: "OUTPUT", match: "-m conntrack --ctstate NEW", target: PROXY_CHAINS.services },
    { chain: "INPUT", match: "", target: PROXY_CHAINS.firewall },
    { chain: "FORWARD", match: "", target: PROXY_CHAINS.firewall },
    { chain: "OUTPUT", match: "", target: PROXY_CHAINS.firewall },
  ],
};

/** Plans one node's rules for one family. Deterministic: same input, same text. */
export function planProxyRules(input: ProxyRulesInput): ProxyRules {
  const nat: TableRules = {
    chains: [PROXY_CHAINS.services, PROXY_CHAINS.nodePorts, PROXY_CHAINS.postrouting, PROXY_CHAINS.markMasq, PROXY_CHAINS.markDrop, PROXY_CHAINS.hostPorts, PROXY_CHAINS.hostPortSetMark],
    rules: [
      `-A ${PROXY_CHAINS.markMasq} -j MARK --or-mark ${MASQ_MARK}`,
      `-A ${PROXY_CHAINS.markDrop} -j MARK --or-mark ${DROP_MARK}`,
      `-A ${PROXY_CHAINS.hostPortSetMark} -j MARK --or-mark ${HOSTPORT_MARK}`,
      `-A ${PROXY_CHAINS.postrouting} -m mark --mark ${HOSTPORT_MARK}/${HOSTPORT_MARK} -j MASQUERADE`,
      `-A ${PROXY_CHAINS.postrouting} -m mark ! --mark ${MASQ_MARK}/${MASQ_MARK} -j RETURN`,
      `-A ${PROXY_CHAINS.postrouting} -j MARK --xor-mark ${MASQ_MARK}`,
      `-A ${PROXY_CHAINS.postrouting} -j MASQUERADE`,
    ],
  };
  const filter: TableRules = {
    chains: [PROXY_CHAINS.services, PROXY_CHAINS.firewall],
    rules: [`-A ${PROXY_CHAINS.firewall} -m mark --mark ${DROP_MARK}/${DROP_MARK} -j DROP`],
  };
  const { family } = input;
  const host = (ip: string): string => `${ip}/${family === "ipv4" ? 32 : 128}`;
  const dnatTo = (ip: string, port: number): string => (family === "ipv4" ? `${ip}:${port}` : `[${ip}]:${port}`);
  const serviceRules: string[] = [];
  const nodePortRules: string[] = [];
  const perServiceChains: string[] = [];
  const perServiceRules: string[] = [];
  const udp: UdpEntry[] = [];

  for (const svc of sortedByKey(input.services)) {
    const spec = svc.spec;
    const ns = svc.metadata?.namespace ?? "default";
    const name = svc.metadata?.name ?? "";
    if (!spec || spec.type === "ExternalName") continue;
    const clusterIps = (spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : []).filter(
      (ip) => ip !== "None" && ip !== "" && familyOfIp(ip) === family,
    );
    if (clusterIps.length === 0) continue; // headless, or not of this family
    const local = spec.externalTrafficPolicy === "Local";
    const externalIps = (spec.externalIPs ?? []).filter((ip) => familyOfIp(ip) === family);
    const lbIps = input.captureLoadBalancerIps
      ? (svc.status?.loadBalancer?.ingress ?? [])
          .filter((ingress) => ingress.ip && (ingress.ipMode === undefined || ingress.ipMode === "VIP"))
          .map((ingress) => ingress.ip as string)
          .filter((ip) => familyOfIp(ip) === family)
      : [];
    const ranges = (spec.loadBalancerSourceRanges ?? []).filter((range) => range.trim() !== "");
    const rangesOfFamily = rangesOf(ranges, family);

    for (const port of spec.ports ?? []) {
      const protocol = (port.protocol ?? "TCP").toLowerCase();
      const portName = port.name ?? "";
      const label = `${ns}/${name}${portName ? `:${portName}` : ""}`;
      const id = chainId(`${ns}/${name}:${portName}/${protocol}/${family}`);
      const svcChain = `BSB-SVC-${id}`;
      const extChain = `BSB-EXT-${id}`;
      const fwChain = `BSB-FW-${id}`;
      const localChain = `BSB-SVL-${id}`;
      const endpoints = readyEndpoints(input.endpointSlices, ns, name, portName, port.protocol ?? "TCP", family);
      const localEndpoints = endpoints.filter((e) => e.nodeName === input.nodeName);
      const match = (ip: string, dport: number): string => `-d ${host(ip)} -p ${protocol} -m ${protocol} --dport ${dport}`;
      const comment = (what: string): string => `-m comment --comment "${label} ${what}"`;
      const nodePort = spec.type === "NodePort" || spec.type === "LoadBalancer" ? port.nodePort : undefined;

      if (endpoints.length === 0) {
        // kube-proxy: "has no endpoints" REJECT in the filter table, for every way in.
        for (const ip of [...clusterIps, ...externalIps, ...lbIps]) filter.rules.push(`-A ${PROXY_CHAINS.services} ${match(ip, port.port)} ${comment("has no endpoints")} -j REJECT`);
        if (nodePort) for (const ip of input.nodeIps) filter.rules.push(`-A ${PROXY_CHAINS.services} ${match(ip, nodePort)} ${comment("has no endpoints")} -j REJECT`);
        continue;
      }

      // The cluster-wide chain: one SEP chain per endpoint, chosen at random.
      perServiceChains.push(svcChain);
      endpoints.forEach((endpoint, index) => {
        const sepChain = `BSB-SEP-${chainId(`${id}/${endpoint.ip}:${endpoint.port}`)}`;
        perServiceChains.push(sepChain);
        const remaining = endpoints.length - index;
        const pick = remaining > 1 ? ` -m statistic --mode random --probability ${(1 / remaining).toFixed(10)}` : "";
        perServiceRules.push(
          `-A ${svcChain} ${comment(`-> ${dnatTo(endpoint.ip, endpoint.port)}`)}${pick} -j ${sepChain}`,
          `-A ${sepChain} -s ${host(endpoint.ip)} -j ${PROXY_CHAINS.markMasq}`,
          `-A ${sepChain} -p ${protocol} -m ${protocol} -j DNAT --to-destination ${dnatTo(endpoint.ip, endpoint.port)}`,
        );
      });
      for (const ip of clusterIps) {
        serviceRules.push(
          `-A ${PROXY_CHAINS.services} ! -s ${input.clusterCidr} ${match(ip, port.port)} ${comment("cluster IP")} -j ${PROXY_CHAINS.markMasq}`,
          `-A ${PROXY_CHAINS.services} ${match(ip, port.port)} ${comment("cluster IP")} -j ${svcChain}`,
        );
      }

      if (protocol === "udp") {
        const ips = endpoints.map((e) => e.ip);
        for (const ip of [...clusterIps, ...externalIps, ...lbIps]) udp.push({ ip, port: port.port, endpoints: ips });
        if (nodePort) for (const ip of input.nodeIps) udp.push({ ip, port: nodePort, endpoints: ips });
      }

      const external = externalIps.length > 0 || lbIps.length > 0 || nodePort !== undefined;
      if (!external) continue;
      // The external chain: NodePorts, external IPs and captured LB IPs enter here.
      perServiceChains.push(extChain);
      if (local) {
        perServiceChains.push(localChain);
        perServiceRules.push(
          `-A ${extChain} -s ${input.clusterCidr} ${comment("pod traffic for external destinations")} -j ${svcChain}`,
          `-A ${extChain} -m addrtype --src-type LOCAL ${comment("masquerade LOCAL traffic")} -j ${PROXY_CHAINS.markMasq}`,
          `-A ${extChain} -m addrtype --src-type LOCAL ${comment("route LOCAL traffic to cluster endpoints")} -j ${svcChain}`,
          `-A ${extChain} -j ${localChain}`,
        );
        if (localEndpoints.length === 0) {
          perServiceRules.push(`-A ${localChain} ${comment("has no local endpoints")} -j ${PROXY_CHAINS.markDrop}`);
        }
        localEndpoints.forEach((endpoint, index) => {
          const sepChain = `BSB-SEP-${chainId(`${id}/${endpoint.ip}:${endpoint.port}`)}`;
          const remaining = localEndpoints.length - index;
          const pick = remaining > 1 ? ` -m statistic --mode random --probability ${(1 / remaining).toFixed(10)}` : "";
          perServiceRules.push(`-A ${localChain} ${comment(`-> ${dnatTo(endpoint.ip, endpoint.port)}`)}${pick} -j ${sepChain}`);
        });
      } else {
        perServiceRules.push(`-A ${extChain} ${comment("masquerade traffic for external destinations")} -j ${PROXY_CHAINS.markMasq}`, `-A ${extChain} -j ${svcChain}`);
      }
      for (const ip of externalIps) serviceRules.push(`-A ${PROXY_CHAINS.services} ${match(ip, port.port)} ${comment("external IP")} -j ${extChain}`);
      if (lbIps.length > 0) {
        let lbTarget = extChain;
        if (ranges.length > 0) {
          // Source ranges: the allowed ranges of this family and the LB IPs themselves go on; the rest is dropped.
          lbTarget = fwChain;
          perServiceChains.push(fwChain);
          for (const range of [...rangesOfFamily, ...lbIps.map(host)]) {
            perServiceRules.push(`-A ${fwChain} -s ${range} ${comment("loadbalancer IP")} -j ${extChain}`);
          }
          perServiceRules.push(`-A ${fwChain} ${comment("other traffic to loadbalancer IP")} -j ${PROXY_CHAINS.markDrop}`);
        }
        for (const ip of lbIps) serviceRules.push(`-A ${PROXY_CHAINS.services} ${match(ip, port.port)} ${comment("loadbalancer IP")} -j ${lbTarget}`);
      }
      if (nodePort) nodePortRules.push(`-A ${PROXY_CHAINS.nodePorts} -p ${protocol} -m ${protocol} --dport ${nodePort} ${comment("nodePort")} -j ${extChain}`);
    }
  }
  // NodePorts last, as kube-proxy's `-j KUBE-NODEPORTS` ends KUBE-SERVICES.
  for (const ip of input.nodeIps) serviceRules.push(`-A ${PROXY_CHAINS.services} -d ${host(ip)} -m comment --comment "node IP: NodePorts" -j ${PROXY_CHAINS.nodePorts}`);

  const hostPorts = planHostPorts(input, host, dnatTo);
  nat.chains.push(...unique(perServiceChains), ...hostPorts.chains);
  nat.rules.push(...serviceRules, ...nodePortRules, ...perServiceRules, ...hostPorts.rules);
  udp.sort((a, b) => compareIps(a.ip, b.ip) || a.port - b.port);
  return { nat, filter, udp };
}

/** portmap: hostPort DNAT for this node's pods with an IP of this family. */
function planHostPorts(input: ProxyRulesInput, host: (ip: string) => string, dnatTo: (ip: string, port: number) => string): TableRules {
  const chains: string[] = [];
  const rules: string[] = [];
  const pods = sortedByKey(input.pods).filter(
    (pod) => pod.spec?.nodeName === input.nodeName && !pod.spec?.hostNetwork && pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed",
  );
  for (const pod of pods) {
    const ip = podIps(pod).find((candidate) => familyOfIp(candidate) === input.family);
    if (!ip) continue;
    const label = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    for (const container of pod.spec?.containers ?? []) {
      for (const port of container.ports ?? []) {
        if (!port.hostPort) continue;
        if (port.hostIP && port.hostIP !== "0.0.0.0" && port.hostIP !== "::" && familyOfIp(port.hostIP) !== input.family) continue;
        const protocol = (port.protocol ?? "TCP").toLowerCase();
        const chain = `BSB-HP-${chainId(`${pod.metadata?.uid ?? label}/${protocol}/${port.hostPort}/${input.family}`)}`;
        const destination = port.hostIP && port.hostIP !== "0.0.0.0" && port.hostIP !== "::" ? ` -d ${host(port.hostIP)}` : "";
        const comment = `-m comment --comment "${label} hostPort ${port.hostPort}/${protocol}"`;
        chains.push(chain);
        rules.push(
          `-A ${PROXY_CHAINS.hostPorts}${destination} -p ${protocol} -m ${protocol} --dport ${port.hostPort} ${comment} -j ${chain}`,
          `-A ${chain} -s ${host(ip)} -j ${PROXY_CHAINS.hostPortSetMark}`,
          `-A ${chain} -p ${protocol} -m ${protocol} -j DNAT --to-destination ${dnatTo(ip, port.containerPort)}`,
        );
      }
    }
  }
  return { chains, rules };
}

/** Ready endpoints of a Service port in one family, deduplicated by address, sorted (conditions.ready unset = ready). */
function readyEndpoints(slices: readonly EndpointSlice[], namespace: string, service: string, portName: string, protocol: string, family: Family): Endpoint[] {
  const byIp = new Map<string, Endpoint>();
  for (const slice of slices) {
    if (slice.metadata?.namespace !== namespace || slice.metadata?.labels?.[ENDPOINTSLICE_SERVICE_LABEL] !== service) continue;
    if (slice.addressType !== (family === "ipv4" ? "IPv4" : "IPv6")) continue;
    const port = (slice.ports ?? []).find((p) => (p.name ?? "") === portName && (p.protocol ?? "TCP") === protocol);
    if (port?.port === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      if (endpoint.conditions?.ready === false) continue;
      const ip = endpoint.addresses[0];
      if (!ip || byIp.has(ip)) continue;
      byIp.set(ip, { ip, port: port.port, nodeName: endpoint.nodeName });
    }
  }
  return [...byIp.values()].sort((a, b) => compareIps(a.ip, b.ip));
}

/**
 * The restore text for one family: both tables, our chains declared (created or flushed), their rules, stale chains
 * flushed then deleted, and the missing jumps from built-in chains appended in PROXY_JUMPS order.
 */
export function renderRestore(rules: ProxyRules, o: { staleChains: Record<Table, readonly string[]>; missingJumps: Record<Table, readonly string[]> }): string {
  const out: string[] = [];
  for (const table of ["nat", "filter"] as const) {
    const stale = o.staleChains[table].filter((chain) => !rules[table].chains.includes(chain));
    out.push(`*${table}`);
    for (const chain of [...rules[table].chains, ...stale]) out.push(`:${chain} - [0:0]`);
    out.push(...rules[table].rules);
    for (const chain of stale) out.push(`-X ${chain}`);
    out.push(...o.missingJumps[table]);
    out.push("COMMIT");
  }
  return out.join("\n") + "\n";
}

/** One `conntrack -D -p udp` to run: flows sent to origDst:port, only those DNATed to dstNat when set. */
export interface StaleUdpFlows {
  origDst: string;
  port: number;
  dstNat?: string;
}

/**
 * UDP flows that the new rules would no longer set up the same way, as kube-proxy clears them
 * (pkg/proxy/conntrack/cleanup.go): UDP has no connection to end, so a client that keeps its source port keeps
 * hitting an old conntrack entry. Flows to a removed endpoint are deleted; and when a way in gains its first
 * endpoints, every flow to it is deleted (until then it was rejected, or went to whatever else held the port, such
 * as a hostPort pod while the LB IP was not captured).
 */
export function staleUdpFlows(before: readonly UdpEntry[], after: readonly UdpEntry[]): StaleUdpFlows[] {
  const previous = new Map(before.map((entry) => [`${entry.ip}|${entry.port}`, entry.endpoints]));
  const stale: StaleUdpFlows[] = [];
  const seen = new Set<string>();
  for (const entry of after) {
    const key = `${entry.ip}|${entry.port}`;
    seen.add(key);
    const old = previous.get(key);
    if (!old || old.length === 0) {
      if (entry.endpoints.length > 0) stale.push({ origDst: entry.ip, port: entry.port });
      continue;
    }
    for (const endpoint of old) if (!entry.endpoints.includes(endpoint)) stale.push({ origDst: entry.ip, port: entry.port, dstNat: endpoint });
  }
  // A way in that is gone altogether (Service deleted, endpoints all gone): its flows go nowhere now.
  for (const entry of before) {
    if (seen.has(`${entry.ip}|${entry.port}`)) continue;
    for (const endpoint of entry.endpoints) stale.push({ origDst: entry.ip, port: entry.port, dstNat: endpoint });
  }
  return stale;
}

/** The jump rules (as `-A` lines) of PROXY_JUMPS that `iptables-save` output does not show yet. */
export function missingJumps(saved: string): Record<Table, string[]> {
  const present = parseSave(saved);
  const result: Record<Table, string[]> = { nat: [], filter: [] };
  for (const table of ["nat", "filter"] as const) {
    for (const jump of PROXY_JUMPS[table]) {
      const found = (present[table]?.rules ?? []).some((line) => line.startsWith(`-A ${jump.chain} `) && line.includes(`-j ${jump.target}`) && line.includes(jump.match));
      if (!found) result[table].push(`-A ${jump.chain}${jump.match ? ` ${jump.match}` : ""} -j ${jump.target}`);
    }
  }
  return result;
}

/** Our chains (BSB-*) present in `iptables-save` output, per table. */
export function presentChains(saved: string): Record<Table, string[]> {
  const present = parseSave(saved);
  return { nat: present.nat?.chains ?? [], filter: present.filter?.chains ?? [] };
}

function parseSave(saved: string): Partial<Record<string, { chains: string[]; rules: string[] }>> {
  const tables: Partial<Record<string, { chains: string[]; rules: string[] }>> = {};
  let current: { chains: string[]; rules: string[] } | undefined;
  for (const line of saved.split("\n")) {
    if (line.startsWith("*")) {
      current = { chains: [], rules: [] };
      tables[line.slice(1).trim()] = current;
    } else if (line.startsWith(":BSB-")) current?.chains.push(line.slice(1).split(" ")[0] ?? "");
    else if (line.startsWith("-A ")) current?.rules.push(line);
  }
  return tables;
}

/** kube-proxy's servicePortChainName: a hash of the port's identity, 16 base32 characters (names stay <= 28). */
function chainId(identity: string): string {
  const bytes = createHash("sha256").update(identity).digest();
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 16) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length >= 16) break;
  }
  return out;
}

function podIps(pod: Pod): string[] {
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => Boolean(ip));
  return ips.length > 0 ? ips : pod.status?.podIP ? [pod.status.podIP] : [];
}

function familyOfIp(ip: string): Family {
  return ip.includes(":") ? "ipv6" : "ipv4";
}

function compareIps(a: string, b: string): number {
  return compareAddresses(parseIp(a), parseIp(b));
}

/** Valid ranges of one family, canonical (host bits cleared, a bare address = one host); invalid ones are skipped. */
function rangesOf(ranges: readonly string[], family: Family): string[] {
  const parsed: string[] = [];
  for (const range of ranges) {
    try {
      const cidr = parseCidr(range);
      if (cidr.family === family) parsed.push(cidr.text);
    } catch {
      // The API server validates the field; a range it let through that we cannot read cannot allow anything.
    }
  }
  return parsed;
}

function sortedByKey<T extends { metadata?: { namespace?: string; name?: string } }>(objects: readonly T[]): T[] {
  const key = (o: T): string => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;
  return [...objects].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
