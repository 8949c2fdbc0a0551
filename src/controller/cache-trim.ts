// What the controller's informers keep of each object: only the fields the decisions read (service-config,
// daemonset, status, conflicts, conditions, the controller's handlers and indexes). A pod as the API server sends
// it, with managedFields and container statuses, is 10-25 KiB in memory; trimmed, ~1 KiB, and the controller caches
// one pod per Service per node (100,000 at 1,000 Services x 100 nodes). client-go controllers do the same with an
// informer transform (SharedIndexInformer.SetTransform, e.g. dropping managedFields). Each function is pure and
// keeps metadata.name, namespace, uid and resourceVersion, which the informer and PendingWrites need.
// test/unit/controller/cache-trim.test.ts runs every decision on full and on trimmed objects and expects the same
// output: a field a decision starts reading that a trim drops fails there.
// Trimmed is not yet small at 100,000 lb-pods: a trimmed pod still retained ~2 KiB (labels, owner reference, node
// affinity, container ports and conditions are each a few objects), ~200 MiB in all. Those parts are the same for
// every pod of a DaemonSet (labels, owner, ports), of a node (affinity) or of a state (status), so the pod trim
// shares them (see Shared below): a cached lb-pod then costs its name, uid and resourceVersion and three small
// objects (~0.5 KiB).
import type { KubeObject } from "../lib/kube/client.js";
import type { V1DaemonSet, V1EndpointSlice, V1Node, V1Pod, V1Service } from "./types.js";

/** kubectl's client-side apply copy of the whole object: as large as the object, read by nobody here. */
const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

type Meta = NonNullable<KubeObject["metadata"]> & Record<string, unknown>;

/**
 * Structural sharing (interning) of the repeated parts of cached objects: share(v) returns an earlier, frozen value
 * equal to v (same JSON) if one is still alive, else freezes and remembers v. Entries are held weakly, so a value no
 * cached object uses any more (a deleted DaemonSet's labels) is collected and its entry dropped. Frozen because one
 * value now stands for many objects' fields: a decision that mutated a cached object's part (none does; they build
 * new arrays) would throw instead of silently changing other pods.
 */
export class Shared {
  private readonly table = new Map<string, WeakRef<object>>();
  private readonly registry = new FinalizationRegistry<string>((key) => {
    if (this.table.get(key)?.deref() === undefined) this.table.delete(key);
  });

  share<T>(value: T): T {
    if (value === null || typeof value !== "object") return value;
    const key = JSON.stringify(value);
    const hit = this.table.get(key)?.deref();
    if (hit !== undefined) return hit as T;
    deepFreeze(value);
    this.table.set(key, new WeakRef(value));
    this.registry.register(value, key);
    return value;
  }

  private texts = new Map<string, string>();

  /**
   * One copy of a short, often repeated string (a namespace, a node name, apiVersion and kind): strings cannot be
   * held weakly, so this table is strong and simply starts over past 10,000 entries (node names and namespaces are
   * far fewer; a table that fills up means the strings were not repetitive after all).
   */
  text(s: string): string {
    const hit = this.texts.get(s);
    if (hit !== undefined) return hit;
    if (this.texts.size >= 10_000) this.texts = new Map();
    this.texts.set(s, s);
    return s;
  }

  /** Distinct values alive (for tests). */
  get size(): number {
    return this.table.size;
  }
}

function deepFreeze(v: unknown): void {
  if (v === null || typeof v !== "object" || Object.isFrozen(v)) return;
  Object.freeze(v);
  for (const x of Object.values(v)) deepFreeze(x);
}

/** The pods' shared parts (one table for every pod informer of the process: equal parts are equal anywhere). */
const podParts = new Shared();

/** Identity fields every trimmed object keeps, plus the ones asked for (when set). */
function meta(m: Meta | undefined, keep: readonly string[]): Meta {
  const out: Meta = { name: m?.name, namespace: m?.namespace, uid: m?.uid, resourceVersion: m?.resourceVersion } as Meta;
  if (m?.namespace === undefined) delete out.namespace;
  for (const k of keep) if (m?.[k] !== undefined) out[k] = m[k];
  return out;
}

function withoutLastApplied(annotations: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!annotations || !(LAST_APPLIED in annotations)) return annotations;
  const { [LAST_APPLIED]: _dropped, ...rest } = annotations;
  return rest;
}

/**
 * Services: everything but managedFields and kubectl's last-applied copy. A Service's spec and status are read
 * nearly whole (ports, families, policies, class, conditions, ingress), and there are few Services next to pods.
 */
export function trimService<T extends V1Service & KubeObject>(svc: T): T {
  const m = svc.metadata as Meta | undefined;
  const annotations = withoutLastApplied(m?.annotations as Record<string, string> | undefined);
  return {
    ...svc,
    metadata: {
      ...meta(m, ["generation", "labels", "finalizers", "deletionTimestamp", "creationTimestamp"]),
      ...(annotations ? { annotations } : {}),
    },
  };
}

/**
 * Nodes: labels (pools, exclusion), taints and unschedulable (eligibility), addresses (ingress), the conditions'
 * type/status/reason (Ready), deletionTimestamp. Not images, capacity, nodeInfo or heartbeat times.
 */
export function trimNode<T extends V1Node & KubeObject>(node: T): T {
  const m = node.metadata as Meta | undefined;
  return {
    apiVersion: node.apiVersion, kind: node.kind,
    metadata: meta(m, ["labels", "deletionTimestamp"]),
    spec: {
      ...(node.spec?.taints ? { taints: node.spec.taints } : {}),
      ...(node.spec?.unschedulable !== undefined ? { unschedulable: node.spec.unschedulable } : {}),
    },
    status: {
      ...(node.status?.addresses ? { addresses: node.status.addresses } : {}),
      ...(node.status?.conditions
        ? { conditions: node.status.conditions.map((c) => ({ type: c.type, status: c.status, ...(c.reason ? { reason: c.reason } : {}) })) }
        : {}),
    },
  } as unknown as T;
}

/**
 * lb-pods: labels (Service key and uid), owner, target node (nodeName or the DaemonSet's node affinity), host ports
 * (conflicts), phase, conditions (Ready, PodScheduled with the scheduler's message) and the pod-level reason and
 * message (a kubelet's SysctlForbidden rejection), deletionTimestamp. Not the conditions' times nor the pod's
 * creationTimestamp, which no decision reads and which would make every pod's status its own. Every part but the
 * identity is shared (podParts).
 */
export function trimPod<T extends V1Pod & KubeObject>(pod: T): T {
  const m = pod.metadata as Meta | undefined;
  const required = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  const ports = (c: { name: string; ports?: unknown; restartPolicy?: string }): Record<string, unknown> => ({
    name: c.name, ...(c.ports ? { ports: c.ports } : {}), ...(c.restartPolicy ? { restartPolicy: c.restartPolicy } : {}),
  });
  const status = pod.status;
  const metadata = meta(m, ["deletionTimestamp"]);
  if (metadata.namespace !== undefined) metadata.namespace = podParts.text(metadata.namespace);
  if (m?.labels) metadata.labels = podParts.share(m.labels);
  if (m?.ownerReferences) metadata.ownerReferences = podParts.share(m.ownerReferences);
  return {
    ...(pod.apiVersion !== undefined ? { apiVersion: podParts.text(pod.apiVersion) } : {}),
    ...(pod.kind !== undefined ? { kind: podParts.text(pod.kind) } : {}),
    metadata,
    spec: {
      ...(pod.spec?.nodeName ? { nodeName: podParts.text(pod.spec.nodeName) } : {}),
      ...(pod.spec?.hostNetwork ? { hostNetwork: true } : {}),
      ...(required ? { affinity: podParts.share({ nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: required } }) } : {}),
      containers: podParts.share((pod.spec?.containers ?? []).map(ports)),
      ...(pod.spec?.initContainers ? { initContainers: podParts.share(pod.spec.initContainers.map(ports)) } : {}),
    },
    status: podParts.share({
      ...(status?.phase ? { phase: status.phase } : {}),
      ...(status?.reason ? { reason: status.reason } : {}),
      ...(status?.message ? { message: status.message } : {}),
      ...(status?.conditions
        ? {
          conditions: status.conditions.map((c) => ({
            type: c.type, status: c.status, ...(c.reason ? { reason: c.reason } : {}), ...(c.message ? { message: c.message } : {}),
          })),
        }
        : {}),
    }),
  } as unknown as T;
}

/**
 * Our DaemonSets: metadata (labels, our spec-hash annotation) and the spec (what we own in it is compared with what
 * we would apply); not managedFields, which for a server-side-applied object repeat the whole spec's field set.
 */
export function trimDaemonSet<T extends V1DaemonSet & KubeObject>(ds: T): T {
  const m = ds.metadata as Meta | undefined;
  const annotations = withoutLastApplied(m?.annotations as Record<string, string> | undefined);
  return {
    apiVersion: ds.apiVersion, kind: ds.kind,
    metadata: { ...meta(m, ["labels", "generation", "deletionTimestamp", "ownerReferences"]), ...(annotations ? { annotations } : {}) },
    ...(ds.spec ? { spec: ds.spec } : {}),
    ...(ds.status ? { status: ds.status } : {}),
  } as unknown as T;
}

/**
 * EndpointSlices (every one in the cluster): the Service label and, per endpoint, its node and conditions (which
 * nodes have a ready endpoint, for externalTrafficPolicy Local). Not addresses, targetRefs, hints or ports.
 */
export function trimEndpointSlice<T extends V1EndpointSlice & KubeObject>(slice: T): T {
  const m = slice.metadata as Meta | undefined;
  return {
    apiVersion: slice.apiVersion, kind: slice.kind,
    metadata: meta(m, ["labels"]),
    addressType: slice.addressType,
    endpoints: (slice.endpoints ?? [])
      .filter((e) => e.nodeName)
      .map((e) => ({ addresses: [], nodeName: e.nodeName, ...(e.conditions ? { conditions: e.conditions } : {}) })),
  } as unknown as T;
}

/**
 * AddressPools (VIP mode): spec and status whole (few, small objects), metadata's generation (the Valid condition's
 * observedGeneration, and telling our own status writes from spec edits) and creationTimestamp (which of two
 * overlapping new pools is the newer); not managedFields or kubectl's last-applied copy.
 */
export function trimAddressPool<T extends KubeObject & { spec?: unknown; status?: unknown }>(pool: T): T {
  const m = pool.metadata as Meta | undefined;
  return {
    apiVersion: pool.apiVersion, kind: pool.kind,
    metadata: meta(m, ["generation", "creationTimestamp", "labels"]),
    ...(pool.spec !== undefined ? { spec: pool.spec } : {}),
    ...(pool.status !== undefined ? { status: pool.status } : {}),
  } as unknown as T;
}

/** Namespaces: their labels only (pools' namespaceSelectors). */
export function trimNamespace<T extends KubeObject>(ns: T): T {
  const m = ns.metadata as Meta | undefined;
  return { apiVersion: ns.apiVersion, kind: ns.kind, metadata: meta(m, ["labels"]) } as unknown as T;
}

/**
 * Our rules ConfigMaps: identity, labels (the Service they belong to), owners' uids and deletionTimestamp only.
 * Each holds up to 1 MiB of rendered rules that the controller never reads back (the name is the content's hash);
 * the informer is there to notice one missing and one left without owner or mount
 * (rules-configmap.ts decideRulesConfigMapRepair; docs/design/0013-the-controller-renders-lb-pod-rules.md, addenda).
 */
export function trimConfigMap<T extends KubeObject>(cm: T): T {
  const m = cm.metadata as Meta | undefined;
  const out = meta(m, ["labels", "deletionTimestamp"]);
  // Whether it has an owner is all the repair reads: the uids alone (~240 bytes less per ConfigMap than whole references).
  const owners = m?.ownerReferences as { uid?: string }[] | undefined;
  if (owners !== undefined && owners.length > 0) out.ownerReferences = owners.map((o) => ({ uid: o.uid })) as never;
  return { apiVersion: cm.apiVersion, kind: cm.kind, metadata: out } as unknown as T;
}
