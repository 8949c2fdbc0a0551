// What `berth sandbox up/down/status/kubeconfig` and the hidden `run`, `demo-app` and `http-get` do once their flags
// are checked (src/sandbox/command.ts). `up` starts `berth sandbox run` detached, in its own session, with an extra
// pipe (fd 3) on which the supervisor writes one line, `ready` or `failed: <reason>`, then closes it: `up` learns of
// success, of failure, and of a supervisor that died without a word (EOF), without polling.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { UsageError } from "../../lib/errors.js";
import { runChecked, systemRunner, type CommandRunner } from "../../lib/exec.js";
import { httpGet, startDemoApp, startDemoUdp, type DemoAppIdentity } from "../demo-app.js";
import type { DemoAppSettings, HttpGetSettings, UpSettings } from "../command.js";
import { DEFAULT_SANDBOX_PREFIX, planLayout } from "./layout.js";
import { gatherPreflightFacts, preflightProblem } from "./preflight.js";
import { controlSocketPath, isSupervisorOf, lastLines, processAlive, readState, sandboxPaths, type SandboxOptions, type SandboxPaths, type SandboxState } from "./state.js";

export interface Context {
  repoDir: string;
  nodeBinary: string;
  runner?: CommandRunner;
  stateRoot?: string;
}

/** How long `up` waits for the supervisor's `ready`. */
const READY_TIMEOUT_MS = 120_000;
/**
 * How long `up --demo` waits for every node's address in the Service's status (a quiet 2-core machine needs ~15 s;
 * a busy one much longer), and for each URL to answer.
 */
const DEMO_INGRESS_TIMEOUT_MS = 90_000;
const DEMO_FETCH_RETRY_MS = 15_000;

const downCommand = (prefix: string): string => (prefix === DEFAULT_SANDBOX_PREFIX ? "berth sandbox down" : `berth sandbox down --prefix ${prefix}`);
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The pid file the supervisor writes first thing, so `down` finds a supervisor that never got to write state.json. */
const pidFile = (paths: SandboxPaths): string => join(paths.dir, "supervisor.pid");

/** The live supervisor of this prefix, if any (from state.json or the pid file, checked against /proc). */
function liveSupervisor(paths: SandboxPaths, prefix: string): number | undefined {
  const candidates = [readState(paths)?.pid, readPid(pidFile(paths))];
  return candidates.find((pid): pid is number => pid !== undefined && processAlive(pid) && isSupervisorOf(pid, prefix));
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

// ---- up ----

export async function runUp(settings: UpSettings, ctx: Context): Promise<void> {
  const started = Date.now();
  const { demoSandboxOptions } = await import("./demo.js");
  const { options, note } = demoSandboxOptions(settings.options, settings.demo);
  const runner = ctx.runner ?? systemRunner();
  const paths = sandboxPaths(options.prefix, ctx.stateRoot);
  const layout = planLayout(options);
  const facts = await gatherPreflightFacts({
    prefix: options.prefix,
    lanCidrs: layout.lanCidrs,
    demo: settings.demo,
    path: process.env.PATH ?? "",
    uid: process.getuid?.() ?? -1,
    runningPid: process.getuid?.() === 0 ? liveSupervisor(paths, options.prefix) : undefined,
    stateFileExists: existsSync(paths.state) || existsSync(pidFile(paths)),
    runner,
  });
  const problem = preflightProblem(facts, { prefix: options.prefix, lanCidrs: layout.lanCidrs });
  if (problem !== undefined) throw new UsageError(problem);

  const cli = join(ctx.repoDir, "dist", "cli.js");
  if (note !== undefined) console.log(note);
  const state = await startSupervisor(options, { cli, nodeBinary: ctx.nodeBinary, paths });
  console.log(`berth sandbox: up in ${seconds(Date.now() - started)}: ${options.nodes} node${options.nodes === 1 ? "" : "s"}${options.dualStack ? " (dual-stack)" : ""}, prefix ${options.prefix}`);
  console.log(`  kubeconfig ${state.kubeconfig}   (API server ${state.url}; logs in ${state.logDir})`);
  if (settings.demo) await showDemo(state, { ...ctx, runner, cli, started });
  const { quickStart } = await import("./demo.js");
  console.log("");
  for (const line of quickStart({ prefix: options.prefix, defaultPrefix: options.prefix === DEFAULT_SANDBOX_PREFIX,
    clientNs: layout.client.ns, firstNodeIp: layout.nodes[0]?.lanIps[0] ?? "" })) console.log(line);
}

async function startSupervisor(options: SandboxOptions, o: { cli: string; nodeBinary: string; paths: SandboxPaths }): Promise<SandboxState> {
  // Preflight found no supervisor and no state files: whatever is left here (logs, volumes of a sandbox stopped
  // without `down`) belongs to nobody, and would mix with this run's logs.
  rmSync(o.paths.dir, { recursive: true, force: true });
  mkdirSync(o.paths.logs, { recursive: true, mode: 0o700 });
  const out = openSync(o.paths.supervisorLog, "w");
  const args = [o.cli, "sandbox", "run", "--prefix", options.prefix, "--nodes", String(options.nodes), "--ready-fd", "3",
    ...(options.dualStack ? ["--dual-stack"] : []), ...(options.captureLoadBalancerIps ? [] : ["--no-lb-ip-capture"]),
    ...(options.allowedUnsafeSysctls !== undefined && options.allowedUnsafeSysctls.length > 0
      ? ["--allowed-unsafe-sysctls", options.allowedUnsafeSysctls.join(",")] : []),
    ...(options.controllerReplicas !== undefined ? ["--controller-replicas", String(options.controllerReplicas)] : [])];
  // detached: its own session and process group, so it outlives this command and a Ctrl-C in this terminal.
  const child = spawn(o.nodeBinary, args, { detached: true, stdio: ["ignore", out, out, "pipe"], cwd: "/" });
  closeSync(out);
  const exited = new Promise<string>((done) => child.once("exit", (code, signal) => done(signal ?? `code ${code}`)));
  // Ctrl-C while we wait: the supervisor is in another process group and would not see it; ask it to stop.
  let interrupted = false;
  const interrupt = (): void => {
    interrupted = true;
    child.kill("SIGTERM");
  };
  process.once("SIGINT", interrupt);
  const pipe = child.stdio[3];
  try {
    if (pipe === null || pipe === undefined || !("on" in pipe)) throw new Error("cannot read the supervisor's ready pipe");
    const line = await new Promise<string | undefined>((done) => {
      const lines = createInterface({ input: pipe as NodeJS.ReadableStream });
      const timer = setTimeout(() => done(`failed: not ready after ${seconds(READY_TIMEOUT_MS)}`), READY_TIMEOUT_MS);
      lines.once("line", (text) => {
        clearTimeout(timer);
        done(text);
      });
      lines.once("close", () => {
        clearTimeout(timer);
        done(undefined);
      });
    });
    if (interrupted) throw new Error(`interrupted: the sandbox supervisor is taking down what it started; \`${downCommand(options.prefix)}\` removes anything left`);
    if (line === "ready") {
      const state = readState(o.paths);
      if (state === undefined) throw new Error(`the supervisor said ready but wrote no ${o.paths.state}`);
      return state;
    }
    if (line === undefined) {
      const how = await Promise.race([exited, new Promise<string>((done) => setTimeout(() => done("no exit"), 2000))]);
      throw new Error(`the sandbox supervisor exited (${how}) before it was ready: ${lastLines(o.paths.supervisorLog)} (log: ${o.paths.supervisorLog})`);
    }
    if (line.startsWith("failed: not ready after")) child.kill("SIGTERM");
    throw new Error(`${line.replace(/^failed: /, "")}; run \`${downCommand(options.prefix)}\` to remove what is left`);
  } finally {
    process.off("SIGINT", interrupt);
    (pipe as { destroy?: () => void } | null | undefined)?.destroy?.();
    child.unref();
  }
}

async function showDemo(state: SandboxState, o: Context & { runner: CommandRunner; cli: string; started: number }): Promise<void> {
  const { KubeClient } = await import("../../lib/kube/client.js");
  const { deployDemo, demoUrl, expectedIngressIps, fetchFromClient, nextSteps, waitForIngress, waitForVipIngress } = await import("./demo.js");
  const client = await KubeClient.fromKubeconfig({ kubeconfig: state.kubeconfig, userAgent: "berth-sandbox-demo" });
  const { layout } = state;
  try {
    await deployDemo(client, layout.dualStack);
    console.log("\ndemo: DaemonSet berth-demo (one pod per node) behind two LoadBalancer Services on port 80, externalTrafficPolicy Local:");
    console.log("      berth-demo (hostPort mode: every node's address) and berth-demo-vip (berth.dev/mode: vip: an address of its own,");
    console.log("      announced by one node); waiting for berth to give them their addresses ...");
    const logs = `logs: ${state.logDir}`;
    let ips: string[];
    let vips: string[];
    try {
      // Both at once: the VIP needs only the controller and the speakers, the hostPort addresses wait for lb-pods.
      [ips, vips] = await Promise.all([
        waitForIngress(client, expectedIngressIps(layout), DEMO_INGRESS_TIMEOUT_MS),
        waitForVipIngress(client, layout.dualStack, DEMO_INGRESS_TIMEOUT_MS),
      ]);
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)} (${logs})`, { cause: err });
    }
    const table = await runChecked(o.runner, "kubectl", ["--kubeconfig", state.kubeconfig, "--cache-dir", join(state.logDir, "..", "kubectl-cache"), "get", "svc", "-o", "wide"]);
    const urls = ips.map((ip) => demoUrl(ip));
    const vipUrls = vips.map((ip) => demoUrl(ip));
    // One client run for all: the VIP's answer may wait for its speaker's first announcement (retried like the rest).
    const answers = await fetchFromClient({ runner: o.runner, clientNs: layout.client.ns, nodeBinary: o.nodeBinary, cli: o.cli, urls: [...urls, ...vipUrls], retryForMs: DEMO_FETCH_RETRY_MS });
    console.log(`demo: ready ${seconds(Date.now() - o.started)} after \`sandbox up\` started\n`);
    console.log("$ kubectl get svc -o wide");
    process.stdout.write(table.stdout);
    console.log(`\nfrom the client namespace ${layout.client.ns} (${layout.client.lanIps.join(", ")}, outside the cluster), one request per EXTERNAL-IP:`);
    for (const line of answers.slice(0, urls.length)) console.log(line);
    console.log("and to berth-demo-vip's own address (answered by the pod on the node whose speaker announces it):");
    for (const line of answers.slice(urls.length)) console.log(line);
    console.log("");
    for (const line of nextSteps({ prefix: layout.prefix, defaultPrefix: layout.prefix === DEFAULT_SANDBOX_PREFIX, clientNs: layout.client.ns, firstUrl: urls[0] ?? "" })) console.log(line);
    const all = urls.length + vipUrls.length;
    const failed = answers.filter((line) => / -> failed: /.test(line));
    if (failed.length > 0 || answers.length !== all) {
      throw new Error(`${failed.length} of ${all} EXTERNAL-IPs did not answer from the client namespace (${logs})`);
    }
  } finally {
    client.close();
  }
}

// ---- down ----

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!processAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !processAlive(pid);
}

/** Whether the process group still has members (the supervisor's children outlive a SIGKILLed supervisor). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function runDown(prefix: string, ctx: { runner?: CommandRunner; stateRoot?: string } = {}): Promise<void> {
  if (process.getuid?.() !== 0) throw new UsageError("berth sandbox down needs root (it removes network namespaces): run it with sudo or as root");
  const runner = ctx.runner ?? systemRunner();
  const paths = sandboxPaths(prefix, ctx.stateRoot);
  const done: string[] = [];
  const supervisor = liveSupervisor(paths, prefix);
  const recorded = readState(paths)?.pid ?? readPid(pidFile(paths));
  if (supervisor !== undefined) {
    process.kill(supervisor, "SIGTERM");
    // The supervisor stops the controller, every pod (SIGTERM, grace), the stand-ins and the network, in order.
    if (await waitGone(supervisor, 45_000)) done.push(`stopped the supervisor (pid ${supervisor})`);
    else {
      process.kill(supervisor, "SIGKILL");
      done.push(`killed the supervisor (pid ${supervisor}) after 45 s`);
    }
  }
  // Its process group (the supervisor was its leader: detached) holds the controller: gone unless it crashed.
  // A pid that still names a live group cannot have been reused for a new group, so this reaches only its children.
  if (recorded !== undefined && groupAlive(recorded)) {
    process.kill(-recorded, "SIGKILL");
    done.push(`killed the processes left in its process group ${recorded}`);
  }
  const { removeSandboxNetwork } = await import("./network.js");
  const removed = await removeSandboxNetwork(prefix, runner);
  if (removed.namespaces.length > 0) {
    done.push(`removed ${removed.namespaces.length} leftover network namespace${removed.namespaces.length === 1 ? "" : "s"}${removed.killedPids.length > 0 ? ` and killed ${removed.killedPids.length} process${removed.killedPids.length === 1 ? "" : "es"} in them` : ""}`);
  }
  if (existsSync(paths.dir)) {
    rmSync(paths.dir, { recursive: true, force: true });
    done.push(`removed ${paths.dir}`);
  }
  console.log(done.length > 0 ? `berth sandbox: down (prefix ${prefix}): ${done.join("; ")}` : `berth sandbox: nothing to remove (prefix ${prefix})`);
}

// ---- status / kubeconfig ----

export async function runStatus(prefix: string, ctx: { stateRoot?: string } = {}): Promise<number> {
  const paths = sandboxPaths(prefix, ctx.stateRoot);
  const state = readState(paths);
  const pid = liveSupervisor(paths, prefix);
  if (state === undefined || pid === undefined) {
    const leftover = state !== undefined || existsSync(pidFile(paths));
    console.log(`berth sandbox (prefix ${prefix}): not running${leftover ? `; leftovers of a crashed one exist: run \`${downCommand(prefix)}\`` : ""}`);
    return leftover ? 1 : 3;
  }
  const { layout, options } = state;
  console.log(`berth sandbox (prefix ${prefix}): up since ${state.startedAt}, supervisor pid ${pid}${state.controllerPid !== undefined ? `, controller pid ${state.controllerPid}` : ""}`);
  if (state.controllers !== undefined && state.controllers.length > 1) {
    // Who leads, as each replica's berth_leader gauge says (a replica that does not answer is shown as such).
    const { replicaLines } = await import("./replicas.js");
    for (const line of await replicaLines(state.controllers)) console.log(line);
  } else if (state.controllerUrl !== undefined) console.log(`  controller /metrics, /healthz, /readyz on ${state.controllerUrl}`);
  console.log(`  API server ${state.url}, kubeconfig ${state.kubeconfig}`);
  console.log(`  nodes: ${layout.nodes.map((n) => `${n.name} ${n.lanIps.join(" ")}`).join(", ")}`);
  console.log(`  client: netns ${layout.client.ns} ${layout.client.lanIps.join(" ")}`);
  console.log(`  options: ${options.dualStack ? "dual-stack" : "IPv4"}, LoadBalancer IP capture ${options.captureLoadBalancerIps ? "on" : "off"}; logs in ${state.logDir}`);
  return 0;
}

/** `sandbox kubelet stop|start <node>`: asks the supervisor over its control socket. */
export async function runKubelet(prefix: string, action: "stop" | "start", node: string, ctx: { stateRoot?: string } = {}): Promise<void> {
  const paths = sandboxPaths(prefix, ctx.stateRoot);
  if (readState(paths) === undefined || liveSupervisor(paths, prefix) === undefined) {
    throw new Error(`no sandbox with prefix ${prefix} is up: run \`berth sandbox up${prefix === DEFAULT_SANDBOX_PREFIX ? "" : ` --prefix ${prefix}`}\` first`);
  }
  const { callControl } = await import("./control.js");
  console.log(`berth sandbox: ${await callControl(controlSocketPath(paths), `/v1/nodes/${encodeURIComponent(node)}/kubelet/${action}`)}`);
}

export function kubeconfigPath(prefix: string, ctx: { stateRoot?: string } = {}): string {
  const paths = sandboxPaths(prefix, ctx.stateRoot);
  const state = readState(paths);
  if (state === undefined || liveSupervisor(paths, prefix) === undefined || !existsSync(state.kubeconfig)) {
    throw new Error(`no sandbox with prefix ${prefix} is up: run \`berth sandbox up${prefix === DEFAULT_SANDBOX_PREFIX ? "" : ` --prefix ${prefix}`}\` first`);
  }
  return state.kubeconfig;
}

// ---- run (the supervisor) ----

function report(fd: number | undefined, line: string): void {
  if (fd === undefined) return;
  try {
    writeSync(fd, `${line.replace(/\n/g, " ")}\n`);
    closeSync(fd);
  } catch {
    // `up` is gone (Ctrl-C): nobody to tell.
  }
}

export async function runSupervisor(options: SandboxOptions, o: { repoDir: string; nodeBinary: string; readyFd: number | undefined; stateRoot?: string }): Promise<void> {
  const { Supervisor } = await import("./supervisor.js");
  const paths = sandboxPaths(options.prefix, o.stateRoot);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  writeFileSync(pidFile(paths), `${process.pid}\n`);
  const stop = new Promise<NodeJS.Signals>((done) => {
    process.once("SIGTERM", () => done("SIGTERM"));
    process.once("SIGINT", () => done("SIGINT"));
  });
  // A bug in one stand-in must not leave the whole sandbox half-dead without a word: log it, keep serving.
  process.on("unhandledRejection", (reason) => console.error(`unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`));
  const supervisor = new Supervisor({ ...options, repoDir: o.repoDir, nodeBinary: o.nodeBinary, ...(o.stateRoot !== undefined ? { stateRoot: o.stateRoot } : {}) });
  const started = Date.now();
  try {
    await supervisor.start();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    console.error(`berth sandbox: ${message}`);
    report(o.readyFd, `failed: ${message}`);
    rmSync(pidFile(paths), { force: true });
    process.exitCode = 1;
    return;
  }
  console.log(`berth sandbox: ready in ${seconds(Date.now() - started)} (prefix ${options.prefix}, pid ${process.pid})`);
  report(o.readyFd, "ready");
  const signal = await stop;
  console.log(`berth sandbox: ${signal}: stopping`);
  await supervisor.stop();
  rmSync(pidFile(paths), { force: true });
  console.log("berth sandbox: stopped");
}

// ---- demo-app / http-get ----

export async function runDemoApp(settings: DemoAppSettings, identity: DemoAppIdentity): Promise<void> {
  if (settings.check) {
    try {
      await httpGet(`http://127.0.0.1:${settings.port}/`, 2000);
      return;
    } catch (err) {
      throw new Error(`demo app not answering on 127.0.0.1:${settings.port}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  const stop = new Promise<void>((done) => {
    process.once("SIGTERM", () => done());
    process.once("SIGINT", () => done());
  });
  const onRequest = settings.accessLog ? (line: string) => console.log(line) : undefined;
  const servers = [];
  for (const p of settings.ports ?? [settings.port]) servers.push(await startDemoApp(identity, p, undefined, onRequest));
  const udp = settings.udpPort !== undefined ? await startDemoUdp(identity, settings.udpPort) : undefined;
  const ports = servers.map((s) => s.port).join(", ");
  const what = settings.image !== undefined ? `sandbox web stand-in for image ${settings.image}` : "demo app";
  console.log(`${what}: pod ${identity.pod} on ${identity.node} listening on TCP port${servers.length > 1 ? "s" : ""} ${ports}${udp ? ` and UDP port ${udp.port}` : ""}`);
  await stop;
  if (settings.drainMs) {
    // Serving on while the pod's endpoint is withdrawn and every node's proxy rules drop it, as a web pod with a
    // `preStop: sleep` does on a cluster: connections sent meanwhile still get their answer.
    console.log(`${what}: SIGTERM, serving on for ${settings.drainMs} ms before closing`);
    await new Promise((r) => setTimeout(r, settings.drainMs));
  }
  udp?.socket.close();
  for (const { server } of servers) {
    server.closeAllConnections();
    await new Promise((done) => server.close(done));
  }
}

/** Fetches every URL (in parallel), retrying each until it answers or retryForMs passed; 0 when all answered. */
export async function runHttpGet(settings: HttpGetSettings): Promise<number> {
  const results = await Promise.all(settings.urls.map(async (url) => {
    const deadline = Date.now() + settings.retryForMs;
    for (;;) {
      try {
        return `${url} -> ${(await httpGet(url, settings.timeoutMs)).trim()}`;
      } catch (err) {
        if (Date.now() >= deadline) return `${url} -> failed: ${err instanceof Error ? err.message : String(err)}`;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }));
  for (const line of results) console.log(line);
  return results.some((line) => / -> failed: /.test(line)) ? 1 : 0;
}
