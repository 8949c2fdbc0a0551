// RulePlan -> one script for `nft -f`. Pure: no I/O; the applier runs the script in the pod's network namespace.
//
// Why the script is shaped like this:
// - One `table inet berth` holds everything, and every apply replaces it whole in one transaction:
//   `table inet berth {}` (creates it if missing, a no-op otherwise), `delete table inet berth`, then the full
//   definition. `nft -f` commits all of that atomically or nothing, whether or not the table existed, so a
//   re-apply or a restart with a changed configuration (ports, destinations, even families) leaves exactly the new
//   rules. One inet table rather than `ip` + `ip6` tables, so a change from dual-stack to single-stack cannot leave
//   a stale table of the other family behind. Rules of a family without destinations are simply absent, so that
//   family's packets pass our hooks untouched.
// - The table definition is written exactly as `nft list table inet berth` prints it (nftables 1.0.x: tabs,
//   blank lines between chains, hosts without /32, maps inline), so `--check` can compare the two as text.
//   Named or anonymous *sets* would break that (nft merges adjacent intervals and reorders elements when listing),
//   hence one `return` rule per allowed range, like the iptables renderer.
// - Same semantics as the iptables renderer (see render-iptables.ts): the source check runs before DNAT at the
//   mangle priority on every original-direction packet; DNAT spreads new connections over the destinations with
//   `numgen inc mod N` (a counter per rule, advanced once per new connection since nat chains see only a flow's
//   first packet); MASQUERADE only what we DNATed (`ct status dnat ct original proto-dst <port>`).
import { NFT_FAMILY, NFT_NAMES, NFT_TABLE } from "./names.js";
import type { Family, Forward, RulePlan } from "./model.js";
import { forwardName, ipPort } from "./render-iptables.js";

const TABLE = `${NFT_FAMILY} ${NFT_TABLE}`;
const NFPROTO: Record<Family, string> = { ipv4: "ipv4", ipv6: "ipv6" };
const ADDRESS: Record<Family, string> = { ipv4: "ip", ipv6: "ip6" };

/**
 * The full `nft -f` script: atomically replaces table inet berth with this plan's rules (see the file comment),
 * creating it if it did not exist. Running it twice leaves the same ruleset as running it once.
 */
export function renderNftables(plan: RulePlan): string {
  return `# berth lb-pod rules, rendered by berth: one transaction that replaces table ${TABLE} whole\n` +
    `table ${TABLE} {}\ndelete table ${TABLE}\n${renderNftablesTable(plan)}`;
}

/**
 * The `nft -f` script that removes everything berth owns in nftables: the whole table inet berth, succeeding
 * whether or not it exists.
 */
export function renderNftablesCleanup(): string {
  return `# berth lb-pod cleanup, rendered by berth\ntable ${TABLE} {}\ndelete table ${TABLE}\n`;
}

/**
 * The table definition alone, byte for byte as `nft list table inet berth` prints it once renderNftables(plan) is
 * applied (checked against nftables 1.0.6). `--check` can compare the listing with this text.
 */
export function renderNftablesTable(plan: RulePlan): string {
  const blocks: string[] = [];
  const restricted = plan.families.filter((family) => plan.allowedSources[family] !== undefined);
  for (const family of restricted) {
    const rules = (plan.allowedSources[family] ?? []).map((range) =>
      `${ADDRESS[family]} saddr ${nftRange(range)} return comment "allowed source"`);
    blocks.push(chain(NFT_NAMES.sourcesChain[family], undefined, [...rules, 'drop comment "source not allowed"']));
  }
  if (restricted.length > 0) {
    blocks.push(chain(NFT_NAMES.filterChain, "type filter hook prerouting priority mangle; policy accept;",
      plan.forwards.filter((forward) => restricted.includes(forward.family)).map((forward) =>
        `meta nfproto ${NFPROTO[forward.family]} ${forward.protocol} dport ${forward.port} ct direction original ` +
        `jump ${NFT_NAMES.sourcesChain[forward.family]} comment "${forwardName(forward)}"`)));
  }
  blocks.push(chain(NFT_NAMES.dnatChain, "type nat hook prerouting priority dstnat; policy accept;", plan.forwards.map(dnatRule)));
  blocks.push(chain(NFT_NAMES.masqueradeChain, "type nat hook postrouting priority srcnat; policy accept;",
    plan.forwards.flatMap((forward) => forward.destinations.map((destination) =>
      `${ADDRESS[forward.family]} daddr ${destination.ip} ${forward.protocol} dport ${destination.port} ` +
      `ct status dnat ct original proto-dst ${forward.port} masquerade ` +
      `comment "${forwardName(forward)} -> ${ipPort(destination.ip, destination.port)}"`))));
  return `table ${TABLE} {\n${blocks.join("\n")}}\n`;
}

function dnatRule(forward: Forward): string {
  const match = `meta nfproto ${NFPROTO[forward.family]} ${forward.protocol} dport ${forward.port}`;
  const [only] = forward.destinations;
  if (forward.destinations.length === 1 && only) {
    const target = ipPort(only.ip, only.port);
    return `${match} dnat ${ADDRESS[forward.family]} to ${target} comment "${forwardName(forward)} -> ${target}"`;
  }
  const entries = forward.destinations.map((destination, index) => `${index} : ${destination.ip} . ${destination.port}`);
  return `${match} dnat ${ADDRESS[forward.family]} to numgen inc mod ${forward.destinations.length} map { ${entries.join(", ")} } ` +
    `comment "${forwardName(forward)}"`;
}

function chain(name: string, hook: string | undefined, rules: string[]): string {
  const body = [...(hook ? [hook] : []), ...rules].map((line) => `\t\t${line}\n`).join("");
  return `\tchain ${name} {\n${body}\t}\n`;
}

/** nft lists a full-length prefix as the bare address. */
function nftRange(range: string): string {
  const full = range.includes(":") ? "/128" : "/32";
  return range.endsWith(full) ? range.slice(0, -full.length) : range;
}
