#!/usr/bin/env node
// The one `berth` binary. Each role's command lives beside its code (src/<role>/command.ts) and loads its heavy
// modules only when it runs, so that `berth lb-pod` never pays for `@kubernetes/client-node` (~750 ms to import).
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { berthVersion } from "./lib/version.js";
import { UsageError } from "./lib/errors.js";
import { controllerCommand } from "./controller/command.js";
import { lbPodCommand } from "./lb-pod/command.js";
import { sandboxCommand } from "./sandbox/command.js";
import { doctorCommand } from "./doctor/command.js";
import { manifestsCommand } from "./manifests/command.js";
import { convertCommand } from "./convert/command.js";
import { speakerCommand } from "./speaker/command.js";

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
    doctorCommand(),
    manifestsCommand(),
    convertCommand(),
    speakerCommand(),
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

/**
 * True when node runs this file (directly, through tsx, or through a symlink such as node_modules/.bin/berth), false
 * when it is imported: src/docs/reference.ts imports buildProgram() to document every flag, and must not run a command.
 */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    // `node dist/cli` (no extension) names no file but runs this one: better to run than to exit silently.
    return true;
  }
}

if (isEntryPoint()) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
