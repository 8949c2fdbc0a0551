// What the Service's status.conditions should say, and which Events to emit, from the other pure decisions'
// results. Events are emitted only on transitions (a pure comparison with the conditions and ingress already on the
// Service), so a resync every few minutes never repeats them; conditions follow meta.SetStatusCondition: the
// transition time changes only when the status does.
import type { V1LoadBalancerIngress } from "@kubernetes/client-node";

import { CONDITION_REASONS, CONDITION_TYPES, EVENT_REASONS, PREFIX, SERVICE_ANNOTATIONS } from "../lib/names.js";
import type { ConflictReport } from "./conflicts.js";
import { describeConflicts } from "./conflicts.js";
import { nodeEligibility } from "./daemonset.js";
import { describeProblems } from "./service-config.js";
import { statusEquals, type ComputedStatus } from "./status.js";
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
  const expectedOut = (reason: string): boolean =>
    reason === "no lb-pod of this Service on the node" || (local && reason.startsWith("no ready endpoint"));
  const conflictNodes = new Set(conflicts.map((c) => c.node));
  const trouble = status.perNode.filter((n) => !n.included && (!expectedOut(n.reason) || conflictNodes.has(n.node)));
  const describeNodes = (list: typeof status.perNode): string => list.map((n) => `${n.node} (${conflictNodes.has(n.node) ? "port conflict" : n.reason})`).join(", ");

  let readiness: Desired;
  if (status.ingress.length > 0) {
    const addresses = status.ingress.map((i) => i.ip).join(", ");
    readiness = trouble.length === 0
      ? ready("True", CONDITION_REASONS.serving, `Serving on ${addresses}.`)
      : ready("True", CONDITION_REASONS.partiallyServing, `Serving on ${addresses}; not on ${describeNodes(trouble)}.`);
  } else {
    const nodes = inputs.nodes ?? [];
    const ineligible = nodes
      .map((node) => ({ node: node.metadata?.name ?? "", eligibility: nodeEligibility(node, config.value, nodes) }))
      .filter((n) => !n.eligibility.eligible);
    if (nodes.length === 0 || ineligible.length === nodes.length) {
      const why = ineligible.map((n) => `${n.node} (${n.eligibility.eligible ? "" : n.eligibility.reason})`).join(", ");
      readiness = ready("False", CONDITION_REASONS.noEligibleNodes,
        nodes.length === 0 ? "There are no nodes." : `No node may serve this Service: ${why}. Check the node labels and this Service's pool.`);
    } else if (conflicts.length > 0 && trouble.every((n) => conflictNodes.has(n.node))) {
      readiness = ready("False", CONDITION_REASONS.portConflict,
        `Every node that would serve this Service has a port conflict (see condition ${CONDITION_TYPES.portConflict}).`);
    } else if (local && status.perNode.some((n) => n.reason.startsWith("no ready endpoint"))
      && status.perNode.every((n) => n.included || expectedOut(n.reason) || n.reason.startsWith("no ready endpoint"))) {
      readiness = ready("False", CONDITION_REASONS.noReadyEndpoints,
        "externalTrafficPolicy is Local and no node with a Ready lb-pod has a ready endpoint of this Service.");
    } else {
      readiness = ready("False", CONDITION_REASONS.waitingForPods,
        trouble.length > 0 ? `Waiting for lb-pods to become Ready: ${describeNodes(trouble)}.` : "Waiting for lb-pods to be created and become Ready.");
    }
  }
  return [readiness, portConflict].map((c) => ({ ...c, message: truncate(c.message) }));
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
};

function transitionEvents(want: Desired, before: V1Condition | undefined): EventDecision[] {
  const same = before !== undefined && before.status === want.status && before.reason === want.reason;
  const sameMessage = same && before.message === want.message;
  if (want.type === CONDITION_TYPES.ready) {
    const events: EventDecision[] = [];
    const warning = want.status === "False" ? WARNING_ON_ENTRY[want.reason] : undefined;
    // A different message under the same reason is a different problem (another field is wrong): say so again.
    if (warning !== undefined && !sameMessage) events.push({ type: "Warning", reason: warning, message: truncate(want.message) });
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
