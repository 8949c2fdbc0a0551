// PATCH over HTTP: content-type dispatch, the four patch types, server-side apply's fieldManager rules, /status.
import assert from "node:assert/strict";
import { CM, configMap, useServer } from "./apiserver-client.js";

const SVC = "/api/v1/namespaces/default/services";
const DS = "/apis/apps/v1/namespaces/default/daemonsets";

function daemonSet(containers: Record<string, unknown>[]): Record<string, unknown> {
  return {
    apiVersion: "apps/v1", kind: "DaemonSet", metadata: { name: "d" },
    spec: { selector: { matchLabels: { a: "b" } }, template: { metadata: { labels: { a: "b" } }, spec: { containers } } },
  };
}

describe("sandbox apiserver: patch", () => {
  const { client } = useServer();

  it("applies a JSON patch (application/json-patch+json)", async () => {
    await client().post(CM, configMap("a", {}, { k: "v" }));
    const r = await client().patch(`${CM}/a`, "application/json-patch+json", [{ op: "replace", path: "/data/k", value: "w" }]);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data, { k: "w" });
  });

  it("answers 422 to a JSON patch whose test operation fails", async () => {
    await client().post(CM, configMap("a", {}, { k: "v" }));
    const r = await client().patch(`${CM}/a`, "application/json-patch+json", [{ op: "test", path: "/data/k", value: "nope" }]);
    assert.equal(r.status, 422, r.text);
  });

  it("applies a merge patch, null deleting a key", async () => {
    await client().post(CM, configMap("a", { x: "1", y: "2" }));
    const r = await client().patch(`${CM}/a`, "application/merge-patch+json", { metadata: { labels: { x: null, z: "3" } } });
    assert.deepEqual(r.body.metadata.labels, { y: "2", z: "3" });
  });

  it("merges containers by name in a strategic merge patch", async () => {
    await client().post(DS, daemonSet([{ name: "a", image: "a:1" }, { name: "b", image: "b:1" }]));
    const r = await client().patch(`${DS}/d`, "application/strategic-merge-patch+json",
      { spec: { template: { spec: { containers: [{ name: "b", image: "b:2" }] } } } });
    assert.equal(r.status, 200, r.text);
    const images = (r.body.spec.template.spec.containers as { name: string; image: string }[]).map((c) => `${c.name}=${c.image}`);
    assert.deepEqual(images, ["a=a:1", "b=b:2"]);
    assert.equal(r.body.metadata.generation, 2);
  });

  it("cordons and uncordons a node with strategic merge patches, as kubectl does", async () => {
    await client().post("/api/v1/nodes", { metadata: { name: "n1" } });
    const on = await client().patch("/api/v1/nodes/n1", "application/strategic-merge-patch+json", { spec: { unschedulable: true } });
    assert.equal(on.status, 200, on.text);
    assert.equal(on.body.spec.unschedulable, true);
    const off = await client().patch("/api/v1/nodes/n1", "application/strategic-merge-patch+json", { spec: { unschedulable: null } });
    assert.equal(off.status, 200, off.text);
    assert.equal(off.body.spec.unschedulable, undefined);
  });

  it("answers 415 to an unknown patch content type", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().patch(`${CM}/a`, "application/json", { data: {} });
    assert.equal(r.status, 415);
    assert.equal(r.body.reason, "UnsupportedMediaType");
  });

  it("answers 404 to a merge patch of a missing object", async () => {
    const r = await client().patch(`${CM}/nope`, "application/merge-patch+json", { data: {} });
    assert.equal(r.status, 404);
  });

  it("answers 409 when a patch carries a stale resourceVersion", async () => {
    const c = await client().post(CM, configMap("a"));
    await client().patch(`${CM}/a`, "application/merge-patch+json", { data: { k: "1" } });
    const r = await client().patch(`${CM}/a`, "application/merge-patch+json",
      { metadata: { resourceVersion: c.body.metadata.resourceVersion }, data: { k: "2" } });
    assert.equal(r.status, 409);
  });

  it("creates with server-side apply (201) and records the manager as an Apply entry", async () => {
    const r = await client().req("PATCH", `${CM}/a?fieldManager=tester`, JSON.stringify(configMap("a", {}, { k: "v" })),
      { "Content-Type": "application/apply-patch+yaml" });
    assert.equal(r.status, 201, r.text);
    const mf = (r.body.metadata.managedFields as { manager: string; operation: string }[]);
    assert.ok(mf.some((m) => m.manager === "tester" && m.operation === "Apply"));
  });

  it("accepts a YAML apply body", async () => {
    const yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n";
    const r = await client().req("PATCH", `${CM}/a?fieldManager=tester`, yaml, { "Content-Type": "application/apply-patch+yaml" });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body.data, { k: "v" });
  });

  it("removes a field a manager stopped applying on its second apply", async () => {
    const apply = (data: Record<string, string>): Promise<{ status: number; body: { data: Record<string, string> } }> =>
      client().req("PATCH", `${CM}/a?fieldManager=tester`, JSON.stringify(configMap("a", {}, data)), { "Content-Type": "application/apply-patch+yaml" });
    await apply({ k: "v", old: "x" });
    const r = await apply({ k: "v" });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.data, { k: "v" });
  });

  it("answers 409 to an apply that conflicts with another manager, and takes the field with force=true", async () => {
    const body = (v: string): string => JSON.stringify(configMap("a", {}, { k: v }));
    await client().req("PATCH", `${CM}/a?fieldManager=one`, body("1"), { "Content-Type": "application/apply-patch+yaml" });
    const conflict = await client().req("PATCH", `${CM}/a?fieldManager=two`, body("2"), { "Content-Type": "application/apply-patch+yaml" });
    assert.equal(conflict.status, 409, conflict.text);
    const forced = await client().req("PATCH", `${CM}/a?fieldManager=two&force=true`, body("2"), { "Content-Type": "application/apply-patch+yaml" });
    assert.equal(forced.status, 200, forced.text);
    assert.equal(forced.body.data.k, "2");
  });

  it("answers 422 to an apply without fieldManager", async () => {
    const r = await client().req("PATCH", `${CM}/a`, JSON.stringify(configMap("a")), { "Content-Type": "application/apply-patch+yaml" });
    assert.equal(r.status, 422);
  });

  it("answers 422 to force on a non-apply patch", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().req("PATCH", `${CM}/a?force=true`, "{}", { "Content-Type": "application/merge-patch+json" });
    assert.equal(r.status, 422);
  });

  it("answers 400 to a patch body that is not JSON", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().req("PATCH", `${CM}/a`, "{nope", { "Content-Type": "application/merge-patch+json" });
    assert.equal(r.status, 400);
  });

  it("patches only status through /status, defaulting ingress ipMode to VIP", async () => {
    await client().post(SVC, { metadata: { name: "s" }, spec: { type: "LoadBalancer", ports: [{ port: 80 }] } });
    const r = await client().patch(`${SVC}/s/status`, "application/merge-patch+json", {
      spec: { type: "ClusterIP" },
      status: { loadBalancer: { ingress: [{ ip: "192.0.2.10" }] } },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.spec.type, "LoadBalancer");
    assert.deepEqual(r.body.status.loadBalancer.ingress, [{ ip: "192.0.2.10", ipMode: "VIP" }]);
  });

  it("records a server-side apply to /status as the applier's status entry", async () => {
    await client().post(SVC, { metadata: { name: "s" }, spec: { type: "LoadBalancer", ports: [{ port: 80 }] } });
    const body = { apiVersion: "v1", kind: "Service", metadata: { name: "s" }, status: { loadBalancer: { ingress: [{ ip: "192.0.2.10" }] } } };
    const r = await client().req("PATCH", `${SVC}/s/status?fieldManager=berth-controller&force=true`, JSON.stringify(body),
      { "Content-Type": "application/apply-patch+yaml" });
    assert.equal(r.status, 200, r.text);
    const mf = r.body.metadata.managedFields as { manager: string; operation: string; subresource?: string }[];
    assert.ok(mf.some((m) => m.manager === "berth-controller" && m.operation === "Apply" && m.subresource === "status"), JSON.stringify(mf));
  });

  it("does not make a Service's creator own the ClusterIP and NodePorts the server allocated", async () => {
    const r = await client().post(`${SVC}?fieldManager=creator`, { metadata: { name: "s" }, spec: { type: "LoadBalancer", ports: [{ port: 80 }] } });
    const entry = (r.body.metadata.managedFields as { manager: string; fieldsV1: { "f:spec": Record<string, unknown> } }[])
      .find((m) => m.manager === "creator");
    assert.ok(entry);
    const spec = entry.fieldsV1["f:spec"];
    assert.equal(spec["f:clusterIP"], undefined);
    assert.ok(spec["f:sessionAffinity"], "defaults are owned by the creator");
    assert.ok(!JSON.stringify(spec).includes("f:nodePort"));
  });

  it("ignores status in a patch of the main resource", async () => {
    await client().post(SVC, { metadata: { name: "s" }, spec: { type: "LoadBalancer", ports: [{ port: 80 }] } });
    const r = await client().patch(`${SVC}/s`, "application/merge-patch+json", { status: { loadBalancer: { ingress: [{ ip: "192.0.2.10" }] } } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.status, { loadBalancer: {} });
  });

  it("records a non-apply patch's manager from fieldManager as an Update", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().patch(`${CM}/a?fieldManager=labeller`, "application/merge-patch+json", { metadata: { labels: { x: "y" } } });
    const mf = (r.body.metadata.managedFields as { manager: string; operation: string }[]);
    assert.ok(mf.some((m) => m.manager === "labeller" && m.operation === "Update"), JSON.stringify(mf));
  });

  it("stores nothing for a dryRun=All patch", async () => {
    await client().post(CM, configMap("a", {}, { k: "v" }));
    const r = await client().patch(`${CM}/a?dryRun=All`, "application/merge-patch+json", { data: { k: "w" } });
    assert.equal(r.body.data.k, "w");
    assert.equal((await client().get(`${CM}/a`)).body.data.k, "v");
  });
});

describe("sandbox apiserver: services", () => {
  const { client } = useServer({ serviceCidrs: { ipv4: "10.96.0.0/24", ipv6: "fd00:96::/120" } });

  it("allocates a ClusterIP from the configured CIDR and NodePorts for a LoadBalancer Service", async () => {
    const r = await client().post(SVC, { metadata: { name: "s" }, spec: { type: "LoadBalancer", ports: [{ port: 80 }] } });
    assert.equal(r.status, 201, r.text);
    assert.match(r.body.spec.clusterIP, /^10\.96\.0\.\d+$/);
    const nodePort = r.body.spec.ports[0].nodePort as number;
    assert.ok(nodePort >= 30000 && nodePort <= 32767);
    assert.equal(r.body.spec.sessionAffinity, "None");
    assert.equal(r.body.spec.externalTrafficPolicy, "Cluster");
  });

  it("allocates one ClusterIP per family for a dual-stack Service", async () => {
    const r = await client().post(SVC, { metadata: { name: "s" }, spec: { ipFamilyPolicy: "RequireDualStack", ports: [{ port: 80 }] } });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body.spec.ipFamilies, ["IPv4", "IPv6"]);
    assert.equal(r.body.spec.clusterIPs.length, 2);
  });

  it("answers 422 to a change of an immutable clusterIP", async () => {
    const c = await client().post(SVC, { metadata: { name: "s" }, spec: { ports: [{ port: 80 }] } });
    const r = await client().put(`${SVC}/s`, { ...c.body, spec: { ...c.body.spec, clusterIP: "10.96.0.200", clusterIPs: ["10.96.0.200"] } });
    assert.equal(r.status, 422, r.text);
  });

  it("frees a deleted Service's ClusterIP for reuse", async () => {
    const a = await client().post(SVC, { metadata: { name: "a" }, spec: { clusterIP: "10.96.0.50", ports: [{ port: 80 }] } });
    assert.equal(a.status, 201, a.text);
    const taken = await client().post(SVC, { metadata: { name: "b" }, spec: { clusterIP: "10.96.0.50", ports: [{ port: 80 }] } });
    assert.equal(taken.status, 422);
    await client().del(`${SVC}/a`);
    const b = await client().post(SVC, { metadata: { name: "b" }, spec: { clusterIP: "10.96.0.50", ports: [{ port: 80 }] } });
    assert.equal(b.status, 201, b.text);
  });

  it("does not hold allocations for a dryRun create", async () => {
    const dry = await client().post(`${SVC}?dryRun=All`, { metadata: { name: "a" }, spec: { clusterIP: "10.96.0.60", ports: [{ port: 80 }] } });
    assert.equal(dry.status, 201, dry.text);
    const real = await client().post(SVC, { metadata: { name: "b" }, spec: { clusterIP: "10.96.0.60", ports: [{ port: 80 }] } });
    assert.equal(real.status, 201, real.text);
  });
});
