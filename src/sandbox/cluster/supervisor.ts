// The sandbox's supervisor (`berth sandbox run`, started detached by `berth sandbox up`): one process that brings the
// parts up in order, reports "ready" to `up` over a pipe, keeps the real controller running, and on SIGTERM takes
// everything down in reverse order. Order matters: the network exists before the kubelet stand-in attaches pods to
// it; the kube-proxy stand-in has its rules in before the controller can publish an address that relies on them;
// on the way down the controller stops first (so it does not react to pods going away) and the lb-pods get their
// SIGTERM (and remove their rules) before their namespaces go.
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, closeSync, mkdirSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";
import { systemRunner, type CommandRunner } from "../../lib/exec.js";
import { KubeClient, Resources, isAlreadyExists, type LogFn } from "../../lib/kube/client.js";
import { DEFAULT_NAMESPACE } from "../../lib/names.js";
import { startApiServer } from "../apiserver/index.js";
import { writeKubeconfig } from "../kubeconfig.js";
import { EndpointsStandIn } from "./endpoints.js";
import { KubeletStandIn } from "./kubelet.js";
import { planLayout, type NodeLayout, type SandboxLayout } from "./layout.js";
import { SandboxNetwork } from "./network.js";
import { ProxyStandIn } from "./proxy.js";
import { nodeObject } from "./nodes.js";
import { SANDBOX_LB_IMAGE, SANDBOX_PROBE_PERIOD_MS, sandboxImages } from "./images.js";
import { sandboxPaths, writeState, type SandboxOptions, type SandboxPaths, type SandboxState } from "./state.js";

/** A log that appends one line per message to a file (each part has its own, under logs/). */
export function fileLog(path: string, clock: () => Date = () => new Date()): LogFn {
  return (level, message, fields) => {
    const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : "";
    try {
      appendFileSync(path, `${clock().toISOString()} ${level} ${message}${extra}\n`);
    } catch {
      // A log that cannot be written must not take the sandbox down.
    }
  };
}

/** A part that failed to start: the message names the part and its log. */
export class SandboxPartError extends Error {
  override name = "SandboxPartError";
  constructor(readonly part: string, readonly logPath: string, cause: unknown) {
    super(`${part} failed: ${cause instanceof Error ? cause.message : String(cause)} (log: ${logPath})`);
  }
}

export interface SupervisorOptions extends SandboxOptions {
  /** The repository (bin/, dist/cli.js). */
  repoDir: string;
  /** The node binary that runs the controller and that bin/berth uses (process.execPath). */
  nodeBinary: string;
  /** Default /run/berth-sandbox. */
  stateRoot?: string;
  runner?: CommandRunner;
}

interface Stoppable {
  name: string;
  stop(): Promise<void>;
}

/**
 * The real controller as a child process, restarted when it dies (with a backoff that resets once a run lasted a
 * minute), as a Deployment's pod would be. Its output goes to logs/controller.log.
 */
export class ControllerProcess {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restartDelayMs = 1000;
  private restartTimer: NodeJS.Timeout | undefined;
  restarts = 0;

  constructor(private readonly o: { nodeBinary: string; cli: string; kubeconfig: string; logPath: string; log: LogFn; onStart: (pid: number) => void }) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const out = openSync(this.o.logPath, "a");
    // Forwarding sysctls stay on (the default): the kubelet stand-in applies pod sysctls as a kubelet started with
    // --allowed-unsafe-sysctls would, so the DaemonSet is exactly what a k3s cluster gets.
    const args = [this.o.cli, "controller", "--kubeconfig", this.o.kubeconfig, "--no-leader-elect", "--listen", "127.0.0.1:0", "--lb-image", SANDBOX_LB_IMAGE];
    const child = spawn(this.o.nodeBinary, args, { stdio: ["ignore", out, out] });
    closeSync(out);
    this.child = child;
    const startedAt = Date.now();
    if (child.pid !== undefined) this.o.onStart(child.pid);
    child.on("exit", (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.stopping) return;
      if (Date.now() - startedAt > 60_000) this.restartDelayMs = 1000;
      const delay = this.restartDelayMs;
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, 30_000);
      this.o.log("warn", `controller exited (${signal ?? `code ${code}`}); restarting in ${delay} ms`, { log: this.o.logPath });
      this.restartTimer = setTimeout(() => {
        this.restarts++;
        this.start();
      }, delay);
    });
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((done) => child.once("exit", () => done()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** The running sandbox, as the supervisor holds it. */
export class Supervisor {
  readonly paths: SandboxPaths;
  readonly layout: SandboxLayout;
  private readonly parts: Stoppable[] = [];
  private readonly log: LogFn;
  private state: SandboxState | undefined;

  constructor(private readonly o: SupervisorOptions) {
    this.paths = sandboxPaths(o.prefix, o.stateRoot);
    this.layout = planLayout({ prefix: o.prefix, nodes: o.nodes, dualStack: o.dualStack });
    mkdirSync(this.paths.logs, { recursive: true, mode: 0o700 });
    this.log = fileLog(join(this.paths.logs, "supervisor-parts.log"));
  }

  private logPath(part: string): string {
    return join(this.paths.logs, `${part}.log`);
  }

  /** Starts one part; a failure names the part and its log. */
  private async step<T>(part: string, logName: string, run: () => Promise<T>): Promise<T> {
    const started = Date.now();
    try {
      const result = await run();
      this.log("info", `${part} started in ${Date.now() - started} ms`);
      return result;
    } catch (err) {
      fileLog(this.logPath(logName))("error", `${part} failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      throw new SandboxPartError(part, this.logPath(logName), err);
    }
  }

  /** Brings everything up; on failure, takes down what was started and throws SandboxPartError. */
  async start(): Promise<SandboxState> {
    try {
      return await this.startParts();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async startParts(): Promise<SandboxState> {
    const runner = this.o.runner ?? systemRunner();
    const { layout, paths } = this;
    const [ipv4, ipv6] = layout.serviceCidrs;
    const api = await this.step("API server", "apiserver", () =>
      startApiServer({ tls: true, serviceCidrs: { ...(ipv4 !== undefined ? { ipv4 } : {}), ...(ipv6 !== undefined ? { ipv6 } : {}) } }));
    this.parts.push({ name: "API server", stop: () => api.close() });
    writeKubeconfig(paths.kubeconfig, { server: api.url, token: api.token, ...(api.caCert !== undefined ? { caCert: api.caCert } : {}) });
    const client = new KubeClient({
      server: api.url,
      authHeaders: () => ({ Authorization: `Bearer ${api.token}` }),
      tls: { ...(api.caCert !== undefined ? { ca: api.caCert } : {}) },
      userAgent: "berth-sandbox",
    });
    this.parts.push({ name: "kube client", stop: async () => client.close() });

    const network = await this.step("network", "network", () => SandboxNetwork.create(layout, runner));
    this.parts.push({ name: "network", stop: () => network.destroy() });

    await this.step("Node objects", "supervisor-parts", async () => {
      for (const node of layout.nodes) await this.createNode(client, node);
      await client.create(Resources.namespaces, { metadata: { name: DEFAULT_NAMESPACE } }).catch((err: unknown) => {
        if (!isAlreadyExists(err)) throw err;
      });
    });

    const endpoints = new EndpointsStandIn({ client, log: fileLog(this.logPath("endpoints")) });
    await this.step("EndpointSlice stand-in", "endpoints", () => endpoints.start());
    this.parts.push({ name: "EndpointSlice stand-in", stop: () => endpoints.stop() });

    const proxy = new ProxyStandIn({ client, layout, captureLoadBalancerIps: this.o.captureLoadBalancerIps, runner, log: fileLog(this.logPath("proxy")) });
    await this.step("kube-proxy stand-in", "proxy", () => proxy.start());
    this.parts.push({ name: "kube-proxy stand-in", stop: () => proxy.stop() });

    const containerLogs = join(paths.logs, "containers");
    mkdirSync(containerLogs, { recursive: true });
    const kubelet = new KubeletStandIn({
      client,
      nodes: layout.nodes.map((n) => ({ name: n.name, ips: n.lanIps })),
      network,
      images: sandboxImages(this.o.repoDir, this.o.nodeBinary),
      logDir: containerLogs,
      podsDir: join(paths.dir, "pods"),
      probePeriodMs: SANDBOX_PROBE_PERIOD_MS,
      runner,
      log: fileLog(this.logPath("kubelet")),
    });
    await this.step("kubelet stand-in", "kubelet", () => kubelet.start());
    this.parts.push({ name: "kubelet stand-in", stop: () => kubelet.stop() });

    const controller = new ControllerProcess({
      nodeBinary: this.o.nodeBinary,
      cli: join(this.o.repoDir, "dist", "cli.js"),
      kubeconfig: paths.kubeconfig,
      logPath: this.logPath("controller"),
      log: this.log,
      onStart: (pid) => this.recordControllerPid(pid),
    });
    await this.step("controller", "controller", async () => controller.start());
    this.parts.push({ name: "controller", stop: () => controller.stop() });

    this.state = {
      pid: process.pid,
      url: api.url,
      kubeconfig: paths.kubeconfig,
      logDir: paths.logs,
      startedAt: new Date().toISOString(),
      ...(controller.pid !== undefined ? { controllerPid: controller.pid } : {}),
      options: { prefix: this.o.prefix, nodes: this.o.nodes, dualStack: this.o.dualStack, captureLoadBalancerIps: this.o.captureLoadBalancerIps },
      layout,
    };
    writeState(paths, this.state);
    return this.state;
  }

  private recordControllerPid(pid: number): void {
    if (this.state === undefined) return;
    this.state = { ...this.state, controllerPid: pid };
    writeState(this.paths, this.state);
  }

  private async createNode(client: KubeClient, node: NodeLayout): Promise<void> {
    const object = nodeObject(node, new Date());
    await client.create(Resources.nodes, { metadata: object.metadata as { name: string }, spec: object.spec } as never);
    // Status is a subresource: the create above drops it, as kube-apiserver does.
    await client.patchStatus(Resources.nodes, node.name, "merge", { status: object.status });
  }

  /** Takes down every started part in reverse order; never throws (a part that fails to stop is logged). */
  async stop(): Promise<void> {
    while (this.parts.length > 0) {
      const part = this.parts.pop() as Stoppable;
      const started = Date.now();
      try {
        await part.stop();
        this.log("info", `${part.name} stopped in ${Date.now() - started} ms`);
      } catch (err) {
        this.log("error", `${part.name} failed to stop: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    rmSync(this.paths.state, { force: true });
    rmSync(this.paths.kubeconfig, { force: true });
  }
}
