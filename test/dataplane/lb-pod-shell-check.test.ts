// The readiness probe (bin/berth-lb-pod-check, run from the lb-pod image's tree on what the entrypoint left in the
// state dir) must agree with the Node.js check (`berth lb-pod check`) on every state the rules can be in: no state,
// ready, a berth rule missing, an extra rule or a duplicated jump, a missing jump, an altered rule, forwarding off.
// Real netfilter in the pod namespace of the lb-pod fixture, for the three backends this kernel has.
import { strict as assert } from "node:assert";
import { ADDR, lbPodArgs, rootDataplaneSuite, type Topology } from "./lb-pod-fixture.js";

type Mutation = { name: string; run(t: Topology): Promise<void> };

async function must(t: Topology, file: string, args: string[], input?: string): Promise<string> {
  const result = await t.lab.exec(t.pod, file, args, input === undefined ? {} : { input });
  assert.equal(result.exitCode, 0, `${file} ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

/** The first line of iptables-save's `table` section that matches `pattern`. */
async function saveLine(t: Topology, variant: "nft" | "legacy", table: string, pattern: RegExp): Promise<string> {
  const save = await must(t, `iptables-${variant}-save`, ["-t", table]);
  const line = save.split("\n").find((l) => pattern.test(l));
  assert.ok(line, `no line matching ${pattern} in\n${save}`);
  return line;
}

function iptablesMutations(variant: "nft" | "legacy"): Mutation[] {
  const restore = async (t: Topology, text: string): Promise<void> => {
    await must(t, `iptables-${variant}-restore`, ["--noflush"], `*nat\n${text}\nCOMMIT\n`);
  };
  return [
    {
      name: "a berth rule missing",
      run: async (t) => restore(t, (await saveLine(t, variant, "nat", /^-A BERTH-/)).replace(/^-A /, "-D ")),
    },
    {
      name: "an extra berth rule",
      run: async (t) => restore(t, `${(await saveLine(t, variant, "nat", /^-A BERTH-/)).replace(/^-A (\S+) .*/, "-A $1")} -s 192.0.2.9/32 -j RETURN`),
    },
    {
      name: "a jump duplicated",
      run: async (t) => restore(t, await saveLine(t, variant, "nat", /^-A PREROUTING .*-j BERTH-/)),
    },
    {
      name: "a jump missing",
      run: async (t) => restore(t, (await saveLine(t, variant, "nat", /^-A PREROUTING .*-j BERTH-/)).replace(/^-A /, "-D ")),
    },
    {
      name: "a berth rule altered",
      run: async (t) => {
        const line = await saveLine(t, variant, "nat", /^-A BERTH-\S+ .* -j /);
        await restore(t, line.replace(/^-A (\S+) /, "-R $1 1 ").replace(/ -j /, " -m comment --comment altered -j "));
      },
    },
  ];
}

/** A rule of table inet berth (chain and handle), from `nft -a list table`. */
async function nftRule(t: Topology): Promise<{ chain: string; handle: string }> {
  const listing = await must(t, "nft", ["-a", "list", "table", "inet", "berth"]);
  let chain = "";
  for (const line of listing.split("\n")) {
    const declared = /^\s*chain (\S+) \{/.exec(line);
    if (declared?.[1]) chain = declared[1];
    const handle = /^\s*(?!type )(?!policy ).*# handle (\d+)$/.exec(line);
    if (chain && handle?.[1] && !/^\s*(chain|set|map|table) /.test(line)) return { chain, handle: handle[1] };
  }
  throw new Error(`no rule in\n${listing}`);
}

const nftMutations: Mutation[] = [
  { name: "a berth rule missing", run: async (t) => { const r = await nftRule(t); await must(t, "nft", ["delete", "rule", "inet", "berth", r.chain, "handle", r.handle]); } },
  { name: "an extra berth rule", run: async (t) => { const r = await nftRule(t); await must(t, "nft", ["add", "rule", "inet", "berth", r.chain, "counter"]); } },
  { name: "a berth rule altered", run: async (t) => { const r = await nftRule(t); await must(t, "nft", ["replace", "rule", "inet", "berth", r.chain, "handle", r.handle, "counter"]); } },
  { name: "the table missing", run: async (t) => { await must(t, "nft", ["delete", "table", "inet", "berth"]); } },
];

describe("lb-pod data plane: the shell readiness check agrees with the Node.js check", function () {
  const topologies = rootDataplaneSuite();
  const backends = [
    { backend: "iptables-nft", mutations: iptablesMutations("nft") },
    { backend: "iptables-legacy", mutations: iptablesMutations("legacy") },
    { backend: "nftables", mutations: nftMutations },
  ];
  for (const { backend, mutations } of backends) {
    it(`${backend}: no state, ready, ${mutations.map((m) => m.name).join(", ")}, forwarding off`, async () => {
      const t = await topologies.create();
      const configured = { ports: ["tcp:80:8080", "udp:53:8081"], destinations: [ADDR.ipv4.b2, ADDR.ipv6.b2], backend };
      const config = lbPodArgs(t, configured);
      const both = async (state: string, ready: boolean): Promise<void> => {
        const [shell, node] = await Promise.all([
          t.probe(),
          t.berth(["lb-pod", "check", ...config]),
        ]);
        assert.equal(node.exitCode, ready ? 0 : 1, `node, ${state}: ${node.stderr}`);
        assert.equal(shell.exitCode, ready ? 0 : 1, `shell, ${state}: ${shell.stderr} (node says: ${node.stderr.trim()})`);
        if (!ready) {
          assert.equal(shell.stderr.trim().split("\n").length, 1, `shell, ${state}: one line on stderr: ${shell.stderr}`);
          assert.match(shell.stderr, /^berth lb-pod: not ready: /);
        }
      };
      const apply = async (): Promise<void> => {
        const applied = await t.apply(configured);
        assert.equal(applied.exitCode, 0, applied.stderr);
      };

      await both("no state", false);
      await apply();
      await both("after apply", true);
      for (const mutation of mutations) {
        await mutation.run(t);
        await both(mutation.name, false);
        await apply();
        await both(`re-applied after ${mutation.name}`, true);
      }
      for (const sysctl of ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"]) {
        await t.lab.sysctls(t.pod, { [sysctl]: "0" });
        await both(`${sysctl} off`, false);
        await t.lab.sysctls(t.pod, { [sysctl]: "1" });
        await both(`${sysctl} back on`, true);
      }
    });
  }
});
