// What the Service's status.conditions should say, and which Events to emit, from the other pure decisions'
// results. Events are emitted only on transitions (a pure comparison with the conditions and ingress already on the
// Service), so a resync every few minutes never repeats them; conditions follow meta.SetStatusCondition: the
// transition time changes only when the status does.
import type { V1LoadBalancerIngress } from "@kubernetes/client-node";

import { CONDITION_REASONS, CONDITION_TYPES, EVENT_REASONS, PREFIX, SERVICE_ANNOTATIONS } from "../lib/names.js";
import type { ConflictReport } from "./conflicts.js";
import { describeConflicts } from "./conflicts.js";
import { FORWARDING_SYSCTLS, nodeEligibility } from "./daemonset.js";
import { describeProblems } from "./service-config.js";
import { statusEquals, type ComputedStatus, type NodeDecision } from "./status.js";
import type { EventDecision, Ownership, Result, ServiceLbConfig, V1Condition, V1DaemonSet, V1Node, V1Service } from "./types.js";

/** Longest message we write: Events stop at 1 KiB (events.k8s.io note), and a condition that long is unreadable. */
export const MAX_MESSAGE = 1000;

export interface ConditionInputs {
  service: V1Service;
  now: Date;
  ownership: Ownership;
  /** parseServiceConfig's result; needed when the Service is ours. */
  config?: Result<ServiceLbConfig>;
  /** Every node (for "no node may serve" and its reasons). */
  nodes?: readonly V1Node[];
  /** computeStatus's result, when the Service is ours, valid and in hostPort mode. */
  status?: ComputedStatus;
  conflicts?: ConflictReport;
  /** rulesTooLargeMessage's result, when the Service's rendered rules do not fit in a ConfigMap. */
  rulesTooLarge?: string;
}

export interface ConditionDecision {
  /** The Service's whole new status.conditions: other writers' conditions kept, ours set (or removed if not ours). */
  conditions: V1Condition[];
  /** Whether conditions differ from the Service's current ones (patch status only then). */
  conditionsChanged: boolean;
  /** Events to emit now (transitions only). */
  events: EventDecision[];
}

type Desired = Omit<V1Condition, "lastTransitionTime" | "observedGeneration">;

export function decideConditions(inputs: ConditionInputs): ConditionDecision {
  const { service, now, ownership } = inputs;
  const previous = service.status?.conditions ?? [];
  if (!ownership.ours) {
    const conditions = removeOurConditions(previous);
    return { conditions, conditionsChanged: conditions.length !== previous.length, events: [] };
  }

  const desired = desiredConditions(inputs);
  // metav1.Time has whole seconds; a transition time with milliseconds would read back different from what we wrote.
  const transition = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const generation = service.metadata?.generation;
  const conditions = removeOurConditions(previous);
  const events: EventDecision[] = [];
  for (const want of desired) {
    const before = previous.find((c) => c.type === want.type);
    conditions.push({
      type: want.type,
      status: want.status,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime: before && before.status === want.status ? before.lastTransitionTime : transition,
      reason: want.reason,
      message: want.message,
    });
    events.push(...transitionEvents(want, before));
  }
  events.push(...ingressEvents(inputs, desired));
  events.push(...sysctlEvents(previous, desired));

  const conditionsChanged = conditions.length !== previous.length || conditions.some((c) => {
    const before = previous.find((p) => p.type === c.type);
    return !before || before.status !== c.status || before.reason !== c.reason || before.message !== c.message
      || before.observedGeneration !== c.observedGeneration;
  });
  return { conditions, conditionsChanged, events: dedupeEvents(events) };
}

/** The conditions list without berth's own (when a Service stops being ours, we leave no trace behind). */
export function removeOurConditions(conditions: readonly V1Condition[]): V1Condition[] {
  return conditions.filter((condition) => !isOurs(condition.type));
}

function isOurs(type: string): boolean {
  return type.startsWith(PREFIX);
}

function desiredConditions(inputs: ConditionInputs): Desired[] {
  const { config } = inputs;
  if (config === undefined) throw new Error("decideConditions: config is required for a Service that is ours");
  if (!config.ok) {
    return [ready("False", CONDITION_REASONS.invalidConfiguration,
      `${describeProblems(config.problems)}. Nothing is applied for this Service until this is fixed; other Services are not affected.`)];
  }
  if (config.value.mode === "vip") {
    return [ready("False", CONDITION_REASONS.vipModeUnavailable,
      `${SERVICE_ANNOTATIONS.mode}: vip is not available in this version of berth; remove the annotation (or set it to hostport) to use hostPort mode.`)];
  }
  // Only Ready, as for an invalid configuration: nothing of this Service's was applied, so there is no port to
  // be in conflict over.
  if (inputs.rulesTooLarge !== undefined) return [ready("False", CONDITION_REASONS.rulesTooLarge, inputs.rulesTooLarge)];
  const status = inputs.status;
  if (status === undefined) throw new Error("decideConditions: status is required for a valid hostPort-mode Service");
  const conflicts = inputs.conflicts?.conflicts ?? [];
  const competing = inputs.conflicts?.competingServices ?? [];

  const portConflict: Desired = conflicts.length > 0
    ? {
      type: CONDITION_TYPES.portConflict,
      status: "True",
      reason: CONDITION_REASONS.portInUse,
      message: `${describeConflicts(conflicts)}. Those nodes cannot serve this Service: free the port there, or change this Service's port.`,
    }
    : {
      type: CONDITION_TYPES.portConflict,
      status: "False",
      reason: CONDITION_REASONS.noConflict,
      message: competing.length > 0
        ? `No node has a port conflict now, but ${competing.map((c) => `${c.service} (${c.ports.join(", ")})`).join(", ")} ask for the same ports and will take them first on any node where their pod starts first.`
        : "No port this Service needs is held by anything else.",
    };

  const local = inputs.service.spec?.externalTrafficPolicy === "Local";
  const expectedOut = (n: NodeDecision): boolean => n.ineligible === true ||
    n.reason === "no lb-pod of this Service on the node" || (local && n.reason.startsWith("no ready endpoint"));
  const conflictNodes = new Set(conflicts.map((c) => c.node));
  const trouble = status.perNode.filter((n) => !n.included && (!expectedOut(n) || conflictNodes.has(n.node)));
  const describeNodes = (list: typeof status.perNode): string => list.map((n) => `${n.node} (${conflictNodes.has(n.node) ? "port conflict" : n.reason})`).join(", ");
  const rejection = describeSysctlRejection(status.perNode);
  // The rejection first: it carries the fix, and a long node list must not push it past the truncation.
  const partialMessage = (addresses: string, others: NodeDecision[]): string => rejection === undefined
    ? `Serving on ${addresses}; not on ${describeNodes(others)}.`
    : `Serving on ${addresses}. ${rejection}${others.length > 0 ? ` Not serving on ${describeNodes(others)} either.` : ""}`;

  let readiness: Desired;
  if (status.ingress.length > 0) {
    const addresses = status.ingress.map((i) => i.ip).join(", ");
    readiness = trouble.length === 0
      ? ready("True", CONDITION_REASONS.serving, `Serving on ${addresses}.`)
      : ready("True", CONDITION_REASONS.partiallyServing, partialMessage(addresses, trouble.filter((n) => n.sysctlForbidden === undefined)));
  } else {
    const nodes = inputs.nodes ?? [];
    const ineligible = nodes
      .map((node) => ({ node: node.metadata?.name ?? "", eligibility: nodeEligibility(node, config.value, nodes) }))
      .filter((n) => !n.eligibility.eligible);
    if (nodes.length === 0 || ineligible.length === nodes.length) {
      const why = ineligible.map((n) => `${n.node} (${n.eligibility.eligible ? "" : n.eligibility.reason})`).join(", ");
      readiness = ready("False", CONDITION_REASONS.noEligibleNodes,
        nodes.length === 0 ? "There are no nodes." : `No node may serve this Service: ${why}. Check the node labels and this Service's pool.`);
    } else if (rejection !== undefined) {
      readiness = ready("False", CONDITION_REASONS.sysctlForbidden, rejection);
    } else if (stillRejected(inputs.service, status.perNode)) {
      // The DaemonSet controller deletes a rejected pod and makes another, which waits a moment before the kubelet
      // rejects it again: in between, nothing has changed for the user, so the condition (and its Event) stays.
      const before = inputs.service.status?.conditions?.find((c) => c.type === CONDITION_TYPES.ready);
      readiness = ready("False", CONDITION_REASONS.sysctlForbidden, before?.message ?? "");
    } else if (conflicts.length > 0 && trouble.every((n) => conflictNodes.has(n.node))) {
      readiness = ready("False", CONDITION_REASONS.portConflict,
        `Every node that would serve this Service has a port conflict (see condition ${CONDITION_TYPES.portConflict}).`);
    } else if (local && status.perNode.some((n) => n.reason.startsWith("no ready endpoint"))
      && status.perNode.every((n) => n.included || expectedOut(n) || n.reason.startsWith("no ready endpoint"))) {
      readiness = ready("False", CONDITION_REASONS.noReadyEndpoints,
        "externalTrafficPolicy is Local and no node with a Ready lb-pod has a ready endpoint of this Service.");
    } else {
      readiness = ready("False", CONDITION_REASONS.waitingForPods,
        trouble.length > 0 ? `Waiting for lb-pods to become Ready: ${describeNodes(trouble)}.` : "Waiting for lb-pods to be created and become Ready.");
    }
  }
  return [readiness, portConflict].map((c) => ({ ...c, message: truncate(c.message) }));
}

/**
 * How each kind of kubelet is told to admit a pod asking for an unsafe sysctl (pkg/kubelet/sysctl: allowed only
 * when listed in --allowed-unsafe-sysctls / the KubeletConfiguration's allowedUnsafeSysctls).
 */
const KUBELET_ALLOW_SYSCTLS = {
  flag: "--allowed-unsafe-sysctls",
  config: "allowedUnsafeSysctls",
  k3sArg: "--kubelet-arg=allowed-unsafe-sysctls",
} as const;

/**
 * How to make the kubelet admit a pod that asks for these sysctls, for each kind of node: the flag, the kubeadm
 * KubeletConfiguration field and the k3s kubelet-arg (docs/install-kubeadm.md, docs/install-k3s.md).
 */
export function allowSysctlsAdvice(sysctls: readonly string[]): string {
  const list = sysctls.join(",");
  return `${KUBELET_ALLOW_SYSCTLS.flag}=${list} (kubeadm: ${KUBELET_ALLOW_SYSCTLS.config} in the KubeletConfiguration; ` +
    `k3s: ${KUBELET_ALLOW_SYSCTLS.k3sArg}=${list})`;
}

/** The sysctl a kubelet's rejection message names (`forbidden sysctl: "net.ipv6.conf.all.forwarding" not allowlisted`). */
export function forbiddenSysctlName(message: string): string | undefined {
  return /forbidden sysctl: "([^"]+)"/.exec(message)?.[1];
}

/**
 * One sentence for every node whose kubelet rejects this Service's lb-pods (SysctlForbidden): which nodes, which
 * sysctl, and the kubelet flag that allows it; undefined when none does. One sentence for all nodes and pods, so
 * the Service gets one condition message and one Event, however many pods the DaemonSet controller re-creates.
 */
export function describeSysctlRejection(perNode: readonly NodeDecision[]): string | undefined {
  const rejected = perNode.filter((n) => n.sysctlForbidden !== undefined);
  if (rejected.length === 0) return undefined;
  const sysctls = [...new Set(rejected.map((n) => forbiddenSysctlName(n.sysctlForbidden ?? "") ?? FORWARDING_SYSCTLS.ipv6))].sort();
  const nodes = rejected.map((n) => n.node);
  // A few names and a count: the sentence must keep the fix within MAX_MESSAGE on a cluster of any size.
  const named = nodes.length <= MAX_NAMED_NODES ? nodes.join(", ")
    : `${nodes.slice(0, MAX_NAMED_NODES).join(", ")} and ${nodes.length - MAX_NAMED_NODES} more`;
  return `The kubelet on ${nodes.length === 1 ? "node" : "nodes"} ${named} ${REJECTS} ` +
    `(SysctlForbidden: ${sysctls.map((name) => `"${name}"`).join(", ")} not allowed). IPv6 forwarding in a pod needs ` +
    `${FORWARDING_SYSCTLS.ipv6}, which a kubelet admits only when told to: start those kubelets with ` +
    `${allowSysctlsAdvice(sysctls)}, or make this Service IPv4-only. IPv4 Services need no kubelet flag.`;
}

const MAX_NAMED_NODES = 5;

/** The words every rejection sentence has: how a Ready message that reports one is recognised. */
const REJECTS = "rejects this Service's lb-pods";

function reportsRejection(condition: Pick<V1Condition, "message"> | undefined): boolean {
  return condition?.message?.includes(REJECTS) ?? false;
}

/**
 * One Warning when the kubelets start rejecting this Service's lb-pods, with the fix; none while they go on doing
 * so (the node list growing as more kubelets reject, a rejected pod replaced, Ready switching between False and
 * PartiallyServing), so a DaemonSet controller re-creating pods every few seconds adds no Events.
 */
function sysctlEvents(previous: readonly V1Condition[], desired: readonly Desired[]): EventDecision[] {
  const now = desired.find((c) => c.type === CONDITION_TYPES.ready);
  if (!reportsRejection(now) || reportsRejection(previous.find((c) => c.type === CONDITION_TYPES.ready))) return [];
  return [{ type: "Warning", reason: EVENT_REASONS.sysctlForbidden, message: truncate(now?.message ?? "") }];
}

/**
 * Whether the Service's Ready condition says SysctlForbidden and nothing has happened since that would change it:
 * no node serves and no node's lb-pod has got past admission (the replacement of a rejected pod is still waiting,
 * or not created yet).
 */
function stillRejected(service: V1Service, perNode: readonly NodeDecision[]): boolean {
  const before = service.status?.conditions?.find((c) => c.type === CONDITION_TYPES.ready);
  if (before?.status !== "False" || before.reason !== CONDITION_REASONS.sysctlForbidden) return false;
  const candidates = perNode.filter((n) => n.ineligible !== true);
  return candidates.length > 0 && candidates.every((n) => !n.included && n.notStarted === true);
}

function ready(status: "True" | "False", reason: string, message: string): Desired {
  return { type: CONDITION_TYPES.ready, status, reason, message: truncate(message) };
}

/** Ready=False reasons that deserve a Warning Event when entered, and the Event reason to use. */
const WARNING_ON_ENTRY: Record<string, string> = {
  [CONDITION_REASONS.invalidConfiguration]: EVENT_REASONS.invalidConfiguration,
  [CONDITION_REASONS.vipModeUnavailable]: EVENT_REASONS.vipModeUnavailable,
  [CONDITION_REASONS.noEligibleNodes]: EVENT_REASONS.unavailableLoadBalancer,
  [CONDITION_REASONS.noReadyEndpoints]: EVENT_REASONS.unavailableLoadBalancer,
  [CONDITION_REASONS.rulesTooLarge]: EVENT_REASONS.rulesTooLarge,
};

/** Reasons whose message changes without a new problem (RulesTooLarge gives the size): warned about on entry only. */
const WARN_ON_ENTRY_ONLY = new Set<string>([CONDITION_REASONS.rulesTooLarge]);

function transitionEvents(want: Desired, before: V1Condition | undefined): EventDecision[] {
  const same = before !== undefined && before.status === want.status && before.reason === want.reason;
  const sameMessage = same && before.message === want.message;
  if (want.type === CONDITION_TYPES.ready) {
    const events: EventDecision[] = [];
    const warning = want.status === "False" ? WARNING_ON_ENTRY[want.reason] : undefined;
    // A different message under the same reason is a different problem (another field is wrong): say so again.
    if (warning !== undefined && !(WARN_ON_ENTRY_ONLY.has(want.reason) ? same : sameMessage)) events.push({ type: "Warning", reason: warning, message: truncate(want.message) });
    if (before?.reason === CONDITION_REASONS.invalidConfiguration && want.reason !== CONDITION_REASONS.invalidConfiguration) {
      events.push({ type: "Normal", reason: EVENT_REASONS.configurationAccepted, message: "The Service's configuration is valid again; applying it." });
    }
    return events;
  }
  if (want.type === CONDITION_TYPES.portConflict) {
    if (want.status === "True" && !sameMessage) return [{ type: "Warning", reason: EVENT_REASONS.portConflict, message: truncate(want.message) }];
    if (want.status === "False" && before?.status === "True") {
      return [{ type: "Normal", reason: EVENT_REASONS.portConflictResolved, message: "No port this Service needs is held by anything else any more." }];
    }
  }
  return [];
}

/** k3s servicelb's status Events (patchStatus): UpdatedLoadBalancer with old -> new, UnavailableLoadBalancer when empty. */
function ingressEvents(inputs: ConditionInputs, desired: Desired[]): EventDecision[] {
  const status = inputs.status;
  if (status === undefined) return [];
  const before = inputs.service.status?.loadBalancer?.ingress ?? [];
  if (statusEquals(before, status.ingress)) return [];
  if (status.ingress.length > 0) {
    return [{
      type: "Normal",
      reason: EVENT_REASONS.updatedLoadBalancer,
      message: truncate(`Updated LoadBalancer with new IPs: [${ingressText(before)}] -> [${ingressText(status.ingress)}]`),
    }];
  }
  const why = desired.find((c) => c.type === CONDITION_TYPES.ready)?.message ?? "";
  return [{ type: "Warning", reason: EVENT_REASONS.unavailableLoadBalancer, message: truncate(`There are no available nodes for LoadBalancer: ${why}`) }];
}

function ingressText(ingress: readonly V1LoadBalancerIngress[]): string {
  return ingress.map((i) => i.ip ?? i.hostname ?? "").join(" ");
}

/** One Event per reason per decision (the Ready transition and the ingress change may both say "unavailable"). */
function dedupeEvents(events: EventDecision[]): EventDecision[] {
  const seen = new Set<string>();
  return events.filter((event) => {
    if (seen.has(event.reason)) return false;
    seen.add(event.reason);
    return true;
  });
}

export function truncate(message: string, max = MAX_MESSAGE): string {
  return message.length <= max ? message : `${message.slice(0, max - 14)}… (truncated)`;
}

/** Event after writing the DaemonSet (k3s: AppliedDaemonSet). Emit only when a write happened. */
export function appliedDaemonSetEvent(daemonSet: V1DaemonSet): EventDecision {
  return {
    type: "Normal",
    reason: EVENT_REASONS.appliedDaemonSet,
    message: `Applied LoadBalancer DaemonSet ${daemonSet.metadata?.namespace ?? ""}/${daemonSet.metadata?.name ?? ""}`,
  };
}

/** Event after deleting the DaemonSet (k3s: DeletedDaemonSet). */
export function deletedDaemonSetEvent(namespace: string, name: string): EventDecision {
  return { type: "Normal", reason: EVENT_REASONS.deletedDaemonSet, message: `Deleted LoadBalancer DaemonSet ${namespace}/${name}` };
}

/** Event after clearing the status berth wrote (the Service stopped being ours). */
export function clearedLoadBalancerEvent(why: string): EventDecision {
  return { type: "Normal", reason: EVENT_REASONS.clearedLoadBalancer, message: truncate(`Removed berth's load balancer: ${why}`) };
}
