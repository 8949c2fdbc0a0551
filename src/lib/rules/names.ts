// Every netfilter / IPVS name the lb-pod owns, in one place. Renderers write them, appliers and `--check` look
// for them, cleanup removes them. Changing one is a data-plane migration: old pods would leave the old names behind.

/** iptables chains (both iptables and ip6tables, each family its own copy) created and flushed only by us. */
export const IPTABLES_CHAINS = {
  /** mangle table, jumped to from PREROUTING: per forwarded port, sends original-direction packets to the source check. */
  filter: "BERTH-FILTER",
  /** mangle table: RETURN for allowed source ranges, DROP for the rest. */
  sources: "BERTH-SOURCES",
  /** nat table, jumped to from PREROUTING: DNAT to the destinations. */
  dnat: "BERTH-DNAT",
  /** nat table, jumped to from POSTROUTING: MASQUERADE what we DNATed. */
  masquerade: "BERTH-MASQ",
} as const;

/**
 * Comment on each jump from a built-in chain into ours. It is how a jump is recognised as ours in `iptables-save`
 * output, so it must never change. Letters only: iptables-save prints it without quotes.
 */
export const IPTABLES_JUMP_COMMENT = "berth";

/** The nftables table (family inet) that holds all of the lb-pod's rules; replaced as a whole on every apply. */
export const NFT_TABLE = "berth";
export const NFT_FAMILY = "inet";

/** Chains inside the nftables table. */
export const NFT_NAMES = {
  /** Regular chains: `return` for allowed source ranges, `drop` for the rest; one per family that restricts sources. */
  sourcesChain: { ipv4: "sources-ipv4", ipv6: "sources-ipv6" },
  /** filter chain at the mangle hook priority: sends each forwarded port's original-direction packets to the check. */
  filterChain: "filter-prerouting",
  dnatChain: "dnat-prerouting",
  masqueradeChain: "masquerade-postrouting",
} as const;

/**
 * IPVS mode: each forward (family, protocol, port) gets firewall mark `IPVS_FWMARK_BASE + its index in the plan`,
 * set in the mangle table and used as the IPVS virtual service key. Marks never leave the pod's network namespace
 * (the kernel scrubs skb->mark when a packet crosses namespaces), so the base only has to be recognisable.
 */
export const IPVS_FWMARK_BASE = 0xbe70000;

/** iptables chains used by IPVS mode (mangle: marking; nat: masquerade), besides the shared source check. */
export const IPVS_IPTABLES_CHAINS = {
  mark: "BERTH-IPVS-MARK",
  masquerade: "BERTH-IPVS-MASQ",
} as const;
