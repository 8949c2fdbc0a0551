// Shared contract of the sandbox's in-memory API server: the shape of stored objects, of the resource kinds it
// serves, and of the errors it answers with. store/server (HTTP), patch, services and table all build on this file.

/** Any Kubernetes object as stored: plain JSON with apiVersion, kind and metadata. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: unknown[];
  managedFields?: ManagedFieldsEntry[];
  [field: string]: unknown;
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: "Apply" | "Update";
  apiVersion: string;
  time?: string;
  fieldsType: "FieldsV1";
  fieldsV1: Record<string, unknown>;
  subresource?: string;
}

/** A column of server-side Table output (CRD additionalPrinterColumns use the same shape). */
export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  format?: string;
  description?: string;
  /** 0 = shown by `kubectl get`; > 0 = only with `-o wide`. */
  priority?: number;
  /** For custom resources: the JSONPath (kubectl dialect, e.g. `.status.phase`) the column reads. */
  jsonPath?: string;
}

/** One kind the server serves (built-in, or defined by a CustomResourceDefinition). */
export interface ResourceDefinition {
  /** "" for the core group. */
  group: string;
  version: string;
  kind: string;
  listKind: string;
  /** Lower-case plural used in URLs, e.g. "services". */
  plural: string;
  singular: string;
  shortNames: string[];
  namespaced: boolean;
  /** Served subresources, e.g. ["status"]. */
  subresources: string[];
  verbs: string[];
  /** Present for custom resources: their additionalPrinterColumns. */
  printerColumns?: PrinterColumn[];
  /** True for kinds defined by a CustomResourceDefinition. */
  custom?: boolean;
}

/** apiVersion as written in objects: "v1" for core, "group/version" otherwise. */
export function apiVersionOf(def: Pick<ResourceDefinition, "group" | "version">): string {
  return def.group === "" ? def.version : `${def.group}/${def.version}`;
}

/** A field-level problem in an object, as kube-apiserver reports it in a 422's details.causes. */
export interface StatusCause {
  /** e.g. "FieldValueInvalid", "FieldValueRequired", "FieldValueNotSupported", "FieldValueDuplicate". */
  reason: string;
  message: string;
  /** e.g. "metadata.name", "spec.ports[0].port". */
  field: string;
}

/**
 * An error answered as a metav1.Status: `code` is the HTTP status, `reason` the StatusReason
 * ("NotFound", "AlreadyExists", "Conflict", "Invalid", "BadRequest", "Gone", "TooManyRequests", ...).
 */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: { name?: string; group?: string; kind?: string; causes?: StatusCause[]; retryAfterSeconds?: number },
  ) {
    super(message);
  }

  toStatus(): Record<string, unknown> {
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** Server-side Table output (meta.k8s.io/v1 Table), as `kubectl get` requests it. */
export interface Table {
  kind: "Table";
  apiVersion: "meta.k8s.io/v1";
  metadata: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  columnDefinitions: (PrinterColumn & { description: string; priority: number; format: string })[];
  rows: { cells: unknown[]; object?: unknown }[];
}
