// A LAN of speaker "nodes" in network namespaces, for the speaker's data-plane tests and bench/failover.ts:
//
//   client (10.77.0.100, fd77::100)          n1 (10.77.0.11)   n2 (10.77.0.12)   n3 (10.77.0.13)
//        eth0 ---------------------------+------ eth0 ------------ eth0 ------------ eth0
//                                  [ lan namespace: bridge br0 ]
//
// Each node runs the real Speaker (membership over UDP, election, Announcer with `ip`, arping and na6) as its own
// process in its namespace, and a UDP/TCP server on port 7070 that answers with the node's name: the stand-in for
// kube-proxy delivering VIP traffic to a Service on whichever node holds the address. Only the cluster view (which
// nodes, pools and addresses exist) is fixed instead of coming from informers: this file's `--run-speaker` entry
// builds the Speaker from a JSON world exactly as `berth speaker` builds it from the API (src/speaker/command.ts).
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { runChecked, systemRunner } from "../../src/lib/exec.js";
import { NetnsLab, startNetnsScript } from "../support/netns.js";
import { Announcer, DEFAULT_ANNOUNCER_CONFIG, type AnnouncerConfig } from "../../src/speaker/announcer.js";
import { DEFAULT_SPEAKER_TIMINGS, Speaker, type SpeakerWorld } from "../../src/speaker/speaker.js";
import { outages as outageRuns } from "../support/outages.js";

export const VIP4 = "10.77.0.200";
export const VIP6 = "fd77::200";
export const SERVICE_PORT = 7070;

/** The JSON a speaker process gets: its node name and the fixed world. */
interface SpeakerProcessConfig {
  self: string;
  nodes: SpeakerWorld["nodes"];
  pools: Record<string, { interfaces?: string[] }>;
  vips: { ip: string; pool: string }[];
  timings?: Partial<typeof DEFAULT_SPEAKER_TIMINGS>;
  announcer?: Partial<AnnouncerConfig>;
}

export interface LabNode {
  name: string;
  ns: string;
  ip4: string;
  ip6: string;
  speaker?: ChildProcess;
  log: string[];
}

export class SpeakerLab {
  readonly nodes: LabNode[] = [];
  client = "";
  lanNs = "";
  private constructor(readonly lab: NetnsLab, readonly vips: string[], private readonly announcer: Partial<AnnouncerConfig>) {}

  static async create(prefix: string, count: number, options: { vips?: string[]; announcer?: Partial<AnnouncerConfig> } = {}): Promise<SpeakerLab> {
    const netns = await NetnsLab.create(prefix);
    const lab = new SpeakerLab(netns, options.vips ?? [VIP4], options.announcer ?? {});
    try {
      await lab.build(count);
    } catch (err) {
      await netns.destroy();
      throw err;
    }
    return lab;
  }

  private async build(count: number): Promise<void> {
    const names = Array.from({ length: count }, (_, i) => `n${i + 1}`);
    const [lan, client, ...nodeNs] = await this.lab.addNamespaces("lan", "client", ...names);
    this.lanNs = lan!;
    this.client = client!;
    await runChecked(this.lab.runner, "ip", ["-n", lan!, "-batch", "-"], { input: "link add br0 type bridge\nlink set br0 up\n" });
    const attach = async (ns: string, port: string, addresses: string[]): Promise<void> => {
      await this.lab.link({ ns, ifname: "eth0", addresses }, { ns: lan!, ifname: port });
      await runChecked(this.lab.runner, "ip", ["-n", lan!, "link", "set", port, "master", "br0"]);
    };
    await attach(client!, "client", ["10.77.0.100/24", "fd77::100/64"]);
    for (const [i, name] of names.entries()) {
      const ns = nodeNs[i]!;
      const node: LabNode = { name, ns, ip4: `10.77.0.${11 + i}`, ip6: `fd77::${11 + i}`, log: [] };
      await attach(ns, name, [`${node.ip4}/24`, `${node.ip6}/64`]);
      await this.startServer(ns, name);
      this.nodes.push(node);
    }
  }

  /** Another namespace on the LAN (e.g. an API server's), with its addresses; returns its full name. */
  async addHost(short: string, addresses: string[]): Promise<string> {
    const [ns] = await this.lab.addNamespaces(short);
    await this.lab.link({ ns: ns!, ifname: "eth0", addresses }, { ns: this.lanNs, ifname: short });
    await runChecked(this.lab.runner, "ip", ["-n", this.lanNs, "link", "set", short, "master", "br0"]);
    return ns!;
  }

  /** The node's service: "<node> from <client>" to the lab's one-shot client, "<seq> <node>" to the prober. */
  private async startServer(ns: string, name: string): Promise<void> {
    const r = await this.lab.exec(ns, "sh", ["-c", `${JSON.stringify(process.execPath)} --input-type=module -e '${SERVER_SCRIPT}' ${name} ${SERVICE_PORT} >/dev/null 2>&1 & echo started`]);
    if (!r.stdout.includes("started")) throw new Error(`server in ${ns} did not start: ${r.stderr}`);
    // It binds within a few ms; the first request of a test comes after the speakers joined, seconds later.
  }

  node(name: string): LabNode {
    const node = this.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`no node ${name}`);
    return node;
  }

  /** Starts a node's speaker and resolves once it has joined (its first election ran). */
  async startSpeaker(name: string, timings: Partial<typeof DEFAULT_SPEAKER_TIMINGS> = {}): Promise<void> {
    const node = this.node(name);
    const config: SpeakerProcessConfig = {
      self: name,
      nodes: this.nodes.map((n) => ({ name: n.name, labels: {}, ready: true, addresses: [n.ip4] })),
      pools: { lan: {} },
      vips: this.vips.map((ip) => ({ ip, pool: "lan" })),
      timings,
      announcer: this.announcer,
    };
    const child = spawn("ip", ["netns", "exec", node.ns, process.execPath, "--import", "tsx", fileURLToPath(import.meta.url), "--run-speaker", JSON.stringify(config)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    node.speaker = child;
    child.stderr!.on("data", (chunk: Buffer) => node.log.push(...chunk.toString().trim().split("\n")));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`speaker ${name} did not join in 15 s:\n${node.log.join("\n")}`)), 15_000);
      createInterface({ input: child.stdout! }).on("line", (line) => {
        if (line === "joined") {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`speaker ${name} exited (${code}) before joining:\n${node.log.join("\n")}`));
      });
    });
  }

  /** SIGKILL: no goodbye, no withdrawal. */
  async killSpeaker(name: string): Promise<void> {
    await this.signal(name, "SIGKILL");
  }

  /** SIGTERM: the graceful path (goodbye, handover, withdraw); resolves when the process has exited. */
  async stopSpeaker(name: string): Promise<number | null> {
    return this.signal(name, "SIGTERM");
  }

  private async signal(name: string, signal: NodeJS.Signals): Promise<number | null> {
    const child = this.node(name).speaker;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill(signal);
    const code = await exited;
    this.node(name).speaker = undefined;
    return code;
  }

  /** Takes a node's LAN link down (its side of the bridge port): the node is gone for everyone else. */
  async linkDown(name: string): Promise<void> {
    await runChecked(this.lab.runner, "ip", ["-n", this.lanNs, "link", "set", name, "down"]);
  }

  async linkUp(name: string): Promise<void> {
    await runChecked(this.lab.runner, "ip", ["-n", this.lanNs, "link", "set", name, "up"]);
  }

  /** Cuts the LAN in two: nodes in `side` (and nothing else) can talk among themselves only. Heal with heal(). */
  async partition(side: string[]): Promise<void> {
    // Bridge port isolation: isolated ports reach only non-isolated ones. Isolate `side` from the rest by putting
    // each group in its own bridge VLAN would be more general; two groups are all the tests need.
    const lines = this.nodes.filter((n) => side.includes(n.name)).map((n) => `link set ${n.name} nomaster\n`);
    await runChecked(this.lab.runner, "ip", ["-n", this.lanNs, "-batch", "-"], {
      input: "link add br1 type bridge\nlink set br1 up\n" + lines.join("") + side.map((s) => `link set ${s} master br1\n`).join(""),
    });
  }

  async heal(): Promise<void> {
    const lines = this.nodes.map((n) => `link set ${n.name} master br0\n`).join("");
    await runChecked(this.lab.runner, "ip", ["-n", this.lanNs, "-batch", "-"], { input: lines + "link del br1\n" });
  }

  /** Which nodes have an address on their eth0 right now. */
  async holders(ip: string): Promise<string[]> {
    const out: string[] = [];
    for (const n of this.nodes) {
      const r = await this.lab.exec(n.ns, "ip", ["-o", "address", "show", "dev", "eth0", "to", ip]);
      if (r.stdout.includes(ip)) out.push(n.name);
    }
    return out;
  }

  async macOf(name: string): Promise<string> {
    const r = await runChecked(this.lab.runner, "ip", ["-n", this.node(name).ns, "-j", "link", "show", "eth0"]);
    return (JSON.parse(r.stdout) as { address: string }[])[0]!.address;
  }

  /** The link-layer address the client's neighbour table holds for an address, if any. */
  async clientNeighbour(ip: string): Promise<string | undefined> {
    const r = await runChecked(this.lab.runner, "ip", ["-n", this.client, "-j", "neigh", "show", ip]);
    return (JSON.parse(r.stdout || "[]") as { lladdr?: string }[])[0]?.lladdr;
  }

  /** One UDP request from the client; the answering node's name or "<timeout>". */
  async ask(ip: string, timeoutMs = 500): Promise<string> {
    return this.lab.ask(this.client, { protocol: "udp", ip, port: SERVICE_PORT, timeoutMs });
  }

  /** Asks until `want(answer)` or the deadline; returns the last answer and when it came (ms since the call). */
  async waitFor(ip: string, want: (answer: string) => boolean, deadlineMs: number): Promise<{ answer: string; afterMs: number }> {
    const start = Date.now();
    let answer = "";
    while (Date.now() - start < deadlineMs) {
      answer = await this.ask(ip, 300);
      if (want(answer)) return { answer, afterMs: Date.now() - start };
    }
    return { answer, afterMs: Date.now() - start };
  }

  /**
   * Starts one long-lived UDP prober in the client namespace: a datagram to ip:7070 every 1000/hz ms, each answer
   * recorded with the node that gave it. stop() returns every probe (a probe unanswered after 1 s counts as lost).
   */
  async startProber(ip: string, hz: number): Promise<{ stop(): Promise<Probe[]> }> {
    const prober = await startNetnsScript<{ probes: Probe[] }>(this.client, PROBER_SCRIPT, [ip, String(SERVICE_PORT), String(hz)]);
    return { stop: async () => (await prober.stop()).probes };
  }

  logs(): string {
    return this.nodes.map((n) => `--- ${n.name}\n${n.log.slice(-40).join("\n")}`).join("\n");
  }

  async destroy(): Promise<void> {
    for (const n of this.nodes) n.speaker?.kill("SIGKILL");
    await this.lab.destroy();
  }
}

/** One probe: when it was sent (ms since the epoch), and who answered (undefined: nobody within 1 s). */
export interface Probe {
  at: number;
  by?: string;
}

/** A node's service (UDP, both families): answers the prober's "<seq>" with "<seq> <node>", anything else with "<node> from <addr>". */
const SERVER_SCRIPT = `
const dgram = await import("node:dgram");
const [name, port] = process.argv.slice(1);
const socket = dgram.createSocket("udp6");
socket.on("message", (msg, r) => {
  const text = msg.toString().trim();
  const reply = /^[0-9]+$/.test(text) ? text + " " + name : name + " from " + r.address.replace(/^::ffff:/, "");
  socket.send(reply + "\\n", r.port, r.address);
});
socket.bind(Number(port), "::");
`.replaceAll("'", "");

/** Runs in the client namespace; stdin closing ends it (after a last second for late answers). */
const PROBER_SCRIPT = `
const dgram = await import("node:dgram");
const [ip, port, hz] = process.argv.slice(1);
const socket = dgram.createSocket(ip.includes(":") ? "udp6" : "udp4");
const probes = [];
socket.on("message", (msg) => {
  const [seq, by] = msg.toString().trim().split(" ");
  const p = probes[Number(seq)];
  if (p && p.by === undefined && Date.now() - p.at <= 1000) p.by = by;
});
socket.on("error", () => {});
socket.bind(0, () => {
  process.stdout.write("ready\\n");
  const period = 1000 / Number(hz);
  const start = Date.now();
  const tick = () => {
    const seq = probes.length;
    probes.push({ at: Date.now() });
    socket.send(String(seq) + "\\n", Number(port), ip, () => {});
    timer = setTimeout(tick, Math.max(0, start + (seq + 1) * period - Date.now()));
  };
  let timer = setTimeout(tick, 0);
  process.stdin.resume();
  process.stdin.on("end", () => { clearTimeout(timer); setTimeout(() => { process.stdout.write(JSON.stringify({ probes }) + "\\n"); process.exit(0); }, 1000); });
});
`;

/**
 * The outages in a probe series: runs of unanswered probes, each from its first lost probe to the first answered one
 * after it (so a single lost probe at 50 Hz is a 20 ms outage). A run still open at the end runs to the last probe.
 */
export function outages(probes: readonly Probe[]): { from: number; ms: number }[] {
  return outageRuns(probes, (p) => p.by !== undefined);
}

/** The speaker process: a Speaker over the fixed world, logging JSON lines on stderr, graceful on SIGTERM. */
async function runSpeaker(config: SpeakerProcessConfig): Promise<void> {
  const log = (level: string, message: string, fields?: Record<string, unknown>): void => {
    process.stderr.write(`${JSON.stringify({ t: Date.now(), level, message, ...fields })}\n`);
  };
  const world: SpeakerWorld = {
    nodes: config.nodes,
    pools: new Map(Object.entries(config.pools)),
    vips: config.vips.map((v) => ({ ip: v.ip, pool: v.pool, services: [{ key: "default/web", externalTrafficPolicy: "Cluster", endpointNodes: new Set() }] })),
  };
  const announcer = new Announcer({ runner: systemRunner(), config: { ...DEFAULT_ANNOUNCER_CONFIG, ...config.announcer }, log });
  const speaker = new Speaker({
    config: { self: config.self, ...DEFAULT_SPEAKER_TIMINGS, ...config.timings },
    world: () => world,
    announcer,
    log,
  });
  process.once("SIGTERM", () => {
    void speaker.shutdown().then(() => process.exit(0));
  });
  await speaker.start();
  process.stdout.write("joined\n");
}

if (process.argv[2] === "--run-speaker") {
  runSpeaker(JSON.parse(process.argv[3] ?? "{}") as SpeakerProcessConfig).catch((err: unknown) => {
    process.stderr.write(`speaker failed: ${String(err)}\n`);
    process.exit(1);
  });
}
