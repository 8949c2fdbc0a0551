// build/ keeps the lb-pod tree of the current inputs and the one before it; older ones go when a new one is built,
// unless a live process uses them (src/sandbox/cluster/kubelet/rootfs.ts pruneLbPodRootfs).
//
// The builds here use a stand-in for scripts/build-lb-pod-rootfs.sh (a real build copies ~10 MiB of tools and takes
// seconds): like the script, it writes the tree at OUT and its size in bytes to OUT.size, which is all that
// ensureLbPodRootfs and the pruning read. The processes using a tree are real ones (sleep), recorded as
// ensureLbPodRootfs records its caller, or running inside the tree (their working directory).
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

import type { CommandRunner, RunResult } from "../../../src/lib/exec.js";
import { ensureLbPodRootfs, LB_POD_ROOTFS_INPUTS, treesToRemove, type BuiltTree } from "../../../src/sandbox/cluster/kubelet/rootfs.js";

describe("sandbox: which old lb-pod trees go (pure)", () => {
  const tree = (name: string, finishedMs: number, inUse = false): BuiltTree => ({ name, finishedMs, inUse });
  const rows: { name: string; trees: BuiltTree[]; current: string; want: string[] }[] = [
    { name: "only the current one: nothing", trees: [tree("c", 3)], current: "c", want: [] },
    { name: "the current and the one before: nothing", trees: [tree("b", 2), tree("c", 3)], current: "c", want: [] },
    { name: "three: the oldest goes", trees: [tree("a", 1), tree("b", 2), tree("c", 3)], current: "c", want: ["a"] },
    { name: "an older one in use stays", trees: [tree("a", 1, true), tree("b", 2), tree("c", 3), tree("z", 0)], current: "c", want: ["z"] },
    {
      name: "the current one is kept even when it is not the newest (inputs changed back), with the newest other",
      trees: [tree("a", 1), tree("b", 5), tree("c", 3)], current: "a", want: ["c"],
    },
    { name: "four, the second oldest in use: only the oldest goes", trees: [tree("a", 1), tree("b", 2, true), tree("c", 3), tree("d", 4)], current: "d", want: ["a"] },
  ];
  for (const row of rows) {
    it(row.name, () => {
      assert.deepEqual(treesToRemove(row.trees, row.current).sort(), row.want.sort());
    });
  }
});

describe("sandbox: building a new lb-pod tree removes the old ones nobody uses", function () {
  this.timeout(20_000);
  let repo = "";
  const children: ChildProcess[] = [];

  // The script's contract: the tree at OUT, its size in bytes in OUT.size.
  const stubBuild: CommandRunner = {
    run(file: string, args: readonly string[]): Promise<RunResult> {
      const out = args[1] as string;
      mkdirSync(join(out, "usr/bin"), { recursive: true });
      writeFileSync(join(out, "usr/bin/berth-lb-pod"), "#!/bin/sh\n");
      writeFileSync(`${out}.size`, "10\n");
      return Promise.resolve({ command: `${file} ${args.join(" ")}`, exitCode: 0, stdout: "", stderr: "", signal: null } as unknown as RunResult);
    },
  };
  let edits = 0;
  /** An edit of the inputs, then a build; the tree's finish time is set so the order is unambiguous. */
  const build = async (): Promise<string> => {
    edits++;
    writeFileSync(join(repo, "bin/berth-lb-pod"), `#!/bin/sh\n# edit ${edits}\n`);
    const { dir } = await ensureLbPodRootfs(repo, stubBuild);
    const at = new Date(Date.UTC(2026, 11, 7, 20, edits));
    utimesSync(`${dir}.size`, at, at);
    return basename(dir);
  };
  const trees = (): string[] => readdirSync(join(repo, "build")).filter((n) => /^lb-pod-rootfs-[0-9a-f]{12}$/.test(n)).sort();
  const sleeper = (cwd?: string): ChildProcess => {
    const child = spawn("sleep", ["60"], { stdio: "ignore", ...(cwd ? { cwd } : {}) });
    children.push(child);
    return child;
  };
  const stop = (child: ChildProcess): Promise<void> => new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });

  beforeEach(() => {
    repo = mkdtempSync(join(tmpdir(), "bt-rootfs-prune-"));
    edits = 0;
    for (const input of LB_POD_ROOTFS_INPUTS) {
      mkdirSync(join(repo, input, ".."), { recursive: true });
      writeFileSync(join(repo, input), `${input}\n`);
    }
  });
  afterEach(async () => {
    await Promise.all(children.splice(0).filter((c) => c.exitCode === null && c.signalCode === null).map(stop));
    rmSync(repo, { recursive: true, force: true });
  });

  it("keeps the current tree and the one before; an older one stays while a live process uses it", async () => {
    const a = await build();
    // Another process that resolved tree a (as ensureLbPodRootfs records its caller) and is still running.
    const userOfA = sleeper();
    writeFileSync(join(repo, "build", `${a}.users`, String(userOfA.pid)), "");
    const b = await build();
    // A process running inside tree b (a chrooted lb-pod's root, here a working directory).
    const insideB = sleeper(join(repo, "build", b));
    const c = await build();
    assert.deepEqual(trees(), [a, b, c].sort(), "three trees: nothing old enough to go yet");
    const d = await build();
    assert.deepEqual(trees(), [a, b, c, d].sort(), "a and b are in use, c is the one before d");

    // Both users gone; what a killed build left behind goes too.
    await stop(userOfA);
    await stop(insideB);
    const leftover = join(repo, "build", `${a}.tmp-${userOfA.pid}`);
    mkdirSync(leftover);
    writeFileSync(`${leftover}.size`, "1\n");
    const e = await build();
    assert.deepEqual(trees(), [d, e].sort());
    assert.equal(existsSync(leftover) || existsSync(`${leftover}.size`), false, "a dead build's tmp tree removed");
    assert.deepEqual(readdirSync(join(repo, "build")).filter((n) => n.startsWith(a) || n.startsWith(b) || n.startsWith(c)), [],
      "nothing of the removed trees left (size files, user records)");
  });

  it("inputs changed back: the existing tree is found, nothing removed, and this process recorded as its user only", async () => {
    const a = await build();
    const b = await build();
    writeFileSync(join(repo, "bin/berth-lb-pod"), "#!/bin/sh\n# edit 1\n");
    const { dir } = await ensureLbPodRootfs(repo, stubBuild);
    assert.equal(basename(dir), a);
    assert.deepEqual(trees(), [a, b].sort());
    const users = (tree: string): string[] => readdirSync(join(repo, "build", `${tree}.users`));
    assert.deepEqual([users(a), users(b)], [[String(process.pid)], []]);
  });
});
