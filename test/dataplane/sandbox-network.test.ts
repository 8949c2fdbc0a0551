// The sandbox network with its kube-proxy, portmap and EndpointSlice stand-ins, proven with real traffic: a 2-node
// dual-stack sandbox of this test's own prefix, an in-process API server, two app pods (one per node), a pod with
// hostPort 80 on node-1 standing in for an lb-pod, a client pod, and requests from the client namespace on the LAN.
import { strict as assert } from "node:assert";

import { KubeClient, Resources, type KubeObject } from "../../src/lib/kube/client.js";
import { startApiServer, type ApiServerHandle } from "../../src/sandbox/apiserver/index.js";
import { EndpointsStandIn } from "../../src/sandbox/cluster/endpoints.js";
import { planLayout, type SandboxLayout } from "../../src/sandbox/cluster/layout.js";
import { removeSandboxNetwork, SandboxNetwork } from "../../src/sandbox/cluster/network.js";
import { ProxyStandIn } from "../../src/sandbox/cluster/proxy.js";
import { NetnsLab, type Protocol } from "../support/netns.js";
import { needsRoot, skipBecause } from "../support/skip.js";

type Obj = KubeObject & Record<string, unknown>;

/** This run's own sandbox prefix (the PID keeps two runs on one machine apart). */
const PREFIX = `bsnet${process.pid}`;
const APP_PORT = 8080;
const HOST_PORT_POD_PORT = 80;
/** A second hostPort of the same pod, on a port no Service uses. */
const FREE_HOST_PORT = 9000;

/** Sequential requests, one line per answer ("<reply> from <address>", or "<no answer>" after 2 s). */
const SAMPLER = `
const net = await import("node:net"); const dgram = await import("node:dgram");
const [protocol, ip, port, count] = process.argv.slice(1);
const once = () => new Promise((resolve) => {
  const timer = setTimeout(() => { resolve("<no answer>"); try { socket.destroy?.(); socket.close?.(); } catch {} }, 2000);
  const done = (text) => { clearTimeout(timer); resolve(text.trim()); };
  let socket;
  if (protocol === "tcp") {
    let data = "";
    socket = net.connect({ host: ip, port: Number(port) });
    socket.on("data", (chunk) => { data += chunk; });
    socket.on("end", () => done(data));
    socket.on("error", (err) => done("<" + err.code + ">"));
  } else {
    socket = dgram.createSocket(ip.includes(":") ? "udp6" : "udp4");
    socket.on("message", (msg) => { socket.close(); done(msg.toString()); });
    socket.on("error", (err) => done("<" + err.code + ">"));
    socket.send("ping\\n", Number(port), ip);
  }
});
for (let i = 0; i < Number(count); i++) process.stdout.write((await once()) + "\\n");
`;

describe("sandbox network: kube-proxy, portmap and EndpointSlice stand-ins with real traffic", function () {
  this.timeout(60_000);
  let layout: SandboxLayout;
  let network: SandboxNetwork | undefined;
  let lab: NetnsLab | undefined;
  let api: ApiServerHandle | undefined;
  let client: KubeClient | undefined;
  let endpoints: EndpointsStandIn | undefined;
  let proxy: ProxyStandIn | undefined;
  /** The client pod's namespace (on node-1), for ClusterIP requests from inside the cluster. */
  let clientPod = "";
  const nodePorts: Record<string, Record<string, number>> = {};
  const clusterIps: Record<string, string[]> = {};

  beforeEach(function () {
    const reason = needsRoot();
    if (reason) skipBecause(this, reason);
  });

  before(async function () {
    if (needsRoot()) return;
    await removeSandboxNetwork(PREFIX);
    layout = planLayout({ prefix: PREFIX, nodes: 2, dualStack: true });
    network = await SandboxNetwork.create(layout);
    lab = await NetnsLab.create("bt-sbnet");
    api = await startApiServer({ port: 0, serviceCidrs: { ipv4: "10.43.0.0/16", ipv6: "fd00:43::/112" } });
    const kube = new KubeClient({ server: api.url, authHeaders: () => ({ Authorization: `Bearer ${api?.token}` }) });
    client = kube;

    // Pods: wired by the network, their IPs reported through the status subresource as the kubelet stand-in does.
    const pod = async (name: string, node: string, labels: Record<string, string>, ports: Obj[]): Promise<{ ns: string; ips: string[] }> => {
      const created = await kube.create<Obj>(Resources.pods, {
        metadata: { name, namespace: "default", labels },
        spec: { nodeName: node, containers: [{ name: "c", image: "test", ports }] },
      });
      const wired = await network!.attachPod(node, String(created.metadata?.uid));
      await kube.patchStatus(Resources.pods, name, "merge", {
        status: { phase: "Running", podIP: wired.ips[0], podIPs: wired.ips.map((ip) => ({ ip })), conditions: [{ type: "Ready", status: "True" }] },
      }, { namespace: "default" });
      return wired;
    };
    const listenAll = (port: number) => (["tcp", "udp"] as const).map((protocol) => ({ protocol, ip: "::", port }));
    const app1 = await pod("app-1", "node-1", { app: "web" }, [{ name: "http", containerPort: APP_PORT }]);
    const app2 = await pod("app-2", "node-2", { app: "web" }, [{ name: "http", containerPort: APP_PORT }]);
    const hostPortPod = await pod("lb", "node-1", { app: "lb" }, [
      { containerPort: HOST_PORT_POD_PORT, hostPort: HOST_PORT_POD_PORT },
      { containerPort: FREE_HOST_PORT, hostPort: FREE_HOST_PORT },
    ]);
    clientPod = (await network.attachPod("node-1", "c0ffee00-client")).ns;
    await Promise.all([
      lab.startServer(app1.ns, { reply: "app-1", listen: listenAll(APP_PORT) }),
      lab.startServer(app2.ns, { reply: "app-2", listen: listenAll(APP_PORT) }),
      lab.startServer(hostPortPod.ns, { reply: "lb", listen: [...listenAll(HOST_PORT_POD_PORT), ...listenAll(FREE_HOST_PORT)] }),
    ]);

    // Services: Cluster and Local LoadBalancers on the two apps, and one with source ranges.
    const node1Ips = layout.nodes[0]?.lanIps ?? [];
    const service = async (name: string, spec: Obj): Promise<void> => {
      const created = await kube.create<Obj>(Resources.services, {
        metadata: { name, namespace: "default" },
        spec: {
          type: "LoadBalancer", selector: { app: "web" }, ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"],
          ports: [{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }, { name: "dns", port: 53, targetPort: APP_PORT, protocol: "UDP" }],
          ...spec,
        },
      });
      const createdSpec = created.spec as { clusterIPs: string[]; ports: { name: string; nodePort: number }[] };
      clusterIps[name] = createdSpec.clusterIPs;
      nodePorts[name] = Object.fromEntries(createdSpec.ports.map((p) => [p.name, p.nodePort]));
      // What berth's controller would write in hostPort mode: the node's IPs as ingress.
      await kube.patchStatus(Resources.services, name, "merge", { status: { loadBalancer: { ingress: node1Ips.map((ip) => ({ ip })) } } }, { namespace: "default" });
    };
    await service("cluster", { externalTrafficPolicy: "Cluster" });
    await service("local", { externalTrafficPolicy: "Local", ports: [{ name: "http", port: 82, targetPort: APP_PORT, protocol: "TCP" }] });
    await service("ranged", { ports: [{ name: "http", port: 81, targetPort: APP_PORT, protocol: "TCP" }], loadBalancerSourceRanges: ["198.18.0.200/32"] });

    endpoints = new EndpointsStandIn({ client: kube });
    await endpoints.start();
    proxy = new ProxyStandIn({ client: kube, layout, captureLoadBalancerIps: true });
    await proxy.start();
  });

  after(async () => {
    await proxy?.stop();
    await endpoints?.stop();
    await lab?.destroy();
    client?.close();
    await api?.close();
    await network?.destroy();
    if (!needsRoot()) await removeSandboxNetwork(PREFIX);
  });

  const node = (i: number, family: 0 | 1): string => layout.nodes[i]?.lanIps[family] ?? "";
  const clientIp = (family: 0 | 1): string => layout.client.lanIps[family] ?? "";

  /**
   * Sends `count` requests from one process in `ns` (one process, not one per request: the machine is shared, and
   * spawning costs more than the requests), each on a new connection or UDP socket, so each one is a new flow that
   * kube-proxy's random choice sees afresh. Returns the sorted distinct replies and client addresses the servers saw.
   * With two endpoints, 16 requests miss one with probability 2^-15; 6 requests that must all reach one node's endpoint
   * let a wrong spread through with probability 2^-6, and every run makes that check six times.
   */
  async function sample(ns: string, target: { protocol?: Protocol; ip: string; port: number }, count = 16) {
    const result = await lab!.exec(ns, process.execPath, ["--input-type=module", "-e", SAMPLER, target.protocol ?? "tcp", target.ip, String(target.port), String(count)], { timeoutMs: 30_000 });
    assert.equal(result.exitCode, 0, result.stderr);
    const lines = result.stdout.trim().split("\n").map((line) => /^(.*) from (\S+)$/.exec(line.trim()));
    return {
      replies: [...new Set(lines.map((m) => m?.[1] ?? "<no answer>"))].sort(),
      seenFrom: [...new Set(lines.map((m) => m?.[2]).filter((from): from is string => from !== undefined))].sort(),
    };
  }

  for (const [family, familyName] of [[0, "IPv4"], [1, "IPv6"]] as const) {
    describe(familyName, () => {
      it("NodePort (Cluster) reaches endpoints on every node, masqueraded to a node address", async () => {
        for (const protocol of ["tcp", "udp"] as const) {
          const port = nodePorts.cluster?.[protocol === "tcp" ? "http" : "dns"] ?? 0;
          const got = await sample(layout.client.ns, { protocol, ip: node(0, family), port });
          assert.deepEqual(got.replies, ["app-1", "app-2"], protocol);
          assert.ok(!got.seenFrom.includes(clientIp(family)), `${protocol}: SNAT expected, servers saw ${got.seenFrom.join(", ")}`);
        }
      });

      it("NodePort (Local) reaches only the node's own endpoint and keeps the client address", async () => {
        const port = nodePorts.local?.http ?? 0;
        for (const [i, app] of [[0, "app-1"], [1, "app-2"]] as const) {
          const got = await sample(layout.client.ns, { ip: node(i, family), port }, 6);
          assert.deepEqual(got, { replies: [app], seenFrom: [clientIp(family)] });
        }
      });

      it("a pod's traffic to a Local NodePort goes to endpoints on every node (kube-proxy's pod short-circuit)", async () => {
        // What an lb-pod's masqueraded traffic to its node's IP:NodePort meets on a real cluster under Local.
        const got = await sample(clientPod, { ip: node(0, family), port: nodePorts.local?.http ?? 0 });
        assert.deepEqual(got.replies, ["app-1", "app-2"]);
      });

      it("ClusterIP from a pod reaches endpoints on both nodes, without SNAT", async () => {
        const ip = clusterIps.cluster?.[family] ?? "";
        const got = await sample(clientPod, { ip, port: 80 });
        assert.deepEqual(got.replies, ["app-1", "app-2"]);
        assert.equal(got.seenFrom.length, 1, `one client address expected: ${got.seenFrom.join(", ")}`);
        assert.ok(got.seenFrom[0]?.startsWith(family === 0 ? "10.42.1." : "fd42:b5e7:7a42:1::"), got.seenFrom[0]);
      });

      it("captures the LoadBalancer IP before the hostPort (Local answers from the node's endpoint with the client address)", async () => {
        const cluster = await sample(layout.client.ns, { ip: node(0, family), port: 80 });
        assert.deepEqual(cluster.replies, ["app-1", "app-2"]);
        const local = await sample(layout.client.ns, { ip: node(0, family), port: 82 }, 6);
        assert.deepEqual(local, { replies: ["app-1"], seenFrom: [clientIp(family)] });
      });

      it("hostPort on a port no Service captures goes to the pod on that node only, keeping the client address", async () => {
        const outcome = await lab!.request(layout.client.ns, { protocol: "tcp", ip: node(0, family), port: FREE_HOST_PORT });
        assert.deepEqual(outcome, { answered: true, reply: "lb", seenFrom: clientIp(family) });
        // node-2 runs no pod with that hostPort.
        const elsewhere = await lab!.request(layout.client.ns, { protocol: "tcp", ip: node(1, family), port: FREE_HOST_PORT, timeoutMs: 1000 });
        assert.deepEqual(elsewhere, { answered: false, reason: "refused" });
      });
    });
  }

  // Mocha runs a suite's own tests before its nested suites: these change the setup, so they live in a suite after
  // the per-family ones.
  describe("changes and teardown", () => {
    it("enforces loadBalancerSourceRanges on the LB IP and follows a change of the ranges", async () => {
      for (const family of [0, 1] as const) {
        const outcome = await lab!.request(layout.client.ns, { protocol: "tcp", ip: node(0, family), port: 81, timeoutMs: 800 });
        assert.deepEqual(outcome, { answered: false, reason: "timeout" }, `family ${family}`);
      }
      await client!.patch(Resources.services, "ranged", "merge", { spec: { loadBalancerSourceRanges: ["198.18.0.100/32", "fd42:b5e7:7a00::/64"] } }, { namespace: "default" });
      for (const family of [0, 1] as const) {
        const deadline = Date.now() + 5000;
        let reply = "";
        while (Date.now() < deadline) {
          reply = await lab!.ask(layout.client.ns, { protocol: "tcp", ip: node(0, family), port: 81, timeoutMs: 500 });
          if (reply.startsWith("app-")) break;
        }
        assert.match(reply, /^app-[12]$/, `family ${family}`);
      }
    });

    it("a UDP flow that keeps its source port moves to another endpoint once its endpoint is gone (stale conntrack cleared)", async () => {
      const flow = { protocol: "udp" as const, ip: node(0, 0), port: nodePorts.cluster?.dns ?? 0, sourcePort: 41053 };
      const first = await lab!.ask(layout.client.ns, flow);
      assert.match(first, /^app-[12]$/);
      const setReady = (ready: boolean) =>
        client!.patchStatus(Resources.pods, first, "merge", { status: { conditions: [{ type: "Ready", status: ready ? "True" : "False" }] } }, { namespace: "default" });
      await setReady(false);
      try {
        // The old endpoint still runs (only not Ready): without the cleanup every packet of the flow would keep reaching it.
        const deadline = Date.now() + 5000;
        let reply = first;
        // A datagram sent while the rules and conntrack change over may go unanswered: ask again, as a client would.
        while ((reply === first || reply === "<timeout>") && Date.now() < deadline) reply = await lab!.ask(layout.client.ns, flow);
        assert.match(reply, /^app-[12]$/);
        assert.notEqual(reply, first);
      } finally {
        await setReady(true);
      }
    });

    it("without LB-IP capture, traffic to the node IP on the Service port reaches the hostPort pod with the client address", async () => {
      await proxy?.stop();
      // A second stand-in over the same nodes: it reads the live rules first, so the first one's chains are replaced.
      proxy = new ProxyStandIn({ client: client!, layout, captureLoadBalancerIps: false });
      await proxy.start();
      // Each jump from a built-in chain exists once: the new stand-in saw the old one's and did not add them again.
      for (const tool of ["iptables-save", "ip6tables-save"]) {
        const saved = await lab!.exec(layout.nodes[0]?.ns ?? "", tool, []);
        const jumps = saved.stdout.split("\n").filter((line) => /^-A (PREROUTING|OUTPUT|POSTROUTING|INPUT|FORWARD) .*-j BSB-/.test(line));
        assert.equal(jumps.length, 11, `${tool}:\n${jumps.join("\n")}`);
        assert.equal(new Set(jumps).size, 11, `${tool}:\n${jumps.join("\n")}`);
      }
      for (const family of [0, 1] as const) {
        const outcome = await lab!.request(layout.client.ns, { protocol: "tcp", ip: node(0, family), port: 80 });
        assert.deepEqual(outcome, { answered: true, reply: "lb", seenFrom: clientIp(family) });
        // A pod reaching the hostPort through its node (hairpin through portmap) is answered too.
        assert.equal(await lab!.ask(clientPod, { protocol: "tcp", ip: node(0, family), port: 80 }), "lb");
        // NodePorts still work: only the LB-IP capture is off.
        assert.match(await lab!.ask(layout.client.ns, { protocol: "tcp", ip: node(0, family), port: nodePorts.cluster?.http ?? 0 }), /^app-[12]$/);
      }
    });

    it("attaches pods idempotently, and detaching kills what runs in the pod, deletes its namespace and frees its address", async () => {
      const first = await network!.attachPod("node-2", "d0d0d0d0-1");
      assert.deepEqual(await network!.attachPod("node-2", "d0d0d0d0-1"), first);
      await assert.rejects(network!.attachPod("node-1", "d0d0d0d0-1"), /already attached to node-2/);
      const server = await lab!.startServer(first.ns, { reply: "d0", listen: [{ protocol: "tcp", ip: first.ips[0] ?? "", port: 7000 }] });
      assert.equal(await lab!.ask(clientPod, { protocol: "tcp", ip: first.ips[0] ?? "", port: 7000 }), "d0");
      await network!.detachPod("d0d0d0d0-1");
      await network!.detachPod("d0d0d0d0-1");
      // The server is our child: once killed it is gone as soon as Node has reaped it.
      const alive = (): boolean => {
        try {
          process.kill(server.pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      for (let i = 0; i < 100 && alive(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(alive(), false, "the pod's process was killed");
      const list = await lab!.runner.run("ip", ["netns", "list"]);
      assert.ok(!list.stdout.includes(first.ns), list.stdout);
      const next = await network!.attachPod("node-2", "e0e0e0e0-2");
      assert.deepEqual(next.ips, first.ips, "the freed address is handed out again");
      await network!.detachPod("e0e0e0e0-2");
    });

    it("destroy() leaves no namespace of the sandbox behind", async () => {
      await proxy?.stop();
      proxy = undefined;
      await lab?.destroy();
      await network?.destroy();
      network = undefined;
      const list = await lab!.runner.run("ip", ["netns", "list"]);
      assert.deepEqual(list.stdout.split("\n").filter((line) => line.startsWith(`${PREFIX}-`)), []);
    });
  });
});
