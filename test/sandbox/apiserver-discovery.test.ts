// Discovery, version, health and authentication of the sandbox API server, over real HTTP.
import assert from "node:assert/strict";
import { Client, useServer } from "./apiserver-client.js";

describe("sandbox apiserver: discovery and auth", () => {
  const { server, client } = useServer();

  it("answers 401 with a Status to requests without a bearer token", async () => {
    const anon = new Client(server(), null);
    const r = await anon.get("/api/v1/namespaces");
    assert.equal(r.status, 401);
    assert.equal(r.body.kind, "Status");
    assert.equal(r.body.reason, "Unauthorized");
  });

  it("answers 401 to a wrong bearer token", async () => {
    const r = await new Client(server(), "not-the-token").get("/api");
    assert.equal(r.status, 401);
  });

  it("serves /healthz, /livez, /readyz and /version without a token", async () => {
    const anon = new Client(server(), null);
    for (const p of ["/healthz", "/livez", "/readyz"]) {
      const r = await anon.get(p);
      assert.equal(r.status, 200, p);
      assert.equal(r.text, "ok");
    }
    const v = await anon.get("/version");
    assert.equal(v.status, 200);
    assert.equal(v.body.major, "1");
    assert.equal(v.body.minor, "32");
    assert.match(v.body.gitVersion, /^v1\.32\.\d+/);
  });

  it("lists v1 at /api and every served group at /apis", async () => {
    const api = await client().get("/api");
    assert.deepEqual(api.body.versions, ["v1"]);
    assert.equal(api.body.kind, "APIVersions");
    const apis = await client().get("/apis");
    assert.equal(apis.body.kind, "APIGroupList");
    const names = (apis.body.groups as { name: string }[]).map((g) => g.name).sort();
    assert.deepEqual(names, ["apiextensions.k8s.io", "apps", "authentication.k8s.io", "authorization.k8s.io",
      "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io", "policy", "rbac.authorization.k8s.io"]);
  });

  it("describes each resource with its kind, scope, verbs, short names and subresources", async () => {
    const r = await client().get("/api/v1");
    assert.equal(r.body.kind, "APIResourceList");
    assert.equal(r.body.groupVersion, "v1");
    const byName = new Map((r.body.resources as { name: string }[]).map((x) => [x.name, x as Record<string, unknown>]));
    const svc = byName.get("services");
    assert.equal(svc?.kind, "Service");
    assert.equal(svc?.namespaced, true);
    assert.deepEqual(svc?.shortNames, ["svc"]);
    assert.ok((svc?.verbs as string[]).includes("watch"));
    assert.equal(byName.get("services/status")?.kind, "Service");
    assert.equal(byName.get("nodes")?.namespaced, false);
    assert.deepEqual(byName.get("nodes")?.shortNames, ["no"]);
    for (const [name, short] of [["pods", "po"], ["namespaces", "ns"], ["events", "ev"], ["configmaps", "cm"],
      ["serviceaccounts", "sa"], ["endpoints", "ep"]]) {
      assert.deepEqual(byName.get(name as string)?.shortNames, [short], name);
    }
    const apps = await client().get("/apis/apps/v1");
    const ds = (apps.body.resources as { name: string; shortNames?: string[] }[]).find((x) => x.name === "daemonsets");
    assert.deepEqual(ds?.shortNames, ["ds"]);
    const crd = await client().get("/apis/apiextensions.k8s.io/v1");
    assert.ok((crd.body.resources as { name: string; shortNames?: string[] }[]).some((x) => x.shortNames?.includes("crd")));
  });

  it("serves aggregated discovery (apidiscovery.k8s.io/v2) when kubectl asks for it first", async () => {
    const accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    const core = await client().get("/api", { Accept: accept });
    assert.equal(core.headers.get("content-type"), "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    assert.equal(core.body.kind, "APIGroupDiscoveryList");
    const v1 = core.body.items[0].versions[0];
    assert.equal(v1.version, "v1");
    const svc = (v1.resources as { resource: string }[]).find((r) => r.resource === "services") as Record<string, unknown>;
    assert.deepEqual(svc.responseKind, { group: "", version: "v1", kind: "Service" });
    assert.equal(svc.scope, "Namespaced");
    assert.deepEqual(svc.shortNames, ["svc"]);
    assert.deepEqual((svc.subresources as { subresource: string }[]).map((s) => s.subresource), ["status"]);
    const apis = await client().get("/apis", { Accept: accept });
    assert.ok((apis.body.items as { metadata: { name: string } }[]).some((g) => g.metadata.name === "apps"));
    const plain = await client().get("/api", { Accept: "application/json" });
    assert.equal(plain.body.kind, "APIVersions");
  });

  it("answers a group's APIGroup with its preferred version", async () => {
    const r = await client().get("/apis/coordination.k8s.io");
    assert.equal(r.body.kind, "APIGroup");
    assert.deepEqual(r.body.preferredVersion, { groupVersion: "coordination.k8s.io/v1", version: "v1" });
  });

  it("answers 404 with a Status for unknown paths, groups and resources", async () => {
    for (const p of ["/apis/nope.example.com", "/apis/apps/v2", "/api/v1/widgets", "/nothing"]) {
      const r = await client().get(p);
      assert.equal(r.status, 404, p);
      assert.equal(r.body.kind, "Status", p);
      assert.equal(r.body.reason, "NotFound", p);
    }
  });

  it("publishes OpenAPI v3 documents whose PATCH operations take fieldValidation, as kubectl checks", async () => {
    const root = await client().get("/openapi/v3");
    const ref = root.body.paths["api/v1"].serverRelativeURL as string;
    const doc = await client().get(ref);
    assert.equal(doc.status, 200);
    const op = doc.body.paths["/api/v1/namespaces/{namespace}/services/{name}"].patch;
    assert.deepEqual(op["x-kubernetes-group-version-kind"], { group: "", version: "v1", kind: "Service" });
    assert.ok((op.parameters as { name: string; in: string }[]).some((p) => p.name === "fieldValidation" && p.in === "query"));
  });

  it("starts with the namespaces every cluster has, each with a default ServiceAccount", async () => {
    const r = await client().get("/api/v1/namespaces");
    const names = (r.body.items as { metadata: { name: string } }[]).map((n) => n.metadata.name);
    assert.deepEqual(names, ["default", "kube-node-lease", "kube-public", "kube-system"]);
    const sa = await client().get("/api/v1/namespaces/default/serviceaccounts/default");
    assert.equal(sa.status, 200);
  });

  it("has the kubernetes Service on the first address of the service CIDR, with its EndpointSlice", async () => {
    const svc = await client().get("/api/v1/namespaces/default/services/kubernetes");
    assert.equal(svc.status, 200);
    assert.equal(svc.body.spec.clusterIP, "10.43.0.1");
    assert.equal(svc.body.spec.ports[0].port, 443);
    const slice = await client().get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes");
    assert.equal(slice.body.ports[0].port, server().port);
    const ep = await client().get("/api/v1/namespaces/default/endpoints/kubernetes");
    assert.equal(ep.body.subsets[0].ports[0].port, server().port);
  });

  it("allows every SelfSubjectAccessReview (kubectl auth can-i) without storing it", async () => {
    const r = await client().post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
      apiVersion: "authorization.k8s.io/v1", kind: "SelfSubjectAccessReview",
      spec: { resourceAttributes: { verb: "delete", resource: "nodes" } },
    });
    assert.equal(r.status, 201);
    assert.equal(r.body.status.allowed, true);
    assert.deepEqual(r.body.spec.resourceAttributes, { verb: "delete", resource: "nodes" });
    assert.equal((await client().get("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")).status, 405);
  });

  it("answers SelfSubjectReview (kubectl auth whoami) with the sandbox's one user", async () => {
    const r = await client().post("/apis/authentication.k8s.io/v1/selfsubjectreviews", { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" });
    assert.equal(r.status, 201);
    assert.equal(r.body.status.userInfo.username, "berth-sandbox-admin");
  });

  it("answers 405 to a method the resource does not take", async () => {
    const r = await client().req("PUT", "/api/v1/namespaces/default/configmaps");
    assert.equal(r.status, 405);
    assert.equal(r.body.reason, "MethodNotAllowed");
  });
});
