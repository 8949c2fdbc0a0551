// lb-pod benchmark: time from process start to rules in place, what stays resident afterwards, the probe's cost and
// the image's size, all from the lb-pod image's own tree (scripts/build-lb-pod-rootfs.sh), side by side in one run.
//
//   node --import tsx bench/lb-pod.ts [--runs N]        (root; needs `npm run build` first)
//
// For 1, 10 and 100 TCP ports, each measured in a fresh network namespace, interleaved run by run:
//   - berth:          the image's entrypoint `berth-lb-pod --once` on the rules bundle `berth lb-pod render` wrote
//                     beforehand (as the controller does; rendering is not on the pod's path), automatic backend
//                     (iptables-nft here): wall time until it exits, after the rules are applied and verified;
//   - berth nftables: the same with --backend nftables;
//   - klipper-style:  the same forwarding added one `iptables` call at a time, as klipper-lb's entry script does
//                     (4 calls per port: FORWARD ACCEPT for the source range, FORWARD DROP, PREROUTING DNAT,
//                     POSTROUTING MASQUERADE), in one sh. That is a lower bound for klipper-lb, which also runs
//                     lsmod and sysctl checks and needs one container per port.
// All three run the same way: `ip netns exec`, a private mount namespace, chroot into the tree (whose `iptables` is
// the nft variant, as klipper-lb's Alpine image's), and the clock starts only once they are inside (GATE below): a
// container runtime has done that part before either entrypoint runs.
// Then the memory of a set-up pod: the entrypoint (no --once) runs until its probe passes; Rss and private memory
// (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) of every process left in the pod (the waiter and its
// sleep) are summed. And the readiness probe's cost in that pod (berth-lb-pod-check, the controller's default
// probe), next to `true` run the same way as the floor of the namespace and chroot entry. CPU time is the children's
// user+system time from /proc/self/stat (cutime + cstime), in clock ticks, so each sample is a batch of
// PROBES_PER_BATCH probes divided by that count. Prints a table and writes bench/results/lb-pod.json.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { fileURLToPath } from "node:url";
import { systemRunner } from "../src/lib/exec.js";
import { LB_POD_ROOTFS_PATH, ensureLbPodRootfs, rootfsExecArgs } from "../src/sandbox/cluster/kubelet/rootfs.js";
import { NetnsLab } from "../test/support/netns.js";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const PROBES_PER_BATCH = 10;
const RESULTS = fileURLToPath(new URL("./results/lb-pod.json", import.meta.url));
const PORT_COUNTS = [1, 10, 100];
const DESTINATION = "10.43.0.10";
const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
const ENV = { PATH: LB_POD_ROOTFS_PATH.join(":") };

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

/** Renders the bundle for `count` ports into a directory, as the controller does before any pod starts. */
function renderBundle(count: number): string {
  const dir = `/tmp/bt-bench-rules-${process.pid}-${count}`;
  const args = ["lb-pod", "render", "--out", dir, "--destination-ip", DESTINATION, ...ports(count).flatMap((port) => ["--port", `tcp:${port}:${port}`])];
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`render ${count} ports failed: ${result.stderr}`);
  return dir;
}

function podArgs(rootfs: string, rulesDir: string, stateDir: string, argv: string[]): string[] {
  return rootfsExecArgs(rootfs, [{ source: rulesDir, target: "/etc/berth/rules", readOnly: true }, { source: stateDir, target: "/run/berth" }], ENV, argv);
}

function argvFor(method: Method, count: number): string[] {
  if (method === "klipper-style") return ["sh", "-ec", klipperScript(count)];
  return ["berth-lb-pod", "--once", ...(method === "berth-nftables" ? ["--backend", "nftables"] : [])];
}

async function timeOnce(lab: NetnsLab, rootfs: string, bundles: Map<number, string>, method: Method, count: number, run: number): Promise<number> {
  const [ns] = (await lab.addNamespaces(`${method.slice(0, 6)}-${count}-${run}`)) as [string];
  await lab.sysctls(ns, { "net.ipv4.ip_forward": "1" });
  const stateDir = `/tmp/${ns}-state`;
  mkdirSync(stateDir, { recursive: true });
  const args = podArgs(rootfs, bundles.get(count) ?? "", stateDir, [...GATE, ...argvFor(method, count)]);
  const elapsed = await timeFromGate(["netns", "exec", ns, ...args], `${method} ${count} ports`);
  rmSync(stateDir, { recursive: true, force: true });
  await lab.removeNamespaces(ns);
  return elapsed;
}

// In a real pod the container runtime has entered the pod's namespaces and its root before either entrypoint runs;
// neither klipper-lb nor berth pays for that. So each side first gets there (`ip netns exec`, the mount namespace,
// the bind mounts, chroot, env: ~20 ms here, more than klipper's whole work at one port), then waits at this gate
// (a builtin `read`, inside the chroot) and the clock starts when the gate opens: what is timed is the exec of the
// entrypoint (a shell script either way), its work, its exit, and Node.js noticing the exit, the same for both.
const GATE = ["sh", "-c", 'echo at-gate; read -r _; exec "$@"', "sh"];

/** Runs `ip args` (which ends in GATE), waits until it is at the gate, opens it and returns ms from then until exit. */
async function timeFromGate(args: string[], what: string): Promise<number> {
  const child = spawn("ip", args, { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let started = 0n;
  const exited = new Promise<{ code: number | null; at: bigint }>((resolve) => child.once("exit", (code) => resolve({ code, at: process.hrtime.bigint() })));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    if (started === 0n && stdout.includes("at-gate\n")) {
      started = process.hrtime.bigint();
      child.stdin.end("\n");
    }
  });
  const { code, at } = await exited;
  if (code !== 0 || started === 0n) throw new Error(`${what} failed (exit ${code}): ${stderr}`);
  return Number(at - started) / 1e6;
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

/** Wall and CPU time of one probe (`args` after `ip netns exec ns`), per batch of PROBES_PER_BATCH; medians over RUNS batches. */
function probeCost(ns: string, args: string[], ticksPerSecond: number): ProbeCost {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let batch = 0; batch < RUNS; batch++) {
    const cpuBefore = childrenCpuMs(ticksPerSecond);
    const started = process.hrtime.bigint();
    for (let i = 0; i < PROBES_PER_BATCH; i++) {
      const probe = spawnSync("ip", ["netns", "exec", ns, ...args]);
      if (probe.status !== 0) throw new Error(`${args.join(" ")} exited ${probe.status}: ${String(probe.stderr)}`);
    }
    wall.push(Math.round((Number(process.hrtime.bigint() - started) / 1e6 / PROBES_PER_BATCH) * 10) / 10);
    cpu.push(Math.round(((childrenCpuMs(ticksPerSecond) - cpuBefore) / PROBES_PER_BATCH) * 10) / 10);
  }
  return { wallMsMedian: median(wall), cpuMsMedian: median(cpu), wallMsSamples: wall, cpuMsSamples: cpu };
}

function memoryKib(pid: number): { private: number; rss: number; pss: number; anonymous: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
  return { private: field("Private_Clean") + field("Private_Dirty"), rss: field("Rss"), pss: field("Pss"), anonymous: field("Anonymous") };
}

async function setUpPod(lab: NetnsLab, rootfs: string, bundle: string): Promise<{
  processes: { comm: string; privateKib: number; rssKib: number; pssKib: number; anonymousKib: number }[];
  totalPrivateKib: number;
  totalRssKib: number;
  probe: { shell: ProbeCost; floor: ProbeCost };
}> {
  const [ns] = (await lab.addNamespaces("mem")) as [string];
  await lab.sysctls(ns, { "net.ipv4.ip_forward": "1" });
  const stateDir = `/tmp/${ns}-state`;
  mkdirSync(stateDir, { recursive: true });
  const entry = spawn("ip", ["netns", "exec", ns, ...podArgs(rootfs, bundle, stateDir, ["berth-lb-pod"])], { stdio: "ignore" });
  const probeArgs = podArgs(rootfs, bundle, stateDir, ["berth-lb-pod-check"]);
  try {
    for (let i = 0; ; i++) {
      if (spawnSync("ip", ["netns", "exec", ns, ...probeArgs]).status === 0) break;
      if (i > 100) throw new Error("the lb-pod never became ready");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const ticksPerSecond = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;
    const probe = {
      shell: probeCost(ns, probeArgs, ticksPerSecond),
      floor: probeCost(ns, podArgs(rootfs, bundle, stateDir, ["true"]), ticksPerSecond),
    };
    await new Promise((resolve) => setTimeout(resolve, 200));
    const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).map(Number);
    const processes = pids.map((pid) => {
      const memory = memoryKib(pid);
      return {
        comm: readFileSync(`/proc/${pid}/comm`, "utf8").trim(),
        privateKib: memory.private, rssKib: memory.rss, pssKib: memory.pss, anonymousKib: memory.anonymous,
      };
    });
    return {
      processes,
      totalPrivateKib: processes.reduce((sum, p) => sum + p.privateKib, 0),
      totalRssKib: processes.reduce((sum, p) => sum + p.rssKib, 0),
      probe,
    };
  } finally {
    entry.kill("SIGTERM");
    await new Promise((resolve) => entry.once("exit", resolve));
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function firstLine(command: string, args: string[]): string {
  return (spawnSync(command, args, { encoding: "utf8" }).stdout ?? "").split("\n")[0]?.trim() ?? "";
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: the benchmark creates network namespaces");
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const loadAtStart = loadavg().map((load) => Math.round(load * 100) / 100);
  const rootfs = await ensureLbPodRootfs(REPO, systemRunner());
  const bundles = new Map(PORT_COUNTS.map((count) => [count, renderBundle(count)]));
  const lab = await NetnsLab.create("bt-bench");
  const methods: Method[] = ["berth", "berth-nftables", "klipper-style"];
  const timings: Record<Method, Record<number, number[]>> = { berth: {}, "berth-nftables": {}, "klipper-style": {} };
  try {
    for (const count of PORT_COUNTS) {
      // Interleaved, so a slow moment of the machine hits every method alike.
      for (let run = 0; run < RUNS; run++) {
        for (const method of methods) (timings[method][count] ??= []).push(await timeOnce(lab, rootfs.dir, bundles, method, count, run));
      }
    }
    const pod = await setUpPod(lab, rootfs.dir, bundles.get(1) ?? "");

    const rows = PORT_COUNTS.map((count) => {
      const berth = median(timings.berth[count] ?? []);
      const klipper = median(timings["klipper-style"][count] ?? []);
      return {
        ports: count,
        berthMs: Math.round(berth),
        berthNftablesMs: Math.round(median(timings["berth-nftables"][count] ?? [])),
        klipperStyleMs: Math.round(klipper),
        berthOverKlipper: Math.round((berth / klipper) * 100) / 100,
      };
    });
    console.log(`\nlb-pod (image tree, chrooted): median ms from process start to rules in place (${RUNS} runs each, fresh namespace per run)`);
    console.log("ports | berth (iptables-nft) | berth (nftables) | klipper-style iptables calls | berth / klipper");
    for (const row of rows) {
      console.log(`${String(row.ports).padStart(5)} | ${String(row.berthMs).padStart(20)} | ${String(row.berthNftablesMs).padStart(16)} | ` +
        `${String(row.klipperStyleMs).padStart(28)} | ${String(row.berthOverKlipper).padStart(15)}`);
    }
    console.log("\nresident memory once set up (1 port)");
    // File pages (busybox, libc) count as private while no other process maps them; lb-pods on one node share them.
    for (const p of pod.processes) console.log(`  ${p.comm}: ${p.rssKib} KiB RSS, ${p.privateKib} KiB private, ${p.pssKib} KiB PSS, ${p.anonymousKib} KiB anonymous`);
    console.log(`  total: ${pod.totalRssKib} KiB RSS, ${pod.totalPrivateKib} KiB private`);
    console.log(`\nreadiness probe, 1 port, iptables-nft: median per probe (${RUNS} batches of ${PROBES_PER_BATCH})`);
    console.log(`  berth-lb-pod-check: ${pod.probe.shell.cpuMsMedian} ms CPU, ${pod.probe.shell.wallMsMedian} ms wall`);
    console.log(`  true (floor: netns, mounts, chroot): ${pod.probe.floor.cpuMsMedian} ms CPU, ${pod.probe.floor.wallMsMedian} ms wall`);
    console.log(`\nimage root filesystem: ${rootfs.bytes} bytes (${(rootfs.bytes / 1048576).toFixed(1)} MiB) uncompressed`);

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
        busybox: firstLine("busybox", []),
        // Other work on the machine skews timings; recorded so a reader can tell a quiet run from a busy one.
        loadAverageAtStart: loadAtStart,
      },
      runs: RUNS,
      destination: DESTINATION,
      rootfsBytes: rootfs.bytes,
      applyMs: { medians: rows, samples: timings },
      memory: pod.processes,
      memoryTotalKib: { rss: pod.totalRssKib, private: pod.totalPrivateKib },
      probe: pod.probe,
    };
    mkdirSync(fileURLToPath(new URL("./results/", import.meta.url)), { recursive: true });
    writeFileSync(RESULTS, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nwrote ${RESULTS}`);
  } finally {
    await lab.destroy();
    for (const dir of bundles.values()) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(`bench/lb-pod: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
