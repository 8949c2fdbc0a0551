// `berth sandbox`: the local test-and-demo cluster's commands. `sandbox apiserver` serves the in-memory Kubernetes
// API server on its own, for kubectl and for tests in other processes. Only commander loads up front; the server
// loads when the action runs.
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { Command } from "commander";
import { UsageError } from "../lib/errors.js";

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

  return sandbox;
}
