// Which Services are ours, and what each one asks of us: annotations and labels (berth's keys and the k3s / MetalLB
// aliases), ports, traffic policy, families, source ranges. Pure: a Service in, a validated ServiceLbConfig or the
// full list of problems out, so one bad Service gets one Event naming every bad field and nothing is applied for it.
import { AddressError, compareAddresses, parseCidr, parseIp } from "../lib/addresses.js";
import {
  K3S,
  LOAD_BALANCER_CLASS,
  METALLB,
  MODES,
  SERVICE_ANNOTATIONS,
  SERVICE_LABELS,
  SOURCE_RANGES_ANNOTATION,
  type Mode,
} from "../lib/names.js";
import type { Family, Protocol } from "../lib/rules/model.js";
import type {
  ConfigProblem,
  ControllerConfig,
  LbPort,
  Ownership,
  Result,
  ServiceLbConfig,
  V1Service,
  V1Toleration,
  VipRequest,
} from "./types.js";

/**
 * Is this Service ours? Only type LoadBalancer; a loadBalancerClass of `berth.dev/lb`, or none when the controller
 * claims unset classes (the default, as k3s servicelb does). A Service with another class is never touched: its
 * status belongs to whichever implementation owns that class (KEP-1959, service.spec.loadBalancerClass).
 * VIP mode Services are ours too (they get the "not available in this version" condition).
 */
export function ownership(service: V1Service, config: Pick<ControllerConfig, "claimUnsetClass">): Ownership {
  const type = service.spec?.type ?? "ClusterIP";
  if (type !== "LoadBalancer") {
    return { ours: false, code: "NotLoadBalancer", reason: `not type LoadBalancer (type is ${type})` };
  }
  const loadBalancerClass = service.spec?.loadBalancerClass;
  if (loadBalancerClass !== undefined && loadBalancerClass !== null && loadBalancerClass !== "") {
    if (loadBalancerClass === LOAD_BALANCER_CLASS) return { ours: true };
    return {
      ours: false,
      code: "OtherClass",
      reason: `loadBalancerClass ${loadBalancerClass} is not ours (ours is ${LOAD_BALANCER_CLASS})`,
    };
  }
  if (!config.claimUnsetClass) {
    return {
      ours: false,
      code: "UnsetClassIgnored",
      reason: `no loadBalancerClass and the controller is told to leave unset ones alone (set spec.loadBalancerClass: ${LOAD_BALANCER_CLASS})`,
    };
  }
  return { ours: true };
}

const PROTOCOLS: Record<string, Protocol> = { TCP: "tcp", UDP: "udp", SCTP: "sctp" };
const FAMILIES: Record<string, Family> = { IPv4: "ipv4", IPv6: "ipv6" };
const TOLERATION_OPERATORS = ["Exists", "Equal"];
const TOLERATION_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
const TOLERATION_FIELDS = ["key", "operator", "value", "effect", "tolerationSeconds"];

/**
 * Reads and validates everything berth takes from a Service (which must be ours; see ownership()).
 *
 * Keys and aliases: berth's own key and its k3s / MetalLB aliases may both be set only to the same value; if they
 * differ, that is a problem naming both keys, never a silent pick (the user meant one of them and we cannot know
 * which). Source ranges follow kube-proxy (pkg/apis/core/v1/helper GetLoadBalancerSourceRanges): the spec field when
 * it is non-empty, else the annotation; the annotation is then ignored, as kube-proxy ignores it.
 */
export function parseServiceConfig(service: V1Service, config: Pick<ControllerConfig, "defaultPriorityClass">): Result<ServiceLbConfig> {
  const problems: ConfigProblem[] = [];
  const annotations = service.metadata?.annotations ?? {};
  const labels = service.metadata?.labels ?? {};

  const mode = parseMode(annotations, problems);
  const families = parseFamilies(service, problems);
  const externalTrafficPolicy = service.spec?.externalTrafficPolicy === "Local" ? "Local" : "Cluster";
  // VIP mode never forwards to a NodePort (the speaker only announces; kube-proxy does the rest).
  const ports = parsePorts(service, mode === MODES.hostPort ? externalTrafficPolicy : "Cluster", problems);
  const clusterIps = parseClusterIps(service, externalTrafficPolicy, problems);
  const sourceRanges = parseSourceRanges(service, annotations, problems);
  const tolerations = parseTolerationsKeys(annotations, problems);
  const priorityClassName = parsePriorityClass(annotations, config.defaultPriorityClass, problems);
  const nodePool = parseNodePool(labels, problems);
  const vip = mode === MODES.vip ? parseVipRequest(service, annotations, problems) : undefined;

  if (problems.length > 0) return { ok: false, problems };
  const value: ServiceLbConfig = {
    mode,
    ports,
    externalTrafficPolicy,
    families,
    clusterIps,
    sourceRanges,
    tolerations,
    priorityClassName,
  };
  if (nodePool !== undefined) value.nodePool = nodePool;
  if (vip !== undefined) value.vip = vip;
  return { ok: true, value };
}

/** One line per problem, for Event and condition messages: `field: message; field: message`. */
export function describeProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((problem) => `${problem.field}: ${problem.message}`).join("; ");
}

function parseMode(annotations: Record<string, string>, problems: ConfigProblem[]): Mode {
  const raw = annotations[SERVICE_ANNOTATIONS.mode];
  if (raw === undefined) return MODES.hostPort;
  const value = raw.trim().toLowerCase();
  if (value === MODES.hostPort || value === MODES.vip) return value;
  problems.push({
    field: `metadata.annotations[${SERVICE_ANNOTATIONS.mode}]`,
    message: `"${raw}" is not a mode; use "${MODES.hostPort}" (the default) or "${MODES.vip}"`,
  });
  return MODES.hostPort;
}

function parseFamilies(service: V1Service, problems: ConfigProblem[]): Family[] {
  const declared = service.spec?.ipFamilies ?? [];
  const families: Family[] = [];
  declared.forEach((name, index) => {
    const family = FAMILIES[name];
    if (family === undefined) {
      problems.push({ field: `spec.ipFamilies[${index}]`, message: `"${name}" is not IPv4 or IPv6` });
    } else if (!families.includes(family)) {
      families.push(family);
    }
  });
  if (declared.length > 0) return families;
  // Servers before dual-stack (1.20) leave ipFamilies unset: the ClusterIP's family is the Service's.
  const clusterIp = service.spec?.clusterIPs?.[0] ?? service.spec?.clusterIP;
  if (clusterIp !== undefined && clusterIp !== "" && clusterIp !== "None") {
    return [clusterIp.includes(":") ? "ipv6" : "ipv4"];
  }
  return ["ipv4"];
}

function parsePorts(service: V1Service, policy: "Cluster" | "Local", problems: ConfigProblem[]): LbPort[] {
  const servicePorts = service.spec?.ports ?? [];
  if (servicePorts.length === 0) {
    problems.push({ field: "spec.ports", message: "the Service has no ports, so there is nothing to forward" });
    return [];
  }
  const ports: LbPort[] = [];
  const seen = new Set<string>();
  servicePorts.forEach((servicePort, index) => {
    const field = `spec.ports[${index}]`;
    const protocolName = servicePort.protocol ?? "TCP";
    const protocol = PROTOCOLS[protocolName];
    if (protocol === undefined) {
      problems.push({ field: `${field}.protocol`, message: `"${protocolName}" is not TCP, UDP or SCTP` });
      return;
    }
    const port = servicePort.port;
    if (!isPortNumber(port)) {
      problems.push({ field: `${field}.port`, message: `${String(port)} is not a port number (1-65535)` });
      return;
    }
    let destinationPort = port;
    if (policy === "Local") {
      // Local keeps the client address only if the node itself receives the traffic on its NodePort, which
      // kube-proxy then sends to local endpoints only (k3s servicelb does the same).
      const nodePort = servicePort.nodePort;
      if (!isPortNumber(nodePort)) {
        problems.push({
          field: `${field}.nodePort`,
          message: "externalTrafficPolicy Local needs a node port to forward to; set spec.allocateLoadBalancerNodePorts to true (or leave it unset)",
        });
        return;
      }
      destinationPort = nodePort;
    }
    const key = `${protocol}/${port}`;
    if (seen.has(key)) {
      problems.push({ field: `${field}.port`, message: `${protocolName} port ${port} is listed twice` });
      return;
    }
    seen.add(key);
    ports.push({ protocol, port, destinationPort });
  });
  return ports.sort(comparePorts);
}

/** Protocol (tcp, udp, sctp), then port number. */
export function comparePorts(a: { protocol: Protocol; port: number }, b: { protocol: Protocol; port: number }): number {
  if (a.protocol !== b.protocol) return a.protocol < b.protocol ? -1 : 1;
  return a.port - b.port;
}

function isPortNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535;
}

function parseClusterIps(service: V1Service, policy: "Cluster" | "Local", problems: ConfigProblem[]): string[] {
  const clusterIp = service.spec?.clusterIP;
  const raw = service.spec?.clusterIPs?.length ? service.spec.clusterIPs : clusterIp ? [clusterIp] : [];
  const ips: string[] = [];
  raw.forEach((text, index) => {
    if (text === "None" || text === "") return;
    try {
      const canonical = parseIp(text).text;
      if (!ips.includes(canonical)) ips.push(canonical);
    } catch (error) {
      if (!(error instanceof AddressError)) throw error;
      problems.push({ field: `spec.clusterIPs[${index}]`, message: error.message });
    }
  });
  if (policy === "Cluster" && ips.length === 0 && problems.every((problem) => !problem.field.startsWith("spec.clusterIPs"))) {
    problems.push({ field: "spec.clusterIPs", message: "the Service has no ClusterIP to forward to (externalTrafficPolicy Cluster)" });
  }
  return ips;
}

function parseSourceRanges(service: V1Service, annotations: Record<string, string>, problems: ConfigProblem[]): string[] {
  const specRanges = service.spec?.loadBalancerSourceRanges ?? [];
  let entries: { field: string; text: string }[];
  if (specRanges.length > 0) {
    entries = specRanges.map((text, index) => ({ field: `spec.loadBalancerSourceRanges[${index}]`, text }));
  } else {
    const annotation = annotations[SOURCE_RANGES_ANNOTATION] ?? "";
    entries = annotation
      .split(",")
      .map((text) => text.trim())
      .filter((text) => text !== "")
      .map((text) => ({ field: `metadata.annotations[${SOURCE_RANGES_ANNOTATION}]`, text }));
  }
  const parsed = new Map<string, ReturnType<typeof parseCidr>>();
  for (const entry of entries) {
    try {
      const cidr = parseCidr(entry.text);
      parsed.set(cidr.text, cidr);
    } catch (error) {
      if (!(error instanceof AddressError)) throw error;
      problems.push({ field: entry.field, message: error.message });
    }
  }
  return [...parsed.values()].sort(compareAddresses).map((cidr) => cidr.text);
}

/**
 * Reads one setting that has a berth key and alias keys (k3s, MetalLB). Every key present is parsed (its problems
 * reported under its own field); if two parse to different values, that is a problem naming both, never a silent
 * pick (the user meant one of them and we cannot know which). Returns the first present key's parsed value.
 */
function readAliased<T>(
  sources: Record<string, string>,
  keys: readonly string[],
  where: "annotations" | "labels",
  parse: (field: string, text: string) => T | undefined,
  equal: (a: T, b: T) => boolean,
  problems: ConfigProblem[],
): { key: string; value: T | undefined } | undefined {
  const present = keys.filter((key) => sources[key] !== undefined);
  const parsed = present.map((key) => ({ key, value: parse(`metadata.${where}[${key}]`, sources[key] as string) }));
  const first = parsed[0];
  if (first === undefined) return undefined;
  for (const other of parsed.slice(1)) {
    if (first.value !== undefined && other.value !== undefined && !equal(first.value, other.value)) {
      problems.push({
        field: `metadata.${where}[${first.key}]`,
        message: `"${sources[first.key]}" differs from ${other.key} "${sources[other.key]}"; they mean the same thing, so set one of them (or both to the same value)`,
      });
    }
  }
  return first;
}

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function parseTolerationsKeys(annotations: Record<string, string>, problems: ConfigProblem[]): V1Toleration[] {
  // Compared parsed and sorted, so the same list written in another order or spacing is not a conflict.
  const picked = readAliased(annotations, [SERVICE_ANNOTATIONS.tolerations, K3S.tolerations], "annotations",
    (field, text) => parseTolerations(field, text, problems), sameJson, problems);
  return picked?.value ?? [];
}

/**
 * A JSON list of core/v1 Tolerations, validated as the kube-apiserver validates pod tolerations
 * (pkg/apis/core/validation ValidateTolerations), so a bad list is reported on the Service instead of making the
 * DaemonSet write fail. Unknown fields are problems too (a misspelt "opertor" would otherwise silently tolerate
 * nothing). Returns the tolerations normalised (fixed key order, defaults dropped) and sorted, duplicates removed.
 */
export function parseTolerations(field: string, text: string, problems: ConfigProblem[]): V1Toleration[] | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    problems.push({ field, message: `not valid JSON (${(error as Error).message}); expected a list like [{"key":"k","operator":"Exists","effect":"NoSchedule"}]` });
    return undefined;
  }
  if (!Array.isArray(json)) {
    problems.push({ field, message: "expected a JSON list of tolerations" });
    return undefined;
  }
  const before = problems.length;
  const tolerations: V1Toleration[] = [];
  json.forEach((item: unknown, index) => {
    const at = `${field}[${index}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      problems.push({ field: at, message: "expected an object" });
      return;
    }
    const toleration = parseToleration(at, item as Record<string, unknown>, problems);
    if (toleration) tolerations.push(toleration);
  });
  if (problems.length > before) return undefined;
  return sortTolerations(tolerations);
}

function parseToleration(at: string, item: Record<string, unknown>, problems: ConfigProblem[]): V1Toleration | undefined {
  const before = problems.length;
  for (const name of Object.keys(item)) {
    if (!TOLERATION_FIELDS.includes(name)) {
      problems.push({ field: `${at}.${name}`, message: `unknown field; a toleration has ${TOLERATION_FIELDS.join(", ")}` });
    }
  }
  const stringField = (name: string): string | undefined => {
    const value = item[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "string") {
      problems.push({ field: `${at}.${name}`, message: `must be a string, not ${JSON.stringify(value)}` });
      return undefined;
    }
    return value;
  };
  const key = stringField("key") ?? "";
  const operator = stringField("operator") ?? "";
  const value = stringField("value") ?? "";
  const effect = stringField("effect") ?? "";
  const seconds = item.tolerationSeconds;

  if (key !== "") {
    const problem = qualifiedNameProblem(key);
    if (problem) problems.push({ field: `${at}.key`, message: problem });
  }
  if (operator !== "" && !TOLERATION_OPERATORS.includes(operator)) {
    problems.push({ field: `${at}.operator`, message: `"${operator}" is not Exists or Equal` });
  }
  const effectiveOperator = operator === "" ? "Equal" : operator;
  if (key === "" && effectiveOperator !== "Exists") {
    problems.push({ field: `${at}.operator`, message: "must be Exists when key is empty (an empty key with Exists tolerates every taint)" });
  }
  if (effectiveOperator === "Exists" && value !== "") {
    problems.push({ field: `${at}.value`, message: "must be empty when operator is Exists" });
  }
  if (effectiveOperator === "Equal" && value !== "") {
    const problem = labelValueProblem(value);
    if (problem) problems.push({ field: `${at}.value`, message: problem });
  }
  if (effect !== "" && !TOLERATION_EFFECTS.includes(effect)) {
    problems.push({ field: `${at}.effect`, message: `"${effect}" is not NoSchedule, PreferNoSchedule or NoExecute (or empty for all)` });
  }
  if (seconds !== undefined && seconds !== null) {
    if (typeof seconds !== "number" || !Number.isSafeInteger(seconds)) {
      problems.push({ field: `${at}.tolerationSeconds`, message: `must be a whole number of seconds, not ${JSON.stringify(seconds)}` });
    } else if (effect !== "NoExecute") {
      problems.push({ field: `${at}.tolerationSeconds`, message: "only allowed with effect NoExecute" });
    }
  }
  if (problems.length > before) return undefined;

  const toleration: V1Toleration = {};
  if (key !== "") toleration.key = key;
  toleration.operator = effectiveOperator;
  if (value !== "") toleration.value = value;
  if (effect !== "") toleration.effect = effect;
  if (typeof seconds === "number") toleration.tolerationSeconds = seconds;
  return toleration;
}

/** Sorted by key, operator, value, effect, seconds; exact duplicates dropped. */
export function sortTolerations(tolerations: readonly V1Toleration[]): V1Toleration[] {
  const sortKey = (t: V1Toleration): string =>
    [t.key ?? "", t.operator ?? "", t.value ?? "", t.effect ?? "", String(t.tolerationSeconds ?? "")].join("\u0000");
  const unique = new Map<string, V1Toleration>();
  for (const toleration of tolerations) unique.set(sortKey(toleration), toleration);
  return [...unique.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, toleration]) => toleration);
}

function parsePriorityClass(annotations: Record<string, string>, fallback: string, problems: ConfigProblem[]): string {
  const picked = readAliased(annotations, [SERVICE_ANNOTATIONS.priorityClass, K3S.priorityClassName], "annotations", (field, text) => {
    // Present but empty: no priority class (the cluster's default), as k3s reads its annotation.
    const value = text.trim();
    const problem = value === "" ? undefined : dnsSubdomainProblem(value);
    if (problem === undefined) return value;
    problems.push({ field, message: `"${text}" is not a valid PriorityClass name: ${problem}` });
    return undefined;
  }, (a, b) => a === b, problems);
  if (picked === undefined) return fallback;
  return picked.value ?? fallback;
}

function parseNodePool(labels: Record<string, string>, problems: ConfigProblem[]): string | undefined {
  // An empty pool label means no pool, as in k3s (`svc.Labels[lbpool] != ""`).
  const nonEmpty: Record<string, string> = {};
  for (const key of [SERVICE_LABELS.pool, K3S.lbPool]) {
    const value = labels[key];
    if (value !== undefined && value !== "") nonEmpty[key] = value;
  }
  const picked = readAliased(nonEmpty, [SERVICE_LABELS.pool, K3S.lbPool], "labels", (field, text) => {
    // The apiserver validates label values already; this guards Services built by hand.
    const problem = labelValueProblem(text);
    if (problem === undefined) return text;
    problems.push({ field, message: problem });
    return undefined;
  }, (a, b) => a === b, problems);
  return picked?.value;
}

function parseVipRequest(service: V1Service, annotations: Record<string, string>, problems: ConfigProblem[]): VipRequest {
  const request: VipRequest = { ips: [] };
  const pool = readAliased(annotations, [SERVICE_ANNOTATIONS.pool, ...METALLB.addressPool], "annotations", (field, text) => {
    const problem = dnsSubdomainProblem(text);
    if (problem === undefined) return text;
    problems.push({ field, message: `"${text}" is not a valid pool name: ${problem}` });
    return undefined;
  }, (a, b) => a === b, problems);
  if (pool?.value !== undefined) request.pool = pool.value;

  const sharing = readAliased(annotations, [SERVICE_ANNOTATIONS.allowSharedIp, ...METALLB.allowSharedIp], "annotations",
    (_field, text) => text, (a, b) => a === b, problems);
  if (sharing?.value !== undefined && sharing.value !== "") request.sharingKey = sharing.value;

  const parseList = (field: string, text: string): string[] | undefined => parseIpList(field, text, problems);
  const ips = readAliased(annotations, [SERVICE_ANNOTATIONS.ips, ...METALLB.loadBalancerIps], "annotations", parseList, sameJson, problems);
  const loadBalancerIp = service.spec?.loadBalancerIP;
  if (ips !== undefined) {
    request.ips = ips.value ?? [];
    if (loadBalancerIp) {
      problems.push({
        field: "spec.loadBalancerIP",
        message: `set together with ${ips.key}; use only ${ips.key} (spec.loadBalancerIP is deprecated and holds one address)`,
      });
    }
  } else if (loadBalancerIp) {
    request.ips = parseList("spec.loadBalancerIP", loadBalancerIp) ?? [];
  }
  return request;
}

/** Comma-separated addresses, at most one per family; canonical and sorted (IPv4 first). */
function parseIpList(field: string, text: string, problems: ConfigProblem[]): string[] | undefined {
  const parsed: ReturnType<typeof parseIp>[] = [];
  const before = problems.length;
  for (const part of text.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    try {
      parsed.push(parseIp(part));
    } catch (error) {
      if (!(error instanceof AddressError)) throw error;
      problems.push({ field, message: error.message });
    }
  }
  if (problems.length > before) return undefined;
  if (new Set(parsed.map((ip) => ip.family)).size !== parsed.length) {
    problems.push({ field, message: `"${text}" asks for more than one address of a family; give at most one IPv4 and one IPv6 address` });
    return undefined;
  }
  return parsed.sort(compareAddresses).map((ip) => ip.text);
}

// Kubernetes name rules (k8s.io/apimachinery/pkg/util/validation), with their messages' meaning.
const DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN = new RegExp(`^${DNS1123_LABEL}(\\.${DNS1123_LABEL})*$`);
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** undefined when valid, else why not (IsDNS1123Subdomain). */
export function dnsSubdomainProblem(value: string): string | undefined {
  if (value.length > 253) return "must be no more than 253 characters";
  if (!DNS1123_SUBDOMAIN.test(value)) {
    return "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

/** undefined when valid, else why not (IsQualifiedName: label and taint keys). */
export function qualifiedNameProblem(value: string): string | undefined {
  const parts = value.split("/");
  let name = value;
  if (parts.length === 2) {
    const [prefix, rest] = parts as [string, string];
    if (prefix === "") return `"${value}": prefix part must be non-empty`;
    const prefixProblem = dnsSubdomainProblem(prefix);
    if (prefixProblem) return `"${value}": prefix part ${prefixProblem}`;
    name = rest;
  } else if (parts.length > 2) {
    return `"${value}": a qualified name must have at most one '/'`;
  }
  if (name === "") return `"${value}": name part must be non-empty`;
  if (name.length > 63) return `"${value}": name part must be no more than 63 characters`;
  if (!QUALIFIED_NAME_PART.test(name)) {
    return `"${value}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`;
  }
  return undefined;
}

/** undefined when valid, else why not (IsValidLabelValue; empty is valid). */
export function labelValueProblem(value: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > 63) return `"${value}" must be no more than 63 characters`;
  if (!QUALIFIED_NAME_PART.test(value)) {
    return `"${value}" must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`;
  }
  return undefined;
}
