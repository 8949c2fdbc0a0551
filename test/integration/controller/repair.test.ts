// Against the sandbox API server: what someone else changes is put back, and what stops being true leaves the
// status at once. A DaemonSet edited behind our back (image, a port, a toleration) while our spec-hash annotation
// stays is repaired; fields we never set (server defaults, another tool's additions) cause no write. A node labelled
// for exclusion leaves status.loadBalancer.ingress while its lb-pod is still Ready (its pod goes only when the
// DaemonSet controller gets to it; here the fake DaemonSet controller is stopped, so it never does).
import assert from "node:assert/strict";
import { DAEMONSET_ANNOTATIONS } from "../../../src/lib/names.js";
import {
  create, daemonSetsFor, dsPath, getObj, mergePatch, node, nodePath, service, startController, startEnv, updateNode,
  waitFor, waitForIngress, type Env, type Obj, type TestController,
} from "./support.js";

const SVCS = "/api/v1/namespaces/default/services";

describe("controller: repairs what others change, and drops what no longer holds", function () {
  this.timeout(30_000);
  let env: Env;
  let ctl: TestController | undefined;
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.11" }));
    await create(env.client, nodePath(), node("n2", { internalIp: "192.0.2.12" }));
  });
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });

  /** The Service's DaemonSet once the controller applied it. */
  async function applied(name: string): Promise<Obj> {
    return waitFor(`DaemonSet of ${name}`, async () => (await daemonSetsFor(env.client, name))[0]);
  }
  const dsApplies = (c: TestController): number => c.calls.filter((call) => call.verb === "apply" && call.resource.startsWith("daemonsets")).length;

  /** Changes the live DaemonSet as `kubectl edit` would (the whole template back, lists replaced), keeping our hash. */
  async function editBehindOurBack(name: string, change: (podSpec: Obj) => void): Promise<void> {
    const live = (await getObj(env.client, dsPath(name))) as Obj;
    const hash = live.metadata.annotations[DAEMONSET_ANNOTATIONS.specHash];
    const podSpec = structuredClone(live.spec.template.spec) as Obj;
    change(podSpec);
    await mergePatch(env.client, dsPath(name), { spec: { template: { spec: podSpec } } });
    const after = (await getObj(env.client, dsPath(name))) as Obj;
    assert.equal(after.metadata.annotations[DAEMONSET_ANNOTATIONS.specHash], hash, "the edit must leave our hash annotation as it was");
  }

  const edits: { name: string; change: (podSpec: Obj) => void; repaired: (podSpec: Obj) => boolean }[] = [
    {
      name: "an edited image",
      change: (p) => { p.containers[0].image = "someone-else:1"; },
      repaired: (p) => p.containers[0].image === "berth:test",
    },
    {
      name: "a removed port",
      change: (p) => { p.containers[0].ports = p.containers[0].ports.slice(0, 1); },
      repaired: (p) => p.containers[0].ports.length === 2,
    },
    {
      name: "a dropped toleration",
      change: (p) => { p.tolerations = p.tolerations.filter((t: Obj) => t.key !== "CriticalAddonsOnly"); },
      repaired: (p) => p.tolerations.some((t: Obj) => t.key === "CriticalAddonsOnly"),
    },
  ];
  for (const edit of edits) {
    it(`repairs ${edit.name} made by someone else while our hash annotation is untouched`, async () => {
      ctl = await startController(env, { resyncMs: 500 });
      await create(env.client, SVCS, service("web", { ports: [{ port: 80 }, { port: 443 }] }));
      const ds = await applied("web");
      await editBehindOurBack(ds.metadata.name, edit.change);
      await waitFor(`${edit.name} repaired`, async () => edit.repaired(((await getObj(env.client, dsPath(ds.metadata.name))) as Obj).spec.template.spec));
    });
  }

  it("leaves fields it does not set alone: server defaults or another tool's additions cause no write", async () => {
    ctl = await startController(env, { resyncMs: 300 });
    await create(env.client, SVCS, service("web", { ports: [{ port: 80 }] }));
    const ds = await applied("web");
    await waitForIngress(env.client, "web", ["192.0.2.11", "192.0.2.12"]);
    // What kube-apiserver's defaulting adds to a DaemonSet we applied, plus an extra toleration someone added.
    await editBehindOurBack(ds.metadata.name, (p) => {
      Object.assign(p, { restartPolicy: "Always", dnsPolicy: "ClusterFirst", schedulerName: "default-scheduler", terminationGracePeriodSeconds: 30 });
      Object.assign(p.containers[0], { terminationMessagePath: "/dev/termination-log", terminationMessagePolicy: "File" });
      p.tolerations = [...p.tolerations, { key: "example.com/extra", operator: "Exists" }];
    });
    await mergePatch(env.client, dsPath(ds.metadata.name), { spec: { revisionHistoryLimit: 10 } });
    const before = dsApplies(ctl);
    // Several resyncs and the watch events of both edits.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    assert.equal(dsApplies(ctl), before, "no DaemonSet write for fields berth does not own");
  });

  it("drops a node labelled for exclusion from the status at once, while its lb-pod is still Ready", async () => {
    ctl = await startController(env);
    await create(env.client, SVCS, service("web", { ports: [{ port: 80 }] }));
    await waitForIngress(env.client, "web", ["192.0.2.11", "192.0.2.12"]);
    // No DaemonSet controller from here on: n2's lb-pod stays, Ready, as it does on a cluster until it is deleted.
    await env.kubelet.settled();
    env.kubelet.stop();
    await updateNode(env.client, "n2", (n) => (n.metadata.labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""));
    await waitForIngress(env.client, "web", ["192.0.2.11"]);
    const pods = (await getObj(env.client, "/api/v1/namespaces/berth-system/pods")) as Obj;
    assert.ok((pods.items as Obj[]).some((p) => p.spec.nodeName === "n2" && !p.metadata.deletionTimestamp), "n2's lb-pod is still there");
  });
});
