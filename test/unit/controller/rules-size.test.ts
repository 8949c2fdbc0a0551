// The rules ConfigMap's size limit, checked before anything is applied (src/controller/daemonset.ts
// configMapDataBytes / rulesTooLargeMessage), and the condition and Event it leads to (conditions.ts). The limit and
// the way it is counted mirror kube-apiserver's ValidateConfigMap (pkg/apis/core/validation/validation.go): data's
// and binaryData's values, in bytes, at most core.MaxSecretSize.
import { strict as assert } from "node:assert";
import { decideConditions } from "../../../src/controller/conditions.js";
import {
  buildDaemonSet, CONFIGMAP_MAX_BYTES, configMapDataBytes, lbPodRulesBundle, rulesBytesFor, rulesTooLargeMessage,
} from "../../../src/controller/daemonset.js";
import { ownership, parseServiceConfig } from "../../../src/controller/service-config.js";
import { defaultControllerConfig, type V1Service } from "../../../src/controller/types.js";
import { CONDITION_REASONS, CONDITION_TYPES, EVENT_REASONS } from "../../../src/lib/names.js";
import { node, service } from "./fixtures.js";

const config = defaultControllerConfig({ namespace: "berth-system", lbPodImage: "berth:test" });

/** A dual-stack Local Service with `n` TCP ports (the largest bundle per port). */
function dualStackLocal(n: number): V1Service {
  return service({
    spec: {
      externalTrafficPolicy: "Local", ipFamilies: ["IPv4", "IPv6"], ipFamilyPolicy: "RequireDualStack",
      clusterIPs: ["10.43.0.10", "fd00:43::10"],
      ports: Array.from({ length: n }, (_, i) => ({ name: `p${i}`, protocol: "TCP", port: 1000 + i, targetPort: 1000 + i as never, nodePort: 30000 + i })),
    },
  });
}

describe("controller: the rules ConfigMap size limit", () => {
  const rows: { name: string; data: Record<string, string>; binaryData?: Record<string, string>; bytes: number }[] = [
    { name: "nothing", data: {}, bytes: 0 },
    { name: "values count, keys do not", data: { "a-long-key-name": "abc", b: "" }, bytes: 3 },
    { name: "UTF-8 bytes, not UTF-16 code units", data: { k: "é€" }, bytes: 5 },
    { name: "binaryData decoded from base64", data: { k: "x" }, binaryData: { b: Buffer.from("0123456789").toString("base64") }, bytes: 11 },
  ];
  for (const row of rows) {
    it(`counts as kube-apiserver does: ${row.name}`, () => {
      assert.equal(configMapDataBytes(row.data, row.binaryData), row.bytes);
    });
  }

  it("the limit is core.MaxSecretSize, inclusive", () => {
    const cfg = { ports: [], externalTrafficPolicy: "Cluster" as const, families: ["ipv4" as const] };
    assert.equal(CONFIGMAP_MAX_BYTES, 1_048_576);
    assert.equal(rulesTooLargeMessage(CONFIGMAP_MAX_BYTES, cfg), undefined);
    assert.match(rulesTooLargeMessage(CONFIGMAP_MAX_BYTES + 1, cfg) ?? "", /1,048,577 bytes, more than the 1,048,576 bytes a ConfigMap may hold/);
  });

  it("a dual-stack Local Service with 100 ports fits; with 400 it does not, and the message says how many fit and what to change", () => {
    for (const [ports, fits] of [[100, true], [400, false]] as const) {
      const parsed = parseServiceConfig(dualStackLocal(ports), config);
      assert.ok(parsed.ok);
      const ds = buildDaemonSet(dualStackLocal(ports), parsed.value, [node("a")], config);
      const bytes = rulesBytesFor(ds.metadata?.name as string, parsed.value);
      assert.equal(bytes, configMapDataBytes(lbPodRulesBundle(parsed.value)), "the cached size is the bundle's");
      const message = rulesTooLargeMessage(bytes, parsed.value);
      assert.equal(message === undefined, fits, `${ports} ports: ${bytes} bytes`);
      if (!fits) {
        assert.match(message ?? "", /this Service's 400 ports are [\d,]+ bytes/);
        assert.match(message ?? "", /About \d+ ports fit: split the ports over several Services, or use externalTrafficPolicy: Cluster or a single IP family/);
      }
    }
  });

  it("Ready=False RulesTooLarge with one Warning Event on entry, none when only the size changes, none on resync", () => {
    const svc = dualStackLocal(400);
    const parsed = parseServiceConfig(svc, config);
    const now = new Date("2026-12-07T12:00:00Z");
    const first = decideConditions({ service: svc, now, ownership: ownership(svc, config), config: parsed, nodes: [node("a")], rulesTooLarge: "big: 2,000,000 bytes" });
    assert.deepEqual(first.conditions.map((c) => [c.type, c.status, c.reason, c.message]),
      [[CONDITION_TYPES.ready, "False", CONDITION_REASONS.rulesTooLarge, "big: 2,000,000 bytes"]]);
    assert.deepEqual(first.events, [{ type: "Warning", reason: EVENT_REASONS.rulesTooLarge, message: "big: 2,000,000 bytes" }]);
    const after = { ...svc, status: { conditions: first.conditions } };
    const same = decideConditions({ service: after, now, ownership: ownership(after, config), config: parsed, nodes: [node("a")], rulesTooLarge: "big: 2,000,000 bytes" });
    assert.equal(same.conditionsChanged, false);
    assert.deepEqual(same.events, []);
    const resized = decideConditions({ service: after, now, ownership: ownership(after, config), config: parsed, nodes: [node("a")], rulesTooLarge: "big: 2,100,000 bytes" });
    assert.equal(resized.conditionsChanged, true);
    assert.deepEqual(resized.events, []);
  });
});
