// Deletion: finalizers and deletionTimestamp, namespaces, propagationPolicy with ownerReferences, pod grace periods.
import assert from "node:assert/strict";
import { CM, configMap, useServer } from "./apiserver-client.js";

describe("sandbox apiserver: finalizers and deletion", () => {
  const { client } = useServer();

  it("keeps an object with finalizers after DELETE, setting deletionTimestamp and sending MODIFIED", async () => {
    const c = await client().post(CM, { ...configMap("a"), metadata: { name: "a", finalizers: ["berth.dev/cleanup"] } });
    const w = await client().watch(`${CM}?resourceVersion=${c.body.metadata.resourceVersion}`);
    const d = await client().del(`${CM}/a`);
    assert.equal(d.status, 200);
    assert.equal(d.body.kind, "ConfigMap");
    assert.match(d.body.metadata.deletionTimestamp, /Z$/);
    assert.equal(d.body.metadata.deletionGracePeriodSeconds, 0);
    const ev = await w.next();
    assert.equal(ev?.type, "MODIFIED");
    assert.ok(ev?.object.metadata.deletionTimestamp);
    assert.equal((await client().get(`${CM}/a`)).status, 200);
  });

  it("removes the object, with a DELETED event, once its last finalizer is removed", async () => {
    await client().post(CM, { metadata: { name: "a", finalizers: ["x/one", "x/two"] } });
    const d = await client().del(`${CM}/a`);
    const w = await client().watch(`${CM}?resourceVersion=${d.body.metadata.resourceVersion}`);
    const one = await client().put(`${CM}/a`, { ...d.body, metadata: { ...d.body.metadata, finalizers: ["x/two"] } });
    assert.equal(one.status, 200);
    assert.equal((await client().get(`${CM}/a`)).status, 200);
    await client().put(`${CM}/a`, { ...one.body, metadata: { ...one.body.metadata, finalizers: [] } });
    assert.equal((await client().get(`${CM}/a`)).status, 404);
    const evs = await w.take(2);
    assert.deepEqual(evs.map((e) => e.type), ["MODIFIED", "DELETED"]);
  });

  it("refuses new finalizers on an object being deleted (422)", async () => {
    await client().post(CM, { metadata: { name: "a", finalizers: ["x/one"] } });
    const d = await client().del(`${CM}/a`);
    const r = await client().put(`${CM}/a`, { ...d.body, metadata: { ...d.body.metadata, finalizers: ["x/one", "x/new"] } });
    assert.equal(r.status, 422);
    assert.match(r.body.message, /no new finalizers can be added if the object is being deleted/);
  });

  it("keeps deletionTimestamp whatever an update sends", async () => {
    await client().post(CM, { metadata: { name: "a", finalizers: ["x/one"] } });
    const d = await client().del(`${CM}/a`);
    const { deletionTimestamp: _gone, ...meta } = d.body.metadata;
    const r = await client().put(`${CM}/a`, { ...d.body, metadata: meta, data: { k: "v" } });
    assert.equal(r.body.metadata.deletionTimestamp, d.body.metadata.deletionTimestamp);
  });

  it("answers a second DELETE of a terminating object with the object, unchanged", async () => {
    await client().post(CM, { metadata: { name: "a", finalizers: ["x/one"] } });
    const d1 = await client().del(`${CM}/a`);
    const d2 = await client().del(`${CM}/a`);
    assert.equal(d2.status, 200);
    assert.equal(d2.body.metadata.resourceVersion, d1.body.metadata.resourceVersion);
  });

  it("bumps generation when deletion starts on kinds that track it", async () => {
    const c = await client().post("/apis/apps/v1/namespaces/default/daemonsets", {
      metadata: { name: "d", finalizers: ["x/one"] },
      spec: { selector: { matchLabels: { a: "b" } }, template: { metadata: { labels: { a: "b" } }, spec: { containers: [{ name: "c", image: "i" }] } } },
    });
    const d = await client().del("/apis/apps/v1/namespaces/default/daemonsets/d");
    assert.equal(d.body.metadata.generation, c.body.metadata.generation + 1);
  });
});

describe("sandbox apiserver: namespaces", () => {
  const { client } = useServer();

  it("deletes a namespace's objects and then the namespace", async () => {
    await client().post("/api/v1/namespaces", { metadata: { name: "team" } });
    await client().post("/api/v1/namespaces/team/configmaps", configMap("a"));
    const d = await client().del("/api/v1/namespaces/team");
    assert.equal(d.status, 200);
    assert.equal((await client().get("/api/v1/namespaces/team/configmaps/a")).status, 404);
    assert.equal((await client().get("/api/v1/namespaces/team")).status, 404);
  });

  it("keeps a namespace Terminating while an object in it has finalizers, and forbids new content (403)", async () => {
    await client().post("/api/v1/namespaces", { metadata: { name: "team" } });
    await client().post("/api/v1/namespaces/team/configmaps", { metadata: { name: "held", finalizers: ["x/one"] } });
    await client().del("/api/v1/namespaces/team");
    const ns = await client().get("/api/v1/namespaces/team");
    assert.equal(ns.status, 200);
    assert.equal(ns.body.status.phase, "Terminating");
    assert.ok(ns.body.metadata.deletionTimestamp);
    const create = await client().post("/api/v1/namespaces/team/configmaps", configMap("b"));
    assert.equal(create.status, 403);
    assert.equal(create.body.reason, "Forbidden");
    assert.match(create.body.message, /because it is being terminated/);
    const held = await client().get("/api/v1/namespaces/team/configmaps/held");
    await client().put("/api/v1/namespaces/team/configmaps/held", { ...held.body, metadata: { ...held.body.metadata, finalizers: [] } });
    assert.equal((await client().get("/api/v1/namespaces/team")).status, 404);
  });

  it("puts the metadata.name label back when an update drops it", async () => {
    const c = await client().post("/api/v1/namespaces", { metadata: { name: "team", labels: { x: "y" } } });
    const u = await client().put("/api/v1/namespaces/team", { ...c.body, metadata: { ...c.body.metadata, labels: { x: "z" } } });
    assert.deepEqual(u.body.metadata.labels, { x: "z", "kubernetes.io/metadata.name": "team" });
  });

  it("gives a new namespace the kubernetes finalizer, phase Active and the metadata.name label", async () => {
    const r = await client().post("/api/v1/namespaces", { metadata: { name: "team" } });
    assert.deepEqual(r.body.spec.finalizers, ["kubernetes"]);
    assert.equal(r.body.status.phase, "Active");
    assert.equal(r.body.metadata.labels["kubernetes.io/metadata.name"], "team");
  });
});

describe("sandbox apiserver: propagationPolicy and ownerReferences", () => {
  const { client } = useServer();

  async function ownerAndChild(): Promise<{ uid: string }> {
    const owner = await client().post(CM, configMap("owner"));
    const uid = owner.body.metadata.uid as string;
    await client().post(CM, {
      metadata: { name: "child", ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid }] },
    });
    return { uid };
  }

  it("deletes dependents of a deleted owner by default (Background)", async () => {
    await ownerAndChild();
    await client().del(`${CM}/owner`);
    assert.equal((await client().get(`${CM}/child`)).status, 404);
  });

  it("deletes dependents with propagationPolicy=Foreground", async () => {
    await ownerAndChild();
    await client().del(`${CM}/owner`, { kind: "DeleteOptions", apiVersion: "v1", propagationPolicy: "Foreground" });
    assert.equal((await client().get(`${CM}/child`)).status, 404);
    assert.equal((await client().get(`${CM}/owner`)).status, 404);
  });

  it("keeps dependents and drops their ownerReference with propagationPolicy=Orphan", async () => {
    await ownerAndChild();
    await client().del(`${CM}/owner?propagationPolicy=Orphan`);
    const child = await client().get(`${CM}/child`);
    assert.equal(child.status, 200);
    assert.equal(child.body.metadata.ownerReferences, undefined);
  });

  it("keeps a dependent that has another owner, dropping only the deleted owner's reference", async () => {
    const { uid } = await ownerAndChild();
    const other = await client().post(CM, configMap("other"));
    const child = await client().get(`${CM}/child`);
    await client().put(`${CM}/child`, { ...child.body, metadata: { ...child.body.metadata, ownerReferences: [
      { apiVersion: "v1", kind: "ConfigMap", name: "owner", uid },
      { apiVersion: "v1", kind: "ConfigMap", name: "other", uid: other.body.metadata.uid },
    ] } });
    await client().del(`${CM}/owner`);
    const after = await client().get(`${CM}/child`);
    assert.equal(after.status, 200);
    assert.deepEqual(after.body.metadata.ownerReferences.map((r: { name: string }) => r.name), ["other"]);
  });

  it("answers 422 to an unknown propagationPolicy", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().del(`${CM}/a?propagationPolicy=Sideways`);
    assert.equal(r.status, 422);
  });
});

describe("sandbox apiserver: pod binding", () => {
  const { client } = useServer();
  const PODS = "/api/v1/namespaces/default/pods";
  const bind = (node: string): Record<string, unknown> =>
    ({ apiVersion: "v1", kind: "Binding", metadata: { name: "p" }, target: { apiVersion: "v1", kind: "Node", name: node } });

  it("binds an unscheduled pod to a node through pods/binding, setting nodeName and PodScheduled", async () => {
    await client().post(PODS, { metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "i" }] } });
    const w = await client().watch(`${PODS}?fieldSelector=spec.nodeName%3Dn1`);
    const r = await client().post(`${PODS}/p/binding`, bind("n1"));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.status, "Success");
    const pod = await client().get(`${PODS}/p`);
    assert.equal(pod.body.spec.nodeName, "n1");
    assert.ok((pod.body.status.conditions as { type: string; status: string }[]).some((c) => c.type === "PodScheduled" && c.status === "True"));
    assert.equal((await w.next())?.type, "ADDED");
  });

  it("answers 409 to binding a pod that is already bound", async () => {
    await client().post(PODS, { metadata: { name: "p" }, spec: { nodeName: "n1", containers: [{ name: "c", image: "i" }] } });
    const r = await client().post(`${PODS}/p/binding`, bind("n2"));
    assert.equal(r.status, 409);
    assert.match(r.body.message, /is already assigned to node "n1"/);
  });

  // BindingREST.setPodHostAndAnnotations: the Binding's uid is a storage precondition (a pod deleted and created
  // again under the same name is not the pod the scheduler decided for); a mismatch is a 409.
  it("answers 409 to a binding whose uid is not the pod's, and binds nothing", async () => {
    const created = await client().post(PODS, { metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "i" }] } });
    const body = bind("n1");
    const r = await client().post(`${PODS}/p/binding`, { ...body, metadata: { name: "p", uid: "an-older-pod" } });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.message, `Operation cannot be fulfilled on pods "p": Precondition failed: UID in precondition: an-older-pod, UID in object meta: ${created.body.metadata.uid}`);
    assert.equal((await client().get(`${PODS}/p`)).body.spec.nodeName, undefined);
    const ok = await client().post(`${PODS}/p/binding`, { ...body, metadata: { name: "p", uid: created.body.metadata.uid } });
    assert.equal(ok.status, 201, ok.text);
  });
});

describe("sandbox apiserver: pod eviction", () => {
  const { client } = useServer();
  const PODS = "/api/v1/namespaces/default/pods";

  it("lists pods/eviction as policy/v1 Eviction in discovery, as kubectl drain checks", async () => {
    const r = await client().get("/api/v1");
    const ev = (r.body.resources as { name: string; group?: string; version?: string; kind: string; verbs: string[] }[])
      .find((x) => x.name === "pods/eviction");
    assert.deepEqual(ev && { group: ev.group, version: ev.version, kind: ev.kind, verbs: ev.verbs },
      { group: "policy", version: "v1", kind: "Eviction", verbs: ["create"] });
  });

  it("evicts a pod (no PodDisruptionBudgets here) with the Eviction's delete options", async () => {
    await client().post(PODS, { metadata: { name: "p" }, spec: { nodeName: "n1", containers: [{ name: "c", image: "i" }] } });
    const r = await client().post(`${PODS}/p/eviction`, {
      apiVersion: "policy/v1", kind: "Eviction", metadata: { name: "p", namespace: "default" }, deleteOptions: { gracePeriodSeconds: 0 },
    });
    assert.equal(r.status, 201, r.text);
    assert.equal((await client().get(`${PODS}/p`)).status, 404);
  });

  it("answers 404 to evicting a pod that does not exist", async () => {
    const r = await client().post(`${PODS}/nope/eviction`, { apiVersion: "policy/v1", kind: "Eviction", metadata: { name: "nope" } });
    assert.equal(r.status, 404);
  });
});

describe("sandbox apiserver: pod deletion", () => {
  const { client } = useServer();
  const PODS = "/api/v1/namespaces/default/pods";

  it("gives a pod bound to a node a grace period; DELETE with gracePeriodSeconds=0 (the kubelet's) removes it", async () => {
    await client().post(PODS, { metadata: { name: "p" }, spec: { nodeName: "n1", containers: [{ name: "c", image: "i" }] } });
    const d = await client().del(`${PODS}/p`);
    assert.equal(d.body.metadata.deletionGracePeriodSeconds, 30);
    assert.equal((await client().get(`${PODS}/p`)).status, 200);
    await client().del(`${PODS}/p`, { kind: "DeleteOptions", apiVersion: "v1", gracePeriodSeconds: 0 });
    assert.equal((await client().get(`${PODS}/p`)).status, 404);
  });

  it("removes an unscheduled pod at once", async () => {
    await client().post(PODS, { metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "i" }] } });
    await client().del(`${PODS}/p`);
    assert.equal((await client().get(`${PODS}/p`)).status, 404);
  });
});
