// End-to-end: a default install meets a stock kubelet. The sandbox's kubelets run as `sandbox up` starts them by
// default, like a kubelet without --allowed-unsafe-sysctls (kubeadm, or k3s with its servicelb disabled), and its
// pod namespaces start as a real node's do (IPv4 forwarding copied from the node, on; IPv6 forwarding off). An IPv4
// Service's lb-pods ask for no sysctl and serve; a dual-stack Service's ask for net.ipv6.conf.all.forwarding, are
// rejected (SysctlForbidden), and the Service says so once, naming the kubelet flag, while the IPv4 one keeps serving.
import assert from "node:assert/strict";
import {
  APP_NAMESPACE,
  LB_NAMESPACE,
  appDaemonSet,
  lbService,
  show,
  sleep,
  type Obj,
  type Target,
  suiteSandbox,
} from "./fixture.js";

const http = (ip: string, port: number): Target => ({ protocol: "http", ip, port });
const READY = "berth.dev/LoadBalancerReady";
const FLAG = "--allowed-unsafe-sysctls=net.ipv6.conf.all.forwarding";

describe("e2e: a stock kubelet (no --allowed-unsafe-sysctls)", function () {
  this.timeout(150_000);
  const sb = suiteSandbox("s", { nodes: 2, dualStack: true }, async (s) => {
    await s.create(appDaemonSet("web"));
    await s.waitForReadyPods("app=web", 2);
  });

  it("serves an IPv4 Service: its lb-pods ask for no sysctl, are admitted, and forward", async () => {
    await sb().create(lbService("v4", "web", [{ port: 8301 }], { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"] }));
    const v4 = sb().nodes.map((node) => node.ipv4);
    await sb().waitForIngress("v4", v4);
    for (const pod of await sb().lbPods("v4")) assert.equal(pod.spec?.securityContext?.sysctls, undefined, pod.metadata.name);
    const outcomes = await sb().waitForAnswers("IPv4 on every node", v4.map((ip) => http(ip, 8301)));
    for (const outcome of outcomes) assert.ok(outcome.answered && outcome.pod.startsWith("web-"), show(outcome));
  });

  it("a dual-stack Service's lb-pods are rejected (SysctlForbidden); the Service says so once, naming the flag; the IPv4 one still serves", async () => {
    await sb().create(lbService("dual", "web", [{ port: 8302 }], { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] }));
    let ready: Obj | undefined;
    await sb().waitFor("Service dual Ready=False SysctlForbidden naming both nodes", async () => {
      const svc = await sb().find("service", "dual", APP_NAMESPACE);
      ready = ((svc?.status?.conditions ?? []) as Obj[]).find((c) => c.type === READY);
      if (ready?.reason !== "SysctlForbidden") return `Ready is ${ready?.status}/${ready?.reason}: ${ready?.message}`;
      return sb().nodes.every((node) => String(ready?.message).includes(node.name)) ? undefined : `message: ${ready.message}`;
    }, 60_000);
    assert.equal(ready?.status, "False");
    assert.ok(String(ready?.message).includes(FLAG), ready?.message);
    assert.deepEqual(await sb().ingress("dual"), []);

    // The kubelet's side: Failed pods with reason SysctlForbidden, naming the sysctl.
    const [ds] = await sb().lbDaemonSets("dual");
    const pods = (await sb().getJson(["get", "pods", "-n", LB_NAMESPACE])).items as Obj[];
    const rejected = pods.filter((p) => String(p.metadata.name).startsWith(`${ds?.metadata.name}-`) && p.status?.reason === "SysctlForbidden");
    assert.ok(rejected.length > 0, "rejected lb-pods are visible");
    assert.match(String(rejected[0]?.status?.message), /forbidden sysctl: "net\.ipv6\.conf\.all\.forwarding" not allowlisted/);

    // While the DaemonSet controller keeps replacing rejected pods: still one Warning Event, count 1.
    await sleep(8000);
    const warnings = (await sb().events("dual")).filter((e) => e.reason === "SysctlForbidden");
    assert.equal(warnings.length, 1, JSON.stringify(warnings.map((e) => e.message)));
    assert.equal(warnings[0]?.count ?? 1, 1);
    assert.equal(warnings[0]?.type, "Warning");
    assert.ok(String(warnings[0]?.message).includes(FLAG), warnings[0]?.message);

    const v4 = sb().nodes.map((node) => node.ipv4);
    assert.deepEqual(await sb().ingress("v4"), v4);
    const outcomes = await sb().waitForAnswers("the IPv4 Service on every node", v4.map((ip) => http(ip, 8301)));
    for (const outcome of outcomes) assert.ok(outcome.answered, show(outcome));
  });
});
