// `berth convert metallb [FILE|-]`: reads MetalLB configuration (a file, or stdin for `-` or no argument), prints
// berth AddressPools as YAML on stdout, and names on stderr what it could not carry over (BGP) or carried over with
// a change of meaning. Exit code 0 also when something was left out (it is said); 2 on bad input, with one line.
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { UsageError } from "../lib/errors.js";

export interface ConvertIo {
  readStdin(): string;
  readFile(path: string): string;
  out(text: string): void;
  err(text: string): void;
}

const realIo: ConvertIo = {
  readStdin: () => readFileSync(0, "utf8"),
  readFile: (path) => readFileSync(path, "utf8"),
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** Converts; throws UsageError (one line, exit code 2) on input it cannot read or convert. */
export async function runConvertMetallb(file: string | undefined, io: ConvertIo = realIo): Promise<void> {
  const { convertMetallb, ConvertError } = await import("./metallb.js");
  const { toYamlStream } = await import("../manifests/yaml.js");
  let text: string;
  try {
    text = file === undefined || file === "-" ? io.readStdin() : io.readFile(file);
  } catch (error) {
    throw new UsageError(`cannot read ${file ?? "stdin"}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let result: ReturnType<typeof convertMetallb>;
  try {
    result = convertMetallb(text);
  } catch (error) {
    if (error instanceof ConvertError) throw new UsageError(`convert metallb: ${error.message}`);
    throw error;
  }
  for (const line of result.dropped) io.err(`berth convert: not carried over: ${line}\n`);
  for (const line of result.notes) io.err(`berth convert: note: ${line}\n`);
  if (result.pools.length === 0) {
    io.err("berth convert: no layer-2 pool to convert\n");
    return;
  }
  io.out(toYamlStream(result.pools as Record<string, unknown>[],
    `berth AddressPools converted from MetalLB configuration by \`berth convert metallb\`.\nApply with: kubectl apply -f FILE`));
}

export function convertCommand(): Command {
  const command = new Command("convert").exitOverride().description("convert another load balancer's configuration to berth's");
  command
    .command("metallb")
    .exitOverride()
    .argument("[file]", "MetalLB YAML: IPAddressPool and L2Advertisement objects, or the `config` ConfigMap; - or nothing for stdin")
    .description("print berth AddressPools for MetalLB's layer-2 configuration; what cannot be carried over (BGP) is named on stderr")
    .action(async (file: string | undefined) => {
      await runConvertMetallb(file);
    });
  return command;
}
