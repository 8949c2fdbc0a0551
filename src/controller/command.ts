// `berth controller`: the hostPort-mode controller's command line. Flags are parsed once, here, with zod into one
// ControllerCommandConfig that is passed down; the controller itself, the kube client and @kubernetes/client-node
// (~750 ms to import) load only when the command runs, so `berth --help` and the lb-pod never pay for them.
import { hostname } from "node:os";
import { Command, Option } from "commander";
import { z } from "zod";
import { parseFlags } from "../lib/flags.js";
import { UsageError } from "../lib/errors.js";
import { DEFAULT_NAMESPACE } from "../lib/names.js";
import { LB_POD_BACKENDS, type LbPodBackend } from "./types.js";

/** Everything the controller process needs from its flags, validated. */
export interface ControllerCommandConfig {
  /** Unset: in-cluster configuration (the pod's service account). */
  kubeconfig?: string;
  namespace: string;
  lbPodImage: string;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  /** Services without spec.loadBalancerClass are ours (k3s servicelb's behaviour) unless --ignore-unset-class. */
  claimUnsetClass: boolean;
  /**
   * Whether the lb-pods of a Service with IPv6 ask the kubelet for net.ipv6.conf.all.forwarding (IPv4 ones never ask
   * for a sysctl: see podSysctls in daemonset.ts). --no-forwarding-sysctls is for nodes whose pod namespaces already
   * forward IPv6; elsewhere the lb-pod finds forwarding off and says so.
   */
  forwardingSysctls: boolean;
  /** --lb-backend: the lb-pods' netfilter front end (auto: each pod picks from its namespace's rules). */
  lbPodBackend: LbPodBackend;
  leaderElect: boolean;
  leaseName: string;
  leaseNamespace: string;
  /** Defaults as client-go's leaderelection / kube-controller-manager: 15 s, 10 s, 2 s. */
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  identity: string;
  /** host:port of /healthz, /readyz and /metrics; undefined = not served. */
  listen?: { host: string; port: number };
  resyncMs: number;
  workers: number;
}

/** 500ms, 30s, 5m, 1h, or a combination as Go's time.ParseDuration writes them (1m30s). */
export function parseDuration(flag: string, text: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let at = 0;
  if (text === "") throw new UsageError(`${flag}: empty duration (write e.g. 30s, 5m, 500ms)`);
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) throw new UsageError(`${flag}: "${text}" is not a duration (write e.g. 30s, 5m, 500ms)`);
    total += Number(m[1]) * (units[m[2] as string] as number);
    at = re.lastIndex;
  }
  return Math.round(total);
}

/** ":9090", "0.0.0.0:9090", "127.0.0.1:0", "[::1]:9090"; "" or "off" disables the endpoint. */
export function parseListen(text: string): { host: string; port: number } | undefined {
  if (text === "" || text === "off") return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen: "${text}" is not host:port (e.g. :9090, 127.0.0.1:9090, [::1]:9090, or off)`);
  const host = m[1] ?? (m[2] === "" ? "0.0.0.0" : (m[2] as string));
  return { host, port };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const rawSchema = z.object({
  kubeconfig: z.string().min(1, "--kubeconfig: empty path").optional(),
  namespace: z.string().max(63).regex(DNS_LABEL, "--namespace must be a DNS label (lower case, digits, '-')"),
  lbImage: z.string().min(1, "--lb-image must not be empty").regex(/^\S+$/, "--lb-image must not contain spaces"),
  imagePullPolicy: z.enum(["Always", "IfNotPresent", "Never"]),
  ignoreUnsetClass: z.boolean(),
  forwardingSysctls: z.boolean().default(true),
  lbBackend: z.enum(LB_POD_BACKENDS).default("auto"),
  leaderElect: z.boolean(),
  leaseName: z.string().max(253).regex(DNS_SUBDOMAIN, "--lease-name must be a DNS subdomain"),
  leaseNamespace: z.string().max(63).regex(DNS_LABEL, "--lease-namespace must be a DNS label").optional(),
  leaseDuration: z.string(),
  renewDeadline: z.string(),
  retryPeriod: z.string(),
  identity: z.string().min(1).optional(),
  listen: z.string(),
  resync: z.string(),
  workers: z.string().regex(/^[1-9]\d*$/, "--workers must be a positive integer"),
});

type RawOptions = z.input<typeof rawSchema>;

/** Validates the flags into the one configuration object; bad input is a UsageError naming the flag. */
export function parseControllerOptions(raw: RawOptions): ControllerCommandConfig {
  const o = parseFlags(rawSchema, raw);
  const leaseDurationMs = parseDuration("--lease-duration", o.leaseDuration);
  const renewDeadlineMs = parseDuration("--renew-deadline", o.renewDeadline);
  const retryPeriodMs = parseDuration("--retry-period", o.retryPeriod);
  // client-go's leaderelection.NewLeaderElector refuses the same combinations.
  if (o.leaderElect) {
    if (leaseDurationMs <= renewDeadlineMs) throw new UsageError("--lease-duration must be greater than --renew-deadline");
    if (renewDeadlineMs <= retryPeriodMs) throw new UsageError("--renew-deadline must be greater than --retry-period");
    if (retryPeriodMs <= 0) throw new UsageError("--retry-period must be positive");
  }
  const resyncMs = parseDuration("--resync", o.resync);
  if (resyncMs < 100) throw new UsageError("--resync must be at least 100ms");
  const listen = parseListen(o.listen);
  return {
    ...(o.kubeconfig !== undefined ? { kubeconfig: o.kubeconfig } : {}),
    namespace: o.namespace,
    lbPodImage: o.lbImage,
    imagePullPolicy: o.imagePullPolicy,
    claimUnsetClass: !o.ignoreUnsetClass,
    forwardingSysctls: o.forwardingSysctls,
    lbPodBackend: o.lbBackend,
    leaderElect: o.leaderElect,
    leaseName: o.leaseName,
    leaseNamespace: o.leaseNamespace ?? o.namespace,
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    // client-go uses hostname + "_" + a UUID; the pod name (the hostname in a pod) is what `kubectl get lease` shows.
    identity: o.identity ?? `${hostname()}_${process.pid}`,
    ...(listen ? { listen } : {}),
    resyncMs,
    workers: Number(o.workers),
  };
}

export function controllerCommand(): Command {
  return new Command("controller")
    .exitOverride()
    .description("run the controller: one lb-pod DaemonSet per LoadBalancer Service, status, events (hostPort mode)")
    .option("--kubeconfig <file>", "kubeconfig to use (default: in-cluster service account)")
    .option("--namespace <ns>", "namespace of the per-Service DaemonSets", DEFAULT_NAMESPACE)
    .option("--lb-image <image>", "image of the lb-pod container", "ghcr.io/berth-lb/berth-lb-pod:latest")
    .addOption(new Option("--image-pull-policy <policy>", "imagePullPolicy of the lb-pods").choices(["Always", "IfNotPresent", "Never"]).default("IfNotPresent"))
    .option("--ignore-unset-class", "leave Services without spec.loadBalancerClass alone (default: they are ours, as with k3s servicelb)", false)
    .option("--no-forwarding-sysctls", "do not ask the kubelet for net.ipv6.conf.all.forwarding for Services with IPv6 (IPv4 needs no sysctl); only for nodes whose pod namespaces already forward IPv6")
    .addOption(new Option("--lb-backend <name>", "netfilter front end of the lb-pods: auto picks, per pod, the iptables variant whose rules its namespace holds (nft on a tie)")
      .choices(LB_POD_BACKENDS).default("auto"))
    .option("--no-leader-elect", "do not elect a leader (run exactly one replica then)")
    .option("--lease-name <name>", "Lease used for leader election", "berth-controller")
    .option("--lease-namespace <ns>", "namespace of the Lease (default: --namespace)")
    .option("--lease-duration <d>", "how long a leader's lease lasts without renewal", "15s")
    .option("--renew-deadline <d>", "a leader that cannot renew within this long stops writing", "10s")
    .option("--retry-period <d>", "how often candidates try, and leaders renew", "2s")
    .option("--identity <id>", "holder identity in the Lease (default: hostname_pid)")
    .option("--listen <host:port>", "address of /healthz, /readyz and /metrics (off to disable)", "0.0.0.0:9090")
    .option("--resync <d>", "how often every Service is reconciled even without changes", "5m")
    .option("--workers <n>", "Services reconciled in parallel, and as many more for new Services waiting for their DaemonSet (one key is never reconciled twice at once)", "4")
    .action(async (raw: RawOptions) => {
      const config = parseControllerOptions(raw);
      const { runController } = await import("./controller.js");
      await runController(config);
    });
}
