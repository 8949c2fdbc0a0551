import { strict as assert } from "node:assert";

import { UsageError } from "../../../src/lib/errors.js";
import { parseSpeakerOptions } from "../../../src/speaker/command.js";
import { SpeakerMetrics } from "../../../src/speaker/metrics.js";

const defaults = {
  nodeName: "node-1", port: "7946", heartbeatInterval: "200ms", deadAfter: "1s", handoverTimeout: "1s", addressLifetime: "3s",
  linger: "300ms", burstCount: "4", burstInterval: "500ms", refreshInterval: "30s", ignoreUnsetClass: false, listen: "0.0.0.0:7473",
};

describe("berth speaker: flags", () => {
  it("parses the defaults into milliseconds and seconds", () => {
    assert.deepEqual(parseSpeakerOptions(defaults), {
      nodeName: "node-1", port: 7946, heartbeatIntervalMs: 200, deadAfterMs: 1000, handoverTimeoutMs: 1000, lifetimeSec: 3,
      lingerMs: 300, burstCount: 4, burstIntervalMs: 500, refreshIntervalMs: 30_000, claimUnsetClass: true, listen: { host: "0.0.0.0", port: 7473 },
    });
  });
  const bad: [string, Partial<typeof defaults> & { nodeName?: string | undefined }, string][] = [
    ["no node name", { nodeName: undefined }, "--node-name is required (the DaemonSet passes spec.nodeName)"],
    ["a node name that is no DNS subdomain", { nodeName: "Node_1" }, "--node-name must be a node name (a DNS subdomain)"],
    ["dead-after under three heartbeats", { deadAfter: "500ms" }, "--dead-after must be at least 3 x --heartbeat-interval"],
    ["a lifetime under two seconds", { addressLifetime: "1s" }, "--address-lifetime must be whole seconds, at least 2s (addresses are renewed every second)"],
    ["a lifetime in fractions of a second", { addressLifetime: "2500ms" }, "--address-lifetime must be whole seconds, at least 2s (addresses are renewed every second)"],
    ["port 0", { port: "0" }, "--port must be from 1 to 65535"],
    ["a duration without a unit", { heartbeatInterval: "200" }, "--heartbeat-interval: \"200\" is not a duration (write e.g. 30s, 5m, 500ms)"],
  ];
  for (const [name, change, message] of bad) {
    it(`refuses ${name} with one line naming the flag`, () => {
      assert.throws(() => parseSpeakerOptions({ ...defaults, ...change } as typeof defaults), (e: unknown) => e instanceof UsageError && e.message === message);
    });
  }
});

describe("berth speaker: metrics", () => {
  it("exports announced addresses, gratuitous packets, elections, owner changes and heartbeat loss", async () => {
    const m = new SpeakerMetrics({ processMetrics: false });
    const hooks = m.speakerHooks();
    hooks.announcing?.(2);
    hooks.membersChanged?.(new Set(["a", "b", "c"]));
    hooks.elected?.([{ ip: "10.0.0.5", pool: "lan", reason: "noEligibleNode", candidates: [], excluded: {} }]);
    hooks.ownerChanged?.({ ip: "10.0.0.5", pool: "lan", services: [] }, "a", { ip: "10.0.0.5", pool: "lan", owner: "b", reason: "elected", candidates: ["b"], excluded: {} }, "c");
    hooks.heartbeatsLost?.("b", 3);
    m.gratuitousSent("ipv4", true);
    m.gratuitousSent("ipv6", false);
    m.announceFailed("10.0.0.6", "noAllowedInterface");
    const text = await m.render();
    for (const line of [
      "berth_speaker_announced_addresses 2",
      "berth_speaker_members_alive 3",
      "berth_speaker_elections_total 1",
      "berth_speaker_unannounced_addresses 1",
      "berth_speaker_owner_changes_total 1",
      'berth_speaker_heartbeats_lost_total{peer="b"} 3',
      'berth_speaker_gratuitous_packets_total{family="ipv4",result="ok"} 1',
      'berth_speaker_gratuitous_packets_total{family="ipv6",result="failed"} 1',
      'berth_speaker_announce_failures_total{reason="noAllowedInterface"} 1',
    ]) assert.ok(text.includes(`${line}\n`), `missing ${line}`);
  });
});
