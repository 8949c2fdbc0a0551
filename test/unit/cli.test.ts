import { strict as assert } from "node:assert";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

const cli = new URL("../../dist/cli.js", import.meta.url).pathname;

describe("berth CLI", () => {
  it("prints the package version for `berth version`", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    assert.equal(execFileSync("node", [cli, "version"], { encoding: "utf8" }).trim(), `berth ${pkg.version}`);
  });

  it("lists its subcommands in --help", () => {
    const help = execFileSync("node", [cli, "--help"], { encoding: "utf8" });
    assert.match(help, /^\s+version\b/m);
  });

  it("rejects an unknown subcommand with one line on stderr and exit code 2", () => {
    const result = spawnSync("node", [cli, "no-such-command"], { encoding: "utf8" });
    assert.equal(result.status, 2);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  });
});
