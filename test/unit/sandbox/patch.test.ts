import { strict as assert } from "node:assert";

import { applyPatch, fromFieldsV1, recordUpdateManagedFields, toFieldsV1, type PatchType } from "../../../src/sandbox/apiserver/patch.js";
import { type KubeObject, type ResourceDefinition } from "../../../src/sandbox/apiserver/types.js";
import { apiError } from "../../support/api-error.js";

const def = (group: string, version: string, kind: string, extra: Partial<ResourceDefinition> = {}): ResourceDefinition => ({
  group, version, kind, listKind: `${kind}List`, plural: `${kind.toLowerCase()}s`, singular: kind.toLowerCase(),
  shortNames: [], namespaced: true, subresources: ["status"], verbs: [], ...extra,
});
const PODS = def("", "v1", "Pod");
const SERVICES = def("", "v1", "Service");
const NODES = def("", "v1", "Node", { namespaced: false });
const CONFIGMAPS = def("", "v1", "ConfigMap", { subresources: [] });
const DAEMONSETS = def("apps", "v1", "DaemonSet");
const POOLS = def("berth.io", "v1alpha1", "AddressPool", { custom: true, namespaced: false });
const NOW = new Date("2026-11-24T07:00:00.123Z");

const pod = (spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: "v1", kind: "Pod", metadata: { name: "web", namespace: "default", ...metadata }, spec,
});


const patch = (d: ResourceDefinition, current: KubeObject | undefined, type: PatchType, body: unknown) => applyPatch(d, current, type, body, { now: NOW });

describe("sandbox PATCH: JSON patch (RFC 6902)", () => {
  const base = () => pod({ containers: [{ name: "a", image: "x" }] }, { labels: { "app.kubernetes.io/name": "web", "a/b": "1" } });
  const ok: { name: string; ops: unknown[]; check: (o: KubeObject) => unknown; want: unknown }[] = [
    { name: "adds a field", ops: [{ op: "add", path: "/spec/nodeName", value: "n1" }], check: (o) => (o.spec as { nodeName: string }).nodeName, want: "n1" },
    { name: "appends with '-'", ops: [{ op: "add", path: "/spec/containers/-", value: { name: "b", image: "y" } }], check: (o) => (o.spec as { containers: { name: string }[] }).containers.map((c) => c.name), want: ["a", "b"] },
    { name: "inserts at an index", ops: [{ op: "add", path: "/spec/containers/0", value: { name: "z", image: "y" } }], check: (o) => (o.spec as { containers: { name: string }[] }).containers.map((c) => c.name), want: ["z", "a"] },
    { name: "unescapes ~1 and ~0 in pointers", ops: [{ op: "replace", path: "/metadata/labels/a~1b", value: "2" }, { op: "add", path: "/metadata/labels/x~0y", value: "3" }], check: (o) => o.metadata.labels, want: { "app.kubernetes.io/name": "web", "a/b": "2", "x~y": "3" } },
    { name: "removes a field", ops: [{ op: "remove", path: "/metadata/labels/a~1b" }], check: (o) => o.metadata.labels, want: { "app.kubernetes.io/name": "web" } },
    { name: "moves a value", ops: [{ op: "move", from: "/metadata/labels/a~1b", path: "/metadata/annotations" }], check: (o) => [o.metadata.annotations, o.metadata.labels], want: ["1", { "app.kubernetes.io/name": "web" }] },
    { name: "copies a value", ops: [{ op: "copy", from: "/spec/containers/0", path: "/spec/initContainers" }], check: (o) => (o.spec as { initContainers: unknown }).initContainers, want: { name: "a", image: "x" } },
    { name: "passes a matching test then applies the rest", ops: [{ op: "test", path: "/spec/containers/0/image", value: "x" }, { op: "replace", path: "/spec/containers/0/image", value: "x2" }], check: (o) => (o.spec as { containers: { image: string }[] }).containers[0]?.image, want: "x2" },
  ];
  for (const c of ok) {
    it(c.name, () => assert.deepEqual(c.check(patch(PODS, base(), "json", c.ops)), c.want));
  }

  const bad: { name: string; body: unknown; code: number; cause?: string }[] = [
    { name: "answers 422 when a test op fails, and applies nothing", body: [{ op: "test", path: "/spec/containers/0/image", value: "nope" }], code: 422, cause: "testing value /spec/containers/0/image failed: test failed" },
    { name: "answers 422 when replacing a missing key", body: [{ op: "replace", path: "/spec/nodeName", value: "n" }], code: 422, cause: "replace operation does not apply: doc is missing key: /spec/nodeName: missing value" },
    { name: "answers 422 when adding under a missing parent", body: [{ op: "add", path: "/spec/a/b", value: 1 }], code: 422, cause: "add operation does not apply: doc is missing path: \"/spec/a/b\": missing value" },
    { name: "answers 422 for an out-of-range index", body: [{ op: "remove", path: "/spec/containers/5" }], code: 422, cause: "Unable to access invalid index: 5: /spec/containers/5" },
    { name: "answers 400 for an unknown op", body: [{ op: "frobnicate", path: "/spec" }], code: 400 },
    { name: "answers 400 for a patch that is not a list", body: { op: "add" }, code: 400 },
    { name: "answers 400 for an add without value", body: [{ op: "add", path: "/spec/x" }], code: 400 },
    { name: "answers 400 for a pointer without leading slash", body: [{ op: "add", path: "spec/x", value: 1 }], code: 400 },
    { name: "answers 413 for more than 10000 operations", body: Array.from({ length: 10001 }, () => ({ op: "test", path: "/kind", value: "Pod" })), code: 413 },
  ];
  for (const c of bad) {
    it(c.name, () => {
      const current = base();
      const error = apiError(() => patch(PODS, current, "json", c.body));
      assert.equal(error.code, c.code, error.message);
      if (c.cause) {
        assert.equal(error.message, "the server rejected our request due to an error in our request");
        assert.equal(error.details?.causes, undefined, "kube sends no causes for a JSON patch that does not apply");
        assert.equal(error.cause, c.cause);
      }
      assert.deepEqual(current, base(), "the stored object is never mutated");
    });
  }

  it("answers 404 when the object does not exist", () => {
    const error = apiError(() => applyPatch(SERVICES, undefined, "merge", {}, { now: NOW, name: "web" }));
    assert.equal(error.code, 404);
    assert.equal(error.message, 'services "web" not found');
  });
});

describe("sandbox PATCH: JSON merge patch (RFC 7386)", () => {
  it("merges maps, replaces lists whole and deletes keys set to null", () => {
    const current = pod({ containers: [{ name: "a", image: "x" }, { name: "b", image: "y" }], nodeName: "n1" }, { labels: { a: "1", b: "2" } });
    const out = patch(PODS, current, "merge", { metadata: { labels: { a: null, c: "3" } }, spec: { containers: [{ name: "b", image: "z" }], nodeName: null } });
    assert.deepEqual(out.metadata.labels, { b: "2", c: "3" });
    assert.deepEqual(out.spec, { containers: [{ name: "b", image: "z" }] });
  });
  it("answers 400 for a body that is not an object", () => {
    assert.equal(apiError(() => patch(PODS, pod({}), "merge", ["x"])).code, 400);
  });
});

describe("sandbox PATCH: strategic merge patch", () => {
  const cases: { name: string; d?: ResourceDefinition; current: Record<string, unknown>; body: Record<string, unknown>; want: Record<string, unknown> }[] = [
    {
      name: "merges containers by name and their env by name, keeping other items and fields",
      current: { containers: [{ name: "a", image: "x", env: [{ name: "A", value: "1" }, { name: "B", value: "2" }] }, { name: "b", image: "y" }] },
      body: { spec: { containers: [{ name: "a", image: "x2", env: [{ name: "B", value: "3" }, { name: "C", value: "4" }] }] } },
      want: { containers: [{ name: "a", image: "x2", env: [{ name: "A", value: "1" }, { name: "B", value: "3" }, { name: "C", value: "4" }] }, { name: "b", image: "y" }] },
    },
    {
      name: "merges container ports by containerPort and volumes by name, new items first as kube's mergeSortedSlice orders them",
      current: { containers: [{ name: "a", ports: [{ containerPort: 80, name: "http" }] }], volumes: [{ name: "v", emptyDir: {} }] },
      body: { spec: { containers: [{ name: "a", ports: [{ containerPort: 80, protocol: "TCP" }, { containerPort: 443 }] }], volumes: [{ name: "w", emptyDir: {} }] } },
      want: { containers: [{ name: "a", ports: [{ containerPort: 80, name: "http", protocol: "TCP" }, { containerPort: 443 }] }], volumes: [{ name: "w", emptyDir: {} }, { name: "v", emptyDir: {} }] },
    },
    {
      name: "replaces tolerations whole (no patchStrategy in core/v1)",
      current: { tolerations: [{ key: "a", operator: "Exists" }] },
      body: { spec: { tolerations: [{ key: "b", operator: "Exists" }] } },
      want: { tolerations: [{ key: "b", operator: "Exists" }] },
    },
    {
      name: "deletes an item with $patch: delete",
      current: { containers: [{ name: "a" }, { name: "b" }] },
      body: { spec: { containers: [{ name: "a", $patch: "delete" }] } },
      want: { containers: [{ name: "b" }] },
    },
    {
      name: "replaces a list with $patch: replace",
      current: { containers: [{ name: "a", image: "x" }, { name: "b" }] },
      body: { spec: { containers: [{ $patch: "replace" }, { name: "c", image: "z" }] } },
      want: { containers: [{ name: "c", image: "z" }] },
    },
    {
      name: "replaces a map with $patch: replace",
      current: { containers: [{ name: "a" }], securityContext: { runAsUser: 1, runAsGroup: 2 } },
      body: { spec: { securityContext: { $patch: "replace", runAsUser: 5 } } },
      want: { containers: [{ name: "a" }], securityContext: { runAsUser: 5 } },
    },
    {
      name: "empties a map with $patch: delete (kube leaves {} behind, not no field)",
      current: { containers: [{ name: "a" }], securityContext: { runAsUser: 1 } },
      body: { spec: { securityContext: { $patch: "delete" } } },
      want: { containers: [{ name: "a" }], securityContext: {} },
    },
    {
      name: "orders items as $setElementOrder says",
      current: { containers: [{ name: "a" }, { name: "b" }, { name: "c" }] },
      body: { spec: { "$setElementOrder/containers": [{ name: "c" }, { name: "a" }, { name: "b" }], containers: [{ name: "a", image: "new" }] } },
      want: { containers: [{ name: "c" }, { name: "a", image: "new" }, { name: "b" }] },
    },
    {
      name: "leaves an atomic list alone when a $setElementOrder names it without a patch list",
      current: { tolerations: [{ key: "a", operator: "Exists" }] },
      body: { spec: { "$setElementOrder/tolerations": [{ key: "a" }] } },
      want: { tolerations: [{ key: "a", operator: "Exists" }] },
    },
    {
      name: "keeps only $retainKeys in a volume (how kubectl switches a volume's source)",
      current: { volumes: [{ name: "v", emptyDir: {} }] },
      body: { spec: { volumes: [{ name: "v", $retainKeys: ["configMap", "name"], configMap: { name: "cm" } }] } },
      want: { volumes: [{ name: "v", configMap: { name: "cm" } }] },
    },
    {
      name: "ignores nulls for keys that are absent and strips directives from new values",
      current: { containers: [{ name: "a" }] },
      body: { spec: { nodeName: null, affinity: { x: null, y: 1 } } },
      want: { containers: [{ name: "a" }], affinity: { y: 1 } },
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(patch(c.d ?? PODS, pod(c.current), "strategic", c.body).spec, c.want));
  }

  it("merges metadata.finalizers as a set (in kube's patch-then-server order) and removes values with $deleteFromPrimitiveList", () => {
    const current = pod({}, { finalizers: ["a.io/x", "b.io/y"] });
    assert.deepEqual(patch(PODS, current, "strategic", { metadata: { finalizers: ["c.io/z", "a.io/x"] } }).metadata.finalizers, ["c.io/z", "a.io/x", "b.io/y"]);
    assert.deepEqual(patch(PODS, current, "strategic", { metadata: { finalizers: [] } }).metadata.finalizers, ["a.io/x", "b.io/y"],
      "an empty list merges to nothing: clearing finalizers takes null or a merge patch, as on a real cluster");
    assert.deepEqual(patch(PODS, current, "strategic", { metadata: { "$deleteFromPrimitiveList/finalizers": ["a.io/x"] } }).metadata.finalizers, ["b.io/y"]);
  });

  it("merges Service ports by port and pod conditions by type", () => {
    const svc: KubeObject = { apiVersion: "v1", kind: "Service", metadata: { name: "s" }, spec: { ports: [{ port: 80, name: "http" }, { port: 443, name: "https" }] } };
    const out = patch(SERVICES, svc, "strategic", { spec: { ports: [{ port: 443, targetPort: 8443 }] } });
    assert.deepEqual((out.spec as { ports: unknown }).ports, [{ port: 80, name: "http" }, { port: 443, name: "https", targetPort: 8443 }]);
    const p = { ...pod({}), status: { conditions: [{ type: "Ready", status: "False" }, { type: "Initialized", status: "True" }] } };
    const outPod = patch(PODS, p, "strategic", { status: { conditions: [{ type: "Ready", status: "True" }] } });
    assert.deepEqual((outPod.status as { conditions: unknown }).conditions, [{ type: "Ready", status: "True" }, { type: "Initialized", status: "True" }]);
  });

  it("merges a DaemonSet's pod template containers by name", () => {
    const ds: KubeObject = { apiVersion: "apps/v1", kind: "DaemonSet", metadata: { name: "d" }, spec: { template: { spec: { containers: [{ name: "a", image: "1" }, { name: "b", image: "1" }] } } } };
    const out = patch(DAEMONSETS, ds, "strategic", { spec: { template: { spec: { containers: [{ name: "b", image: "2" }] } } } });
    assert.deepEqual(out.spec, { template: { spec: { containers: [{ name: "a", image: "1" }, { name: "b", image: "2" }] } } });
  });

  it("returns plain JSON: keys holding undefined in the stored object do not survive a patch (kubectl uncordon)", () => {
    const node: KubeObject = { apiVersion: "v1", kind: "Node", metadata: { name: "n", namespace: undefined }, spec: { unschedulable: true } };
    const out = patch(NODES, node, "strategic", { spec: { unschedulable: null } });
    assert.deepEqual(Object.keys(out.metadata), ["name"]);
    assert.deepEqual(out.spec, {});
  });

  it("merges node addresses by type (patchMergeKey type)", () => {
    const node: KubeObject = { apiVersion: "v1", kind: "Node", metadata: { name: "n" }, status: { addresses: [{ type: "InternalIP", address: "10.0.0.1" }, { type: "Hostname", address: "n" }] } };
    const out = patch(NODES, node, "strategic", { status: { addresses: [{ type: "InternalIP", address: "10.0.0.2" }] } });
    assert.deepEqual((out.status as { addresses: unknown }).addresses, [{ type: "InternalIP", address: "10.0.0.2" }, { type: "Hostname", address: "n" }]);
  });

  const errors: { name: string; d?: ResourceDefinition; body: unknown; code: number }[] = [
    { name: "answers 415 for strategic merge on a custom resource, as kube-apiserver does", d: POOLS, body: { spec: {} }, code: 415 },
    { name: "answers 400 for an item without its merge key", body: { spec: { containers: [{ image: "x" }] } }, code: 400 },
    { name: "answers 400 for an unknown $patch directive", body: { spec: { containers: [{ name: "a", $patch: "explode" }] } }, code: 400 },
    { name: "answers 422 for a $retainKeys that omits a patched key", body: { spec: { volumes: [{ name: "v", $retainKeys: ["name"], configMap: {} }] } }, code: 422 },
    { name: "answers 400 for a body that is not an object", body: [1], code: 400 },
  ];
  for (const c of errors) {
    it(c.name, () => {
      const current = c.d === POOLS ? { apiVersion: "berth.io/v1alpha1", kind: "AddressPool", metadata: { name: "p" } } : pod({ containers: [{ name: "a" }], volumes: [{ name: "v", emptyDir: {} }] });
      assert.equal(apiError(() => patch(c.d ?? PODS, current, "strategic", c.body)).code, c.code);
    });
  }
});

describe("sandbox managedFields encoding", () => {
  it("round-trips FieldsV1 with keyed items, set values and '.' for nodes that also have children", () => {
    const fields = {
      "f:metadata": { "f:finalizers": { 'v:"a.io/x"': {} }, "f:labels": { "f:app": {} } },
      "f:spec": { "f:ports": { 'k:{"port":80,"protocol":"TCP"}': { ".": {}, "f:port": {}, "f:protocol": {} } } },
    };
    assert.deepEqual(toFieldsV1(fromFieldsV1(fields)), fields);
  });
});

describe("sandbox server-side apply", () => {
  const cm = (data: Record<string, string>, labels?: Record<string, string>): KubeObject => ({
    apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c", namespace: "default", ...(labels ? { labels } : {}) }, data,
  });
  const apply = (current: KubeObject | undefined, body: unknown, fieldManager: string, force = false, d = CONFIGMAPS) =>
    applyPatch(d, current, "apply", body, { fieldManager, force, now: NOW, name: "c", namespace: "default" });

  it("creates a missing object and records the applier's fields", () => {
    const out = apply(undefined, cm({ a: "1" }, { app: "x" }), "berth");
    assert.deepEqual(out.data, { a: "1" });
    assert.deepEqual(out.metadata.managedFields, [{
      manager: "berth", operation: "Apply", apiVersion: "v1", time: "2026-11-24T07:00:00Z", fieldsType: "FieldsV1",
      fieldsV1: { "f:data": { "f:a": {} }, "f:metadata": { "f:labels": { "f:app": {} } } },
    }]);
  });

  it("leaves the object exactly as it was when the same intent is applied again (managedFields time included)", () => {
    const first = apply(undefined, cm({ a: "1" }, { app: "x" }), "berth");
    const again = applyPatch(CONFIGMAPS, first, "apply", cm({ a: "1" }, { app: "x" }), { fieldManager: "berth", now: new Date("2026-11-24T09:00:00Z") });
    assert.deepEqual(again, first);
    const changed = applyPatch(CONFIGMAPS, first, "apply", cm({ a: "2" }, { app: "x" }), { fieldManager: "berth", now: new Date("2026-11-24T09:00:00Z") });
    assert.equal(changed.metadata.managedFields?.[0]?.time, "2026-11-24T09:00:00Z");
  });

  it("removes the fields a manager drops on its next apply, but keeps fields others own", () => {
    const steps: { manager: string; body?: Record<string, unknown>; update?: (o: KubeObject) => KubeObject; wantData: Record<string, string>; wantLabels?: Record<string, string> }[] = [
      { manager: "berth", body: cm({ a: "1", b: "2" }, { app: "x", tier: "y" }), wantData: { a: "1", b: "2" }, wantLabels: { app: "x", tier: "y" } },
      {
        manager: "kubectl-edit",
        update: (o) => ({ ...o, data: { ...(o.data as object), c: "3" } }),
        wantData: { a: "1", b: "2", c: "3" }, wantLabels: { app: "x", tier: "y" },
      },
      { manager: "berth", body: cm({ a: "1" }, { app: "x" }), wantData: { a: "1", c: "3" }, wantLabels: { app: "x" } },
      { manager: "berth", body: cm({ a: "1" }), wantData: { a: "1", c: "3" } },
    ];
    let current: KubeObject | undefined;
    for (const [i, step] of steps.entries()) {
      if (step.body) current = apply(current, step.body, step.manager);
      else if (step.update && current) current = recordUpdateManagedFields(CONFIGMAPS, current, step.update(current), step.manager, NOW);
      assert.deepEqual(current?.data, step.wantData, `step ${i}`);
      assert.deepEqual(current?.metadata.labels, step.wantLabels, `step ${i}`);
    }
  });

  it("answers 409 naming the manager and field when another manager set a different value, and takes ownership with force", () => {
    let current = apply(undefined, cm({ a: "1" }), "berth");
    current = recordUpdateManagedFields(CONFIGMAPS, current, { ...current, data: { a: "2" } }, "kubectl-edit", NOW);
    assert.deepEqual(current.metadata.managedFields?.map((m) => m.manager), ["kubectl-edit"],
      "the edit took data.a away from berth, whose entry, now empty, is gone");
    const error = apiError(() => apply(current, cm({ a: "1" }), "berth"));
    assert.equal(error.code, 409);
    assert.equal(error.reason, "Conflict");
    assert.equal(error.message, 'Apply failed with 1 conflict: conflict with "kubectl-edit" using v1 at 2026-11-24T07:00:00Z: .data.a');
    assert.deepEqual(error.details?.causes, [{ reason: "FieldManagerConflict", message: 'conflict with "kubectl-edit" using v1 at 2026-11-24T07:00:00Z', field: ".data.a" }]);
    const forced = apply(current, cm({ a: "1" }), "berth", true);
    assert.deepEqual(forced.data, { a: "1" });
    assert.deepEqual(forced.metadata.managedFields?.map((m) => m.manager), ["berth"]);
  });

  it("does not conflict when the other manager's value is the same (shared ownership)", () => {
    const first = apply(undefined, cm({ a: "1" }), "one");
    const second = apply(first, cm({ a: "1", b: "2" }), "two");
    assert.deepEqual(second.metadata.managedFields?.map((m) => m.manager), ["one", "two"]);
    const dropped = apply(second, cm({}), "two");
    assert.deepEqual(dropped.data, { a: "1" }, "a is still owned by 'one'");
  });

  it("sorts Apply entries before Update entries, then by time", () => {
    let current = recordUpdateManagedFields(CONFIGMAPS, undefined, { ...cm({ a: "1" }) } as KubeObject, "kubectl-create", NOW);
    current = apply(current, cm({ b: "1" }), "zeta");
    assert.deepEqual(current.metadata.managedFields?.map((m) => `${m.operation}/${m.manager}`), ["Apply/zeta", "Update/kubectl-create"]);
  });

  it("lists several conflicts grouped by manager", () => {
    let current = apply(undefined, cm({ a: "1", b: "1" }), "berth");
    current = recordUpdateManagedFields(CONFIGMAPS, current, { ...current, data: { a: "2", b: "2" } }, "kubectl", NOW);
    const error = apiError(() => apply(current, cm({ a: "1", b: "1" }), "berth"));
    assert.equal(error.message, 'Apply failed with 2 conflicts: conflicts with "kubectl" using v1 at 2026-11-24T07:00:00Z:\n- .data.a\n- .data.b');
  });

  it("owns keyed list items and removes the ones it drops (Service ports keyed by port and protocol)", () => {
    const svc = (ports: unknown[]) => ({ apiVersion: "v1", kind: "Service", metadata: { name: "c", namespace: "default" }, spec: { ports } });
    const first = apply(undefined, svc([{ name: "http", port: 80 }, { name: "dns", port: 53, protocol: "UDP" }]), "berth", false, SERVICES);
    assert.deepEqual(first.metadata.managedFields?.[0]?.fieldsV1, {
      "f:spec": { "f:ports": {
        'k:{"port":53,"protocol":"UDP"}': { ".": {}, "f:name": {}, "f:port": {}, "f:protocol": {} },
        'k:{"port":80,"protocol":"TCP"}': { ".": {}, "f:name": {}, "f:port": {} },
      } },
    });
    const withTarget = recordUpdateManagedFields(SERVICES, first, {
      ...first, spec: { ports: [{ name: "http", port: 80, targetPort: 8080 }, { name: "dns", port: 53, protocol: "UDP" }] },
    }, "kubectl-edit", NOW);
    const second = apply(withTarget, svc([{ name: "http", port: 80 }]), "berth", false, SERVICES);
    assert.deepEqual((second.spec as { ports: unknown }).ports, [{ name: "http", port: 80, targetPort: 8080 }]);
    const third = apply(second, svc([{ name: "dns", port: 53, protocol: "UDP" }]), "berth", false, SERVICES);
    assert.deepEqual((third.spec as { ports: unknown }).ports, [{ port: 80, targetPort: 8080 }, { name: "dns", port: 53, protocol: "UDP" }],
      "port 80 stays for kubectl-edit's targetPort, with its key field, losing only berth's name");
  });

  it("orders merged list items as structured-merge-diff does: applied order for what it names, live places for the rest", () => {
    const svc = (ports: unknown[]) => ({ apiVersion: "v1", kind: "Service", metadata: { name: "c", namespace: "default" }, spec: { ports } }) as KubeObject;
    const live = recordUpdateManagedFields(SERVICES, undefined, svc([{ name: "a", port: 80 }, { name: "b", port: 81 }, { name: "z", port: 89 }]), "creator", NOW);
    const out = apply(live, svc([{ name: "c", port: 82 }, { name: "a", port: 80 }]), "berth", false, SERVICES);
    assert.deepEqual((out.spec as { ports: { name: string }[] }).ports.map((p) => p.name), ["c", "a", "b", "z"]);
    const reordered = apply(live, svc([{ name: "z", port: 89 }, { name: "a", port: 80 }]), "berth", false, SERVICES);
    assert.deepEqual((reordered.spec as { ports: { name: string }[] }).ports.map((p) => p.name), ["b", "z", "a"]);
  });

  it("ignores status in an apply to the main resource and applies only status on /status", () => {
    const body = { ...cm({}), apiVersion: "v1", kind: "Pod", spec: { nodeName: "n1" }, status: { phase: "Running" } };
    const created = applyPatch(PODS, undefined, "apply", body, { fieldManager: "m", now: NOW, name: "c", namespace: "default" });
    assert.equal(created.status, undefined);
    const status = applyPatch(PODS, created, "apply", { ...body, spec: { nodeName: "n2" } }, { fieldManager: "kubelet", now: NOW, subresource: "status" });
    assert.deepEqual(status.status, { phase: "Running" });
    assert.deepEqual(status.spec, { nodeName: "n1" });
    assert.deepEqual(status.metadata.managedFields?.map((m) => [m.manager, m.subresource]), [["kubelet", "status"], ["m", undefined]],
      "entries sorted as kube sorts them: operation, time, then manager");
  });

  it("lets kubectl move from client-side to server-side apply over fields its last-applied annotation still holds", () => {
    const key = "kubectl.kubernetes.io/last-applied-configuration";
    const lastApplied = JSON.stringify(cm({ a: "1", b: "1" }));
    const created = recordUpdateManagedFields(CONFIGMAPS, undefined,
      { ...cm({ a: "1", b: "1" }), metadata: { name: "c", namespace: "default", annotations: { [key]: lastApplied } } }, "kubectl-client-side-apply", NOW);
    const edited = recordUpdateManagedFields(CONFIGMAPS, created, { ...created, data: { a: "1", b: "edited" } }, "kubectl-edit", NOW);
    const moved = apply(edited, cm({ a: "2", b: "edited" }), "kubectl");
    assert.deepEqual(moved.data, { a: "2", b: "edited" }, "a is still as last applied, so kubectl takes it over");
    const error = apiError(() => apply(edited, cm({ a: "2", b: "mine" }), "kubectl"));
    assert.deepEqual(error.details?.causes?.map((c) => c.field), [".data.b"], "b was changed by kubectl-edit since, so it conflicts");
    assert.equal(apiError(() => apply(edited, cm({ a: "2", b: "edited" }), "someone-else")).code, 409, "only kubectl's own manager may");
  });

  it("treats nulls in the applied configuration as omitted fields", () => {
    const out = apply(undefined, { ...cm({ a: "1" }), binaryData: null, metadata: { name: "c", namespace: "default", labels: null } }, "berth");
    assert.equal("binaryData" in out, false);
    assert.equal("labels" in out.metadata, false);
    assert.deepEqual(out.metadata.managedFields?.[0]?.fieldsV1, { "f:data": { "f:a": {} } });
  });

  it("gives the fields of an untracked object to before-first-apply, so a first apply conflicts with them", () => {
    const untracked = { ...cm({ a: "1", b: "1" }) } as KubeObject;
    const error = apiError(() => apply(untracked, cm({ a: "2" }), "berth"));
    assert.equal(error.message, 'Apply failed with 1 conflict: conflict with "before-first-apply" using v1 at 2026-11-24T07:00:00Z: .data.a');
    const same = apply(untracked, cm({ a: "1" }), "berth");
    assert.deepEqual(same.metadata.managedFields?.map((m) => `${m.operation}/${m.manager}`), ["Apply/berth", "Update/before-first-apply"]);
  });

  it("keeps kubectl's client-side apply annotation in step when kubectl applies server-side", () => {
    const key = "kubectl.kubernetes.io/last-applied-configuration";
    const live = { ...cm({ a: "1" }), metadata: { name: "c", namespace: "default", annotations: { [key]: "{}\n" } } } as KubeObject;
    const tracked = recordUpdateManagedFields(CONFIGMAPS, undefined, live, "kubectl-client-side-apply", NOW);
    const out = apply(tracked, cm({ a: "1", b: "2" }), "kubectl");
    assert.equal(out.metadata.annotations?.[key], '{"apiVersion":"v1","data":{"a":"1","b":"2"},"kind":"ConfigMap","metadata":{"name":"c","namespace":"default"}}\n');
    const other = apply(tracked, cm({ a: "1", b: "2" }), "berth");
    assert.equal(other.metadata.annotations?.[key], "{}\n", "only the kubectl manager syncs it, as kube does");
  });

  const refusals: { name: string; body: unknown; manager?: string; code: number }[] = [
    { name: "requires a fieldManager", body: cm({}), manager: "", code: 400 },
    { name: "refuses a body of another kind", body: { ...cm({}), kind: "Secret" }, code: 400 },
    { name: "refuses a body without apiVersion", body: { kind: "ConfigMap", metadata: { name: "c" } }, code: 400 },
    { name: "refuses managedFields in the applied configuration", body: { ...cm({}), metadata: { name: "c", managedFields: [{ manager: "x" }] } }, code: 400 },
  ];
  for (const c of refusals) {
    it(c.name, () => assert.equal(apiError(() => apply(undefined, c.body, c.manager ?? "m")).code, c.code));
  }
});

describe("sandbox managedFields for Update operations (POST, PUT, PATCH)", () => {
  it("gives the creator every field, then moves changed fields to the updater and drops removed ones", () => {
    const created = recordUpdateManagedFields(CONFIGMAPS, undefined, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c", labels: { a: "1" } }, data: { x: "1", y: "1" } }, "kubectl-create", NOW);
    assert.deepEqual(created.metadata.managedFields?.[0]?.fieldsV1,
      { "f:data": { ".": {}, "f:x": {}, "f:y": {} }, "f:metadata": { "f:labels": { ".": {}, "f:a": {} } } },
      "an Update that creates a map owns the map itself too ('.'), as kube's field manager records it");
    const updated = recordUpdateManagedFields(CONFIGMAPS, created, { ...created, data: { x: "2" } }, "kubectl-edit", new Date("2026-11-24T08:00:00Z"));
    assert.deepEqual(updated.metadata.managedFields?.map((m) => [m.manager, m.operation, m.time, m.fieldsV1]), [
      ["kubectl-create", "Update", "2026-11-24T07:00:00Z", { "f:data": {}, "f:metadata": { "f:labels": { ".": {}, "f:a": {} } } }],
      ["kubectl-edit", "Update", "2026-11-24T08:00:00Z", { "f:data": { "f:x": {} } }],
    ]);
  });

  it("records a Service's selector as one atomic value and its ports keyed by port and protocol, as kube shows them", () => {
    const svc: KubeObject = { apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: "default" },
      spec: { type: "ClusterIP", selector: { app: "web" }, ports: [{ port: 80, protocol: "TCP", targetPort: 80 }] } };
    const out = recordUpdateManagedFields(SERVICES, undefined, svc, "kubectl-client-side-apply", NOW);
    assert.deepEqual(out.metadata.managedFields?.[0]?.fieldsV1, { "f:spec": {
      "f:ports": { ".": {}, 'k:{"port":80,"protocol":"TCP"}': { ".": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {} } },
      "f:selector": {}, "f:type": {},
    } });
  });

  it("folds the oldest of more than ten Update managers into ancient-changes", () => {
    let current = recordUpdateManagedFields(CONFIGMAPS, undefined, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c" }, data: {} }, "creator", NOW);
    for (let i = 0; i < 12; i++) {
      const at = new Date(NOW.getTime() + (i + 1) * 60_000);
      current = recordUpdateManagedFields(CONFIGMAPS, current, { ...current, data: { ...(current.data as object), [`k${i}`]: "v" } }, `writer-${i}`, at);
    }
    const managers = current.metadata.managedFields?.map((m) => m.manager) ?? [];
    assert.equal(managers.length, 10);
    assert.equal(managers[0], "ancient-changes");
    assert.deepEqual(managers.slice(1), ["writer-3", "writer-4", "writer-5", "writer-6", "writer-7", "writer-8", "writer-9", "writer-10", "writer-11"]);
    assert.deepEqual(Object.keys(current.metadata.managedFields?.[0]?.fieldsV1["f:data"] as object), [".", "f:k0", "f:k1", "f:k2"]);
  });

  it("adds no entry for an update that changes nothing", () => {
    const created = recordUpdateManagedFields(CONFIGMAPS, undefined, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c" }, data: { x: "1" } }, "a", NOW);
    const same = recordUpdateManagedFields(CONFIGMAPS, created, created, "b", NOW);
    assert.deepEqual(same.metadata.managedFields?.map((m) => m.manager), ["a"]);
  });

  it("keeps status owners when the main resource is updated", () => {
    const p = recordUpdateManagedFields(PODS, undefined, { ...pod({ nodeName: "n" }), status: { phase: "Pending" } }, "creator", NOW);
    const withStatus = recordUpdateManagedFields(PODS, p, { ...p, status: { phase: "Running" } }, "kubelet", NOW, "status");
    const relabelled = recordUpdateManagedFields(PODS, withStatus, { ...withStatus, metadata: { ...withStatus.metadata, labels: { a: "b" } } }, "kubectl-label", NOW);
    assert.deepEqual(relabelled.metadata.managedFields?.map((m) => [m.manager, m.subresource]), [["creator", undefined], ["kubectl-label", undefined], ["kubelet", "status"]]);
  });
});
