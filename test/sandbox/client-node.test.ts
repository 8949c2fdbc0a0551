// @kubernetes/client-node 1.4 against the sandbox API server over HTTP, through the kubeconfig the sandbox writes:
// typed CRUD, status updates, raw watches and informers, including a forced 410 Gone after which an informer must
// relist and carry on — the path berth's controller depends on when a real apiserver compacts its history.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
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
