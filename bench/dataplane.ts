// Data-plane benchmark: HTTP through berth's lb-pod versus straight to the backend pod, in one sandbox, one run.
//
//   npm run build && node --import tsx bench/dataplane.ts [--rounds 5] [--seconds 5] [--connections 32] [--threads 1]
//                                                          (root; writes bench/results/dataplane.json)
//
// Set-up: `berth sandbox up --nodes 2 --no-lb-ip-capture` (so the kube-proxy stand-in does not capture the
// LoadBalancer IP and traffic really takes the lb-pod's DNAT, not kube-proxy's), one backend pod on node-1 (the
// sandbox demo app: a single-threaded Node.js `http` server answering one ~60-byte text line), and a LoadBalancer
// Service for it (externalTrafficPolicy Cluster). wrk runs in the sandbox's client namespace, outside the cluster,
// for both legs, so both start from the same place and both cross node-1's forwarding path:
//   - berth:  client -> node-1 LAN IP:port -> hostPort DNAT -> lb-pod netns (DNAT to the ClusterIP + MASQUERADE) ->
//             node-1 (ClusterIP DNAT to the endpoint) -> backend pod;
//   - direct: client -> backend pod IP:8080, routed via node-1's LAN address (the bench adds that one /32 route in
//             the client namespace: the pod network is not reachable from outside the cluster otherwise).
// The legs alternate within each round (the first leg swaps every round) so a slow moment of the machine hits both;
// each figure is the median over the rounds. Two kinds of load: keep-alive connections, and short connections
// (`Connection: close`, a new TCP connection and conntrack entry per request). Printed: requests/s and p99 latency of
// each leg and the ratios berth/direct. Goal: berth >= 0.95 of direct requests/s.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { fileURLToPath } from "node:url";
import { APP_NAMESPACE, APP_PORT, Sandbox, appPod, e2ePrefix, lbService, sleep, type Obj } from "../test/e2e/fixture.js";

const RESULTS = fileURLToPath(new URL("./results/dataplane.json", import.meta.url));
const SERVICE_PORT = 8300;

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at > 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

const ROUNDS = flag("rounds", 5);
const SECONDS = flag("seconds", 5);
const CONNECTIONS = flag("connections", 32);
const THREADS = flag("threads", 1);

type Leg = "berth" | "direct";
type Mode = "keep-alive" | "short";

interface WrkRun {
  leg: Leg;
  mode: Mode;
  round: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  socketErrors: number;
  non2xx: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** wrk prints durations as 812.00us, 1.20ms, 2.01s or 1.00m. */
function toMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) throw new Error(`cannot read wrk duration ${JSON.stringify(text)}`);
  const factor: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
  return Number(match[1]) * (factor[match[2] as string] as number);
}

/** Parses `wrk --latency` output. */
export function parseWrk(output: string): Omit<WrkRun, "leg" | "mode" | "round"> {
  const number = (re: RegExp): number => Number(re.exec(output)?.[1] ?? NaN);
  const percentile = (p: number): number => {
    const match = new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(output);
    if (!match) throw new Error(`no ${p}% latency in wrk output:\n${output}`);
    return toMs(match[1] ?? "");
  };
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const result = {
    requestsPerSecond: number(/^Requests\/sec:\s+([\d.]+)/m),
    p50Ms: percentile(50),
    p99Ms: percentile(99),
    requests: number(/^\s+(\d+) requests in/m),
    socketErrors: errors ? errors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
    non2xx: /Non-2xx or 3xx responses: (\d+)/.exec(output) ? Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1]) : 0,
  };
  if (!Number.isFinite(result.requestsPerSecond)) throw new Error(`no Requests/sec in wrk output:\n${output}`);
  return result;
}

function wrk(sandbox: Sandbox, url: string, mode: Mode, seconds: number): Omit<WrkRun, "leg" | "mode" | "round"> {
  const args = ["netns", "exec", sandbox.clientNs, "wrk", `-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, "--latency"];
  if (mode === "short") args.push("-H", "Connection: close");
  args.push(url);
  const result = spawnSync("ip", args, { encoding: "utf8", timeout: (seconds + 30) * 1000 });
  if (result.status !== 0) throw new Error(`wrk ${url} failed (${result.status}): ${result.stderr}`);
  return parseWrk(result.stdout);
}

function tool(command: string, args: string[]): string {
  return spawnSync(command, args, { encoding: "utf8" }).stdout.split("\n")[0]?.trim() ?? "";
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("needs root (network namespaces)");
  const loadAtStart = loadavg().map((n) => Math.round(n * 100) / 100);
  const sandbox = await Sandbox.up(e2ePrefix("d"), { nodes: 2, noLbIpCapture: true });
  try {
    const node1 = sandbox.node("node-1");
    await sandbox.create(appPod("bench-1", "bench", "node-1"));
    const [pod] = await sandbox.waitForReadyPods("app=bench", 1);
    const podIp = String((pod as Obj).status?.podIP ?? "");
    await sandbox.create(lbService("bench", "bench", [{ port: SERVICE_PORT }]));
    await sandbox.waitFor("bench Service serving on node-1", async () => {
      const ingress = await sandbox.ingress("bench");
      return ingress.includes(node1.ipv4) ? undefined : `ingress [${ingress.join(", ")}]`;
    }, 60_000);
    // The direct leg: a route to the backend pod only, via the node it runs on.
    spawnSync("ip", ["-n", sandbox.clientNs, "route", "replace", `${podIp}/32`, "via", node1.ipv4]);

    const urls: Record<Leg, string> = { berth: `http://${node1.ipv4}:${SERVICE_PORT}/`, direct: `http://${podIp}:${APP_PORT}/` };
    const [viaBerth, direct] = await sandbox.waitForAnswers("both legs answer", [
      { protocol: "http", ip: node1.ipv4, port: SERVICE_PORT },
      { protocol: "http", ip: podIp, port: APP_PORT },
    ]);
    console.log(`berth leg: ${urls.berth} -> ${viaBerth?.answered ? viaBerth.text : "?"}`);
    console.log(`direct leg: ${urls.direct} -> ${direct?.answered ? direct.text : "?"}`);
    // Proof that the berth leg really crossed the lb-pod: its namespace tracked the connection to the ClusterIP.
    const clusterIp = String((await sandbox.find("service", "bench", APP_NAMESPACE))?.spec?.clusterIP ?? "");
    const lbPod = (await sandbox.lbPods("bench")).find((p) => p.spec?.nodeName === "node-1");
    const tracked = lbPod ? (await sandbox.conntrack(sandbox.podNamespace(lbPod))).split("\n").some((l) => l.includes(`src=${clusterIp} `)) : false;
    if (!tracked) throw new Error(`the berth leg did not go through node-1's lb-pod (no conntrack entry to ${clusterIp})`);

    const runs: WrkRun[] = [];
    for (const mode of ["keep-alive", "short"] as const) {
      // Warm-up, not recorded: JIT of the backend, ARP/neighbour entries, conntrack.
      for (const leg of ["berth", "direct"] as const) wrk(sandbox, urls[leg], mode, 2);
      for (let round = 1; round <= ROUNDS; round++) {
        const order: Leg[] = round % 2 === 1 ? ["berth", "direct"] : ["direct", "berth"];
        for (const leg of order) {
          const run = { leg, mode, round, ...wrk(sandbox, urls[leg], mode, SECONDS) };
          runs.push(run);
          console.log(`${mode.padEnd(10)} round ${round} ${leg.padEnd(6)} ${run.requestsPerSecond.toFixed(0).padStart(7)} req/s  p99 ${run.p99Ms.toFixed(2)} ms  errors ${run.socketErrors}`);
        }
        await sleep(200);
      }
    }

    const round3 = (n: number): number => Math.round(n * 1000) / 1000;
    const paired = (mode: Mode, figure: (r: WrkRun) => number): number[] =>
      Array.from({ length: ROUNDS }, (_, i) => i + 1).map((round) => {
        const leg = (name: Leg): WrkRun | undefined => runs.find((r) => r.mode === mode && r.round === round && r.leg === name);
        const berth = leg("berth");
        const direct = leg("direct");
        return berth && direct ? figure(berth) / figure(direct) : NaN;
      });
    const summary = (["keep-alive", "short"] as const).map((mode) => {
      const of = (leg: Leg): WrkRun[] => runs.filter((r) => r.mode === mode && r.leg === leg);
      const rps = (leg: Leg): number => median(of(leg).map((r) => r.requestsPerSecond));
      const p99 = (leg: Leg): number => median(of(leg).map((r) => r.p99Ms));
      const p50 = (leg: Leg): number => median(of(leg).map((r) => r.p50Ms));
      return {
        mode,
        berth: { requestsPerSecond: Math.round(rps("berth")), p50Ms: p50("berth"), p99Ms: p99("berth") },
        direct: { requestsPerSecond: Math.round(rps("direct")), p50Ms: p50("direct"), p99Ms: p99("direct") },
        requestsPerSecondRatio: round3(rps("berth") / rps("direct")),
        p99LatencyRatio: round3(p99("berth") / p99("direct")),
        // The same ratios taken within each round (both legs ran back to back), then the median: steadier than the
        // ratio of medians when other work on the machine drifts from round to round.
        pairedRequestsPerSecondRatio: round3(median(paired(mode, (r) => r.requestsPerSecond))),
        pairedP99LatencyRatio: round3(median(paired(mode, (r) => r.p99Ms))),
        socketErrors: { berth: of("berth").reduce((s, r) => s + r.socketErrors, 0), direct: of("direct").reduce((s, r) => s + r.socketErrors, 0) },
      };
    });

    console.log("\n| connections | berth req/s | direct req/s | ratio (paired) | berth p99 | direct p99 | p99 ratio berth/direct (paired) |");
    console.log("|---|---:|---:|---:|---:|---:|---:|");
    for (const s of summary) {
      console.log(`| ${s.mode} | ${s.berth.requestsPerSecond} | ${s.direct.requestsPerSecond} | ${s.requestsPerSecondRatio} (${s.pairedRequestsPerSecondRatio}) | ` +
        `${s.berth.p99Ms.toFixed(2)} ms | ${s.direct.p99Ms.toFixed(2)} ms | ${s.p99LatencyRatio} (${s.pairedP99LatencyRatio}) |`);
    }

    const result = {
      benchmark: "dataplane",
      date: new Date().toISOString(),
      machine: {
        nproc: cpus().length,
        cpu: cpus()[0]?.model ?? "",
        kernel: release(),
        node: process.version,
        wrk: tool("sh", ["-c", "wrk --version 2>&1"]),
        iptables: tool("iptables", ["--version"]),
        // Other work on the machine skews throughput; recorded so a reader can tell a quiet run from a busy one.
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadavg().map((n) => Math.round(n * 100) / 100),
      },
      setup: {
        sandbox: "berth sandbox up --nodes 2 --no-lb-ip-capture",
        backend: "sandbox demo app (berth sandbox demo-app): single-threaded Node.js http server on node-1, ~60-byte text answer",
        berthLeg: `${urls.berth} (node-1 LAN IP, Service port; hostPort -> lb-pod DNAT to ClusterIP ${clusterIp} -> endpoint)`,
        directLeg: `${urls.direct} (pod IP, routed via node-1 from the client namespace)`,
        wrk: { threads: THREADS, connections: CONNECTIONS, seconds: SECONDS, rounds: ROUNDS },
      },
      summary,
      runs,
    };
    mkdirSync(fileURLToPath(new URL("./results/", import.meta.url)), { recursive: true });
    writeFileSync(RESULTS, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nwrote ${RESULTS}`);
  } finally {
    await sandbox.down();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack ?? error.message : String(error));
  process.exitCode = 1;
});
