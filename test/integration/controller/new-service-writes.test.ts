// A new Service's first reconcile, by the API server's own request log: what must come before what (the rules
// ConfigMap before the DaemonSet that mounts it; the finalizer before the status write that carries its
// resourceVersion), and what goes out together so the reconcile, which holds a worker other new Services may be
// waiting for, takes as few round trips as that allows (docs/design/0012-api-discipline-at-scale.md).
import assert from "node:assert/strict";
import type { LoggedRequest } from "../../../src/sandbox/apiserver/index.js";
import { create, daemonSetsFor, node, nodePath, service, startController, startEnv, waitFor, type Env, type TestController } from "./support.js";

const SVCS = "/api/v1/namespaces/default/services";
/** Each of the controller's writes waits this long in the server, so what overlaps and what waits is plain. */
const LATENCY_MS = 300;

describe("controller: a new Service's writes, in the API server's request log", function () {
  this.timeout(30_000);
  let env: Env;
  let ctl: TestController | undefined;
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });

  it("applies ConfigMap then DaemonSet while the finalizer and then the status are written", async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.1" }));
    ctl = await startController(env);
    // Only the controller writes these (the test's own client creates the Service with a POST).
    for (const resource of ["services", "configmaps", "daemonsets"]) env.server.faults.add({ verb: "patch", resource, latencyMs: LATENCY_MS });
    await create(env.client, SVCS, service("web"));
    await waitFor("the DaemonSet and the status write", async () => (await daemonSetsFor(env.client, "web")).length === 1 &&
      env.server.requestLog.entries().some((e) => e.resource === "services/status" && e.endedAt !== undefined), 20_000);
    const log = env.server.requestLog.entries().filter((e) => e.verb === "patch" && e.outcome === "answered");
    const first = (what: string, match: (e: LoggedRequest) => boolean): LoggedRequest => {
      const found = log.find(match);
      assert.ok(found, `no ${what} in ${JSON.stringify(log.map((e) => `${e.verb} ${e.resource}/${e.name}`))}`);
      return found;
    };
    const finalizer = first("finalizer patch", (e) => e.resource === "services" && e.name === "web");
    const rules = first("rules ConfigMap apply", (e) => e.resource === "configmaps");
    const daemonSet = first("DaemonSet apply", (e) => e.resource === "daemonsets");
    const status = first("status write", (e) => e.resource === "services/status" && e.name === "web");
    const at = (e: LoggedRequest, t: number): string => `${Math.round(t - finalizer.arrivedAt)} ms`;
    // What must wait.
    assert.ok(daemonSet.arrivedAt >= (rules.endedAt as number), `the DaemonSet (${at(daemonSet, daemonSet.arrivedAt)}) after its ConfigMap (${at(rules, rules.endedAt as number)})`);
    assert.ok(status.arrivedAt >= (finalizer.endedAt as number), "the status write after the finalizer write");
    // What goes out together: the finalizer with the ConfigMap, and the status write while the DaemonSet side
    // (ConfigMap, DaemonSet, the ConfigMap's owner) is still under way, not after it.
    assert.ok(finalizer.arrivedAt < (rules.endedAt as number) && rules.arrivedAt < (finalizer.endedAt as number), "the finalizer and the ConfigMap overlap");
    assert.ok(status.arrivedAt < (daemonSet.endedAt as number),
      `the status write arrived at ${at(status, status.arrivedAt)}, the DaemonSet apply ended at ${at(daemonSet, daemonSet.endedAt as number)}`);
  });
});
