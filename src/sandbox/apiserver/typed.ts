// Typed decoding of built-in kinds, as kube-apiserver does it: a request body is decoded into the Go struct of its
// kind, so a field of the wrong JSON type is a 400 decode error, and a field the type does not have is dropped, with
// fieldValidation deciding whether that is an error (Strict, kubectl's default), a Warning header (Warn, the
// server's default) or nothing (Ignore). The schema is @kubernetes/client-node's generated models (the public
// `attributeTypeMap` of every model class the package exports, V1Pod, V1ServiceSpec, ...), which mirror the API's
// OpenAPI; custom resources are not checked here. Only the package's root export is used: client-node has no
// "exports" map, so its dist/gen/* modules are reachable but private and may move in any release.
import { ApiError, type KubeObject, type ResourceDefinition } from "./types.js";

interface Attribute {
  baseName: string;
  type: string;
  format: string;
}

/** Model type name -> its attributes, for every type reachable from the served kinds. */
export interface TypeCatalog {
  attributes(type: string): Attribute[] | undefined;
}

/** The client-node model of each served built-in kind, by `group/Kind`. */
const MODELS: Record<string, string> = {
  "/Namespace": "V1Namespace",
  "/Node": "V1Node",
  "/Pod": "V1Pod",
  "/Service": "V1Service",
  "/Endpoints": "V1Endpoints",
  "/Event": "CoreV1Event",
  "/ConfigMap": "V1ConfigMap",
  "/ServiceAccount": "V1ServiceAccount",
  "apps/DaemonSet": "V1DaemonSet",
  "discovery.k8s.io/EndpointSlice": "V1EndpointSlice",
  "apps/Deployment": "V1Deployment",
  "apps/ReplicaSet": "V1ReplicaSet",
  "policy/PodDisruptionBudget": "V1PodDisruptionBudget",
  "rbac.authorization.k8s.io/ClusterRole": "V1ClusterRole",
  "rbac.authorization.k8s.io/ClusterRoleBinding": "V1ClusterRoleBinding",
  "rbac.authorization.k8s.io/Role": "V1Role",
  "rbac.authorization.k8s.io/RoleBinding": "V1RoleBinding",
  "coordination.k8s.io/Lease": "V1Lease",
  "events.k8s.io/Event": "EventsV1Event",
  "apiextensions.k8s.io/CustomResourceDefinition": "V1CustomResourceDefinition",
};

let catalog: Promise<TypeCatalog> | undefined;

/**
 * Loads the model catalog once per process: the whole of client-node (~0.6 s on Node.js 24 on a shared 2-core
 * machine, against ~0.2 s for the private models module alone; paid once, when an API server starts).
 */
export function loadTypeCatalog(): Promise<TypeCatalog> {
  catalog ??= import("@kubernetes/client-node").then((mod) => {
    const models = mod as unknown as Record<string, { attributeTypeMap?: unknown } | undefined>;
    return {
      attributes: (type: string) => {
        const map = models[type]?.attributeTypeMap;
        return Array.isArray(map) ? (map as Attribute[]) : undefined;
      },
    };
  });
  return catalog;
}

export type FieldValidation = "Strict" | "Warn" | "Ignore";

export interface TypedResult {
  object: KubeObject;
  /** Paths of dropped unknown fields, kube-style ("spec.ports[0].bogus"). */
  unknown: string[];
}

/** Go's name for a model type: the client-node prefix (V1, CoreV1, EventsV1, ...) dropped. */
function goName(type: string): string {
  return type.replace(/^(?:[A-Z][a-z]+)*V\d+(?:alpha\d+|beta\d+)?(?=[A-Z])/, "");
}

function jsonKind(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  if (typeof v === "boolean") return "bool";
  return typeof v === "object" ? "object" : typeof v;
}

function goType(type: string, format: string): string {
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) return `[]${goType(arr[1] as string, format)}`;
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return `map[string]${goType(map[1] as string, format)}`;
  if (type === "string") return format === "byte" ? "[]uint8" : "string";
  if (type === "number") return format === "int32" ? "int32" : format === "int64" ? "int64" : "float64";
  if (type === "boolean") return "bool";
  if (type === "Date" || type === "V1MicroTime") return "string";
  if (type === "any") return "interface {}";
  return `v1.${goName(type)}`;
}

class Decoder {
  readonly unknown: string[] = [];

  constructor(private readonly types: TypeCatalog, private readonly kind: string, private readonly apiVersion: string) {}

  /** Go's UnmarshalTypeError, wrapped the way the API server's decoder reports it. */
  private mismatch(value: unknown, struct: string, path: string, type: string, format: string): ApiError {
    const field = path.replace(/\[\d+\]/g, "").replace(/\["[^"]*"\]/g, "");
    return new ApiError(400, "BadRequest",
      `${this.kind} in version "${this.apiVersion.split("/").pop() ?? ""}" cannot be handled as a ${this.kind}: json: cannot unmarshal ${jsonKind(value)} into Go struct field ${struct}.${field} of type ${goType(type, format)}`);
  }

  value(value: unknown, type: string, format: string, struct: string, path: string): unknown {
    if (value === null) return null;
    const arr = /^Array<(.+)>$/.exec(type);
    if (arr) {
      if (!Array.isArray(value)) throw this.mismatch(value, struct, path, type, format);
      return value.map((v, i) => this.value(v, arr[1] as string, format, struct, `${path}[${i}]`));
    }
    const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
    if (map) {
      if (typeof value !== "object" || Array.isArray(value)) throw this.mismatch(value, struct, path, type, format);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        out[k] = this.value(v, map[1] as string, format, struct, `${path}[${JSON.stringify(k)}]`);
      }
      return out;
    }
    switch (type) {
      case "string":
      case "Date":
      case "V1MicroTime":
        if (typeof value !== "string") throw this.mismatch(value, struct, path, type, format);
        return value;
      case "number":
        if (typeof value !== "number" || ((format === "int32" || format === "int64") && !Number.isInteger(value))) {
          throw this.mismatch(value, struct, path, type, format);
        }
        return value;
      case "boolean":
        if (typeof value !== "boolean") throw this.mismatch(value, struct, path, type, format);
        return value;
      case "IntOrString":
        if (typeof value !== "string" && !(typeof value === "number" && Number.isInteger(value))) {
          throw new ApiError(400, "BadRequest",
            `${this.kind} in version "${this.apiVersion.split("/").pop() ?? ""}" cannot be handled as a ${this.kind}: json: cannot unmarshal ${jsonKind(value)} into Go value of type intstr.IntOrString`);
        }
        return value;
      case "any":
      case "object":
        return value;
      default:
        return this.struct(value, type, path);
    }
  }

  struct(value: unknown, type: string, path: string): unknown {
    const attrs = this.types.attributes(type);
    if (!attrs) return value; // not in the catalog: taken as is
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw this.mismatch(value, goName(type), path, type, "");
    }
    const byName = new Map(attrs.map((a) => [a.baseName, a]));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v === undefined) continue;
      const a = byName.get(k);
      const p = path ? `${path}.${k}` : k;
      if (!a) {
        this.unknown.push(p);
        continue;
      }
      // null leaves the Go field at its zero value, which JSON then omits (omitempty) or writes empty; undefined
      // (a key an in-process caller or a patch left without a value) is not in the JSON at all.
      if (v === null || v === undefined) continue;
      out[k] = this.value(v, a.type, a.format, goName(type), p);
    }
    return out;
  }
}

/** Whether the kind has a typed schema here (built-in kinds do; custom resources do not). */
export function hasTypedSchema(def: ResourceDefinition): boolean {
  return !def.custom && MODELS[`${def.group}/${def.kind}`] !== undefined;
}

/**
 * Decodes `obj` as its kind's Go type: unknown fields dropped and listed, type mismatches thrown as 400.
 * apiVersion and kind are kept as they are (TypeMeta is checked by the store).
 */
export function decodeTyped(types: TypeCatalog, def: ResourceDefinition, obj: KubeObject): TypedResult {
  const model = MODELS[`${def.group}/${def.kind}`];
  if (def.custom || !model) return { object: obj, unknown: [] };
  const apiVersion = def.group ? `${def.group}/${def.version}` : def.version;
  const d = new Decoder(types, def.kind, apiVersion);
  const decoded = d.struct(obj, model, "") as KubeObject;
  return { object: { ...decoded, apiVersion: obj.apiVersion, kind: obj.kind }, unknown: d.unknown };
}

/** kube-apiserver's message for unknown fields under fieldValidation=Strict. */
export function strictError(def: ResourceDefinition, unknown: string[], forPatch: boolean): ApiError {
  const list = unknown.map((p) => `unknown field ${JSON.stringify(p)}`).join(", ");
  const version = def.version;
  const message = forPatch ? `strict decoding error: ${list}`
    : `${def.kind} in version "${version}" cannot be handled as a ${def.kind}: strict decoding error: ${list}`;
  return new ApiError(400, "BadRequest", message);
}
