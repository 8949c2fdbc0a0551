// A LoadBalancer Service's life under the controller, end to end over HTTP: created, served, changed, deleted.
import assert from "node:assert/strict";
import { FINALIZER, CONDITION_TYPES, LABELS } from "../../../src/lib/names.js";
import {
  condition, create, daemonSetsFor, eventsFor, getObj, mergePatch, node, nodePath, startController, startEnv, svcPath,
  service, waitFor, waitForIngress, type Env,
} from "./support.js";

describe("controller: a Service's lifecycle", function () {
  let env: Env;
  let ctl: Awaited<ReturnType<typeof startController>> | undefined;
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.11" }));
    await create(env.client, nodePath(), node("n2", { internalIp: "192.0.2.12", externalIp: "198.51.100.2" }));
  });
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });

  it("gives a new LoadBalancer Service a DaemonSet, a finalizer and the serving nodes' IPs (ExternalIP preferred)", async () => {
    ctl = await startController(env);
    await create(env.client, "/api/v1/namespaces/default/services", service("web", { ports: [{ port: 80 }, { port: 443 }] }));
    const svc = await waitForIngress(env.client, "web", ["192.0.2.11", "198.51.100.2"]);
    assert.ok(svc.metadata.finalizers.includes(FINALIZER));
    const ready = condition(svc, CONDITION_TYPES.ready);
    assert.equal(ready?.status, "True");
    const [ds] = await daemonSetsFor(env.client, "web");
    assert.ok(ds);
    assert.equal(ds.metadata.labels[LABELS.serviceUid], svc.metadata.uid);
    const ports = ds.spec.template.spec.containers[0].ports.map((p: { hostPort: number }) => p.hostPort);
    assert.deepEqual(ports, [80, 443]);
    const reasons = (await eventsFor(env.client, "web")).map((e) => e.reason);
    assert.ok(reasons.includes("AppliedDaemonSet") && reasons.includes("UpdatedLoadBalancer"), reasons.join());
  });

  it("deletes the DaemonSet and then releases the finalizer when the Service is deleted", async () => {
    ctl = await startController(env);
    await create(env.client, "/api/v1/namespaces/default/services", service("web"));
    await waitForIngress(env.client, "web", ["192.0.2.11", "198.51.100.2"]);
    const del = await env.client.del(svcPath("web"));
    assert.equal(del.status, 200);
    await waitFor("service gone", async () => (await getObj(env.client, svcPath("web"))) === undefined);
    assert.deepEqual(await daemonSetsFor(env.client, "web"), []);
  });

  it("re-applies the DaemonSet when ports change, and not otherwise", async () => {
    ctl = await startController(env);
    await create(env.client, "/api/v1/namespaces/default/services", service("web"));
    await waitForIngress(env.client, "web", ["192.0.2.11", "198.51.100.2"]);
    const [before] = await daemonSetsFor(env.client, "web");
    await env.kubelet.settled();
    // A resync-worth of reconciles of an unchanged Service must not touch the DaemonSet.
    await new Promise((r) => setTimeout(r, 300));
    const [same] = await daemonSetsFor(env.client, "web");
    assert.equal(same?.metadata.generation, before?.metadata.generation);
    await mergePatch(env.client, svcPath("web"), { spec: { ports: [{ name: "p0", port: 8080, protocol: "TCP", targetPort: 8080 }] } });
    await waitFor("ds with port 8080", async () => {
      const [ds] = await daemonSetsFor(env.client, "web");
      return ds?.spec.template.spec.containers[0].ports[0].hostPort === 8080;
    });
  });
});
