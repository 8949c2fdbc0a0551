// The repair of rules ConfigMaps left without owner or mount (src/controller/rules-configmap.ts): the pure decision,
// table-tested, and the per-term clock it is fed from.
import { strict as assert } from "node:assert";

import { decideRulesConfigMapRepair, RulesOrphanClock, wantedRulesConfigMap, type CachedRulesConfigMap, type RulesConfigMapRepair } from "../../../src/controller/rules-configmap.js";
import { buildDaemonSet, rulesConfigMapOf } from "../../../src/controller/daemonset.js";
import { parseServiceConfig } from "../../../src/controller/service-config.js";
import { defaultControllerConfig, type V1DaemonSet } from "../../../src/controller/types.js";
import { service } from "./fixtures.js";

const GRACE = 600_000;

function daemonSet(name: string, uid: string | undefined, mounts: string, deleting = false): V1DaemonSet {
  return {
    metadata: { name, ...(uid ? { uid } : {}), ...(deleting ? { deletionTimestamp: new Date("2026-12-07T20:00:00Z") } : {}) },
    spec: { selector: {}, template: { spec: { containers: [], volumes: [{ name: "rules", configMap: { name: mounts } }] } } },
  };
}

function configMap(name: string, options: { owner?: string; deleting?: boolean } = {}): CachedRulesConfigMap {
  return {
    metadata: {
      name, uid: `uid-${name}`, resourceVersion: "5",
      ...(options.owner ? { ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: "svclb-web-3f2a9c1e", uid: options.owner, controller: true }] } : {}),
      ...(options.deleting ? { deletionTimestamp: "2026-12-07T20:00:00Z" } : {}),
    },
  };
}

const live = daemonSet("svclb-web-3f2a9c1e", "ds-1", "svclb-web-3f2a9c1e-aaaaaaaaaa");

describe("controller: repairing rules ConfigMaps left without owner or mount", () => {
  const rows: { name: string; cm: CachedRulesConfigMap; daemonSets: V1DaemonSet[]; wanted?: string; suspectForMs: number; want: RulesConfigMapRepair }[] = [
    {
      name: "owned and mounted (the steady state): nothing, whatever the clock says",
      cm: configMap("svclb-web-3f2a9c1e-aaaaaaaaaa", { owner: "ds-1" }), daemonSets: [live], suspectForMs: GRACE * 10, want: { action: "none" },
    },
    {
      name: "mounted, no owner (died before the owner-reference write), grace not over: wait the rest",
      cm: configMap("svclb-web-3f2a9c1e-aaaaaaaaaa"), daemonSets: [live], suspectForMs: 1000, want: { action: "wait", ms: GRACE - 1000 },
    },
    {
      name: "mounted, no owner, grace over: adopted by the DaemonSet that mounts it",
      cm: configMap("svclb-web-3f2a9c1e-aaaaaaaaaa"), daemonSets: [live], suspectForMs: GRACE,
      want: { action: "adopt", owner: { name: "svclb-web-3f2a9c1e", uid: "ds-1" } },
    },
    {
      name: "no owner, mounted by no DaemonSet, but the one the Service wants (its DaemonSet about to be created): nothing",
      cm: configMap("svclb-web-3f2a9c1e-aaaaaaaaaa"), daemonSets: [], wanted: "svclb-web-3f2a9c1e-aaaaaaaaaa", suspectForMs: GRACE * 10,
      want: { action: "none" },
    },
    {
      name: "no owner, no DaemonSet, the Service is gone (died before the DaemonSet), grace not over: wait",
      cm: configMap("svclb-web-3f2a9c1e-aaaaaaaaaa"), daemonSets: [], suspectForMs: 0, want: { action: "wait", ms: GRACE },
    },
    {
      name: "no owner, no DaemonSet, the Service is gone, grace over: deleted",
      cm: configMap("svclb-web-3f2a9c1e-aaaaaaaaaa"), daemonSets: [], suspectForMs: GRACE, want: { action: "delete" },
    },
    {
      name: "no owner, an old name after a rules change (the DaemonSet mounts the new one), grace over: deleted",
      cm: configMap("svclb-web-3f2a9c1e-bbbbbbbbbb"), daemonSets: [live], wanted: "svclb-web-3f2a9c1e-aaaaaaaaaa", suspectForMs: GRACE,
      want: { action: "delete" },
    },
    {
      name: "owned by the live DaemonSet but not mounted by it (died before deleting the previous one), grace over: deleted",
      cm: configMap("svclb-web-3f2a9c1e-bbbbbbbbbb", { owner: "ds-1" }), daemonSets: [live], wanted: "svclb-web-3f2a9c1e-aaaaaaaaaa",
      suspectForMs: GRACE, want: { action: "delete" },
    },
    {
      name: "owned, not yet mounted, the one the Service wants (a rules change between its ConfigMap and DaemonSet writes): nothing",
      cm: configMap("svclb-web-3f2a9c1e-cccccccccc", { owner: "ds-1" }), daemonSets: [live], wanted: "svclb-web-3f2a9c1e-cccccccccc",
      suspectForMs: GRACE * 10, want: { action: "none" },
    },
    {
      name: "mounted only by a DaemonSet being deleted: not adopted by it, deleted once the grace is over",
      cm: configMap("svclb-web-3f2a9c1e-aaaaaaaaaa"), daemonSets: [daemonSet("svclb-web-3f2a9c1e", "ds-1", "svclb-web-3f2a9c1e-aaaaaaaaaa", true)],
      suspectForMs: GRACE, want: { action: "delete" },
    },
    {
      name: "mounted by a DaemonSet the cache knows no uid of: no owner reference can be written, so it counts as unmounted",
      cm: configMap("svclb-web-3f2a9c1e-aaaaaaaaaa"), daemonSets: [daemonSet("svclb-web-3f2a9c1e", undefined, "svclb-web-3f2a9c1e-aaaaaaaaaa")],
      wanted: "svclb-web-3f2a9c1e-aaaaaaaaaa", suspectForMs: GRACE, want: { action: "none" },
    },
    {
      name: "being deleted: nothing (it is going anyway)",
      cm: configMap("svclb-web-3f2a9c1e-bbbbbbbbbb", { deleting: true }), daemonSets: [], suspectForMs: GRACE * 10, want: { action: "none" },
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      assert.deepEqual(decideRulesConfigMapRepair({ configMap: row.cm, daemonSets: row.daemonSets, wanted: row.wanted, suspectForMs: row.suspectForMs, graceMs: GRACE }), row.want);
    });
  }

  it("the wanted name is the one buildDaemonSet mounts, and none for a Service gone, being deleted, not ours or in VIP mode", () => {
    const config = defaultControllerConfig({ namespace: "berth-system" });
    const svc = service();
    const parsed = parseServiceConfig(svc, config);
    assert.ok(parsed.ok);
    assert.equal(wantedRulesConfigMap(svc, config), rulesConfigMapOf(buildDaemonSet(svc, parsed.value, [], config)));
    assert.equal(wantedRulesConfigMap(undefined, config), undefined);
    assert.equal(wantedRulesConfigMap({ ...svc, metadata: { ...svc.metadata, deletionTimestamp: new Date() } }, config), undefined);
    assert.equal(wantedRulesConfigMap(service({ spec: { type: "ClusterIP" } }), config), undefined);
    assert.equal(wantedRulesConfigMap(service({ annotations: { "berth.dev/mode": "vip" } }), config), undefined);
  });
});

describe("controller: the orphan clock", () => {
  it("counts from this term's first look; a write to the ConfigMap (new resourceVersion) or a fine look starts it over", () => {
    let now = 1000;
    const clock = new RulesOrphanClock(() => now);
    assert.equal(clock.since("default/web", "u1/5"), 0);
    now += 400;
    assert.equal(clock.since("default/web", "u1/5"), 400);
    assert.equal(clock.since("default/web", "u1/6"), 0, "written since: a new wait");
    clock.retain("default/web", new Set(["u1/6"]));
    now += 100;
    assert.equal(clock.since("default/web", "u1/6"), 100);
    clock.retain("default/web", new Set());
    assert.equal(clock.size, 0, "fine again: forgotten");
    assert.equal(clock.since("default/web", "u1/6"), 0);
  });

  it("a resync drops the keys with nothing left to repair, so the clock holds only current suspects", () => {
    const clock = new RulesOrphanClock(() => 0);
    clock.since("default/a", "u1/1");
    clock.since("default/b", "u2/1");
    clock.retainKeys(new Set(["default/b"]));
    assert.equal(clock.size, 1);
  });
});
