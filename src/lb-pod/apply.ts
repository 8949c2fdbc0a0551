// The Node.js applier, which only `berth lb-pod apply --backend ipvs` runs now: every other backend is applied by
// bin/berth-lb-pod, the lb-pod image's POSIX sh entrypoint, on the rules bundle (docs/design/0013). The steps below
// are the ones that script follows too; IPVS stays here because the image carries no ipvsadm and the project's test
// kernel has no IPVS to prove a shell version on.
//
// Order, and why:
//   1. Forwarding sysctls of the planned families must be 1, else nothing is applied (UsageError, exit 2).
//   2. One look at the namespace (four iptables-save variants and `nft list tables`, in parallel) serves both the
//      backend choice (src/lb-pod/backend.ts) and finding rules we left earlier, in any backend.
//   3. The chosen backend gets one transaction per family (`iptables-restore --noflush`, adding only the jumps that
//      are missing) or one `nft -f` that replaces our table whole. Re-applying therefore never duplicates anything.
//   4. Then our rules anywhere else are removed: in a family the plan no longer uses (best effort; that family may
//      be disabled now), in the other iptables variant, in the native nftables table. So a restart with a changed
//      configuration, even one that changes backend, leaves exactly one rule set. New rules go in before old ones
//      go out, so there is no moment with no forwarding at all.
//   5. The live rules are compared with the plan (the readiness check's own comparison): a mismatch fails apply.
//   6. UDP conntrack entries for the forwarded ports (and ports forwarded before) are deleted: entries created before
//      the rules existed, or under old rules, would keep steering a UDP "flow" (which never ends while packets keep
//      coming) to the wrong place. kube-proxy does the same for UDP Services whose endpoints change.
//   7. The cleanup script for bin/berth-wait, the shell readiness check for bin/berth-lb-pod-check (check.sh, see
//      check-script.ts) and the state file for `--check` are written last: while apply runs, the old state file is
//      gone, so the pod is not Ready during the change (bin/berth-lb-pod-check needs state.json too).
import { access, chmod, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { UsageError } from "../lib/errors.js";
import { runChecked, type CommandRunner } from "../lib/exec.js";
import type { Family, RulePlan } from "../lib/rules/model.js";
import { NFT_FAMILY, NFT_TABLE } from "../lib/rules/names.js";
import {
  presentIptablesJumps,
  renderIptablesCleanup,
  renderIptablesRestore,
  requiredIptablesJumps,
  type IptablesJump,
} from "../lib/rules/render-iptables.js";
import { renderIpvs } from "../lib/rules/render-ipvs.js";
import { renderNftables, renderNftablesCleanup } from "../lib/rules/render-nftables.js";
import {
  chooseBackend,
  gatherBackendFacts,
  iptablesBinary,
  type BackendChoice,
  type BackendRequest,
  type IptablesSaves,
  type IptablesVariant,
} from "./backend.js";
import {
  CLEANUP_FILE,
  STATE_FILE,
  forwardingProblem,
  liveRulesProblem,
  ownedIptables,
  planHash,
  readState,
  variantOf,
  type LbPodState,
} from "./check.js";
import { CHECK_FILE, checkScript } from "./check-script.js";

export interface ApplyOptions {
  backend: BackendRequest;
  stateDir: string;
  /** Where /proc is (tests never need another one; kept explicit so nothing reads a global path implicitly). */
  procDir?: string;
}

export interface ApplyIo {
  runner: CommandRunner;
  /** One line of progress for the pod's log. */
  log(line: string): void;
}

export interface ApplyResult {
  choice: BackendChoice;
  /** What was removed besides the chosen backend's own rules, e.g. "iptables-legacy ipv6". */
  removedLeftovers: string[];
  /** UDP ports whose conntrack entries were deleted, per family. */
  flushedUdpPorts: Partial<Record<Family, number[]>>;
}

/** Applied rules do not match the plan right after applying (a renderer/kernel disagreement); exit code 1. */
export class ApplyVerificationError extends Error {
  override name = "ApplyVerificationError";
}

const IPTABLES_VARIANTS: readonly IptablesVariant[] = ["nft", "legacy"];
const FAMILIES: readonly Family[] = ["ipv4", "ipv6"];

export async function applyLbPod(plan: RulePlan, options: ApplyOptions, io: ApplyIo): Promise<ApplyResult> {
  const forwarding = await forwardingProblem(plan, options.procDir);
  if (forwarding) throw new UsageError(forwarding);

  const previous = await readState(options.stateDir);
  await rm(join(options.stateDir, STATE_FILE), { force: true });

  const { facts, saves, nftTables } = await gatherBackendFacts(io.runner, fileExists);
  const choice = chooseBackend(options.backend, facts);
  // IPVS mode marks and masquerades with iptables, in the variant the namespace uses (chosen as for iptables mode).
  const ipvsVariant = choice.backend === "ipvs" ? variantOf(chooseBackend("iptables", facts).backend) : undefined;
  const variant = variantOf(choice.backend) ?? ipvsVariant;

  if (choice.backend === "ipvs" && ipvsVariant) {
    await applyIpvs(io.runner, ipvsVariant, plan, saves, options.procDir ?? "/proc");
  } else if (variant) {
    await Promise.all(plan.families.map((family) => applyIptablesFamily(io.runner, variant, family, plan, saves)));
  } else if (choice.backend === "nftables") {
    await runChecked(io.runner, "nft", ["-f", "-"], { input: renderNftables(plan), timeoutMs: 30_000 });
  } else {
    throw new UsageError(`backend ${choice.backend}: no iptables variant runs here`);
  }

  const removedLeftovers = await removeLeftovers(io.runner, plan, variant, saves, nftTables);
  if (choice.backend !== "ipvs" && facts.ipvsAvailable && (await clearIpvsLeftovers(io.runner))) removedLeftovers.push("IPVS services");

  const problem = await liveRulesProblem(plan, choice.backend, io.runner, ipvsVariant);
  if (problem) throw new ApplyVerificationError(`rules applied with ${choice.backend} but not as planned: ${problem}`);

  const flushedUdpPorts = await flushUdpConntrack(io, plan, previous);

  await writeStateDir(options.stateDir, {
    state: {
      version: 1,
      planHash: planHash(plan),
      backend: choice.backend,
      ...(ipvsVariant ? { ipvsIptablesVariant: ipvsVariant } : {}),
      families: plan.families,
      udpPorts: udpPortsOf(plan),
      appliedAt: new Date().toISOString(),
    },
    cleanup: cleanupScript(plan, choice.backend, ipvsVariant),
    check: checkScript(plan, choice.backend),
  });
  return { choice, removedLeftovers, flushedUdpPorts };
}

/**
 * IPVS mode (not exercised on the reference machine, whose kernel has no IPVS): the namespaced sysctls IPVS needs,
 * the iptables part per family (marks, MASQUERADE, source check; it also removes iptables-mode chains), then the
 * virtual services with `ipvsadm-restore` (which replaces all of the namespace's services; they are all ours).
 */
async function applyIpvs(runner: CommandRunner, variant: IptablesVariant, plan: RulePlan, saves: IptablesSaves, procDir: string): Promise<void> {
  const presentJumps: Partial<Record<Family, IptablesJump[]>> = {};
  for (const family of plan.families) presentJumps[family] = presentIptablesJumps(saves[variant][family] ?? "");
  const rendering = renderIpvs(plan, { presentJumps });
  for (const [name, value] of Object.entries(rendering.sysctls)) {
    try {
      await writeFile(join(procDir, "sys", ...name.split(".")), value);
    } catch (error) {
      throw new UsageError(`backend ipvs needs ${name}=${value} in the pod's network namespace and setting it failed (${(error as Error).message}); set it with the pod's securityContext.sysctls`);
    }
  }
  await Promise.all(
    plan.families.map((family) =>
      runChecked(runner, iptablesBinary(variant, family, "restore"), ["--noflush"], { input: rendering.iptablesRestore[family] ?? "", timeoutMs: 30_000 }),
    ),
  );
  await runChecked(runner, "ipvsadm-restore", [], { input: rendering.ipvsadmRestore, timeoutMs: 30_000 });
}

/** Clears IPVS virtual services left by an earlier IPVS-mode apply; true when there were some. */
async function clearIpvsLeftovers(runner: CommandRunner): Promise<boolean> {
  const save = await runner.run("ipvsadm-save", ["-n"], { timeoutMs: 10_000 });
  if (save.exitCode !== 0 || !/^-A /m.test(save.stdout)) return false;
  await runChecked(runner, "ipvsadm", ["-C"], { timeoutMs: 10_000 });
  return true;
}

async function applyIptablesFamily(
  runner: CommandRunner,
  variant: IptablesVariant,
  family: Family,
  plan: RulePlan,
  saves: IptablesSaves,
): Promise<void> {
  const presentJumps = presentIptablesJumps(saves[variant][family] ?? "");
  await runChecked(runner, iptablesBinary(variant, family, "restore"), ["--noflush"], {
    input: renderIptablesRestore(plan, family, { presentJumps }),
    timeoutMs: 30_000,
  });
}

/** Removes our rules from every place except the chosen backend's planned families; returns what it removed. */
async function removeLeftovers(
  runner: CommandRunner,
  plan: RulePlan,
  chosenVariant: IptablesVariant | undefined,
  saves: IptablesSaves,
  nftTables: string | undefined,
): Promise<string[]> {
  const removals: Promise<string | undefined>[] = [];
  for (const variant of IPTABLES_VARIANTS) {
    for (const family of FAMILIES) {
      if (variant === chosenVariant && plan.families.includes(family)) continue;
      const save = saves[variant][family];
      if (save === undefined || !holdsOurs(save)) continue;
      const bestEffort = !plan.families.includes(family);
      removals.push(
        runner
          .run(iptablesBinary(variant, family, "restore"), ["--noflush"], {
            input: renderIptablesCleanup({ presentJumps: presentIptablesJumps(save) }),
            timeoutMs: 30_000,
          })
          .then((result) => {
            if (result.exitCode === 0) return `iptables-${variant} ${family}`;
            // A family the plan no longer uses may be unusable now (IPv6 disabled): never fail on it.
            if (bestEffort) return undefined;
            throw new Error(`removing old iptables-${variant} ${family} rules failed: ${result.stderr.trim().split("\n")[0] ?? ""}`);
          }),
      );
    }
  }
  if (chosenVariant !== undefined && nftTables !== undefined && new RegExp(`^table ${NFT_FAMILY} ${NFT_TABLE}$`, "m").test(nftTables)) {
    removals.push(
      runChecked(runner, "nft", ["-f", "-"], { input: renderNftablesCleanup(), timeoutMs: 30_000 }).then(
        () => `nftables table ${NFT_FAMILY} ${NFT_TABLE}`,
      ),
    );
  }
  return (await Promise.all(removals)).filter((what): what is string => what !== undefined);
}

function holdsOurs(save: string): boolean {
  const owned = ownedIptables(save);
  return owned.jumps.length > 0 || owned.chains.size > 0;
}

function udpPortsOf(plan: RulePlan): Partial<Record<Family, number[]>> {
  const ports: Partial<Record<Family, number[]>> = {};
  for (const forward of plan.forwards) {
    if (forward.protocol === "udp") (ports[forward.family] ??= []).push(forward.port);
  }
  return ports;
}

/**
 * `conntrack -D -f <family> -p udp --orig-port-dst <port>` for every UDP port forwarded now or by the previous
 * apply, in planned families only. Exit code 1 with "0 flow entries have been deleted" is success. A failure is
 * logged, not fatal: the rules are in, and a missing conntrack tool must not keep the Service down.
 */
async function flushUdpConntrack(io: ApplyIo, plan: RulePlan, previous: LbPodState | undefined): Promise<Partial<Record<Family, number[]>>> {
  const now = udpPortsOf(plan);
  const flushed: Partial<Record<Family, number[]>> = {};
  const jobs: { family: Family; port: number }[] = [];
  for (const family of plan.families) {
    const ports = [...new Set([...(now[family] ?? []), ...(previous?.udpPorts[family] ?? [])])].sort((a, b) => a - b);
    if (ports.length > 0) flushed[family] = ports;
    for (const port of ports) jobs.push({ family, port });
  }
  // A few at a time: each is one short process; 100 ports in parallel would only thrash 2 cores.
  for (let i = 0; i < jobs.length; i += 8) {
    await Promise.all(
      jobs.slice(i, i + 8).map(async ({ family, port }) => {
        const result = await io.runner.run("conntrack", ["-D", "-f", family, "-p", "udp", "--orig-port-dst", String(port)], {
          timeoutMs: 10_000,
        });
        if (result.exitCode !== 0 && !/0 flow entries/.test(result.stderr)) {
          io.log(`warning: flushing UDP conntrack entries for ${family} port ${port} failed: ${result.stderr.trim().split("\n")[0] ?? `exit ${result.exitCode}`}`);
        }
      }),
    );
  }
  return flushed;
}

/**
 * The script bin/berth-wait runs on SIGTERM: native tools only, removing exactly what this apply put in. If a
 * jump was removed behind our back, the first restore fails as a whole; the second one, which deletes no jumps,
 * then removes the chains.
 */
export function cleanupScript(plan: RulePlan, backend: BackendChoice["backend"], ipvsVariant?: IptablesVariant): string {
  const lines = ["#!/bin/sh", `# Written by berth lb-pod apply (backend ${backend}): removes the rules it applied. Run by bin/berth-wait.`, "status=0"];
  // The rest of the command line (`|| status=1`) goes before the here-document's body, not after its end marker.
  const heredoc = (command: string, text: string, rest = ""): string => `${command} <<'BERTH_EOF'${rest}\n${text.trimEnd()}\nBERTH_EOF`;
  const variant = variantOf(backend) ?? ipvsVariant;
  if (backend === "ipvs") lines.push("ipvsadm -C || status=1");
  if (variant) {
    const required = backend === "ipvs" ? renderIpvs(plan).requiredJumps : undefined;
    for (const family of plan.families) {
      const restore = `${iptablesBinary(variant, family, "restore")} --noflush`;
      const jumps = required ? (required[family] ?? []) : requiredIptablesJumps(plan, family);
      lines.push(
        `if ! ${heredoc(restore, renderIptablesCleanup({ presentJumps: jumps }))}`,
        `then ${heredoc(restore, renderIptablesCleanup({ presentJumps: [] }))}`,
        "fi || status=1",
      );
    }
  } else if (backend === "nftables") {
    lines.push(heredoc("nft -f -", renderNftablesCleanup(), " || status=1"));
  }
  lines.push('exit "$status"', "");
  return lines.join("\n");
}

async function writeStateDir(stateDir: string, files: { state: LbPodState; cleanup: string; check: string }): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  for (const [name, text] of [
    [CLEANUP_FILE, files.cleanup],
    [CHECK_FILE, files.check],
  ] as const) {
    const path = join(stateDir, name);
    await writeFile(`${path}.tmp`, text);
    await chmod(`${path}.tmp`, 0o755);
    await rename(`${path}.tmp`, path);
  }
  const statePath = join(stateDir, STATE_FILE);
  await writeFile(`${statePath}.tmp`, `${JSON.stringify(files.state, null, 2)}\n`);
  await rename(`${statePath}.tmp`, statePath);
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
