// The AddressPool custom resource (berth.dev/v1alpha1, cluster-scoped) and the names VIP mode's parts share.
// This file is the contract between the controller (which validates pools, allocates addresses from them and writes
// Service status) and the speaker (which announces the allocated addresses): both read these shapes, and only
// these. Parsing and validation live with the controller (src/controller/vip/); the speaker trusts a pool the
// controller has marked Valid. See docs/architecture.md, "VIP mode".
import type { V1LabelSelector } from "@kubernetes/client-node";

export const ADDRESS_POOL = {
  group: "berth.dev",
  version: "v1alpha1",
  kind: "AddressPool",
  plural: "addresspools",
  singular: "addresspool",
  shortNames: ["bap"],
} as const;

/** Which Services may take addresses from a pool. Empty or absent lists mean "no restriction" on that axis. */
export interface AddressPoolServiceAllocation {
  /** Namespaces by name. */
  namespaces?: string[];
  /** Namespaces by label selector (any one matches). */
  namespaceSelectors?: V1LabelSelector[];
  /** Services by label selector (any one matches). */
  serviceSelectors?: V1LabelSelector[];
}

/** Where a pool's addresses may be announced. Empty or absent lists mean every eligible node / interface. */
export interface AddressPoolAnnouncement {
  /** Nodes by label selector (any one matches). */
  nodeSelectors?: V1LabelSelector[];
  /** Interface names on the node (exact names). Empty: the interface that holds the route to the address. */
  interfaces?: string[];
}

export interface AddressPoolSpec {
  /** CIDRs ("192.168.1.240/28", "fd00::/120") and inclusive ranges ("192.168.1.240-192.168.1.250"), both families. */
  addresses: string[];
  /** Whether Services that name no pool and no address may be given one from this pool. Default true. */
  autoAssign?: boolean;
  /** Skip addresses ending in .0 and .255 (buggy consumer routers, as MetalLB's option). Default false. */
  avoidBuggyIPs?: boolean;
  /** Lower numbers are tried first; then pools by name. Default 0. */
  priority?: number;
  serviceAllocation?: AddressPoolServiceAllocation;
  announce?: AddressPoolAnnouncement;
}

export interface AddressPoolCondition {
  /** "Valid" (True when the spec parses and overlaps no other pool). */
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface AddressPoolStatus {
  assignedIPv4?: number;
  availableIPv4?: number;
  assignedIPv6?: number;
  /** IPv6 counts saturate at Number.MAX_SAFE_INTEGER. */
  availableIPv6?: number;
  conditions?: AddressPoolCondition[];
}

export interface AddressPool {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; uid?: string; generation?: number; resourceVersion?: string; labels?: Record<string, string> };
  spec?: AddressPoolSpec;
  status?: AddressPoolStatus;
}

/**
 * Written by the controller on a VIP-mode Service it has given addresses (metadata, not status: status is a
 * subresource): the pool they came from, so the speaker knows which pool's `announce` applies without re-parsing
 * every pool's ranges. MetalLB writes the same fact as `metallb.io/ip-allocated-from-pool`.
 */
export const ALLOCATED_FROM_POOL_ANNOTATION = "berth.dev/allocated-from-pool";

/**
 * The contract for the speaker: a Service is announced when it is ours, in VIP mode (annotation `berth.dev/mode:
 * vip`), and its `status.loadBalancer.ingress[].ip` lists addresses (each with ipMode "VIP"). The controller writes
 * those only after allocation succeeded; the speaker announces exactly them, on nodes the pool's `announce` allows.
 */
export const VIP_INGRESS_IP_MODE = "VIP";
