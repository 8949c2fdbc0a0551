// What `berth sandbox up` checks before it changes anything, so a refusal is one line saying what is missing
// instead of a half-built sandbox: root, the tools every part runs, no host route into the sandbox's LAN, and no
// sandbox (or leftovers of one) under the same prefix. The decision is a pure function of gathered facts; gathering
// them is the only I/O.
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { runChecked, type CommandRunner } from "../../lib/exec.js";
import { hostRoutesInto } from "./network.js";

/** Tools every sandbox needs, and what needs them. */
export const SANDBOX_TOOLS: readonly { tool: string; why: string; debian: string }[] = [
  { tool: "ip", why: "network namespaces, veths, the LAN bridge", debian: "iproute2" },
  { tool: "iptables-restore", why: "the kube-proxy and hostPort stand-ins, the lb-pods", debian: "iptables" },
  { tool: "nsenter", why: "readiness probes inside pods", debian: "util-linux" },
  { tool: "unshare", why: "a private mount namespace per pod", debian: "util-linux" },
  { tool: "sysctl", why: "forwarding on the nodes, pod sysctls", debian: "procps" },
  { tool: "openssl", why: "the API server's TLS certificate", debian: "openssl" },
];

/** Only `--demo` runs kubectl (the table it prints is the real kubectl's). */
export const DEMO_TOOLS: readonly { tool: string; why: string; debian: string }[] = [
  { tool: "kubectl", why: "the demo's `kubectl get svc`", debian: "kubernetes-client" },
];

export interface PreflightFacts {
  uid: number;
  /** Tools (from SANDBOX_TOOLS / DEMO_TOOLS) not found on PATH. */
  missingTools: string[];
  /** The host's routes (as `ip route` prints them) into a LAN prefix of the sandbox; default routes aside. */
  hostRouteClashes: string[];
  /** The supervisor recorded in this prefix's state file, when that process is alive. */
  runningPid?: number;
  /** Network namespaces named `<prefix>-*` that exist now. */
  leftoverNamespaces: string[];
  /** This prefix's state.json or supervisor.pid exists (a running or crashed sandbox). */
  stateFileExists: boolean;
}

export interface PreflightRequest {
  prefix: string;
  lanCidrs: readonly string[];
}

/** Why `up` must not start, as one line; undefined when it may. */
export function preflightProblem(facts: PreflightFacts, req: PreflightRequest): string | undefined {
  if (facts.uid !== 0) return "berth sandbox needs root (it creates network namespaces and netfilter rules): run it with sudo or as root";
  if (facts.missingTools.length > 0) {
    const all = [...SANDBOX_TOOLS, ...DEMO_TOOLS].filter((t) => facts.missingTools.includes(t.tool));
    const packages = [...new Set(all.map((t) => t.debian))];
    return `missing ${all.map((t) => `${t.tool} (${t.why})`).join(", ")}: install ${packages.join(" ")} (./scripts/install-deps.sh does)`;
  }
  if (facts.hostRouteClashes.length > 0) {
    return `the host has a route into the sandbox LAN ${req.lanCidrs.join(" / ")} (${facts.hostRouteClashes.join("; ")}): nothing would collide (the sandbox lives in its own network namespaces) but its addresses would be ambiguous; remove the route or use another machine`;
  }
  const down = req.prefix === "bsb" ? "berth sandbox down" : `berth sandbox down --prefix ${req.prefix}`;
  if (facts.runningPid !== undefined) return `a sandbox with prefix ${req.prefix} is already up (supervisor pid ${facts.runningPid}): run \`${down}\` first`;
  if (facts.leftoverNamespaces.length > 0 || facts.stateFileExists) {
    const what = facts.leftoverNamespaces.length > 0 ? `network namespaces ${facts.leftoverNamespaces.join(", ")}` : "its state files";
    return `leftovers of an earlier sandbox with prefix ${req.prefix} exist (${what}): run \`${down}\` first`;
  }
  return undefined;
}

/** Names from `ip netns list` ("bsb-lan (id: 0)") that start with `<prefix>-`. */
export function namespacesWithPrefix(ipNetnsOutput: string, prefix: string): string[] {
  return ipNetnsOutput
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[0] ?? "")
    .filter((name) => name.startsWith(`${prefix}-`));
}

/** Finds a program on PATH the way execvp would (an executable regular file in one of PATH's directories). */
export function onPath(tool: string, path: string): boolean {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** Gathers the facts (reads PATH, routes and namespaces; changes nothing). */
export async function gatherPreflightFacts(o: {
  prefix: string;
  lanCidrs: string[];
  demo: boolean;
  path: string;
  uid: number;
  runningPid: number | undefined;
  stateFileExists: boolean;
  runner: CommandRunner;
}): Promise<PreflightFacts> {
  const tools = [...SANDBOX_TOOLS, ...(o.demo ? DEMO_TOOLS : [])].map((t) => t.tool);
  // /usr/sbin and /sbin are where Debian puts ip, sysctl and iptables-restore; a root shell from `su` without `-`
  // may not have them on PATH, yet the sandbox runs them by name, so they must be findable on PATH as given.
  const missingTools = tools.filter((tool) => !onPath(tool, o.path));
  const facts: PreflightFacts = { uid: o.uid, missingTools, hostRouteClashes: [], leftoverNamespaces: [], stateFileExists: o.stateFileExists };
  if (o.runningPid !== undefined) facts.runningPid = o.runningPid;
  if (o.uid !== 0 || missingTools.includes("ip")) return facts;
  facts.hostRouteClashes = await hostRoutesInto(o.lanCidrs, o.runner);
  const netns = await runChecked(o.runner, "ip", ["netns", "list"]);
  facts.leftoverNamespaces = namespacesWithPrefix(netns.stdout, o.prefix);
  return facts;
}
