// Who is alive, as one speaker sees it: the pure core of membership (src/speaker/membership.ts does the sockets).
// Speakers tell each other directly, by UDP heartbeats to every peer's node IP, instead of renewing Kubernetes Leases:
// a Lease renewed every 200 ms per node would be 5 writes a second per node, and the issue allows one per 10 s. The
// design is keepalived's (VRRP adverts: a master silent for ~3 advert intervals is dead) and memberlist's (a
// monotonic incarnation per process so a restarted member outranks its own stale packets), reduced to what a LAN of
// cluster nodes needs: no gossip relay (every speaker sends to every peer; N is a cluster's node count, and 200 ms
// x N small datagrams is nothing), no suspicion round (a missed heartbeat is cheap to recover from: the address
// moves back within one interval). See docs/design/0015-how-the-speaker-announces.md.
//
// Liveness rule: a peer is alive while a heartbeat of its current incarnation arrived within `deadAfterMs`. A
// goodbye marks it gone at once, and later packets of that incarnation cannot bring it back (a reordered heartbeat
// must not undo a graceful handover); a packet of a newer incarnation can (the speaker restarted).

/** One datagram. Kept tiny and versioned; unknown fields are ignored so a newer speaker can add some. */
export interface Heartbeat {
  v: 1;
  /** The sender's node name. */
  node: string;
  /** The sender process's start time in ms (memberlist's incarnation): a restart outranks the old process. */
  inc: number;
  /** Sequence number within the incarnation, for loss counting. */
  seq: number;
  /** true: the sender is shutting down and hands its addresses over (a goodbye). */
  bye?: true;
  /**
   * true: the sender has just started and announces nothing yet (it is listening for its peers first). Peers do
   * not elect it until a heartbeat without `join` arrives, so a restarting speaker does not pull addresses to a
   * node that would not answer for them.
   */
  join?: true;
  /** The name of a leaving node whose goodbye the sender has acted on (its addresses are now announced here). */
  ack?: string;
}

export const HEARTBEAT_VERSION = 1;
/** Far above any heartbeat; a datagram larger than this is not ours. */
export const MAX_DATAGRAM_BYTES = 512;

export function encodeHeartbeat(hb: Heartbeat): Buffer {
  return Buffer.from(JSON.stringify(hb), "utf8");
}

/** Parses a datagram; a string says why it is not a heartbeat (counted and logged at debug, never fatal). */
export function decodeHeartbeat(data: Buffer): Heartbeat | string {
  if (data.length > MAX_DATAGRAM_BYTES) return `datagram of ${data.length} bytes, more than ${MAX_DATAGRAM_BYTES}`;
  let raw: unknown;
  try {
    raw = JSON.parse(data.toString("utf8"));
  } catch {
    return "not JSON";
  }
  if (typeof raw !== "object" || raw === null) return "not an object";
  const o = raw as Record<string, unknown>;
  if (o.v !== HEARTBEAT_VERSION) return `version ${String(o.v)}, this speaker speaks ${HEARTBEAT_VERSION}`;
  if (typeof o.node !== "string" || o.node === "") return "no node name";
  if (typeof o.inc !== "number" || !Number.isSafeInteger(o.inc)) return "no incarnation";
  if (typeof o.seq !== "number" || !Number.isSafeInteger(o.seq)) return "no sequence number";
  const hb: Heartbeat = { v: 1, node: o.node, inc: o.inc, seq: o.seq };
  if (o.bye === true) hb.bye = true;
  if (o.join === true) hb.join = true;
  if (typeof o.ack === "string") hb.ack = o.ack;
  return hb;
}

export interface MembershipConfig {
  /** A peer silent this long is dead. */
  deadAfterMs: number;
}

interface Peer {
  inc: number;
  lastSeq: number;
  lastHeardMs: number;
  /** Said goodbye in incarnation `inc`. */
  left: boolean;
  /** Its last heartbeat said it is still joining. */
  joining: boolean;
}

/** What one packet did. */
export interface HeardResult {
  /** The alive set changed (a peer came, came back, or left). */
  changed: boolean;
  /** Heartbeats of this peer's incarnation that never arrived between the last one and this one. */
  lost: number;
  /** Why the packet was ignored, when it was. */
  ignored?: "self" | "staleIncarnation" | "afterGoodbye";
}

export class MembershipState {
  private readonly peers = new Map<string, Peer>();
  /** Names counted alive at the last expire()/heard(), to report changes once. */
  private lastAlive: Set<string>;

  constructor(
    readonly self: string,
    private readonly config: MembershipConfig,
  ) {
    this.lastAlive = new Set([self]);
  }

  /** Records one heartbeat or goodbye received at `nowMs`. */
  heard(hb: Heartbeat, nowMs: number): HeardResult {
    if (hb.node === this.self) return { changed: false, lost: 0, ignored: "self" };
    const peer = this.peers.get(hb.node);
    let lost = 0;
    if (peer !== undefined) {
      if (hb.inc < peer.inc) return { changed: false, lost: 0, ignored: "staleIncarnation" };
      if (hb.inc === peer.inc) {
        if (peer.left) return { changed: false, lost: 0, ignored: "afterGoodbye" };
        if (hb.seq > peer.lastSeq + 1) lost = hb.seq - peer.lastSeq - 1;
      }
    }
    this.peers.set(hb.node, {
      inc: hb.inc,
      lastSeq: Math.max(hb.seq, peer !== undefined && peer.inc === hb.inc ? peer.lastSeq : -1),
      lastHeardMs: nowMs,
      left: hb.bye === true,
      joining: hb.join === true,
    });
    return { changed: this.refresh(nowMs), lost };
  }

  /** Forgets peers silent for deadAfterMs; true when the alive set changed. Call it often (every ~50 ms). */
  expire(nowMs: number): boolean {
    return this.refresh(nowMs);
  }

  /** Nodes alive now, always including this one. */
  alive(nowMs: number): Set<string> {
    const names = new Set([this.self]);
    for (const [name, peer] of this.peers) {
      if (!peer.left && !peer.joining && nowMs - peer.lastHeardMs < this.config.deadAfterMs) names.add(name);
    }
    return names;
  }

  /** Peers heard at least once in their current incarnation and not gone: for the quick start and metrics. */
  heardFrom(): string[] {
    return [...this.peers.entries()].filter(([, p]) => !p.left).map(([name]) => name);
  }

  /** Forgets peers whose Node is gone; true when the alive set changed. */
  retain(nodes: ReadonlySet<string>, nowMs: number): boolean {
    for (const name of [...this.peers.keys()]) if (!nodes.has(name)) this.peers.delete(name);
    return this.refresh(nowMs);
  }

  private refresh(nowMs: number): boolean {
    const now = this.alive(nowMs);
    const changed = now.size !== this.lastAlive.size || [...now].some((n) => !this.lastAlive.has(n));
    this.lastAlive = now;
    return changed;
  }
}
