// The sandbox cluster's addressing plan, as a pure function of (prefix, node count, dual-stack). Everything the
// network, the stand-ins and the supervisor need to agree on (namespace names, LAN and pod addresses, Service CIDRs)
// comes from here, so two parts can never disagree about where node-2 lives.
//
// Address choices (each exists only inside the sandbox's own network namespaces; the host's network is never
// touched, and `sandbox up` refuses when the host routes into the LAN prefixes, so nobody is confused):
// - LAN IPv4 198.18.0.0/24: RFC 2544 benchmarking range (198.18.0.0/15), never routed on the internet and rarely on
//   real LANs. LAN IPv6 fd42:b5e7:7a00::/64: a unique local address (RFC 4193) prefix.
// - Node i (1-based) on the LAN: 198.18.0.(10+i) and fd42:b5e7:7a00::(10+i in hex, ::b for node-1); the client is
//   198.18.0.100 and fd42:b5e7:7a00::100.
// - Pod CIDRs 10.42.i.0/24 and fd42:b5e7:7a42:i::/64 (i in hex), k3s's default cluster CIDR 10.42.0.0/16 split
//   per node as k3s does; the node's own address on its pod veths is .1 / ::1 of its pod CIDR.
// - Service CIDRs 10.43.0.0/16 (k3s's default) and fd00:43::/112: the sandbox API server's defaults.
import { UsageError } from "../../lib/errors.js";

export interface NodeLayout {
  /** Node object name, `node-<i>`. */
  name: string;
  /** Network namespace, `<prefix>-node-<i>`. */
  ns: string;
  /** Addresses on the LAN (no prefix length), IPv4 first: the Node's InternalIPs. */
  lanIps: string[];
  /** Pod CIDRs, IPv4 first: the Node's spec.podCIDRs. */
  podCidrs: string[];
  /** The node's own address on the pod side (.1 / ::1 of each pod CIDR): every pod's default gateway. */
  podGatewayIps: string[];
}

export interface SandboxLayout {
  prefix: string;
  dualStack: boolean;
  /** Namespace holding the LAN bridge. */
  lanNs: string;
  /** The bridge's name inside lanNs. */
  bridge: string;
  /** LAN prefixes, IPv4 first. */
  lanCidrs: string[];
  nodes: NodeLayout[];
  /** The "outside" machine: on the LAN, no routes to pod CIDRs or ClusterIPs. */
  client: { ns: string; lanIps: string[] };
  /** Service CIDRs for the API server, IPv4 first. */
  serviceCidrs: string[];
}

export const DEFAULT_SANDBOX_PREFIX = "bsb";

/** Node count limits: at least one node; at most 20 keeps node LAN addresses (.11-.30) below the client's .100. */
export const MAX_SANDBOX_NODES = 20;

/**
 * A prefix is a lowercase letter then up to 16 letters or digits. No dash: `sandbox down` removes every namespace
 * named `<prefix>-*`, so a prefix must never be the start of another sandbox's namespaces ("bsb" vs "bsb-x").
 * At most 17 characters keeps the longest namespace name, `<prefix>-pod-<8 hex>`, within 30.
 */
export const SANDBOX_PREFIX_PATTERN = /^[a-z][a-z0-9]{0,16}$/;

export const LAN_CIDRS = { ipv4: "198.18.0.0/24", ipv6: "fd42:b5e7:7a00::/64" } as const;
/** The cluster CIDRs the node pod CIDRs are cut from (kube-proxy's --cluster-cidr: its "is this a pod?" test). */
export const CLUSTER_CIDRS = { ipv4: "10.42.0.0/16", ipv6: "fd42:b5e7:7a42::/48" } as const;
export const SERVICE_CIDRS = { ipv4: "10.43.0.0/16", ipv6: "fd00:43::/112" } as const;

/** Plans the sandbox; throws UsageError for a bad prefix or a node count outside 1..20. */
export function planLayout(o: { prefix: string; nodes: number; dualStack: boolean }): SandboxLayout {
  if (!SANDBOX_PREFIX_PATTERN.test(o.prefix)) {
    throw new UsageError(`sandbox prefix must be a lowercase letter then up to 16 lowercase letters or digits, got "${o.prefix}"`);
  }
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > MAX_SANDBOX_NODES) {
    throw new UsageError(`sandbox node count must be a whole number from 1 to ${MAX_SANDBOX_NODES}, got ${o.nodes}`);
  }
  const both = <T>(v4: T, v6: T): T[] => (o.dualStack ? [v4, v6] : [v4]);
  const nodes: NodeLayout[] = [];
  for (let i = 1; i <= o.nodes; i++) {
    const hex = i.toString(16);
    nodes.push({
      name: `node-${i}`,
      ns: `${o.prefix}-node-${i}`,
      lanIps: both(`198.18.0.${10 + i}`, `fd42:b5e7:7a00::${(10 + i).toString(16)}`),
      podCidrs: both(`10.42.${i}.0/24`, `fd42:b5e7:7a42:${hex}::/64`),
      podGatewayIps: both(`10.42.${i}.1`, `fd42:b5e7:7a42:${hex}::1`),
    });
  }
  return {
    prefix: o.prefix,
    dualStack: o.dualStack,
    lanNs: `${o.prefix}-lan`,
    bridge: "lan0",
    lanCidrs: both(LAN_CIDRS.ipv4, LAN_CIDRS.ipv6),
    nodes,
    client: { ns: `${o.prefix}-client`, lanIps: both("198.18.0.100", "fd42:b5e7:7a00::100") },
    serviceCidrs: both(SERVICE_CIDRS.ipv4, SERVICE_CIDRS.ipv6),
  };
}

/** Namespace of a pod: `<prefix>-pod-<first 8 characters of its UID, dashes dropped>`. */
export function podNamespaceName(prefix: string, podUid: string): string {
  return `${prefix}-pod-${podUidShort(podUid)}`;
}

/** The first 8 hex characters of a pod UID (lowercase, dashes dropped): names its namespace and node-side veth. */
export function podUidShort(podUid: string): string {
  const short = podUid.toLowerCase().replace(/[^0-9a-z]/g, "").slice(0, 8);
  if (short.length === 0) throw new UsageError(`pod UID "${podUid}" has no letters or digits to name its namespace`);
  return short;
}
