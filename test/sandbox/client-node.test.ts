// @kubernetes/client-node 2.x against the sandbox API server over HTTP, through the kubeconfig the sandbox writes:
// typed CRUD, status updates, raw watches and informers, including a forced 410 Gone after which an informer must
// relist and carry on — the path berth's controller depends on when a real apiserver compacts its history.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { request } from "node:https";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { startApiServer } from "../../src/sandbox/apiserver/index.js";
import { writeKubeconfig } from "../../src/sandbox/kubeconfig.js";

type Server = Awaited<ReturnType<typeof startApiServer>>;

/** Resolves when `predicate` holds, polling; fails with `what` after `ms`. */
async function eventually(what: string, predicate: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("@kubernetes/client-node against the sandbox API server", function () {
  this.timeout(30_000);
  let server: Server;
  let dir = "";
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  const stops: (() => void)[] = [];
  let nsCounter = 0;

  before(async () => {
    // TLS, as `berth sandbox apiserver` serves for kubectl: the kubeconfig then carries the CA.
    server = await startApiServer({ port: 0, tls: true });
    dir = mkdtempSync(join(tmpdir(), "berth-b2-client-"));
    const file = join(dir, "kubeconfig");
    writeKubeconfig(file, { server: server.url, token: server.token, caCert: server.caCert ?? "" });
    kc = new k8s.KubeConfig();
    kc.loadFromFile(file);
    core = kc.makeApiClient(k8s.CoreV1Api);
  });

  afterEach(() => {
    for (const stop of stops.splice(0)) stop();
    server.faults.clear();
  });

  after(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A raw GET, to see the JSON exactly as served (client-node's typed objects re-serialize dates). */
  function fetchJson(path: string): Promise<Record<string, unknown>> {
    return new Promise((done, fail) => {
      const req = request(`${server.url}${path}`, { ca: server.caCert, headers: { authorization: `Bearer ${server.token}`, accept: "application/json" } }, (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => done(JSON.parse(text) as Record<string, unknown>));
      });
      req.on("error", fail);
      req.end();
    });
  }

  async function namespace(): Promise<string> {
    const name = `b2-cn-${process.pid}-${++nsCounter}`;
    await core.createNamespace({ body: { metadata: { name } } });
    return name;
  }

  it("loads the kubeconfig the sandbox writes (mode 0600, bearer token, current context)", () => {
    const file = join(dir, "kubeconfig");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(kc.getCurrentContext(), "berth-sandbox");
    assert.equal(kc.getCurrentCluster()?.server, server.url);
    assert.equal(kc.getCurrentUser()?.token, server.token);
  });

  it("creates, lists, patches and replaces status with typed calls", async () => {
    const ns = await namespace();
    const created = await core.createNamespacedService({
      namespace: ns,
      body: { metadata: { name: "web", labels: { app: "web" } }, spec: { type: "LoadBalancer", selector: { app: "web" }, ports: [{ port: 80 }] } },
    });
    assert.equal(created.metadata?.name, "web");
    assert.match(created.spec?.clusterIP ?? "", /^\d+\.\d+\.\d+\.\d+$/);
    assert.ok((created.spec?.ports?.[0]?.nodePort ?? 0) >= 30000);

    const list = await core.listNamespacedService({ namespace: ns, labelSelector: "app=web" });
    assert.deepEqual(list.items.map((s) => s.metadata?.name), ["web"]);
    assert.match(list.metadata?.resourceVersion ?? "", /^\d+$/);

    const patched = await core.patchNamespacedService(
      { name: "web", namespace: ns, body: { metadata: { annotations: { "berth.test/pool": "lan" } } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    assert.equal(patched.metadata?.annotations?.["berth.test/pool"], "lan");

    const withStatus: k8s.V1Service = { ...patched, status: { loadBalancer: { ingress: [{ ip: "192.0.2.20", ipMode: "VIP" }] } } };
    const replaced = await core.replaceNamespacedServiceStatus({ name: "web", namespace: ns, body: withStatus });
    assert.deepEqual(replaced.status?.loadBalancer?.ingress?.map((i) => i.ip), ["192.0.2.20"]);
    assert.notEqual(replaced.metadata?.resourceVersion, patched.metadata?.resourceVersion);

    const stale = core.replaceNamespacedServiceStatus({ name: "web", namespace: ns, body: withStatus });
    await assert.rejects(stale, (err: unknown) => err instanceof k8s.ApiException && err.code === 409);
  });

  it("watches ADDED, MODIFIED and DELETED with Watch", async () => {
    const ns = await namespace();
    const events: string[] = [];
    const watch = new k8s.Watch(kc);
    const controller = await watch.watch(`/api/v1/namespaces/${ns}/configmaps`, {}, (type, obj: k8s.V1ConfigMap) => {
      events.push(`${type} ${obj.metadata?.name ?? ""} ${obj.data?.v ?? ""}`);
    }, () => undefined);
    stops.push(() => controller.abort());

    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "c" }, data: { v: "1" } } });
    await core.patchNamespacedConfigMap({ name: "c", namespace: ns, body: { data: { v: "2" } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch));
    await core.deleteNamespacedConfigMap({ name: "c", namespace: ns });
    await eventually("three watch events", () => events.length >= 3);
    assert.deepEqual(events, ["ADDED c 1", "MODIFIED c 2", "DELETED c 2"]);
  });

  it("sends 410 Gone to a watch from a resourceVersion older than the kept history", async () => {
    const ns = await namespace();
    const first = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "old" } } });
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "newer" } } });
    server.faults.expireHistory();

    let errorEvent: Record<string, unknown> | undefined;
    let doneErr: unknown = "not called";
    const watch = new k8s.Watch(kc);
    const controller = await watch.watch(`/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: first.metadata?.resourceVersion },
      (type, obj: Record<string, unknown>) => {
        if (type === "ERROR") errorEvent = obj;
      }, (err) => (doneErr = err));
    stops.push(() => controller.abort());
    await eventually("the watch to end", () => doneErr !== "not called");
    // kube-apiserver answers 200 and sends the 410 as the watch's only event, then closes the stream.
    assert.equal(errorEvent?.kind, "Status");
    assert.equal(errorEvent?.code, 410);
    assert.equal(errorEvent?.reason, "Expired");
  });

  it("lets only one of two lease holders win a renewal race (409 for the stale one), with MicroTime formatting", async () => {
    const ns = await namespace();
    const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    const lease = await coordination.createNamespacedLease({
      namespace: ns,
      body: { metadata: { name: "berth-controller" }, spec: { holderIdentity: "a", leaseDurationSeconds: 15, renewTime: new k8s.V1MicroTime("2026-01-01T00:00:00.5Z") } },
    });
    const raw = await fetchJson(`/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/berth-controller`);
    assert.equal((raw.spec as Record<string, unknown>).renewTime, "2026-01-01T00:00:00.500000Z");

    const renewA = coordination.replaceNamespacedLease({ name: "berth-controller", namespace: ns, body: { ...lease, spec: { ...lease.spec, holderIdentity: "a", renewTime: new k8s.V1MicroTime() } } });
    const takeB = coordination.replaceNamespacedLease({ name: "berth-controller", namespace: ns, body: { ...lease, spec: { ...lease.spec, holderIdentity: "b", renewTime: new k8s.V1MicroTime() } } });
    const results = await Promise.allSettled([renewA, takeB]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    const lost = results.find((r) => r.status === "rejected");
    assert.ok(lost?.status === "rejected" && lost.reason instanceof k8s.ApiException && lost.reason.code === 409);
  });

  it("records events.k8s.io/v1 events that core/v1 readers see with the involved object", async () => {
    const ns = await namespace();
    const events = kc.makeApiClient(k8s.EventsV1Api);
    await events.createNamespacedEvent({
      namespace: ns,
      body: {
        metadata: { name: "web.ipallocated" }, eventTime: new k8s.V1MicroTime(), reportingController: "berth.io/controller", reportingInstance: "c-0",
        action: "Allocate", reason: "IPAllocated", note: "192.0.2.10 from pool lan", type: "Normal",
        regarding: { apiVersion: "v1", kind: "Service", name: "web", namespace: ns },
      },
    });
    const core = await kc.makeApiClient(k8s.CoreV1Api).listNamespacedEvent({ namespace: ns, fieldSelector: "involvedObject.kind=Service,involvedObject.name=web" });
    assert.deepEqual(core.items.map((e) => [e.reason, e.message, e.reportingComponent, e.involvedObject.name]), [["IPAllocated", "192.0.2.10 from pool lan", "berth.io/controller", "web"]]);
  });

  it("watches pods by field selector (spec.nodeName), seeing only the pods of that node", async () => {
    const ns = await namespace();
    const events: string[] = [];
    const controller = await new k8s.Watch(kc).watch(`/api/v1/namespaces/${ns}/pods`, { fieldSelector: "spec.nodeName=n1" },
      (type, obj: k8s.V1Pod) => events.push(`${type} ${obj.metadata?.name ?? ""}`), () => undefined);
    stops.push(() => controller.abort());
    const pod = (name: string, node: string): k8s.V1Pod => ({ metadata: { name }, spec: { nodeName: node, containers: [{ name: "c", image: "busybox" }] } });
    await core.createNamespacedPod({ namespace: ns, body: pod("on-n1", "n1") });
    await core.createNamespacedPod({ namespace: ns, body: pod("on-n2", "n2") });
    await core.deleteNamespacedPod({ name: "on-n1", namespace: ns, gracePeriodSeconds: 0 });
    await eventually("two events", () => events.length >= 2);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(events, ["ADDED on-n1", "DELETED on-n1"]);
  });

  it("mirrors a pod's lone status.podIP into podIPs, as kube's conversion does", async () => {
    const ns = await namespace();
    await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: "p" }, spec: { nodeName: "n1", containers: [{ name: "c", image: "busybox" }] } } });
    const patched = await core.patchNamespacedPodStatus({ name: "p", namespace: ns, body: { status: { podIP: "10.42.0.9" } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch));
    assert.deepEqual(patched.status?.podIPs?.map((p) => p.ip), ["10.42.0.9"]);
  });

  it("sends BOOKMARK events to watches that allow them", async () => {
    const local = await startApiServer({ port: 0, bookmarkIntervalMs: 200 });
    try {
      const file = join(dir, "kubeconfig-bookmarks");
      writeKubeconfig(file, { server: local.url, token: local.token });
      const lkc = new k8s.KubeConfig();
      lkc.loadFromFile(file);
      const list = await lkc.makeApiClient(k8s.CoreV1Api).listNamespacedConfigMap({ namespace: "default" });
      const bookmarks: string[] = [];
      const controller = await new k8s.Watch(lkc).watch("/api/v1/namespaces/default/configmaps",
        { allowWatchBookmarks: true, resourceVersion: list.metadata?.resourceVersion },
        (type, obj: k8s.KubernetesObject) => {
          if (type === "BOOKMARK") bookmarks.push(obj.metadata?.resourceVersion ?? "");
        }, () => undefined);
      try {
        await eventually("a bookmark", () => bookmarks.length > 0, 5_000);
        assert.match(bookmarks[0] ?? "", /^\d+$/);
      } finally {
        controller.abort();
      }
    } finally {
      await local.close();
    }
  });

  it("runs an informer on a custom resource defined by a CRD", async () => {
    const ns = await namespace();
    const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({
      body: {
        metadata: { name: "pools.b2cn.berth.test" },
        spec: {
          group: "b2cn.berth.test", scope: "Namespaced", names: { plural: "pools", singular: "pool", kind: "Pool" },
          versions: [{ name: "v1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object", x_kubernetes_preserve_unknown_fields: true } } }],
        },
      },
    });
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const group = { group: "b2cn.berth.test", version: "v1", namespace: ns, plural: "pools" };
    for (let i = 0; ; i++) {
      try {
        await custom.listNamespacedCustomObject(group);
        break;
      } catch (err) {
        if (i > 50) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const informer = k8s.makeInformer(kc, `/apis/b2cn.berth.test/v1/namespaces/${ns}/pools`,
      () => custom.listNamespacedCustomObject(group) as Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>);
    const seen: string[] = [];
    informer.on("add", (o) => seen.push(`add ${o.metadata?.name ?? ""}`));
    informer.on("update", (o) => seen.push(`update ${o.metadata?.name ?? ""}`));
    await informer.start();
    stops.push(() => void informer.stop());
    const created = (await custom.createNamespacedCustomObject({ ...group, body: { apiVersion: "b2cn.berth.test/v1", kind: "Pool", metadata: { name: "lan" }, spec: { range: "192.0.2.0/28" } } })) as k8s.KubernetesObject;
    assert.equal(created.metadata?.name, "lan");
    await custom.patchNamespacedCustomObject({ ...group, name: "lan", body: { spec: { range: "192.0.2.0/27" } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch));
    await eventually("add and update", () => seen.length >= 2);
    assert.deepEqual(seen, ["add lan", "update lan"]);
  });

  it("drives an informer through add, update and delete, and through a relist after 410 Gone", async () => {
    const ns = await namespace();
    const other = await namespace();
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "before" } } });

    let lists = 0;
    const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${ns}/configmaps`, () => {
      lists++;
      return core.listNamespacedConfigMap({ namespace: ns });
    });
    const seen: string[] = [];
    const errors: unknown[] = [];
    informer.on("add", (o) => seen.push(`add ${o.metadata?.name ?? ""}`));
    informer.on("update", (o) => seen.push(`update ${o.metadata?.name ?? ""} ${o.data?.v ?? ""}`));
    informer.on("delete", (o) => seen.push(`delete ${o.metadata?.name ?? ""}`));
    informer.on("error", (err) => errors.push(err));

    await informer.start();
    stops.push(() => void informer.stop());
    assert.deepEqual(seen, ["add before"]);

    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "c" }, data: { v: "1" } } });
    await core.replaceNamespacedConfigMap({ name: "c", namespace: ns, body: { metadata: { name: "c" }, data: { v: "2" } } });
    await core.deleteNamespacedConfigMap({ name: "before", namespace: ns });
    await eventually("add, update and delete", () => seen.length >= 4);
    assert.deepEqual(seen, ["add before", "add c", "update c 2", "delete before"]);

    // Changes the informer does not watch move the resourceVersion on; then the history is dropped and the watch
    // ends, so the informer resumes from a resourceVersion the server no longer has: 410, relist.
    await core.createNamespacedConfigMap({ namespace: other, body: { metadata: { name: "elsewhere" } } });
    assert.equal(lists, 1);
    server.faults.expireHistory();
    server.faults.closeWatches();
    await eventually("a relist after 410", () => lists >= 2, 8_000);

    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "after-gone" } } });
    await eventually("the object created after the relist", () => seen.includes("add after-gone"));
    assert.deepEqual(errors, []);
    assert.deepEqual(informer.list().map((o) => o.metadata?.name).sort(), ["after-gone", "c"]);
  });
});
