import { strict as assert } from "node:assert";

import { decodeHeartbeat, encodeHeartbeat, MembershipState, type Heartbeat } from "../../../src/speaker/membership-core.js";

const hb = (node: string, seq: number, extra: Partial<Heartbeat> = {}): Heartbeat => ({ v: 1, node, inc: 100, seq, ...extra });

describe("speaker: membership", () => {
  type Step = { at: number; packet?: Heartbeat; expect?: { alive: string[]; changed?: boolean; lost?: number; ignored?: string } };
  const rows: { name: string; steps: Step[] }[] = [
    {
      name: "a peer is alive from its first heartbeat and dead after deadAfterMs of silence",
      steps: [
        { at: 0, expect: { alive: ["me"] } },
        { at: 10, packet: hb("n2", 1), expect: { alive: ["me", "n2"], changed: true } },
        { at: 210, packet: hb("n2", 2), expect: { alive: ["me", "n2"], changed: false } },
        { at: 1209, expect: { alive: ["me", "n2"], changed: false } },
        { at: 1210, expect: { alive: ["me"], changed: true } },
      ],
    },
    {
      name: "a goodbye removes the peer at once, and a late heartbeat of the same process does not bring it back",
      steps: [
        { at: 0, packet: hb("n2", 1), expect: { alive: ["me", "n2"], changed: true } },
        { at: 100, packet: hb("n2", 2, { bye: true }), expect: { alive: ["me"], changed: true } },
        { at: 110, packet: hb("n2", 1), expect: { alive: ["me"], changed: false, ignored: "afterGoodbye" } },
      ],
    },
    {
      name: "a restarted speaker (newer incarnation) comes back after its goodbye",
      steps: [
        { at: 0, packet: hb("n2", 5, { bye: true }), expect: { alive: ["me"], changed: false } },
        { at: 500, packet: hb("n2", 1, { inc: 200 }), expect: { alive: ["me", "n2"], changed: true } },
      ],
    },
    {
      name: "packets of an older incarnation are ignored",
      steps: [
        { at: 0, packet: hb("n2", 1, { inc: 200 }), expect: { alive: ["me", "n2"], changed: true } },
        { at: 900, packet: hb("n2", 9, { inc: 100 }), expect: { alive: ["me", "n2"], ignored: "staleIncarnation" } },
        { at: 1200, expect: { alive: ["me"], changed: true } },
      ],
    },
    {
      name: "sequence gaps count as lost heartbeats",
      steps: [
        { at: 0, packet: hb("n2", 1), expect: { alive: ["me", "n2"], lost: 0 } },
        { at: 800, packet: hb("n2", 5), expect: { alive: ["me", "n2"], lost: 3 } },
        { at: 1000, packet: hb("n2", 3), expect: { alive: ["me", "n2"], lost: 0 } },
        { at: 1200, packet: hb("n2", 6), expect: { alive: ["me", "n2"], lost: 0 } },
      ],
    },
    {
      name: "a joining speaker is heard but not elected until it says it has joined",
      steps: [
        { at: 0, packet: hb("n2", 1, { join: true }), expect: { alive: ["me"], changed: false } },
        { at: 200, packet: hb("n2", 2), expect: { alive: ["me", "n2"], changed: true } },
      ],
    },
    {
      name: "its own heartbeat (a looped-back packet) is ignored",
      steps: [{ at: 0, packet: hb("me", 1), expect: { alive: ["me"], changed: false, ignored: "self" } }],
    },
    {
      name: "a healed partition: the peer is back on its next heartbeat",
      steps: [
        { at: 0, packet: hb("n2", 1), expect: { alive: ["me", "n2"] } },
        { at: 3000, expect: { alive: ["me"], changed: true } },
        { at: 3100, packet: hb("n2", 16), expect: { alive: ["me", "n2"], changed: true, lost: 14 } },
      ],
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const state = new MembershipState("me", { deadAfterMs: 1000 });
      for (const step of row.steps) {
        const result = step.packet ? state.heard(step.packet, step.at) : { changed: state.expire(step.at), lost: 0 };
        const where = `at ${step.at} ms`;
        if (!step.expect) continue;
        assert.deepEqual([...state.alive(step.at)].sort(), step.expect.alive, where);
        if (step.expect.changed !== undefined) assert.equal(result.changed, step.expect.changed, where);
        if (step.expect.lost !== undefined) assert.equal(result.lost, step.expect.lost, where);
        if (step.expect.ignored !== undefined) assert.equal((result as { ignored?: string }).ignored, step.expect.ignored, where);
      }
    });
  }
});

describe("speaker: heartbeat datagrams", () => {
  it("round-trips a goodbye and an acknowledgement", () => {
    for (const packet of [hb("n1", 3, { bye: true }), hb("n1", 4, { ack: "n2" }), hb("n1", 1, { join: true })]) {
      assert.deepEqual(decodeHeartbeat(encodeHeartbeat(packet)), packet);
    }
  });
  const bad: [string, string, string][] = [
    ["not JSON", "hello", "not JSON"],
    ["another version", JSON.stringify({ v: 2, node: "n", inc: 1, seq: 1 }), "version 2, this speaker speaks 1"],
    ["no node name", JSON.stringify({ v: 1, node: "", inc: 1, seq: 1 }), "no node name"],
    ["no incarnation", JSON.stringify({ v: 1, node: "n", seq: 1 }), "no incarnation"],
    ["too large", JSON.stringify({ v: 1, node: "n".repeat(600), inc: 1, seq: 1 }), "datagram of 633 bytes, more than 512"],
  ];
  for (const [name, text, reason] of bad) {
    it(`rejects a datagram with ${name}, saying so`, () => assert.equal(decodeHeartbeat(Buffer.from(text)), reason));
  }
});
