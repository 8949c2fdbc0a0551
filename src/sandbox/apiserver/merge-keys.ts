// How each list of the kinds we serve merges, as the Go types declare it (k8s.io/api core/v1, apps/v1,
// discovery/v1, apiextensions/v1 types.go): the `patchStrategy`/`patchMergeKey` struct tags drive strategic merge
// patch, the `+listType`/`+listMapKey` markers drive server-side apply. The two usually agree; where they don't
// (NodeStatus.addresses: SMP merges by `type`, SSA treats it atomic because dual-stack nodes repeat a type), both are
// recorded. A list not listed here is atomic: replaced whole by a patch, owned whole by an applier — the default of
// both mechanisms, and what kube does for custom resources without x-kubernetes-list-type.
import type { ResourceDefinition } from "./types.js";

/** Server-side apply's view of a list (structured-merge-diff's list types). */
export type ListType = { type: "map"; keys: string[] } | { type: "set" } | { type: "atomic" };

export interface ListRule {
  /** Strategic merge patch: merge by `mergeKey` (maps) or as a set (primitives), or replace the whole list. */
  strategy: "merge" | "replace";
  /** The patchMergeKey for lists of maps merged by strategic merge patch. */
  mergeKey?: string;
  /** patchStrategy "merge,retainKeys" (volumes): items honour `$retainKeys`. */
  retainKeys?: boolean;
  /** Server-side apply's list type. */
  ssa: ListType;
}

const ATOMIC: ListRule = { strategy: "replace", ssa: { type: "atomic" } };
const byKey = (mergeKey: string, keys: string[] = [mergeKey], retainKeys = false): ListRule => ({
  strategy: "merge", mergeKey, ssa: { type: "map", keys }, ...(retainKeys ? { retainKeys } : {}),
});
const SET: ListRule = { strategy: "merge", ssa: { type: "set" } };

/** ObjectMeta (also a pod template's metadata): finalizers `+listType=set` with patchStrategy merge. */
const OBJECT_META: Record<string, ListRule> = {
  finalizers: SET,
  ownerReferences: byKey("uid"),
};

/** A container, init container or ephemeral container (core/v1 Container). */
const CONTAINER: Record<string, ListRule> = {
  // SMP merges by containerPort only; SSA keys by (containerPort, protocol).
  ports: byKey("containerPort", ["containerPort", "protocol"]),
  env: byKey("name"),
  volumeMounts: byKey("mountPath"),
  volumeDevices: byKey("devicePath"),
  "resources.claims": byKey("name"),
};

/** core/v1 PodSpec. */
const POD_SPEC: Record<string, ListRule> = {
  volumes: byKey("name", ["name"], true),
  containers: byKey("name"),
  initContainers: byKey("name"),
  ephemeralContainers: byKey("name"),
  imagePullSecrets: byKey("name"),
  hostAliases: byKey("ip"),
  topologySpreadConstraints: byKey("topologyKey", ["topologyKey", "whenUnsatisfiable"]),
  schedulingGates: byKey("name"),
  resourceClaims: byKey("name", ["name"], true),
  // No patchStrategy on tolerations: kube replaces them atomically, surprising as that is.
  tolerations: ATOMIC,
  ...prefixed("containers[]", CONTAINER),
  ...prefixed("initContainers[]", CONTAINER),
  ...prefixed("ephemeralContainers[]", CONTAINER),
};

/** core/v1 PodStatus. */
const POD_STATUS: Record<string, ListRule> = {
  conditions: byKey("type"),
  podIPs: byKey("ip"),
  hostIPs: byKey("ip"),
};

/** metav1.Condition lists (`+listType=map +listMapKey=type`, patchMergeKey type). */
const CONDITIONS: Record<string, ListRule> = { conditions: byKey("type") };

const RULES: Record<string, Record<string, ListRule>> = {
  "/Pod": { ...prefixed("spec", POD_SPEC), ...prefixed("status", POD_STATUS) },
  "/Service": {
    "spec.ports": byKey("port", ["port", "protocol"]),
    ...prefixed("status", CONDITIONS),
  },
  "/Node": {
    "spec.podCIDRs": SET,
    "spec.taints": ATOMIC,
    "status.conditions": byKey("type"),
    "status.addresses": { strategy: "merge", mergeKey: "type", ssa: { type: "atomic" } },
  },
  "/ServiceAccount": { secrets: byKey("name") },
  "/Namespace": { ...prefixed("status", CONDITIONS) },
  "apps/DaemonSet": {
    ...prefixed("spec.template.metadata", OBJECT_META),
    ...prefixed("spec.template.spec", POD_SPEC),
    ...prefixed("status", CONDITIONS),
  },
  "apps/Deployment": {
    ...prefixed("spec.template.metadata", OBJECT_META),
    ...prefixed("spec.template.spec", POD_SPEC),
    ...prefixed("status", CONDITIONS),
  },
  "apps/ReplicaSet": {
    ...prefixed("spec.template.metadata", OBJECT_META),
    ...prefixed("spec.template.spec", POD_SPEC),
    ...prefixed("status", CONDITIONS),
  },
  "apiextensions.k8s.io/CustomResourceDefinition": { ...prefixed("status", CONDITIONS) },
};

/**
 * Maps that server-side apply owns whole: `+structType=atomic` structs (metav1.LabelSelector) and
 * `+mapType=atomic` maps (ServiceSpec.selector, PodSpec.nodeSelector). FieldsV1 shows them as `f:selector: {}`.
 */
const ATOMIC_STRUCTS: Record<string, string[]> = {
  "/Service": ["spec.selector"],
  "/Pod": ["spec.nodeSelector"],
  "apps/DaemonSet": ["spec.selector", "spec.template.spec.nodeSelector"],
  "apps/Deployment": ["spec.selector", "spec.template.spec.nodeSelector"],
  "apps/ReplicaSet": ["spec.selector", "spec.template.spec.nodeSelector"],
  "policy/PodDisruptionBudget": ["spec.selector"],
};

function prefixed(prefix: string, rules: Record<string, ListRule>): Record<string, ListRule> {
  const out: Record<string, ListRule> = {};
  for (const [path, rule] of Object.entries(rules)) out[`${prefix}.${path}`] = rule;
  return out;
}

/**
 * Renders a path of field names as the rule tables spell it: list elements are "[]" steps, joined to the list's name
 * ("spec.template.spec.containers[].ports").
 */
export function rulePath(path: readonly string[]): string {
  return path.join(".").replace(/\.\[\]/g, "[]");
}

/** The rule for the list at `path` (field names, with "[]" for each list element crossed) in an object of `def`. */
export function listRule(def: Pick<ResourceDefinition, "group" | "kind" | "custom">, path: readonly string[]): ListRule {
  const key = rulePath(path);
  if (path[0] === "metadata" && path.length === 2) return OBJECT_META[path[1] ?? ""] ?? ATOMIC;
  if (def.custom) return ATOMIC;
  return RULES[`${def.group}/${def.kind}`]?.[key] ?? ATOMIC;
}

/** True when server-side apply treats the map at `path` as one value (structType=atomic). */
export function isAtomicStruct(def: Pick<ResourceDefinition, "group" | "kind" | "custom">, path: readonly string[]): boolean {
  if (def.custom) return false;
  return ATOMIC_STRUCTS[`${def.group}/${def.kind}`]?.includes(rulePath(path)) ?? false;
}

/** Key fields that kube defaults before keying list items (so a port without protocol keys as "TCP"). */
export const DEFAULTED_KEY_FIELDS: Record<string, unknown> = { protocol: "TCP" };

/** Maps with arbitrary keys (omitempty in Go), which an Update operation owns as a whole when it creates them. */
const GRANULAR_MAPS = new Set(["labels", "annotations", "data", "binaryData", "stringData"]);

/**
 * True when an Update operation that makes the map or list at `path` appear owns the node itself too, which
 * FieldsV1 shows as `".": {}` (kube's field manager compares against the zero value of the Go type: omitempty maps
 * and keyed lists are absent there, structs and non-omitempty lists such as containers are not). Apply operations
 * never own such nodes.
 */
export function ownsNodeOnUpdate(def: Pick<ResourceDefinition, "group" | "kind" | "custom">, path: readonly string[]): boolean {
  const last = path[path.length - 1] ?? "";
  if (GRANULAR_MAPS.has(last)) return true;
  if (last === "containers") return false;
  return listRule(def, path).ssa.type !== "atomic";
}
