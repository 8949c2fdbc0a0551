// What apiextensions-apiserver does with a CRD's structural schema on every write of a custom resource: prune fields
// the schema does not know (unless x-kubernetes-preserve-unknown-fields), drop non-nullable nulls, apply `default`s,
// then validate types, required fields, enums, bounds, lengths and patterns, answering 422 with the same field paths
// and messages (k8s.io/kube-openapi validate errors as apiextensions reports them). CEL rules
// (x-kubernetes-validations) and formats are not checked.
import type { StatusCause } from "./types.js";

export interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-int-or-string"?: boolean;
  "x-kubernetes-embedded-resource"?: boolean;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function childPath(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/**
 * Prunes unknown fields and non-nullable nulls, then applies defaults, in place. Returns the pruned paths (for
 * fieldValidation). At the root, apiVersion, kind and metadata are always kept.
 */
export function pruneAndDefault(schema: JsonSchema, obj: Obj): string[] {
  const pruned: string[] = [];
  walk(obj, schema, "", true, pruned);
  return pruned;
}

function walk(value: unknown, schema: JsonSchema, path: string, root: boolean, pruned: string[]): void {
  if (Array.isArray(value)) {
    if (schema.items) value.forEach((v, i) => walk(v, schema.items as JsonSchema, `${path}[${i}]`, false, pruned));
    return;
  }
  if (!isObj(value)) return;
  const props = schema.properties;
  const extra = schema.additionalProperties;
  const preserve = schema["x-kubernetes-preserve-unknown-fields"] === true;
  const embedded = schema["x-kubernetes-embedded-resource"] === true;
  for (const key of Object.keys(value)) {
    if ((root || embedded) && (key === "apiVersion" || key === "kind" || key === "metadata")) continue;
    const sub = props?.[key] ?? (isObj(extra) ? (extra as JsonSchema) : undefined);
    const p = childPath(path, key);
    if (!sub) {
      if (!preserve && extra !== true) {
        delete value[key];
        pruned.push(p);
      }
      continue;
    }
    if (value[key] === null && !sub.nullable) {
      // apiextensions drops nulls of non-nullable fields before defaulting.
      delete value[key];
      continue;
    }
    walk(value[key], sub, p, false, pruned);
  }
  if (props) {
    for (const [key, sub] of Object.entries(props)) {
      if (value[key] === undefined && sub.default !== undefined) {
        value[key] = structuredClone(sub.default);
        walk(value[key], sub, childPath(path, key), false, pruned);
      }
    }
  }
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function quote(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
}

/** Validates `obj` against the schema; returns kube's field causes (empty when valid). */
export function validateSchema(schema: JsonSchema, obj: Obj): StatusCause[] {
  const causes: StatusCause[] = [];
  check(obj, schema, "", true, causes);
  return causes;
}

function typeMatches(v: unknown, schema: JsonSchema): boolean {
  if (schema["x-kubernetes-int-or-string"]) return typeof v === "string" || (typeof v === "number" && Number.isInteger(v));
  if (v === null) return schema.nullable === true;
  switch (schema.type) {
    case undefined:
      return true;
    case "object":
      return isObj(v);
    case "array":
      return Array.isArray(v);
    case "string":
      return typeof v === "string";
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "number":
      return typeof v === "number";
    case "boolean":
      return typeof v === "boolean";
    default:
      return true;
  }
}

function check(v: unknown, schema: JsonSchema, path: string, root: boolean, causes: StatusCause[]): void {
  const field = path;
  if (!root && !typeMatches(v, schema)) {
    const actual = typeName(v);
    causes.push({ reason: "FieldValueTypeInvalid", field,
      message: `Invalid value: "${actual}": ${field} in body must be of type ${schema.type ?? "object"}: "${actual}"` });
    return;
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
    causes.push({ reason: "FieldValueNotSupported", field,
      message: `Unsupported value: ${quote(v)}: supported values: ${schema.enum.map(quote).join(", ")}` });
  }
  if (typeof v === "number") {
    if (schema.minimum !== undefined && (schema.exclusiveMinimum ? v <= schema.minimum : v < schema.minimum)) {
      causes.push({ reason: "FieldValueInvalid", field,
        message: `Invalid value: ${v}: ${field} in body should be greater than ${schema.exclusiveMinimum ? "" : "or equal to "}${schema.minimum}` });
    }
    if (schema.maximum !== undefined && (schema.exclusiveMaximum ? v >= schema.maximum : v > schema.maximum)) {
      causes.push({ reason: "FieldValueInvalid", field,
        message: `Invalid value: ${v}: ${field} in body should be less than ${schema.exclusiveMaximum ? "" : "or equal to "}${schema.maximum}` });
    }
  }
  if (typeof v === "string") {
    if (schema.maxLength !== undefined && [...v].length > schema.maxLength) {
      causes.push({ reason: "FieldValueTooLong", field, message: `Too long: may not be more than ${schema.maxLength} bytes` });
    }
    if (schema.minLength !== undefined && [...v].length < schema.minLength) {
      causes.push({ reason: "FieldValueInvalid", field,
        message: `Invalid value: ${quote(v)}: ${field} in body should be at least ${schema.minLength} chars long` });
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, "u").test(v)) {
      causes.push({ reason: "FieldValueInvalid", field,
        message: `Invalid value: ${quote(v)}: ${field} in body should match '${schema.pattern}'` });
    }
  }
  if (Array.isArray(v)) {
    if (schema.maxItems !== undefined && v.length > schema.maxItems) {
      causes.push({ reason: "FieldValueTooMany", field, message: `Too many: ${v.length}: must have at most ${schema.maxItems} items` });
    }
    if (schema.minItems !== undefined && v.length < schema.minItems) {
      causes.push({ reason: "FieldValueInvalid", field,
        message: `Invalid value: ${v.length}: ${field} in body should have at least ${schema.minItems} items` });
    }
    if (schema.items) v.forEach((item, i) => check(item, schema.items as JsonSchema, `${path}[${i}]`, false, causes));
    return;
  }
  if (!isObj(v)) return;
  for (const req of schema.required ?? []) {
    if (v[req] === undefined) causes.push({ reason: "FieldValueRequired", field: childPath(path, req), message: "Required value" });
  }
  for (const [key, child] of Object.entries(v)) {
    if (child === undefined) continue;
    if (root && (key === "apiVersion" || key === "kind" || key === "metadata")) continue;
    const sub = schema.properties?.[key] ?? (isObj(schema.additionalProperties) ? (schema.additionalProperties as JsonSchema) : undefined);
    if (sub) check(child, sub, childPath(path, key), false, causes);
  }
}
