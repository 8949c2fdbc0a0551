// Where a running sandbox keeps what other commands need to find it: /run/berth-sandbox/<prefix>/ holds the
// kubeconfig, state.json (the supervisor's pid, the API server URL, the layout, the options) and the logs of every
// part. /run is a tmpfs on Debian (systemd), so a reboot, which also removes every network namespace, removes this
// too: the two never disagree for long, and `sandbox down` cleans up whichever is left.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SandboxLayout } from "./layout.js";

export const SANDBOX_STATE_ROOT = "/run/berth-sandbox";

export interface SandboxPaths {
  dir: string;
  kubeconfig: string;
  state: string;
  logs: string;
  /** The supervisor's own log (stdout and stderr of `berth sandbox run`). */
  supervisorLog: string;
}

export function sandboxPaths(prefix: string, root: string = SANDBOX_STATE_ROOT): SandboxPaths {
  const dir = join(root, prefix);
  const logs = join(dir, "logs");
  return { dir, kubeconfig: join(dir, "kubeconfig"), state: join(dir, "state.json"), logs, supervisorLog: join(logs, "supervisor.log") };
}

/** The supervisor's control socket (src/sandbox/cluster/control.ts). */
export function controlSocketPath(paths: SandboxPaths): string {
  return join(paths.dir, "control.sock");
}

/** As deploy/berth.yaml installs it: two controller replicas, one leading. */
export const DEFAULT_CONTROLLER_REPLICAS = 2;

export interface SandboxOptions {
  prefix: string;
  nodes: number;
  dualStack: boolean;
  /** The kube-proxy stand-in captures traffic to LoadBalancer ingress IPs (as kube-proxy does) unless false. */
  captureLoadBalancerIps: boolean;
  /**
   * The kubelets' --allowed-unsafe-sysctls (names, or prefixes ending in `*`). Absent or empty: only the safe
   * sysctls, as a stock kubelet, so an lb-pod of a Service with IPv6 is rejected (SysctlForbidden).
   */
  allowedUnsafeSysctls?: string[];
  /** How many controller replicas run (default 2, as deploy/berth.yaml), electing a leader through the Lease. */
  controllerReplicas?: number;
}

/** One controller replica as the supervisor last started it. */
export interface ControllerReplicaState {
  /** Its --identity, the holderIdentity of the Lease while it leads. */
  identity: string;
  pid: number;
  /** Where it serves /healthz, /readyz and /metrics (berth_leader says whether it leads). */
  url: string;
}

export interface SandboxState {
  /** The supervisor process (`berth sandbox run`); also its process group, which holds the controller. */
  pid: number;
  /** The API server (https on 127.0.0.1). */
  url: string;
  kubeconfig: string;
  logDir: string;
  startedAt: string;
  /** The controller child's pid at the time of the last write (it is restarted if it dies). */
  controllerPid?: number;
  /** Where that controller serves /healthz, /readyz and /metrics. */
  controllerUrl?: string;
  /** Every controller replica (also when there is one); controllerPid/controllerUrl are the first's. */
  controllers?: ControllerReplicaState[];
  options: SandboxOptions;
  layout: SandboxLayout;
}

/** The state of a sandbox, or undefined when there is none (or only a half-written or foreign file). */
export function readState(paths: SandboxPaths): SandboxState | undefined {
  let text: string;
  try {
    text = readFileSync(paths.state, "utf8");
  } catch {
    return undefined;
  }
  try {
    const state = JSON.parse(text) as Partial<SandboxState>;
    if (typeof state.pid !== "number" || typeof state.url !== "string" || state.layout === undefined || state.options === undefined) return undefined;
    return state as SandboxState;
  } catch {
    return undefined;
  }
}

/** Atomic (write then rename), so `status` and `down` never read half a file. */
export function writeState(paths: SandboxPaths, state: SandboxState): void {
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  const tmp = `${paths.state}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, paths.state);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Whether a process exists (signal 0 checks without sending anything; EPERM means it exists but is not ours). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Whether pid is this prefix's supervisor: its command line is `... sandbox run ... --prefix <prefix>`. A pid from a
 * stale state file may have been reused by an unrelated process after a reboot-free crash; `down` must not kill it.
 */
export function isSupervisorOf(pid: number, prefix: string, readCmdline: (pid: number) => string | undefined = procCmdline): boolean {
  const argv = readCmdline(pid)?.split("\0") ?? [];
  const run = argv.findIndex((arg, i) => arg === "run" && argv[i - 1] === "sandbox");
  if (run < 0) return false;
  const at = argv.indexOf("--prefix", run);
  return at >= 0 && argv[at + 1] === prefix;
}

function procCmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * What a log says went wrong, in one line: its first error line among the last 30 (a Node.js crash prints the
 * `Error: ...` line above a stack that says nothing; our JSON logs carry `"level":"error"`), else its last n lines
 * joined with " | ".
 */
export function lastLines(path: string, n = 3): string {
  let lines: string[];
  try {
    lines = readFileSync(path, "utf8").split("\n").map((l) => l.trim()).filter((l) => l !== "").slice(-30);
  } catch {
    return "no output";
  }
  const error = lines.find((l) => /^(\w*Error|berth:)|"level":"error"| error /.test(l));
  if (error !== undefined) return error.length > 300 ? `${error.slice(0, 300)}...` : error;
  return lines.slice(-n).join(" | ") || "no output";
}
