// Which node announces each VIP: a pure function of the cluster as every speaker sees it (nodes, pools, the Services
// using the address, their endpoints) and of who is alive (src/speaker/membership.ts). Every speaker runs it on the
// same inputs and so reaches the same answer without talking about it; see docs/design/0015-how-the-speaker-announces.md.
//
// The owner is chosen by rendezvous (highest-random-weight) hashing: each eligible node scores sha256(node "#" ip)
// and the highest score wins. That is MetalLB's layer-2 choice too (speaker/layer2_controller.go sorts nodes by
// sha256(node + "#" + ip)), for the same reasons:
// - deterministic: no state, no tie-break by arrival order;
// - spread evenly: each address picks its own order of nodes, so N addresses land ~N/k on each of k nodes;
// - minimal movement: when a node goes, only the addresses it owned move (each to its own runner-up); when a node
//   comes, it takes only the addresses for which it now scores highest (~1/k of them), the rest stay put.
// The key is the address, not the Service: Services sharing an address (berth.dev/allow-shared-ip) must agree on
// one owner, and an address is what neighbours cache.
import { createHash } from "node:crypto";
import type { V1LabelSelector } from "@kubernetes/client-node";
import { NODE_LABELS } from "../lib/names.js";

/** What the election reads of a Node. */
export interface ElectionNode {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** The Node's Ready condition is True. */
  ready: boolean;
}

/** What the election reads of one Service that uses an address. */
export interface ElectionService {
  /** "namespace/name", for reasons and Events. */
  key: string;
  externalTrafficPolicy: "Cluster" | "Local";
  /** Nodes with at least one ready endpoint of the Service (read only under Local). */
  endpointNodes: ReadonlySet<string>;
}

/** One address to announce: the pool it came from and every Service that uses it (more than one when shared). */
export interface ElectionVip {
  ip: string;
  /** The pool name (berth.dev/allocated-from-pool). */
  pool: string;
  services: readonly ElectionService[];
}

/** The part of a pool the election reads; undefined in `pools` = the speaker knows no valid pool of that name. */
export interface ElectionPool {
  nodeSelectors?: readonly V1LabelSelector[];
}

export interface ElectionInput {
  nodes: readonly ElectionNode[];
  /** Nodes whose speaker is alive (membership). */
  alive: ReadonlySet<string>;
  pools: ReadonlyMap<string, ElectionPool>;
  vips: readonly ElectionVip[];
}

/** Why a node may not announce an address; "eligible" when it may. */
export type NodeReason =
  | "eligible"
  | "excludedByLabel"
  | "notReady"
  | "notSelectedByPool"
  | "speakerNotAlive"
  | "noReadyEndpoint";

/** Why an address has no owner; "elected" when it has one. */
export type VipReason = "elected" | "unknownPool" | "noEligibleNode";

export interface VipElection {
  ip: string;
  pool: string;
  /** The announcing node; undefined when no node may announce it (reason says why). */
  owner?: string;
  reason: VipReason;
  /** Eligible nodes, best first: the owner, then who takes over if it goes. */
  candidates: string[];
  /** Every node that is not a candidate, with its reason (for logs, Events and tests). */
  excluded: Record<string, Exclude<NodeReason, "eligible">>;
}

/** The owner of every address, in the order of `input.vips`. */
export function electAnnouncers(input: ElectionInput): VipElection[] {
  return input.vips.map((vip) => electOne(vip, input));
}

function electOne(vip: ElectionVip, input: ElectionInput): VipElection {
  const pool = input.pools.get(vip.pool);
  if (pool === undefined) return { ip: vip.ip, pool: vip.pool, reason: "unknownPool", candidates: [], excluded: {} };
  const excluded: Record<string, Exclude<NodeReason, "eligible">> = {};
  const scored: { name: string; score: string }[] = [];
  for (const node of input.nodes) {
    const reason = nodeEligibility(node, pool, vip, input.alive);
    if (reason === "eligible") scored.push({ name: node.name, score: rendezvousScore(node.name, vip.ip) });
    else excluded[node.name] = reason;
  }
  // Highest score first; a name tie-break only matters if two names hash alike, which sha256 makes moot.
  scored.sort((a, b) => (a.score === b.score ? (a.name < b.name ? -1 : 1) : a.score > b.score ? -1 : 1));
  const candidates = scored.map((s) => s.name);
  const owner = candidates[0];
  return owner === undefined
    ? { ip: vip.ip, pool: vip.pool, reason: "noEligibleNode", candidates, excluded }
    : { ip: vip.ip, pool: vip.pool, owner, reason: "elected", candidates, excluded };
}

/**
 * Whether one node may announce one address. The order of the checks is the order a reader fixes them in: what the
 * operator configured (exclusion label, pool selectors), then the node's health, then the Service's endpoints.
 */
export function nodeEligibility(node: ElectionNode, pool: ElectionPool, vip: ElectionVip, alive: ReadonlySet<string>): NodeReason {
  // Present with any value excludes, as the upstream service controller reads it (k8s.io/cloud-provider
  // controllers/service/controller.go, nodeIncludedPredicate).
  if (node.labels[NODE_LABELS.excludeFromExternalLoadBalancers] !== undefined) return "excludedByLabel";
  const selectors = pool.nodeSelectors ?? [];
  if (selectors.length > 0 && !selectors.some((s) => matchesLabelSelector(s, node.labels))) return "notSelectedByPool";
  if (!node.ready) return "notReady";
  if (!alive.has(node.name)) return "speakerNotAlive";
  // Under Local, a node without a ready endpoint drops the traffic (kube-proxy keeps the client address by not
  // forwarding to other nodes), so it must not attract it. Shared addresses need the same selector under Local
  // (the allocator's sharing rule), so asking every Service is the same as asking one, and safe if they differ.
  for (const service of vip.services) {
    if (service.externalTrafficPolicy === "Local" && !service.endpointNodes.has(node.name)) return "noReadyEndpoint";
  }
  return "eligible";
}

/** sha256(node "#" ip) in hex: compared as strings, hex of equal length orders as the numbers do. */
export function rendezvousScore(node: string, ip: string): string {
  return createHash("sha256").update(`${node}#${ip}`).digest("hex");
}

/** metav1.LabelSelectorAsSelector's semantics: every matchLabels entry and every expression must hold; empty matches all. */
export function matchesLabelSelector(selector: V1LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const expr of selector.matchExpressions ?? []) {
    const value = labels[expr.key];
    const values = expr.values ?? [];
    switch (expr.operator) {
      case "In":
        if (value === undefined || !values.includes(value)) return false;
        break;
      case "NotIn":
        if (value !== undefined && values.includes(value)) return false;
        break;
      case "Exists":
        if (value === undefined) return false;
        break;
      case "DoesNotExist":
        if (value !== undefined) return false;
        break;
      default:
        // An operator the API server would have rejected: match nothing rather than everything.
        return false;
    }
  }
  return true;
}
