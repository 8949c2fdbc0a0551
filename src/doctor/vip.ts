// `berth doctor` for a VIP-mode Service: why it has no address (or keeps one no pool holds), from the controller's
// own verdict (its Ready condition carries the allocator's reason, src/controller/vip/allocator.ts) and the pools
// as the snapshot shows them (their Valid condition and counts). Pure, as diagnose() is.
import { SERVICE_ANNOTATIONS } from "../lib/names.js";
import { ALLOCATED_FROM_POOL_ANNOTATION, type AddressPool } from "../lib/vip/address-pool.js";
import type { ServiceLbConfig, V1Condition } from "../controller/types.js";
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
