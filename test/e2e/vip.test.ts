// End-to-end, VIP mode as a newcomer meets it: `sandbox up` (the default AddressPool, the controller allocating, the
// speaker DaemonSet on every node as host-network pods), a Service annotated berth.dev/mode: vip, its address in
// `kubectl get svc`, reached from the client namespace, the client's neighbour entry on the announcing node's MAC, an
// Event naming that node; two Services on one port via two addresses and via one shared address (and a conflicting
// sharer refused); the API server failing every request while traffic flows (nothing announced changes); a graceful
// stop of the announcing node's speaker (its pod deleted, then the node's link down) costing no probe beyond 0.5 s;
// a partition (the owner's LAN link down) and its heal (one announcer per address within a second); then the
// announcing node dies hard (its speaker SIGKILLed, its LAN link down) and another node takes the address over
// within two seconds. Real kubectl, real packets from the client namespace.
import { strict as assert } from "node:assert";
import { APP_NAMESPACE, appDaemonSet, lbService, type Obj, suiteSandbox, type Sandbox } from "./fixture.js";
import { clientNeighbour, describeProbes, holders, holdersOfAll, macOf, outages, settledHolders, soleHolder, speakerPids, startProber, waitExited } from "./vip-support.js";

const PORT = 8095;
/** The Local Service the outage tests probe: under Local the announcing node's kube-proxy answers with its own pod,
 * so a node whose link is down costs nothing once the address has moved (under Cluster kube-proxy would still pick
 * that node's pod now and then, which is kube-proxy's business, not the speaker's). */
const LOCAL_PORT = 8096;
const SPEAKER_LABEL = "app.kubernetes.io/component=speaker";
const VIP = { annotations: { "berth.dev/mode": "vip" } };

/** `ip link set eth0 up|down` in a node's namespace. */
async function link(s: Sandbox, node: string, state: "up" | "down"): Promise<void> {
  const r = await s.runner.run("ip", ["link", "set", "eth0", state], { netns: `${s.prefix}-${node}` });
  if (r.exitCode !== 0) throw new Error(`ip link set eth0 ${state} in ${node}: ${r.stderr.trim()}`);
}

/** Every address the suite's Services were given (what a partitioned node would announce all of). */
async function allVips(s: Sandbox): Promise<string[]> {
  const list = await s.getJson(["get", "svc", "-n", APP_NAMESPACE]);
  return [...new Set((list.items as Obj[]).flatMap((svc) => ((svc.status?.loadBalancer?.ingress ?? []) as Obj[]).map((i) => String(i.ip))))]
    .filter((ip) => /^198\.18\.0\.2\d\d$/.test(ip));
}

describe("e2e: VIP mode (3 nodes)", function () {
  this.timeout(180_000);
  let vip = "";
  let localVip = "";
  const sb = suiteSandbox("v", { nodes: 3 }, async (s) => {
    await s.create(appDaemonSet("web"),
      lbService("web", "web", [{ port: PORT }], {}, VIP),
      lbService("local", "web", [{ port: LOCAL_PORT }], { externalTrafficPolicy: "Local" }, VIP));
    await s.waitForReadyPods("app=web", 3);
    await s.waitFor("addresses from the sandbox's pool in status", async () => {
      vip = (await s.ingress("web"))[0] ?? "";
      localVip = (await s.ingress("local"))[0] ?? "";
      return /^198\.18\.0\.2\d\d$/.test(vip) && /^198\.18\.0\.2\d\d$/.test(localVip) ? undefined : `ingress: web ${vip || "none"}, local ${localVip || "none"}`;
    }, 60_000);
  });

  it("shows the VIP in kubectl get svc, answers it from the client, and the client's neighbour entry is the announcing node's", async () => {
    const s = sb();
    const table = await s.kubectl(["get", "svc", "web", "-n", APP_NAMESPACE]);
    assert.match(table, new RegExp(`web\\s+LoadBalancer\\s+\\S+\\s+${vip.replaceAll(".", "\\.")}\\s`));
    const owner = await soleHolder(s, vip);
    await s.waitForAnswers(`the VIP ${vip}:${PORT}`, [{ protocol: "http", ip: vip, port: PORT }]);
    assert.equal(await clientNeighbour(s, vip), await macOf(s, owner));
    await s.waitFor("an Announcing Event naming the node", async () => {
      const events = (await s.events("web")).map((e: Obj) => `${e.reason}: ${e.message}`);
      return events.some((e) => e.startsWith(`Announcing: node ${owner} announces ${vip}`)) ? undefined : events.join(" | ");
    }, 20_000, 500);
  });

  it("gives a second Service on the same port its own VIP, and both answer", async () => {
    const s = sb();
    await s.create(lbService("web2", "web", [{ port: PORT }], {}, VIP));
    let second = "";
    await s.waitFor("web2's own address", async () => {
      second = (await s.ingress("web2"))[0] ?? "";
      return second !== "" && second !== vip ? undefined : `ingress: ${second || "none"}`;
    }, 60_000);
    await s.waitFor(`one node holding ${second}`, async () => ((await holders(s, second)).length === 1 ? undefined : "not announced yet"), 20_000, 200);
    const outcomes = await s.waitForAnswers("both VIPs on one port", [vip, second].map((ip) => ({ protocol: "http" as const, ip, port: PORT })));
    assert.ok(outcomes.every((o) => o.answered));
  });

  it("shares one VIP between two Services with the same berth.dev/allow-shared-ip key on different ports, and refuses a sharer on a taken port", async () => {
    const s = sb();
    const shared = (name: string, port: number, extra: Record<string, string> = {}): Obj =>
      lbService(name, "web", [{ port }], {}, { annotations: { "berth.dev/mode": "vip", "berth.dev/allow-shared-ip": "pair", ...extra } });
    await s.create(shared("pair-a", 9001), shared("pair-b", 9002));
    let a = "";
    await s.waitFor("pair-a and pair-b on one address", async () => {
      a = (await s.ingress("pair-a"))[0] ?? "";
      const b = (await s.ingress("pair-b"))[0] ?? "";
      return a !== "" && a === b ? undefined : `pair-a [${a}], pair-b [${b}]`;
    }, 60_000);
    assert.ok(![vip, localVip].includes(a), `the pair got ${a}, which another Service holds`);
    const table = await s.kubectl(["get", "svc", "pair-a", "pair-b", "-n", APP_NAMESPACE]);
    for (const [name, port] of [["pair-a", 9001], ["pair-b", 9002]] as const) {
      assert.match(table, new RegExp(`^${name}\\s+LoadBalancer\\s+\\S+\\s+${a.replaceAll(".", "\\.")}\\s+${port}:`, "m"));
    }
    await soleHolder(s, a);
    await s.waitForAnswers(`${a} on both ports`, [9001, 9002].map((port) => ({ protocol: "http" as const, ip: a, port })));

    // Same key, same address asked for, but pair-a's port: refused, said in a condition and a Warning Event.
    await s.create(shared("pair-c", 9001, { "berth.dev/ips": a }));
    await s.waitFor("pair-c refused with SharingConflict", async () => {
      const svc = await s.find("service", "pair-c", APP_NAMESPACE);
      const ready = ((svc?.status?.conditions ?? []) as Obj[]).find((c) => c.type === "berth.dev/LoadBalancerReady");
      const events = (await s.events("pair-c")).filter((e: Obj) => e.type === "Warning" && e.reason === "SharingConflict");
      if (ready?.status !== "False" || ready.reason !== "SharingConflict") return `condition ${JSON.stringify(ready)}`;
      if (events.length === 0) return "no Warning Event SharingConflict";
      return /pair-a shares it and uses the same port/.test(String(ready.message)) ? undefined : `message: ${ready.message}`;
    }, 30_000, 500);
    assert.deepEqual(await s.ingress("pair-c"), [], "the refused sharer got an address");
    await s.kubectl(["delete", "svc", "pair-c", "-n", APP_NAMESPACE, "--wait=false"]);
  });

  it("keeps answering the VIP, announced by the same node, while the API server fails every request", async () => {
    const s = sb();
    const owner = await soleHolder(s, localVip);
    await s.waitForAnswers(`${localVip}:${LOCAL_PORT}`, [{ protocol: "http", ip: localVip, port: LOCAL_PORT }]);
    const prober = await startProber(s, localVip, LOCAL_PORT, 20);
    const started = Date.now();
    // Every request of every client fails (the admin paths are exempt) and every watch ends: each informer must
    // relist, and cannot. Longer than a speaker's resync (5 s) and its dead-after (1 s), short of the controllers'
    // Lease renew deadline (10 s), whose leader change would be another test.
    await s.kubectl(["delete", "--raw", "/_sandbox/requests"]);
    await s.kubectl(["create", "--raw", "/_sandbox/faults", "-f", "-"], JSON.stringify({ error: 503 }));
    let during: string[][] = [];
    try {
      await s.kubectl(["create", "--raw", "/_sandbox/faults/close-watches", "-f", "-"], "{}");
      const until = Date.now() + 7000;
      while (Date.now() < until) {
        during.push(await holders(s, localVip));
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      await s.kubectl(["delete", "--raw", "/_sandbox/faults"]);
    }
    const probes = await prober.stop();
    const log = JSON.parse(await s.kubectl(["get", "--raw", "/_sandbox/requests"])) as { requests: Obj[] };
    const refused = log.requests.filter((r) => String(r.userAgent).includes("berth-speaker") && r.code === 503);
    assert.ok(refused.length > 0, "no speaker request was refused: the fault did not reach the speakers");
    during = during.filter((h) => h.length !== 1 || h[0] !== owner);
    assert.deepEqual(during, [], `the announcer changed while the API server failed (owner ${owner})`);
    assert.ok(probes.length > 100, `only ${probes.length} probes`);
    console.log(`      (API server failing for 7 s: ${refused.length} speaker requests refused; ${describeProbes(probes, started)})`);
    assert.equal(probes.filter((p) => !p.ok).length, 0, describeProbes(probes, started));
  });

  it("hands over on a graceful stop (the speaker's pod deleted, then the node's link down) with no outage beyond 0.5 s", async () => {
    const s = sb();
    const owner = await soleHolder(s, localVip);
    await s.waitForAnswers(`${localVip}:${LOCAL_PORT}`, [{ protocol: "http", ip: localVip, port: LOCAL_PORT }]);
    const pods = ((await s.getJson(["get", "pods", "-n", "berth-system", "-l", SPEAKER_LABEL])).items as Obj[]);
    const pod = pods.find((p) => p.spec?.nodeName === owner);
    assert.ok(pod, `no speaker pod on ${owner}: ${pods.map((p) => `${p.metadata?.name}@${p.spec?.nodeName}`).join(", ")}`);
    const pids = await speakerPids(s, owner);
    assert.ok(pids.length > 0, `no speaker process on ${owner}`);
    const prober = await startProber(s, localVip, LOCAL_PORT, 50);
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    // What a node drain or a graceful node shutdown does: the kubelet sends SIGTERM, the speaker hands over and
    // exits, then the machine goes away. The link goes down the moment the process is gone: from then on only the
    // successor can answer, so any gap the handover left shows in the probes.
    await s.kubectl(["delete", "pod", String(pod.metadata.name), "-n", "berth-system", "--wait=false"]);
    await waitExited(pids, 15_000);
    await link(s, owner, "down");
    try {
      let other = "";
      await s.waitFor(`another node holding ${localVip}`, async () => {
        const now = (await holders(s, localVip)).filter((n) => n !== owner);
        other = now[0] ?? "";
        return now.length === 1 ? undefined : `held by [${now.join(", ")}] besides ${owner}`;
      }, 5000, 100);
      await new Promise((r) => setTimeout(r, 1500));
      const probes = await prober.stop();
      const worst = Math.max(0, ...outages(probes).map((o) => o.ms));
      console.log(`      (graceful handover ${owner} -> ${other}: ${describeProbes(probes, started)})`);
      assert.ok(worst <= 500, `handover from ${owner} to ${other}: ${describeProbes(probes, started)}`);
      assert.ok(probes.slice(-10).every((p) => p.ok), `not answered at the end: ${describeProbes(probes, started)}`);
    } finally {
      await link(s, owner, "up");
    }
  });

  it("converges back to one announcer per address within a second after a partition heals", async () => {
    const s = sb();
    const vips = await allVips(s);
    // Settled first: every address on one node, steadily (the graceful test's node rejoined a moment ago).
    const owner = (await settledHolders(s, vips))[vips.indexOf(vip)]!;
    let splitAt: number | undefined;
    // Partition: the owner's LAN link down. Its speaker keeps running, hears nobody, and announces everything
    // alone (split brain, accepted by design: its side of the partition keeps being served); the others count it
    // dead after a second and one of them takes the address.
    await link(s, owner, "down");
    const downAt = Date.now();
    let healedAt: number;
    try {
      await s.waitFor(`another node also holding ${vip}`, async () => {
        const now = await holders(s, vip);
        return now.includes(owner) && now.length === 2 ? undefined : `held by [${now.join(", ")}]`;
      }, 10_000, 100);
      splitAt = Date.now() - downAt;
    } finally {
      await link(s, owner, "up");
      healedAt = Date.now();
    }
    let converged = -1;
    let last = "";
    while (Date.now() - healedAt < 5000) {
      const seen = [...(await holdersOfAll(s, vips)).entries()];
      last = seen.map(([ip, h]) => `${ip}: [${h.join(", ")}]`).join("; ");
      if (seen.every(([, h]) => h.length === 1)) {
        converged = Date.now() - healedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    console.log(`      (partition: a second announcer after ${splitAt ?? "?"} ms; after the heal, one announcer per address of ${vips.length} after ${converged} ms)`);
    assert.ok(converged >= 0 && converged <= 1000, `one announcer per address ${converged < 0 ? "not within 5 s" : `after ${converged} ms`} of the heal: ${last}`);
    await s.waitForAnswers(`the VIP ${vip} after the heal`, [{ protocol: "http", ip: vip, port: PORT }]);
  });

  it("moves the VIP to another node within 2 s when the announcing node dies hard", async () => {
    const s = sb();
    const owner = await soleHolder(s, vip);
    const ns = `${s.prefix}-${owner}`;
    const speakers = await speakerPids(s, owner);
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
    console.log(`      (hard kill of ${owner}: the client's neighbour entry on ${other} after ${movedMs} ms)`);
    assert.ok(movedMs <= 2000, `the client's neighbour entry moved to ${other} after ${movedMs} ms`);
    // Traffic flows again through the new node (kube-proxy may still pick the dead node's pod now and then).
    await s.waitForAnswers(`the VIP through ${other}`, [{ protocol: "http", ip: vip, port: PORT, timeoutMs: 1000 }], undefined, 20_000);
  });
});
