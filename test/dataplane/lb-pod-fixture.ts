// The lb-pod data-plane topology, shared by the test files in this folder:
//
//   client ns                       pod ns (runs the lb-pod image's tree, chrooted)             backend ns
//   10.70.0.2, .3   fd70::2, ::3 -- 10.70.0.1  fd70::1 | 10.71.0.1  fd71::1 -- 10.71.0.2, .3   fd71::2, ::3
//
// The backend answers "b2" on its .2/::2 addresses and "b3" on .3/::3, on TCP and UDP ports 8080 and 8081, and
// names the client address it saw (so a test sees MASQUERADE at work). Addresses repeat across tests: each test has
// its own namespaces.
//
// The lb-pod runs as in a cluster: `berth lb-pod render` (what the controller renders) writes the rules bundle, and
// the image's own entrypoint applies it from the image's root filesystem (scripts/build-lb-pod-rootfs.sh), chrooted
// in the pod's namespace with the bundle and the state dir mounted where the DaemonSet mounts them; so a library or
// module missing from the image fails these tests.
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { systemRunner, type RunResult } from "../../src/lib/exec.js";
import { LB_POD_ROOTFS_PATH, ensureLbPodRootfs, rootfsExecArgs } from "../../src/sandbox/cluster/kubelet/rootfs.js";
import type { Family } from "../../src/lib/rules/model.js";
import { NetnsLab } from "../support/netns.js";
import { needsRoot, skipBecause } from "../support/skip.js";

export const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));
export const BIN_DIR = fileURLToPath(new URL("../../bin/", import.meta.url));
export const REPO_DIR = fileURLToPath(new URL("../../", import.meta.url));
/** Where the DaemonSet mounts the rules bundle and the state dir (src/lb-pod/bundle.ts RULES_DIR, daemonset.ts STATE_DIR). */
export const POD_RULES_DIR = "/etc/berth/rules";
export const POD_STATE_DIR = "/run/berth";

let rootfs: string | undefined;
/** The lb-pod image's tree for the current sources (built once, ~10 s, then reused). */
export async function lbPodRootfs(): Promise<string> {
  rootfs ??= (await ensureLbPodRootfs(REPO_DIR, systemRunner())).dir;
  return rootfs;
}
/** Every namespace of these suites starts with this; leftovers of killed runs are removed before each test. */
export const LAB_PREFIX = "bt-lbp";

/**
 * Installs the hooks every root data-plane suite needs (built CLI present; each test skipped with the reason when not
 * root; the topology removed after each test, even a failed one) and returns how a test makes its topology.
 * Call it inside `describe`.
 */
export function rootDataplaneSuite(): { create(options?: TopologyOptions): Promise<Topology> } {
  let current: Topology | undefined;
  before(async function () {
    requireBuiltCli();
    if (needsRoot()) return;
    this.timeout(120_000);
    await lbPodRootfs();
  });
  // Per test, so that every skipped test carries the reason in its own title.
  beforeEach(function () {
    const reason = needsRoot();
    if (reason) skipBecause(this, reason);
  });
  afterEach(async () => {
    await current?.destroy();
    current = undefined;
  });
  return {
    async create(options?: TopologyOptions) {
      current = await createTopology(options);
      return current;
    },
  };
}

/** The built CLI is what runs in pods; the test command builds it before mocha runs. */
export function requireBuiltCli(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (\`npm test\` builds before running mocha)`);
}

export const ADDR = {
  ipv4: { pod: "10.70.0.1", client: "10.70.0.2", otherClient: "10.70.0.3", podInside: "10.71.0.1", b2: "10.71.0.2", b3: "10.71.0.3" },
  ipv6: { pod: "fd70::1", client: "fd70::2", otherClient: "fd70::3", podInside: "fd71::1", b2: "fd71::2", b3: "fd71::3" },
} as const;

export const BACKEND_PORTS = [8080, 8081];

export interface Topology {
  lab: NetnsLab;
  client: string;
  pod: string;
  backend: string;
  /** A state dir of this test's own (the pod's /run/berth). */
  stateDir: string;
  /** Runs `node dist/cli.js <args>` inside the pod namespace, with extra environment variables. */
  berth(args: readonly string[], env?: Record<string, string>): Promise<RunResult>;
  /** Where `render` writes the bundle (mounted read-only at POD_RULES_DIR). */
  rulesDir: string;
  /** `berth lb-pod render` of this configuration into rulesDir (exit 2 on bad input, as apply). */
  render(config: LbPodTestConfig): Promise<RunResult>;
  /** render, then the image's entrypoint with --once, chrooted in the pod namespace: what the lb-pod container does. */
  apply(config: LbPodTestConfig, env?: Record<string, string>): Promise<RunResult>;
  /** Writes a bundle (as the controller renders it) into rulesDir. */
  writeBundle(bundle: Record<string, string>): Promise<void>;
  /** The image's entrypoint with these arguments and environment, chrooted in the pod namespace, on rulesDir. */
  runEntrypoint(args: readonly string[], env?: Record<string, string>): Promise<RunResult>;
  /** The image's readiness probe (berth-lb-pod-check), chrooted in the pod namespace. */
  probe(): Promise<RunResult>;
  /** Arguments for `ip netns exec <pod>` that run argv from the image's tree with the pod's mounts and `env`. */
  podArgs(argv: readonly string[], env?: Record<string, string>): Promise<string[]>;
  destroy(): Promise<void>;
}

export interface TopologyOptions {
  /** Forwarding sysctls to set in the pod (default: both on). */
  forwarding?: Partial<Record<Family, boolean>>;
}

export async function createTopology(options: TopologyOptions = {}): Promise<Topology> {
  const lab = await NetnsLab.create(LAB_PREFIX);
  try {
    const [client, pod, backend] = (await lab.addNamespaces("client", "pod", "backend")) as [string, string, string];
    await Promise.all([
      lab.link(
        { ns: client, ifname: "eth0", addresses: [`${ADDR.ipv4.client}/24`, `${ADDR.ipv4.otherClient}/24`, `${ADDR.ipv6.client}/64`, `${ADDR.ipv6.otherClient}/64`] },
        { ns: pod, ifname: "eth0", addresses: [`${ADDR.ipv4.pod}/24`, `${ADDR.ipv6.pod}/64`] },
      ),
      lab.link(
        { ns: pod, ifname: "eth1", addresses: [`${ADDR.ipv4.podInside}/24`, `${ADDR.ipv6.podInside}/64`] },
        { ns: backend, ifname: "eth0", addresses: [`${ADDR.ipv4.b2}/24`, `${ADDR.ipv4.b3}/24`, `${ADDR.ipv6.b2}/64`, `${ADDR.ipv6.b3}/64`] },
      ),
    ]);
    const forwarding = { ipv4: true, ipv6: true, ...options.forwarding };
    await lab.sysctls(pod, {
      "net.ipv4.ip_forward": forwarding.ipv4 ? "1" : "0",
      "net.ipv6.conf.all.forwarding": forwarding.ipv6 ? "1" : "0",
    });
    const listen = (ip: string) => BACKEND_PORTS.flatMap((port) => (["tcp", "udp"] as const).map((protocol) => ({ protocol, ip, port })));
    await Promise.all([
      lab.startServer(backend, { reply: "b2", listen: [...listen(ADDR.ipv4.b2), ...listen(ADDR.ipv6.b2)] }),
      lab.startServer(backend, { reply: "b3", listen: [...listen(ADDR.ipv4.b3), ...listen(ADDR.ipv6.b3)] }),
    ]);
    const stateDir = `/tmp/${pod}-state`;
    const rulesDir = `/tmp/${pod}-rules`;
    const berth = (args: readonly string[], env: Record<string, string> = {}): Promise<RunResult> =>
      lab.exec(pod, "env", [...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, CLI, ...args], { timeoutMs: 30_000 });
    const podArgs = async (argv: readonly string[], env: Record<string, string> = {}): Promise<string[]> => {
      await lab.runner.run("mkdir", ["-p", stateDir, rulesDir]);
      return rootfsExecArgs(await lbPodRootfs(), [
        { source: rulesDir, target: POD_RULES_DIR, readOnly: true },
        { source: stateDir, target: POD_STATE_DIR },
      ], { PATH: LB_POD_ROOTFS_PATH.join(":"), ...env }, argv);
    };
    const inPod = async (argv: readonly string[], env: Record<string, string>, timeoutMs: number): Promise<RunResult> => {
      const [file, ...args] = (await podArgs(argv, env)) as [string, ...string[]];
      return lab.exec(pod, file, args, { timeoutMs });
    };
    const render = (config: LbPodTestConfig): Promise<RunResult> => berth(["lb-pod", "render", "--out", rulesDir, ...configArgs(config)]);
    return {
      lab,
      client,
      pod,
      backend,
      stateDir,
      rulesDir,
      berth,
      render,
      podArgs,
      apply: async (config, env = {}) => {
        const rendered = await render(config);
        if (rendered.exitCode !== 0) return rendered;
        return inPod(["berth-lb-pod", "--once", ...(config.backend ? ["--backend", config.backend] : [])], env, 30_000);
      },
      writeBundle: async (bundle) => {
        rmSync(rulesDir, { recursive: true, force: true });
        mkdirSync(rulesDir, { recursive: true });
        for (const [name, text] of Object.entries(bundle)) writeFileSync(join(rulesDir, name), text);
      },
      runEntrypoint: (args, env = {}) => inPod(["berth-lb-pod", ...args], env, 30_000),
      probe: () => inPod(["berth-lb-pod-check"], {}, 10_000),
      destroy: async () => {
        await lab.destroy();
        await lab.runner.run("rm", ["-rf", stateDir, rulesDir]);
      },
    };
  } catch (error) {
    await lab.destroy();
    throw error;
  }
}

export interface LbPodTestConfig {
  ports: string[];
  destinations: string[];
  sourceRanges?: string[];
  backend?: string;
}

function configArgs(config: LbPodTestConfig): string[] {
  return [
    ...config.ports.flatMap((port) => ["--port", port]),
    ...config.destinations.flatMap((ip) => ["--destination-ip", ip]),
    ...(config.sourceRanges ?? []).flatMap((range) => ["--source-range", range]),
  ];
}

/** `lb-pod apply` / `lb-pod check` arguments for ports and destinations, with this test's state dir. */
export function lbPodArgs(topology: Topology, config: LbPodTestConfig): string[] {
  return ["--state-dir", topology.stateDir, ...configArgs(config), ...(config.backend ? ["--backend", config.backend] : [])];
}

export type IptablesBackend = "iptables-nft" | "iptables-legacy";

/**
 * Everything netfilter holds in a namespace, per front end, normalised for comparison (counters and the
 * "Generated by" timestamps removed): iptables-nft and iptables-legacy (both families) and the nftables ruleset
 * minus the tables iptables-nft itself keeps there.
 */
export async function rulesets(lab: NetnsLab, ns: string): Promise<Record<"iptables-nft" | "iptables-legacy" | "nftables", string>> {
  const save = async (tool: string): Promise<string> => {
    const result = await lab.exec(ns, tool, []);
    return result.stdout
      .split("\n")
      .filter((line) => !line.startsWith("#"))
      .map((line) => line.replace(/\[\d+:\d+\]/g, "[0:0]"))
      .join("\n");
  };
  const [nft4, nft6, legacy4, legacy6, nft] = await Promise.all([
    save("iptables-nft-save"),
    save("ip6tables-nft-save"),
    save("iptables-legacy-save"),
    save("ip6tables-legacy-save"),
    lab.exec(ns, "nft", ["list", "table", "inet", "berth"]),
  ]);
  return {
    "iptables-nft": `${nft4}\n${nft6}`,
    "iptables-legacy": `${legacy4}\n${legacy6}`,
    nftables: nft.exitCode === 0 ? nft.stdout.replace(/counter packets \d+ bytes \d+/g, "counter") : "",
  };
}

/** Whether berth has anything in a namespace's rulesets, per front end. */
export async function berthRulesPresent(lab: NetnsLab, ns: string): Promise<Record<"iptables-nft" | "iptables-legacy" | "nftables", boolean>> {
  const all = await rulesets(lab, ns);
  return {
    "iptables-nft": /BERTH-|--comment berth/.test(all["iptables-nft"]),
    "iptables-legacy": /BERTH-|--comment berth/.test(all["iptables-legacy"]),
    nftables: all.nftables !== "",
  };
}
