// RulePlan -> input for `iptables-restore --noflush` / `ip6tables-restore --noflush` (both the nft and the legacy
// variants accept the same text). Pure: no I/O; the applier runs the text in the pod's network namespace.
//
// Why the text is shaped like this:
// - Atomic and idempotent: a `:CHAIN - [0:0]` line in a --noflush restore creates the chain if missing and
//   flushes it if present, all inside one COMMIT per table, so a re-apply (container restart, changed config)
//   replaces every rule in our chains and never duplicates one. Built-in chains are never declared, so nothing of
//   anyone else's is flushed.
// - Jumps from built-in chains cannot be made idempotent that way (`-A`/`-I` in a --noflush restore always adds
//   one), so the caller says which of our jumps are already there (presentIptablesJumps parses iptables-save
//   output) and the renderer adds only the missing ones, deletes duplicates and deletes jumps this plan no longer
//   needs. Every jump carries the comment "berth" so it can be recognised.
// - Rule lines are written exactly as iptables-save prints them (same match order, `-m tcp` spelled out, /32 on
//   addresses, quoting), so `--check` can compare `iptables-save` output with the rendered lines as plain text.
// - Sources: klipper-lb ACCEPTs allowed ranges in filter FORWARD and then DROPs the rest, after DNAT. berth drops
//   earlier, in mangle PREROUTING, matching the *original* destination port: nat rules see only the first packet
//   of a flow, but mangle sees every packet, so a flow is cut at once when its source stops being allowed, and a
//   refused packet is never delivered to the pod itself. `--ctdir ORIGINAL` keeps reply packets out of the check:
//   MASQUERADE keeps the client's source port when it can, so a reply can carry a Service port as its destination
//   port (UDP 51820 -> 51820, DNS 53 -> 53) and must not be judged as a new client.
// - DNAT: several destinations share new connections evenly with `statistic --mode nth` (rule i of n takes every
//   (n-i)th connection reaching it; the last takes the rest). nat rules see only a flow's first packet, so this
//   counts connections, not packets. klipper-lb inserts one unconditional DNAT per destination, so only one is used.
// - MASQUERADE: only flows we DNATed (`--ctstate DNAT --ctorigdstport <port>`) towards each destination, so
//   replies come back through the pod (klipper-lb masquerades everything of that protocol to the destination).
import { IPTABLES_CHAINS, IPTABLES_JUMP_COMMENT, IPVS_IPTABLES_CHAINS } from "./names.js";
import type { Family, Forward, RulePlan } from "./model.js";

export type IptablesTable = "mangle" | "nat";

/** One jump from a built-in chain into one of ours. */
export interface IptablesJump {
  table: IptablesTable;
  chain: "PREROUTING" | "POSTROUTING";
  target: string;
  /** The jump exactly as `iptables-save` prints it, e.g. `-A PREROUTING -m comment --comment berth -j BERTH-DNAT`. */
  rule: string;
}

/** What the renderer needs to know about the live ruleset. */
export interface IptablesRenderOptions {
  /**
   * Jumps into our chains found in the live ruleset of this family (from presentIptablesJumps), one entry per
   * occurrence: a jump listed twice is a duplicate and will be deleted once.
   */
  presentJumps: readonly IptablesJump[];
}

function jump(table: IptablesTable, chain: IptablesJump["chain"], target: string): IptablesJump {
  return { table, chain, target, rule: `-A ${chain} -m comment --comment ${IPTABLES_JUMP_COMMENT} -j ${target}` };
}

/** Every chain berth may own in each table; all of them are flushed on every apply and deleted when unused. */
const ALL_CHAINS: Record<IptablesTable, string[]> = {
  mangle: [IPTABLES_CHAINS.filter, IPTABLES_CHAINS.sources, IPVS_IPTABLES_CHAINS.mark],
  nat: [IPTABLES_CHAINS.dnat, IPTABLES_CHAINS.masquerade, IPVS_IPTABLES_CHAINS.masquerade],
};

/** Every jump berth may own; cleanup and mode switches delete whichever of them are present. */
export const ALL_IPTABLES_JUMPS: readonly IptablesJump[] = [
  jump("mangle", "PREROUTING", IPTABLES_CHAINS.filter),
  jump("mangle", "PREROUTING", IPVS_IPTABLES_CHAINS.mark),
  jump("nat", "PREROUTING", IPTABLES_CHAINS.dnat),
  jump("nat", "POSTROUTING", IPTABLES_CHAINS.masquerade),
  jump("nat", "POSTROUTING", IPVS_IPTABLES_CHAINS.masquerade),
];

function known(table: IptablesTable, chain: string, target: string): IptablesJump {
  const found = ALL_IPTABLES_JUMPS.find((j) => j.table === table && j.chain === chain && j.target === target);
  if (!found) throw new Error(`internal: no jump ${table}/${chain} -> ${target}`);
  return found;
}

/** The rules of one family's chains, before they are written out with the jumps (shared with the IPVS renderer). */
export interface IptablesLayout {
  jumps: IptablesJump[];
  /** Rule lines (`-A CHAIN ...`) per table, in order; chains not mentioned stay empty or are deleted. */
  rules: Record<IptablesTable, string[]>;
  /** Chains in use (kept); every other chain of ALL_CHAINS is deleted. */
  chains: Record<IptablesTable, string[]>;
}

/**
 * The jumps that must be present exactly once for `family` once renderIptablesRestore's text is applied:
 * nat PREROUTING -> BERTH-DNAT and nat POSTROUTING -> BERTH-MASQ, plus mangle PREROUTING -> BERTH-FILTER when the
 * plan restricts sources. [] for a family the plan does not touch. `--check` verifies these and the chain contents.
 */
export function requiredIptablesJumps(plan: RulePlan, family: Family): IptablesJump[] {
  return plan.families.includes(family) ? iptablesLayout(plan, family).jumps : [];
}

/**
 * The text for `iptables-restore --noflush` (ipv4) or `ip6tables-restore --noflush` (ipv6) that atomically makes
 * berth's chains in the mangle and nat tables hold exactly this plan's rules for `family`: declares (creates and
 * flushes) every berth chain, fills the ones in use, deletes the unused ones, inserts each missing required jump
 * at the top of its built-in chain, and deletes duplicate or no-longer-needed jumps listed in `presentJumps`.
 * Applying it twice leaves the same ruleset as applying it once (given presentJumps read before each apply).
 * Throws if the plan does not touch `family` (the caller must not touch that family at all).
 */
export function renderIptablesRestore(plan: RulePlan, family: Family, opts: IptablesRenderOptions): string {
  if (!plan.families.includes(family)) throw new Error(`internal: the plan has no ${family} destinations; do not touch ${family}`);
  return writeIptablesRestore(`berth lb-pod rules (${family})`, iptablesLayout(plan, family), opts.presentJumps);
}

/**
 * The text for `iptables-restore --noflush` / `ip6tables-restore --noflush` that removes everything berth owns in
 * one family (iptables and IPVS modes alike): deletes each jump listed in `presentJumps`, then flushes and deletes
 * every berth chain (declaring a chain first makes its deletion succeed whether or not it existed).
 */
export function renderIptablesCleanup(opts: IptablesRenderOptions): string {
  return writeIptablesRestore("berth lb-pod cleanup", { jumps: [], rules: { mangle: [], nat: [] }, chains: { mangle: [], nat: [] } },
    opts.presentJumps);
}

/**
 * Finds berth's jumps in `iptables-save` / `ip6tables-save` output (either variant): one entry per occurrence, so
 * duplicates are visible. Only lines identical to a known jump count; anything else is not ours.
 */
export function presentIptablesJumps(iptablesSave: string): IptablesJump[] {
  const found: IptablesJump[] = [];
  let table = "";
  for (const line of iptablesSave.split("\n")) {
    const text = line.trim();
    if (text.startsWith("*")) table = text.slice(1);
    const match = ALL_IPTABLES_JUMPS.find((j) => j.table === table && j.rule === text);
    if (match) found.push(match);
  }
  return found;
}

/** Quotes a comment the way iptables-save does (xtables_save_string): bare only if [A-Za-z0-9_-]+. */
export function iptablesComment(text: string): string {
  return /^[A-Za-z0-9_-]+$/.test(text) ? text : `"${text.replace(/(["\\'])/g, "\\$1")}"`;
}

export function hostCidr(ip: string): string {
  return ip.includes(":") ? `${ip}/128` : `${ip}/32`;
}

export function ipPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** `-p tcp -m tcp --dport 80`, as iptables-save prints it. */
export function portMatch(forward: Pick<Forward, "protocol">, port: number): string {
  return `-p ${forward.protocol} -m ${forward.protocol} --dport ${port}`;
}

export function forwardName(forward: Pick<Forward, "protocol" | "port">): string {
  return `${forward.protocol}/${forward.port}`;
}

/**
 * The source check shared by the iptables and IPVS layouts: per forwarded port, original-direction packets go to
 * BERTH-SOURCES, which RETURNs allowed ranges and DROPs the rest. Empty when the plan allows every source.
 */
export function sourceCheckRules(plan: RulePlan, family: Family): string[] {
  const allowed = plan.allowedSources[family];
  if (allowed === undefined) return [];
  const forwards = plan.forwards.filter((forward) => forward.family === family);
  return [
    ...forwards.map((forward) => `-A ${IPTABLES_CHAINS.filter} ${portMatch(forward, forward.port)} -m conntrack --ctdir ORIGINAL ` +
      `-m comment --comment ${iptablesComment(forwardName(forward))} -j ${IPTABLES_CHAINS.sources}`),
    ...allowed.map((range) => `-A ${IPTABLES_CHAINS.sources} -s ${range} -m comment --comment ${iptablesComment("allowed source")} -j RETURN`),
    `-A ${IPTABLES_CHAINS.sources} -m comment --comment ${iptablesComment("source not allowed")} -j DROP`,
  ];
}

/** The jump and chains of the source check, when the plan restricts sources in `family`. */
export function sourceCheckLayout(plan: RulePlan, family: Family): { jumps: IptablesJump[]; chains: string[] } {
  return plan.allowedSources[family] === undefined
    ? { jumps: [], chains: [] }
    : { jumps: [known("mangle", "PREROUTING", IPTABLES_CHAINS.filter)], chains: [IPTABLES_CHAINS.filter, IPTABLES_CHAINS.sources] };
}

function iptablesLayout(plan: RulePlan, family: Family): IptablesLayout {
  const forwards = plan.forwards.filter((forward) => forward.family === family);
  const dnat: string[] = [];
  const masquerade: string[] = [];
  for (const forward of forwards) {
    const count = forward.destinations.length;
    forward.destinations.forEach((destination, index) => {
      const comment = iptablesComment(`${forwardName(forward)} -> ${ipPort(destination.ip, destination.port)}`);
      const spread = index < count - 1 ? ` -m statistic --mode nth --every ${count - index} --packet 0` : "";
      dnat.push(`-A ${IPTABLES_CHAINS.dnat} ${portMatch(forward, forward.port)} -m comment --comment ${comment}${spread} ` +
        `-j DNAT --to-destination ${ipPort(destination.ip, destination.port)}`);
      masquerade.push(`-A ${IPTABLES_CHAINS.masquerade} -d ${hostCidr(destination.ip)} ${portMatch(forward, destination.port)} ` +
        `-m conntrack --ctstate DNAT --ctorigdstport ${forward.port} -m comment --comment ${comment} -j MASQUERADE`);
    });
  }
  const sources = sourceCheckLayout(plan, family);
  return {
    jumps: [
      ...sources.jumps,
      known("nat", "PREROUTING", IPTABLES_CHAINS.dnat),
      known("nat", "POSTROUTING", IPTABLES_CHAINS.masquerade),
    ],
    rules: { mangle: sourceCheckRules(plan, family), nat: [...dnat, ...masquerade] },
    chains: { mangle: sources.chains, nat: [IPTABLES_CHAINS.dnat, IPTABLES_CHAINS.masquerade] },
  };
}

/** Writes a layout as one restore text: per table, declare all chains, fix jumps, delete unused chains, add rules. */
export function writeIptablesRestore(title: string, layout: IptablesLayout, presentJumps: readonly IptablesJump[]): string {
  const lines = [`# ${title}, rendered by berth; every chain declared here is flushed and rewritten whole`];
  for (const table of ["mangle", "nat"] as const) {
    lines.push(`*${table}`);
    for (const chain of ALL_CHAINS[table]) lines.push(`:${chain} - [0:0]`);
    for (const known of ALL_IPTABLES_JUMPS.filter((j) => j.table === table)) {
      const present = presentJumps.filter((j) => j.table === table && j.rule === known.rule).length;
      const wanted = layout.jumps.some((j) => j.rule === known.rule && j.table === table) ? 1 : 0;
      for (let i = present; i > wanted; i--) lines.push(known.rule.replace(/^-A /, "-D "));
      if (present < wanted) lines.push(known.rule.replace(/^-A (\S+)/, "-I $1 1"));
    }
    for (const chain of ALL_CHAINS[table]) if (!layout.chains[table].includes(chain)) lines.push(`-X ${chain}`);
    lines.push(...layout.rules[table], "COMMIT");
  }
  return `${lines.join("\n")}\n`;
}
