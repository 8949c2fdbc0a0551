// The `scale` subresource of Deployments and ReplicaSets (`kubectl scale`, HPA-style clients): an autoscaling/v1
// Scale read from and written to the object's spec.replicas, as kube-apiserver's ScaleREST does
// (pkg/registry/apps/deployment/storage/storage.go, scaleFromDeployment and scaleUpdatedObjectInfo).
import { formatLabelSelector } from "./table.js";
import { ApiError, type KubeObject } from "./types.js";

/** The autoscaling/v1 Scale kube-apiserver answers for `obj` (a Deployment or ReplicaSet). */
export function scaleOf(obj: KubeObject): KubeObject {
  const spec = (obj.spec ?? {}) as { replicas?: number; selector?: unknown };
  const status = (obj.status ?? {}) as { replicas?: number };
  const selector = formatLabelSelector(spec.selector);
  const meta = obj.metadata;
  return {
    kind: "Scale",
    apiVersion: "autoscaling/v1",
    metadata: {
      name: meta.name, namespace: meta.namespace, uid: meta.uid, resourceVersion: meta.resourceVersion,
      creationTimestamp: meta.creationTimestamp,
    },
    spec: { ...(spec.replicas ? { replicas: spec.replicas } : {}) },
    status: { replicas: status.replicas ?? 0, ...(selector !== "<none>" ? { selector } : {}) },
  };
}

/**
 * The replica count a written Scale asks for, checked as ValidateScale does (an integer >= 0). `kind` and `name`
 * make the 422's message (`Scale.autoscaling "web" is invalid: ...`).
 */
export function replicasOfScale(scale: unknown, name: string): number {
  const spec = scale && typeof scale === "object" ? ((scale as { spec?: unknown }).spec ?? {}) : {};
  const replicas = (spec as { replicas?: unknown }).replicas ?? 0;
  if (typeof replicas !== "number" || !Number.isInteger(replicas)) {
    throw new ApiError(400, "BadRequest", `Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal ${typeof replicas} into Go struct field ScaleSpec.spec.replicas of type int32`);
  }
  if (replicas < 0) {
    const message = `Invalid value: ${replicas}: must be greater than or equal to 0`;
    throw new ApiError(422, "Invalid", `Scale.autoscaling "${name}" is invalid: spec.replicas: ${message}`,
      { name, group: "autoscaling", kind: "Scale", causes: [{ reason: "FieldValueInvalid", message, field: "spec.replicas" }] });
  }
  return replicas;
}
