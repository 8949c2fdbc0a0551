// Membership over UDP: every `intervalMs` this speaker sends a heartbeat to each peer's node IP, and it reports when
// the set of alive speakers changes. The decisions (what a packet means, when a peer is dead) are in
// membership-core.ts; this file only owns the sockets and the timers. No Kubernetes API call is made here: an
// unreachable API server changes nothing as long as the peers can still hear each other.
import dgram from "node:dgram";
import { isIP } from "node:net";
import { realClock, type Clock, type TimerHandle } from "../lib/kube/clock.js";
import { noLog, type LogFn } from "../lib/kube/client.js";
import { decodeHeartbeat, encodeHeartbeat, MembershipState, type Heartbeat } from "./membership-core.js";

export interface MembershipHooks {
  /** Heartbeats a peer sent that never arrived (sequence gaps). */
  heartbeatsLost?(peer: string, count: number): void;
  /** A datagram on our port that was not a valid heartbeat, or came from an address its node does not have. */
  rejected?(reason: string): void;
}

export interface MembershipOptions {
  self: string;
  /** UDP port every speaker listens on and sends to. */
  port: number;
  intervalMs: number;
  deadAfterMs: number;
  /** Called (synchronously, from a socket or timer callback) when the alive set changes. */
  onChange(alive: ReadonlySet<string>): void;
  /** Called when a peer acknowledges our goodbye (it announces what we announced). */
  onGoodbyeAck?(peer: string): void;
  /** Called when a peer says goodbye. */
  onGoodbye?(peer: string): void;
  clock?: Clock;
  log?: LogFn;
  hooks?: MembershipHooks;
}

export class Membership {
  private readonly state: MembershipState;
  private readonly clock: Clock;
  private readonly log: LogFn;
  /** Peer name -> its node addresses (the only sources accepted for it, and where it is sent to). */
  private peers = new Map<string, string[]>();
  private socket4?: dgram.Socket;
  private socket6?: dgram.Socket;
  private readonly inc: number;
  private seq = 0;
  private sendTimer?: TimerHandle;
  private checkTimer?: TimerHandle;
  private stopped = false;
  private leaving = false;
  private joining = true;

  constructor(private readonly options: MembershipOptions) {
    this.clock = options.clock ?? realClock;
    this.log = options.log ?? noLog;
    this.state = new MembershipState(options.self, { deadAfterMs: options.deadAfterMs });
    this.inc = this.clock.now();
  }

  /** Binds the sockets (IPv4 always; IPv6 too when the host has it) and starts sending and checking. */
  async start(): Promise<void> {
    this.socket4 = await this.bind("udp4", "0.0.0.0");
    try {
      this.socket6 = await this.bind("udp6", "::");
    } catch (err) {
      // An IPv4-only host (IPv6 disabled): peers are reached over IPv4 only.
      this.log("debug", "no IPv6 heartbeat socket", { error: (err as Error).message });
    }
    this.tick();
    this.check();
  }

  /** The peers and their node addresses, from the Node objects; call on every change. */
  setPeers(peers: ReadonlyMap<string, readonly string[]>): void {
    this.peers = new Map([...peers].filter(([name]) => name !== this.options.self).map(([name, addrs]) => [name, [...addrs]]));
    if (this.state.retain(new Set(this.peers.keys()), this.clock.now())) this.options.onChange(this.alive());
  }

  alive(): Set<string> {
    return this.state.alive(this.clock.now());
  }

  /** Peers heard from (alive or recently dead), for the quick start. */
  heardFrom(): string[] {
    return this.state.heardFrom();
  }

  /** From now on, heartbeats say this speaker announces (peers may elect it). */
  markJoined(): void {
    if (!this.joining) return;
    this.joining = false;
    // At once rather than at the next tick: peers move this node's share of addresses back a tick sooner.
    this.sendTimer?.cancel();
    this.tick();
  }

  /** Tells every peer that this speaker is leaving, three times ~30 ms apart (UDP may drop one); stops heartbeats. */
  async sayGoodbye(): Promise<void> {
    this.leaving = true;
    this.sendTimer?.cancel();
    for (let i = 0; i < 3; i++) {
      this.broadcast({ v: 1, node: this.options.self, inc: this.inc, seq: ++this.seq, bye: true });
      await this.clock.sleep(30);
    }
  }

  /** Tells a leaving peer that its addresses are announced here now (sent twice, directly to it). */
  acknowledgeGoodbye(peer: string): void {
    const hb: Heartbeat = { v: 1, node: this.options.self, inc: this.inc, seq: ++this.seq, ack: peer };
    this.sendTo(peer, hb);
    this.sendTo(peer, hb);
  }

  stop(): void {
    this.stopped = true;
    this.sendTimer?.cancel();
    this.checkTimer?.cancel();
    this.socket4?.close();
    this.socket6?.close();
  }

  private bind(type: "udp4" | "udp6", address: string): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket({ type, reuseAddr: true, ...(type === "udp6" ? { ipv6Only: true } : {}) });
      socket.once("error", reject);
      socket.on("message", (data, rinfo) => this.receive(data, rinfo.address));
      socket.bind(this.options.port, address, () => {
        socket.removeListener("error", reject);
        socket.on("error", (err) => this.log("warn", "heartbeat socket error", { error: err.message }));
        resolve(socket);
      });
    });
  }

  private receive(data: Buffer, from: string): void {
    if (this.stopped) return;
    const hb = decodeHeartbeat(data);
    if (typeof hb === "string") {
      this.options.hooks?.rejected?.(hb);
      return;
    }
    // Only the addresses of the Node the packet names: a stray or spoofed datagram from elsewhere on the LAN cannot
    // keep a dead node alive or make a live one leave.
    const addrs = this.peers.get(hb.node);
    const source = from.replace(/^::ffff:/, "");
    if (addrs === undefined || !addrs.includes(source)) {
      this.options.hooks?.rejected?.(addrs === undefined ? "unknown node" : "source is not the node's address");
      return;
    }
    if (hb.ack !== undefined) {
      if (hb.ack === this.options.self) this.options.onGoodbyeAck?.(hb.node);
      return;
    }
    const result = this.state.heard(hb, this.clock.now());
    if (result.lost > 0) this.options.hooks?.heartbeatsLost?.(hb.node, result.lost);
    if (hb.bye === true && result.ignored === undefined) this.options.onGoodbye?.(hb.node);
    if (result.changed) this.options.onChange(this.alive());
  }

  private tick(): void {
    if (this.stopped || this.leaving) return;
    this.broadcast({ v: 1, node: this.options.self, inc: this.inc, seq: ++this.seq, ...(this.joining ? { join: true as const } : {}) });
    this.sendTimer = this.clock.setTimer(this.options.intervalMs, () => this.tick());
  }

  /** Checks for silent peers four times per interval, so a death is seen within ~intervalMs/4 of its deadline. */
  private check(): void {
    if (this.stopped) return;
    if (this.state.expire(this.clock.now())) this.options.onChange(this.alive());
    this.checkTimer = this.clock.setTimer(Math.max(10, this.options.intervalMs / 4), () => this.check());
  }

  private broadcast(hb: Heartbeat): void {
    for (const peer of this.peers.keys()) this.sendTo(peer, hb);
  }

  private sendTo(peer: string, hb: Heartbeat): void {
    const data = encodeHeartbeat(hb);
    for (const addr of this.peers.get(peer) ?? []) {
      const socket = isIP(addr) === 6 ? this.socket6 : this.socket4;
      // Send errors (no route while a link is down) are the normal face of a partition: the peer will time out.
      socket?.send(data, this.options.port, addr, () => undefined);
    }
  }
}
