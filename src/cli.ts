#!/usr/bin/env node
// The one `berth` binary. Each role's command lives beside its code (src/<role>/command.ts) and loads its heavy
// modules only when it runs, so that `berth lb-pod` never pays for `@kubernetes/client-node` (~750 ms to import).
import { Command, CommanderError } from "commander";
import { berthVersion } from "./lib/version.js";
import { UsageError } from "./lib/errors.js";
import { controllerCommand } from "./controller/command.js";
import { lbPodCommand } from "./lb-pod/command.js";
import { sandboxCommand } from "./sandbox/command.js";

export function buildProgram(): Command {
  const program = new Command("berth")
    .description("LoadBalancer Services for bare-metal and k3s-like Kubernetes clusters")
    .version(berthVersion(), "--version", "print the version")
    .showHelpAfterError(false);

  program
    .command("version")
    .description("print berth's version")
    .action(() => {
      console.log(`berth ${berthVersion()}`);
    });

  // Each role adds its command here (one import, one line); commands load their heavy modules lazily.
  for (const command of roleCommands()) program.addCommand(command);

  return program;
}

function roleCommands(): Command[] {
  return [
    controllerCommand(),
    lbPodCommand(),
    sandboxCommand(),
  ];
}

/** Runs the CLI; every failure ends as one line on stderr and a non-zero exit code (2 for bad input). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its message (or the help/version text).
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof UsageError) {
      console.error(`berth: ${err.message}`);
      return 2;
    }
    console.error(`berth: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
