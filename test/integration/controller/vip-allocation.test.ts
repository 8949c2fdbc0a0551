// VIP mode's controller side against the sandbox API server over HTTP (docs/design/0014-vip-allocation.md):
// AddressPools validated with status, addresses in status.loadBalancer.ingress with ipMode VIP and the pool in the
// berth.dev/allocated-from-pool annotation, every pending reason a condition and a Warning Event, sharing, release
// on delete and type change, and a restarted controller (or a new leader) that never hands out an address in use.
import assert from "node:assert/strict";
import { CONDITION_TYPES } from "../../../src/lib/names.js";
import { ALLOCATED_FROM_POOL_ANNOTATION } from "../../../src/lib/vip/address-pool.js";
import {
  condition, create, daemonSetsFor, eventsFor, getObj, ingressIps, mergePatch, node, nodePath, service, startController, startEnv,
  svcPath, waitFor, waitForIngress, type Env, type Obj, type ServiceSpec, type TestController,
} from "./support.js";

const SVCS = "/api/v1/namespaces/default/services";
const POOLS = "/apis/berth.dev/v1alpha1/addresspools";

function pool(name: string, spec: Obj): Obj {
  return { apiVersion: "berth.dev/v1alpha1", kind: "AddressPool", metadata: { name }, spec };
}

function vip(name: string, annotations: Record<string, string> = {}, spec: ServiceSpec = {}): Obj {
  return service(name, { ...spec, annotations: { "berth.dev/mode": "vip", ...annotations } });
}

async function waitForVip(env: Env, name: string, ips: string[]): Promise<Obj> {
  return waitFor(`${name} gets ${ips.join(",")}`, async () => {
    const s = await getObj(env.client, svcPath(name));
    return JSON.stringify(ingressIps(s)) === JSON.stringify(ips) ? s : undefined;
  });
}

async function waitForReason(env: Env, name: string, reason: string): Promise<Obj> {
  return waitFor(`${name} Ready reason ${reason}`, async () => {
    const s = await getObj(env.client, svcPath(name));
    return condition(s, CONDITION_TYPES.ready)?.reason === reason ? s : undefined;
  });
}

async function warning(env: Env, name: string, reason: string): Promise<Obj> {
  return waitFor(`Warning ${reason} on ${name}`, async () => (await eventsFor(env.client, name)).find((e) => e.type === "Warning" && e.reason === reason));
}

async function poolStatus(env: Env, name: string, want: (status: Obj) => boolean): Promise<Obj> {
  return waitFor(`status of pool ${name}`, async () => {
    const p = await getObj(env.client, `${POOLS}/${name}`);
    return p?.status && want(p.status as Obj) ? (p.status as Obj) : undefined;
  });
}

describe("controller: VIP mode allocation", function () {
  this.timeout(30_000);
  let env: Env;
  let ctl: TestController | undefined;
  let other: TestController | undefined;
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.11" }));
  });
  afterEach(async () => {
    await other?.stop();
    other = undefined;
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });

  it("gives a VIP Service an address from a pool: ingress with ipMode VIP, the pool annotation, Ready, the pool's counts", async () => {
    await create(env.client, POOLS, pool("lan", { addresses: ["198.51.100.10-198.51.100.13", "fd00:10::/126"] }));
    ctl = await startController(env);
    await create(env.client, SVCS, vip("web"));
    const svc = await waitForVip(env, "web", ["198.51.100.10"]);
    assert.deepEqual(svc.status.loadBalancer.ingress, [{ ip: "198.51.100.10", ipMode: "VIP" }]);
    assert.equal(svc.metadata.annotations[ALLOCATED_FROM_POOL_ANNOTATION], "lan");
    const ready = condition(svc, CONDITION_TYPES.ready);
    assert.deepEqual([ready?.status, ready?.reason], ["True", "AddressAssigned"]);
    assert.match(ready?.message, /Assigned 198.51.100.10 from pool lan/);
    assert.deepEqual(await daemonSetsFor(env.client, "web"), [], "VIP mode runs no lb-pods");
    const status = await poolStatus(env, "lan", (s) => s.assignedIPv4 === 1);
    assert.deepEqual([status.assignedIPv4, status.availableIPv4, status.assignedIPv6, status.availableIPv6], [1, 3, 0, 4]);
    assert.deepEqual(status.conditions.map((c: Obj) => [c.type, c.status, c.reason]), [["Valid", "True", "Valid"]]);
    await waitFor("UpdatedLoadBalancer event", async () => (await eventsFor(env.client, "web")).some((e) => e.reason === "UpdatedLoadBalancer"));
    // What `kubectl get addresspools` shows: the server's Table from the CRD's printer columns (as kubectl asks).
    const table = (await env.client.get(POOLS, { Accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json" })).body as Obj;
    assert.deepEqual(table.columnDefinitions.filter((c: Obj) => c.priority === 0).map((c: Obj) => c.name),
      ["Name", "Addresses", "Valid", "IPv4 Assigned", "IPv4 Available", "IPv6 Assigned", "IPv6 Available", "Age"]);
    const [name, addresses, ...rest] = table.rows[0].cells.slice(0, 7) as unknown[];
    assert.equal(name, "lan");
    assert.match(String(addresses), /198\.51\.100\.10-198\.51\.100\.13.*fd00:10::\/126/);
    assert.deepEqual(rest, ["True", 1, 3, 0, 4]);
    // Two writes (annotation, then status) and no conflict: the reconcile that the annotation's watch event starts
    // waits for the status write's event instead of writing from a stale cache.
    await new Promise((r) => setTimeout(r, 500));
    const writes = ctl.writes().filter((c) => c.resource.startsWith("services"));
    assert.deepEqual(writes.filter((c) => c.code === "409"), [], JSON.stringify(writes));
  });

  it("gives a dual-stack Service one address per family, in spec.ipFamilies order, and a single-stack one its family", async () => {
    await create(env.client, POOLS, pool("dual", { addresses: ["198.51.100.80/30", "fd00:80::/126"] }));
    ctl = await startController(env);
    await create(env.client, SVCS, vip("both", {}, { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv6", "IPv4"] }));
    await create(env.client, SVCS, vip("six", {}, { ipFamilies: ["IPv6"] }));
    const both = await waitForVip(env, "both", ["fd00:80::", "198.51.100.80"]);
    assert.deepEqual(both.status.loadBalancer.ingress.map((i: Obj) => i.ipMode), ["VIP", "VIP"]);
    await waitForVip(env, "six", ["fd00:80::1"]);
    await poolStatus(env, "dual", (s) => s.assignedIPv4 === 1 && s.assignedIPv6 === 2 && s.availableIPv6 === 2);
  });

  it("says why a Service stays pending, as a condition and a Warning Event each, and serves it once it can", async () => {
    await create(env.client, POOLS, pool("tiny", { addresses: ["198.51.100.20/32"] }));
    ctl = await startController(env);
    await create(env.client, SVCS, vip("first"));
    await waitForVip(env, "first", ["198.51.100.20"]);

    await create(env.client, SVCS, vip("second"));
    const exhausted = await waitForReason(env, "second", "PoolExhausted");
    assert.equal(condition(exhausted, CONDITION_TYPES.ready)?.status, "False");
    assert.match((await warning(env, "second", "PoolExhausted")).message, /tiny \(no free IPv4 address\).*Add addresses/);

    await create(env.client, SVCS, vip("named", { "berth.dev/pool": "nope" }));
    assert.match((await warning(env, "named", "PoolNotFound")).message, /pool nope.*name one of: tiny/);

    await create(env.client, SVCS, vip("taken", { "berth.dev/ips": "198.51.100.20" }));
    assert.match((await warning(env, "taken", "AddressTaken")).message, /198.51.100.20 is taken: default\/first holds it/);

    await create(env.client, SVCS, vip("outside", { "metallb.io/loadBalancerIPs": "203.0.113.9" }));
    assert.match((await warning(env, "outside", "AddressOutsidePools")).message, /203.0.113.9 is not in any valid AddressPool/);

    // Released on delete: the next pending Service gets the address.
    await env.client.del(svcPath("first"));
    await waitFor("first gone", async () => (await getObj(env.client, svcPath("first"))) === undefined);
    await waitFor("someone gets the address", async () => {
      for (const name of ["second", "taken"]) {
        const s = await getObj(env.client, svcPath(name));
        if (ingressIps(s).includes("198.51.100.20")) return name;
      }
      return undefined;
    });
  });

  it("admits a Service to a pool by its namespace's labels, once the namespace is labelled", async () => {
    await create(env.client, POOLS, pool("team", { addresses: ["198.51.100.90/32"], serviceAllocation: { namespaceSelectors: [{ matchLabels: { team: "blue" } }] } }));
    await create(env.client, "/api/v1/namespaces", { metadata: { name: "blue" } });
    // No resync within the test: the namespace's label change itself must bring the Service back.
    ctl = await startController(env, { resyncMs: 60_000 });
    await create(env.client, "/api/v1/namespaces/blue/services", vip("app"));
    const pending = await waitFor("NoPoolMatches", async () => {
      const s = await getObj(env.client, svcPath("app", "blue"));
      return condition(s, CONDITION_TYPES.ready)?.reason === "NoPoolMatches" ? s : undefined;
    });
    assert.match(condition(pending, CONDITION_TYPES.ready)?.message, /team \(namespace blue's labels match none of its namespaceSelectors\)/);
    // Past the stale-cache waits of the first reconciles (5 s), which would look at the Service again anyway.
    await new Promise((r) => setTimeout(r, 5500));
    await mergePatch(env.client, "/api/v1/namespaces/blue", { metadata: { labels: { team: "blue" } } });
    await waitFor("the address once labelled", async () => ingressIps(await getObj(env.client, svcPath("app", "blue")))[0] === "198.51.100.90");
  });

  it("shares an address between Services with the same sharing key and disjoint ports", async () => {
    await create(env.client, POOLS, pool("lan", { addresses: ["198.51.100.30/31"] }));
    ctl = await startController(env);
    await create(env.client, SVCS, vip("http", { "berth.dev/allow-shared-ip": "front" }, { ports: [{ port: 80 }] }));
    await waitForVip(env, "http", ["198.51.100.30"]);
    await create(env.client, SVCS, vip("https", { "metallb.io/allow-shared-ip": "front" }, { ports: [{ port: 443 }] }));
    await waitForVip(env, "https", ["198.51.100.30"]);
    await create(env.client, SVCS, vip("clash", { "berth.dev/allow-shared-ip": "front", "berth.dev/ips": "198.51.100.30" }, { ports: [{ port: 80 }] }));
    assert.match((await warning(env, "clash", "SharingConflict")).message, /uses the same port tcp\/80/);
    await poolStatus(env, "lan", (s) => s.assignedIPv4 === 1 && s.availableIPv4 === 1);
  });

  it("frees the address when the Service stops being a LoadBalancer or leaves VIP mode, and removes the annotation", async () => {
    await create(env.client, POOLS, pool("lan", { addresses: ["198.51.100.40/32"] }));
    ctl = await startController(env);
    await create(env.client, SVCS, vip("a"));
    await waitForVip(env, "a", ["198.51.100.40"]);
    await mergePatch(env.client, svcPath("a"), { spec: { type: "ClusterIP" } });
    await create(env.client, SVCS, vip("b"));
    await waitForVip(env, "b", ["198.51.100.40"]);
    const a = await getObj(env.client, svcPath("a"));
    assert.equal(a?.metadata.annotations?.[ALLOCATED_FROM_POOL_ANNOTATION], undefined);
    await mergePatch(env.client, svcPath("b"), { metadata: { annotations: { "berth.dev/mode": "hostport" } } });
    await waitFor("b's annotation removed", async () => (await getObj(env.client, svcPath("b")))?.metadata.annotations?.[ALLOCATED_FROM_POOL_ANNOTATION] === undefined);
    await waitFor("b's DaemonSet", async () => (await daemonSetsFor(env.client, "b")).length === 1);
    await poolStatus(env, "lan", (s) => s.assignedIPv4 === 0);
  });

  it("a hostPort Service switched to VIP mode gets a pool address, not its node addresses kept as if they were VIPs", async () => {
    await create(env.client, POOLS, pool("lan", { addresses: ["198.51.100.10-198.51.100.13"] }));
    ctl = await startController(env);
    await create(env.client, SVCS, service("web"));
    await waitForIngress(env.client, "web", ["192.0.2.11"]);
    await mergePatch(env.client, svcPath("web"), { metadata: { annotations: { "berth.dev/mode": "vip" } } });
    const svc = await waitForVip(env, "web", ["198.51.100.10"]);
    assert.equal(condition(svc, CONDITION_TYPES.ready)?.reason, "AddressAssigned");
    assert.equal(svc.metadata.annotations[ALLOCATED_FROM_POOL_ANNOTATION], "lan");
  });

  it("never moves an address when its pool is edited away; an overlapping pool is Invalid and hands out nothing", async () => {
    await create(env.client, POOLS, pool("lan", { addresses: ["198.51.100.50/31"] }));
    ctl = await startController(env);
    await create(env.client, SVCS, vip("keep"));
    await waitForVip(env, "keep", ["198.51.100.50"]);
    await create(env.client, POOLS, pool("clash", { addresses: ["198.51.100.51/32"], priority: -1 }));
    const invalid = await poolStatus(env, "clash", (s) => s.conditions?.[0]?.status === "False");
    assert.equal(invalid.conditions[0].reason, "Overlap");
    assert.match(invalid.conditions[0].message, /"198.51.100.51\/32" overlaps "198.51.100.50\/31" of pool lan/);
    await create(env.client, SVCS, vip("next"));
    await waitForVip(env, "next", ["198.51.100.51"]);
    assert.equal((await getObj(env.client, svcPath("next")))?.metadata.annotations[ALLOCATED_FROM_POOL_ANNOTATION], "lan");

    await mergePatch(env.client, `${POOLS}/lan`, { spec: { addresses: ["198.51.100.60/30"] } });
    await waitForReason(env, "keep", "AssignedOutsidePools");
    assert.deepEqual(ingressIps(await getObj(env.client, svcPath("keep"))), ["198.51.100.50"]);
    await warning(env, "keep", "AssignedOutsidePools");
  });

  it("a restarted controller, and a new leader, rebuild from status and never give an address in use to another Service", async () => {
    await create(env.client, POOLS, pool("lan", { addresses: ["198.51.100.70-198.51.100.73"] }));
    ctl = await startController(env, { identity: "a" });
    await create(env.client, SVCS, vip("one"));
    await create(env.client, SVCS, vip("two"));
    await waitForVip(env, "one", ["198.51.100.70"]);
    await waitForVip(env, "two", ["198.51.100.71"]);
    other = await startController(env, { identity: "b" });
    await ctl.stop();
    ctl = undefined;
    await waitFor("b leads", async () => other?.controller.isLeader());
    await create(env.client, SVCS, vip("three"));
    await waitForVip(env, "three", ["198.51.100.72"]);
    await other.stop();
    other = undefined;
    // Changes while no controller runs; then a fresh process, whose allocator starts empty and is rebuilt from
    // status before the first reconcile (the queue may well take four and five before two and three).
    await env.client.del(svcPath("one"));
    await create(env.client, SVCS, vip("four"));
    await create(env.client, SVCS, vip("five"));
    ctl = await startController(env, { workers: 1 });
    const got = await waitFor("four and five served", async () => {
      const ips = await Promise.all(["four", "five"].map(async (n) => ingressIps(await getObj(env.client, svcPath(n)))[0]));
      return ips.every((ip) => ip !== undefined) ? ips : undefined;
    });
    assert.deepEqual([...got].sort(), ["198.51.100.70", "198.51.100.73"]);
    assert.deepEqual(ingressIps(await getObj(env.client, svcPath("two"))), ["198.51.100.71"]);
    assert.deepEqual(ingressIps(await getObj(env.client, svcPath("three"))), ["198.51.100.72"]);
  });
});
