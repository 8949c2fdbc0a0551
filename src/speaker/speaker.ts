// One node's speaker: membership (who is alive), election (who announces what) and the announcer (put it on the
// wire), joined. The cluster comes in as a SpeakerWorld from a WorldSource (informers in `berth speaker`,
// src/speaker/command.ts); nothing here talks to the Kubernetes API, so an API server that goes away changes
// nothing announced: the last world stays, and membership keeps running on UDP.
//
// Lifecycle:
// - start: heartbeats go out marked `join` (peers do not elect us yet) until we have heard every peer or
//   joinTimeoutMs passed; then the first election runs, we announce our share, and only then say we joined.
// - any change of the world or of the alive set: elect again, apply the difference. A peer that comes back (a
//   partition healing, a restart) makes us send the takeover packets again for what we keep, since neighbours on
//   its side may have moved to it meanwhile.
// - shutdown (SIGTERM): goodbye to every peer, wait until each has acknowledged (it announces our addresses now)
//   or handoverTimeoutMs, then withdraw: the successor answers before we stop.
import { realClock, type Clock, type TimerHandle } from "../lib/kube/clock.js";
import { noLog, type LogFn } from "../lib/kube/client.js";
import { electAnnouncers, type ElectionNode, type ElectionPool, type ElectionVip, type VipElection } from "./election.js";
import { Membership, type MembershipHooks } from "./membership.js";
import type { Announcement, Announcer } from "./announcer.js";

export interface SpeakerNode extends ElectionNode {
  /** The node's InternalIP addresses: where its speaker is sent heartbeats and the only sources accepted from it. */
  addresses: string[];
}

export interface SpeakerPool extends ElectionPool {
  interfaces?: string[];
}

export interface SpeakerWorld {
  nodes: SpeakerNode[];
  pools: Map<string, SpeakerPool>;
  vips: ElectionVip[];
}

export interface SpeakerHooks extends MembershipHooks {
  /** One election over every address (on any change). */
  elected?(results: readonly VipElection[]): void;
  /** An address's owner changed (or it became unowned), as every speaker sees it; `self` is this node. */
  ownerChanged?(vip: ElectionVip, from: string | undefined, to: VipElection, self: string): void;
  /** The addresses this node announces, after each apply. */
  announcing?(count: number): void;
  /** The alive set changed. */
  membersChanged?(alive: ReadonlySet<string>): void;
}

export interface SpeakerConfig {
  self: string;
  port: number;
  heartbeatIntervalMs: number;
  deadAfterMs: number;
  /** How long to listen for peers before the first election, at most. Default deadAfterMs. */
  joinTimeoutMs?: number;
  /** How long a graceful shutdown waits for peers to acknowledge the handover. */
  handoverTimeoutMs: number;
  /** Elect and apply again this often even without a change (repairs a failed `ip` or a lost address). */
  resyncMs: number;
}

export const DEFAULT_SPEAKER_TIMINGS = {
  port: 7946,
  heartbeatIntervalMs: 200,
  deadAfterMs: 1000,
  handoverTimeoutMs: 1000,
  resyncMs: 5000,
} as const;

export interface SpeakerOptions {
  config: SpeakerConfig;
  world: () => SpeakerWorld;
  announcer: Announcer;
  clock?: Clock;
  log?: LogFn;
  hooks?: SpeakerHooks;
}

export class Speaker {
  private readonly membership: Membership;
  private readonly clock: Clock;
  private readonly log: LogFn;
  private joined = false;
  private leaving = false;
  private running = false;
  private dirty = false;
  private reannounce = false;
  private lastAlive = new Set<string>();
  private lastOwners = new Map<string, string | undefined>();
  private elections = 0;
  /** The inputs and answer of the last election (the world object is replaced whenever the cluster changes). */
  private lastElection?: { world: SpeakerWorld; aliveKey: string; desired: Announcement[] };
  private readonly pendingAcks = new Set<string>();
  private readonly acked = new Set<string>();
  private resyncTimer?: TimerHandle;
  private idle: Promise<void> = Promise.resolve();

  constructor(private readonly options: SpeakerOptions) {
    this.clock = options.clock ?? realClock;
    this.log = options.log ?? noLog;
    const c = options.config;
    this.membership = new Membership({
      self: c.self,
      port: c.port,
      intervalMs: c.heartbeatIntervalMs,
      deadAfterMs: c.deadAfterMs,
      clock: this.clock,
      log: this.log,
      ...(options.hooks ? { hooks: options.hooks } : {}),
      onChange: (alive) => this.onMembers(alive),
      onGoodbye: (peer) => {
        this.log("info", "peer said goodbye", { peer });
        this.pendingAcks.add(peer);
      },
      onGoodbyeAck: (peer) => this.acked.add(peer),
    });
  }

  async start(): Promise<void> {
    this.worldChanged();
    await this.membership.start();
    this.options.announcer.start();
    const peers = this.options.world().nodes.filter((n) => n.name !== this.options.config.self && n.ready).map((n) => n.name);
    const deadline = this.clock.now() + (this.options.config.joinTimeoutMs ?? this.options.config.deadAfterMs);
    while (this.clock.now() < deadline && !peers.every((p) => this.membership.heardFrom().includes(p))) {
      await this.clock.sleep(20);
    }
    this.joined = true;
    this.lastAlive = this.membership.alive();
    // Announce our share first, then tell the peers we are in: they let go only after our addresses are on and our
    // gratuitous packets out, so a returning node takes its addresses back without a gap (make before break).
    this.kick();
    await this.idle;
    this.membership.markJoined();
    this.log("info", "joined", { heardFrom: this.membership.heardFrom() });
    this.resync();
  }

  /** Speakers alive now, as this one hears them (itself included). */
  alive(): Set<string> {
    return this.membership.alive();
  }

  /** Call when the cluster (nodes, pools, Services, endpoints) changed. */
  worldChanged(): void {
    const world = this.options.world();
    this.membership.setPeers(new Map(world.nodes.map((n) => [n.name, n.addresses])));
    this.kick();
  }

  /** Graceful: hand every address over, then withdraw. */
  async shutdown(): Promise<void> {
    this.leaving = true;
    this.resyncTimer?.cancel();
    await this.idle;
    const waitFor = [...this.membership.alive()].filter((n) => n !== this.options.config.self);
    const announced = this.options.announcer.announced().size;
    if (announced > 0 && waitFor.length > 0) {
      await this.membership.sayGoodbye();
      const deadline = this.clock.now() + this.options.config.handoverTimeoutMs;
      while (this.clock.now() < deadline && !waitFor.every((p) => this.acked.has(p))) await this.clock.sleep(10);
      this.log("info", "handover", { acknowledgedBy: [...this.acked], waitedFor: waitFor });
    } else {
      await this.membership.sayGoodbye();
    }
    await this.options.announcer.stop(true);
    this.membership.stop();
  }

  /** Stops without handing over or withdrawing (tests, and a process that must exit now); addresses then expire. */
  async abandon(): Promise<void> {
    this.leaving = true;
    this.resyncTimer?.cancel();
    this.membership.stop();
    await this.options.announcer.stop(false);
  }

  private onMembers(alive: ReadonlySet<string>): void {
    this.options.hooks?.membersChanged?.(alive);
    if ([...alive].some((n) => !this.lastAlive.has(n))) this.reannounce = true;
    this.log("info", "members changed", { alive: [...alive].sort() });
    this.lastAlive = new Set(alive);
    this.kick();
  }

  private resync(): void {
    if (this.leaving) return;
    this.kick();
    this.resyncTimer = this.clock.setTimer(this.options.config.resyncMs, () => this.resync());
  }

  /** Coalesces changes: one election at a time, another right after if something changed meanwhile. */
  private kick(): void {
    this.dirty = true;
    if (this.running || !this.joined || this.leaving) return;
    this.running = true;
    this.idle = (async () => {
      try {
        while (this.dirty && !this.leaving) {
          this.dirty = false;
          await this.reconcile();
        }
      } finally {
        this.running = false;
      }
    })();
  }

  private async reconcile(): Promise<void> {
    const world = this.options.world();
    const self = this.options.config.self;
    const alive = this.membership.alive();
    const aliveKey = [...alive].sort().join(",");
    // A resync with the same world and the same members re-applies the last answer without electing again: the
    // election hashes every address against every node (10,000 addresses x 100 nodes is a million sha256), and
    // the resync is there to repair the interface, not to change the answer.
    if (world === this.lastElection?.world && aliveKey === this.lastElection.aliveKey && !this.reannounce && this.pendingAcks.size === 0) {
      await this.options.announcer.apply(this.lastElection.desired).catch((err: Error) => this.log("warn", "announce failed", { error: err.message }));
      this.options.hooks?.announcing?.(this.options.announcer.announced().size);
      return;
    }
    const results = electAnnouncers({ nodes: world.nodes, alive, pools: world.pools, vips: world.vips });
    this.options.hooks?.elected?.(results);
    const desired: Announcement[] = [];
    const owners = new Map<string, string | undefined>();
    results.forEach((r, i) => {
      owners.set(r.ip, r.owner);
      const vip = world.vips[i]!;
      // The first election after start reports only what this node starts announcing (a speaker that started after
      // the Service got its address is how a new cluster begins); it must not report every other address as moved.
      // After that, an address seen for the first time (a new Service) reports its first owner.
      const changed = this.lastOwners.has(r.ip) ? this.lastOwners.get(r.ip) !== r.owner : this.elections > 0 || r.owner === self;
      if (changed) this.options.hooks?.ownerChanged?.(vip, this.lastOwners.get(r.ip), r, self);
      if (r.owner === self) {
        const interfaces = world.pools.get(r.pool)?.interfaces;
        desired.push({ ip: r.ip, ...(interfaces ? { interfaces } : {}) });
      }
    });
    this.lastOwners = owners;
    this.elections++;
    this.lastElection = { world, aliveKey, desired };
    const reannounce = this.reannounce;
    this.reannounce = false;
    const before = new Set(this.options.announcer.announced().keys());
    try {
      await this.options.announcer.apply(desired);
    } catch (err) {
      this.log("warn", "announce failed; retried on the next change or resync", { error: (err as Error).message });
    }
    if (reannounce && before.size > 0) this.options.announcer.reannounce();
    this.options.hooks?.announcing?.(this.options.announcer.announced().size);
    // Acknowledge goodbyes only now that what the leaver announced and we won is on our interface.
    for (const peer of this.pendingAcks) this.membership.acknowledgeGoodbye(peer);
    this.pendingAcks.clear();
  }
}
