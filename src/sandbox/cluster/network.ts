// The sandbox's network, built from a SandboxLayout with `ip` only (iproute2), entirely inside network namespaces
// named `<prefix>-*`: the host's own interfaces, routes and rules are never touched. Every link is created from
// inside one of our namespaces with its peer placed straight into another (`ip -n A link add ... peer ... netns B`),
// so not even a transient interface appears on the host.
//
//   <prefix>-client --veth-- [lan0 bridge in <prefix>-lan] --veth-- eth0 <prefix>-node-i --veth p-<uid8>-- eth0 <prefix>-pod-<uid8>
//
// Pods are wired the way the CNI `ptp` plugin wires them (point-to-point veth, no per-node bridge): the pod holds its
// address as a host route (/32, /128) plus an on-link route to its gateway, the node's .1 / ::1, which the node puts
// on every pod veth; the node routes each pod address to its veth. Nodes reach other nodes' pod CIDRs through
// static routes via the other node's LAN address, as flannel's host-gw backend does. Duplicate address detection is
// off everywhere (addresses usable at once instead of ~2 s later).
import ipaddr from "ipaddr.js";

import { runChecked, systemRunner, type CommandRunner } from "../../lib/exec.js";
import { podNamespaceName, podUidShort, SANDBOX_PREFIX_PATTERN, type NodeLayout, type SandboxLayout } from "./layout.js";

/** What the kubelet stand-in needs from the network. */
export interface PodNetwork {
  /** Creates the pod's namespace and wires it to its node; returns the namespace and the pod IPs (IPv4 first). Idempotent. */
  attachPod(nodeName: string, podUid: string): Promise<{ ns: string; ips: string[] }>;
  /** Kills what still runs in the pod's namespace and deletes it (its veth goes with it). Idempotent. */
  detachPod(podUid: string): Promise<void>;
}

/** Sysctls every sandbox namespace gets: no duplicate address detection, no reverse-path filter surprises. */
const COMMON_SYSCTLS: Record<string, string> = {
  "net.ipv6.conf.all.accept_dad": "0",
  "net.ipv6.conf.default.accept_dad": "0",
  "net.ipv4.conf.all.rp_filter": "0",
  "net.ipv4.conf.default.rp_filter": "0",
};

/** Nodes route pod traffic, in both families (a node is a router for its pods, as on a real cluster). */
const NODE_SYSCTLS: Record<string, string> = {
  "net.ipv4.ip_forward": "1",
  "net.ipv6.conf.all.forwarding": "1",
};

/**
 * What a pod namespace starts with on a real node. Linux copies net.ipv4 settings into a new network namespace from
 * the host's (init_net's, with the default net.core.devconf_inherit_init_net=0), not from the namespace that
 * creates it, and every Kubernetes node forwards IPv4: so a real pod starts with IPv4 forwarding on, and IPv6
 * forwarding off (net.ipv6 always starts at its default) unless the pod's sysctls set it. The machines the sandbox
 * runs on have ip_forward=0, which our pods would copy; the sandbox must not change the host, so it gives each pod
 * namespace the real node's value here (docs/architecture.md, "hostPort mode"). Pod sysctls are applied after this
 * by the kubelet stand-in, as a container runtime applies them to the new sandbox.
 */
const POD_SYSCTLS: Record<string, string> = {
  "net.ipv4.ip_forward": "1",
};

/** Pod host numbers: .1 is the gateway, .255 the IPv4 broadcast; the same number is used in both families. */
const FIRST_POD_HOST = 2;
const LAST_POD_HOST = 254;

interface AttachedPod {
  node: NodeLayout;
  ns: string;
  host: number;
  ips: string[];
}

export class SandboxNetwork implements PodNetwork {
  private readonly pods = new Map<string, Promise<AttachedPod>>();
  /** Host numbers in use per node name. */
  private readonly hosts = new Map<string, Set<number>>();
  private destroyed = false;

  private constructor(
    readonly layout: SandboxLayout,
    private readonly runner: CommandRunner,
  ) {}

  /**
   * Builds the LAN, the nodes and the client. Refuses (throws, changing nothing) when a namespace of this prefix
   * already exists or the host routes into a LAN prefix. A failure half-way removes what was made.
   */
  static async create(layout: SandboxLayout, runner: CommandRunner = systemRunner()): Promise<SandboxNetwork> {
    const existing = await sandboxNamespaces(layout.prefix, runner);
    if (existing.length > 0) {
      throw new Error(
        `sandbox network "${layout.prefix}" already exists (${existing.join(", ")}); run \`berth sandbox down --prefix ${layout.prefix}\``,
      );
    }
    const clashes = await hostRoutesInto(layout.lanCidrs, runner);
    if (clashes.length > 0) {
      throw new Error(`the host routes into the sandbox LAN (${clashes.join("; ")}); the sandbox would be ambiguous, so it refuses`);
    }
    const network = new SandboxNetwork(layout, runner);
    try {
      await network.build();
    } catch (error) {
      await removeSandboxNetwork(layout.prefix, runner);
      throw error;
    }
    return network;
  }

  private async build(): Promise<void> {
    const { layout, runner } = this;
    const nodeNamespaces = layout.nodes.map((node) => node.ns);
    const all = [layout.lanNs, layout.client.ns, ...nodeNamespaces];
    await runChecked(runner, "ip", ["-batch", "-"], { input: all.map((ns) => `netns add ${ns}\n`).join("") });
    await Promise.all(all.map((ns) => this.sysctls(ns, nodeNamespaces.includes(ns) ? { ...COMMON_SYSCTLS, ...NODE_SYSCTLS } : COMMON_SYSCTLS)));

    // The bridge: no STP delay, no multicast snooping (IPv6 neighbour discovery is multicast, and a snooping bridge
    // drops solicitations until it has seen the MLD reports, which costs the first second of every new address).
    await runChecked(runner, "ip", ["-n", layout.lanNs, "-batch", "-"], {
      input: `link add ${layout.bridge} type bridge forward_delay 0 mcast_snooping 0\nlink set ${layout.bridge} up\n`,
    });

    const lanPrefixLengths = layout.lanCidrs.map((cidr) => cidr.split("/")[1] ?? "");
    const onLan = async (ns: string, lanPort: string, lanIps: string[], extra: string[]): Promise<void> => {
      await runChecked(runner, "ip", ["-n", layout.lanNs, "link", "add", lanPort, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      await runChecked(runner, "ip", ["-n", layout.lanNs, "link", "set", lanPort, "master", layout.bridge, "up"]);
      const batch = ["link set eth0 up", ...lanIps.map((ip, i) => `addr add ${ip}/${lanPrefixLengths[i]} dev eth0${ip.includes(":") ? " nodad" : ""}`), ...extra];
      await runChecked(runner, "ip", ["-n", ns, "-batch", "-"], { input: batch.map((line) => `${line}\n`).join("") });
    };

    await Promise.all([
      onLan(layout.client.ns, "client", layout.client.lanIps, []),
      ...layout.nodes.map((node, index) => {
        // host-gw routing: every other node's pod CIDRs via that node's LAN address, family by family.
        const routes = layout.nodes
          .filter((other) => other !== node)
          .flatMap((other) => other.podCidrs.map((cidr, f) => `route replace ${cidr} via ${other.lanIps[f]}`));
        return onLan(node.ns, `n${index + 1}`, node.lanIps, routes);
      }),
    ]);
  }

  async attachPod(nodeName: string, podUid: string): Promise<{ ns: string; ips: string[] }> {
    if (this.destroyed) throw new Error("sandbox network is destroyed");
    let attached = this.pods.get(podUid);
    if (!attached) {
      const node = this.layout.nodes.find((n) => n.name === nodeName);
      if (!node) throw new Error(`no sandbox node named "${nodeName}"`);
      attached = this.wirePod(node, podUid);
      this.pods.set(podUid, attached);
      // A failed attach is forgotten so that the next attempt starts over (wirePod cleaned up after itself).
      attached.catch(() => {
        if (this.pods.get(podUid) === attached) this.pods.delete(podUid);
      });
    }
    const pod = await attached;
    if (pod.node.name !== nodeName) throw new Error(`pod ${podUid} is already attached to ${pod.node.name}, not ${nodeName}`);
    return { ns: pod.ns, ips: [...pod.ips] };
  }

  private async wirePod(node: NodeLayout, podUid: string): Promise<AttachedPod> {
    const { runner } = this;
    const host = this.takeHost(node);
    const ns = podNamespaceName(this.layout.prefix, podUid);
    const veth = `p-${podUidShort(podUid)}`;
    const ips = node.podCidrs.map((cidr) => podIp(cidr, host));
    const hostRoute = (ip: string): string => (ip.includes(":") ? `${ip}/128` : `${ip}/32`);
    try {
      // Leftovers of an earlier attach of this pod (a crash between attach and detach) are replaced: what runs in the
      // old namespace is killed, and the old veth is deleted from the node side (its peer goes with it).
      await deleteNamespaces([ns], runner);
      await runner.run("ip", ["-n", node.ns, "link", "delete", veth]);
      await runChecked(runner, "ip", ["netns", "add", ns]);
      await this.sysctls(ns, { ...COMMON_SYSCTLS, ...POD_SYSCTLS });
      await runChecked(runner, "ip", ["-n", node.ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      const nodeSide = [`link set ${veth} up`];
      const podSide = ["link set eth0 up"];
      node.podGatewayIps.forEach((gateway, f) => {
        const ip = ips[f] ?? "";
        const v6 = ip.includes(":");
        nodeSide.push(`addr add ${hostRoute(gateway)} dev ${veth}${v6 ? " nodad" : ""}`, `route replace ${hostRoute(ip)} dev ${veth}`);
        podSide.push(
          `addr add ${hostRoute(ip)} dev eth0${v6 ? " nodad" : ""}`,
          `route replace ${hostRoute(gateway)} dev eth0`,
          `route replace default via ${gateway} dev eth0`,
        );
      });
      await runChecked(runner, "ip", ["-n", node.ns, "-batch", "-"], { input: nodeSide.map((line) => `${line}\n`).join("") });
      await runChecked(runner, "ip", ["-n", ns, "-batch", "-"], { input: podSide.map((line) => `${line}\n`).join("") });
    } catch (error) {
      await runner.run("ip", ["netns", "delete", ns]);
      this.hosts.get(node.name)?.delete(host);
      throw error;
    }
    return { node, ns, host, ips };
  }

  /**
   * The lowest host number no other pod of the node holds. Taken synchronously, before any await, so that two
   * attachments started together never pick the same number; given back by detachPod or a failed attach.
   */
  private takeHost(node: NodeLayout): number {
    const taken = this.hosts.get(node.name) ?? new Set<number>();
    this.hosts.set(node.name, taken);
    for (let host = FIRST_POD_HOST; host <= LAST_POD_HOST; host++) {
      if (!taken.has(host)) {
        taken.add(host);
        return host;
      }
    }
    throw new Error(`node ${node.name} has no free pod address left (${LAST_POD_HOST - FIRST_POD_HOST + 1} pods)`);
  }

  async detachPod(podUid: string): Promise<void> {
    const attached = this.pods.get(podUid);
    const pod = await attached?.catch(() => undefined);
    const ns = pod?.ns ?? podNamespaceName(this.layout.prefix, podUid);
    await deleteNamespaces([ns], this.runner);
    if (this.pods.get(podUid) === attached) this.pods.delete(podUid);
    if (pod) this.hosts.get(pod.node.name)?.delete(pod.host);
  }

  /** Kills every process inside the sandbox's namespaces and deletes them all (pods, nodes, client, LAN). */
  async destroy(): Promise<void> {
    this.destroyed = true;
    await Promise.all([...this.pods.values()].map((pending) => pending.catch(() => undefined)));
    this.pods.clear();
    this.hosts.clear();
    await removeSandboxNetwork(this.layout.prefix, this.runner);
  }

  /** Writes sysctls inside a namespace (one process for all of them), and brings loopback up. */
  private async sysctls(ns: string, values: Record<string, string>): Promise<void> {
    const writes = Object.entries(values).map(([key, value]) => `echo ${value} > /proc/sys/${key.replaceAll(".", "/")}`);
    await runChecked(this.runner, "sh", ["-c", ["ip link set lo up", ...writes].join(" && ")], { netns: ns });
  }
}

/** Host number `host` of a pod CIDR: 10.42.1.0/24 + 5 -> 10.42.1.5; fd42:b5e7:7a42:1::/64 + 5 -> fd42:b5e7:7a42:1::5. */
export function podIp(cidr: string, host: number): string {
  const [network] = ipaddr.parseCIDR(cidr);
  const bytes = network.toByteArray();
  let carry = host;
  for (let i = bytes.length - 1; i >= 0 && carry > 0; i--) {
    const sum = (bytes[i] ?? 0) + carry;
    bytes[i] = sum & 0xff;
    carry = sum >> 8;
  }
  const ip = ipaddr.fromByteArray(bytes);
  return ip.kind() === "ipv6" ? (ip as ipaddr.IPv6).toRFC5952String() : ip.toString();
}

/**
 * Crash cleanup by prefix (what `sandbox down` runs): kills every process in `<prefix>-*` namespaces, then deletes
 * them. Idempotent. The prefix must be a valid sandbox prefix (no dash), so it can never match another prefix's
 * namespaces or a stranger's.
 */
export async function removeSandboxNetwork(
  prefix: string,
  runner: CommandRunner = systemRunner(),
): Promise<{ namespaces: string[]; killedPids: number[] }> {
  if (!SANDBOX_PREFIX_PATTERN.test(prefix)) throw new Error(`refusing to remove namespaces for invalid sandbox prefix "${prefix}"`);
  const namespaces = await sandboxNamespaces(prefix, runner);
  const killedPids = await deleteNamespaces(namespaces, runner);
  return { namespaces, killedPids };
}

/** Names of the existing network namespaces that start with `<prefix>-`. */
async function sandboxNamespaces(prefix: string, runner: CommandRunner): Promise<string[]> {
  const list = await runChecked(runner, "ip", ["netns", "list"]);
  return list.stdout
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(`${prefix}-`));
}

/**
 * Kills every process in the namespaces (SIGKILL: these are the sandbox's own processes, and the kubelet stand-in
 * has already given its containers their grace period), waits until they are gone, then deletes the namespaces.
 * Returns the PIDs killed.
 */
async function deleteNamespaces(namespaces: string[], runner: CommandRunner): Promise<number[]> {
  const pidsIn = async (): Promise<number[]> => {
    const lists = await Promise.all(namespaces.map((ns) => runner.run("ip", ["netns", "pids", ns])));
    return lists.flatMap((list) => list.stdout.split("\n").filter((line) => /^\d+$/.test(line.trim())).map(Number));
  };
  const killed = new Set<number>();
  for (let attempt = 0; attempt < 50; attempt++) {
    const pids = (await pidsIn()).filter((pid) => pid !== process.pid);
    if (pids.length === 0) break;
    for (const pid of pids) {
      killed.add(pid);
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  for (const ns of namespaces) await runner.run("ip", ["netns", "delete", ns]);
  return [...killed].sort((a, b) => a - b);
}

/** Routes in the host's main and other tables whose destination overlaps one of the prefixes (default routes aside). */
export async function hostRoutesInto(cidrs: string[], runner: CommandRunner = systemRunner()): Promise<string[]> {
  const clashes: string[] = [];
  for (const cidr of cidrs) {
    const [network, length] = ipaddr.parseCIDR(cidr);
    const family = network.kind() === "ipv6" ? "-6" : "-4";
    const routes = await runner.run("ip", [family, "-o", "route", "show", "table", "all"]);
    for (const line of routes.stdout.split("\n")) {
      const words = line.trim().split(/\s+/);
      // The destination is the first word, or the second after a route type such as "local" or "unreachable".
      const destination = [words[0], words[1]].find((word) => word !== undefined && /^[0-9a-f:.]+(\/\d+)?$/i.test(word) && /[.:]/.test(word));
      if (!destination) continue;
      let route: [ipaddr.IPv4 | ipaddr.IPv6, number];
      try {
        route = destination.includes("/") ? ipaddr.parseCIDR(destination) : [ipaddr.parse(destination), network.kind() === "ipv6" ? 128 : 32];
      } catch {
        continue;
      }
      if (route[0].kind() !== network.kind()) continue;
      // Overlap: one prefix contains the other's network address.
      const overlaps = route[1] <= length ? network.match(route) : route[0].match(network, length);
      if (overlaps && route[1] > 0) clashes.push(`${cidr}: ${line.trim()}`);
    }
  }
  return clashes;
}
