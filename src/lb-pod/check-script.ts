// check.sh, the readiness check `berth lb-pod apply` leaves in the state dir for bin/berth-lb-pod-check.
//
// Why a shell script: the DaemonSet probes every lb-pod every few seconds, one pod per Service per node, and each
// `berth lb-pod check` is a Node.js start (~0.35 CPU-seconds): 50 Services cost cores per node in probes alone, and
// on a loaded node the probe outlives its timeout and Ready pods flap. The shell waiter (docs/design/0001) keeps
// Node.js off the resident path; this keeps it off the probe path too.
//
// What it checks is what src/lb-pod/check.ts checks, minus the plan hash: the container's environment (its
// configuration) cannot change during its life, so apply compared plan and configuration already, once.
//   - every planned family's forwarding sysctl is 1 (same messages as forwardingProblem);
//   - iptables (either variant): the berth chains with their rules in order, and every known jump from a built-in
//     chain counted, as expectedIptables() renders them, against the live iptables-save output (awk);
//   - nftables: `nft list table inet berth`, counters ignored, equal line by line to the rendered table;
//   - IPVS: not feasible in plain sh with the same rigour (ipvsadm-save ordering, the iptables part's variant), and
//     untestable on a kernel without IPVS, so the script execs the Node.js check instead.
// Tools: sh, awk, sed and the netfilter tools; all in the lb-pod image (Debian's mawk and sed are essential).
import type { RulePlan } from "../lib/rules/model.js";
import { NFT_FAMILY, NFT_TABLE } from "../lib/rules/names.js";
import { ALL_IPTABLES_JUMPS } from "../lib/rules/render-iptables.js";
import { renderNftablesTable } from "../lib/rules/render-nftables.js";
import { iptablesBinary, type BackendName } from "./backend.js";
import { expectedIptables, forwardingSysctl, normaliseNftListing, variantOf, type IptablesOwned } from "./check.js";

/** The file apply writes next to state.json; bin/berth-lb-pod-check runs it with the state dir as $1. */
export const CHECK_FILE = "check.sh";

/** A word for sh, single-quoted (a quote inside becomes '\''). */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

/**
 * One line per thing the live listing must hold, tab-separated: `C table chain` for a berth chain, `R table chain
 * n rule` for its n-th rule, `J table rule` for a jump from a built-in chain (repeated as often as it must occur).
 * The awk program in the script derives the same lines from iptables-save output.
 */
export function iptablesWantLines(owned: IptablesOwned): string[] {
  const lines: string[] = [];
  for (const [table, chains] of owned.chains) {
    for (const [chain, rules] of chains) {
      lines.push(`C\t${table}\t${chain}`);
      rules.forEach((rule, index) => lines.push(`R\t${table}\t${chain}\t${index + 1}\t${rule}`));
    }
  }
  for (const jump of owned.jumps) lines.push(`J\t${jump.table}\t${jump.rule}`);
  return lines;
}

// Mirrors ownedIptables() + presentIptablesJumps() + compareOwned() of check.ts over iptables-save output on stdin;
// prints the first problem (one line) or nothing. WANT and JUMPS come through the environment (awk -v would
// interpret backslashes). POSIX awk only: Debian's default awk is mawk.
const IPTABLES_AWK = String.raw`
BEGIN {
  n = split(ENVIRON["WANT"], w, "\n")
  for (i = 1; i <= n; i++) if (w[i] != "") { if (!(w[i] in want)) order[++nw] = w[i]; want[w[i]]++ }
  n = split(ENVIRON["JUMPS"], j, "\n")
  for (i = 1; i <= n; i++) if (j[i] != "") known[j[i]] = 1
}
{
  line = $0
  sub(/^[ \t\r]+/, "", line); sub(/[ \t\r]+$/, "", line)
  if (substr(line, 1, 1) == "*") { table = substr(line, 2); next }
  key = ""
  if (line ~ /^:BERTH-[^ ]* /) { chain = substr(line, 2); sub(/ .*/, "", chain); key = "C\t" table "\t" chain }
  else if (line ~ /^-A BERTH-[^ ]* /) {
    chain = substr(line, 4); sub(/ .*/, "", chain)
    seq[table "\t" chain]++
    key = "R\t" table "\t" chain "\t" seq[table "\t" chain] "\t" line
  } else if ((table "\t" line) in known) key = "J\t" table "\t" line
  if (key == "") next
  if (!(key in have)) horder[++nh] = key
  have[key]++
}
function describe(key, missing,   p) {
  split(key, p, "\t")
  if (p[1] == "C") return missing ? "chain " p[3] " is missing from table " p[2] : "chain " p[3] " in table " p[2] " should not exist"
  if (p[1] == "R") return missing ? p[2] " " p[3] " rule " p[4] " is missing or differs: expected \"" p[5] "\"" : p[2] " " p[3] " has an extra rule \"" p[5] "\""
  return "jump \"" p[2] " " p[3] "\" is present " (have[key] + 0) " times, expected " (want[key] + 0)
}
END {
  for (i = 1; i <= nw; i++) if (have[order[i]] + 0 < want[order[i]]) { print describe(order[i], 1); exit }
  for (i = 1; i <= nh; i++) if (want[horder[i]] + 0 < have[horder[i]]) { print describe(horder[i], 0); exit }
}
`;

// Normalises `nft list table` on stdin as normaliseNftListing() does and prints the first difference from WANT.
const NFT_AWK = String.raw`
BEGIN { nw = split(ENVIRON["WANT"], want, "\n") }
{
  line = $0
  gsub(/counter packets [0-9]+ bytes [0-9]+/, "counter", line)
  sub(/[ \t\r]+$/, "", line)
  if (line != "") have[++nh] = line
}
function trim(s) { sub(/^[ \t]+/, "", s); return s }
END {
  for (i = 1; i <= nw; i++) if (!(i in have) || have[i] != want[i]) { print "expected \"" trim(want[i]) "\", found \"" trim(have[i]) "\""; exit }
  if (nh > nw) print "extra line \"" trim(have[nw + 1]) "\""
}
`;

/** The readiness check script for the rules apply has just put in place (procDir: where /proc is, as in check.ts). */
export function checkScript(plan: RulePlan, backend: BackendName, procDir = "/proc"): string {
  const lines = [
    "#!/bin/sh",
    `# Written by berth lb-pod apply (backend ${backend}): exits 0 only while the rules it applied are all in place.`,
    "# Run by bin/berth-lb-pod-check (the readiness probe) as: sh check.sh <state dir> [<berth-lb-pod-check path>].",
    "# See src/lb-pod/check-script.ts; `berth lb-pod check` is the same check in Node.js.",
    "not_ready() { echo \"berth lb-pod: not ready: $*\" >&2; exit 1; }",
  ];
  if (backend === "ipvs") {
    // See the header of check-script.ts: the Node.js check, with the container's configuration (its environment).
    lines.push(
      'bin_dir=$(dirname "$(readlink -f "${2:-$0}")")',
      'exec "${BERTH_NODE:-node}" "${BERTH_CLI:-$bin_dir/../dist/cli.js}" lb-pod check --state-dir "$1"',
      "",
    );
    return lines.join("\n");
  }
  lines.push(
    `PROC=${shellQuote(procDir)}`,
    "forwarding() {",
    // dash's read returns 1 on a /proc/sys file although it read the value, so the value decides, not the status.
    '  value=""',
    '  { read -r value < "$PROC/$2"; } 2>/dev/null',
    '  if [ -z "$value" ]; then',
    '    not_ready "$1 does not exist in this network namespace ($3 disabled in the kernel?), so the $3 destinations cannot be forwarded to"',
    "  fi",
    '  [ "$value" = 1 ] || not_ready "$1 is $value in this pod\'s network namespace; forwarding to $3 destinations needs it set to 1 ($4)"',
    "}",
  );
  for (const family of plan.families) {
    const sysctl = forwardingSysctl(family);
    lines.push(`forwarding ${sysctl.name} ${sysctl.path} ${family} ${shellQuote(sysctl.remedy)}`);
  }
  const variant = variantOf(backend);
  if (variant) {
    lines.push(
      `IPTABLES_AWK=${shellQuote(IPTABLES_AWK)}`,
      `JUMPS=${shellQuote(ALL_IPTABLES_JUMPS.map((jump) => `${jump.table}\t${jump.rule}`).join("\n"))}`,
      "iptables_family() {",
      '  save=$("$1" 2>/dev/null) || not_ready "$1 failed (exit $?)"',
      '  problem=$(printf \'%s\\n\' "$save" | WANT=$4 JUMPS=$JUMPS awk "$IPTABLES_AWK") || not_ready "awk failed on the output of $1"',
      '  [ -z "$problem" ] || not_ready "$2 ($3): $problem"',
      "}",
    );
    for (const family of plan.families) {
      const want = iptablesWantLines(expectedIptables(plan, family)).join("\n");
      lines.push(`iptables_family ${iptablesBinary(variant, family, "save")} ${family} ${shellQuote(`${backend}, iptables-${variant}`)} ${shellQuote(want)}`);
    }
  } else if (backend === "nftables") {
    const table = `${NFT_FAMILY} ${NFT_TABLE}`;
    lines.push(
      `live=$(nft list table ${table} 2>/dev/null) || not_ready "nftables table ${table} does not exist"`,
      `problem=$(printf '%s\\n' "$live" | WANT=${shellQuote(normaliseNftListing(renderNftablesTable(plan)))} awk ${shellQuote(NFT_AWK)}) || not_ready "awk failed on the nft listing"`,
      `[ -z "$problem" ] || not_ready "nftables table ${table} differs from the plan: $problem"`,
    );
  } else {
    lines.push(`not_ready "no check for the ${backend} backend"`);
  }
  lines.push(`echo "berth lb-pod: ready (${backend} rules in place)"`, "");
  return lines.join("\n");
}

