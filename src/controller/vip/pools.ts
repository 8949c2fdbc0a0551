// AddressPools (src/lib/vip/address-pool.ts) parsed and validated: pure, so every rule is a table test
// (test/unit/controller/vip/pools.test.ts). A pool's addresses are CIDRs or inclusive `a-b` ranges of either family;
// a malformed pool, or one overlapping another, is Invalid with the reason, and the last valid version of it keeps
// serving (docs/design/0014-vip-allocation.md): an edit with a typo must not take addresses away from running
// Services, nor hand out addresses from a range the user did not mean.
import { AddressError, parseCidr, parseIp } from "../../lib/addresses.js";
import type { Family } from "../../lib/rules/model.js";
import type { AddressPool, AddressPoolAnnouncement, AddressPoolServiceAllocation } from "../../lib/vip/address-pool.js";
import { dnsSubdomainProblem } from "../service-config.js";

/** One inclusive range of addresses of one family, as integers (bigint: IPv6 needs 128 bits). */
export interface AddressRange {
  family: Family;
  first: bigint;
  last: bigint;
  /** As written in the pool (for messages). */
  text: string;
}

/** A pool whose spec is valid, ready for the allocator. */
export interface ParsedPool {
  name: string;
  /** Sorted by family (IPv4 first), then first address. */
  ranges: AddressRange[];
  autoAssign: boolean;
  avoidBuggyIPs: boolean;
  priority: number;
  serviceAllocation: AddressPoolServiceAllocation;
  announce: AddressPoolAnnouncement;
  /** metadata.generation of the spec this was parsed from. */
  generation?: number;
}

export type PoolParse = { ok: true; pool: ParsedPool } | { ok: false; reason: "Malformed"; message: string };

// ---- addresses as integers ----

export function ipToBigInt(text: string): { family: Family; value: bigint } {
  const ip = parseIp(text);
  let value = 0n;
  for (const byte of ip.bytes) value = (value << 8n) | BigInt(byte);
  return { family: ip.family, value };
}

/** Canonical text of an address given as an integer (dotted decimal, RFC 5952 for IPv6). */
export function bigIntToIp(family: Family, value: bigint): string {
  if (family === "ipv4") {
    const n = Number(value);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: the longest run (leftmost on ties) of two or more zero groups becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/** Parses "CIDR", a bare address or "a-b" (inclusive, same family, a <= b). Throws AddressError with the reason. */
export function parseRange(text: string): AddressRange {
  const dash = text.indexOf("-");
  if (dash < 0) {
    // A bare address is a one-address pool (/32, /128).
    const cidr = parseCidr(text);
    const bits = cidr.family === "ipv4" ? 32 : 128;
    const first = ipToBigInt(cidr.network).value;
    const size = 1n << BigInt(bits - cidr.prefixLength);
    return { family: cidr.family, first, last: first + size - 1n, text };
  }
  const [a, b] = [text.slice(0, dash).trim(), text.slice(dash + 1).trim()];
  let start: { family: Family; value: bigint };
  let end: { family: Family; value: bigint };
  try {
    start = ipToBigInt(a);
    end = ipToBigInt(b);
  } catch (error) {
    if (error instanceof AddressError) throw new AddressError(`"${text}" is not a valid range: ${error.message}`);
    throw error;
  }
  if (start.family !== end.family) throw new AddressError(`"${text}" mixes an IPv4 and an IPv6 address`);
  if (start.value > end.value) throw new AddressError(`"${text}" ends before it starts`);
  return { family: start.family, first: start.value, last: end.value, text };
}

/** Whether an IPv4 address ends in .0 or .255 (MetalLB's avoidBuggyIPs; IPv6 has no such addresses). */
export function isBuggyIp(family: Family, value: bigint): boolean {
  if (family !== "ipv4") return false;
  const last = value & 255n;
  return last === 0n || last === 255n;
}

/** How many usable addresses a range holds (buggy ones left out when asked). */
export function rangeSize(range: AddressRange, avoidBuggyIPs: boolean): bigint {
  const total = range.last - range.first + 1n;
  if (!avoidBuggyIPs || range.family !== "ipv4") return total;
  // Count addresses ending .0 or .255 in [first, last]: one of each per /24 block touched.
  const countEnding = (suffix: bigint): bigint => {
    const firstHit = range.first + ((suffix - (range.first & 255n) + 256n) & 255n);
    return firstHit > range.last ? 0n : (range.last - firstHit) / 256n + 1n;
  };
  return total - countEnding(0n) - countEnding(255n);
}

// ---- one pool ----

/** Parses and validates one pool's spec on its own (overlaps with other pools are validatePools' job). */
export function parsePool(pool: AddressPool): PoolParse {
  const name = pool.metadata?.name ?? "";
  const problems: string[] = [];
  const nameProblem = dnsSubdomainProblem(name);
  if (nameProblem) problems.push(`metadata.name "${name}" ${nameProblem}`);
  const spec = pool.spec;
  const addresses = spec?.addresses;
  const ranges: AddressRange[] = [];
  if (!Array.isArray(addresses) || addresses.length === 0) {
    problems.push("spec.addresses is empty: list CIDRs (192.168.1.240/28) or ranges (192.168.1.240-192.168.1.250)");
  } else {
    addresses.forEach((text, index) => {
      if (typeof text !== "string") {
        problems.push(`spec.addresses[${index}] is not a string`);
        return;
      }
      try {
        ranges.push(parseRange(text.trim()));
      } catch (error) {
        if (!(error instanceof AddressError)) throw error;
        problems.push(`spec.addresses[${index}]: ${error.message}`);
      }
    });
  }
  ranges.sort(compareRanges);
  for (let i = 1; i < ranges.length; i++) {
    const [a, b] = [ranges[i - 1] as AddressRange, ranges[i] as AddressRange];
    if (a.family === b.family && b.first <= a.last) problems.push(`spec.addresses: "${a.text}" and "${b.text}" overlap`);
  }
  const priority = spec?.priority ?? 0;
  if (!Number.isSafeInteger(priority)) problems.push(`spec.priority ${String(priority)} is not a whole number`);
  for (const [field, value] of [["autoAssign", spec?.autoAssign], ["avoidBuggyIPs", spec?.avoidBuggyIPs]] as const) {
    if (value !== undefined && typeof value !== "boolean") problems.push(`spec.${field} must be true or false`);
  }
  selectorProblems("spec.serviceAllocation.namespaceSelectors", spec?.serviceAllocation?.namespaceSelectors, problems);
  selectorProblems("spec.serviceAllocation.serviceSelectors", spec?.serviceAllocation?.serviceSelectors, problems);
  selectorProblems("spec.announce.nodeSelectors", spec?.announce?.nodeSelectors, problems);
  if (problems.length > 0) return { ok: false, reason: "Malformed", message: problems.join("; ") };
  return {
    ok: true,
    pool: {
      name,
      ranges,
      autoAssign: spec?.autoAssign ?? true,
      avoidBuggyIPs: spec?.avoidBuggyIPs ?? false,
      priority,
      serviceAllocation: spec?.serviceAllocation ?? {},
      announce: spec?.announce ?? {},
      ...(pool.metadata?.generation !== undefined ? { generation: pool.metadata.generation } : {}),
    },
  };
}

const SELECTOR_OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist"];

function selectorProblems(field: string, selectors: unknown, problems: string[]): void {
  if (selectors === undefined) return;
  if (!Array.isArray(selectors)) {
    problems.push(`${field} must be a list of label selectors`);
    return;
  }
  selectors.forEach((selector: { matchExpressions?: { key?: string; operator?: string; values?: string[] }[] }, index) => {
    for (const [j, expression] of (selector?.matchExpressions ?? []).entries()) {
      const at = `${field}[${index}].matchExpressions[${j}]`;
      if (!SELECTOR_OPERATORS.includes(expression.operator ?? "")) {
        problems.push(`${at}.operator "${expression.operator ?? ""}" is not In, NotIn, Exists or DoesNotExist`);
      } else if ((expression.operator === "In" || expression.operator === "NotIn") && (expression.values ?? []).length === 0) {
        problems.push(`${at}: ${expression.operator} needs at least one value`);
      } else if ((expression.operator === "Exists" || expression.operator === "DoesNotExist") && (expression.values ?? []).length > 0) {
        problems.push(`${at}: ${expression.operator} takes no values`);
      }
    }
  });
}

function compareRanges(a: AddressRange, b: AddressRange): number {
  if (a.family !== b.family) return a.family === "ipv4" ? -1 : 1;
  return a.first < b.first ? -1 : a.first > b.first ? 1 : 0;
}

/** Pools in the order the allocator tries them: priority (lower first), then name. */
export function comparePools(a: Pick<ParsedPool, "priority" | "name">, b: Pick<ParsedPool, "priority" | "name">): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

// ---- every pool together ----

/** What one pool's Valid condition says. */
export interface PoolVerdict {
  valid: boolean;
  /** "Valid", "Malformed" or "Overlap". */
  reason: string;
  message: string;
  /** The spec the allocator uses for this pool: the current one, the last valid one, or none. */
  serving?: ParsedPool;
}

export interface PoolsDecision {
  /** The pools the allocator uses, in allocation order (priority, then name). */
  serving: ParsedPool[];
  verdicts: Map<string, PoolVerdict>;
  /** The last valid spec of every existing pool, to pass back in next time. */
  lastValid: Map<string, ParsedPool>;
}

const sameParse = (a: ParsedPool | undefined, b: ParsedPool): boolean =>
  a !== undefined && JSON.stringify({ ...a, generation: 0 }, bigintJson) === JSON.stringify({ ...b, generation: 0 }, bigintJson);

const bigintJson = (_key: string, value: unknown): unknown => (typeof value === "bigint" ? value.toString() : value);

function findOverlap(candidate: ParsedPool, accepted: readonly ParsedPool[]): string | undefined {
  for (const other of accepted) {
    for (const a of candidate.ranges) {
      for (const b of other.ranges) {
        if (a.family === b.family && a.first <= b.last && b.first <= a.last) {
          return `"${a.text}" overlaps "${b.text}" of pool ${other.name}`;
        }
      }
    }
  }
  return undefined;
}

/**
 * Validates every pool together. Overlaps are settled so that an edit never takes addresses from a pool already
 * serving them: pools whose current spec was already accepted (equal to their last valid one) are placed first, then
 * new or changed ones by creation time and name; a pool overlapping one placed before it is Invalid. An Invalid pool
 * serves its last valid spec if it has one that overlaps nothing placed (the user's edit is refused, not applied
 * half-way); a pool that never was valid serves nothing.
 */
export function validatePools(pools: readonly AddressPool[], lastValid: ReadonlyMap<string, ParsedPool>): PoolsDecision {
  const verdicts = new Map<string, PoolVerdict>();
  const nextLastValid = new Map<string, ParsedPool>();
  const candidates: { pool: ParsedPool; incumbent: boolean; created: string }[] = [];
  for (const pool of pools) {
    const name = pool.metadata?.name ?? "";
    const parsed = parsePool(pool);
    if (!parsed.ok) {
      verdicts.set(name, { valid: false, reason: parsed.reason, message: parsed.message });
      continue;
    }
    const created = (pool.metadata as { creationTimestamp?: string | Date } | undefined)?.creationTimestamp;
    candidates.push({
      pool: parsed.pool,
      incumbent: sameParse(lastValid.get(name), parsed.pool),
      created: created instanceof Date ? created.toISOString() : (created ?? ""),
    });
  }
  candidates.sort((a, b) => (a.incumbent !== b.incumbent ? (a.incumbent ? -1 : 1)
    : a.created !== b.created ? (a.created < b.created ? -1 : 1) : a.pool.name < b.pool.name ? -1 : a.pool.name > b.pool.name ? 1 : 0));
  const serving: ParsedPool[] = [];
  for (const { pool } of candidates) {
    const overlap = findOverlap(pool, serving);
    if (overlap === undefined) {
      serving.push(pool);
      nextLastValid.set(pool.name, pool);
      verdicts.set(pool.name, { valid: true, reason: "Valid", message: describeCounts(pool), serving: pool });
    } else {
      verdicts.set(pool.name, { valid: false, reason: "Overlap", message: `spec.addresses: ${overlap}; pools must not share addresses` });
    }
  }
  // Invalid pools fall back to their last valid spec, if it still fits beside the pools placed above.
  for (const pool of pools) {
    const name = pool.metadata?.name ?? "";
    const verdict = verdicts.get(name);
    if (verdict === undefined || verdict.valid) continue;
    const previous = lastValid.get(name);
    if (previous !== undefined && findOverlap(previous, serving) === undefined) {
      serving.push(previous);
      nextLastValid.set(name, previous);
      verdict.serving = previous;
      verdict.message += `. The last valid spec${previous.generation !== undefined ? ` (generation ${previous.generation})` : ""} keeps serving until this is fixed.`;
    } else {
      verdict.message += ". No address of this pool is handed out until this is fixed.";
    }
  }
  serving.sort(comparePools);
  return { serving, verdicts, lastValid: nextLastValid };
}

function describeCounts(pool: ParsedPool): string {
  const families = [...new Set(pool.ranges.map((r) => (r.family === "ipv4" ? "IPv4" : "IPv6")))];
  return `${pool.ranges.length} address range${pool.ranges.length === 1 ? "" : "s"} (${families.join(", ")})`;
}
