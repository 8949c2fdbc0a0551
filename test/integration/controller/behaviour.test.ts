// What users rely on (docs/architecture.md, "hostPort mode"): Local policy follows endpoints, dual-stack order, node labels and addresses,
// bad annotations, VIP mode, classes that are not ours, type changes, restarts.
import assert from "node:assert/strict";
import { CONDITION_TYPES, FINALIZER } from "../../../src/lib/names.js";
import {
  condition, create, daemonSetsFor, eventsFor, getObj, ingressIps, mergePatch, node, nodePath, setNodeReady, startController,
  startEnv, service, svcPath, updateNode, waitFor, waitForIngress, type Env, type Obj,
} from "./support.js";

const SVCS = "/api/v1/namespaces/default/services";

function endpointSlice(svc: string, name: string, endpoints: { ip: string; node: string; ready: boolean }[]): Obj {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, labels: { "kubernetes.io/service-name": svc } },
    addressType: "IPv4",
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], nodeName: e.node, conditions: { ready: e.ready } })),
    ports: [{ name: "p0", port: 8080, protocol: "TCP" }],
  };
}

describe("controller: behaviour users rely on", function () {
  let env: Env;
  let ctl: Awaited<ReturnType<typeof startController>> | undefined;
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.11", addresses: [{ type: "InternalIP", address: "2001:db8::11" }] }));
    await create(env.client, nodePath(), node("n2", { internalIp: "192.0.2.12", addresses: [{ type: "InternalIP", address: "2001:db8::12" }] }));
    await create(env.client, nodePath(), node("n3", { internalIp: "192.0.2.13", addresses: [{ type: "InternalIP", address: "2001:db8::13" }] }));
  });
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });

  it("with externalTrafficPolicy Local, lists only nodes with a ready endpoint, and follows the endpoints", async () => {
    ctl = await startController(env);
    await create(env.client, SVCS, service("loc", { externalTrafficPolicy: "Local" }));
    const slices = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
    await create(env.client, slices, endpointSlice("loc", "loc-a", [{ ip: "10.42.0.5", node: "n2", ready: true }, { ip: "10.42.0.6", node: "n3", ready: false }]));
    await waitForIngress(env.client, "loc", ["192.0.2.12"]);
    await mergePatch(env.client, `${slices}/loc-a`, { endpoints: [{ addresses: ["10.42.0.6"], nodeName: "n3", conditions: { ready: true } }] });
    await waitForIngress(env.client, "loc", ["192.0.2.13"]);
  });

  it("lists both families in spec.ipFamilies order for a dual-stack Service", async () => {
    ctl = await startController(env);
    await create(env.client, SVCS, service("dual", { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv6", "IPv4"] }));
    const svc = await getObj(env.client, svcPath("dual"));
    if (!svc?.spec.clusterIPs || svc.spec.clusterIPs.length < 2) {
      // The sandbox gives dual-stack ClusterIPs only with both service CIDRs; say so rather than pass vacuously.
      assert.fail(`sandbox gave no dual-stack ClusterIPs: ${JSON.stringify(svc?.spec)}`);
    }
    await waitForIngress(env.client, "dual", ["2001:db8::11", "2001:db8::12", "2001:db8::13", "192.0.2.11", "192.0.2.12", "192.0.2.13"]);
  });

  it("follows node labels (berth.dev/enabled, exclusion) and address changes", async () => {
    ctl = await startController(env);
    await create(env.client, SVCS, service("web"));
    await waitForIngress(env.client, "web", ["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
    await updateNode(env.client, "n1", (n) => (n.metadata.labels["berth.dev/enabled"] = "true"));
    await updateNode(env.client, "n2", (n) => (n.metadata.labels["berth.dev/enabled"] = "true"));
    await waitForIngress(env.client, "web", ["192.0.2.11", "192.0.2.12"]);
    await updateNode(env.client, "n2", (n) => (n.metadata.labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""));
    await waitForIngress(env.client, "web", ["192.0.2.11"]);
    await updateNode(env.client, "n1", (n) => {
      n.status.addresses = [{ type: "InternalIP", address: "192.0.2.111" }, { type: "ExternalIP", address: "203.0.113.1" }, { type: "Hostname", address: "n1" }];
    }, "status");
    await waitForIngress(env.client, "web", ["203.0.113.1"]);
    // A NotReady node's pods stop being Ready (node lifecycle controller), so the node leaves the status.
    await updateNode(env.client, "n1", (n) => setNodeReady(n, false), "status");
    await waitForIngress(env.client, "web", []);
    const svc = await getObj(env.client, svcPath("web"));
    assert.equal(condition(svc, CONDITION_TYPES.ready)?.status, "False");
  });

  it("drops a node whose lb-pod goes unready and brings it back when ready again, without flapping others", async () => {
    ctl = await startController(env);
    await create(env.client, SVCS, service("web"));
    await waitForIngress(env.client, "web", ["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
    const updatesSoFar = async (): Promise<number> => (await eventsFor(env.client, "web"))
      .filter((e) => e.reason === "UpdatedLoadBalancer").reduce((n, e) => n + (e.count as number), 0);
    const before = await waitFor("first update event", async () => (await updatesSoFar()) || undefined);
    env.kubelet.setReady({ node: "n2", ready: false });
    await waitForIngress(env.client, "web", ["192.0.2.11", "192.0.2.13"]);
    env.kubelet.setReady({ node: "n2", ready: true });
    await waitForIngress(env.client, "web", ["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
    // Events are written asynchronously: wait for the second one, then make sure no third one follows.
    await waitFor("two more update events", async () => (await updatesSoFar()) === before + 2);
    await env.kubelet.settled();
    assert.equal(await updatesSoFar(), before + 2, "one UpdatedLoadBalancer per real change");
  });

  it("reports a bad annotation with a Warning Event and condition naming the field, applies nothing, and other Services keep working", async () => {
    ctl = await startController(env);
    await create(env.client, SVCS, service("bad", { annotations: { "berth.dev/tolerations": "[{not json" } }));
    await create(env.client, SVCS, service("good", { ports: [{ port: 81 }] }));
    await waitForIngress(env.client, "good", ["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
    const bad = await waitFor("bad condition", async () => {
      const svc = await getObj(env.client, svcPath("bad"));
      return condition(svc, CONDITION_TYPES.ready)?.reason === "InvalidConfiguration" ? svc : undefined;
    });
    assert.match(condition(bad, CONDITION_TYPES.ready)?.message as string, /berth\.dev\/tolerations/);
    assert.deepEqual(await daemonSetsFor(env.client, "bad"), []);
    const warning = await waitFor("warning event", async () => (await eventsFor(env.client, "bad")).find((e) => e.type === "Warning"));
    assert.equal(warning.reason, "InvalidConfiguration");
    assert.match(warning.message as string, /berth\.dev\/tolerations/);
    // Fixed: served like any other.
    await mergePatch(env.client, svcPath("bad"), { metadata: { annotations: { "berth.dev/tolerations": null } } });
    await waitForIngress(env.client, "bad", ["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
  });

  it("counts a repeated Event on the existing one instead of creating another (event aggregation)", async () => {
    ctl = await startController(env);
    const bad = (value: string) => ({ metadata: { annotations: { "berth.dev/priority-class": value } } });
    await create(env.client, SVCS, service("flip", { annotations: { "berth.dev/priority-class": "Bad One" } }));
    const warnings = async (): Promise<Obj[]> => (await eventsFor(env.client, "flip")).filter((e) => e.reason === "InvalidConfiguration");
    await waitFor("first warning", async () => (await warnings()).length === 1);
    await mergePatch(env.client, svcPath("flip"), bad("Bad Two"));
    await waitFor("second warning", async () => (await warnings()).length === 2);
    await mergePatch(env.client, svcPath("flip"), bad("Bad One"));
    const counted = await waitFor("first warning counted twice", async () => {
      const list = await warnings();
      return list.length === 2 && list.some((e) => e.count === 2 && /Bad One/.test(e.message)) ? list : undefined;
    });
    const again = counted.find((e) => e.count === 2) as Obj;
    assert.ok(again.lastTimestamp >= again.firstTimestamp);
  });

  it("answers a VIP-mode Service with no AddressPool with a Warning and a condition saying to create one, and nothing else", async () => {
    ctl = await startController(env);
    await create(env.client, SVCS, service("vip", { annotations: { "berth.dev/mode": "vip" } }));
    const svc = await waitFor("vip condition", async () => {
      const s = await getObj(env.client, svcPath("vip"));
      return condition(s, CONDITION_TYPES.ready)?.reason === "NoAddressPools" ? s : undefined;
    });
    assert.match(condition(svc, CONDITION_TYPES.ready)?.message as string, /no valid AddressPool. Create one/);
    assert.deepEqual(ingressIps(svc), []);
    assert.deepEqual(await daemonSetsFor(env.client, "vip"), []);
    await waitFor("warning", async () => (await eventsFor(env.client, "vip")).some((e) => e.type === "Warning" && e.reason === "NoAddressPools"));
  });

  it("never touches a Service of another loadBalancerClass, nor an unset class when told to ignore those", async () => {
    ctl = await startController(env, { claimUnsetClass: false });
    await create(env.client, SVCS, service("other", { loadBalancerClass: "example.com/lb" }));
    await create(env.client, SVCS, service("unset"));
    await create(env.client, SVCS, service("mine", { loadBalancerClass: "berth.dev/lb" }));
    await waitForIngress(env.client, "mine", ["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
    for (const name of ["other", "unset"]) {
      const svc = await getObj(env.client, svcPath(name));
      assert.equal(svc?.metadata.finalizers, undefined, name);
      assert.equal(svc?.status?.conditions, undefined, name);
      assert.deepEqual(ingressIps(svc), [], name);
      assert.deepEqual(await daemonSetsFor(env.client, name), [], name);
      assert.deepEqual(await eventsFor(env.client, name), [], name);
      assert.equal(svc?.metadata.managedFields.some((m: Obj) => m.manager === "berth-controller"), false, name);
    }
  });

  it("cleans up when a Service stops being a LoadBalancer: DaemonSet deleted, status cleared, finalizer removed", async () => {
    ctl = await startController(env);
    await create(env.client, SVCS, service("web"));
    await waitForIngress(env.client, "web", ["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
    await mergePatch(env.client, svcPath("web"), { spec: { type: "ClusterIP" } });
    const svc = await waitFor("cleaned", async () => {
      const s = await getObj(env.client, svcPath("web"));
      return !s?.metadata.finalizers && (await daemonSetsFor(env.client, "web")).length === 0 ? s : undefined;
    });
    assert.deepEqual(ingressIps(svc), []);
    assert.equal(condition(svc, CONDITION_TYPES.ready), undefined);
  });

  it("converges after a restart mid-way: finalizer already there, DaemonSet present, nothing duplicated", async () => {
    ctl = await startController(env);
    await create(env.client, SVCS, service("a"));
    await waitForIngress(env.client, "a", ["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
    await ctl.stop();
    // While the controller is down: one Service changes, one is deleted (its finalizer holds it), one is created.
    await create(env.client, SVCS, service("b", { ports: [{ port: 82 }] }));
    await env.client.del(svcPath("a"));
    ctl = await startController(env);
    await waitForIngress(env.client, "b", ["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
    await waitFor("a gone", async () => (await getObj(env.client, svcPath("a"))) === undefined && (await daemonSetsFor(env.client, "a")).length === 0);
    assert.equal((await daemonSetsFor(env.client, "b")).length, 1);
    const b = await getObj(env.client, svcPath("b"));
    assert.deepEqual(b?.metadata.finalizers, [FINALIZER]);
  });

  it("sweeps orphaned DaemonSets at start (Service gone, or re-created with another uid)", async () => {
    ctl = await startController(env);
    await create(env.client, SVCS, service("a"));
    await waitForIngress(env.client, "a", ["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
    const [old] = await daemonSetsFor(env.client, "a");
    await ctl.stop();
    // Remove the Service behind berth's back (finalizer stripped), and re-create it: a new uid, a new DaemonSet name.
    await mergePatch(env.client, svcPath("a"), { metadata: { finalizers: null } });
    await env.client.del(svcPath("a"));
    await waitFor("a gone", async () => (await getObj(env.client, svcPath("a"))) === undefined);
    await create(env.client, SVCS, service("a"));
    ctl = await startController(env);
    await waitFor("only the new DaemonSet", async () => {
      const list = await daemonSetsFor(env.client, "a");
      return list.length === 1 && list[0]?.metadata.name !== old?.metadata.name;
    });
    await waitForIngress(env.client, "a", ["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
  });
});
