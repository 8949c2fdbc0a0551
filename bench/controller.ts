// Controller benchmark: N LoadBalancer Services x M nodes against the sandbox API server over HTTP.
//
//   node --max-old-space-size=12000 --import tsx bench/controller.ts [--cases 1000x10,1000x100] [--idle-seconds 60]
//     [--cli dist/cli.js] [--flips 50] [--heap-mib 256] [--node-flags "--max-semi-space-size=4"] [--workers 4]
//     [--until-daemonsets] [--stand-in-limits default|none] [--results PATH]
//     (the in-process API server holds every pod: ~4 GiB at 1k x 100; --heap-mib gives the controller the heap
//     ceiling the Deployment gives it through NODE_OPTIONS; --until-daemonsets ends a case once every Service has
//     its DaemonSet, for the create -> DaemonSet split alone)
//   ... --preload [--variants LABEL=HEAP[:CLI][+FLAG...],...]: the converged steady state (runSteadyCase), several
//     controllers side by side against one preloaded store
//
// The API server and the measuring watches run in this process; the fake kubelet (test/support/kubelet.ts, places
// the DaemonSets' pods and makes them Ready) in bench/kubelet-process.ts; the controller as its own process
// (`berth controller`, from dist/ if built, else through tsx), so its memory is its own. Per case, on a fresh server:
//   1. M nodes, a pod of another namespace on node-0 holding the port of 1% of the Services (their lb-pod there stays
//      Pending: the scheduler reports the port taken, and the controller names the holder), then the controller
//      (leader election on, 30 s resync), then N Services created back to back (each its own port,
//      allocateLoadBalancerNodePorts: false so 5k fit); the fake kubelet creates every pod unbound and binds it
//      through pods/binding, as the DaemonSet controller and the scheduler do;
//   2. from each Service's creation to its DaemonSet's ADDED watch event;
//   3. from the moment the last of a Service's pods turned Ready (its pod watch event) to the status listing all
//      M nodes (its Service watch event), i.e. the controller's share of "ready to EXTERNAL-IP";
//   4. API requests per Service (the controller's own berth_api_requests_total, watches and Leases excluded, until
//      every Service is served and the queue is empty), and of those the status writes and the Events;
//   5. API requests per minute while nothing changes, over --idle-seconds (goal: only Lease renewals);
//   6. the controller's RSS (VmRSS, and VmHWM, the peak) once converged;
//   7. isolated changes: one lb-pod at a time (--flips of them, 300 ms apart, each on another Service) turns not
//      Ready, then Ready again; from the pod's watch event to the Service's (the node leaves, then rejoins, the
//      ingress).
// Prints a table and writes bench/results/controller.json with the machine it ran on.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { buildDaemonSet } from "../src/controller/daemonset.js";
import { parseServiceConfig } from "../src/controller/service-config.js";
import { defaultControllerConfig } from "../src/controller/types.js";
import { addressPoolCrd } from "../src/manifests/crd.js";
import type { V1Node, V1Service } from "../src/controller/types.js";
import { FIELD_MANAGER, FINALIZER } from "../src/lib/names.js";
import { startApiServer, type ApiServerHandle } from "../src/sandbox/apiserver/index.js";
import { newDaemonPod } from "../src/sandbox/cluster/scheduling.js";
import { writeKubeconfig } from "../src/sandbox/kubeconfig.js";
import { Client, type Watch } from "../test/sandbox/apiserver-client.js";
import { fakePodIp } from "../test/support/kubelet.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const NS = "berth-system";
/** --preload: the converged steady state (runSteadyCase), under the Deployment's heap flag unless --heap-mib says. */
const PRELOAD = process.argv.includes("--preload");
const RESULTS = process.argv.includes("--results") ? process.argv[process.argv.indexOf("--results") + 1] as string
  : fileURLToPath(new URL(PRELOAD ? "./results/controller-steady.json" : "./results/controller.json", import.meta.url));
const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const CASES = arg("--cases", "1000x10,1000x100").split(",").map((c) => c.split("x").map(Number) as [number, number]);
/**
 * --until-daemonsets: a case ends once every Service has its DaemonSet (only the create -> DaemonSet figures, under
 * the load of the rollouts that start meanwhile; no convergence, idle window or flips), to fit a 1,000-Service
 * burst into a few minutes.
 */
const UNTIL_DAEMONSETS = process.argv.includes("--until-daemonsets");
const IDLE_SECONDS = UNTIL_DAEMONSETS ? 0 : Number(arg("--idle-seconds", "60"));
const FLIPS = UNTIL_DAEMONSETS ? 0 : Number(arg("--flips", "50"));
/** The controller's V8 heap ceiling, as the Deployment sets it through NODE_OPTIONS (0: Node's default). */
const HEAP_MIB = Number(arg("--heap-mib", PRELOAD ? "512" : "0"));
const KUBELET = fileURLToPath(new URL("./kubelet-process.ts", import.meta.url));
const DIST_CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const SRC_CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const CLI = arg("--cli", existsSync(DIST_CLI) ? DIST_CLI : SRC_CLI);
/** More node flags for the controller of the full flow (e.g. the Deployment's "--max-semi-space-size=4"). */
const NODE_FLAGS = arg("--node-flags", "").split(" ").filter(Boolean);
/**
 * --stand-in-limits default|none: the stand-in DaemonSet controller, scheduler and kubelets write no faster than the
 * real components' clients do by default (src/sandbox/cluster/client-limits.ts), or as fast as they can (the load a
 * controller manager run with its --kube-api-qps raised without bound would put on the server). With the default, a
 * full-flow case takes at least its pods / 20 seconds (1000x10: over 8 minutes): the DaemonSet controller's pace.
 */
const STAND_IN_LIMITS = arg("--stand-in-limits", "default");
if (STAND_IN_LIMITS !== "default" && STAND_IN_LIMITS !== "none") {
  console.error(`--stand-in-limits: default or none, not ${STAND_IN_LIMITS}`);
  process.exit(2);
}
/** The controller's --workers (the CLI's default is 4). */
const WORKERS = arg("--workers", "4");
/**
 * --preload --variants LABEL=HEAP[:CLI][+FLAG...],...: measured controllers run one after another against the same
 * preloaded store, side by side (e.g. old code against new, or two heap flags); default one, "measured=HEAP_MIB".
 * HEAP 0 = Node's default; +FLAG adds a node flag (e.g. +--max-semi-space-size=4).
 */
interface Variant { label: string; heapMiB: number; cli: string; nodeFlags: string[] }
const VARIANTS: Variant[] = arg("--variants", `measured=${HEAP_MIB}`).split(",").map((v) => {
  const m = /^([^=]+)=(\d+)(?::([^+]+))?((?:\+[^+]+)*)$/.exec(v.trim());
  if (!m) throw new Error(`--variants: cannot read ${JSON.stringify(v)} (LABEL=HEAP[:CLI][+FLAG...])`);
  return { label: m[1] as string, heapMiB: Number(m[2]), cli: m[3] ?? CLI, nodeFlags: (m[4] ?? "").split("+").filter(Boolean) };
});

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Sums berth_api_requests_total, split into the kinds we report. */
async function apiRequests(metricsUrl: string): Promise<{ total: number; leases: number; watches: number; byVerb: Record<string, number> }> {
  const text = await (await fetch(metricsUrl)).text();
  const out = { total: 0, leases: 0, watches: 0, byVerb: {} as Record<string, number> };
  for (const line of text.split("\n")) {
    const m = /^berth_api_requests_total\{verb="([^"]+)",resource="([^"]+)",code="([^"]+)"\} (\d+)/.exec(line);
    if (!m) continue;
    const n = Number(m[4]);
    if (m[2]?.startsWith("leases")) out.leases += n;
    else if (m[1] === "watch") out.watches += n;
    else {
      out.total += n;
      const key = `${m[1]} ${m[2]}`;
      out.byVerb[key] = (out.byVerb[key] ?? 0) + n;
    }
  }
  return out;
}

/**
 * A histogram of the controller's /metrics per value of `label` (summed over the other labels): observations, and
 * the bucket bounds (ms) under which 50% and 99% of them fell.
 */
async function histogram(metricsUrl: string, name: string, label: string, filter = ""): Promise<Record<string, { taken: number; p50AtMost: number; p99AtMost: number; maxAtMost: number }>> {
  const text = await (await fetch(metricsUrl)).text();
  const sums = new Map<string, Map<number, number>>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}_bucket{`) || !line.includes(filter)) continue;
    const value = new RegExp(`[{,]${label}="([^"]+)"`).exec(line)?.[1];
    const le = /le="([^"]+)"/.exec(line)?.[1];
    const n = Number(/\} (\d+)/.exec(line)?.[1]);
    if (value === undefined || le === undefined) continue;
    const bound = le === "+Inf" ? Infinity : Number(le) * 1000;
    const m = sums.get(value) ?? new Map<number, number>();
    sums.set(value, m);
    m.set(bound, (m.get(bound) ?? 0) + n);
  }
  const buckets = new Map([...sums].map(([k, m]) => [k, [...m].map(([le, n]) => ({ le, n }))]));
  const out: Record<string, { taken: number; p50AtMost: number; p99AtMost: number; maxAtMost: number }> = {};
  for (const [lane, list] of buckets) {
    list.sort((a, b) => a.le - b.le);
    const taken = list[list.length - 1]?.n ?? 0;
    const at = (q: number): number => list.find((b) => b.n >= q * taken)?.le ?? NaN;
    out[lane] = { taken, p50AtMost: at(0.5), p99AtMost: at(0.99), maxAtMost: at(1) };
  }
  return out;
}

async function queueDepth(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let depth = 0;
  for (const line of text.split("\n")) {
    const m = /^berth_workqueue_(depth|in_progress|delayed)\{name="services"\} (\d+)/.exec(line);
    if (m) depth += Number(m[2]);
  }
  return depth;
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat (fields 14 and 15, in clock ticks). */
function cpuOf(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // USER_HZ is 100 on Linux x86-64 and arm64.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const round2 = (n: number): number => Math.round(n * 100) / 100;

/**
 * Starts counting CPU seconds: the returned function gives what this process (the API server), the controller and
 * the stand-in each used since, with the wall time the caller measured over the same span.
 */
function cpuClock(controllerPid: number | undefined, kubeletPid: number | undefined): (wallS: number) => Record<"wallS" | "apiServer" | "controller" | "kubelet", number> {
  const start = { self: process.cpuUsage(), controller: cpuOf(controllerPid), kubelet: cpuOf(kubeletPid) };
  return (wallS) => {
    const self = process.cpuUsage(start.self);
    return { wallS: round2(wallS), apiServer: round2((self.user + self.system) / 1e6),
      controller: round2(cpuOf(controllerPid) - start.controller), kubelet: round2(cpuOf(kubeletPid) - start.kubelet) };
  };
}

/**
 * The stand-in DaemonSet controller, scheduler and kubelet (bench/kubelet-process.ts) for `server`, in its own
 * process; `ready` resolves once its caches are in.
 */
function spawnStandIn(server: ApiServerHandle): { proc: ChildProcess; ready: Promise<void> } {
  const proc = spawn(process.execPath, ["--max-old-space-size=8000", "--import", "tsx", KUBELET, server.url, server.token, NS, STAND_IN_LIMITS],
    { stdio: ["pipe", "pipe", "inherit"] });
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout?.once("data", () => resolve());
    proc.once("exit", (code) => reject(new Error(`fake kubelet exited ${code}`)));
  });
  return { proc, ready };
}

/** Creates LoadBalancer Service `name` on `port` (allocateLoadBalancerNodePorts: false, so thousands fit). */
async function createLbService(client: Client, name: string, port: number): Promise<void> {
  const res = await client.post("/api/v1/namespaces/default/services", {
    metadata: { name },
    spec: { type: "LoadBalancer", allocateLoadBalancerNodePorts: false, selector: { app: name },
      ports: [{ name: "p", port, protocol: "TCP", targetPort: 8080 }] },
  });
  if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${res.text}`);
}

function rss(pid: number): { rssMiB: number; peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: Math.round(kib("VmRSS") / 102.4) / 10, peakMiB: Math.round(kib("VmHWM") / 102.4) / 10 };
}

/**
 * Follows a watch and calls `on` for every event until stopped; a watch the server ends (its timeout) is reopened
 * from the last resourceVersion seen, so a long case keeps measuring.
 */
function follow(client: Client, path: string, rv: string, on: (ev: { type: string; object: Obj }) => void): { stop(): void } {
  let stopped = false;
  let last = rv;
  void (async () => {
    while (!stopped) {
      const watch: Watch = await client.watch(`${path}${path.includes("?") ? "&" : "?"}resourceVersion=${last}`);
      while (!stopped) {
        const ev = await watch.next(1000);
        if (ev) {
          if (ev.type === "ERROR") {
            // 410: history compacted past our resourceVersion; start over from the current state.
            last = "";
            break;
          }
          if (ev.object?.metadata?.resourceVersion) last = ev.object.metadata.resourceVersion as string;
          if (ev.type !== "BOOKMARK") on(ev);
        } else if (watch.ended) break;
      }
    }
  })();
  return { stop: () => (stopped = true) };
}

interface CaseResult {
  services: number;
  nodes: number;
  createToDaemonSetMs: { p50: number; p99: number; max: number };
  /**
   * The same span split at the API server's own request log: from the Service's creation to the controller's apply
   * arriving (watch delivery, queue wait, the reconcile), and the apply's time inside the server.
   */
  createToApplyArrivedMs: { p50: number; p99: number; max: number };
  applyServerMs: { p50: number; p99: number; max: number };
  /**
   * createToApplyArrivedMs split at the controller's first request about the Service (its finalizer patch or rules
   * ConfigMap apply, whichever arrived first): before it, the Service watch's delivery, the queue wait and the
   * reconcile's own work; after it, the round trip the DaemonSet apply waits for (the ConfigMap apply).
   */
  createToFirstRequestMs: { p50: number; p99: number; max: number };
  firstRequestToApplyMs: { p50: number; p99: number; max: number };
  /**
   * From the controller's berth_workqueue_queue_duration_seconds over the creation burst: keys taken per lane, and
   * the bucket bound under which 50% / 99% of them waited (ms; a bucket's upper bound, not an exact percentile).
   */
  queueWaitMs: Record<string, { taken: number; p50AtMost: number; p99AtMost: number; maxAtMost: number }>;
  /** berth_reconcile_duration_seconds by result, the same way (the whole case, not only the burst). */
  reconcileMs: Record<string, { taken: number; p50AtMost: number; p99AtMost: number; maxAtMost: number }>;
  /** berth_api_request_duration_seconds by verb, as the controller's client saw them (send to answer headers). */
  requestMs: Record<string, { taken: number; p50AtMost: number; p99AtMost: number; maxAtMost: number }>;
  /**
   * The event-loop delay of this process, which runs the in-process API server (and the measuring watches), from the
   * first Service's creation to the end of the burst: a stall of the server's loop holds every API request.
   */
  apiServerEventLoopDelayMs: { p99: number; max: number };
  /**
   * CPU seconds each process used from the first Service's creation to the end of the case's measured span (the last
   * DaemonSet with --until-daemonsets), against the span's wall-clock seconds: on a shared machine latency swings
   * with everyone's load, CPU per unit of work much less. "apiServer" is this process (the API server and the
   * measuring watch).
   */
  cpuSeconds: { wallS: number; apiServer: number; controller: number; kubelet: number };
  /** The controller's event-loop delay over the burst (--until-daemonsets only: other modes scrape it meanwhile). */
  controllerEventLoopDelayMs?: { p99: number; max: number };
  /** The 12 slowest Services (create -> DaemonSet), with when they were created after the first: clustered or not. */
  slowestCreateToDaemonSet: { name: string; ms: number; createdAtS: number }[];
  /** Times the controller lost its Lease during the case (its log): each stops its workers until it leads again. */
  leaseLosses: number;
  podsReadyToStatusMs: { p50: number; p99: number; max: number };
  convergedAfterS: number;
  apiRequestsPerService: number;
  statusWritesPerService: number;
  /** The most status writes one Service got (the goal is per Service). */
  statusWritesPerServiceMax: number;
  /** The three Services with the most status writes: when each write arrived, in s since the first create. */
  mostStatusWrites: { name: string; createdAtS: number; writesAtS: number[] }[];
  eventsPerService: number;
  /** Services whose lb-pod on node-0 waits on a port held by another pod. */
  blockedServices: number;
  apiRequestsByVerb: Record<string, number>;
  isolatedChangeToStatusMs: { p50: number; p99: number; max: number; samples: number };
  idleRequestsPerMinute: number;
  /** What the idle requests were (watches and Leases excluded), so a non-zero idle figure names its cause. */
  idleRequestsByVerb: Record<string, number>;
  idleLeaseRequestsPerMinute: number;
  controllerRssMiB: number;
  controllerPeakRssMiB: number;
}

async function runCase(services: number, nodes: number): Promise<CaseResult> {
  // History only needs to cover a watch reconnect; the default per-resource limit would hold 100k full pods.
  const server: ApiServerHandle = await startApiServer({ port: 0, historyLimit: 5000 });
  const client = new Client(server);
  const dir = mkdtempSync(join(tmpdir(), "berth-bench-controller-"));
  let controller: ChildProcess | undefined;
  let kubelet: ChildProcess | undefined;
  try {
    await client.post("/api/v1/namespaces", { metadata: { name: NS } });
    await installAddressPoolCrd(client);
    for (let i = 0; i < nodes; i++) {
      const ip = `10.${100 + Math.floor(i / 250)}.${i % 250}.1`;
      await client.post("/api/v1/nodes", {
        metadata: { name: `node-${i}`, labels: { "kubernetes.io/hostname": `node-${i}` } },
        status: { addresses: [{ type: "InternalIP", address: ip }], conditions: [{ type: "Ready", status: "True" }] },
      });
    }
    // Another namespace's pod on node-0 holds the port of every 100th Service (a hostPort, as an ingress controller
    // or a leftover k3s svclb pod would).
    const blocked = new Set<string>();
    for (let i = 0; i < services; i += 100) {
      blocked.add(`svc-${i}`);
      const res = await client.post("/api/v1/namespaces/default/pods", {
        metadata: { name: `holder-${i}` },
        spec: { nodeName: "node-0", containers: [{ name: "c", image: "holder", ports: [{ containerPort: 80, hostPort: 10000 + i, protocol: "TCP" }] }] },
      });
      if (res.status !== 201) throw new Error(`create holder-${i}: ${res.status} ${res.text}`);
    }
    const standIn = spawnStandIn(server);
    kubelet = standIn.proc;
    await standIn.ready;
    const kubeconfig = join(dir, "kubeconfig");
    writeKubeconfig(kubeconfig, { server: server.url, token: server.token });
    const port = await freePort();
    const metricsUrl = `http://127.0.0.1:${port}/metrics`;
    const args = [...(HEAP_MIB > 0 ? [`--max-old-space-size=${HEAP_MIB}`] : []), ...NODE_FLAGS, ...(CLI.endsWith(".ts") ? ["--import", "tsx"] : []), CLI, "controller", "--kubeconfig", kubeconfig,
      "--listen", `127.0.0.1:${port}`, "--resync", "30s", "--lb-image", "berth:bench", "--workers", WORKERS];
    controller = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let leaseLosses = 0;
    controller.stderr?.on("data", (d: Buffer) => {
      const text = d.toString();
      leaseLosses += text.split("lost the lease").length - 1;
      stderr = (stderr + text).slice(-4000);
    });
    // Said at once: the Service-creation loop below only checks the controller after it.
    controller.once("exit", (code, signal) => console.error(`controller exited (${code ?? signal}): ${stderr}`));
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break;
      } catch {
        // not listening yet
      }
      if (i > 600 || controller.exitCode !== null) throw new Error(`controller did not become ready: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    // Measuring watches, opened before anything is created.
    const created = new Map<string, number>();
    const dsAt = new Map<string, number>();
    const podReadyAt = new Map<string, Map<string, number>>();
    const servedAt = new Map<string, number>();
    const dsName = new Map<string, string>();
    /** Per Service, its lb-pod per node, and whether each is Ready now. */
    const podOn = new Map<string, Map<string, string>>();
    const podReady = new Map<string, boolean>();
    /** The isolated change in flight: set by the flip phase, stamped by the watches. */
    let flip: { service: string; pod: string; ready: boolean; podAt?: number; statusAt?: number } | undefined;
    const wantIngress = (name: string): number => nodes - (blocked.has(name) ? 1 : 0);
    const rv = (await client.get("/api/v1/namespaces/default/services?limit=1")).body.metadata.resourceVersion as string;
    // --until-daemonsets reads only the DaemonSet watch: the pod and Service watches serve the full flow's figures,
    // and in this process they would add their own fan-out and parsing to the API server's loop being measured.
    const watches = [
      follow(client, `/apis/apps/v1/namespaces/${NS}/daemonsets`, rv, (ev) => {
        const name = ev.object.metadata?.labels?.["berth.dev/service-name"];
        if (ev.type === "ADDED" && name && !dsAt.has(name)) {
          dsAt.set(name, performance.now());
          dsName.set(name, ev.object.metadata.name as string);
        }
      }),
      ...(UNTIL_DAEMONSETS ? [] : [
        follow(client, `/api/v1/namespaces/${NS}/pods`, rv, (ev) => {
          const name = ev.object.metadata?.labels?.["berth.dev/service-name"];
          if (!name) return;
          const ready = (ev.object.status?.conditions ?? []).some((c: Obj) => c.type === "Ready" && c.status === "True");
          const podName = ev.object.metadata.name as string;
          if (ev.object.spec?.nodeName) {
            const byNode = podOn.get(name) ?? new Map<string, string>();
            podOn.set(name, byNode);
            byNode.set(ev.object.spec.nodeName as string, podName);
          }
          podReady.set(podName, ready);
          if (flip && flip.pod === podName && flip.podAt === undefined && ready === flip.ready) flip.podAt = performance.now();
          const perPod = podReadyAt.get(name) ?? new Map<string, number>();
          podReadyAt.set(name, perPod);
          if (ready && !perPod.has(ev.object.metadata.name)) perPod.set(ev.object.metadata.name, performance.now());
        }),
        follow(client, "/api/v1/namespaces/default/services", rv, (ev) => {
          const name = ev.object.metadata?.name as string;
          const ingress = (ev.object.status?.loadBalancer?.ingress ?? []).length;
          if (ingress === wantIngress(name) && !servedAt.has(name)) servedAt.set(name, performance.now());
          if (flip && flip.service === name && flip.podAt !== undefined && flip.statusAt === undefined &&
            ingress === wantIngress(name) - (flip.ready ? 0 : 1)) flip.statusAt = performance.now();
        }),
      ]),
    ];

    // Per Service, when the controller's requests about it reached the server and ended (the server's own request
    // log, same clock), to split create -> DaemonSet: until its first request (finalizer patch or ConfigMap apply)
    // arrived, that is the Service watch's delivery, the queue wait and the reconcile's own work; from there to the
    // DaemonSet apply's arrival (the ConfigMap apply the DaemonSet waits for); and the apply inside the server.
    const applies = new Map<string, { arrivedAt: number; endedAt: number }>();
    const firstRequest = new Map<string, number>();
    /** Per Service, when each of its status writes arrived (the goal is per Service, so the worst one counts). */
    const statusWrites = new Map<string, number[]>();
    const stopLog = server.requestLog.onEnd((e) => {
      if (!e.userAgent.startsWith("berth") || e.endedAt === undefined || !e.name) return;
      if (e.resource === "services/status" && e.verb === "patch") {
        const at = statusWrites.get(e.name);
        if (at) at.push(e.arrivedAt);
        else statusWrites.set(e.name, [e.arrivedAt]);
      }
      if (e.resource === "daemonsets" && e.verb === "patch" && !applies.has(e.name)) applies.set(e.name, { arrivedAt: e.arrivedAt, endedAt: e.endedAt });
      // Our Services are svc-N; their DaemonSets and rules ConfigMaps svclb-svc-N-<uid>[-<hash>].
      const service = e.resource === "services" ? e.name : e.resource === "configmaps" ? /^svclb-(svc-\d+)-/.exec(e.name)?.[1] : undefined;
      if (service !== undefined && (firstRequest.get(service) ?? Infinity) > e.arrivedAt) firstRequest.set(service, e.arrivedAt);
    });
    const before = await apiRequests(metricsUrl);
    // This process's event loop serves the API server: a stall here stalls every request of the controller too.
    const serverLag = monitorEventLoopDelay({ resolution: 10 });
    serverLag.enable();
    const cpuSince = cpuClock(controller.pid, kubelet.pid);
    const t0 = performance.now();
    for (let i = 0; i < services; i++) {
      const name = `svc-${i}`;
      await createLbService(client, name, 10000 + i);
      created.set(name, performance.now());
    }
    const deadline = Date.now() + 30 * 60_000;
    while (UNTIL_DAEMONSETS ? dsAt.size < services : servedAt.size < services || (await queueDepth(metricsUrl)) > 0) {
      if (Date.now() > deadline) throw new Error(`not converged: ${servedAt.size}/${services} served`);
      if (controller.exitCode !== null) throw new Error(`controller exited: ${stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const convergedAfterS = (performance.now() - t0) / 1000;
    const cpuSeconds = cpuSince(convergedAfterS);
    serverLag.disable();
    // prom-client resets its event-loop histogram at every scrape: with --until-daemonsets nothing scraped the
    // controller since just before the first Service was created, so this is the burst's.
    const controllerEventLoopDelayMs = { p99: Math.round(await metric(metricsUrl, "nodejs_eventloop_lag_p99_seconds") * 1000),
      max: Math.round(await metric(metricsUrl, "nodejs_eventloop_lag_max_seconds") * 1000) };
    const apiServerEventLoopDelayMs = { p99: Math.round(serverLag.percentile(99) / 1e6), max: Math.round(serverLag.max / 1e6) };
    const queueWaitMs = await histogram(metricsUrl, "berth_workqueue_queue_duration_seconds", "lane", 'name="services"');
    const reconcileMs = await histogram(metricsUrl, "berth_reconcile_duration_seconds", "result");
    const requestMs = await histogram(metricsUrl, "berth_api_request_duration_seconds", "verb");

    stopLog();
    // Let the kubelet's last status writes and the Events of the last reconciles go out before counting.
    await new Promise((r) => setTimeout(r, 2000));
    const after = await apiRequests(metricsUrl);
    const memory = rss(controller.pid as number);

    const idleStart = await apiRequests(metricsUrl);
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const idleEnd = await apiRequests(metricsUrl);

    // Isolated changes, each on a Service that has been quiet since it converged.
    const isolated: number[] = [];
    const candidates = [...created.keys()].filter((n) => !blocked.has(n));
    const step = Math.max(1, Math.floor(candidates.length / Math.max(1, FLIPS)));
    for (let i = 0; i < FLIPS && i * step < candidates.length; i++) {
      const service = candidates[i * step] as string;
      const nodeName = `node-${(i % Math.max(1, nodes - 1)) + 1}`;
      const pod = podOn.get(service)?.get(nodeName);
      const ds = dsName.get(service);
      if (!pod || !ds) continue;
      for (const ready of [false, true]) {
        flip = { service, pod, ready };
        kubelet.stdin?.write(`ready ${ds} ${nodeName} ${ready}\n`);
        const until = Date.now() + 60_000;
        while ((flip.statusAt === undefined) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        if (flip.podAt !== undefined && flip.statusAt !== undefined) isolated.push(flip.statusAt - flip.podAt);
        else console.error(`isolated change on ${service} (${pod} ready=${ready}) not seen within 60 s`);
        flip = undefined;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    for (const w of watches) w.stop();
    client.closeWatches();

    const toApply: number[] = [];
    const applyServer: number[] = [];
    const toFirst: number[] = [];
    const firstToApply: number[] = [];
    for (const [name, t] of created) {
      const apply = applies.get(dsName.get(name) ?? "");
      if (!apply) continue;
      // The request log's clock is performance.timeOrigin + performance.now() of this same process.
      toApply.push(apply.arrivedAt - (performance.timeOrigin + t));
      applyServer.push(apply.endedAt - apply.arrivedAt);
      const first = firstRequest.get(name);
      if (first === undefined) continue;
      toFirst.push(first - (performance.timeOrigin + t));
      firstToApply.push(apply.arrivedAt - first);
    }
    const toDs: number[] = [];
    const readyToStatus: number[] = [];
    for (const [name, t] of created) {
      const ds = dsAt.get(name);
      if (ds !== undefined) toDs.push(ds - t);
      const readies = [...(podReadyAt.get(name)?.values() ?? [])];
      const served = servedAt.get(name);
      if (readies.length >= wantIngress(name) && served !== undefined) readyToStatus.push(Math.max(0, served - Math.max(...readies)));
    }
    const stats = (v: number[]): { p50: number; p99: number; max: number } => ({
      p50: Math.round(percentile(v, 50)), p99: Math.round(percentile(v, 99)), max: Math.round(Math.max(...v)),
    });
    const byVerb: Record<string, number> = {};
    for (const [k, v] of Object.entries(after.byVerb)) byVerb[k] = v - (before.byVerb[k] ?? 0);
    return {
      services, nodes,
      createToDaemonSetMs: stats(toDs),
      createToApplyArrivedMs: stats(toApply),
      applyServerMs: stats(applyServer),
      createToFirstRequestMs: stats(toFirst),
      firstRequestToApplyMs: stats(firstToApply),
      queueWaitMs,
      reconcileMs,
      requestMs,
      apiServerEventLoopDelayMs,
      cpuSeconds,
      ...(UNTIL_DAEMONSETS ? { controllerEventLoopDelayMs } : {}),
      slowestCreateToDaemonSet: [...created].map(([name, t]) => ({ name, ms: Math.round((dsAt.get(name) ?? NaN) - t), createdAtS: Math.round((t - t0) / 100) / 10 }))
        .sort((a, b) => b.ms - a.ms).slice(0, 12),
      leaseLosses,
      podsReadyToStatusMs: stats(readyToStatus),
      convergedAfterS: Math.round(convergedAfterS * 10) / 10,
      apiRequestsPerService: round2((after.total - before.total) / services),
      statusWritesPerService: round2((byVerb["patch services/status"] ?? 0) / services),
      statusWritesPerServiceMax: Math.max(0, ...[...statusWrites.values()].map((w) => w.length)),
      mostStatusWrites: [...statusWrites].sort((a, b) => b[1].length - a[1].length).slice(0, 3)
        .map(([name, at]) => ({ name, createdAtS: round2(((created.get(name) ?? NaN) - t0) / 1000),
          writesAtS: at.map((t) => round2((t - performance.timeOrigin - t0) / 1000)) })),
      eventsPerService: round2(((byVerb["create events"] ?? 0) + (byVerb["patch events"] ?? 0)) / services),
      blockedServices: blocked.size,
      apiRequestsByVerb: byVerb,
      isolatedChangeToStatusMs: { ...stats(isolated), samples: isolated.length },
      idleRequestsPerMinute: Math.round(((idleEnd.total - idleStart.total) * 60) / IDLE_SECONDS * 10) / 10,
      idleRequestsByVerb: Object.fromEntries(Object.entries(idleEnd.byVerb).map(([k, v]) => [k, v - (idleStart.byVerb[k] ?? 0)]).filter(([, v]) => (v as number) > 0)),
      idleLeaseRequestsPerMinute: Math.round(((idleEnd.leases - idleStart.leases) * 60) / IDLE_SECONDS * 10) / 10,
      controllerRssMiB: memory.rssMiB,
      controllerPeakRssMiB: memory.peakMiB,
    };
  } finally {
    if (controller && controller.exitCode === null) {
      controller.kill("SIGTERM");
      await new Promise((r) => controller?.once("exit", r));
    }
    if (kubelet && kubelet.exitCode === null) {
      kubelet.kill("SIGTERM");
      await new Promise((r) => kubelet?.once("exit", r));
    }
    client.closeWatches();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A gauge or counter of the controller's /metrics (prom-client's default process metrics included), summed over labels. */
async function metric(metricsUrl: string, name: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`).exec(line);
    if (m) sum += Number(m[1]);
  }
  return sum;
}

/** `berth controller` as its own process against `server`, once /readyz says its caches are synced. */
async function startController(server: ApiServerHandle, dir: string, resync: string,
  variant: Variant = { label: "", heapMiB: HEAP_MIB, cli: CLI, nodeFlags: [] }): Promise<{ proc: ChildProcess; metricsUrl: string; stderr: () => string }> {
  const kubeconfig = join(dir, "kubeconfig");
  writeKubeconfig(kubeconfig, { server: server.url, token: server.token });
  const port = await freePort();
  const args = [...(variant.heapMiB > 0 ? [`--max-old-space-size=${variant.heapMiB}`] : []), ...variant.nodeFlags,
    ...(variant.cli.endsWith(".ts") ? ["--import", "tsx"] : []), variant.cli, "controller", "--kubeconfig", kubeconfig,
    "--listen", `127.0.0.1:${port}`, "--resync", resync, "--lb-image", "berth:bench", "--workers", WORKERS];
  const proc = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (i > 6000 || proc.exitCode !== null) throw new Error(`controller did not become ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, metricsUrl: `http://127.0.0.1:${port}/metrics`, stderr: () => stderr };
}

async function stopController(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  proc.kill("SIGTERM");
  await new Promise((r) => proc.once("exit", r));
}

/** Until the Services' queue has been empty for `quietMs` in a row (polled every 200 ms). */
async function queueQuiet(metricsUrl: string, quietMs: number, proc: ChildProcess, stderr: () => string): Promise<void> {
  let since = performance.now();
  const deadline = Date.now() + 30 * 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`controller exited: ${stderr()}`);
    if (Date.now() > deadline) throw new Error("the controller's queue never went quiet");
    if ((await queueDepth(metricsUrl)) > 0) since = performance.now();
    else if (performance.now() - since >= quietMs) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** kubelet's pod status for a Running, Ready pod (as test/support/kubelet.ts runningStatus writes it). */
/** The Ready status the stand-in (test/support/kubelet.ts) would keep; `nodeIndex`: the node's place by name. */
function readyPodStatus(pod: Obj, hostIP: string, nodeIndex: number, started: string): Obj {
  const podIP = fakePodIp(pod.metadata.name as string, nodeIndex);
  return {
    phase: "Running", hostIP, hostIPs: [{ ip: hostIP }], podIP, podIPs: [{ ip: podIP }], startTime: started,
    conditions: [
      { type: "PodScheduled", status: "True" }, { type: "Initialized", status: "True" },
      { type: "ContainersReady", status: "True" }, { type: "Ready", status: "True" },
    ],
    containerStatuses: ((pod.spec?.containers ?? []) as Obj[]).map((c) => ({
      name: c.name, image: c.image, imageID: "", ready: true, restartCount: 0, started: true, state: { running: { startedAt: started } },
    })),
  };
}

interface SteadyResult {
  services: number;
  nodes: number;
  lbPods: number;
  preloadSeconds: number;
  /** The first controller's writes (finalizer-bearing Services get their status and conditions; see README). */
  warmupRequestsByVerb: Record<string, number>;
  /** One measured controller per --variants entry, run one after another against the same store. */
  measured: SteadyMeasure[];
}

interface SteadyMeasure {
  variant: string;
  controller: string;
  heapMiB: number | "Node default";
  nodeFlags: string[];
  /** The measured controller, from its start through sync, its first pass and one full resync. */
  steadySeconds: number;
  reconciles: number;
  apiRequestsByVerb: Record<string, number>;
  writes: number;
  controllerRssMiB: number;
  controllerPeakRssMiB: number;
  controllerHeapUsedMiB: number;
  controllerHeapTotalMiB: number;
  /**
   * After every watch was ended with its history expired (410 on resume): each informer lists everything again
   * while its old cache is still held, the controller's worst case. Its requests, and RSS and peak after it.
   */
  afterRelist: { requestsByVerb: Record<string, number>; rssMiB: number; peakRssMiB: number; heapUsedMiB: number };
  /** Outside the V8 heap: memory of objects V8 tracks (Buffers, TLS) and of ArrayBuffers among them. */
  controllerExternalMiB: number;
}

/**
 * --preload: the converged steady state, put straight into the in-process API server's store (HTTP at 100k objects
 * is what made the full flow take hours). Per case, on a fresh server:
 *   1. N nodes; S LoadBalancer Services (berth's finalizer on); per Service its DaemonSet as the controller builds it
 *      (buildDaemonSet, server-side applied under berth's field manager); per Service and node one lb-pod as the
 *      DaemonSet controller creates it (newDaemonPod), bound and Ready as the kubelet reports it (status patched by
 *      "kubelet"), so metadata and managedFields are what a real cluster's would be;
 *   2. a first controller runs until its queue is quiet and is stopped: it writes what only it can compute the same
 *      way (each Service's status: ingress and conditions, and its Events), so the state is the one berth converges to;
 *   3. a fresh controller starts (the one measured, once per --variants entry, one after another): synced, first
 *      pass, then one full resync (--resync 20s) over every Service; reported: requests by verb (goal: lists, watches
 *      and the Lease, no write), reconciles, VmRSS, VmHWM, V8 heap used and external memory; then every watch is
 *      ended with its history expired, so each informer relists while still holding its old cache (the worst case),
 *      and RSS, peak and heap again.
 */
async function runSteadyCase(services: number, nodes: number): Promise<SteadyResult> {
  const server: ApiServerHandle = await startApiServer({ port: 0, historyLimit: 5000 });
  const store = server.store;
  const dir = mkdtempSync(join(tmpdir(), "berth-bench-steady-"));
  let controller: ChildProcess | undefined;
  try {
    const t0 = performance.now();
    preloadConverged(store, services, nodes);
    await installAddressPoolCrd(new Client(server));
    const preloadSeconds = Math.round((performance.now() - t0) / 100) / 10;

    const warm = await startController(server, dir, "30s");
    controller = warm.proc;
    await queueQuiet(warm.metricsUrl, 5000, warm.proc, warm.stderr);
    const warmup = await apiRequests(warm.metricsUrl);
    await stopController(warm.proc);

    const measured: SteadyMeasure[] = [];
    for (const variant of VARIANTS) {
      console.error(`  measuring ${variant.label} (${variant.cli}, heap ${variant.heapMiB || "default"} MiB ${variant.nodeFlags.join(" ")})`);
      measured.push(await measureSteady(server, dir, variant, (proc) => (controller = proc)));
      await stopController(controller as ChildProcess);
    }
    return { services, nodes, lbPods: services * nodes, preloadSeconds, warmupRequestsByVerb: warmup.byVerb, measured };
  } finally {
    if (controller) await stopController(controller);
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A fresh controller (`variant`) on the converged store: synced, first pass, one full resync, then its figures. */
async function measureSteady(server: ApiServerHandle, dir: string, variant: Variant, started: (proc: ChildProcess) => void): Promise<SteadyMeasure> {
  const t1 = performance.now();
  const m = await startController(server, dir, "20s", variant);
  started(m.proc);
  // The first pass, then one full resync (20 s) and its queue drained: every Service reconciled at least twice.
  await queueQuiet(m.metricsUrl, 3000, m.proc, m.stderr);
  await new Promise((r) => setTimeout(r, 20_000));
  await queueQuiet(m.metricsUrl, 3000, m.proc, m.stderr);
  const requests = await apiRequests(m.metricsUrl);
  const memory = rss(m.proc.pid as number);
  const mib = (b: number): number => Math.round(b / 2 ** 20 * 10) / 10;
  const writes = Object.entries(requests.byVerb).filter(([k]) => !/^(list|get) /.test(k)).reduce((a, [, v]) => a + v, 0);
  const heapUsedMiB = mib(await metric(m.metricsUrl, "nodejs_heap_size_used_bytes"));
  const heapTotalMiB = mib(await metric(m.metricsUrl, "nodejs_heap_size_total_bytes"));
  server.faults.expireHistory();
  server.faults.closeWatches();
  // Every informer of the five big kinds relisted (the VIP informers' relists, of nothing here, count too, so a
  // total of 5 could come before the pods' 200 pages are in).
  const relisted = async (): Promise<boolean> => {
    const text = await (await fetch(m.metricsUrl)).text();
    return ["services", "nodes", "pods", "daemonsets", "endpointslices"].every((r) => new RegExp(`^berth_relists_total\\{[^}]*resource="${r}"[^}]*\\} [1-9]`, "m").test(text));
  };
  const relistDeadline = Date.now() + 10 * 60_000;
  while (!(await relisted())) {
    if (Date.now() > relistDeadline || m.proc.exitCode !== null) throw new Error(`the controller did not relist: ${m.stderr()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await queueQuiet(m.metricsUrl, 3000, m.proc, m.stderr);
  const requestsAfter = await apiRequests(m.metricsUrl);
  const afterMemory = rss(m.proc.pid as number);
  const afterRelist = {
    requestsByVerb: Object.fromEntries(Object.entries(requestsAfter.byVerb).map(([k, v]) => [k, v - (requests.byVerb[k] ?? 0)]).filter(([, v]) => (v as number) > 0)),
    rssMiB: afterMemory.rssMiB, peakRssMiB: afterMemory.peakMiB, heapUsedMiB: mib(await metric(m.metricsUrl, "nodejs_heap_size_used_bytes")),
  };
  return {
    variant: variant.label,
    controller: variant.cli.endsWith(".ts") ? `${variant.cli} via tsx` : variant.cli.replace(fileURLToPath(new URL("../", import.meta.url)), ""),
    heapMiB: variant.heapMiB > 0 ? variant.heapMiB : "Node default",
    nodeFlags: variant.nodeFlags,
    steadySeconds: Math.round((performance.now() - t1) / 100) / 10,
    reconciles: await metric(m.metricsUrl, "berth_reconcile_total"),
    apiRequestsByVerb: { ...requests.byVerb, watch: requests.watches, leases: requests.leases },
    writes,
    controllerRssMiB: memory.rssMiB,
    controllerPeakRssMiB: memory.peakMiB,
    controllerHeapUsedMiB: heapUsedMiB,
    controllerHeapTotalMiB: heapTotalMiB,
    afterRelist,
    controllerExternalMiB: mib(await metric(m.metricsUrl, "nodejs_external_memory_bytes")),
  };
}

async function mainSteady(): Promise<void> {
  const results: SteadyResult[] = [];
  for (const [services, nodes] of CASES) {
    console.error(`steady state ${services} Services x ${nodes} nodes (preloaded) ...`);
    const r = await runSteadyCase(services, nodes);
    console.error(JSON.stringify(r));
    results.push(r);
    writeResults(results);
  }
  for (const r of results) {
    for (const m of r.measured) {
      console.log(`${r.services} x ${r.nodes} ${m.variant}: RSS ${m.controllerRssMiB} MiB (peak ${m.controllerPeakRssMiB}), heap used ${m.controllerHeapUsedMiB} ` +
        `of ${m.controllerHeapTotalMiB} MiB, external ${m.controllerExternalMiB} MiB, ${m.reconciles} reconciles, ${m.writes} writes, requests ${JSON.stringify(m.apiRequestsByVerb)}; ` +
        `after a full relist: RSS ${m.afterRelist.rssMiB} MiB (peak ${m.afterRelist.peakRssMiB}), heap used ${m.afterRelist.heapUsedMiB} MiB, requests ${JSON.stringify(m.afterRelist.requestsByVerb)}`);
    }
  }
  console.log(`written ${RESULTS}`);
}

async function main(): Promise<void> {
  const results: CaseResult[] = [];
  for (const [services, nodes] of CASES) {
    console.error(`case ${services} Services x ${nodes} nodes ...`);
    const r = await runCase(services, nodes);
    console.error(JSON.stringify(r));
    results.push(r);
    // Written after every case, so a case that does not fit (memory, time) leaves the earlier ones on disk.
    writeResults(results);
  }
  const rows = results.map((r) => [
    `${r.services} x ${r.nodes}`,
    `${r.createToDaemonSetMs.p50} / ${r.createToDaemonSetMs.p99}`,
    `${r.podsReadyToStatusMs.p50} / ${r.podsReadyToStatusMs.p99}`,
    String(r.convergedAfterS),
    `${r.apiRequestsPerService} (${r.statusWritesPerService} / ${r.eventsPerService})`,
    `${r.isolatedChangeToStatusMs.p50} / ${r.isolatedChangeToStatusMs.p99}`,
    `${r.idleRequestsPerMinute} (+${r.idleLeaseRequestsPerMinute} lease)`,
    `${r.controllerRssMiB} (peak ${r.controllerPeakRssMiB})`,
  ]);
  const head = ["Services x nodes", "create->DS ms p50/p99", "ready->status ms p50/p99", "converged s", "API req/Service (status / Events)", "isolated change ms p50/p99", "idle req/min", "RSS MiB"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padStart(widths[i] as number)).join(" | ")} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows) console.log(line(r));
  console.log(`written ${RESULTS}`);
}

function writeResults(results: CaseResult[] | SteadyResult[]): void {
  mkdirSync(fileURLToPath(new URL("./results/", import.meta.url)), { recursive: true });
  writeFileSync(RESULTS, `${JSON.stringify({
    date: new Date().toISOString(),
    machine: { nproc: cpus().length, cpu: cpus()[0]?.model, memoryMiB: Math.round(totalmem() / 2 ** 20), kernel: release(), node: process.version, loadavgAtEnd: loadavg() },
    ...(PRELOAD ? {} : { controller: CLI.endsWith(".ts") ? "src/cli.ts via tsx" : "dist/cli.js" }),
    ...(PRELOAD ? {} : { controllerHeapMiB: HEAP_MIB > 0 ? HEAP_MIB : "Node default", controllerNodeFlags: NODE_FLAGS, workers: Number(WORKERS), standInLimits: STAND_IN_LIMITS }),
    ...(UNTIL_DAEMONSETS ? { mode: "until-daemonsets: each case ends once every Service has its DaemonSet" } : {}),
    ...(PRELOAD ? { mode: "preload: the converged steady state put into the store, then a fresh controller's sync and one resync" } : { idleSeconds: IDLE_SECONDS }),
    results,
  }, null, 2)}\n`);
}

// --- --arrivals N: Services arriving one by one into a converged cluster ------------------------------------------
//
//   node --max-old-space-size=8000 --import tsx bench/controller.ts --arrivals 200 --cases 0x20,1000x20
//     [--arrival-gap-ms 200] [--heap-mib 256] [--node-flags "--max-semi-space-size=4"] [--stand-in-limits default|none]
//     [--results PATH]
//
// What a user meets: a cluster that already has S LoadBalancer Services, converged, when one more is created. Per
// case (SxM), on a fresh server:
//   1. M nodes, S Services with their DaemonSets and S x M bound, Ready lb-pods put straight into the store (as
//      runSteadyCase step 1, through HTTP it would take hours at 100 nodes); S = 0 is the baseline: the same arrivals
//      into an empty cluster;
//   2. the stand-in DaemonSet controller, scheduler and kubelet (bench/kubelet-process.ts) starts and takes over the
//      preloaded pods (given the status it would keep, so it has nothing to rewrite); then the controller, under the Deployment's heap
//      flags and its default 5 min resync, until its queue is quiet and no write has reached the server for 5 s;
//   3. N new Services (arr-0.., each its own port), one at a time, --arrival-gap-ms apart on a fixed schedule (a
//      create that takes longer than the gap delays only the next one's start), while the stand-in keeps creating,
//      binding and readying every new DaemonSet's M pods, as a cluster does;
//   4. per Service, from its creation to its DaemonSet's ADDED event on a watch of this process. "Creation" is the
//      create request's end in the server's own request log (the answer written, the object already committed and
//      its watch event queued; same clock as the watch); from the client's return is reported too. Also: the split
//      at the server's request log (as runCase), the controller's queue wait and reconcile time over the arrivals
//      (histogram deltas; bucket bounds, not exact percentiles), the server's event-loop delay, CPU seconds per
//      process, the load average, relists and Lease losses.
const ARRIVALS = Number(arg("--arrivals", "0"));
const ARRIVAL_GAP_MS = Number(arg("--arrival-gap-ms", "200"));

type Stats = { p50: number; p99: number; max: number };
type Buckets = Map<string, Map<number, number>>;

/** A histogram's cumulative buckets per value of `label` (summed over the other labels), to subtract two scrapes. */
async function rawBuckets(metricsUrl: string, name: string, label: string, filter = ""): Promise<Buckets> {
  const text = await (await fetch(metricsUrl)).text();
  const out: Buckets = new Map();
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}_bucket{`) || !line.includes(filter)) continue;
    const value = new RegExp(`[{,]${label}="([^"]+)"`).exec(line)?.[1];
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (value === undefined || le === undefined) continue;
    const bound = le === "+Inf" ? Infinity : Number(le) * 1000;
    const m = out.get(value) ?? new Map<number, number>();
    out.set(value, m);
    m.set(bound, (m.get(bound) ?? 0) + Number(/\} (\d+)/.exec(line)?.[1]));
  }
  return out;
}

/** What was observed between two scrapes: per label value, the count and the bucket bounds (ms) of p50/p99/max. */
function bucketDelta(before: Buckets, after: Buckets): Record<string, { taken: number; p50AtMost: number; p99AtMost: number; maxAtMost: number }> {
  const out: Record<string, { taken: number; p50AtMost: number; p99AtMost: number; maxAtMost: number }> = {};
  for (const [value, m] of after) {
    const list = [...m].map(([le, n]) => ({ le, n: n - (before.get(value)?.get(le) ?? 0) })).sort((a, b) => a.le - b.le);
    const taken = list[list.length - 1]?.n ?? 0;
    if (taken === 0) continue;
    const at = (q: number): number => list.find((b) => b.n >= q * taken)?.le ?? NaN;
    out[value] = { taken, p50AtMost: at(0.5), p99AtMost: at(0.99), maxAtMost: at(1) };
  }
  return out;
}

interface ArrivalsResult {
  preloadedServices: number;
  nodes: number;
  arrivals: number;
  arrivalGapMs: number;
  preloadSeconds: number;
  /** From the stand-in's start until the server had seen no write for 5 s (its lists, and nothing to write). */
  kubeletSettleSeconds: number;
  /** From the controller's start to its queue quiet and no write for 5 s: synced and converged. */
  controllerConvergeSeconds: number;
  /** What the controller wrote while converging (its first pass: every preloaded Service's status, Events). */
  convergeRequestsByVerb: Record<string, number>;
  /** The headline: from the create's end in the server's request log to the DaemonSet's ADDED watch event. */
  createToDaemonSetMs: Stats;
  /** The same from the create's return in this process (the client). */
  createReturnToDaemonSetMs: Stats;
  createRequestMs: Stats;
  createToFirstRequestMs: Stats;
  firstRequestToApplyMs: Stats;
  createToApplyArrivedMs: Stats;
  applyServerMs: Stats;
  /** berth_workqueue_queue_duration_seconds{name="services"} observed during the arrivals, per lane. */
  queueWaitMs: Record<string, { taken: number; p50AtMost: number; p99AtMost: number; maxAtMost: number }>;
  reconcileMs: Record<string, { taken: number; p50AtMost: number; p99AtMost: number; maxAtMost: number }>;
  requestMs: Record<string, { taken: number; p50AtMost: number; p99AtMost: number; maxAtMost: number }>;
  /** The controller's requests during the arrivals window, by verb and resource (watches and Leases apart). */
  windowRequestsByVerb: Record<string, number>;
  /** Informer relists (periodic or after 410) during the window: each lists every page of its kind again. */
  windowRelists: number;
  apiServerEventLoopDelayMs: { p99: number; max: number };
  controllerEventLoopDelayMs: { p99: number; max: number };
  /** From the first create to the last DaemonSet: CPU seconds of each process against the wall clock. */
  cpuSeconds: { wallS: number; apiServer: number; controller: number; kubelet: number };
  /** Writes the stand-in made meanwhile (pod creates, bindings, statuses, DaemonSet statuses; request log). */
  windowKubeletWrites: number;
  loadavgBefore: number[];
  loadavgAfter: number[];
  leaseLosses: number;
  controllerRssMiB: number;
  slowest: { name: string; ms: number; createdAtS: number }[];
}

/** The converged state of runSteadyCase step 1 (same objects, same field managers), put into `store`. */
/**
 * The AddressPool CRD, as deploy/berth.yaml installs it beside the controller: without it the controller's VIP-mode
 * informers retry their list for ever, requests an installed controller never sends (they showed up in the idle
 * window).
 */
async function installAddressPoolCrd(client: Client): Promise<void> {
  const res = await client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", JSON.parse(JSON.stringify(addressPoolCrd({}))));
  if (res.status !== 201) throw new Error(`cannot create the AddressPool CRD: ${res.status} ${res.text}`);
}

function preloadConverged(store: ApiServerHandle["store"], services: number, nodes: number): void {
  const t0 = performance.now();
  const nodeRes = store.resourceFor("v1", "Node");
  const svcRes = store.resourceFor("v1", "Service");
  const dsRes = store.resourceFor("apps/v1", "DaemonSet");
  const podRes = store.resourceFor("v1", "Pod");
  store.create(store.resourceFor("v1", "Namespace"), undefined, { metadata: { name: NS } });
  const nodeObjs: Obj[] = [];
  const ips: string[] = [];
  for (let i = 0; i < nodes; i++) {
    const ip = `10.${100 + Math.floor(i / 250)}.${i % 250}.1`;
    ips.push(ip);
    nodeObjs.push(store.create(nodeRes, undefined, {
      metadata: { name: `node-${i}`, labels: { "kubernetes.io/hostname": `node-${i}`, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64" } },
      status: { addresses: [{ type: "InternalIP", address: ip }, { type: "Hostname", address: `node-${i}` }], conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }] },
    }, { fieldManager: "kubelet" }) as Obj);
  }
  // The stand-in numbers nodes in name order (node-0, node-1, node-10, ...) for its pod IPs.
  const byName = new Map([...nodeObjs.map((n) => n.metadata.name as string)].sort((a, b) => a.localeCompare(b)).map((name, i) => [name, i]));
  const config = defaultControllerConfig({ namespace: NS, lbPodImage: "berth:bench" });
  const started = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  for (let s = 0; s < services; s++) {
    const name = `svc-${s}`;
    const svc = store.create(svcRes, "default", {
      metadata: { name, finalizers: [FINALIZER] },
      spec: { type: "LoadBalancer", allocateLoadBalancerNodePorts: false, selector: { app: name },
        ports: [{ name: "p", port: 10000 + s, protocol: "TCP", targetPort: 8080 }] },
    }, { fieldManager: "kubectl-create" }) as V1Service;
    const parsed = parseServiceConfig(svc, config);
    if (!parsed.ok) throw new Error(`${name}: ${JSON.stringify(parsed.problems)}`);
    const desired = buildDaemonSet(svc, parsed.value, nodeObjs as V1Node[], config) as Obj;
    const ds = store.patch(dsRes, NS, desired.metadata.name as string, "apply", desired, { fieldManager: FIELD_MANAGER, force: true }).object as Obj;
    for (let n = 0; n < nodes; n++) {
      const pod = newDaemonPod(ds, `node-${n}`) as Obj;
      pod.spec.nodeName = `node-${n}`;
      const createdPod = store.create(podRes, NS, pod, { fieldManager: "kube-controller-manager" }) as Obj;
      store.patch(podRes, NS, createdPod.metadata.name as string, "strategic", { status: readyPodStatus(createdPod, ips[n] as string, byName.get(`node-${n}`) as number, started) },
        { fieldManager: "kubelet", subresource: "status" });
    }
    store.patch(dsRes, NS, ds.metadata.name as string, "merge", {
      status: { currentNumberScheduled: nodes, desiredNumberScheduled: nodes, numberMisscheduled: 0, numberReady: nodes,
        numberAvailable: nodes, updatedNumberScheduled: nodes, observedGeneration: ds.metadata.generation },
    }, { fieldManager: "kube-controller-manager", subresource: "status" });
    if (s % 200 === 199) console.error(`  preloaded ${s + 1}/${services} Services (${Math.round((performance.now() - t0) / 1000)} s)`);
  }
}

/** Until no write (anything but get, list, watch; Leases apart) has ended in the server for `quietMs`; the time it took, in s. */
async function writesQuiet(server: ApiServerHandle, quietMs: number, procs: ChildProcess[]): Promise<number> {
  const t0 = performance.now();
  let last = performance.now();
  const stop = server.requestLog.onEnd((e) => {
    // Lease renewals go on every few seconds for ever; they are not convergence.
    if (e.verb !== undefined && !["get", "list", "watch"].includes(e.verb) && !e.resource?.startsWith("leases")) last = performance.now();
  });
  try {
    const deadline = Date.now() + 20 * 60_000;
    while (performance.now() - last < quietMs) {
      if (Date.now() > deadline) throw new Error("writes never went quiet");
      if (procs.some((p) => p.exitCode !== null)) throw new Error("a process exited while waiting for quiet");
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    stop();
  }
  return Math.round((performance.now() - t0 - quietMs) / 100) / 10;
}

async function runArrivalsCase(services: number, nodes: number): Promise<ArrivalsResult> {
  const server: ApiServerHandle = await startApiServer({ port: 0, historyLimit: 5000 });
  const client = new Client(server);
  const dir = mkdtempSync(join(tmpdir(), "berth-bench-arrivals-"));
  let controller: ChildProcess | undefined;
  let kubelet: ChildProcess | undefined;
  try {
    const t0 = performance.now();
    preloadConverged(server.store, services, nodes);
    await installAddressPoolCrd(client);
    const preloadSeconds = Math.round((performance.now() - t0) / 100) / 10;

    const standIn = spawnStandIn(server);
    kubelet = standIn.proc;
    await standIn.ready;
    const kubeletSettleSeconds = await writesQuiet(server, 5000, [kubelet]);

    // The Deployment's flags (src/manifests/manifests.ts NODE_OPTIONS) unless told otherwise, its default resync.
    const variant: Variant = {
      label: "arrivals", cli: CLI,
      heapMiB: process.argv.includes("--heap-mib") ? HEAP_MIB : 256,
      nodeFlags: process.argv.includes("--node-flags") ? NODE_FLAGS : ["--max-semi-space-size=4"],
    };
    const t1 = performance.now();
    const c = await startController(server, dir, "5m", variant);
    controller = c.proc;
    let leaseLosses = 0;
    c.proc.stderr?.on("data", (d: Buffer) => (leaseLosses += d.toString().split("lost the lease").length - 1));
    await queueQuiet(c.metricsUrl, 3000, c.proc, c.stderr);
    await writesQuiet(server, 5000, [c.proc, kubelet]);
    const controllerConvergeSeconds = Math.round((performance.now() - t1) / 100) / 10;
    const before = await apiRequests(c.metricsUrl);
    const convergeRequestsByVerb = before.byVerb;

    // The measuring watch, and the server's request log, from here on.
    const dsAt = new Map<string, number>();
    const dsName = new Map<string, string>();
    const rv = (await client.get(`/apis/apps/v1/namespaces/${NS}/daemonsets?limit=1`)).body.metadata.resourceVersion as string;
    const watch = follow(client, `/apis/apps/v1/namespaces/${NS}/daemonsets`, rv, (ev) => {
      const name = ev.object.metadata?.labels?.["berth.dev/service-name"];
      if (ev.type === "ADDED" && name && !dsAt.has(name)) {
        dsAt.set(name, performance.now());
        dsName.set(name, ev.object.metadata.name as string);
      }
    });
    const createEnds: { arrivedAt: number; endedAt: number }[] = [];
    const applies = new Map<string, { arrivedAt: number; endedAt: number }>();
    const firstRequest = new Map<string, number>();
    let kubeletWrites = 0;
    const stopLog = server.requestLog.onEnd((e) => {
      if (e.endedAt === undefined) return;
      if (e.resource === "services" && e.verb === "create" && !e.userAgent.startsWith("berth")) {
        createEnds.push({ arrivedAt: e.arrivedAt, endedAt: e.endedAt });
        return;
      }
      if (!e.userAgent.startsWith("berth")) {
        if (!e.resource?.startsWith("leases") && e.verb !== undefined && !["get", "list", "watch"].includes(e.verb)) kubeletWrites++;
        return;
      }
      if (!e.name) return;
      if (e.resource === "daemonsets" && e.verb === "patch" && !applies.has(e.name)) applies.set(e.name, { arrivedAt: e.arrivedAt, endedAt: e.endedAt });
      const service = e.resource === "services" ? e.name : e.resource === "configmaps" ? /^svclb-(arr-\d+)-/.exec(e.name)?.[1] : undefined;
      if (service !== undefined && (firstRequest.get(service) ?? Infinity) > e.arrivedAt) firstRequest.set(service, e.arrivedAt);
    });
    const queueBefore = await rawBuckets(c.metricsUrl, "berth_workqueue_queue_duration_seconds", "lane", 'name="services"');
    const reconcileBefore = await rawBuckets(c.metricsUrl, "berth_reconcile_duration_seconds", "result");
    const requestBefore = await rawBuckets(c.metricsUrl, "berth_api_request_duration_seconds", "verb");
    const relistsBefore = await metric(c.metricsUrl, "berth_relists_total");
    // The last scrape before the window: prom-client's event-loop lag gauges then cover the window alone.
    await metric(c.metricsUrl, "nodejs_eventloop_lag_p99_seconds");
    const serverLag = monitorEventLoopDelay({ resolution: 10 });
    serverLag.enable();
    const loadavgBefore = loadavg().map(round2);
    const cpuSince = cpuClock(c.proc.pid, kubelet.pid);

    const created = new Map<string, number>();
    const tStart = performance.now();
    for (let i = 0; i < ARRIVALS; i++) {
      const wait = tStart + i * ARRIVAL_GAP_MS - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const name = `arr-${i}`;
      await createLbService(client, name, 30000 + i);
      created.set(name, performance.now());
    }
    const deadline = Date.now() + 10 * 60_000;
    while (dsAt.size < ARRIVALS) {
      if (Date.now() > deadline) throw new Error(`only ${dsAt.size}/${ARRIVALS} DaemonSets appeared`);
      if (c.proc.exitCode !== null) throw new Error(`controller exited: ${c.stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const wallS = (performance.now() - tStart) / 1000;
    const cpuSeconds = cpuSince(wallS);
    const loadavgAfter = loadavg().map(round2);
    serverLag.disable();
    stopLog();
    watch.stop();
    client.closeWatches();
    // One scrape for both: each scrape resets prom-client's event-loop histogram.
    const lagText = await (await fetch(c.metricsUrl)).text();
    const lag = (name: string): number => Math.round(Number(new RegExp(`^${name} ([0-9.e+-]+)$`, "m").exec(lagText)?.[1]) * 1000);
    const controllerEventLoopDelayMs = { p99: lag("nodejs_eventloop_lag_p99_seconds"), max: lag("nodejs_eventloop_lag_max_seconds") };
    const queueWaitMs = bucketDelta(queueBefore, await rawBuckets(c.metricsUrl, "berth_workqueue_queue_duration_seconds", "lane", 'name="services"'));
    const reconcileMs = bucketDelta(reconcileBefore, await rawBuckets(c.metricsUrl, "berth_reconcile_duration_seconds", "result"));
    const requestMs = bucketDelta(requestBefore, await rawBuckets(c.metricsUrl, "berth_api_request_duration_seconds", "verb"));
    const windowRelists = (await metric(c.metricsUrl, "berth_relists_total")) - relistsBefore;
    const after = await apiRequests(c.metricsUrl);
    const memory = rss(c.proc.pid as number);

    if (createEnds.length !== ARRIVALS) throw new Error(`the request log saw ${createEnds.length} Service creates, not ${ARRIVALS}`);
    const stats = (v: number[]): Stats => ({ p50: Math.round(percentile(v, 50) * 10) / 10, p99: Math.round(percentile(v, 99) * 10) / 10, max: Math.round(Math.max(...v) * 10) / 10 });
    const fromEnd: number[] = [];
    const fromReturn: number[] = [];
    const createRequest: number[] = [];
    const toFirst: number[] = [];
    const firstToApply: number[] = [];
    const toApply: number[] = [];
    const applyServer: number[] = [];
    const slowest: { name: string; ms: number; createdAtS: number }[] = [];
    // Creates were sent one at a time, so the k-th create in the log is arr-k. Log times are timeOrigin + now().
    [...created].forEach(([name, returned], k) => {
      const ds = dsAt.get(name) as number;
      const end = (createEnds[k] as { arrivedAt: number; endedAt: number });
      const endedAt = end.endedAt - performance.timeOrigin;
      fromEnd.push(ds - endedAt);
      fromReturn.push(ds - returned);
      createRequest.push(end.endedAt - end.arrivedAt);
      slowest.push({ name, ms: Math.round(ds - endedAt), createdAtS: Math.round((endedAt - tStart) / 100) / 10 });
      const apply = applies.get(dsName.get(name) ?? "");
      if (!apply) return;
      toApply.push(apply.arrivedAt - end.endedAt);
      applyServer.push(apply.endedAt - apply.arrivedAt);
      const first = firstRequest.get(name);
      if (first === undefined) return;
      toFirst.push(first - end.endedAt);
      firstToApply.push(apply.arrivedAt - first);
    });
    const windowRequestsByVerb = Object.fromEntries(Object.entries(after.byVerb).map(([k, v]) => [k, v - (before.byVerb[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
    return {
      preloadedServices: services, nodes, arrivals: ARRIVALS, arrivalGapMs: ARRIVAL_GAP_MS, preloadSeconds, kubeletSettleSeconds,
      controllerConvergeSeconds, convergeRequestsByVerb,
      createToDaemonSetMs: stats(fromEnd), createReturnToDaemonSetMs: stats(fromReturn), createRequestMs: stats(createRequest),
      createToFirstRequestMs: stats(toFirst), firstRequestToApplyMs: stats(firstToApply), createToApplyArrivedMs: stats(toApply), applyServerMs: stats(applyServer),
      queueWaitMs, reconcileMs, requestMs, windowRequestsByVerb, windowRelists,
      apiServerEventLoopDelayMs: { p99: Math.round(serverLag.percentile(99) / 1e6), max: Math.round(serverLag.max / 1e6) },
      controllerEventLoopDelayMs, cpuSeconds, windowKubeletWrites: kubeletWrites, loadavgBefore, loadavgAfter, leaseLosses,
      controllerRssMiB: memory.rssMiB,
      slowest: slowest.sort((a, b) => b.ms - a.ms).slice(0, 8),
    };
  } finally {
    if (controller) await stopController(controller);
    if (kubelet && kubelet.exitCode === null) {
      kubelet.kill("SIGTERM");
      await new Promise((r) => kubelet?.once("exit", r));
    }
    client.closeWatches();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function mainArrivals(): Promise<void> {
  const out = process.argv.includes("--results") ? RESULTS : fileURLToPath(new URL("./results/controller-arrivals.json", import.meta.url));
  const results: ArrivalsResult[] = [];
  for (const [services, nodes] of CASES) {
    console.error(`arrivals: ${ARRIVALS} Services, ${ARRIVAL_GAP_MS} ms apart, into ${services} converged Services x ${nodes} nodes ...`);
    const r = await runArrivalsCase(services, nodes);
    console.error(JSON.stringify(r));
    results.push(r);
    mkdirSync(fileURLToPath(new URL("./results/", import.meta.url)), { recursive: true });
    writeFileSync(out, `${JSON.stringify({
      date: new Date().toISOString(),
      machine: { nproc: cpus().length, cpu: cpus()[0]?.model, memoryMiB: Math.round(totalmem() / 2 ** 20), kernel: release(), node: process.version, loadavgAtEnd: loadavg() },
      controller: CLI.endsWith(".ts") ? "src/cli.ts via tsx" : "dist/cli.js", workers: Number(WORKERS), standInLimits: STAND_IN_LIMITS,
      mode: "arrivals: Services created one at a time into a converged cluster; creation = the create's end in the server's request log",
      results,
    }, null, 2)}\n`);
  }
  for (const r of results) {
    const d = r.createToDaemonSetMs;
    console.log(`${r.arrivals} arrivals into ${r.preloadedServices} x ${r.nodes}: create -> DaemonSet p50 ${d.p50} / p99 ${d.p99} / max ${d.max} ms; ` +
      `urgent queue wait p99 <= ${r.queueWaitMs.urgent?.p99AtMost ?? NaN} ms; load ${r.loadavgBefore[0]} -> ${r.loadavgAfter[0]}; CPU s ${JSON.stringify(r.cpuSeconds)}`);
  }
  console.log(`written ${out}`);
}

(ARRIVALS > 0 ? mainArrivals() : PRELOAD ? mainSteady() : main()).catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
