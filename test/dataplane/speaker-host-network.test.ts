// The sandbox kubelet runs host-network pods (what VIP mode's speaker DaemonSet is): in the node's own network
// namespace, the node's addresses as pod IPs, and deleting the pod leaves the node's network alone. Real processes,
// an in-process sandbox API server over HTTP. Needs root.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { systemRunner } from "../../src/lib/exec.js";
import { KubeClient, Resources } from "../../src/lib/kube/client.js";
import { startApiServer, type ApiServerHandle } from "../../src/sandbox/apiserver/index.js";
import { KubeletStandIn, type ContainerImage } from "../../src/sandbox/cluster/kubelet.js";
import { planLayout, type SandboxLayout } from "../../src/sandbox/cluster/layout.js";
import { removeSandboxNetwork, SandboxNetwork } from "../../src/sandbox/cluster/network.js";
import { needsRoot, skipBecause } from "../support/skip.js";

const PREFIX = `bhn${process.pid}`;
const SHELL_IMAGE = "berth.test/shell:dev";
const images = (image: string): ContainerImage | undefined =>
  image === SHELL_IMAGE ? { entrypoint: ["sh"], pathDirs: [dirname(process.execPath), "/usr/sbin", "/usr/bin", "/sbin", "/bin"] } : undefined;

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("sandbox kubelet: host-network pods", function () {
  this.timeout(90_000);
  let server: ApiServerHandle | undefined;
  let client: KubeClient | undefined;
  let network: SandboxNetwork | undefined;
  let kubelet: KubeletStandIn | undefined;
  let layout: SandboxLayout;
  let logDir = "";

  before(async function () {
    const reason = needsRoot();
    if (reason) skipBecause(this, reason);
    server = await startApiServer({ serviceCidrs: { ipv4: "10.43.0.0/16" } });
    client = new KubeClient({ server: server.url, authHeaders: () => ({ Authorization: `Bearer ${server!.token}` }) });
    layout = planLayout({ prefix: PREFIX, nodes: 1, dualStack: false });
    await removeSandboxNetwork(PREFIX);
    network = await SandboxNetwork.create(layout);
    const n = layout.nodes[0]!;
    await client.create<V1Node>(Resources.nodes, {
      metadata: { name: n.name },
      status: { addresses: n.lanIps.map((address) => ({ type: "InternalIP", address })), conditions: [{ type: "Ready", status: "True" }] },
    });
    logDir = mkdtempSync(join(tmpdir(), "berth-host-network-"));
    kubelet = new KubeletStandIn({
      client, network, images, logDir, runner: systemRunner(),
      nodes: layout.nodes.map((node) => ({ name: node.name, ips: node.lanIps, ns: node.ns })),
    });
    await kubelet.start();
  });

  after(async () => {
    await kubelet?.stop();
    await network?.destroy();
    client?.close();
    await server?.close();
    if (logDir) rmSync(logDir, { recursive: true, force: true });
  });

  it("runs in the node's namespace with the node's IP, and deleting it leaves the node's network alone", async () => {
    const node = layout.nodes[0]!;
    await client!.create<V1Pod>(Resources.pods, {
      metadata: { name: "hostnet", namespace: "default" },
      spec: {
        nodeName: node.name, hostNetwork: true, terminationGracePeriodSeconds: 1,
        containers: [{ name: "c", image: SHELL_IMAGE, command: ["sh", "-c", "ip -o -4 address show; exec sleep 1000"] }],
      },
    }, { namespace: "default" });
    const running = await until("the pod to run", async () => {
      const pod = await client!.get<V1Pod>(Resources.pods, "hostnet", { namespace: "default" });
      return pod.status?.phase === "Running" ? pod : undefined;
    });
    assert.deepEqual(running.status?.podIPs?.map((p) => p.ip), node.lanIps, "pod IPs are the node's");
    const logFile = join(logDir, "default_hostnet_c.log");
    const seen = await until("the container's output", async () => {
      const text = readFileSync(logFile, "utf8");
      return text.includes("inet ") ? text : undefined;
    });
    assert.ok(seen.includes(`inet ${node.lanIps[0]}/`), `the container sees the node's addresses:\n${seen}`);

    await client!.delete(Resources.pods, "hostnet", { namespace: "default" });
    await until("the pod to be gone", async () => {
      try {
        await client!.get<V1Pod>(Resources.pods, "hostnet", { namespace: "default" });
        return undefined;
      } catch {
        return true;
      }
    });
    const still = await systemRunner().run("ip", ["-o", "-4", "address", "show"], { netns: node.ns });
    assert.equal(still.exitCode, 0, `the node's namespace is gone: ${still.stderr}`);
    assert.ok(still.stdout.includes(`inet ${node.lanIps[0]}/`), "the node kept its address");
  });
});
