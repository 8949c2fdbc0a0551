// Port conflicts are named, not left as a silent <pending> (docs/architecture.md, "hostPort mode"): another berth Service, or any pod with
// the same hostPort, holding a port on a node.
import assert from "node:assert/strict";
import { CONDITION_TYPES } from "../../../src/lib/names.js";
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
