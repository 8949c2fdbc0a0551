// The rule model shared by the lb-pod's planner (pure), its renderers (pure) and its appliers (I/O).
// A RulePlan says *what* must happen to packets; a renderer says it in one backend's language
// (iptables-restore input, an nft script, ipvsadm-restore input); an applier runs that text in the pod's netns.

export type Family = "ipv4" | "ipv6";
export type Protocol = "tcp" | "udp" | "sctp";

/** What the lb-pod is told to do, after parsing (klipper-lb env, berth env, or CLI flags) and before planning. */
export interface LbPodConfig {
  /** Every port of the Service that this pod forwards. */
  ports: PortConfig[];
  /** Where traffic goes: ClusterIPs (externalTrafficPolicy Cluster) or the node's own IPs (Local). Both families allowed. */
  destinationIps: string[];
  /**
   * Allow-list of source CIDRs (loadBalancerSourceRanges). Empty means "allow every source". When non-empty, a
   * family with no range of its own is dropped entirely (kube-proxy's semantics for loadBalancerSourceRanges).
   */
  sourceRanges: string[];
}

export interface PortConfig {
  protocol: Protocol;
  /** The port the pod receives (the Service port, also the hostPort). */
  port: number;
  /** The port traffic is DNATed to (Service port for Cluster, NodePort for Local). */
  destinationPort: number;
}

export interface Destination {
  ip: string;
  port: number;
}

/** One forwarded port in one family. The planner guarantees at least one destination, all at the same port. */
export interface Forward {
  family: Family;
  protocol: Protocol;
  port: number;
  /** Every destination of this family; several destinations are spread evenly (round robin by connection). */
  destinations: Destination[];
}

/** The complete, normalised, deterministically ordered desired state of one lb-pod's rules. */
export interface RulePlan {
  /** The families that have at least one destination: only these are touched (sysctls, tables). Sorted ipv4, ipv6. */
  families: Family[];
  /** Sorted by family (ipv4 first), protocol name (sctp, tcp, udp), port; destinations numerically. */
  forwards: Forward[];
  /**
   * Per family: undefined = allow all sources; [] = drop all sources of this family; otherwise the normalised
   * (host bits cleared, RFC 5952), numerically sorted, deduplicated CIDRs that may reach the forwarded ports.
   * Only families in `families` appear. Enforced on every original-direction packet, before DNAT.
   */
  allowedSources: Partial<Record<Family, string[]>>;
}
