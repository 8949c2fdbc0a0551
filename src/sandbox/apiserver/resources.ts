// The kinds the sandbox API server serves: the built-in ones berth and kubectl use, plus custom resources that
// CustomResourceDefinitions register while the server runs. Each kind carries the handful of per-kind rules in
// which kube-apiserver's registries differ (generation tracking, create-on-update, what DELETE returns, status
// reset on create), so store.ts can stay generic.
import type { JsonSchema } from "./crd-schema.js";
import { ApiError, apiVersionOf, type KubeObject, type PrinterColumn, type ResourceDefinition } from "./types.js";

const ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/** A kind as the server serves it: the shared definition plus the rules of its kube-apiserver registry. */
export interface ServedResource {
  def: ResourceDefinition;
  /** Objects of all versions of a kind (and core/events.k8s.io Events) share one storage. */
  storageKey: string;
  categories: string[];
  /** metadata.generation set to 1 on create and bumped when anything but metadata and status changes. */
  tracksGeneration: boolean;
  /** PUT of a missing object creates it (endpoints, events, leases do; most kinds answer 404). */
  allowCreateOnUpdate: boolean;
  /** PUT without metadata.resourceVersion is accepted (custom resources require it). */
  allowUnconditionalUpdate: boolean;
  /** DELETE answers with the deleted object rather than a Status (ReturnDeletedObject: pods, services, namespaces, serviceaccounts). */
  returnDeletedObject: boolean;
  /** Fields beyond metadata.name/namespace usable in fieldSelector. */
  fieldLabels: readonly string[];
  /** Fills what kube-apiserver's strategy fills on create (defaults, initial status). */
  prepareCreate?(obj: KubeObject): void;
  /** Applied to every stored write (create, update, patch, status): kube's v1<->internal conversion round trip. */
  normalize?(obj: KubeObject): void;
  /**
   * A create-only review kind (SelfSubjectAccessReview, SelfSubjectReview): nothing is stored, the request is
   * answered with the object and its computed status.
   */
  review?(obj: KubeObject): KubeObject;
  /** A custom resource's structural schema (its CRD version's openAPIV3Schema): pruning, defaults, validation. */
  schema?: JsonSchema;
  /** Storage <-> served form, for kinds served in two shapes (events.k8s.io/v1 Events over core/v1 storage). */
  toStorage?(obj: KubeObject): KubeObject;
  fromStorage?(obj: KubeObject): KubeObject;
}

export interface ApiGroupVersions {
  name: string;
  versions: string[];
  preferredVersion: string;
}

interface BuiltinSpec {
  group: string;
  version: string;
  kind: string;
  plural: string;
  shortNames?: string[];
  namespaced?: boolean;
  subresources?: string[];
  verbs?: string[];
  categories?: string[];
  tracksGeneration?: boolean;
  allowCreateOnUpdate?: boolean;
  returnDeletedObject?: boolean;
  fieldLabels?: string[];
  storageKey?: string;
  prepareCreate?(obj: KubeObject): void;
  normalize?(obj: KubeObject): void;
  review?(obj: KubeObject): KubeObject;
  toStorage?(obj: KubeObject): KubeObject;
  fromStorage?(obj: KubeObject): KubeObject;
}

function builtin(spec: BuiltinSpec): ServedResource {
  const def: ResourceDefinition = {
    group: spec.group,
    version: spec.version,
    kind: spec.kind,
    listKind: `${spec.kind}List`,
    plural: spec.plural,
    singular: spec.kind.toLowerCase(),
    shortNames: spec.shortNames ?? [],
    namespaced: spec.namespaced ?? true,
    subresources: spec.subresources ?? [],
    verbs: spec.verbs ?? ALL_VERBS,
  };
  return {
    def,
    storageKey: spec.storageKey ?? `${spec.group}/${spec.plural}`,
    categories: spec.categories ?? [],
    tracksGeneration: spec.tracksGeneration ?? false,
    allowCreateOnUpdate: spec.allowCreateOnUpdate ?? false,
    allowUnconditionalUpdate: true,
    returnDeletedObject: spec.returnDeletedObject ?? false,
    fieldLabels: spec.fieldLabels ?? [],
    ...(spec.prepareCreate ? { prepareCreate: spec.prepareCreate } : {}),
    ...(spec.normalize ? { normalize: spec.normalize } : {}),
    ...(spec.review ? { review: spec.review } : {}),
    ...(spec.toStorage ? { toStorage: spec.toStorage } : {}),
    ...(spec.fromStorage ? { fromStorage: spec.fromStorage } : {}),
  };
}

function record(obj: KubeObject, field: string): Record<string, unknown> {
  const value = obj[field];
  if (value && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
  const fresh: Record<string, unknown> = {};
  obj[field] = fresh;
  return fresh;
}

function setDefault(target: Record<string, unknown>, key: string, value: unknown): void {
  if (target[key] === undefined) target[key] = value;
}

/** The pod-spec defaults kube-apiserver fills (pkg/apis/core/v1/defaults.go), for pods and pod templates. */
export function defaultPodSpec(spec: Record<string, unknown>): void {
  setDefault(spec, "restartPolicy", "Always");
  setDefault(spec, "terminationGracePeriodSeconds", 30);
  setDefault(spec, "dnsPolicy", "ClusterFirst");
  setDefault(spec, "securityContext", {});
  setDefault(spec, "schedulerName", "default-scheduler");
  setDefault(spec, "enableServiceLinks", true);
  for (const field of ["containers", "initContainers"]) {
    const containers = spec[field];
    if (!Array.isArray(containers)) continue;
    for (const c of containers as Record<string, unknown>[]) {
      setDefault(c, "terminationMessagePath", "/dev/termination-log");
      setDefault(c, "terminationMessagePolicy", "File");
      const image = typeof c.image === "string" ? c.image : "";
      // kube defaults imagePullPolicy to Always for :latest or untagged images, IfNotPresent otherwise.
      const tag = image.includes("@") ? "digest" : (image.split("/").pop() ?? "").split(":")[1];
      setDefault(c, "imagePullPolicy", tag === undefined || tag === "latest" ? "Always" : "IfNotPresent");
      setDefault(c, "resources", {});
      const ports = c.ports;
      if (Array.isArray(ports)) for (const p of ports as Record<string, unknown>[]) setDefault(p, "protocol", "TCP");
    }
  }
}

function preparePod(obj: KubeObject): void {
  defaultPodSpec(record(obj, "spec"));
  // pod strategy PrepareForCreate: status starts as Pending whatever the client sent.
  obj.status = { phase: "Pending", qosClass: "BestEffort" };
}

/**
 * Pod status IPs as the v1 <-> internal conversion leaves them (pkg/apis/core/v1/conversion.go): a lone podIP
 * becomes podIPs[0] and podIPs[0] becomes podIP; the same for hostIP/hostIPs.
 */
function normalizePod(obj: KubeObject): void {
  const status = obj.status;
  if (!status || typeof status !== "object") return;
  const st = status as Record<string, unknown>;
  for (const [single, plural] of [["podIP", "podIPs"], ["hostIP", "hostIPs"]] as const) {
    const list = Array.isArray(st[plural]) ? (st[plural] as { ip?: string }[]) : [];
    if (list.length === 0 && typeof st[single] === "string" && st[single] !== "") st[plural] = [{ ip: st[single] }];
    else if (list.length > 0 && (st[single] === undefined || st[single] === "")) st[single] = list[0]?.ip;
  }
}

/**
 * A core/v1 Event as its Go type serialises it: struct fields without omitempty are always present, as zero
 * values (metav1.Time and MicroTime zero are `null`, an empty EventSource is `{}`, plain strings are `""`).
 */
function normalizeCoreEvent(obj: KubeObject): void {
  for (const [field, zero] of [["involvedObject", {}], ["source", {}], ["firstTimestamp", null], ["lastTimestamp", null],
    ["eventTime", null], ["reportingComponent", ""], ["reportingInstance", ""]] as const) {
    if (obj[field] === undefined) obj[field] = structuredClone(zero);
  }
}

/** kubectl auth can-i: the sandbox has one all-powerful token, so every access review is allowed. */
function reviewAccess(obj: KubeObject): KubeObject {
  return { ...obj, status: { allowed: true, reason: "the sandbox API server's token may do everything" } };
}

/** kubectl auth whoami: the one user behind the sandbox's token. */
function reviewSelf(obj: KubeObject): KubeObject {
  return { ...obj, status: { userInfo: { username: "berth-sandbox-admin", groups: ["system:masters", "system:authenticated"] } } };
}

function prepareDaemonSet(obj: KubeObject): void {
  const spec = record(obj, "spec");
  setDefault(spec, "revisionHistoryLimit", 10);
  setDefault(spec, "updateStrategy", { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
  const template = spec.template && typeof spec.template === "object" ? (spec.template as Record<string, unknown>) : undefined;
  if (template) {
    const podSpec = template.spec && typeof template.spec === "object" ? (template.spec as Record<string, unknown>) : {};
    template.spec = podSpec;
    defaultPodSpec(podSpec);
    setDefault(template, "metadata", {});
  }
  obj.status = { currentNumberScheduled: 0, numberMisscheduled: 0, desiredNumberScheduled: 0, numberReady: 0 };
}

/** apps/v1 Deployment defaults (pkg/apis/apps/v1/defaults.go SetDefaults_Deployment) and the empty initial status. */
function prepareDeployment(obj: KubeObject): void {
  const spec = record(obj, "spec");
  const child = (parent: Record<string, unknown>, key: string) => record(parent as KubeObject, key);
  setDefault(spec, "replicas", 1);
  const strategy = child(spec, "strategy");
  setDefault(strategy, "type", "RollingUpdate");
  if (strategy.type === "RollingUpdate") {
    const rolling = child(strategy, "rollingUpdate");
    setDefault(rolling, "maxUnavailable", "25%");
    setDefault(rolling, "maxSurge", "25%");
  }
  setDefault(spec, "revisionHistoryLimit", 10);
  setDefault(spec, "progressDeadlineSeconds", 600);
  const template = child(spec, "template");
  setDefault(template, "metadata", {});
  defaultPodSpec(child(template, "spec"));
  obj.status = {};
}

/** apps/v1 ReplicaSet defaults (SetDefaults_ReplicaSet: replicas 1) and the strategy's reset status. */
function prepareReplicaSet(obj: KubeObject): void {
  const spec = record(obj, "spec");
  setDefault(spec, "replicas", 1);
  const template = record(spec as KubeObject, "template");
  setDefault(template, "metadata", {});
  defaultPodSpec(record(template as KubeObject, "spec"));
  obj.status = { replicas: 0 };
}

/** policy/v1 PodDisruptionBudget: the strategy resets status; its counters are not omitempty. */
function preparePodDisruptionBudget(obj: KubeObject): void {
  obj.status = { disruptionsAllowed: 0, currentHealthy: 0, desiredHealthy: 0, expectedPods: 0 };
}

function prepareNamespace(obj: KubeObject): void {
  const spec = record(obj, "spec");
  // namespace strategy: the "kubernetes" finalizer is what the namespace controller removes once content is gone.
  const finalizers = Array.isArray(spec.finalizers) ? (spec.finalizers as string[]) : [];
  if (!finalizers.includes("kubernetes")) finalizers.push("kubernetes");
  spec.finalizers = finalizers;
  obj.status = { phase: "Active" };
  // Since 1.22 every namespace carries this label, set by the API server.
  obj.metadata.labels = { ...(obj.metadata.labels ?? {}), "kubernetes.io/metadata.name": obj.metadata.name ?? "" };
}

function prepareService(obj: KubeObject): void {
  obj.status = { loadBalancer: {} };
}

function prepareEndpointSlice(obj: KubeObject): void {
  const endpoints = obj.endpoints;
  if (Array.isArray(endpoints)) {
    for (const e of endpoints as Record<string, unknown>[]) {
      // discovery/v1 defaults: ready is assumed true when unset (KEP-1672).
      const conditions = e.conditions && typeof e.conditions === "object" ? (e.conditions as Record<string, unknown>) : {};
      e.conditions = conditions;
    }
  }
  const ports = obj.ports;
  if (Array.isArray(ports)) for (const p of ports as Record<string, unknown>[]) setDefault(p, "protocol", "TCP");
}

/**
 * Paths of `omitempty` maps and lists in the Go types of the built-in kinds: kube-apiserver decodes every write into
 * the typed object and encodes it again, so an emptied one is absent from what it returns (and what watchers see),
 * not `{}` or `[]`. `[]` steps into every element of a list. Metadata is handled for all kinds by the store.
 */
const POD_SPEC_OMITEMPTY = ["nodeSelector", "tolerations", "volumes", "initContainers", "imagePullSecrets",
  "containers[].env", "containers[].ports", "containers[].args", "containers[].command", "containers[].volumeMounts",
  "containers[].envFrom"];
const OMITEMPTY: Record<string, string[]> = {
  "/configmaps": ["data", "binaryData"],
  "/services": ["spec.selector", "spec.externalIPs", "spec.loadBalancerSourceRanges", "spec.ports",
    "status.loadBalancer.ingress", "status.conditions"],
  "/pods": POD_SPEC_OMITEMPTY.map((p) => `spec.${p}`),
  "apps/daemonsets": [...POD_SPEC_OMITEMPTY.map((p) => `spec.template.spec.${p}`), "spec.template.metadata.labels",
    "spec.template.metadata.annotations", "status.conditions"],
  "apps/deployments": [...POD_SPEC_OMITEMPTY.map((p) => `spec.template.spec.${p}`), "spec.template.metadata.labels",
    "spec.template.metadata.annotations", "status.conditions"],
  "apps/replicasets": [...POD_SPEC_OMITEMPTY.map((p) => `spec.template.spec.${p}`), "spec.template.metadata.labels",
    "spec.template.metadata.annotations", "status.conditions"],
  "/endpoints": ["subsets"],
  "/nodes": ["spec.taints", "spec.podCIDRs", "status.addresses", "status.conditions"],
};

function pruneAt(value: unknown, steps: string[]): void {
  if (!value || typeof value !== "object") return;
  const [step, ...rest] = steps as [string, ...string[]];
  const list = step.endsWith("[]");
  const key = list ? step.slice(0, -2) : step;
  const rec = value as Record<string, unknown>;
  const child = rec[key];
  if (rest.length === 0) {
    const empty = child === null || (Array.isArray(child) && child.length === 0) ||
      (child !== undefined && typeof child === "object" && !Array.isArray(child) && Object.keys(child as object).length === 0);
    if (empty) delete rec[key];
    return;
  }
  if (list) {
    if (Array.isArray(child)) for (const item of child) pruneAt(item, rest);
  } else {
    pruneAt(child, rest);
  }
}

/** Drops the emptied omitempty fields of a built-in kind (see OMITEMPTY). Custom resources keep what they hold. */
export function pruneOmitEmpty(storageKey: string, obj: KubeObject): void {
  for (const path of OMITEMPTY[storageKey] ?? []) pruneAt(obj, path.split("."));
}

// events.k8s.io/v1 Events are core/v1 Events in another shape; both APIs read and write the same objects
// (kube-apiserver stores them once), so `kubectl describe` sees what a controller wrote through events.k8s.io.
const EVENT_FIELD_PAIRS: [string, string][] = [
  ["regarding", "involvedObject"],
  ["note", "message"],
  ["reportingController", "reportingComponent"],
  ["deprecatedSource", "source"],
  ["deprecatedFirstTimestamp", "firstTimestamp"],
  ["deprecatedLastTimestamp", "lastTimestamp"],
  ["deprecatedCount", "count"],
];
const EVENT_SAME_FIELDS = ["eventTime", "series", "action", "reason", "type", "related", "reportingInstance"];

export function eventV1ToCore(obj: KubeObject): KubeObject {
  const out: KubeObject = { apiVersion: "v1", kind: "Event", metadata: obj.metadata };
  for (const [v1, core] of EVENT_FIELD_PAIRS) if (obj[v1] !== undefined) out[core] = obj[v1];
  for (const f of EVENT_SAME_FIELDS) if (obj[f] !== undefined) out[f] = obj[f];
  return out;
}

export function eventCoreToV1(obj: KubeObject): KubeObject {
  const out: KubeObject = { apiVersion: "events.k8s.io/v1", kind: "Event", metadata: obj.metadata };
  for (const [v1, core] of EVENT_FIELD_PAIRS) if (obj[core] !== undefined) out[v1] = obj[core];
  for (const f of EVENT_SAME_FIELDS) if (obj[f] !== undefined) out[f] = obj[f];
  // Unlike core/v1's, events.k8s.io/v1's reporting strings are omitempty.
  for (const f of ["reportingController", "reportingInstance"]) if (out[f] === "") delete out[f];
  return out;
}

function builtins(): ServedResource[] {
  return [
    builtin({ group: "", version: "v1", kind: "Namespace", plural: "namespaces", shortNames: ["ns"], namespaced: false,
      subresources: ["status", "finalize"], verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
      returnDeletedObject: true, fieldLabels: ["status.phase"], prepareCreate: prepareNamespace }),
    builtin({ group: "", version: "v1", kind: "Node", plural: "nodes", shortNames: ["no"], namespaced: false,
      subresources: ["status"], fieldLabels: ["spec.unschedulable"] }),
    builtin({ group: "", version: "v1", kind: "Pod", plural: "pods", shortNames: ["po"], subresources: ["binding", "eviction", "log", "status"],
      categories: ["all"], returnDeletedObject: true, prepareCreate: preparePod, normalize: normalizePod,
      fieldLabels: ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"] }),
    builtin({ group: "", version: "v1", kind: "Service", plural: "services", shortNames: ["svc"],
      subresources: ["status"], categories: ["all"], returnDeletedObject: true, prepareCreate: prepareService,
      fieldLabels: ["spec.clusterIP", "spec.type"] }),
    builtin({ group: "", version: "v1", kind: "Endpoints", plural: "endpoints", shortNames: ["ep"],
      allowCreateOnUpdate: true }),
    builtin({ group: "", version: "v1", kind: "Event", plural: "events", shortNames: ["ev"], allowCreateOnUpdate: true,
      normalize: normalizeCoreEvent,
      fieldLabels: ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
        "reportingComponent", "source", "type"] }),
    builtin({ group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", shortNames: ["cm"] }),
    builtin({ group: "", version: "v1", kind: "ServiceAccount", plural: "serviceaccounts", shortNames: ["sa"],
      returnDeletedObject: true }),
    builtin({ group: "apps", version: "v1", kind: "DaemonSet", plural: "daemonsets", shortNames: ["ds"],
      subresources: ["status"], categories: ["all"], tracksGeneration: true, prepareCreate: prepareDaemonSet }),
    // Deployments and ReplicaSets are acted on by the sandbox's controller stand-ins (cluster/deployments.ts,
    // replicasets.ts); the server itself only stores them. RBAC objects and PodDisruptionBudgets are stored only.
    builtin({ group: "apps", version: "v1", kind: "Deployment", plural: "deployments", shortNames: ["deploy"],
      subresources: ["status", "scale"], categories: ["all"], tracksGeneration: true, prepareCreate: prepareDeployment }),
    builtin({ group: "apps", version: "v1", kind: "ReplicaSet", plural: "replicasets", shortNames: ["rs"],
      subresources: ["status", "scale"], categories: ["all"], tracksGeneration: true, prepareCreate: prepareReplicaSet }),
    builtin({ group: "policy", version: "v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets", shortNames: ["pdb"],
      subresources: ["status"], tracksGeneration: true, prepareCreate: preparePodDisruptionBudget }),
    builtin({ group: "rbac.authorization.k8s.io", version: "v1", kind: "ClusterRole", plural: "clusterroles", namespaced: false }),
    builtin({ group: "rbac.authorization.k8s.io", version: "v1", kind: "ClusterRoleBinding", plural: "clusterrolebindings", namespaced: false }),
    builtin({ group: "rbac.authorization.k8s.io", version: "v1", kind: "Role", plural: "roles" }),
    builtin({ group: "rbac.authorization.k8s.io", version: "v1", kind: "RoleBinding", plural: "rolebindings" }),
    builtin({ group: "discovery.k8s.io", version: "v1", kind: "EndpointSlice", plural: "endpointslices",
      prepareCreate: prepareEndpointSlice, fieldLabels: ["addressType"] }),
    builtin({ group: "coordination.k8s.io", version: "v1", kind: "Lease", plural: "leases", allowCreateOnUpdate: true }),
    builtin({ group: "events.k8s.io", version: "v1", kind: "Event", plural: "events", shortNames: ["ev"],
      allowCreateOnUpdate: true, storageKey: "/events", fromStorage: eventCoreToV1,
      toStorage: (obj) => {
        const core = eventV1ToCore(obj);
        normalizeCoreEvent(core);
        return core;
      },
      fieldLabels: ["regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid", "regarding.apiVersion",
        "regarding.resourceVersion", "regarding.fieldPath", "reason", "reportingController", "type"] }),
    builtin({ group: "authorization.k8s.io", version: "v1", kind: "SelfSubjectAccessReview",
      plural: "selfsubjectaccessreviews", namespaced: false, verbs: ["create"], review: reviewAccess }),
    builtin({ group: "authentication.k8s.io", version: "v1", kind: "SelfSubjectReview",
      plural: "selfsubjectreviews", namespaced: false, verbs: ["create"], review: reviewSelf }),
    builtin({ group: "apiextensions.k8s.io", version: "v1", kind: "CustomResourceDefinition",
      plural: "customresourcedefinitions", shortNames: ["crd", "crds"], namespaced: false, subresources: ["status"],
      categories: ["api-extensions"], tracksGeneration: true }),
  ];
}

/** Where a request points: API group, version and resource plural. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
}

/**
 * All kinds currently served. Built-ins are fixed; custom resources come and go with their CRDs. Discovery, the
 * router and the store all read from one registry instance, so a CRD is served everywhere the moment it exists.
 */
export class ResourceRegistry {
  private readonly byPath = new Map<string, ServedResource>();

  constructor() {
    for (const r of builtins()) this.add(r);
  }

  private static key(group: string, version: string, plural: string): string {
    return `${group}/${version}/${plural}`;
  }

  add(r: ServedResource): void {
    this.byPath.set(ResourceRegistry.key(r.def.group, r.def.version, r.def.plural), r);
  }

  lookup(ref: ResourceRef): ServedResource | undefined {
    return this.byPath.get(ResourceRegistry.key(ref.group, ref.version, ref.plural));
  }

  /** The served resource for an apiVersion + kind as written in an object (ownerReferences, involvedObject). */
  byKind(apiVersion: string, kind: string): ServedResource | undefined {
    for (const r of this.byPath.values()) if (apiVersionOf(r.def) === apiVersion && r.def.kind === kind) return r;
    return undefined;
  }

  /** Every served resource of one storage (all versions of one kind). */
  byStorage(storageKey: string): ServedResource[] {
    return [...this.byPath.values()].filter((r) => r.storageKey === storageKey);
  }

  all(): ServedResource[] {
    return [...this.byPath.values()];
  }

  /** Resources of one group/version, in registration order. */
  inGroupVersion(group: string, version: string): ServedResource[] {
    return this.all().filter((r) => r.def.group === group && r.def.version === version);
  }

  /** Non-core groups with their versions, built-ins first and in a stable order (as /apis lists them). */
  groups(): ApiGroupVersions[] {
    const out = new Map<string, ApiGroupVersions>();
    for (const r of this.byPath.values()) {
      if (r.def.group === "") continue;
      let g = out.get(r.def.group);
      if (!g) {
        g = { name: r.def.group, versions: [], preferredVersion: r.def.version };
        out.set(r.def.group, g);
      }
      if (!g.versions.includes(r.def.version)) g.versions.push(r.def.version);
    }
    for (const g of out.values()) {
      g.versions.sort(compareKubeVersions);
      g.preferredVersion = g.versions[0] ?? g.preferredVersion;
    }
    return [...out.values()];
  }

  /** Registers the versions a CRD serves, replacing what it served before. */
  registerCrd(crd: KubeObject): ServedResource[] {
    this.unregisterCrd(crd);
    const served = resourcesFromCrd(crd);
    for (const r of served) this.add(r);
    return served;
  }

  unregisterCrd(crd: KubeObject): void {
    const spec = (crd.spec ?? {}) as { group?: string; names?: { plural?: string } };
    for (const [key, r] of this.byPath) {
      if (r.def.custom && r.def.group === spec.group && r.def.plural === spec.names?.plural) this.byPath.delete(key);
    }
  }
}

/**
 * Orders versions the way kube-apiserver's discovery does (version.CompareKubeAwareVersionStrings): GA before
 * beta before alpha, higher numbers first, non-kube-like names last in alphabetical order.
 */
export function compareKubeVersions(a: string, b: string): number {
  const parse = (v: string): [number, number, number] | undefined => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return undefined;
    const stability = m[2] === undefined ? 3 : m[2] === "beta" ? 2 : 1;
    return [stability, Number(m[1]), Number(m[3] ?? 0)];
  };
  const pa = parse(a);
  const pb = parse(b);
  if (pa && pb) {
    if (pa[0] !== pb[0]) return pb[0] - pa[0];
    if (pa[1] !== pb[1]) return pb[1] - pa[1];
    return pb[2] - pa[2];
  }
  if (pa) return -1;
  if (pb) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

interface CrdVersion {
  name?: string;
  served?: boolean;
  storage?: boolean;
  schema?: { openAPIV3Schema?: JsonSchema };
  subresources?: { status?: unknown; scale?: unknown };
  additionalPrinterColumns?: { name?: string; type?: string; format?: string; description?: string; priority?: number; jsonPath?: string }[];
}

interface CrdSpec {
  group?: string;
  scope?: string;
  names?: { plural?: string; singular?: string; kind?: string; listKind?: string; shortNames?: string[]; categories?: string[] };
  versions?: CrdVersion[];
}

const PRINTER_TYPES = new Set(["string", "integer", "number", "boolean", "date"]);

/** The served resources a CRD defines, one per served version. */
export function resourcesFromCrd(crd: KubeObject): ServedResource[] {
  const spec = (crd.spec ?? {}) as CrdSpec;
  const names = spec.names ?? {};
  const group = spec.group ?? "";
  const plural = names.plural ?? "";
  const kind = names.kind ?? "";
  const out: ServedResource[] = [];
  for (const v of spec.versions ?? []) {
    if (!v.served || !v.name) continue;
    const subresources: string[] = [];
    if (v.subresources?.status !== undefined) subresources.push("status");
    if (v.subresources?.scale !== undefined) subresources.push("scale");
    const printerColumns: PrinterColumn[] | undefined = v.additionalPrinterColumns?.map((c) => ({
      name: c.name ?? "",
      type: (PRINTER_TYPES.has(c.type ?? "") ? c.type : "string") as PrinterColumn["type"],
      ...(c.format !== undefined ? { format: c.format } : {}),
      ...(c.description !== undefined ? { description: c.description } : {}),
      ...(c.priority !== undefined ? { priority: c.priority } : {}),
      ...(c.jsonPath !== undefined ? { jsonPath: c.jsonPath } : {}),
    }));
    out.push({
      def: {
        group,
        version: v.name,
        kind,
        listKind: names.listKind ?? `${kind}List`,
        plural,
        singular: names.singular ?? kind.toLowerCase(),
        shortNames: names.shortNames ?? [],
        namespaced: spec.scope !== "Cluster",
        subresources,
        verbs: ALL_VERBS,
        ...(printerColumns ? { printerColumns } : {}),
        custom: true,
      },
      storageKey: `${group}/${plural}`,
      categories: names.categories ?? [],
      tracksGeneration: true,
      allowCreateOnUpdate: false,
      allowUnconditionalUpdate: false,
      // apiextensions-apiserver's customresource store leaves ReturnDeletedObject unset: DELETE answers a Status.
      returnDeletedObject: false,
      fieldLabels: [],
      ...(subresources.includes("status") ? { prepareCreate: (obj: KubeObject) => { delete obj.status; } } : {}),
      ...(v.schema?.openAPIV3Schema ? { schema: v.schema.openAPIV3Schema } : {}),
    });
  }
  return out;
}

/** kube-apiserver's CRD strategy fills status on create: accepted names, conditions and stored versions. */
export function crdStatus(crd: KubeObject, now: string): Record<string, unknown> {
  const spec = (crd.spec ?? {}) as CrdSpec;
  const names = spec.names ?? {};
  const storage = (spec.versions ?? []).filter((v) => v.storage).map((v) => v.name);
  const acceptedNames: Record<string, unknown> = {
    plural: names.plural,
    singular: names.singular ?? (names.kind ?? "").toLowerCase(),
    kind: names.kind,
    listKind: names.listKind ?? `${names.kind ?? ""}List`,
  };
  if (names.shortNames?.length) acceptedNames.shortNames = names.shortNames;
  if (names.categories?.length) acceptedNames.categories = names.categories;
  return {
    acceptedNames,
    conditions: [
      { type: "NamesAccepted", status: "True", lastTransitionTime: now, reason: "NoConflicts",
        message: "no conflicts found" },
      { type: "Established", status: "True", lastTransitionTime: now, reason: "InitialNamesAccepted",
        message: "the initial names have been accepted" },
    ],
    storedVersions: storage,
  };
}

/** The checks kube-apiserver makes on a CRD that decide whether it can be served at all. */
export function checkCrd(crd: KubeObject): void {
  const spec = (crd.spec ?? {}) as CrdSpec;
  const causes: { reason: string; message: string; field: string }[] = [];
  const plural = spec.names?.plural;
  const group = spec.group;
  if (!group) causes.push({ reason: "FieldValueRequired", message: "Required value", field: "spec.group" });
  if (!plural) causes.push({ reason: "FieldValueRequired", message: "Required value", field: "spec.names.plural" });
  if (!spec.names?.kind) causes.push({ reason: "FieldValueRequired", message: "Required value", field: "spec.names.kind" });
  if (plural && group && crd.metadata.name !== `${plural}.${group}`) {
    causes.push({ reason: "FieldValueInvalid", field: "metadata.name",
      message: `Invalid value: "${crd.metadata.name ?? ""}": must be spec.names.plural+"."+spec.group` });
  }
  if (spec.scope !== "Namespaced" && spec.scope !== "Cluster") {
    causes.push({ reason: "FieldValueNotSupported", field: "spec.scope",
      message: `Unsupported value: "${spec.scope ?? ""}": supported values: "Cluster", "Namespaced"` });
  }
  const versions = spec.versions ?? [];
  if (versions.length === 0) causes.push({ reason: "FieldValueRequired", message: "Required value", field: "spec.versions" });
  if (versions.filter((v) => v.storage).length !== 1) {
    causes.push({ reason: "FieldValueInvalid", field: "spec.versions",
      message: "Invalid value: must have exactly one version marked as storage version" });
  }
  if (causes.length > 0) {
    const name = crd.metadata.name ?? "";
    throw new ApiError(422, "Invalid",
      `CustomResourceDefinition.apiextensions.k8s.io "${name}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(", ")}`,
      { name, group: "apiextensions.k8s.io", kind: "CustomResourceDefinition", causes });
  }
}
