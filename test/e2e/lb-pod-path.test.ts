// End-to-end: the lb-pod's own data path. With `sandbox up --no-lb-ip-capture` the kube-proxy stand-in leaves
// LoadBalancer IPs alone (as on clusters whose proxy does not capture them, or for addresses NATed to a node), so
// traffic to a node's address reaches the CNI hostPort rule and the Service's lb-pod, which DNATs and masquerades it
// (docs/architecture.md, "How traffic really flows"). The proof that a request went through an lb-pod is the connection-tracking entry it leaves
// in that pod's own network namespace.
import assert from "node:assert/strict";
import {
  APP_NAMESPACE,
  appDaemonSet,
  appPod,
  isReady,
  lbService,
  show,
  type Obj,
  type Target,
  suiteSandbox,
} from "./fixture.js";

const http = (ip: string, port: number, extra: Partial<Target> = {}): Target => ({ protocol: "http", ip, port, ...extra });

describe("e2e: traffic through the lb-pods (2 nodes, sandbox up --no-lb-ip-capture)", function () {
  this.timeout(150_000);
  let client = "";
  const sb = suiteSandbox("b", { nodes: 2, noLbIpCapture: true }, async (s) => {
    client = (await s.clientAddress(4)).ip;
    await s.create(appDaemonSet("web"));
    await s.waitForReadyPods("app=web", 2);
  });
  const allIps = (): string[] => sb().nodes.map((node) => node.ipv4);

  /** The Service's lb-pod on a node. */
  async function lbPodOn(service: string, node: string): Promise<Obj> {
    const pod = (await sb().lbPods(service)).find((p) => p.spec?.nodeName === node && !p.metadata?.deletionTimestamp);
    if (!pod) throw new Error(`no lb-pod of ${service} on ${node}`);
    return pod;
  }

  /** Whether the pod's namespace tracked a connection to `port` that it forwarded to `destination` (the reply's source). */
  async function forwarded(pod: Obj, port: number, destination: string): Promise<boolean> {
    const table = await sb().conntrack(sb().podNamespace(pod));
    return table.split("\n").some((line) => line.includes(`dport=${port} `) && line.includes(`src=${destination} `));
  }

  it("carries a request to a node's address through that node's lb-pod to the ClusterIP (Cluster policy)", async () => {
    await sb().create(lbService("web", "web", [{ port: 8101 }]));
    await sb().waitForIngress("web", allIps());
    const service = await sb().find("service", "web", APP_NAMESPACE);
    const clusterIp = String(service?.spec?.clusterIP);
    const outcomes = await sb().waitForAnswers("web on every node", allIps().map((ip) => http(ip, 8101)));
    for (const outcome of outcomes) {
      assert.ok(outcome.answered && outcome.pod.startsWith("web-"), show(outcome));
      assert.notEqual(outcome.clientIp, client, "the lb-pod masquerades (the app does not see the client)");
    }
    for (const node of sb().nodes) {
      const pod = await lbPodOn("web", node.name);
      assert.ok(await forwarded(pod, 8101, clusterIp), `${node.name}'s lb-pod (${sb().podNamespace(pod)}) forwarded to ${clusterIp}:8101`);
    }
  });

  it("an lb-pod whose processes are killed is restarted, with its rules intact (no duplicates) and traffic flowing", async () => {
    const pod = await lbPodOn("web", "node-1");
    const ns = sb().podNamespace(pod);
    const rulesBefore = await sb().rulesIn(ns);
    assert.ok(rulesBefore.includes("8101"), `the lb-pod's rules mention port 8101:\n${rulesBefore}`);
    const restartsBefore = Number(pod.status?.containerStatuses?.[0]?.restartCount ?? 0);
    const pids = await sb().pidsIn(ns);
    assert.ok(pids.length > 0, `processes in ${ns}`);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone (a probe that just finished).
      }
    }

    await sb().waitFor("the lb-pod restarted and Ready", async () => {
      const now = await lbPodOn("web", "node-1");
      const restarts = Number(now.status?.containerStatuses?.[0]?.restartCount ?? 0);
      if (now.metadata?.uid !== pod.metadata?.uid) return `a different pod ${now.metadata?.name} (the container should restart in place)`;
      return restarts > restartsBefore && isReady(now) ? undefined : `restartCount ${restarts}, Ready ${isReady(now)}`;
    }, 45_000);
    assert.ok((await sb().pidsIn(ns)).length > 0, "the container runs again in the same namespace");
    assert.equal(await sb().rulesIn(ns), rulesBefore, "the same rules as before, not a second copy");

    await sb().runner.run("conntrack", ["-F"], { netns: ns });
    const clusterIp = String((await sb().find("service", "web", APP_NAMESPACE))?.spec?.clusterIP);
    await sb().waitForAnswers("node-1 answers", [http(sb().node("node-1").ipv4, 8101)]);
    assert.ok(await forwarded(pod, 8101, clusterIp), "through the restarted lb-pod");
  });

  it("enforces loadBalancerSourceRanges in the lb-pod", async () => {
    const other = client.replace(/\.\d+$/, ".101");
    await sb().addClientAddress(`${other}/24`);
    try {
      await sb().create(lbService("ranged", "web", [{ port: 8102 }], { loadBalancerSourceRanges: [`${client}/32`] }));
      await sb().waitForIngress("ranged", allIps());
      await sb().waitForAnswers("allowed client answered", allIps().map((ip) => http(ip, 8102, { sourceIp: client })));
      await sb().waitForSilence("other source dropped", allIps().map((ip) => http(ip, 8102, { sourceIp: other })));
      await sb().kubectl(["delete", "service", "ranged", "-n", APP_NAMESPACE]);
    } finally {
      await sb().removeClientAddress(`${other}/24`);
    }
  });

  it("externalTrafficPolicy Local through the lb-pods: the node with the endpoint is listed and its lb-pod forwards to its own NodePort", async () => {
    await sb().create(appPod("local-2", "local", "node-2"));
    await sb().waitForReadyPods("app=local", 1);
    await sb().create(lbService("local", "local", [{ port: 8103 }], { externalTrafficPolicy: "Local" }));
    const node2 = sb().node("node-2").ipv4;
    await sb().waitForIngress("local", [node2]);
    const [outcome] = await sb().waitForAnswers("node-2 answers", [http(node2, 8103)]);
    assert.ok(outcome?.answered && outcome.pod === "local-2", outcome && show(outcome));
    const service = await sb().find("service", "local", APP_NAMESPACE);
    const nodePort = Number(service?.spec?.ports?.[0]?.nodePort);
    const table = await sb().conntrack(sb().podNamespace(await lbPodOn("local", "node-2")));
    assert.ok(
      table.split("\n").some((line) => line.includes("dport=8103 ") && line.includes(`src=${node2} dst=`) && line.includes(`sport=${nodePort} `)),
      `node-2's lb-pod forwarded to ${node2}:${nodePort} (its own NodePort):\n${table}`,
    );
    await sb().kubectl(["delete", "service", "local", "-n", APP_NAMESPACE]);
  });
});
