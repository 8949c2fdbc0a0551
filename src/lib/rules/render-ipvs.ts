// RulePlan -> IPVS virtual services (input for `ipvsadm-restore`) plus the iptables rules IPVS needs around it.
// Pure: no I/O. Unit-tested only: the kernel this project is developed on has no IPVS, and the applier says so.
//
// How it works (the shape kube-proxy's IPVS mode uses, with fwmark services instead of address services):
// - mangle PREROUTING marks each forwarded port's packets with its own firewall mark (IPVS_FWMARK_BASE + the
//   forward's index in the plan); one fwmark virtual service per forward, scheduler rr (new connections spread
//   evenly), every destination a real server in masquerade (NAT) mode at the destination port.
//   Fwmark services avoid having to know the pod's own address, which an address-based service would need.
// - IPVS only sees packets delivered locally (its hooks are at LOCAL_IN), i.e. addressed to the pod's own IPs,
//   which is how hostPort traffic arrives. klipper-lb's DNAT also caught traffic for other addresses.
// - IPVS NAT rewrites only the destination; replies must come back through the pod, so nat POSTROUTING
//   MASQUERADEs marked packets. That needs `net.ipv4.vs.conntrack=1` (per network namespace), otherwise IPVS
//   traffic bypasses conntrack and MASQUERADE never sees it (kube-proxy sets the same sysctl).
// - The source check is the iptables renderer's (mangle, before anything else, original direction only).
// - `ipvsadm-restore` runs `ipvsadm -C` and then the lines, so a re-apply replaces every virtual service; IPVS
//   state is per network namespace and the pod's namespace holds only ours. Unlike iptables-restore and nft -f
//   this is not one kernel transaction: there is a moment with no virtual services.
import { IPVS_FWMARK_BASE, IPVS_IPTABLES_CHAINS } from "./names.js";
import type { Family, RulePlan } from "./model.js";
import {
  ALL_IPTABLES_JUMPS, forwardName, iptablesComment, ipPort, portMatch, sourceCheckLayout, sourceCheckRules, writeIptablesRestore,
  type IptablesJump,
} from "./render-iptables.js";

export interface IpvsRenderOptions {
  /** Per family, berth's jumps present in the live iptables ruleset (presentIptablesJumps), as for iptables mode. */
  presentJumps: Partial<Record<Family, readonly IptablesJump[]>>;
}

export interface IpvsRendering {
  /** stdin for `ipvsadm-restore` (which clears all virtual services first): one fwmark service per forward. */
  ipvsadmRestore: string;
  /** Per planned family: text for `iptables-restore --noflush` / `ip6tables-restore --noflush` (marks, MASQUERADE, source check). */
  iptablesRestore: Partial<Record<Family, string>>;
  /** Per planned family: the jumps that must exist exactly once after applying (for `--check`). */
  requiredJumps: Partial<Record<Family, IptablesJump[]>>;
  /** Sysctls (per network namespace) that must hold before IPVS traffic flows, besides per-family forwarding. */
  sysctls: Record<string, string>;
}

/**
 * Renders the plan for IPVS mode: `ipvsadmRestore` defines one fwmark virtual service per forward (scheduler rr,
 * each destination a masquerading real server with weight 1; `-6` for IPv6), and `iptablesRestore` per family
 * marks each forwarded port's packets in mangle BERTH-IPVS-MARK, MASQUERADEs them in nat BERTH-IPVS-MASQ, keeps
 * the source check, and deletes the iptables-mode chains (BERTH-DNAT, BERTH-MASQ) and their jumps listed in
 * presentJumps, so switching modes leaves nothing behind.
 * `sysctls` lists net.ipv4.vs.conntrack=1, without which MASQUERADE never sees IPVS traffic.
 */
export function renderIpvs(plan: RulePlan, opts: IpvsRenderOptions = { presentJumps: {} }): IpvsRendering {
  const services: string[] = [];
  const iptablesRestore: IpvsRendering["iptablesRestore"] = {};
  const requiredJumps: IpvsRendering["requiredJumps"] = {};
  plan.forwards.forEach((forward, index) => {
    const mark = IPVS_FWMARK_BASE + index;
    services.push(`-A -f ${mark} -s rr${forward.family === "ipv6" ? " -6" : ""}`);
    for (const destination of forward.destinations) {
      services.push(`-a -f ${mark} -r ${ipPort(destination.ip, destination.port)} -m -w 1`);
    }
  });
  for (const family of plan.families) {
    const mark: string[] = [];
    const masquerade: string[] = [];
    plan.forwards.forEach((forward, index) => {
      if (forward.family !== family) return;
      const hex = `0x${(IPVS_FWMARK_BASE + index).toString(16)}`;
      const comment = iptablesComment(forwardName(forward));
      mark.push(`-A ${IPVS_IPTABLES_CHAINS.mark} ${portMatch(forward, forward.port)} -m comment --comment ${comment} -j MARK --set-xmark ${hex}/0xffffffff`);
      masquerade.push(`-A ${IPVS_IPTABLES_CHAINS.masquerade} -m mark --mark ${hex} -m comment --comment ${comment} -j MASQUERADE`);
    });
    const sources = sourceCheckLayout(plan, family);
    const jumps = [
      ...sources.jumps,
      ...ALL_IPTABLES_JUMPS.filter((j) => j.target === IPVS_IPTABLES_CHAINS.mark || j.target === IPVS_IPTABLES_CHAINS.masquerade),
    ];
    requiredJumps[family] = jumps;
    iptablesRestore[family] = writeIptablesRestore(`berth lb-pod rules for IPVS mode (${family})`, {
      jumps,
      rules: { mangle: [...sourceCheckRules(plan, family), ...mark], nat: masquerade },
      chains: { mangle: [...sources.chains, IPVS_IPTABLES_CHAINS.mark], nat: [IPVS_IPTABLES_CHAINS.masquerade] },
    }, opts.presentJumps[family] ?? []);
  }
  return {
    ipvsadmRestore: services.map((line) => `${line}\n`).join(""),
    iptablesRestore,
    requiredJumps,
    sysctls: { "net.ipv4.vs.conntrack": "1" },
  };
}
