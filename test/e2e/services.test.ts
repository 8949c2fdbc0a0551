// End-to-end: LoadBalancer Services in a 3-node sandbox whose kube-proxy stand-in captures LoadBalancer IPs, as
// kube-proxy does by default (docs/architecture.md, "How traffic really flows"): every check reads the cluster with kubectl AND sends real
// traffic from the client namespace to the nodes' LAN addresses. One sandbox for the whole file (each `up` costs
// seconds); every test uses its own Service names and ports and removes what it changes, and the ones that take
// something away for good (a node) run last.
import assert from "node:assert/strict";
import { skipBecause } from "../support/skip.js";
import {
  APP_NAMESPACE,
  appDaemonSet,
  appPod,
  demoAppHasUdp,
  isReady,
  lbService,
  processAlive,
  show,
  type Obj,
  type Outcome,
  type Target,
  suiteSandbox,
} from "./fixture.js";

const http = (ip: string, port: number, extra: Partial<Target> = {}): Target => ({ protocol: "http", ip, port, ...extra });
const udp = (ip: string, port: number): Target => ({ protocol: "udp", ip, port });

describe("e2e: LoadBalancer Services (3 nodes, kube-proxy captures LoadBalancer IPs)", function () {
  this.timeout(150_000);
  let udpApp = false;
  let client = "";
  const sb = suiteSandbox("a", { nodes: 3 }, async (s) => {
    udpApp = await demoAppHasUdp();
    client = (await s.clientAddress(4)).ip;
    await s.create(appDaemonSet("web", { udp: udpApp }));
    await s.waitForReadyPods("app=web", 3);
  });
  const ips = (...names: string[]): string[] => names.map((name) => sb().node(name).ipv4);
  const allIps = (): string[] => sb().nodes.map((node) => node.ipv4);

  it("gives a new LoadBalancer Service every node's address, shown by kubectl, and answers on each of them", async () => {
    await sb().create(lbService("web", "web", [{ port: 8001 }]));
    await sb().waitForIngress("web", allIps());

    const table = await sb().kubectl(["get", "svc", "web", "-n", APP_NAMESPACE]);
    assert.ok(table.includes(allIps().join(",")), `kubectl get svc shows the node IPs as EXTERNAL-IP:\n${table}`);
    const [daemonSet, ...others] = await sb().lbDaemonSets("web");
    assert.equal(others.length, 0, "one lb-pod DaemonSet per Service");
    assert.match(String(daemonSet?.metadata?.name), /^svclb-web-[0-9a-f]{8}$/);
    const lbPods = await sb().lbPods("web");
    assert.deepEqual(lbPods.map((pod) => pod.spec?.nodeName).sort(), sb().nodes.map((n) => n.name), "one lb-pod on each node");
    assert.ok(lbPods.every(isReady), "every lb-pod Ready");

    const outcomes = await sb().waitForAnswers("web on every node", allIps().map((ip) => http(ip, 8001)));
    for (const outcome of outcomes) assert.ok(outcome.answered && outcome.pod.startsWith("web-"), show(outcome));
  });

  it("moves traffic to the new port when the Service's port is changed, and serves it on every node", async () => {
    await sb().patch("service", "web", APP_NAMESPACE, [
      { op: "replace", path: "/spec/ports/0/port", value: 8002 },
      { op: "replace", path: "/spec/ports/0/name", value: "tcp-8002" },
    ], "json");
    await sb().waitForAnswers("web on its new port 8002", allIps().map((ip) => http(ip, 8002)));
    await sb().waitForSilence("nothing on the old port 8001", allIps().map((ip) => http(ip, 8001)));
    // The lb-pods are replaced (a new hostPort), so a node may drop out for a moment; it must come back.
    await sb().waitForIngress("web", allIps());
    const [daemonSet] = await sb().lbDaemonSets("web");
    const hostPorts = (daemonSet?.spec?.template?.spec?.containers?.[0]?.ports ?? []).map((p: Obj) => p.hostPort);
    assert.deepEqual(hostPorts, [8002], "the lb-pods hold the new port only");
  });

  it("serves a port added to the Service and stops serving one removed from it", async () => {
    await sb().patch("service", "web", APP_NAMESPACE, [
      { op: "add", path: "/spec/ports/-", value: { name: "tcp-8003", port: 8003, protocol: "TCP", targetPort: 8080 } },
    ], "json");
    await sb().waitForAnswers("web on 8002 and the added 8003", allIps().flatMap((ip) => [http(ip, 8002), http(ip, 8003)]));

    await sb().patch("service", "web", APP_NAMESPACE, [{ op: "remove", path: "/spec/ports/0" }], "json");
    await sb().waitForSilence("nothing on the removed port 8002", allIps().map((ip) => http(ip, 8002)));
    await sb().waitForAnswers("web still on 8003", allIps().map((ip) => http(ip, 8003)));
    const [daemonSet] = await sb().lbDaemonSets("web");
    const hostPorts = (daemonSet?.spec?.template?.spec?.containers?.[0]?.ports ?? []).map((p: Obj) => p.hostPort);
    assert.deepEqual(hostPorts, [8003]);
  });

  it("serves TCP and UDP on the same port number of one Service", async function () {
    if (!udpApp) skipBecause(this, "the demo app has no UDP listener (`berth sandbox demo-app --help` lists no --udp-port)");
    await sb().create(lbService("mixed", "web", [{ port: 8010, protocol: "TCP" }, { port: 8010, protocol: "UDP" }]));
    await sb().waitForIngress("mixed", allIps());
    const outcomes = await sb().waitForAnswers("TCP and UDP on 8010 on every node", allIps().flatMap((ip) => [http(ip, 8010), udp(ip, 8010)]));
    for (const outcome of outcomes) assert.ok(outcome.answered && outcome.pod.startsWith("web-"), show(outcome));
    await sb().kubectl(["delete", "service", "mixed", "-n", APP_NAMESPACE]);
  });

  it("removes the lb-pods, their namespaces and the traffic when the Service is deleted", async () => {
    const lbPods = await sb().lbPods("web");
    const podNamespaces = lbPods.map((pod) => sb().podNamespace(pod));
    assert.equal(podNamespaces.length, 3);
    await sb().kubectl(["delete", "service", "web", "-n", APP_NAMESPACE, "--wait=false"]);
    await sb().waitFor("Service web gone (finalizer removed)", async () => ((await sb().find("service", "web", APP_NAMESPACE)) ? "still there" : undefined));
    await sb().waitFor("its DaemonSet and lb-pods gone", async () => {
      const left = [...(await sb().lbDaemonSets("web")), ...(await sb().lbPods("web"))];
      return left.length === 0 ? undefined : `left: ${left.map((o: Obj) => `${o.kind ?? ""} ${o.metadata?.name}`).join(", ")}`;
    });
    await sb().waitFor("the lb-pods' network namespaces gone", async () => {
      const existing = await sb().namespaces();
      const left = podNamespaces.filter((ns) => existing.includes(ns));
      return left.length === 0 ? undefined : `left: ${left.join(", ")}`;
    });
    await sb().waitForSilence("nothing on 8003", allIps().map((ip) => http(ip, 8003)));
  });

  it("externalTrafficPolicy Local: the status lists only nodes with an endpoint, which answer from it with the client's own address", async () => {
    await sb().create(appPod("local-1", "local", "node-1"));
    await sb().waitForReadyPods("app=local", 1);
    await sb().create(lbService("local", "local", [{ port: 8020 }], { externalTrafficPolicy: "Local" }));
    await sb().waitForIngress("local", ips("node-1"));
    // waitForIngress sees the status before every node's kube-proxy has synced it: until node-X's proxy captures its
    // own IP, traffic takes the hostPort path (lb-pod, masqueraded, any endpoint). So wait for the captured path,
    // told apart by the client's own address; a broken Local path never gets there and times out.
    const fromOwnEndpoint = (pod: string) => (outcomes: Outcome[]) =>
      outcomes.every((o) => o.answered && o.pod === pod && o.clientIp === client) ? undefined : `answers: ${outcomes.map(show).join("; ")}`;
    const [first] = await sb().waitForAnswers("local on node-1", [http(sb().node("node-1").ipv4, 8020)], fromOwnEndpoint("local-1"));
    assert.ok(first?.answered, "answered");
    assert.equal(first.pod, "local-1");
    assert.equal(first.clientIp, client, "Local keeps the client's address");
    // Nodes that are not in the status are not asserted on: traffic to them takes their lb-pod, whose masqueraded
    // (pod-sourced) packets kube-proxy sends to any endpoint, as for any pod (see the lb-pod path test).

    await sb().create(appPod("local-2", "local", "node-2"));
    await sb().waitForIngress("local", ips("node-1", "node-2"));
    const [second] = await sb().waitForAnswers("local on node-2", [http(sb().node("node-2").ipv4, 8020)], fromOwnEndpoint("local-2"));
    assert.ok(second?.answered);
    assert.equal(second.pod, "local-2", "node-2's own endpoint answers");
    assert.equal(second.clientIp, client);
    await sb().kubectl(["delete", "service", "local", "-n", APP_NAMESPACE]);
  });

  it("loadBalancerSourceRanges: answers allowed sources only, and follows a change of the ranges", async () => {
    const other = client.replace(/\.\d+$/, ".101");
    await sb().addClientAddress(`${other}/24`);
    try {
      await sb().create(lbService("ranged", "web", [{ port: 8030 }], { loadBalancerSourceRanges: [`${client}/32`] }));
      await sb().waitForIngress("ranged", allIps());
      await sb().waitForAnswers("allowed client answered", allIps().map((ip) => http(ip, 8030, { sourceIp: client })));
      await sb().waitForSilence("other source dropped", allIps().map((ip) => http(ip, 8030, { sourceIp: other })));

      await sb().patch("service", "ranged", APP_NAMESPACE, { spec: { loadBalancerSourceRanges: [`${other}/32`] } });
      await sb().waitForAnswers("newly allowed source answered", allIps().map((ip) => http(ip, 8030, { sourceIp: other })));
      await sb().waitForSilence("formerly allowed source dropped", allIps().map((ip) => http(ip, 8030, { sourceIp: client })));
      await sb().kubectl(["delete", "service", "ranged", "-n", APP_NAMESPACE]);
    } finally {
      await sb().removeClientAddress(`${other}/24`);
    }
  });

  it("two Services on one port: the conflict is reported by name, and each serves where it can", async () => {
    await sb().kubectl(["label", "node", "node-1", "berth.dev/pool=first"]);
    try {
      await sb().create(appPod("first-1", "first", "node-1"), appPod("second-3", "second", "node-3"));
      await sb().waitForReadyPods("app in (first,second)", 2);
      await sb().create(lbService("first", "first", [{ port: 8040 }], {}, { labels: { "berth.dev/pool": "first" } }));
      await sb().waitForIngress("first", ips("node-1"));
      await sb().create(lbService("second", "second", [{ port: 8040 }]));
      await sb().waitForIngress("second", ips("node-2", "node-3"));

      await sb().waitFor("condition berth.dev/PortConflict=True on second naming first", async () => {
        const service = await sb().find("service", "second", APP_NAMESPACE);
        const condition = ((service?.status?.conditions ?? []) as Obj[]).find((c) => c.type === "berth.dev/PortConflict");
        if (condition?.status !== "True") return `conditions: ${JSON.stringify(service?.status?.conditions ?? [])}`;
        return String(condition.message).includes(`${APP_NAMESPACE}/first`) && String(condition.message).includes("node-1")
          ? undefined
          : `message does not name e2e/first on node-1: ${condition.message}`;
      });
      const events = await sb().events("second");
      assert.ok(events.some((e) => e.type === "Warning" && e.reason === "PortConflict"), `Warning PortConflict Event; got ${events.map((e) => e.reason).join(", ")}`);
      const pending = (await sb().lbPods("second")).filter((pod) => !isReady(pod));
      assert.equal(pending.length, 1, "second's lb-pod for node-1 waits");

      const outcomes = await sb().waitForAnswers("first on node-1, second on node-2 and node-3", allIps().map((ip) => http(ip, 8040)));
      assert.deepEqual(outcomes.map((o) => (o.answered ? o.pod : show(o))), ["first-1", "second-3", "second-3"]);
      await sb().kubectl(["delete", "service", "first", "second", "-n", APP_NAMESPACE]);
    } finally {
      await sb().kubectl(["label", "node", "node-1", "berth.dev/pool-"]);
    }
  });

  it("berth.dev/enabled node labels choose the serving nodes, and removing them restores every node", async () => {
    await sb().create(lbService("labelled", "web", [{ port: 8050 }]));
    await sb().waitForIngress("labelled", allIps());
    await sb().kubectl(["label", "node", "node-1", "node-2", "berth.dev/enabled=true"]);
    try {
      await sb().waitForIngress("labelled", ips("node-1", "node-2"));
      await sb().waitFor("no lb-pod on node-3", async () => {
        const onNode3 = (await sb().lbPods("labelled")).filter((pod) => pod.spec?.nodeName === "node-3");
        return onNode3.length === 0 ? undefined : `still ${onNode3.map((p) => p.metadata?.name).join(", ")}`;
      });
      await sb().waitForAnswers("labelled nodes serve", ips("node-1", "node-2").map((ip) => http(ip, 8050)));
      await sb().waitForSilence("the unlabelled node does not", [http(sb().node("node-3").ipv4, 8050)]);
    } finally {
      await sb().kubectl(["label", "node", "node-1", "node-2", "berth.dev/enabled-"]);
    }
    await sb().waitForIngress("labelled", allIps());
    await sb().waitForAnswers("every node serves again", allIps().map((ip) => http(ip, 8050)));
    await sb().kubectl(["delete", "service", "labelled", "-n", APP_NAMESPACE]);
  });

  it("a killed controller is restarted by the supervisor, the status stays as it was, and new Services are served", async () => {
    await sb().create(lbService("steady", "web", [{ port: 8060 }]));
    await sb().waitForIngress("steady", allIps());
    const before = await sb().find("service", "steady", APP_NAMESPACE);
    const pid = sb().controllerPid();
    assert.ok(pid !== undefined, "the supervisor runs a controller process");
    process.kill(pid, "SIGKILL");

    let restarted: number | undefined;
    await sb().waitFor("a new controller process", async () => {
      restarted = sb().controllerPid();
      return restarted !== undefined && restarted !== pid && processAlive(restarted) ? undefined : `controller pid ${restarted ?? "none"}`;
    });
    await sb().create(lbService("after-restart", "web", [{ port: 8061 }]));
    await sb().waitForIngress("after-restart", allIps());
    const after = await sb().find("service", "steady", APP_NAMESPACE);
    assert.deepEqual(after?.status, before?.status, "status (ingress and conditions, with their transition times) unchanged");
    await sb().waitForAnswers("both Services answer", allIps().flatMap((ip) => [http(ip, 8060), http(ip, 8061)]));
    await sb().kubectl(["delete", "service", "after-restart", "-n", APP_NAMESPACE]);
  });

  it("a deleted node drops out of the status and its lb-pod goes, the others keep serving", async () => {
    await sb().kubectl(["delete", "node", "node-3"]);
    await sb().waitForIngress("steady", ips("node-1", "node-2"));
    await sb().waitFor("no lb-pod bound to node-3", async () => {
      const onNode3 = (await sb().lbPods("steady")).filter((pod) => pod.spec?.nodeName === "node-3");
      return onNode3.length === 0 ? undefined : `still ${onNode3.map((p) => p.metadata?.name).join(", ")}`;
    });
    const outcomes: Outcome[] = await sb().waitForAnswers("node-1 and node-2 serve", ips("node-1", "node-2").map((ip) => http(ip, 8060)));
    assert.ok(outcomes.every((o) => o.answered));
  });
});
