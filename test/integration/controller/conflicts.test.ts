// Port conflicts are named, not left as a silent <pending> (docs/architecture.md, "hostPort mode"): another berth Service, or any pod with
// the same hostPort, holding a port on a node.
import assert from "node:assert/strict";
import { CONDITION_TYPES, LABELS } from "../../../src/lib/names.js";
import {
  condition, create, eventsFor, getObj, node, nodePath, startController, startEnv, service, svcPath, waitFor,
  waitForIngress, type Env,
} from "./support.js";

const SVCS = "/api/v1/namespaces/default/services";

describe("controller: port conflicts", function () {
  let env: Env;
  let ctl: Awaited<ReturnType<typeof startController>> | undefined;
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.21" }));
    await create(env.client, nodePath(), node("n2", { internalIp: "192.0.2.22" }));
    ctl = await startController(env);
  });
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });

  it("names the Service holding the port when two Services want it, and recovers when it is freed", async () => {
    await create(env.client, SVCS, service("first", { ports: [{ port: 80 }] }));
    await waitForIngress(env.client, "first", ["192.0.2.21", "192.0.2.22"]);
    await create(env.client, SVCS, service("second", { ports: [{ port: 80 }, { port: 81 }] }));
    // The pods go Pending one node at a time; wait until both nodes are named.
    const svc = await waitFor("conflict condition on both nodes", async () => {
      const s = await getObj(env.client, svcPath("second"));
      const c = condition(s, CONDITION_TYPES.portConflict);
      return c?.status === "True" && /n1/.test(c.message) && /n2/.test(c.message) ? s : undefined;
    });
    const c = condition(svc, CONDITION_TYPES.portConflict);
    assert.match(c?.message as string, /TCP\/80 on node n1: held by Service default\/first/);
    assert.match(c?.message as string, /TCP\/80 on node n2: held by Service default\/first/);
    const ready = condition(svc, CONDITION_TYPES.ready);
    assert.equal(ready?.status, "False");
    assert.equal(ready?.reason, "PortConflict");
    const warning = await waitFor("warning", async () => (await eventsFor(env.client, "second")).find((e) => e.reason === "PortConflict"));
    assert.equal(warning.type, "Warning");
    assert.match(warning.message as string, /default\/first/);

    assert.equal((await env.client.del(svcPath("first"))).status, 200);
    await waitForIngress(env.client, "second", ["192.0.2.21", "192.0.2.22"]);
    const after = await waitFor("conflict cleared", async () => {
      const s = await getObj(env.client, svcPath("second"));
      return condition(s, CONDITION_TYPES.portConflict)?.status === "False" ? s : undefined;
    });
    assert.equal(condition(after, CONDITION_TYPES.ready)?.status, "True");
    await waitFor("resolved event", async () => (await eventsFor(env.client, "second")).some((e) => e.reason === "PortConflictResolved"));
  });

  it("names any pod holding the hostPort on one node, and still serves from the nodes that work", async () => {
    await create(env.client, "/api/v1/namespaces/default/pods", {
      apiVersion: "v1", kind: "Pod",
      metadata: { name: "squatter" },
      spec: { nodeName: "n2", containers: [{ name: "c", image: "nginx", ports: [{ containerPort: 8443, hostPort: 8443, protocol: "TCP" }] }] },
    });
    await create(env.client, SVCS, service("web", { ports: [{ port: 8443 }] }));
    await waitForIngress(env.client, "web", ["192.0.2.21"]);
    const svc = await waitFor("conflict named", async () => {
      const s = await getObj(env.client, svcPath("web"));
      return condition(s, CONDITION_TYPES.portConflict)?.status === "True" ? s : undefined;
    });
    assert.match(condition(svc, CONDITION_TYPES.portConflict)?.message as string, /TCP\/8443 on node n2: held by pod default\/squatter/);
    const ready = condition(svc, CONDITION_TYPES.ready);
    assert.equal(ready?.status, "True");
    assert.equal(ready?.reason, "PartiallyServing");
  });
});

describe("controller: port conflicts seen in its own cache", function () {
  this.timeout(15_000);
  let env: Env;
  let ctl: Awaited<ReturnType<typeof startController>> | undefined;
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });

  it("names another berth Service holding the port before the scheduler says the port is taken", async () => {
    // The scheduler stand-in has two tokens (first's two bindings) and gets the next one in ~17 min: second's pods
    // stay unbound without its PodScheduled=False, so no port-holder lookup runs, and only the controller's index of
    // its cached lb-pods by node and host port can name the holder.
    env = await startEnv({ clientLimits: { scheduler: { qps: 0.001, burst: 2 } } });
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.21" }));
    await create(env.client, nodePath(), node("n2", { internalIp: "192.0.2.22" }));
    ctl = await startController(env);
    await create(env.client, SVCS, service("first", { ports: [{ port: 80 }] }));
    await waitForIngress(env.client, "first", ["192.0.2.21", "192.0.2.22"]);
    const podLists = (): number => (ctl as NonNullable<typeof ctl>).calls.filter((c) => c.verb === "list" && c.resource === "pods").length;
    const listsBefore = podLists();
    await create(env.client, SVCS, service("second", { ports: [{ port: 80 }] }));
    const svc = await waitFor("conflict named on both nodes", async () => {
      const s = await getObj(env.client, svcPath("second"));
      const c = condition(s, CONDITION_TYPES.portConflict);
      return c?.status === "True" && /n1/.test(c.message) && /n2/.test(c.message) ? s : undefined;
    });
    assert.match(condition(svc, CONDITION_TYPES.portConflict)?.message as string, /TCP\/80 on node n1: held by Service default\/first/);
    const waiting = env.kubelet.podList().filter((p) => p.metadata.labels?.[LABELS.serviceName] === "second");
    assert.equal(waiting.length, 2);
    for (const p of waiting) {
      assert.equal(p.spec.nodeName, undefined);
      assert.ok(!(p.status?.conditions ?? []).some((c: { type: string }) => c.type === "PodScheduled"), "the scheduler has not spoken");
    }
    assert.ok(env.kubelet.deferredWrites > 0);
    assert.equal(podLists(), listsBefore, "no port-holder lookup");
  });
});
