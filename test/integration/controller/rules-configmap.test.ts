// The rules ConfigMap around the DaemonSet apply (src/controller/rules-configmap.ts), against the sandbox API server
// over HTTP: written before the DaemonSet, owned by it once it exists, the previous one deleted when the rules
// change, and the rest removed by the garbage collector with the DaemonSet.
import { strict as assert } from "node:assert";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { buildDaemonSet, lbPodRulesBundle, rulesConfigMapOf } from "../../../src/controller/daemonset.js";
import { applyWithRules } from "../../../src/controller/rules-configmap.js";
import { parseServiceConfig } from "../../../src/controller/service-config.js";
import { defaultControllerConfig, type V1DaemonSet, type V1Service } from "../../../src/controller/types.js";
import { CONDITION_REASONS, CONDITION_TYPES, EVENT_REASONS, FIELD_MANAGER } from "../../../src/lib/names.js";
import { KubeClient, Resources } from "../../../src/lib/kube/client.js";
import { startApiServer, type ApiServerHandle } from "../../../src/sandbox/apiserver/index.js";
import {
  condition, create, daemonSetsFor, eventsFor, getObj, mergePatch, node, nodePath, service as svc, startController, startEnv, svcPath, waitFor,
  waitForIngress, type Env, type Obj, type TestController,
} from "./support.js";

import { NS } from "./support.js";

describe("controller: the rules ConfigMap beside each DaemonSet", () => {
  let server: ApiServerHandle;
  let client: KubeClient;
  const config = defaultControllerConfig();

  beforeEach(async () => {
    server = await startApiServer({ port: 0 });
    client = new KubeClient({ server: server.url, authHeaders: () => ({ Authorization: `Bearer ${server.token}` }) });
    await client.create(Resources.namespaces, { metadata: { name: NS } });
  });
  afterEach(async () => {
    client.close();
    await server.close();
  });

  const service = (port: number): V1Service => ({
    apiVersion: "v1", kind: "Service",
    metadata: { name: "web", namespace: "default", uid: "3f2a9c1e-7b4d-4e6f-9a8b-0c1d2e3f4a5b" },
    spec: { type: "LoadBalancer", clusterIP: "10.43.0.10", clusterIPs: ["10.43.0.10"], ipFamilies: ["IPv4"], ports: [{ protocol: "TCP", port }] },
  });
  const apply = async (port: number, live: V1DaemonSet | undefined): Promise<{ desired: V1DaemonSet; applied: V1DaemonSet }> => {
    const parsed = parseServiceConfig(service(port), config);
    assert.ok(parsed.ok);
    const desired = buildDaemonSet(service(port), parsed.value, [], { ...config, namespace: NS });
    const applied = await applyWithRules(client, NS, parsed.value, desired, live,
      () => client.apply(Resources.daemonSets, desired, { namespace: NS, fieldManager: FIELD_MANAGER, force: true }));
    return { desired, applied };
  };
  const configMaps = async (): Promise<V1ConfigMap[]> => (await client.list<V1ConfigMap & { metadata: object }>(Resources.configMaps, { namespace: NS })).items;

  it("a new Service: the ConfigMap its pods mount exists, immutable, holding the rendered bundle, owned by the DaemonSet", async () => {
    const { desired, applied } = await apply(80, undefined);
    const [cm, ...others] = await configMaps();
    assert.deepEqual(others, []);
    assert.equal(cm?.metadata?.name, rulesConfigMapOf(desired));
    assert.equal(cm?.immutable, true);
    const parsed = parseServiceConfig(service(80), config);
    assert.ok(parsed.ok);
    assert.deepEqual(cm?.data, lbPodRulesBundle(parsed.value));
    assert.deepEqual(cm?.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]), [["DaemonSet", applied.metadata?.name, applied.metadata?.uid, true]]);
  });

  it("changed rules: a new ConfigMap for the new template, the previous one deleted", async () => {
    const first = await apply(80, undefined);
    const second = await apply(81, first.applied);
    assert.notEqual(rulesConfigMapOf(second.desired), rulesConfigMapOf(first.desired));
    assert.deepEqual((await configMaps()).map((cm) => cm.metadata?.name), [rulesConfigMapOf(second.desired)]);
    // The same rules again (a re-apply after a lost watch event): nothing new, nothing deleted.
    await apply(81, second.applied);
    assert.deepEqual((await configMaps()).map((cm) => cm.metadata?.name), [rulesConfigMapOf(second.desired)]);
  });

  it("the garbage collector removes the ConfigMap with its DaemonSet", async () => {
    const { applied } = await apply(80, undefined);
    await client.delete(Resources.daemonSets, applied.metadata?.name ?? "", { namespace: NS, propagationPolicy: "Background" });
    const deadline = Date.now() + 5000;
    while ((await configMaps()).length > 0) {
      assert.ok(Date.now() < deadline, "the ConfigMap outlived its DaemonSet");
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  });
});

describe("controller: a rules ConfigMap deleted by someone else is written again", function () {
  this.timeout(30_000);
  let env: Env;
  let ctl: TestController | undefined;
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.11" }));
  });
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });

  const cmPath = (name: string): string => `/api/v1/namespaces/${NS}/configmaps/${name}`;
  const cmApplies = (c: TestController): number => c.calls.filter((call) => call.verb === "apply" && call.resource.startsWith("configmaps")).length;

  it("lists and watches ConfigMaps as metadata only: the rules never cross the wire to the informer", async () => {
    // What the informer asks (Informer metadataOnly -> KubeClient list/watch with client-go's metadata Accept).
    const meta = new KubeClient({ server: env.server.url, authHeaders: () => ({ Authorization: `Bearer ${env.server.token}` }) });
    try {
      await create(env.client, `/api/v1/namespaces/${NS}/configmaps`,
        { metadata: { name: "svclb-web-1-abc", labels: { "app.kubernetes.io/managed-by": "berth" } }, data: { "rules.v4": "x".repeat(100_000) } });
      const list = await meta.list(Resources.configMaps, { namespace: NS, metadataOnly: true });
      assert.deepEqual(list.items.map((o) => [o.kind, o.metadata?.name, "data" in o]), [["PartialObjectMetadata", "svclb-web-1-abc", false]]);
      const abort = new AbortController();
      const watch = meta.watch(Resources.configMaps, { namespace: NS, metadataOnly: true, resourceVersion: list.metadata?.resourceVersion ?? "", signal: abort.signal });
      const next = watch.next();
      await env.client.req("DELETE", cmPath("svclb-web-1-abc"));
      const ev = (await next).value as { type: string; object: Obj };
      abort.abort();
      assert.deepEqual([ev.type, ev.object.kind, ev.object.metadata.labels, "data" in ev.object], ["DELETED", "PartialObjectMetadata", { "app.kubernetes.io/managed-by": "berth" }, false]);
    } finally {
      meta.close();
    }
  });

  it("comes back owned by the live DaemonSet, with the same content, in one write, and resyncs then send nothing", async () => {
    ctl = await startController(env, { resyncMs: 200 });
    await create(env.client, "/api/v1/namespaces/default/services", svc("web", { ports: [{ port: 80 }, { port: 443 }] }));
    await waitForIngress(env.client, "web", ["192.0.2.11"]);
    const ds = (await daemonSetsFor(env.client, "web"))[0] as Obj;
    const name = rulesConfigMapOf(ds as V1DaemonSet) as string;
    const before = await waitFor("the rules ConfigMap owned by its DaemonSet", async () => {
      const cm = await getObj(env.client, cmPath(name));
      return cm?.metadata?.ownerReferences?.[0]?.uid === ds.metadata.uid ? cm : undefined;
    });
    const applies = cmApplies(ctl);

    const gone = await env.client.req("DELETE", cmPath(name));
    assert.equal(gone.status, 200, gone.text);
    const after = await waitFor("the rules ConfigMap written again", () => getObj(env.client, cmPath(name)));
    assert.notEqual(after.metadata.uid, before.metadata.uid, "a new object, not the old one seen late");
    assert.deepEqual(after.data, before.data);
    assert.equal(after.immutable, true);
    assert.deepEqual(after.metadata.ownerReferences.map((o: Obj) => [o.kind, o.name, o.uid, o.controller]),
      [["DaemonSet", ds.metadata.name, ds.metadata.uid, true]]);
    assert.equal(cmApplies(ctl), applies + 1, "one write repairs it");

    // Several resyncs later (every 200 ms): the cache shows the ConfigMap, so no further request about it.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.equal(cmApplies(ctl), applies + 1, "no repeat write on resync");
  });
});

describe("controller: rules too large for a ConfigMap", function () {
  this.timeout(30_000);
  let env: Env;
  let ctl: TestController | undefined;
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.11", addresses: [{ type: "InternalIP", address: "2001:db8::11" }] }));
  });
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });

  it("a dual-stack Local Service with 400 ports: Ready=False RulesTooLarge, one Warning Event, no failing apply, others served", async () => {
    ctl = await startController(env, { resyncMs: 200 });
    const c = ctl;
    await create(env.client, "/api/v1/namespaces/default/services", svc("huge", {
      externalTrafficPolicy: "Local", ipFamilies: ["IPv4", "IPv6"], ipFamilyPolicy: "RequireDualStack",
      ports: Array.from({ length: 400 }, (_, i) => ({ port: 2000 + i })),
    }));
    await create(env.client, "/api/v1/namespaces/default/services", svc("small", { ports: [{ port: 80 }] }));
    const huge = await waitFor("the RulesTooLarge condition", async () => {
      const s = await getObj(env.client, svcPath("huge"));
      return condition(s, CONDITION_TYPES.ready)?.reason === CONDITION_REASONS.rulesTooLarge ? s : undefined;
    });
    const ready = condition(huge, CONDITION_TYPES.ready) as Obj;
    assert.equal(ready.status, "False");
    assert.match(ready.message, /400 ports are [\d,]+ bytes, more than the 1,048,576 bytes a ConfigMap may hold/);
    await waitForIngress(env.client, "small", ["192.0.2.11"]);

    // Several resyncs (every 200 ms) later: still one Event, nothing applied for it, no request refused.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const warnings = (await eventsFor(env.client, "huge")).filter((e) => e.reason === EVENT_REASONS.rulesTooLarge);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.type, "Warning");
    assert.equal(warnings[0]?.count ?? 1, 1, "not re-emitted (an aggregated Event counts repeats)");
    assert.deepEqual(await daemonSetsFor(env.client, "huge"), []);
    const cmCalls = c.calls.filter((call) => call.resource.startsWith("configmaps") && call.verb === "apply");
    assert.deepEqual(cmCalls.filter((call) => !call.code.startsWith("2")), [], "no ConfigMap apply the API server refuses");
    assert.equal(cmCalls.length, 2, "the small Service's two ConfigMap applies, none for the huge one");
    assert.equal(c.calls.filter((call) => call.verb === "patch" && call.resource === "services/status").length >= 1, true);
    const statusWrites = c.calls.filter((call) => call.resource === "services/status").length;
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(c.calls.filter((call) => call.resource === "services/status").length, statusWrites, "no status write on resync");
  });
});

describe("controller: rules ConfigMaps left by a controller stopped between its writes", function () {
  this.timeout(40_000);
  const GRACE_MS = 1500;
  let env: Env;
  let ctl: TestController | undefined;
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.11" }));
  });
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });

  const cmPath = (name = ""): string => `/api/v1/namespaces/${NS}/configmaps${name ? `/${name}` : ""}`;
  const cmWrites = (c: TestController): string[] => c.calls
    .filter((call) => call.resource.startsWith("configmaps") && ["apply", "patch", "delete", "create", "update"].includes(call.verb))
    .map((call) => `${call.verb} ${call.code}`);
  /** Serves each Service with a first controller, then stops it; returns each Service's DaemonSet and ConfigMap. */
  const served = async (names: string[]): Promise<Map<string, { ds: Obj; cm: Obj }>> => {
    const first = await startController(env, { resyncMs: 200 });
    try {
      for (const name of names) await create(env.client, "/api/v1/namespaces/default/services", svc(name, { ports: [{ port: 80 }] }));
      const out = new Map<string, { ds: Obj; cm: Obj }>();
      for (const name of names) {
        out.set(name, await waitFor(`${name}'s ConfigMap owned by its DaemonSet`, async () => {
          const ds = (await daemonSetsFor(env.client, name))[0];
          const cm = ds ? await getObj(env.client, cmPath(rulesConfigMapOf(ds as V1DaemonSet) as string)) : undefined;
          return ds && cm?.metadata?.ownerReferences?.[0]?.uid === ds.metadata.uid ? { ds, cm: cm as Obj } : undefined;
        }));
      }
      return out;
    } finally {
      await first.stop();
    }
  };

  it("a new leader adopts the ownerless one a DaemonSet mounts, deletes those nothing mounts, only after the grace, and leaves live ones alone", async () => {
    const before = await served(["live", "adopt", "gone"]);
    const live = before.get("live") as { ds: Obj; cm: Obj };
    const adopt = before.get("adopt") as { ds: Obj; cm: Obj };
    const gone = before.get("gone") as { ds: Obj; cm: Obj };
    // What a controller stopped between applyWithRules' writes leaves behind, made by hand:
    // - "adopt": the DaemonSet exists and mounts its ConfigMap, whose owner reference was never written (step 3);
    // - "gone": the same, and then the Service is deleted (the next controller deletes the DaemonSet; the garbage
    //   collector cannot take an ownerless ConfigMap with it);
    // - an old name: the ConfigMap of earlier rules of "adopt", written (step 1) without owner and never mounted.
    for (const { cm } of [adopt, gone]) await mergePatch(env.client, cmPath(cm.metadata.name), { metadata: { ownerReferences: null } });
    const old = await create(env.client, cmPath(), {
      metadata: { name: `${adopt.ds.metadata.name}-0123456789`, labels: adopt.cm.metadata.labels },
      immutable: true, data: { format: "1" },
    });
    const deleted = await env.client.req("DELETE", svcPath("gone"));
    assert.equal(deleted.status, 200, deleted.text);

    const started = Date.now();
    ctl = await startController(env, { resyncMs: 200, rulesOrphanGraceMs: GRACE_MS });
    const c = ctl;
    const adopted = await waitFor("the ownerless ConfigMap adopted by the DaemonSet that mounts it", async () => {
      const cm = await getObj(env.client, cmPath(adopt.cm.metadata.name));
      return cm?.metadata?.ownerReferences?.length ? cm : undefined;
    });
    assert.ok(Date.now() - started >= GRACE_MS, `adopted ${Date.now() - started} ms after the new controller started, before the grace`);
    assert.deepEqual(adopted.metadata.ownerReferences.map((o: Obj) => [o.kind, o.name, o.uid, o.controller]),
      [["DaemonSet", adopt.ds.metadata.name, adopt.ds.metadata.uid, true]]);
    assert.equal(adopted.metadata.uid, adopt.cm.metadata.uid, "the same object, its rules unchanged");
    assert.deepEqual(adopted.data, adopt.cm.data);
    for (const name of [gone.cm.metadata.name, old.metadata.name]) {
      await waitFor(`${name} deleted`, async () => (await getObj(env.client, cmPath(name))) === undefined);
      assert.ok(Date.now() - started >= GRACE_MS, `${name} deleted before the grace`);
    }
    assert.equal(await getObj(env.client, svcPath("gone")), undefined, "the Service's deletion finished meanwhile");

    // The live Service's ConfigMap: never written; the repairs: one patch and two deletes, then nothing on resync.
    const liveNow = await getObj(env.client, cmPath(live.cm.metadata.name));
    assert.deepEqual([liveNow?.metadata.uid, liveNow?.metadata.resourceVersion], [live.cm.metadata.uid, live.cm.metadata.resourceVersion]);
    assert.deepEqual(cmWrites(c).sort(), ["delete 200", "delete 200", "patch 200"]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.deepEqual(cmWrites(c).sort(), ["delete 200", "delete 200", "patch 200"], "no further ConfigMap request on resync");
    assert.deepEqual((await env.client.get(cmPath())).body.items.map((cm: Obj) => cm.metadata.name).sort(),
      [adopt.cm.metadata.name, live.cm.metadata.name].sort());
  });

  it("a Service's ordinary life (created, rules changed, deleted) costs no repair request, even with a short grace", async () => {
    // Between applyWithRules' writes the cache shows a ConfigMap without owner or not yet mounted; the repair must
    // never act on that (the grace outlasts the watch events of our own writes, and the wanted one is never deleted).
    ctl = await startController(env, { resyncMs: 100, rulesOrphanGraceMs: 300 });
    const c = ctl;
    await create(env.client, "/api/v1/namespaces/default/services", svc("web", { ports: [{ port: 80 }] }));
    const first = await waitFor("the first ConfigMap owned", async () => {
      const ds = (await daemonSetsFor(env.client, "web"))[0];
      const cm = ds ? await getObj(env.client, cmPath(rulesConfigMapOf(ds as V1DaemonSet) as string)) : undefined;
      return cm?.metadata?.ownerReferences?.length ? cm : undefined;
    });
    await mergePatch(env.client, svcPath("web"), { spec: { ports: [{ name: "p0", port: 81, protocol: "TCP", targetPort: 81 }] } });
    await waitFor("the rules changed over", async () => {
      const names = (await env.client.get(cmPath())).body.items.map((cm: Obj) => cm.metadata.name);
      return names.length === 1 && names[0] !== first.metadata.name;
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.deepEqual(cmWrites(c).sort(), ["apply 200", "apply 201", "apply 201", "delete 200"],
      "two applies for the new Service, an apply and a delete for the change, nothing else");
    const deleted = await env.client.req("DELETE", svcPath("web"));
    assert.equal(deleted.status, 200, deleted.text);
    await waitFor("the garbage collector took the ConfigMap with the DaemonSet", async () => (await env.client.get(cmPath())).body.items.length === 0);
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.deepEqual(cmWrites(c).sort(), ["apply 200", "apply 201", "apply 201", "delete 200"]);
  });
});
