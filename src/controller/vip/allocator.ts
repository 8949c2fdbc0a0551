// VIP-mode address allocation: which addresses a Service gets, from which pool. No I/O: the controller feeds it the
// pools (validatePools' serving list) and what Services' status already says, and writes what it answers; every
// rule is a table test (test/unit/controller/vip/allocator.test.ts). The rules (docs/design/0014-vip-allocation.md):
// - pools are tried by priority, then name; a named pool (berth.dev/pool) is the only one tried; requested
//   addresses (berth.dev/ips, spec.loadBalancerIP, MetalLB aliases) come from whichever pool holds them, autoAssign
//   or not (MetalLB's rule); a pool's serviceAllocation decides which Services may use it;
// - one pool per Service, one address per family; ipFamilyPolicy decides how many families (SingleStack: the first
//   of spec.ipFamilies; PreferDualStack: as many as the pool has; RequireDualStack: both or nothing);
// - Services with the same sharing key may share an address when their ports (protocol and number) are disjoint,
//   their externalTrafficPolicy is the same, and, under Local, their selectors are equal (MetalLB's rule: with Local,
//   the address is announced from the nodes with endpoints, which must be the same nodes for every sharer);
// - an address in use never moves: a Service keeps what it has as long as its own request still allows it, even
//   when a pool edit leaves the address outside every pool (reported, never taken away);
// - state is rebuilt from Services' status (restore) before any new allocation, so a restart or a new leader never
//   hands one address to two Services.
import type { Family, Protocol } from "../../lib/rules/model.js";
import type { VipRequest } from "../types.js";
import { bigIntToIp, ipToBigInt, isBuggyIp, rangeSize, type AddressRange, type ParsedPool } from "./pools.js";

export type FamilyPolicy = "SingleStack" | "PreferDualStack" | "RequireDualStack";

/** What the allocator needs to know about one VIP-mode Service. */
export interface VipService {
  /** namespace/name */
  key: string;
  namespace: string;
  labels: Record<string, string>;
  /** The namespace's labels (for pools' namespaceSelectors); undefined when the namespace is not known. */
  namespaceLabels?: Record<string, string>;
  /** spec.ipFamilies, in order. */
  families: Family[];
  familyPolicy: FamilyPolicy;
  request: VipRequest;
  ports: { protocol: Protocol; port: number }[];
  trafficPolicy: "Cluster" | "Local";
  selector: Record<string, string>;
}

/** Why a Service has no address: a fixed token (condition reason, Event reason) and what to do about it. */
export type FailureCode =
  | "NoAddressPools"
  | "PoolNotFound"
  | "NoPoolMatches"
  | "PoolExhausted"
  | "AddressTaken"
  | "AddressOutsidePools"
  | "SharingConflict"
  | "FamilyMismatch";

export interface AllocationFailure {
  code: FailureCode;
  message: string;
}

export type AllocationResult =
  | {
    ok: true;
    pool: string;
    /** Canonical addresses, in spec.ipFamilies order. */
    ips: string[];
    /** Whether the addresses differ from what the Service held before this call. */
    changed: boolean;
    /** Addresses held that no serving pool contains any more (a pool edit): kept, and reported. */
    outsidePools: string[];
  }
  | { ok: false; failure: AllocationFailure };

interface Sharer {
  sharingKey: string | undefined;
  ports: Set<string>;
  trafficPolicy: "Cluster" | "Local";
  selector: string;
}

interface Holder {
  family: Family;
  value: bigint;
  /** service key -> how it uses the address */
  sharers: Map<string, Sharer>;
}

interface Held {
  pool: string;
  /** family -> address */
  addresses: Map<Family, bigint>;
}

export interface PoolUsage {
  assignedIPv4: number;
  availableIPv4: number;
  assignedIPv6: number;
  availableIPv6: number;
}

const FAMILY_NAME: Record<Family, string> = { ipv4: "IPv4", ipv6: "IPv6" };

function sharerOf(svc: VipService): Sharer {
  return {
    sharingKey: svc.request.sharingKey,
    ports: new Set(svc.ports.map((p) => `${p.protocol}/${p.port}`)),
    trafficPolicy: svc.trafficPolicy,
    selector: JSON.stringify(Object.entries(svc.selector).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  };
}

/** Why `candidate` may not share with `other`, or undefined when it may. */
function sharingProblem(candidate: Sharer, otherKey: string, other: Sharer): string | undefined {
  if (candidate.sharingKey === undefined || other.sharingKey === undefined) return `${otherKey} holds it and no sharing key allows sharing`;
  if (candidate.sharingKey !== other.sharingKey) return `${otherKey} holds it with another sharing key ("${other.sharingKey}")`;
  const clash = [...candidate.ports].filter((p) => other.ports.has(p));
  if (clash.length > 0) return `${otherKey} shares it and uses the same port${clash.length > 1 ? "s" : ""} ${clash.join(", ")}`;
  if (candidate.trafficPolicy !== other.trafficPolicy) {
    return `${otherKey} shares it with externalTrafficPolicy ${other.trafficPolicy}; sharers need the same policy`;
  }
  if (candidate.trafficPolicy === "Local" && candidate.selector !== other.selector) {
    return `${otherKey} shares it with another pod selector; under externalTrafficPolicy Local sharers need the same selector`;
  }
  return undefined;
}

function holderProblem(holder: Holder, key: string, sharer: Sharer): string | undefined {
  for (const [otherKey, other] of holder.sharers) {
    if (otherKey === key) continue;
    const problem = sharingProblem(sharer, otherKey, other);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** metav1.LabelSelector semantics; an empty selector matches everything. */
export function selectorMatches(selector: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] },
  labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    if (e.operator === "In" && !(has && values.includes(value as string))) return false;
    if (e.operator === "NotIn" && has && values.includes(value as string)) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

/** undefined when the pool's serviceAllocation lets this Service in, else why not. */
export function poolRefusal(pool: ParsedPool, svc: VipService): string | undefined {
  const allocation = pool.serviceAllocation;
  if ((allocation.namespaces ?? []).length > 0 && !(allocation.namespaces ?? []).includes(svc.namespace)) {
    return `only for namespaces ${(allocation.namespaces ?? []).join(", ")}`;
  }
  const nsSelectors = allocation.namespaceSelectors ?? [];
  if (nsSelectors.length > 0 && !nsSelectors.some((s) => selectorMatches(s as never, svc.namespaceLabels ?? {}))) {
    return `namespace ${svc.namespace}'s labels match none of its namespaceSelectors`;
  }
  const serviceSelectors = allocation.serviceSelectors ?? [];
  if (serviceSelectors.length > 0 && !serviceSelectors.some((s) => selectorMatches(s as never, svc.labels))) {
    return "the Service's labels match none of its serviceSelectors";
  }
  return undefined;
}

function inRanges(ranges: readonly AddressRange[], family: Family, value: bigint): boolean {
  return ranges.some((r) => r.family === family && r.first <= value && value <= r.last);
}

export class Allocator {
  private pools: ParsedPool[] = [];
  private readonly byName = new Map<string, ParsedPool>();
  private readonly holders: Record<Family, Map<bigint, Holder>> = { ipv4: new Map(), ipv6: new Map() };
  private readonly held = new Map<string, Held>();
  /**
   * Addresses in use by sharing key (every sharer of an address has the same key), so a Service with a key finds
   * the addresses it may join without a scan of every address in use.
   */
  private readonly byKey = new Map<string, Set<Holder>>();
  /** Per range: every address below this offset from its first is known to be taken (a scan starts here). */
  private cursors = new Map<AddressRange, bigint>();

  constructor(pools: readonly ParsedPool[] = []) {
    this.setPools(pools);
  }

  /** The pools to allocate from (validatePools' serving list, in order). Allocations are kept whatever changed. */
  setPools(pools: readonly ParsedPool[]): void {
    this.pools = [...pools];
    this.byName.clear();
    for (const pool of pools) this.byName.set(pool.name, pool);
    this.cursors = new Map();
  }

  poolNames(): string[] {
    return this.pools.map((p) => p.name);
  }

  /** What a Service holds (canonical addresses in IPv4, IPv6 order), if anything. */
  heldBy(key: string): { pool: string; ips: string[] } | undefined {
    const held = this.held.get(key);
    if (!held) return undefined;
    return { pool: held.pool, ips: [...held.addresses].sort(([a], [b]) => (a === "ipv4" ? -1 : b === "ipv4" ? 1 : 0)).map(([f, v]) => bigIntToIp(f, v)) };
  }

  /** Every Service key holding an address. */
  keys(): string[] {
    return [...this.held.keys()];
  }

  /**
   * Records what a Service's status already says it has (a restart, a new leader, a write another replica made).
   * An address another Service holds, and may not share, is refused: that Service keeps it, and `conflicts` names
   * it (the caller re-allocates this one and says so).
   */
  restore(svc: VipService, ips: readonly string[], pool: string | undefined): { conflicts: { ip: string; holder: string }[] } {
    const conflicts: { ip: string; holder: string }[] = [];
    const sharer = sharerOf(svc);
    const accepted: { family: Family; value: bigint }[] = [];
    for (const ip of ips) {
      let parsed: { family: Family; value: bigint };
      try {
        parsed = ipToBigInt(ip);
      } catch {
        continue;
      }
      const holder = this.holders[parsed.family].get(parsed.value);
      if (holder && holder.sharers.size > 0 && !holder.sharers.has(svc.key) && holderProblem(holder, svc.key, sharer) !== undefined) {
        conflicts.push({ ip, holder: [...holder.sharers.keys()][0] as string });
        continue;
      }
      if (accepted.some((a) => a.family === parsed.family)) continue;
      accepted.push(parsed);
    }
    if (conflicts.length > 0 || accepted.length === 0) return { conflicts };
    this.release(svc.key);
    const poolName = pool ?? this.pools.find((p) => accepted.every((a) => inRanges(p.ranges, a.family, a.value)))?.name ?? "";
    const held: Held = { pool: poolName, addresses: new Map() };
    for (const a of accepted) this.take(svc.key, sharer, held, a.family, a.value);
    this.held.set(svc.key, held);
    return { conflicts };
  }

  /** Frees what a Service holds (deleted, no longer VIP mode, no longer a LoadBalancer). */
  release(key: string): boolean {
    const held = this.held.get(key);
    if (!held) return false;
    for (const [family, value] of held.addresses) {
      const holder = this.holders[family].get(value);
      if (!holder) continue;
      const sharingKey = holder.sharers.get(key)?.sharingKey;
      holder.sharers.delete(key);
      if (holder.sharers.size === 0) {
        this.holders[family].delete(value);
        if (sharingKey !== undefined) {
          const set = this.byKey.get(sharingKey);
          set?.delete(holder);
          if (set?.size === 0) this.byKey.delete(sharingKey);
        }
        for (const [range, cursor] of this.cursors) {
          if (range.family === family && range.first <= value && value <= range.last && value - range.first < cursor) {
            this.cursors.set(range, value - range.first);
          }
        }
      }
    }
    this.held.delete(key);
    return true;
  }

  /**
   * Gives a Service its addresses, or says why it cannot. What it holds is kept when its request still allows
   * it; otherwise (the user changed the pool, the addresses or the sharing) it is released and allocated anew,
   * preferring the same addresses where the new request allows them.
   */
  allocate(svc: VipService): AllocationResult {
    const before = this.heldBy(svc.key);
    const wanted = this.wantedFamilies(svc);
    if (!wanted.ok) return { ok: false, failure: wanted.failure };
    const current = this.held.get(svc.key);
    if (current && this.stillFits(svc, current, wanted.families)) {
      const sharer = sharerOf(svc);
      for (const [family, value] of current.addresses) this.holders[family].get(value)?.sharers.set(svc.key, sharer);
      return this.success(svc.key, before, current);
    }
    const previous = current ? new Map(current.addresses) : new Map<Family, bigint>();
    this.release(svc.key);
    const result = this.allocateFresh(svc, wanted.families, wanted.required, previous);
    if (!result.ok) {
      // Nothing is taken away on a failed re-allocation either: the old addresses come back.
      if (current) this.restoreHeld(svc, current);
      return result;
    }
    return this.success(svc.key, before, result.held);
  }

  private restoreHeld(svc: VipService, held: Held): void {
    const sharer = sharerOf(svc);
    const back: Held = { pool: held.pool, addresses: new Map() };
    for (const [family, value] of held.addresses) this.take(svc.key, sharer, back, family, value);
    this.held.set(svc.key, back);
  }

  private success(key: string, before: { pool: string; ips: string[] } | undefined, held: Held): AllocationResult {
    const now = this.heldBy(key) as { pool: string; ips: string[] };
    const outsidePools = [...held.addresses]
      .filter(([family, value]) => !this.pools.some((p) => inRanges(p.ranges, family, value)))
      .map(([family, value]) => bigIntToIp(family, value));
    return {
      ok: true, pool: held.pool, ips: now.ips, outsidePools,
      changed: before === undefined || before.pool !== now.pool || before.ips.join(",") !== now.ips.join(","),
    };
  }

  /** Families to allocate (in spec.ipFamilies order) and whether all are required. */
  private wantedFamilies(svc: VipService): { ok: true; families: Family[]; required: boolean } | { ok: false; failure: AllocationFailure } {
    const families = svc.families.length > 0 ? svc.families : (["ipv4"] as Family[]);
    const byPolicy = svc.familyPolicy === "SingleStack" ? families.slice(0, 1) : families;
    const requested = svc.request.ips.map((ip) => ipToBigInt(ip).family);
    for (const family of requested) {
      if (!byPolicy.includes(family)) {
        return {
          ok: false,
          failure: {
            code: "FamilyMismatch",
            message: `The requested ${FAMILY_NAME[family]} address is of a family this Service does not have (its ` +
              `families are ${byPolicy.map((f) => FAMILY_NAME[f]).join(", ")}, ipFamilyPolicy ${svc.familyPolicy}); ` +
              "request addresses of the Service's families, or change spec.ipFamilies and spec.ipFamilyPolicy.",
          },
        };
      }
    }
    if (requested.length > 0) {
      // Requested addresses decide the families, unless dual-stack is required.
      if (svc.familyPolicy === "RequireDualStack" && requested.length < byPolicy.length) return { ok: true, families: byPolicy, required: true };
      return { ok: true, families: byPolicy.filter((f) => requested.includes(f)), required: true };
    }
    return { ok: true, families: byPolicy, required: svc.familyPolicy !== "PreferDualStack" };
  }

  private stillFits(svc: VipService, held: Held, families: Family[]): boolean {
    if (svc.request.pool !== undefined && svc.request.pool !== held.pool) return false;
    const heldFamilies = [...held.addresses.keys()];
    if (heldFamilies.some((f) => !families.includes(f))) return false;
    if (svc.request.ips.length > 0) {
      const want = svc.request.ips.map((ip) => ipToBigInt(ip));
      if (want.length !== held.addresses.size || want.some((w) => held.addresses.get(w.family) !== w.value)) return false;
    } else if (heldFamilies.length < families.length) {
      // PreferDualStack held one family and the pool now has the other: adding one is not moving one. Re-run the
      // allocation, which prefers the addresses held.
      const pool = this.byName.get(held.pool);
      if (pool && families.some((f) => !held.addresses.has(f) && pool.ranges.some((r) => r.family === f))) return false;
    }
    const sharer = sharerOf(svc);
    for (const [family, value] of held.addresses) {
      const holder = this.holders[family].get(value);
      if (holder && holderProblem(holder, svc.key, sharer) !== undefined) return false;
    }
    return true;
  }

  private allocateFresh(svc: VipService, families: Family[], required: boolean, previous: Map<Family, bigint>):
    { ok: true; held: Held } | { ok: false; failure: AllocationFailure } {
    if (this.pools.length === 0) {
      return { ok: false, failure: { code: "NoAddressPools", message: "There is no valid AddressPool. Create one (kubectl get addresspools; see `berth convert metallb` for MetalLB configuration)." } };
    }
    const requested = svc.request.ips.map((ip) => ({ ip, ...ipToBigInt(ip) }));
    let candidates: ParsedPool[];
    if (svc.request.pool !== undefined) {
      const named = this.byName.get(svc.request.pool);
      if (!named) {
        return {
          ok: false,
          failure: {
            code: "PoolNotFound",
            message: `The Service asks for pool ${svc.request.pool}, which does not exist or has never been valid (kubectl get addresspools); ` +
              `create it, or name one of: ${this.poolNames().join(", ")}.`,
          },
        };
      }
      candidates = [named];
    } else if (requested.length > 0) {
      candidates = this.pools.filter((p) => requested.every((r) => inRanges(p.ranges, r.family, r.value)));
    } else {
      candidates = this.pools.filter((p) => p.autoAssign);
    }
    for (const r of requested) {
      if (!candidates.some((p) => inRanges(p.ranges, r.family, r.value))) {
        const where = svc.request.pool !== undefined ? `pool ${svc.request.pool}` : "any valid AddressPool";
        return {
          ok: false,
          failure: {
            code: "AddressOutsidePools",
            message: `The requested address ${r.ip} is not in ${where}; request an address inside one (kubectl get addresspools), or add it to a pool.`,
          },
        };
      }
    }
    if (candidates.length === 0) {
      return {
        ok: false,
        failure: {
          code: "NoPoolMatches",
          message: "No AddressPool gives addresses automatically (every pool has autoAssign: false); name a pool with the berth.dev/pool annotation, or set autoAssign on one.",
        },
      };
    }
    const refusals: string[] = [];
    const exhausted: string[] = [];
    let taken: AllocationFailure | undefined;
    const sharer = sharerOf(svc);
    for (const pool of candidates) {
      const refusal = poolRefusal(pool, svc);
      if (refusal !== undefined) {
        refusals.push(`${pool.name} (${refusal})`);
        continue;
      }
      const poolFamilies = families.filter((f) => pool.ranges.some((r) => r.family === f));
      if (required && poolFamilies.length < families.length) {
        exhausted.push(`${pool.name} (has no ${families.filter((f) => !poolFamilies.includes(f)).map((f) => FAMILY_NAME[f]).join(" or ")} addresses)`);
        continue;
      }
      const picked = new Map<Family, bigint>();
      let failed: string | undefined;
      for (const family of poolFamilies) {
        const asked = requested.find((r) => r.family === family);
        if (asked) {
          const holder = this.holders[family].get(asked.value);
          const problem = holder ? holderProblem(holder, svc.key, sharer) : undefined;
          if (problem !== undefined) {
            const shared = svc.request.sharingKey !== undefined;
            taken = {
              code: shared && problem.includes("shares it") ? "SharingConflict" : "AddressTaken",
              message: `The requested address ${asked.ip} is taken: ${problem}. ` + (shared
                ? "Give both Services the same berth.dev/allow-shared-ip key, disjoint ports and the same externalTrafficPolicy (and selector under Local), or request another address."
                : "Request another address, or let both Services share it with the same berth.dev/allow-shared-ip key and disjoint ports."),
            };
            failed = "taken";
            break;
          }
          picked.set(family, asked.value);
          continue;
        }
        const value = this.pick(pool, family, sharer, svc.key, previous.get(family));
        if (value === undefined) {
          failed = `${pool.name} (no free ${FAMILY_NAME[family]} address)`;
          // PreferDualStack makes do with the families that have a free address.
          if (required) break;
          continue;
        }
        picked.set(family, value);
      }
      if (failed === "taken") break;
      if (failed !== undefined && (required || picked.size === 0)) {
        exhausted.push(failed);
        continue;
      }
      if (picked.size === 0) continue;
      const held: Held = { pool: pool.name, addresses: new Map() };
      for (const [family, value] of picked) this.take(svc.key, sharer, held, family, value);
      this.held.set(svc.key, held);
      return { ok: true, held };
    }
    if (taken) return { ok: false, failure: taken };
    if (exhausted.length > 0) {
      return {
        ok: false,
        failure: {
          code: "PoolExhausted",
          message: `No address is free: ${exhausted.join(", ")}${refusals.length > 0 ? `; pools not for this Service: ${refusals.join(", ")}` : ""}. ` +
            "Add addresses to a pool (or another pool), or delete a LoadBalancer Service that holds one.",
        },
      };
    }
    return {
      ok: false,
      failure: {
        code: "NoPoolMatches",
        message: `No AddressPool may give this Service an address: ${refusals.join(", ")}. Change a pool's serviceAllocation, or this Service's labels or namespace.`,
      },
    };
  }

  /** A shareable address (same sharing key), the one held before, or the lowest free one in the pool. */
  private pick(pool: ParsedPool, family: Family, sharer: Sharer, key: string, previous: bigint | undefined): bigint | undefined {
    if (previous !== undefined && inRanges(pool.ranges, family, previous)) {
      const holder = this.holders[family].get(previous);
      if (!holder || holderProblem(holder, key, sharer) === undefined) return previous;
    }
    if (sharer.sharingKey !== undefined) {
      for (const holder of this.byKey.get(sharer.sharingKey) ?? []) {
        if (holder.family === family && holder.sharers.size > 0 && inRanges(pool.ranges, family, holder.value) &&
          holderProblem(holder, key, sharer) === undefined) return holder.value;
      }
    }
    for (const range of pool.ranges) {
      if (range.family !== family) continue;
      let offset = this.cursors.get(range) ?? 0n;
      const size = range.last - range.first + 1n;
      for (; offset < size; offset++) {
        const value = range.first + offset;
        if (pool.avoidBuggyIPs && isBuggyIp(family, value)) continue;
        if (this.holders[family].has(value)) continue;
        this.cursors.set(range, offset);
        return value;
      }
      this.cursors.set(range, size);
    }
    return undefined;
  }

  private take(key: string, sharer: Sharer, held: Held, family: Family, value: bigint): void {
    let holder = this.holders[family].get(value);
    if (!holder) {
      this.holders[family].set(value, (holder = { family, value, sharers: new Map() }));
      if (sharer.sharingKey !== undefined) {
        let set = this.byKey.get(sharer.sharingKey);
        if (!set) this.byKey.set(sharer.sharingKey, (set = new Set()));
        set.add(holder);
      }
    }
    holder.sharers.set(key, sharer);
    held.addresses.set(family, value);
  }

  /** Addresses in use and free, per family, in one pool (what its status shows). */
  usage(pool: ParsedPool): PoolUsage {
    const assigned: Record<Family, bigint> = { ipv4: 0n, ipv6: 0n };
    const total: Record<Family, bigint> = { ipv4: 0n, ipv6: 0n };
    for (const range of pool.ranges) total[range.family] += rangeSize(range, pool.avoidBuggyIPs);
    for (const family of ["ipv4", "ipv6"] as const) {
      if (total[family] === 0n) continue;
      for (const value of this.holders[family].keys()) {
        if (inRanges(pool.ranges, family, value) && !(pool.avoidBuggyIPs && isBuggyIp(family, value))) assigned[family]++;
      }
    }
    const clamp = (n: bigint): number => (n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n < 0n ? 0n : n));
    return {
      assignedIPv4: clamp(assigned.ipv4), availableIPv4: clamp(total.ipv4 - assigned.ipv4),
      assignedIPv6: clamp(assigned.ipv6), availableIPv6: clamp(total.ipv6 - assigned.ipv6),
    };
  }
}
