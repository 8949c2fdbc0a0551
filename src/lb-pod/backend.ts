// Which netfilter front end the lb-pod writes its rules with, decided from what is in the pod's network namespace.
//
// The automatic rule (`--backend auto`, the default; `--backend iptables` means the same):
//   1. iptables, in the variant whose tables already hold kubelet's hint chain (KUBE-IPTABLES-HINT or
//      KUBE-KUBELET-CANARY, in any table), nft checked first. This is exactly how kube-proxy's iptables-wrapper
//      decides (kubernetes-sigs/iptables-wrappers, pkg/xtables/detect.go).
//   2. Otherwise the variant with more rules ("-A" lines of iptables-save, both families), ties going to nft. This is
//      the wrapper's older line-count rule (iptables-wrapper-installer.sh v2), except that ties (typically a fresh pod
//      namespace with no rules at all) go to nft, the default of every current distribution, instead of legacy.
//      Our own chains count too, so a restarted lb-pod keeps the variant it used before.
//   3. If that variant's binaries are missing, the other variant; with no iptables at all, native nftables.
// Never from `lsmod` (what klipper-lb's entry script does): a loaded nf_tables module says nothing about which rules
// the namespace uses, and a container cannot see the host's module list reliably anyway.
// Native nftables (`--backend nftables`) and IPVS (`--backend ipvs`) are chosen only when asked for: iptables is what
// klipper-lb users debug with (`iptables-save` in the pod) and what kube-proxy's own rules use.
import { UsageError } from "../lib/errors.js";
import type { CommandRunner } from "../lib/exec.js";
import type { Family } from "../lib/rules/model.js";

export type BackendName = "iptables-nft" | "iptables-legacy" | "nftables" | "ipvs";
export const BACKEND_REQUESTS = ["auto", "iptables", "iptables-nft", "iptables-legacy", "nftables", "ipvs"] as const;
export type BackendRequest = (typeof BACKEND_REQUESTS)[number];

export type IptablesVariant = "nft" | "legacy";

/** How to call one iptables variant for one family (Debian/Alpine names: iptables-nft-save, ip6tables-legacy, ...). */
export function iptablesBinary(variant: IptablesVariant, family: Family, tool: "save" | "restore" | "" = ""): string {
  return `${family === "ipv4" ? "iptables" : "ip6tables"}-${variant}${tool ? `-${tool}` : ""}`;
}

/** What the namespace holds in one iptables variant, from its iptables-save output for both families. */
export interface VariantFacts {
  /** Whether the variant's save tool ran at all for at least one family (binary present, kernel support). */
  available: boolean;
  /** kubelet's KUBE-IPTABLES-HINT / KUBE-KUBELET-CANARY chain exists in some table. */
  kubeletHint: boolean;
  /** Number of rules ("-A" lines), both families. */
  ruleLines: number;
}

export interface BackendFacts {
  nft: VariantFacts;
  legacy: VariantFacts;
  /** The `nft` binary ran. */
  nftablesAvailable: boolean;
  /** /proc/net/ip_vs exists: the kernel has IPVS (built in or ip_vs loaded). */
  ipvsAvailable: boolean;
}

/** A decision and why, so the lb-pod can log it and tests can assert it. */
export interface BackendChoice {
  backend: BackendName;
  reason: string;
}

const KUBELET_HINT = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) /m;

/** Reads the facts one iptables-save output contributes. */
export function variantFactsFromSave(outputs: readonly (string | undefined)[]): VariantFacts {
  const ran = outputs.filter((output): output is string => output !== undefined);
  return {
    available: ran.length > 0,
    kubeletHint: ran.some((output) => KUBELET_HINT.test(output)),
    ruleLines: ran.reduce((sum, output) => sum + output.split("\n").filter((line) => line.startsWith("-A ")).length, 0),
  };
}

/** The pure decision (see the rule at the top of this file). Throws UsageError when the request cannot be met. */
export function chooseBackend(request: BackendRequest, facts: BackendFacts): BackendChoice {
  switch (request) {
    case "ipvs":
      if (!facts.ipvsAvailable) {
        throw new UsageError(
          "backend ipvs: this kernel lacks IPVS (/proc/net/ip_vs does not exist: the ip_vs module is neither built in nor loaded); use --backend iptables or nftables",
        );
      }
      return { backend: "ipvs", reason: "requested with --backend ipvs (/proc/net/ip_vs exists)" };
    case "nftables":
      if (!facts.nftablesAvailable) throw new UsageError("backend nftables: the `nft` command is not available");
      return { backend: "nftables", reason: "requested with --backend nftables" };
    case "iptables-nft":
    case "iptables-legacy": {
      const variant = request === "iptables-nft" ? "nft" : "legacy";
      if (!facts[variant].available) throw new UsageError(`backend ${request}: ${iptablesBinary(variant, "ipv4", "save")} does not run here`);
      return { backend: request, reason: `requested with --backend ${request}` };
    }
    case "auto":
    case "iptables":
      return chooseIptablesVariant(facts, request === "auto");
  }
}

function chooseIptablesVariant(facts: BackendFacts, allowNftables: boolean): BackendChoice {
  const { nft, legacy } = facts;
  let preferred: IptablesVariant;
  let why: string;
  if (nft.kubeletHint) [preferred, why] = ["nft", "kubelet's hint chain is in the nft tables"];
  else if (legacy.kubeletHint) [preferred, why] = ["legacy", "kubelet's hint chain is in the legacy tables"];
  else if (legacy.ruleLines > nft.ruleLines) {
    [preferred, why] = ["legacy", `the namespace has more legacy rules (${legacy.ruleLines}) than nft rules (${nft.ruleLines})`];
  } else {
    [preferred, why] = ["nft", `the namespace has no more legacy rules (${legacy.ruleLines}) than nft rules (${nft.ruleLines})`];
  }
  const other: IptablesVariant = preferred === "nft" ? "legacy" : "nft";
  if (facts[preferred].available) return { backend: `iptables-${preferred}`, reason: why };
  if (facts[other].available) {
    return { backend: `iptables-${other}`, reason: `${why}, but iptables-${preferred} does not run here` };
  }
  if (allowNftables && facts.nftablesAvailable) return { backend: "nftables", reason: "no iptables variant runs here" };
  throw new UsageError("no usable netfilter tool: neither iptables-nft, iptables-legacy nor nft runs here");
}

/** The iptables-save output of each variant and family (undefined where the tool did not run). */
export type IptablesSaves = Record<IptablesVariant, Partial<Record<Family, string>>>;

/**
 * Runs the four iptables-save variants (in parallel; none of them creates a table) and checks for nft and IPVS.
 * The outputs are returned too: the applier reuses them to find our own rules without running the tools again.
 */
export async function gatherBackendFacts(
  runner: CommandRunner,
  fileExists: (path: string) => Promise<boolean>,
): Promise<{ facts: BackendFacts; saves: IptablesSaves; nftTables: string | undefined }> {
  const save = async (variant: IptablesVariant, family: Family): Promise<string | undefined> => {
    const result = await runner.run(iptablesBinary(variant, family, "save"), [], { timeoutMs: 10_000 });
    return result.exitCode === 0 ? result.stdout : undefined;
  };
  const [nft4, nft6, legacy4, legacy6, nftList, ipvs] = await Promise.all([
    save("nft", "ipv4"),
    save("nft", "ipv6"),
    save("legacy", "ipv4"),
    save("legacy", "ipv6"),
    runner.run("nft", ["list", "tables"], { timeoutMs: 10_000 }),
    fileExists("/proc/net/ip_vs"),
  ]);
  return {
    facts: {
      nft: variantFactsFromSave([nft4, nft6]),
      legacy: variantFactsFromSave([legacy4, legacy6]),
      nftablesAvailable: nftList.exitCode === 0,
      ipvsAvailable: ipvs,
    },
    saves: { nft: { ipv4: nft4, ipv6: nft6 }, legacy: { ipv4: legacy4, ipv6: legacy6 } },
    nftTables: nftList.exitCode === 0 ? nftList.stdout : undefined,
  };
}
