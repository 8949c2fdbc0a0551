// list: pagination with limit/continue, resourceVersion semantics, label and field selectors.
import assert from "node:assert/strict";
import { CM, configMap, useServer, type Client } from "./apiserver-client.js";

function names(body: { items: { metadata: { name: string } }[] }): string[] {
  return body.items.map((i) => i.metadata.name);
}

async function seed(client: Client, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await client.post(CM, configMap(`cm-${String(i).padStart(2, "0")}`));
}

describe("sandbox apiserver: list", () => {
  const { server, client } = useServer({ historyLimit: 50 });

  it("returns items sorted by name with the list's kind and the current resourceVersion", async () => {
    await client().post(CM, configMap("b"));
    await client().post(CM, configMap("a"));
    const r = await client().get(CM);
    assert.equal(r.body.kind, "ConfigMapList");
    assert.equal(r.body.apiVersion, "v1");
    assert.deepEqual(names(r.body), ["a", "b"]);
    assert.equal(r.body.metadata.resourceVersion, server().store.resourceVersion());
  });

  it("leaves apiVersion and kind out of the items of a built-in list, as typed lists do", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().get(CM);
    assert.equal(r.body.items[0].kind, undefined);
    assert.equal(r.body.items[0].apiVersion, undefined);
  });

  it("lists across namespaces on the cluster-wide path and within one on the namespaced path", async () => {
    await client().post(CM, configMap("a"));
    await client().post("/api/v1/namespaces/kube-system/configmaps", configMap("b"));
    const all = await client().get("/api/v1/configmaps");
    assert.deepEqual(names(all.body), ["a", "b"]);
    const sys = await client().get("/api/v1/namespaces/kube-system/configmaps");
    assert.deepEqual(names(sys.body), ["b"]);
  });

  it("returns an empty items array, not null, when nothing matches", async () => {
    const r = await client().get(CM);
    assert.deepEqual(r.body.items, []);
  });

  it("pages with limit and continue, with remainingItemCount, until no continue is left", async () => {
    await seed(client(), 5);
    const p1 = await client().get(`${CM}?limit=2`);
    assert.deepEqual(names(p1.body), ["cm-00", "cm-01"]);
    assert.equal(p1.body.metadata.remainingItemCount, 3);
    assert.ok(p1.body.metadata.continue);
    const p2 = await client().get(`${CM}?limit=2&continue=${encodeURIComponent(p1.body.metadata.continue)}`);
    assert.deepEqual(names(p2.body), ["cm-02", "cm-03"]);
    const p3 = await client().get(`${CM}?limit=2&continue=${encodeURIComponent(p2.body.metadata.continue)}`);
    assert.deepEqual(names(p3.body), ["cm-04"]);
    assert.equal(p3.body.metadata.continue, undefined);
  });

  it("serves later pages from the first page's snapshot (created objects absent, deleted ones present)", async () => {
    await seed(client(), 4);
    const p1 = await client().get(`${CM}?limit=2`);
    await client().post(CM, configMap("cm-99"));
    await client().del(`${CM}/cm-03`);
    const p2 = await client().get(`${CM}?limit=10&continue=${encodeURIComponent(p1.body.metadata.continue)}`);
    assert.deepEqual(names(p2.body), ["cm-02", "cm-03"]);
    assert.equal(p2.body.metadata.resourceVersion, p1.body.metadata.resourceVersion);
  });

  it("answers 410 Expired to a continue token older than the retained history", async () => {
    await seed(client(), 3);
    const p1 = await client().get(`${CM}?limit=1`);
    server().faults.expireHistory();
    await client().post(CM, configMap("x"));
    const r = await client().get(`${CM}?limit=1&continue=${encodeURIComponent(p1.body.metadata.continue)}`);
    assert.equal(r.status, 410);
    assert.equal(r.body.reason, "Expired");
  });

  it("answers 400 to a continue token that is not one", async () => {
    const r = await client().get(`${CM}?limit=1&continue=garbage`);
    assert.equal(r.status, 400);
  });

  it("answers 400 to continue combined with a resourceVersion", async () => {
    await seed(client(), 2);
    const p1 = await client().get(`${CM}?limit=1`);
    const r = await client().get(`${CM}?limit=1&resourceVersion=1&continue=${encodeURIComponent(p1.body.metadata.continue)}`);
    assert.equal(r.status, 400);
  });

  it("ignores limit for resourceVersion=0 (served from the watch cache in 1.32)", async () => {
    await seed(client(), 3);
    const r = await client().get(`${CM}?limit=1&resourceVersion=0`);
    assert.equal(r.body.items.length, 3);
    assert.equal(r.body.metadata.continue, undefined);
  });

  it("lists the state at an older resourceVersion with resourceVersionMatch=Exact", async () => {
    const a = await client().post(CM, configMap("a"));
    await client().post(CM, configMap("b"));
    const r = await client().get(`${CM}?resourceVersion=${a.body.metadata.resourceVersion}&resourceVersionMatch=Exact`);
    assert.deepEqual(names(r.body), ["a"]);
    assert.equal(r.body.metadata.resourceVersion, a.body.metadata.resourceVersion);
  });

  it("answers 410 Expired to an Exact list at a resourceVersion older than the history", async () => {
    const a = await client().post(CM, configMap("a"));
    server().faults.expireHistory();
    const r = await client().get(`${CM}?resourceVersion=${a.body.metadata.resourceVersion}&resourceVersionMatch=Exact`);
    assert.equal(r.status, 410);
    assert.equal(r.body.message, "The resourceVersion for the provided list is too old.");
  });

  it("answers 504 with ResourceVersionTooLarge for a resourceVersion from the future", async () => {
    const r = await client().get(`${CM}?resourceVersion=999999&resourceVersionMatch=NotOlderThan`);
    assert.equal(r.status, 504);
    assert.equal(r.body.details.causes[0].reason, "ResourceVersionTooLarge");
  });

  it("answers 422 to resourceVersionMatch without resourceVersion", async () => {
    const r = await client().get(`${CM}?resourceVersionMatch=Exact`);
    assert.equal(r.status, 422);
  });

  it("serves a Table for a list when kubectl asks for one", async () => {
    await seed(client(), 2);
    const r = await client().get(`${CM}?limit=1`, { Accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json" });
    assert.equal(r.body.kind, "Table");
    assert.equal(r.body.rows.length, 1);
    assert.ok(r.body.metadata.continue);
  });
});

describe("sandbox apiserver: label selectors", () => {
  const { client } = useServer();

  const cases: [string, string[]][] = [
    ["app=web", ["a", "b"]],
    ["app==web", ["a", "b"]],
    ["app!=web", ["c", "d"]],
    ["app in (web,db)", ["a", "b", "c"]],
    ["app notin (web)", ["c", "d"]],
    ["tier", ["a", "c"]],
    ["!tier", ["b", "d"]],
    ["app=web,tier=front", ["a"]],
    ["app=web, !tier", ["b"]],
    ["", ["a", "b", "c", "d"]],
  ];

  for (const [selector, expected] of cases) {
    it(`selects ${JSON.stringify(expected)} with labelSelector ${JSON.stringify(selector)}`, async () => {
      await client().post(CM, configMap("a", { app: "web", tier: "front" }));
      await client().post(CM, configMap("b", { app: "web" }));
      await client().post(CM, configMap("c", { app: "db", tier: "back" }));
      await client().post(CM, configMap("d", {}));
      const r = await client().get(`${CM}?labelSelector=${encodeURIComponent(selector)}`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(names(r.body), expected);
    });
  }

  for (const bad of ["app=(", "app in web", "=x", "app=web,", "a b", "app in (web", "-bad=x"]) {
    it(`answers 400 to the malformed labelSelector ${JSON.stringify(bad)}`, async () => {
      const r = await client().get(`${CM}?labelSelector=${encodeURIComponent(bad)}`);
      assert.equal(r.status, 400, `${bad}: ${r.text}`);
      assert.equal(r.body.reason, "BadRequest");
    });
  }
});

describe("sandbox apiserver: field selectors", () => {
  const { client } = useServer({ podGracefulDeletion: false });
  const PODS = "/api/v1/namespaces/default/pods";

  async function pod(name: string, nodeName?: string): Promise<void> {
    const r = await client().post(PODS, { metadata: { name }, spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: "c", image: "x" }] } });
    assert.equal(r.status, 201, r.text);
  }

  it("selects pods by spec.nodeName, including the empty value for unscheduled pods", async () => {
    await pod("p1", "n1");
    await pod("p2", "n2");
    await pod("p3");
    assert.deepEqual(names((await client().get(`${PODS}?fieldSelector=spec.nodeName%3Dn1`)).body), ["p1"]);
    assert.deepEqual(names((await client().get(`${PODS}?fieldSelector=spec.nodeName%3D`)).body), ["p3"]);
    assert.deepEqual(names((await client().get(`${PODS}?fieldSelector=spec.nodeName!%3Dn1`)).body), ["p2", "p3"]);
  });

  it("selects pods by status.phase", async () => {
    await pod("p1", "n1");
    await pod("p2", "n1");
    const cur = await client().get(`${PODS}/p2`);
    await client().put(`${PODS}/p2/status`, { ...cur.body, status: { phase: "Running" } });
    assert.deepEqual(names((await client().get(`${PODS}?fieldSelector=status.phase%3DRunning`)).body), ["p2"]);
  });

  it("selects by metadata.name and metadata.namespace on any kind", async () => {
    await client().post(CM, configMap("a"));
    await client().post(CM, configMap("b"));
    assert.deepEqual(names((await client().get(`${CM}?fieldSelector=metadata.name%3Db`)).body), ["b"]);
    assert.deepEqual(names((await client().get(`/api/v1/configmaps?fieldSelector=metadata.namespace%3Ddefault,metadata.name%3Da`)).body), ["a"]);
  });

  it("selects events by involvedObject fields, as kubectl describe does", async () => {
    const ev = (name: string, obj: string): Record<string, unknown> => ({
      metadata: { name }, involvedObject: { kind: "Service", namespace: "default", name: obj, uid: `uid-${obj}` },
      reason: "R", message: "m", type: "Normal",
    });
    await client().post("/api/v1/namespaces/default/events", ev("e1", "web"));
    await client().post("/api/v1/namespaces/default/events", ev("e2", "db"));
    const r = await client().get(`/api/v1/namespaces/default/events?fieldSelector=${encodeURIComponent("involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=Service,involvedObject.uid=uid-web")}`);
    assert.deepEqual(names(r.body), ["e1"]);
  });

  it("answers 400 with kube's message for a field the kind does not index", async () => {
    const r = await client().get(`${CM}?fieldSelector=data.k%3Dv`);
    assert.equal(r.status, 400);
    assert.equal(r.body.message, "field label not supported: data.k");
  });

  it("answers 400 to a field selector without an operator", async () => {
    const r = await client().get(`${CM}?fieldSelector=metadata.name`);
    assert.equal(r.status, 400);
  });

  it("unescapes \\, and \\= in field selector values", async () => {
    await client().post("/api/v1/namespaces/default/events", {
      metadata: { name: "e1" }, involvedObject: { kind: "Service", name: "x", fieldPath: "spec.containers{a,b=c}" }, reason: "R",
    });
    const sel = encodeURIComponent("involvedObject.fieldPath=spec.containers{a\\,b\\=c}");
    assert.deepEqual(names((await client().get(`/api/v1/namespaces/default/events?fieldSelector=${sel}`)).body), ["e1"]);
  });
});
