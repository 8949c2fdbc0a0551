// Create, read, update and delete against the sandbox API server, checked against kube-apiserver's rules.
import assert from "node:assert/strict";
import { CM, configMap, useServer } from "./apiserver-client.js";

const DS = "/apis/apps/v1/namespaces/default/daemonsets";
const LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases";

function daemonSet(name: string, image = "busybox:1.36"): Record<string, unknown> {
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name },
    spec: {
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "c", image }] } },
    },
  };
}

describe("sandbox apiserver: create, get, update, delete", () => {
  const { server, client } = useServer();

  it("fills uid, creationTimestamp and resourceVersion on create and answers 201", async () => {
    const r = await client().post(CM, configMap("a"));
    assert.equal(r.status, 201);
    assert.match(r.body.metadata.uid, /^[0-9a-f-]{36}$/);
    assert.match(r.body.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.match(r.body.metadata.resourceVersion, /^\d+$/);
    assert.equal(r.body.metadata.namespace, "default");
    assert.equal(r.body.kind, "ConfigMap");
    assert.equal(r.body.apiVersion, "v1");
  });

  it("keeps one global, increasing resourceVersion across kinds", async () => {
    const a = await client().post(CM, configMap("a"));
    const l = await client().post(LEASES, { metadata: { name: "l" }, spec: {} });
    const b = await client().post(CM, configMap("b"));
    const rvs = [a, l, b].map((r) => Number(r.body.metadata.resourceVersion));
    assert.ok(rvs[0]! < rvs[1]! && rvs[1]! < rvs[2]!, `not increasing: ${rvs.join(",")}`);
  });

  it("ignores client-sent uid and creationTimestamp on create", async () => {
    const r = await client().post(CM, { metadata: { name: "a", uid: "x", creationTimestamp: "2000-01-01T00:00:00Z" } });
    assert.equal(r.status, 201);
    assert.notEqual(r.body.metadata.uid, "x");
    assert.notEqual(r.body.metadata.creationTimestamp, "2000-01-01T00:00:00Z");
  });

  it("answers 500 to a create that carries a resourceVersion, as etcd3's store does", async () => {
    const r = await client().post(CM, { metadata: { name: "a", resourceVersion: "5" } });
    assert.equal(r.status, 500);
    assert.equal(r.body.message, "resourceVersion should not be set on objects to be created");
    assert.equal((await client().get(`${CM}/a`)).status, 404);
  });

  it("generates a name from generateName with a five-character suffix", async () => {
    const r = await client().post(CM, { metadata: { generateName: "gen-" } });
    assert.equal(r.status, 201);
    assert.match(r.body.metadata.name, /^gen-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    assert.equal(r.body.metadata.generateName, "gen-");
  });

  it("answers 409 AlreadyExists when creating a name that exists", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().post(CM, configMap("a"));
    assert.equal(r.status, 409);
    assert.equal(r.body.reason, "AlreadyExists");
    assert.equal(r.body.message, 'configmaps "a" already exists');
    assert.deepEqual(r.body.details, { name: "a", group: "", kind: "configmaps" });
  });

  it("answers 404 when creating in a namespace that does not exist", async () => {
    const r = await client().post("/api/v1/namespaces/nope/configmaps", configMap("a"));
    assert.equal(r.status, 404);
    assert.equal(r.body.message, 'namespaces "nope" not found');
  });

  it("answers 400 when the body's namespace differs from the URL's", async () => {
    const r = await client().post(CM, { metadata: { name: "a", namespace: "kube-system" } });
    assert.equal(r.status, 400);
    assert.equal(r.body.reason, "BadRequest");
  });

  it("answers 400 to a malformed JSON body", async () => {
    const r = await client().req("POST", CM, "{not json", { "Content-Type": "application/json" });
    assert.equal(r.status, 400);
    assert.equal(r.body.kind, "Status");
  });

  it("answers 400 when the body's kind is not the resource's", async () => {
    const r = await client().post(CM, { apiVersion: "v1", kind: "Secret", metadata: { name: "a" } });
    assert.equal(r.status, 400);
  });

  it("answers 413 to a body over kube-apiserver's 3 MiB limit", async () => {
    const r = await client().post(CM, configMap("big", {}, { k: "x".repeat(3 * 1024 * 1024) }));
    assert.equal(r.status, 413);
    assert.equal(r.body.reason, "RequestEntityTooLarge");
  });

  it("answers 422 Invalid with field causes for an invalid name", async () => {
    const r = await client().post(CM, configMap("Not_Valid"));
    assert.equal(r.status, 422);
    assert.equal(r.body.reason, "Invalid");
    assert.equal(r.body.details.causes[0].field, "metadata.name");
  });

  it("answers 422 for an invalid label value", async () => {
    const r = await client().post(CM, configMap("a", { k: "bad value!" }));
    assert.equal(r.status, 422);
    assert.ok((r.body.details.causes as { field: string }[]).some((c) => c.field.startsWith("metadata.labels")));
  });

  it("answers 404 NotFound with details for a missing object", async () => {
    const r = await client().get(`${CM}/missing`);
    assert.equal(r.status, 404);
    assert.equal(r.body.message, 'configmaps "missing" not found');
    assert.deepEqual(r.body.details, { name: "missing", group: "", kind: "configmaps" });
  });

  it("qualifies the resource with its group in NotFound messages", async () => {
    const r = await client().get(`${DS}/missing`);
    assert.equal(r.body.message, 'daemonsets.apps "missing" not found');
  });

  it("answers 409 Conflict to an update with a stale resourceVersion", async () => {
    const created = await client().post(CM, configMap("a"));
    const first = await client().put(`${CM}/a`, { ...created.body, data: { x: "1" } });
    assert.equal(first.status, 200);
    const stale = await client().put(`${CM}/a`, { ...created.body, data: { x: "2" } });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.reason, "Conflict");
    assert.match(stale.body.message, /the object has been modified; please apply your changes to the latest version and try again/);
  });

  it("accepts an update without resourceVersion for built-in kinds (unconditional update)", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().put(`${CM}/a`, { metadata: { name: "a" }, data: { x: "1" } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.data, { x: "1" });
  });

  it("answers 400 when the body's name differs from the URL's", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().put(`${CM}/a`, configMap("b"));
    assert.equal(r.status, 400);
  });

  it("answers 404 to an update of a missing configmap", async () => {
    const r = await client().put(`${CM}/a`, configMap("a"));
    assert.equal(r.status, 404);
  });

  it("creates a missing Lease on update (create-on-update), answering 201", async () => {
    const r = await client().put(`${LEASES}/l`, { metadata: { name: "l" }, spec: { holderIdentity: "me" } });
    assert.equal(r.status, 201);
    assert.equal(r.body.spec.holderIdentity, "me");
  });

  it("keeps uid and creationTimestamp across updates whatever the client sends", async () => {
    const c = await client().post(CM, configMap("a"));
    const r = await client().put(`${CM}/a`, { ...c.body, metadata: { ...c.body.metadata, uid: "other", creationTimestamp: "2000-01-01T00:00:00Z" } });
    assert.equal(r.body.metadata.uid, c.body.metadata.uid);
    assert.equal(r.body.metadata.creationTimestamp, c.body.metadata.creationTimestamp);
  });

  it("does not write an update that changes nothing: same resourceVersion", async () => {
    const c = await client().post(CM, configMap("a", {}, { k: "v" }));
    const r = await client().put(`${CM}/a`, c.body);
    assert.equal(r.status, 200);
    assert.equal(r.body.metadata.resourceVersion, c.body.metadata.resourceVersion);
  });

  it("sets generation 1 on create and bumps it on spec changes only", async () => {
    const c = await client().post(DS, daemonSet("d"));
    assert.equal(c.body.metadata.generation, 1);
    const labelled = await client().put(`${DS}/d`, { ...c.body, metadata: { ...c.body.metadata, labels: { x: "y" } } });
    assert.equal(labelled.body.metadata.generation, 1);
    const spec = structuredClone(labelled.body);
    spec.spec.template.spec.containers[0].image = "busybox:1.37";
    const changed = await client().put(`${DS}/d`, spec);
    assert.equal(changed.body.metadata.generation, 2);
    const status = await client().put(`${DS}/d/status`, { ...changed.body, status: { ...changed.body.status, numberReady: 3 } });
    assert.equal(status.body.metadata.generation, 2);
  });

  it("omits emptied labels, annotations and finalizers, as Go's omitempty does", async () => {
    const c = await client().post(CM, { metadata: { name: "a", labels: { x: "1" }, annotations: {}, finalizers: [] } });
    assert.equal(c.body.metadata.annotations, undefined);
    assert.equal(c.body.metadata.finalizers, undefined);
    const u = await client().put(`${CM}/a`, { ...c.body, metadata: { ...c.body.metadata, labels: {} } });
    assert.equal(u.body.metadata.labels, undefined);
    assert.equal("labels" in u.body.metadata, false);
  });

  it("omits emptied omitempty maps and lists of built-in kinds (ConfigMap data, Service selector)", async () => {
    const c = await client().post(CM, { metadata: { name: "a" }, data: {} });
    assert.equal("data" in c.body, false);
    const s = await client().post("/api/v1/namespaces/default/services", { metadata: { name: "s" }, spec: { selector: {}, ports: [{ port: 80 }] } });
    assert.equal("selector" in s.body.spec, false);
  });

  it("has no generation on kinds kube does not track it for (configmaps, services)", async () => {
    const c = await client().post(CM, configMap("a"));
    assert.equal(c.body.metadata.generation, undefined);
  });

  it("fills the pod template defaults kube-apiserver fills in a DaemonSet", async () => {
    const c = await client().post(DS, daemonSet("d"));
    const pod = c.body.spec.template.spec;
    assert.equal(pod.restartPolicy, "Always");
    assert.equal(pod.dnsPolicy, "ClusterFirst");
    assert.equal(pod.containers[0].imagePullPolicy, "IfNotPresent");
    assert.equal(c.body.spec.updateStrategy.type, "RollingUpdate");
    assert.equal(c.body.spec.revisionHistoryLimit, 10);
  });

  it("ignores status sent to the main resource of a kind with a status subresource", async () => {
    const c = await client().post(DS, { ...daemonSet("d"), status: { numberReady: 9 } });
    assert.equal(c.body.status.numberReady, 0);
    const u = await client().put(`${DS}/d`, { ...c.body, status: { numberReady: 9 } });
    assert.equal(u.body.status.numberReady, 0);
  });

  it("takes only status from a write to /status", async () => {
    const c = await client().post(DS, daemonSet("d"));
    const body = structuredClone(c.body);
    body.status.numberReady = 2;
    body.metadata.labels = { sneaky: "yes" };
    body.spec.template.spec.containers[0].image = "other:1";
    const u = await client().put(`${DS}/d/status`, body);
    assert.equal(u.status, 200);
    assert.equal(u.body.status.numberReady, 2);
    assert.equal(u.body.metadata.labels, undefined);
    assert.equal(u.body.spec.template.spec.containers[0].image, "busybox:1.36");
  });

  it("answers 404 for a subresource the kind does not have", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().put(`${CM}/a/status`, configMap("a"));
    assert.equal(r.status, 404);
  });

  it("starts pods as Pending whatever status the client sends", async () => {
    const r = await client().post("/api/v1/namespaces/default/pods", {
      metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "x" }] }, status: { phase: "Running" },
    });
    assert.equal(r.status, 201);
    assert.equal(r.body.status.phase, "Pending");
  });

  it("mirrors a pod's status.podIP into podIPs and podIPs[0] into podIP, as the v1 conversion does", async () => {
    const pods = "/api/v1/namespaces/default/pods";
    const c = await client().post(pods, { metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "x" }] } });
    const a = await client().put(`${pods}/p/status`, { ...c.body, status: { phase: "Running", podIP: "10.42.0.9" } });
    assert.deepEqual(a.body.status.podIPs, [{ ip: "10.42.0.9" }]);
    const b = await client().put(`${pods}/p/status`, { ...a.body, status: { phase: "Running", podIPs: [{ ip: "10.42.0.10" }], hostIPs: [{ ip: "192.0.2.1" }] } });
    assert.equal(b.body.status.podIP, "10.42.0.10");
    assert.equal(b.body.status.hostIP, "192.0.2.1");
  });

  it("keeps the status a node is created with (kubelet registration)", async () => {
    const r = await client().post("/api/v1/nodes", { metadata: { name: "n1" }, status: { addresses: [{ type: "InternalIP", address: "10.0.0.1" }] } });
    assert.equal(r.status, 201);
    assert.equal(r.body.status.addresses[0].address, "10.0.0.1");
  });

  it("keeps Lease MicroTimes with their six fractional digits", async () => {
    const r = await client().post(LEASES, {
      metadata: { name: "l" },
      spec: { holderIdentity: "a", leaseDurationSeconds: 10, acquireTime: "2026-11-24T06:50:00.123456Z", renewTime: "2026-11-24T07:50:01.000000+01:00" },
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.spec.acquireTime, "2026-11-24T06:50:00.123456Z");
    assert.equal(r.body.spec.renewTime, "2026-11-24T06:50:01.000000Z");
  });

  it("answers 400 to a MicroTime without exactly six fractional digits (a JavaScript Date's toISOString)", async () => {
    for (const t of ["2026-11-24T06:50:00.123Z", "2026-11-24T06:50:00Z"]) {
      const r = await client().post(LEASES, { metadata: { name: "l" }, spec: { renewTime: t } });
      assert.equal(r.status, 400, t);
      assert.match(r.body.message, /^Lease in version "v1" cannot be handled as a Lease: parsing time .* as "2006-01-02T15:04:05\.000000Z07:00"/);
    }
  });

  it("truncates condition times to seconds, as metav1.Time serialises", async () => {
    const r = await client().post("/api/v1/nodes", {
      metadata: { name: "n1" },
      status: { conditions: [{ type: "Ready", status: "True", lastTransitionTime: "2026-11-24T06:50:00.987Z", lastHeartbeatTime: "2026-11-24T06:50:00.5Z" }] },
    });
    assert.equal(r.body.status.conditions[0].lastTransitionTime, "2026-11-24T06:50:00Z");
    assert.equal(r.body.status.conditions[0].lastHeartbeatTime, "2026-11-24T06:50:00Z");
  });

  it("answers 400 for a time field that is not RFC 3339", async () => {
    const r = await client().post(LEASES, { metadata: { name: "l" }, spec: { renewTime: "yesterday" } });
    assert.equal(r.status, 400);
  });

  it("answers a DELETE of a configmap with a Success Status", async () => {
    const c = await client().post(CM, configMap("a"));
    const r = await client().del(`${CM}/a`);
    assert.equal(r.status, 200);
    assert.equal(r.body.kind, "Status");
    assert.equal(r.body.status, "Success");
    assert.deepEqual(r.body.details, { name: "a", group: "", kind: "configmaps", uid: c.body.metadata.uid });
    assert.equal((await client().get(`${CM}/a`)).status, 404);
  });

  it("answers a DELETE of a service with the deleted object", async () => {
    await client().post("/api/v1/namespaces/default/services", { metadata: { name: "s" }, spec: { ports: [{ port: 80 }] } });
    const r = await client().del("/api/v1/namespaces/default/services/s");
    assert.equal(r.status, 200);
    assert.equal(r.body.kind, "Service");
  });

  it("answers 409 to a DELETE whose uid precondition does not match", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().del(`${CM}/a`, { kind: "DeleteOptions", apiVersion: "v1", preconditions: { uid: "other" } });
    assert.equal(r.status, 409);
    assert.match(r.body.message, /Precondition failed: UID in precondition/);
  });

  it("deletes every object a deletecollection selects and answers their list", async () => {
    await client().post(CM, configMap("a", { app: "x" }));
    await client().post(CM, configMap("b", { app: "x" }));
    await client().post(CM, configMap("c", { app: "y" }));
    const r = await client().del(`${CM}?labelSelector=app%3Dx`);
    assert.equal(r.status, 200);
    assert.equal(r.body.kind, "ConfigMapList");
    assert.deepEqual((r.body.items as { metadata: { name: string } }[]).map((i) => i.metadata.name), ["a", "b"]);
    const left = await client().get(CM);
    assert.deepEqual((left.body.items as { metadata: { name: string } }[]).map((i) => i.metadata.name), ["c"]);
  });

  it("stores nothing for a dryRun=All create", async () => {
    const r = await client().post(`${CM}?dryRun=All`, configMap("a"));
    assert.equal(r.status, 201);
    assert.equal(r.body.metadata.name, "a");
    assert.equal((await client().get(`${CM}/a`)).status, 404);
  });

  it("answers 400 for a dryRun value other than All", async () => {
    const r = await client().post(`${CM}?dryRun=Some`, configMap("a"));
    assert.equal(r.status, 400);
  });

  it("serves core Events and events.k8s.io Events from one storage, each in its own shape", async () => {
    const r = await client().post("/apis/events.k8s.io/v1/namespaces/default/events", {
      metadata: { name: "e1" },
      eventTime: "2026-11-24T06:50:00.000001Z",
      reportingController: "berth.dev/controller",
      reportingInstance: "c-1",
      action: "Allocate",
      reason: "IPAllocated",
      type: "Normal",
      note: "assigned 192.0.2.1",
      regarding: { kind: "Service", namespace: "default", name: "web", apiVersion: "v1" },
    });
    assert.equal(r.status, 201, r.text);
    const core = await client().get("/api/v1/namespaces/default/events/e1");
    assert.equal(core.body.message, "assigned 192.0.2.1");
    assert.equal(core.body.involvedObject.name, "web");
    assert.equal(core.body.reportingComponent, "berth.dev/controller");
    const sel = await client().get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dweb,involvedObject.kind%3DService");
    assert.equal(sel.body.items.length, 1);
  });

  it("answers 400 to a protobuf body without the k8s envelope prefix", async () => {
    const r = await client().req("POST", CM, "not protobuf", { "Content-Type": "application/vnd.kubernetes.protobuf" });
    assert.equal(r.status, 400);
  });

  it("writes a core Event's non-omitempty fields as Go zero values (null times, empty source)", async () => {
    const r = await client().post("/api/v1/namespaces/default/events", {
      metadata: { name: "e" }, involvedObject: { kind: "Service", name: "web" }, reason: "R", message: "m", type: "Normal",
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.firstTimestamp, null);
    assert.equal(r.body.lastTimestamp, null);
    assert.equal(r.body.eventTime, null);
    assert.deepEqual(r.body.source, {});
    assert.equal(r.body.reportingComponent, "");
    const v1 = await client().get("/apis/events.k8s.io/v1/namespaces/default/events/e");
    assert.equal(v1.body.deprecatedFirstTimestamp, null);
    assert.equal("reportingController" in v1.body, false);
  });

  it("serves Table output for a single object when asked with as=Table", async () => {
    await client().post(CM, configMap("a", {}, { k: "v" }));
    const r = await client().get(`${CM}/a`, { Accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json" });
    assert.equal(r.body.kind, "Table");
    assert.equal(r.body.rows.length, 1);
    assert.equal(r.body.rows[0].cells[0], "a");
  });

  it("serves PartialObjectMetadata when asked for it", async () => {
    await client().post(CM, configMap("a"));
    const r = await client().get(`${CM}/a`, { Accept: "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io" });
    assert.equal(r.body.kind, "PartialObjectMetadata");
    assert.equal(r.body.metadata.name, "a");
    assert.equal(r.body.data, undefined);
  });

  it("reaches the same store in-process as over HTTP", async () => {
    await client().post(CM, configMap("a"));
    const store = server().store;
    const obj = store.get(store.resourceFor("v1", "ConfigMap"), "default", "a");
    assert.equal(obj.metadata.name, "a");
  });
});
