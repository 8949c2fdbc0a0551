// What the readiness probe (bin/berth-lb-pod-check, sh + awk) compares the live rules with, and the probe for the
// one backend the image's shell entrypoint does not apply.
//
// Why the probe is a shell script: the DaemonSet probes every lb-pod every few seconds, one pod per Service per node,
// and a Node.js start (`berth lb-pod check`, ~0.35 CPU-seconds) per probe costs cores per node
// (docs/design/0001-lb-pod-hands-over-to-a-shell-waiter.md). It checks what src/lb-pod/check.ts checks, minus the plan
// hash (the pod's rules cannot change during its life: a new bundle is a new pod), from the expected lines the rules
// bundle carries (src/lb-pod/bundle.ts) and the entrypoint copies into the state dir.
import type { RulePlan } from "../lib/rules/model.js";
import type { BackendName } from "./backend.js";
import type { IptablesOwned } from "./check.js";

/** The file `berth lb-pod apply --backend ipvs` writes next to state.json; bin/berth-lb-pod-check runs it. */
export const CHECK_FILE = "check.sh";

/**
 * One line per thing the live listing must hold, tab-separated: `C table chain` for a berth chain, `R table chain
 * n rule` for its n-th rule, `J table rule` for a jump from a built-in chain (repeated as often as it must occur).
 * The awk program of bin/berth-lb-pod-check derives the same lines from iptables-save output.
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

/**
 * check.sh for a state dir written by the Node.js applier, which only IPVS uses now: IPVS is not feasible in plain
 * sh with the same rigour (ipvsadm-save ordering, the iptables part's variant) and untestable on a kernel without
 * IPVS, so the script execs the Node.js check with the container's configuration (its environment).
 */
export function checkScript(_plan: RulePlan, backend: BackendName): string {
  const lines = [
    "#!/bin/sh",
    `# Written by berth lb-pod apply (backend ${backend}): exits 0 only while the rules it applied are all in place.`,
    "# Run by bin/berth-lb-pod-check as: sh check.sh <state dir> [<berth-lb-pod-check path>]. See src/lb-pod/check-script.ts.",
  ];
  if (backend !== "ipvs") {
    lines.push(`echo "berth lb-pod: not ready: the ${backend} backend is applied by bin/berth-lb-pod, not berth lb-pod apply --backend ${backend} in Node.js" >&2`, "exit 1", "");
    return lines.join("\n");
  }
  lines.push(
    'bin_dir=$(dirname "$(readlink -f "${2:-$0}")")',
    'exec "${BERTH_NODE:-node}" "${BERTH_CLI:-$bin_dir/../dist/cli.js}" lb-pod check --state-dir "$1"',
    "",
  );
  return lines.join("\n");
}
