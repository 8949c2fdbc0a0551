// Object validation of the sandbox API server: the 422 "Invalid" answers kube-apiserver gives, with the same field
// paths and messages (pkg/apis/core/validation, apimachinery/pkg/util/validation, apiextensions validation), for the
// kinds we serve. Fidelity matters more than completeness: every check here is one a real server makes, so a client
// that passes here passes there; checks a real server makes that berth and its tests never trip are left out.
import { ApiError, type KubeObject, type ResourceDefinition, type StatusCause } from "./types.js";
import { parseIp } from "../../lib/addresses.js";

// ---------------------------------------------------------------------------------------------------------------
// Field errors, as k8s.io/apimachinery/pkg/util/validation/field renders them.

/** A collector of field errors; `throwIfAny` turns them into kube's 422 Status. */
export class FieldErrors {
  readonly causes: StatusCause[] = [];

  invalid(field: string, value: unknown, detail: string): void {
    this.causes.push({ reason: "FieldValueInvalid", field, message: `Invalid value: ${goValue(value)}: ${detail}` });
  }

  required(field: string, detail = ""): void {
    this.causes.push({ reason: "FieldValueRequired", field, message: detail ? `Required value: ${detail}` : "Required value" });
  }

  forbidden(field: string, detail: string): void {
    this.causes.push({ reason: "FieldValueForbidden", field, message: `Forbidden: ${detail}` });
  }

  duplicate(field: string, value: unknown): void {
    this.causes.push({ reason: "FieldValueDuplicate", field, message: `Duplicate value: ${goValue(value)}` });
  }

  notSupported(field: string, value: unknown, supported: string[]): void {
    const list = supported.map((s) => JSON.stringify(s)).join(", ");
    this.causes.push({ reason: "FieldValueNotSupported", field, message: `Unsupported value: ${goValue(value)}: supported values: ${list}` });
  }

  notFound(field: string, value: unknown): void {
    this.causes.push({ reason: "FieldValueNotFound", field, message: `Not found: ${goValue(value)}` });
  }

  tooLong(field: string, max: number): void {
    this.causes.push({ reason: "FieldValueTooLong", field, message: `Too long: may not be more than ${max} bytes` });
  }

  tooMany(field: string, actual: number, max: number): void {
    this.causes.push({ reason: "FieldValueTooMany", field, message: `Too many: ${actual}: must have at most ${max} items` });
  }

  get empty(): boolean {
    return this.causes.length === 0;
  }

  /** Throws kube's `<Kind>[.group] "<name>" is invalid: ...` 422 when any error was collected. */
  throwIfAny(kind: { group: string; kind: string }, name: string | undefined): void {
    if (this.causes.length > 0) throw invalidError(kind, name, this.causes);
  }
}

/** The 422 Invalid error kube-apiserver answers (errors.NewInvalid): message lists every cause. */
export function invalidError(kind: { group: string; kind: string }, name: string | undefined, causes: StatusCause[]): ApiError {
  const qualified = kind.group ? `${kind.kind}.${kind.group}` : kind.kind;
  const rendered = causes.map((c) => `${c.field}: ${c.message}`);
  const aggregate = rendered.length === 1 ? rendered[0] : `[${rendered.join(", ")}]`;
  return new ApiError(422, "Invalid", `${qualified} ${JSON.stringify(name ?? "")} is invalid: ${aggregate}`, {
    name: name ?? "", group: kind.group, kind: kind.kind, causes,
  });
}

/** A value already rendered as kube-apiserver prints it (a Go struct's %#v or String()). */
export class GoText {
  constructor(readonly text: string) {}
}

/** Values as Go's %#v prints them in field errors: quoted strings, bare numbers, []string{...} for string lists. */
function goValue(value: unknown): string {
  if (value instanceof GoText) return value.text;
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
    return `[]string{${value.map((v) => JSON.stringify(v)).join(", ")}}`;
  }
  if (isRecord(value) && Object.values(value).every((v) => typeof v === "string")) {
    const entries = Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(value[k])}`);
    return `map[string]string{${entries.join(", ")}}`;
  }
  return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------------------------------
// Name and label rules (apimachinery/pkg/util/validation/validation.go), messages verbatim.

const DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN = `${DNS1123_LABEL}(\\.${DNS1123_LABEL})*`;
const DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE = `(${QUALIFIED_NAME})?`;
const anchored = (re: string) => new RegExp(`^${re}$`);
const DNS1123_LABEL_RE = anchored(DNS1123_LABEL);
const DNS1123_SUBDOMAIN_RE = anchored(DNS1123_SUBDOMAIN);
const DNS1035_LABEL_RE = anchored(DNS1035_LABEL);
const QUALIFIED_NAME_RE = anchored(QUALIFIED_NAME);
const LABEL_VALUE_RE = anchored(LABEL_VALUE);

const DNS1123_LABEL_MSG = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MSG = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_MSG = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

function regexMessage(msg: string, re: string, examples: string[]): string {
  return `${msg} (e.g. ${examples.map((e) => `'${e}'`).join(",  or ")}, regex used for validation is '${re}')`;
}

/** IsDNS1123Label: the list of problems (empty when valid). */
export function dns1123Label(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push("must be no more than 63 characters");
  if (!DNS1123_LABEL_RE.test(value)) errs.push(regexMessage(DNS1123_LABEL_MSG, DNS1123_LABEL, ["my-name", "123-abc"]));
  return errs;
}

/** IsDNS1123Subdomain: the list of problems (empty when valid). */
export function dns1123Subdomain(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 253) errs.push("must be no more than 253 characters");
  if (!DNS1123_SUBDOMAIN_RE.test(value)) errs.push(regexMessage(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN, ["example.com"]));
  return errs;
}

/** IsDNS1035Label: the list of problems (empty when valid). */
export function dns1035Label(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push("must be no more than 63 characters");
  if (!DNS1035_LABEL_RE.test(value)) errs.push(regexMessage(DNS1035_LABEL_MSG, DNS1035_LABEL, ["my-name", "abc-123"]));
  return errs;
}

/** IsQualifiedName (label and annotation keys, finalizers): optional DNS subdomain prefix, '/', name part. */
export function qualifiedName(value: string): string[] {
  const errs: string[] = [];
  const parts = value.split("/");
  let name: string;
  if (parts.length === 1) {
    name = parts[0] ?? "";
  } else if (parts.length === 2) {
    const prefix = parts[0] ?? "";
    name = parts[1] ?? "";
    if (prefix.length === 0) errs.push("prefix part must be non-empty");
    else for (const msg of dns1123Subdomain(prefix)) errs.push(`prefix part ${msg}`);
  } else {
    return [`a qualified name ${regexMessage(QUALIFIED_NAME_MSG, QUALIFIED_NAME, ["MyName", "my.name", "123-abc"])} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`];
  }
  if (name.length === 0) errs.push("name part must be non-empty");
  else if (name.length > 63) errs.push("name part must be no more than 63 characters");
  if (name.length > 0 && !QUALIFIED_NAME_RE.test(name)) {
    errs.push(`name part ${regexMessage(QUALIFIED_NAME_MSG, QUALIFIED_NAME, ["MyName", "my.name", "123-abc"])}`);
  }
  return errs;
}

/** IsValidLabelValue. */
export function labelValue(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push("must be no more than 63 characters");
  if (!LABEL_VALUE_RE.test(value)) errs.push(regexMessage(LABEL_VALUE_MSG, LABEL_VALUE, ["MyValue", "my_value", "12345"]));
  return errs;
}

/** IsValidPortName (IANA_SVC_NAME), used for named targetPorts and container port names. */
export function portName(value: string): string[] {
  const errs: string[] = [];
  if (value.length < 1 || value.length > 15) errs.push("must be no more than 15 characters");
  if (!/^[-a-z0-9]+$/.test(value)) errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  if (!/[a-z]/.test(value)) errs.push("must contain at least one letter (a-z)");
  if (value.includes("--")) errs.push("must not contain consecutive hyphens");
  if (value.startsWith("-") || value.endsWith("-")) errs.push("must not begin or end with a hyphen");
  return errs;
}

const TOTAL_ANNOTATION_SIZE = 256 * 1024;
/** core.MaxSecretSize, which ValidateConfigMap also applies to data plus binaryData. */
const CONFIGMAP_MAX_BYTES = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// Object validation.

type NameRule = (value: string) => string[];

/** The name rule kube-apiserver applies per kind (ValidateXxxName in pkg/apis/core/validation and friends). */
function nameRuleFor(def: ResourceDefinition): NameRule {
  if (def.group === "" && def.kind === "Service") return dns1035Label;
  if (def.group === "" && def.kind === "Namespace") return dns1123Label;
  if (def.group === "" && def.kind === "Event") return pathSegmentName;
  return dns1123Subdomain;
}

/**
 * Validates an object about to be stored (create when `old` is undefined, update otherwise); throws ApiError 422
 * "Invalid" with kube's field paths in details.causes. Call it after generateName has been turned into a name and
 * after defaults are applied; Services get their spec checked here too (the same static checks
 * ServiceAllocator.prepareCreate repeats), so all of an object's problems come back in one answer as kube does.
 */
export function validateObject(def: ResourceDefinition, obj: KubeObject, old?: KubeObject): void {
  const errs = new FieldErrors();
  validateMeta(def, obj, errs);
  if (old) validateMetaUpdate(obj, old, errs);
  const spec = kindValidators[`${def.group}/${def.kind}`];
  if (spec) spec(obj, errs, old);
  errs.throwIfAny(def, obj.metadata?.name);
}

function validateMeta(def: ResourceDefinition, obj: KubeObject, errs: FieldErrors): void {
  const meta = obj.metadata;
  if (!isRecord(meta)) {
    errs.required("metadata");
    return;
  }
  const nameRule = nameRuleFor(def);
  if (typeof meta.generateName === "string" && meta.generateName !== "") {
    // kube masks one trailing dash before validating a prefix (ValidateNameFunc with prefix=true).
    const masked = meta.generateName.endsWith("-") ? `${meta.generateName.slice(0, -1)}a` : meta.generateName;
    for (const msg of nameRule(masked)) errs.invalid("metadata.generateName", meta.generateName, msg);
  }
  if (meta.name === undefined || meta.name === "") {
    errs.required("metadata.name", "name or generateName is required");
  } else {
    for (const msg of nameRule(meta.name)) errs.invalid("metadata.name", meta.name, msg);
  }
  if (def.namespaced) {
    if (!meta.namespace) errs.required("metadata.namespace");
    else for (const msg of dns1123Label(meta.namespace)) errs.invalid("metadata.namespace", meta.namespace, msg);
  } else if (meta.namespace) {
    errs.forbidden("metadata.namespace", "not allowed on this type");
  }
  validateLabelsAndAnnotations(meta, "metadata", errs);
  // ValidateFinalizers reports on the list's path, without an index.
  const finalizers = meta.finalizers ?? [];
  for (const finalizer of finalizers) {
    for (const msg of qualifiedName(finalizer)) errs.invalid("metadata.finalizers", finalizer, msg);
  }
  if (finalizers.includes("orphan") && finalizers.includes("foregroundDeletion")) {
    errs.invalid("metadata.finalizers", finalizers, "finalizer orphan and foregroundDeletion cannot be both set");
  }
  validateOwnerReferences(meta.ownerReferences, errs);
}

/** ValidateLabels and ValidateAnnotations on an ObjectMeta at `path`. */
function validateLabelsAndAnnotations(meta: Record<string, unknown>, path: string, errs: FieldErrors): void {
  if (isRecord(meta.labels)) {
    for (const [key, value] of Object.entries(meta.labels)) {
      for (const msg of qualifiedName(key)) errs.invalid(`${path}.labels`, key, msg);
      if (typeof value !== "string") errs.invalid(`${path}.labels`, value, "must be a string");
      else for (const msg of labelValue(value)) errs.invalid(`${path}.labels`, value, msg);
    }
  }
  if (isRecord(meta.annotations)) {
    let size = 0;
    for (const [key, value] of Object.entries(meta.annotations)) {
      for (const msg of qualifiedName(key.toLowerCase())) errs.invalid(`${path}.annotations`, key, msg);
      size += key.length + (typeof value === "string" ? value.length : 0);
    }
    if (size > TOTAL_ANNOTATION_SIZE) errs.tooLong(`${path}.annotations`, TOTAL_ANNOTATION_SIZE);
  }
}

/**
 * metav1 ValidateConditions (Service, and any status using metav1.Condition): unique type, a label-name type,
 * status True/False/Unknown, lastTransitionTime and a CamelCase-ish reason set, length limits.
 */
export function validateConditions(conditions: unknown, path: string, errs: FieldErrors): void {
  const seen = new Set<string>();
  asArray(conditions).forEach((condition, i) => {
    const c = isRecord(condition) ? condition : {};
    const at = `${path}[${i}]`;
    const type = typeof c.type === "string" ? c.type : "";
    if (seen.has(type)) errs.duplicate(`${at}.type`, type);
    seen.add(type);
    for (const msg of qualifiedName(type)) errs.invalid(`${at}.type`, type, msg);
    if (c.status !== "True" && c.status !== "False" && c.status !== "Unknown") errs.notSupported(`${at}.status`, c.status ?? "", ["False", "True", "Unknown"]);
    if (typeof c.observedGeneration === "number" && c.observedGeneration < 0) {
      errs.invalid(`${at}.observedGeneration`, c.observedGeneration, "must be greater than or equal to zero");
    }
    if (typeof c.lastTransitionTime !== "string" || c.lastTransitionTime === "") errs.required(`${at}.lastTransitionTime`, "must be set");
    const reason = typeof c.reason === "string" ? c.reason : "";
    if (reason === "") {
      errs.required(`${at}.reason`, "must be set");
    } else {
      if (!/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/.test(reason)) {
        errs.invalid(`${at}.reason`, reason, "a condition reason must start with alphabetic character, optionally followed by a string of alphanumeric characters or '_,:', and must end with an alphanumeric character or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or 'ReasonA:ReasonB', regex used for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')");
      }
      if (reason.length > 1024) errs.tooLong(`${at}.reason`, 1024);
    }
    if (typeof c.message === "string" && c.message.length > 32 * 1024) errs.tooLong(`${at}.message`, 32 * 1024);
  });
}

/** ValidateOwnerReferences: errors on `metadata.ownerReferences.<field>`, without an index, as kube reports them. */
function validateOwnerReferences(refs: unknown[] | undefined, errs: FieldErrors): void {
  const path = "metadata.ownerReferences";
  let controller = "";
  for (const ref of refs ?? []) {
    const r = isRecord(ref) ? ref : {};
    const apiVersion = typeof r.apiVersion === "string" ? r.apiVersion : "";
    const version = apiVersion.includes("/") ? apiVersion.slice(apiVersion.indexOf("/") + 1) : apiVersion;
    const text = (field: string) => (typeof r[field] === "string" ? (r[field] as string) : "");
    if (version === "") errs.invalid(`${path}.apiVersion`, apiVersion, "version must not be empty");
    if (text("kind") === "") errs.invalid(`${path}.kind`, text("kind"), "kind must not be empty");
    if (text("name") === "") errs.invalid(`${path}.name`, text("name"), "name must not be empty");
    if (text("uid") === "") errs.invalid(`${path}.uid`, text("uid"), "uid must not be empty");
    if (r.controller === true) {
      const current = `${text("kind")}/${text("name")}`;
      if (controller !== "") {
        errs.invalid(path, refs, `Only one reference can have Controller set to true. Found "true" in references for ${controller} and ${current}`);
      } else {
        controller = current;
      }
    }
  }
}

function validateMetaUpdate(obj: KubeObject, old: KubeObject, errs: FieldErrors): void {
  const immutable: (keyof typeof obj.metadata)[] = ["name", "namespace"];
  for (const key of immutable) {
    if ((obj.metadata[key] ?? "") !== (old.metadata[key] ?? "")) errs.invalid(`metadata.${key}`, obj.metadata[key] ?? "", "field is immutable");
  }
  if (obj.metadata.uid && old.metadata.uid && obj.metadata.uid !== old.metadata.uid) {
    errs.invalid("metadata.uid", obj.metadata.uid, "field is immutable");
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Per-kind checks, keyed "<group>/<kind>".

type KindValidator = (obj: KubeObject, errs: FieldErrors, old?: KubeObject) => void;

const kindValidators: Record<string, KindValidator> = {
  "/Pod": (obj, errs, old) => {
    const spec = recordAt(obj, "spec");
    validatePodSpec(spec, "spec", errs);
    if (old) {
      validatePodUpdate(spec, recordAt(old, "spec"), errs);
      const status = recordAt(obj, "status") ?? {};
      validateIpList(status.podIPs, "status.podIPs", errs);
      validateIpList(status.hostIPs, "status.hostIPs", errs);
    }
  },
  "apps/DaemonSet": (obj, errs, old) => validateDaemonSet(obj, errs, old),
  "apps/Deployment": (obj, errs, old) => validateDeployment(obj, errs, old),
  "apps/ReplicaSet": (obj, errs, old) => validateDeployment(obj, errs, old, "replicaset"),
  "policy/PodDisruptionBudget": (obj, errs) => validatePodDisruptionBudget(obj, errs),
  "rbac.authorization.k8s.io/ClusterRole": (obj, errs) => validatePolicyRules(obj, errs),
  "rbac.authorization.k8s.io/Role": (obj, errs) => validatePolicyRules(obj, errs),
  "rbac.authorization.k8s.io/ClusterRoleBinding": (obj, errs, old) => validateRoleBinding(obj, errs, old, ["ClusterRole"]),
  "rbac.authorization.k8s.io/RoleBinding": (obj, errs, old) => validateRoleBinding(obj, errs, old, ["Role", "ClusterRole"]),
  "/Service": (obj, errs, old) => {
    validateServiceSpec(recordAt(obj, "spec"), errs);
    void old;
  },
  "/Namespace": () => undefined,
  "/ConfigMap": (obj, errs) => {
    let size = 0;
    for (const field of ["data", "binaryData"]) {
      const data = obj[field];
      if (!isRecord(data)) continue;
      for (const [key, value] of Object.entries(data)) {
        if (key.length > 253 || !/^[-._a-zA-Z0-9]+$/.test(key)) {
          errs.invalid(`${field}[${key}]`, key, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')");
        }
        if (field === "binaryData" && isRecord(obj.data) && Object.hasOwn(obj.data, key)) {
          errs.invalid(`data[${key}]`, key, "duplicate of key present in binaryData");
        }
        // binaryData is base64 on the wire; kube counts the decoded bytes.
        size += typeof value === "string" ? (field === "binaryData" ? Buffer.from(value, "base64").length : Buffer.byteLength(value)) : 0;
      }
    }
    if (size > CONFIGMAP_MAX_BYTES) errs.tooLong("", CONFIGMAP_MAX_BYTES);
  },
  "/Endpoints": (obj, errs) => {
    asArray(obj.subsets).forEach((subset, i) => {
      for (const list of ["addresses", "notReadyAddresses"]) {
        asArray(isRecord(subset) ? subset[list] : undefined).forEach((address, j) => {
          const ip = isRecord(address) ? address.ip : undefined;
          const path = `subsets[${i}].${list}[${j}].ip`;
          if (typeof ip !== "string" || ip === "") errs.required(path);
          else if (!validIp(ip)) errs.invalid(path, ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
        });
      }
      asArray(isRecord(subset) ? subset.ports : undefined).forEach((port, j) => {
        const p = isRecord(port) ? port.port : undefined;
        if (typeof p !== "number" || p < 1 || p > 65535) errs.invalid(`subsets[${i}].ports[${j}].port`, p ?? 0, "must be between 1 and 65535, inclusive");
      });
    });
  },
  "discovery.k8s.io/EndpointSlice": (obj, errs, old) => validateEndpointSlice(obj, errs, old),
  "coordination.k8s.io/Lease": (obj) => validateLease(obj),
  "/Event": (obj, errs) => validateEvent(obj, errs, "core"),
  "events.k8s.io/Event": (obj, errs) => validateEvent(obj, errs, "events"),
  "apiextensions.k8s.io/CustomResourceDefinition": (obj, errs, old) => validateCrd(obj, errs, old),
};

const PROTOCOLS = ["SCTP", "TCP", "UDP"];

const VOLUME_SOURCES = ["hostPath", "emptyDir", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret", "nfs", "iscsi",
  "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs", "quobyte", "downwardAPI", "fc", "flexVolume",
  "configMap", "azureFile", "vsphereVolume", "photonPersistentDisk", "portworxVolume", "azureDisk", "storageos", "csi",
  "projected", "scaleIO", "ephemeral", "image"];
const HOST_PATH_TYPES = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"];
const ENV_VAR_NAME = "[-._a-zA-Z][-._a-zA-Z0-9]*";

/**
 * ValidatePodSpec, the parts a DaemonSet's pod template exercises: containers (names, images, ports, env,
 * volumeMounts against volumes), volumes (one source each, hostPath rules), host port conflicts, hostNetwork ports,
 * tolerations, restart and DNS policies.
 */
function validatePodSpec(spec: Record<string, unknown> | undefined, path: string, errs: FieldErrors): void {
  if (!spec) {
    errs.required(`${path}.containers`);
    return;
  }
  const volumeNames = validateVolumes(asArray(spec.volumes), `${path}.volumes`, errs);
  const containers = asArray(spec.containers);
  if (containers.length === 0) errs.required(`${path}.containers`);
  const names = new Set<string>();
  const hostNetwork = spec.hostNetwork === true;
  const checkContainers = (list: unknown[], listPath: string) => {
    list.forEach((container, i) => {
      const c = isRecord(container) ? container : {};
      const cPath = `${listPath}[${i}]`;
      if (typeof c.name !== "string" || c.name === "") errs.required(`${cPath}.name`);
      else {
        for (const msg of dns1123Label(c.name)) errs.invalid(`${cPath}.name`, c.name, msg);
        if (names.has(c.name)) errs.duplicate(`${cPath}.name`, c.name);
        names.add(c.name);
      }
      if (typeof c.image !== "string" || c.image.trim() === "") errs.required(`${cPath}.image`);
      const portNames = new Set<string>();
      asArray(c.ports).forEach((port, j) => {
        const p = isRecord(port) ? port : {};
        const pPath = `${cPath}.ports[${j}]`;
        if (typeof p.name === "string" && p.name !== "") {
          const problems = portName(p.name);
          for (const msg of problems) errs.invalid(`${pPath}.name`, p.name, msg);
          if (problems.length === 0 && portNames.has(p.name)) errs.duplicate(`${pPath}.name`, p.name);
          portNames.add(p.name);
        }
        if (p.containerPort === undefined || p.containerPort === 0) errs.required(`${pPath}.containerPort`);
        else if (!Number.isInteger(p.containerPort) || (p.containerPort as number) < 1 || (p.containerPort as number) > 65535) {
          errs.invalid(`${pPath}.containerPort`, p.containerPort, "must be between 1 and 65535, inclusive");
        }
        if (p.hostPort !== undefined && p.hostPort !== 0 && (!Number.isInteger(p.hostPort) || (p.hostPort as number) < 1 || (p.hostPort as number) > 65535)) {
          errs.invalid(`${pPath}.hostPort`, p.hostPort, "must be between 1 and 65535, inclusive");
        }
        if (p.protocol !== undefined && !PROTOCOLS.includes(p.protocol as string)) errs.notSupported(`${pPath}.protocol`, p.protocol, PROTOCOLS);
        // Defaulting makes hostPort = containerPort under hostNetwork; only an explicit different one is an error.
        if (hostNetwork && p.hostPort !== undefined && p.hostPort !== 0 && p.hostPort !== p.containerPort) {
          errs.invalid(`${pPath}.containerPort`, p.containerPort ?? 0, "must match `hostPort` when `hostNetwork` is true");
        }
      });
      asArray(c.env).forEach((env, j) => {
        const name = isRecord(env) && typeof env.name === "string" ? env.name : "";
        if (name === "") errs.required(`${cPath}.env[${j}].name`);
        else if (!new RegExp(`^${ENV_VAR_NAME}$`).test(name)) {
          errs.invalid(`${cPath}.env[${j}].name`, name, regexMessage("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit", ENV_VAR_NAME, ["my.env-name", "MY_ENV.NAME", "MyEnvName1"]));
        }
      });
      const mountPaths = new Set<string>();
      asArray(c.volumeMounts).forEach((mount, j) => {
        const m = isRecord(mount) ? mount : {};
        const mPath = `${cPath}.volumeMounts[${j}]`;
        const name = typeof m.name === "string" ? m.name : "";
        if (name === "") errs.required(`${mPath}.name`);
        if (!volumeNames.has(name)) errs.notFound(`${mPath}.name`, name);
        const mountPath = typeof m.mountPath === "string" ? m.mountPath : "";
        if (mountPath === "") errs.required(`${mPath}.mountPath`);
        if (mountPaths.has(mountPath)) errs.invalid(`${mPath}.mountPath`, mountPath, "must be unique");
        mountPaths.add(mountPath);
      });
    });
  };
  checkContainers(containers, `${path}.containers`);
  checkContainers(asArray(spec.initContainers), `${path}.initContainers`);
  // AccumulateUniqueHostPorts: one hostIP/protocol/hostPort per pod.
  const hostPorts = new Set<string>();
  containers.forEach((container, i) => {
    asArray(isRecord(container) ? container.ports : undefined).forEach((port, j) => {
      const p = isRecord(port) ? port : {};
      if (!p.hostPort) return;
      const key = `${typeof p.hostIP === "string" ? p.hostIP : ""}/${typeof p.protocol === "string" ? p.protocol : "TCP"}/${String(p.hostPort)}`;
      if (hostPorts.has(key)) errs.duplicate(`${path}.containers[${i}].ports[${j}].hostPort`, key);
      hostPorts.add(key);
    });
  });
  validateTolerations(asArray(spec.tolerations), `${path}.tolerations`, errs);
  const restartPolicies = ["Always", "OnFailure", "Never"];
  if (spec.restartPolicy !== undefined && !restartPolicies.includes(spec.restartPolicy as string)) {
    errs.notSupported(`${path}.restartPolicy`, spec.restartPolicy, restartPolicies);
  }
  const dnsPolicies = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
  if (spec.dnsPolicy !== undefined && !dnsPolicies.includes(spec.dnsPolicy as string)) {
    errs.notSupported(`${path}.dnsPolicy`, spec.dnsPolicy, dnsPolicies);
  }
}

/** validatePodIPs / validateHostIPs: valid addresses, at most one per family, no repeats. */
function validateIpList(list: unknown, path: string, errs: FieldErrors): void {
  const entries = asArray(list);
  const ips = entries.map((e) => (isRecord(e) && typeof e.ip === "string" ? e.ip : ""));
  ips.forEach((ip, i) => {
    if (!validIp(ip)) errs.invalid(`${path}[${i}]`, ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
  });
  if (entries.length > 1) {
    const families = ips.filter(validIp).map((ip) => parseIp(ip).family);
    if (entries.length > 2 || new Set(families).size !== families.length) {
      errs.invalid(path, entries, "may specify no more than one IP for each IP family");
    }
    const seen = new Set<string>();
    ips.forEach((ip, i) => {
      if (seen.has(ip)) errs.duplicate(`${path}[${i}]`, entries[i]);
      seen.add(ip);
    });
  }
}

/** ValidateVolumes: names unique DNS labels, exactly one source each, hostPath path and type. Returns the names. */
function validateVolumes(volumes: unknown[], path: string, errs: FieldErrors): Set<string> {
  const names = new Set<string>();
  volumes.forEach((volume, i) => {
    const v = isRecord(volume) ? volume : {};
    const vPath = `${path}[${i}]`;
    const sources = VOLUME_SOURCES.filter((source) => v[source] !== undefined && v[source] !== null);
    if (sources.length === 0) errs.required(vPath, "must specify a volume type");
    for (const extra of sources.slice(1)) errs.forbidden(`${vPath}.${extra}`, "may not specify more than 1 volume type");
    const hostPath = isRecord(v.hostPath) ? v.hostPath : undefined;
    if (hostPath) {
      const p = typeof hostPath.path === "string" ? hostPath.path : "";
      if (p === "") errs.required(`${vPath}.hostPath.path`);
      else if (p.split("/").includes("..")) errs.invalid(`${vPath}.hostPath.path`, p, "must not contain '..'");
      const type = hostPath.type ?? "";
      if (!HOST_PATH_TYPES.includes(type as string)) errs.notSupported(`${vPath}.hostPath.type`, type, HOST_PATH_TYPES);
    }
    const name = typeof v.name === "string" ? v.name : "";
    if (name === "") errs.required(`${vPath}.name`);
    else for (const msg of dns1123Label(name)) errs.invalid(`${vPath}.name`, name, msg);
    if (names.has(name)) errs.duplicate(`${vPath}.name`, name);
    names.add(name);
  });
  return names;
}

/** ValidateTolerations. */
function validateTolerations(tolerations: unknown[], path: string, errs: FieldErrors): void {
  tolerations.forEach((toleration, i) => {
    const t = isRecord(toleration) ? toleration : {};
    const tPath = `${path}[${i}]`;
    const key = typeof t.key === "string" ? t.key : "";
    const operator = typeof t.operator === "string" ? t.operator : "";
    const value = typeof t.value === "string" ? t.value : "";
    const effect = typeof t.effect === "string" ? t.effect : "";
    if (key !== "") for (const msg of qualifiedName(key)) errs.invalid(`${tPath}.key`, key, msg);
    if (key === "" && operator !== "Exists") {
      errs.invalid(`${tPath}.operator`, operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\"");
    }
    if (t.tolerationSeconds !== undefined && t.tolerationSeconds !== null && effect !== "NoExecute") {
      errs.invalid(`${tPath}.effect`, effect, "effect must be 'NoExecute' when `tolerationSeconds` is set");
    }
    if (operator === "Equal" || operator === "") {
      const problems = labelValue(value);
      if (problems.length > 0) errs.invalid(`${tPath}.operator`, value, problems.join(";"));
    } else if (operator === "Exists") {
      if (value !== "") {
        const seconds = typeof t.tolerationSeconds === "number" ? `&${t.tolerationSeconds}` : "(*int64)(nil)";
        errs.invalid(`${tPath}.operator`, new GoText(`core.Toleration{Key:${JSON.stringify(key)}, Operator:"Exists", Value:${JSON.stringify(value)}, Effect:${JSON.stringify(effect)}, TolerationSeconds:${seconds}}`),
          "value must be empty when `operator` is 'Exists'");
      }
    } else {
      errs.notSupported(`${tPath}.operator`, operator, ["Equal", "Exists"]);
    }
    if (effect !== "" && !["NoSchedule", "PreferNoSchedule", "NoExecute"].includes(effect)) {
      errs.notSupported(`${tPath}.effect`, effect, ["NoSchedule", "PreferNoSchedule", "NoExecute"]);
    }
  });
}

/**
 * Pod updates may change little (ValidatePodUpdate): images, activeDeadlineSeconds, tolerations (additions) and
 * terminationGracePeriodSeconds. Scheduling goes through the binding subresource, not an update of spec.nodeName.
 */
function validatePodUpdate(spec: Record<string, unknown> | undefined, oldSpec: Record<string, unknown> | undefined, errs: FieldErrors): void {
  const mask = (s: Record<string, unknown> | undefined): unknown => {
    if (!s) return undefined;
    const copy = structuredClone(s);
    for (const list of ["containers", "initContainers"]) {
      for (const c of asArray(copy[list])) if (isRecord(c)) delete c.image;
    }
    delete copy.activeDeadlineSeconds;
    delete copy.tolerations;
    delete copy.terminationGracePeriodSeconds;
    return copy;
  };
  if (!deepEqual(mask(spec), mask(oldSpec))) {
    errs.forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)");
  }
}

/** ValidateDeploymentSpec / ValidateReplicaSetSpec: the DaemonSet's selector and template rules, plus replicas >= 0. */
function validateDeployment(obj: KubeObject, errs: FieldErrors, old?: KubeObject, what = "deployment"): void {
  validateDaemonSet(obj, errs, old, what);
  const replicas = recordAt(obj, "spec")?.replicas;
  if (typeof replicas === "number" && replicas < 0) errs.invalid("spec.replicas", replicas, "must be greater than or equal to 0");
}

/** ValidatePodDisruptionBudgetSpec: at most one of minAvailable and maxUnavailable. */
function validatePodDisruptionBudget(obj: KubeObject, errs: FieldErrors): void {
  const spec = recordAt(obj, "spec") ?? {};
  if (spec.minAvailable !== undefined && spec.maxUnavailable !== undefined) {
    errs.invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set");
  }
}

/** rbac ValidatePolicyRule: verbs required; resource rules name API groups and resources, URL rules neither. */
function validatePolicyRules(obj: KubeObject, errs: FieldErrors): void {
  asArray(obj.rules).forEach((rule, i) => {
    const r = isRecord(rule) ? rule : {};
    const path = `rules[${i}]`;
    if (asArray(r.verbs).length === 0) errs.required(`${path}.verbs`, "verbs must contain at least one value");
    if (asArray(r.nonResourceURLs).length > 0) {
      if (asArray(r.apiGroups).length > 0 || asArray(r.resources).length > 0) {
        errs.invalid(`${path}.nonResourceURLs`, r.nonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs");
      }
      return;
    }
    if (asArray(r.apiGroups).length === 0) errs.required(`${path}.apiGroups`, "resource rules must supply at least one api group");
    if (asArray(r.resources).length === 0) errs.required(`${path}.resources`, "resource rules must supply at least one resource");
  });
}

/** rbac ValidateRoleBinding / ValidateClusterRoleBinding, and roleRef is immutable. */
function validateRoleBinding(obj: KubeObject, errs: FieldErrors, old: KubeObject | undefined, kinds: string[]): void {
  const roleRef = isRecord(obj.roleRef) ? obj.roleRef : {};
  if (roleRef.apiGroup !== "rbac.authorization.k8s.io") errs.notSupported("roleRef.apiGroup", roleRef.apiGroup ?? "", ["rbac.authorization.k8s.io"]);
  if (!kinds.includes(roleRef.kind as string)) errs.notSupported("roleRef.kind", roleRef.kind ?? "", kinds);
  if (typeof roleRef.name !== "string" || roleRef.name === "") errs.required("roleRef.name");
  asArray(obj.subjects).forEach((subject, i) => {
    const s = isRecord(subject) ? subject : {};
    if (typeof s.name !== "string" || s.name === "") errs.required(`subjects[${i}].name`);
    // A RoleBinding's ServiceAccount subject without a namespace means the binding's own; a ClusterRoleBinding has none.
    if (s.kind === "ServiceAccount" && !obj.metadata.namespace && (typeof s.namespace !== "string" || s.namespace === "")) {
      errs.required(`subjects[${i}].namespace`);
    }
    if (!["ServiceAccount", "User", "Group"].includes(s.kind as string)) errs.notSupported(`subjects[${i}].kind`, s.kind ?? "", ["ServiceAccount", "User", "Group"]);
  });
  if (old && !deepEqual(old.roleRef, obj.roleRef)) errs.invalid("roleRef", obj.roleRef, "cannot change roleRef");
}

function validateDaemonSet(obj: KubeObject, errs: FieldErrors, old?: KubeObject, what = "daemonset"): void {
  const spec = recordAt(obj, "spec") ?? {};
  const selector = spec.selector;
  const template = isRecord(spec.template) ? spec.template : undefined;
  const templateLabels = isRecord(template?.metadata) && isRecord(template.metadata.labels) ? template.metadata.labels : {};
  // ValidateDaemonSetSpec: a missing selector selects nothing (LabelSelectorAsSelector(nil)), so it shows up as
  // the template's labels not matching; an empty one selects everything and is refused on its own.
  const matchLabels = isRecord(selector) && isRecord(selector.matchLabels) ? selector.matchLabels : {};
  const expressions = isRecord(selector) ? asArray(selector.matchExpressions) : [];
  const empty = Object.keys(matchLabels).length === 0 && expressions.length === 0;
  if (!isRecord(selector) || (!empty && !selectorMatches(matchLabels, expressions, templateLabels as Record<string, unknown>))) {
    errs.invalid("spec.template.metadata.labels", templateLabels, "`selector` does not match template `labels`");
  }
  if (isRecord(selector) && empty) errs.invalid("spec.selector", labelSelectorText(selector), `empty selector is invalid for ${what}`);
  if (old) {
    const oldSelector = recordAt(old, "spec")?.selector;
    if (!deepEqual(oldSelector, selector)) errs.invalid("spec.selector", labelSelectorText(selector), "field is immutable");
  }
  if (!template) {
    errs.required("spec.template");
    return;
  }
  // ValidatePodTemplateSpec checks the template's labels and annotations as object metadata.
  validateLabelsAndAnnotations(isRecord(template.metadata) ? template.metadata : {}, "spec.template.metadata", errs);
  const podSpec = isRecord(template.spec) ? template.spec : undefined;
  validatePodSpec(podSpec, "spec.template.spec", errs);
  const restartPolicy = podSpec?.restartPolicy;
  if (restartPolicy !== undefined && restartPolicy !== "Always") {
    errs.notSupported("spec.template.spec.restartPolicy", restartPolicy, ["Always"]);
  }
}

/** metav1.LabelSelector's generated String(), which kube prints for selector field errors. */
function labelSelectorText(selector: unknown): GoText {
  if (!isRecord(selector)) return new GoText("nil");
  const labels = isRecord(selector.matchLabels) ? selector.matchLabels : {};
  const labelText = Object.keys(labels).sort().map((k) => `${k}: ${String(labels[k])},`).join("");
  const expressions = asArray(selector.matchExpressions).map((e) => {
    const r = isRecord(e) ? e : {};
    return `LabelSelectorRequirement{Key:${String(r.key ?? "")},Operator:${String(r.operator ?? "")},Values:[${asArray(r.values).map(String).join(" ")}],}`;
  }).join(",");
  return new GoText(`&LabelSelector{MatchLabels:map[string]string{${labelText}},MatchExpressions:[]LabelSelectorRequirement{${expressions}},}`);
}

function selectorMatches(matchLabels: Record<string, unknown>, expressions: unknown[], labels: Record<string, unknown>): boolean {
  for (const [k, v] of Object.entries(matchLabels)) if (labels[k] !== v) return false;
  for (const expression of expressions) {
    if (!isRecord(expression)) return false;
    const key = String(expression.key);
    const values = asArray(expression.values).map(String);
    const has = Object.hasOwn(labels, key);
    switch (expression.operator) {
      case "In": if (!has || !values.includes(String(labels[key]))) return false; break;
      case "NotIn": if (has && values.includes(String(labels[key]))) return false; break;
      case "Exists": if (!has) return false; break;
      case "DoesNotExist": if (has) return false; break;
      default: return false;
    }
  }
  return true;
}

function validateEndpointSlice(obj: KubeObject, errs: FieldErrors, old?: KubeObject): void {
  const types = ["FQDN", "IPv4", "IPv6"];
  const addressType = obj.addressType;
  if (addressType === undefined || addressType === "") errs.required("addressType");
  else if (!types.includes(addressType as string)) errs.notSupported("addressType", addressType, types);
  if (old && old.addressType !== addressType) errs.invalid("addressType", addressType, "field is immutable");
  const endpoints = asArray(obj.endpoints);
  if (endpoints.length > 1000) errs.tooMany("endpoints", endpoints.length, 1000);
  endpoints.forEach((endpoint, i) => {
    const addresses = asArray(isRecord(endpoint) ? endpoint.addresses : undefined);
    const path = `endpoints[${i}].addresses`;
    if (addresses.length === 0) errs.required(path, "must contain at least 1 address");
    else if (addresses.length > 100) errs.tooMany(path, addresses.length, 100);
    addresses.forEach((address, j) => {
      const text = String(address);
      if (addressType === "IPv4" || addressType === "IPv6") {
        const family = addressType === "IPv4" ? "ipv4" : "ipv6";
        const ok = validIp(text) && parseIp(text).family === family;
        if (!ok) errs.invalid(`${path}[${j}]`, address, `must be a valid ${addressType} address`);
      } else if (addressType === "FQDN") {
        for (const msg of dns1123Subdomain(text)) errs.invalid(`${path}[${j}]`, address, msg);
      }
    });
  });
  asArray(obj.ports).forEach((port, i) => {
    const p = isRecord(port) ? port : {};
    if (p.port !== undefined && p.port !== null && (typeof p.port !== "number" || p.port < 0 || p.port > 65535)) {
      errs.invalid(`ports[${i}].port`, p.port, "must be between 0 and 65535, inclusive");
    }
    if (p.protocol !== undefined && !PROTOCOLS.includes(p.protocol as string)) errs.notSupported(`ports[${i}].protocol`, p.protocol, PROTOCOLS);
  });
}

/**
 * Lease fields are typed in Go, so a wrong type fails decoding: kube answers 400 BadRequest (not 422) with the
 * decoder's message. MicroTime parses with layout RFC3339Micro ("2006-01-02T15:04:05.000000Z07:00"), whose fixed
 * ".000000" takes exactly six fractional digits: a JavaScript Date's three are refused on a real cluster (hence
 * @kubernetes/client-node's V1MicroTime), so they are refused here.
 */
function validateLease(obj: KubeObject): void {
  const spec = obj.spec;
  if (spec === undefined || spec === null) return;
  if (!isRecord(spec)) throw decodeError("Lease", "json: cannot unmarshal " + jsonTypeOf(spec) + " into Go struct field Lease.spec of type v1.LeaseSpec");
  const types: Record<string, "string" | "int32" | "MicroTime"> = {
    holderIdentity: "string", leaseDurationSeconds: "int32", acquireTime: "MicroTime", renewTime: "MicroTime",
    leaseTransitions: "int32", strategy: "string", preferredHolder: "string",
  };
  for (const [field, type] of Object.entries(types)) {
    const value = spec[field];
    if (value === undefined || value === null) continue;
    if (type === "MicroTime") {
      if (typeof value !== "string") {
        throw decodeError("Lease", `json: cannot unmarshal ${jsonTypeOf(value)} into Go value of type string`);
      }
      const problem = microTimeProblem(value);
      if (problem) throw decodeError("Lease", `parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05.000000Z07:00": ${problem}`);
      continue;
    }
    const ok = type === "string" ? typeof value === "string" : Number.isInteger(value) && Math.abs(value as number) <= 2 ** 31;
    if (!ok) {
      throw decodeError("Lease", `json: cannot unmarshal ${jsonTypeOf(value)} into Go struct field LeaseSpec.spec.${field} of type ${type}`);
    }
  }
  const errs = new FieldErrors();
  if (typeof spec.leaseDurationSeconds === "number" && spec.leaseDurationSeconds <= 0) {
    errs.invalid("spec.leaseDurationSeconds", spec.leaseDurationSeconds, "must be greater than 0");
  }
  if (typeof spec.leaseTransitions === "number" && spec.leaseTransitions < 0) {
    errs.invalid("spec.leaseTransitions", spec.leaseTransitions, "must be greater than or equal to 0");
  }
  errs.throwIfAny({ group: "coordination.k8s.io", kind: "Lease" }, obj.metadata.name);
}

/** Why Go's time.Parse(RFC3339Micro, value) fails, in its words, or "" when it parses. */
function microTimeProblem(value: string): string {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(.*)$/.exec(value);
  if (!m) return `cannot parse ${JSON.stringify(value)} as "2006"`;
  const rest = m[2] ?? "";
  if (!/^\.\d{6}/.test(rest)) return `cannot parse ${JSON.stringify(rest)} as ".000000"`;
  const zone = rest.slice(7);
  if (!/^(Z|[+-]\d{2}:\d{2})$/.test(zone)) return `cannot parse ${JSON.stringify(zone)} as "Z07:00"`;
  return "";
}

function jsonTypeOf(value: unknown): string {
  if (Array.isArray(value)) return "array";
  if (value === null) return "null";
  return typeof value === "object" ? "object" : typeof value;
}

/** A body kube cannot decode into the kind's Go type: 400 "<Kind> in version ... cannot be handled as a <Kind>". */
function decodeError(kind: string, detail: string): ApiError {
  return new ApiError(400, "BadRequest", `${kind} in version "v1" cannot be handled as a ${kind}: ${detail}`);
}

/**
 * Events (ValidateEventCreate, legacyValidateEvent). Old-style events (no eventTime) must sit in their involved
 * object's namespace. New-style events (eventTime set) need the reporting fields, action and reason, and may sit in
 * "default" or "kube-system" when the involved object is cluster-scoped. events.k8s.io requests are validated
 * strictly on top (eventTime, type, the deprecated fields unset); kube names the fields as the internal type does
 * (involvedObject, message, firstTimestamp...), whatever the request's API spells them, so do we.
 */
function validateEvent(obj: KubeObject, errs: FieldErrors, api: "core" | "events"): void {
  const namespace = obj.metadata.namespace ?? "";
  const involvedField = api === "core" ? "involvedObject" : "regarding";
  const involved = isRecord(obj[involvedField]) ? (obj[involvedField] as Record<string, unknown>) : {};
  const involvedNamespace = typeof involved.namespace === "string" ? involved.namespace : "";
  const unset = (v: unknown) => v === undefined || v === null || v === "" || v === 0;
  const text = (field: string) => (typeof obj[field] === "string" ? (obj[field] as string) : "");
  // eventTime is a MicroTime: six fractional digits or the decoder refuses the body (see validateLease).
  if (typeof obj.eventTime === "string" && obj.eventTime !== "") {
    const problem = microTimeProblem(obj.eventTime);
    if (problem) throw decodeError("Event", `parsing time ${JSON.stringify(obj.eventTime)} as "2006-01-02T15:04:05.000000Z07:00": ${problem}`);
  }
  if (unset(obj.eventTime)) {
    if (involvedNamespace === "" ? namespace !== "" && namespace !== "default" : namespace !== involvedNamespace) {
      errs.invalid("involvedObject.namespace", involvedNamespace, "does not match event.namespace");
    }
  } else {
    if (involvedNamespace === "" && namespace !== "default" && namespace !== "kube-system") {
      errs.invalid("involvedObject.namespace", involvedNamespace, "does not match event.namespace");
    }
    const controllerField = api === "core" ? "reportingComponent" : "reportingController";
    const controller = text(controllerField);
    if (controller === "") errs.required(controllerField);
    for (const msg of controller === "" ? [] : qualifiedName(controller)) errs.invalid(controllerField, controller, msg);
    const limits: [string, string, number][] = [["reportingInstance", "reportingInstance", 128], ["action", "action", 128], ["reason", "reason", 128]];
    for (const [field, path, limit] of limits) {
      if (text(field) === "") errs.required(path);
      if (text(field).length > limit) errs.invalid(path, "", `can have at most ${limit} characters`);
    }
    if (text(api === "core" ? "message" : "note").length > 1024) errs.invalid("message", "", "can have at most 1024 characters");
  }
  if (api === "events") {
    if (unset(obj.eventTime)) errs.required("eventTime");
    if (obj.type !== "Normal" && obj.type !== "Warning") errs.invalid("type", "", `has invalid value: ${text("type")}`);
    if (!unset(obj.deprecatedFirstTimestamp)) errs.invalid("firstTimestamp", "", "needs to be unset");
    if (!unset(obj.deprecatedLastTimestamp)) errs.invalid("lastTimestamp", "", "needs to be unset");
    if (!unset(obj.deprecatedCount)) errs.invalid("count", "", "needs to be unset");
    const source = isRecord(obj.deprecatedSource) ? obj.deprecatedSource : {};
    if (!unset(source.component) || !unset(source.host)) errs.invalid("source", "", "needs to be unset");
  }
}

/** IsValidPathSegmentName: the only rule core/v1 Event names follow (their strategy skips name validation). */
function pathSegmentName(value: string): string[] {
  if (value === "." || value === "..") return [`may not be '${value}'`];
  return ["/", "%"].filter((c) => value.includes(c)).map((c) => `may not contain '${c}'`);
}

function validateCrd(obj: KubeObject, errs: FieldErrors, old?: KubeObject): void {
  const spec = recordAt(obj, "spec") ?? {};
  const group = spec.group;
  if (typeof group !== "string" || group === "") errs.required("spec.group");
  else {
    for (const msg of dns1123Subdomain(group)) errs.invalid("spec.group", group, msg);
    if (!group.includes(".")) errs.invalid("spec.group", group, "should be a domain with at least one dot");
  }
  const names = isRecord(spec.names) ? spec.names : {};
  const plural = names.plural;
  if (typeof plural !== "string" || plural === "") errs.required("spec.names.plural");
  else for (const msg of dns1035Label(plural)) errs.invalid("spec.names.plural", plural, msg);
  if (typeof names.singular === "string" && names.singular !== "") {
    for (const msg of dns1035Label(names.singular)) errs.invalid("spec.names.singular", names.singular, msg);
  }
  if (typeof names.kind !== "string" || names.kind === "") errs.required("spec.names.kind");
  if (typeof plural === "string" && typeof group === "string" && obj.metadata.name !== `${plural}.${group}`) {
    errs.invalid("metadata.name", obj.metadata.name ?? "", "must be spec.names.plural+\".\"+spec.group");
  }
  const scopes = ["Cluster", "Namespaced"];
  if (spec.scope === undefined || spec.scope === "") errs.required("spec.scope");
  else if (!scopes.includes(spec.scope as string)) errs.notSupported("spec.scope", spec.scope, scopes);
  const versions = asArray(spec.versions);
  if (versions.length === 0) errs.invalid("spec.versions", versions, "must have exactly one version marked as storage version");
  else {
    const storage = versions.filter((v) => isRecord(v) && v.storage === true).length;
    if (storage !== 1) errs.invalid("spec.versions", versions, "must have exactly one version marked as storage version");
    const seen = new Set<string>();
    versions.forEach((version, i) => {
      const v = isRecord(version) ? version : {};
      const path = `spec.versions[${i}]`;
      if (typeof v.name !== "string" || v.name === "") errs.required(`${path}.name`);
      else {
        for (const msg of dns1035Label(v.name)) errs.invalid(`${path}.name`, v.name, msg);
        if (seen.has(v.name)) errs.duplicate(`${path}.name`, v.name);
        seen.add(v.name);
      }
      if (!isRecord(v.schema) || !isRecord(v.schema.openAPIV3Schema)) errs.required(`${path}.schema.openAPIV3Schema`, "schemas are required");
    });
  }
  if (old) {
    const oldGroup = recordAt(old, "spec")?.group;
    if (oldGroup !== group) errs.invalid("spec.group", group ?? "", "field is immutable");
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Service spec (ValidateService), shared with ServiceAllocator so allocation never sees a spec kube would refuse.

const SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

/**
 * The static checks kube-apiserver makes on a Service spec. Fields that defaulting fills (protocol, type,
 * sessionAffinity) are read with their defaults, so this works on objects before or after defaulting.
 */
export function validateServiceSpec(spec: Record<string, unknown> | undefined, errs: FieldErrors): void {
  const s = spec ?? {};
  const type = (s.type ?? "ClusterIP") as string;
  if (!SERVICE_TYPES.includes(type)) errs.notSupported("spec.type", type, SERVICE_TYPES);
  const clusterIPs = asArray(s.clusterIPs).map(String);
  const headless = s.clusterIP === "None" || clusterIPs[0] === "None";
  const ports = asArray(s.ports);
  if (type === "ExternalName") {
    const name = s.externalName;
    if (typeof name !== "string" || name === "") errs.required("spec.externalName");
    else for (const msg of dns1123Subdomain(name.replace(/\.$/, ""))) errs.invalid("spec.externalName", name, msg);
    if (clusterIPs.length > 0 || (typeof s.clusterIP === "string" && s.clusterIP !== "")) {
      errs.forbidden("spec.clusterIPs", "may not be set for ExternalName services");
    }
    if (asArray(s.ipFamilies).length > 0) errs.forbidden("spec.ipFamilies", "may not be set for ExternalName services");
    if (s.ipFamilyPolicy !== undefined && s.ipFamilyPolicy !== null) errs.forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services");
  } else if (ports.length === 0 && !headless) {
    errs.required("spec.ports");
  }
  const portNames = new Set<string>();
  const portKeys = new Set<string>();
  const nodePortKeys = new Set<string>();
  ports.forEach((port, i) => {
    const p = isRecord(port) ? port : {};
    const path = `spec.ports[${i}]`;
    if (ports.length > 1 && (typeof p.name !== "string" || p.name === "")) errs.required(`${path}.name`);
    if (typeof p.name === "string" && p.name !== "") {
      for (const msg of dns1123Label(p.name)) errs.invalid(`${path}.name`, p.name, msg);
      if (portNames.has(p.name)) errs.duplicate(`${path}.name`, p.name);
      portNames.add(p.name);
    }
    const portOk = Number.isInteger(p.port) && (p.port as number) >= 1 && (p.port as number) <= 65535;
    if (!portOk) errs.invalid(`${path}.port`, p.port ?? 0, "must be between 1 and 65535, inclusive");
    const protocol = (p.protocol ?? "TCP") as string;
    if (!PROTOCOLS.includes(protocol)) errs.notSupported(`${path}.protocol`, protocol, PROTOCOLS);
    const target = p.targetPort;
    if (typeof target === "number") {
      // 0 means "unset" and is defaulted to port.
      if (target !== 0 && (!Number.isInteger(target) || target < 1 || target > 65535)) {
        errs.invalid(`${path}.targetPort`, target, "must be between 1 and 65535, inclusive");
      }
    } else if (typeof target === "string" && target !== "") {
      for (const msg of portName(target)) errs.invalid(`${path}.targetPort`, target, msg);
    }
    const nodePort = p.nodePort;
    if (nodePort !== undefined && nodePort !== 0) {
      if (!Number.isInteger(nodePort) || (nodePort as number) < 1 || (nodePort as number) > 65535) {
        errs.invalid(`${path}.nodePort`, nodePort, "must be between 1 and 65535, inclusive");
      } else if (type === "ClusterIP" || type === "ExternalName") {
        errs.forbidden(`${path}.nodePort`, `may not be used when \`type\` is '${type}'`);
      }
      const nodeKey = `${protocol}/${String(nodePort)}`;
      if (nodePortKeys.has(nodeKey)) errs.duplicate(`${path}.nodePort`, nodePort);
      nodePortKeys.add(nodeKey);
    }
    const key = `${protocol}/${String(p.port)}`;
    // kube keys duplicates on a core.ServicePort holding only protocol and port, and prints that struct.
    if (portOk && portKeys.has(key)) {
      errs.duplicate(path, new GoText(`core.ServicePort{Name:"", Protocol:${JSON.stringify(protocol)}, AppProtocol:(*string)(nil), Port:${String(p.port)}, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}`));
    }
    portKeys.add(key);
  });
  const affinities = ["ClientIP", "None"];
  const affinity = (s.sessionAffinity ?? "None") as string;
  if (!affinities.includes(affinity)) errs.notSupported("spec.sessionAffinity", affinity, affinities);
  if (affinity === "ClientIP") {
    const timeout = (s.sessionAffinityConfig as { clientIP?: { timeoutSeconds?: unknown } } | undefined)?.clientIP?.timeoutSeconds;
    if (timeout !== undefined && (!Number.isInteger(timeout) || (timeout as number) < 1 || (timeout as number) > 86400)) {
      errs.invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout, "must be greater than 0 and less than 86400");
    }
  } else if (s.sessionAffinityConfig !== undefined && s.sessionAffinityConfig !== null) {
    errs.forbidden("spec.sessionAffinityConfig", `must not be set when session affinity is ${affinity}`);
  }
  validateClusterIPFields(s, type, errs);
  const externallyAccessible = type === "NodePort" || type === "LoadBalancer" || (type === "ClusterIP" && asArray(s.externalIPs).length > 0);
  const etp = s.externalTrafficPolicy;
  if (etp !== undefined && etp !== "") {
    if (!externallyAccessible) {
      errs.invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services");
    } else if (etp !== "Cluster" && etp !== "Local") {
      errs.notSupported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"]);
    }
  }
  const itp = s.internalTrafficPolicy;
  if (itp !== undefined && itp !== null && itp !== "Cluster" && itp !== "Local") errs.notSupported("spec.internalTrafficPolicy", itp, ["Cluster", "Local"]);
  const hc = s.healthCheckNodePort;
  if (hc !== undefined && hc !== 0) {
    if (!(type === "LoadBalancer" && etp === "Local")) {
      errs.invalid("spec.healthCheckNodePort", hc, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'");
    } else if (!Number.isInteger(hc) || (hc as number) < 1 || (hc as number) > 65535) {
      errs.invalid("spec.healthCheckNodePort", hc, "must be between 1 and 65535, inclusive");
    }
  }
  if (s.allocateLoadBalancerNodePorts !== undefined && s.allocateLoadBalancerNodePorts !== null && type !== "LoadBalancer") {
    errs.forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'");
  }
  const lbClass = s.loadBalancerClass;
  if (lbClass !== undefined && lbClass !== null) {
    if (type !== "LoadBalancer") errs.forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'");
    else if (typeof lbClass !== "string") errs.invalid("spec.loadBalancerClass", lbClass, "must be a string");
    else for (const msg of qualifiedName(lbClass)) errs.invalid("spec.loadBalancerClass", lbClass, msg);
  }
  const ranges = asArray(s.loadBalancerSourceRanges);
  if (ranges.length > 0 && type !== "LoadBalancer") {
    // sic: kube-apiserver spells this path with a capital L.
    errs.forbidden("spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'");
  }
  ranges.forEach((range, i) => {
    if (typeof range !== "string" || !validCidr(range)) {
      errs.invalid(`spec.loadBalancerSourceRanges[${i}]`, range, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)");
    }
  });
  asArray(s.externalIPs).forEach((ip, i) => {
    if (typeof ip !== "string" || !validIp(ip)) errs.invalid(`spec.externalIPs[${i}]`, ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
  });
  if (typeof s.loadBalancerIP === "string" && s.loadBalancerIP !== "" && !validIp(s.loadBalancerIP)) {
    errs.invalid("spec.loadBalancerIP", s.loadBalancerIP, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
  }
}

/** ValidateServiceClusterIPsRelatedFields: clusterIP(s), ipFamilies and ipFamilyPolicy consistency. */
function validateClusterIPFields(s: Record<string, unknown>, type: string, errs: FieldErrors): void {
  if (type === "ExternalName") return;
  const clusterIPs = asArray(s.clusterIPs).map(String);
  const clusterIP = typeof s.clusterIP === "string" ? s.clusterIP : "";
  if (clusterIP !== "" && clusterIPs.length > 0 && clusterIPs[0] !== clusterIP) {
    errs.invalid("spec.clusterIPs", clusterIPs, "first value must match `clusterIP`");
  }
  if (clusterIPs.length > 2) errs.invalid("spec.clusterIPs", clusterIPs, "may only hold up to 2 values");
  const policies = ["PreferDualStack", "RequireDualStack", "SingleStack"];
  const policy = s.ipFamilyPolicy;
  if (policy !== undefined && policy !== null && !policies.includes(policy as string)) errs.notSupported("spec.ipFamilyPolicy", policy, policies);
  const families = asArray(s.ipFamilies);
  if (families.length > 2) errs.invalid("spec.ipFamilies", families, "may only hold up to 2 values");
  families.forEach((family, i) => {
    if (family !== "IPv4" && family !== "IPv6") errs.notSupported(`spec.ipFamilies[${i}]`, family, ["IPv4", "IPv6"]);
    else if (families.indexOf(family) !== i) errs.duplicate(`spec.ipFamilies[${i}]`, family);
  });
  const ipFamilies: string[] = [];
  clusterIPs.forEach((ip, i) => {
    if (ip === "None") {
      if (i > 0) errs.invalid(`spec.clusterIPs[${i}]`, ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
      else if (type === "NodePort" || type === "LoadBalancer") errs.invalid("spec.clusterIPs[0]", ip, `may not be set to 'None' for ${type} services`);
      return;
    }
    if (!validIp(ip)) {
      errs.invalid(`spec.clusterIPs[${i}]`, ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
      return;
    }
    const family = parseIp(ip).family === "ipv4" ? "IPv4" : "IPv6";
    if (ipFamilies.includes(family)) errs.invalid(`spec.clusterIPs[${i}]`, clusterIPs, "may not have the same family as clusterIPs[0]");
    ipFamilies.push(family);
    const declared = families[i];
    if (declared !== undefined && declared !== family) {
      errs.invalid(`spec.ipFamilies[${i}]`, declared, `does not match IP family of \`clusterIPs[${i}]\``);
    }
  });
  if (clusterIPs[0] === "None" && clusterIPs.length > 1) errs.invalid("spec.clusterIPs", clusterIPs, "must not have more than one value when the first is 'None'");
}

// ---------------------------------------------------------------------------------------------------------------
// Small JSON helpers shared by the sandbox's pure modules.

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function recordAt(obj: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const value = obj[key];
  return isRecord(value) ? value : undefined;
}

/** Deep equality of JSON values (object key order ignored). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  }
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a).filter((k) => a[k] !== undefined);
    const otherKeys = Object.keys(b).filter((k) => b[k] !== undefined);
    return keys.length === otherKeys.length && keys.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

export function validIp(text: string): boolean {
  try {
    parseIp(text);
    return true;
  } catch {
    return false;
  }
}

function validCidr(text: string): boolean {
  const slash = text.indexOf("/");
  if (slash < 0) return false;
  const prefix = Number(text.slice(slash + 1));
  const address = text.slice(0, slash);
  if (!validIp(address) || !/^\d{1,3}$/.test(text.slice(slash + 1))) return false;
  return prefix <= (parseIp(address).family === "ipv4" ? 32 : 128);
}
