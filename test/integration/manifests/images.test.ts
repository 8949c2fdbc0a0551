// The images cannot ship pointing at nothing. There is no container engine here, so each Dockerfile under images/ is
// parsed (stages, COPY, ENV PATH, USER, ENTRYPOINT/CMD, apt-get install) and every path and command that its
// entrypoint, the shell scripts it runs and the generated manifests refer to is followed into the image: berth's own
// files to the build output in this repository (dist/, bin/, package.json), Debian commands to the package that
// ships them (dpkg -S on this Debian bookworm machine, the images' release) which must be installed by the Dockerfile
// or be Essential (always in debian:*-slim). The lb-pod image is FROM scratch plus the tree
// scripts/build-lb-pod-rootfs.sh builds: that tree is built here too and what the DaemonSet runs is looked up in it
// (the data-plane tests run the lb-pod chrooted into the same tree).
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { accessSync, constants, cpSync, existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultControllerConfig } from "../../../src/controller/types.js";
import { gratuitousCommand } from "../../../src/speaker/announce-plan.js";
import { systemRunner } from "../../../src/lib/exec.js";
import { ensureLbPodRootfs } from "../../../src/sandbox/cluster/kubelet/rootfs.js";
import { buildManifests, CONTROLLER_UID, defaultManifestOptions } from "../../../src/manifests/manifests.js";
import { skipBecause } from "../../support/skip.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
}

interface Stage {
  image: string;
  name?: string;
  workdir: string;
  copies: Copy[];
  runs: string[];
  env: Record<string, string>;
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
}

/** The instructions of a Dockerfile, continuation lines joined and comments dropped, as BuildKit reads them. */
function instructions(text: string): [string, string][] {
  const lines = text.split("\n").filter((l) => !/^\s*#/.test(l));
  const joined = lines.join("\n").replace(/\\\n/g, " ");
  return joined.split("\n").map((l) => l.trim()).filter((l) => l !== "").map((l) => {
    const m = /^(\S+)\s+(.*)$/.exec(l);
    assert.ok(m, `cannot parse Dockerfile line: ${l}`);
    return [(m[1] as string).toUpperCase(), m[2] as string];
  });
}

function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const [op, rest] of instructions(text)) {
    if (op === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      assert.ok(m, `FROM ${rest}`);
      stages.push({ image: m[1] as string, ...(m[2] ? { name: m[2] } : {}), workdir: "/", copies: [], runs: [], env: {} });
      continue;
    }
    const stage = stages[stages.length - 1];
    assert.ok(stage, `${op} before FROM`);
    if (op === "WORKDIR") stage.workdir = posix.resolve(stage.workdir, rest);
    else if (op === "RUN") stage.runs.push(rest);
    else if (op === "USER") stage.user = rest;
    else if (op === "ENTRYPOINT") stage.entrypoint = JSON.parse(rest) as string[];
    else if (op === "CMD") stage.cmd = JSON.parse(rest) as string[];
    else if (op === "ENV") for (const m of rest.matchAll(/(\w+)=(\S+)/g)) stage.env[m[1] as string] = m[2] as string;
    else if (op === "COPY") {
      const words = rest.split(/\s+/);
      const flags = words.filter((w) => w.startsWith("--"));
      const paths = words.filter((w) => !w.startsWith("--"));
      const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
      const dest = posix.resolve(stage.workdir, paths[paths.length - 1] as string) + ((paths[paths.length - 1] as string).endsWith("/") ? "/" : "");
      stage.copies.push({ ...(from ? { from } : {}), sources: paths.slice(0, -1), dest });
    } else if (!["EXPOSE", "LABEL", "ARG"].includes(op)) {
      assert.fail(`unexpected Dockerfile instruction ${op}`);
    }
  }
  return stages;
}

/** Where a file of an image comes from: this repository's build output, or a stage's base image. */
type Origin = { repo: string } | { base: string; stage: Stage };

class Image {
  readonly stages: Stage[];
  readonly final: Stage;

  constructor(readonly dockerfile: string) {
    this.stages = parseDockerfile(readFileSync(join(ROOT, dockerfile), "utf8"));
    this.final = this.stages[this.stages.length - 1] as Stage;
  }

  stage(name: string): Stage {
    const s = this.stages.find((x) => x.name === name);
    assert.ok(s, `${this.dockerfile}: no stage ${name}`);
    return s;
  }

  /** Follows an absolute path in a stage through its COPY instructions (latest first, as layers shadow). */
  origin(path: string, stage = this.final): Origin {
    for (const copy of [...stage.copies].reverse()) {
      for (const source of copy.sources) {
        const target = copy.dest.endsWith("/") || copy.sources.length > 1 ? posix.join(copy.dest, basename(source)) : copy.dest;
        if (path !== target && !path.startsWith(`${target}/`)) continue;
        const rest = path.slice(target.length);
        if (!copy.from) return { repo: posix.join(source, rest) };
        return this.built(this.stage(copy.from), posix.join(source, rest));
      }
    }
    return { base: path, stage };
  }

  /**
   * A path in a build stage: under its WORKDIR the stage mirrors this repository (what it copied in, dist/ from
   * `npm run build`, node_modules/ from `npm ci` pruned to production), anything else comes from its base image.
   */
  private built(stage: Stage, path: string): Origin {
    if (!path.startsWith(`${stage.workdir}/`)) return this.origin(path, stage);
    const rel = path.slice(stage.workdir.length + 1);
    const top = rel.split("/")[0];
    if (top === "dist") assert.ok(stage.runs.some((r) => r.includes("npm run build")), `${this.dockerfile}: dist/ is never built`);
    if (top === "node_modules") {
      assert.ok(stage.runs.some((r) => /npm ci\b/.test(r)), `${this.dockerfile}: node_modules/ is never installed`);
      assert.ok(stage.runs.some((r) => /npm prune --omit=dev/.test(r)), `${this.dockerfile}: dev dependencies are shipped`);
    }
    if (top === "dist" || top === "node_modules") return { repo: rel };
    const copied = this.origin(path, stage);
    assert.ok("repo" in copied, `${this.dockerfile}: ${path} is not copied into stage ${stage.name ?? ""}`);
    return copied;
  }

  /** Debian packages the final stage installs. */
  aptPackages(): string[] {
    return this.final.runs.flatMap((r) => {
      const m = /apt-get install (.*?)(?:&&|$)/.exec(r);
      return m ? (m[1] as string).split(/\s+/).filter((w) => w !== "" && !w.startsWith("-")) : [];
    });
  }

  path(): string[] {
    return (this.final.env.PATH ?? DEFAULT_PATH).split(":");
  }
}

/** Merged /usr (Debian bookworm): /bin is /usr/bin and /sbin is /usr/sbin; dpkg may know a file by either name. */
function aliases(path: string): string[] {
  const m = /^(?:\/usr)?\/(s?bin)\/(.*)$/.exec(path);
  return m ? [`/usr/${m[1] as string}/${m[2] as string}`, `/${m[1] as string}/${m[2] as string}`] : [path];
}

/** dpkg -S answers, by path; one dpkg call for many paths (each call reads the whole file database). */
const packageOfPath = new Map<string, string | undefined>();

function prefetchPackages(paths: string[]): void {
  const wanted = [...new Set(paths.flatMap(aliases))].filter((p) => !packageOfPath.has(p));
  if (wanted.length === 0) return;
  for (const p of wanted) packageOfPath.set(p, undefined);
  const r = spawnSync("dpkg", ["-S", ...wanted], { encoding: "utf8" });
  for (const line of r.stdout.split("\n")) {
    const m = /^([^:\s]+)(?:, [^:]+)?: (\/.*)$/.exec(line);
    if (m && !line.startsWith("diversion") && packageOfPath.has(m[2] as string)) packageOfPath.set(m[2] as string, m[1] as string);
  }
}

function debianPackageOf(path: string): string | undefined {
  prefetchPackages([path]);
  for (const p of aliases(path)) {
    const pkg = packageOfPath.get(p);
    if (pkg !== undefined) return pkg;
  }
  return undefined;
}

const essentials = new Map<string, boolean>();

function essential(pkg: string): boolean {
  let yes = essentials.get(pkg);
  if (yes === undefined) {
    yes = execFileSync("dpkg-query", ["-W", "-f=${Essential}", pkg], { encoding: "utf8" }).trim() === "yes";
    essentials.set(pkg, yes);
  }
  return yes;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

interface Found {
  path: string;
  origin: Origin;
}

/** Resolves a command as the container's exec would: an absolute path, or the first PATH entry that has it. */
function which(image: Image, command: string, unverifiable: string[]): Found | undefined {
  const candidates = command.startsWith("/") ? [command] : image.path().map((dir) => posix.join(dir, command));
  for (const path of candidates) {
    const origin = image.origin(path);
    if ("repo" in origin) {
      if (existsSync(join(ROOT, origin.repo))) {
        assert.ok(isExecutable(join(ROOT, origin.repo)), `${image.dockerfile}: ${path} (${origin.repo}) is not executable`);
        return { path, origin };
      }
      continue;
    }
    if (origin.stage !== image.final) {
      // A file taken from a build stage's base image: only node's binary from the official node image is.
      assert.ok(origin.base === "/usr/local/bin/node" && origin.stage.image.startsWith("node:"), `${path} from ${origin.stage.image}`);
      return { path, origin };
    }
    if (!existsSync(path)) continue; // not on this machine under this name: try the next PATH entry
    const pkg = debianPackageOf(path);
    if (pkg === undefined) {
      unverifiable.push(`${command} (${path} belongs to no package here)`);
      return { path, origin };
    }
    assert.ok(essential(pkg) || image.aptPackages().includes(pkg),
      `${image.dockerfile}: ${command} comes from Debian package ${pkg}, which the image does not install`);
    return { path, origin };
  }
  return undefined;
}

function mustFind(image: Image, command: string, unverifiable: string[]): Found {
  const found = which(image, command, unverifiable);
  assert.ok(found, `${image.dockerfile}: "${command}" is not in the image (PATH ${image.path().join(":")})`);
  return found;
}

/** The repository file behind an image path, which must exist. */
function repoFile(image: Image, path: string): string {
  const origin = image.origin(path);
  assert.ok("repo" in origin, `${image.dockerfile}: ${path} is not one of berth's files`);
  assert.ok(existsSync(join(ROOT, origin.repo)), `${image.dockerfile}: ${path} is ${origin.repo}, which the build does not produce`);
  return origin.repo;
}

function lstatOk(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

describe("images: every path and command they refer to exists in the build output", function () {
  this.timeout(60_000);
  const controller = new Image("images/controller/Dockerfile");
  const lbPod = new Image("images/lb-pod/Dockerfile");
  const unverifiable: string[] = [];

  before(function () {
    if (!existsSync(join(ROOT, "dist/cli.js"))) skipBecause(this, "dist/ is not built (npm run build)");
  });

  it("builds in stages from base images pinned by exact tag and digest, and ships no npm", () => {
    for (const image of [controller, lbPod]) {
      assert.ok(image.stages.length >= 2, `${image.dockerfile} is not multi-stage`);
      for (const stage of image.stages.filter((x) => x.image !== "scratch")) {
        assert.match(stage.image, /^[\w./-]+:[\w.-]*\d[\w.-]*@sha256:[0-9a-f]{64}$/, `${image.dockerfile}: FROM ${stage.image}`);
      }
      if (image === controller) assert.match(image.final.image, /^debian:[\w.-]+-slim@/, `${image.dockerfile}: the final stage is not Debian slim`);
      assert.equal(image.final.copies.some((c) => c.sources.some((s) => /npm|\/usr\/local\/lib/.test(s))), false);
      // The build inputs the build stage copies are all in the per-Dockerfile ignore file's allow-list.
      const allowed = readFileSync(join(ROOT, `${image.dockerfile}.dockerignore`), "utf8").split("\n")
        .filter((l) => l.startsWith("!")).map((l) => l.slice(1));
      for (const stage of image.stages) {
        for (const copy of stage.copies.filter((c) => !c.from)) {
          for (const source of copy.sources) {
            assert.ok(allowed.some((a) => source === a || source.startsWith(`${a}/`)), `${image.dockerfile}: ${source} is ignored by its .dockerignore`);
            assert.ok(existsSync(join(ROOT, source)), `${image.dockerfile}: copies ${source}, which does not exist`);
          }
        }
      }
    }
  });

  it("copies node from an official node image of the Node.js major package.json's engines asks for, on the final stage's Debian release", () => {
    const engines = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { engines: { node: string } }).engines.node;
    const wanted = /^>=\s*(\d+)/.exec(engines);
    assert.ok(wanted, `package.json engines.node ${engines} is not ">=N"`);
    for (const image of [controller]) {
      const from = image.origin("/usr/local/bin/node");
      assert.ok(!("repo" in from) && from.stage !== image.final, `${image.dockerfile}: /usr/local/bin/node is not copied from a build stage`);
      // node:<major>.<minor>.<patch>-<debian release>-slim: the binary links against that release's glibc, so the
      // final stage must be the same release (a binary built on a newer glibc fails to start on an older one).
      const tag = /^node:(\d+)\.\d+\.\d+-(\w+)-slim@/.exec(from.stage.image);
      assert.ok(tag, `${image.dockerfile}: node comes from ${from.stage.image}, not node:<x.y.z>-<release>-slim`);
      assert.equal(Number(tag[1]), Number(wanted[1]), `${image.dockerfile}: ${from.stage.image} is not Node.js ${wanted[1]} (package.json engines ${engines})`);
      assert.match(image.final.image, new RegExp(`^debian:${tag[2]}-`), `${image.dockerfile}: node from ${tag[2]}, final stage ${image.final.image}`);
    }
  });

  it("controller: its entrypoint runs dist/cli.js with node, as the non-root user the Deployment expects", () => {
    const entry = controller.final.entrypoint;
    assert.ok(entry);
    const node = mustFind(controller, entry[0] as string, unverifiable);
    assert.deepEqual(node.origin, { base: "/usr/local/bin/node", stage: controller.stage("build") });
    assert.equal(repoFile(controller, entry[1] as string), "dist/cli.js");
    // berthVersion() reads package.json beside dist/ (src/lib/version.ts).
    assert.equal(repoFile(controller, posix.join(posix.dirname(entry[1] as string), "../package.json")), "package.json");
    assert.equal(repoFile(controller, "/opt/berth/node_modules"), "node_modules");
    assert.equal(controller.final.user, `${CONTROLLER_UID}:${CONTROLLER_UID}`);

    // The Deployment's args are a berth subcommand the built CLI has, run by this entrypoint.
    const deployment = buildManifests(defaultManifestOptions("0.0.0")).find((d) => d.kind === "Deployment") as unknown as
      { spec: { template: { spec: { containers: { args: string[]; command?: string[] }[]; securityContext: { runAsUser: number } } } } };
    const pod = deployment.spec.template.spec;
    assert.equal(pod.securityContext.runAsUser, CONTROLLER_UID);
    assert.equal(pod.containers[0]?.command, undefined, "the Deployment must use the image's entrypoint");
    const sub = pod.containers[0]?.args[0] as string;
    const help = spawnSync(process.execPath, [join(ROOT, "dist/cli.js"), sub, "--help"], { encoding: "utf8" });
    assert.equal(help.status, 0, help.stderr);
    assert.equal(controller.final.cmd?.[0], sub);
  });

  it("speaker: the controller image, which the speaker DaemonSet runs, has every tool the announcer runs", () => {
    const daemonSet = buildManifests(defaultManifestOptions("0.0.0")).find((d) => d.kind === "DaemonSet") as unknown as
      { metadata: { name: string }; spec: { template: { spec: { containers: { image: string }[] } } } };
    const deployment = buildManifests(defaultManifestOptions("0.0.0")).find((d) => d.kind === "Deployment") as unknown as
      { spec: { template: { spec: { containers: { image: string }[] } } } };
    assert.equal(daemonSet.spec.template.spec.containers[0]?.image, deployment.spec.template.spec.containers[0]?.image, daemonSet.metadata.name);
    const tools = ["ip", gratuitousCommand("192.0.2.1", "eth0", undefined).file, gratuitousCommand("2001:db8::1", "eth0", "02:00:00:00:00:01").file];
    assert.deepEqual(tools, ["ip", "arping", "na6"]);
    for (const tool of tools) mustFind(controller, tool, unverifiable);
  });

  it("controller: ships neither the sandbox nor the docs generator, and the CLI still starts and runs the controller's commands", function () {
    this.timeout(60_000);
    // The build stage's pruning RUN lines, run as they are on a copy of this checkout's build output.
    const prune = controller.stage("build").runs.filter((r) => r.startsWith("rm -rf dist/"));
    assert.equal(prune.length, 1, controller.stage("build").runs.join("; "));
    const dir = mkdtempSync(join(tmpdir(), "berth-controller-image-"));
    try {
      cpSync(join(ROOT, "dist"), join(dir, "dist"), { recursive: true });
      cpSync(join(ROOT, "package.json"), join(dir, "package.json"));
      symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
      const pruned = spawnSync("sh", ["-ec", prune[0] as string], { cwd: dir, encoding: "utf8" });
      assert.equal(pruned.status, 0, pruned.stderr);
      for (const gone of ["dist/docs", "dist/sandbox/apiserver", "dist/sandbox/cluster/kubelet", "dist/sandbox/cluster/supervisor.js"]) {
        assert.equal(existsSync(join(dir, gone)), false, `${gone} is still shipped`);
      }
      const cli = join(dir, "dist/cli.js");
      for (const args of [["controller", "--help"], ["lb-pod", "render", "--help"], ["manifests"], ["--help"]]) {
        const run = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
        assert.equal(run.status, 0, `berth ${args.join(" ")}: ${run.stderr}`);
      }
      const sandbox = spawnSync(process.execPath, [cli, "sandbox", "up"], { encoding: "utf8", timeout: 30_000 });
      assert.notEqual(sandbox.status, 0);
      assert.equal(sandbox.stderr.trim().split("\n").length, 1, sandbox.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the built code imports only production dependencies (the images keep node_modules after npm prune --omit=dev)", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const imported = new Set<string>();
    const walk = (dir: string): void => {
      for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
        const rel = join(dir, entry.name);
        if (entry.isDirectory()) walk(rel);
        else if (entry.name.endsWith(".js")) {
          const text = readFileSync(join(ROOT, rel), "utf8");
          const statics = [...text.matchAll(/^\s*(?:(?:import|export)\b[^;"]*?\bfrom\s*|import\s*)"([^"]+)"/gm)];
          const dynamics = [...text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g)];
          for (const m of [...statics, ...dynamics]) {
            const spec = m[1] as string;
            if (spec.startsWith("node:") || spec.startsWith(".")) continue;
            imported.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] as string));
          }
        }
      }
    };
    walk("dist");
    assert.ok(imported.has("commander") && imported.has("@kubernetes/client-node"), [...imported].join(", "));
    const notShipped = [...imported].filter((name) => pkg.dependencies[name] === undefined);
    assert.deepEqual(notShipped, [], "imported by dist/ but not a production dependency (npm prune --omit=dev removes it)");
  });

  it("lb-pod: FROM scratch with only the tree scripts/build-lb-pod-rootfs.sh builds, in a stage that installs what the script needs", () => {
    assert.equal(lbPod.final.image, "scratch");
    assert.deepEqual(lbPod.final.copies.map((c) => ({ ...c, dest: posix.normalize(c.dest) })), [{ from: "rootfs", sources: ["/rootfs/"], dest: "/" }]);
    const stage = lbPod.stage("rootfs");
    assert.ok(stage.runs.some((r) => r === "sh scripts/build-lb-pod-rootfs.sh /rootfs"), stage.runs.join("; "));
    // The script and the three scripts it puts in the tree are copied into the stage (sources checked to exist above).
    const copied = stage.copies.flatMap((c) => c.sources);
    for (const file of ["scripts/build-lb-pod-rootfs.sh", "bin/berth-lb-pod", "bin/berth-lb-pod-check", "bin/berth-wait"]) {
      assert.ok(copied.includes(file), `${lbPod.dockerfile}: the rootfs stage does not copy ${file}`);
    }
    const installed = stage.runs.flatMap((r) => /apt-get install (.*?)(?:&&|$)/.exec(r)?.[1]?.split(/\s+/).filter((w) => w !== "" && !w.startsWith("-")) ?? []);
    const script = readFileSync(join(ROOT, "scripts/build-lb-pod-rootfs.sh"), "utf8");
    const needed = [...script.matchAll(/need \S+ ([\w.+-]+)/g)].map((m) => m[1] as string).filter((pkg) => !essential(pkg));
    assert.ok(needed.length >= 4, needed.join(", "));
    for (const pkg of needed) assert.ok(installed.includes(pkg), `${lbPod.dockerfile}: the rootfs stage does not install ${pkg}, which the script needs`);
  });

  it("lb-pod: the DaemonSet's command and probe, and what the scripts run, are executable files in that tree on the image's PATH", async function () {
    this.timeout(180_000);
    const { dir } = await ensureLbPodRootfs(ROOT, systemRunner());
    /** Follows a path inside the tree, absolute symlinks resolved against the tree as they are in the container. */
    const inTree = (path: string, hops = 0): string | undefined => {
      const full = join(dir, path);
      if (!existsSync(full) && !lstatOk(full)) return undefined;
      const target = lstatOk(full) ? readlinkSync(full) : undefined;
      if (target === undefined || hops > 8) return full;
      return inTree(target.startsWith("/") ? target : posix.join(posix.dirname(path), target), hops + 1);
    };
    const path = (lbPod.final.env.PATH ?? "").split(":");
    const config = defaultControllerConfig();
    const commands = [config.lbPodCommand[0], config.lbPodCheckCommand[0], "berth-wait", "sh", "awk", "cat", "mkdir", "mv", "rm", "date", "sleep",
      "env", "nft", "conntrack", ...["iptables", "ip6tables"].flatMap((f) => ["nft", "legacy"].flatMap((v) => [`${f}-${v}-save`, `${f}-${v}-restore`]))];
    for (const command of commands as string[]) {
      const found = path.map((d) => inTree(posix.join(d, command))).find((f) => f !== undefined);
      assert.ok(found, `${command} is not in the lb-pod tree on PATH ${path.join(":")}`);
      assert.ok(isExecutable(found), `${command} (${found}) is not executable`);
    }
    assert.deepEqual(lbPod.final.entrypoint, [`/usr/bin/${config.lbPodCommand[0] as string}`]);
    assert.equal(lbPod.final.env.BERTH_STATE_DIR, "/run/berth");
  });
});
