import { strict as assert } from "node:assert";
import { CommandError, runChecked, systemRunner } from "../../src/lib/exec.js";

describe("CommandRunner (system)", () => {
  const runner = systemRunner();

  it("passes stdin and returns stdout, stderr and the exit code without throwing", async () => {
    const result = await runner.run("sh", ["-c", "cat; echo oops >&2; exit 3"], { input: "hello\n" });
    assert.deepEqual(
      { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr },
      { exitCode: 3, stdout: "hello\n", stderr: "oops\n" },
    );
  });

  it("reports a missing program as exit code 127", async () => {
    const result = await runner.run("berth-no-such-program", []);
    assert.equal(result.exitCode, 127);
    assert.match(result.stderr, /command not found/);
  });

  it("kills a command that outlives its timeout and reports exit code 124", async () => {
    const started = Date.now();
    const result = await runner.run("sleep", ["5"], { timeoutMs: 100 });
    assert.equal(result.exitCode, 124);
    assert.ok(Date.now() - started < 2000);
  });

  it("throws a one-line CommandError naming the command and its first line of stderr for an unaccepted exit code", async () => {
    await assert.rejects(runChecked(runner, "sh", ["-c", "echo 'first\nsecond' >&2; exit 1"]), (error: unknown) => {
      assert.ok(error instanceof CommandError);
      assert.equal(error.message, "`sh -c echo 'first\\nsecond' >&2; exit 1` failed (exit 1): first");
      return true;
    });
    assert.equal((await runChecked(runner, "sh", ["-c", "exit 1"], {}, [0, 1])).exitCode, 1);
  });
});
