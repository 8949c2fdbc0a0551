// A small network-namespace lab for data-plane and end-to-end tests: namespaces joined by veth pairs, IPv4 and IPv6
// addresses, sysctls, and a TCP/UDP server and client that run inside a namespace. Everything a lab creates carries
// its prefix, and destroy() removes it all (processes first, so no namespace lingers). Needs root.
//
// Typical use:
//   const lab = await NetnsLab.create("bt-dp");            // also removes leftovers of dead runs under "bt-dp-"
//   const [client, pod] = await lab.addNamespaces("c", "p");
//   await lab.link({ ns: client, ifname: "eth0", addresses: ["10.0.0.2/24"] },
//                  { ns: pod, ifname: "eth0", addresses: ["10.0.0.1/24"] });
//   const server = await lab.startServer(pod, { reply: "pod", listen: [{ protocol: "tcp", ip: "10.0.0.1", port: 80 }] });
//   assert.equal(await lab.ask(client, { protocol: "tcp", ip: "10.0.0.1", port: 80 }), "pod");
//   await lab.destroy();                                    // in after/afterEach
//
// Servers and clients are short Node.js scripts run with `ip netns exec` (a UDP client has to stop on the first
// reply, which socat cannot do without waiting out its timeout).
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { runChecked, systemRunner, type CommandRunner, type RunOptions, type RunResult } from "../../src/lib/exec.js";

export type Protocol = "tcp" | "udp";

export interface Endpoint {
  /** Full namespace name. */
  ns: string;
  /** Interface name inside that namespace (namespaces are separate, so the same name can repeat across them). */
  ifname: string;
  /** Addresses with prefix length, either family, e.g. "10.0.0.1/24", "fd00::1/64". */
  addresses?: string[];
}

export interface Listen {
  protocol: Protocol;
  ip: string;
  port: number;
}

export interface ServerOptions {
  /** What the server answers to every TCP connection and every UDP datagram (followed by " from <client address>"). */
  reply: string;
  listen: Listen[];
}

export interface RequestOptions {
  protocol: Protocol;
  ip: string;
  port: number;
  /** Source address to bind (must be on the client namespace's interfaces). */
  sourceIp?: string;
  /** Source port to bind (UDP flows that must hit the same conntrack entry use a fixed one). */
  sourcePort?: number;
  /**
   * Give up after this long; "no answer" is a normal outcome (dropped traffic). Default 2000 ms, generous for a busy
   * machine: pass a short one where no answer is the expected outcome.
   */
  timeoutMs?: number;
}

/** What one request got back: an answer, or why not ("timeout" is what dropped traffic looks like). */
export type Outcome =
  | {
      answered: true;
      /** The server's `reply` string. */
      reply: string;
      /** The client address the server saw (after any SNAT/MASQUERADE on the way). */
      seenFrom: string;
    }
  | { answered: false; reason: "timeout" | "refused" };

export interface RunningServer {
  readonly ns: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Runs in the server's namespace: listens everywhere it is told, prints "ready" once all sockets are bound. */
const SERVER_SCRIPT = `
const net = await import("node:net"); const dgram = await import("node:dgram");
const [reply, ...specs] = process.argv.slice(1);
const strip = (a) => a.replace(/^::ffff:/, "");
await Promise.all(specs.map((spec) => new Promise((resolve, reject) => {
  const [protocol, port, ...ipParts] = spec.split(":"); const ip = ipParts.join(":");
  if (protocol === "tcp") {
    const server = net.createServer((socket) => { socket.on("error", () => {}); socket.end(reply + " from " + strip(socket.remoteAddress) + "\\n"); });
    server.on("error", reject); server.listen({ host: ip, port: Number(port) }, resolve);
  } else {
    const socket = dgram.createSocket(ip.includes(":") ? "udp6" : "udp4");
    socket.on("message", (_msg, rinfo) => socket.send(reply + " from " + strip(rinfo.address) + "\\n", rinfo.port, rinfo.address));
    socket.on("error", reject); socket.bind({ address: ip, port: Number(port) }, resolve);
  }
})));
process.stdout.write("ready\\n");
`;

/** Runs in the client's namespace: one request; prints the answer (exit 0), or exits 3 (no answer) / 4 (refused). */
const CLIENT_SCRIPT = `
const net = await import("node:net"); const dgram = await import("node:dgram");
const [protocol, ip, port, sourceIp, sourcePort, timeoutMs] = process.argv.slice(1);
const answer = (text) => { process.stdout.write(text); process.exit(0); };
setTimeout(() => process.exit(3), Number(timeoutMs));
if (protocol === "tcp") {
  const options = { host: ip, port: Number(port) };
  if (sourceIp) options.localAddress = sourceIp;
  if (sourcePort) options.localPort = Number(sourcePort);
  let data = "";
  const socket = net.connect(options);
  socket.on("data", (chunk) => { data += chunk; });
  socket.on("end", () => answer(data));
  socket.on("error", (err) => { process.stderr.write(String(err.code)); process.exit(err.code === "ECONNREFUSED" ? 4 : 5); });
} else {
  const socket = dgram.createSocket(ip.includes(":") ? "udp6" : "udp4");
  socket.on("message", (msg) => answer(msg.toString()));
  socket.on("error", (err) => { process.stderr.write(String(err.code)); process.exit(5); });
  socket.bind({ address: sourceIp || undefined, port: sourcePort ? Number(sourcePort) : 0 }, () => socket.send("ping\\n", Number(port), ip));
}
`;

/**
 * Deletes namespaces left behind under `prefix` by test processes that no longer run (a killed test run), killing
 * what runs in them first; returns their names. Namespaces of live processes are left alone: several test runs
 * (the same suite started by two people or two helpers) may share the machine, and a lab's name carries the PID
 * of the process that made it (`<prefix>-<pid>x<random>-<name>`).
 */
export async function removeLeftoverNamespaces(prefix: string, runner: CommandRunner = systemRunner()): Promise<string[]> {
  const list = await runner.run("ip", ["netns", "list"]);
  const names = list.stdout
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(`${prefix}-`))
    .filter((name) => {
      const pid = Number(/^(\d+)x/.exec(name.slice(prefix.length + 1))?.[1]);
      return !Number.isInteger(pid) || pid <= 0 || !processAlive(pid);
    });
  for (const name of names) await deleteNamespace(name, runner);
  return names;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function deleteNamespace(name: string, runner: CommandRunner): Promise<void> {
  const pids = await runner.run("ip", ["netns", "pids", name]);
  for (const pid of pids.stdout.split("\n").filter((line) => /^\d+$/.test(line.trim()))) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  // Deleting the namespace removes its veth ends, and with them the peers in other namespaces.
  await runner.run("ip", ["netns", "delete", name]);
}

export class NetnsLab {
  readonly runner: CommandRunner = systemRunner();
  private readonly namespaces: string[] = [];
  private readonly servers = new Set<ChildProcess>();

  private constructor(
    /** Every namespace of this lab is named `${prefix}-${runId}-<name>`; runId is `<pid>x<random>`. */
    readonly prefix: string,
    readonly runId: string,
  ) {}

  /**
   * A new, empty lab. Namespaces that dead test processes left under the same prefix are removed first (see
   * removeLeftoverNamespaces). Use a prefix of your suite's own, e.g. "bt-dp".
   */
  static async create(prefix: string): Promise<NetnsLab> {
    if (!/^[a-z0-9-]{2,12}$/.test(prefix)) throw new Error(`lab prefix must be 2-12 of [a-z0-9-], got "${prefix}"`);
    await removeLeftoverNamespaces(prefix);
    return new NetnsLab(prefix, `${process.pid}x${randomBytes(3).toString("hex")}`);
  }

  /** Creates namespaces (loopback up, IPv6 duplicate address detection off) and returns their full names. */
  async addNamespaces(...shortNames: string[]): Promise<string[]> {
    const names = shortNames.map((short) => `${this.prefix}-${this.runId}-${short}`);
    this.namespaces.push(...names);
    await runChecked(this.runner, "ip", ["-batch", "-"], { input: names.map((name) => `netns add ${name}\n`).join("") });
    // Without duplicate address detection an IPv6 address is usable at once instead of ~2 s later.
    await Promise.all(
      names.map((name) =>
        this.sysctls(name, { "net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0" }, true, [
          "ip link set lo up",
        ]),
      ),
    );
    return names;
  }

  /** Joins two namespaces with a veth pair, brings both ends up and adds their addresses. */
  async link(a: Endpoint, b: Endpoint): Promise<void> {
    await runChecked(this.runner, "ip", ["link", "add", a.ifname, "netns", a.ns, "type", "veth", "peer", "name", b.ifname, "netns", b.ns]);
    await Promise.all(
      [a, b].map((end) => {
        // Up first, then addresses: an IPv6 address added to a down link joins its solicited-node multicast group
        // only ~1 s after the link comes up, and until then neighbour solicitations for it go unanswered.
        const batch = [`link set ${end.ifname} up\n`];
        for (const address of end.addresses ?? []) {
          batch.push(`addr add ${address} dev ${end.ifname}${address.includes(":") ? " nodad" : ""}\n`);
        }
        return runChecked(this.runner, "ip", ["-n", end.ns, "-batch", "-"], { input: batch.join("") });
      }),
    );
  }

  /** Adds a route inside a namespace, e.g. route(ns, "default", "10.0.0.1") or route(ns, "::/0", "fd00::1"). */
  async route(ns: string, destination: string, via: string): Promise<void> {
    const family = via.includes(":") ? "-6" : "-4";
    await runChecked(this.runner, "ip", [family, "-n", ns, "route", "replace", destination, "via", via]);
  }

  /**
   * Sets sysctls inside a namespace by writing /proc/sys directly (one process for all of them).
   * `bestEffort` ignores keys that do not exist (e.g. IPv6 keys when IPv6 is disabled in the kernel); `alsoRun`
   * are shell commands run first in the same process.
   */
  async sysctls(ns: string, values: Record<string, string>, bestEffort = false, alsoRun: string[] = []): Promise<void> {
    const writes = Object.entries(values).map(
      ([key, value]) => `echo ${value} > /proc/sys/${key.replaceAll(".", "/")}${bestEffort ? " 2>/dev/null" : ""}`,
    );
    const script = bestEffort ? [...writes, "true"].join("; ") : writes.join(" && ");
    await runChecked(this.runner, "sh", ["-c", [...alsoRun, script].join(" && ")], { netns: ns });
  }

  /** Runs a command inside a namespace (never throws for a non-zero exit; see RunResult). */
  exec(ns: string, file: string, args: readonly string[], options: Omit<RunOptions, "netns"> = {}): Promise<RunResult> {
    return this.runner.run(file, args, { ...options, netns: ns });
  }

  /** Starts a TCP/UDP server in a namespace and resolves once all its sockets are bound. Stopped by destroy(). */
  async startServer(ns: string, options: ServerOptions): Promise<RunningServer> {
    const specs = options.listen.map((l) => `${l.protocol}:${l.port}:${l.ip}`);
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "--input-type=module", "-e", SERVER_SCRIPT, options.reply, ...specs], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.servers.add(child);
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server in ${ns} not ready after 5 s: ${stderr.trim()}`)), 5000);
      child.stdout?.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`server in ${ns} exited (${code}) before it was ready: ${stderr.trim()}`));
      });
    });
    const stop = async (): Promise<void> => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGKILL");
      await exited;
      this.servers.delete(child);
    };
    return { ns, pid: child.pid ?? -1, stop };
  }

  /** Sends one request from a namespace and reports what came back. */
  async request(ns: string, options: RequestOptions): Promise<Outcome> {
    const timeoutMs = options.timeoutMs ?? 2000;
    const args = [
      "--input-type=module",
      "-e",
      CLIENT_SCRIPT,
      options.protocol,
      options.ip,
      String(options.port),
      options.sourceIp ?? "",
      options.sourcePort === undefined ? "" : String(options.sourcePort),
      String(timeoutMs),
    ];
    const result = await this.exec(ns, process.execPath, args, { timeoutMs: timeoutMs + 5000 });
    if (result.exitCode === 3) return { answered: false, reason: "timeout" };
    if (result.exitCode === 4) return { answered: false, reason: "refused" };
    if (result.exitCode !== 0) throw new Error(`client in ${ns} failed (${result.exitCode}): ${result.stderr.trim()}`);
    const match = /^(.*) from (\S+)\s*$/s.exec(result.stdout);
    if (!match) throw new Error(`unexpected reply in ${ns}: ${JSON.stringify(result.stdout)}`);
    return { answered: true, reply: match[1] ?? "", seenFrom: match[2] ?? "" };
  }

  /** The reply string of a request, or "<timeout>" / "<refused>": handy for one-line assertions. */
  async ask(ns: string, options: RequestOptions): Promise<string> {
    const outcome = await this.request(ns, options);
    return outcome.answered ? outcome.reply : `<${outcome.reason}>`;
  }

  /** Deletes some of this lab's namespaces now (killing what runs in them), e.g. between benchmark runs. */
  async removeNamespaces(...names: string[]): Promise<void> {
    for (const name of names) {
      const index = this.namespaces.indexOf(name);
      if (index < 0) throw new Error(`${name} is not a namespace of this lab`);
      this.namespaces.splice(index, 1);
      await deleteNamespace(name, this.runner);
    }
  }

  /** Stops every server and deletes every namespace of this lab. Safe to call twice and after a failed setup. */
  async destroy(): Promise<void> {
    for (const child of this.servers) child.kill("SIGKILL");
    this.servers.clear();
    for (const name of this.namespaces.splice(0)) await deleteNamespace(name, this.runner);
  }
}

/**
 * Starts a long-lived Node.js script (`node --input-type=module -e SCRIPT ...args`) in a network namespace, for
 * probers that run while a test breaks things: the script prints "ready" once it runs, works until its stdin
 * closes, then prints its result as one JSON line. stop() closes stdin and returns that line, parsed.
 */
export async function startNetnsScript<T>(netns: string, script: string, args: string[]): Promise<{ stop(): Promise<T> }> {
  const child = spawn("ip", ["netns", "exec", netns, process.execPath, "--input-type=module", "-e", script, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  await new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (out.includes("ready")) {
        clearInterval(check);
        resolve();
      }
    }, 10);
    child.once("exit", (code) => {
      clearInterval(check);
      reject(new Error(`script in ${netns} exited (${code}): ${err}`));
    });
  });
  return {
    stop: async () => {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.stdin.end();
      await exited;
      const line = out.split("\n").find((l) => l.startsWith("{") || l.startsWith("["));
      if (!line) throw new Error(`script in ${netns} printed no result: ${err}`);
      return JSON.parse(line) as T;
    },
  };
}
