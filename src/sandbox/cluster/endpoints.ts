// The sandbox's stand-in for the EndpointSlice controller (kube-controller-manager's endpointslice controller,
// pkg/controller/endpointslice), small enough to read in one sitting.
//
// What it reproduces:
// - for every Service with a non-empty selector (not ExternalName), EndpointSlices labelled
//   `kubernetes.io/service-name: <svc>` and `endpointslice.kubernetes.io/managed-by: berth-sandbox`, owned by the
//   Service (ownerReference), one per address family of spec.ipFamilies (addressType IPv4 / IPv6);
// - one endpoint per selected pod that has an IP of that family and a node: addresses, nodeName, targetRef, and
//   conditions as the real controller sets them since EndpointSliceTerminatingCondition went GA (1.26):
//   ready = pod Ready and not terminating (or publishNotReadyAddresses), serving = pod Ready (or
//   publishNotReadyAddresses), terminating = deletionTimestamp set; pods in phase Succeeded/Failed are left out;
// - ports resolved per pod from targetPort: a number, a named container port (as podutil.FindPort), or the
//   Service port when unset; pods whose ports resolve differently land in different slices, as upstream groups
//   endpoints by port set. A pod lacking a named port is left out of that port (upstream does the same);
// - a Service with a selector but no endpoints gets an empty slice per family (upstream's placeholder slice);
// - slices it no longer wants (Service deleted, selector removed, family dropped) are deleted.
// What it leaves out: the 100-endpoints-per-slice limit (one slice holds them all), topology hints and zones,
// hostname/subdomain, the Endpoints (v1) object and its mirroring, and the trigger-time annotation.
//
// Slice names: `<svc>-sandbox` for IPv4, `<svc>-sandbox-ipv6` for IPv6, with `-2`, `-3`... appended for further
// port sets. Upstream uses generateName (`<svc>-xxxxx`); fixed names make the sandbox's objects easy to find.
import { isConflict, isNotFound, noLog, Resources, type KubeClient, type KubeObject, type LogFn } from "../../lib/kube/client.js";
import { Informer, objectKey } from "../../lib/kube/informer.js";
import { WorkQueue } from "../../lib/kube/queue.js";
import type { V1EndpointSlice, V1Pod, V1Service } from "@kubernetes/client-node";

/** discovery.k8s.io/v1 LabelServiceName: the Service a slice belongs to. */
export const ENDPOINTSLICE_SERVICE_LABEL = "kubernetes.io/service-name";
/** discovery.k8s.io/v1 LabelManagedBy: which controller owns a slice. */
export const ENDPOINTSLICE_MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by";
/** Our value of ENDPOINTSLICE_MANAGED_BY_LABEL (upstream's is "endpointslice-controller.k8s.io"). */
export const SANDBOX_ENDPOINTSLICE_MANAGER = "berth-sandbox";

export type Service = V1Service & KubeObject;
export type Pod = V1Pod & KubeObject;
export type EndpointSlice = V1EndpointSlice & KubeObject;

type AddressType = "IPv4" | "IPv6";

interface SlicePort {
  name: string;
  port: number;
  protocol: string;
  appProtocol?: string;
}

/**
 * The EndpointSlices the Service should have, given the pods of its namespace (others are ignored). Pure:
 * deterministic order (family, then port set), endpoints sorted by address.
 */
export function desiredEndpointSlices(service: Service, pods: readonly Pod[]): EndpointSlice[] {
  const spec = service.spec;
  const selector = spec?.selector ?? {};
  const name = service.metadata?.name ?? "";
  const namespace = service.metadata?.namespace ?? "default";
  if (!spec || spec.type === "ExternalName" || Object.keys(selector).length === 0) return [];
  const families = (spec.ipFamilies?.length ? spec.ipFamilies : ["IPv4"]).filter((f): f is AddressType => f === "IPv4" || f === "IPv6");
  const publishNotReady = spec.publishNotReadyAddresses === true;
  const selected = pods
    .filter((pod) => (pod.metadata?.namespace ?? "default") === namespace)
    .filter((pod) => Object.entries(selector).every(([key, value]) => pod.metadata?.labels?.[key] === value))
    .filter((pod) => pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed" && pod.spec?.nodeName);

  const slices: EndpointSlice[] = [];
  for (const addressType of families) {
    // Endpoints grouped by their resolved port set, as upstream's reconciler does (one slice per set).
    const groups = new Map<string, { ports: SlicePort[]; endpoints: NonNullable<V1EndpointSlice["endpoints"]> }>();
    for (const pod of selected) {
      const address = podIps(pod).find((ip) => (ip.includes(":") ? "IPv6" : "IPv4") === addressType);
      if (!address) continue;
      const ports = resolvePorts(service, pod);
      const key = JSON.stringify(ports);
      const group = groups.get(key) ?? { ports, endpoints: [] };
      groups.set(key, group);
      const podReady = (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
      const terminating = Boolean(pod.metadata && (pod.metadata as { deletionTimestamp?: unknown }).deletionTimestamp);
      group.endpoints.push({
        addresses: [address],
        conditions: { ready: publishNotReady || (podReady && !terminating), serving: publishNotReady || podReady, terminating },
        nodeName: pod.spec?.nodeName,
        targetRef: { kind: "Pod", namespace, name: pod.metadata?.name, uid: pod.metadata?.uid },
      });
    }
    const ordered = [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, group]) => group);
    // Upstream's placeholder: a Service with a selector and no endpoints still has one (empty) slice per family.
    if (ordered.length === 0) ordered.push({ ports: [], endpoints: [] });
    ordered.forEach((group, index) => {
      const base = `${name}-sandbox${addressType === "IPv6" ? "-ipv6" : ""}`;
      group.endpoints.sort((a, b) => compareText(a.addresses[0] ?? "", b.addresses[0] ?? ""));
      slices.push({
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: {
          name: index === 0 ? base : `${base}-${index + 1}`,
          namespace,
          labels: { [ENDPOINTSLICE_SERVICE_LABEL]: name, [ENDPOINTSLICE_MANAGED_BY_LABEL]: SANDBOX_ENDPOINTSLICE_MANAGER },
          ownerReferences: [
            { apiVersion: "v1", kind: "Service", name, uid: service.metadata?.uid ?? "", controller: true, blockOwnerDeletion: true },
          ],
        } as EndpointSlice["metadata"],
        addressType,
        endpoints: group.endpoints,
        ports: group.ports,
      });
    });
  }
  return slices;
}

function podIps(pod: Pod): string[] {
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => Boolean(ip));
  if (ips.length > 0) return ips;
  return pod.status?.podIP ? [pod.status.podIP] : [];
}

/** The Service's ports as this pod serves them; a named targetPort the pod lacks drops that port (podutil.FindPort). */
function resolvePorts(service: Service, pod: Pod): SlicePort[] {
  const ports: SlicePort[] = [];
  for (const port of service.spec?.ports ?? []) {
    const protocol = port.protocol ?? "TCP";
    let target: number | undefined;
    if (port.targetPort === undefined || port.targetPort === "") target = port.port;
    else if (typeof port.targetPort === "number") target = port.targetPort;
    else if (/^\d+$/.test(port.targetPort)) target = Number(port.targetPort);
    else {
      const named = port.targetPort;
      target = (pod.spec?.containers ?? [])
        .flatMap((c) => c.ports ?? [])
        .find((p) => p.name === named && (p.protocol ?? "TCP") === protocol)?.containerPort;
    }
    if (target === undefined) continue;
    const slicePort: SlicePort = { name: port.name ?? "", port: target, protocol };
    if (port.appProtocol) slicePort.appProtocol = port.appProtocol;
    ports.push(slicePort);
  }
  return ports;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The parts of a slice this stand-in decides; equal parts mean nothing to write. */
function sliceContent(slice: EndpointSlice): string {
  return JSON.stringify([slice.addressType, slice.endpoints ?? [], slice.ports ?? [], slice.metadata?.labels ?? {}, slice.metadata?.ownerReferences ?? []]);
}

/**
 * Keeps EndpointSlices in line with Services and Pods (see the file comment). Handlers only enqueue Service keys;
 * one worker reconciles a Service at a time. start() resolves once every existing Service has been reconciled.
 */
export class EndpointsStandIn {
  private readonly services: Informer<Service>;
  private readonly pods: Informer<Pod>;
  private readonly slices: Informer<EndpointSlice>;
  private readonly queue: WorkQueue;
  private readonly log: LogFn;
  private running: Promise<void> | undefined;

  constructor(private readonly o: { client: KubeClient; log?: LogFn }) {
    this.log = o.log ?? noLog;
    this.services = new Informer<Service>({ client: o.client, resource: Resources.services, log: this.log });
    this.pods = new Informer<Pod>({ client: o.client, resource: Resources.pods, log: this.log });
    this.slices = new Informer<EndpointSlice>({
      client: o.client,
      resource: Resources.endpointSlices,
      labelSelector: `${ENDPOINTSLICE_MANAGED_BY_LABEL}=${SANDBOX_ENDPOINTSLICE_MANAGER}`,
      log: this.log,
    });
    this.queue = new WorkQueue({ log: this.log, name: "sandbox-endpoints" });
    this.services.addHandlers({
      onAdd: (svc) => this.queue.add(objectKey(svc)),
      onUpdate: (_old, svc) => this.queue.add(objectKey(svc)),
      onDelete: (svc) => this.queue.add(objectKey(svc)),
    });
    const podChanged = (pod: Pod): void => {
      for (const svc of this.services.list((s) => s.metadata?.namespace === pod.metadata?.namespace)) {
        const selector = svc.spec?.selector ?? {};
        const matches = Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => pod.metadata?.labels?.[k] === v);
        if (matches) this.queue.add(objectKey(svc));
      }
    };
    this.pods.addHandlers({
      onAdd: podChanged,
      // Both states: a pod whose labels changed leaves one Service and joins another.
      onUpdate: (old, pod) => {
        podChanged(old);
        podChanged(pod);
      },
      onDelete: podChanged,
    });
    const sliceChanged = (slice: EndpointSlice): void => {
      const svc = slice.metadata?.labels?.[ENDPOINTSLICE_SERVICE_LABEL];
      if (svc) this.queue.add(`${slice.metadata?.namespace}/${svc}`);
    };
    this.slices.addHandlers({ onAdd: sliceChanged, onUpdate: (_old, slice) => sliceChanged(slice), onDelete: sliceChanged });
  }

  async start(): Promise<void> {
    for (const informer of [this.services, this.pods, this.slices]) informer.start();
    await Promise.all([this.services.synced, this.pods.synced, this.slices.synced]);
    // The first pass runs here, so that start() resolving means the slices are in place.
    const initial = new Set([...this.services.keys(), ...this.sliceServiceKeys()]);
    for (const key of initial) await this.reconcileWithRetry(key);
    this.running = this.queue.run((key) => this.reconcile(key), {
      onError: (key, error, requeues) => this.log("warn", `sandbox endpoints: ${key} failed, retrying`, { error: String(error), requeues }),
    });
  }

  async stop(): Promise<void> {
    await this.queue.shutdown();
    await this.running;
    await Promise.all([this.services.stop(), this.pods.stop(), this.slices.stop()]);
  }

  /** Service keys of our existing slices (those of deleted Services included, so their slices go). */
  private sliceServiceKeys(): string[] {
    return this.slices
      .list()
      .map((slice) => {
        const svc = slice.metadata?.labels?.[ENDPOINTSLICE_SERVICE_LABEL];
        return svc ? `${slice.metadata?.namespace}/${svc}` : undefined;
      })
      .filter((key): key is string => key !== undefined);
  }

  private async reconcileWithRetry(key: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.reconcile(key);
        return;
      } catch (error) {
        if (attempt >= 4) {
          this.log("warn", `sandbox endpoints: ${key} failed at start, left to the queue`, { error: String(error) });
          this.queue.addRateLimited(key);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
      }
    }
  }

  private async reconcile(key: string): Promise<void> {
    const [namespace = "", name = ""] = key.split("/");
    const service = this.services.get(key);
    const desired = service ? desiredEndpointSlices(service, this.pods.list((p) => p.metadata?.namespace === namespace)) : [];
    const existing = new Map(
      this.slices
        .list((s) => s.metadata?.namespace === namespace && s.metadata?.labels?.[ENDPOINTSLICE_SERVICE_LABEL] === name)
        .map((s) => [s.metadata?.name ?? "", s]),
    );
    const client = this.o.client;
    for (const slice of desired) {
      const sliceName = slice.metadata?.name ?? "";
      const current = existing.get(sliceName);
      existing.delete(sliceName);
      if (current && sliceContent(current) === sliceContent(slice)) continue;
      try {
        if (current) {
          const metadata = { ...slice.metadata, resourceVersion: current.metadata?.resourceVersion };
          await client.replace(Resources.endpointSlices, { ...slice, metadata } as EndpointSlice);
        } else {
          await client.create(Resources.endpointSlices, slice);
        }
        this.log("debug", `sandbox endpoints: wrote ${namespace}/${sliceName}`, { endpoints: slice.endpoints?.length ?? 0 });
      } catch (error) {
        // A stale cache (409): the informer will deliver the newer object, which re-queues the Service.
        if (!isConflict(error)) throw error;
        throw new Error(`conflict writing ${namespace}/${sliceName}; will retry`, { cause: error });
      }
    }
    for (const stale of existing.values()) {
      try {
        await client.delete(Resources.endpointSlices, stale.metadata?.name ?? "", { namespace });
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
  }
}
