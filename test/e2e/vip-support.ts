// What the VIP-mode end-to-end tests (vip.test.ts, vip-dual-stack.test.ts) read from the sandbox besides kubectl:
// which node namespaces hold an address on their LAN interface (what the speaker announces), MACs and the client's
// neighbour entries (what ARP / NDP made of it), the speaker processes, and a long-lived prober in the client
// namespace that sends one HTTP request every few milliseconds and records which were answered (for outages).
import { startNetnsScript } from "../support/netns.js";
import { processAlive, type Sandbox } from "./fixture.js";
import { outages as outageRuns } from "../support/outages.js";

/** Node names whose namespace holds `ip` on eth0 (the LAN interface). */
export async function holders(s: Sandbox, ip: string): Promise<string[]> {
  const out: string[] = [];
  for (const [i, n] of s.nodes.entries()) {
    const r = await s.runner.run("ip", ["-o", "address", "show", "dev", "eth0", "to", ip], { netns: `${s.prefix}-node-${i + 1}` });
    if (r.stdout.includes(ip)) out.push(n.name);
  }
  return out;
}

/**
 * Which node holds each of `ips` on eth0, from one `ip` run per node, all nodes at once: a snapshot taken within a
 * few milliseconds, for timing a convergence.
 */
export async function holdersOfAll(s: Sandbox, ips: readonly string[]): Promise<Map<string, string[]>> {
  const perNode = await Promise.all(s.nodes.map(async (n, i) => {
    const r = await s.runner.run("ip", ["-j", "address", "show", "dev", "eth0"], { netns: `${s.prefix}-node-${i + 1}` });
    const addrs = (JSON.parse(r.stdout || "[]") as { addr_info?: { local?: string }[] }[]).flatMap((l) => (l.addr_info ?? []).map((a) => a.local ?? ""));
    return [n.name, new Set(addrs)] as const;
  }));
  return new Map(ips.map((ip) => [ip, perNode.filter(([, addrs]) => addrs.has(ip)).map(([name]) => name)]));
}

export async function macOf(s: Sandbox, node: string): Promise<string> {
  const r = await s.runner.run("ip", ["-j", "link", "show", "eth0"], { netns: `${s.prefix}-${node}` });
  return (JSON.parse(r.stdout) as { address: string }[])[0]!.address;
}

/** The client's neighbour entry for `ip` (its link-layer address), either family. */
export async function clientNeighbour(s: Sandbox, ip: string): Promise<string | undefined> {
  const r = await s.runner.run("ip", ["-j", "neigh", "show", ip], { netns: s.clientNs });
  return (JSON.parse(r.stdout || "[]") as { lladdr?: string }[])[0]?.lladdr;
}

/**
 * Waits until exactly one node holds each of `ips`, the same node for `stableMs` (a speaker that just rejoined takes
 * its addresses back a moment later, make before break); returns the holders in order.
 */
export async function settledHolders(s: Sandbox, ips: string[], timeoutMs = 20_000, stableMs = 1500): Promise<string[]> {
  let since = 0;
  let key = "";
  let seen: string[][] = [];
  await s.waitFor(`one node holding each of ${ips.join(", ")} for ${stableMs} ms`, async () => {
    seen = await Promise.all(ips.map((ip) => holders(s, ip)));
    const now = JSON.stringify(seen);
    if (!seen.every((h) => h.length === 1)) {
      key = "";
      return `held by ${ips.map((ip, i) => `${ip} [${seen[i]!.join(", ")}]`).join(", ")}`;
    }
    if (now !== key) {
      key = now;
      since = Date.now();
    }
    return Date.now() - since >= stableMs ? undefined : "not stable yet";
  }, timeoutMs, 100);
  return seen.map((h) => h[0]!);
}

/** Waits until exactly one node holds `ip`, steadily; returns it. */
export async function soleHolder(s: Sandbox, ip: string, timeoutMs = 20_000): Promise<string> {
  return (await settledHolders(s, [ip], timeoutMs))[0]!;
}

/** PIDs of the speaker processes in a node's namespace (its host-network pod runs there). */
export async function speakerPids(s: Sandbox, node: string): Promise<number[]> {
  const { commandLine } = await import("./fixture.js");
  return (await s.pidsIn(`${s.prefix}-${node}`)).filter((pid) => commandLine(pid).includes("speaker"));
}

/** Waits until none of `pids` is alive (polls every 5 ms: the caller acts the moment they are gone). */
export async function waitExited(pids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some((pid) => processAlive(pid))) {
    if (Date.now() > deadline) throw new Error(`processes ${pids.filter((pid) => processAlive(pid)).join(", ")} still alive after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One probe: when it was sent (ms since the epoch) and whether the app answered it within 1 s. */
export interface Probe {
  at: number;
  ok: boolean;
}

/**
 * The outages in a probe series: runs of unanswered probes, each from its first lost probe to the first answered one
 * after it (a single lost probe at 50 Hz is a 20 ms outage); a run still open at the end runs to the last probe.
 */
export function outages(probes: readonly Probe[]): { from: number; ms: number }[] {
  return outageRuns(probes, (p) => p.ok);
}

/** Runs in the client namespace: an HTTP GET (new connection each) every 1000/hz ms until stdin closes. */
const PROBER_SCRIPT = `
const http = await import("node:http");
const [ip, port, hz] = process.argv.slice(1);
const host = ip;
const probes = [];
const one = (p) => {
  const req = http.get({ host, port: Number(port), path: "/", agent: false, timeout: 1000 }, (res) => {
    let body = ""; res.setEncoding("utf8"); res.on("data", (c) => { body += c; });
    res.on("end", () => { if (Date.now() - p.at <= 1000 && body.startsWith("pod ")) p.ok = true; });
    res.on("error", () => {});
  });
  req.on("timeout", () => req.destroy());
  req.on("error", () => {});
};
process.stdout.write("ready\\n");
const period = 1000 / Number(hz);
const start = Date.now();
let timer;
const tick = () => {
  const p = { at: Date.now(), ok: false };
  probes.push(p);
  one(p);
  timer = setTimeout(tick, Math.max(0, start + probes.length * period - Date.now()));
};
timer = setTimeout(tick, 0);
process.stdin.resume();
process.stdin.on("end", () => { clearTimeout(timer); setTimeout(() => { process.stdout.write(JSON.stringify(probes) + "\\n"); process.exit(0); }, 1100); });
`;

/** Starts the prober against ip:port in the client namespace; stop() returns every probe. */
export async function startProber(s: Sandbox, ip: string, port: number, hz = 50): Promise<{ stop(): Promise<Probe[]> }> {
  return startNetnsScript<Probe[]>(s.clientNs, PROBER_SCRIPT, [ip, String(port), String(hz)]);
}

/** "120 probes, 0 lost" / "... longest outage 840 ms from +1.20 s": for assertion messages. */
export function describeProbes(probes: readonly Probe[], since: number): string {
  const lost = probes.filter((p) => !p.ok).length;
  const worst = outages(probes).sort((a, b) => b.ms - a.ms)[0];
  return `${probes.length} probes, ${lost} lost${worst ? `, longest outage ${worst.ms} ms from ${((worst.from - since) / 1000).toFixed(2)} s` : ""}`;
}
