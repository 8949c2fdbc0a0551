import { strict as assert } from "node:assert";

import {
  electAnnouncers,
  matchesLabelSelector,
  rendezvousScore,
  type ElectionInput,
  type ElectionNode,
  type ElectionPool,
  type ElectionVip,
  type VipElection,
} from "../../../src/speaker/election.js";
import { announcerEvent } from "../../../src/speaker/events.js";

function node(name: string, opts: { labels?: Record<string, string>; ready?: boolean } = {}): ElectionNode {
  return { name, labels: opts.labels ?? {}, ready: opts.ready ?? true };
}
function vip(ip: string, opts: { pool?: string; local?: string[] } = {}): ElectionVip {
  return {
    ip,
    pool: opts.pool ?? "lan",
    services: [{
      key: "default/web",
      externalTrafficPolicy: opts.local ? "Local" : "Cluster",
      endpointNodes: new Set(opts.local ?? []),
    }],
  };
}
const lan: ElectionPool = {};
const three = [node("n1"), node("n2"), node("n3")];
const allAlive = new Set(["n1", "n2", "n3"]);

function input(partial: Partial<ElectionInput>): ElectionInput {
  return { nodes: three, alive: allAlive, pools: new Map([["lan", lan]]), vips: [vip("10.0.0.5")], ...partial };
}

/** The node that scores highest for an address among the given names (the expectation, computed independently). */
function best(ip: string, names: string[]): string {
  return [...names].sort((a, b) => (rendezvousScore(a, ip) > rendezvousScore(b, ip) ? -1 : 1))[0]!;
}

describe("speaker: election", () => {
  const rows: {
    name: string;
    input: ElectionInput;
    owner: string | undefined;
    reason: string;
    excluded?: Record<string, string>;
  }[] = [
    {
      name: "every node eligible: the highest rendezvous score announces",
      input: input({}),
      owner: best("10.0.0.5", ["n1", "n2", "n3"]),
      reason: "elected",
      excluded: {},
    },
    {
      name: "a node labelled exclude-from-external-load-balancers (any value) never announces",
      input: input({ nodes: [node("n1", { labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "" } }), node("n2"), node("n3")] }),
      owner: best("10.0.0.5", ["n2", "n3"]),
      reason: "elected",
      excluded: { n1: "excludedByLabel" },
    },
    {
      name: "a NotReady node does not announce",
      input: input({ nodes: [node("n1"), node("n2", { ready: false }), node("n3")] }),
      owner: best("10.0.0.5", ["n1", "n3"]),
      reason: "elected",
      excluded: { n2: "notReady" },
    },
    {
      name: "a node whose speaker is silent does not announce",
      input: input({ alive: new Set(["n1", "n2"]) }),
      owner: best("10.0.0.5", ["n1", "n2"]),
      reason: "elected",
      excluded: { n3: "speakerNotAlive" },
    },
    {
      name: "the pool's node selectors limit the announcers (any selector matches)",
      input: input({
        nodes: [node("n1", { labels: { zone: "a" } }), node("n2", { labels: { zone: "b" } }), node("n3", { labels: { rack: "r1" } })],
        pools: new Map([["lan", { nodeSelectors: [{ matchLabels: { zone: "b" } }, { matchExpressions: [{ key: "rack", operator: "Exists" }] }] }]]),
      }),
      owner: best("10.0.0.5", ["n2", "n3"]),
      reason: "elected",
      excluded: { n1: "notSelectedByPool" },
    },
    {
      name: "Local: only nodes with a ready endpoint announce",
      input: input({ vips: [vip("10.0.0.5", { local: ["n3"] })] }),
      owner: "n3",
      reason: "elected",
      excluded: { n1: "noReadyEndpoint", n2: "noReadyEndpoint" },
    },
    {
      name: "Local with no ready endpoint anywhere: nobody announces",
      input: input({ vips: [vip("10.0.0.5", { local: [] })] }),
      owner: undefined,
      reason: "noEligibleNode",
    },
    {
      name: "a shared address under Local needs an endpoint of every Service on the node",
      input: input({
        vips: [{
          ip: "10.0.0.5", pool: "lan", services: [
            { key: "default/a", externalTrafficPolicy: "Local", endpointNodes: new Set(["n1", "n2"]) },
            { key: "default/b", externalTrafficPolicy: "Local", endpointNodes: new Set(["n2", "n3"]) },
          ],
        }],
      }),
      owner: "n2",
      reason: "elected",
      excluded: { n1: "noReadyEndpoint", n3: "noReadyEndpoint" },
    },
    {
      name: "a pool the speaker does not know (deleted, or never valid): nobody announces",
      input: input({ vips: [vip("10.0.0.5", { pool: "gone" })] }),
      owner: undefined,
      reason: "unknownPool",
    },
    {
      name: "every speaker silent: nobody announces",
      input: input({ alive: new Set() }),
      owner: undefined,
      reason: "noEligibleNode",
      excluded: { n1: "speakerNotAlive", n2: "speakerNotAlive", n3: "speakerNotAlive" },
    },
    {
      name: "configuration outranks health in the reason (excluded and NotReady reads as excluded)",
      input: input({ nodes: [node("n1", { ready: false, labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "true" } }), node("n2"), node("n3")], alive: new Set(["n2", "n3"]) }),
      owner: best("10.0.0.5", ["n2", "n3"]),
      reason: "elected",
      excluded: { n1: "excludedByLabel" },
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const [result] = electAnnouncers(row.input);
      assert.ok(result);
      assert.equal(result.owner, row.owner);
      assert.equal(result.reason, row.reason);
      if (row.excluded) assert.deepEqual(result.excluded, row.excluded);
    });
  }

  it("gives every speaker the same answer whatever the order it lists nodes in", () => {
    const vips = Array.from({ length: 50 }, (_, i) => vip(`10.0.1.${i}`));
    const a = electAnnouncers(input({ vips }));
    const b = electAnnouncers(input({ vips, nodes: [...three].reverse() }));
    assert.deepEqual(a.map((r) => r.owner), b.map((r) => r.owner));
  });

  it("spreads addresses evenly: 3,000 addresses over 5 nodes, each within 15% of 600", () => {
    const nodes = ["a", "b", "c", "d", "e"].map((n) => node(n));
    const vips = Array.from({ length: 3000 }, (_, i) => vip(`10.${(i >> 8) & 255}.${i & 255}.7`));
    const counts = new Map<string, number>();
    for (const r of electAnnouncers({ nodes, alive: new Set(nodes.map((n) => n.name)), pools: new Map([["lan", lan]]), vips })) {
      counts.set(r.owner!, (counts.get(r.owner!) ?? 0) + 1);
    }
    assert.equal(counts.size, 5);
    for (const [name, count] of counts) assert.ok(Math.abs(count - 600) <= 90, `${name} owns ${count}`);
  });

  it("moves only the departed node's addresses when a node dies, and only to the new node's share when one joins", () => {
    const names = ["a", "b", "c", "d"];
    const nodes = [...names, "e"].map((n) => node(n));
    const vips = Array.from({ length: 1000 }, (_, i) => vip(`192.168.${i >> 8}.${i & 255}`));
    const pools = new Map([["lan", lan]]);
    const before = electAnnouncers({ nodes, alive: new Set(names), pools, vips });
    const withoutC = electAnnouncers({ nodes, alive: new Set(names.filter((n) => n !== "c")), pools, vips });
    const withE = electAnnouncers({ nodes, alive: new Set([...names, "e"]), pools, vips });
    for (let i = 0; i < vips.length; i++) {
      if (before[i]!.owner !== "c") assert.equal(withoutC[i]!.owner, before[i]!.owner, `address ${vips[i]!.ip} moved though c did not own it`);
      else assert.equal(withoutC[i]!.owner, before[i]!.candidates[1], "the runner-up takes over");
      if (withE[i]!.owner !== "e") assert.equal(withE[i]!.owner, before[i]!.owner, `address ${vips[i]!.ip} moved to a node other than the new one`);
    }
    const taken = withE.filter((r) => r.owner === "e").length;
    assert.ok(taken > 150 && taken < 250, `the new node took ${taken} of 1000 (a fifth expected)`);
  });
});

describe("speaker: label selectors", () => {
  const labels = { zone: "a", tier: "edge" };
  const rows: { name: string; selector: Parameters<typeof matchesLabelSelector>[0]; want: boolean }[] = [
    { name: "empty selector matches everything", selector: {}, want: true },
    { name: "matchLabels all equal", selector: { matchLabels: { zone: "a", tier: "edge" } }, want: true },
    { name: "matchLabels one differs", selector: { matchLabels: { zone: "b" } }, want: false },
    { name: "In holds", selector: { matchExpressions: [{ key: "zone", operator: "In", values: ["a", "b"] }] }, want: true },
    { name: "In on a missing key fails", selector: { matchExpressions: [{ key: "rack", operator: "In", values: ["a"] }] }, want: false },
    { name: "NotIn on a missing key holds", selector: { matchExpressions: [{ key: "rack", operator: "NotIn", values: ["a"] }] }, want: true },
    { name: "NotIn with the value fails", selector: { matchExpressions: [{ key: "zone", operator: "NotIn", values: ["a"] }] }, want: false },
    { name: "DoesNotExist with the key fails", selector: { matchExpressions: [{ key: "tier", operator: "DoesNotExist" }] }, want: false },
    { name: "an unknown operator matches nothing", selector: { matchExpressions: [{ key: "zone", operator: "Gt", values: ["1"] }] }, want: false },
  ];
  for (const row of rows) it(row.name, () => assert.equal(matchesLabelSelector(row.selector, labels), row.want));
});

describe("speaker: Events on announcer changes", () => {
  const web = vip("10.0.0.5");
  const elected = (owner: string | undefined, excluded: Record<string, string> = {}, reason = owner ? "elected" : "noEligibleNode"): VipElection =>
    ({ ip: "10.0.0.5", pool: "lan", ...(owner ? { owner } : {}), reason, candidates: owner ? [owner] : [], excluded } as VipElection);
  const alive = new Set(["n1", "n2", "n3"]);
  const rows: { name: string; from?: string; to: VipElection; self: string; want: string | undefined }[] = [
    { name: "the new owner writes it, saying why the old one lost it", from: "n1", to: elected("n2", { n1: "speakerNotAlive" }), self: "n2",
      want: "Normal Announcing: node n2 announces 10.0.0.5 (pool lan), taking over from n1: its speaker stopped answering (node down, speaker gone, or the network between)" },
    { name: "other speakers write nothing", from: "n1", to: elected("n2", { n1: "speakerNotAlive" }), self: "n3", want: undefined },
    { name: "a node coming back takes over from a lower-ranked one", from: "n1", to: elected("n2"), self: "n2",
      want: "Normal Announcing: node n2 announces 10.0.0.5 (pool lan), taking over from n1, which ranks lower for this address now that n2 is back" },
    { name: "a new address: its first owner", to: elected("n3"), self: "n3", want: "Normal Announcing: node n3 announces 10.0.0.5 (pool lan)" },
    { name: "nobody may announce: the first alive node writes a Warning with the reasons grouped", from: "n1",
      to: elected(undefined, { n1: "noReadyEndpoint", n2: "noReadyEndpoint", n3: "notReady" }), self: "n1",
      want: "Warning NotAnnounced: nobody announces 10.0.0.5: no node may announce it: 2 nodes: it has no ready endpoint of the Service (externalTrafficPolicy: Local); 1 node: it is NotReady" },
    { name: "nobody may announce: the others write nothing", to: elected(undefined, { n1: "notReady" }), self: "n2", want: undefined },
    { name: "unknown pool", to: elected(undefined, {}, "unknownPool"), self: "n1",
      want: "Warning NotAnnounced: nobody announces 10.0.0.5: pool lan is not a valid AddressPool (check `kubectl get addresspools`)" },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const ev = announcerEvent(web, row.from, row.to, row.self, alive);
      assert.equal(ev && `${ev.type} ${ev.reason}: ${ev.message}`, row.want);
    });
  }
});
