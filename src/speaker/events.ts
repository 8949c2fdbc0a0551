// Which Event an announcer change is worth, and which speaker writes it: a pure decision, so that exactly one speaker
// writes each Event (every speaker sees every change) and the steady state writes nothing.
import type { ElectionVip, NodeReason, VipElection } from "./election.js";

/** Event reasons the speaker writes on Services. Reporting component: SPEAKER_COMPONENT. */
export const SPEAKER_EVENT_REASONS = {
  /** Normal: a node now announces the address (with who had it and why it moved). */
  announcing: "Announcing",
  /** Warning: no node may announce the address (reason and what to do in the message). */
  notAnnounced: "NotAnnounced",
} as const;

export const SPEAKER_COMPONENT = "berth.dev/speaker";

const NODE_REASON_TEXT: Record<Exclude<NodeReason, "eligible">, string> = {
  excludedByLabel: "it is labelled node.kubernetes.io/exclude-from-external-load-balancers",
  notReady: "it is NotReady",
  notSelectedByPool: "the pool's announce.nodeSelectors no longer select it",
  speakerNotAlive: "its speaker stopped answering (node down, speaker gone, or the network between)",
  noReadyEndpoint: "it has no ready endpoint of the Service (externalTrafficPolicy: Local)",
};

export interface EventDecision {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

/**
 * The Event for one change of owner, or undefined when this speaker is not the one to write it. The new owner
 * writes "Announcing"; when nobody may announce, the first alive node by name writes "NotAnnounced".
 */
export function announcerEvent(vip: ElectionVip, from: string | undefined, to: VipElection, self: string, alive: ReadonlySet<string>): EventDecision | undefined {
  if (to.owner !== undefined) {
    if (to.owner !== self) return undefined;
    let message = `node ${to.owner} announces ${vip.ip} (pool ${vip.pool})`;
    if (from !== undefined) {
      const why = to.excluded[from];
      message += why ? `, taking over from ${from}: ${NODE_REASON_TEXT[why]}` : `, taking over from ${from}, which ranks lower for this address now that ${to.owner} is back`;
    }
    return { type: "Normal", reason: SPEAKER_EVENT_REASONS.announcing, message };
  }
  const writer = [...alive].sort()[0];
  if (writer !== self) return undefined;
  const what = to.reason === "unknownPool"
    ? `pool ${vip.pool} is not a valid AddressPool (check \`kubectl get addresspools\`)`
    : `no node may announce it: ${summarize(to.excluded)}`;
  return { type: "Warning", reason: SPEAKER_EVENT_REASONS.notAnnounced, message: `nobody announces ${vip.ip}: ${what}` };
}

/** "2 nodes: it is NotReady; 1 node: ..." — grouped by reason, so a 100-node cluster reads in one line. */
function summarize(excluded: VipElection["excluded"]): string {
  const counts = new Map<string, number>();
  for (const reason of Object.values(excluded)) counts.set(reason, (counts.get(reason) ?? 0) + 1);
  if (counts.size === 0) return "the cluster has no nodes";
  return [...counts].map(([r, n]) => `${n} node${n === 1 ? "" : "s"}: ${NODE_REASON_TEXT[r as Exclude<NodeReason, "eligible">]}`).join("; ");
}
