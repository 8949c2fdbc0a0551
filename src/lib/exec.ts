// Running native tools (iptables-restore, nft, conntrack, ip) behind one small interface, so the code that decides
// what to run can be handed a runner bound to a network namespace in tests, and so every failure reads the same way.
//
// Why node:child_process and not execa: importing execa 9 costs ~90 ms on the 2-core reference machine, and the
// lb-pod pays its import cost on every container start and every readiness probe (`berth lb-pod --check`). We need
// none of execa's extras here (no shells, no pipes between children, no streaming), so spawn() is enough.
import { spawn } from "node:child_process";

export interface RunOptions {
  /** Text written to the command's standard input (closed afterwards). */
  input?: string;
  /**
   * Network namespace to run the command in, through `ip netns exec NAME`. Only tests and the sandbox need this: in a
   * real pod the lb-pod process already lives in the pod's network namespace.
   */
  netns?: string;
  /** Kill the command (SIGKILL) after this many milliseconds; the result then has exitCode 124 (as timeout(1)). */
  timeoutMs?: number;
}

export interface RunResult {
  /** The command line as run, for messages. */
  command: string;
  /** The exit code; 127 when the program does not exist, 128+N when killed by signal N, 124 on timeout. */
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs one program with arguments; never throws for a non-zero exit (callers decide what an exit code means). */
export interface CommandRunner {
  run(file: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

/** A command that exited with a code its caller did not accept. The message is one line. */
export class CommandError extends Error {
  override name = "CommandError";
  constructor(readonly result: RunResult) {
    const detail = firstLine(result.stderr) || firstLine(result.stdout) || "no output";
    super(`\`${result.command.replace(/\n/g, "\\n")}\` failed (exit ${result.exitCode}): ${detail}`);
  }
}

/** Runs a command and throws CommandError unless its exit code is one of okExitCodes. */
export async function runChecked(
  runner: CommandRunner,
  file: string,
  args: readonly string[],
  options: RunOptions = {},
  okExitCodes: readonly number[] = [0],
): Promise<RunResult> {
  const result = await runner.run(file, args, options);
  if (!okExitCodes.includes(result.exitCode)) throw new CommandError(result);
  return result;
}

/**
 * The real runner. `defaults.netns` binds every command to one namespace (a per-call `netns` overrides it), which is
 * how tests point the whole lb-pod I/O layer at a namespace they created.
 */
export function systemRunner(defaults: { netns?: string } = {}): CommandRunner {
  return {
    run(file, args, options = {}) {
      const netns = options.netns ?? defaults.netns;
      const [bin, argv] = netns === undefined ? [file, [...args]] : ["ip", ["netns", "exec", netns, file, ...args]];
      return spawnCollect(bin, argv, options, [file, ...args].join(" ") + (netns ? ` (in netns ${netns})` : ""));
    },
  };
}

function spawnCollect(bin: string, argv: string[], options: RunOptions, command: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(bin, argv, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let settled = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, options.timeoutMs);
    const finish = (exitCode: number, extraStderr = ""): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      resolve({
        command,
        exitCode,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8") + extraStderr,
      });
    };
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", (error: NodeJS.ErrnoException) => {
      finish(error.code === "ENOENT" ? 127 : 126, `${bin}: ${error.code === "ENOENT" ? "command not found" : error.message}`);
    });
    child.on("close", (code, signal) => {
      if (timedOut) finish(124, `${command}: timed out after ${options.timeoutMs} ms`);
      else finish(code ?? 128 + signalNumber(signal));
    });
    // A child that exits without reading its stdin makes the write fail with EPIPE; its exit code tells the story.
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return (signal && numbers[signal]) ?? 0;
}

function firstLine(text: string): string {
  return text.split("\n").map((line) => line.trim()).find((line) => line.length > 0) ?? "";
}
