// End-to-end fixture: one whole sandbox cluster per test group, driven the way a user drives it. The sandbox is
// started and stopped with the real CLI (`bin/berth sandbox up/down --prefix P`), the cluster is read and changed with
// the real kubectl (`--kubeconfig` from `bin/berth sandbox kubeconfig`), and traffic is real: requests sent from the
// sandbox's client namespace (`<prefix>-client`, on the LAN and outside the cluster) to the nodes' LAN addresses.
//
// Waits poll until a condition holds or a deadline passes (no fixed sleeps), and fail with what was last seen.
// dumpOnFailure() prints `kubectl get` of the whole cluster and the tail of the sandbox's logs after a failed test.
// Every sandbox prefix is `e2e<tag><pid in base 36>`, so concurrent runs never share one, and leftovers of dead
// runs (same pattern, PID no longer alive) are taken down before a new one starts. Needs root.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Context } from "mocha";
import { podNamespaceName } from "../../src/sandbox/cluster/layout.js";
import { runChecked, systemRunner, type CommandRunner, type RunResult } from "../../src/lib/exec.js";
import { needsRoot, skipBecause } from "../support/skip.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
export const BERTH = join(REPO, "bin", "berth");
/** Where `sandbox up` keeps each sandbox's kubeconfig, state file and logs (contract: /run/berth-sandbox/<prefix>). */
export const STATE_ROOT = "/run/berth-sandbox";
/** Images the sandbox's kubelet stand-in knows (contract: src/sandbox/cluster supervisor's ImageCatalog). */
export const DEMO_IMAGE = "berth.dev/sandbox/demo-app:dev";
/** Namespace of the lb-pod DaemonSets (the controller's default). */
export const LB_NAMESPACE = "berth-system";
/** Namespace the e2e tests put their apps and Services in. */
export const APP_NAMESPACE = "e2e";
/** Port the demo app listens on inside its pods (TCP, and UDP when the app supports it). */
export const APP_PORT = 8080;
export const APP_UDP_PORT = 5353;

const PREFIX_PATTERN = /^e2e[a-z]([0-9a-z]+)$/;

export interface SandboxOptions {
  nodes: number;
  dualStack?: boolean;
  /** `--no-lb-ip-capture`: the kube-proxy stand-in leaves LoadBalancer IPs alone, so traffic goes through the lb-pods. */
  noLbIpCapture?: boolean;
  /** `--allowed-unsafe-sysctls`: what the kubelets admit besides the safe sysctls (default: nothing, as a stock kubelet). */
  allowedUnsafeSysctls?: string[];
  /** `--controller-replicas N`: N controllers electing a leader. */
  controllerReplicas?: number;
}

export interface NodeInfo {
  name: string;
  /** InternalIP addresses from the Node object, IPv4 first. */
  ipv4: string;
  ipv6?: string;
}

export interface Target {
  protocol: "http" | "udp";
  ip: string;
  port: number;
  /** Source address in the client namespace (default: the kernel's choice, i.e. the client's primary address). */
  sourceIp?: string;
  /** Give up after this long (default 3000 ms); no answer is a normal outcome for traffic that must be dropped. */
  timeoutMs?: number;
}

/** What the demo app answered (`pod X on node-N saw client A:P`), or why nothing came back. */
export type Outcome =
  | { answered: true; text: string; pod: string; node: string; clientIp: string }
  | { answered: false; reason: string };

/** The client script: every target at once, one JSON array of results on stdout. Runs in the client namespace. */
const PROBE_SCRIPT = `
const http = await import("node:http"); const dgram = await import("node:dgram");
const targets = JSON.parse(process.argv[1]);
const one = (t) => new Promise((resolve) => {
  let settled = false; let cleanup = () => {};
  const done = (r) => { if (settled) return; settled = true; clearTimeout(timer); cleanup(); resolve(r); };
  const timer = setTimeout(() => done({ answered: false, reason: "timeout" }), t.timeoutMs);
  if (t.protocol === "http") {
    const req = http.get({ host: t.ip, port: t.port, path: "/", agent: false, localAddress: t.sourceIp || undefined }, (res) => {
      let body = ""; res.setEncoding("utf8"); res.on("data", (c) => { body += c; });
      res.on("end", () => done({ answered: true, text: body })); res.on("error", () => done({ answered: false, reason: "reset" }));
    });
    req.on("error", (e) => done({ answered: false, reason: e.code === "ECONNREFUSED" ? "refused" : String(e.code) }));
    cleanup = () => req.destroy();
  } else {
    const socket = dgram.createSocket(t.ip.includes(":") ? "udp6" : "udp4");
    socket.on("message", (m) => done({ answered: true, text: m.toString() }));
    socket.on("error", (e) => done({ answered: false, reason: String(e.code) }));
    socket.bind({ address: t.sourceIp || undefined, port: 0 }, () => socket.send("hello\\n", t.port, t.ip));
    cleanup = () => { try { socket.close(); } catch {} };
  }
});
process.stdout.write(JSON.stringify(await Promise.all(targets.map(one))));
process.exit(0);
`;

const ANSWER = /^pod (\S+) on (\S+) saw client (\S+?):(\d+)\s*$/;

export function parseAnswer(text: string): Outcome {
  const match = ANSWER.exec(text.trim());
  if (!match) return { answered: false, reason: `unexpected answer ${JSON.stringify(text)}` };
  const clientIp = (match[3] ?? "").replace(/^\[|\]$/g, "").replace(/^::ffff:/, "");
  return { answered: true, text: text.trim(), pod: match[1] ?? "", node: match[2] ?? "", clientIp };
}

/** "pod web-x on node-1" / "<timeout>": for one-line assertion messages. */
export function show(outcome: Outcome): string {
  return outcome.answered ? `${outcome.pod} on ${outcome.node} (client ${outcome.clientIp})` : `<${outcome.reason}>`;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `e2e<tag><pid36>`: short (netns names are `<prefix>-pod-<8 hex>`, at most 30 characters) and unique per process. */
export function e2ePrefix(tag: string): string {
  if (!/^[a-z]$/.test(tag)) throw new Error(`tag must be one letter, got ${JSON.stringify(tag)}`);
  return `e2e${tag}${process.pid.toString(36)}`;
}

/**
 * Takes down sandboxes that dead e2e runs left behind (prefix pattern `e2e<letter><pid36>`, PID not alive), found
 * by their state directory or their namespaces. Sandboxes of live processes, and every other prefix, are left alone.
 */
export async function removeLeftoverSandboxes(runner: CommandRunner = systemRunner()): Promise<string[]> {
  const prefixes = new Set<string>();
  try {
    for (const entry of readdirSync(STATE_ROOT)) prefixes.add(entry);
  } catch {
    // No sandbox ever ran here.
  }
  const list = await runner.run("ip", ["netns", "list"]);
  for (const line of list.stdout.split("\n")) prefixes.add((line.split(" ")[0] ?? "").split("-")[0] ?? "");
  const dead = [...prefixes].filter((prefix) => {
    const match = PREFIX_PATTERN.exec(prefix);
    return match !== null && !processAlive(parseInt(match[1] ?? "", 36));
  });
  for (const prefix of dead) await runner.run(BERTH, ["sandbox", "down", "--prefix", prefix], { timeoutMs: 60_000 });
  return dead;
}

export class Sandbox {
  readonly runner: CommandRunner = systemRunner();
  readonly clientNs: string;
  readonly stateDir: string;
  nodes: NodeInfo[] = [];
  private wentDown = false;

  private constructor(
    readonly prefix: string,
    readonly options: SandboxOptions,
    readonly kubeconfig: string,
  ) {
    this.clientNs = `${prefix}-client`;
    this.stateDir = join(STATE_ROOT, prefix);
  }

  /** `bin/berth sandbox up --prefix P --nodes N ...`, then the kubeconfig, the app namespace and the node list. */
  static async up(prefix: string, options: SandboxOptions): Promise<Sandbox> {
    const runner = systemRunner();
    await removeLeftoverSandboxes(runner);
    const args = ["sandbox", "up", "--prefix", prefix, "--nodes", String(options.nodes)];
    if (options.dualStack) args.push("--dual-stack");
    if (options.noLbIpCapture) args.push("--no-lb-ip-capture");
    if (options.allowedUnsafeSysctls) args.push("--allowed-unsafe-sysctls", options.allowedUnsafeSysctls.join(","));
    if (options.controllerReplicas !== undefined) args.push("--controller-replicas", String(options.controllerReplicas));
    const up = await runner.run(BERTH, args, { timeoutMs: 120_000 });
    if (up.exitCode !== 0) {
      const down = await runner.run(BERTH, ["sandbox", "down", "--prefix", prefix], { timeoutMs: 60_000 });
      throw new Error(`\`berth ${args.join(" ")}\` failed (exit ${up.exitCode}):\n${up.stdout}${up.stderr}` +
        `\n(sandbox down afterwards: exit ${down.exitCode} ${down.stderr.trim()})`);
    }
    const printed = await runChecked(runner, BERTH, ["sandbox", "kubeconfig", "--prefix", prefix]);
    const kubeconfig = printed.stdout.trim().split("\n").pop()?.trim() ?? "";
    const sandbox = new Sandbox(prefix, options, kubeconfig);
    try {
      await sandbox.kubectl(["create", "namespace", APP_NAMESPACE]);
      sandbox.nodes = await sandbox.readNodes();
      if (sandbox.nodes.length !== options.nodes) {
        throw new Error(`sandbox ${prefix} has ${sandbox.nodes.length} Node objects, asked for ${options.nodes}`);
      }
    } catch (error) {
      await sandbox.down();
      throw error;
    }
    return sandbox;
  }

  /** Node names and InternalIPs as the Node objects say (the addresses berth must put in status). */
  async readNodes(): Promise<NodeInfo[]> {
    const list = await this.getJson(["get", "nodes"]);
    return (list.items as Obj[])
      .map((node) => {
        const internal = ((node.status?.addresses ?? []) as Obj[]).filter((a) => a.type === "InternalIP").map((a) => String(a.address));
        const info: NodeInfo = { name: String(node.metadata.name), ipv4: internal.find((ip) => !ip.includes(":")) ?? "" };
        const ipv6 = internal.find((ip) => ip.includes(":"));
        if (ipv6 !== undefined) info.ipv6 = ipv6;
        return info;
      })
      .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
  }

  node(name: string): NodeInfo {
    const found = this.nodes.find((n) => n.name === name);
    if (!found) throw new Error(`no node ${name} in sandbox ${this.prefix} (has ${this.nodes.map((n) => n.name).join(", ")})`);
    return found;
  }

  /** Runs kubectl against the sandbox; never throws (see kubectl() for the checked variant). */
  kubectlRaw(args: string[], input?: string): Promise<RunResult> {
    return this.runner.run("kubectl", ["--kubeconfig", this.kubeconfig, ...args], { ...(input !== undefined ? { input } : {}), timeoutMs: 30_000 });
  }

  /** Runs kubectl and returns its stdout; throws with kubectl's stderr on a non-zero exit. */
  async kubectl(args: string[], input?: string): Promise<string> {
    const result = await this.kubectlRaw(args, input);
    if (result.exitCode !== 0) throw new Error(`kubectl ${args.join(" ")} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
    return result.stdout;
  }

  async getJson(args: string[]): Promise<Obj> {
    return JSON.parse(await this.kubectl([...args, "-o", "json"])) as Obj;
  }

  /** The object, or undefined when it does not exist. */
  async find(kind: string, name: string, namespace?: string): Promise<Obj | undefined> {
    const result = await this.kubectlRaw(["get", kind, name, ...(namespace ? ["-n", namespace] : []), "-o", "json"]);
    if (result.exitCode !== 0) {
      if (/NotFound|not found/.test(result.stderr)) return undefined;
      throw new Error(`kubectl get ${kind} ${name} failed: ${result.stderr.trim()}`);
    }
    return JSON.parse(result.stdout) as Obj;
  }

  /** `kubectl create -f -` with the objects as JSON documents. */
  async create(...objects: Obj[]): Promise<void> {
    await this.kubectl(["create", "-f", "-"], objects.map((o) => JSON.stringify(o)).join("\n"));
  }

  /** `kubectl patch` (merge patch unless told otherwise). */
  async patch(kind: string, name: string, namespace: string | undefined, patch: unknown, type: "merge" | "json" | "strategic" = "merge"): Promise<void> {
    await this.kubectl(["patch", kind, name, ...(namespace ? ["-n", namespace] : []), "--type", type, "-p", JSON.stringify(patch)]);
  }

  /** status.loadBalancer.ingress IPs of a Service, in the order berth wrote them. */
  async ingress(name: string, namespace = APP_NAMESPACE): Promise<string[]> {
    const service = await this.find("service", name, namespace);
    return ((service?.status?.loadBalancer?.ingress ?? []) as Obj[]).map((entry) => String(entry.ip));
  }

  /** Waits until the Service's ingress is exactly `expected` (order included); returns the Service. */
  async waitForIngress(name: string, expected: string[], timeoutMs = 60_000, namespace = APP_NAMESPACE): Promise<void> {
    await this.waitFor(`Service ${namespace}/${name} ingress = [${expected.join(", ")}]`, async () => {
      const actual = await this.ingress(name, namespace);
      return JSON.stringify(actual) === JSON.stringify(expected) ? undefined : `ingress is [${actual.join(", ")}]`;
    }, timeoutMs);
  }

  /**
   * Polls `check` (every second: each kubectl run costs ~0.1 s of CPU, and the sandbox's own probes need the 2 cores)
   * until it returns undefined (the condition holds) or the deadline passes; `check` returns what is
   * wrong right now, which becomes the failure message. Errors thrown by `check` count as "not yet".
   */
  async waitFor(description: string, check: () => Promise<string | undefined>, timeoutMs = 30_000, intervalMs = 1000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: string;
    for (;;) {
      try {
        const wrong = await check();
        if (wrong === undefined) return;
        last = wrong;
      } catch (error) {
        last = `check threw: ${error instanceof Error ? error.message : String(error)}`;
      }
      if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${description}; last seen: ${last}`);
      await sleep(intervalMs);
    }
  }

  /** Sends every target from the client namespace at once (one process) and returns the outcomes in order. */
  async probe(targets: Target[]): Promise<Outcome[]> {
    const wire = targets.map((t) => ({ ...t, timeoutMs: t.timeoutMs ?? 3000 }));
    const longest = Math.max(0, ...wire.map((t) => t.timeoutMs));
    const result = await this.runner.run(process.execPath, ["--input-type=module", "-e", PROBE_SCRIPT, JSON.stringify(wire)], {
      netns: this.clientNs,
      timeoutMs: longest + 10_000,
    });
    if (result.exitCode !== 0) throw new Error(`client in ${this.clientNs} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
    const raw = JSON.parse(result.stdout) as ({ answered: true; text: string } | { answered: false; reason: string })[];
    return raw.map((r) => (r.answered ? parseAnswer(r.text) : r));
  }

  async request(target: Target): Promise<Outcome> {
    const [outcome] = await this.probe([target]);
    if (!outcome) throw new Error("probe returned nothing");
    return outcome;
  }

  /**
   * Waits until every target answers (`expect` may check more, returning what is wrong), e.g. after a change that
   * takes a moment to reach the data plane. Returns the last outcomes.
   */
  async waitForAnswers(description: string, targets: Target[], expect?: (outcomes: Outcome[]) => string | undefined, timeoutMs = 30_000): Promise<Outcome[]> {
    let outcomes: Outcome[] = [];
    await this.waitFor(description, async () => {
      outcomes = await this.probe(targets.map((t) => ({ timeoutMs: 1500, ...t })));
      const missing = outcomes.map((o, i) => (o.answered ? undefined : `${targets[i]?.ip}:${targets[i]?.port}/${targets[i]?.protocol} ${show(o)}`)).filter((x) => x);
      if (missing.length > 0) return `no answer from ${missing.join(", ")}`;
      return expect?.(outcomes);
    }, timeoutMs);
    return outcomes;
  }

  /** Waits until no target answers (each must time out or be refused). */
  async waitForSilence(description: string, targets: Target[], timeoutMs = 30_000): Promise<void> {
    await this.waitFor(description, async () => {
      const outcomes = await this.probe(targets.map((t) => ({ timeoutMs: 1000, ...t })));
      const answered = outcomes.map((o, i) => (o.answered ? `${targets[i]?.ip}:${targets[i]?.port}/${targets[i]?.protocol} ${show(o)}` : undefined)).filter((x) => x);
      return answered.length > 0 ? `still answered: ${answered.join(", ")}` : undefined;
    }, timeoutMs);
  }

  /** The client's first global address of a family and the interface that carries it. */
  async clientAddress(family: 4 | 6): Promise<{ ip: string; dev: string }> {
    const result = await runChecked(this.runner, "ip", [`-${family}`, "-o", "addr", "show", "scope", "global"], { netns: this.clientNs });
    const match = /^\d+:\s+(\S+)\s+inet6?\s+([^/\s]+)/m.exec(result.stdout);
    if (!match) throw new Error(`client namespace ${this.clientNs} has no global IPv${family} address: ${result.stdout}`);
    return { dev: match[1] ?? "", ip: match[2] ?? "" };
  }

  /** Adds a second address to the client's LAN interface (e.g. a source outside loadBalancerSourceRanges). */
  async addClientAddress(cidr: string): Promise<void> {
    const { dev } = await this.clientAddress(cidr.includes(":") ? 6 : 4);
    await runChecked(this.runner, "ip", ["addr", "replace", cidr, "dev", dev, ...(cidr.includes(":") ? ["nodad"] : [])], { netns: this.clientNs });
  }

  async removeClientAddress(cidr: string): Promise<void> {
    const { dev } = await this.clientAddress(cidr.includes(":") ? 6 : 4);
    await this.runner.run("ip", ["addr", "del", cidr, "dev", dev], { netns: this.clientNs });
  }

  /** Waits until exactly `count` pods match the selector and all are Ready; returns them. */
  async waitForReadyPods(selector: string, count: number, namespace = APP_NAMESPACE, timeoutMs = 45_000): Promise<Obj[]> {
    let pods: Obj[] = [];
    await this.waitFor(`${count} Ready pods ${selector} in ${namespace}`, async () => {
      pods = ((await this.getJson(["get", "pods", "-n", namespace, "-l", selector])).items as Obj[]);
      const ready = pods.filter((pod) => !pod.metadata?.deletionTimestamp && isReady(pod));
      if (pods.length === count && ready.length === count) return undefined;
      return `${pods.length} pods, ${ready.length} Ready: ${pods.map((p) => `${p.metadata?.name}@${p.spec?.nodeName ?? "-"} ${p.status?.phase ?? "?"}`).join(", ")}`;
    }, timeoutMs);
    return pods;
  }

  /** The lb-pod DaemonSet of a Service (berth-system, found by berth's labels), if any. */
  async lbDaemonSets(service: string, namespace = APP_NAMESPACE): Promise<Obj[]> {
    const list = await this.getJson(["get", "daemonsets", "-n", LB_NAMESPACE, "-l", `berth.dev/service-name=${service},berth.dev/service-namespace=${namespace}`]);
    return list.items as Obj[];
  }

  /** Events about one object, oldest first. */
  async events(name: string, namespace = APP_NAMESPACE): Promise<Obj[]> {
    const list = await this.getJson(["get", "events", "-n", namespace, "--field-selector", `involvedObject.name=${name}`]);
    return list.items as Obj[];
  }

  /** `conntrack -L` (both families) inside one of this sandbox's namespaces. */
  async conntrack(ns: string): Promise<string> {
    await this.pidsIn(ns);
    const v4 = await this.runner.run("conntrack", ["-L", "-f", "ipv4"], { netns: ns });
    const v6 = await this.runner.run("conntrack", ["-L", "-f", "ipv6"], { netns: ns });
    return `${v4.stdout}${v6.stdout}`;
  }

  /** Every netfilter rule in one of this sandbox's namespaces (nft's view, which includes iptables-nft), counters removed. */
  async rulesIn(ns: string): Promise<string> {
    await this.pidsIn(ns);
    const result = await runChecked(this.runner, "nft", ["list", "ruleset"], { netns: ns });
    const legacy4 = await this.runner.run("iptables-legacy-save", [], { netns: ns });
    const legacy6 = await this.runner.run("ip6tables-legacy-save", [], { netns: ns });
    return [result.stdout, legacy4.stdout, legacy6.stdout]
      .join("\n")
      .split("\n")
      .filter((line) => !line.startsWith("#"))
      .map((line) => line.replace(/\[\d+:\d+\]/g, "").replace(/counter packets \d+ bytes \d+/g, "counter"))
      .join("\n");
  }

  /** The state file `sandbox up` wrote (supervisor pid, API server url, layout, options). */
  state(): Obj {
    return JSON.parse(readFileSync(join(this.stateDir, "state.json"), "utf8")) as Obj;
  }

  /** PID of the supervisor process (state.json). */
  supervisorPid(): number {
    const pid = Number(this.state().pid);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no supervisor pid in ${this.stateDir}/state.json`);
    return pid;
  }

  /** PID of the real `berth controller` the supervisor runs: its descendant whose command line is the controller's. */
  controllerPid(): number | undefined {
    return descendants(this.supervisorPid()).find((pid) => {
      const args = commandLine(pid);
      return args.includes("controller") && args.includes("--kubeconfig");
    });
  }

  /** Network namespace of a pod (contract: `<prefix>-pod-<first 8 characters of the pod UID>`). */
  podNamespace(pod: Obj): string {
    return podNamespaceName(this.prefix, String(pod.metadata?.uid ?? ""));
  }

  /** PIDs of the processes in one of this sandbox's network namespaces ([] once the namespace is gone). */
  async pidsIn(ns: string): Promise<number[]> {
    if (!ns.startsWith(`${this.prefix}-`)) throw new Error(`${ns} is not a namespace of sandbox ${this.prefix}`);
    const result = await this.runner.run("ip", ["netns", "pids", ns]);
    if (result.exitCode !== 0 && /No such file/.test(result.stderr)) return [];
    if (result.exitCode !== 0) throw new Error(`ip netns pids ${ns} failed: ${result.stderr.trim()}`);
    return result.stdout.split("\n").map((line) => line.trim()).filter((line) => /^\d+$/.test(line)).map(Number);
  }

  /** The namespaces of this sandbox that exist now. */
  async namespaces(): Promise<string[]> {
    const list = await runChecked(this.runner, "ip", ["netns", "list"]);
    return list.stdout.split("\n").map((line) => line.split(" ")[0] ?? "").filter((name) => name.startsWith(`${this.prefix}-`));
  }

  /** The lb-pods of a Service (pods of its DaemonSet in berth-system, found by berth's labels). */
  async lbPods(service: string, namespace = APP_NAMESPACE): Promise<Obj[]> {
    const list = await this.getJson(["get", "pods", "-n", LB_NAMESPACE, "-l", `berth.dev/service-name=${service},berth.dev/service-namespace=${namespace}`]);
    return list.items as Obj[];
  }

  /** `kubectl get` of everything that matters and the tail of every sandbox log: what a failed test prints. */
  async dump(): Promise<string> {
    const parts: string[] = [`===== sandbox ${this.prefix} =====`];
    for (const args of [
      ["get", "nodes", "-o", "wide", "--show-labels"],
      ["get", "svc,ds,pods", "-A", "-o", "wide"],
      ["get", "endpointslices", "-A"],
      ["get", "events", "-A", "--sort-by=.metadata.creationTimestamp"],
      ["get", "svc", "-n", APP_NAMESPACE, "-o", "jsonpath={range .items[*]}{.metadata.name}{\" \"}{.status}{\"\\n\"}{end}"],
    ]) {
      const result = await this.kubectlRaw(args);
      parts.push(`$ kubectl ${args.join(" ")}\n${result.stdout}${result.stderr}`);
    }
    parts.push(...logTails(this.stateDir, 25));
    return parts.join("\n");
  }

  /** `bin/berth sandbox down --prefix P`; throws when it fails. Safe to call twice. */
  async down(): Promise<RunResult> {
    this.wentDown = true;
    const result = await this.runner.run(BERTH, ["sandbox", "down", "--prefix", this.prefix], { timeoutMs: 90_000 });
    if (result.exitCode !== 0) throw new Error(`sandbox down --prefix ${this.prefix} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
    return result;
  }

  get isDown(): boolean {
    return this.wentDown;
  }
}

/** Last `lines` lines of every *.log under dir (recursively), newest files first, for failure reports. */
export function logTails(dir: string, lines: number): string[] {
  const files: { path: string; mtime: number }[] = [];
  const walk = (path: string, depth: number): void => {
    let entries: string[];
    try {
      entries = readdirSync(path);
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = join(path, entry);
      try {
        const stat = statSync(full);
        if (stat.isDirectory() && depth < 3) walk(full, depth + 1);
        else if (stat.isFile() && entry.endsWith(".log")) files.push({ path: full, mtime: stat.mtimeMs });
      } catch {
        // Removed meanwhile.
      }
    }
  };
  walk(dir, 0);
  return files
    .sort((a, b) => b.mtime - a.mtime)
    .slice(0, 12)
    .map((file) => {
      // Lines cut at 300 characters: a probe's full command line says nothing its first part does not.
      const text = readFileSync(file.path, "utf8").split("\n").map((line) => (line.length > 300 ? `${line.slice(0, 300)}...` : line));
      return `----- ${file.path} (last ${lines} lines) -----\n${text.slice(-lines - 1).join("\n")}`;
    });
}

/** Every process below `pid` (children, grandchildren, ...), from /proc/<pid>/task/<tid>/children. */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift() as number;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      let children: string;
      try {
        children = readFileSync(`/proc/${parent}/task/${task}/children`, "utf8");
      } catch {
        continue;
      }
      for (const child of children.split(" ").filter((c) => /^\d+$/.test(c)).map(Number)) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/** A process's arguments, or [] when it is gone. */
export function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((arg) => arg !== "");
  } catch {
    return [];
  }
}

export { processAlive, sleep };

export function isReady(pod: Obj): boolean {
  return ((pod.status?.conditions ?? []) as Obj[]).some((c) => c.type === "Ready" && c.status === "True");
}

/**
 * The hooks every e2e suite needs around its sandbox: after each failed test, print the cluster's state and logs;
 * after the suite, take the sandbox down. `current` reads the suite's sandbox (set in its before()).
 */
export function sandboxHooks(current: () => Sandbox | undefined): void {
  afterEach(async function () {
    await dumpOnFailure(this, current());
  });
  after(async function () {
    this.timeout(120_000);
    await current()?.down();
  });
}

/**
 * A suite's own sandbox: brought up in `before` (skipped with the reason when not root), set up with `steps` (the
 * cluster's state printed if they fail), dumped after a failed test and taken down after the suite. Returns a getter
 * that throws until the sandbox is up.
 */
export function suiteSandbox(tag: string, options: SandboxOptions, steps: (sandbox: Sandbox) => Promise<void> = async () => {}): () => Sandbox {
  let sandbox: Sandbox | undefined;
  before(async function () {
    const reason = needsRoot();
    if (reason) skipBecause(this, reason);
    this.timeout(180_000);
    sandbox = await Sandbox.up(e2ePrefix(tag), options);
    await setUpOrDump(sandbox, steps);
  });
  sandboxHooks(() => sandbox);
  return () => {
    if (!sandbox) throw new Error("sandbox not up");
    return sandbox;
  };
}

/** Runs a suite's setup steps on its sandbox; if one fails, prints the cluster's state first (mocha shows only the error). */
export async function setUpOrDump(sandbox: Sandbox, steps: (sandbox: Sandbox) => Promise<void>): Promise<void> {
  try {
    await steps(sandbox);
  } catch (error) {
    console.log(await sandbox.dump());
    throw error;
  }
}

/** afterEach hook body: prints the sandbox dump when the test just failed. */
export async function dumpOnFailure(ctx: Context, sandbox: Sandbox | undefined): Promise<void> {
  if (ctx.currentTest?.state !== "failed" || sandbox === undefined || sandbox.isDown) return;
  console.log(await sandbox.dump());
}

// ---- Objects the tests create ----

/** Environment every demo-app container gets: its pod and node name, which the app puts in its answer. */
function demoEnv(): Obj[] {
  return [
    { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
  ];
}

export interface AppOptions {
  /** Also answer UDP on APP_UDP_PORT (needs a demo app with `--udp-port`). */
  udp?: boolean;
}

function demoContainer(options: AppOptions): Obj {
  const ports: Obj[] = [{ name: "http", containerPort: APP_PORT, protocol: "TCP" }];
  if (options.udp) ports.push({ name: "udp", containerPort: APP_UDP_PORT, protocol: "UDP" });
  return {
    name: "app",
    image: DEMO_IMAGE,
    args: ["--port", String(APP_PORT), ...(options.udp ? ["--udp-port", String(APP_UDP_PORT)] : [])],
    env: demoEnv(),
    ports,
    // Ready means it answers HTTP. An httpGet probe, not the app's exec probe (`demo-app --check`, a whole berth CLI
    // start per probe): the sandbox probes every second and the machine has 2 cores.
    readinessProbe: { httpGet: { path: "/", port: APP_PORT }, periodSeconds: 2, timeoutSeconds: 5 },
  };
}

/** A DaemonSet of the demo app (one pod per node), pods labelled app=<app>. */
export function appDaemonSet(app: string, options: AppOptions = {}): Obj {
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: app, namespace: APP_NAMESPACE },
    spec: {
      selector: { matchLabels: { app } },
      template: { metadata: { labels: { app } }, spec: { containers: [demoContainer(options)] } },
    },
  };
}

/** A bare demo-app pod bound to one node (the kubelet stand-in runs Pods that set spec.nodeName). */
export function appPod(name: string, app: string, nodeName: string, options: AppOptions = {}): Obj {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: APP_NAMESPACE, labels: { app } },
    spec: { nodeName, containers: [demoContainer(options)] },
  };
}

export interface PortSpec {
  port: number;
  protocol?: "TCP" | "UDP";
  targetPort?: number | string;
  name?: string;
}

/** A LoadBalancer Service selecting app=<app>. */
export function lbService(name: string, app: string, ports: PortSpec[], spec: Obj = {}, metadata: Obj = {}): Obj {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: APP_NAMESPACE, ...metadata },
    spec: {
      type: "LoadBalancer",
      selector: { app },
      ports: ports.map((p) => ({
        name: p.name ?? `${(p.protocol ?? "TCP").toLowerCase()}-${p.port}`,
        port: p.port,
        protocol: p.protocol ?? "TCP",
        targetPort: p.targetPort ?? (p.protocol === "UDP" ? APP_UDP_PORT : APP_PORT),
      })),
      ...spec,
    },
  };
}

/** Whether the built demo app answers UDP (`berth sandbox demo-app --help` lists --udp-port). */
export async function demoAppHasUdp(runner: CommandRunner = systemRunner()): Promise<boolean> {
  const help = await runner.run(BERTH, ["sandbox", "demo-app", "--help"], { timeoutMs: 20_000 });
  return help.exitCode === 0 && help.stdout.includes("--udp-port");
}

/** Normalised host netfilter state (iptables, ip6tables, nft) without counters and comments: to compare before/after. */
export async function hostRules(runner: CommandRunner = systemRunner()): Promise<string> {
  const parts: string[] = [];
  for (const [file, args] of [["iptables-save", []], ["ip6tables-save", []], ["nft", ["list", "ruleset"]]] as const) {
    const result = await runner.run(file, args);
    parts.push(`# ${file}\n` + result.stdout
      .split("\n")
      .filter((line) => !line.startsWith("#"))
      .map((line) => line.replace(/\[\d+:\d+\]/g, "").replace(/counter packets \d+ bytes \d+/g, "counter"))
      .join("\n"));
  }
  return parts.join("\n");
}

/** Names of the host's own network links. */
export async function hostLinks(runner: CommandRunner = systemRunner()): Promise<string[]> {
  const result = await runChecked(runner, "ip", ["-o", "link", "show"]);
  return result.stdout.split("\n").map((line) => /^\d+:\s+([^:@]+)/.exec(line)?.[1] ?? "").filter((name) => name !== "").sort();
}
