// End-to-end, VIP mode as a newcomer meets it: `sandbox up` (the default AddressPool, the controller allocating, the
// speaker DaemonSet on every node as host-network pods), a Service annotated berth.dev/mode: vip, its address in
// `kubectl get svc`, reached from the client namespace, the client's neighbour entry on the announcing node's MAC, an
// Event naming that node; then the announcing node dies hard (its speaker SIGKILLed, its LAN link down) and another
// node takes the address over within two seconds.
import { strict as assert } from "node:assert";
import { APP_NAMESPACE, appDaemonSet, commandLine, lbService, type Obj, suiteSandbox, type Sandbox } from "./fixture.js";

const PORT = 8095;

/** Node namespaces holding an address on their LAN interface (eth0). */
async function holders(s: Sandbox, ip: string): Promise<string[]> {
  const out: string[] = [];
  for (const [i, n] of s.nodes.entries()) {
    const r = await s.runner.run("ip", ["-o", "address", "show", "dev", "eth0", "to", ip], { netns: `${s.prefix}-node-${i + 1}` });
    if (r.stdout.includes(ip)) out.push(n.name);
  }
  return out;
}

async function macOf(s: Sandbox, node: string): Promise<string> {
  const r = await s.runner.run("ip", ["-j", "link", "show", "eth0"], { netns: `${s.prefix}-${node}` });
  return (JSON.parse(r.stdout) as { address: string }[])[0]!.address;
}

async function clientNeighbour(s: Sandbox, ip: string): Promise<string | undefined> {
  const r = await s.runner.run("ip", ["-j", "neigh", "show", ip], { netns: s.clientNs });
  return (JSON.parse(r.stdout || "[]") as { lladdr?: string }[])[0]?.lladdr;
}

describe("e2e: VIP mode (3 nodes)", function () {
  this.timeout(180_000);
  let vip = "";
  const sb = suiteSandbox("v", { nodes: 3 }, async (s) => {
    await s.create(appDaemonSet("web"), lbService("web", "web", [{ port: PORT }], {}, { annotations: { "berth.dev/mode": "vip" } }));
    await s.waitForReadyPods("app=web", 3);
    await s.waitFor("an address from the sandbox's pool in status", async () => {
      vip = (await s.ingress("web"))[0] ?? "";
      return /^198\.18\.0\.2\d\d$/.test(vip) ? undefined : `ingress: ${vip || "none"}`;
    }, 60_000);
  });

  async function soleHolder(s: Sandbox): Promise<string> {
    let seen: string[] = [];
    await s.waitFor(`one node holding ${vip}`, async () => {
      seen = await holders(s, vip);
      return seen.length === 1 ? undefined : `held by [${seen.join(", ")}]`;
    }, 20_000, 200);
    return seen[0]!;
  }

  it("shows the VIP in kubectl get svc, answers it from the client, and the client's neighbour entry is the announcing node's", async () => {
    const s = sb();
    const table = await s.kubectl(["get", "svc", "web", "-n", APP_NAMESPACE]);
    assert.match(table, new RegExp(`web\\s+LoadBalancer\\s+\\S+\\s+${vip.replaceAll(".", "\\.")}\\s`));
    const owner = await soleHolder(s);
    await s.waitForAnswers(`the VIP ${vip}:${PORT}`, [{ protocol: "http", ip: vip, port: PORT }]);
    assert.equal(await clientNeighbour(s, vip), await macOf(s, owner));
    await s.waitFor("an Announcing Event naming the node", async () => {
      const events = (await s.events("web")).map((e: Obj) => `${e.reason}: ${e.message}`);
      return events.some((e) => e.startsWith(`Announcing: node ${owner} announces ${vip}`)) ? undefined : events.join(" | ");
    }, 20_000, 500);
  });

  it("gives a second Service on the same port its own VIP, and both answer", async () => {
    const s = sb();
    await s.create(lbService("web2", "web", [{ port: PORT }], {}, { annotations: { "berth.dev/mode": "vip" } }));
    let second = "";
    await s.waitFor("web2's own address", async () => {
      second = (await s.ingress("web2"))[0] ?? "";
      return second !== "" && second !== vip ? undefined : `ingress: ${second || "none"}`;
    }, 60_000);
    await s.waitFor(`one node holding ${second}`, async () => ((await holders(s, second)).length === 1 ? undefined : "not announced yet"), 20_000, 200);
    const outcomes = await s.waitForAnswers("both VIPs on one port", [vip, second].map((ip) => ({ protocol: "http" as const, ip, port: PORT })));
    assert.ok(outcomes.every((o) => o.answered));
  });

  it("moves the VIP to another node within 2 s when the announcing node dies hard", async () => {
    const s = sb();
    const owner = await soleHolder(s);
    const ns = `${s.prefix}-${owner}`;
    const speakers = (await s.pidsIn(ns)).filter((pid) => commandLine(pid).includes("speaker"));
    assert.ok(speakers.length > 0, `no speaker process in ${ns}`);
    const killedAt = Date.now();
    for (const pid of speakers) process.kill(pid, "SIGKILL");
    await s.runner.run("ip", ["link", "set", "eth0", "down"], { netns: ns });
    let other = "";
    await s.waitFor(`another node announcing ${vip}`, async () => {
      const now = (await holders(s, vip)).filter((n) => n !== owner);
      if (now.length !== 1) return `held by [${now.join(", ")}] besides ${owner}`;
      other = now[0]!;
      return (await clientNeighbour(s, vip)) === (await macOf(s, other)) ? undefined : "the client's neighbour entry has not moved yet";
    }, 10_000, 50);
    const movedMs = Date.now() - killedAt;
    assert.ok(movedMs <= 2000, `the client's neighbour entry moved to ${other} after ${movedMs} ms`);
    // Traffic flows again through the new node (kube-proxy may still pick the dead node's pod now and then).
    await s.waitForAnswers(`the VIP through ${other}`, [{ protocol: "http", ip: vip, port: PORT, timeoutMs: 1000 }], undefined, 20_000);
  });
});
