// Literal Kubernetes objects for the controller's pure-decision tests; each builder takes overrides so a table row
// states only what it is about.
import type { V1Node, V1Pod, V1Service } from "../../../src/controller/types.js";

export interface ServiceOptions {
  name?: string;
  namespace?: string;
  uid?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  spec?: Partial<NonNullable<V1Service["spec"]>>;
}

export function service(options: ServiceOptions = {}): V1Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: options.name ?? "web",
      namespace: options.namespace ?? "default",
      uid: options.uid ?? "3f2a9c1e-7b4d-4e6f-9a8b-0c1d2e3f4a5b",
      ...(options.annotations ? { annotations: options.annotations } : {}),
      ...(options.labels ? { labels: options.labels } : {}),
    },
    spec: {
      type: "LoadBalancer",
      clusterIP: "10.43.0.10",
      clusterIPs: ["10.43.0.10"],
      ipFamilies: ["IPv4"],
      externalTrafficPolicy: "Cluster",
      ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080 as never, nodePort: 30080 }],
      ...options.spec,
    },
  };
}

export interface NodeOptions {
  labels?: Record<string, string>;
  addresses?: { type: string; address: string }[];
  ready?: boolean | "Unknown";
  unschedulable?: boolean;
  deleting?: boolean;
}

export function node(name: string, options: NodeOptions = {}): V1Node {
  const ready = options.ready ?? true;
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      ...(options.labels ? { labels: options.labels } : {}),
      ...(options.deleting ? { deletionTimestamp: new Date("2026-01-01T00:00:00Z") } : {}),
    },
    spec: options.unschedulable ? { unschedulable: true } : {},
    status: {
      addresses: options.addresses ?? [{ type: "InternalIP", address: "192.168.1.10" }, { type: "Hostname", address: name }],
      conditions: [{ type: "Ready", status: ready === "Unknown" ? "Unknown" : ready ? "True" : "False" }],
    },
  };
}

export interface PodOptions {
  namespace?: string;
  labels?: Record<string, string>;
  node?: string;
  /** Not bound yet, but pinned to this node as the DaemonSet controller pins its pods (matchFields metadata.name). */
  targetNode?: string;
  ready?: boolean;
  phase?: string;
  deleting?: boolean;
  hostPorts?: { port: number; protocol?: string; hostIP?: string }[];
  unschedulable?: string;
}

export function pod(name: string, options: PodOptions = {}): V1Pod {
  const conditions = [];
  if (options.unschedulable !== undefined) {
    conditions.push({ type: "PodScheduled", status: "False", reason: "Unschedulable", message: options.unschedulable });
  }
  if (options.ready !== undefined) conditions.push({ type: "Ready", status: options.ready ? "True" : "False" });
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: options.namespace ?? "berth-system",
      ...(options.labels ? { labels: options.labels } : {}),
      ...(options.deleting ? { deletionTimestamp: new Date("2026-01-01T00:00:00Z") } : {}),
    },
    spec: {
      ...(options.node !== undefined ? { nodeName: options.node } : {}),
      ...(options.targetNode !== undefined
        ? { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [
          { matchFields: [{ key: "metadata.name", operator: "In", values: [options.targetNode] }] },
        ] } } } }
        : {}),
      containers: [{
        name: "main",
        image: "example",
        ...(options.hostPorts
          ? { ports: options.hostPorts.map((p) => ({ containerPort: p.port, hostPort: p.port, protocol: p.protocol ?? "TCP", ...(p.hostIP ? { hostIP: p.hostIP } : {}) })) }
          : {}),
      }],
    },
    status: { phase: options.phase ?? (options.node !== undefined ? "Running" : "Pending"), conditions },
  };
}
