#!/usr/bin/env node
// The whole test suite: build, type-check, lint, then every mocha test (unit, API server, data plane, end-to-end).
// Build, type-check and lint count as one test each. The last line printed is the plain
// "N passed, N failed, N skipped" that CI reads. Extra arguments are passed to mocha (e.g. a file or --grep).
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";

const totals = { passed: 0, failed: 0, skipped: 0 };
const failedChecks = [];

function check(name, cmd, args) {
  console.log(`\n== ${name}: ${cmd} ${args.join(" ")}`);
  const result = spawnSync(cmd, args, { stdio: "inherit" });
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
const mocha = spawnSync("node_modules/.bin/mocha", mochaArgs, {
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
