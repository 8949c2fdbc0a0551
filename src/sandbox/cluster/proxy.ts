// The kube-proxy + CNI portmap stand-in's I/O: watches Services, EndpointSlices and Pods with our Informer and, on
// every change (debounced 100 ms, so a burst of updates costs one sync), writes each node's rules with ONE
// `iptables-restore --noflush` per family inside that node's network namespace (`ip6tables-restore` for IPv6 when
// the sandbox is dual-stack), then clears the UDP flows the change made stale with `conntrack -D` (conntrack-tools;
// when it is missing that is logged, never fatal). What the rules reproduce and leave out is in proxy-rules.ts.
//
// It uses whichever iptables the machine defaults to (on Debian the nft variant); the lb-pods detect their backend
// from the rules in their OWN pod namespace, so these node rules never influence them. Node Objects are not
// watched: the node IPs (NodePorts) and pod CIDRs come from the sandbox layout, which is what the nodes really have.
import { runChecked, systemRunner, type CommandRunner } from "../../lib/exec.js";
import { noLog, Resources, type KubeClient, type LogFn } from "../../lib/kube/client.js";
import { Informer } from "../../lib/kube/informer.js";
import type { Family } from "../../lib/rules/model.js";
import type { EndpointSlice, Pod, Service } from "./endpoints.js";
import { CLUSTER_CIDRS, type NodeLayout, type SandboxLayout } from "./layout.js";
import { missingJumps, planProxyRules, presentChains, renderRestore, staleUdpFlows, type Table, type UdpEntry } from "./proxy-rules.js";

/** Changes arriving within this window are synced together (kube-proxy's minSyncPeriod serves the same purpose). */
const DEBOUNCE_MS = 100;
/** After a failed restore, try again this much later (the next change may also trigger it sooner). */
const RETRY_MS = 1000;

interface NodeFamilyState {
  /** Our chains known to be in the live ruleset (undefined: not read yet, or unknown after a failure). */
  chains?: Record<Table, string[]>;
  /** The last rules written successfully (skip identical writes). */
  lastRules?: string;
  /** The UDP ways in of the last rules written, to clear flows the next rules change (kube-proxy does the same). */
  lastUdp?: UdpEntry[];
}

export class ProxyStandIn {
  private readonly services: Informer<Service>;
  private readonly slices: Informer<EndpointSlice>;
  private readonly pods: Informer<Pod>;
  private readonly runner: CommandRunner;
  private readonly log: LogFn;
  private readonly state = new Map<string, NodeFamilyState>();
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly o: { client: KubeClient; layout: SandboxLayout; captureLoadBalancerIps: boolean; runner?: CommandRunner; log?: LogFn }) {
    this.runner = o.runner ?? systemRunner();
    this.log = o.log ?? noLog;
    const common = { client: o.client, log: this.log };
    this.services = new Informer<Service>({ ...common, resource: Resources.services });
    this.slices = new Informer<EndpointSlice>({ ...common, resource: Resources.endpointSlices });
    this.pods = new Informer<Pod>({ ...common, resource: Resources.pods });
    const changed = { onAdd: () => this.schedule(), onUpdate: () => this.schedule(), onDelete: () => this.schedule() };
    for (const informer of [this.services, this.slices, this.pods] as Informer[]) informer.addHandlers(changed);
  }

  /** Resolves once the caches are synced and every node's rules are in. */
  async start(): Promise<void> {
    for (const informer of [this.services, this.slices, this.pods] as Informer[]) informer.start();
    await Promise.all([this.services.synced, this.slices.synced, this.pods.synced]);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.sync();
  }

  /** Stops watching; the rules stay (the namespaces they live in go with the sandbox). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.all([this.services.stop(), this.slices.stop(), this.pods.stop()]);
    await this.syncing;
  }

  private schedule(delayMs = DEBOUNCE_MS): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sync();
    }, delayMs);
  }

  /** One sync at a time; a change during a sync runs another one right after. */
  private async sync(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      do {
        this.again = false;
        const results = await Promise.all(
          this.o.layout.nodes.flatMap((node) => this.families().map((family) => this.syncNode(node, family))),
        );
        if (results.includes(false)) this.schedule(RETRY_MS);
      } while (this.again && !this.stopped);
    })();
    try {
      await this.syncing;
    } finally {
      this.syncing = undefined;
    }
  }

  private families(): Family[] {
    return this.o.layout.dualStack ? ["ipv4", "ipv6"] : ["ipv4"];
  }

  /** Deletes conntrack entries of UDP flows the new rules route differently; failures are logged, never fatal. */
  private async clearStaleUdp(node: NodeLayout, family: Family, flows: ReturnType<typeof staleUdpFlows>): Promise<void> {
    for (const flow of flows) {
      const args = ["-D", "-f", family, "-p", "udp", "--orig-dst", flow.origDst, "--orig-port-dst", String(flow.port)];
      if (flow.dstNat) args.push("--dst-nat", flow.dstNat);
      // Exit 1 with "0 flow entries have been deleted" is the common case: nothing to clear.
      const result = await this.runner.run("conntrack", args, { netns: node.ns });
      if (result.exitCode > 1) this.log("warn", `sandbox proxy: clearing UDP flows on ${node.name} failed`, { command: result.command, stderr: result.stderr.trim() });
    }
  }

  /** Writes one node's rules of one family; false when it failed (logged, retried later). */
  private async syncNode(node: NodeLayout, family: Family): Promise<boolean> {
    const key = `${node.name}/${family}`;
    const state = this.state.get(key) ?? {};
    this.state.set(key, state);
    const rules = planProxyRules({
      family,
      nodeName: node.name,
      nodeIps: node.lanIps.filter((ip) => ip.includes(":") === (family === "ipv6")),
      clusterCidr: family === "ipv4" ? CLUSTER_CIDRS.ipv4 : CLUSTER_CIDRS.ipv6,
      services: this.services.list(),
      endpointSlices: this.slices.list(),
      pods: this.pods.list(),
      captureLoadBalancerIps: this.o.captureLoadBalancerIps,
    });
    const fingerprint = JSON.stringify(rules);
    if (state.chains && state.lastRules === fingerprint) return true;
    const tool = family === "ipv4" ? "iptables" : "ip6tables";
    try {
      // The live ruleset is read once (and after a failure): which of our chains exist, which jumps are missing.
      let jumps: Record<Table, string[]> = { nat: [], filter: [] };
      if (!state.chains) {
        const saved = await runChecked(this.runner, `${tool}-save`, [], { netns: node.ns });
        state.chains = presentChains(saved.stdout);
        jumps = missingJumps(saved.stdout);
      }
      const text = renderRestore(rules, { staleChains: state.chains, missingJumps: jumps });
      await runChecked(this.runner, `${tool}-restore`, ["--noflush"], { netns: node.ns, input: text });
      state.chains = { nat: rules.nat.chains, filter: rules.filter.chains };
      state.lastRules = fingerprint;
      if (state.lastUdp) await this.clearStaleUdp(node, family, staleUdpFlows(state.lastUdp, rules.udp));
      state.lastUdp = rules.udp;
      this.log("debug", `sandbox proxy: rules written on ${node.name} (${family})`, { natRules: rules.nat.rules.length });
      return true;
    } catch (error) {
      // The restore is one transaction: the live rules are still those of lastUdp.
      state.chains = undefined;
      state.lastRules = undefined;
      this.log("error", `sandbox proxy: writing rules on ${node.name} (${family}) failed`, { error: String(error) });
      return false;
    }
  }
}
