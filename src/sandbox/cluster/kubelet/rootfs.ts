// Running a container from an image's root filesystem, as a container runtime does, without one: the lb-pod image's
// tree (scripts/build-lb-pod-rootfs.sh, the same script images/lb-pod/Dockerfile runs) is entered with chroot inside
// the pod's network namespace and a private mount namespace, so the lb-pod sees only the image's own files. runc does
// the same with pivot_root (opencontainers/runc libcontainer/rootfs_linux.go: prepareRoot, mountToRootfs, then
// pivotRoot): mounts of /proc and /dev and of the pod's volumes inside the new root first, then the switch. Here
// /proc and /dev are the host's, bound in (a runtime mounts a fresh procfs in a PID namespace of the container's;
// /proc/sys/net, which is what the lb-pod reads, is the reading process's network namespace either way).
//
// The tree is content-addressed: built once per version of its inputs under build/, so tests, the sandbox and the
// benchmark never run an lb-pod from a stale tree, and parallel runs never build over each other. Each build of a
// new version removes the older trees nobody uses any more (pruneLbPodRootfs): ~10 MiB each, one per edit of an
// input otherwise.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { runChecked, type CommandRunner } from "../../../lib/exec.js";

/** What the tree is built from (relative to the repository): a change to any of them means a new tree. */
export const LB_POD_ROOTFS_INPUTS = ["scripts/build-lb-pod-rootfs.sh", "bin/berth-lb-pod", "bin/berth-lb-pod-check", "bin/berth-wait",
  "images/lb-pod/berth-sigwait.c"] as const;

/** The lb-pod image's entrypoint and PATH inside its tree (images/lb-pod/Dockerfile says the same). */
export const LB_POD_ROOTFS_ENTRYPOINT = ["/usr/bin/berth-lb-pod"];
export const LB_POD_ROOTFS_PATH = ["/usr/sbin", "/usr/bin"];

/** build/lb-pod-rootfs-<hash of the inputs>: where the tree for the repository's current inputs is (or will be). */
export function lbPodRootfsDir(repoDir: string): string {
  const hash = createHash("sha256");
  for (const input of LB_POD_ROOTFS_INPUTS) hash.update(`${input}\0`).update(readFileSync(join(repoDir, input)));
  return join(repoDir, "build", `lb-pod-rootfs-${hash.digest("hex").slice(0, 12)}`);
}

/**
 * Builds the tree for the current inputs unless it exists; returns its directory and size in bytes. The calling
 * process is recorded as the tree's user (and as no other tree's) until it exits; after building a new tree, older
 * ones are pruned (pruneLbPodRootfs).
 */
export async function ensureLbPodRootfs(repoDir: string, runner: CommandRunner): Promise<{ dir: string; bytes: number }> {
  const dir = lbPodRootfsDir(repoDir);
  // Recorded before looking for the tree: a pruner that has not seen the record yet has not removed the tree yet
  // either (it looks at the records first), so this process never starts on a tree being removed.
  recordUser(dir);
  if (!existsSync(`${dir}.size`)) {
    const tmp = `${dir}.tmp-${process.pid}`;
    try {
      await runChecked(runner, "sh", [join(repoDir, "scripts/build-lb-pod-rootfs.sh"), tmp], { timeoutMs: 120_000 });
      // Another process may have finished the same tree meanwhile: then its copy stays and ours goes.
      if (!existsSync(`${dir}.size`)) {
        renameSync(tmp, dir);
        renameSync(`${tmp}.size`, `${dir}.size`);
        try {
          pruneLbPodRootfs(dirname(dir), basename(dir));
        } catch {
          // Best effort: a tree left behind costs disk space, never a failed run.
        }
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      rmSync(`${tmp}.size`, { force: true });
    }
  }
  return { dir, bytes: Number(readFileSync(`${dir}.size`, "utf8").trim()) };
}

// ---- Removing trees nobody uses ----

const TREE = /^lb-pod-rootfs-[0-9a-f]{12}$/;
/** What a build or a prune leaves while it runs: `<tree>.tmp-<pid>[.size]`, `<tree>.trash-<pid>`. */
const LEFTOVER = /^(lb-pod-rootfs-[0-9a-f]{12})\.(tmp|trash)-(\d+)(\.size)?$/;
/** Trees kept whatever their users: the current one and the one built before it (a run started just before an edit). */
export const LB_POD_ROOTFS_KEEP = 2;

export interface BuiltTree {
  name: string;
  /** When it was finished (its .size file's mtime). */
  finishedMs: number;
  /** A live process recorded itself as its user, or runs inside it (its root or working directory). */
  inUse: boolean;
}

/** Which trees to remove (pure): all but the current and the newest `keep - 1` others, and never one in use. */
export function treesToRemove(trees: readonly BuiltTree[], current: string, keep = LB_POD_ROOTFS_KEEP): string[] {
  const others = trees.filter((t) => t.name !== current).sort((a, b) => b.finishedMs - a.finishedMs || a.name.localeCompare(b.name));
  return others.slice(Math.max(0, keep - 1)).filter((t) => !t.inUse).map((t) => t.name);
}

const usersDir = (tree: string): string => `${tree}.users`;

/** This process uses `dir` (and no other tree of its build/ any more: each caller resolves one tree and runs it). */
function recordUser(dir: string): void {
  const build = dirname(dir);
  if (!existsSync(build)) mkdirSync(build, { recursive: true });
  for (const name of readdirSync(build)) {
    if (TREE.test(name) && name !== basename(dir)) rmSync(join(usersDir(join(build, name)), String(process.pid)), { force: true });
  }
  mkdirSync(usersDir(dir), { recursive: true });
  writeFileSync(join(usersDir(dir), String(process.pid)), "");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, under another user.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Trees of `build` that a live process runs inside (chrooted lb-pods, a shell cd'ed there), from /proc. */
function treesRunIn(build: string): Set<string> {
  const found = new Set<string>();
  const prefix = `${build}/`;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    for (const link of ["root", "cwd"]) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/${link}`);
      } catch {
        continue; // gone meanwhile, or another user's (EACCES): such a process recorded itself if it uses a tree
      }
      if (target.startsWith(prefix)) found.add(target.slice(prefix.length).split("/")[0] as string);
    }
  }
  return found;
}

/**
 * Removes from `build` the lb-pod trees treesToRemove picks, and what dead builds and prunes left. Users are the
 * processes recorded by ensureLbPodRootfs (records of dead ones are dropped here) and any process inside a tree.
 * A tree is renamed away first (atomic: a process resolving it finds it whole or not at all), its users looked at
 * once more, and only then deleted.
 */
export function pruneLbPodRootfs(build: string, current: string, keep = LB_POD_ROOTFS_KEEP): string[] {
  const names = readdirSync(build);
  for (const name of names) {
    const leftover = LEFTOVER.exec(name);
    if (leftover && !alive(Number(leftover[3]))) rmSync(join(build, name), { recursive: true, force: true });
  }
  const runIn = treesRunIn(build);
  const liveUsers = (tree: string): boolean => {
    let users: string[];
    try {
      users = readdirSync(usersDir(join(build, tree)));
    } catch {
      return false;
    }
    let any = false;
    for (const pid of users) {
      if (/^\d+$/.test(pid) && alive(Number(pid))) any = true;
      else rmSync(join(usersDir(join(build, tree)), pid), { force: true });
    }
    return any;
  };
  const trees: BuiltTree[] = [];
  for (const name of names) {
    if (!TREE.test(name)) continue;
    let finishedMs: number;
    try {
      finishedMs = statSync(join(build, `${name}.size`)).mtimeMs;
    } catch {
      continue; // not finished: being built (its tmp dir) or half removed
    }
    trees.push({ name, finishedMs, inUse: runIn.has(name) || liveUsers(name) });
  }
  // Records of trees that are gone (a build that failed), once nobody alive is in them.
  for (const name of names) {
    const tree = name.endsWith(".users") ? name.slice(0, -".users".length) : undefined;
    if (tree !== undefined && TREE.test(tree) && !names.includes(tree) && !liveUsers(tree)) rmSync(join(build, name), { recursive: true, force: true });
  }
  const removed: string[] = [];
  for (const name of treesToRemove(trees, current, keep)) {
    const tree = join(build, name);
    const trash = `${tree}.trash-${process.pid}`;
    try {
      renameSync(tree, trash);
    } catch {
      continue; // another pruner took it
    }
    if (liveUsers(name)) {
      // Recorded between the first look and the rename: put it back.
      renameSync(trash, tree);
      continue;
    }
    rmSync(`${tree}.size`, { force: true });
    rmSync(usersDir(tree), { recursive: true, force: true });
    rmSync(trash, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** A bind mount into the tree: host path -> path inside the tree. */
export interface RootfsMount {
  source: string;
  target: string;
  readOnly?: boolean;
}

/**
 * Arguments after `ip netns exec <ns>` that run argv chrooted into rootfs, in a private mount namespace holding
 * /proc, /dev and the given mounts, with exactly `env` as environment. The main process is argv's own (every step
 * execs), so signals sent to the spawned PID reach it and `nsenter -t PID -n -m -r` enters its namespaces and root.
 */
export function rootfsExecArgs(rootfs: string, mounts: readonly RootfsMount[], env: Record<string, string>, argv: readonly string[]): string[] {
  const all: RootfsMount[] = [{ source: "/proc", target: "/proc" }, { source: "/dev", target: "/dev" }, ...mounts];
  return [
    "unshare", "--mount", "--propagation", "private", "--",
    "sh", "-c", ROOTFS_SCRIPT, "sh", rootfs,
    ...all.flatMap((m) => [m.source, join(rootfs, m.target), m.readOnly ? "ro" : "rw"]), "--",
    "chroot", rootfs, "/usr/bin/env", "-i", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv,
  ];
}

// $1: the tree; then source, target, ro|rw triples up to "--"; then the command. rbind so /dev/pts and friends come too.
const ROOTFS_SCRIPT =
  'set -e; shift; while [ "$1" != "--" ]; do mkdir -p "$2"; mount --rbind "$1" "$2"; ' +
  'if [ "$3" = ro ]; then mount -o remount,bind,ro "$2"; fi; shift 3; done; shift; exec "$@"';
