#!/usr/bin/env node
// The whole test suite: build, type-check, lint, then every mocha test (unit, API server, data plane, end-to-end).
// Build, type-check and lint count as one test each. The last line printed is the plain
// "N passed, N failed, N skipped" that CI reads. Extra arguments are passed to mocha (e.g. a file or --grep).
//
// One Node.js for everything (docs/design/0009-node-24-provisioned-locally.md): when scripts/install-deps.sh put
// Node.js 24 in .node/, a run started with another node (`node scripts/test.mjs` with Node 20 first on PATH) starts
// over on that one; and its directory goes first on PATH, so tsc, eslint, mocha and any test that runs `node` by name
// (or a `#!/usr/bin/env node` script) get the same binary.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const MIN_NODE_MAJOR = 24;
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const localNode = join(root, ".node", "bin", "node");
if (existsSync(localNode) && realpathSync(process.execPath) !== realpathSync(localNode)) {
  const rerun = spawnSync(localNode, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
  if (rerun.error) console.error(`scripts/test.mjs: cannot run ${localNode} (${rerun.error.message}): remove .node/ and run scripts/install-deps.sh`);
  process.exit(rerun.status ?? 1);
}
if (Number(process.versions.node.split(".")[0]) < MIN_NODE_MAJOR) {
  console.error(`scripts/test.mjs: berth needs Node.js ${MIN_NODE_MAJOR} or newer (this is v${process.versions.node}): run scripts/install-deps.sh, which puts Node.js 24 in .node/`);
  process.exit(1);
}
process.env.PATH = [dirname(process.execPath), ...(process.env.PATH ?? "").split(delimiter).filter((d) => d !== "")].join(delimiter);

const totals = { passed: 0, failed: 0, skipped: 0 };
const failedChecks = [];

function check(name, cmd, args) {
  console.log(`\n== ${name}: ${cmd} ${args.join(" ")} (Node.js ${process.version})`);
  const result = spawnSync(process.execPath, [cmd, ...args], { stdio: "inherit" });
  if (result.status === 0) totals.passed++;
  else {
    totals.failed++;
    failedChecks.push(name);
  }
}

check("build", "node_modules/.bin/tsc", ["-p", "tsconfig.build.json"]);
check("typecheck", "node_modules/.bin/tsc", ["-p", "tsconfig.json", "--noEmit"]);
check("lint", "node_modules/.bin/eslint", ["--max-warnings=0", "."]);

mkdirSync(".test-results", { recursive: true });
const summaryFile = ".test-results/mocha-summary.json";
rmSync(summaryFile, { force: true });
console.log("\n== tests: mocha");
// With no arguments, every test file; otherwise the files/flags given (the spec list is not in .mocharc.json, because
// mocha would add it to any file named on the command line).
const mochaArgs = process.argv.length > 2 ? process.argv.slice(2) : ["test/**/*.test.ts"];
const mocha = spawnSync(process.execPath, ["node_modules/.bin/mocha", ...mochaArgs], {
  stdio: "inherit",
  env: { ...process.env, BERTH_TEST_SUMMARY: summaryFile },
});
let summary;
try {
  summary = JSON.parse(readFileSync(summaryFile, "utf8"));
} catch {
  summary = undefined;
}
if (summary) {
  totals.passed += summary.passed;
  totals.failed += summary.failed;
  totals.skipped += summary.skipped;
  if (summary.failed > 0) failedChecks.push(...summary.failures);
} else {
  // mocha died before reporting (syntax error in a test file, crash): count it as a failure, never as nothing.
  totals.failed++;
  failedChecks.push(`mocha exited ${mocha.status} without a summary`);
}
if (summary && mocha.status !== 0 && summary.failed === 0) {
  totals.failed++;
  failedChecks.push(`mocha exited ${mocha.status}`);
}

if (failedChecks.length > 0) {
  console.log("\nFailed:");
  for (const name of failedChecks) console.log(`  - ${name}`);
}
console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed > 0 ? 1 : 0);
