// The README's promise, end to end: `berth sandbox up --demo` (the built CLI, its own prefix) prints the real
// kubectl's table and one answer per EXTERNAL-IP fetched from the client namespace, every node answering from its own
// pod and seeing the client's own address (externalTrafficPolicy Local), and beside it a VIP-mode Service on the same
// port with an address of its own from the sandbox's pool, answered too; `berth sandbox down` then leaves no
// namespace, host link, host rule, process or state file behind, is idempotent, and also cleans up after a
// supervisor that was killed outright. Needs root.
import { strict as assert } from "node:assert";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { systemRunner, type RunResult } from "../../src/lib/exec.js";
import { LB_POD_ROOTFS_INPUTS, ensureLbPodRootfs } from "../../src/sandbox/cluster/kubelet/rootfs.js";
import { Supervisor } from "../../src/sandbox/cluster/supervisor.js";
import { needsRoot, skipBecause } from "../support/skip.js";
import { hostLinks, hostRules } from "./fixture.js";

const REPO = new URL("../../", import.meta.url).pathname;
const BERTH = join(REPO, "bin", "berth");
const STATE_ROOT = "/run/berth-sandbox";
/** Own prefix pattern (not the e2e fixture's `e2e<letter><pid>`): `bsd<pid in base 36>`. */
const PREFIX = `bsd${process.pid.toString(36)}`;

const runner = systemRunner();
const berth = (args: string[], timeoutMs = 120_000): Promise<RunResult> => runner.run(BERTH, [...args, "--prefix", PREFIX], { timeoutMs });

async function sandboxNamespaces(): Promise<string[]> {
  const list = await runner.run("ip", ["netns", "list"]);
  return list.stdout.split("\n").map((line) => line.split(" ")[0] ?? "").filter((name) => name.startsWith(`${PREFIX}-`));
}

/** Processes whose command line names this sandbox (its supervisor, its controller, anything given its kubeconfig). */
function sandboxProcesses(): string[] {
  const found: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ");
    } catch {
      continue;
    }
    if (cmdline.includes(`--prefix ${PREFIX}`) || cmdline.includes(join(STATE_ROOT, PREFIX))) found.push(`${entry}: ${cmdline.trim()}`);
  }
  return found;
}

async function assertNothingLeft(before: { links: string[]; rules: string }): Promise<void> {
  assert.deepEqual(await sandboxNamespaces(), [], "network namespaces left behind");
  assert.equal(existsSync(join(STATE_ROOT, PREFIX)), false, "state directory left behind");
  assert.deepEqual(sandboxProcesses(), [], "processes left behind");
  assert.deepEqual(await hostLinks(runner), before.links, "the host's links changed");
  assert.equal(await hostRules(runner), before.rules, "the host's netfilter rules changed");
}

describe("e2e: berth sandbox up --demo and down (the README's first command)", function () {
  this.timeout(240_000);
  let hostBefore = { links: [] as string[], rules: "" };

  before(async function () {
    const reason = needsRoot();
    if (reason) skipBecause(this, reason);
    if (!existsSync(join(REPO, "dist", "cli.js"))) skipBecause(this, "dist/cli.js is missing: run `npm run build` first (the test command does)");
    // A crashed earlier run of this same process id cannot exist, but a stale directory from a reused pid could.
    await berth(["sandbox", "down"]);
    hostBefore = { links: await hostLinks(runner), rules: await hostRules(runner) };
  });

  after(async () => {
    if (existsSync(join(STATE_ROOT, PREFIX)) || (await sandboxNamespaces()).length > 0) await berth(["sandbox", "down"]);
  });

  it("shows every node's EXTERNAL-IP answering from the pod on that node, seeing the client's own address, and a VIP Service's own address answering", async () => {
    const started = Date.now();
    const up = await berth(["sandbox", "up", "--demo", "--nodes", "3"]);
    const seconds = (Date.now() - started) / 1000;
    assert.equal(up.exitCode, 0, `sandbox up --demo failed after ${seconds} s:\n${up.stdout}${up.stderr}`);
    console.log(`      (sandbox up --demo with 3 nodes took ${seconds.toFixed(1)} s)`);
    // kubectl's own table: the demo Service with every node's LAN address as EXTERNAL-IP.
    assert.match(up.stdout, /^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)/m);
    assert.match(up.stdout, /^berth-demo\s+LoadBalancer\s+10\.43\.\S+\s+198\.18\.0\.11,198\.18\.0\.12,198\.18\.0\.13\s+80:\d+\/TCP/m);
    for (const [i, ip] of ["198.18.0.11", "198.18.0.12", "198.18.0.13"].entries()) {
      const line = new RegExp(`^http://${ip.replace(/\./g, "\\.")}:80 -> pod (berth-demo-\\S+) on node-${i + 1} saw client 198\\.18\\.0\\.100:\\d+$`, "m");
      assert.match(up.stdout, line, `no answer from node-${i + 1}'s own pod for ${ip}:\n${up.stdout}`);
    }
    // The VIP-mode Service: on the same port, one address from the pool sandbox-lan (198.18.0.200-250), answered
    // from the client by the pod on the announcing node (Local), which sees the client's own address.
    const vip = /^berth-demo-vip\s+LoadBalancer\s+10\.43\.\S+\s+(198\.18\.0\.2\d\d)\s+80:\d+\/TCP/m.exec(up.stdout)?.[1];
    assert.ok(vip, `no berth-demo-vip row with an address from the pool in the table:\n${up.stdout}`);
    assert.match(up.stdout, new RegExp(`^http://${vip.replace(/\./g, "\\.")}:80 -> pod berth-demo-\\S+ on node-\\d saw client 198\\.18\\.0\\.100:\\d+$`, "m"),
      `no answer from the VIP ${vip}:\n${up.stdout}`);
    assert.match(up.stdout, /^next: .*sandbox kubeconfig --prefix /m);
    assert.ok(seconds < 90, `sandbox up --demo took ${seconds} s`);

    const status = await berth(["sandbox", "status"], 20_000);
    assert.equal(status.exitCode, 0, status.stdout + status.stderr);
    assert.match(status.stdout, new RegExp(`\\(prefix ${PREFIX}\\): up since`));
  });

  it("down removes every namespace, process, host link, host rule and file it made, and a second down has nothing to do", async () => {
    const down = await berth(["sandbox", "down"], 90_000);
    assert.equal(down.exitCode, 0, down.stdout + down.stderr);
    assert.match(down.stdout, /stopped the supervisor/);
    await assertNothingLeft(hostBefore);
    const again = await berth(["sandbox", "down"], 60_000);
    assert.equal(again.exitCode, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /nothing to remove/);
  });

  it("down cleans up after a supervisor killed outright (SIGKILL), its controller and pods orphaned", async () => {
    const up = await berth(["sandbox", "up", "--nodes", "1"]);
    assert.equal(up.exitCode, 0, up.stdout + up.stderr);
    const state = JSON.parse(readFileSync(join(STATE_ROOT, PREFIX, "state.json"), "utf8")) as { pid: number; controllerPid?: number };
    assert.ok(state.controllerPid, "state.json names the controller");
    process.kill(state.pid, "SIGKILL");
    // The crash left the controller and the namespaces in place: `up` now refuses, in one line, pointing at down.
    const refused = await berth(["sandbox", "up", "--nodes", "1"], 30_000);
    assert.equal(refused.exitCode, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr.trim(), new RegExp(`^berth: leftovers of an earlier sandbox with prefix ${PREFIX} .*run \`berth sandbox down --prefix ${PREFIX}\` first$`));
    const down = await berth(["sandbox", "down"], 90_000);
    assert.equal(down.exitCode, 0, down.stdout + down.stderr);
    assert.match(down.stdout, /killed the processes left in its process group/);
    assert.match(down.stdout, /removed \d+ leftover network namespaces/);
    await assertNothingLeft(hostBefore);
  });

  it("a part that fails to start takes down what started before it, and the error names the part and its log", async () => {
    // A repository without dist/cli.js: the controller, the last part, cannot start; the network came up before it.
    const repo = mkdtempSync(join(tmpdir(), "berth-sandbox-norepo-"));
    // It does have the lb-pod image's tree (an earlier part): its inputs, and build/ where the tree already is.
    for (const input of LB_POD_ROOTFS_INPUTS) cpSync(join(REPO, input), join(repo, input));
    await ensureLbPodRootfs(REPO, runner);
    symlinkSync(join(REPO, "build"), join(repo, "build"));
    const stateRoot = mkdtempSync(join(tmpdir(), "berth-sandbox-state-"));
    const prefix = `bsf${process.pid.toString(36)}`;
    try {
      const supervisor = new Supervisor({ prefix, nodes: 1, dualStack: false, captureLoadBalancerIps: true, controllerReplicas: 1, repoDir: repo, nodeBinary: process.execPath, stateRoot });
      await assert.rejects(supervisor.start(), (err: Error) => {
        assert.match(err.message, new RegExp(`^controller failed: exited \\(code 1\\) before it was ready: .*Cannot find module .*\\(log: ${stateRoot}/${prefix}/logs/controller\\.log\\)$`));
        return true;
      });
      const list = await runner.run("ip", ["netns", "list"]);
      assert.deepEqual(list.stdout.split("\n").filter((line) => line.startsWith(`${prefix}-`)), [], "the network was not taken down");
      assert.equal(existsSync(join(stateRoot, prefix, "state.json")), false);
    } finally {
      await runner.run(BERTH, ["sandbox", "down", "--prefix", prefix], { timeoutMs: 60_000 });
      rmSync(repo, { recursive: true, force: true });
      rmSync(stateRoot, { recursive: true, force: true });
    }
  });
});
