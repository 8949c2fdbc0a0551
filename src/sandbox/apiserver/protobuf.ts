// Decoding of the Kubernetes protobuf bodies kubectl's typed clients send (`kubectl create namespace|configmap|
// serviceaccount|service|deployment ...`, `kubectl auth can-i|whoami` POST `application/vnd.kubernetes.protobuf`,
// with no JSON fallback). Only the kinds and
// fields those generators write are known; a body using any other field is refused with 415 rather than decoded
// partially. Field numbers are those of k8s.io/api core/v1 and apimachinery meta/v1 generated.proto.
import { ApiError, type KubeObject } from "./types.js";

/** The 4-byte prefix of every Kubernetes protobuf envelope (runtime.Unknown follows). */
const MAGIC = [0x6b, 0x38, 0x73, 0x00];

type Scalar = "string" | "int" | "bool" | "bytes";
interface MessageSchema {
  name: string;
  fields: Record<number, FieldSchema>;
}
interface FieldSchema {
  json: string;
  type: Scalar | MessageSchema | "map" | "intOrString" | "skip";
  repeated?: boolean;
  /**
   * A pointer field in Go (`*int32`): written only when set, so a present zero means zero (`replicas: 0`) and is
   * kept, where a zero non-pointer field is left out as JSON's omitempty leaves it.
   */
  keepZero?: boolean;
}

const TIME_SKIPPED: FieldSchema["type"] = "skip";

const OWNER_REFERENCE: MessageSchema = {
  name: "OwnerReference",
  fields: {
    1: { json: "kind", type: "string" }, 3: { json: "name", type: "string" }, 4: { json: "uid", type: "string" },
    5: { json: "apiVersion", type: "string" }, 6: { json: "controller", type: "bool" },
    7: { json: "blockOwnerDeletion", type: "bool" },
  },
};

const OBJECT_META: MessageSchema = {
  name: "ObjectMeta",
  fields: {
    1: { json: "name", type: "string" }, 2: { json: "generateName", type: "string" },
    3: { json: "namespace", type: "string" }, 4: { json: "selfLink", type: "string" }, 5: { json: "uid", type: "string" },
    6: { json: "resourceVersion", type: "string" }, 7: { json: "generation", type: "int" },
    // creationTimestamp and deletionTimestamp are server-owned; the (empty) Time messages are skipped.
    8: { json: "creationTimestamp", type: TIME_SKIPPED }, 9: { json: "deletionTimestamp", type: TIME_SKIPPED },
    10: { json: "deletionGracePeriodSeconds", type: "int" },
    11: { json: "labels", type: "map" }, 12: { json: "annotations", type: "map" },
    13: { json: "ownerReferences", type: OWNER_REFERENCE, repeated: true },
    14: { json: "finalizers", type: "string", repeated: true },
  },
};

const LOCAL_OBJECT_REFERENCE: MessageSchema = { name: "LocalObjectReference", fields: { 1: { json: "name", type: "string" } } };

const SERVICE_PORT: MessageSchema = {
  name: "ServicePort",
  fields: {
    1: { json: "name", type: "string" }, 2: { json: "protocol", type: "string" }, 3: { json: "port", type: "int" },
    4: { json: "targetPort", type: "intOrString" }, 5: { json: "nodePort", type: "int" },
    6: { json: "appProtocol", type: "string" },
  },
};

const SERVICE_SPEC: MessageSchema = {
  name: "ServiceSpec",
  fields: {
    1: { json: "ports", type: SERVICE_PORT, repeated: true }, 2: { json: "selector", type: "map" },
    3: { json: "clusterIP", type: "string" }, 4: { json: "type", type: "string" },
    5: { json: "externalIPs", type: "string", repeated: true }, 7: { json: "sessionAffinity", type: "string" },
    8: { json: "loadBalancerIP", type: "string" }, 9: { json: "loadBalancerSourceRanges", type: "string", repeated: true },
    10: { json: "externalName", type: "string" }, 11: { json: "externalTrafficPolicy", type: "string" },
    12: { json: "healthCheckNodePort", type: "int" }, 13: { json: "publishNotReadyAddresses", type: "bool" },
  },
};

const INT_OR_STRING: FieldSchema["type"] = "intOrString";

const LABEL_SELECTOR: MessageSchema = {
  name: "LabelSelector",
  fields: {
    1: { json: "matchLabels", type: "map" },
    2: {
      json: "matchExpressions", repeated: true, type: {
        name: "LabelSelectorRequirement",
        fields: { 1: { json: "key", type: "string" }, 2: { json: "operator", type: "string" }, 3: { json: "values", type: "string", repeated: true } },
      },
    },
  },
};

const CONTAINER_PORT: MessageSchema = {
  name: "ContainerPort",
  fields: {
    1: { json: "name", type: "string" }, 2: { json: "hostPort", type: "int" }, 3: { json: "containerPort", type: "int" },
    4: { json: "protocol", type: "string" }, 5: { json: "hostIP", type: "string" },
  },
};

const ENV_VAR: MessageSchema = {
  name: "EnvVar",
  fields: {
    1: { json: "name", type: "string" }, 2: { json: "value", type: "string" },
    3: {
      json: "valueFrom", type: {
        name: "EnvVarSource",
        fields: { 1: { json: "fieldRef", type: { name: "ObjectFieldSelector", fields: { 1: { json: "apiVersion", type: "string" }, 2: { json: "fieldPath", type: "string" } } } } },
      },
    },
  },
};

const PROBE: MessageSchema = {
  name: "Probe",
  fields: {
    // ProbeHandler is inlined in JSON: its fields land on the Probe itself (see inline below).
    1: {
      json: "", type: {
        name: "ProbeHandler",
        fields: {
          1: { json: "exec", type: { name: "ExecAction", fields: { 1: { json: "command", type: "string", repeated: true } } } },
          2: {
            json: "httpGet", type: {
              name: "HTTPGetAction",
              fields: { 1: { json: "path", type: "string" }, 2: { json: "port", type: INT_OR_STRING }, 3: { json: "host", type: "string" }, 4: { json: "scheme", type: "string" } },
            },
          },
          3: { json: "tcpSocket", type: { name: "TCPSocketAction", fields: { 1: { json: "port", type: INT_OR_STRING }, 2: { json: "host", type: "string" } } } },
        },
      },
    },
    2: { json: "initialDelaySeconds", type: "int" }, 3: { json: "timeoutSeconds", type: "int" }, 4: { json: "periodSeconds", type: "int" },
    5: { json: "successThreshold", type: "int" }, 6: { json: "failureThreshold", type: "int" },
    7: { json: "terminationGracePeriodSeconds", type: "int" },
  },
};

// ResourceRequirements' maps hold resource.Quantity messages; the create generators write the message empty, so
// only an empty one is accepted (a non-empty map entry is an unknown field and refused).
const RESOURCE_REQUIREMENTS: MessageSchema = { name: "ResourceRequirements", fields: {} };

const CONTAINER: MessageSchema = {
  name: "Container",
  fields: {
    1: { json: "name", type: "string" }, 2: { json: "image", type: "string" }, 3: { json: "command", type: "string", repeated: true },
    4: { json: "args", type: "string", repeated: true }, 5: { json: "workingDir", type: "string" },
    6: { json: "ports", type: CONTAINER_PORT, repeated: true }, 7: { json: "env", type: ENV_VAR, repeated: true },
    8: { json: "resources", type: RESOURCE_REQUIREMENTS },
    9: {
      json: "volumeMounts", repeated: true, type: {
        name: "VolumeMount",
        fields: { 1: { json: "name", type: "string" }, 2: { json: "readOnly", type: "bool" }, 3: { json: "mountPath", type: "string" }, 4: { json: "subPath", type: "string" } },
      },
    },
    10: { json: "livenessProbe", type: PROBE }, 11: { json: "readinessProbe", type: PROBE }, 22: { json: "startupProbe", type: PROBE },
    13: { json: "terminationMessagePath", type: "string" }, 20: { json: "terminationMessagePolicy", type: "string" },
    14: { json: "imagePullPolicy", type: "string" }, 16: { json: "stdin", type: "bool" }, 17: { json: "stdinOnce", type: "bool" },
    18: { json: "tty", type: "bool" },
  },
};

const POD_SPEC: MessageSchema = {
  name: "PodSpec",
  fields: {
    1: {
      json: "volumes", repeated: true, type: {
        name: "Volume",
        fields: {
          1: { json: "name", type: "string" },
          // VolumeSource is inlined in JSON, as ProbeHandler is.
          2: { json: "", type: { name: "VolumeSource", fields: { 2: { json: "emptyDir", keepZero: true, type: { name: "EmptyDirVolumeSource", fields: { 1: { json: "medium", type: "string" } } } } } } },
        },
      },
    },
    2: { json: "containers", type: CONTAINER, repeated: true }, 3: { json: "restartPolicy", type: "string" },
    4: { json: "terminationGracePeriodSeconds", type: "int" }, 5: { json: "activeDeadlineSeconds", type: "int" },
    6: { json: "dnsPolicy", type: "string" }, 7: { json: "nodeSelector", type: "map" },
    8: { json: "serviceAccountName", type: "string" }, 9: { json: "serviceAccount", type: "string" },
    10: { json: "nodeName", type: "string" }, 11: { json: "hostNetwork", type: "bool" },
    14: {
      json: "securityContext", type: {
        name: "PodSecurityContext",
        fields: { 7: { json: "sysctls", repeated: true, type: { name: "Sysctl", fields: { 1: { json: "name", type: "string" }, 2: { json: "value", type: "string" } } } } },
      },
    },
    16: { json: "hostname", type: "string" }, 17: { json: "subdomain", type: "string" },
    19: { json: "schedulerName", type: "string" }, 20: { json: "initContainers", type: CONTAINER, repeated: true },
    22: {
      json: "tolerations", repeated: true, type: {
        name: "Toleration",
        fields: {
          1: { json: "key", type: "string" }, 2: { json: "operator", type: "string" }, 3: { json: "value", type: "string" },
          4: { json: "effect", type: "string" }, 5: { json: "tolerationSeconds", type: "int" },
        },
      },
    },
    24: { json: "priorityClassName", type: "string" }, 30: { json: "enableServiceLinks", type: "bool" },
  },
};

const POD_TEMPLATE_SPEC: MessageSchema = {
  name: "PodTemplateSpec",
  fields: { 1: { json: "metadata", type: OBJECT_META }, 2: { json: "spec", type: POD_SPEC } },
};

const DEPLOYMENT_SPEC: MessageSchema = {
  name: "DeploymentSpec",
  fields: {
    1: { json: "replicas", type: "int", keepZero: true }, 2: { json: "selector", type: LABEL_SELECTOR },
    3: { json: "template", type: POD_TEMPLATE_SPEC },
    4: {
      json: "strategy", type: {
        name: "DeploymentStrategy",
        fields: {
          1: { json: "type", type: "string" },
          2: { json: "rollingUpdate", type: { name: "RollingUpdateDeployment", fields: { 1: { json: "maxUnavailable", type: INT_OR_STRING }, 2: { json: "maxSurge", type: INT_OR_STRING } } } },
        },
      },
    },
    5: { json: "minReadySeconds", type: "int" }, 6: { json: "revisionHistoryLimit", type: "int", keepZero: true },
    7: { json: "paused", type: "bool" }, 9: { json: "progressDeadlineSeconds", type: "int", keepZero: true },
  },
};

const REPLICA_SET_SPEC: MessageSchema = {
  name: "ReplicaSetSpec",
  fields: {
    1: { json: "replicas", type: "int", keepZero: true }, 2: { json: "selector", type: LABEL_SELECTOR },
    3: { json: "template", type: POD_TEMPLATE_SPEC }, 4: { json: "minReadySeconds", type: "int" },
  },
};

// Status is server-owned on create for these kinds (namespace phase, service load balancer): skipped.
const KINDS: Record<string, MessageSchema> = {
  "v1/Namespace": {
    name: "Namespace",
    fields: {
      1: { json: "metadata", type: OBJECT_META },
      2: { json: "spec", type: { name: "NamespaceSpec", fields: { 1: { json: "finalizers", type: "string", repeated: true } } } },
      3: { json: "status", type: "skip" },
    },
  },
  "v1/ConfigMap": {
    name: "ConfigMap",
    fields: {
      1: { json: "metadata", type: OBJECT_META }, 2: { json: "data", type: "map" },
      3: { json: "binaryData", type: "map" }, 4: { json: "immutable", type: "bool" },
    },
  },
  "v1/ServiceAccount": {
    name: "ServiceAccount",
    fields: {
      1: { json: "metadata", type: OBJECT_META },
      3: { json: "imagePullSecrets", type: LOCAL_OBJECT_REFERENCE, repeated: true },
      4: { json: "automountServiceAccountToken", type: "bool" },
    },
  },
  // Access reviews are answered, not stored, and the sandbox allows everything: their spec need not be read.
  "authorization.k8s.io/v1/SelfSubjectAccessReview": {
    name: "SelfSubjectAccessReview",
    fields: { 1: { json: "metadata", type: OBJECT_META }, 2: { json: "spec", type: "skip" }, 3: { json: "status", type: "skip" } },
  },
  "authentication.k8s.io/v1/SelfSubjectReview": {
    name: "SelfSubjectReview",
    fields: { 1: { json: "metadata", type: OBJECT_META }, 2: { json: "status", type: "skip" } },
  },
  // `kubectl create deployment` (and `create deploy ... --dry-run` applied later) writes Deployments through the
  // typed apps/v1 client; the pod, replica set and scale shapes decode with the same schemas.
  "apps/v1/Deployment": {
    name: "Deployment",
    fields: { 1: { json: "metadata", type: OBJECT_META }, 2: { json: "spec", type: DEPLOYMENT_SPEC }, 3: { json: "status", type: "skip" } },
  },
  "apps/v1/ReplicaSet": {
    name: "ReplicaSet",
    fields: { 1: { json: "metadata", type: OBJECT_META }, 2: { json: "spec", type: REPLICA_SET_SPEC }, 3: { json: "status", type: "skip" } },
  },
  "v1/Pod": {
    name: "Pod",
    fields: { 1: { json: "metadata", type: OBJECT_META }, 2: { json: "spec", type: POD_SPEC }, 3: { json: "status", type: "skip" } },
  },
  "v1/Service": {
    name: "Service",
    fields: { 1: { json: "metadata", type: OBJECT_META }, 2: { json: "spec", type: SERVICE_SPEC }, 3: { json: "status", type: "skip" } },
  },
};

function unsupported(message: string): ApiError {
  return new ApiError(415, "UnsupportedMediaType",
    `the sandbox API server decodes protobuf only for kubectl's create generators (${message}); send application/json`);
}

interface Field {
  num: number;
  wire: number;
  varint?: bigint;
  bytes?: Uint8Array;
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new ApiError(400, "BadRequest", "protobuf: truncated varint");
      const b = this.buf[this.pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new ApiError(400, "BadRequest", "protobuf: varint too long");
    }
  }

  take(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) throw new ApiError(400, "BadRequest", "protobuf: truncated field");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  field(): Field {
    const key = this.varint();
    const num = Number(key >> 3n);
    const wire = Number(key & 7n);
    switch (wire) {
      case 0:
        return { num, wire, varint: this.varint() };
      case 1:
        return { num, wire, bytes: this.take(8) };
      case 2:
        return { num, wire, bytes: this.take(Number(this.varint())) };
      case 5:
        return { num, wire, bytes: this.take(4) };
      default:
        throw new ApiError(400, "BadRequest", `protobuf: unsupported wire type ${wire}`);
    }
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function isZero(v: unknown): boolean {
  return v === "" || v === 0 || v === false || v === undefined ||
    (Array.isArray(v) && v.length === 0) || (typeof v === "object" && v !== null && Object.keys(v).length === 0);
}

function decodeMap(entries: Uint8Array[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    const r = new Reader(e);
    let key = "";
    let value = "";
    while (!r.done()) {
      const f = r.field();
      if (f.num === 1 && f.bytes) key = utf8.decode(f.bytes);
      else if (f.num === 2 && f.bytes) value = utf8.decode(f.bytes);
    }
    out[key] = value;
  }
  return out;
}

function decodeIntOrString(bytes: Uint8Array): number | string {
  const r = new Reader(bytes);
  let type = 0n;
  let intVal = 0n;
  let strVal = "";
  while (!r.done()) {
    const f = r.field();
    if (f.num === 1 && f.varint !== undefined) type = f.varint;
    else if (f.num === 2 && f.varint !== undefined) intVal = BigInt.asIntN(32, f.varint);
    else if (f.num === 3 && f.bytes) strVal = utf8.decode(f.bytes);
  }
  return type === 1n ? strVal : Number(intVal);
}

/**
 * Decodes one message. Go's generated marshallers write every non-pointer field, zero or not; JSON leaves the
 * `omitempty` ones out, so zero values are dropped here (a required zero, like port 0, is invalid anyway).
 */
function decodeMessage(schema: MessageSchema, bytes: Uint8Array, path: string): Record<string, unknown> {
  const r = new Reader(bytes);
  const out: Record<string, unknown> = {};
  const maps = new Map<string, Uint8Array[]>();
  const kept = new Set<string>();
  while (!r.done()) {
    const f = r.field();
    const fs = schema.fields[f.num];
    if (!fs) {
      if ((f.bytes && f.bytes.length === 0) || f.varint === 0n) continue;
      throw unsupported(`field ${f.num} of ${schema.name} at ${path || "."}`);
    }
    if (fs.type === "skip") continue;
    let value: unknown;
    if (fs.type === "map") {
      const list = maps.get(fs.json) ?? [];
      list.push(f.bytes ?? new Uint8Array());
      maps.set(fs.json, list);
      continue;
    } else if (fs.type === "string" || fs.type === "bytes") {
      value = fs.type === "string" ? utf8.decode(f.bytes ?? new Uint8Array()) : Buffer.from(f.bytes ?? []).toString("base64");
    } else if (fs.type === "int") {
      value = Number(BigInt.asIntN(64, f.varint ?? 0n));
    } else if (fs.type === "bool") {
      value = (f.varint ?? 0n) !== 0n;
    } else if (fs.type === "intOrString") {
      value = decodeIntOrString(f.bytes ?? new Uint8Array());
    } else {
      value = decodeMessage(fs.type, f.bytes ?? new Uint8Array(), `${path}.${fs.json}`);
    }
    if (fs.json === "") {
      // An embedded struct JSON inlines (Probe's ProbeHandler, Volume's VolumeSource): its fields are the parent's.
      Object.assign(out, value);
    } else if (fs.repeated) {
      const list = (out[fs.json] as unknown[] | undefined) ?? [];
      list.push(value);
      out[fs.json] = list;
    } else if (!isZero(value) || fs.type === "intOrString" || fs.keepZero) {
      out[fs.json] = value;
      if (fs.keepZero) kept.add(fs.json);
    }
  }
  for (const [key, entries] of maps) out[key] = decodeMap(entries);
  for (const key of Object.keys(out)) if (isZero(out[key]) && key !== "spec" && !kept.has(key)) delete out[key];
  return out;
}

export function isProtobufBody(body: Uint8Array): boolean {
  return MAGIC.every((b, i) => body[i] === b);
}

/** Decodes a `k8s\0`-prefixed runtime.Unknown envelope into the JSON object kube-apiserver would have read. */
export function decodeKubeProtobuf(body: Uint8Array): KubeObject {
  if (!isProtobufBody(body)) throw new ApiError(400, "BadRequest", "protobuf body without the k8s\\0 envelope prefix");
  const r = new Reader(body.subarray(MAGIC.length));
  let apiVersion = "";
  let kind = "";
  let raw: Uint8Array | undefined;
  while (!r.done()) {
    const f = r.field();
    if (f.num === 1 && f.bytes) {
      const t = new Reader(f.bytes);
      while (!t.done()) {
        const tf = t.field();
        if (tf.num === 1 && tf.bytes) apiVersion = utf8.decode(tf.bytes);
        else if (tf.num === 2 && tf.bytes) kind = utf8.decode(tf.bytes);
      }
    } else if (f.num === 2 && f.bytes) {
      raw = f.bytes;
    } else if (f.num === 3 && f.bytes && f.bytes.length > 0) {
      throw unsupported("content encoding");
    }
  }
  const schema = KINDS[`${apiVersion}/${kind}`];
  if (!schema) throw unsupported(`kind ${apiVersion}/${kind}`);
  const obj = decodeMessage(schema, raw ?? new Uint8Array(), "");
  return { apiVersion, kind, ...obj, metadata: (obj.metadata ?? {}) as KubeObject["metadata"] };
}
