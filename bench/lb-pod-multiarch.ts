// Proof that the lb-pod image builds and runs on every platform images/lb-pod/Dockerfile names (linux/amd64,
// linux/arm64, linux/arm/v7), here, without a container engine. A one-off proof like a benchmark, not a test: it
// downloads Debian packages and a kernel per architecture, so it is not part of the test command.
//
//   sudo node --import tsx bench/lb-pod-multiarch.ts [--arch amd64,arm64,armhf] [--refresh] [--skip-build] [--out FILE]
//
// (after `npm run build`). --refresh makes the chroots anew; --skip-build checks the trees the last run built (as
// they are: break one to see a check fail); --out writes the results elsewhere than bench/results/.
//
// Host packages: mmdebstrap arch-test qemu-user-static binfmt-support qemu-system-arm cpio file kmod, and
// binfmt_misc mounted (`mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable`).
// Debian's armhf is Docker's linux/arm/v7 (its baseline is ARMv7-A with VFPv3-D16; the debian image's arm32v7
// variant is armhf). Per architecture:
//   1. The Dockerfile's build stage, as `docker buildx` runs it: a Debian bookworm chroot of that architecture
//      (mmdebstrap --variant=minbase, what the debian:bookworm-slim base is made of) with the Dockerfile's own
//      `apt-get install` list, read from the Dockerfile so the two cannot drift; a foreign architecture's programs run
//      under qemu-user through binfmt_misc, as buildx's do. Cached in build/multiarch/ARCH/chroot (--refresh remakes
//      it). Then its COPY lines (the files of LB_POD_ROOTFS_INPUTS) into /src and its RUN,
//      `sh scripts/build-lb-pod-rootfs.sh /rootfs`, inside the chroot, with /proc and /dev as a build container has.
//   2. The tree: `file` says the architecture for every ELF in it; every dynamically linked ELF (the tools, their
//      libraries, iptables' modules) resolves all its libraries inside the tree, listed by the tree's own loader
//      (`ld.so --list`, run in the tree, emulated); the tools the entrypoint runs start in the tree.
//   3. The kernel side. qemu-user cannot carry it: its socket() refuses every netlink protocol but ROUTE,
//      KOBJECT_UEVENT and AUDIT (qemu linux-user/syscall.c do_socket), so nft, iptables-nft and conntrack stop at
//      EPROTONOSUPPORT; and iptables-legacy's tables cannot be read or written either (its getsockopt/setsockopt
//      pass on only the IP options they know, not iptables' IPT_SO_*: `iptables-legacy -t nat -S` says "Table does
//      not exist"). So a foreign tree runs in a whole emulated machine instead (qemu-system, -M virt) booting
//      Debian bookworm's own kernel of that architecture (linux-image-arm64, linux-image-armmp) with the tree as its
//      initramfs, plus GUEST_INIT, that kernel's netfilter modules and a rules bundle `berth lb-pod render` wrote:
//      per backend (iptables-nft, iptables-legacy, nftables) apply, the readiness probe, the rules listed back by the
//      tree's tools, cleanup; then the pod's own life: the entrypoint waits in berth-sigwait and a SIGTERM removes
//      the rules. The host's architecture runs the same steps on this machine's kernel in network namespaces made
//      here (NetnsLab), plus real TCP and UDP requests, IPv4 and IPv6, through the rules to a backend.
// Writes bench/results/lb-pod-multiarch.json and prints a summary; exits 1 when any check failed.
// Time on the 2-core reference machine, shared with other work when measured: making the chroots 2.5 min (amd64)
// and 8-9 min (arm64, armhf: emulated dpkg), once; then per run ~6 min: the build 6 s natively, ~2 min emulated;
// each emulated machine 20-70 s from boot to power-off; the kernels (~60 and ~45 MB) are downloaded once.
import { spawn, spawnSync } from "node:child_process";
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type { Dirent } from "node:fs";
import { cpus, release } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { runChecked, systemRunner, type RunResult } from "../src/lib/exec.js";
import { LB_POD_ROOTFS_INPUTS, LB_POD_ROOTFS_PATH, rootfsExecArgs } from "../src/sandbox/cluster/kubelet/rootfs.js";
import { NetnsLab } from "../test/support/netns.js";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const CLI = join(REPO, "dist/cli.js");
const WORK = join(REPO, "build/multiarch");
const RESULTS = join(REPO, "bench/results/lb-pod-multiarch.json");
const DOCKERFILE = join(REPO, "images/lb-pod/Dockerfile");
const runner = systemRunner();
/** A Docker build container's PATH (the RUN step's environment). */
const BUILD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const POD_ENV = { PATH: LB_POD_ROOTFS_PATH.join(":") };
const BACKENDS = ["iptables-nft", "iptables-legacy", "nftables"] as const;
const MIN = 60_000;

interface Arch {
  /** Docker's platform name. */
  platform: string;
  /** What file(1) says of every ELF of this architecture. */
  elf: RegExp;
  /** binfmt_misc entry that runs it under qemu-user (foreign architectures). */
  binfmt: string;
  /** Debian's kernel package (its metapackage) and how qemu-system boots it. */
  kernel: string;
  qemu: string[];
}

const ARCHES: Record<string, Arch> = {
  amd64: { platform: "linux/amd64", elf: /^ELF 64-bit LSB .*x86-64/, binfmt: "qemu-x86_64", kernel: "linux-image-amd64", qemu: [] },
  arm64: {
    platform: "linux/arm64",
    elf: /^ELF 64-bit LSB .*ARM aarch64/,
    binfmt: "qemu-aarch64",
    kernel: "linux-image-arm64",
    qemu: ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57"],
  },
  armhf: {
    platform: "linux/arm/v7",
    elf: /^ELF 32-bit LSB .*ARM, EABI5/,
    binfmt: "qemu-arm",
    kernel: "linux-image-armmp",
    qemu: ["qemu-system-arm", "-M", "virt,highmem=off", "-cpu", "cortex-a15"],
  },
};

// The rules every backend applies: dual-stack, two destinations per family (so iptables' statistic match and nft's
// numgen map are in), TCP and UDP, source ranges (the filter chains), as the dataplane tests' topology addresses them.
const ADDR = { client: "10.70.0.2", client6: "fd70::2", pod: "10.70.0.1", pod6: "fd70::1", inside: "10.71.0.1", inside6: "fd71::1" };
const DESTINATIONS = ["10.71.0.2", "10.71.0.3", "fd71::2", "fd71::3"];
const RENDER_ARGS = ["--port", "tcp:80:8080", "--port", "udp:53:8080", ...DESTINATIONS.flatMap((ip) => ["--destination-ip", ip]),
  "--source-range", "10.70.0.0/24", "--source-range", "fd70::/64"];

// PID 1 of the emulated machine, a busybox sh from the tree. Prints "@@ <what> <backend> <values...>" lines on the
// console, read back by guestRun. The netfilter modules are loaded up front, as a node has them loaded (by kube-proxy,
// the CNI or its own boot): the image holds no modprobe. The tools then run from the tree's own PATH.
const GUEST_INIT = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/berth-guest/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev 2>/dev/null; mount -t tmpfs tmpfs /tmp
say() { echo "@@ $*"; }
say kernel "$(uname -r)" "$(uname -m)"
echo /berth-guest/bin/modprobe >/proc/sys/kernel/modprobe
ok=0; failed=""
while read -r m; do if modprobe "$m" 2>/dev/null; then ok=$((ok + 1)); else failed="$failed,$m"; fi; done </berth-guest/modules
say modules - "$ok" "\${failed#,}"
ip link set lo up
echo 1 >/proc/sys/net/ipv4/ip_forward; echo 1 >/proc/sys/net/ipv6/conf/all/forwarding
# Berth's rules as the backend's own tool lists them: iptables rules in BERTH- chains or jumping to one; nft rules.
listed() {
  case $1 in
    iptables-nft|auto) { iptables-nft-save; ip6tables-nft-save; } 2>/dev/null | grep -c -e '^-A BERTH-' -e '-j BERTH-' ;;
    iptables-legacy) { iptables-legacy-save; ip6tables-legacy-save; } 2>/dev/null | grep -c -e '^-A BERTH-' -e '-j BERTH-' ;;
    nftables) nft list table inet berth 2>/dev/null | grep -c ' comment "' ;;
  esac
}
# The image's environment (images/lb-pod/Dockerfile ENV) and nothing else, as a container starts with.
pod() { env -i PATH=/usr/sbin:/usr/bin BERTH_STATE_DIR=/run/berth BERTH_RULES_DIR=/etc/berth/rules "$@"; }
# What qemu-user could not run (the header says why), here on the kernel: "@@ <label> tools <exit> <output>".
tool() { label=$1; shift; pod "$@" >/tmp/out 2>&1; say "$label" tools "$?" "$(head -n 1 /tmp/out)"; }
tool iptables-nft-version iptables-nft --version
tool ip6tables-nft-list ip6tables-nft -t nat -S POSTROUTING
tool nft-version nft --version
tool nft-list nft list tables
tool conntrack-version conntrack --version
tool conntrack-list conntrack -L
for b in ${BACKENDS.join(" ")}; do
  rm -rf /run/berth/* /run/berth/.[!.]*
  pod berth-lb-pod --once --backend "$b" >/tmp/out 2>&1; say apply "$b" "$?" "$(tail -n 1 /tmp/out)"
  # The entrypoint only warns when flushing UDP conntrack entries fails: count its warnings.
  say warnings "$b" "$(grep -c warning /tmp/out)"
  pod berth-lb-pod-check >/tmp/out 2>&1; say probe "$b" "$?" "$(tail -n 1 /tmp/out)"
  say listed "$b" "$(listed "$b")"
  # The kernel's own view through the other interface: iptables-nft's rules are nf_tables rules too.
  say nft-ruleset "$b" "$(nft list ruleset 2>/dev/null | grep -c -i berth)"
  pod berth-lb-pod --cleanup >/tmp/out 2>&1; say cleanup "$b" "$?" "$(tail -n 1 /tmp/out)"
  say listed-after "$b" "$(listed "$b")"
done
rm -rf /run/berth/* /run/berth/.[!.]*
# A subshell that execs: $! is then the pod's main process itself, the one the SIGTERM goes to.
(exec env -i PATH=/usr/sbin:/usr/bin BERTH_STATE_DIR=/run/berth BERTH_RULES_DIR=/etc/berth/rules berth-lb-pod) >/tmp/wait.out 2>&1 &
pid=$!
i=0; while [ ! -f /run/berth/state.json ] && [ $i -lt 600 ] && kill -0 $pid 2>/dev/null; do sleep 1; i=$((i + 1)); done
say waiter auto "$(cat /proc/$pid/comm 2>/dev/null)" "$(tail -n 1 /tmp/wait.out)"
say listed auto "$(listed auto)"
kill -TERM $pid; wait $pid; say stopped auto "$?"
say listed-after auto "$(listed auto)"
say done
poweroff -f
`;

interface ToolCheck { command: string; exitCode: number; output: string; pass: boolean; note?: string }
interface BackendCheck { backend: string; steps: Record<string, string>; pass: boolean }
interface ArchResult {
  arch: string;
  platform: string;
  emulated: boolean;
  packages: Record<string, string>;
  /** mmdebstrap's time when the chroot was made (cached: by an earlier run). */
  chroot: { seconds: number; cached: boolean };
  build: { seconds: number; treeBytes: number; treeMiB: number };
  elf: { files: number; wrongArch: string[]; unresolved: string[]; dynamic: number; samples: Record<string, string> };
  tools: ToolCheck[];
  kernel: { where: string; kernel: string; modules?: string; seconds: number; backends: BackendCheck[] };
  pass: boolean;
}

function log(message: string): void {
  process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`);
}

function fail(message: string): never {
  process.stderr.write(`lb-pod-multiarch: ${message}\n`);
  process.exit(2);
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0] ?? "";
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await work();
  return [value, Math.round((performance.now() - start) / 100) / 10];
}

/** The packages the Dockerfile's build stage installs (its `apt-get install ... --no-install-recommends` line). */
function dockerfilePackages(dockerfile: string): string[] {
  const match = /apt-get install -y --no-install-recommends ([a-z0-9.+\- ]+)/.exec(dockerfile);
  if (!match?.[1]) throw new Error("images/lb-pod/Dockerfile: no `apt-get install -y --no-install-recommends PACKAGES` line");
  return match[1].trim().split(/\s+/);
}

function checkHost(arches: string[], hostArch: string): void {
  const missing = ["mmdebstrap", "arch-test", "file", "cpio", "depmod", ...arches.flatMap((a) => (a === hostArch ? [] : [ARCHES[a]?.qemu[0] ?? ""]))]
    .filter((tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);
  if (missing.length) fail(`missing on this machine: ${missing.join(", ")} (apt-get install mmdebstrap arch-test file cpio kmod qemu-user-static binfmt-support qemu-system-arm)`);
  if (!existsSync(CLI)) fail(`${CLI} is missing: run \`npm run build\` first`);
  for (const arch of arches) {
    if (arch === hostArch) continue;
    const entry = `/proc/sys/fs/binfmt_misc/${ARCHES[arch]?.binfmt}`;
    const text = existsSync(entry) ? readFileSync(entry, "utf8") : "";
    // F (fix binary): the kernel opens qemu at registration, so it runs inside chroots that do not hold it.
    if (!/^enabled/m.test(text) || !/^flags: .*F/m.test(text)) {
      fail(`${entry} is not an enabled qemu-user entry with the F flag: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && update-binfmts --enable`);
    }
  }
}

/** The Dockerfile's base image and `apt-get install`, for one architecture; cached. */
async function ensureChroot(arch: string, packages: string[], refresh: boolean): Promise<{ dir: string; seconds: number; cached: boolean }> {
  const dir = join(WORK, arch, "chroot");
  if (refresh) rmSync(dir, { recursive: true, force: true });
  const marker = join(dir, ".berth-complete");
  if (existsSync(marker)) return { dir, seconds: (JSON.parse(readFileSync(marker, "utf8")) as { seconds: number }).seconds, cached: true };
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  log(`${arch}: debian bookworm chroot with ${packages.join(" ")} (mmdebstrap; a few minutes emulated)`);
  // No mirror argument: mmdebstrap's default Debian mirror, with bookworm-updates and bookworm-security added for
  // a stable suite, as the debian:bookworm-slim image's sources are.
  const [, seconds] = await timed(() =>
    runChecked(runner, "mmdebstrap", ["--mode=root", "--variant=minbase", `--arch=${arch}`, `--include=${packages.join(",")}`, "bookworm", tmp], { timeoutMs: 40 * MIN }),
  );
  writeFileSync(join(tmp, ".berth-complete"), `${JSON.stringify({ seconds, made: new Date().toISOString() })}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return { dir, seconds, cached: false };
}

/** Runs argv in a chroot with /proc and /dev mounted (a private mount namespace), with exactly env. */
function inChroot(root: string, env: Record<string, string>, argv: readonly string[], timeoutMs: number, netns?: string): Promise<RunResult> {
  const [file, ...args] = rootfsExecArgs(root, [], env, argv) as [string, ...string[]];
  return runner.run(file, args, { timeoutMs, ...(netns ? { netns } : {}) });
}

/** The Dockerfile's COPY lines and its RUN, in the chroot; returns the tree (the chroot's /rootfs). */
async function buildTree(chroot: string): Promise<{ tree: string; bytes: number; seconds: number }> {
  rmSync(join(chroot, "src"), { recursive: true, force: true });
  rmSync(join(chroot, "rootfs"), { recursive: true, force: true });
  for (const input of LB_POD_ROOTFS_INPUTS) {
    mkdirSync(dirname(join(chroot, "src", input)), { recursive: true });
    cpSync(join(REPO, input), join(chroot, "src", input));
  }
  const [result, seconds] = await timed(() => inChroot(chroot, { PATH: BUILD_PATH }, ["sh", "-c", "cd /src && exec sh scripts/build-lb-pod-rootfs.sh /rootfs"], 30 * MIN));
  if (result.exitCode !== 0) throw new Error(`build-lb-pod-rootfs.sh failed in the chroot (exit ${result.exitCode}): ${result.stderr.trim() || result.stdout.trim()}`);
  const bytes = Number(readFileSync(join(chroot, "rootfs.size"), "utf8").trim());
  return { tree: join(chroot, "rootfs"), bytes, seconds };
}

/** Installed versions of the Dockerfile's packages in the chroot. */
async function packageVersions(chroot: string, packages: string[]): Promise<Record<string, string>> {
  const result = await inChroot(chroot, { PATH: BUILD_PATH }, ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", ...packages], 5 * MIN);
  return Object.fromEntries(result.stdout.trim().split("\n").map((line) => line.split(" ") as [string, string]));
}

function walk(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true }) as Dirent[]) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, out);
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

function isElf(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.toString("latin1") === "\x7fELF";
  } finally {
    closeSync(fd);
  }
}

/** Every ELF of the tree is of the architecture; every dynamic one finds all its libraries inside the tree. */
async function checkElves(tree: string, arch: Arch): Promise<ArchResult["elf"]> {
  const elves = walk(tree).filter(isElf);
  const described = (await runChecked(runner, "file", ["-b", "-N", ...elves])).stdout.trimEnd().split("\n");
  const wrongArch = elves.filter((_, i) => !arch.elf.test(described[i] ?? "")).map((path) => `/${relative(tree, path)}`);
  const dynamic = elves.filter((_, i) => /dynamically linked/.test(described[i] ?? "") && !/\/ld-linux[^/]*$/.test(elves[i] ?? ""));
  const interpreter = /interpreter (\S+?),/.exec(described.find((d) => d.includes("interpreter")) ?? "")?.[1];
  if (!interpreter) throw new Error("no dynamically linked ELF names an interpreter");
  // The tree's own loader lists what each object loads, resolved inside the tree (as at run time): one `sh` for all.
  const script = `for f; do "${interpreter}" --list "$f" 2>&1 | sed -n "s|^|$f: |; /not found/p; /No such file/p"; done`;
  const listed = await runChecked(runner, "chroot", [tree, "/usr/bin/sh", "-c", script, "sh", ...dynamic.map((p) => `/${relative(tree, p)}`)], { timeoutMs: 20 * MIN });
  const unresolved = listed.stdout.trim() ? listed.stdout.trim().split("\n") : [];
  const samples: Record<string, string> = {};
  for (const name of ["usr/bin/busybox", "usr/bin/berth-sigwait", "usr/sbin/xtables-nft-multi", "usr/sbin/nft"]) {
    const i = elves.findIndex((p) => relative(tree, p) === name || relative(tree, p).endsWith(`/${name.split("/").pop()}`));
    if (i >= 0) samples[name.split("/").pop() ?? name] = (described[i] ?? "").replace(/, BuildID\[sha1\]=[0-9a-f]+/, "");
  }
  return { files: elves.length, wrongArch, unresolved, dynamic: dynamic.length, samples };
}

// The tools the entrypoint runs, started in the tree. Under qemu-user the netlink ones stop where they open their
// netlink socket (see the header): that line is printed by the tool's own code, after the loader found every library,
// so it proves the start; the kernel side is proven in the emulated machine.
const TOOLS: { argv: string[]; expect: RegExp; exitCode: number }[] = [
  { argv: ["sh", "-c", "echo ok"], expect: /^ok$/, exitCode: 0 },
  { argv: ["awk", "BEGIN { print 1 + 1 }"], expect: /^2$/, exitCode: 0 },
  { argv: ["iptables-legacy", "--version"], expect: /^iptables v[\d.]+ \(legacy\)$/, exitCode: 0 },
  { argv: ["ip6tables-legacy", "--version"], expect: /^ip6tables v[\d.]+ \(legacy\)$/, exitCode: 0 },
  { argv: ["iptables-nft", "--version"], expect: /^iptables v[\d.]+ \(nf_tables\)$/, exitCode: 0 },
  { argv: ["ip6tables-nft-restore", "--version"], expect: /^ip6tables-nft-restore v[\d.]+ \(nf_tables\)$/, exitCode: 0 },
  { argv: ["nft", "--version"], expect: /^nftables v[\d.]+/, exitCode: 0 },
  { argv: ["conntrack", "--version"], expect: /^conntrack v[\d.]+/, exitCode: 0 },
  { argv: ["berth-lb-pod", "--help"], expect: /unknown argument "--help" \(expected --rules/, exitCode: 2 },
  { argv: ["berth-sigwait"], expect: /^berth-sigwait: usage:/, exitCode: 2 },
];
const NETLINK_REFUSED = /Protocol not supported/;

async function checkTools(tree: string, emulated: boolean): Promise<ToolCheck[]> {
  const checks: ToolCheck[] = [];
  for (const tool of TOOLS) {
    const result = await runner.run("chroot", [tree, "/usr/bin/env", "-i", `PATH=${POD_ENV.PATH}`, ...tool.argv], { timeoutMs: 60_000 });
    const output = firstLine(result.stdout) || firstLine(result.stderr);
    const check: ToolCheck = { command: tool.argv.join(" "), exitCode: result.exitCode, output, pass: result.exitCode === tool.exitCode && tool.expect.test(output) };
    if (!check.pass && emulated && NETLINK_REFUSED.test(result.stderr + result.stdout)) {
      check.pass = true;
      check.note = "started; qemu-user refuses its netlink socket (kernel side: see kernel)";
      check.output = firstLine(result.stderr.split("\n").find((line) => NETLINK_REFUSED.test(line)) ?? output);
    }
    checks.push(check);
  }
  return checks;
}

/** The netfilter modules of a kernel tree (and what they need), by the dependency lists depmod writes. */
function netfilterModules(modulesDir: string): { names: string[]; files: string[] } {
  const dep = readFileSync(join(modulesDir, "modules.dep"), "utf8");
  const deps = new Map<string, string[]>();
  for (const line of dep.split("\n")) {
    const [module, rest] = line.split(":");
    if (module) deps.set(module, (rest ?? "").trim().split(/\s+/).filter(Boolean));
  }
  const wanted = [...deps.keys()].filter((m) => /^kernel\/net\/(netfilter|ipv4\/netfilter|ipv6\/netfilter)\/[^/]+\.ko(\.xz|\.zst)?$/.test(m));
  // The crypto modules too: libcrc32c (nf_conntrack, nf_tables) asks for crc32c when it loads, a dependency
  // modules.dep does not list; the kernel's request goes to the modprobe GUEST_INIT names.
  const crypto = [...deps.keys()].filter((m) => /^kernel\/(crypto|arch\/[^/]+\/crypto)\//.test(m));
  const files = new Set<string>();
  for (const m of [...crypto, ...wanted]) for (const f of [m, ...(deps.get(m) ?? [])]) files.add(f);
  const names = wanted.map((m) => (m.split("/").pop() ?? m).replace(/\.ko(\.xz|\.zst)?$/, ""));
  return { names, files: [...files] };
}

/** Debian's kernel of that architecture (downloaded in its chroot, unpacked here); cached. */
async function ensureKernel(arch: string, a: Arch, chroot: string): Promise<{ vmlinuz: string; modulesDir: string; version: string }> {
  const dir = join(WORK, arch, "kernel");
  if (!existsSync(join(dir, ".berth-complete"))) {
    log(`${arch}: Debian's kernel (${a.kernel})`);
    rmSync(dir, { recursive: true, force: true });
    const script = `set -e; mkdir -p /tmp/kernel; cd /tmp/kernel; rm -f ./*.deb; apt-get update -q >/dev/null
pkg=$(apt-cache depends ${a.kernel} | awk '/Depends: linux-image-/ { print $2; exit }'); apt-get download -q "$pkg" >/dev/null; ls /tmp/kernel/*.deb`;
    const debs = await inChroot(chroot, { PATH: BUILD_PATH }, ["sh", "-c", script], 30 * MIN);
    if (debs.exitCode !== 0) throw new Error(`downloading ${a.kernel} in the ${arch} chroot failed: ${debs.stderr.trim()}`);
    const deb = join(chroot, firstLine(debs.stdout));
    await runChecked(runner, "dpkg-deb", ["-x", deb, dir]);
    rmSync(join(chroot, "tmp/kernel"), { recursive: true, force: true });
    const version = readdirSync(join(dir, "lib/modules"))[0] ?? "";
    await runChecked(runner, "depmod", ["-b", dir, version]);
    writeFileSync(join(dir, ".berth-complete"), `${version}\n`);
  }
  const version = readFileSync(join(dir, ".berth-complete"), "utf8").trim();
  return { vmlinuz: join(dir, "boot", `vmlinuz-${version}`), modulesDir: join(dir, "lib/modules", version), version };
}

function renderBundle(out: string): void {
  const result = spawnSync(process.execPath, [CLI, "lb-pod", "render", "--out", out, ...RENDER_ARGS], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`berth lb-pod render failed: ${result.stderr.trim()}`);
}

/** Parses the guest's "@@ what backend values..." lines into per-backend steps. */
function parseGuestLines(console: string): { kernel: string; modules: string; backends: Map<string, Record<string, string>>; done: boolean } {
  const backends = new Map<string, Record<string, string>>();
  let kernel = "";
  let modules = "";
  let done = false;
  for (const raw of console.split(/\r?\n/)) {
    const at = raw.indexOf("@@ ");
    if (at < 0) continue;
    const [what = "", backend = "", ...values] = raw.slice(at + 3).trim().split(" ");
    if (what === "kernel") kernel = [backend, ...values].join(" ");
    else if (what === "modules") modules = `${values[0] ?? "?"} loaded; failed: ${values[1] || "none"}`;
    else if (what === "done") done = true;
    else {
      const steps = backends.get(backend) ?? {};
      steps[what] = values.join(" ");
      backends.set(backend, steps);
    }
  }
  return { kernel, modules, backends, done };
}

/** Whether one backend's steps show rules applied, verified, listed back and removed. */
function backendPassed(backend: string, steps: Record<string, string>): boolean {
  const code = (step: string): string => (steps[step] ?? "").split(" ")[0] ?? "";
  const count = (step: string): number => Number(steps[step] ?? "NaN");
  if (backend === "auto") {
    return /^berth-sigwait\b/.test(steps.waiter ?? "") && count("listed") > 0 && code("stopped") === "0" && count("listed-after") === 0;
  }
  const viaNft = count("nft-ruleset");
  const nftViewOk = backend === "iptables-legacy" ? viaNft === 0 : viaNft > 0;
  if (backend === "tools") return Object.values(steps).length > 0 && Object.values(steps).every((v) => v.startsWith("0"));
  return code("apply") === "0" && (steps.warnings ?? "0") === "0" && code("probe") === "0" && count("listed") > 0 && nftViewOk && code("cleanup") === "0" && count("listed-after") === 0;
}

/** Boots the architecture's kernel in qemu-system with the tree as its initramfs and runs GUEST_INIT. */
async function guestRun(arch: string, a: Arch, tree: string, chroot: string): Promise<ArchResult["kernel"]> {
  const kernel = await ensureKernel(arch, a, chroot);
  const stage = join(WORK, arch, "initramfs");
  rmSync(stage, { recursive: true, force: true });
  cpSync(tree, stage, { recursive: true, verbatimSymlinks: true });
  const modules = netfilterModules(kernel.modulesDir);
  for (const file of [...modules.files, "modules.dep", "modules.alias", "modules.symbols", "modules.builtin", "modules.order"]) {
    if (!existsSync(join(kernel.modulesDir, file))) continue;
    mkdirSync(dirname(join(stage, "usr/lib/modules", kernel.version, file)), { recursive: true });
    cpSync(join(kernel.modulesDir, file), join(stage, "usr/lib/modules", kernel.version, file));
  }
  mkdirSync(join(stage, "berth-guest/bin"), { recursive: true });
  writeFileSync(join(stage, "berth-guest/modules"), `${modules.names.join("\n")}\n`);
  // What only the emulated machine needs, beside the image's tree (which stays as built): busybox applets to mount,
  // load modules, bring up lo and power off.
  for (const applet of ["mount", "modprobe", "ip", "poweroff", "uname"]) {
    await runChecked(runner, "ln", ["-s", "/usr/bin/busybox", join(stage, "berth-guest/bin", applet)]);
  }
  writeFileSync(join(stage, "init"), GUEST_INIT, { mode: 0o755 });
  renderBundle(join(stage, "etc/berth/rules"));
  // The kernel opens /dev/console before it runs /init: without it the init's output goes nowhere.
  await runChecked(runner, "mknod", ["-m", "600", join(stage, "dev/console"), "c", "5", "1"]);
  const initrd = join(WORK, arch, "initrd.cpio");
  await runChecked(runner, "sh", ["-c", `cd "${stage}" && find . | cpio -o -H newc --quiet > "${initrd}"`]);
  const [file, ...args] = a.qemu as [string, ...string[]];
  log(`${arch}: booting ${kernel.version} in ${file} with the tree as initramfs`);
  const [result, seconds] = await timed(() =>
    runner.run(file, [...args, "-m", "1024", "-smp", "1", "-nographic", "-no-reboot", "-nic", "none", "-kernel", kernel.vmlinuz, "-initrd", initrd,
      "-append", "console=ttyAMA0 panic=-1 quiet"], { timeoutMs: 30 * MIN }),
  );
  writeFileSync(join(WORK, arch, "guest-console.log"), result.stdout + result.stderr);
  const parsed = parseGuestLines(result.stdout);
  if (!parsed.done) throw new Error(`${arch}: the emulated machine did not finish (exit ${result.exitCode}); its console is in ${join(WORK, arch, "guest-console.log")}`);
  const backends = [...parsed.backends].map(([backend, steps]) => ({ backend, steps, pass: backendPassed(backend, steps) }));
  return { where: `${file} -M virt, Debian's ${a.kernel}`, kernel: parsed.kernel, modules: parsed.modules, seconds, backends };
}

/** The same steps on this machine's kernel, in network namespaces, with real traffic through the rules. */
async function hostRun(tree: string): Promise<ArchResult["kernel"]> {
  const backends: BackendCheck[] = [];
  const bundle = join(WORK, "bundle");
  renderBundle(bundle);
  const start = performance.now();
  for (const backend of [...BACKENDS, "auto"]) {
    const lab = await NetnsLab.create("bt-march");
    const state = join(WORK, `state-${process.pid}`);
    rmSync(state, { recursive: true, force: true });
    mkdirSync(state, { recursive: true });
    try {
      const [client, pod, server] = (await lab.addNamespaces("client", "pod", "server")) as [string, string, string];
      await lab.link({ ns: client, ifname: "eth0", addresses: [`${ADDR.client}/24`, `${ADDR.client6}/64`] }, { ns: pod, ifname: "eth0", addresses: [`${ADDR.pod}/24`, `${ADDR.pod6}/64`] });
      await lab.link({ ns: pod, ifname: "eth1", addresses: [`${ADDR.inside}/24`, `${ADDR.inside6}/64`] },
        { ns: server, ifname: "eth0", addresses: DESTINATIONS.map((ip) => (ip.includes(":") ? `${ip}/64` : `${ip}/24`)) });
      await lab.sysctls(pod, { "net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1" });
      await lab.startServer(server, { reply: "backend", listen: DESTINATIONS.flatMap((ip) => (["tcp", "udp"] as const).map((protocol) => ({ protocol, ip, port: 8080 }))) });
      const mounts = [{ source: bundle, target: "/etc/berth/rules", readOnly: true }, { source: state, target: "/run/berth" }];
      const inPod = (argv: string[]): Promise<RunResult> => {
        const [file, ...args] = rootfsExecArgs(tree, mounts, POD_ENV, argv) as [string, ...string[]];
        return lab.exec(pod, file, args, { timeoutMs: 60_000 });
      };
      const variant = backend === "iptables-legacy" ? "legacy" : "nft";
      const listed = async (): Promise<number> => {
        const text = backend === "nftables"
          ? (await inPod(["nft", "list", "table", "inet", "berth"])).stdout
          : (await inPod(["sh", "-c", `iptables-${variant}-save; ip6tables-${variant}-save`])).stdout;
        return text.split("\n").filter((line) => (backend === "nftables" ? line.includes(' comment "') : /^-A BERTH-|-j BERTH-/.test(line))).length;
      };
      const steps: Record<string, string> = {};
      if (backend === "auto") {
        // The pod's own life: the entrypoint applies, then waits in berth-sigwait; SIGTERM removes the rules.
        const [file, ...args] = rootfsExecArgs(tree, mounts, POD_ENV, ["berth-lb-pod"]) as [string, ...string[]];
        const child = spawn("ip", ["netns", "exec", pod, file, ...args], { stdio: "ignore" });
        const exited = new Promise<number>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1))));
        for (let i = 0; i < 600 && !existsSync(join(state, "state.json")) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
        steps.waiter = existsSync(`/proc/${child.pid}/comm`) ? readFileSync(`/proc/${child.pid}/comm`, "utf8").trim() : "gone";
        steps.listed = String(await listed());
        child.kill("SIGTERM");
        steps.stopped = String(await exited);
        steps["listed-after"] = String(await listed());
      } else {
        const apply = await inPod(["berth-lb-pod", "--once", "--backend", backend]);
        steps.apply = `${apply.exitCode} ${firstLine(apply.stderr) || apply.stdout.trim().split("\n").pop() || ""}`;
        steps.warnings = String((apply.stdout + apply.stderr).split("\n").filter((line) => line.includes("warning")).length);
        const probe = await inPod(["berth-lb-pod-check"]);
        steps.probe = `${probe.exitCode} ${firstLine(probe.stderr) || firstLine(probe.stdout)}`;
        steps.listed = String(await listed());
        const ruleset = (await inPod(["nft", "list", "ruleset"])).stdout;
        steps["nft-ruleset"] = String(ruleset.split("\n").filter((line) => /berth/i.test(line)).length);
        for (const [label, ip] of [["ipv4", ADDR.pod], ["ipv6", ADDR.pod6]] as const) {
          for (const [protocol, port] of [["tcp", 80], ["udp", 53]] as const) {
            const outcome = await lab.request(client, { protocol, ip, port, timeoutMs: 3000 });
            steps[`traffic ${protocol}/${label}`] = outcome.answered ? `${outcome.reply} from ${outcome.seenFrom}` : `<${outcome.reason}>`;
          }
        }
        const cleanup = await inPod(["berth-lb-pod", "--cleanup"]);
        steps.cleanup = `${cleanup.exitCode}`;
        steps["listed-after"] = String(await listed());
      }
      const trafficOk = Object.entries(steps).filter(([k]) => k.startsWith("traffic ")).every(([k, v]) => v === `backend from ${k.endsWith("ipv6") ? ADDR.inside6 : ADDR.inside}`);
      backends.push({ backend, steps, pass: backendPassed(backend, steps) && trafficOk });
    } finally {
      await lab.destroy();
      rmSync(state, { recursive: true, force: true });
    }
  }
  return { where: "this machine's kernel, network namespaces", kernel: release(), seconds: Math.round((performance.now() - start) / 100) / 10, backends };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) fail("needs root (chroots, network namespaces, netfilter)");
  const archArg = process.argv.indexOf("--arch");
  const arches = archArg > 0 ? (process.argv[archArg + 1] ?? "").split(",") : Object.keys(ARCHES);
  for (const arch of arches) if (!ARCHES[arch]) fail(`unknown architecture "${arch}" (expected ${Object.keys(ARCHES).join(", ")})`);
  const refresh = process.argv.includes("--refresh");
  const skipBuild = process.argv.includes("--skip-build");
  const outArg = process.argv.indexOf("--out");
  const resultsFile = outArg > 0 ? (process.argv[outArg + 1] ?? RESULTS) : RESULTS;
  const hostArch = spawnSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).stdout.trim();
  checkHost(arches, hostArch);
  const packages = dockerfilePackages(readFileSync(DOCKERFILE, "utf8"));
  const results: ArchResult[] = [];
  for (const arch of arches) {
    const a = ARCHES[arch] as Arch;
    const emulated = arch !== hostArch;
    const chroot = await ensureChroot(arch, packages, refresh);
    const reuse = skipBuild && existsSync(join(chroot.dir, "rootfs.size"));
    log(`${arch}: ${reuse ? "the tree the last run built" : `scripts/build-lb-pod-rootfs.sh in the chroot${emulated ? " (emulated)" : ""}`}`);
    const build = reuse
      ? { tree: join(chroot.dir, "rootfs"), bytes: Number(readFileSync(join(chroot.dir, "rootfs.size"), "utf8").trim()), seconds: 0 }
      : await buildTree(chroot.dir);
    log(`${arch}: tree ${build.bytes} bytes in ${build.seconds} s; checking it`);
    const elf = await checkElves(build.tree, a);
    const tools = await checkTools(build.tree, emulated);
    const kernel = emulated ? await guestRun(arch, a, build.tree, chroot.dir) : await hostRun(build.tree);
    // Every backend and the pod's life; in the emulated machine also the tools qemu-user could not run.
    const required = [...BACKENDS, "auto", ...(emulated ? ["tools"] : [])];
    const pass = elf.wrongArch.length === 0 && elf.unresolved.length === 0 && tools.every((t) => t.pass) && required.every((name) => kernel.backends.some((b) => b.backend === name)) && kernel.backends.every((b) => b.pass);
    results.push({
      arch, platform: a.platform, emulated, packages: await packageVersions(chroot.dir, packages),
      chroot: { seconds: chroot.seconds, cached: chroot.cached },
      build: { seconds: build.seconds, treeBytes: build.bytes, treeMiB: Math.round((build.bytes / 1048576) * 100) / 100 },
      elf, tools, kernel, pass,
    });
    log(`${arch}: ${pass ? "pass" : "FAIL"}`);
  }
  const qemuVersion = firstLine(spawnSync("qemu-aarch64-static", ["--version"], { encoding: "utf8" }).stdout ?? "");
  const report = {
    date: new Date().toISOString(),
    command: `node --import tsx bench/lb-pod-multiarch.ts --arch ${arches.join(",")}`,
    host: { arch: hostArch, cpus: cpus().length, cpu: cpus()[0]?.model ?? "", kernel: release(), qemu: qemuVersion },
    dockerfilePackages: packages,
    arches: results,
    pass: results.every((r) => r.pass),
  };
  // Merge with architectures measured by an earlier run (--arch measures some of them again).
  if (existsSync(resultsFile) && arches.length < Object.keys(ARCHES).length) {
    const before = JSON.parse(readFileSync(resultsFile, "utf8")) as typeof report;
    report.arches = [...before.arches.filter((r) => !arches.includes(r.arch)), ...results].sort((x, y) => Object.keys(ARCHES).indexOf(x.arch) - Object.keys(ARCHES).indexOf(y.arch));
    report.pass = report.arches.every((r) => r.pass);
  }
  writeFileSync(resultsFile, `${JSON.stringify(report, null, 2)}\n`);
  console.log("\narch    platform      tree bytes  MiB    ELF  wrong-arch  unresolved  tools  kernel-side");
  for (const r of report.arches) {
    console.log(`${r.arch.padEnd(8)}${r.platform.padEnd(14)}${String(r.build.treeBytes).padStart(10)}  ${r.build.treeMiB.toFixed(2).padStart(5)}  ${String(r.elf.files).padStart(4)}  ${String(r.elf.wrongArch.length).padStart(10)}  ${String(r.elf.unresolved.length).padStart(10)}  ${`${r.tools.filter((t) => t.pass).length}/${r.tools.length}`.padStart(5)}  ${r.kernel.backends.map((b) => `${b.backend}:${b.pass ? "ok" : "FAIL"}`).join(" ")}`);
  }
  console.log(`\n${report.pass ? "all pass" : "FAILED"}; written to ${resultsFile}`);
  if (!report.pass) process.exitCode = 1;
}

await main();
