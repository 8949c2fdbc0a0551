// `berth lb-pod --check`, the lb-pod's readiness probe: ready only when the complete rule set for the current
// configuration is in the namespace and forwarding is still on. servicelb's pods report Ready before their rules
// exist (klipper-lb has no readiness probe at all); this is what closes that gap.
//
// How it decides (cheap enough to run every probe period; no rule is ever written here):
//   1. apply left a state file (STATE_FILE in the state dir) whose plan hash equals the hash of the plan made from
//      the current configuration: otherwise the rules, if any, belong to another configuration;
//   2. the forwarding sysctl of every planned family is 1;
//   3. the live rules equal the expected ones, for the backend apply used:
//      - iptables (either variant): `iptables-save` is compared line by line with what the renderer produces for
//        this plan (it writes rules exactly as iptables-save prints them): same berth chains, same rules in each,
//        every required jump from a built-in chain present exactly once;
//      - nftables: `nft list table inet berth` equals, as text, the table the renderer writes for this plan (it
//        writes the table exactly as nft lists it; counters, if any, are ignored).
// apply runs the same comparison right after applying and fails if it does not hold, so a renderer/kernel
// disagreement surfaces as a failed apply, never as a pod that stays unready for no visible reason.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { CommandRunner } from "../lib/exec.js";
import type { Family, RulePlan } from "../lib/rules/model.js";
import { NFT_FAMILY, NFT_TABLE } from "../lib/rules/names.js";
import {
  presentIptablesJumps,
  renderIptablesRestore,
  requiredIptablesJumps,
  type IptablesJump,
} from "../lib/rules/render-iptables.js";
import { renderIpvs, type IpvsRendering } from "../lib/rules/render-ipvs.js";
import { renderNftablesTable } from "../lib/rules/render-nftables.js";
import { iptablesBinary, type BackendName, type IptablesVariant } from "./backend.js";

/** The file apply writes last (so its presence means "apply finished") and the waiter deletes after cleanup. */
export const STATE_FILE = "state.json";
/** The native-tool script the waiter (bin/berth-wait) runs on SIGTERM. */
export const CLEANUP_FILE = "cleanup.sh";
export const DEFAULT_STATE_DIR = "/run/berth";

export interface LbPodState {
  version: 1;
  /** planHash(plan) of the plan that was applied. */
  planHash: string;
  backend: BackendName;
  /** The iptables variant used alongside IPVS (marks, MASQUERADE); unset for the other backends. */
  ipvsIptablesVariant?: IptablesVariant;
  families: Family[];
  /** UDP ports forwarded per family: the next apply also flushes conntrack for ports it no longer forwards. */
  udpPorts: Partial<Record<Family, number[]>>;
  appliedAt: string;
}

export type CheckResult = { ready: true; backend: BackendName } | { ready: false; reason: string };

/** Identifies a plan: plans are normalised and deterministically ordered, so equal plans give equal hashes. */
export function planHash(plan: RulePlan): string {
  return createHash("sha256").update(JSON.stringify(plan)).digest("hex");
}

/** The sysctl that must be 1 for the lb-pod to forward `family`, and its file under /proc/sys. */
export function forwardingSysctl(family: Family): { name: string; path: string; remedy: string } {
  // A new pod network namespace copies the node's IPv4 forwarding (net.core.devconf_inherit_init_net=0), so the fix
  // for IPv4 is on the node; IPv6 forwarding starts at 0 and only the pod's own sysctl, which the kubelet must allow,
  // turns it on (docs/design/0010-only-ipv6-asks-for-a-sysctl.md).
  return family === "ipv4"
    ? { name: "net.ipv4.ip_forward", path: "sys/net/ipv4/ip_forward", remedy: "a pod copies it from the node: turn IPv4 forwarding on on the node" }
    : {
      name: "net.ipv6.conf.all.forwarding", path: "sys/net/ipv6/conf/all/forwarding",
      remedy: "the pod's securityContext.sysctls sets it; the kubelet must allow it: --allowed-unsafe-sysctls=net.ipv6.conf.all.forwarding",
    };
}

/**
 * Why forwarding is not possible for some planned family, or undefined when it is. Reads /proc/sys directly (the
 * calling process's network namespace is the pod's); never looks at a family the plan does not use, so an
 * IPv4-only Service works with IPv6 disabled in the kernel.
 */
export async function forwardingProblem(plan: RulePlan, procDir = "/proc"): Promise<string | undefined> {
  for (const family of plan.families) {
    const sysctl = forwardingSysctl(family);
    let value: string;
    try {
      value = (await readFile(join(procDir, sysctl.path), "utf8")).trim();
    } catch {
      return `${sysctl.name} does not exist in this network namespace (${family} disabled in the kernel?), so the ${family} destinations cannot be forwarded to`;
    }
    if (value !== "1") {
      return `${sysctl.name} is ${value} in this pod's network namespace; forwarding to ${family} destinations needs it set to 1 (${sysctl.remedy})`;
    }
  }
  return undefined;
}

export async function readState(stateDir: string): Promise<LbPodState | undefined> {
  let text: string;
  try {
    text = await readFile(join(stateDir, STATE_FILE), "utf8");
  } catch {
    return undefined;
  }
  try {
    const state = JSON.parse(text) as LbPodState;
    return state.version === 1 ? state : undefined;
  } catch {
    return undefined;
  }
}

/** Which iptables variant an iptables backend writes with (IPVS's own variant is recorded separately). */
export function variantOf(backend: BackendName): IptablesVariant | undefined {
  if (backend === "iptables-nft") return "nft";
  if (backend === "iptables-legacy") return "legacy";
  return undefined;
}

/** Readiness of the current configuration's rules. */
export async function checkLbPod(
  plan: RulePlan,
  io: { runner: CommandRunner; stateDir: string; procDir?: string },
): Promise<CheckResult> {
  const state = await readState(io.stateDir);
  if (!state) return { ready: false, reason: `not applied: no ${STATE_FILE} in ${io.stateDir}` };
  if (state.planHash !== planHash(plan)) {
    return { ready: false, reason: "the configuration changed since the rules were applied (run apply again)" };
  }
  const forwarding = await forwardingProblem(plan, io.procDir);
  if (forwarding) return { ready: false, reason: forwarding };
  const problem = await liveRulesProblem(plan, state.backend, io.runner, state.ipvsIptablesVariant);
  return problem ? { ready: false, reason: problem } : { ready: true, backend: state.backend };
}

/** Why the live rules of `backend` are not exactly this plan's, or undefined when they are. */
export async function liveRulesProblem(
  plan: RulePlan,
  backend: BackendName,
  runner: CommandRunner,
  ipvsIptablesVariant?: IptablesVariant,
): Promise<string | undefined> {
  const variant = variantOf(backend) ?? (backend === "ipvs" ? ipvsIptablesVariant : undefined);
  if (variant) {
    const ipvs = backend === "ipvs" ? renderIpvsAsApplied(plan) : undefined;
    const saves = await Promise.all(plan.families.map((family) => runner.run(iptablesBinary(variant, family, "save"), [], { timeoutMs: 10_000 })));
    for (const [index, family] of plan.families.entries()) {
      const save = saves[index];
      if (!save) continue;
      if (save.exitCode !== 0) return `${save.command} failed (exit ${save.exitCode}): ${save.stderr.trim().split("\n")[0] ?? ""}`;
      const want = ipvs
        ? expectedFromRestore(ipvs.iptablesRestore[family] ?? "", ipvs.requiredJumps[family] ?? [])
        : expectedIptables(plan, family);
      const problem = compareOwned(want, ownedIptables(save.stdout));
      if (problem) return `${family} (${backend}, iptables-${variant}): ${problem}`;
    }
    if (ipvs) return ipvsProblem(ipvs.ipvsadmRestore, runner);
    return undefined;
  }
  if (backend === "nftables") {
    const live = await listNftablesTable(runner);
    if (live === undefined) return `nftables table ${NFT_FAMILY} ${NFT_TABLE} does not exist`;
    const want = normaliseNftListing(renderNftablesTable(plan));
    if (live !== want) return `nftables table ${NFT_FAMILY} ${NFT_TABLE} differs from the plan: ${firstDifference(want, live)}`;
    return undefined;
  }
  return `no iptables variant recorded for the ${backend} backend`;
}

/** The IPVS rendering as it looks once applied (its jumps in place, so the iptables text holds no jump changes). */
function renderIpvsAsApplied(plan: RulePlan): IpvsRendering {
  const required = renderIpvs(plan).requiredJumps;
  return renderIpvs(plan, { presentJumps: required });
}

/**
 * IPVS virtual services: `ipvsadm-save -n` must list exactly the rendered services and real servers (as sets of
 * lines: ipvsadm lists real servers in its own order).
 */
async function ipvsProblem(rendered: string, runner: CommandRunner): Promise<string | undefined> {
  const save = await runner.run("ipvsadm-save", ["-n"], { timeoutMs: 10_000 });
  if (save.exitCode !== 0) return `${save.command} failed (exit ${save.exitCode}): ${save.stderr.trim().split("\n")[0] ?? ""}`;
  const lines = (text: string): string[] => text.split("\n").map((line) => line.trim().replace(/\s+/g, " ")).filter(Boolean).sort();
  const want = lines(rendered);
  const have = lines(save.stdout);
  const missing = want.find((line) => !have.includes(line));
  if (missing) return `IPVS: "${missing}" is missing`;
  const extra = have.find((line) => !want.includes(line));
  if (extra) return `IPVS: unexpected "${extra}"`;
  return undefined;
}

/** `nft list table inet berth`, normalised (counters zeroed), or undefined when the table does not exist. */
export async function listNftablesTable(runner: CommandRunner): Promise<string | undefined> {
  const result = await runner.run("nft", ["list", "table", NFT_FAMILY, NFT_TABLE], { timeoutMs: 10_000 });
  if (result.exitCode !== 0) return undefined;
  return normaliseNftListing(result.stdout);
}

export function normaliseNftListing(listing: string): string {
  return listing
    .replace(/counter packets \d+ bytes \d+/g, "counter")
    .split("\n")
    .map((line) => line.trimEnd())
    .filter((line) => line !== "")
    .join("\n");
}

function firstDifference(want: string, have: string): string {
  const wantLines = want.split("\n");
  const haveLines = have.split("\n");
  const index = wantLines.findIndex((line, i) => haveLines[i] !== line);
  if (index < 0) return `extra line "${(haveLines[wantLines.length] ?? "").trim()}"`;
  return `expected "${(wantLines[index] ?? "").trim()}", found "${(haveLines[index] ?? "").trim()}"`;
}

/** Our part of one family's iptables-save output: berth chains with their rules, per table, and our jumps. */
export interface IptablesOwned {
  /** table -> chain -> rule lines, for every chain named BERTH-* (declared chains with no rules map to []). */
  chains: Map<string, Map<string, string[]>>;
  jumps: IptablesJump[];
}

const OUR_CHAIN = /^BERTH-/;

/** Extracts berth's chains, rules and jumps from iptables-save output (either variant; counters ignored). */
export function ownedIptables(save: string): IptablesOwned {
  const chains = new Map<string, Map<string, string[]>>();
  let table = "";
  for (const raw of save.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) {
      table = line.slice(1);
      continue;
    }
    const declared = /^:(\S+) /.exec(line);
    const rule = /^-A (\S+) /.exec(line);
    const chain = declared?.[1] ?? rule?.[1];
    if (chain === undefined || !OUR_CHAIN.test(chain)) continue;
    const byChain = chains.get(table) ?? new Map<string, string[]>();
    chains.set(table, byChain);
    const rules = byChain.get(chain) ?? [];
    byChain.set(chain, rules);
    if (rule) rules.push(line);
  }
  return { chains, jumps: presentIptablesJumps(save) };
}

/** What the renderer says this family's berth chains and jumps must hold once the plan is applied. */
export function expectedIptables(plan: RulePlan, family: Family): IptablesOwned {
  const jumps = requiredIptablesJumps(plan, family);
  // Rendered as if the jumps were already in place, the text holds no jump changes: only chains and their rules.
  return expectedFromRestore(renderIptablesRestore(plan, family, { presentJumps: jumps }), jumps);
}

/** Berth's chains and rules as a restore text leaves them (chains it deletes with -X removed), plus the jumps. */
function expectedFromRestore(text: string, jumps: IptablesJump[]): IptablesOwned {
  const owned = ownedIptables(text);
  let table = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("*")) table = line.slice(1);
    const deleted = /^-X (\S+)$/.exec(line);
    if (deleted?.[1]) owned.chains.get(table)?.delete(deleted[1]);
  }
  // iptables-save leaves out a match on every source ("-s 0.0.0.0/0", "-s ::/0"; k3s's default SRC_RANGES is
  // 0.0.0.0/0), so the rendered rule carries a match the listing never shows.
  for (const byChain of owned.chains.values()) {
    for (const [chain, rules] of byChain) byChain.set(chain, rules.map((rule) => rule.replace(/ -s (0\.0\.0\.0|::)\/0(?= )/, "")));
  }
  return { chains: owned.chains, jumps };
}

/** Why a family's live iptables rules (iptables-save output) are not exactly the plan's, or undefined. */
export function compareIptables(plan: RulePlan, family: Family, save: string): string | undefined {
  return compareOwned(expectedIptables(plan, family), ownedIptables(save));
}

function compareOwned(want: IptablesOwned, have: IptablesOwned): string | undefined {
  for (const table of new Set([...want.chains.keys(), ...have.chains.keys()])) {
    const wantChains = want.chains.get(table) ?? new Map<string, string[]>();
    const haveChains = have.chains.get(table) ?? new Map<string, string[]>();
    for (const chain of new Set([...wantChains.keys(), ...haveChains.keys()])) {
      const wantRules = wantChains.get(chain);
      const haveRules = haveChains.get(chain);
      if (!haveRules) return `chain ${chain} is missing from table ${table}`;
      if (!wantRules) return `chain ${chain} in table ${table} should not exist`;
      const index = wantRules.findIndex((rule, i) => haveRules[i] !== rule);
      if (index >= 0) return `${table} ${chain} rule ${index + 1} is missing or differs: expected "${wantRules[index]}"`;
      if (haveRules.length > wantRules.length) return `${table} ${chain} has an extra rule "${haveRules[wantRules.length]}"`;
    }
  }
  const key = (j: IptablesJump): string => `${j.table} ${j.rule}`;
  const wantJumps = want.jumps.map(key).sort();
  const haveJumps = have.jumps.map(key).sort();
  for (const jump of new Set([...wantJumps, ...haveJumps])) {
    const wanted = wantJumps.filter((j) => j === jump).length;
    const present = haveJumps.filter((j) => j === jump).length;
    if (wanted !== present) return `jump "${jump}" is present ${present} times, expected ${wanted}`;
  }
  return undefined;
}
