// The speaker's Prometheus metrics, on a Registry of its own (docs/architecture.md, "Conventions"). The Speaker,
// Membership and Announcer report through their hook interfaces; this class implements them all, plus the kube
// client's and informers' hooks.
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { ApiRequestRecorder } from "../lib/kube/client.js";
import type { InformerMetrics } from "../lib/kube/informer.js";
import type { MetricsSource } from "../lib/kube/metrics.js";
import type { AnnouncerHooks } from "./announcer.js";
import type { VipElection } from "./election.js";
import type { SpeakerHooks } from "./speaker.js";

export class SpeakerMetrics implements ApiRequestRecorder, InformerMetrics, MetricsSource, AnnouncerHooks {
  readonly registry = new Registry();
  private readonly announced: Gauge;
  private readonly members: Gauge;
  private readonly gratuitous: Counter<"family" | "result">;
  private readonly elections: Counter;
  private readonly ownerChanges: Counter;
  private readonly unowned: Gauge;
  private readonly lost: Counter<"peer">;
  private readonly rejected: Counter<"reason">;
  private readonly failures: Counter<"reason">;
  private readonly apiRequests: Counter<"verb" | "resource" | "code">;
  private readonly watchRestarts: Counter<"resource" | "reason">;
  private readonly relists: Counter<"resource" | "reason">;

  constructor(options: { processMetrics?: boolean } = {}) {
    const p = "berth_speaker_";
    const registers = [this.registry];
    this.announced = new Gauge({ name: `${p}announced_addresses`, help: "Addresses this node announces now.", registers });
    this.members = new Gauge({ name: `${p}members_alive`, help: "Speakers this one hears (itself included).", registers });
    this.gratuitous = new Counter({
      name: `${p}gratuitous_packets_total`, help: "Gratuitous ARP (ipv4) and unsolicited NA (ipv6) packets sent, by result (ok, failed).",
      labelNames: ["family", "result"], registers,
    });
    this.elections = new Counter({ name: `${p}elections_total`, help: "Elections run (each over every address, on any change).", registers });
    this.ownerChanges = new Counter({ name: `${p}owner_changes_total`, help: "Addresses whose announcing node changed, as this speaker saw it.", registers });
    this.unowned = new Gauge({ name: `${p}unannounced_addresses`, help: "Addresses no node may announce (no eligible node, unknown pool).", registers });
    this.lost = new Counter({ name: `${p}heartbeats_lost_total`, help: "Heartbeats from a peer that never arrived (sequence gaps).", labelNames: ["peer"], registers });
    this.rejected = new Counter({ name: `${p}datagrams_rejected_total`, help: "Datagrams on the heartbeat port that were not a valid heartbeat from a known node's address.", labelNames: ["reason"], registers });
    this.failures = new Counter({ name: `${p}announce_failures_total`, help: "Addresses this node should announce but could not place, by reason (noAllowedInterface, noInterfaceOnPrefix).", labelNames: ["reason"], registers });
    this.apiRequests = new Counter({ name: "berth_api_requests_total", help: "Kubernetes API requests by verb, resource and HTTP status code.", labelNames: ["verb", "resource", "code"], registers });
    this.watchRestarts = new Counter({ name: "berth_watch_restarts_total", help: "Watches reopened, by resource and reason.", labelNames: ["resource", "reason"], registers });
    this.relists = new Counter({ name: "berth_relists_total", help: "Full relists after the initial list, by resource and reason.", labelNames: ["resource", "reason"], registers });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The Speaker's hooks, counted here; `also` runs after (the Event writer). */
  speakerHooks(also: Partial<SpeakerHooks> = {}): SpeakerHooks {
    return {
      elected: (results: readonly VipElection[]) => {
        this.elections.inc();
        this.unowned.set(results.filter((r) => r.owner === undefined).length);
      },
      ownerChanged: (vip, from, to, self) => {
        this.ownerChanges.inc();
        also.ownerChanged?.(vip, from, to, self);
      },
      announcing: (count) => this.announced.set(count),
      membersChanged: (alive) => this.members.set(alive.size),
      heartbeatsLost: (peer, count) => this.lost.inc({ peer }, count),
      rejected: (reason) => this.rejected.inc({ reason }),
    };
  }

  gratuitousSent(family: "ipv4" | "ipv6", ok: boolean): void {
    this.gratuitous.inc({ family, result: ok ? "ok" : "failed" });
  }

  announceFailed(_ip: string, reason: string): void {
    this.failures.inc({ reason });
  }

  apiRequest(verb: string, resource: string, code: string): void {
    this.apiRequests.inc({ verb, resource, code });
  }

  watchRestart(resource: string, reason: string): void {
    this.watchRestarts.inc({ resource, reason });
  }

  relist(resource: string, reason: string): void {
    this.relists.inc({ resource, reason });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
