// `berth doctor` for a VIP-mode Service: why it has no address (or keeps one no pool holds), from the controller's
// own verdict (its Ready condition carries the allocator's reason, src/controller/vip/allocator.ts) and the pools
// as the snapshot shows them (their Valid condition and counts). Pure, as diagnose() is.
import { SERVICE_ANNOTATIONS } from "../lib/names.js";
import { ALLOCATED_FROM_POOL_ANNOTATION, type AddressPool } from "../lib/vip/address-pool.js";
import type { ServiceLbConfig, V1Condition, V1Node } from "../controller/types.js";
import { ipToBigInt, parseRange, type AddressRange } from "../controller/vip/pools.js";
import { REASONS, type DoctorSnapshot, type Finding, type ReasonCode, type Severity } from "./types.js";

type Make = (code: ReasonCode, severity: Severity, summary: string, why: string, fix: string, evidence?: string[]) => Finding;

/** The controller's Ready reasons for VIP mode (src/controller/vip/) and the doctor's code for each. */
const BY_CONDITION: Record<string, ReasonCode> = {
  NoAddressPools: REASONS.vipNoAddressPools,
  PoolNotFound: REASONS.vipPoolNotFound,
  NoPoolMatches: REASONS.vipNoPoolMatches,
  PoolExhausted: REASONS.vipPoolExhausted,
  AddressTaken: REASONS.vipAddressTaken,
  AddressOutsidePools: REASONS.vipAddressOutsidePools,
  SharingConflict: REASONS.vipSharingConflict,
  FamilyMismatch: REASONS.vipFamilyMismatch,
  AssignedOutsidePools: REASONS.vipAssignedOutsidePools,
};

const EXAMPLE_POOL = "kubectl apply -f - <<'EOF'\napiVersion: berth.dev/v1alpha1\nkind: AddressPool\nmetadata: {name: lan}\n" +
  "spec: {addresses: [\"192.168.1.240-192.168.1.250\"]}\nEOF";

function poolLine(pool: AddressPool): string {
  const valid = pool.status?.conditions?.find((c) => c.type === "Valid");
  const counts = pool.status
    ? `IPv4 ${pool.status.assignedIPv4 ?? 0} assigned/${pool.status.availableIPv4 ?? 0} free, IPv6 ${pool.status.assignedIPv6 ?? 0} assigned/${pool.status.availableIPv6 ?? 0} free`
    : "no status yet";
  return `AddressPool ${pool.metadata?.name}: ${(pool.spec?.addresses ?? []).join(", ")}; Valid=${valid?.status ?? "?"}${valid && valid.status !== "True" ? ` (${valid.reason}: ${valid.message})` : ""}; ${counts}`;
}

export interface VipDiagnosisInput {
  snapshot: DoctorSnapshot;
  config: ServiceLbConfig;
  externalIps: string[];
  readyCondition: V1Condition | undefined;
  /** Service Events of these reasons, as evidence lines. */
  warningEvents(reasons: string[]): string[];
  make: Make;
}

export function vipFindings(input: VipDiagnosisInput): Finding[] {
  const { snapshot, config, externalIps, readyCondition, make } = input;
  const svc = `svc ${snapshot.name} -n ${snapshot.namespace}`;
  const pools = snapshot.addressPools;
  const named = config.vip?.pool;
  const from = snapshot.service?.metadata?.annotations?.[ALLOCATED_FROM_POOL_ANNOTATION];
  const poolEvidence = (pools ?? []).filter((p) => named === undefined ? true : p.metadata?.name === named).slice(0, 5).map(poolLine);
  const conditionText = readyCondition ? [`condition ${readyCondition.type}=${readyCondition.status} (${readyCondition.reason}): ${readyCondition.message}`] : [];
  const evidence = (reason: string): string[] => [...conditionText, ...input.warningEvents([reason]), ...poolEvidence];
  const findings: Finding[] = [];

  if (pools === null || (pools !== undefined && pools.length === 0) || readyCondition?.reason === "NoAddressPools") {
    findings.push(make(REASONS.vipNoAddressPools, externalIps.length > 0 ? "warning" : "error",
      pools === null ? "the AddressPool resource is not installed in this cluster" : "there is no AddressPool to take a VIP from",
      "A VIP-mode Service gets its address from an AddressPool (berth.dev/v1alpha1, cluster-scoped); without one the controller leaves EXTERNAL-IP <pending>.",
      pools === null
        ? "Install berth's manifests, which include the CustomResourceDefinition: kubectl apply -f deploy/berth.yaml. Then create a pool."
        : `Create a pool of addresses on the nodes' LAN that no host uses (or convert MetalLB's: berth convert metallb FILE | kubectl apply -f -): ${EXAMPLE_POOL}`,
      evidence("NoAddressPools")));
    return findings;
  }

  const reason = readyCondition?.reason ?? "";
  const code = BY_CONDITION[reason];
  const message = readyCondition?.message ?? "";
  if (code !== undefined && code !== REASONS.vipNoAddressPools) {
    const keeps = readyCondition?.status === "True";
    const severity: Severity = keeps ? "warning" : "error";
    const fix: Record<string, string> = {
      [REASONS.vipPoolNotFound]: `List the pools (kubectl get addresspools) and name one that exists: kubectl annotate ${svc} ${SERVICE_ANNOTATIONS.pool}=<pool> --overwrite; or remove the annotation to take any pool with autoAssign.`,
      [REASONS.vipNoPoolMatches]: `Each pool's spec.serviceAllocation (namespaces, namespaceSelectors, serviceSelectors) and autoAssign decide which Services it serves: widen one (kubectl edit addresspool <pool>), label this Service or its namespace to match, or name a pool with ${SERVICE_ANNOTATIONS.pool}.`,
      [REASONS.vipPoolExhausted]: "Add addresses to the pool (kubectl edit addresspool <pool>, spec.addresses), add another pool, or delete a LoadBalancer Service that holds one (kubectl get svc -A | grep LoadBalancer).",
      [REASONS.vipAddressTaken]: `Request another address (kubectl annotate ${svc} ${SERVICE_ANNOTATIONS.ips}=<ip> --overwrite), or let both Services share it: the same ${SERVICE_ANNOTATIONS.allowSharedIp} key on both, and disjoint ports.`,
      [REASONS.vipAddressOutsidePools]: `Request an address inside a pool (kubectl get addresspools), or add this address to one (kubectl edit addresspool <pool>).`,
      [REASONS.vipSharingConflict]: `Services share one address only with the same ${SERVICE_ANNOTATIONS.allowSharedIp} key, no port (protocol and number) in common, the same externalTrafficPolicy and, under Local, the same selector: change one of them, or request another address.`,
      [REASONS.vipFamilyMismatch]: "Request one address per family the Service has (spec.ipFamilies, spec.ipFamilyPolicy), or change the Service's families.",
      [REASONS.vipAssignedOutsidePools]: "Put the address back into a pool (kubectl edit addresspool <pool>) so it is counted and never handed out twice, or give the Service a new address by deleting and re-creating it.",
    };
    findings.push(make(code, severity,
      keeps ? `the Service keeps ${externalIps.join(", ")}, but ${summaryOf(code)}` : `the Service has no VIP: ${summaryOf(code)}`,
      `${message}${keeps ? " An address in use is never taken away or moved by berth." : ""}`,
      fix[code] ?? "", evidence(reason)));
  }

  // The pool this Service asks for (or got its address from) is Invalid: the controller serves its last valid spec.
  const ownPool = (pools ?? []).find((p) => p.metadata?.name === (named ?? from));
  const ownValid = ownPool?.status?.conditions?.find((c) => c.type === "Valid");
  if (ownPool && ownValid?.status === "False") {
    findings.push(make(REASONS.vipPoolInvalid, "warning", `the AddressPool ${ownPool.metadata?.name} is Invalid (${ownValid.reason})`,
      `${ownValid.message} The controller keeps using the pool's last valid spec, if it had one, until the pool is fixed.`,
      `Fix the pool: kubectl edit addresspool ${ownPool.metadata?.name} (its Valid condition names the field).`, [poolLine(ownPool)]));
  }

  findings.push(...nodeIpFindings(snapshot, externalIps, make));

  if (externalIps.length > 0 && !findings.some((f) => f.severity === "error")) {
    const pool = from ?? named ?? "";
    findings.push(make(REASONS.serving, "info", `VIP ${externalIps.join(", ")}${pool ? ` from pool ${pool}` : ""}`,
      "The controller gave the Service this address; berth's speaker answers ARP (IPv4) or NDP (IPv6) for it from one node at a time, and kube-proxy forwards what arrives.",
      "", [...conditionText, ...poolEvidence]));
  } else if (externalIps.length === 0 && findings.length === 0) {
    findings.push(make(REASONS.statusNotWritten, "error", "the Service has no VIP yet, although the controller has not said why",
      "The controller gives a VIP-mode Service its address within a second of seeing it and the pools; no condition means it has not reconciled the Service yet.",
      `Run berth doctor again in a few seconds; if it stays, read the controller's logs: kubectl -n ${snapshot.controllerNamespace} logs deploy/berth-controller`,
      [...conditionText, ...poolEvidence]));
  }
  return findings;
}

function summaryOf(code: ReasonCode): string {
  switch (code) {
    case REASONS.vipPoolNotFound: return "the pool it names does not exist (or has never been valid)";
    case REASONS.vipNoPoolMatches: return "no AddressPool may give it an address";
    case REASONS.vipPoolExhausted: return "every pool it may use is full";
    case REASONS.vipAddressTaken: return "the address it requests belongs to another Service";
    case REASONS.vipAddressOutsidePools: return "the address it requests is in no AddressPool";
    case REASONS.vipSharingConflict: return "it may not share the address it requests";
    case REASONS.vipFamilyMismatch: return "it requests an address of a family it does not have";
    case REASONS.vipAssignedOutsidePools: return "no AddressPool contains it any more";
    default: return code;
  }
}

// ---- The nodes' own addresses and VIPs (docs/design/0015: "a kubelet started later must not take the VIP") ----

/** k3s and RKE2 record their arguments, config file included, on the Node (k3s pkg/nodeconfig/nodeconfig.go). */
const NODE_ARGS_ANNOTATIONS = ["k3s.io/node-args", "rke2.io/node-args"] as const;
/** ... and their K3S_* / RKE2_* environment (K3S_NODE_IP sets the node IP too). */
const NODE_ENV_ANNOTATIONS = ["k3s.io/node-env", "rke2.io/node-env"] as const;

/**
 * Whether a node's kubelet was given its node IP, as far as the Node object can tell: true or false for k3s and
 * RKE2 nodes (their node-args annotation lists `--node-ip`/`-i`, or `--kubelet-arg node-ip=...`, and their node-env
 * annotation K3S_NODE_IP/RKE2_NODE_IP), undefined for any other kubelet, which records its flags nowhere in the API.
 */
export function nodeIpPinned(node: V1Node): { pinned: boolean; evidence: string } | undefined {
  const annotations = node.metadata?.annotations ?? {};
  const key = NODE_ARGS_ANNOTATIONS.find((k) => annotations[k] !== undefined);
  if (key === undefined) return undefined;
  let args: unknown;
  try {
    args = JSON.parse(annotations[key] as string);
  } catch {
    return undefined;
  }
  if (!Array.isArray(args)) return undefined;
  const list = args.map(String);
  const byFlag = list.some((a, i) => a === "--node-ip" || a === "-i" || a.startsWith("--node-ip=") ||
    ((a === "--kubelet-arg" || a === "--kubelet-arg=") && /^(--)?node-ip=/.test(list[i + 1] ?? "")) || /^--kubelet-arg=(--)?node-ip=/.test(a));
  const envKey = NODE_ENV_ANNOTATIONS.find((k) => annotations[k] !== undefined);
  let env: Record<string, unknown> = {};
  try {
    env = envKey ? (JSON.parse(annotations[envKey] as string) as Record<string, unknown>) : {};
  } catch {
    env = {};
  }
  const byEnv = ["K3S_NODE_IP", "RKE2_NODE_IP"].some((k) => typeof env[k] === "string" && env[k] !== "");
  const shown = JSON.stringify(list);
  return { pinned: byFlag || byEnv, evidence: `node ${node.metadata?.name}: ${key} ${shown.length > 200 ? `${shown.slice(0, 200)}...` : shown}` };
}

function inRanges(ip: string, ranges: readonly { pool: string; range: AddressRange }[]): string | undefined {
  let value: { family: string; value: bigint };
  try {
    value = ipToBigInt(ip);
  } catch {
    return undefined;
  }
  return ranges.find(({ range }) => range.family === value.family && value.value >= range.first && value.value <= range.last)?.pool;
}

/**
 * What the API shows of nodes and VIPs mixing: a node address inside a pool (a kubelet that took a VIP as its node
 * IP, or a pool overlapping the nodes), and nodes running a speaker whose k3s picks its node IP itself.
 */
export function nodeIpFindings(snapshot: DoctorSnapshot, externalIps: readonly string[], make: Make): Finding[] {
  const findings: Finding[] = [];
  const ranges = (snapshot.addressPools ?? []).flatMap((pool) => (pool.spec?.addresses ?? []).flatMap((text) => {
    try {
      return [{ pool: pool.metadata?.name ?? "", range: parseRange(text) }];
    } catch {
      return [];
    }
  }));
  const inPool: string[] = [];
  for (const node of snapshot.nodes ?? []) {
    for (const a of node.status?.addresses ?? []) {
      if (a.type !== "InternalIP" && a.type !== "ExternalIP") continue;
      const pool = inRanges(a.address, ranges);
      if (pool !== undefined) inPool.push(`node ${node.metadata?.name}: ${a.type} ${a.address} is in AddressPool ${pool}${externalIps.includes(a.address) ? " and is this Service's VIP" : ""}`);
    }
  }
  if (inPool.length > 0) {
    findings.push(make(REASONS.vipNodeAddressInPool, "warning",
      `${inPool.length === 1 ? "a node's own address is" : `${inPool.length} node addresses are`} inside an AddressPool`,
      "A node address inside a pool is either a VIP the kubelet took as its node IP (it reads the first address of the interface when it is not given one, and a VIP lives on the interface while the node announces it), or a pool that overlaps the nodes' own addresses. Either way the allocator may hand that address to a Service, and the speakers send their heartbeats to node addresses.",
      "Give each kubelet its node IP (its --node-ip flag; k3s: --node-ip or node-ip: in /etc/rancher/k3s/config.yaml) and restart it, and keep the pools clear of the nodes' addresses (kubectl edit addresspool <pool>).",
      inPool.slice(0, 5)));
  }

  const speakerNodes = new Set((snapshot.speakerPods ?? []).map((p) => p.spec?.nodeName).filter((n): n is string => n !== undefined));
  const unpinned = (snapshot.nodes ?? []).filter((n) => speakerNodes.has(n.metadata?.name ?? "")).flatMap((n) => {
    const verdict = nodeIpPinned(n);
    return verdict !== undefined && !verdict.pinned ? [{ name: n.metadata?.name ?? "", evidence: verdict.evidence }] : [];
  });
  if (unpinned.length > 0) {
    const names = unpinned.map((n) => n.name);
    findings.push(make(REASONS.vipNodeIpNotPinned, "warning",
      `k3s on ${names.length === 1 ? `node ${names[0]}` : `nodes ${names.slice(0, 5).join(", ")}${names.length > 5 ? ", ..." : ""}`} picks its node IP itself, and a speaker runs there`,
      "Started without --node-ip, k3s takes the first address of the interface that holds the default route. While the node announces a VIP that interface holds the VIP too, so a k3s restart at that moment can make the VIP the node's InternalIP (docs/design/0015-how-the-speaker-announces.md). The Node's k3s.io/node-args annotation, which lists every argument and config file option, has no --node-ip.",
      "Give each such node its own address: --node-ip <address> on the k3s command line, or node-ip: <address> in /etc/rancher/k3s/config.yaml, then restart k3s on the node.",
      unpinned.slice(0, 5).map((n) => n.evidence)));
  }
  return findings;
}
