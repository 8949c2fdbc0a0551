// The images cannot ship pointing at nothing. There is no container engine here, so each Dockerfile under images/ is
// parsed (stages, COPY, ENV PATH, USER, ENTRYPOINT/CMD, apt-get install) and every path and command that its
// entrypoint, the shell scripts it runs and the generated manifests refer to is followed into the image: berth's own
// files to the build output in this repository (dist/, bin/, package.json), Debian commands to the package that
// ships them (dpkg -S on this Debian bookworm machine, the images' release) which must be installed by the Dockerfile
// or be Essential (always in debian:*-slim).
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync, readdirSync } from "node:fs";
import { basename, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultControllerConfig } from "../../../src/controller/types.js";
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

/** External commands the lb-pod runs (src/lb-pod): string literals given to runner.run / runChecked, and iptablesBinary(). */
function lbPodCommands(): string[] {
  const names = new Set<string>();
  for (const file of readdirSync(join(ROOT, "src/lb-pod")).filter((f) => f.endsWith(".ts"))) {
    const text = readFileSync(join(ROOT, "src/lb-pod", file), "utf8");
    for (const call of text.matchAll(/(?:runner\.run|runChecked)\(\s*(?:[\w.]+,\s*)?([^,]+),/g)) {
      const arg = (call[1] as string).trim();
      const literal = /^"([^"]+)"$/.exec(arg);
      if (literal) names.add(literal[1] as string);
      // Every other first argument must be iptablesBinary(...), expanded below; anything new fails here.
      else assert.match(arg, /^iptablesBinary\(/, `src/lb-pod/${file} runs a command this test cannot see: ${arg}`);
    }
  }
  for (const family of ["iptables", "ip6tables"]) {
    for (const variant of ["nft", "legacy"]) for (const tool of ["save", "restore"]) names.add(`${family}-${variant}-${tool}`);
  }
  return [...names].sort();
}

/**
 * Paths a shell script builds from its own directory ("$bin_dir/berth-wait", "$(dirname "$self")/../dist/cli.js"):
 * `required` ones it runs as they are, `optional` ones it first tests with `[ -x ... ]` and falls back from (the
 * Node.js that scripts/install-deps.sh puts in a checkout's .node/, never in an image).
 */
function scriptRelativePaths(script: string): { required: string[]; optional: string[] } {
  const text = readFileSync(join(ROOT, script), "utf8");
  const all = [...text.matchAll(/(?:\$bin_dir|\$\(dirname "\$self"\))\/([\w./-]+)/g)].map((m) => m[1] as string);
  const optional = [...text.matchAll(/\[ -x "(?:\$bin_dir|\$\(dirname "\$self"\))\/([\w./-]+)" \]/g)].map((m) => m[1] as string);
  return { required: [...new Set(all.filter((p) => !optional.includes(p)))], optional: [...new Set(optional)] };
}

describe("images: every path and command they refer to exists in the build output", function () {
  this.timeout(60_000);
  const controller = new Image("images/controller/Dockerfile");
  const lbPod = new Image("images/lb-pod/Dockerfile");
  const unverifiable: string[] = [];

  before(function () {
    if (!existsSync(join(ROOT, "dist/cli.js"))) skipBecause(this, "dist/ is not built (npm run build)");
    const commands = [...lbPodCommands(), "sh", "sleep", "rm", "readlink", "dirname"];
    prefetchPackages(commands.flatMap((c) => lbPod.path().map((dir) => posix.join(dir, c))).filter((p) => existsSync(p)));
  });

  it("builds in stages from base images pinned by exact tag and digest, and ships no npm", () => {
    for (const image of [controller, lbPod]) {
      assert.ok(image.stages.length >= 2, `${image.dockerfile} is not multi-stage`);
      for (const stage of image.stages) {
        assert.match(stage.image, /^[\w./-]+:[\w.-]*\d[\w.-]*@sha256:[0-9a-f]{64}$/, `${image.dockerfile}: FROM ${stage.image}`);
      }
      assert.match(image.final.image, /^debian:[\w.-]+-slim@/, `${image.dockerfile}: the final stage is not Debian slim`);
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
    for (const image of [controller, lbPod]) {
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

  it("lb-pod: the DaemonSet's command and readiness probe, and the scripts they run, resolve to built files", () => {
    const config = defaultControllerConfig();
    const entry = mustFind(lbPod, config.lbPodCommand[0] as string, unverifiable);
    assert.deepEqual(entry.origin, { repo: "bin/berth-lb-pod" });
    assert.deepEqual(lbPod.final.entrypoint, config.lbPodCommand);
    const probe = mustFind(lbPod, config.lbPodCheckCommand[0] as string, unverifiable);
    assert.deepEqual(probe.origin, { repo: "bin/berth-lb-pod-check" });
    // The probe runs the check.sh apply writes; for the IPVS backend that script runs `lb-pod check` with the
    // built CLI (src/lb-pod/check-script.ts), so that subcommand must exist in it.
    const check = spawnSync(process.execPath, [join(ROOT, "dist/cli.js"), "lb-pod", "check", "--help"], { encoding: "utf8" });
    assert.equal(check.status, 0, check.stderr);

    // Paths the scripts derive from their own directory, followed inside the image.
    const seen = new Set<string>();
    const optional = new Set<string>();
    for (const found of [entry, probe]) {
      const script = (found.origin as { repo: string }).repo;
      const paths = scriptRelativePaths(script);
      for (const rel of paths.required) {
        seen.add(`${script} -> ${rel}`);
        repoFile(lbPod, posix.resolve(posix.dirname(found.path), rel));
      }
      for (const rel of paths.optional) optional.add(`${script} -> ${rel}`);
    }
    assert.deepEqual([...seen].sort(), ["bin/berth-lb-pod -> ../dist/cli.js", "bin/berth-lb-pod -> berth-wait"]);
    // Only the checkout's own Node.js may be missing from the image; the script then runs `node` from PATH (below).
    assert.deepEqual([...optional].sort(), ["bin/berth-lb-pod -> ../.node/bin/node"]);
    // The IPVS check.sh finds the CLI from the probe's own path, as ../dist/cli.js (src/lb-pod/check-script.ts).
    assert.match(readFileSync(join(ROOT, "src/lb-pod/check-script.ts"), "utf8"), /\$bin_dir\/\.\.\/dist\/cli\.js/);
    assert.equal(repoFile(lbPod, posix.resolve(posix.dirname(probe.path), "../dist/cli.js")), "dist/cli.js");
    // The scripts start `node` (BERTH_NODE unset) and the waiter needs sh, sleep and rm; readlink and dirname locate
    // bin/; the probe's check.sh compares with awk.
    for (const command of ["node", "sh", "sleep", "rm", "readlink", "dirname", "awk"]) mustFind(lbPod, command, unverifiable);
    assert.equal(lbPod.final.env.BERTH_STATE_DIR, "/run/berth");
  });

  it("lb-pod: every netfilter tool the lb-pod runs comes from a package the image installs", function () {
    const commands = lbPodCommands();
    // The scan found the tools this test knows the lb-pod uses (so it is not reading nothing).
    for (const known of ["nft", "conntrack", "ipvsadm", "ipvsadm-save", "ipvsadm-restore", "iptables-legacy-restore", "ip6tables-nft-save"]) {
      assert.ok(commands.includes(known), known);
    }
    const before = unverifiable.length;
    for (const command of commands) mustFind(lbPod, command, unverifiable);
    if (unverifiable.length > before) skipBecause(this, `cannot tell which package ships: ${unverifiable.slice(before).join(", ")}`);
  });

  it("the lb-pod's cleanup script, run by the waiter, uses only those tools and sh", () => {
    const text = readFileSync(join(ROOT, "src/lb-pod/apply.ts"), "utf8");
    const body = text.slice(text.indexOf("export function cleanupScript"), text.indexOf("async function writeStateDir"));
    assert.ok(body.length > 0);
    const commands = [...body.matchAll(/lines\.push\(\s*"(\w[\w-]*) /g)].map((m) => m[1] as string);
    assert.deepEqual(commands, ["ipvsadm"]);
    assert.match(body, /heredoc\("nft -f -"/);
    assert.match(body, /iptablesBinary\(variant, family, "restore"\)/);
    for (const command of ["ipvsadm", "nft", "iptables-nft-restore", "ip6tables-legacy-restore"]) mustFind(lbPod, command, unverifiable);
  });
});
