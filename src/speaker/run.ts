// `berth speaker` at run time: informers for Services, Nodes, EndpointSlices and AddressPools (trimmed as the
// controller's, src/controller/cache-trim.ts), the Speaker over the world they make (src/speaker/world.ts), Events on
// Services when their announcer changes, /healthz /readyz /metrics. The speaker never writes to the API at steady
// state: reads are watches, and the only writes are those Events, on change.
import { hostname } from "node:os";
import type { V1EndpointSlice, V1Node, V1Service } from "@kubernetes/client-node";
import { trimEndpointSlice, trimNode, trimService } from "../controller/cache-trim.js";
import { systemRunner } from "../lib/exec.js";
import { KubeClient, Resources, type KubeObject, type LogFn } from "../lib/kube/client.js";
import { startHealthServer } from "../lib/kube/health.js";
import { serviceEvent } from "../lib/kube/events.js";
import { Informer } from "../lib/kube/informer.js";
import type { AddressPool } from "../lib/vip/address-pool.js";
import { ADDRESS_POOL_RESOURCE } from "../controller/vip/state.js";
import { Announcer } from "./announcer.js";
import type { SpeakerCommandConfig } from "./command.js";
import type { ElectionVip } from "./election.js";
import { announcerEvent, SPEAKER_COMPONENT, type EventDecision } from "./events.js";
import { SpeakerMetrics } from "./metrics.js";
import { DEFAULT_SPEAKER_TIMINGS, Speaker, type SpeakerPool, type SpeakerWorld } from "./speaker.js";
import { buildWorld } from "./world.js";

type Svc = V1Service & KubeObject;

export async function runSpeaker(cmd: SpeakerCommandConfig): Promise<void> {
  const log: LogFn = (level, message, fields) => {
    if (level === "debug") return;
    process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level, msg: message, ...(fields ?? {}) })}\n`);
  };
  const metrics = new SpeakerMetrics();
  const client = await KubeClient.fromKubeconfig({ ...(cmd.kubeconfig ? { kubeconfig: cmd.kubeconfig } : {}), userAgent: "berth-speaker", metrics });
  const common = { client, metrics, log };
  const services = new Informer<Svc>({ ...common, resource: Resources.services, transform: trimService });
  const nodes = new Informer<V1Node & KubeObject>({ ...common, resource: Resources.nodes, transform: trimNode });
  const slices = new Informer<V1EndpointSlice & KubeObject>({ ...common, resource: Resources.endpointSlices, transform: trimEndpointSlice });
  const pools = new Informer<AddressPool & KubeObject>({ ...common, resource: ADDRESS_POOL_RESOURCE });
  const informers = [services, nodes, slices, pools] as const;

  // The world is rebuilt lazily: informer events only mark it stale and poke the Speaker, which coalesces.
  let world: SpeakerWorld | undefined;
  let lastPools = new Map<string, SpeakerPool>();
  const currentWorld = (): SpeakerWorld => {
    if (world === undefined) {
      const built = buildWorld({
        services: services.list(), nodes: nodes.list(), endpointSlices: slices.list(), pools: pools.list(), claimUnsetClass: cmd.claimUnsetClass,
      }, lastPools);
      world = built.world;
      lastPools = built.pools;
    }
    return world;
  };

  const events = new SpeakerEvents(client, log);
  const announcer = new Announcer({
    runner: systemRunner(),
    config: {
      lifetimeSec: cmd.lifetimeSec, renewMs: 1000, lingerMs: cmd.lingerMs,
      burstCount: cmd.burstCount, burstIntervalMs: cmd.burstIntervalMs, refreshIntervalMs: cmd.refreshIntervalMs,
    },
    log,
    hooks: metrics,
  });
  const speaker: Speaker = new Speaker({
    config: {
      self: cmd.nodeName, port: cmd.port, heartbeatIntervalMs: cmd.heartbeatIntervalMs, deadAfterMs: cmd.deadAfterMs,
      handoverTimeoutMs: cmd.handoverTimeoutMs, resyncMs: DEFAULT_SPEAKER_TIMINGS.resyncMs,
    },
    world: currentWorld,
    announcer,
    log,
    hooks: metrics.speakerHooks({
      ownerChanged: (vip, from, to, self) => {
        const ev = announcerEvent(vip, from, to, self, speaker.alive());
        log("info", "announcer changed", { ip: vip.ip, from, to: to.owner, reason: to.reason });
        if (ev) events.emit(vip, ev, (key) => services.get(key));
      },
    }),
  });
  const changed = (): void => {
    world = undefined;
    speaker.worldChanged();
  };
  for (const informer of informers) {
    (informer as Informer<KubeObject>).addHandlers({ onAdd: changed, onUpdate: changed, onDelete: changed });
    informer.start();
  }

  let started = false;
  const health = cmd.listen
    ? await startHealthServer({
      host: cmd.listen.host, port: cmd.listen.port, metrics,
      ready: () => started || "informers not synced yet, or still listening for peers",
    })
    : undefined;
  if (health) log("info", "serving /healthz /readyz /metrics", { url: health.url });

  const done = new Promise<void>((resolve) => {
    const onSignal = (signal: string): void => {
      log("info", "stopping: handing addresses over", { signal });
      void (async () => {
        await speaker.shutdown();
        await Promise.all(informers.map((i) => i.stop()));
        await health?.close();
        client.close();
        log("info", "stopped");
        resolve();
      })();
    };
    process.once("SIGTERM", () => onSignal("SIGTERM"));
    process.once("SIGINT", () => onSignal("SIGINT"));
  });
  log("info", "starting", { node: cmd.nodeName, port: cmd.port });
  // Announce nothing before every cache has synced: a partial view could elect this node for addresses whose
  // pools or Services have not arrived yet.
  await Promise.all(informers.map((i) => i.synced));
  world = undefined;
  await speaker.start();
  started = true;
  log("info", "joined; announcing", { announced: [...announcer.announced().keys()] });
  await done;
}

/** Writes the speaker's Events (creates only: each is for one change, and the steady state writes none). */
class SpeakerEvents {
  private readonly instance = hostname();
  constructor(private readonly client: KubeClient, private readonly log: LogFn) {}

  emit(vip: ElectionVip, ev: EventDecision, lookup: (key: string) => Svc | undefined): void {
    for (const s of vip.services) {
      const service = lookup(s.key);
      if (!service) continue;
      void this.write(service, ev).catch((e: unknown) => this.log("warn", "cannot write event", { reason: ev.reason, service: s.key, error: String(e) }));
    }
  }

  private async write(service: Svc, ev: EventDecision): Promise<void> {
    const body = serviceEvent({
      service, type: ev.type, reason: ev.reason, message: ev.message, now: Date.now(),
      source: { component: "berth-speaker", host: this.instance },
      reporting: { component: SPEAKER_COMPONENT, instance: this.instance },
    });
    await this.client.create(Resources.events, body as never, { namespace: service.metadata?.namespace as string });
  }
}
