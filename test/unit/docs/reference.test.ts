import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";

import type { Command } from "commander";

import { LB_POD_ENV } from "../../../src/lb-pod/config.js";
import * as names from "../../../src/lib/names.js";
import {
  REGENERATE_COMMAND,
  SCRIPT_VARIABLES,
  nameLeaves,
  referenceInputs,
  renderReference,
  undescribedNames,
} from "../../../src/docs/reference.js";

const referencePath = new URL("../../../docs/reference.md", import.meta.url);
const repoFile = (path: string): string => readFileSync(new URL(`../../../${path}`, import.meta.url), "utf8");

/**
 * Every command `--help` shows, with its full name (`berth lb-pod check`). Hidden commands (the sandbox's internal
 * processes) are left out, as help leaves them out.
 */
function allCommands(command: Command, prefix: string[] = []): { name: string; command: Command }[] {
  const name = [...prefix, command.name()];
  const visible = command.createHelp().visibleCommands(command).filter((sub) => command.commands.includes(sub));
  return [{ name: name.join(" "), command }, ...visible.flatMap((sub) => allCommands(sub, name))];
}

/** The part of the reference under `### <command name>`, up to the next heading. */
function commandSection(reference: string, name: string): string {
  const start = reference.indexOf(`\n### ${name}\n`);
  if (start < 0) return "";
  const next = reference.indexOf("\n#", start + 5);
  return reference.slice(start, next < 0 ? undefined : next);
}

describe("docs/reference.md", () => {
  const inputs = referenceInputs();
  const generated = renderReference(inputs);
  const committed = readFileSync(referencePath, "utf8");

  it("is exactly what the generator writes from the current code", () => {
    // Compare line by line so the failure points at the first stale line instead of two 30 KiB strings.
    if (committed === generated) return;
    const a = committed.split("\n");
    const b = generated.split("\n");
    const line = a.findIndex((text, i) => text !== b[i]);
    assert.fail(`docs/reference.md is not current: run \`${REGENERATE_COMMAND}\` and commit the result ` +
      `(first difference at line ${(line < 0 ? a.length : line) + 1}: committed ${JSON.stringify(a[line] ?? "")}, ` +
      `generated ${JSON.stringify(b[line] ?? "")})`);
  });

  it("describes every name src/lib/names.ts exports", () => {
    assert.deepEqual(undescribedNames(names), [],
      "add a NAME_DOCS entry in src/docs/reference.ts for each of these, then run " + REGENERATE_COMMAND);
  });

  it("names every label, annotation, finalizer, condition and Event reason value exported by src/lib/names.ts", () => {
    const leaves = nameLeaves(names);
    assert.ok(leaves.length >= 60, `expected the whole names module, found ${leaves.length} names`);
    const missing = leaves.flatMap((leaf) => leaf.values.filter((value) => !generated.includes(`\`${value}\``)).map((value) => `${leaf.path}=${value}`));
    assert.deepEqual(missing, []);
  });

  it("lists a name names.ts gains only once it is described", () => {
    const extended = { ...names, NEW_ANNOTATION: "berth.dev/not-yet-described" };
    assert.deepEqual(undescribedNames(extended), ["NEW_ANNOTATION"]);
    assert.ok(!renderReference({ ...inputs, names: extended }).includes("berth.dev/not-yet-described"));
  });

  it("documents every flag and argument of every berth subcommand under that subcommand", () => {
    const missing: string[] = [];
    const commands = allCommands(inputs.program);
    assert.ok(commands.some(({ name }) => name === "berth controller"), "the walk must reach berth controller");
    assert.ok(commands.some(({ name }) => name === "berth lb-pod check"), "the walk must reach nested subcommands");
    for (const { name, command } of commands) {
      const section = commandSection(generated, name);
      if (section === "") {
        missing.push(`section ${name}`);
        continue;
      }
      for (const option of command.options) {
        if (option.hidden) continue;
        if (!section.includes(`\`${option.flags}\``)) missing.push(`${name} ${option.flags}`);
      }
      for (const argument of command.registeredArguments) {
        if (!section.includes(`\`${argument.name()}`)) missing.push(`${name} <${argument.name()}>`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it("gives each flag's default and environment variable as the command defines them", () => {
    const controller = commandSection(generated, "berth controller");
    assert.match(controller, /\| `--namespace <ns>` \| [^|]+ \| `berth-system` \|/);
    assert.match(controller, /\| `--no-forwarding-sysctls` \|/);
    const apply = commandSection(generated, "berth lb-pod apply");
    assert.match(apply, /`--backend <name>` \|[^\n]*environment: `BERTH_BACKEND`[^\n]*\| `auto` \|/);
  });

  it("lists every metric in the controller's registry with its type and labels", () => {
    assert.ok(inputs.metrics.length >= 8, `expected the controller's metrics, found ${inputs.metrics.length}`);
    for (const metric of inputs.metrics) {
      const row = generated.split("\n").find((line) => line.startsWith(`| \`${metric.name}\` |`));
      assert.ok(row, `no row for ${metric.name}`);
      assert.ok(row.includes(`| ${metric.type} |`), `${metric.name} should say ${metric.type}: ${row}`);
      for (const label of metric.labels) assert.ok(row.includes(`\`${label}\``), `${metric.name} should list label ${label}`);
    }
    assert.ok(inputs.metrics.some((m) => m.name === "berth_reconcile_total" && m.type === "counter"));
  });

  it("lists every lb-pod environment variable, and each entrypoint variable is really read by its script", () => {
    for (const name of Object.values(LB_POD_ENV)) assert.ok(generated.includes(`| \`${name}\` |`), `no row for ${name}`);
    for (const variable of SCRIPT_VARIABLES) {
      assert.ok(generated.includes(`| \`${variable.name}\` |`), `no row for ${variable.name}`);
      assert.ok(repoFile(variable.script).includes(variable.name), `${variable.script} does not read ${variable.name}`);
    }
  });

  it("shows the lb-pod DaemonSet the controller really builds, forwarding sysctls included", () => {
    assert.ok(generated.includes("berth.dev/spec-hash: "), "the example must carry the controller's spec hash");
    for (const sysctl of Object.values(inputs.forwardingSysctls)) assert.ok(generated.includes(`\`${sysctl}\``), sysctl);
    // The example Service is IPv4-only: its pods ask for no sysctl (a stock kubelet must run them).
    assert.ok(!generated.includes("sysctls:"), "the example IPv4 pod asks for no sysctl");
  });

  it("renders the same text from the same inputs", () => {
    assert.equal(renderReference(referenceInputs()), generated);
  });
});
