// Typed decoding of built-in kinds: unknown fields and fieldValidation, wrong JSON types as 400 decode errors.
import assert from "node:assert/strict";
import { useServer } from "./apiserver-client.js";

const SVC = "/api/v1/namespaces/default/services";

function service(spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: "v1", kind: "Service", metadata: { name: "web" }, spec: { ports: [{ port: 80 }], ...spec } };
}

describe("sandbox apiserver: typed decoding and fieldValidation", () => {
  const { client } = useServer();

  it("refuses an unknown field with fieldValidation=Strict (kubectl's default) with kube's 400 message", async () => {
    const r = await client().post(`${SVC}?fieldValidation=Strict`, service({ bogus: 1 }));
    assert.equal(r.status, 400);
    assert.equal(r.body.reason, "BadRequest");
    assert.equal(r.body.message, 'Service in version "v1" cannot be handled as a Service: strict decoding error: unknown field "spec.bogus"');
  });

  it("names unknown fields inside lists with their index", async () => {
    const r = await client().post(`${SVC}?fieldValidation=Strict`, service({ ports: [{ port: 80, prot: "TCP" }] }));
    assert.equal(r.status, 400);
    assert.match(r.body.message, /unknown field "spec\.ports\[0\]\.prot"/);
  });

  it("drops an unknown field and answers a Warning header without fieldValidation (Warn)", async () => {
    const r = await client().post(SVC, service({ bogus: 1 }));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.spec.bogus, undefined);
    assert.equal(r.headers.get("warning"), '299 - "unknown field \\"spec.bogus\\""');
  });

  it("drops an unknown field silently with fieldValidation=Ignore", async () => {
    const r = await client().post(`${SVC}?fieldValidation=Ignore`, service({ bogus: 1 }));
    assert.equal(r.status, 201);
    assert.equal(r.body.spec.bogus, undefined);
    assert.equal(r.headers.get("warning"), null);
  });

  it("answers 400 to an unsupported fieldValidation value", async () => {
    const r = await client().post(`${SVC}?fieldValidation=Loose`, service({}));
    assert.equal(r.status, 400);
  });

  it("answers a field of the wrong JSON type with Go's unmarshal error as 400, whatever fieldValidation says", async () => {
    const r = await client().post(`${SVC}?fieldValidation=Ignore`, service({ ports: [{ port: "80" }] }));
    assert.equal(r.status, 400);
    assert.equal(r.body.message,
      'Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32');
  });

  it("reports a wrong type deep in a DaemonSet's pod template with the innermost Go struct", async () => {
    const r = await client().post("/apis/apps/v1/namespaces/default/daemonsets", {
      apiVersion: "apps/v1", kind: "DaemonSet", metadata: { name: "d" },
      spec: { selector: { matchLabels: { a: "b" } }, template: { metadata: { labels: { a: "b" } },
        spec: { containers: [{ name: "c", image: "i", env: [{ name: true, value: "2" }] }] } } },
    });
    assert.equal(r.status, 400);
    assert.match(r.body.message, /json: cannot unmarshal bool into Go struct field EnvVar\.spec\.template\.spec\.containers\.env\.name of type string$/);
  });

  it("accepts both numbers and strings for IntOrString fields", async () => {
    const r = await client().post(SVC, service({ ports: [{ name: "a", port: 80, targetPort: 8080 }, { name: "b", port: 81, targetPort: "http" }] }));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.headers.get("warning"), null);
  });

  it("refuses an unknown field a strategic merge patch brings in, under Strict, with the patch message", async () => {
    await client().post(SVC, service({}));
    const r = await client().req("PATCH", `${SVC}/web?fieldValidation=Strict`, JSON.stringify({ spec: { bogus: 1 } }),
      { "Content-Type": "application/strategic-merge-patch+json" });
    assert.equal(r.status, 400);
    assert.equal(r.body.message, 'strict decoding error: unknown field "spec.bogus"');
  });

  it("checks metadata too: an unknown metadata field is an unknown field", async () => {
    const r = await client().post(`${SVC}?fieldValidation=Strict`, { ...service({}), metadata: { name: "web", lables: { a: "b" } } });
    assert.equal(r.status, 400);
    assert.match(r.body.message, /unknown field "metadata\.lables"/);
  });

  it("leaves custom resources' fields alone (no typed schema here)", async () => {
    await client().post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {
      metadata: { name: "things.example.com" },
      spec: { group: "example.com", scope: "Namespaced", names: { plural: "things", kind: "Thing" },
        versions: [{ name: "v1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } } }] },
    });
    const r = await client().post("/apis/example.com/v1/namespaces/default/things?fieldValidation=Strict",
      { apiVersion: "example.com/v1", kind: "Thing", metadata: { name: "t" }, spec: { anything: [1, "x"] } });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body.spec.anything, [1, "x"]);
  });
});
