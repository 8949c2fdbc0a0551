// End-to-end, VIP mode with both families (`sandbox up --dual-stack`, the default pool then has an IPv6 range too):
// a PreferDualStack Service gets one address per family, both answer from the client namespace, and the client's
// IPv6 neighbour entry (NDP) is the announcing node's MAC; when that node dies hard (speaker SIGKILLed, LAN link
// down) the unsolicited neighbour advertisement of the new owner moves the client's IPv6 entry within two seconds.
import { strict as assert } from "node:assert";
import { appDaemonSet, lbService, suiteSandbox } from "./fixture.js";
import { clientNeighbour, holders, macOf, soleHolder, speakerPids } from "./vip-support.js";

const PORT = 8097;

describe("e2e: VIP mode, dual-stack (2 nodes)", function () {
  this.timeout(180_000);
  let v4 = "";
  let v6 = "";
  const sb = suiteSandbox("w", { nodes: 2, dualStack: true }, async (s) => {
    await s.create(appDaemonSet("web"), lbService("web", "web", [{ port: PORT }],
      { ipFamilyPolicy: "PreferDualStack", ipFamilies: ["IPv4", "IPv6"] }, { annotations: { "berth.dev/mode": "vip" } }));
    await s.waitForReadyPods("app=web", 2);
    await s.waitFor("an address of each family from the sandbox's pool", async () => {
      const ips = await s.ingress("web");
      [v4 = "", v6 = ""] = ips;
      return /^198\.18\.0\.2\d\d$/.test(v4) && /^fd42:b5e7:7a00::2\d\d$/.test(v6) ? undefined : `ingress: [${ips.join(", ")}]`;
    }, 60_000);
  });

  it("answers both addresses from the client, and the client's IPv6 neighbour entry is the announcing node's MAC", async () => {
    const s = sb();
    const owner6 = await soleHolder(s, v6);
    await soleHolder(s, v4);
    await s.waitForAnswers("both families", [v4, v6].map((ip) => ({ protocol: "http" as const, ip, port: PORT })));
    assert.equal(await clientNeighbour(s, v6), await macOf(s, owner6), `the client's neighbour entry for ${v6}`);
  });

  it("moves the client's IPv6 neighbour entry to the other node within 2 s when the announcing node dies hard", async () => {
    const s = sb();
    const owner = await soleHolder(s, v6);
    await s.waitForAnswers(`the VIP ${v6}`, [{ protocol: "http", ip: v6, port: PORT }]);
    const before = await clientNeighbour(s, v6);
    assert.equal(before, await macOf(s, owner));
    const speakers = await speakerPids(s, owner);
    assert.ok(speakers.length > 0, `no speaker process on ${owner}`);
    const killedAt = Date.now();
    for (const pid of speakers) process.kill(pid, "SIGKILL");
    await s.runner.run("ip", ["link", "set", "eth0", "down"], { netns: `${s.prefix}-${owner}` });
    const other = s.nodes.map((n) => n.name).find((n) => n !== owner)!;
    const otherMac = await macOf(s, other);
    // No traffic from the client meanwhile: only the new owner's unsolicited NA (override flag) can move the entry.
    await s.waitFor(`the client's entry for ${v6} on ${other}'s MAC`, async () => {
      const now = await clientNeighbour(s, v6);
      return now === otherMac ? undefined : `entry ${now ?? "none"}, held by [${(await holders(s, v6)).join(", ")}]`;
    }, 10_000, 50);
    const movedMs = Date.now() - killedAt;
    console.log(`      (hard kill of ${owner}: the client's IPv6 neighbour entry on ${other} after ${movedMs} ms)`);
    assert.ok(movedMs <= 2000, `the client's IPv6 neighbour entry moved to ${other} after ${movedMs} ms`);
    await s.waitForAnswers(`the VIP ${v6} through ${other}`, [{ protocol: "http", ip: v6, port: PORT, timeoutMs: 1000 }], undefined, 20_000);
  });
});
