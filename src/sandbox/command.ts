// `berth sandbox`: the local test-and-demo cluster's commands. `sandbox up/down/status/kubeconfig` manage the sandbox
// cluster (docs/sandbox.md); `sandbox apiserver` serves the in-memory Kubernetes API server on its own, for kubectl
// and for tests in other processes. Hidden: `run` (the supervisor `up` starts), `demo-app` (the demo's image) and
// `http-get` (the client's HTTP requests). Flags are checked here, before anything starts; the code behind each
// command loads only when it runs.
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { UsageError } from "../lib/errors.js";
import { DEFAULT_SANDBOX_PREFIX, planLayout } from "./cluster/layout.js";
import { DEFAULT_CONTROLLER_REPLICAS, type SandboxOptions } from "./cluster/state.js";

interface ApiServerFlags {
  port: string;
  host: string;
  kubeconfig: string;
  token?: string;
  historyLimit?: string;
  plainHttp?: boolean;
}

export interface ApiServerSettings {
  port: number;
  host: string;
  kubeconfig: string;
  token: string;
  historyLimit?: number;
  plainHttp: boolean;
}

function parseInteger(flag: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim())) throw new UsageError(`invalid ${flag} ${JSON.stringify(value)}: expected an integer from ${min} to ${max}`);
  const n = Number(value.trim());
  if (n < min || n > max) throw new UsageError(`invalid ${flag} ${JSON.stringify(value)}: expected an integer from ${min} to ${max}`);
  return n;
}

/** Checks the flags once, before anything starts; every problem is one UsageError line. */
export function parseApiServerFlags(flags: ApiServerFlags, randomToken: () => string): ApiServerSettings {
  const port = parseInteger("--port", flags.port, 0, 65535);
  if (isIP(flags.host) === 0) throw new UsageError(`invalid --host ${JSON.stringify(flags.host)}: expected an IP address`);
  if (flags.kubeconfig.trim() === "") throw new UsageError("invalid --kubeconfig: expected a file path");
  const token = flags.token ?? randomToken();
  if (token === "" || /\s/.test(token)) throw new UsageError("invalid --token: expected a non-empty value without whitespace");
  const settings: ApiServerSettings = { port, host: flags.host, kubeconfig: resolve(flags.kubeconfig), token, plainHttp: flags.plainHttp === true };
  if (flags.historyLimit !== undefined) settings.historyLimit = parseInteger("--history-limit", flags.historyLimit, 1, 10_000_000);
  return settings;
}

/** Resolves on the first SIGTERM or SIGINT. */
function nextStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((done) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      done(signal);
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

async function runApiServer(settings: ApiServerSettings): Promise<void> {
  const { startApiServer } = await import("./apiserver/index.js");
  const { writeKubeconfig } = await import("./kubeconfig.js");
  const stopped = nextStopSignal();
  const server = await startApiServer({
    port: settings.port,
    host: settings.host,
    token: settings.token,
    tls: !settings.plainHttp,
    ...(settings.historyLimit !== undefined ? { historyLimit: settings.historyLimit } : {}),
  });
  try {
    writeKubeconfig(settings.kubeconfig, {
      server: server.url,
      token: server.token,
      ...(server.caCert !== undefined ? { caCert: server.caCert } : {}),
    });
  } catch (err) {
    await server.close();
    throw new UsageError(`cannot write --kubeconfig ${settings.kubeconfig}: ${err instanceof Error ? err.message : String(err)}`);
  }
  // Exactly one line, printed only once the port accepts connections and the kubeconfig is in place: scripts and
  // tests wait for it.
  console.log(`berth sandbox apiserver: serving on ${server.url}, kubeconfig ${settings.kubeconfig}`);
  await stopped;
  await server.close();
}

// ---- up / down / status / kubeconfig / run / demo-app / http-get ----

interface UpFlags {
  nodes: string;
  controllerReplicas?: string;
  dualStack?: boolean;
  demo?: boolean;
  lbIpCapture: boolean;
  allowedUnsafeSysctls?: string;
  prefix: string;
}

export interface UpSettings {
  options: SandboxOptions;
  demo: boolean;
}

/** More replicas than a Deployment would run only load the 2-core machines the sandbox is meant for. */
const MAX_CONTROLLER_REPLICAS = 5;

/** Checks `up`'s (and the hidden `run`'s) flags; every problem is one UsageError line. */
export function parseUpFlags(flags: UpFlags): UpSettings {
  const nodes = parseInteger("--nodes", flags.nodes, 1, 20);
  const options: SandboxOptions = {
    prefix: parsePrefix(flags.prefix),
    nodes,
    dualStack: flags.dualStack === true,
    captureLoadBalancerIps: flags.lbIpCapture,
    ...(flags.allowedUnsafeSysctls !== undefined ? { allowedUnsafeSysctls: parseSysctlPatterns(flags.allowedUnsafeSysctls) } : {}),
  };
  if (flags.controllerReplicas !== undefined) {
    const replicas = parseInteger("--controller-replicas", flags.controllerReplicas, 1, MAX_CONTROLLER_REPLICAS);
    if (replicas !== DEFAULT_CONTROLLER_REPLICAS) options.controllerReplicas = replicas;
  }
  return { options, demo: flags.demo === true };
}

/**
 * --allowed-unsafe-sysctls a,b: sysctl names or prefixes ending in `*`, as the kubelet's flag takes them
 * (pkg/kubelet/sysctl: a pattern is a sysctl name, or a prefix followed by `*`).
 */
export function parseSysctlPatterns(value: string): string[] {
  const patterns = value.split(",").map((p) => p.trim()).filter((p) => p !== "");
  for (const pattern of patterns) {
    if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*(\.?\*)?$/i.test(pattern)) {
      throw new UsageError(`invalid --allowed-unsafe-sysctls entry ${JSON.stringify(pattern)}: expected a sysctl name such as net.ipv6.conf.all.forwarding, or a prefix ending in * such as net.ipv6.*`);
    }
  }
  return patterns;
}

/** --prefix: the layout's rule (a lowercase letter, then up to 16 lowercase letters or digits), checked up front. */
export function parsePrefix(prefix: string): string {
  try {
    planLayout({ prefix, nodes: 1, dualStack: false });
  } catch (err) {
    throw new UsageError(`invalid --prefix ${JSON.stringify(prefix)}: ${err instanceof Error ? err.message.replace(/^sandbox prefix /, "") : String(err)}`);
  }
  return prefix;
}

export interface DemoAppSettings {
  /** The first (or only) TCP port: the one `--check` asks. */
  port: number;
  /** Every TCP port, when more than one was given (the web stand-in of an image with several ports). */
  ports?: number[];
  udpPort?: number;
  check: boolean;
  /** One access line per request on stdout, i.e. in the container log (the web stand-in). */
  accessLog?: boolean;
  /** The image the app stands in for, named in its first log line. */
  image?: string;
  /** After SIGTERM, keep serving this long before closing (the web stand-in: see images.ts). */
  drainMs?: number;
}

export function parseDemoAppFlags(flags: { port: string | string[]; udpPort?: string; check?: boolean; accessLog?: boolean; image?: string; drainMs?: string }): DemoAppSettings {
  const ports = [...new Set((Array.isArray(flags.port) ? flags.port : [flags.port]).map((p) => parseInteger("--port", p, 1, 65535)))];
  return {
    port: ports[0] ?? 8080,
    ...(ports.length > 1 ? { ports } : {}),
    ...(flags.udpPort !== undefined ? { udpPort: parseInteger("--udp-port", flags.udpPort, 1, 65535) } : {}),
    check: flags.check === true,
    ...(flags.accessLog === true ? { accessLog: true } : {}),
    ...(flags.image !== undefined ? { image: flags.image } : {}),
    ...(flags.drainMs !== undefined ? { drainMs: parseInteger("--drain-ms", flags.drainMs, 0, 60_000) } : {}),
  };
}

export interface HttpGetSettings {
  urls: string[];
  retryForMs: number;
  timeoutMs: number;
}

export function parseHttpGetFlags(urls: string[], flags: { retryFor: string; timeout: string }): HttpGetSettings {
  if (urls.length === 0) throw new UsageError("http-get: give at least one URL");
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`invalid URL ${JSON.stringify(url)}: expected e.g. http://198.18.0.11:80/`);
    }
    if (parsed.protocol !== "http:") throw new UsageError(`invalid URL ${JSON.stringify(url)}: only http:// is supported`);
  }
  return { urls, retryForMs: parseInteger("--retry-for", flags.retryFor, 0, 600_000), timeoutMs: parseInteger("--timeout", flags.timeout, 1, 600_000) };
}

/** The repository this CLI runs from (dist/sandbox/command.js -> the directory holding dist/ and bin/). */
function repoDir(): string {
  return fileURLToPath(new URL("../../", import.meta.url));
}

export function sandboxCommand(): Command {
  // addCommand() does not pass the root's exitOverride down, so each level throws commander's errors to main(),
  // which prints one line and exits 2 instead of commander's own exit 1.
  const sandbox = new Command("sandbox").description("a local test and demo cluster (not for production)").exitOverride();

  sandbox
    .command("apiserver")
    .exitOverride()
    .description("serve the in-memory Kubernetes API server (a test and demo server) until SIGTERM")
    .option("--port <port>", "TCP port to listen on (0 picks a free one)", "6443")
    .option("--host <ip>", "address to listen on", "127.0.0.1")
    .requiredOption("--kubeconfig <file>", "write a kubeconfig for kubectl and client-node here (mode 0600)")
    .option("--token <token>", "bearer token clients must send (default: a random one, written to the kubeconfig)")
    .option("--history-limit <n>", "watch events kept for resuming watches; older resourceVersions get 410 Gone")
    .option("--plain-http", "serve http instead of https (kubectl then sends no token: client-go sends tokens only over TLS)")
    .action(async (flags: ApiServerFlags) => {
      await runApiServer(parseApiServerFlags(flags, () => randomBytes(16).toString("hex")));
    });

  const prefixOption = ["--prefix <prefix>", "name prefix of everything the sandbox creates (network namespaces, state dir)", DEFAULT_SANDBOX_PREFIX] as const;

  sandbox
    .command("up")
    .exitOverride()
    .description("bring up the sandbox cluster in the background (root): nodes as network namespaces, the real controller")
    .option("--nodes <n>", "number of nodes (1-20)", "3")
    .option("--dual-stack", "IPv4 and IPv6 everywhere (LAN, pods, Services)")
    .option("--demo", "deploy the demo app behind a LoadBalancer Service and show its answer from every EXTERNAL-IP")
    .option("--no-lb-ip-capture", "the kube-proxy stand-in does not capture LoadBalancer IPs (as kube-proxy with ipMode Proxy)")
    .option("--allowed-unsafe-sysctls <list>", "sysctls the kubelets admit besides the safe ones, comma-separated (names or prefixes ending in *), as the kubelet flag; without it an IPv6 Service's lb-pods are rejected, as on a stock kubelet")
    .option("--controller-replicas <n>", "controller replicas (1-5), electing a leader through a Lease", String(DEFAULT_CONTROLLER_REPLICAS))
    .option(...prefixOption)
    .action(async (flags: UpFlags) => {
      const settings = parseUpFlags(flags);
      const { runUp } = await import("./cluster/commands.js");
      await runUp(settings, { repoDir: repoDir(), nodeBinary: process.execPath });
    });

  sandbox
    .command("down")
    .exitOverride()
    .description("stop the sandbox and remove everything it created (idempotent; also cleans up after a crash)")
    .option(...prefixOption)
    .action(async (flags: { prefix: string }) => {
      const prefix = parsePrefix(flags.prefix);
      const { runDown } = await import("./cluster/commands.js");
      await runDown(prefix);
    });

  sandbox
    .command("status")
    .exitOverride()
    .description("say whether the sandbox is up, and where its API server, kubeconfig, nodes and logs are")
    .option(...prefixOption)
    .action(async (flags: { prefix: string }) => {
      const prefix = parsePrefix(flags.prefix);
      const { runStatus } = await import("./cluster/commands.js");
      process.exitCode = await runStatus(prefix);
    });

  sandbox
    .command("kubelet")
    .exitOverride()
    .argument("<action>", "stop or start")
    .argument("<node>", "node name (node-1 ...)")
    .description("stop a node's kubelet (the node turns NotReady, its pods not Ready; processes keep running) or start it again")
    .option(...prefixOption)
    .action(async (action: string, node: string, flags: { prefix: string }) => {
      const prefix = parsePrefix(flags.prefix);
      if (action !== "stop" && action !== "start") throw new UsageError(`invalid action ${JSON.stringify(action)}: expected stop or start`);
      const { runKubelet } = await import("./cluster/commands.js");
      await runKubelet(prefix, action, node);
    });

  sandbox
    .command("kubeconfig")
    .exitOverride()
    .description("print the path of the running sandbox's kubeconfig (export KUBECONFIG=$(berth sandbox kubeconfig))")
    .option(...prefixOption)
    .action(async (flags: { prefix: string }) => {
      const prefix = parsePrefix(flags.prefix);
      const { kubeconfigPath } = await import("./cluster/commands.js");
      console.log(kubeconfigPath(prefix));
    });

  sandbox
    .command("run", { hidden: true })
    .exitOverride()
    .description("the sandbox supervisor (started by `sandbox up`; runs in the foreground until SIGTERM)")
    .option("--nodes <n>", "number of nodes", "3")
    .option("--dual-stack", "IPv4 and IPv6")
    .option("--no-lb-ip-capture", "do not capture LoadBalancer IPs")
    .option("--allowed-unsafe-sysctls <list>", "sysctls the kubelets admit besides the safe ones")
    .option("--controller-replicas <n>", "controller replicas", String(DEFAULT_CONTROLLER_REPLICAS))
    .option("--ready-fd <fd>", "file descriptor to report `ready` or `failed: reason` on, then close")
    .option(...prefixOption)
    .action(async (flags: UpFlags & { readyFd?: string }) => {
      const settings = parseUpFlags(flags);
      const readyFd = flags.readyFd === undefined ? undefined : parseInteger("--ready-fd", flags.readyFd, 3, 1024);
      const { runSupervisor } = await import("./cluster/commands.js");
      await runSupervisor(settings.options, { repoDir: repoDir(), nodeBinary: process.execPath, readyFd });
    });

  sandbox
    .command("demo-app", { hidden: true })
    .exitOverride()
    .description("the demo's HTTP app (image berth.dev/sandbox/demo-app:dev): answers with its pod, node and the client address")
    .option("--port <port>", "TCP port to serve HTTP on (repeat for several)",
      (value: string, previous: string[] | string) => (Array.isArray(previous) ? [...previous, value] : [value]), "8080")
    .option("--udp-port <port>", "also answer UDP datagrams on this port (the same one-line answer)")
    .option("--check", "readiness probe: exit 0 once the app answers on 127.0.0.1:PORT")
    .option("--access-log", "write one access line per request to stdout (the web stand-in of sandbox images)")
    .option("--image <image>", "the image this app stands in for (named in its first line)")
    .option("--drain-ms <ms>", "after SIGTERM, keep serving this long before closing (endpoints and proxy rules catch up meanwhile)")
    .option("--pod <name>", "the pod's name (default: env POD_NAME, from the downward API)")
    .option("--node <name>", "the node's name (default: env NODE_NAME, from the downward API)")
    .action(async (flags: { port: string | string[]; udpPort?: string; check?: boolean; accessLog?: boolean; image?: string; drainMs?: string; pod?: string; node?: string }) => {
      const settings = parseDemoAppFlags(flags);
      const { runDemoApp } = await import("./cluster/commands.js");
      // The downward API's values, read when the command runs (never at import).
      await runDemoApp(settings, { pod: flags.pod ?? process.env.POD_NAME ?? "unknown", node: flags.node ?? process.env.NODE_NAME ?? "unknown" });
    });

  sandbox
    .command("http-get", { hidden: true })
    .exitOverride()
    .argument("<url...>", "http:// URLs to fetch")
    .description("GET each URL, retrying until it answers; one line per URL (run inside the client namespace)")
    .option("--retry-for <ms>", "keep retrying a URL that does not answer for this long", "0")
    .option("--timeout <ms>", "deadline of each attempt", "2000")
    .action(async (urls: string[], flags: { retryFor: string; timeout: string }) => {
      const settings = parseHttpGetFlags(urls, flags);
      const { runHttpGet } = await import("./cluster/commands.js");
      process.exitCode = await runHttpGet(settings);
    });

  return sandbox;
}
