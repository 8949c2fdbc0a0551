// `berth lb-pod`: the per-Service forwarding agent's command line. Only commander is loaded up front; the planner,
// renderers and appliers load when a subcommand runs, and nothing on this path imports @kubernetes/client-node.
import { Command, Option } from "commander";
import { BACKEND_REQUESTS, type BackendRequest } from "./backend.js";

interface LbPodOptions {
  port?: string[];
  destinationIp?: string[];
  sourceRange?: string[];
  backend: BackendRequest;
  stateDir: string;
  check?: boolean;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

const CONFIG_HELP = `
Configuration (flags override the environment):
  klipper-lb's contract: SRC_PORT, DEST_PORT, DEST_PROTO (TCP, UDP, SCTP), DEST_IPS, SRC_RANGES
  berth's own:           BERTH_PORTS="tcp:80:80 udp:53:53" (all ports of a Service), DEST_IPS, SRC_RANGES
  Lists are separated by commas or spaces. An empty SRC_RANGES allows every source.

Backend (--backend, or BERTH_BACKEND): auto (default) = iptables in the variant (nft or legacy) whose tables
already hold rules in this network namespace, decided as kube-proxy's iptables-wrapper does; nftables and ipvs
only when asked for.

State (--state-dir, or BERTH_STATE_DIR; default /run/berth): apply renders the rules bundle into rules/ there and
bin/berth-lb-pod writes state.json (read by --check), the rules the probe expects and cleanup.sh (run by
bin/berth-wait on SIGTERM).`;

function withConfigOptions(command: Command): Command {
  return command
    .option("--port <proto:port:destPort>", "a port to forward, e.g. tcp:80:8080 (repeatable; replaces BERTH_PORTS/SRC_PORT)", collect)
    .option("--destination-ip <ip>", "a destination IP, either family (repeatable; replaces DEST_IPS)", collect)
    .option("--source-range <cidr>", "an allowed source range (repeatable; replaces SRC_RANGES)", collect)
    .addOption(new Option("--backend <name>", "netfilter backend").choices(BACKEND_REQUESTS).env("BERTH_BACKEND").default("auto"))
    .addOption(new Option("--state-dir <dir>", "where apply records its state and cleanup script").env("BERTH_STATE_DIR").default("/run/berth"));
}

export function lbPodCommand(): Command {
  // `apply` is the default subcommand, so `berth lb-pod [--check] [options]` works without naming one. (Options on
  // lb-pod itself would be swallowed before its subcommands unless the root program enabled positional options.)
  // exitOverride: commands added with addCommand() do not inherit the root's, and a bad flag must end in main()'s
  // one-line, exit-code-2 handling instead of commander's own process.exit(1).
  const lbPod = new Command("lb-pod")
    .exitOverride()
    .description("forward a Service's ports from this pod's network namespace (hostPort mode)")
    .addHelpText(
      "after",
      `
\`berth lb-pod [options]\` is \`berth lb-pod apply [options]\`: it renders the rules bundle for the configuration and
runs bin/berth-lb-pod --once on it (the lb-pod image's entrypoint, POSIX sh), which applies the rules and exits,
leaving them in place; with --check it is \`berth lb-pod check\`. In a cluster the controller renders the bundle
into a ConfigMap and the pod runs bin/berth-lb-pod alone (no Node.js in its image), which then hands over to
berth-sigwait (a few pages of static C) until SIGTERM, then to bin/berth-wait --stop, which removes the rules. \`berth lb-pod render --out DIR\` writes a bundle.
The readiness probe is bin/berth-lb-pod-check (sh + awk); \`berth lb-pod check\` is the same check in Node.js,
re-planned from the configuration.
${CONFIG_HELP}`,
    );
  lbPod.addCommand(
    withConfigOptions(new Command("apply").exitOverride())
      .description("apply the rules atomically (replacing any earlier berth rules), then exit [default]")
      .option("--check", "do not apply: run `lb-pod check` instead")
      .addHelpText("after", CONFIG_HELP)
      .action(async (options: LbPodOptions) => (options.check ? runCheck(options) : runApply(options))),
    { isDefault: true },
  );
  lbPod.addCommand(
    withConfigOptions(new Command("render").exitOverride())
      .description("write the rules bundle for this configuration into a directory (what bin/berth-lb-pod applies), then exit")
      .requiredOption("--out <dir>", "the directory to write (replaced whole)")
      .addHelpText("after", CONFIG_HELP)
      .action(async (options: LbPodOptions & { out: string }) => {
        await writeBundleFor(options, options.out);
        console.log(`berth lb-pod: rules bundle written to ${options.out}`);
      }),
  );
  lbPod.addCommand(
    withConfigOptions(new Command("check").exitOverride())
      .description("readiness probe: exit 0 only when the complete rule set for this configuration is in place")
      .addHelpText("after", CONFIG_HELP)
      .action(async (options: LbPodOptions) => runCheck(options)),
  );
  return lbPod;
}

async function planFromOptions(options: LbPodOptions) {
  const [{ parseLbPodConfig }, { planRules }] = await Promise.all([import("./config.js"), import("./plan.js")]);
  const config = parseLbPodConfig(process.env, {
    ports: options.port,
    destinationIps: options.destinationIp,
    sourceRanges: options.sourceRange,
  });
  return planRules(config);
}

/**
 * Renders the rules bundle for this configuration into <state dir>/rules and runs bin/berth-lb-pod --once on it:
 * the lb-pod image's entrypoint is the one implementation of apply (docs/design/0013). IPVS alone keeps the
 * Node.js applier (apply.ts): the image's shell entrypoint does not do IPVS.
 */
/** Renders this configuration's rules bundle (src/lb-pod/bundle.ts) into `dir`, replacing what was there. */
async function writeBundleFor(options: LbPodOptions, dir: string): Promise<void> {
  const [{ renderBundle }, { parseLbPodConfig }, { mkdir, rm, writeFile }] = await Promise.all([
    import("./bundle.js"), import("./config.js"), import("node:fs/promises"),
  ]);
  const bundle = renderBundle(parseLbPodConfig(process.env, { ports: options.port, destinationIps: options.destinationIp, sourceRanges: options.sourceRange }));
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await Promise.all(Object.entries(bundle).map(([name, text]) => writeFile(`${dir}/${name}`, text)));
}

/**
 * Renders the rules bundle for this configuration into <state dir>/rules and runs bin/berth-lb-pod --once on it:
 * the lb-pod image's entrypoint is the one implementation of apply (docs/design/0013). IPVS alone keeps the
 * Node.js applier (apply.ts): the image's shell entrypoint does not do IPVS.
 */
async function runApply(options: LbPodOptions): Promise<void> {
  const started = performance.now();
  if (options.backend === "ipvs") return runIpvsApply(options, await planFromOptions(options), started);
  const rulesDir = `${options.stateDir}/rules`;
  await writeBundleFor(options, rulesDir);
  const [{ spawn }, { fileURLToPath }] = await Promise.all([import("node:child_process"), import("node:url")]);
  const script = fileURLToPath(new URL("../../bin/berth-lb-pod", import.meta.url));
  const child = spawn("sh", [script, "--once", "--rules", rulesDir, "--state-dir", options.stateDir, "--backend", options.backend], { stdio: "inherit" });
  const code = await new Promise<number>((resolve) => {
    child.once("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
    child.once("error", () => resolve(127));
  });
  if (code === 0) console.log(`berth lb-pod: applied in ${Math.round(performance.now() - started)} ms (since start: ${Math.round(performance.now())} ms)`);
  process.exitCode = code;
}

async function runIpvsApply(options: LbPodOptions, plan: import("../lib/rules/model.js").RulePlan, started: number): Promise<void> {
  const [{ applyLbPod }, { systemRunner }] = await Promise.all([import("./apply.js"), import("../lib/exec.js")]);
  const log = (line: string): void => console.log(`berth lb-pod: ${line}`);
  const result = await applyLbPod(plan, { backend: options.backend, stateDir: options.stateDir }, { runner: systemRunner(), log });
  const forwards = plan.forwards.map((f) => `${f.family === "ipv6" ? "ipv6 " : ""}${f.protocol}/${f.port}`).join(", ");
  log(`backend ${result.choice.backend} (${result.choice.reason})`);
  if (result.removedLeftovers.length > 0) log(`removed earlier rules: ${result.removedLeftovers.join(", ")}`);
  log(`forwarding ${forwards}; applied in ${Math.round(performance.now() - started)} ms (since start: ${Math.round(performance.now())} ms)`);
}

async function runCheck(options: LbPodOptions): Promise<void> {
  const plan = await planFromOptions(options);
  const [{ checkLbPod }, { systemRunner }] = await Promise.all([import("./check.js"), import("../lib/exec.js")]);
  const result = await checkLbPod(plan, { runner: systemRunner(), stateDir: options.stateDir });
  if (result.ready) {
    console.log(`berth lb-pod: ready (${result.backend} rules in place)`);
  } else {
    console.error(`berth lb-pod: not ready: ${result.reason}`);
    process.exitCode = 1;
  }
}
