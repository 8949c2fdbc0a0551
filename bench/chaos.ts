// Chaos soak (root): a sandbox with TWO controller replicas (leader election on) and many LoadBalancer Services, every
// Service's port probed on every node address from the client namespace at 20 Hz, while random faults are injected
// for N minutes; then a report per fault kind (bench/README.md, "Chaos soak", says what each figure means and why).
//
//   node --import tsx bench/chaos.ts [--minutes 10] [--services 50] [--nodes 3] [--seed S] [--hz 20] [--lb-ip-capture]
//                                    [--kinds node-notready,lbpod-kill,...]
//
// Faults, one at a time (seeded: the same seed gives the same sequence), each followed by a wait until the cluster is
// back to its expected state (the convergence time):
//   controller-kill-leader / -standby  SIGKILL of a controller replica (the supervisor restarts it, as a Deployment)
//   lbpod-kill        SIGKILL of every process of one lb-pod (the kubelet stand-in restarts its container)
//   api-429, api-500  the API server answers the controller (User-Agent berth-controller) 429 / 500 for 3-8 s
//   api-watch-drop    the controller's watches end at once and every second for 3-8 s
//   api-410           watch history expired and every watch ended: every informer relists
//                     (each API fault comes with one Service edit made while it is on, so the controller has work)
//   node-notready     a node's kubelet stops for 8-20 s (`sandbox kubelet stop`; the node goes Unknown, its pods not Ready)
//   svc-port, svc-etp, svc-source-ranges   a Service edit: add/remove a second port, flip externalTrafficPolicy,
//                     set/clear loadBalancerSourceRanges (198.18.0.0/24, which still admits the client)
// The sandbox is always taken down (also on Ctrl-C and on errors). Results: a table on stdout and
// bench/results/chaos.json with the machine it ran on.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { V1DaemonSet, V1Node, V1Pod, V1Service } from "@kubernetes/client-node";
import * as yaml from "js-yaml";
import { systemRunner } from "../src/lib/exec.js";
import { KubeClient, Resources, type Resource } from "../src/lib/kube/client.js";
import { Informer } from "../src/lib/kube/informer.js";
import { LABELS } from "../src/lib/names.js";
import { podNamespaceName } from "../src/sandbox/cluster/layout.js";
import { leaderGauge } from "../src/sandbox/cluster/replicas.js";
import { processAlive, readState, sandboxPaths } from "../src/sandbox/cluster/state.js";
import {
  duplicateIptablesRules, duplicateNftRules, faultWindow, lostAddresses, outagePerFault, outages, outagesOutside, summarize,
  type FaultRecord, type IngressSample, type KindSummary, type Target,
} from "./chaos-report.js";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const BERTH = join(REPO, "bin", "berth");
const RESULTS = fileURLToPath(new URL("./results/chaos.json", import.meta.url));
const APP_NS = "chaos";
const LB_NS = "berth-system";
const APP = "chaos-app";
const APP_PORT = 8080;
const FIRST_PORT = 20001;
const EXTRA_PORT_OFFSET = 1000;
/** A source range that still admits the client (198.18.0.100). */
const CLIENT_RANGE = "198.18.0.0/24";
/** How long the cluster may take to converge after a fault before the fault is reported as not converged. */
const CONVERGE_CAP_MS = 120_000;
/** Failures later than convergence that still belong to the fault (a client-side timeout in flight, a slow probe). */
const SETTLE_MS = 2000;
const PROBE_TIMEOUT_MS = 1000;
const runner = systemRunner();

const KINDS = [
  "controller-kill-leader", "controller-kill-standby", "lbpod-kill", "api-429", "api-500", "api-watch-drop", "api-410",
  "node-notready", "svc-port", "svc-etp", "svc-source-ranges",
] as const;
type Kind = (typeof KINDS)[number];
interface Args {
  minutes: number;
  services: number;
  nodes: number;
  seed: number;
  hz: number;
  capture: boolean;
  /** Only these fault kinds (default: all). */
  kinds: Kind[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { minutes: 10, services: 50, nodes: 3, seed: Date.now() % 1_000_000, hz: 20, capture: false, kinds: [...KINDS] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${flag} needs a positive number`);
      return v;
    };
    if (flag === "--minutes") args.minutes = value();
    else if (flag === "--services") args.services = Math.round(value());
    else if (flag === "--nodes") args.nodes = Math.round(value());
    else if (flag === "--seed") args.seed = Math.round(value());
    else if (flag === "--hz") args.hz = value();
    else if (flag === "--lb-ip-capture") args.capture = true;
    else if (flag === "--kinds") {
      const kinds = (argv[++i] ?? "").split(",");
      const unknown = kinds.filter((k) => !(KINDS as readonly string[]).includes(k));
      if (unknown.length > 0) throw new Error(`--kinds: unknown ${unknown.join(", ")} (kinds: ${KINDS.join(", ")})`);
      args.kinds = kinds as Kind[];
    } else throw new Error(`unknown flag ${flag} (flags: --minutes --services --nodes --seed --hz --lb-ip-capture --kinds k1,k2)`);
  }
  if (args.services > 900) throw new Error("--services: at most 900 (ports 20001.. and their extra port 21001.. must not meet)");
  return args;
}

/** mulberry32: a small seeded PRNG, so a seed replays the same fault sequence. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const stamp = (): string => `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s`;
const say = (message: string): void => console.log(`[${stamp()}] ${message}`);

// ---- the sandbox ----

async function berth(args: string[], timeoutMs = 180_000): Promise<string> {
  const r = await runner.run(BERTH, args, { timeoutMs });
  if (r.exitCode !== 0) throw new Error(`berth ${args.join(" ")} failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** The sandbox API server's admin endpoint (/_sandbox/faults), with the kubeconfig's CA and token. */
class Admin {
  private readonly server: URL;
  private readonly ca: string;
  private readonly token: string;

  constructor(kubeconfig: string) {
    const doc = yaml.load(readFileSync(kubeconfig, "utf8")) as {
      clusters: { cluster: { server: string; "certificate-authority-data": string } }[];
      users: { user: { token: string } }[];
    };
    const cluster = doc.clusters[0]?.cluster;
    if (cluster === undefined) throw new Error(`no cluster in ${kubeconfig}`);
    this.server = new URL(cluster.server);
    this.ca = Buffer.from(cluster["certificate-authority-data"], "base64").toString("utf8");
    this.token = doc.users[0]?.user.token ?? "";
  }

  call(method: string, path: string, body?: unknown): Promise<unknown> {
    return new Promise((done, fail) => {
      const req = request({
        host: this.server.hostname, port: this.server.port, path, method, ca: this.ca, timeout: 10_000,
        headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
      }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => ((res.statusCode ?? 500) < 300 ? done(text === "" ? {} : JSON.parse(text)) : fail(new Error(`${method} ${path}: ${res.statusCode} ${text}`))));
      });
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timeout`)));
      req.on("error", fail);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }
}

// ---- the workload ----

function appDaemonSet(): unknown {
  return {
    apiVersion: "apps/v1", kind: "DaemonSet",
    metadata: { name: APP, namespace: APP_NS },
    spec: {
      selector: { matchLabels: { app: APP } },
      template: {
        metadata: { labels: { app: APP } },
        spec: {
          containers: [{
            name: "app", image: "berth.dev/sandbox/demo-app:dev", args: ["--port", String(APP_PORT)],
            env: [
              { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
              { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
            ],
            ports: [{ name: "http", containerPort: APP_PORT }],
            // httpGet, not the app's exec probe: an exec probe is a process start, and the machine has 2 cores.
            readinessProbe: { httpGet: { path: "/", port: APP_PORT }, periodSeconds: 2, timeoutSeconds: 5 },
          }],
        },
      },
    },
  };
}

const svcName = (i: number): string => `svc-${String(i + 1).padStart(3, "0")}`;

function service(i: number): V1Service {
  return {
    apiVersion: "v1", kind: "Service",
    metadata: { name: svcName(i), namespace: APP_NS },
    spec: {
      type: "LoadBalancer",
      selector: { app: APP },
      // Half Local, half Cluster: both of kube-proxy's paths behind the lb-pods are exercised from the start.
      externalTrafficPolicy: i % 2 === 0 ? "Local" : "Cluster",
      ports: [{ name: "http", port: FIRST_PORT + i, targetPort: APP_PORT as never, protocol: "TCP" }],
    },
  };
}

// ---- the soak ----

interface Soak {
  args: Args;
  prefix: string;
  client: KubeClient;
  admin: Admin;
  nodes: { name: string; ip: string }[];
  targets: Target[];
  informers: { nodes: Informer<V1Node>; services: Informer<V1Service>; daemonSets: Informer<V1DaemonSet>; pods: Informer<V1Pod> };
  ingress: Map<string, IngressSample[]>;
  failures: Map<number, number[]>;
  proberStats: { t: number; sent: number; ok: number; failed: number; skipped: number; lagMs: number }[];
  /** Load average every 10 s while probing. */
  loads: number[];
  faults: FaultRecord[];
  random: () => number;
}

const isReadyNode = (n: V1Node): boolean =>
  n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true &&
  !(n.spec?.taints ?? []).some((t) => t.key === "node.kubernetes.io/unreachable");
const isReadyPod = (p: V1Pod): boolean => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
const ingressIps = (s: V1Service): string[] => (s.status?.loadBalancer?.ingress ?? []).map((e) => e.ip ?? "").filter((ip) => ip !== "").sort();

/** What is not as it should be right now (empty = converged), from the informers' caches: no API request. */
function problems(s: Soak): string[] {
  const out: string[] = [];
  const nodes = s.informers.nodes.list();
  const readyIps = nodes.filter(isReadyNode).map((n) => s.nodes.find((x) => x.name === n.metadata?.name)?.ip ?? "").sort();
  const services = s.informers.services.list();
  const dss = s.informers.daemonSets.list();
  const pods = s.informers.pods.list();
  const uids = new Set(services.map((svc) => svc.metadata?.uid ?? ""));
  for (const svc of services) {
    const name = svc.metadata?.name ?? "";
    const have = ingressIps(svc);
    if (have.join() !== readyIps.join()) out.push(`${name}: ingress [${have.join(" ")}] != ready nodes [${readyIps.join(" ")}]`);
    const own = dss.filter((d) => d.metadata?.labels?.[LABELS.serviceUid] === svc.metadata?.uid);
    if (own.length !== 1) {
      out.push(`${name}: ${own.length} DaemonSets`);
      continue;
    }
    const ds = own[0] as V1DaemonSet;
    const st = ds.status;
    if ((st?.observedGeneration ?? 0) < (ds.metadata?.generation ?? 0)) out.push(`${name}: DaemonSet generation not observed yet`);
    if (st?.desiredNumberScheduled !== nodes.length || st.numberReady !== nodes.length || (st.updatedNumberScheduled ?? 0) !== nodes.length) {
      out.push(`${name}: DaemonSet desired/ready/updated ${st?.desiredNumberScheduled}/${st?.numberReady}/${st?.updatedNumberScheduled} of ${nodes.length}`);
    }
  }
  const dsNames = new Set(dss.map((d) => d.metadata?.name ?? ""));
  for (const ds of dss) {
    if (!uids.has(ds.metadata?.labels?.[LABELS.serviceUid] ?? "")) out.push(`orphaned DaemonSet ${ds.metadata?.name}`);
  }
  const perDs = new Map<string, V1Pod[]>();
  for (const pod of pods) {
    const owner = pod.metadata?.labels?.[LABELS.daemonSet] ?? "";
    if (!dsNames.has(owner)) out.push(`orphaned pod ${pod.metadata?.name} (DaemonSet ${owner} is gone)`);
    perDs.set(owner, [...(perDs.get(owner) ?? []), pod]);
  }
  for (const [ds, list] of perDs) {
    if (!dsNames.has(ds)) continue;
    if (list.length !== nodes.length) out.push(`${ds}: ${list.length} lb-pods for ${nodes.length} nodes`);
    const notReady = list.filter((p) => !isReadyPod(p) || p.metadata?.deletionTimestamp);
    if (notReady.length > 0) out.push(`${ds}: ${notReady.length} lb-pods not Ready`);
  }
  return out;
}

/**
 * Waits until nothing is wrong, the fault's own effect was seen through (`expect`: the edited Service's DaemonSet
 * rewritten, the killed container restarted, the killed replica back) and a live replica leads; returns the time,
 * or what was still wrong at the cap.
 */
async function converge(s: Soak, from: number, expect: () => string | undefined): Promise<{ at?: number; left: string[]; trace: string[] }> {
  let left: string[] = [];
  // What held convergence up, each time the first problem changed: the JSON's way of saying where the time went.
  const trace: string[] = [];
  let lastFirst = "";
  while (Date.now() - from < CONVERGE_CAP_MS) {
    left = problems(s);
    const pending = expect();
    if (pending !== undefined) left.unshift(pending);
    const first = (left[0] ?? "").replace(/svc-\d+/g, "svc-N").replace(/svclb-\S+/g, "svclb-X");
    if (first !== lastFirst && left.length > 0) trace.push(`+${Date.now() - from} ms: ${left[0]}${left.length > 1 ? ` (+${left.length - 1} more)` : ""}`);
    lastFirst = first;
    if (left.length === 0) {
      if ((await leaderByMetrics(s)) !== undefined) return { at: Date.now(), left, trace };
      left = ["no replica reports berth_leader 1"];
    }
    await sleep(200);
  }
  return { left, trace };
}

/** The identity of the replica whose /metrics says berth_leader 1 (the replica's own view, not the Lease's). */
async function leaderByMetrics(s: Soak): Promise<string | undefined> {
  for (const r of readState(sandboxPaths(s.prefix))?.controllers ?? []) {
    const text = await fetch(`${r.url}/metrics`, { signal: AbortSignal.timeout(2000) }).then((res) => res.text()).catch(() => "");
    if (leaderGauge(text) === true) return r.identity;
  }
  return undefined;
}

/** The DaemonSet of a Service, from the informer. */
function daemonSetOf(s: Soak, svc: string): V1DaemonSet | undefined {
  const uid = s.informers.services.get(`${APP_NS}/${svc}`)?.metadata?.uid;
  return s.informers.daemonSets.list().find((d) => d.metadata?.labels?.[LABELS.serviceUid] === uid);
}

/** Expectation after an edit: the Service's DaemonSet has a newer generation than before the edit. */
function dsRewritten(s: Soak, svc: string): () => string | undefined {
  const before = daemonSetOf(s, svc)?.metadata?.generation ?? 0;
  return () => ((daemonSetOf(s, svc)?.metadata?.generation ?? 0) > before ? undefined : `${svc}: DaemonSet not rewritten yet (generation ${before})`);
}

const restarts = (p: V1Pod | undefined): number => (p?.status?.containerStatuses ?? []).reduce((a, c) => a + (c.restartCount ?? 0), 0);

const pick = <T>(s: Soak, list: readonly T[]): T => list[Math.floor(s.random() * list.length)] as T;
const between = (s: Soak, lo: number, hi: number): number => Math.round(lo + s.random() * (hi - lo));
const targetsOf = (s: Soak, pred: (t: Target) => boolean): number[] => s.targets.filter(pred).map((t) => t.id);

/** One Service edit; returns what it did and which targets it touches. */
async function serviceEdit(s: Soak, kind: "svc-port" | "svc-etp" | "svc-source-ranges"): Promise<{ detail: string; touched: number[]; expect: () => string | undefined }> {
  const i = Math.floor(s.random() * s.args.services);
  const name = svcName(i);
  const svc = s.informers.services.get(`${APP_NS}/${name}`) ?? await s.client.get<V1Service>(Resources.services, name, { namespace: APP_NS });
  let patch: unknown;
  let detail: string;
  if (kind === "svc-port") {
    const ports = svc.spec?.ports ?? [];
    const base = ports.filter((p) => p.name === "http");
    if (ports.length > 1) {
      patch = { spec: { ports: base } };
      detail = `${name}: removed port ${FIRST_PORT + EXTRA_PORT_OFFSET + i}`;
    } else {
      patch = { spec: { ports: [...base, { name: "extra", port: FIRST_PORT + EXTRA_PORT_OFFSET + i, targetPort: APP_PORT, protocol: "TCP" }] } };
      detail = `${name}: added port ${FIRST_PORT + EXTRA_PORT_OFFSET + i}`;
    }
  } else if (kind === "svc-etp") {
    const next = svc.spec?.externalTrafficPolicy === "Local" ? "Cluster" : "Local";
    patch = { spec: { externalTrafficPolicy: next } };
    detail = `${name}: externalTrafficPolicy ${next}`;
  } else {
    const has = (svc.spec?.loadBalancerSourceRanges ?? []).length > 0;
    patch = { spec: { loadBalancerSourceRanges: has ? null : [CLIENT_RANGE] } };
    detail = `${name}: loadBalancerSourceRanges ${has ? "cleared" : CLIENT_RANGE}`;
  }
  const expect = dsRewritten(s, name);
  await s.client.patch(Resources.services, name, "merge", patch, { namespace: APP_NS });
  return { detail, touched: targetsOf(s, (t) => t.svc === name), expect };
}

const EDITS = ["svc-port", "svc-etp", "svc-source-ranges"] as const;

/** Injects one fault, waits for convergence, records it. */
async function inject(s: Soak, kind: Kind): Promise<FaultRecord> {
  const start = Date.now();
  let touched: number[] = [];
  let detail: string;
  let expect = (): string | undefined => undefined;
  if (kind === "controller-kill-leader" || kind === "controller-kill-standby") {
    const lead = await leaderByMetrics(s);
    const replicas = readState(sandboxPaths(s.prefix))?.controllers ?? [];
    const victim = kind === "controller-kill-leader" ? replicas.find((r) => r.identity === lead) : replicas.find((r) => r.identity !== lead);
    if (victim === undefined) detail = `no ${kind === "controller-kill-leader" ? "leader" : "standby"} to kill (leader: ${lead ?? "none"})`;
    else {
      process.kill(victim.pid, "SIGKILL");
      detail = `SIGKILL ${victim.identity} (pid ${victim.pid})`;
      // Back = the supervisor restarted it (a new pid for the identity) and the new run is alive.
      expect = () => {
        const now = readState(sandboxPaths(s.prefix))?.controllers?.find((r) => r.identity === victim.identity);
        return now !== undefined && now.pid !== victim.pid && processAlive(now.pid) ? undefined : `${victim.identity} not restarted yet`;
      };
    }
  } else if (kind === "lbpod-kill") {
    const pods = s.informers.pods.list().filter((p) => isReadyPod(p) && !p.metadata?.deletionTimestamp);
    if (pods.length === 0) throw new Error("no Ready lb-pod to kill");
    const pod = pick(s, pods);
    const ns = podNamespaceName(s.prefix, pod.metadata?.uid ?? "");
    const pids = (await runner.run("ip", ["netns", "pids", ns])).stdout.split("\n").map(Number).filter((n) => n > 1);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
    const svc = pod.metadata?.labels?.[LABELS.serviceName] ?? "";
    const node = pod.spec?.nodeName ?? "";
    const before = restarts(pod);
    const key = `${LB_NS}/${pod.metadata?.name}`;
    // Back = the container restarted (or the pod was replaced); problems() then checks it is Ready again.
    expect = () => {
      const now = s.informers.pods.get(key);
      return now === undefined || restarts(now) > before ? undefined : `${pod.metadata?.name}: not restarted yet`;
    };
    touched = targetsOf(s, (t) => t.svc === svc && t.node === node);
    detail = `SIGKILL ${pids.length} process(es) of ${pod.metadata?.name} (${svc} on ${node})`;
  } else if (kind.startsWith("api-")) {
    const holdMs = between(s, 3000, 8000);
    const rules: number[] = [];
    const add = async (rule: Record<string, unknown>): Promise<void> => {
      rules.push(((await s.admin.call("POST", "/_sandbox/faults", { userAgent: "berth-controller", ...rule })) as { id: number }).id);
    };
    if (kind === "api-429") await add({ error: 429, retryAfterSeconds: 1 });
    if (kind === "api-500") await add({ error: 500 });
    if (kind === "api-watch-drop") {
      await add({ closeWatchAfterSeconds: 1 });
      await s.admin.call("POST", "/_sandbox/faults/close-watches");
    }
    if (kind === "api-410") {
      await s.admin.call("POST", "/_sandbox/faults/expire-history");
      await s.admin.call("POST", "/_sandbox/faults/close-watches");
    }
    await sleep(500);
    const edit = await serviceEdit(s, pick(s, EDITS));
    touched = edit.touched;
    expect = edit.expect;
    await sleep(Math.max(0, holdMs - 500));
    for (const id of rules) await s.admin.call("DELETE", `/_sandbox/faults/${id}`).catch(() => undefined);
    detail = `${holdMs} ms, during it ${edit.detail}`;
  } else if (kind === "node-notready") {
    const node = pick(s, s.nodes);
    const holdMs = between(s, 8000, 20_000);
    await berth(["sandbox", "kubelet", "stop", node.name, "--prefix", s.prefix], 30_000);
    await sleep(holdMs);
    await berth(["sandbox", "kubelet", "start", node.name, "--prefix", s.prefix], 30_000);
    touched = targetsOf(s, (t) => t.node === node.name);
    detail = `${node.name} kubelet stopped for ${holdMs} ms`;
  } else {
    const edit = await serviceEdit(s, kind as (typeof EDITS)[number]);
    touched = edit.touched;
    expect = edit.expect;
    detail = edit.detail;
  }
  const end = Date.now();
  const { at, left, trace } = await converge(s, end, expect);
  const record: FaultRecord = { kind, start, end, touched, detail, trace: trace.slice(0, 20), ...(at !== undefined ? { convergedAt: at } : { notConverged: left.slice(0, 10) }) };
  say(`${kind}: ${detail}; ${at !== undefined ? `converged ${at - end} ms after it ended` : `NOT converged after ${CONVERGE_CAP_MS / 1000} s: ${left.slice(0, 3).join("; ")}`}`);
  return record;
}

/** Duplicate rules in every lb-pod's and every node's namespace (iptables-save and nft), and lb-pods with no rules. */
async function ruleCheck(s: Soak): Promise<{ namespaces: number; duplicates: string[]; lbPodsWithoutRules: string[] }> {
  const namespaces = [
    ...s.nodes.map((n) => ({ ns: `${s.prefix}-${n.name}`, lbPod: undefined as string | undefined })),
    ...s.informers.pods.list().map((p) => ({ ns: podNamespaceName(s.prefix, p.metadata?.uid ?? ""), lbPod: p.metadata?.name })),
  ];
  const duplicates: string[] = [];
  const lbPodsWithoutRules: string[] = [];
  for (const { ns, lbPod } of namespaces) {
    const ipt = await runner.run("iptables-save", [], { netns: ns, timeoutMs: 20_000 });
    const nft = await runner.run("nft", ["list", "ruleset"], { netns: ns, timeoutMs: 20_000 });
    for (const d of duplicateIptablesRules(ipt.stdout)) duplicates.push(`${ns} iptables: ${d}`);
    for (const d of duplicateNftRules(nft.stdout)) duplicates.push(`${ns} nft: ${d}`);
    if (lbPod !== undefined && !/-A |\bdnat\b/.test(ipt.stdout + nft.stdout)) lbPodsWithoutRules.push(lbPod);
  }
  return { namespaces: namespaces.length, duplicates: [...new Set(duplicates)], lbPodsWithoutRules };
}

/** user + system CPU seconds of a process so far (/proc/<pid>/stat fields 14 and 15, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

function startProber(s: Soak): ChildProcess {
  const child = spawn("ip", ["netns", "exec", `${s.prefix}-client`, process.execPath, "--import", "tsx", join(REPO, "bench", "chaos-prober.ts")], {
    cwd: REPO, stdio: ["pipe", "pipe", "inherit"],
  });
  child.stdin?.write(`${JSON.stringify({ targets: s.targets.map((t) => ({ id: t.id, ip: t.ip, port: t.port })), hz: s.args.hz, timeoutMs: PROBE_TIMEOUT_MS })}\n`);
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  lines.on("line", (text) => {
    const msg = JSON.parse(text) as { f?: [number, number, string]; s?: Soak["proberStats"][number] };
    if (msg.f) {
      const [id, at] = msg.f;
      const list = s.failures.get(id) ?? [];
      list.push(at);
      s.failures.set(id, list);
    }
    if (msg.s) s.proberStats.push(msg.s);
  });
  return child;
}

/** The newest modification time under a directory (files ending in `ext`). */
function newest(dir: string, ext: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(path, ext));
    else if (entry.name.endsWith(ext)) latest = Math.max(latest, statSync(path).mtimeMs);
  }
  return latest;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error("bench/chaos.ts needs root (it brings up the sandbox)");
  // The sandbox runs dist/ (bin/berth), this script runs src/: a stale build would measure other code than the
  // sources it is committed next to.
  if (newest(join(REPO, "src"), ".ts") > newest(join(REPO, "dist"), ".js")) throw new Error("dist/ is older than src/: run `npm run build` first");
  const prefix = `chaos${process.pid}`.slice(0, 17);
  let prober: ChildProcess | undefined;
  let client: KubeClient | undefined;
  let informers: Soak["informers"] | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => (cleaning ??= (async () => {
    prober?.stdin?.end();
    prober?.kill("SIGTERM");
    if (informers) await Promise.all(Object.values(informers).map((i) => i.stop())).catch(() => undefined);
    client?.close();
    say(`sandbox down --prefix ${prefix}`);
    const r = await runner.run(BERTH, ["sandbox", "down", "--prefix", prefix], { timeoutMs: 120_000 });
    say((r.stdout || r.stderr).trim());
  })());
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      say(`${signal}: taking the sandbox down`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    say(`seed ${args.seed}; ${args.services} Services x ${args.nodes} nodes, ${args.hz} Hz per address, ${args.minutes} min of faults, ` +
      `LoadBalancer IP capture ${args.capture ? "on (kube-proxy path)" : "off (lb-pod path)"}; prefix ${prefix}`);
    await berth(["sandbox", "up", "--prefix", prefix, "--nodes", String(args.nodes), "--controller-replicas", "2", ...(args.capture ? [] : ["--no-lb-ip-capture"])]);
    const state = readState(sandboxPaths(prefix));
    if (state === undefined) throw new Error("sandbox up wrote no state");
    client = await KubeClient.fromKubeconfig({ kubeconfig: state.kubeconfig, userAgent: "berth-chaos" });
    const nodes = state.layout.nodes.map((n) => ({ name: n.name, ip: n.lanIps[0] as string }));
    const informer = <T extends V1Node | V1Service | V1DaemonSet | V1Pod>(resource: Resource, namespace?: string): Informer<T> =>
      new Informer<T>({ client: client as KubeClient, resource, ...(namespace ? { namespace } : {}), name: `chaos-${resource.plural}` });
    informers = {
      nodes: informer<V1Node>(Resources.nodes),
      services: informer<V1Service>(Resources.services, APP_NS),
      daemonSets: informer<V1DaemonSet>(Resources.daemonSets, LB_NS),
      pods: informer<V1Pod>(Resources.pods, LB_NS),
    };
    const targets: Target[] = [];
    for (let i = 0; i < args.services; i++) {
      for (const n of nodes) targets.push({ id: targets.length, svc: svcName(i), node: n.name, ip: n.ip, port: FIRST_PORT + i });
    }
    const s: Soak = {
      args, prefix, client, admin: new Admin(state.kubeconfig), nodes, targets, informers,
      ingress: new Map(), failures: new Map(), proberStats: [], loads: [], faults: [], random: prng(args.seed),
    };
    const record = (svc: V1Service): void => {
      const name = svc.metadata?.name ?? "";
      const list = s.ingress.get(name) ?? [];
      const ips = ingressIps(svc);
      if (list.at(-1)?.ips.join() !== ips.join()) list.push({ t: Date.now(), ips });
      s.ingress.set(name, list);
    };
    informers.services.addHandlers({ onAdd: record, onUpdate: (_old, svc) => record(svc), onDelete: () => undefined });
    for (const i of Object.values(informers)) i.start();
    await Promise.all(Object.values(informers).map((i) => i.synced));

    await client.create(Resources.namespaces, { metadata: { name: APP_NS } } as never);
    await client.create(Resources.daemonSets, appDaemonSet() as V1DaemonSet, { namespace: APP_NS });
    const created = Date.now();
    for (let i = 0; i < args.services; i++) await client.create(Resources.services, service(i), { namespace: APP_NS });
    say(`created ${args.services} Services; waiting for every lb-pod Ready and every address in status`);
    const first = await converge(s, created, () => undefined);
    if (first.at === undefined) throw new Error(`the cluster did not converge before the faults: ${first.left.slice(0, 5).join("; ")}`);
    const setupS = (first.at - created) / 1000;
    say(`converged in ${setupS.toFixed(1)} s; probing ${targets.length} addresses (Service port x node) at ${args.hz} Hz`);

    prober = startProber(s);
    const proberPid = prober.pid;
    const loadTimer = setInterval(() => s.loads.push(loadavg()[0] as number), 10_000);
    const baselineStart = Date.now();
    await sleep(15_000);
    const baselineEnd = Date.now();
    const deadline = Date.now() + args.minutes * 60_000;
    const injectErrors: string[] = [];
    while (Date.now() < deadline) {
      const kind = pick(s, args.kinds);
      try {
        s.faults.push(await inject(s, kind));
      } catch (err) {
        // A fault that could not be injected (an API call of the bench failed) is logged and skipped, not fatal:
        // the soak and its cleanup go on.
        say(`${kind}: could not inject: ${err instanceof Error ? err.message : String(err)}`);
        injectErrors.push(`${kind}: ${err instanceof Error ? err.message : String(err)}`);
      }
      await sleep(between(s, 2000, 5000));
    }
    const faultsEnd = Date.now();
    await sleep(5000);
    // `ip netns exec` execs node in place: the pid is the prober's own.
    const proberCpuS = proberPid === undefined ? 0 : cpuSeconds(proberPid);
    const probedS = (Date.now() - baselineStart) / 1000;
    clearInterval(loadTimer);
    prober.stdin?.end();
    await sleep(PROBE_TIMEOUT_MS + 500);
    const probeEnd = Date.now();
    const final = problems(s);
    say(`faults over; final state: ${final.length === 0 ? "as expected" : final.slice(0, 5).join("; ")}; checking rules`);
    const rules = await ruleCheck(s);
    const load = loadavg();

    // ---- the report ----
    const sent = s.proberStats.reduce((a, x) => a + x.sent, 0);
    const failed = s.proberStats.reduce((a, x) => a + x.failed, 0);
    const skipped = s.proberStats.reduce((a, x) => a + x.skipped, 0);
    const lags = s.proberStats.map((x) => x.lagMs).sort((a, b) => a - b);
    // What the prober achieved per address (a saturated machine skips rounds); outages are measured at that grain.
    const achievedHz = sent / targets.length / probedS;
    const periodMs = 1000 / args.hz;
    const gapMs = Math.max(3 * periodMs, 3000 / Math.max(achievedHz, 0.1), PROBE_TIMEOUT_MS / 2);
    const all = outages({ failures: s.failures, targets, ingress: s.ingress, periodMs, gapMs });
    const windows = s.faults.map((f) => faultWindow(f, CONVERGE_CAP_MS, SETTLE_MS));
    const perFault = s.faults.map((f, i) => ({ f, outage: outagePerFault(f, all, windows[i] as { from: number; to: number }), convergeMs: f.convergedAt === undefined ? undefined : f.convergedAt - f.end }));
    const summaries: KindSummary[] = KINDS.map((k) => summarize(k, perFault.filter((r) => r.f.kind === k))).filter((k) => k.count > 0);
    const outside = outagesOutside(all.filter((o) => o.from >= baselineStart && o.from <= probeEnd), windows);
    const lost = lostAddresses({
      ingress: s.ingress, targets, since: baselineStart, end: probeEnd,
      windows: s.faults.map((f, i) => ({ ...(windows[i] as { from: number; to: number }), touched: new Set(f.touched) })),
    });
    const orphans = final.filter((p) => p.startsWith("orphaned"));
    const describe = (id: number | undefined): string => {
      const t = targets[id ?? -1];
      return t === undefined ? "" : `${t.svc}@${t.ip}:${t.port}`;
    };

    const head = ["fault", "n", "touched outage ms p50/p99/max", "others outage ms p50/p99/max", "converge ms p50/p99/max", "not conv."];
    const rows = summaries.map((k) => [k.kind, String(k.count), `${k.touchedMs.p50}/${k.touchedMs.p99}/${k.touchedMs.max}`,
      `${k.othersMs.p50}/${k.othersMs.p99}/${k.othersMs.max}`, `${k.convergeMs.p50}/${k.convergeMs.p99}/${k.convergeMs.max}`, String(k.notConverged)]);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
    const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(" | ")} |`;
    console.log("");
    console.log(line(head));
    console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
    for (const r of rows) console.log(line(r));
    console.log("");
    console.log(`probes: ${sent} sent (${achievedHz.toFixed(1)} Hz per address of ${args.hz} asked; ${skipped} skipped on a late timer), ${failed} failed; ` +
      `prober CPU ${(proberCpuS / probedS * 100).toFixed(0)}% of a core, timer lag p50/max ${lags[Math.floor(lags.length / 2)] ?? 0}/${lags.at(-1) ?? 0} ms`);
    console.log(`load average while probing: mean ${(s.loads.reduce((a, x) => a + x, 0) / Math.max(1, s.loads.length)).toFixed(1)}, max ${Math.max(0, ...s.loads).toFixed(1)}`);
    console.log(`outages outside any fault window: ${outside.length}${outside.length > 0 ? ` (longest ${Math.max(...outside.map((o) => o.to - o.from))} ms)` : ""}`);
    console.log(`duplicate rules: ${rules.duplicates.length} in ${rules.namespaces} namespaces; lb-pods without rules: ${rules.lbPodsWithoutRules.length}`);
    console.log(`orphaned objects: ${orphans.length}; lost addresses: ${lost.length}; final state: ${final.length === 0 ? "as expected" : `${final.length} problems`}`);
    console.log(`load average at the end: ${load.map((l) => l.toFixed(2)).join(" ")}`);
    const untouchedWorst = perFault.filter((r) => r.outage.othersMs > 0).map((r) => `${r.f.kind} at ${((r.f.start - t0) / 1000).toFixed(0)} s: ${r.outage.othersMs} ms on ${describe(r.outage.worstOther)}`);
    if (untouchedWorst.length > 0) console.log(`untouched outages: ${untouchedWorst.slice(0, 10).join("; ")}`);

    mkdirSync(fileURLToPath(new URL("./results/", import.meta.url)), { recursive: true });
    writeFileSync(RESULTS, `${JSON.stringify({
      date: new Date().toISOString(),
      machine: { nproc: cpus().length, cpu: cpus()[0]?.model, memoryMiB: Math.round(totalmem() / 2 ** 20), kernel: release(), node: process.version, loadavgAtEnd: load },
      args: { ...args, controllerReplicas: 2, path: args.capture ? "kube-proxy LoadBalancer IP capture" : "lb-pod (--no-lb-ip-capture)", probeTimeoutMs: PROBE_TIMEOUT_MS },
      setupSeconds: setupS,
      baseline: { from: baselineStart, to: baselineEnd },
      faultSeconds: Math.round((faultsEnd - baselineEnd) / 1000),
      summary: summaries,
      probes: {
        sent, failed, skipped, achievedHzPerAddress: Number(achievedHz.toFixed(2)), outageGapMs: Math.round(gapMs),
        proberCpuPercentOfCore: Math.round(proberCpuS / probedS * 100), timerLagMsP50: lags[Math.floor(lags.length / 2)] ?? 0, timerLagMsMax: lags.at(-1) ?? 0,
      },
      loadavgWhileProbing: s.loads,
      outagesOutsideFaults: outside.map((o) => ({ target: describe(o.target), atS: (o.from - t0) / 1000, ms: o.to - o.from })),
      rules,
      orphans,
      lostAddresses: lost.map((l) => ({ ...l, atS: (l.from - t0) / 1000, ms: l.to - l.from })),
      finalProblems: final,
      injectErrors,
      faults: perFault.map((r) => ({
        kind: r.f.kind, atS: (r.f.start - t0) / 1000, durationMs: r.f.end - r.f.start, detail: r.f.detail,
        convergeMs: r.convergeMs ?? null, touchedTargets: r.f.touched.length, touchedOutageMs: r.outage.touchedMs,
        othersOutageMs: r.outage.othersMs, ...(r.outage.worstOther !== undefined ? { worstOther: describe(r.outage.worstOther) } : {}),
        ...(r.f.notConverged ? { notConverged: r.f.notConverged } : {}),
        convergenceTrace: r.f.trace ?? [],
      })),
    }, null, 2)}\n`);
    console.log(`written ${RESULTS}`);
  } finally {
    await cleanup();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
