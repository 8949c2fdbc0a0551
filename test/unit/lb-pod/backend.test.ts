import { strict as assert } from "node:assert";
import { chooseBackend, variantFactsFromSave, type BackendFacts, type BackendRequest, type VariantFacts } from "../../../src/lb-pod/backend.js";
import { UsageError } from "../../../src/lib/errors.js";

const none: VariantFacts = { available: true, kubeletHint: false, ruleLines: 0 };
const facts = (overrides: Partial<BackendFacts> = {}): BackendFacts => ({
  nft: none,
  legacy: none,
  nftablesAvailable: true,
  ipvsAvailable: false,
  ...overrides,
});

describe("lb-pod backend choice", () => {
  const cases: { name: string; request: BackendRequest; facts: BackendFacts; backend: string }[] = [
    { name: "an empty namespace gets iptables-nft", request: "auto", facts: facts(), backend: "iptables-nft" },
    {
      name: "legacy rules in the namespace make it iptables-legacy",
      request: "auto",
      facts: facts({ legacy: { ...none, ruleLines: 3 } }),
      backend: "iptables-legacy",
    },
    {
      name: "more nft than legacy rules keeps iptables-nft",
      request: "auto",
      facts: facts({ legacy: { ...none, ruleLines: 3 }, nft: { ...none, ruleLines: 4 } }),
      backend: "iptables-nft",
    },
    {
      name: "kubelet's hint chain in legacy wins over a larger nft rule count",
      request: "iptables",
      facts: facts({ legacy: { ...none, kubeletHint: true }, nft: { ...none, ruleLines: 40 } }),
      backend: "iptables-legacy",
    },
    {
      name: "kubelet's hint chain in nft is checked first",
      request: "auto",
      facts: facts({ legacy: { ...none, kubeletHint: true, ruleLines: 50 }, nft: { ...none, kubeletHint: true } }),
      backend: "iptables-nft",
    },
    {
      name: "a variant that does not run falls back to the other one",
      request: "auto",
      facts: facts({ nft: { ...none, available: false } }),
      backend: "iptables-legacy",
    },
    {
      name: "no iptables at all falls back to native nftables",
      request: "auto",
      facts: facts({ nft: { ...none, available: false }, legacy: { ...none, available: false } }),
      backend: "nftables",
    },
    { name: "--backend nftables is honoured", request: "nftables", facts: facts(), backend: "nftables" },
    {
      name: "--backend iptables-legacy is honoured over detection",
      request: "iptables-legacy",
      facts: facts({ nft: { ...none, kubeletHint: true } }),
      backend: "iptables-legacy",
    },
    { name: "--backend ipvs is honoured where the kernel has IPVS", request: "ipvs", facts: facts({ ipvsAvailable: true }), backend: "ipvs" },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(chooseBackend(c.request, c.facts).backend, c.backend);
    });
  }

  const failures: { name: string; request: BackendRequest; facts: BackendFacts; message: RegExp }[] = [
    {
      name: "--backend ipvs without IPVS in the kernel fails naming /proc/net/ip_vs",
      request: "ipvs",
      facts: facts(),
      message: /kernel lacks IPVS \(\/proc\/net\/ip_vs does not exist/,
    },
    {
      name: "--backend nftables without nft fails",
      request: "nftables",
      facts: facts({ nftablesAvailable: false }),
      message: /`nft` command is not available/,
    },
    {
      name: "--backend iptables-legacy without iptables-legacy fails",
      request: "iptables-legacy",
      facts: facts({ legacy: { ...none, available: false } }),
      message: /iptables-legacy-save does not run here/,
    },
    {
      name: "--backend iptables with no iptables at all fails rather than switching to nftables",
      request: "iptables",
      facts: facts({ nft: { ...none, available: false }, legacy: { ...none, available: false } }),
      message: /no usable netfilter tool/,
    },
  ];
  for (const c of failures) {
    it(c.name, () => {
      assert.throws(() => chooseBackend(c.request, c.facts), (error: unknown) => error instanceof UsageError && c.message.test(error.message));
    });
  }

  it("counts rules and spots kubelet's hint chain in iptables-save output", () => {
    const save = [
      "*mangle",
      ":PREROUTING ACCEPT [0:0]",
      ":KUBE-IPTABLES-HINT - [0:0]",
      "COMMIT",
      "*nat",
      ":PREROUTING ACCEPT [10:600]",
      "-A PREROUTING -j KUBE-SERVICES",
      "-A KUBE-SERVICES -j RETURN",
      "COMMIT",
    ].join("\n");
    assert.deepEqual(variantFactsFromSave([save, undefined]), { available: true, kubeletHint: true, ruleLines: 2 });
    assert.deepEqual(variantFactsFromSave([undefined, undefined]), { available: false, kubeletHint: false, ruleLines: 0 });
  });
});
