// A core/v1 Event about a Service, as client-go's event recorder writes it: named `<object>.<unix nanos in hex>`,
// the involved object's uid and resourceVersion, a message cut to kube's 1 KiB limit, second-precision timestamps,
// and the reporting component and instance that events.k8s.io/v1 readers show. The controller and the speaker both
// write them; only the de-duplication around them differs (the controller counts repeats, the speaker never repeats).
import type { V1Service } from "@kubernetes/client-node";

export interface ServiceEventInput {
  service: V1Service;
  type: string;
  reason: string;
  message: string;
  /** Unix ms of this occurrence. */
  now: number;
  /** `source.component` (core/v1 readers: `kubectl describe`, "From"), and `source.host` when given. */
  source: { component: string; host?: string };
  /** `reportingComponent` and `reportingInstance` (events.k8s.io/v1 readers). */
  reporting: { component: string; instance: string };
  /** A repeat of an Event that expired: keep its first time and count. */
  first?: { firstTimestamp: string; count: number };
}

/** Kube's Event timestamps have second precision (metav1.Time). */
export function eventStamp(now: number): string {
  return new Date(now).toISOString().replace(/\.\d+Z$/, "Z");
}

/** The Event's body, ready for a create in the Service's namespace. */
export function serviceEvent(e: ServiceEventInput): Record<string, unknown> {
  const { service } = e;
  const stamp = eventStamp(e.now);
  return {
    metadata: {
      name: `${service.metadata?.name}.${(BigInt(e.now) * 1_000_000n + BigInt(Math.floor(Math.random() * 1e6))).toString(16)}`,
      namespace: service.metadata?.namespace,
    },
    involvedObject: {
      apiVersion: "v1", kind: "Service", namespace: service.metadata?.namespace, name: service.metadata?.name,
      uid: service.metadata?.uid, resourceVersion: service.metadata?.resourceVersion,
    },
    reason: e.reason,
    message: e.message.slice(0, 1024),
    type: e.type,
    source: e.source,
    firstTimestamp: e.first?.firstTimestamp ?? stamp,
    lastTimestamp: stamp,
    count: e.first?.count ?? 1,
    reportingComponent: e.reporting.component,
    reportingInstance: e.reporting.instance,
  };
}
