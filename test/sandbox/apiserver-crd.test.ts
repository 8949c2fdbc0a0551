// CustomResourceDefinitions: custom resources served the moment their CRD exists, and gone with it.
import assert from "node:assert/strict";
import { useServer } from "./apiserver-client.js";

const CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const POOLS = "/apis/berth.dev/v1alpha1/addresspools";

function poolCrd(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: "addresspools.berth.dev" },
    spec: {
      group: "berth.dev",
      scope: "Cluster",
      names: { plural: "addresspools", singular: "addresspool", kind: "AddressPool", listKind: "AddressPoolList", shortNames: ["ap"] },
      versions: [{
        name: "v1alpha1", served: true, storage: true,
        schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
        subresources: { status: {} },
        additionalPrinterColumns: [{ name: "Assigned", type: "integer", jsonPath: ".status.assigned" }],
      }],
      ...extra,
    },
  };
}

function pool(name: string): Record<string, unknown> {
  return { apiVersion: "berth.dev/v1alpha1", kind: "AddressPool", metadata: { name }, spec: { addresses: ["192.0.2.0/28"] } };
}

describe("sandbox apiserver: custom resources", () => {
  const { client } = useServer();

  it("marks a new CRD Established and NamesAccepted, with its finalizer and stored versions", async () => {
    const r = await client().post(CRDS, poolCrd());
    assert.equal(r.status, 201, r.text);
    const types = (r.body.status.conditions as { type: string; status: string }[]).map((c) => `${c.type}=${c.status}`);
    assert.ok(types.includes("Established=True"));
    assert.ok(types.includes("NamesAccepted=True"));
    assert.deepEqual(r.body.status.storedVersions, ["v1alpha1"]);
    assert.deepEqual(r.body.metadata.finalizers, ["customresourcecleanup.apiextensions.k8s.io"]);
  });

  it("lists the custom group and resource in discovery once the CRD exists", async () => {
    await client().post(CRDS, poolCrd());
    const apis = await client().get("/apis");
    assert.ok((apis.body.groups as { name: string }[]).some((g) => g.name === "berth.dev"));
    const rl = await client().get("/apis/berth.dev/v1alpha1");
    const names = (rl.body.resources as { name: string }[]).map((x) => x.name);
    assert.deepEqual(names, ["addresspools", "addresspools/status"]);
    const ap = (rl.body.resources as { name: string; namespaced: boolean; shortNames: string[] }[])[0];
    assert.equal(ap?.namespaced, false);
    assert.deepEqual(ap?.shortNames, ["ap"]);
  });

  it("serves create, get and list of custom resources, with kind on list items", async () => {
    await client().post(CRDS, poolCrd());
    const c = await client().post(POOLS, pool("p1"));
    assert.equal(c.status, 201, c.text);
    assert.equal(c.body.metadata.generation, 1);
    const list = await client().get(POOLS);
    assert.equal(list.body.kind, "AddressPoolList");
    assert.equal(list.body.items[0].kind, "AddressPool");
  });

  it("requires metadata.resourceVersion on a custom resource update (422 without)", async () => {
    await client().post(CRDS, poolCrd());
    await client().post(POOLS, pool("p1"));
    const r = await client().put(`${POOLS}/p1`, pool("p1"));
    assert.equal(r.status, 422);
  });

  it("keeps status out of the main resource and spec out of /status when the status subresource is on", async () => {
    await client().post(CRDS, poolCrd());
    const c = await client().post(POOLS, { ...pool("p1"), status: { assigned: 5 } });
    assert.equal(c.body.status, undefined);
    const s = await client().put(`${POOLS}/p1/status`, { ...c.body, spec: { addresses: [] }, status: { assigned: 2 } });
    assert.equal(s.status, 200, s.text);
    assert.equal(s.body.status.assigned, 2);
    assert.deepEqual(s.body.spec.addresses, ["192.0.2.0/28"]);
    assert.equal(s.body.metadata.generation, 1);
  });

  it("bumps a custom resource's generation on spec change", async () => {
    await client().post(CRDS, poolCrd());
    const c = await client().post(POOLS, pool("p1"));
    const u = await client().put(`${POOLS}/p1`, { ...c.body, spec: { addresses: ["192.0.2.0/29"] } });
    assert.equal(u.body.metadata.generation, 2);
  });

  it("prints a custom resource's additionalPrinterColumns in Table output", async () => {
    await client().post(CRDS, poolCrd());
    const c = await client().post(POOLS, pool("p1"));
    await client().put(`${POOLS}/p1/status`, { ...c.body, status: { assigned: 3 } });
    const t = await client().get(POOLS, { Accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json" });
    const cols = (t.body.columnDefinitions as { name: string }[]).map((x) => x.name);
    assert.ok(cols.includes("Assigned"), cols.join(","));
    assert.ok((t.body.rows[0].cells as unknown[]).includes(3));
  });

  it("refuses strategic merge patch on a custom resource with 415", async () => {
    await client().post(CRDS, poolCrd());
    await client().post(POOLS, pool("p1"));
    const r = await client().patch(`${POOLS}/p1`, "application/strategic-merge-patch+json", { spec: { x: 1 } });
    assert.equal(r.status, 415);
  });

  it("answers 422 to a CRD whose name is not plural.group", async () => {
    const bad = poolCrd();
    (bad.metadata as { name: string }).name = "pools.berth.dev";
    const r = await client().post(CRDS, bad);
    assert.equal(r.status, 422);
    assert.equal(r.body.details.causes[0].field, "metadata.name");
  });

  it("removes the custom resources and stops serving them when the CRD is deleted", async () => {
    await client().post(CRDS, poolCrd());
    await client().post(POOLS, pool("p1"));
    const d = await client().del(`${CRDS}/addresspools.berth.dev`);
    assert.equal(d.status, 200);
    assert.equal((await client().get(`${CRDS}/addresspools.berth.dev`)).status, 404);
    assert.equal((await client().get(POOLS)).status, 404);
    // A CRD made again starts empty.
    await client().post(CRDS, poolCrd());
    assert.deepEqual((await client().get(POOLS)).body.items, []);
  });

  it("answers a custom resource DELETE with a Success Status (the CR store does not return the object)", async () => {
    await client().post(CRDS, poolCrd());
    await client().post(POOLS, pool("p1"));
    const d = await client().del(`${POOLS}/p1`);
    assert.equal(d.status, 200);
    assert.equal(d.body.kind, "Status");
    assert.equal(d.body.details.kind, "addresspools");
    assert.equal(d.body.details.group, "berth.dev");
  });

  it("ends watches on a custom resource when its CRD is deleted", async () => {
    await client().post(CRDS, poolCrd());
    await client().post(POOLS, pool("p1"));
    const w = await client().watch(POOLS);
    assert.equal((await w.next())?.type, "ADDED");
    await client().del(`${CRDS}/addresspools.berth.dev`);
    assert.equal((await w.next())?.type, "DELETED");
    assert.ok(await w.waitEnd());
  });

  it("serves a namespaced custom resource under its namespaces", async () => {
    const crd = poolCrd({ scope: "Namespaced" });
    await client().post(CRDS, crd);
    const r = await client().post("/apis/berth.dev/v1alpha1/namespaces/default/addresspools", pool("p1"));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.metadata.namespace, "default");
  });

  it("serves every served version of a CRD from one storage, each object in the version asked for", async () => {
    const crd = poolCrd();
    const spec = crd.spec as { versions: Record<string, unknown>[] };
    spec.versions.push({ name: "v1beta1", served: true, storage: false, schema: { openAPIV3Schema: { type: "object" } } });
    await client().post(CRDS, crd);
    await client().post(POOLS, pool("p1"));
    const other = await client().get("/apis/berth.dev/v1beta1/addresspools/p1");
    assert.equal(other.status, 200);
    assert.equal(other.body.apiVersion, "berth.dev/v1beta1");
    const group = await client().get("/apis/berth.dev");
    assert.equal(group.body.preferredVersion.version, "v1beta1");
  });
});

describe("sandbox apiserver: custom resources and their structural schema", () => {
  const { client } = useServer();
  const WIDGETS = "/apis/example.com/v1/namespaces/default/widgets";

  beforeEach(async () => {
    const r = await client().post(CRDS, {
      metadata: { name: "widgets.example.com" },
      spec: {
        group: "example.com", scope: "Namespaced", names: { plural: "widgets", kind: "Widget" },
        versions: [{
          name: "v1", served: true, storage: true,
          schema: { openAPIV3Schema: {
            type: "object",
            properties: {
              spec: {
                type: "object",
                required: ["size"],
                properties: {
                  size: { type: "integer", minimum: 1, maximum: 10 },
                  mode: { type: "string", enum: ["fast", "slow"], default: "fast" },
                  autoAssign: { type: "boolean", default: true },
                  name: { type: "string", maxLength: 5, pattern: "^[a-z]+$" },
                  tags: { type: "array", maxItems: 2, items: { type: "string" } },
                  port: { "x-kubernetes-int-or-string": true },
                  note: { type: "string", nullable: true },
                  extra: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
                },
              },
              status: { type: "object", properties: { ready: { type: "boolean" } } },
            },
          } },
        }],
      },
    });
    assert.equal(r.status, 201, r.text);
  });

  const widget = (spec: Record<string, unknown>): Record<string, unknown> =>
    ({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" }, spec });

  it("applies the schema's defaults to missing fields", async () => {
    const r = await client().post(WIDGETS, widget({ size: 3 }));
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body.spec, { size: 3, mode: "fast", autoAssign: true });
  });

  it("prunes fields the schema does not declare, with a warning, and keeps preserved subtrees", async () => {
    const r = await client().post(WIDGETS, widget({ size: 3, bogus: 1, extra: { anything: [1] } }));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.spec.bogus, undefined);
    assert.deepEqual(r.body.spec.extra, { anything: [1] });
    assert.equal(r.headers.get("warning"), '299 - "unknown field \\"spec.bogus\\""');
  });

  it("refuses an undeclared field under fieldValidation=Strict", async () => {
    const r = await client().post(`${WIDGETS}?fieldValidation=Strict`, widget({ size: 3, bogus: 1 }));
    assert.equal(r.status, 400);
    assert.match(r.body.message, /strict decoding error: unknown field "spec\.bogus"/);
  });

  it("answers 422 with kube-openapi's message for a value of the wrong type", async () => {
    const r = await client().post(WIDGETS, widget({ size: "3" }));
    assert.equal(r.status, 422);
    assert.equal(r.body.details.causes[0].field, "spec.size");
    assert.equal(r.body.message, 'Widget.example.com "w" is invalid: spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"');
  });

  it("answers 422 for a missing required field, an unsupported enum value and out-of-range numbers", async () => {
    const missing = await client().post(WIDGETS, widget({ mode: "fast" }));
    assert.equal(missing.status, 422);
    assert.deepEqual(missing.body.details.causes, [{ reason: "FieldValueRequired", field: "spec.size", message: "Required value" }]);
    const e = await client().post(WIDGETS, widget({ size: 3, mode: "medium" }));
    assert.match(e.body.message, /spec\.mode: Unsupported value: "medium": supported values: "fast", "slow"/);
    const big = await client().post(WIDGETS, widget({ size: 11 }));
    assert.match(big.body.message, /spec\.size in body should be less than or equal to 10/);
  });

  it("checks maxLength, pattern and maxItems", async () => {
    const r = await client().post(WIDGETS, widget({ size: 1, name: "Abcdef", tags: ["a", "b", "c"] }));
    assert.equal(r.status, 422);
    const fields = (r.body.details.causes as { field: string }[]).map((c) => c.field).sort();
    assert.deepEqual(fields, ["spec.name", "spec.name", "spec.tags"]);
  });

  it("takes an int or a string for x-kubernetes-int-or-string and keeps null only where nullable", async () => {
    const r = await client().post(WIDGETS, widget({ size: 1, port: "http", note: null, name: null }));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.spec.port, "http");
    assert.equal(r.body.spec.note, null);
    assert.equal("name" in r.body.spec, false);
  });

  it("validates status writes against the schema too", async () => {
    const c = await client().post(WIDGETS, widget({ size: 1 }));
    const r = await client().put(`${WIDGETS}/w`, { ...c.body, spec: { size: 1, mode: "slow" } });
    assert.equal(r.status, 200, r.text);
    const bad = await client().patch(`${WIDGETS}/w`, "application/merge-patch+json", { status: { ready: "yes" } });
    assert.equal(bad.status, 422);
  });
});
