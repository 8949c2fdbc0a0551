// Real packets through the real lb-pod (the rules bundle `berth lb-pod render` writes, applied by the image's
// entrypoint from the image's root filesystem in a pod network namespace): every backend in both families, TCP and
// UDP, allowed and dropped sources, and re-applying without duplicating anything.
import { strict as assert } from "node:assert";
import type { Family } from "../../src/lib/rules/model.js";
import { ADDR, lbPodArgs, rootDataplaneSuite, rulesets } from "./lb-pod-fixture.js";

const BACKENDS = ["iptables-nft", "iptables-legacy", "nftables"] as const;
const FAMILIES: Family[] = ["ipv4", "ipv6"];

describe("lb-pod data plane: forwarding", function () {
  const topologies = rootDataplaneSuite();

  for (const backend of BACKENDS) {
    for (const family of FAMILIES) {
      const a = ADDR[family];
      it(`${backend} ${family}: forwards TCP and UDP to the destination, masquerades, drops sources outside the ranges, and re-applies to an identical ruleset`, async function () {
        const t = await topologies.create();
        const config = { ports: ["tcp:80:8080", "udp:53:8081"], destinations: [a.b2], sourceRanges: [a.client], backend };
        const first = await t.apply(config);
        assert.equal(first.exitCode, 0, first.stderr);
        assert.match(first.stdout, new RegExp(`backend ${backend} `));

        const [tcp, udp, tcpDropped, udpDropped] = await Promise.all([
          t.lab.request(t.client, { protocol: "tcp", ip: a.pod, port: 80, sourceIp: a.client }),
          t.lab.request(t.client, { protocol: "udp", ip: a.pod, port: 53, sourceIp: a.client }),
          t.lab.request(t.client, { protocol: "tcp", ip: a.pod, port: 80, sourceIp: a.otherClient, timeoutMs: 500 }),
          t.lab.request(t.client, { protocol: "udp", ip: a.pod, port: 53, sourceIp: a.otherClient, timeoutMs: 500 }),
        ]);
        assert.deepEqual(tcp, { answered: true, reply: "b2", seenFrom: a.podInside }, "TCP from an allowed source");
        assert.deepEqual(udp, { answered: true, reply: "b2", seenFrom: a.podInside }, "UDP from an allowed source");
        // Dropped means no answer at all: not even a refusal from the pod itself.
        assert.deepEqual(tcpDropped, { answered: false, reason: "timeout" }, "TCP from a source outside the ranges");
        assert.deepEqual(udpDropped, { answered: false, reason: "timeout" }, "UDP from a source outside the ranges");

        const before = await rulesets(t.lab, t.pod);
        const second = await t.apply(config);
        assert.equal(second.exitCode, 0, second.stderr);
        assert.deepEqual(await rulesets(t.lab, t.pod), before, "a second apply changes nothing");
        const check = await t.berth(["lb-pod", "check", ...lbPodArgs(t, config)]);
        assert.equal(check.exitCode, 0, check.stderr);
        const probe = await t.probe();
        assert.equal(probe.exitCode, 0, probe.stderr);
        assert.equal(
          (await t.lab.request(t.client, { protocol: "tcp", ip: a.pod, port: 80, sourceIp: a.client })).answered,
          true,
          "still forwarding after the second apply",
        );
      });
    }
  }

  it("spreads new connections over every destination of the family, dual-stack in one pod", async function () {
    const t = await topologies.create();
    const applied = await t.apply({ ports: ["tcp:80:8080"], destinations: [ADDR.ipv4.b2, ADDR.ipv4.b3, ADDR.ipv6.b2, ADDR.ipv6.b3] });
    assert.equal(applied.exitCode, 0, applied.stderr);
    for (const family of FAMILIES) {
      const replies: string[] = [];
      for (let i = 0; i < 4; i++) {
        const outcome = await t.lab.request(t.client, { protocol: "tcp", ip: ADDR[family].pod, port: 80 });
        replies.push(outcome.answered ? outcome.reply : `<${outcome.reason}>`);
      }
      assert.deepEqual(replies.sort(), ["b2", "b2", "b3", "b3"], `${family}: round robin over both destinations`);
    }
  });
});
