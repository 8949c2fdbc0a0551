// docs/reference.md, generated from the code so it cannot drift: every name src/lib/names.ts exports, every flag of
// every `berth` subcommand (walked from the commander tree buildProgram() builds, so new subcommands appear on their
// own), every metric the controller's prom-client registry holds, the lb-pod's environment, and an lb-pod DaemonSet
// as buildDaemonSet() writes it. renderReference() is pure; referenceInputs() gathers its inputs from the real code.
// Prose lives here, keyed by the constant's path (`SERVICE_ANNOTATIONS.mode`): a new export of names.ts without an
// entry is listed by undescribedNames(), and test/unit/docs/reference.test.ts fails until it gets one.
import type { Argument, Command, Help, Option } from "commander";
import { dump } from "js-yaml";

import { buildProgram } from "../cli.js";
import { defaultControllerConfig } from "../controller/types.js";
import { buildDaemonSet, FORWARDING_SYSCTLS } from "../controller/daemonset.js";
import { parseServiceConfig } from "../controller/service-config.js";
import type { V1Node, V1Service } from "../controller/types.js";
import { LB_POD_ENV } from "../lb-pod/config.js";
import { ControllerMetrics } from "../lib/kube/metrics.js";
import * as names from "../lib/names.js";

/** The command that writes docs/reference.md; the test's failure message names it. */
export const REGENERATE_COMMAND = "npm run docs:reference";

export interface MetricInfo {
  name: string;
  type: string;
  help: string;
  labels: string[];
}

/** A variable read by a container entrypoint script, and the script that reads it (the test checks it does). */
export interface ScriptVariable {
  name: string;
  script: string;
  meaning: string;
}

export interface ReferenceInputs {
  /** The module namespace of src/lib/names.ts (or a stand-in in tests). */
  names: Readonly<Record<string, unknown>>;
  program: Command;
  metrics: readonly MetricInfo[];
  lbPodEnv: Readonly<Record<string, string>>;
  scriptVariables: readonly ScriptVariable[];
  forwardingSysctls: Readonly<Record<string, string>>;
  exampleDaemonSet: unknown;
}

type Section =
  | "serviceFields"
  | "serviceAnnotations"
  | "serviceLabels"
  | "nodeLabels"
  | "objects"
  | "conditionTypes"
  | "conditionReasons"
  | "eventReasons"
  | "identifiers";

interface NameDoc {
  sections: Section[];
  text: string;
  /** Condition reasons: the condition and status they go with. */
  condition?: string;
  /** Event reasons: Normal or Warning. */
  eventType?: "Normal" | "Warning";
}

const ALIAS_RULE = "berth's key and its alias may both be set only to the same value; different values are an InvalidConfiguration naming both keys";

/** Prose for every leaf of names.ts, by path. Keep it true to src/controller (the code is the authority). */
const NAME_DOCS: Record<string, NameDoc> = {
  PREFIX: {
    sections: ["identifiers"],
    text: "Prefix of every label, annotation and condition type berth owns. Conditions with this prefix are removed when a Service stops being berth's.",
  },
  LOAD_BALANCER_CLASS: {
    sections: ["serviceFields"],
    text: "`spec.loadBalancerClass` that names berth. A Service with this class is berth's; a Service with no class is berth's too unless the controller runs with `--ignore-unset-class`; a Service with any other class is never touched (berth never writes its status).",
  },
  FINALIZER: {
    sections: ["serviceFields"],
    text: "Added to every Service berth handles; removed once the Service's DaemonSet is deleted (and, when the Service stops being berth's, its status cleared). A Service stuck in Terminating with this finalizer means no berth controller is running (or none holds the leader Lease).",
  },
  DEFAULT_NAMESPACE: {
    sections: ["objects"],
    text: "Namespace of every per-Service DaemonSet and of the leader-election Lease (`berth controller --namespace`, `--lease-namespace`).",
  },
  DEFAULT_PRIORITY_CLASS: {
    sections: ["objects"],
    text: "priorityClassName of the lb-pods unless the Service asks for another (`berth.dev/priority-class`), as k3s servicelb.",
  },
  "LABELS.serviceName": { sections: ["objects"], text: "On each lb-pod DaemonSet and its pods: the name of the Service served." },
  "LABELS.serviceNamespace": { sections: ["objects"], text: "On each lb-pod DaemonSet and its pods: the namespace of the Service served." },
  "LABELS.serviceUid": {
    sections: ["objects"],
    text: "On each lb-pod DaemonSet and its pods: the Service's UID. A DaemonSet whose UID matches no live Service (the Service was deleted, or re-created under the same name) is an orphan, and the controller deletes it.",
  },
  "LABELS.daemonSet": { sections: ["objects"], text: "Selector label of one DaemonSet's pods; the value is the DaemonSet's name (k3s uses `app: <name>`)." },
  "LABELS.managedBy": { sections: ["objects"], text: "`app.kubernetes.io/managed-by: berth` on everything the controller creates." },
  "LABELS.component": { sections: ["objects"], text: "`app.kubernetes.io/component: lb-pod` on the lb-pod DaemonSets and pods." },
  "DAEMONSET_ANNOTATIONS.specHash": {
    sections: ["objects"],
    text: "Hash of the DaemonSet as the controller built it. The controller writes the DaemonSet only when this differs from the hash it would write now, so an unchanged Service causes no write and no rollout. A hand edit of the DaemonSet that leaves this annotation alone is not undone until the Service (or the nodes' labels) change: change the Service, not the DaemonSet.",
  },
  MANAGED_BY: { sections: ["objects"], text: "Value of `app.kubernetes.io/managed-by` on what the controller creates." },
  COMPONENT_LB_POD: { sections: ["objects"], text: "Value of `app.kubernetes.io/component` on the lb-pod DaemonSets and pods." },
  "SERVICE_ANNOTATIONS.mode": {
    sections: ["serviceAnnotations"],
    text: "`hostport` (the default) or `vip` (any letter case). `vip` is not available in this version: the Service gets `berth.dev/LoadBalancerReady=False` with reason `VIPModeUnavailable`, no DaemonSet and no address. Any other value is an InvalidConfiguration.",
  },
  "SERVICE_ANNOTATIONS.tolerations": {
    sections: ["serviceAnnotations"],
    text: "JSON list of core/v1 Tolerations added to the lb-pods' own (control-plane taints, `CriticalAddonsOnly`), e.g. `[{\"key\":\"dedicated\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]`. Validated as the API server validates pod tolerations; an unknown field is an error. Alias: `svccontroller.k3s.cattle.io/tolerations`.",
  },
  "SERVICE_ANNOTATIONS.priorityClass": {
    sections: ["serviceAnnotations"],
    text: "priorityClassName of the lb-pods (default `system-node-critical`); an empty value means none (the cluster's default priority). Alias: `svccontroller.k3s.cattle.io/priorityclassname`.",
  },
  "SERVICE_ANNOTATIONS.pool": {
    sections: ["serviceAnnotations"],
    text: "VIP mode: the address pool to allocate from (a DNS subdomain). Read and validated now, used once VIP mode ships. Aliases: `metallb.io/address-pool`, `metallb.universe.tf/address-pool`. Not to be confused with the Service *label* of the same key (hostPort mode's node pool).",
  },
  "SERVICE_ANNOTATIONS.ips": {
    sections: ["serviceAnnotations"],
    text: "VIP mode: requested addresses, at most one per family, comma separated. Aliases: `metallb.io/loadBalancerIPs`, `metallb.universe.tf/loadBalancerIPs`. `spec.loadBalancerIP` is read when none of these is set; setting both is an InvalidConfiguration.",
  },
  "SERVICE_ANNOTATIONS.allowSharedIp": {
    sections: ["serviceAnnotations"],
    text: "VIP mode: sharing key (Services with the same key may share an address). Aliases: `metallb.io/allow-shared-ip`, `metallb.universe.tf/allow-shared-ip`.",
  },
  "MODES.hostPort": { sections: ["identifiers"], text: "Value of `berth.dev/mode`: hostPort mode (the default)." },
  "MODES.vip": { sections: ["identifiers"], text: "Value of `berth.dev/mode`: VIP mode (not available in this version)." },
  "SERVICE_LABELS.pool": {
    sections: ["serviceLabels"],
    text: "Pins the Service's lb-pods to the nodes whose `berth.dev/pool` node label (or `svccontroller.k3s.cattle.io/lbpool`) has the same value. An empty value means no pool. Alias: `svccontroller.k3s.cattle.io/lbpool`. Unlike k3s, honoured whether or not any node carries `berth.dev/enabled`.",
  },
  "NODE_LABELS.enabled": {
    sections: ["nodeLabels"],
    text: "`true`: this node serves. As soon as any node carries this key or `svccontroller.k3s.cattle.io/enablelb` (whatever the value), only nodes whose value is `true` serve. On a node with both keys, berth's wins.",
  },
  "NODE_LABELS.pool": {
    sections: ["nodeLabels"],
    text: "Node group. A Service labelled `berth.dev/pool=<same value>` runs only on these nodes. Alias: `svccontroller.k3s.cattle.io/lbpool`; on a node with both keys, berth's wins.",
  },
  "NODE_LABELS.excludeFromExternalLoadBalancers": {
    sections: ["nodeLabels"],
    text: "Upstream well-known label: with any value, the node never serves (presence counts, not the value, as in the upstream service controller).",
  },
  "NODE_LABELS.controlPlane": {
    sections: ["nodeLabels"],
    text: "Taint key every lb-pod tolerates (`Exists`, `NoSchedule`), so control-plane nodes serve too (small clusters often serve from them).",
  },
  "NODE_LABELS.master": { sections: ["nodeLabels"], text: "Older spelling of the control-plane taint key, tolerated as well." },
  SOURCE_RANGES_ANNOTATION: {
    sections: ["serviceAnnotations"],
    text: "Comma-separated CIDRs allowed to connect, read only when `spec.loadBalancerSourceRanges` is empty (as kube-proxy reads it). Unset: every source is allowed. Once any range is given, other sources are dropped, and a family with no range of its own gets no traffic.",
  },
  "K3S.enableLb": {
    sections: ["nodeLabels"],
    text: "k3s servicelb's node label, read as an alias of `berth.dev/enabled`.",
  },
  "K3S.lbPool": {
    sections: ["nodeLabels", "serviceLabels"],
    text: "k3s servicelb's node and Service label, read as an alias of `berth.dev/pool`.",
  },
  "K3S.priorityClassName": {
    sections: ["serviceAnnotations"],
    text: "k3s servicelb's annotation, read as an alias of `berth.dev/priority-class`.",
  },
  "K3S.tolerations": {
    sections: ["serviceAnnotations"],
    text: "k3s servicelb's annotation, read as an alias of `berth.dev/tolerations` (compared after parsing, so order and spacing do not matter).",
  },
  "METALLB.loadBalancerIps": {
    sections: ["serviceAnnotations"],
    text: "MetalLB's annotations (current and pre-0.13 spelling), read as aliases of `berth.dev/ips`.",
  },
  "METALLB.addressPool": {
    sections: ["serviceAnnotations"],
    text: "MetalLB's annotations, read as aliases of the `berth.dev/pool` annotation.",
  },
  "METALLB.allowSharedIp": {
    sections: ["serviceAnnotations"],
    text: "MetalLB's annotations, read as aliases of `berth.dev/allow-shared-ip`.",
  },
  "CONDITION_TYPES.ready": {
    sections: ["conditionTypes"],
    text: "True when at least one node serves the Service and its address is in `status.loadBalancer.ingress`.",
  },
  "CONDITION_TYPES.portConflict": {
    sections: ["conditionTypes"],
    text: "True when a hostPort the Service needs is held by something else on at least one node; the message names the nodes and the holder.",
  },
  "CONDITION_REASONS.serving": { sections: ["conditionReasons"], condition: "LoadBalancerReady=True", text: "Every node that should serve does; the message lists the addresses." },
  "CONDITION_REASONS.partiallyServing": {
    sections: ["conditionReasons"], condition: "LoadBalancerReady=True",
    text: "Some nodes serve; the message names the others and why not (port conflict, lb-pod not Ready, node not Ready).",
  },
  "CONDITION_REASONS.waitingForPods": {
    sections: ["conditionReasons"], condition: "LoadBalancerReady=False",
    text: "The DaemonSet is applied and no lb-pod is Ready yet; the message names the nodes and what their pods wait for.",
  },
  "CONDITION_REASONS.noEligibleNodes": {
    sections: ["conditionReasons"], condition: "LoadBalancerReady=False",
    text: "No node may serve: there are none, or node labels (`berth.dev/enabled`, the pool, the exclusion label) rule them all out; the message gives each node's reason.",
  },
  "CONDITION_REASONS.noReadyEndpoints": {
    sections: ["conditionReasons"], condition: "LoadBalancerReady=False",
    text: "`externalTrafficPolicy: Local` and no node with a Ready lb-pod has a ready endpoint of the Service.",
  },
  "CONDITION_REASONS.invalidConfiguration": {
    sections: ["conditionReasons"], condition: "LoadBalancerReady=False",
    text: "A bad annotation, label or field; the message names every one. Nothing is applied for the Service (an existing DaemonSet keeps serving the last good configuration); other Services are not affected.",
  },
  "CONDITION_REASONS.vipModeUnavailable": { sections: ["conditionReasons"], condition: "LoadBalancerReady=False", text: "`berth.dev/mode: vip` is asked for; not available in this version." },
  "CONDITION_REASONS.portConflict": {
    sections: ["conditionReasons"], condition: "LoadBalancerReady=False",
    text: "Every node that would serve has one of the Service's ports taken (see the PortConflict condition).",
  },
  "CONDITION_REASONS.sysctlForbidden": {
    sections: ["conditionReasons"], condition: "LoadBalancerReady=False",
    text: "The kubelets reject the lb-pods at admission (`SysctlForbidden`): the Service has IPv6 and its lb-pods ask for `net.ipv6.conf.all.forwarding`, which those kubelets do not allow. The message names the nodes and the kubelet flag that allows it. On a partly serving Service the same sentence is in the `PartiallyServing` message.",
  },
  "CONDITION_REASONS.rulesTooLarge": {
    sections: ["conditionReasons"], condition: "LoadBalancerReady=False",
    text: "The Service's rendered lb-pod rules are larger than a ConfigMap may hold (1,048,576 bytes; e.g. a dual-stack `externalTrafficPolicy: Local` Service with ~250 ports or more); the message gives the size. Nothing is applied for the Service (an existing DaemonSet keeps serving the last rules that fitted); other Services are not affected.",
  },
  "CONDITION_REASONS.portInUse": {
    sections: ["conditionReasons"], condition: "PortConflict=True",
    text: "A port is held on some nodes; the message names node, port and holder (another Service's lb-pod, a hostPort pod, ...).",
  },
  "CONDITION_REASONS.noConflict": {
    sections: ["conditionReasons"], condition: "PortConflict=False",
    text: "No port is held by anything else. The message warns when other Services ask for the same ports (the first pod to start on a node wins it).",
  },
  "EVENT_REASONS.appliedDaemonSet": { sections: ["eventReasons"], eventType: "Normal", text: "The Service's DaemonSet was created or changed (as k3s servicelb)." },
  "EVENT_REASONS.deletedDaemonSet": {
    sections: ["eventReasons"], eventType: "Normal",
    text: "The Service's DaemonSet was deleted: the Service is being deleted, is no longer berth's, or asked for VIP mode (as k3s servicelb).",
  },
  "EVENT_REASONS.updatedLoadBalancer": {
    sections: ["eventReasons"], eventType: "Normal",
    text: "`status.loadBalancer.ingress` changed: `Updated LoadBalancer with new IPs: [old] -> [new]` (as k3s servicelb).",
  },
  "EVENT_REASONS.unavailableLoadBalancer": {
    sections: ["eventReasons"], eventType: "Warning",
    text: "No node serves: the ingress became empty, or LoadBalancerReady turned False with NoEligibleNodes or NoReadyEndpoints. k3s spells it `UnAvailableLoadBalancer`.",
  },
  "EVENT_REASONS.portConflict": { sections: ["eventReasons"], eventType: "Warning", text: "PortConflict turned True, or names other nodes or holders than before." },
  "EVENT_REASONS.portConflictResolved": { sections: ["eventReasons"], eventType: "Normal", text: "PortConflict turned False." },
  "EVENT_REASONS.invalidConfiguration": {
    sections: ["eventReasons"], eventType: "Warning",
    text: "The Service's configuration became invalid, or a different problem replaced the previous one; the message names every bad field.",
  },
  "EVENT_REASONS.configurationAccepted": { sections: ["eventReasons"], eventType: "Normal", text: "The configuration is valid again and is being applied." },
  "EVENT_REASONS.vipModeUnavailable": { sections: ["eventReasons"], eventType: "Warning", text: "`berth.dev/mode: vip` was asked for; not available in this version." },
  "EVENT_REASONS.sysctlForbidden": {
    sections: ["eventReasons"], eventType: "Warning",
    text: "The kubelets started rejecting the Service's lb-pods (`SysctlForbidden`); one Event for all nodes and rejected pods, naming the nodes and the kubelet flag (`--allowed-unsafe-sysctls=net.ipv6.conf.all.forwarding`).",
  },
  "EVENT_REASONS.rulesTooLarge": {
    sections: ["eventReasons"], eventType: "Warning",
    text: "The Service's rendered rules stopped fitting in a ConfigMap (1,048,576 bytes): one Event when that starts (not again while the size changes), with the size and what to reduce. Nothing is applied until they fit.",
  },
  "EVENT_REASONS.clearedLoadBalancer": {
    sections: ["eventReasons"], eventType: "Normal",
    text: "The Service stopped being berth's (type, class, or the controller's `--ignore-unset-class`): its DaemonSet, berth's conditions and status, and the finalizer were removed.",
  },
  CONTROLLER_NAME: { sections: ["identifiers"], text: "`reportingComponent` of the Events berth writes." },
  FIELD_MANAGER: {
    sections: ["identifiers"],
    text: "Field manager of berth's writes (server-side apply of DaemonSets, Service finalizer and status patches), as `kubectl get --show-managed-fields` shows.",
  },
};

const SECTION_TITLES: Record<Section, string> = {
  serviceFields: "Service fields berth reads and writes",
  serviceAnnotations: "Service annotations",
  serviceLabels: "Service labels",
  nodeLabels: "Node labels",
  objects: "What the controller creates",
  conditionTypes: "Condition types (Service `status.conditions`)",
  conditionReasons: "Condition reasons",
  eventReasons: "Event reasons (on the Service)",
  identifiers: "Other identifiers",
};

interface NameLeaf {
  path: string;
  values: string[];
}

/** Every string (or list of strings) names.ts exports, with its path: `FINALIZER`, `LABELS.serviceName`, ... */
export function nameLeaves(module: Readonly<Record<string, unknown>>): NameLeaf[] {
  const leaves: NameLeaf[] = [];
  const visit = (path: string, value: unknown): void => {
    if (typeof value === "string") leaves.push({ path, values: [value] });
    else if (Array.isArray(value) && value.every((v) => typeof v === "string")) leaves.push({ path, values: value as string[] });
    else if (typeof value === "object" && value !== null) {
      for (const [key, inner] of Object.entries(value)) visit(`${path}.${key}`, inner);
    }
    // Functions and other kinds are not names.
  };
  for (const key of Object.keys(module).sort()) visit(key, module[key]);
  return leaves;
}

/** Paths of names.ts exports that have no prose in NAME_DOCS (each must get some). */
export function undescribedNames(module: Readonly<Record<string, unknown>>): string[] {
  return nameLeaves(module).map((leaf) => leaf.path).filter((path) => NAME_DOCS[path] === undefined);
}

/** Table cell text: pipes escaped, newlines folded. */
function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\s*\n\s*/g, " ");
}

function code(text: string): string {
  return text.includes("`") ? `\`\` ${text} \`\`` : `\`${text}\``;
}

function table(header: string[], rows: string[][]): string[] {
  return [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.map(cell).join(" | ")} |`),
  ];
}

function renderNames(module: Readonly<Record<string, unknown>>): string[] {
  const leaves = nameLeaves(module);
  const out: string[] = [];
  const bySection = new Map<Section, { leaf: NameLeaf; doc: NameDoc }[]>();
  for (const leaf of leaves) {
    const doc = NAME_DOCS[leaf.path];
    if (doc === undefined) continue;
    for (const section of doc.sections) {
      const list = bySection.get(section) ?? [];
      list.push({ leaf, doc });
      bySection.set(section, list);
    }
  }
  const order: Section[] = [
    "serviceFields", "serviceAnnotations", "serviceLabels", "nodeLabels", "conditionTypes", "conditionReasons",
    "eventReasons", "objects", "identifiers",
  ];
  const intro: Partial<Record<Section, string>> = {
    serviceAnnotations: `Aliases: ${ALIAS_RULE}. A bad value sets \`LoadBalancerReady=False\` with reason \`InvalidConfiguration\` and a Warning Event naming the field; nothing is applied for that Service until it is fixed.`,
    nodeLabels: "Which nodes serve is decided from these labels. They are written into each DaemonSet's node affinity, so the DaemonSet controller follows a relabelled node by itself; the controller rewrites the DaemonSets when the first node gains `berth.dev/enabled` (or k3s's `enablelb`) or the last one loses it.",
    conditionTypes: "Conditions follow metav1.Condition: `lastTransitionTime` changes only when the status does. `kubectl describe svc` does not print conditions; `kubectl get svc NAME -o jsonpath='{.status.conditions}'` or `berth doctor` does.",
    eventReasons: "Events are written on transitions only (a periodic resync repeats none); a repeated Event bumps `count` on the existing one. The first four reasons are k3s servicelb's.",
  };
  for (const section of order) {
    // berth's own keys first, then the k3s and MetalLB aliases.
    const isAlias = (entry: { leaf: NameLeaf }): number => (/^(K3S|METALLB)\./.test(entry.leaf.path) ? 1 : 0);
    const entries = [...(bySection.get(section) ?? [])].sort((a, b) => isAlias(a) - isAlias(b));
    if (entries.length === 0) continue;
    out.push(`### ${SECTION_TITLES[section]}`, "");
    const note = intro[section];
    if (note !== undefined) out.push(note, "");
    const keys = (leaf: NameLeaf): string => leaf.values.map(code).join(", ");
    if (section === "conditionReasons") {
      out.push(...table(["reason", "condition", "meaning"], entries.map(({ leaf, doc }) => [keys(leaf), doc.condition ?? "", doc.text])));
    } else if (section === "eventReasons") {
      out.push(...table(["reason", "type", "when"], entries.map(({ leaf, doc }) => [keys(leaf), doc.eventType ?? "", doc.text])));
    } else {
      out.push(...table(["name", "meaning", "constant"], entries.map(({ leaf, doc }) => [keys(leaf), doc.text, code(leaf.path)])));
    }
    out.push("");
  }
  return out;
}

/** The subcommands help shows (hidden ones and the implicit `help` command left out), depth first. */
function walkCommands(command: Command, path: string[] = []): { path: string[]; command: Command }[] {
  const help = command.createHelp();
  const visible = new Set(help.visibleCommands(command));
  const out = [{ path, command }];
  for (const sub of command.commands) {
    if (!visible.has(sub)) continue;
    out.push(...walkCommands(sub, [...path, sub.name()]));
  }
  return out;
}

function optionDefault(option: Option): string {
  if (option.defaultValueDescription !== undefined) return option.defaultValueDescription;
  if (option.negate) return "on (this flag turns it off)";
  if (option.defaultValue === undefined) return "";
  return typeof option.defaultValue === "string" ? code(option.defaultValue) : code(JSON.stringify(option.defaultValue));
}

function renderOptionRows(help: Help, command: Command): string[][] {
  return help.visibleOptions(command)
    .filter((option) => option.long !== "--help")
    .map((option) => {
      const extra: string[] = [];
      if (option.argChoices) extra.push(`one of ${option.argChoices.map(code).join(", ")}`);
      if (option.envVar) extra.push(`environment: ${code(option.envVar)}`);
      if (option.variadic) extra.push("repeatable");
      const description = [option.description, ...extra].filter((part) => part !== "").join("; ");
      return [code(option.flags), description, optionDefault(option)];
    });
}

function renderArgumentRows(help: Help, command: Command): string[][] {
  return help.visibleArguments(command).map((argument: Argument) => [
    code(help.argumentTerm(argument)),
    help.argumentDescription(argument) || (argument.required ? "required" : "optional"),
  ]);
}

function renderCommands(program: Command): string[] {
  const out: string[] = [];
  const root = program.name();
  const commands = walkCommands(program);
  out.push("Every subcommand prints the same with `--help`. Bad input ends with one line on stderr and exit code 2.", "");
  out.push(...table(["command", "what it does"], commands.filter((c) => c.path.length > 0).map(({ path, command }) => [
    `[${code([root, ...path].join(" "))}](#${anchor([root, ...path].join(" "))})`,
    command.description(),
  ])), "");
  for (const { path, command } of commands) {
    const help = command.createHelp();
    const name = [root, ...path].join(" ");
    out.push(`### ${name}`, "");
    if (command.description() !== "") out.push(command.description(), "");
    out.push("```", help.commandUsage(command), "```", "");
    const args = renderArgumentRows(help, command);
    if (args.length > 0) out.push(...table(["argument", "meaning"], args), "");
    const options = renderOptionRows(help, command);
    if (options.length > 0) out.push(...table(["flag", "meaning", "default"], options), "");
  }
  return out;
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes. */
function anchor(heading: string): string {
  return heading.toLowerCase().replace(/[^a-z0-9 _-]/g, "").replace(/ /g, "-");
}

function renderMetrics(metrics: readonly MetricInfo[]): string[] {
  const rows = [...metrics].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((m) => [
    code(m.name), m.type, m.labels.map(code).join(", "), m.help,
  ]);
  return [
    "Served by every controller replica on `/metrics` (`berth controller --listen`, default `0.0.0.0:9090`), next to `/healthz` and `/readyz`.",
    "Histograms also export `_bucket`, `_sum` and `_count` series. prom-client's process and Node.js metrics (`process_*`, `nodejs_*`: CPU, memory, event-loop lag) are exported as well.",
    "",
    ...table(["metric", "type", "labels", "help"], rows),
    "",
  ];
}

const LB_POD_ENV_DOCS: Record<string, string> = {
  ports: "Every port of the Service, `<protocol>:<port>:<destination port>` separated by commas and/or spaces (`tcp:80:80,udp:53:30053`). Wins over klipper-lb's single-port variables.",
  destinationIps: "Destination IPs, either family, separated by commas and/or spaces. The controller writes it only for `externalTrafficPolicy: Local`: the node's own IPs from the downward API, which fill in the bundle's placeholders (the ClusterIPs of `Cluster` are in the bundle itself).",
  sourceRanges: "Allowed source CIDRs; unset or empty allows every source. Once any range is given, a family with no range of its own is dropped.",
  klipperSourcePort: "klipper-lb's contract: the one port this container receives (used when `BERTH_PORTS` is unset).",
  klipperDestinationPort: "klipper-lb's contract: the port traffic is DNATed to.",
  klipperProtocol: "klipper-lb's contract: `TCP` (default), `UDP` or `SCTP`.",
  families: "`IPv4`, `IPv6` or both, as `spec.ipFamilies` spells them: destination IPs of other families are ignored (for a `DEST_IPS` that lists every node IP, as the downward API's `status.hostIPs` does).",
};

function renderLbPodEnv(inputs: ReferenceInputs, program: Command): string[] {
  const rows = new Map<string, string>();
  for (const [key, name] of Object.entries(inputs.lbPodEnv)) rows.set(name, LB_POD_ENV_DOCS[key] ?? "");
  // Variables commander reads for a flag (Option.env()), found by walking the tree.
  for (const { path, command } of walkCommands(program)) {
    for (const option of command.options) {
      if (!option.envVar || rows.has(option.envVar)) continue;
      rows.set(option.envVar, `Same as ${code(`${[program.name(), ...path].join(" ")} ${option.long ?? option.flags}`)}: ${option.description}.`);
    }
  }
  for (const variable of inputs.scriptVariables) {
    const before = rows.get(variable.name);
    rows.set(variable.name, `${before === undefined ? "Read" : `${before} Also read`} by ${code(variable.script)}: ${variable.meaning}`);
  }
  return [
    "`berth lb-pod apply` / `render` / `check` read klipper-lb's environment contract as well as berth's own; flags (`--port`, `--destination-ip`, `--source-range`) replace the variables. The lb-pod image's entrypoint `bin/berth-lb-pod` reads none of them: it applies the rules bundle the controller renders (and, for externalTrafficPolicy Local, takes the node's addresses from `DEST_IPS`), so the controller writes only `DEST_IPS` into the pod (for `Local`, from the downward API) and `BERTH_BACKEND` when `--lb-backend` is set: a copy of the bundle's configuration in the environment would roll every lb-pod when nothing it runs changed.",
    "",
    ...table(["variable", "meaning"], [...rows].map(([name, meaning]) => [code(name), meaning])),
    "",
  ];
}

function renderPodFacts(inputs: ReferenceInputs): string[] {
  const ipv4 = code(inputs.forwardingSysctls.ipv4 ?? "");
  const ipv6 = code(inputs.forwardingSysctls.ipv6 ?? "");
  return [
    "Each LoadBalancer Service gets one DaemonSet named `svclb-<service name>-<first 8 characters of its UID>` (the name cut so the whole fits 63 characters) in the controller's namespace. Below is what the controller writes for a Service `default/web` with TCP ports 80 and 443 and `externalTrafficPolicy: Cluster`, with the controller's defaults: this is `buildDaemonSet()`'s output, not a hand-written copy.",
    "",
    `The lb-pods of an IPv4-only Service ask the kubelet for no sysctl: a new pod network namespace copies the node's ${ipv4}, and every Kubernetes node forwards IPv4, so a stock kubelet runs them. IPv6 forwarding starts at 0 in a new namespace, so the lb-pods of a Service with IPv6 ask for ${ipv6} in \`securityContext.sysctls\` (left out when the controller runs with \`--no-forwarding-sysctls\`, for nodes whose pod namespaces already forward IPv6). The kubelet treats it as unsafe: it must allow it (\`--allowed-unsafe-sysctls=${inputs.forwardingSysctls.ipv6 ?? ""}\`), or it rejects those pods with \`SysctlForbidden\` and the Service's \`LoadBalancerReady\` condition says so (see [install-kubeadm.md](install-kubeadm.md), [install-k3s.md](install-k3s.md)). hostPorts, \`NET_ADMIN\` and that sysctl put the lb-pods above Pod Security's \`baseline\` level: the namespace they run in must allow \`privileged\`.`,
    "",
    "```yaml",
    dump(inputs.exampleDaemonSet, { lineWidth: -1, noRefs: true, sortKeys: false }).trimEnd(),
    "```",
    "",
  ];
}

/** docs/reference.md, as a pure function of its inputs. */
export function renderReference(inputs: ReferenceInputs): string {
  const out: string[] = [
    "# berth reference",
    "",
    `<!-- Generated from the code by \`${REGENERATE_COMMAND}\` (src/docs/reference.ts). Do not edit by hand: a test fails when this file differs from what the code generates. -->`,
    "",
    "Every annotation, label, finalizer, condition, Event reason, command-line flag, metric and environment variable berth reads or writes, generated from the constants in the code. For a guided install, start at [README.md](README.md).",
    "",
    "- [Names on Services, nodes and berth's own objects](#names-on-services-nodes-and-berths-own-objects)",
    "- [Commands and flags](#commands-and-flags)",
    "- [Metrics](#metrics)",
    "- [lb-pod environment](#lb-pod-environment)",
    "- [The lb-pod DaemonSet](#the-lb-pod-daemonset)",
    "",
    "## Names on Services, nodes and berth's own objects",
    "",
    ...renderNames(inputs.names),
    "## Commands and flags",
    "",
    ...renderCommands(inputs.program),
    "## Metrics",
    "",
    ...renderMetrics(inputs.metrics),
    "## lb-pod environment",
    "",
    ...renderLbPodEnv(inputs, inputs.program),
    "## The lb-pod DaemonSet",
    "",
    ...renderPodFacts(inputs),
  ];
  return `${out.join("\n").trimEnd()}\n`;
}

/** Variables the container entrypoint scripts read (the test checks each script mentions its variable). */
export const SCRIPT_VARIABLES: readonly ScriptVariable[] = [
  { name: "BERTH_RULES_DIR", script: "bin/berth-lb-pod", meaning: "the rules bundle to apply: the Service's ConfigMap the DaemonSet mounts (default `/etc/berth/rules`; also `--rules` in the arguments). `berth lb-pod render --out DIR` writes one by hand." },
  { name: "BERTH_STATE_DIR", script: "bin/berth-lb-pod", meaning: "where the entrypoint keeps its state, the rules the probe expects and the cleanup the waiter runs on SIGTERM (default `/run/berth`; also `--state-dir` in the arguments)." },
  { name: "BERTH_BACKEND", script: "bin/berth-lb-pod", meaning: "`auto` (default), `iptables`, `iptables-nft`, `iptables-legacy` or `nftables` (also `--backend` in the arguments)." },
  { name: "BERTH_NODE", script: "bin/berth", meaning: "the node binary to run (default: the Node.js 24 that `scripts/install-deps.sh` put in the checkout's `.node/` when there is one, else `node` from PATH)." },
];

/** A Service with two TCP ports, for the example DaemonSet. */
function exampleService(): V1Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "web", namespace: "default", uid: "5e2f3a9c-7d41-4b8e-9c0a-1f2e3d4c5b6a" },
    spec: {
      type: "LoadBalancer",
      clusterIP: "10.43.12.34",
      clusterIPs: ["10.43.12.34"],
      ipFamilies: ["IPv4"],
      externalTrafficPolicy: "Cluster",
      ports: [
        { name: "http", protocol: "TCP", port: 80, targetPort: 8080, nodePort: 31080 },
        { name: "https", protocol: "TCP", port: 443, targetPort: 8443, nodePort: 31443 },
      ],
    },
  } as V1Service;
}

/** Everything renderReference() needs, taken from the real code: names.ts, the CLI tree, the metrics registry. */
export function referenceInputs(): ReferenceInputs {
  const metricsSource = new ControllerMetrics({ processMetrics: false });
  const metrics = metricsSource.registry.getMetricsAsArray().map((metric) => ({
    name: metric.name,
    type: String(metric.type),
    help: metric.help,
    labels: [...((metric as unknown as { labelNames?: string[] }).labelNames ?? [])],
  }));
  const config = defaultControllerConfig();
  const service = exampleService();
  const parsed = parseServiceConfig(service, config);
  if (!parsed.ok) throw new Error(`reference: the example Service is invalid: ${JSON.stringify(parsed.problems)}`);
  const nodes: V1Node[] = [];
  return {
    names,
    program: buildProgram(),
    metrics,
    lbPodEnv: LB_POD_ENV,
    scriptVariables: SCRIPT_VARIABLES,
    forwardingSysctls: FORWARDING_SYSCTLS,
    exampleDaemonSet: buildDaemonSet(service, parsed.value, nodes, config),
  };
}
