// The allocator matrix (src/controller/vip/allocator.ts): pool order, requested addresses, named pools, dual-stack
// by ipFamilyPolicy, sharing, never moving an address in use, rebuilding from status, release.
import { strict as assert } from "node:assert";

import { Allocator, type AllocationResult, type VipService } from "../../../../src/controller/vip/allocator.js";
import { validatePools } from "../../../../src/controller/vip/pools.js";
import type { AddressPoolSpec } from "../../../../src/lib/vip/address-pool.js";

type PoolRow = [name: string, spec: Partial<AddressPoolSpec>];

function pools(...rows: PoolRow[]): ReturnType<typeof validatePools>["serving"] {
  const d = validatePools(rows.map(([name, spec]) => ({ metadata: { name }, spec: { addresses: [], ...spec } })), new Map());
  for (const [name, v] of d.verdicts) assert.ok(v.valid, `${name}: ${v.message}`);
  return d.serving;
}

function svc(key: string, over: Omit<Partial<VipService>, "request"> & { request?: Partial<VipService["request"]> } = {}): VipService {
  const [namespace] = key.split("/") as [string];
  return {
    key, namespace, labels: {}, families: ["ipv4"], familyPolicy: "SingleStack", ports: [{ protocol: "tcp", port: 80 }],
    trafficPolicy: "Cluster", selector: { app: key }, ...over,
    request: { ips: [], ...(over.request ?? {}) },
  };
}

function ok(result: AllocationResult): { pool: string; ips: string[] } {
  assert.ok(result.ok, result.ok ? "" : `${result.failure.code}: ${result.failure.message}`);
  return { pool: result.pool, ips: result.ips };
}

function fails(result: AllocationResult, code: string, message?: RegExp): void {
  assert.equal(result.ok, false, `expected ${code}, got ${JSON.stringify(result)}`);
  if (!result.ok) {
    assert.equal(result.failure.code, code, result.failure.message);
    if (message) assert.match(result.failure.message, message);
  }
}

const v4 = (addresses: string[], extra: Partial<AddressPoolSpec> = {}): Partial<AddressPoolSpec> => ({ addresses, ...extra });

describe("vip allocator: which pool, which address", () => {
  it("takes the lowest free address of the first pool by priority, then name", () => {
    const a = new Allocator(pools(["b", v4(["192.0.2.0/30"])], ["a", v4(["198.51.100.0/30"])], ["z", v4(["203.0.113.0/30"], { priority: -5 })]));
    assert.deepEqual(ok(a.allocate(svc("ns/one"))), { pool: "z", ips: ["203.0.113.0"] });
    assert.deepEqual(ok(a.allocate(svc("ns/two"))), { pool: "z", ips: ["203.0.113.1"] });
  });

  it("moves on to the next pool when one is exhausted, and says which when all are", () => {
    const a = new Allocator(pools(["a", v4(["192.0.2.1-192.0.2.2"])], ["b", v4(["192.0.2.10"])]));
    assert.deepEqual(["1", "2", "3"].map((n) => ok(a.allocate(svc(`ns/s${n}`))).ips[0]), ["192.0.2.1", "192.0.2.2", "192.0.2.10"]);
    fails(a.allocate(svc("ns/s4")), "PoolExhausted", /a \(no free IPv4 address\), b \(no free IPv4 address\).*Add addresses/);
  });

  it("skips .0 and .255 with avoidBuggyIPs", () => {
    const a = new Allocator(pools(["a", v4(["10.0.0.255-10.0.1.1"], { avoidBuggyIPs: true })]));
    assert.deepEqual(ok(a.allocate(svc("ns/x"))).ips, ["10.0.1.1"]);
    fails(a.allocate(svc("ns/y")), "PoolExhausted");
  });

  it("gives nothing from a pool with autoAssign false unless it is named or an address in it is requested", () => {
    const a = new Allocator(pools(["manual", v4(["192.0.2.0/30"], { autoAssign: false })]));
    fails(a.allocate(svc("ns/x")), "NoPoolMatches", /autoAssign: false/);
    assert.deepEqual(ok(a.allocate(svc("ns/y", { request: { pool: "manual" } }))).ips, ["192.0.2.0"]);
    assert.deepEqual(ok(a.allocate(svc("ns/z", { request: { ips: ["192.0.2.3"] } }))).ips, ["192.0.2.3"]);
  });

  it("takes only from the named pool, and says when it does not exist", () => {
    const a = new Allocator(pools(["a", v4(["192.0.2.0/30"])], ["b", v4(["198.51.100.0/30"])]));
    assert.deepEqual(ok(a.allocate(svc("ns/x", { request: { pool: "b" } }))), { pool: "b", ips: ["198.51.100.0"] });
    fails(a.allocate(svc("ns/y", { request: { pool: "c" } })), "PoolNotFound", /pool c.*name one of: a, b/);
  });

  it("says there is no pool at all", () => {
    fails(new Allocator([]).allocate(svc("ns/x")), "NoAddressPools", /no valid AddressPool/);
  });

  it("honours serviceAllocation: namespaces, namespace selectors, service selectors", () => {
    const a = new Allocator(pools(
      ["for-prod", v4(["192.0.2.0/30"], { serviceAllocation: { namespaces: ["prod"] } })],
      ["for-team", v4(["198.51.100.0/30"], { serviceAllocation: { namespaceSelectors: [{ matchLabels: { team: "blue" } }] } })],
      ["for-web", v4(["203.0.113.0/30"], { serviceAllocation: { serviceSelectors: [{ matchExpressions: [{ key: "tier", operator: "In", values: ["web"] }] }] } })],
    ));
    assert.equal(ok(a.allocate(svc("prod/x"))).pool, "for-prod");
    assert.equal(ok(a.allocate(svc("dev/x", { namespaceLabels: { team: "blue" } }))).pool, "for-team");
    assert.equal(ok(a.allocate(svc("dev/y", { labels: { tier: "web" } }))).pool, "for-web");
    fails(a.allocate(svc("dev/z")), "NoPoolMatches",
      /for-prod \(only for namespaces prod\), for-team \(namespace dev's labels match none.*\), for-web \(the Service's labels match none/);
  });
});

describe("vip allocator: requested addresses", () => {
  const both = (): Allocator => new Allocator(pools(["a", v4(["192.0.2.0/28", "fd00::/120"])]));

  it("gives the requested address, from whichever pool holds it", () => {
    const a = new Allocator(pools(["a", v4(["192.0.2.0/28"])], ["b", v4(["198.51.100.0/28"])]));
    assert.deepEqual(ok(a.allocate(svc("ns/x", { request: { ips: ["198.51.100.7"] } }))), { pool: "b", ips: ["198.51.100.7"] });
  });

  it("refuses an address outside every pool, or outside the named pool", () => {
    const a = new Allocator(pools(["a", v4(["192.0.2.0/28"])], ["b", v4(["198.51.100.0/28"])]));
    fails(a.allocate(svc("ns/x", { request: { ips: ["203.0.113.1"] } })), "AddressOutsidePools", /203.0.113.1 is not in any valid AddressPool/);
    fails(a.allocate(svc("ns/x", { request: { ips: ["198.51.100.1"], pool: "a" } })), "AddressOutsidePools", /not in pool a/);
  });

  it("refuses an address another Service holds, naming it", () => {
    const a = both();
    ok(a.allocate(svc("ns/first", { request: { ips: ["192.0.2.5"] } })));
    fails(a.allocate(svc("ns/second", { request: { ips: ["192.0.2.5"] } })), "AddressTaken", /192.0.2.5 is taken: ns\/first holds it/);
    // And the next automatic allocation steps around it.
    ok(a.allocate(svc("ns/auto1")));
    const auto = [1, 2, 3, 4, 5].map((i) => ok(a.allocate(svc(`ns/n${i}`))).ips[0]);
    assert.ok(!auto.includes("192.0.2.5"), auto.join(","));
  });

  it("refuses an address of a family the Service does not have", () => {
    fails(both().allocate(svc("ns/x", { request: { ips: ["fd00::5"] } })), "FamilyMismatch", /IPv6 address.*families are IPv4/);
  });
});

describe("vip allocator: families", () => {
  const both = (): Allocator => new Allocator(pools(["only4", v4(["192.0.2.0/28"], { priority: -1 })], ["dual", v4(["198.51.100.0/28", "fd00::/120"])]));

  it("SingleStack takes the first family of spec.ipFamilies", () => {
    assert.deepEqual(ok(both().allocate(svc("ns/x", { families: ["ipv6", "ipv4"] }))), { pool: "dual", ips: ["fd00::"] });
  });

  it("RequireDualStack skips a pool without both families, and fails when none has them", () => {
    assert.deepEqual(ok(both().allocate(svc("ns/x", { families: ["ipv4", "ipv6"], familyPolicy: "RequireDualStack" }))),
      { pool: "dual", ips: ["198.51.100.0", "fd00::"] });
    const a = new Allocator(pools(["only4", v4(["192.0.2.0/28"])]));
    fails(a.allocate(svc("ns/x", { families: ["ipv4", "ipv6"], familyPolicy: "RequireDualStack" })), "PoolExhausted", /only4 \(has no IPv6 addresses\)/);
  });

  it("PreferDualStack takes both where the first pool has both, one where it has one", () => {
    assert.deepEqual(ok(both().allocate(svc("ns/x", { families: ["ipv4", "ipv6"], familyPolicy: "PreferDualStack" }))),
      { pool: "only4", ips: ["192.0.2.0"] });
    const a = new Allocator(pools(["dual", v4(["198.51.100.0/28", "fd00::/120"])]));
    assert.deepEqual(ok(a.allocate(svc("ns/x", { families: ["ipv4", "ipv6"], familyPolicy: "PreferDualStack" }))).ips, ["198.51.100.0", "fd00::"]);
  });

  it("PreferDualStack takes the family left when the other is exhausted", () => {
    const a = new Allocator(pools(["dual", v4(["198.51.100.1", "fd00::/120"])]));
    ok(a.allocate(svc("ns/holder")));
    assert.deepEqual(ok(a.allocate(svc("ns/x", { families: ["ipv4", "ipv6"], familyPolicy: "PreferDualStack" }))).ips, ["fd00::"]);
  });

  it("dual-stack with requested addresses of both families", () => {
    assert.deepEqual(ok(both().allocate(svc("ns/x", { families: ["ipv4", "ipv6"], familyPolicy: "RequireDualStack", request: { ips: ["198.51.100.9", "fd00::9"] } }))),
      { pool: "dual", ips: ["198.51.100.9", "fd00::9"] });
  });
});

describe("vip allocator: sharing", () => {
  const one = (): Allocator => new Allocator(pools(["a", v4(["192.0.2.1-192.0.2.2"])]));
  const web = (key: string, port: number, over: Partial<VipService> = {}, sharingKey = "k"): VipService =>
    svc(key, { ports: [{ protocol: "tcp", port }], ...over, request: { ips: [], sharingKey } });

  it("shares one address between Services with the same key and disjoint ports", () => {
    const a = one();
    assert.deepEqual(ok(a.allocate(web("ns/http", 80))).ips, ["192.0.2.1"]);
    assert.deepEqual(ok(a.allocate(web("ns/https", 443))).ips, ["192.0.2.1"]);
    assert.deepEqual(ok(a.allocate(svc("ns/other"))).ips, ["192.0.2.2"]);
    assert.equal(a.usage(pools(["a", v4(["192.0.2.1-192.0.2.2"])])[0] as never).assignedIPv4, 2);
  });

  it("does not share across keys, across a port clash, across traffic policies, or across selectors under Local", () => {
    const rows: { name: string; second: VipService }[] = [
      { name: "another key", second: web("ns/b", 443, {}, "other") },
      { name: "the same port", second: web("ns/b", 80) },
      { name: "another traffic policy", second: web("ns/b", 443, { trafficPolicy: "Local" }) },
    ];
    for (const row of rows) {
      const a = one();
      ok(a.allocate(web("ns/a", 80)));
      assert.deepEqual(ok(a.allocate(row.second)).ips, ["192.0.2.2"], row.name);
    }
    const a = one();
    ok(a.allocate(web("ns/a", 80, { trafficPolicy: "Local", selector: { app: "x" } })));
    assert.deepEqual(ok(a.allocate(web("ns/b", 443, { trafficPolicy: "Local", selector: { app: "y" } }))).ips, ["192.0.2.2"]);
    assert.deepEqual(ok(a.allocate(web("ns/c", 8080, { trafficPolicy: "Local", selector: { app: "x" } }))).ips, ["192.0.2.1"]);
  });

  it("is a SharingConflict when the requested shared address cannot be shared", () => {
    const a = one();
    ok(a.allocate(web("ns/a", 80)));
    fails(a.allocate(svc("ns/b", { ports: [{ protocol: "tcp", port: 80 }], request: { ips: ["192.0.2.1"], sharingKey: "k" } })),
      "SharingConflict", /ns\/a shares it and uses the same port tcp\/80/);
    // UDP 80 is another port.
    assert.deepEqual(ok(a.allocate(svc("ns/c", { ports: [{ protocol: "udp", port: 80 }], request: { ips: ["192.0.2.1"], sharingKey: "k" } }))).ips, ["192.0.2.1"]);
  });

  it("frees a shared address only when its last sharer leaves", () => {
    const a = one();
    ok(a.allocate(web("ns/a", 80)));
    ok(a.allocate(web("ns/b", 443)));
    ok(a.allocate(svc("ns/x")));
    a.release("ns/a");
    fails(a.allocate(svc("ns/y")), "PoolExhausted");
    a.release("ns/b");
    assert.deepEqual(ok(a.allocate(svc("ns/y"))).ips, ["192.0.2.1"]);
  });
});

describe("vip allocator: never moves an address in use", () => {
  it("keeps a Service's address on every later allocate, however the pools change", () => {
    const a = new Allocator(pools(["a", v4(["192.0.2.0/28"])]));
    ok(a.allocate(svc("ns/x")));
    const held = ok(a.allocate(svc("ns/y"))).ips;
    a.setPools(pools(["a", v4(["198.51.100.0/28"])], ["b", v4(["192.0.2.0/30"], { priority: -1 })]));
    const again = a.allocate(svc("ns/y"));
    assert.deepEqual(ok(again), { pool: "a", ips: held });
    assert.ok(again.ok && !again.changed);
    // The pool edit left 192.0.2.1 outside pool a: kept, and reported.
    a.setPools(pools(["a", v4(["198.51.100.0/28"])]));
    const orphan = a.allocate(svc("ns/y"));
    assert.ok(orphan.ok);
    assert.deepEqual(orphan.outsidePools, ["192.0.2.1"]);
    // A new Service never gets it.
    assert.deepEqual(ok(a.allocate(svc("ns/z"))).ips, ["198.51.100.0"]);
  });

  it("re-allocates only when the Service's own request changes, preferring what it had", () => {
    const a = new Allocator(pools(["a", v4(["192.0.2.0/28"])], ["b", v4(["198.51.100.0/28"])]));
    assert.deepEqual(ok(a.allocate(svc("ns/x"))).ips, ["192.0.2.0"]);
    const moved = a.allocate(svc("ns/x", { request: { pool: "b" } }));
    assert.deepEqual(ok(moved), { pool: "b", ips: ["198.51.100.0"] });
    assert.ok(moved.ok && moved.changed);
    // The old address is free again.
    assert.deepEqual(ok(a.allocate(svc("ns/y"))).ips, ["192.0.2.0"]);
    // Asking for another address in the same pool moves it there.
    assert.deepEqual(ok(a.allocate(svc("ns/x", { request: { ips: ["198.51.100.9"] } }))).ips, ["198.51.100.9"]);
  });

  it("keeps what a Service had when its changed request cannot be met", () => {
    const a = new Allocator(pools(["a", v4(["192.0.2.0/30"])]));
    ok(a.allocate(svc("ns/x")));
    fails(a.allocate(svc("ns/x", { request: { pool: "nope" } })), "PoolNotFound");
    assert.deepEqual(a.heldBy("ns/x"), { pool: "a", ips: ["192.0.2.0"] });
  });

  it("adds the second family to a PreferDualStack Service without moving the first", () => {
    const a = new Allocator(pools(["a", v4(["192.0.2.0/30"])]));
    ok(a.allocate(svc("ns/filler")));
    const dual = svc("ns/x", { families: ["ipv4", "ipv6"], familyPolicy: "PreferDualStack" });
    assert.deepEqual(ok(a.allocate(dual)).ips, ["192.0.2.1"]);
    a.setPools(pools(["a", v4(["192.0.2.0/30", "fd00::/126"])]));
    assert.deepEqual(ok(a.allocate(dual)).ips, ["192.0.2.1", "fd00::"]);
  });
});

describe("vip allocator: state rebuilt from status, and released", () => {
  it("a new allocator restored from status never hands out an address in use (restart, new leader)", () => {
    const p = pools(["a", v4(["192.0.2.0/30"])]);
    const first = new Allocator(p);
    const given = ["ns/a", "ns/b"].map((key) => ({ key, ...ok(first.allocate(svc(key))) }));
    const second = new Allocator(p);
    for (const g of given) assert.deepEqual(second.restore(svc(g.key), g.ips, g.pool).conflicts, []);
    assert.deepEqual(ok(second.allocate(svc("ns/c"))).ips, ["192.0.2.2"]);
    assert.deepEqual(ok(second.allocate(svc("ns/b"))).ips, ["192.0.2.1"]);
  });

  it("refuses to restore an address another Service holds, naming the holder", () => {
    const a = new Allocator(pools(["a", v4(["192.0.2.0/30"])]));
    assert.deepEqual(a.restore(svc("ns/a"), ["192.0.2.1"], "a").conflicts, []);
    assert.deepEqual(a.restore(svc("ns/b"), ["192.0.2.1"], "a").conflicts, [{ ip: "192.0.2.1", holder: "ns/a" }]);
    assert.deepEqual(ok(a.allocate(svc("ns/b"))).ips, ["192.0.2.0"]);
  });

  it("restores shared addresses for every sharer", () => {
    const a = new Allocator(pools(["a", v4(["192.0.2.0/31"])]));
    const s = (key: string, port: number): VipService => svc(key, { ports: [{ protocol: "tcp", port }], request: { ips: [], sharingKey: "k" } });
    assert.deepEqual(a.restore(s("ns/a", 80), ["192.0.2.0"], "a").conflicts, []);
    assert.deepEqual(a.restore(s("ns/b", 443), ["192.0.2.0"], "a").conflicts, []);
    assert.deepEqual(ok(a.allocate(svc("ns/c"))).ips, ["192.0.2.1"]);
  });

  it("release frees the address for the next Service, and usage counts follow", () => {
    const p = pools(["a", v4(["192.0.2.0/30", "fd00::/127"])]);
    const a = new Allocator(p);
    ok(a.allocate(svc("ns/a")));
    ok(a.allocate(svc("ns/b", { families: ["ipv6"] })));
    assert.deepEqual(a.usage(p[0] as never), { assignedIPv4: 1, availableIPv4: 3, assignedIPv6: 1, availableIPv6: 1 });
    assert.equal(a.release("ns/a"), true);
    assert.equal(a.release("ns/a"), false);
    assert.deepEqual(a.usage(p[0] as never), { assignedIPv4: 0, availableIPv4: 4, assignedIPv6: 1, availableIPv6: 1 });
    assert.deepEqual(ok(a.allocate(svc("ns/c"))).ips, ["192.0.2.0"]);
  });

  it("saturates IPv6 counts of a huge pool", () => {
    const p = pools(["a", v4(["fd00::/64"])]);
    assert.equal(new Allocator(p).usage(p[0] as never).availableIPv6, Number.MAX_SAFE_INTEGER);
  });
});
