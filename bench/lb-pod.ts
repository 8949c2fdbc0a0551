// lb-pod benchmark: time from process start to rules in place, and what stays resident afterwards.
//
//   node --import tsx bench/lb-pod.ts [--runs N]        (root; needs `npm run build` first)
//
// For 1, 10 and 100 TCP ports, each measured in a fresh network namespace, in the same run:
//   - berth:            `node dist/cli.js lb-pod apply` (automatic backend, iptables-nft here), wall time until it
//                       exits, which is after the rules are applied and verified;
//   - berth nftables:   the same with --backend nftables;
//   - klipper-style:    the same forwarding added one `iptables` call at a time, as klipper-lb's entry script does
//                       (4 calls per port: FORWARD ACCEPT for the source range, FORWARD DROP, PREROUTING DNAT,
//                       POSTROUTING MASQUERADE), in one sh. That is a lower bound for klipper-lb, which also runs
//                       lsmod and sysctl checks and needs one container per port.
// Then the memory of a set-up pod: bin/berth-lb-pod is started in a namespace and, once `lb-pod check` passes,
// the private memory (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) of every process left in the pod
// (the waiter and its sleep) is summed, next to an idle `node` process for comparison.
// Also the readiness probe's cost in the set-up pod, side by side: bin/berth-lb-pod-check (the shell check.sh apply
// wrote; the controller's default probe) and `node dist/cli.js lb-pod check` (the Node.js check it replaced), plus
// `true` as the floor that `ip netns exec` alone costs. CPU time is the children's user+system time from
// /proc/self/stat (cutime + cstime: the kernel adds a child's time when it is waited for), in clock ticks, so each
// sample is a batch of PROBES_PER_BATCH probes divided by that count. Prints a table and writes
// bench/results/lb-pod.json with the machine it ran on.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { fileURLToPath } from "node:url";
import { NetnsLab } from "../test/support/netns.js";

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const ENTRYPOINT = fileURLToPath(new URL("../bin/berth-lb-pod", import.meta.url));
const SHELL_CHECK = fileURLToPath(new URL("../bin/berth-lb-pod-check", import.meta.url));
const PROBES_PER_BATCH = 10;
const RESULTS = fileURLToPath(new URL("./results/lb-pod.json", import.meta.url));
const PORT_COUNTS = [1, 10, 100];
const DESTINATION = "10.43.0.10";
const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;

type Method = "berth" | "berth-nftables" | "klipper-style";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function ports(count: number): number[] {
  return Array.from({ length: count }, (_, i) => 10000 + i);
}

/** klipper-lb's per-port iptables calls (its entry script, with SRC_RANGES=0.0.0.0/0 as k3s passes by default). */
function klipperScript(count: number): string {
  return ports(count)
    .map((port) =>
      [
        `iptables -t filter -I FORWARD -s 0.0.0.0/0 -p tcp --dport ${port} -j ACCEPT`,
        `iptables -t filter -A FORWARD -d ${DESTINATION}/32 -p tcp --dport ${port} -j DROP`,
        `iptables -t nat -I PREROUTING ! -s ${DESTINATION}/32 -p tcp --dport ${port} -j DNAT --to ${DESTINATION}:${port}`,
        `iptables -t nat -I POSTROUTING -d ${DESTINATION}/32 -p tcp -j MASQUERADE`,
      ].join("\n"),
    )
    .join("\n");
}

function commandFor(method: Method, count: number, stateDir: string): string[] {
  if (method === "klipper-style") return ["sh", "-ec", klipperScript(count)];
  const args = ["--state-dir", stateDir, "--destination-ip", DESTINATION, ...ports(count).flatMap((port) => ["--port", `tcp:${port}:${port}`])];
  if (method === "berth-nftables") args.push("--backend", "nftables");
  return [process.execPath, CLI, "lb-pod", "apply", ...args];
}

async function timeOnce(lab: NetnsLab, method: Method, count: number, run: number): Promise<number> {
  const [ns] = (await lab.addNamespaces(`${method.slice(0, 6)}-${count}-${run}`)) as [string];
  await lab.sysctls(ns, { "net.ipv4.ip_forward": "1" });
  const stateDir = `/tmp/${ns}-state`;
  const [file, ...args] = commandFor(method, count, stateDir) as [string, ...string[]];
  const started = process.hrtime.bigint();
  const result = spawnSync("ip", ["netns", "exec", ns, file, ...args], { encoding: "utf8" });
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${method} ${count} ports failed: ${result.stderr}`);
  spawnSync("rm", ["-rf", stateDir]);
  await lab.removeNamespaces(ns);
  return elapsed;
}

/** user + system CPU time of this process's waited-for children so far, in ms. */
function childrenCpuMs(ticksPerSecond: number): number {
  // Fields after the ")" of comm: state is field 3, so cutime (16) and cstime (17) are at offsets 13 and 14.
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]?.split(" ") ?? [];
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / ticksPerSecond;
}

export interface ProbeCost {
  wallMsMedian: number;
  cpuMsMedian: number;
  wallMsSamples: number[];
  cpuMsSamples: number[];
}

/** Wall and CPU time of one probe (`argv` in namespace `ns`), per batch of PROBES_PER_BATCH; medians over RUNS batches. */
function probeCost(ns: string, argv: string[], expectStatus: number, ticksPerSecond: number): ProbeCost {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let batch = 0; batch < RUNS; batch++) {
    const cpuBefore = childrenCpuMs(ticksPerSecond);
    const started = process.hrtime.bigint();
    for (let i = 0; i < PROBES_PER_BATCH; i++) {
      const probe = spawnSync("ip", ["netns", "exec", ns, ...argv]);
      if (probe.status !== expectStatus) throw new Error(`${argv.join(" ")} exited ${probe.status}: ${String(probe.stderr)}`);
    }
    wall.push(Math.round((Number(process.hrtime.bigint() - started) / 1e6 / PROBES_PER_BATCH) * 10) / 10);
    cpu.push(Math.round(((childrenCpuMs(ticksPerSecond) - cpuBefore) / PROBES_PER_BATCH) * 10) / 10);
  }
  return { wallMsMedian: median(wall), cpuMsMedian: median(cpu), wallMsSamples: wall, cpuMsSamples: cpu };
}

function privateKib(pid: number): { private: number; rss: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
  return { private: field("Private_Clean") + field("Private_Dirty"), rss: field("Rss") };
}

async function waiterMemory(
  lab: NetnsLab,
): Promise<{
  processes: { comm: string; privateKib: number; rssKib: number }[];
  totalPrivateKib: number;
  probe: { shell: ProbeCost; node: ProbeCost; netnsExecTrue: ProbeCost };
}> {
  const [ns] = (await lab.addNamespaces("mem")) as [string];
  await lab.sysctls(ns, { "net.ipv4.ip_forward": "1" });
  const stateDir = `/tmp/${ns}-state`;
  const args = ["--state-dir", stateDir, "--destination-ip", DESTINATION, "--port", "tcp:80:80"];
  const entry = spawn("ip", ["netns", "exec", ns, "env", `BERTH_CLI=${CLI}`, `BERTH_NODE=${process.execPath}`, ENTRYPOINT, ...args], { stdio: "ignore" });
  try {
    for (let i = 0; ; i++) {
      const check = spawnSync("ip", ["netns", "exec", ns, process.execPath, CLI, "lb-pod", "check", ...args]);
      if (check.status === 0) break;
      if (i > 50) throw new Error("the lb-pod never became ready");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The readiness probe's cost: one probe per probe period, per pod. Interleaved per batch would mix the
    // children's CPU counters, so the three run one after the other, shell first.
    const ticksPerSecond = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;
    const probe = {
      shell: probeCost(ns, [SHELL_CHECK, "--state-dir", stateDir], 0, ticksPerSecond),
      node: probeCost(ns, [process.execPath, CLI, "lb-pod", "check", ...args], 0, ticksPerSecond),
      netnsExecTrue: probeCost(ns, ["true"], 0, ticksPerSecond),
    };
    await new Promise((resolve) => setTimeout(resolve, 200));
    const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).map(Number);
    const processes = pids.map((pid) => {
      const memory = privateKib(pid);
      return { comm: readFileSync(`/proc/${pid}/comm`, "utf8").trim(), privateKib: memory.private, rssKib: memory.rss };
    });
    return { processes, totalPrivateKib: processes.reduce((sum, p) => sum + p.privateKib, 0), probe };
  } finally {
    entry.kill("SIGTERM");
    await new Promise((resolve) => entry.once("exit", resolve));
    spawnSync("rm", ["-rf", stateDir]);
  }
}

async function idleNodeMemory(): Promise<{ privateKib: number; rssKib: number }> {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)"], { stdio: "ignore" });
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const memory = privateKib(child.pid ?? 0);
    return { privateKib: memory.private, rssKib: memory.rss };
  } finally {
    child.kill("SIGKILL");
  }
}

function firstLine(command: string, args: string[]): string {
  return (spawnSync(command, args, { encoding: "utf8" }).stdout ?? "").split("\n")[0]?.trim() ?? "";
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: the benchmark creates network namespaces");
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const loadAtStart = loadavg().map((load) => Math.round(load * 100) / 100);
  const lab = await NetnsLab.create("bt-bench");
  const methods: Method[] = ["berth", "berth-nftables", "klipper-style"];
  const timings: Record<Method, Record<number, number[]>> = { berth: {}, "berth-nftables": {}, "klipper-style": {} };
  try {
    for (const count of PORT_COUNTS) {
      // Interleaved, so a slow moment of the machine hits every method alike.
      for (let run = 0; run < RUNS; run++) {
        for (const method of methods) (timings[method][count] ??= []).push(await timeOnce(lab, method, count, run));
      }
    }
    const waiter = await waiterMemory(lab);
    const idleNode = await idleNodeMemory();

    const rows = PORT_COUNTS.map((count) => ({
      ports: count,
      berthMs: Math.round(median(timings.berth[count] ?? [])),
      berthNftablesMs: Math.round(median(timings["berth-nftables"][count] ?? [])),
      klipperStyleMs: Math.round(median(timings["klipper-style"][count] ?? [])),
    }));
    console.log(`\nlb-pod: median ms from process start to rules in place (${RUNS} runs each, fresh namespace per run)`);
    console.log("ports | berth (iptables-nft) | berth (nftables) | klipper-style iptables calls");
    for (const row of rows) {
      console.log(`${String(row.ports).padStart(5)} | ${String(row.berthMs).padStart(19)} | ${String(row.berthNftablesMs).padStart(16)} | ${String(row.klipperStyleMs).padStart(28)}`);
    }
    console.log("\nresident private memory once set up (Private_Clean + Private_Dirty)");
    for (const p of waiter.processes) console.log(`  lb-pod ${p.comm}: ${p.privateKib} KiB private (${p.rssKib} KiB RSS)`);
    console.log(`  lb-pod total: ${waiter.totalPrivateKib} KiB`);
    console.log(`  idle node process: ${idleNode.privateKib} KiB private (${idleNode.rssKib} KiB RSS)`);
    const p = waiter.probe;
    console.log(`\nreadiness probe, 1 port, iptables-nft: median per probe (${RUNS} batches of ${PROBES_PER_BATCH})`);
    console.log("probe                               | CPU ms | wall ms");
    for (const [name, cost] of [
      ["bin/berth-lb-pod-check (shell)", p.shell],
      ["berth lb-pod check (Node.js)", p.node],
      ["ip netns exec true (floor)", p.netnsExecTrue],
    ] as const) {
      console.log(`${name.padEnd(35)} | ${String(cost.cpuMsMedian).padStart(6)} | ${String(cost.wallMsMedian).padStart(7)}`);
    }

    const result = {
      benchmark: "lb-pod",
      date: new Date().toISOString(),
      machine: {
        nproc: cpus().length,
        cpu: cpus()[0]?.model ?? "unknown",
        kernel: release(),
        node: process.version,
        iptables: firstLine("iptables", ["--version"]),
        nft: firstLine("nft", ["--version"]),
        // Other work on the machine skews timings; recorded so a reader can tell a quiet run from a busy one.
        loadAverageAtStart: loadAtStart,
      },
      runs: RUNS,
      destination: DESTINATION,
      applyMs: { medians: rows, samples: timings },
      memory: { lbPod: waiter, idleNode },
    };
    mkdirSync(fileURLToPath(new URL("./results/", import.meta.url)), { recursive: true });
    writeFileSync(RESULTS, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nwrote ${RESULTS}`);
  } finally {
    await lab.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(`bench/lb-pod: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
