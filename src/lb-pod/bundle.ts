// The rules bundle: every text the lb-pod's shell entrypoint (bin/berth-lb-pod) applies, rendered ahead of time by
// the planner and renderers, so the pod runs no Node.js (docs/design/0013-the-controller-renders-lb-pod-rules.md).
//
// A bundle is a flat set of files (names are valid ConfigMap keys, so the controller can hand it over as one
// ConfigMap mounted at RULES_DIR; `berth lb-pod apply` writes the same files into a directory and runs the same
// script). Files:
//   format                    "1"; the script refuses other formats with one line.
//   families                  the families the bundle serves, e.g. "ipv4 ipv6".
//   host-ips                  present when destinations are the node's own addresses (externalTrafficPolicy Local):
//                             the texts hold HOST_IP_PLACEHOLDER[family] instead of an address, and the script fills
//                             in the node's address of each family from DEST_IPS (the downward API's status.hostIPs,
//                             at most one address per family). A family without a node address is left out.
//   plan-hash                 planHash() of the plan (absent with host-ips: the plan is only known on the node); the
//                             script copies it into state.json for `berth lb-pod check`.
//   ports                     what is forwarded, for the log ("tcp/80 udp/53").
//   iptables-<f>.restore      input for `iptables-restore --noflush` (chains, rules, unused chains deleted), with a
//                             JUMPS_MARKER line per table where the script puts the jump changes it computes from
//                             the live iptables-save output (add the missing ones, delete duplicates and stale ones).
//   iptables-<f>.jumps        the jumps into berth chains this family needs, "table<TAB>rule" per line.
//   iptables-<f>.want         what the readiness check expects in iptables-save (check-script.ts iptablesWantLines).
//   iptables.known            every berth chain ("C<TAB>table<TAB>chain") and jump ("J<TAB>table<TAB>rule"): what
//                             cleanup and leftover removal delete, in any variant and family.
//   nftables-<set>.nft        the `nft -f` script for one set of families ("ipv4", "ipv6" or "ipv4-ipv6": one inet
//                             table holds all families, so a Local Service on a node with one family gets its own).
//   nftables-<set>.want       `nft list table inet berth` as it must read once that script is applied.
//   nftables.cleanup          the `nft -f` script that removes the table.
//   udp-<f>                   UDP ports forwarded in family f (conntrack entries the script flushes).
// Pure: no I/O.
import { UsageError } from "../lib/errors.js";
import type { Family, LbPodConfig, RulePlan } from "../lib/rules/model.js";
import { IPTABLES_CHAINS, IPVS_IPTABLES_CHAINS } from "../lib/rules/names.js";
import { ALL_IPTABLES_JUMPS, renderIptablesRestore, requiredIptablesJumps } from "../lib/rules/render-iptables.js";
import { renderNftables, renderNftablesCleanup, renderNftablesTable } from "../lib/rules/render-nftables.js";
import { expectedIptables, normaliseNftListing, planHash } from "./check.js";
import { iptablesWantLines } from "./check-script.js";
import { planRules } from "./plan.js";

export const BUNDLE_FORMAT = "1";
/** Where the lb-pod image's entrypoint looks for the bundle by default (the ConfigMap's mountPath). */
export const RULES_DIR = "/etc/berth/rules";
/** Marks, in an iptables-<f>.restore text, where the jump changes of the table above it go. */
export const JUMPS_MARKER = "#berth-jumps";
/** What a host-ips bundle holds where the node's address goes. */
export const HOST_IP_PLACEHOLDER: Record<Family, string> = { ipv4: "@HOST_IPV4@", ipv6: "@HOST_IPV6@" };

// Rendered with these documentation addresses (RFC 5737, RFC 3849) in place of the node's, then each is replaced by
// its placeholder: only where it stands alone as an address (not inside 192.0.2.254x or a longer IPv6 address), and
// never as a source (`-s`, `saddr`), so a loadBalancerSourceRanges entry that happens to be the same address stays.
const SENTINEL: Record<Family, { ip: string; pattern: RegExp }> = {
  ipv4: { ip: "192.0.2.254", pattern: /(?<![0-9.])(?<!-s |saddr )192\.0\.2\.254(?![0-9])/g },
  ipv6: { ip: "2001:db8:be47::fe", pattern: /(?<![0-9a-f:])(?<!-s |saddr )2001:db8:be47::fe(?![0-9a-f:])/g },
};

export type RulesBundle = Record<string, string>;

const FAMILIES: readonly Family[] = ["ipv4", "ipv6"];

/** The file name part for a set of families: "ipv4", "ipv6", "ipv4-ipv6". */
export function familySetName(families: readonly Family[]): string {
  return FAMILIES.filter((family) => families.includes(family)).join("-");
}

/**
 * The bundle for a configuration whose destinations are known (ClusterIPs, or addresses given by hand): the texts
 * hold them as they are. Throws UsageError as planRules does.
 */
export function renderBundle(config: LbPodConfig): RulesBundle {
  const plan = planRules(config);
  const files: RulesBundle = { ...commonFiles(), families: plan.families.join(" "), "plan-hash": planHash(plan), ports: portsLine(plan) };
  Object.assign(files, familyFiles(plan), nftablesFiles(plan));
  return files;
}

/**
 * The bundle for externalTrafficPolicy Local: destinations are the node's own address of each of `families`
 * (DEST_IPS from the downward API, filled in by the pod), each at the port's destinationPort (the NodePort). The
 * iptables texts are per family; the nftables script exists for every non-empty subset of `families`, since a node
 * may lack an address of some family.
 */
export function renderHostIpsBundle(config: Omit<LbPodConfig, "destinationIps">, families: readonly Family[]): RulesBundle {
  const wanted = FAMILIES.filter((family) => families.includes(family));
  if (wanted.length === 0) throw new UsageError("no families to forward");
  const planFor = (set: readonly Family[]): RulePlan => planRules({ ...config, destinationIps: set.map((family) => SENTINEL[family].ip) });
  const full = planFor(wanted);
  const files: RulesBundle = { ...commonFiles(), families: wanted.join(" "), "host-ips": "1", ports: portsLine(full) };
  Object.assign(files, familyFiles(full));
  for (const set of subsets(wanted)) Object.assign(files, nftablesFiles(planFor(set)));
  for (const [name, text] of Object.entries(files)) files[name] = withPlaceholders(text);
  return files;
}

function withPlaceholders(text: string): string {
  let out = text;
  for (const family of FAMILIES) out = out.replace(SENTINEL[family].pattern, HOST_IP_PLACEHOLDER[family]);
  return out;
}

function subsets(families: readonly Family[]): Family[][] {
  const out: Family[][] = [];
  for (let mask = 1; mask < 1 << families.length; mask++) out.push(families.filter((_, i) => mask & (1 << i)));
  return out;
}

function commonFiles(): RulesBundle {
  const chains = [
    ...[IPTABLES_CHAINS.filter, IPTABLES_CHAINS.sources, IPVS_IPTABLES_CHAINS.mark].map((chain) => `C\tmangle\t${chain}`),
    ...[IPTABLES_CHAINS.dnat, IPTABLES_CHAINS.masquerade, IPVS_IPTABLES_CHAINS.masquerade].map((chain) => `C\tnat\t${chain}`),
  ];
  return {
    format: BUNDLE_FORMAT,
    "iptables.known": `${[...chains, ...ALL_IPTABLES_JUMPS.map((jump) => `J\t${jump.table}\t${jump.rule}`)].join("\n")}\n`,
    "nftables.cleanup": renderNftablesCleanup(),
  };
}

function portsLine(plan: RulePlan): string {
  const seen = new Set(plan.forwards.map((forward) => `${forward.protocol}/${forward.port}`));
  return [...seen].join(" ");
}

function familyFiles(plan: RulePlan): RulesBundle {
  const files: RulesBundle = {};
  for (const family of plan.families) {
    const jumps = requiredIptablesJumps(plan, family);
    // Rendered as if the required jumps were present: the text then holds no jump change, and the marker says where
    // the script puts the changes the live ruleset calls for.
    const text = renderIptablesRestore(plan, family, { presentJumps: jumps });
    files[`iptables-${family}.restore`] = withJumpMarkers(text);
    files[`iptables-${family}.jumps`] = jumps.map((jump) => `${jump.table}\t${jump.rule}\n`).join("");
    files[`iptables-${family}.want`] = `${iptablesWantLines(expectedIptables(plan, family)).join("\n")}\n`;
    const udp = plan.forwards.filter((forward) => forward.family === family && forward.protocol === "udp").map((forward) => forward.port);
    files[`udp-${family}`] = udp.join(" ");
  }
  return files;
}

/** After each table's chain declarations (and before its -X lines: a chain is deleted only once no jump is left). */
function withJumpMarkers(text: string): string {
  const lines = text.split("\n");
  const out: string[] = [];
  let table = "";
  for (const [index, line] of lines.entries()) {
    out.push(line);
    if (line.startsWith("*")) table = line.slice(1);
    if (table !== "" && line.startsWith(":") && !(lines[index + 1] ?? "").startsWith(":")) {
      out.push(`${JUMPS_MARKER} ${table}`);
      table = "";
    }
  }
  return out.join("\n");
}

function nftablesFiles(plan: RulePlan): RulesBundle {
  const set = familySetName(plan.families);
  return {
    [`nftables-${set}.nft`]: renderNftables(plan),
    [`nftables-${set}.want`]: `${normaliseNftListing(renderNftablesTable(plan))}\n`,
  };
}
