// The speaker on a real LAN of namespaces (test/dataplane/speaker-lab.ts): real heartbeats, real addresses on
// interfaces, real gratuitous ARP and unsolicited NA, a client whose neighbour table is checked. Needs root.
import { strict as assert } from "node:assert";
import { needsRoot, skipBecause } from "../support/skip.js";
import { outages, SpeakerLab, VIP4, VIP6 } from "./speaker-lab.js";

const NODES = ["n1", "n2", "n3"];

/**
 * Waits until exactly one node holds the address, the same one for `stableMs` (speakers started together settle
 * within a heartbeat or two after the last one joins), and returns it.
 */
async function soleHolder(lab: SpeakerLab, ip: string, deadlineMs = 5000, stableMs = 400): Promise<string> {
  const start = Date.now();
  let holders: string[] = [];
  let since: { name: string; at: number } | undefined;
  while (Date.now() - start < deadlineMs) {
    holders = await lab.holders(ip);
    const now = Date.now();
    if (holders.length === 1) {
      const current: { name: string; at: number } = since?.name === holders[0] && since ? since : { name: holders[0]!, at: now };
      since = current;
      if (now - current.at >= stableMs) return current.name;
    } else since = undefined;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${ip} held by [${holders.join(", ")}] after ${deadlineMs} ms, not by exactly one node\n${lab.logs()}`);
}

describe("speaker: announcing and failover on a LAN of namespaces", function () {
  this.timeout(90_000);
  let lab: SpeakerLab | undefined;
  before(function () {
    const reason = needsRoot();
    if (reason) skipBecause(this, reason);
  });
  afterEach(async () => {
    await lab?.destroy();
    lab = undefined;
  });

  async function up(vips: string[] = [VIP4]): Promise<SpeakerLab> {
    lab = await SpeakerLab.create("bt-spk", NODES.length, { vips });
    await Promise.all(NODES.map((n) => lab!.startSpeaker(n)));
    return lab;
  }

  it("one node holds the VIP, it answers the client, and the client's neighbour entry is that node's MAC", async () => {
    const l = await up();
    const owner = await soleHolder(l, VIP4);
    assert.equal(await l.ask(VIP4), owner);
    assert.equal(await l.clientNeighbour(VIP4), await l.macOf(owner));
  });

  it("a hard kill (speaker SIGKILLed, LAN link down) moves the VIP to another node within 2 s", async () => {
    const l = await up();
    const owner = await soleHolder(l, VIP4);
    assert.equal(await l.ask(VIP4), owner);
    const prober = await l.startProber(VIP4, 100);
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all([l.killSpeaker(owner), l.linkDown(owner)]);
    const moved = await l.waitFor(VIP4, (a) => a !== owner && !a.startsWith("<"), 5000);
    await new Promise((r) => setTimeout(r, 300));
    const probes = await prober.stop();
    assert.notEqual(moved.answer, owner, `no other node answered\n${l.logs()}`);
    const worst = Math.max(0, ...outages(probes).map((o) => o.ms));
    assert.ok(worst <= 2000, `outage ${worst} ms\n${l.logs()}`);
    assert.equal(await l.clientNeighbour(VIP4), await l.macOf(moved.answer));
  });

  it("a graceful stop hands over before the old node lets go: under 0.5 s without an answer", async () => {
    const l = await up();
    const owner = await soleHolder(l, VIP4);
    const prober = await l.startProber(VIP4, 100);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await l.stopSpeaker(owner), 0);
    await new Promise((r) => setTimeout(r, 500));
    const probes = await prober.stop();
    const after = probes.filter((p) => p.by !== undefined).at(-1)!.by!;
    assert.notEqual(after, owner, "the stopped node still answers");
    assert.deepEqual(await l.holders(VIP4), [after], "the old node withdrew its address");
    const worst = Math.max(0, ...outages(probes).map((o) => o.ms));
    assert.ok(worst <= 500, `outage ${worst} ms on a graceful handover\n${l.logs()}`);
  });

  it("a node that comes back wins its address back without a gap (make before break)", async () => {
    const l = await up();
    const owner = await soleHolder(l, VIP4);
    await Promise.all([l.killSpeaker(owner), l.linkDown(owner)]);
    await l.waitFor(VIP4, (a) => a !== owner && !a.startsWith("<"), 5000);
    const prober = await l.startProber(VIP4, 100);
    await l.linkUp(owner);
    await l.startSpeaker(owner);
    assert.equal(await soleHolder(l, VIP4), owner, "the top-scoring node announces again");
    const probes = await prober.stop();
    assert.equal(probes.at(-1)?.by, owner);
    const worst = Math.max(0, ...outages(probes).map((o) => o.ms));
    assert.ok(worst <= 100, `the client went ${worst} ms without an answer while the node returned\n${l.logs()}`);
  });

  it("a speaker killed with the node still up leaves no address behind: the kernel drops it when its lifetime ends", async () => {
    const l = await up();
    const owner = await soleHolder(l, VIP4);
    await l.killSpeaker(owner);
    const deadline = Date.now() + 6000;
    while (Date.now() < deadline && (await l.holders(VIP4)).includes(owner)) await new Promise((r) => setTimeout(r, 100));
    assert.ok(!(await l.holders(VIP4)).includes(owner), "the dead speaker's address is still on its node");
    assert.equal((await l.holders(VIP4)).length, 1, "another node took it over");
  });

  it("a partition that heals converges to one announcer within a second, and the client follows it", async () => {
    const l = await up();
    const owner = await soleHolder(l, VIP4);
    await l.partition([owner]);
    // The isolated owner keeps announcing (it cannot tell a partition from the others dying); the client's side
    // elects another node.
    const other = await l.waitFor(VIP4, (a) => a !== owner && !a.startsWith("<"), 5000);
    assert.notEqual(other.answer, owner);
    assert.deepEqual((await l.holders(VIP4)).sort(), [owner, other.answer].sort(), "both sides announce during the partition");
    // Past every takeover burst (4 x 500 ms), so only the re-announcement on healing can bring the client back.
    await new Promise((r) => setTimeout(r, 2500));
    await l.heal();
    const healedAt = Date.now();
    const one = await soleHolder(l, VIP4, 3000, 0);
    const convergedMs = Date.now() - healedAt;
    assert.equal(await soleHolder(l, VIP4), one, "the announcer stays put once converged");
    assert.equal(one, owner, "the highest-scoring node wins back");
    assert.ok(convergedMs <= 1000, `one announcer after ${convergedMs} ms`);
    const back = await l.waitFor(VIP4, (a) => a === owner, 2000);
    assert.equal(back.answer, owner, `the client still goes to ${back.answer}`);
    assert.equal(await l.clientNeighbour(VIP4), await l.macOf(owner));
  });

  it("IPv6: the VIP answers over NDP, and a hard kill moves it with an unsolicited NA", async () => {
    const l = await up([VIP6]);
    const owner = await soleHolder(l, VIP6);
    assert.equal(await l.ask(VIP6), owner);
    assert.equal(await l.clientNeighbour(VIP6), await l.macOf(owner));
    await Promise.all([l.killSpeaker(owner), l.linkDown(owner)]);
    const moved = await l.waitFor(VIP6, (a) => a !== owner && !a.startsWith("<"), 5000);
    assert.notEqual(moved.answer, owner, `no other node answered\n${l.logs()}`);
    assert.ok(moved.afterMs <= 2500, `took ${moved.afterMs} ms`);
    assert.equal(await l.clientNeighbour(VIP6), await l.macOf(moved.answer));
  });
});
