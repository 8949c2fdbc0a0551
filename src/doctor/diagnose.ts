// `berth doctor`'s judgement: a pure function from a snapshot of the cluster (the Service, its DaemonSet and lb-pods,
// nodes, EndpointSlices, Events, the controller's Lease and Deployment) to findings, each with a reason code, the
// plain-words why and what to do. It reuses the controller's own decisions (ownership, parseServiceConfig,
// nodeEligibility, findPortConflicts) so the doctor and the controller can never disagree about what berth does;
// what the controller cannot see (kubelet rejections, image pulls, crash loops, readiness probes, taints, backends
// behind the Service) comes from the pods' status and their Events, as `kubectl describe` shows them.
import { allowSysctlsAdvice, forbiddenSysctlName } from "../controller/conditions.js";
import { findPortConflicts, type PortConflict } from "../controller/conflicts.js";
import { configMapDataBytes, DEFAULT_TOLERATIONS, FORWARDING_SYSCTLS, lbPodRulesBundle, nodeEligibility, rulesTooLargeMessage } from "../controller/daemonset.js";
import { describeProblems, ownership, parseServiceConfig } from "../controller/service-config.js";
import { isPodReady, podTargetNode } from "../controller/status.js";
import type { ServiceLbConfig, V1Condition, V1Node, V1Pod, V1Toleration } from "../controller/types.js";
import { CONDITION_TYPES, DEFAULT_PRIORITY_CLASS, FINALIZER, LABELS, NODE_LABELS, PREFIX, SERVICE_ANNOTATIONS } from "../lib/names.js";
import { vipFindings } from "./vip.js";
import { REASONS, type CoreV1Event, type Diagnosis, type DoctorSnapshot, type Finding, type ReasonCode, type Severity } from "./types.js";

/** Name of the controller's Lease and Deployment (deploy/, `berth controller --lease-name` default). */
export const CONTROLLER_NAME = "berth-controller";

/** The controller handles a new Service within a second or two; after this long, "not yet" becomes "not at all". */
const SETTLE_MS = 30_000;

/** Tolerations the DaemonSet controller adds to every daemon pod (pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations). */
const DAEMON_POD_TOLERATIONS: readonly V1Toleration[] = [
  { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute" },
  { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute" },
  { key: "node.kubernetes.io/disk-pressure", operator: "Exists", effect: "NoSchedule" },
  { key: "node.kubernetes.io/memory-pressure", operator: "Exists", effect: "NoSchedule" },
  { key: "node.kubernetes.io/pid-pressure", operator: "Exists", effect: "NoSchedule" },
  { key: "node.kubernetes.io/unschedulable", operator: "Exists", effect: "NoSchedule" },
];

/** Container waiting reasons that mean the image cannot be had (kubelet images/types.go). */
const IMAGE_PULL_REASONS = new Set(["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"]);
/** Container waiting reasons of a container that starts and dies, or cannot be started (kubelet container/sync_result.go). */
const CRASH_REASONS = new Set(["CrashLoopBackOff", "RunContainerError", "CreateContainerError", "StartError"]);
/** The scheduler's NodePorts filter message (pkg/scheduler/framework/plugins/nodeports ErrReason). */
const PORTS_TAKEN = "didn't have free ports for the requested pod ports";
/** The kubelet's pod status reason for a pod that asks for sysctls it does not allow (pkg/kubelet/sysctl). */
const SYSCTL_FORBIDDEN = "SysctlForbidden";
/** kubectl shows events for an hour by default; older ones say little about now. */
const RECENT_EVENT_MS = 60 * 60_000;

export interface DiagnoseOptions {
  /**
   * How long a running controller may leave a new Service untouched before the doctor concludes it ignores
   * Services without a class (default 30 s; it normally adds its finalizer within a second).
   */
  settleMs?: number;
}

export function diagnose(snapshot: DoctorSnapshot, options: DiagnoseOptions = {}): Diagnosis {
  const settleMs = options.settleMs ?? SETTLE_MS;
  const key = `${snapshot.namespace}/${snapshot.name}`;
  const findings: Finding[] = [];
  const service = snapshot.service;
  const externalIps = (service?.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? i.hostname ?? "").filter((ip) => ip !== "");
  const done = (): Diagnosis => conclude(key, externalIps, findings);

  if (service === null) {
    findings.push(finding(REASONS.serviceNotFound, "error", `there is no Service ${snapshot.name} in namespace ${snapshot.namespace}`,
      "berth doctor looks a Service up by name in one namespace (-n, default \"default\").",
      `Check the name and namespace: kubectl get svc -A | grep ${snapshot.name}`));
    return done();
  }

  const controller = controllerState(snapshot);
  const conditions = service.status?.conditions ?? [];
  const readyCondition = conditions.find((c) => c.type === CONDITION_TYPES.ready);
  const conflictCondition = conditions.find((c) => c.type === CONDITION_TYPES.portConflict);
  const conditionText = (c: V1Condition | undefined): string[] => (c ? [`condition ${c.type}=${c.status} (${c.reason}): ${c.message}`] : []);
  const serviceEvents = eventsAbout(snapshot, "Service", [service.metadata?.name ?? ""]);
  const warningEvents = (reasons: string[]): string[] => serviceEvents
    .filter((e) => reasons.includes(e.reason ?? ""))
    .slice(-2)
    .map(eventText);

  // ---- Is it ours? (the controller's own rule, with --ignore-unset-class read from the Deployment if visible) ----
  const ignoreUnset = controller.ignoresUnsetClass;
  const owned = ownership(service, { claimUnsetClass: ignoreUnset !== true });
  if (!owned.ours) {
    if (owned.code === "NotLoadBalancer") {
      findings.push(finding(REASONS.notLoadBalancer, "error", `the Service is type ${service.spec?.type ?? "ClusterIP"}, not LoadBalancer`,
        "berth (like any load balancer implementation) only gives addresses to Services of type LoadBalancer.",
        `Make it one: kubectl patch svc ${snapshot.name} -n ${snapshot.namespace} -p '{"spec":{"type":"LoadBalancer"}}'`));
    } else if (owned.code === "OtherClass") {
      findings.push(finding(REASONS.otherClass, "error",
        `spec.loadBalancerClass is ${service.spec?.loadBalancerClass}, so another load balancer implementation owns this Service, not berth`,
        `Only the implementation named by spec.loadBalancerClass may handle a Service (KEP-1959); berth's class is berth.dev/lb. berth never writes the status of another class, so if nothing in the cluster implements ${service.spec?.loadBalancerClass}, EXTERNAL-IP stays <pending>.`,
        "spec.loadBalancerClass cannot be changed on an existing Service: delete and re-create it with loadBalancerClass: berth.dev/lb (or without the field, if berth claims unset classes)."));
    } else {
      findings.push(unsetClassIgnored(snapshot, controller.evidence, "the controller runs with --ignore-unset-class"));
    }
    return done();
  }
  // The controller claims unset classes by default; when its flags are not visible, a Service it has never touched
  // after SETTLE_MS while it runs is the sign that it does not (it adds its finalizer within seconds).
  const touched = (service.metadata?.finalizers ?? []).includes(FINALIZER) || conditions.some((c) => c.type.startsWith(PREFIX))
    || snapshot.daemonSets.length > 0;
  const age = snapshot.now.getTime() - time(service.metadata?.creationTimestamp);
  const classUnset = !service.spec?.loadBalancerClass;
  if (classUnset && ignoreUnset === undefined && !touched && controller.running === true && age >= settleMs && !service.metadata?.deletionTimestamp) {
    findings.push(unsetClassIgnored(snapshot, controller.evidence,
      `the controller is running (${controller.summary}) but has not touched this Service in ${Math.round(age / 1000)} s`));
    return done();
  }

  // ---- Being deleted ----
  if (service.metadata?.deletionTimestamp) {
    const finalizers = service.metadata.finalizers ?? [];
    const others = finalizers.filter((f) => f !== FINALIZER);
    const ours = finalizers.includes(FINALIZER);
    findings.push(finding(REASONS.serviceDeleting, "error", "the Service is being deleted",
      `It was deleted at ${String(service.metadata.deletionTimestamp)} and stays until its finalizers are gone (${finalizers.join(", ") || "none left"}). ` +
      (ours ? `berth removes its finalizer after deleting the Service's DaemonSet; that needs a running controller${controller.running === false ? `, and there is none (${controller.summary})` : ""}.` : "berth's part is done."),
      ours && controller.running === false
        ? `Start the controller (it finishes the cleanup), or, if berth is gone for good, delete the DaemonSet by hand and remove the finalizer: kubectl delete ds -n ${snapshot.controllerNamespace} -l ${LABELS.serviceName}=${snapshot.name},${LABELS.serviceNamespace}=${snapshot.namespace}; kubectl patch svc ${snapshot.name} -n ${snapshot.namespace} --type=json -p '[{"op":"remove","path":"/metadata/finalizers/${finalizers.indexOf(FINALIZER)}"}]'`
        : others.length > 0
          ? `Wait, or see why ${others.join(", ")} is not removed (the controller that owns it).`
          : "Wait a few seconds; re-create the Service once it is gone if you still need it.",
      controller.running === false ? controller.evidence : []));
    return done();
  }

  // ---- Its configuration (parsed exactly as the controller parses it) ----
  const parsed = parseServiceConfig(service, { defaultPriorityClass: DEFAULT_PRIORITY_CLASS });
  if (!parsed.ok) {
    findings.push(finding(REASONS.invalidConfiguration, "error", `the Service's berth settings are invalid: ${describeProblems(parsed.problems)}`,
      "The controller applies nothing for a Service with a bad annotation, label or field (an existing DaemonSet keeps serving the last good settings) and says so in its condition and a Warning Event.",
      "Fix the field(s) named above (kubectl edit svc), then run berth doctor again; docs/reference.md lists every annotation and label.",
      [...conditionText(readyCondition), ...warningEvents(["InvalidConfiguration"])]));
    return done();
  }
  const config = parsed.value;
  if (config.mode === "vip") {
    // VIP mode: no DaemonSet; an address from an AddressPool (src/doctor/vip.ts).
    if (controller.running === false) {
      findings.push(finding(REASONS.controllerNotRunning, externalIps.length === 0 ? "error" : "warning", `the berth controller is not running (${controller.summary})`,
        externalIps.length === 0 ? "Without the controller nobody gives this Service an address." : "The address stays, but nobody updates the Service or the pools.",
        `Install or start it: kubectl apply -f deploy/berth.yaml, then kubectl -n ${snapshot.controllerNamespace} get pods.`, controller.evidence));
    }
    findings.push(...vipFindings({ snapshot, config, externalIps, readyCondition, warningEvents, make: finding }));
    return done();
  }

  // ---- Rules that cannot fit the ConfigMap the lb-pods mount (computed as the controller computes it) ----
  const tooLarge = rulesTooLargeMessage(configMapDataBytes(lbPodRulesBundle(config)), config);
  if (tooLarge !== undefined) {
    findings.push(finding(REASONS.rulesTooLarge, "error", "the Service's lb-pod rules do not fit in one ConfigMap", tooLarge,
      "Split the ports over several Services, or use externalTrafficPolicy: Cluster or a single IP family; docs/troubleshooting.md, \"Too many ports for one Service\".",
      [...conditionText(readyCondition), ...warningEvents(["RulesTooLarge"])]));
    return done();
  }

  // ---- The controller and the DaemonSet ----
  const uid = service.metadata?.uid;
  const daemonSet = snapshot.daemonSets.find((ds) => ds.metadata?.labels?.[LABELS.serviceUid] === uid) ?? snapshot.daemonSets[0];
  const pods = snapshot.pods.filter((p) => p.metadata?.labels?.[LABELS.serviceUid] === undefined || p.metadata.labels[LABELS.serviceUid] === uid);
  const readyPodNodes = new Set(pods.filter((p) => isPodReady(p) && !p.metadata?.deletionTimestamp).map((p) => p.spec?.nodeName ?? ""));
  const stalled = externalIps.length === 0 || daemonSet === undefined || readyPodNodes.size === 0;
  if (controller.running === false) {
    findings.push(finding(REASONS.controllerNotRunning, stalled ? "error" : "warning", `the berth controller is not running (${controller.summary})`,
      stalled
        ? "Without the controller nobody creates this Service's DaemonSet or writes its EXTERNAL-IP."
        : "The lb-pods keep forwarding, but nobody updates the Service when nodes or pods change.",
      `Install or start it: kubectl apply -f deploy/berth.yaml, then kubectl -n ${snapshot.controllerNamespace} get pods; its logs: kubectl -n ${snapshot.controllerNamespace} logs deploy/${CONTROLLER_NAME}. If it runs elsewhere, pass --controller-namespace.`,
      controller.evidence));
  }
  if (daemonSet === undefined && controller.running !== false) {
    findings.push(finding(REASONS.noDaemonSet, "error", `there is no lb-pod DaemonSet for this Service in ${snapshot.controllerNamespace}`,
      controller.running === true
        ? `The controller is running (${controller.summary}) and normally creates the DaemonSet within a second or two.`
        : "The doctor cannot see the controller (no Lease or Deployment it may read), so it cannot tell whether one runs.",
      `Look at the controller's logs: kubectl -n ${snapshot.controllerNamespace} logs deploy/${CONTROLLER_NAME}. If berth runs in another namespace, pass --controller-namespace.`,
      [...controller.evidence, ...conditionText(readyCondition)]));
  }

  // ---- Nodes ----
  const tolerations = daemonSet?.spec?.template?.spec?.tolerations ?? [...DEFAULT_TOLERATIONS, ...config.tolerations];
  const nodes = snapshot.nodes;
  if (nodes !== undefined) {
    const verdicts = nodes.map((n) => ({ node: n.metadata?.name ?? "", why: nodeProblem(n, config, nodes, tolerations) }));
    if (verdicts.every((v) => v.why !== undefined)) {
      findings.push(noEligibleNodes(snapshot, config, verdicts, readyCondition));
      return done();
    }
  }

  // ---- lb-pods ----
  const problems = pods.flatMap((pod) => podProblem(pod, snapshot));
  // Pod trouble is only a warning while some node still serves: an address in the status and a Ready lb-pod (the
  // status may be stale when the controller is gone).
  const severity: Severity = externalIps.length > 0 && (readyPodNodes.size > 0 || daemonSet === undefined) ? "warning" : "error";
  const fromPods = podFindings(snapshot, problems, pods, severity, conflictCondition, serviceEvents);
  findings.push(...fromPods);
  if (daemonSet !== undefined && pods.length === 0 && fromPods.length === 0) {
    const dsEvents = eventsAbout(snapshot, "DaemonSet", [daemonSet.metadata?.name ?? ""]).filter((e) => e.type === "Warning").slice(-3).map(eventText);
    findings.push(finding(REASONS.podsPending, severity, `the DaemonSet ${daemonSet.metadata?.name} has no lb-pods`,
      `Its status wants ${daemonSet.status?.desiredNumberScheduled ?? 0} pod(s); the DaemonSet controller creates them, so none usually means it was refused (quota, admission, Pod Security) or has not run yet.`,
      `kubectl -n ${snapshot.controllerNamespace} describe ds ${daemonSet.metadata?.name} (its Events say why pods are not created). The namespace needs Pod Security level privileged for the lb-pods' NET_ADMIN and sysctls.`,
      dsEvents));
  }

  // ---- What is behind the Service ----
  findings.push(...endpointFindings(snapshot, readyPodNodes, readyCondition));

  // ---- The result the user sees ----
  if (!findings.some((f) => f.severity === "error") && externalIps.length === 0) {
    findings.push(finding(REASONS.statusNotWritten, "error", "the Service has no EXTERNAL-IP yet, although nothing the doctor checks is wrong",
      "The controller writes status.loadBalancer.ingress once an lb-pod is Ready on a node that may serve; right after a change this takes a few seconds.",
      `Run berth doctor again in a few seconds; if it stays, read the controller's logs: kubectl -n ${snapshot.controllerNamespace} logs deploy/${CONTROLLER_NAME}`,
      [...conditionText(readyCondition), ...controller.evidence]));
  }
  if (!findings.some((f) => f.severity === "error")) {
    const servingNodes = [...readyPodNodes].filter((n) => n !== "").sort();
    findings.push(finding(REASONS.serving, "info", `serving on ${externalIps.join(", ")}${servingNodes.length > 0 ? ` (lb-pods Ready on ${nodeList(servingNodes)})` : ""}`,
      "Each listed address is a node whose lb-pod is Ready; traffic to it on the Service's ports is forwarded to the Service.", "",
      conditionText(readyCondition)));
  }
  return done();
}

// ---- the controller ----

interface ControllerState {
  /** true: a fresh Lease holder or an available Deployment; false: neither; undefined: cannot tell. */
  running: boolean | undefined;
  summary: string;
  evidence: string[];
  /** From the Deployment's arguments; undefined when not visible. */
  ignoresUnsetClass: boolean | undefined;
}

function controllerState(snapshot: DoctorSnapshot): ControllerState {
  const where = snapshot.controllerNamespace;
  const evidence: string[] = [];
  let byLease: boolean | undefined;
  let summary = "";
  const lease = snapshot.lease;
  if (lease) {
    const holder = lease.spec?.holderIdentity ?? "";
    const renewed = time(lease.spec?.renewTime ?? lease.spec?.acquireTime);
    const ageS = Math.round((snapshot.now.getTime() - renewed) / 1000);
    const durationS = lease.spec?.leaseDurationSeconds ?? 15;
    // A little slack over the lease duration for clock skew between this machine and the leader's.
    byLease = holder !== "" && ageS <= durationS + 5;
    summary = holder === ""
      ? `nobody holds the Lease ${where}/${CONTROLLER_NAME}`
      : byLease ? `leader ${holder}, Lease renewed ${ageS} s ago` : `the Lease ${where}/${CONTROLLER_NAME} was last renewed ${ageS} s ago by ${holder}, and it expires after ${durationS} s`;
    evidence.push(`Lease ${where}/${CONTROLLER_NAME}: holder ${holder || "(none)"}, renewed ${Number.isFinite(ageS) ? `${ageS} s ago` : "never"}`);
  }
  let byDeployment: boolean | undefined;
  let ignoresUnsetClass: boolean | undefined;
  const deployment = snapshot.deployment;
  if (deployment) {
    const available = deployment.status?.availableReplicas ?? 0;
    byDeployment = available > 0;
    evidence.push(`Deployment ${where}/${CONTROLLER_NAME}: ${available}/${deployment.spec?.replicas ?? 1} available`);
    const container = deployment.spec?.template?.spec?.containers?.[0];
    const args = [...(container?.command ?? []), ...(container?.args ?? [])];
    ignoresUnsetClass = args.includes("--ignore-unset-class");
  }
  let running: boolean | undefined;
  if (byLease === true || (byLease === undefined && byDeployment === true)) running = true;
  else if (byLease === false || byDeployment === false) running = byDeployment === true ? undefined : false;
  else if (lease === null && deployment === null) {
    running = false;
    summary = `no Lease and no Deployment ${CONTROLLER_NAME} in ${where}`;
    evidence.push(`no Lease or Deployment ${CONTROLLER_NAME} in namespace ${where}`);
  }
  if (summary === "") summary = running === true ? `Deployment ${where}/${CONTROLLER_NAME} is available` : "state unknown";
  if (byLease === false && byDeployment === true) summary += "; the Deployment has available replicas (started with --no-leader-elect, or another --lease-name?)";
  return { running, summary, evidence, ignoresUnsetClass };
}

function unsetClassIgnored(snapshot: DoctorSnapshot, evidence: string[], how: string): Finding {
  return finding(REASONS.unsetClassIgnored, "error", `the Service has no loadBalancerClass and ${how}, so berth leaves it alone`,
    "A controller started with --ignore-unset-class only handles Services with spec.loadBalancerClass: berth.dev/lb, so that it can share a cluster with another load balancer that takes the unset ones.",
    `Re-create the Service with spec.loadBalancerClass: berth.dev/lb (the field cannot be changed in place), or drop --ignore-unset-class from the controller (kubectl -n ${snapshot.controllerNamespace} edit deploy/${CONTROLLER_NAME}) if no other load balancer needs the unset ones.`,
    evidence);
}

// ---- nodes ----

/** Why a node cannot serve this Service, or undefined when it can (labels, readiness, taints). */
function nodeProblem(node: V1Node, config: ServiceLbConfig, nodes: readonly V1Node[], tolerations: readonly V1Toleration[]): string | undefined {
  const eligibility = nodeEligibility(node, config, nodes);
  if (!eligibility.eligible) return eligibility.reason;
  if (node.metadata?.deletionTimestamp) return "being deleted";
  const ready = node.status?.conditions?.find((c) => c.type === "Ready");
  if (ready?.status !== "True") return `not Ready (Ready=${ready?.status ?? "Unknown"}${ready?.reason ? `, ${ready.reason}` : ""})`;
  const all = [...tolerations, ...DAEMON_POD_TOLERATIONS];
  const blocking = (node.spec?.taints ?? []).find((taint) => taint.effect !== "PreferNoSchedule" && !all.some((t) => tolerates(t, taint)));
  if (blocking) return `taint ${blocking.key}${blocking.value ? `=${blocking.value}` : ""}:${blocking.effect} is not tolerated by the lb-pods`;
  return undefined;
}

/** core/v1 toleration matching (k8s.io/api core/v1 Toleration.ToleratesTaint). */
function tolerates(t: V1Toleration, taint: { key: string; value?: string; effect: string }): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.operator === "Exists") return !t.key || t.key === taint.key;
  return t.key === taint.key && (t.value ?? "") === (taint.value ?? "");
}

function noEligibleNodes(snapshot: DoctorSnapshot, config: ServiceLbConfig, verdicts: { node: string; why: string | undefined }[], readyCondition: V1Condition | undefined): Finding {
  if (verdicts.length === 0) {
    return finding(REASONS.noEligibleNodes, "error", "the cluster has no nodes", "hostPort mode serves from nodes, and there are none.",
      "Join a node to the cluster (kubectl get nodes).", readyCondition ? [`condition ${readyCondition.type}=${readyCondition.status} (${readyCondition.reason}): ${readyCondition.message}`] : []);
  }
  const whys = verdicts.map((v) => v.why ?? "");
  const fixes: string[] = [];
  const first = verdicts[0]?.node ?? "NODE";
  if (whys.some((w) => w.includes(NODE_LABELS.excludeFromExternalLoadBalancers))) {
    fixes.push(`Nodes labelled ${NODE_LABELS.excludeFromExternalLoadBalancers} never serve: remove the label where they should (kubectl label node ${first} ${NODE_LABELS.excludeFromExternalLoadBalancers}-).`);
  }
  if (whys.some((w) => w.includes(NODE_LABELS.enabled) || w.includes("not true"))) {
    fixes.push(`Once any node carries ${NODE_LABELS.enabled}, only nodes with ${NODE_LABELS.enabled}=true serve: kubectl label node ${first} ${NODE_LABELS.enabled}=true --overwrite (or remove the label from every node).`);
  }
  if (whys.some((w) => w.includes("pool"))) {
    fixes.push(`The Service is pinned to node pool ${config.nodePool ?? ""} by its ${NODE_LABELS.pool} label: label the nodes (kubectl label node ${first} ${NODE_LABELS.pool}=${config.nodePool ?? ""}) or change/remove the Service's label.`);
  }
  if (whys.some((w) => w.startsWith("not Ready") || w === "being deleted")) {
    fixes.push(`Only Ready nodes serve: kubectl describe node ${first} shows why a node is NotReady (kubelet stopped, network, disk/memory pressure).`);
  }
  if (whys.some((w) => w.startsWith("taint"))) {
    fixes.push(`lb-pods tolerate control-plane and CriticalAddonsOnly taints only: remove the taint, or add a toleration to the Service: kubectl annotate svc ${snapshot.name} -n ${snapshot.namespace} ${SERVICE_ANNOTATIONS.tolerations}='[{"key":"KEY","operator":"Exists","effect":"NoSchedule"}]'`);
  }
  return finding(REASONS.noEligibleNodes, "error", `no node may serve this Service: ${verdicts.map((v) => `${v.node} (${v.why})`).join(", ")}`,
    "In hostPort mode the Service's addresses are the nodes that run its lb-pod; a node runs one only if its labels allow it, it is Ready, and the lb-pod tolerates its taints.",
    fixes.join(" "),
    readyCondition ? [`condition ${readyCondition.type}=${readyCondition.status} (${readyCondition.reason}): ${readyCondition.message}`] : []);
}

// ---- lb-pods ----

interface PodProblem {
  code: ReasonCode;
  node: string;
  pod: string;
  detail: string;
}

function podProblem(pod: V1Pod, snapshot: DoctorSnapshot): PodProblem[] {
  if (pod.metadata?.deletionTimestamp) return [];
  const name = pod.metadata?.name ?? "";
  const node = podTargetNode(pod) ?? "?";
  const problem = (code: ReasonCode, detail: string): PodProblem[] => [{ code, node, pod: name, detail }];
  const status = pod.status ?? {};
  if (status.phase === "Failed") {
    if (status.reason === SYSCTL_FORBIDDEN) return problem(REASONS.sysctlForbidden, status.message ?? SYSCTL_FORBIDDEN);
    return problem(REASONS.podsNotReady, `Failed${status.reason ? ` (${status.reason})` : ""}${status.message ? `: ${status.message}` : ""}`);
  }
  if (!pod.spec?.nodeName) {
    const scheduled = status.conditions?.find((c) => c.type === "PodScheduled");
    if (scheduled?.status === "False" && scheduled.message?.includes(PORTS_TAKEN)) return problem(REASONS.portConflict, scheduled.message);
    return problem(REASONS.podsPending, scheduled?.message ? `${scheduled.reason ?? "Pending"}: ${scheduled.message}` : "not scheduled yet");
  }
  if (isPodReady(pod)) return [];
  for (const c of status.containerStatuses ?? []) {
    const waiting = c.state?.waiting;
    if (waiting?.reason && IMAGE_PULL_REASONS.has(waiting.reason)) {
      return problem(REASONS.imagePullError, `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""} (image ${c.image})`);
    }
    const last = c.lastState?.terminated;
    if ((waiting?.reason && CRASH_REASONS.has(waiting.reason)) || (last && (c.restartCount ?? 0) > 0 && !c.state?.running)) {
      const exit = last ? `exit code ${last.exitCode}${last.reason ? ` (${last.reason})` : ""}` : waiting?.message ?? "";
      const message = last?.message?.trim();
      return problem(REASONS.crashLoopBackOff, `${waiting?.reason ?? "restarting"}, restarted ${c.restartCount ?? 0} time(s), last ${exit}${message ? `: ${message}` : ""}`);
    }
    if (waiting?.reason && waiting.reason !== "ContainerCreating" && waiting.reason !== "PodInitializing") {
      return problem(REASONS.podsNotReady, `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`);
    }
  }
  if (status.phase === "Running") {
    const probe = eventsAbout(snapshot, "Pod", [name]).filter((e) => e.reason === "Unhealthy" && /readiness/i.test(e.message ?? "")).at(-1);
    return problem(REASONS.readinessProbeFailing, probe ? (probe.message ?? "").trim() : "running, but its readiness probe (berth-lb-pod-check) has not passed yet");
  }
  return problem(REASONS.podsPending, `${status.phase ?? "Pending"}: containers are being created`);
}

function podFindings(
  snapshot: DoctorSnapshot,
  problems: PodProblem[],
  pods: V1Pod[],
  severity: Severity,
  conflictCondition: V1Condition | undefined,
  serviceEvents: CoreV1Event[],
): Finding[] {
  const findings: Finding[] = [];
  const ns = snapshot.controllerNamespace;
  const of = (code: ReasonCode): PodProblem[] => problems.filter((p) => p.code === code);
  const nodesOf = (list: PodProblem[]): string => nodeList([...new Set(list.map((p) => p.node))].sort());
  const details = (list: PodProblem[]): string[] => [...list].sort((a, b) => a.node.localeCompare(b.node))
    .map((p) => `pod ${ns}/${p.pod} on ${p.node}: ${p.detail}`);

  const sysctl = of(REASONS.sysctlForbidden);
  // The DaemonSet controller deletes a rejected pod and makes a new one (another name), so earlier rejections show
  // only in the Events of pods that are gone: they count for any pod of this Service's DaemonSets.
  const dsNames = snapshot.daemonSets.map((ds) => ds.metadata?.name ?? "").filter((n) => n !== "");
  const lbPodEvents = eventsAbout(snapshot, "Pod", (n) => dsNames.some((ds) => n.startsWith(`${ds}-`)))
    .filter((e) => e.reason === SYSCTL_FORBIDDEN);
  if (sysctl.length > 0 || (lbPodEvents.length > 0 && severity === "error")) {
    // The sysctls the kubelets named (older berth versions also asked for net.ipv4.ip_forward); IPv6's by default.
    const named = [...sysctl.map((p) => p.detail), ...lbPodEvents.map((e) => e.message ?? "")]
      .map(forbiddenSysctlName).filter((name): name is string => name !== undefined);
    const sysctls = named.length > 0 ? [...new Set(named)].sort() : [FORWARDING_SYSCTLS.ipv6];
    const ready = snapshot.service?.status?.conditions?.find((c) => c.type === CONDITION_TYPES.ready && c.reason === SYSCTL_FORBIDDEN);
    findings.push(finding(REASONS.sysctlForbidden, severity,
      `the kubelet${sysctl.length > 0 ? ` on ${nodesOf(sysctl)}` : ""} refuses the lb-pods because they set ${sysctls.join(", ")}, which it does not allow`,
      `A Service with IPv6 needs IPv6 forwarding in its lb-pods, and a new pod network namespace starts with it off, so those lb-pods ask for ${FORWARDING_SYSCTLS.ipv6} in their securityContext (IPv4 Services ask for nothing: a pod namespace copies the node's IPv4 forwarding). Kubernetes counts it as an unsafe sysctl: a kubelet admits such a pod only if it was started with --allowed-unsafe-sysctls naming it (k3s passes it only while its own servicelb is enabled, so not after --disable servicelb; kubeadm and most others never do). It rejects the pod (status Failed, reason SysctlForbidden), the DaemonSet controller replaces it, and the new one is rejected again.`,
      `Allow it on every node's kubelet and restart the kubelet: ${allowSysctlsAdvice(sysctls)}; docs/install-kubeadm.md and docs/install-k3s.md have it step by step. Or make the Service IPv4-only (spec.ipFamilyPolicy: SingleStack, spec.ipFamilies: [IPv4]). Nodes whose pod namespaces already forward IPv6 can instead run the controller with --no-forwarding-sysctls.`,
      [
        ...(ready ? [`condition ${ready.type}=${ready.status} (${ready.reason})`] : []),
        ...(sysctl.length > 0 ? details(sysctl) : lbPodEvents.slice(-2).map(eventText)),
        ...eventsAbout(snapshot, "DaemonSet", dsNames).filter((e) => e.reason === "FailedDaemonPod").slice(-1).map(eventText),
      ]));
  }

  const conflicts = of(REASONS.portConflict);
  if (conflicts.length > 0) {
    const report = findPortConflicts({ service: snapshot.service ?? {}, daemonSetPods: pods, allPods: snapshot.podsOnBlockedNodes, otherServices: [] });
    const byHolder = new Map<string, { ports: Set<string>; nodes: Set<string>; holder: PortConflict["holder"] }>();
    for (const c of report.conflicts) {
      const holder = c.holder.kind === "service" ? `Service ${c.holder.service}` : c.holder.kind === "pod" ? `pod ${c.holder.pod}` : "something berth cannot see";
      const entry = byHolder.get(holder) ?? { ports: new Set<string>(), nodes: new Set<string>(), holder: c.holder };
      entry.ports.add(`${c.protocol.toUpperCase()}/${c.port}`);
      entry.nodes.add(c.node);
      byHolder.set(holder, entry);
    }
    const parts = [...byHolder].map(([holder, e]) => `${[...e.ports].join(", ")} held by ${holder} on ${nodeList([...e.nodes].sort())}`);
    const summary = parts.length > 0 ? `port conflict: ${parts.join("; ")}` : `port conflict: the lb-pods' ports are taken on ${nodesOf(conflicts)}`;
    const services = [...byHolder.values()].filter((e) => e.holder.kind === "service").map((e) => (e.holder as { service: string }).service);
    const evidence = [
      ...(conflictCondition ? [`condition ${conflictCondition.type}=${conflictCondition.status} (${conflictCondition.reason}): ${conflictCondition.message}`] : []),
      ...serviceEvents.filter((e) => e.reason === "PortConflict").slice(-1).map(eventText),
      ...details(conflicts).slice(0, 3),
    ];
    findings.push(finding(REASONS.portConflict, severity, summary,
      "Each lb-pod holds the Service's ports as hostPorts on its node, and a node has each port once: where another pod already holds one, the scheduler leaves this Service's lb-pod Pending (Unschedulable, \"didn't have free ports\") and that node cannot serve.",
      `Free the port on those nodes${services.length > 0 ? ` (change the port of ${services.join(", ")}, or delete it)` : " (move or delete the pod holding it)"}, or give this Service another port (spec.ports[].port). The Pending lb-pods start by themselves once the port is free.` +
        (parts.length === 0 || [...byHolder.values()].some((e) => e.holder.kind === "unknown")
          ? ` To find the holder: kubectl get pods -A -o wide --field-selector spec.nodeName=${conflicts[0]?.node ?? "NODE"} (host-network pods and static pods hold ports too).` : ""),
      evidence));
  }

  const pulls = of(REASONS.imagePullError);
  if (pulls.length > 0) {
    findings.push(finding(REASONS.imagePullError, severity, `the lb-pod image cannot be pulled on ${nodesOf(pulls)}`,
      "The kubelet could not get the lb-pod's image (wrong name or tag, private registry without credentials, no route to the registry, or imagePullPolicy Never with no local copy), so the lb-pod never starts.",
      `Check the image the controller uses (its --lb-image and --image-pull-policy flags): kubectl -n ${ns} describe pod ${pulls[0]?.pod ?? "POD"} shows the pull error. Push or mirror the image where the nodes can reach it.`,
      details(pulls)));
  }

  const crashes = of(REASONS.crashLoopBackOff);
  if (crashes.length > 0) {
    findings.push(finding(REASONS.crashLoopBackOff, severity, `the lb-pod keeps exiting on ${nodesOf(crashes)}`,
      "The lb-pod sets up its forwarding rules when it starts and exits with one line on stderr when it cannot (bad input, a forwarding sysctl that is off, iptables/nft missing or refusing, no NET_ADMIN); the kubelet restarts it with a growing back-off (CrashLoopBackOff).",
      `Read its last words: kubectl -n ${ns} logs ${crashes[0]?.pod ?? "POD"} --previous. net.ipv4.ip_forward "is 0": the node does not forward IPv4 (a pod namespace copies the node's value; set net.ipv4.ip_forward=1 on the node, as every Kubernetes node needs). net.ipv6.conf.all.forwarding "is 0": let the pods set it (drop the controller's --no-forwarding-sysctls). Other lines name the setting or the iptables/nft command that failed.`,
      details(crashes)));
  }

  const probes = of(REASONS.readinessProbeFailing);
  if (probes.length > 0) {
    findings.push(finding(REASONS.readinessProbeFailing, severity, `lb-pods on ${nodesOf(probes)} run but are not Ready`,
      "The lb-pod's readiness probe (berth-lb-pod-check) passes only when its complete rule set is live and forwarding is on; the controller lists a node as an EXTERNAL-IP only while its lb-pod is Ready.",
      `See what the probe says: kubectl -n ${ns} describe pod ${probes[0]?.pod ?? "POD"} (Events: "Readiness probe failed: ..."). Rules removed from outside (a firewall reload, another tool flushing tables) come back when the pod is deleted: kubectl -n ${ns} delete pod ${probes[0]?.pod ?? "POD"}.`,
      details(probes)));
  }

  const pending = of(REASONS.podsPending);
  if (pending.length > 0) {
    findings.push(finding(REASONS.podsPending, severity, `lb-pods on ${nodesOf(pending)} have not started`,
      "A pod stays Pending while it is not scheduled (affinity, resources) or while its containers are being created.",
      `kubectl -n ${ns} describe pod ${pending[0]?.pod ?? "POD"} shows what it waits for.`, details(pending)));
  }

  const others = of(REASONS.podsNotReady);
  if (others.length > 0) {
    findings.push(finding(REASONS.podsNotReady, severity, `lb-pods on ${nodesOf(others)} are not Ready`,
      "The lb-pod is in a state the doctor has no specific advice for.",
      `kubectl -n ${ns} describe pod ${others[0]?.pod ?? "POD"} and kubectl -n ${ns} logs ${others[0]?.pod ?? "POD"}`, details(others)));
  }
  return findings;
}

// ---- endpoints ----

function endpointFindings(snapshot: DoctorSnapshot, readyPodNodes: Set<string>, readyCondition: V1Condition | undefined): Finding[] {
  const slices = snapshot.endpointSlices;
  const service = snapshot.service;
  if (slices === undefined || !service) return [];
  let total = 0;
  let ready = 0;
  const endpointNodes = new Set<string>();
  for (const slice of slices) {
    for (const endpoint of slice.endpoints ?? []) {
      total++;
      // A nil ready means ready (discovery.k8s.io/v1 EndpointConditions).
      if (endpoint.conditions?.ready ?? true) {
        ready++;
        if (endpoint.nodeName) endpointNodes.add(endpoint.nodeName);
      }
    }
  }
  const selector = Object.entries(service.spec?.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
  if (ready === 0) {
    return [finding(REASONS.noEndpoints, "error",
      selector !== "" ? `no ready pod matches the Service's selector ${selector}${total > 0 ? ` (${total} endpoint(s), none ready)` : ""}` : "the Service has no selector and no ready endpoints",
      "The lb-pods forward to the Service, and kube-proxy sends that traffic to the Service's ready endpoints: with none, connections to the EXTERNAL-IP are refused or time out, whatever berth does.",
      selector !== ""
        ? `Check the backends: kubectl get pods -n ${snapshot.namespace} -l ${selector} (do the labels match, are they Ready? kubectl describe pod says why not).`
        : "A Service without a selector needs EndpointSlices made by hand (or by another controller) with kubernetes.io/service-name set to it.",
      [`${slices.length} EndpointSlice(s), ${total} endpoint(s), ${ready} ready`])];
  }
  if (service.spec?.externalTrafficPolicy === "Local" && readyPodNodes.size > 0 && ![...readyPodNodes].some((n) => endpointNodes.has(n))) {
    return [finding(REASONS.noReadyEndpointsOnServingNodes, "error",
      `externalTrafficPolicy is Local and no node with a Ready lb-pod (${nodeList([...readyPodNodes].sort())}) runs a ready endpoint (they run on ${nodeList([...endpointNodes].sort()) || "no known node"})`,
      "With Local, a node forwards only to backend pods on itself (that is how the client address is kept), so berth lists only the nodes that have both a Ready lb-pod and a ready endpoint.",
      `Run the backends on the serving nodes (more replicas, or node affinity/topology spread), or let more nodes serve (node labels), or set externalTrafficPolicy: Cluster if the client address does not matter: kubectl patch svc ${snapshot.name} -n ${snapshot.namespace} -p '{"spec":{"externalTrafficPolicy":"Cluster"}}'`,
      readyCondition ? [`condition ${readyCondition.type}=${readyCondition.status} (${readyCondition.reason}): ${readyCondition.message}`] : [])];
  }
  return [];
}

// ---- helpers ----

function finding(code: ReasonCode, severity: Severity, summary: string, why: string, fix: string, evidence: string[] = []): Finding {
  // The controller puts the same text in its condition and its Event: show it once, as the condition.
  const said = new Set(evidence.filter((e) => e.startsWith("condition ")).map((e) => e.slice(e.indexOf("): ") + 3)));
  const kept = evidence.filter((e) => !(e.startsWith("Event ") && said.has(e.slice(e.indexOf(": ") + 2))));
  return { code, severity, summary, why, fix, evidence: kept };
}

const SEVERITY_ORDER: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

function conclude(service: string, externalIps: string[], findings: Finding[]): Diagnosis {
  const sorted = findings.map((f, i) => ({ f, i })).sort((a, b) => SEVERITY_ORDER[a.f.severity] - SEVERITY_ORDER[b.f.severity] || a.i - b.i).map((x) => x.f);
  const main = sorted.find((f) => f.severity === "error");
  const warnings = sorted.filter((f) => f.severity === "warning").length;
  const headline = main
    ? `${service} is not working: ${main.summary}`
    : `${service} is healthy: EXTERNAL-IP ${externalIps.join(", ")}${warnings > 0 ? ` (${warnings} warning${warnings > 1 ? "s" : ""})` : ""}`;
  return { service, healthy: main === undefined, headline, externalIps, findings: sorted };
}

/** Recent Events about objects of `kind` whose name is in `names` (or passes the test), oldest first. */
function eventsAbout(snapshot: DoctorSnapshot, kind: string, names: string[] | ((name: string) => boolean)): CoreV1Event[] {
  const horizon = snapshot.now.getTime() - RECENT_EVENT_MS;
  const match = typeof names === "function" ? names : (name: string) => names.includes(name);
  return snapshot.events
    .filter((e) => e.involvedObject?.kind === kind && match(e.involvedObject.name ?? ""))
    .filter((e) => eventTime(e) >= horizon || !Number.isFinite(eventTime(e)))
    .sort((a, b) => eventTime(a) - eventTime(b));
}

function eventTime(e: CoreV1Event): number {
  return time(e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp);
}

function eventText(e: CoreV1Event): string {
  const count = (e.count ?? 1) > 1 ? ` (x${e.count})` : "";
  return `Event ${e.type ?? "Normal"} ${e.reason ?? ""} on ${e.involvedObject?.kind ?? ""} ${e.involvedObject?.name ?? ""}${count}: ${(e.message ?? "").trim()}`;
}

/** Milliseconds since the epoch of a wire timestamp (a string on the wire, a Date in client-node's types). */
function time(value: Date | string | undefined | null): number {
  if (value === undefined || value === null) return Number.NaN;
  return new Date(value).getTime();
}

/** "n1", "nodes n1 and n2", "nodes n1, n2 and n3". */
export function nodeList(names: string[]): string {
  if (names.length === 0) return "";
  if (names.length === 1) return `node ${names[0]}`;
  return `nodes ${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}
