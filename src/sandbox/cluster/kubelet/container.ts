// One container of a sandbox pod as a real process: started in the pod's network namespace and a private mount
// namespace of its own (so each pod's emptyDir sits at its mountPath without two pods on one "host" seeing each
// other's), restarted with backoff when it exits (restartPolicy Always), probed for readiness, stopped with SIGTERM,
// a grace period, then SIGKILL to its whole process group (what a container runtime does by killing the container's
// PID namespace: no child it forked outlives it).
//
// How a container starts: `ip netns exec <pod ns> unshare --mount -- sh -c <mount script> sh <mounts> -- <argv>`.
// `ip netns exec` and `unshare` (without --fork) exec in place, and the script ends in `exec "$@"`, so the PID we
// spawned is the container's main process all along: it receives SIGTERM, and probes enter its namespaces with
// `nsenter -t PID`. The mount points are created on the host's filesystem if missing (the sandbox has no image
// root filesystem), e.g. an empty /run/berth; what is mounted there is visible only inside the container.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, renameSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import type { CommandRunner } from "../../../lib/exec.js";
import type { LogFn } from "../../../lib/kube/client.js";
import {
  BASE_PATH,
  ContainerConfigError,
  containerLaunch,
  imageNotFoundMessage,
  listeningProbe,
  readinessProbe,
  type ContainerLaunch,
  type ContainerReport,
  type ContainerState,
  type ImageCatalog,
  type PodFacts,
  type ProbeAction,
  type ProbeSettings,
} from "./spec.js";
import { rootfsExecArgs } from "./rootfs.js";

/**
 * Restart backoff: 1 s doubling to 10 s, reset after a run of 20 s. The kubelet's is 10 s doubling to 5 min, reset
 * after 10 min (pkg/kubelet/kubelet.go: MaxContainerBackOff, backOffPeriod): far too slow for a sandbox and its tests.
 */
export const RESTART_BACKOFF = { baseMs: 1000, maxMs: 10_000, resetAfterMs: 20_000 } as const;

const MOUNT_SCRIPT =
  'set -e; while [ "$1" != "--" ]; do mkdir -p "$2"; mount --bind "$1" "$2"; ' +
  'if [ "$3" = ro ]; then mount -o remount,bind,ro "$2"; fi; shift 3; done; shift; exec "$@"';

/**
 * tcpSocket and httpGet probes, run with bash in the pod's network namespace: bash's /dev/tcp connects without
 * starting a Node.js process (~300 ms of CPU each, every probe period, for every pod: too much for 2 cores).
 * Arguments: kind (tcp|http), host, port, path. HTTPS is rare enough to take the slower Node.js way (NODE_PROBE).
 */
const BASH_PROBE = `exec 3<>"/dev/tcp/$2/$3" || exit 1
[ "$1" = tcp ] && exit 0
printf 'GET %s HTTP/1.0\\r\\nHost: %s\\r\\nUser-Agent: kube-probe/1.32\\r\\nAccept: */*\\r\\n\\r\\n' "$4" "$2" >&3
read -r _ code _ <&3 || exit 1
[ "$code" -ge 200 ] 2>/dev/null && [ "$code" -lt 400 ]`;

/** httpGet with scheme HTTPS (the kubelet does not verify the certificate either). Arguments: host, port, path. */
const NODE_PROBE = `
const [host, port, path] = process.argv.slice(1);
const req = (await import("node:https")).request({ host, port: Number(port), path, rejectUnauthorized: false, headers: { "User-Agent": "kube-probe/1.32" } },
  (res) => process.exit(res.statusCode >= 200 && res.statusCode < 400 ? 0 : 1));
req.on("error", () => process.exit(1)); req.end();`;

export interface ContainerContext {
  pod: V1Pod;
  container: V1Container;
  /** The pod's network namespace. */
  netns: string;
  facts: PodFacts;
  images: ImageCatalog;
  /** Host directory holding the pod's volumes, one subdirectory per volume. */
  volumesDir: string;
  logFile: string;
  probePeriodMs: number;
  runner: CommandRunner;
  log: LogFn;
  /** Called whenever report() would answer differently. */
  onChange: () => void;
  /** Records a kubelet Event about the pod. */
  event: (type: "Normal" | "Warning", reason: string, message: string) => void;
}

export class ContainerRuntime {
  private current: ContainerState = { state: "waiting", reason: "ContainerCreating" };
  private last: Extract<ContainerState, { state: "terminated" }> | undefined;
  private restartCount = 0;
  private everStarted = false;
  private child: ChildProcess | undefined;
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly name: string;

  constructor(private readonly ctx: ContainerContext) {
    this.name = ctx.container.name;
  }

  report(): ContainerReport {
    return {
      name: this.name,
      image: this.ctx.container.image ?? "",
      current: this.current,
      ...(this.last ? { last: this.last } : {}),
      restartCount: this.restartCount,
      everStarted: this.everStarted,
    };
  }

  start(): void {
    this.loop ??= this.run().catch((e: unknown) => this.ctx.log("error", `container ${this.describe()} loop failed`, { error: String(e) }));
  }

  /** SIGTERM to the main process, up to graceMs for it to exit, then SIGKILL to its process group. Resolves once nothing of it runs. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.wake?.();
    const child = this.child;
    const exited = this.exited;
    if (child?.pid !== undefined && exited) {
      this.ctx.event("Normal", "Killing", `Stopping container ${this.name}`);
      signal(child.pid, "SIGTERM");
      const timedOut = await Promise.race([exited.then(() => false), sleep(graceMs).then(() => true)]);
      if (timedOut) {
        this.ctx.log("info", `container ${this.describe()} still running after ${graceMs} ms: SIGKILL`);
        signal(-child.pid, "SIGKILL");
      }
    }
    // The run loop kills what is left of the process group (a shell's background sleep) once the main process exits.
    await this.loop;
  }

  private describe(): string {
    return `${this.ctx.pod.metadata?.namespace}/${this.ctx.pod.metadata?.name}/${this.name}`;
  }

  private set(state: ContainerState): void {
    this.current = state;
    this.ctx.onChange();
  }

  /** Waits ms or until stop() is called. */
  private async pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.wake = undefined;
  }

  private async run(): Promise<void> {
    let backoff: number = RESTART_BACKOFF.baseMs;
    while (!this.stopping) {
      let launch: ContainerLaunch;
      let probe: ProbeSettings | undefined;
      const image = this.ctx.images(this.ctx.container.image ?? "");
      if (!image) {
        const message = imageNotFoundMessage(this.ctx.container.image ?? "");
        this.ctx.event("Warning", "Failed", message);
        this.set({ state: "waiting", reason: "ErrImagePull", message });
        await this.pause(backoff);
        backoff = Math.min(backoff * 2, RESTART_BACKOFF.maxMs);
        continue;
      }
      if (image.standIn && !this.everStarted) {
        const { event } = image.standIn(this.ctx.container, this.ctx.pod);
        this.ctx.event(event.type, event.reason, event.message);
      }
      try {
        launch = containerLaunch(this.ctx.pod, this.ctx.container, image, this.ctx.facts);
        probe = readinessProbe(this.ctx.container);
        const listensOn = image.standIn?.(this.ctx.container, this.ctx.pod).listensOn;
        if (probe === undefined && listensOn !== undefined) probe = listeningProbe(listensOn);
      } catch (e) {
        if (!(e instanceof ContainerConfigError)) throw e;
        this.ctx.event("Warning", "Failed", `Error: ${e.message}`);
        this.set({ state: "waiting", reason: e.reason, message: e.message });
        await this.pause(backoff);
        backoff = Math.min(backoff * 2, RESTART_BACKOFF.maxMs);
        continue;
      }
      if (this.stopping) break;
      const startedAt = now();
      const started = Date.now();
      const child = this.spawn(launch, image.rootfs);
      this.everStarted = true;
      this.ctx.event("Normal", "Started", `Started container ${this.name}`);
      this.set({ state: "running", startedAt, ready: probe === undefined });
      const probing = probe ? this.probeLoop(probe, launch, child, image.rootfs !== undefined) : Promise.resolve();
      const { code, signal: sig } = await (this.exited as Promise<{ code: number | null; signal: NodeJS.Signals | null }>);
      // Its process group is killed right away, while the group id is surely still ours (no later kill reuses it).
      if (child.pid !== undefined) signal(-child.pid, "SIGKILL");
      this.child = undefined;
      this.exited = undefined;
      // A probe still in flight on stop is not waited for: it runs in the pod's namespace, which goes next.
      if (!this.stopping) await probing;
      const signalNumber = sig ? constants.signals[sig] : undefined;
      const exitCode = code ?? 128 + (signalNumber ?? 0);
      const ended: Extract<ContainerState, { state: "terminated" }> = {
        state: "terminated", exitCode, ...(signalNumber !== undefined ? { signal: signalNumber } : {}),
        reason: exitCode === 0 ? "Completed" : "Error", startedAt, finishedAt: now(),
      };
      if (this.stopping) {
        this.ctx.log("info", `container ${this.describe()} stopped (exit ${exitCode}${sig ? `, ${sig}` : ""})`);
        this.current = ended;
        break;
      }
      this.ctx.log("info", `container ${this.describe()} exited (${exitCode}${sig ? `, ${sig}` : ""}): restarting`);
      if (Date.now() - started >= RESTART_BACKOFF.resetAfterMs) backoff = RESTART_BACKOFF.baseMs;
      this.last = ended;
      this.restartCount++;
      this.ctx.event("Warning", "BackOff", `Back-off restarting failed container ${this.name} in pod ${this.ctx.pod.metadata?.name}_${this.ctx.pod.metadata?.namespace}(${this.ctx.pod.metadata?.uid})`);
      this.set({ state: "waiting", reason: "CrashLoopBackOff", message: `back-off ${backoff / 1000}s restarting failed container=${this.name} pod=${this.ctx.pod.metadata?.name}` });
      await this.pause(backoff);
      backoff = Math.min(backoff * 2, RESTART_BACKOFF.maxMs);
    }
  }

  private spawn(launch: ContainerLaunch, rootfs: string | undefined): ChildProcess {
    const mountArgs = launch.mounts.flatMap((m) => [join(this.ctx.volumesDir, m.volume), m.mountPath, m.readOnly ? "ro" : "rw"]);
    // A restarted container gets a fresh log; the last instance's stays as `<log>.previous` (`kubectl logs
    // --previous`), as the kubelet keeps the previous container's log file (pkg/kubelet/kuberuntime/logs).
    if (this.restartCount > 0) {
      try {
        renameSync(this.ctx.logFile, `${this.ctx.logFile}.previous`);
      } catch {
        // No log yet: nothing to keep.
      }
    }
    const log = openSync(this.ctx.logFile, "a");
    try {
      const inNetns = rootfs !== undefined
        ? rootfsExecArgs(rootfs, launch.mounts.map((m) => ({ source: join(this.ctx.volumesDir, m.volume), target: m.mountPath, readOnly: m.readOnly })), launch.env, launch.argv)
        : ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", MOUNT_SCRIPT, "sh", ...mountArgs, "--", ...launch.argv];
      const child = spawn("ip", ["netns", "exec", this.ctx.netns, ...inNetns], { env: launch.env, detached: true, stdio: ["ignore", log, log] });
      this.child = child;
      this.exited = new Promise((resolve) => {
        child.once("exit", (code, sig) => resolve({ code, signal: sig }));
        // A spawn failure ("ip" missing) comes as "error" without "exit".
        child.once("error", (e) => {
          this.ctx.log("error", `container ${this.describe()}: cannot start: ${e.message}`);
          resolve({ code: 127, signal: null });
        });
      });
      return child;
    } finally {
      closeSync(log);
    }
  }

  /**
   * Probes while the process runs: every probePeriodMs until Ready, then every periodSeconds of the probe (at least
   * probePeriodMs). Ready after successThreshold passes, not Ready after failureThreshold failures in a row.
   */
  private async probeLoop(probe: ProbeSettings, launch: ContainerLaunch, child: ChildProcess, inRootfs: boolean): Promise<void> {
    let alive = true;
    void this.exited?.then(() => (alive = false));
    let successes = 0;
    let failures = 0;
    let ready = false;
    // The first probe one period after the start, not at once: a process needs a moment to be ready (an lb-pod's
    // apply starts Node.js), and a probe at once would only fail and add an Unhealthy Event to every start.
    await Promise.race([sleep(probe.initialDelayMs + this.ctx.probePeriodMs), this.exited]);
    while (alive && !this.stopping && child.pid !== undefined) {
      const failure = await this.probeOnce(probe.action, probe.timeoutMs, launch, child.pid, inRootfs);
      if (!alive || this.stopping) break;
      const ok = failure === undefined;
      if (!ok) this.ctx.event("Warning", "Unhealthy", `Readiness probe failed: ${failure}`);
      if (ok) {
        failures = 0;
        successes++;
        if (!ready && successes >= probe.successThreshold) ready = true;
      } else {
        successes = 0;
        failures++;
        if (ready && failures >= probe.failureThreshold) ready = false;
      }
      if (this.current.state === "running" && this.current.ready !== ready) this.set({ ...this.current, ready });
      // Fast until Ready, then the probe's own period: an lb-pod's probe starts Node.js (~0.3 s of CPU), and
      // one per second per lb-pod would keep a 2-core machine busy.
      await Promise.race([sleep(ready ? Math.max(this.ctx.probePeriodMs, probe.periodMs) : this.ctx.probePeriodMs), this.exited]);
    }
  }

  /** Runs the probe once: undefined when it passed, else what failed (for the Unhealthy Event). */
  private async probeOnce(action: ProbeAction, timeoutMs: number, launch: ContainerLaunch, pid: number, inRootfs: boolean): Promise<string | undefined> {
    const target = ["-t", String(pid)];
    if (action.kind === "exec") {
      // env -i: exactly the container's environment (GNU env looks the command up in the new PATH). -r: the
      // container's root directory too, when it runs from an image's tree (the image's own env then).
      const env = Object.entries(launch.env).map(([k, v]) => `${k}=${v}`);
      const result = await this.ctx.runner.run("nsenter", [...target, "-n", "-m", ...(inRootfs ? ["-r"] : []), "--", "env", "-i", ...env, ...action.command], { timeoutMs });
      if (result.exitCode === 0) return undefined;
      if (result.exitCode === 124) return `command timed out after ${timeoutMs / 1000}s`;
      return (result.stdout + result.stderr).trim().slice(-1024) || `exit code ${result.exitCode}`;
    }
    // The kubelet probes from the host to the pod IP; here the pod's own namespace reaches the same socket.
    const host = action.host ?? this.ctx.facts.podIPs[0] ?? "127.0.0.1";
    const port = String(action.port);
    const command = action.kind === "http" && action.scheme === "HTTPS"
      ? [process.execPath, "--input-type=module", "-e", NODE_PROBE, host, port, action.path]
      : ["bash", "--noprofile", "--norc", "-c", BASH_PROBE, "probe", action.kind, host, port, action.kind === "http" ? action.path : ""];
    // A clean environment: a BASH_ENV inherited from whoever started the sandbox (pyenv's, say) would make every
    // probe source it first (measured: pyenv-rehash runs hung the probes for 45 s and more on a busy machine).
    const result = await this.ctx.runner.run("nsenter", [...target, "-n", "--", "env", "-i", `PATH=${BASE_PATH}`, ...command], { timeoutMs });
    if (result.exitCode === 0) return undefined;
    const where = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    if (action.kind === "tcp") return `dial tcp ${where}: connection failed`;
    return `HTTP probe failed: GET ${action.scheme.toLowerCase()}://${where}${action.path}${result.exitCode === 124 ? " timed out" : " failed or answered outside 200-399"}`;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

/** A wait that never keeps the process alive by itself (grace periods and probe periods outlive what they wait for). */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** RFC 3339 without fractions, as the API server writes times. */
export function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}
