// Server-side Table output (meta.k8s.io/v1 Table), as `kubectl get` asks for it with
// `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`. kubectl prints the cells it is given, so the columns and
// cell formats here are those of kube-apiserver 1.32: pkg/printers/internalversion/printers.go for the built-in
// kinds, apiextensions-apiserver's tableconvertor for custom resources, and the default table convertor
// (NAME, CREATED AT) for everything else, CustomResourceDefinitions included.
//
// kube-apiserver always renders the wide variant (pkg/printers/storage: GenerateOptions{Wide: true}); kubectl
// hides the priority > 0 columns unless `-o wide`. We do the same, so a row always has one cell per column.
import type { KubeObject, PrinterColumn, ResourceDefinition, Table } from "./types.js";

export type IncludeObject = "None" | "Metadata" | "Object";

export interface TableOptions {
  /** The `includeObject` query parameter; kube-apiserver's default is Metadata. */
  includeObject: IncludeObject;
  /** The instant ages are measured from (passed in, so tests are exact). */
  now: Date;
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
}

type Column = Table["columnDefinitions"][number];
type Cell = unknown;

interface Printer {
  columns: Column[];
  row(obj: KubeObject, now: Date): Cell[];
}

// Descriptions are the ones kube-apiserver sends (the OpenAPI docs of the fields a column shows), shortened where
// they run to paragraphs: kubectl never prints them.
const NAME_DOC =
  "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_DOC =
  "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

function col(name: string, type: PrinterColumn["type"], description: string, priority = 0, format = ""): Column {
  return { name, type, format, description, priority };
}
const nameCol = (): Column => col("Name", "string", NAME_DOC, 0, "name");
const ageCol = (): Column => col("Age", "string", CREATION_DOC);

// ---------------------------------------------------------------------------------------------------------------
// Small readers over plain JSON. Objects arrive as stored (untyped JSON), so every access is defensive: a missing
// field reads as Go's zero value, which is what the Go printers see after decoding.

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === "string" ? v : "");
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? Math.trunc(v) : 0);
const dig = (v: unknown, ...path: string[]): unknown => path.reduce<unknown>((cur, key) => obj(cur)[key], v);
const strMap = (v: unknown): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(obj(v))) out[k] = typeof val === "string" ? val : String(val);
  return out;
};

// ---------------------------------------------------------------------------------------------------------------
// Time: apimachinery's duration.HumanDuration and the printers' translateTimestampSince.

/** apimachinery/pkg/util/duration.HumanDuration: ~2-3 significant figures ("5s", "3m20s", "2d3h", "3y45d"). */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  // kube tolerates up to 2 s of clock skew between machines before calling a time in the future invalid.
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const days = Math.trunc(hours / 24);
    const dy = days % 365;
    return dy === 0 ? `${Math.trunc(days / 365)}y` : `${Math.trunc(days / 365)}y${dy}d`;
  }
  return `${Math.trunc(hours / 24 / 365)}y`;
}

function parseTime(v: unknown): number | undefined {
  if (typeof v !== "string" || v === "") return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

/** translateTimestampSince: "<unknown>" for an unset time. */
function since(v: unknown, now: Date): string {
  const t = parseTime(v);
  return t === undefined ? "<unknown>" : humanDuration(now.getTime() - t);
}

const age = (o: KubeObject, now: Date): string => since(o.metadata.creationTimestamp, now);

// ---------------------------------------------------------------------------------------------------------------
// Labels and selectors, as apimachinery formats them.

/** labels.FormatLabels: "k=v,k2=v2" with sorted keys, "<none>" when empty. */
export function formatLabels(labels: Record<string, string> | undefined): string {
  const keys = Object.keys(labels ?? {}).sort();
  if (keys.length === 0) return "<none>";
  return keys.map((k) => `${k}=${labels?.[k] ?? ""}`).join(",");
}

/** metav1.FormatLabelSelector: requirements sorted by key; "<none>" for a nil or empty selector. */
export function formatLabelSelector(selector: unknown): string {
  const sel = obj(selector);
  const reqs: { key: string; text: string }[] = [];
  for (const [key, value] of Object.entries(strMap(sel.matchLabels))) reqs.push({ key, text: `${key}=${value}` });
  for (const raw of arr(sel.matchExpressions)) {
    const e = obj(raw);
    const key = str(e.key);
    const values = arr(e.values).map(str).sort();
    switch (str(e.operator)) {
      case "In":
        reqs.push({ key, text: `${key} in (${values.join(",")})` });
        break;
      case "NotIn":
        reqs.push({ key, text: `${key} notin (${values.join(",")})` });
        break;
      case "Exists":
        reqs.push({ key, text: key });
        break;
      case "DoesNotExist":
        reqs.push({ key, text: `!${key}` });
        break;
      default:
        return "<error>";
    }
  }
  if (reqs.length === 0) return "<none>";
  reqs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return reqs.map((r) => r.text).join(",");
}

/** layoutContainerCells: container names and images, comma-joined. */
function containerCells(podSpec: unknown): [string, string] {
  const containers = arr(obj(podSpec).containers).map(obj);
  return [containers.map((c) => str(c.name)).join(","), containers.map((c) => str(c.image)).join(",")];
}

/** net.JoinHostPort: brackets around IPv6 literals. */
const joinHostPort = (host: string, port: number): string => (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`);

// ---------------------------------------------------------------------------------------------------------------
// Services

const LOAD_BALANCER_WIDTH = 16;

/** loadBalancerStatusStringer: unique ingress IPs (else hostnames), sorted; clipped to 16 bytes unless wide. */
function loadBalancerIngress(status: unknown, wide: boolean): string {
  const set = new Set<string>();
  for (const raw of arr(dig(status, "loadBalancer", "ingress"))) {
    const ing = obj(raw);
    if (str(ing.ip) !== "") set.add(str(ing.ip));
    else if (str(ing.hostname) !== "") set.add(str(ing.hostname));
  }
  // sets.String.List() sorts byte-wise.
  let r = [...set].sort().join(",");
  if (!wide && r.length > LOAD_BALANCER_WIDTH) r = `${r.slice(0, LOAD_BALANCER_WIDTH - 3)}...`;
  return r;
}

/** getServiceExternalIP. The server renders wide (unclipped), as kube-apiserver does. */
function serviceExternalIP(svc: KubeObject, wide = true): string {
  const spec = obj(svc.spec);
  const externalIPs = arr(spec.externalIPs).map(str);
  switch (str(spec.type)) {
    case "ClusterIP":
    case "NodePort":
      return externalIPs.length > 0 ? externalIPs.join(",") : "<none>";
    case "LoadBalancer": {
      const lb = loadBalancerIngress(svc.status, wide);
      if (externalIPs.length > 0) return [...(lb === "" ? [] : lb.split(",")), ...externalIPs].join(",");
      return lb === "" ? "<pending>" : lb;
    }
    case "ExternalName":
      return str(spec.externalName);
    default:
      return "<unknown>";
  }
}

/** makePortString: "80:31234/TCP,53/UDP". */
function servicePorts(spec: Json): string {
  return arr(spec.ports)
    .map(obj)
    .map((p) => (num(p.nodePort) > 0 ? `${num(p.port)}:${num(p.nodePort)}/${str(p.protocol)}` : `${num(p.port)}/${str(p.protocol)}`))
    .join(",");
}

const servicePrinter: Printer = {
  columns: [
    nameCol(),
    col("Type", "string", "type determines how the Service is exposed."),
    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", "The list of ports that are exposed by this service."),
    ageCol(),
    col("Selector", "string", "Route service traffic to pods with label keys and values matching this selector.", 1),
  ],
  row(svc, now) {
    const spec = obj(svc.spec);
    const clusterIPs = arr(spec.clusterIPs).map(str);
    const ports = servicePorts(spec);
    return [
      svc.metadata.name,
      str(spec.type),
      // Conversion fills clusterIPs from a lone clusterIP before the printer reads clusterIPs[0].
      clusterIPs[0] ?? (str(spec.clusterIP) || "<none>"),
      serviceExternalIP(svc),
      ports === "" ? "<none>" : ports,
      age(svc, now),
      formatLabels(strMap(spec.selector)),
    ];
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Nodes

const NODE_ROLE_PREFIX = "node-role.kubernetes.io/";
const NODE_ROLE_LABEL = "kubernetes.io/role";

function nodeRoles(node: KubeObject): string {
  const roles = new Set<string>();
  for (const [k, v] of Object.entries(node.metadata.labels ?? {})) {
    if (k.startsWith(NODE_ROLE_PREFIX)) {
      const role = k.slice(NODE_ROLE_PREFIX.length);
      if (role !== "") roles.add(role);
    } else if (k === NODE_ROLE_LABEL && v !== "") roles.add(v);
  }
  return roles.size === 0 ? "<none>" : [...roles].sort().join(",");
}

function nodeAddress(node: KubeObject, type: string): string {
  const found = arr(dig(node.status, "addresses")).map(obj).find((a) => str(a.type) === type);
  return found ? str(found.address) : "<none>";
}

const orUnknown = (s: string): string => (s === "" ? "<unknown>" : s);

const nodePrinter: Printer = {
  columns: [
    nameCol(),
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    ageCol(),
    col("Version", "string", "Kubelet Version reported by the node."),
    col("Internal-IP", "string", "List of addresses reachable to the node.", 1),
    col("External-IP", "string", "List of addresses reachable to the node.", 1),
    col("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
    col("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
    col("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", 1),
  ],
  row(node, now) {
    // Only the Ready condition counts (NodeAllConditions = [NodeReady]); the last one of a type wins, as in Go's map.
    let ready: Json | undefined;
    for (const c of arr(dig(node.status, "conditions")).map(obj)) if (str(c.type) === "Ready") ready = c;
    const status: string[] = [];
    if (ready) status.push(str(ready.status) === "True" ? "Ready" : "NotReady");
    else status.push("Unknown");
    if (dig(node.spec, "unschedulable") === true) status.push("SchedulingDisabled");
    const info = obj(dig(node.status, "nodeInfo"));
    return [
      node.metadata.name,
      status.join(","),
      nodeRoles(node),
      age(node, now),
      str(info.kubeletVersion),
      nodeAddress(node, "InternalIP"),
      nodeAddress(node, "ExternalIP"),
      orUnknown(str(info.osImage)),
      orUnknown(str(info.kernelVersion)),
      orUnknown(str(info.containerRuntimeVersion)),
    ];
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Pods (printPod, including init containers, sidecars and the "N (5m ago)" restart count)

function podRow(pod: KubeObject, now: Date): Cell[] {
  const spec = obj(pod.spec);
  const status = obj(pod.status);
  const phase = str(status.phase);
  let reason = str(status.reason) !== "" ? str(status.reason) : phase;
  const conditions = arr(status.conditions).map(obj);
  for (const c of conditions) {
    if (str(c.type) === "PodScheduled" && str(c.reason) === "SchedulingGated") reason = "SchedulingGated";
  }

  const initSpecs = arr(spec.initContainers).map(obj);
  const restartable = new Set(initSpecs.filter((c) => str(c.restartPolicy) === "Always").map((c) => str(c.name)));
  const totalContainers = arr(spec.containers).length + restartable.size;
  let readyContainers = 0;
  let restarts = 0;
  let sidecarRestarts = 0;
  let lastRestart = 0;
  let lastSidecarRestart = 0;
  const finishedAt = (cs: Json): number => parseTime(dig(cs, "lastState", "terminated", "finishedAt")) ?? 0;

  let initializing = false;
  const initStatuses = arr(status.initContainerStatuses).map(obj);
  for (let i = 0; i < initStatuses.length; i++) {
    const cs = initStatuses[i] ?? {};
    restarts += num(cs.restartCount);
    lastRestart = Math.max(lastRestart, finishedAt(cs));
    const isSidecar = restartable.has(str(cs.name));
    if (isSidecar) {
      sidecarRestarts += num(cs.restartCount);
      lastSidecarRestart = Math.max(lastSidecarRestart, finishedAt(cs));
    }
    const terminated = dig(cs, "state", "terminated");
    const waiting = dig(cs, "state", "waiting");
    if (terminated !== undefined && num(obj(terminated).exitCode) === 0) continue;
    if (isSidecar && cs.started === true) {
      if (cs.ready === true) readyContainers++;
      continue;
    }
    if (terminated !== undefined) {
      const t = obj(terminated);
      if (str(t.reason) === "") reason = num(t.signal) !== 0 ? `Init:Signal:${num(t.signal)}` : `Init:ExitCode:${num(t.exitCode)}`;
      else reason = `Init:${str(t.reason)}`;
    } else if (waiting !== undefined && str(obj(waiting).reason) !== "" && str(obj(waiting).reason) !== "PodInitializing") {
      reason = `Init:${str(obj(waiting).reason)}`;
    } else {
      reason = `Init:${i}/${initSpecs.length}`;
    }
    initializing = true;
    break;
  }

  const initialized = conditions.some((c) => str(c.type) === "Initialized" && str(c.status) === "True");
  if (!initializing || initialized) {
    restarts = sidecarRestarts;
    lastRestart = lastSidecarRestart;
    let hasRunning = false;
    const statuses = arr(status.containerStatuses).map(obj);
    for (let i = statuses.length - 1; i >= 0; i--) {
      const cs = statuses[i] ?? {};
      restarts += num(cs.restartCount);
      lastRestart = Math.max(lastRestart, finishedAt(cs));
      const waiting = dig(cs, "state", "waiting");
      const terminated = dig(cs, "state", "terminated");
      if (waiting !== undefined && str(obj(waiting).reason) !== "") reason = str(obj(waiting).reason);
      else if (terminated !== undefined && str(obj(terminated).reason) !== "") reason = str(obj(terminated).reason);
      else if (terminated !== undefined) {
        const t = obj(terminated);
        reason = num(t.signal) !== 0 ? `Signal:${num(t.signal)}` : `ExitCode:${num(t.exitCode)}`;
      } else if (cs.ready === true && dig(cs, "state", "running") !== undefined) {
        hasRunning = true;
        readyContainers++;
      }
    }
    if (reason === "Completed" && hasRunning) {
      reason = conditions.some((c) => str(c.type) === "Ready" && str(c.status) === "True") ? "Running" : "NotReady";
    }
  }

  if (pod.metadata.deletionTimestamp !== undefined && str(status.reason) === "NodeLost") reason = "Unknown";
  else if (pod.metadata.deletionTimestamp !== undefined && phase !== "Succeeded" && phase !== "Failed") reason = "Terminating";

  const restartsCell = restarts !== 0 && lastRestart !== 0 ? `${restarts} (${humanDuration(now.getTime() - lastRestart)} ago)` : String(restarts);

  // The printer reads podIPs[0]; v1 -> internal conversion fills podIPs from a lone podIP, so do the same.
  const podIP = str(obj(arr(status.podIPs)[0]).ip) || str(status.podIP);
  const gates = arr(spec.readinessGates).map(obj);
  let readinessGates = "<none>";
  if (gates.length > 0) {
    let trueConditions = 0;
    for (const gate of gates) {
      const c = conditions.find((cond) => str(cond.type) === str(gate.conditionType));
      if (c && str(c.status) === "True") trueConditions++;
    }
    readinessGates = `${trueConditions}/${gates.length}`;
  }
  return [
    pod.metadata.name,
    `${readyContainers}/${totalContainers}`,
    reason,
    restartsCell,
    age(pod, now),
    podIP === "" ? "<none>" : podIP,
    str(spec.nodeName) === "" ? "<none>" : str(spec.nodeName),
    str(status.nominatedNodeName) === "" ? "<none>" : str(status.nominatedNodeName),
    readinessGates,
  ];
}

const podPrinter: Printer = {
  columns: [
    nameCol(),
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    ageCol(),
    col("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
    col("Node", "string", "NodeName indicates in which node this pod is scheduled.", 1),
    col("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node.", 1),
    col("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness.", 1),
  ],
  row: podRow,
};

// ---------------------------------------------------------------------------------------------------------------
// DaemonSets

const daemonSetPrinter: Printer = {
  columns: [
    nameCol(),
    col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
    col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    col("Ready", "integer", "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
    col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
    col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
    col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
    ageCol(),
    col("Containers", "string", "Names of each container in the template.", 1),
    col("Images", "string", "Images referenced by each container in the template.", 1),
    col("Selector", "string", "A label query over pods that are managed by the daemon set.", 1),
  ],
  row(ds, now) {
    const st = obj(ds.status);
    const podSpec = dig(ds.spec, "template", "spec");
    const [names, images] = containerCells(podSpec);
    return [
      ds.metadata.name,
      num(st.desiredNumberScheduled),
      num(st.currentNumberScheduled),
      num(st.numberReady),
      num(st.updatedNumberScheduled),
      num(st.numberAvailable),
      formatLabels(strMap(obj(podSpec).nodeSelector)),
      age(ds, now),
      names,
      images,
      formatLabelSelector(dig(ds.spec, "selector")),
    ];
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Deployments and ReplicaSets (pkg/printers/internalversion/printers.go: printDeployment, printReplicaSet)

const templateCols = (what: string): Column[] => [
  col("Containers", "string", "Names of each container in the template.", 1),
  col("Images", "string", "Images referenced by each container in the template.", 1),
  col("Selector", "string", `Label selector for pods. Target labels are ${what}`, 1),
];

function templateCells(o: KubeObject): Cell[] {
  const [names, images] = containerCells(dig(o.spec, "template", "spec"));
  return [names, images, formatLabelSelector(dig(o.spec, "selector"))];
}

const deploymentPrinter: Printer = {
  columns: [
    nameCol(),
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "integer", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "integer", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    ageCol(),
    ...templateCols("deployment"),
  ],
  row(d, now) {
    const st = obj(d.status);
    return [d.metadata.name, `${num(st.readyReplicas)}/${num(dig(d.spec, "replicas"))}`, num(st.updatedReplicas),
      num(st.availableReplicas), age(d, now), ...templateCells(d)];
  },
};

const replicaSetPrinter: Printer = {
  columns: [
    nameCol(),
    col("Desired", "integer", "Number of desired pods."),
    col("Current", "integer", "Number of actually running pods."),
    col("Ready", "integer", "Number of pods ready."),
    ageCol(),
    ...templateCols("replicaset"),
  ],
  row(rs, now) {
    const st = obj(rs.status);
    return [rs.metadata.name, num(dig(rs.spec, "replicas")), num(st.replicas), num(st.readyReplicas), age(rs, now), ...templateCells(rs)];
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Events (core/v1; events.k8s.io/v1 objects are mapped onto the same internal shape first, as the server does)

interface EventFields {
  name: string;
  type: string;
  reason: string;
  message: string;
  firstTimestamp: unknown;
  lastTimestamp: unknown;
  eventTime: unknown;
  count: number;
  series?: Json;
  involved: Json;
  sourceComponent: string;
  sourceHost: string;
  reportingController: string;
  reportingInstance: string;
}

function coreEventFields(e: KubeObject): EventFields {
  return {
    name: e.metadata.name ?? "",
    type: str(e.type),
    reason: str(e.reason),
    message: str(e.message),
    firstTimestamp: e.firstTimestamp,
    lastTimestamp: e.lastTimestamp,
    eventTime: e.eventTime,
    count: num(e.count),
    ...(e.series !== undefined && e.series !== null ? { series: obj(e.series) } : {}),
    involved: obj(e.involvedObject),
    sourceComponent: str(dig(e, "source", "component")),
    sourceHost: str(dig(e, "source", "host")),
    reportingController: str(e.reportingComponent),
    reportingInstance: str(e.reportingInstance),
  };
}

function eventsV1Fields(e: KubeObject): EventFields {
  return {
    name: e.metadata.name ?? "",
    type: str(e.type),
    reason: str(e.reason),
    message: str(e.note),
    firstTimestamp: e.deprecatedFirstTimestamp,
    lastTimestamp: e.deprecatedLastTimestamp,
    eventTime: e.eventTime,
    count: num(e.deprecatedCount),
    ...(e.series !== undefined && e.series !== null ? { series: obj(e.series) } : {}),
    involved: obj(e.regarding),
    sourceComponent: str(dig(e, "deprecatedSource", "component")),
    sourceHost: str(dig(e, "deprecatedSource", "host")),
    reportingController: str(e.reportingController),
    reportingInstance: str(e.reportingInstance),
  };
}

function eventPrinter(fields: (e: KubeObject) => EventFields): Printer {
  return {
    columns: [
      col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
      col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
      col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
      col("Object", "string", "The object that this event is about."),
      col("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].", 1),
      col("Source", "string", "The component reporting this event. Should be a short machine understandable string.", 1),
      col("Message", "string", "A human-readable description of the status of this operation."),
      col("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)", 1),
      col("Count", "string", "The number of times this event has occurred.", 1),
      col("Name", "string", NAME_DOC, 1, "name"),
    ],
    row(raw, now) {
      const e = fields(raw);
      const first = parseTime(e.firstTimestamp) !== undefined ? since(e.firstTimestamp, now) : since(e.eventTime, now);
      let last = parseTime(e.lastTimestamp) !== undefined ? since(e.lastTimestamp, now) : first;
      let count = e.count;
      if (e.series) {
        last = since(e.series.lastObservedTime, now);
        count = num(e.series.count);
      } else if (count === 0) {
        // Singleton events of the new API carry no count.
        count = 1;
      }
      const kind = str(e.involved.kind).toLowerCase();
      const target = str(e.involved.name) !== "" ? `${kind}/${str(e.involved.name)}` : kind;
      const component = e.sourceComponent || e.reportingController;
      const instance = e.sourceHost || e.reportingInstance;
      return [
        last,
        e.type,
        e.reason,
        target,
        str(e.involved.fieldPath),
        instance === "" ? component : `${component}, ${instance}`,
        e.message.trim(),
        first,
        count,
        e.name,
      ];
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Leases, EndpointSlices, Endpoints, and the small ones

const leasePrinter: Printer = {
  columns: [nameCol(), col("Holder", "string", "holderIdentity contains the identity of the holder of a current lease."), ageCol()],
  row: (l, now) => [l.metadata.name, str(dig(l.spec, "holderIdentity")), age(l, now)],
};

/** listWithMoreString: at most three entries, then "+ N more...", "<unset>" for none. */
function listWithMore(all: string[]): string {
  const max = 3;
  if (all.length > max) return `${all.slice(0, max).join(",")} + ${all.length - max} more...`;
  return all.length === 0 ? "<unset>" : all.join(",");
}

const endpointSlicePrinter: Printer = {
  columns: [
    nameCol(),
    col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice."),
    col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice."),
    col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice."),
    ageCol(),
  ],
  row(slice, now) {
    const ports = arr(slice.ports).map(obj).map((p) => (typeof p.port === "number" ? String(num(p.port)) : typeof p.name === "string" ? p.name : "*"));
    const addresses = arr(slice.endpoints).flatMap((e) => arr(obj(e).addresses).map(str));
    return [slice.metadata.name, str(slice.addressType), listWithMore(ports), listWithMore(addresses), age(slice, now)];
  },
};

/** formatEndpoints: "ip:port" per address and port, at most three, then "+ N more...". */
function formatEndpoints(ep: KubeObject): string {
  const subsets = arr(ep.subsets).map(obj);
  if (subsets.length === 0) return "<none>";
  const max = 3;
  const list: string[] = [];
  let count = 0;
  let more = false;
  for (const ss of subsets) {
    const addresses = arr(ss.addresses).map(obj);
    const ports = arr(ss.ports).map(obj);
    if (ports.length === 0) {
      // Headless services may have no ports.
      count += addresses.length;
      for (const a of addresses) {
        if (list.length === max) {
          more = true;
          break;
        }
        list.push(str(a.ip));
      }
      continue;
    }
    for (const port of ports) {
      count += addresses.length;
      for (const a of addresses) {
        if (list.length === max) {
          more = true;
          break;
        }
        list.push(joinHostPort(str(a.ip), num(port.port)));
      }
    }
  }
  const ret = list.join(",");
  return more ? `${ret} + ${count - max} more...` : ret;
}

const endpointsPrinter: Printer = {
  columns: [nameCol(), col("Endpoints", "string", "The set of all endpoints is the union of all subsets."), ageCol()],
  row: (ep, now) => [ep.metadata.name, formatEndpoints(ep), age(ep, now)],
};

const namespacePrinter: Printer = {
  columns: [nameCol(), col("Status", "string", "The status of the namespace"), ageCol()],
  row: (ns, now) => [ns.metadata.name, str(dig(ns.status, "phase")), age(ns, now)],
};

const configMapPrinter: Printer = {
  columns: [nameCol(), col("Data", "string", "Data contains the configuration data."), ageCol()],
  row: (cm, now) => [cm.metadata.name, Object.keys(obj(cm.data)).length + Object.keys(obj(cm.binaryData)).length, age(cm, now)],
};

const secretPrinter: Printer = {
  columns: [nameCol(), col("Type", "string", "Used to facilitate programmatic handling of secret data."), col("Data", "string", "Data contains the secret data."), ageCol()],
  row: (s, now) => [s.metadata.name, str(s.type), Object.keys(obj(s.data)).length, age(s, now)],
};

const serviceAccountPrinter: Printer = {
  columns: [nameCol(), col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."), ageCol()],
  row: (sa, now) => [sa.metadata.name, arr(sa.secrets).length, age(sa, now)],
};

/** rest.defaultTableConvertor: what kube-apiserver prints for kinds without a printer (CRDs among them). */
const defaultPrinter: Printer = {
  columns: [nameCol(), col("Created At", "date", CREATION_DOC)],
  row(o) {
    const t = parseTime(o.metadata.creationTimestamp);
    // Go formats the zero time as 0001-01-01T00:00:00Z.
    return [o.metadata.name, t === undefined ? "0001-01-01T00:00:00Z" : new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z")];
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Custom resources: additionalPrinterColumns evaluated as kubectl-dialect JSONPath (apiextensions tableconvertor).

type PathStep = { key: string } | { index: number };

/** Parses the simple JSONPaths CRDs allow: `.a.b`, `.a[0]`, `.a['k.with.dots']`, `.a\.b`. */
export function parseSimpleJsonPath(path: string): PathStep[] {
  let p = path.trim();
  if (p.startsWith("{") && p.endsWith("}")) p = p.slice(1, -1);
  const steps: PathStep[] = [];
  let i = 0;
  const bad = (): never => {
    throw new Error(`unsupported JSONPath ${JSON.stringify(path)}`);
  };
  while (i < p.length) {
    const ch = p[i];
    if (ch === ".") {
      i++;
      let key = "";
      while (i < p.length && p[i] !== "." && p[i] !== "[") {
        if (p[i] === "\\" && i + 1 < p.length) i++;
        key += p[i];
        i++;
      }
      if (key === "") bad();
      steps.push({ key });
    } else if (ch === "[") {
      const end = p.indexOf("]", i);
      if (end < 0) bad();
      const inner = p.slice(i + 1, end).trim();
      const quoted = /^'(.*)'$|^"(.*)"$/.exec(inner);
      if (quoted) steps.push({ key: quoted[1] ?? quoted[2] ?? "" });
      else if (/^-?\d+$/.test(inner)) steps.push({ index: Number(inner) });
      else bad();
      i = end + 1;
    } else bad();
  }
  return steps;
}

function evalPath(value: unknown, steps: PathStep[]): { found: boolean; value?: unknown } {
  let cur: unknown = value;
  for (const step of steps) {
    if ("key" in step) {
      if (cur === null || typeof cur !== "object" || Array.isArray(cur) || !(step.key in (cur as Json))) return { found: false };
      cur = (cur as Json)[step.key];
    } else {
      if (!Array.isArray(cur)) return { found: false };
      const idx = step.index < 0 ? cur.length + step.index : step.index;
      if (idx < 0 || idx >= cur.length) return { found: false };
      cur = cur[idx];
    }
  }
  return { found: true, value: cur };
}

/** How Go's fmt prints a decoded JSON value (what jsonpath's PrintResults writes for a string column). */
function goFormat(v: unknown): string {
  if (v === null || v === undefined) return "<nil>";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `[${v.map(goFormat).join(" ")}]`;
  const entries = Object.entries(v as Json).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `map[${entries.map(([k, val]) => `${k}:${goFormat(val)}`).join(" ")}]`;
}

/** cellForJSONValue: typed cells; a date becomes a human duration; a value of the wrong type becomes null. */
function customCell(type: PrinterColumn["type"], value: unknown, now: Date): Cell {
  if (value === null || value === undefined) return null;
  switch (type) {
    case "string":
      return goFormat(value);
    case "integer":
      return typeof value === "number" ? Math.trunc(value) : null;
    case "number":
      return typeof value === "number" ? value : null;
    case "boolean":
      return typeof value === "boolean" ? value : null;
    case "date": {
      if (typeof value !== "string") return null;
      const t = parseTime(value);
      return t === undefined ? "<invalid>" : humanDuration(now.getTime() - t);
    }
    default:
      return null;
  }
}

/** The columns a CRD version serves when it declares none (apiextensions serveDefaultColumnsIfEmpty). */
const DEFAULT_CUSTOM_COLUMNS: PrinterColumn[] = [{ name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }];

function customPrinter(def: ResourceDefinition): Printer {
  const declared = def.printerColumns && def.printerColumns.length > 0 ? def.printerColumns : DEFAULT_CUSTOM_COLUMNS;
  const paths = declared.map((c) => {
    try {
      return parseSimpleJsonPath(c.jsonPath ?? "");
    } catch {
      return undefined;
    }
  });
  return {
    columns: [
      nameCol(),
      ...declared.map((c) =>
        col(c.name, c.type, c.description ?? `Custom resource definition column (in JSONPath format): ${c.jsonPath ?? ""}`, c.priority ?? 0, c.format ?? ""),
      ),
    ],
    row(o, now) {
      return [
        o.metadata.name,
        ...declared.map((c, i) => {
          const steps = paths[i];
          if (!steps) return null;
          const r = evalPath(o, steps);
          return r.found ? customCell(c.type, r.value, now) : null;
        }),
      ];
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------

const BUILTIN: Record<string, Printer> = {
  "/services": servicePrinter,
  "/nodes": nodePrinter,
  "/pods": podPrinter,
  "/endpoints": endpointsPrinter,
  "/events": eventPrinter(coreEventFields),
  "/namespaces": namespacePrinter,
  "/configmaps": configMapPrinter,
  "/secrets": secretPrinter,
  "/serviceaccounts": serviceAccountPrinter,
  "apps/daemonsets": daemonSetPrinter,
  "apps/deployments": deploymentPrinter,
  "apps/replicasets": replicaSetPrinter,
  "events.k8s.io/events": eventPrinter(eventsV1Fields),
  "coordination.k8s.io/leases": leasePrinter,
  "discovery.k8s.io/endpointslices": endpointSlicePrinter,
};

function printerFor(def: ResourceDefinition): Printer {
  if (def.custom) return customPrinter(def);
  return BUILTIN[`${def.group}/${def.plural}`] ?? defaultPrinter;
}

/** The column definitions `kubectl get` shows for a kind (also what a watch's first Table event carries). */
export function tableColumns(def: ResourceDefinition): Table["columnDefinitions"] {
  return printerFor(def).columns.map((c) => ({ ...c }));
}

function rowObject(o: KubeObject, include: IncludeObject): unknown {
  if (include === "Object") return o;
  if (include === "None") return undefined;
  // kube-apiserver turns each row's object into a PartialObjectMetadata of the Table's group version.
  return { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: o.metadata };
}

/** Renders items of one kind as a meta.k8s.io/v1 Table, cell for cell what kube-apiserver 1.32 returns. */
export function toTable(def: ResourceDefinition, items: KubeObject[], opts: TableOptions): Table {
  const printer = printerFor(def);
  const metadata: Table["metadata"] = {};
  if (opts.resourceVersion !== undefined) metadata.resourceVersion = opts.resourceVersion;
  if (opts.continue !== undefined && opts.continue !== "") metadata.continue = opts.continue;
  if (opts.remainingItemCount !== undefined) metadata.remainingItemCount = opts.remainingItemCount;
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata,
    columnDefinitions: printer.columns.map((c) => ({ ...c })),
    rows: items.map((item) => {
      const object = rowObject(item, opts.includeObject);
      return object === undefined ? { cells: printer.row(item, opts.now) } : { cells: printer.row(item, opts.now), object };
    }),
  };
}
