// lb-pod benchmark: time from an entrypoint's start to its rules in place, what stays resident afterwards, the
// probe's cost and the image's size, all from the lb-pod image's own tree (scripts/build-lb-pod-rootfs.sh), side by
// side in one run.
//
//   node --import tsx bench/lb-pod.ts [--runs N]        (root; needs `npm run build` first)
//
// For 1, 10 and 100 TCP ports, each measured in a fresh network namespace, interleaved run by run:
//   - berth:          the image's entrypoint `berth-lb-pod --once` on the rules bundle `berth lb-pod render` wrote
//                     beforehand (as the controller does; rendering is not on the pod's path), automatic backend
//                     (iptables-nft here);
//   - berth nftables: the same with --backend nftables;
//   - klipper-lb:     a replay of what klipper-lb's container does for one port (from k3s-io/klipper-lb, file
//                     `entry`; see KLIPPER_LB_CONTAINER below), one copy per port started together, as k3s's servicelb
//                     runs one container per port in the lb-pod;
//   - klipper-style:  the lower bound kept from before: only the 4 `iptables` calls per port, in one sh.
// Two clocks, both started when the process leaves the gate (GATE below):
//   - in place: the kernel holds the last of the rules. A `nft monitor` in the namespace (bench/nft-monitor.ts)
//     timestamps each rule change as it arrives; the figure is the last one, and the rules the monitor saw must add up
//     to the rules the namespace holds afterwards. This is the "start -> rules in place".
//   - exit: the process (for klipper-lb, the last of its copies) has exited. For berth that adds what it does after
//     the rules are in (verifying them, the UDP conntrack flush, state.json); for the klipper sides it is within the
//     notification latency of "in place".
// All sides run the same way: `ip netns exec`, a private mount namespace, chroot into the tree (whose `iptables` is
// the nft variant, as klipper-lb's Alpine image's on an nf_tables node), and the clock starts only once they are
// inside: a container runtime has done that part before either entrypoint runs.
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
import { NftMonitor, ruleChange, rulesInNamespace, rulesInPlace } from "./nft-monitor.js";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const PROBES_PER_BATCH = 10;
const RESULTS = fileURLToPath(new URL("./results/lb-pod.json", import.meta.url));
const DESTINATION = "10.43.0.10";
const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
// --ports 1,10 for a quick look; the committed figures are for all three.
const portsArg = process.argv.indexOf("--ports");
const PORT_COUNTS = portsArg > 0 ? (process.argv[portsArg + 1] ?? "").split(",").map(Number) : [1, 10, 100];
const ENV = { PATH: LB_POD_ROOTFS_PATH.join(":") };
/** klipper-lb's SRC_RANGES as k3s's servicelb sets it for a Service without loadBalancerSourceRanges (IPv4). */
const SOURCE_RANGES = "0.0.0.0/0";

const METHODS = ["berth", "berth-nftables", "klipper-lb", "klipper-style"] as const;
type Method = (typeof METHODS)[number];

/** One timed run: ms from the gate to the last rule change, and to the process's exit; the rules it left. */
interface Sample {
  inPlaceMs: number;
  exitMs: number;
  /**
   * The same method run again right after in another new namespace with no monitor, to the exit: the monitor wakes
   * (at realtime priority) on every transaction, and klipper's sides make one per rule where berth makes one per
   * family, so its cost could favour berth. Compared with exitMs, median against median.
   */
  unwatchedExitMs: number;
  rules: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

const round1 = (value: number): number => Math.round(value * 10) / 10;
const round2 = (value: number): number => Math.round(value * 100) / 100;

function ports(count: number): number[] {
  return Array.from({ length: count }, (_, i) => 10000 + i);
}

/** The lower bound: klipper-lb's 4 iptables calls per port (DNAT as older klipper-lb wrote it), all in one sh. */
function klipperStyleScript(count: number): string {
  return ports(count)
    .map((port) =>
      [
        `iptables -t filter -I FORWARD -s ${SOURCE_RANGES} -p tcp --dport ${port} -j ACCEPT`,
        `iptables -t filter -A FORWARD -d ${DESTINATION}/32 -p tcp --dport ${port} -j DROP`,
        `iptables -t nat -I PREROUTING ! -s ${DESTINATION}/32 -p tcp --dport ${port} -j DNAT --to ${DESTINATION}:${port}`,
        `iptables -t nat -I POSTROUTING -d ${DESTINATION}/32 -p tcp -j MASQUERADE`,
      ].join("\n"),
    )
    .join("\n");
}

/**
 * One klipper-lb container, replayed: the commands k3s-io/klipper-lb's `entry` script runs for one port, in order,
 * with its inputs in the same environment variables (SRC_RANGES, DEST_PROTO, SRC_PORT, DEST_PORT, DEST_IPS) and
 * BIN_DIR where it makes its iptables links. Written here from what that script does; the differences, all in
 * klipper-lb's favour or neutral:
 *   - it asks `lsmod | grep -qF nf_tables` and links the nft variant if that finds it, else the legacy one. This
 *     kernel has nf_tables built in and no /proc/modules, so lsmod finds nothing and klipper-lb would pick legacy
 *     here; the replay runs the same lsmod and grep and links the nft variant anyway, as klipper-lb does on a node
 *     whose nf_tables is a loaded module (and as the `nft monitor` clock needs);
 *   - the links go to BIN_DIR, a directory of this container's in the state dir, first on PATH (klipper-lb writes
 *     them to its image's /usr/sbin, which is each container's own copy; here the copies share one tree), and point
 *     at /usr/sbin/xtables-nft-multi by its full path (a relative target would resolve in BIN_DIR);
 *   - IPv4 only: an address with a ":" stops the replay (the benchmark serves IPv4);
 *   - after its rules klipper-lb makes a fifo and blocks on it for the pod's life; the replay exits there.
 * `busybox lsmod` because the image tree has no lsmod link (Alpine's /sbin/lsmod is busybox too).
 */
const KLIPPER_LB_CONTAINER = [
  "set -ex",
  "trap exit TERM INT",
  "set +e",
  "busybox lsmod | grep -qF nf_tables 2>/dev/null",
  "set -e",
  'for link in iptables iptables-save iptables-restore ip6tables; do ln -sf /usr/sbin/xtables-nft-multi "$BIN_DIR/$link"; done',
  "{ set +x; } 2>/dev/null",
  "echo '[INFO] ' nft mode detected",
  "set -x",
  'for range in ${SRC_RANGES//,/ }; do',
  '  if echo $range | grep -Eq ":"; then echo "replay: IPv6 source range $range not replayed" >&2; exit 2; fi',
  '  iptables -t filter -I FORWARD -s $range -p $DEST_PROTO --dport $DEST_PORT -j ACCEPT',
  "done",
  'for address in ${DEST_IPS//,/ }; do',
  '  if echo $address | grep -Eq ":"; then echo "replay: IPv6 destination $address not replayed" >&2; exit 2; fi',
  '  if [ $(cat /proc/sys/net/ipv4/ip_forward) == 1 ]; then',
  '    iptables -t filter -A FORWARD -d $address/32 -p $DEST_PROTO --dport $DEST_PORT -j DROP',
  '    iptables -t nat -I PREROUTING -p $DEST_PROTO --dport $SRC_PORT -j DNAT --to $address:$DEST_PORT',
  '    iptables -t nat -I POSTROUTING -d $address/32 -p $DEST_PROTO -j MASQUERADE',
  "  fi",
  "done",
].join("\n");

/**
 * Starts one replayed container per port ($2...), one after another as a kubelet starts a pod's containers, each
 * running as soon as it is started, and exits once all have, failing if any did. $1 is the container's script.
 */
const KLIPPER_LB_PODS = [
  'container="$1"; shift',
  'pids=""',
  'for port in "$@"; do',
  `  BIN_DIR=/run/berth/klipper-$port PATH=/run/berth/klipper-$port:$PATH SRC_RANGES=${SOURCE_RANGES} DEST_PROTO=tcp ` +
    `SRC_PORT=$port DEST_PORT=$port DEST_IPS=${DESTINATION} sh -c "$container" &`,
  '  pids="$pids $!"',
  "done",
  "status=0",
  'for pid in $pids; do wait "$pid" || status=1; done',
  'exit "$status"',
].join("\n");

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
  switch (method) {
    case "klipper-style":
      return ["sh", "-ec", klipperStyleScript(count)];
    case "klipper-lb":
      return ["sh", "-c", KLIPPER_LB_PODS, "sh", KLIPPER_LB_CONTAINER, ...ports(count).map(String)];
    case "berth-nftables":
      return ["berth-lb-pod", "--once", "--backend", "nftables"];
    case "berth":
      return ["berth-lb-pod", "--once"];
  }
}

/** The rules a method must leave for `count` ports, when fixed (klipper-lb's four per port); berth's are its own. */
function expectedRules(method: Method, count: number): number | undefined {
  return method === "klipper-lb" || method === "klipper-style" ? 4 * count : undefined;
}

async function timeOnce(lab: NetnsLab, rootfs: string, bundles: Map<number, string>, method: Method, count: number, run: number): Promise<Sample> {
  const what = `${method} ${count} ports`;
  const watched = await inNewPodNamespace(lab, `${method.slice(0, 6)}-${count}-${run}`, method, count, async (ns, stateDir) => {
    const monitor = await NftMonitor.start(ns);
    try {
      const from = await monitor.sync();
      const { startedNs, exitedNs } = await timeFromGate(["netns", "exec", ns, ...gatedPodArgs(rootfs, bundles, method, count, stateDir)], what);
      const to = await monitor.sync();
      const rules = rulesInNamespace(ns);
      const expected = expectedRules(method, count);
      if (expected !== undefined && rules !== expected) throw new Error(`${what} left ${rules} rules, not ${expected}`);
      const lines = monitor.between(from, to);
      const early = lines.find((entry) => entry.atNs < startedNs && ruleChange(entry.line) !== 0);
      if (early) throw new Error(`${what}: "${early.line}" arrived before the gate opened`);
      const inPlace = rulesInPlace(lines, rules);
      return { inPlaceMs: Number(inPlace.atNs - startedNs) / 1e6, exitMs: Number(exitedNs - startedNs) / 1e6, rules };
    } finally {
      await monitor.stop();
    }
  });
  // The same run again, in another new namespace with no monitor: gate -> exit only (see Sample.unwatchedExitMs).
  const unwatchedExitMs = await inNewPodNamespace(lab, `u${method.slice(0, 5)}-${count}-${run}`, method, count, async (ns, stateDir) => {
    const { startedNs, exitedNs } = await timeFromGate(["netns", "exec", ns, ...gatedPodArgs(rootfs, bundles, method, count, stateDir)], `${what} (unwatched)`);
    return Number(exitedNs - startedNs) / 1e6;
  });
  return { ...watched, unwatchedExitMs };
}

/** A new pod network namespace (forwarding on) with its state dir, for `body`; both removed afterwards. */
async function inNewPodNamespace<T>(lab: NetnsLab, name: string, method: Method, count: number, body: (ns: string, stateDir: string) => Promise<T>): Promise<T> {
  const [ns] = (await lab.addNamespaces(name)) as [string];
  await lab.sysctls(ns, { "net.ipv4.ip_forward": "1" });
  const stateDir = `/tmp/${ns}-state`;
  mkdirSync(stateDir, { recursive: true });
  // Each replayed klipper-lb container's own writable directory, made before its start as a runtime makes its rootfs.
  if (method === "klipper-lb") for (const port of ports(count)) mkdirSync(`${stateDir}/klipper-${port}`);
  try {
    return await body(ns, stateDir);
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
    await lab.removeNamespaces(ns);
  }
}

/** The chrooted pod command of `method`, waiting at the GATE. */
function gatedPodArgs(rootfs: string, bundles: Map<number, string>, method: Method, count: number, stateDir: string): string[] {
  return podArgs(rootfs, bundles.get(count) ?? "", stateDir, [...GATE, ...argvFor(method, count)]);
}

// In a real pod the container runtime has entered the pod's namespaces and its root before either entrypoint runs;
// neither klipper-lb nor berth pays for that. So each side first gets there (`ip netns exec`, the mount namespace,
// the bind mounts, chroot, env: ~20 ms here, more than klipper's whole work at one port), then waits at this gate
// (a builtin `read`, inside the chroot) and the clock starts when the gate opens: what is timed is the exec of the
// entrypoint (a shell script either way) and its work, up to its last rule change and up to its exit.
const GATE = ["sh", "-c", 'echo at-gate; read -r _; exec "$@"', "sh"];

/** Runs `ip args` (which ends in GATE), waits until it is at the gate, opens it; returns when it opened and when the process exited. */
async function timeFromGate(args: string[], what: string): Promise<{ startedNs: bigint; exitedNs: bigint }> {
  const child = spawn("ip", args, { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let started = 0n;
  const exited = new Promise<{ code: number | null; at: bigint }>((resolve) => child.once("exit", (code) => resolve({ code, at: process.hrtime.bigint() })));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on("data", (chunk: Buffer) => {
    if (started !== 0n) return;
    stdout += chunk.toString();
    if (stdout.includes("at-gate\n")) {
      started = process.hrtime.bigint();
      child.stdin.end("\n");
    }
  });
  const { code, at } = await exited;
  if (code !== 0 || started === 0n) throw new Error(`${what} failed (exit ${code}): ${stderr.slice(-2000)}`);
  return { startedNs: started, exitedNs: at };
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
    // An entrypoint that already failed has nothing left to stop (and no exit event left to wait for).
    if (entry.exitCode === null && entry.signalCode === null) {
      const gone = new Promise((resolve) => entry.once("exit", resolve));
      entry.kill("SIGTERM");
      await gone;
    }
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function roundedSamples(samples: Record<Method, Record<number, Sample[]>>): Record<string, Record<number, Sample[]>> {
  const round3 = (value: number): number => Math.round(value * 1000) / 1000;
  return Object.fromEntries(Object.entries(samples).map(([method, byCount]) => [method, Object.fromEntries(Object.entries(byCount)
    .map(([count, list]) => [count, list.map((s) => ({ inPlaceMs: round3(s.inPlaceMs), exitMs: round3(s.exitMs), unwatchedExitMs: round3(s.unwatchedExitMs), rules: s.rules }))]))]));
}

function firstLine(command: string, args: string[]): string {
  return (spawnSync(command, args, { encoding: "utf8" }).stdout ?? "").split("\n")[0]?.trim() ?? "";
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: the benchmark creates network namespaces");
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error("--runs wants a whole number of at least 1");
  if (PORT_COUNTS.some((count) => !Number.isInteger(count) || count < 1 || count > 1000)) throw new Error("--ports wants port counts from 1 to 1000, comma-separated");
  const loadAtStart = loadavg().map((load) => Math.round(load * 100) / 100);
  const rootfs = await ensureLbPodRootfs(REPO, systemRunner());
  // The memory and probe figures are for 1 port, also when --ports leaves it out.
  const bundles = new Map([...new Set([1, ...PORT_COUNTS])].map((count) => [count, renderBundle(count)]));
  const lab = await NetnsLab.create("bt-bench");
  const samples = Object.fromEntries(METHODS.map((method) => [method, {}])) as Record<Method, Record<number, Sample[]>>;
  try {
    for (const count of PORT_COUNTS) {
      // Interleaved, so a slow moment of the machine hits every method alike.
      for (let run = 0; run < RUNS; run++) {
        for (const method of METHODS) (samples[method][count] ??= []).push(await timeOnce(lab, rootfs.dir, bundles, method, count, run));
      }
    }
    const pod = await setUpPod(lab, rootfs.dir, bundles.get(1) ?? "");

    const of = (method: Method, count: number, clock: keyof Omit<Sample, "rules">): number => median((samples[method][count] ?? []).map((s) => s[clock]));
    const rows = PORT_COUNTS.map((count) => {
      const berth = { inPlace: of("berth", count, "inPlaceMs"), exit: of("berth", count, "exitMs") };
      const klipperLb = { inPlace: of("klipper-lb", count, "inPlaceMs"), exit: of("klipper-lb", count, "exitMs") };
      const lowerBound = { inPlace: of("klipper-style", count, "inPlaceMs"), exit: of("klipper-style", count, "exitMs") };
      return {
        ports: count,
        berthInPlaceMs: round1(berth.inPlace),
        berthExitMs: round1(berth.exit),
        berthNftablesInPlaceMs: round1(of("berth-nftables", count, "inPlaceMs")),
        berthNftablesExitMs: round1(of("berth-nftables", count, "exitMs")),
        klipperLbInPlaceMs: round1(klipperLb.inPlace),
        klipperLbExitMs: round1(klipperLb.exit),
        klipperStyleInPlaceMs: round1(lowerBound.inPlace),
        klipperStyleExitMs: round1(lowerBound.exit),
        berthInPlaceOverKlipperLb: round2(berth.inPlace / klipperLb.inPlace),
        berthInPlaceOverKlipperStyle: round2(berth.inPlace / lowerBound.inPlace),
        berthExitOverKlipperLbExit: round2(berth.exit / klipperLb.exit),
        berthExitOverKlipperStyleExit: round2(berth.exit / lowerBound.exit),
        berthNftablesInPlaceOverKlipperLb: round2(of("berth-nftables", count, "inPlaceMs") / klipperLb.inPlace),
        // Without the monitor (Sample.unwatchedExitMs): the exit ratios again, and what the monitor cost each side.
        berthUnwatchedExitMs: round1(of("berth", count, "unwatchedExitMs")),
        klipperLbUnwatchedExitMs: round1(of("klipper-lb", count, "unwatchedExitMs")),
        klipperStyleUnwatchedExitMs: round1(of("klipper-style", count, "unwatchedExitMs")),
        berthUnwatchedExitOverKlipperLb: round2(of("berth", count, "unwatchedExitMs") / of("klipper-lb", count, "unwatchedExitMs")),
        berthUnwatchedExitOverKlipperStyle: round2(of("berth", count, "unwatchedExitMs") / of("klipper-style", count, "unwatchedExitMs")),
      };
    });
    // The clocks checked against each other: in place can come after the exit only by the monitor's latency, and for
    // the klipper sides, whose last act is their last rule, the two should be within about a millisecond.
    const checks = METHODS.flatMap((method) => PORT_COUNTS.map((count) => {
      const gaps = (samples[method][count] ?? []).map((s) => s.exitMs - s.inPlaceMs);
      return { method, ports: count, exitMinusInPlaceMsMedian: round1(median(gaps)), exitMinusInPlaceMsMin: round1(Math.min(...gaps)),
        rules: samples[method][count]?.[0]?.rules ?? 0 };
    }));

    const cell = (inPlace: number, exit: number, width: number): string => `${inPlace.toFixed(1)} / ${exit.toFixed(1)}`.padStart(width);
    console.log(`\nlb-pod (image tree, chrooted): median ms from the gate to rules in place / to exit (${RUNS} runs each, fresh namespace per run)`);
    console.log("ports | berth (iptables-nft) | berth (nftables) | klipper-lb replay | klipper-style lower bound");
    for (const row of rows) {
      console.log(`${String(row.ports).padStart(5)} | ${cell(row.berthInPlaceMs, row.berthExitMs, 20)} | ${cell(row.berthNftablesInPlaceMs, row.berthNftablesExitMs, 16)} | ` +
        `${cell(row.klipperLbInPlaceMs, row.klipperLbExitMs, 17)} | ${cell(row.klipperStyleInPlaceMs, row.klipperStyleExitMs, 25)}`);
    }
    console.log("\nratios of medians | berth in place / klipper-lb in place | berth in place / lower bound | berth exit / klipper-lb exit | berth exit / lower bound exit");
    for (const row of rows) {
      console.log(`${String(row.ports).padStart(17)} | ${String(row.berthInPlaceOverKlipperLb).padStart(36)} | ${String(row.berthInPlaceOverKlipperStyle).padStart(28)} | ` +
        `${String(row.berthExitOverKlipperLbExit).padStart(28)} | ${String(row.berthExitOverKlipperStyleExit).padStart(29)}`);
    }
    console.log("\nthe monitor's own cost: median ms to exit, watched / unwatched (each run also again in a namespace with no monitor)");
    console.log("ports | berth (iptables-nft) | klipper-lb replay | klipper-style lower bound | unwatched berth / klipper-lb | unwatched berth / lower bound");
    for (const row of rows) {
      console.log(`${String(row.ports).padStart(5)} | ${cell(row.berthExitMs, row.berthUnwatchedExitMs, 20)} | ${cell(row.klipperLbExitMs, row.klipperLbUnwatchedExitMs, 17)} | ` +
        `${cell(row.klipperStyleExitMs, row.klipperStyleUnwatchedExitMs, 25)} | ${String(row.berthUnwatchedExitOverKlipperLb).padStart(28)} | ${String(row.berthUnwatchedExitOverKlipperStyle).padStart(29)}`);
    }
    console.log("\nclock check: exit minus in place, ms (median, smallest; negative = the last rule change arrived after the exit)");
    for (const check of checks) {
      console.log(`  ${check.method.padEnd(14)} ${String(check.ports).padStart(3)} ports (${check.rules} rules): ${check.exitMinusInPlaceMsMedian}, ${check.exitMinusInPlaceMsMin}`);
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
      // inPlaceMs: gate -> the last rule change reported by nft monitor; exitMs: gate -> the process's exit.
      applyMs: { medians: rows, clockCheck: checks, samples: roundedSamples(samples) },
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
