// `berth speaker`: the VIP-mode speaker's command line (one per node, a host-network DaemonSet). Flags are parsed
// once, here, with zod into one SpeakerCommandConfig; the informers, the kube client and @kubernetes/client-node load
// only when the command runs (src/speaker/run.ts).
import { Command } from "commander";
import { z } from "zod";
import { parseFlags } from "../lib/flags.js";
import { parseDuration, parseListen } from "../controller/command.js";
import { UsageError } from "../lib/errors.js";

export interface SpeakerCommandConfig {
  kubeconfig?: string;
  nodeName: string;
  port: number;
  heartbeatIntervalMs: number;
  deadAfterMs: number;
  handoverTimeoutMs: number;
  lifetimeSec: number;
  lingerMs: number;
  burstCount: number;
  burstIntervalMs: number;
  refreshIntervalMs: number;
  claimUnsetClass: boolean;
  listen?: { host: string; port: number };
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const rawSchema = z.object({
  kubeconfig: z.string().min(1, "--kubeconfig: empty path").optional(),
  nodeName: z.string({ error: "--node-name is required (the DaemonSet passes spec.nodeName)" }).max(253).regex(DNS_SUBDOMAIN, "--node-name must be a node name (a DNS subdomain)"),
  port: z.string().regex(/^\d{1,5}$/, "--port must be a UDP port number"),
  heartbeatInterval: z.string(),
  deadAfter: z.string(),
  handoverTimeout: z.string(),
  addressLifetime: z.string(),
  linger: z.string(),
  burstCount: z.string().regex(/^\d+$/, "--burst-count must be a whole number"),
  burstInterval: z.string(),
  refreshInterval: z.string(),
  ignoreUnsetClass: z.boolean(),
  listen: z.string(),
});
type RawOptions = z.input<typeof rawSchema>;

/** Validates the flags; bad input is a UsageError naming the flag. */
export function parseSpeakerOptions(raw: RawOptions): SpeakerCommandConfig {
  const o = parseFlags(rawSchema, raw);
  const port = Number(o.port);
  if (port < 1 || port > 65535) throw new UsageError("--port must be from 1 to 65535");
  const heartbeatIntervalMs = parseDuration("--heartbeat-interval", o.heartbeatInterval);
  const deadAfterMs = parseDuration("--dead-after", o.deadAfter);
  if (heartbeatIntervalMs < 10) throw new UsageError("--heartbeat-interval must be at least 10ms");
  // Fewer than ~3 intervals and one lost datagram makes a live peer look dead (keepalived's 3 x advert interval).
  if (deadAfterMs < 3 * heartbeatIntervalMs) throw new UsageError("--dead-after must be at least 3 x --heartbeat-interval");
  const lifetimeMs = parseDuration("--address-lifetime", o.addressLifetime);
  // Renewed every second: at least 2 s so one late renewal does not drop an address that is still ours.
  if (lifetimeMs < 2000 || lifetimeMs % 1000 !== 0) throw new UsageError("--address-lifetime must be whole seconds, at least 2s (addresses are renewed every second)");
  const listen = parseListen(o.listen);
  return {
    ...(o.kubeconfig !== undefined ? { kubeconfig: o.kubeconfig } : {}),
    nodeName: o.nodeName,
    port,
    heartbeatIntervalMs,
    deadAfterMs,
    handoverTimeoutMs: parseDuration("--handover-timeout", o.handoverTimeout),
    lifetimeSec: lifetimeMs / 1000,
    lingerMs: parseDuration("--linger", o.linger),
    burstCount: Number(o.burstCount),
    burstIntervalMs: parseDuration("--burst-interval", o.burstInterval),
    refreshIntervalMs: parseDuration("--refresh-interval", o.refreshInterval),
    claimUnsetClass: !o.ignoreUnsetClass,
    ...(listen ? { listen } : {}),
  };
}

export function speakerCommand(): Command {
  return new Command("speaker")
    .exitOverride()
    .description("run the VIP-mode speaker on this node: elect with the other speakers, announce the VIPs this node owns (ARP/NDP)")
    .option("--kubeconfig <file>", "kubeconfig to use (default: in-cluster service account)")
    .option("--node-name <name>", "this node's name (the DaemonSet passes spec.nodeName)")
    .option("--port <port>", "UDP port of the heartbeats between speakers (the same on every node)", "7946")
    .option("--heartbeat-interval <d>", "how often this speaker tells every peer it is alive", "200ms")
    .option("--dead-after <d>", "a peer silent this long is dead and its addresses move", "1s")
    .option("--handover-timeout <d>", "on SIGTERM, how long to wait for peers to take the addresses over before withdrawing", "1s")
    .option("--address-lifetime <d>", "valid lifetime of an announced address, renewed every second: how long a dead speaker's address outlives it", "3s")
    .option("--linger <d>", "how long an address handed to a live peer stays on before removal (make before break)", "300ms")
    .option("--burst-count <n>", "gratuitous ARP / unsolicited NA packets after the first one on takeover", "4")
    .option("--burst-interval <d>", "time between the burst's packets", "500ms")
    .option("--refresh-interval <d>", "then one packet this often while announcing (0 = never)", "30s")
    .option("--ignore-unset-class", "leave Services without spec.loadBalancerClass alone (as the controller's flag)", false)
    .option("--listen <host:port>", "address of /healthz, /readyz and /metrics (off to disable)", "0.0.0.0:7473")
    .action(async (raw: RawOptions) => {
      const config = parseSpeakerOptions(raw);
      const { runSpeaker } = await import("./run.js");
      await runSpeaker(config);
    });
}
