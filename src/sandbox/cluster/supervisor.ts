// The sandbox's supervisor (`berth sandbox run`, started detached by `berth sandbox up`): one process that brings the
// parts up in order, reports "ready" to `up` over a pipe, keeps the real controller running, and on SIGTERM takes
// everything down in reverse order. Order matters: the network exists before the kubelet stand-in attaches pods to
// it; the kube-proxy stand-in has its rules in before the controller can publish an address that relies on them;
// on the way down the controller stops first (so it does not react to pods going away) and the lb-pods get their
// SIGTERM (and remove their rules) before their namespaces go.
import { spawn, type ChildProcess } from "node:child_process";
import { get } from "node:http";
import { createServer } from "node:net";
import { appendFileSync, closeSync, mkdirSync, openSync, rmSync, symlinkSync } from "node:fs";
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
import { installAddressPool } from "./address-pool.js";
import { startApiRelay } from "./api-relay.js";
import { installSpeaker } from "./speaker.js";
import { ProxyStandIn } from "./proxy.js";
import { SchedulerStandIn } from "./scheduler.js";
import { WorkloadControllers } from "./workloads.js";
import { ControllerPods } from "./controller-pods.js";
import { nodeObject } from "./nodes.js";
import { NodeLifecycle } from "./node-lifecycle.js";
import { serveControl } from "./control.js";
import { SANDBOX_LB_IMAGE, SANDBOX_PROBE_PERIOD_MS, sandboxImages } from "./images.js";
import { ensureLbPodRootfs } from "./kubelet/rootfs.js";
import { DEFAULT_CONTROLLER_REPLICAS, controlSocketPath, lastLines, sandboxPaths, writeState, type ControllerReplicaState, type SandboxOptions, type SandboxPaths, type SandboxState } from "./state.js";

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

/** How long the supervisor waits for the controller's /readyz (it imports client-node, ~1 s on an idle machine). */
const CONTROLLER_READY_TIMEOUT_MS = 60_000;

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
 * minute), as a Deployment's pod would be. Its output goes to logs/controller.log. Each run gets a free port for
 * /healthz, /readyz and /metrics, so the supervisor can wait for /readyz (200 once its caches synced) before it
 * reports the sandbox ready.
 */
export class ControllerProcess {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restartDelayMs = 1000;
  private restartTimer: NodeJS.Timeout | undefined;
  private exitNote: string | undefined;
  port = 0;
  restarts = 0;

  constructor(private readonly o: {
    command: string;
    /** The arguments for a run whose health endpoints listen on 127.0.0.1:listenPort. */
    args: (listenPort: number) => string[];
    logPath: string;
    log: LogFn;
    onStart: (pid: number, port: number) => void;
  }) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const out = openSync(this.o.logPath, "a");
    const child = spawn(this.o.command, this.o.args(this.port), { stdio: ["ignore", out, out] });
    closeSync(out);
    this.child = child;
    this.exitNote = undefined;
    const startedAt = Date.now();
    if (child.pid !== undefined) this.o.onStart(child.pid, this.port);
    child.on("error", (err) => this.o.log("error", `controller could not start: ${err.message}`));
    child.on("exit", (code, signal) => {
      this.exitNote = signal ?? `code ${code}`;
      if (this.child === child) this.child = undefined;
      if (this.stopping) return;
      if (Date.now() - startedAt > 60_000) this.restartDelayMs = 1000;
      const delay = this.restartDelayMs;
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, 30_000);
      this.o.log("warn", `controller exited (${this.exitNote}); restarting in ${delay} ms`, { log: this.o.logPath });
      this.restartTimer = setTimeout(() => {
        this.restarts++;
        this.start().catch((err: unknown) => this.o.log("error", `controller restart failed: ${err instanceof Error ? err.message : String(err)}`));
      }, delay);
    });
  }

  /** Resolves once the current run answers /readyz with 200; throws if it exits first or timeoutMs passes. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.child === undefined) throw new Error(`exited (${this.exitNote ?? "did not start"}) before it was ready: ${lastLines(this.o.logPath)}`);
      if (await answers200(`http://127.0.0.1:${this.port}/readyz`)) return;
      if (Date.now() > deadline) throw new Error(`not ready (/readyz) after ${Math.round(timeoutMs / 1000)} s: ${lastLines(this.o.logPath)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
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

/** A port nobody listens on right now (the kernel's pick); the controller binds it a moment later. */
function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

function answers200(url: string): Promise<boolean> {
  return new Promise((done) => {
    const req = get(url, { timeout: 1000, agent: false }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => done(false));
  });
}

/**
 * The --identity (and pod name) of controller replica `index` (0-based); `generation` > 1 for the replacements of a
 * replica whose pod was deleted, which a Deployment would start under a new pod name too.
 */
export function controllerIdentity(index: number, generation = 1): string {
  return `sandbox-controller-${index + 1}${generation > 1 ? `-${generation}` : ""}`;
}

/** logs/controller.log for a single controller (as before), logs/controller-<n>.log for each of several. */
export function controllerLogName(replicas: number, index: number): string {
  return replicas === 1 ? "controller" : `controller-${index + 1}`;
}

/**
 * The command line of a controller replica, as the Deployment's replicas run: leader election on (the Lease
 * berth-controller in berth-system, client-go's timings) with its own identity, so deleting the leader's pod makes a
 * standby take over the way it would on a cluster, and `berth doctor` finds the Lease a running controller renews.
 * A single replica elects itself.
 */
export function controllerArgs(o: { cli: string; kubeconfig: string; port: number; identity: string }): string[] {
  // Forwarding sysctls stay on (the default): the kubelet stand-in applies pod sysctls as a kubelet started with
  // --allowed-unsafe-sysctls would, so the DaemonSets are exactly what a k3s cluster gets.
  return [o.cli, "controller", "--kubeconfig", o.kubeconfig, "--identity", o.identity, "--listen", `127.0.0.1:${o.port}`, "--lb-image", SANDBOX_LB_IMAGE];
}

/** One controller replica: its current process and identity (both change when its pod is deleted). */
interface ReplicaSlot {
  index: number;
  generation: number;
  identity: string;
  process: ControllerProcess;
  startedAt: string;
  starts: number;
}

/** The running sandbox, as the supervisor holds it. */
export class Supervisor {
  readonly paths: SandboxPaths;
  readonly layout: SandboxLayout;
  private readonly parts: Stoppable[] = [];
  private readonly log: LogFn;
  private state: SandboxState | undefined;
  /** Each replica's current run, by identity, in start order. */
  private readonly controllersNow = new Map<string, ControllerReplicaState>();

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
    const containerLogs = join(paths.logs, "containers");
    const api = await this.step("API server", "apiserver", () =>
      startApiServer({ tls: true, podLogDir: containerLogs, serviceCidrs: { ...(ipv4 !== undefined ? { ipv4 } : {}), ...(ipv6 !== undefined ? { ipv6 } : {}) } }));
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
    // Host-network pods (VIP mode's speaker) reach the API server from inside the nodes (api-relay.ts).
    const relay = await this.step("API relay", "supervisor-parts", () => startApiRelay({
      apiUrl: api.url, nodeNamespaces: layout.nodes.map((n) => n.ns), socketPath: join(paths.dir, "api.sock"),
      log: (message) => fileLog(this.logPath("supervisor-parts"))("warn", message),
    }));
    this.parts.push({ name: "API relay", stop: () => relay.stop() });

    await this.step("Node objects", "supervisor-parts", async () => {
      for (const node of layout.nodes) await this.createNode(client, node);
      await client.create(Resources.namespaces, { metadata: { name: DEFAULT_NAMESPACE } }).catch((err: unknown) => {
        if (!isAlreadyExists(err)) throw err;
      });
      // VIP mode out of the box: the AddressPool CRD and a pool on the LAN (address-pool.ts).
      await installAddressPool(client, layout);
    });

    const endpoints = new EndpointsStandIn({ client, log: fileLog(this.logPath("endpoints")) });
    await this.step("EndpointSlice stand-in", "endpoints", () => endpoints.start());
    this.parts.push({ name: "EndpointSlice stand-in", stop: () => endpoints.stop() });

    const proxy = new ProxyStandIn({ client, layout, captureLoadBalancerIps: this.o.captureLoadBalancerIps, runner, log: fileLog(this.logPath("proxy")) });
    await this.step("kube-proxy stand-in", "proxy", () => proxy.start());
    this.parts.push({ name: "kube-proxy stand-in", stop: () => proxy.stop() });

    // Before the DaemonSet controller (in the kubelet stand-in) creates pods: it binds them.
    const scheduler = new SchedulerStandIn({ client, log: fileLog(this.logPath("scheduler")) });
    await this.step("scheduler stand-in", "scheduler", () => scheduler.start());
    this.parts.push({ name: "scheduler stand-in", stop: () => scheduler.stop() });

    // Deployments -> ReplicaSets -> unbound pods, which the scheduler above binds and the kubelet below runs.
    const workloads = new WorkloadControllers({ client, log: fileLog(this.logPath("workloads")) });
    await this.step("Deployment and ReplicaSet stand-ins", "workloads", () => workloads.start());
    this.parts.push({ name: "Deployment and ReplicaSet stand-ins", stop: () => workloads.stop() });

    mkdirSync(containerLogs, { recursive: true });
    // lb-pods run from the lb-pod image's own tree (scripts/build-lb-pod-rootfs.sh), built once per version.
    const lbPodRootfs = await this.step("lb-pod image tree", "supervisor-parts", () => ensureLbPodRootfs(this.o.repoDir, runner));
    const kubelet = new KubeletStandIn({
      client,
      nodes: layout.nodes.map((n) => ({ name: n.name, ips: n.lanIps, ns: n.ns })),
      network,
      images: sandboxImages(this.o.repoDir, this.o.nodeBinary, lbPodRootfs.dir),
      logDir: containerLogs,
      podsDir: join(paths.dir, "pods"),
      probePeriodMs: SANDBOX_PROBE_PERIOD_MS,
      // A stock kubelet's admission (its safe sysctls only) unless `up --allowed-unsafe-sysctls` says otherwise.
      allowedUnsafeSysctls: this.o.allowedUnsafeSysctls ?? [],
      runner,
      log: fileLog(this.logPath("kubelet")),
    });
    await this.step("kubelet stand-in", "kubelet", () => kubelet.start());
    this.parts.push({ name: "kubelet stand-in", stop: () => kubelet.stop() });
    const lifecycle = new NodeLifecycle({ client, kubelet, nodes: layout.nodes.map((n) => n.name), log: fileLog(this.logPath("kubelet")) });
    this.parts.push({ name: "node lifecycle", stop: async () => lifecycle.stop() });

    const cli = join(this.o.repoDir, "dist", "cli.js");
    const replicas = this.o.controllerReplicas ?? DEFAULT_CONTROLLER_REPLICAS;
    const pods = new ControllerPods({
      client, namespace: DEFAULT_NAMESPACE, log: this.log,
      onDeleted: (identity) => void this.replaceReplica(identity).catch((err: unknown) =>
        this.log("error", `replacing controller ${identity} failed: ${err instanceof Error ? err.message : String(err)}`)),
    });
    await this.step("controller pods", "supervisor-parts", () => pods.start());
    this.parts.push({ name: "controller pods", stop: () => pods.stop() });
    this.replicaPods = pods;
    this.replicaContext = { cli, replicas, containerLogs };
    // The default flags, as `berth manifests` installs it: IPv4 lb-pods ask for no sysctl, those of a Service with
    // IPv6 ask for net.ipv6.conf.all.forwarding, which the kubelet stand-in admits only if told to.
    for (let index = 0; index < replicas; index++) {
      const slot = this.newSlot(index, 1);
      this.slots.push(slot);
      // Ready means the controller's caches are synced: a Service created right after `up` is handled at once. A
      // standby syncs its caches too (it only does not reconcile), so every replica is waited for.
      const part = replicas === 1 ? "controller" : `controller ${slot.identity}`;
      await this.step(part, controllerLogName(replicas, index), async () => {
        await this.startSlot(slot);
        await slot.process.waitReady(CONTROLLER_READY_TIMEOUT_MS);
      });
      // The slot's current process at stop time: a replica replaced since (its pod deleted) runs another one.
      this.parts.push({ name: part, stop: async () => this.slots[index]?.process.stop() });
    }
    const reporting = setInterval(() => void this.reportReplicas(), 1000);
    this.parts.push({ name: "controller pod status", stop: async () => clearInterval(reporting) });
    await this.reportReplicas();

    // VIP mode's speakers, one per node, run by the kubelet stand-in like any DaemonSet (speaker.ts).
    await this.step("speaker DaemonSet", "supervisor-parts", () => installSpeaker(client, DEFAULT_NAMESPACE, paths.kubeconfig));

    const control = await this.step("control socket", "supervisor-parts", () => serveControl(controlSocketPath(paths), {
      stopKubelet: async (node) => {
        const { graceMs } = lifecycle.stopKubelet(node);
        return `kubelet of ${node} stopped; the node turns NotReady in ${graceMs / 1000} s`;
      },
      startKubelet: async (node) => {
        await lifecycle.startKubelet(node);
        return `kubelet of ${node} started; the node is Ready`;
      },
    }));
    this.parts.push({ name: "control socket", stop: () => new Promise((done) => control.close(() => done())) });

    this.state = {
      pid: process.pid,
      url: api.url,
      kubeconfig: paths.kubeconfig,
      logDir: paths.logs,
      startedAt: new Date().toISOString(),
      ...this.controllerFields(),
      options: {
        prefix: this.o.prefix, nodes: this.o.nodes, dualStack: this.o.dualStack, captureLoadBalancerIps: this.o.captureLoadBalancerIps,
        ...(this.o.controllerReplicas !== undefined ? { controllerReplicas: this.o.controllerReplicas } : {}),
        ...(this.o.allowedUnsafeSysctls !== undefined ? { allowedUnsafeSysctls: this.o.allowedUnsafeSysctls } : {}),
      },
      layout,
    };
    writeState(paths, this.state);
    return this.state;
  }

  /** state.json's controller fields: every replica, and the first one's pid and URL as before. */
  private controllerFields(): Pick<SandboxState, "controllerPid" | "controllerUrl" | "controllers"> {
    const controllers = [...this.controllersNow.values()];
    const first = controllers[0];
    if (first === undefined) return {};
    return { controllerPid: first.pid, controllerUrl: first.url, controllers };
  }

  private readonly slots: ReplicaSlot[] = [];
  private replicaPods: ControllerPods | undefined;
  private replicaContext: { cli: string; replicas: number; containerLogs: string } | undefined;

  /**
   * A replica's process, its output in the container log `kubectl logs` reads (logs/containers/berth-system_<pod>_
   * controller.log), with logs/controller[-<n>].log pointing at the current one.
   */
  private newSlot(index: number, generation: number): ReplicaSlot {
    const ctx = this.replicaContext as { cli: string; replicas: number; containerLogs: string };
    const identity = controllerIdentity(index, generation);
    const logPath = join(ctx.containerLogs, `${DEFAULT_NAMESPACE}_${identity}_controller.log`);
    const link = this.logPath(controllerLogName(ctx.replicas, index));
    rmSync(link, { force: true });
    symlinkSync(logPath, link);
    const slot: ReplicaSlot = {
      index, generation, identity, startedAt: "", starts: 0,
      process: new ControllerProcess({
        command: this.o.nodeBinary,
        args: (port) => controllerArgs({ cli: ctx.cli, kubeconfig: this.paths.kubeconfig, port, identity }),
        logPath,
        log: this.log,
        onStart: (pid, port) => {
          slot.starts++;
          slot.startedAt = new Date().toISOString().replace(/\.\d+Z$/, "Z");
          this.recordController(identity, pid, port);
        },
      }),
    };
    return slot;
  }

  private async startSlot(slot: ReplicaSlot): Promise<void> {
    await slot.process.start();
    await this.replicaPods?.create(slot.identity, controllerArgs({
      cli: "berth", kubeconfig: this.paths.kubeconfig, port: slot.process.port, identity: slot.identity,
    }).slice(1));
  }

  /** The pod of a replica was deleted: that process ends (a leader hands over), a new one starts under a new name. */
  private async replaceReplica(identity: string): Promise<void> {
    const i = this.slots.findIndex((s) => s.identity === identity);
    const old = this.slots[i];
    if (old === undefined) return;
    const slot = this.newSlot(old.index, old.generation + 1);
    this.slots[i] = slot;
    this.controllersNow.delete(identity);
    await old.process.stop();
    this.log("info", `controller ${identity} stopped (its pod was deleted); starting ${slot.identity}`);
    await this.startSlot(slot);
  }

  /** Each replica's pod status: Running while its process lives, Ready while its /readyz answers 200. */
  private async reportReplicas(): Promise<void> {
    for (const slot of [...this.slots]) {
      const pid = slot.process.pid;
      const ready = pid !== undefined && await answers200(`http://127.0.0.1:${slot.process.port}/readyz`);
      await this.replicaPods?.report(slot.identity, { pid, ready, startedAt: slot.startedAt, restarts: Math.max(0, slot.starts - 1) })
        .catch((err: unknown) => this.log("warn", `controller pod ${slot.identity} status not written: ${err instanceof Error ? err.message : String(err)}`));
    }
  }

  private recordController(identity: string, pid: number, port: number): void {
    this.controllersNow.set(identity, { identity, pid, url: `http://127.0.0.1:${port}` });
    if (this.state === undefined) return;
    this.state = { ...this.state, ...this.controllerFields() };
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
