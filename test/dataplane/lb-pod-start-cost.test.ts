// What the lb-pod's entrypoint starts and creates on its way to "rules in place" in a new pod's namespace, where its
// time at one port is mostly process starts and the kernel's work per table (docs/design/0013, "Fewer process
// starts"): the netfilter tools it execs, counted with strace around the chrooted entrypoint, and the tables left in
// the namespace. Everything else it does (the choice of backend, removing earlier rules) is in lb-pod-lifecycle.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { skipBecause } from "../support/skip.js";
import { ADDR, rootDataplaneSuite } from "./lb-pod-fixture.js";

/** The netfilter tools (nft, ip(6)tables*, conntrack) the command `ip netns exec ns ...args` execs, with their arguments, sorted. */
function netfilterExecs(ns: string, args: string[]): { status: number | null; execs: string[]; stderr: string } {
  // -ff: one trace file per process, so an exec is never split over two lines by another process's (-f alone
  // writes "execve(...) <unfinished ...>" and "<... execve resumed>) = 0" when processes run in parallel).
  const dir = mkdtempSync(`/tmp/${ns}-strace-`);
  try {
    const run = spawnSync("strace", ["-ff", "-qq", "-e", "trace=execve", "-o", join(dir, "trace"), "ip", "netns", "exec", ns, ...args], { encoding: "utf8" });
    const execs = readdirSync(dir).flatMap((file) => readFileSync(join(dir, file), "utf8").split("\n"))
      // A successful exec: `execve("/usr/sbin/nft", ["nft", "list", "tables"], ...) = 0` (PATH lookups fail with ENOENT).
      .filter((line) => / = 0$/.test(line))
      .map((line) => /execve\("[^"]*", \[(.*?)\]/.exec(line)?.[1] ?? "")
      .map((argv) => [...argv.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]).join(" "))
      .filter((argv) => /^(nft|iptables|ip6tables|conntrack)/.test(argv));
    return { status: run.status, execs: execs.sort(), stderr: run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("lb-pod data plane: start cost in a new namespace", function () {
  const topologies = rootDataplaneSuite();

  before(function () {
    if (spawnSync("strace", ["-V"]).status !== 0) skipBecause(this, "strace is not installed (scripts/install-deps.sh installs it)");
  });

  it("execs one restore per family and one verifying save in a new namespace, nothing before the restores; it looks (nft list tables, saves) once it has tables (a restarted container)", async () => {
    const t = await topologies.create();
    assert.equal((await t.render({ ports: ["tcp:80:8080"], destinations: [ADDR.ipv4.b2, ADDR.ipv6.b2] })).exitCode, 0);
    const fresh = netfilterExecs(t.pod, await t.podArgs(["berth-lb-pod", "--once"]));
    assert.equal(fresh.status, 0, fresh.stderr);
    assert.deepEqual(fresh.execs, ["ip6tables-nft-restore --noflush", "ip6tables-nft-save", "iptables-nft-restore --noflush", "iptables-nft-save"]);
    assert.equal(await t.lab.ask(t.client, { protocol: "tcp", ip: ADDR.ipv4.pod, port: 80 }), "b2");
    assert.equal(await t.lab.ask(t.client, { protocol: "tcp", ip: ADDR.ipv6.pod, port: 80 }), "b2");
    // Again in the same namespace: the state dir says it ran here before, so it looks: `nft list tables`, then both
    // nft saves (to find the earlier jumps), not the legacy ones (/proc lists no legacy table), and the result is the
    // same ruleset, not a second copy of the jumps.
    const again = netfilterExecs(t.pod, await t.podArgs(["berth-lb-pod", "--once"]));
    assert.equal(again.status, 0, again.stderr);
    assert.ok(again.execs.includes("nft list tables"), again.execs.join("\n"));
    assert.deepEqual(again.execs.filter((argv) => argv.includes("-save")), ["ip6tables-nft-save", "ip6tables-nft-save", "iptables-nft-save", "iptables-nft-save"]);
    assert.equal((await t.probe()).exitCode, 0);
  });

  it("a namespace that is not new although the state dir says so (state lost, rules kept): the fresh restore refuses, it looks, and the jumps are not doubled", async () => {
    const t = await topologies.create();
    const config = { ports: ["tcp:80:8080", "udp:53:5353"], destinations: [ADDR.ipv4.b2, ADDR.ipv6.b2] };
    assert.equal((await t.render(config)).exitCode, 0);
    const first = netfilterExecs(t.pod, await t.podArgs(["berth-lb-pod", "--once"]));
    assert.equal(first.status, 0, first.stderr);
    rmSync(t.stateDir, { recursive: true, force: true });
    const again = netfilterExecs(t.pod, await t.podArgs(["berth-lb-pod", "--once"]));
    assert.equal(again.status, 0, again.stderr);
    // The fast path tried (one restore) and was refused; then the look and the diffing restore.
    assert.deepEqual(again.execs.filter((argv) => argv.startsWith("iptables-nft-restore")), ["iptables-nft-restore --noflush", "iptables-nft-restore --noflush"]);
    assert.ok(again.execs.includes("nft list tables"), again.execs.join("\n"));
    for (const tool of ["iptables-nft-save", "ip6tables-nft-save"]) {
      const saved = (await t.lab.exec(t.pod, tool, [])).stdout;
      assert.equal(saved.match(/-j BERTH-DNAT$/gm)?.length, 1, `${tool}:\n${saved}`);
      assert.equal(saved.match(/-j BERTH-MASQ$/gm)?.length, 1, `${tool}:\n${saved}`);
    }
    assert.equal((await t.probe()).exitCode, 0);
    assert.equal(await t.lab.ask(t.client, { protocol: "tcp", ip: ADDR.ipv4.pod, port: 80 }), "b2");
  });

  it("creates only the tables its rules need: no mangle table without source ranges, and a mangle chain of an earlier configuration is still removed", async () => {
    const t = await topologies.create();
    const tables = async (): Promise<string> => (await t.lab.exec(t.pod, "nft", ["list", "tables"])).stdout.trim();
    assert.equal((await t.apply({ ports: ["tcp:80:8080"], destinations: [ADDR.ipv4.b2] })).exitCode, 0);
    assert.equal(await tables(), "table ip nat");
    // With source ranges the filtering chains live in mangle; without them again, they go, the table stays (empty).
    const ranged = await t.apply({ ports: ["tcp:80:8080"], destinations: [ADDR.ipv4.b2], sourceRanges: [`${ADDR.ipv4.client}/32`] });
    assert.equal(ranged.exitCode, 0, ranged.stderr);
    assert.match((await t.lab.exec(t.pod, "iptables-nft-save", ["-t", "mangle"])).stdout, /^:BERTH-/m);
    const back = await t.apply({ ports: ["tcp:80:8080"], destinations: [ADDR.ipv4.b2] });
    assert.equal(back.exitCode, 0, back.stderr);
    assert.doesNotMatch((await t.lab.exec(t.pod, "iptables-nft-save", ["-t", "mangle"])).stdout, /BERTH/);
    assert.equal((await t.probe()).exitCode, 0);
  });
});
