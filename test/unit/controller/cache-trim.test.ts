// The informers cache trimmed objects (src/controller/cache-trim.ts): every decision must reach the same result on
// a trimmed object as on the object the API server sends. Each row builds full objects (managedFields, kubectl's
// last-applied copy, container statuses, node images and heartbeats...), runs every decision on them and on their
// trimmed copies, and compares. A field a decision reads that a trim drops shows up as a difference here.
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { trimConfigMap, trimDaemonSet, trimEndpointSlice, trimNode, trimPod, trimService } from "../../../src/controller/cache-trim.js";
import { decideConditions } from "../../../src/controller/conditions.js";
import { findPortConflicts } from "../../../src/controller/conflicts.js";
import { nodeFingerprint } from "../../../src/controller/controller.js";
import { buildDaemonSet, nodeEligibility, recordedHash } from "../../../src/controller/daemonset.js";
import { decideRulesConfigMapRepair } from "../../../src/controller/rules-configmap.js";
import { ownership, parseServiceConfig } from "../../../src/controller/service-config.js";
import { computeStatus } from "../../../src/controller/status.js";
import { defaultControllerConfig, type V1DaemonSet, type V1EndpointSlice, type V1Node, type V1Pod, type V1Service } from "../../../src/controller/types.js";
import type { KubeObject } from "../../../src/lib/kube/client.js";
import { node, pod, service } from "./fixtures.js";

const config = defaultControllerConfig({ namespace: "berth-system", lbPodImage: "berth:test" });
const NOW = new Date("2026-06-01T12:00:00Z");
const managedFields = [{ manager: "kubectl", operation: "Update", apiVersion: "v1", time: "2026-01-01T00:00:00Z", fieldsType: "FieldsV1", fieldsV1: { "f:spec": { "f:ports": {} } } }] as unknown as never[];

/** What the API server adds around the fields a fixture states. */
function fullService(s: V1Service, extra: { finalizers?: string[]; status?: V1Service["status"]; deleting?: boolean } = {}): V1Service & KubeObject {
  return {
    ...s,
    metadata: {
      ...s.metadata, resourceVersion: "41", generation: 3, creationTimestamp: new Date("2026-01-01T00:00:00Z"), managedFields,
      annotations: { ...(s.metadata?.annotations ?? {}), "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify(s) },
      ...(extra.finalizers ? { finalizers: extra.finalizers } : {}),
      ...(extra.deleting ? { deletionTimestamp: new Date("2026-01-02T00:00:00Z") } : {}),
    },
    spec: { ...s.spec, sessionAffinity: "None", internalTrafficPolicy: "Cluster", ipFamilyPolicy: "SingleStack" },
    ...(extra.status ? { status: extra.status } : {}),
  } as unknown as V1Service & KubeObject;
}

function fullNode(n: V1Node, taints?: NonNullable<V1Node["spec"]>["taints"]): V1Node & KubeObject {
  return {
    ...n,
    metadata: { ...n.metadata, uid: `uid-${n.metadata?.name}`, resourceVersion: "7", managedFields, annotations: { "node.alpha.kubernetes.io/ttl": "0" } },
    spec: { ...n.spec, podCIDR: "10.42.0.0/24", providerID: "k3s://x", ...(taints ? { taints } : {}) },
    status: {
      ...n.status,
      conditions: [
        ...(n.status?.conditions ?? []).map((c) => ({ ...c, reason: "KubeletReady", message: "kubelet is posting ready status", lastHeartbeatTime: new Date(), lastTransitionTime: new Date() })),
        { type: "MemoryPressure", status: "False", reason: "KubeletHasSufficientMemory" },
      ],
      capacity: { cpu: "4", memory: "8Gi", pods: "110" },
      allocatable: { cpu: "4", memory: "8Gi", pods: "110" },
      images: [{ names: ["docker.io/library/berth:test"], sizeBytes: 12345678 }],
      nodeInfo: { architecture: "amd64", bootID: "b", containerRuntimeVersion: "containerd://1.7", kernelVersion: "6.1", kubeProxyVersion: "v1.32", kubeletVersion: "v1.32", machineID: "m", operatingSystem: "linux", osImage: "Debian", systemUUID: "s" },
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
    },
  } as unknown as V1Node & KubeObject;
}

function fullPod(p: V1Pod, svc: V1Service): V1Pod & KubeObject {
  return {
    ...p,
    metadata: {
      ...p.metadata, uid: `uid-${p.metadata?.name}`, resourceVersion: "9", managedFields, generateName: "svclb-",
      labels: {
        ...(p.metadata?.labels ?? {}), "berth.dev/service-name": svc.metadata?.name ?? "", "berth.dev/service-namespace": svc.metadata?.namespace ?? "",
        "berth.dev/service-uid": svc.metadata?.uid ?? "", "controller-revision-hash": "abc",
      },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: "svclb-web", uid: "ds-uid", controller: true }],
    },
    spec: {
      ...p.spec,
      containers: (p.spec?.containers ?? []).map((c) => ({ ...c, resources: {}, terminationMessagePath: "/dev/termination-log", volumeMounts: [{ name: "token", mountPath: "/var/run" }] })),
      volumes: [{ name: "token", projected: { sources: [] } }], serviceAccountName: "default", tolerations: [{ operator: "Exists" }],
    },
    status: {
      ...p.status, hostIP: "192.168.1.10", podIP: "10.42.0.5", podIPs: [{ ip: "10.42.0.5" }], qosClass: "BestEffort",
      conditions: (p.status?.conditions ?? []).map((c) => ({ ...c, lastProbeTime: null, lastTransitionTime: new Date("2026-01-01T00:00:00Z") })) as never,
      containerStatuses: [{ name: "main", image: "example", imageID: "sha256:1", ready: true, restartCount: 0, started: true, state: { running: { startedAt: new Date() } } }],
    },
  } as unknown as V1Pod & KubeObject;
}

function fullSlice(svc: V1Service, endpoints: { node: string; ready?: boolean; serving?: boolean; terminating?: boolean }[]): V1EndpointSlice & KubeObject {
  return {
    apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice",
    metadata: { name: `${svc.metadata?.name}-abcde`, namespace: svc.metadata?.namespace, resourceVersion: "5", managedFields, labels: { "kubernetes.io/service-name": svc.metadata?.name ?? "", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io" } },
    addressType: "IPv4",
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    endpoints: endpoints.map((e, i) => ({
      addresses: [`10.42.${i}.9`], nodeName: e.node, zone: "z1", targetRef: { kind: "Pod", name: `app-${i}`, namespace: "default", uid: `p${i}` },
      conditions: { ...(e.ready !== undefined ? { ready: e.ready } : {}), ...(e.serving !== undefined ? { serving: e.serving } : {}), ...(e.terminating !== undefined ? { terminating: e.terminating } : {}) },
    })),
  } as unknown as V1EndpointSlice & KubeObject;
}

interface Scenario {
  name: string;
  service: V1Service & KubeObject;
  nodes: (V1Node & KubeObject)[];
  pods: (V1Pod & KubeObject)[];
  slices: (V1EndpointSlice & KubeObject)[];
  others?: (V1Service & KubeObject)[];
}

/** Every decision the controller makes about one Service, from the objects its caches hold. */
function decide(s: Scenario): unknown {
  const parsed = parseServiceConfig(s.service, config);
  const owned = ownership(s.service, config);
  const status = parsed.ok ? computeStatus({ service: s.service, serviceConfig: parsed.value, pods: s.pods, nodes: s.nodes, endpointSlices: s.slices }) : undefined;
  const conflicts = findPortConflicts({ service: s.service, daemonSetPods: s.pods.filter((p) => p.metadata?.namespace === "berth-system"), allPods: s.pods, otherServices: s.others ?? [] });
  const ds = parsed.ok ? buildDaemonSet(s.service, parsed.value, s.nodes, config) : undefined;
  return {
    parsed, owned, status, conflicts,
    daemonSet: ds, hash: recordedHash(ds),
    eligibility: parsed.ok ? s.nodes.map((n) => nodeEligibility(n, parsed.value, s.nodes)) : [],
    conditions: decideConditions({ service: s.service, now: NOW, ownership: owned, config: parsed, nodes: s.nodes, ...(status ? { status } : {}), conflicts }),
    fingerprints: s.nodes.map(nodeFingerprint),
  };
}

function trimmed(s: Scenario): Scenario {
  return {
    ...s,
    service: trimService(s.service), nodes: s.nodes.map(trimNode), pods: s.pods.map(trimPod), slices: s.slices.map(trimEndpointSlice),
    ...(s.others ? { others: s.others.map(trimService) } : {}),
  };
}

const web = service({ annotations: { "berth.dev/tolerations": "[{\"key\":\"dedicated\",\"operator\":\"Exists\"}]", "berth.dev/priority-class": "system-node-critical" } });
const local = service({ name: "local", uid: "u-local", spec: { externalTrafficPolicy: "Local", ports: [{ name: "dns", protocol: "UDP", port: 53, targetPort: 53 as never }] } });
const dual = service({ name: "dual", uid: "u-dual", spec: { ipFamilies: ["IPv6", "IPv4"], clusterIPs: ["fd00::10", "10.43.0.11"] } });
const bad = service({ name: "bad", uid: "u-bad", annotations: { "berth.dev/tolerations": "[{not json" } });
const nodes = [
  fullNode(node("n1", { labels: { "berth.dev/enabled": "true" } })),
  fullNode(node("n2", { addresses: [{ type: "InternalIP", address: "192.168.1.11" }, { type: "ExternalIP", address: "203.0.113.2" }, { type: "InternalIP", address: "fd00::2" }] })),
  fullNode(node("n3", { ready: false, labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "" } }), [{ key: "dedicated", value: "db", effect: "NoSchedule" }]),
  fullNode(node("n4", { deleting: true, unschedulable: true })),
];
const scheduler = "0/4 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. 3 node(s) didn't match Pod's node affinity/selector.";

const scenarios: Scenario[] = [
  {
    name: "ready, pending on a taken port, and not-ready lb-pods; a foreign holder; a competing Service",
    service: fullService(web, { finalizers: ["berth.dev/cleanup"], status: { loadBalancer: { ingress: [{ ip: "192.168.1.10", ipMode: "VIP" }] }, conditions: [{ type: "berth.dev/Ready", status: "True", reason: "Serving", message: "Serving on 192.168.1.10.", lastTransitionTime: new Date("2026-01-01T00:00:00Z") }] } }),
    nodes,
    pods: [
      fullPod(pod("svclb-web-1", { node: "n1", ready: true, hostPorts: [{ port: 80 }] }), web),
      fullPod(pod("svclb-web-2", { targetNode: "n2", unschedulable: scheduler, hostPorts: [{ port: 80 }] }), web),
      fullPod(pod("svclb-web-3", { node: "n3", ready: false, hostPorts: [{ port: 80 }] }), web),
      { ...fullPod(pod("ingress", { namespace: "kube-system", node: "n2", ready: true, hostPorts: [{ port: 80 }] }), web), metadata: { name: "ingress", namespace: "kube-system", uid: "i", resourceVersion: "3", managedFields, labels: { app: "ingress" } } } as V1Pod & KubeObject,
    ],
    slices: [],
    others: [fullService(service({ name: "other", uid: "u-other" }))],
  },
  {
    name: "externalTrafficPolicy Local with ready, serving-terminating and unready endpoints; a terminating lb-pod",
    service: fullService(local),
    nodes,
    pods: [
      fullPod(pod("svclb-local-1", { node: "n1", ready: true, hostPorts: [{ port: 53, protocol: "UDP" }] }), local),
      fullPod(pod("svclb-local-2", { node: "n2", ready: true, deleting: true, hostPorts: [{ port: 53, protocol: "UDP" }] }), local),
    ],
    slices: [fullSlice(local, [{ node: "n1", ready: false, serving: true, terminating: true }, { node: "n2" }, { node: "n3", ready: false }])],
  },
  {
    name: "dual-stack Service on nodes with IPv6 and external addresses",
    service: fullService(dual, { finalizers: ["berth.dev/cleanup"] }),
    nodes,
    pods: [fullPod(pod("svclb-dual-2", { node: "n2", ready: true, hostPorts: [{ port: 80 }] }), dual)],
    slices: [],
  },
  { name: "an invalid annotation", service: fullService(bad), nodes, pods: [], slices: [] },
  { name: "a Service being deleted", service: fullService(web, { deleting: true, finalizers: ["berth.dev/cleanup"] }), nodes, pods: [], slices: [] },
];

describe("controller: the cache keeps every field the decisions read", () => {
  for (const s of scenarios) {
    it(`same decisions on full and trimmed objects: ${s.name}`, () => {
      assert.deepEqual(decide(trimmed(s)), decide(s));
    });
  }

  it("trims what is big and unread: managedFields, last-applied, node images, pod container statuses, endpoint addresses", () => {
    const s = scenarios[0] as Scenario;
    const t = trimmed(s);
    assert.equal(t.service.metadata?.managedFields, undefined);
    assert.equal(t.service.metadata?.annotations?.["kubectl.kubernetes.io/last-applied-configuration"], undefined);
    assert.equal(t.nodes[0]?.status?.images, undefined);
    assert.equal(t.pods[0]?.status?.containerStatuses, undefined);
    assert.equal(t.pods[0]?.spec?.volumes, undefined);
    const slice = trimEndpointSlice(fullSlice(local, [{ node: "n1" }]));
    assert.deepEqual(slice.endpoints?.[0]?.addresses, []);
    const ds = trimDaemonSet({ ...buildDaemonSet(web, (parseServiceConfig(web, config) as { ok: true; value: never }).value, nodes, config), metadata: { name: "svclb-web", namespace: "berth-system", managedFields } } as V1DaemonSet & KubeObject);
    assert.equal(ds.metadata?.managedFields, undefined);
    for (const size of [[s.pods, t.pods], [s.nodes, t.nodes]] as const) assert.ok(JSON.stringify(size[1]).length < JSON.stringify(size[0]).length / 2);
  });

  it("keeps what other decisions and the kubelet's rejection need: pod reason and message, owner, deletionTimestamp", () => {
    const rejected = fullPod({ ...pod("svclb-web-9", { node: "n1", phase: "Failed" }), status: { phase: "Failed", reason: "SysctlForbidden", message: "Pod forbidden sysctl: \"net.ipv6.conf.all.forwarding\" not allowlisted" } }, web);
    const t = trimPod(rejected);
    assert.equal(t.status?.reason, "SysctlForbidden");
    assert.match(t.status?.message ?? "", /not allowlisted/);
    assert.equal(t.metadata?.ownerReferences?.[0]?.kind, "DaemonSet");
    assert.ok(trimNode(fullNode(node("gone", { deleting: true }))).metadata?.deletionTimestamp);
  });
  it("shares what the pods of one DaemonSet, one node or one state have in common, frozen", () => {
    const onNode = (name: string, nodeName: string, ready: boolean): V1Pod & KubeObject =>
      fullPod(pod(name, { node: nodeName, targetNode: nodeName, ready, hostPorts: [{ port: 80 }] }), web);
    const [a, b, c] = [onNode("svclb-web-1", "n1", true), onNode("svclb-web-2", "n2", true), onNode("svclb-web-3", "n1", false)].map((p) => trimPod(p)) as [V1Pod, V1Pod, V1Pod];
    assert.equal(a.metadata?.labels, b.metadata?.labels);
    assert.equal(a.metadata?.ownerReferences, b.metadata?.ownerReferences);
    assert.equal(a.spec?.containers, b.spec?.containers);
    assert.equal(a.status, b.status, "the same phase and conditions");
    assert.notEqual(a.status, c.status, "Ready and not Ready");
    assert.equal(a.spec?.affinity, c.spec?.affinity, "the same node");
    assert.notEqual(a.spec?.affinity, b.spec?.affinity);
    assert.equal(b.metadata?.name, "svclb-web-2");
    assert.throws(() => (a.status?.conditions as unknown[]).push({}), TypeError);
  });

  it("a cached lb-pod retains under 700 bytes (100,000 of them: under 70 MiB)", () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const full = JSON.stringify(fullPod(pod("svclb-web-0", { node: "n1", targetNode: "n1", ready: true, hostPorts: [{ port: 80 }] }), web));
    const n = 20_000;
    const keep: unknown[] = [];
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i++) {
      // As the informer gets them: parsed from the wire, each with its own name, uid and resourceVersion.
      const p = JSON.parse(full) as V1Pod & KubeObject;
      Object.assign(p.metadata as object, { name: `svclb-web-${i}`, uid: `0f6c1d2e-0000-4000-8000-${String(i).padStart(12, "0")}`, resourceVersion: String(1_000_000 + i) });
      (p.spec as { nodeName: string }).nodeName = `node-${i % 100}`;
      keep.push(trimPod(p));
    }
    gc();
    const perPod = (process.memoryUsage().heapUsed - before) / n;
    assert.equal(keep.length, n);
    assert.ok(perPod < 700, `${Math.round(perPod)} bytes per cached lb-pod`);
  });
});

describe("controller: the rules ConfigMap cache keeps identity, labels and owners only", () => {
  const full = {
    apiVersion: "v1", kind: "ConfigMap",
    metadata: {
      name: "svclb-web-1a2b3c-0123456789", namespace: "berth-system", uid: "u1", resourceVersion: "7", managedFields,
      labels: { "berth.dev/service-name": "web", "berth.dev/service-namespace": "default" },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: "svclb-web-1a2b3c", uid: "d1", controller: true }],
      deletionTimestamp: new Date("2026-01-02T00:00:00Z"),
      annotations: { note: "x".repeat(1000) },
    },
    immutable: true,
    data: { "rules.v4": "x".repeat(100_000) },
  } as unknown as KubeObject;

  it("drops the rules texts, managedFields and annotations; keeps identity, labels, owners' uids and deletionTimestamp", () => {
    assert.deepEqual(trimConfigMap(full), {
      apiVersion: "v1", kind: "ConfigMap",
      metadata: {
        name: "svclb-web-1a2b3c-0123456789", namespace: "berth-system", uid: "u1", resourceVersion: "7",
        labels: { "berth.dev/service-name": "web", "berth.dev/service-namespace": "default" },
        deletionTimestamp: new Date("2026-01-02T00:00:00Z"),
        ownerReferences: [{ uid: "d1" }],
      },
    });
  });

  it("same repair decisions on full and trimmed ConfigMaps (owned or not, being deleted or not)", () => {
    const mounting: V1DaemonSet = {
      metadata: { name: "svclb-web-1a2b3c", uid: "d1" },
      spec: { selector: {}, template: { spec: { containers: [], volumes: [{ name: "rules", configMap: { name: "svclb-web-1a2b3c-0123456789" } }] } } },
    };
    const meta = full.metadata as Record<string, unknown>;
    const variants: KubeObject[] = [
      full,
      { ...full, metadata: { ...meta, deletionTimestamp: undefined } } as KubeObject,
      { ...full, metadata: { ...meta, deletionTimestamp: undefined, ownerReferences: undefined } } as KubeObject,
    ];
    for (const cm of variants) {
      for (const daemonSets of [[mounting], []]) {
        const decide = (c: KubeObject): unknown => decideRulesConfigMapRepair({ configMap: c, daemonSets, wanted: undefined, suspectForMs: 1, graceMs: 1 });
        assert.deepEqual(decide(trimConfigMap(cm)), decide(cm));
      }
    }
  });
});
