// "Rules in place", timed from the kernel's side: a `nft monitor` in the measured network namespace reports every
// change of its nf_tables ruleset as the transaction commits, and each line gets the time it reached the benchmark.
// iptables-nft and the nftables backend both program nf_tables, so the one watcher fits berth's backends, klipper-lb's
// iptables calls and any entrypoint, without asking the process under test anything. The moment the rules are in
// place is the arrival of the last rule change before the process exited (later changes would be a bug, and are
// caught by the count below). What makes the figure trustworthy:
//   - the monitor is known to listen before the clock starts, and to have reported every change made before the
//     count: sync() adds and deletes a throwaway table and waits for its delete event, and netlink delivers a
//     socket's notifications in commit order;
//   - the net number of rules the monitor saw added (add/insert +1, delete -1; nft reports a replace as delete + add
//     and a deleted table's rules one by one) must equal the number of rules the namespace holds afterwards
//     (`nft -j list ruleset`), so a lost event (e.g. a netlink buffer overrun) fails the run instead of moving the
//     figure.
// The pure parts (ruleChange, rulesInPlace, countRules) are table-tested in test/unit/bench/nft-monitor.test.ts.
import { spawn, spawnSync, type ChildProcessByStdio } from "node:child_process";
import type { Readable } from "node:stream";

/** The host's nft, run inside the namespace with `ip netns exec` (not the image's: the watcher is not part of the pod). */
const NFT = "/usr/sbin/nft";
const SYNC_TIMEOUT_MS = 10_000;

/** One line of `nft monitor` output and when (process.hrtime.bigint()) its newline reached this process. */
export interface MonitorLine {
  atNs: bigint;
  line: string;
}

/** +1 for a rule added (`add rule`, `insert rule`), -1 for a rule deleted, 0 for any other line (tables, chains, generations). */
export function ruleChange(line: string): number {
  const verb = /^(add|insert|delete) rule /.exec(line)?.[1];
  if (verb === undefined) return 0;
  return verb === "delete" ? -1 : 1;
}

/**
 * When the last rule change arrived, given the monitor's lines between the gate and the closing sync and the number
 * of rules the namespace holds afterwards. Throws when the lines do not account for exactly that many rules.
 */
export function rulesInPlace(lines: readonly MonitorLine[], finalRules: number): { atNs: bigint; changes: number } {
  let net = 0;
  let changes = 0;
  let atNs: bigint | undefined;
  for (const { atNs: at, line } of lines) {
    const change = ruleChange(line);
    if (change === 0) continue;
    net += change;
    changes++;
    atNs = at;
  }
  if (net !== finalRules) {
    throw new Error(`nft monitor saw a net ${net} rules added but the namespace holds ${finalRules}: a change was missed, the figure would be wrong`);
  }
  if (atNs === undefined) throw new Error("nft monitor saw no rule change: nothing was applied");
  return { atNs, changes };
}

/** The number of rules in `nft -j list ruleset` output (every family and table: iptables-nft's and nft's alike). */
export function countRules(json: string): number {
  const parsed = JSON.parse(json) as { nftables?: Record<string, unknown>[] };
  if (!Array.isArray(parsed.nftables)) throw new Error("nft -j list ruleset printed no \"nftables\" array");
  return parsed.nftables.filter((entry) => "rule" in entry).length;
}

/** Rules the namespace holds now, counted by the host's nft. */
export function rulesInNamespace(ns: string): number {
  const listed = spawnSync("ip", ["netns", "exec", ns, NFT, "-j", "list", "ruleset"], { encoding: "utf8" });
  if (listed.status !== 0) throw new Error(`nft -j list ruleset in ${ns} failed: ${listed.stderr}`);
  return countRules(listed.stdout);
}

/** A running `nft monitor` in one namespace, its lines timestamped as they arrive. */
export class NftMonitor {
  private readonly lines: MonitorLine[] = [];
  private partial = "";
  private stderr = "";
  private syncs = 0;
  private waiter: (() => void) | undefined;
  private exited = false;

  private constructor(private readonly ns: string, private readonly child: ChildProcessByStdio<null, Readable, Readable>) {
    child.stdout.on("data", (chunk: Buffer) => {
      const atNs = process.hrtime.bigint();
      const parts = (this.partial + chunk.toString()).split("\n");
      this.partial = parts.pop() ?? "";
      for (const line of parts) this.lines.push({ atNs, line });
      this.waiter?.();
    });
    child.stderr.on("data", (chunk: Buffer) => (this.stderr += chunk.toString()));
    child.once("exit", () => {
      this.exited = true;
      this.waiter?.();
    });
  }

  /** Starts the monitor in `ns` and returns once it is known to be listening. */
  static async start(ns: string): Promise<NftMonitor> {
    // nft writes to a pipe through stdio: stdbuf -oL makes it hand over each line as it prints it, not per 4 KiB.
    // chrt -f: realtime priority, so that on a busy machine the monitor runs as soon as the kernel notifies it instead
    // of waiting for a time slice (tens of ms at load 10 on 2 cores); it then costs the measured process what it would
    // cost anyway (parsing and printing each change), only sooner. What remains is this process's own wake-up, which
    // the exit clock pays too.
    const child = spawn("ip", ["netns", "exec", ns, "chrt", "-f", "10", "stdbuf", "-oL", NFT, "monitor"], { stdio: ["ignore", "pipe", "pipe"] });
    const monitor = new NftMonitor(ns, child);
    try {
      await monitor.sync();
    } catch (error) {
      await monitor.stop();
      throw error;
    }
    return monitor;
  }

  /**
   * Adds and deletes a throwaway table and waits until the monitor reports the delete. Returns the number of lines
   * seen up to and including that report: every change committed before this call is among them.
   */
  async sync(): Promise<number> {
    const table = `bench_sync_${++this.syncs}`;
    const script = `add table ip ${table}\ndelete table ip ${table}\n`;
    const marker = `delete table ip ${table}`;
    const started = Date.now();
    // nft may not have subscribed yet on the first call: repeat the marker until it is seen.
    for (;;) {
      const done = spawnSync("ip", ["netns", "exec", this.ns, NFT, "-f", "-"], { input: script, encoding: "utf8" });
      if (done.status !== 0) throw new Error(`nft -f (the monitor's sync) in ${this.ns} failed: ${done.stderr}`);
      const retryAt = Date.now() + 200;
      while (Date.now() < retryAt) {
        const index = this.lines.findIndex((entry) => entry.line === marker);
        if (index >= 0) return index + 1;
        if (this.exited) throw new Error(`nft monitor in ${this.ns} exited: ${this.stderr.trim()}`);
        if (Date.now() - started > SYNC_TIMEOUT_MS) throw new Error(`nft monitor in ${this.ns} reported no change within ${SYNC_TIMEOUT_MS} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 20);
          this.waiter = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.waiter = undefined;
      }
    }
  }

  /** The lines from index `from` (a sync()'s result) up to `to`. */
  between(from: number, to: number): MonitorLine[] {
    return this.lines.slice(from, to);
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGTERM");
    await gone;
  }
}
