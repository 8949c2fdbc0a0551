// Mocha reporter: mocha's own "spec" output, plus a JSON summary (passed / failed / skipped) written to the file
// named by BERTH_TEST_SUMMARY, which scripts/test.mjs folds into the plain closing line CI reads.
// CommonJS because mocha loads reporters with require().
"use strict";
const fs = require("node:fs");
const Mocha = require("mocha");

class BerthReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const counts = { passed: 0, failed: 0, skipped: 0, failures: [] };
    runner.on(Mocha.Runner.constants.EVENT_TEST_PASS, () => counts.passed++);
    runner.on(Mocha.Runner.constants.EVENT_TEST_PENDING, () => counts.skipped++);
    runner.on(Mocha.Runner.constants.EVENT_TEST_FAIL, (test) => {
      counts.failed++;
      counts.failures.push(test.fullTitle());
    });
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const file = process.env.BERTH_TEST_SUMMARY;
      if (file) fs.writeFileSync(file, JSON.stringify(counts));
    });
  }
}

module.exports = BerthReporter;
