// AddressPool parsing and validation (src/controller/vip/pools.ts): ranges of both families, malformed specs,
// overlaps within and between pools, and the last valid spec serving while a pool is Invalid.
import { strict as assert } from "node:assert";

import {
  bigIntToIp, ipToBigInt, parsePool, parseRange, rangeSize, validatePools, type ParsedPool,
} from "../../../../src/controller/vip/pools.js";
import type { AddressPool, AddressPoolSpec } from "../../../../src/lib/vip/address-pool.js";

function pool(name: string, spec: Partial<AddressPoolSpec> & { addresses?: unknown }, extra: { generation?: number; created?: string } = {}): AddressPool {
  return {
    metadata: { name, ...(extra.generation !== undefined ? { generation: extra.generation } : {}), ...(extra.created ? { creationTimestamp: extra.created } : {}) } as never,
    spec: spec as AddressPoolSpec,
  };
}

describe("vip pools: ranges", () => {
  const rows: { text: string; first?: string; last?: string; size?: bigint; error?: RegExp }[] = [
    { text: "192.168.1.240/28", first: "192.168.1.240", last: "192.168.1.255", size: 16n },
    { text: "192.168.1.243/28", first: "192.168.1.240", last: "192.168.1.255", size: 16n },
    { text: "10.0.0.5", first: "10.0.0.5", last: "10.0.0.5", size: 1n },
    { text: "10.0.0.10-10.0.0.20", first: "10.0.0.10", last: "10.0.0.20", size: 11n },
    { text: "10.0.0.10 - 10.0.0.10", first: "10.0.0.10", last: "10.0.0.10", size: 1n },
    { text: "fd00::/120", first: "fd00::", last: "fd00::ff", size: 256n },
    { text: "2001:db8::1-2001:db8::1:0", first: "2001:db8::1", last: "2001:db8::1:0", size: 65536n },
    { text: "fd00::/0", first: "::", last: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", size: 1n << 128n },
    { text: "10.0.0.20-10.0.0.10", error: /ends before it starts/ },
    { text: "10.0.0.1-fd00::1", error: /mixes an IPv4 and an IPv6/ },
    { text: "10.0.0.300/24", error: /not a valid/ },
    { text: "10.0.0.0/33", error: /prefix length/ },
    { text: "010.0.0.1/32", error: /leading zero/ },
    { text: "::ffff:10.0.0.1/128", error: /IPv4-mapped/ },
    { text: "pool-a", error: /not a valid/ },
  ];
  for (const row of rows) {
    it(`${row.text} -> ${row.error ? `error ${row.error}` : `${row.first}..${row.last}`}`, () => {
      if (row.error) {
        assert.throws(() => parseRange(row.text), row.error);
        return;
      }
      const range = parseRange(row.text);
      assert.equal(bigIntToIp(range.family, range.first), row.first);
      assert.equal(bigIntToIp(range.family, range.last), row.last);
      assert.equal(range.last - range.first + 1n, row.size);
    });
  }

  it("writes addresses back canonically (RFC 5952 for IPv6)", () => {
    for (const ip of ["0.0.0.0", "255.255.255.255", "192.0.2.1", "::", "::1", "fd00::", "2001:db8::1:0:0:1", "2001:0:0:1::1", "1:2:3:4:5:6:7:8", "fe80::1:0:0:0"]) {
      const { family, value } = ipToBigInt(ip);
      assert.equal(bigIntToIp(family, value), ip);
    }
  });

  it("leaves .0 and .255 out of the size with avoidBuggyIPs (IPv4 only)", () => {
    assert.equal(rangeSize(parseRange("10.0.0.0/24"), true), 254n);
    assert.equal(rangeSize(parseRange("10.0.0.0/23"), true), 508n);
    assert.equal(rangeSize(parseRange("10.0.0.250-10.0.1.5"), true), 10n);
    assert.equal(rangeSize(parseRange("10.0.0.1-10.0.0.254"), true), 254n);
    assert.equal(rangeSize(parseRange("fd00::/120"), true), 256n);
  });
});

describe("vip pools: one pool", () => {
  const rows: { name: string; pool: AddressPool; error?: RegExp; check?: (p: ParsedPool) => void }[] = [
    {
      name: "defaults autoAssign true, avoidBuggyIPs false, priority 0; sorts ranges IPv4 first",
      pool: pool("lan", { addresses: ["fd00::/126", "192.0.2.64/30", "192.0.2.8-192.0.2.9"] }),
      check: (p) => {
        assert.deepEqual([p.autoAssign, p.avoidBuggyIPs, p.priority], [true, false, 0]);
        assert.deepEqual(p.ranges.map((r) => r.text), ["192.0.2.8-192.0.2.9", "192.0.2.64/30", "fd00::/126"]);
      },
    },
    { name: "an empty address list", pool: pool("lan", { addresses: [] }), error: /spec.addresses is empty/ },
    { name: "no spec", pool: { metadata: { name: "lan" } }, error: /spec.addresses is empty/ },
    { name: "a malformed entry, named by index", pool: pool("lan", { addresses: ["192.0.2.0/28", "192.0.2.x"] }), error: /spec.addresses\[1\]: .*192.0.2.x/ },
    { name: "a non-string entry", pool: pool("lan", { addresses: [5] as unknown as string[] }), error: /spec.addresses\[0\] is not a string/ },
    { name: "two of its own ranges overlapping", pool: pool("lan", { addresses: ["192.0.2.0/28", "192.0.2.10-192.0.2.20"] }), error: /"192.0.2.0\/28" and "192.0.2.10-192.0.2.20" overlap/ },
    { name: "a fractional priority", pool: pool("lan", { addresses: ["192.0.2.0/28"], priority: 1.5 }), error: /spec.priority 1.5/ },
    {
      name: "a selector with a bad operator",
      pool: pool("lan", { addresses: ["192.0.2.0/28"], serviceAllocation: { serviceSelectors: [{ matchExpressions: [{ key: "a", operator: "Equals" }] }] } }),
      error: /serviceSelectors\[0\].matchExpressions\[0\].operator "Equals"/,
    },
    { name: "a name that is not a DNS subdomain", pool: pool("Lan_1", { addresses: ["192.0.2.0/28"] }), error: /metadata.name "Lan_1"/ },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const parsed = parsePool(row.pool);
      if (row.error) {
        assert.equal(parsed.ok, false);
        if (!parsed.ok) assert.match(parsed.message, row.error);
        return;
      }
      assert.ok(parsed.ok, parsed.ok ? "" : parsed.message);
      row.check?.(parsed.pool);
    });
  }
});

describe("vip pools: every pool together", () => {
  const a = pool("a", { addresses: ["192.0.2.0/28"] }, { created: "2026-01-01T00:00:00Z", generation: 1 });
  const b = pool("b", { addresses: ["192.0.2.16/28"], priority: -1 }, { created: "2026-01-02T00:00:00Z", generation: 1 });
  const bOverlapping = pool("b", { addresses: ["192.0.2.8/29"], priority: -1 }, { created: "2026-01-02T00:00:00Z", generation: 2 });
  const bBroken = pool("b", { addresses: ["192.0.2.16/288"], priority: -1 }, { created: "2026-01-02T00:00:00Z", generation: 3 });

  it("serves valid pools by priority, then name", () => {
    const d = validatePools([a, b, pool("c", { addresses: ["fd00::/120"] })], new Map());
    assert.deepEqual(d.serving.map((p) => p.name), ["b", "a", "c"]);
    assert.deepEqual([...d.verdicts.values()].map((v) => v.reason), ["Valid", "Valid", "Valid"]);
    assert.deepEqual([...d.lastValid.keys()].sort(), ["a", "b", "c"]);
  });

  it("marks the newer of two overlapping new pools Invalid, naming both ranges", () => {
    const d = validatePools([bOverlapping, a], new Map());
    assert.deepEqual(d.serving.map((p) => p.name), ["a"]);
    assert.equal(d.verdicts.get("b")?.reason, "Overlap");
    assert.match(d.verdicts.get("b")?.message ?? "", /"192.0.2.8\/29" overlaps "192.0.2.0\/28" of pool a.*No address of this pool is handed out/);
  });

  it("keeps an already valid pool valid when an older pool is edited to overlap it; the edit is refused and the last valid spec serves", () => {
    const first = validatePools([a, b], new Map());
    // Now a (created first) is edited into b's range: b is the incumbent.
    const aEdited = pool("a", { addresses: ["192.0.2.0/27"] }, { created: "2026-01-01T00:00:00Z", generation: 2 });
    const d = validatePools([aEdited, b], first.lastValid);
    assert.equal(d.verdicts.get("b")?.valid, true);
    assert.equal(d.verdicts.get("a")?.reason, "Overlap");
    assert.match(d.verdicts.get("a")?.message ?? "", /last valid spec \(generation 1\) keeps serving/);
    assert.deepEqual(d.serving.map((p) => [p.name, p.ranges.map((r) => r.text)]), [["b", ["192.0.2.16/28"]], ["a", ["192.0.2.0/28"]]]);
  });

  it("keeps serving a malformed pool's last valid spec, and forgets it once the pool is fixed", () => {
    const first = validatePools([a, b], new Map());
    const broken = validatePools([a, bBroken], first.lastValid);
    assert.equal(broken.verdicts.get("b")?.reason, "Malformed");
    assert.match(broken.verdicts.get("b")?.message ?? "", /spec.addresses\[0\].*prefix length.*keeps serving/);
    assert.deepEqual(broken.serving.map((p) => p.name), ["b", "a"]);
    const fixed = validatePools([a, pool("b", { addresses: ["192.0.2.32/28"] }, { generation: 4 })], broken.lastValid);
    assert.equal(fixed.verdicts.get("b")?.valid, true);
    assert.deepEqual(fixed.serving.find((p) => p.name === "b")?.ranges.map((r) => r.text), ["192.0.2.32/28"]);
  });

  it("forgets a deleted pool", () => {
    const first = validatePools([a, b], new Map());
    const d = validatePools([a], first.lastValid);
    assert.deepEqual([...d.lastValid.keys()], ["a"]);
  });

  it("does not treat IPv4 and IPv6 ranges as overlapping", () => {
    const d = validatePools([pool("v4", { addresses: ["0.0.0.0/0"] }), pool("v6", { addresses: ["::/0"] })], new Map());
    assert.deepEqual(d.serving.map((p) => p.name), ["v4", "v6"]);
  });
});
