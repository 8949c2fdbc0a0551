// Types shared by the controller's pure decisions (service-config, daemonset, status, conflicts, conditions) and the
// I/O layer that feeds them. Kubernetes objects are @kubernetes/client-node's model types, imported for their
// shape only: nothing here loads client-node at runtime.
import type {
  V1Condition,
  V1DaemonSet,
  V1EndpointSlice,
  V1Node,
  V1Pod,
  V1Service,
  V1Toleration,
} from "@kubernetes/client-node";

import { DEFAULT_NAMESPACE, DEFAULT_PRIORITY_CLASS, type EventType, type Mode } from "../lib/names.js";
import type { Family, Protocol } from "../lib/rules/model.js";

export type { V1Condition, V1DaemonSet, V1EndpointSlice, V1Node, V1Pod, V1Service, V1Toleration };

/** Downward-API field the Local-policy lb-pod reads its node's IPs from (see DaemonSetConfig.hostIpsFieldPath). */
export type HostIpsFieldPath = "status.hostIPs" | "status.hostIP";

/** What the controller was told at start (flags), as far as the pure decisions need it. */
export interface ControllerConfig {
  /** Namespace of every per-Service DaemonSet. */
  namespace: string;
  /** Image of the lb-pod container. */
  lbPodImage: string;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  /** Entrypoint of the lb-pod container (bin/berth-lb-pod in the image). */
  lbPodCommand: string[];
  /** Readiness probe command; it gets the same environment as the container. */
  lbPodCheckCommand: string[];
  /** Services with no spec.loadBalancerClass are ours (true, the default) or left alone (false). */
  claimUnsetClass: boolean;
  /** priorityClassName of the lb-pods when the Service does not ask for one. */
  defaultPriorityClass: string;
  /**
   * `status.hostIPs` (every node IP, both families; downward API since Kubernetes 1.28 alpha, on by default since
   * 1.29 beta, GA 1.30, KEP-2681) or `status.hostIP` (the primary IP only) for older clusters. k3s makes the same
   * choice from its PodHostIPs feature gate (servicelb.go getHostIPsFieldPath).
   */
  hostIpsFieldPath: HostIpsFieldPath;
  /**
   * Let the lb-pods of a Service with IPv6 ask for net.ipv6.conf.all.forwarding=1 (podSysctls in daemonset.ts): a
   * new pod namespace starts with IPv6 forwarding off. An "unsafe" sysctl to the kubelet, which rejects such pods
   * (SysctlForbidden) unless started with --allowed-unsafe-sysctls=net.ipv6.conf.all.forwarding. IPv4 needs nothing:
   * a new namespace copies the node's net.ipv4 settings (net.core.devconf_inherit_init_net=0, the default), and
   * Kubernetes nodes forward. false (--no-forwarding-sysctls) is for nodes whose pod namespaces forward IPv6 already.
   */
  forwardingSysctls: boolean;
  /**
   * The netfilter front end every lb-pod uses (BERTH_BACKEND in the pod): `auto` lets each pod pick from the rules in
   * its namespace (src/lb-pod/backend.ts), the others force one. No `ipvs`: the lb-pod image has no ipvsadm.
   */
  lbPodBackend: LbPodBackend;
}

export const LB_POD_BACKENDS = ["auto", "iptables", "iptables-nft", "iptables-legacy", "nftables"] as const;
export type LbPodBackend = (typeof LB_POD_BACKENDS)[number];

/** Defaults for ControllerConfig; the controller command overrides them from its flags. */
export function defaultControllerConfig(overrides: Partial<ControllerConfig> = {}): ControllerConfig {
  return {
    namespace: DEFAULT_NAMESPACE,
    lbPodImage: "ghcr.io/berth-lb/berth-lb-pod:latest",
    imagePullPolicy: "IfNotPresent",
    lbPodCommand: ["berth-lb-pod"],
    lbPodCheckCommand: ["berth-lb-pod-check"],
    claimUnsetClass: true,
    defaultPriorityClass: DEFAULT_PRIORITY_CLASS,
    hostIpsFieldPath: "status.hostIPs",
    forwardingSysctls: true,
    lbPodBackend: "auto",
    ...overrides,
  };
}

/** A configuration problem: the field (annotation/label key or spec path) and what is wrong with it. */
export interface ConfigProblem {
  field: string;
  message: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; problems: ConfigProblem[] };

/** One Service port as the lb-pod serves it. */
export interface LbPort {
  protocol: Protocol;
  /** The Service port, which is also the hostPort and containerPort. */
  port: number;
  /** Where traffic goes: the Service port (Cluster, to the ClusterIPs) or the NodePort (Local, to the node's IPs). */
  destinationPort: number;
}

/** VIP-mode inputs, parsed and validated now so alias conflicts are reported even before VIP mode ships. */
export interface VipRequest {
  /** Address pool name (berth.dev/pool annotation, or metallb address-pool). */
  pool?: string;
  /** Requested addresses, canonical (berth.dev/ips, metallb loadBalancerIPs, or spec.loadBalancerIP). */
  ips: string[];
  /** Sharing key (berth.dev/allow-shared-ip, or metallb allow-shared-ip). */
  sharingKey?: string;
}

/** Everything berth reads from one Service, validated and normalised (sorted, deduplicated, canonical). */
export interface ServiceLbConfig {
  mode: Mode;
  /** Service ports, sorted by protocol then port. */
  ports: LbPort[];
  externalTrafficPolicy: "Cluster" | "Local";
  /** spec.ipFamilies in order (the order status lists addresses in). */
  families: Family[];
  /** Canonical ClusterIPs in spec.clusterIPs order (Cluster policy destinations). */
  clusterIps: string[];
  /** Canonical allowed source CIDRs, sorted, deduplicated; empty = every source allowed. */
  sourceRanges: string[];
  /** Extra tolerations for the lb-pods, normalised and sorted. */
  tolerations: V1Toleration[];
  priorityClassName: string;
  /** Node pool the Service is pinned to (berth.dev/pool or k3s lbpool Service label). */
  nodePool?: string;
  /** Only when mode is vip. */
  vip?: VipRequest;
}

/** Why a Service is or is not ours; `code` is a fixed token for logs and metrics labels. */
export type Ownership =
  | { ours: true }
  | { ours: false; code: "NotLoadBalancer" | "OtherClass" | "UnsetClassIgnored"; reason: string };

/** An Event the controller should emit on the Service. */
export interface EventDecision {
  type: EventType;
  reason: string;
  message: string;
}
