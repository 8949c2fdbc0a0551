// Running a container from an image's root filesystem, as a container runtime does, without one: the lb-pod image's
// tree (scripts/build-lb-pod-rootfs.sh, the same script images/lb-pod/Dockerfile runs) is entered with chroot inside
// the pod's network namespace and a private mount namespace, so the lb-pod sees only the image's own files. runc does
// the same with pivot_root (opencontainers/runc libcontainer/rootfs_linux.go: prepareRoot, mountToRootfs, then
// pivotRoot): mounts of /proc and /dev and of the pod's volumes inside the new root first, then the switch. Here
// /proc and /dev are the host's, bound in (a runtime mounts a fresh procfs in a PID namespace of the container's;
// /proc/sys/net, which is what the lb-pod reads, is the reading process's network namespace either way).
//
// The tree is content-addressed: built once per version of its inputs under build/, so tests, the sandbox and the
// benchmark never run an lb-pod from a stale tree, and parallel runs never build over each other.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
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

/** Builds the tree for the current inputs unless it exists; returns its directory and size in bytes. */
export async function ensureLbPodRootfs(repoDir: string, runner: CommandRunner): Promise<{ dir: string; bytes: number }> {
  const dir = lbPodRootfsDir(repoDir);
  if (!existsSync(`${dir}.size`)) {
    const tmp = `${dir}.tmp-${process.pid}`;
    try {
      await runChecked(runner, "sh", [join(repoDir, "scripts/build-lb-pod-rootfs.sh"), tmp], { timeoutMs: 120_000 });
      // Another process may have finished the same tree meanwhile: then its copy stays and ours goes.
      if (!existsSync(`${dir}.size`)) {
        renameSync(tmp, dir);
        renameSync(`${tmp}.size`, `${dir}.size`);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      rmSync(`${tmp}.size`, { force: true });
    }
  }
  return { dir, bytes: Number(readFileSync(`${dir}.size`, "utf8").trim()) };
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
