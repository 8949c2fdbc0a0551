// berth doctor's judgement, table-driven: each row is a literal snapshot of a cluster (built from one healthy
// Service by changing only what the row is about) and the reason the doctor must give for it.
import { strict as assert } from "node:assert";

import { diagnose } from "../../../src/doctor/diagnose.js";
import { REASONS, type DoctorSnapshot, type ReasonCode } from "../../../src/doctor/types.js";
import { renderJson, renderText } from "../../../src/doctor/render.js";
import { nodeIpPinned } from "../../../src/doctor/vip.js";
import type { V1Node, V1Pod } from "../../../src/controller/types.js";

const NOW = new Date("2026-03-01T12:00:00Z");
const ago = (s: number): string => new Date(NOW.getTime() - s * 1000).toISOString().replace(/\.\d+Z$/, "Z");
const UID = "3f2a9c1e-7b4d-4e6f-9a8b-0c1d2e3f4a5b";
const DS = "svclb-web-3f2a9c1e";
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

function node(name: string, extra: Obj = {}): V1Node {
  return {
    metadata: { name, labels: { ...(extra.labels ?? {}) } },
    spec: { ...(extra.taints ? { taints: extra.taints } : {}) },
    status: {
      addresses: [{ type: "InternalIP", address: `192.0.2.${name.slice(1)}` }],
      conditions: [{ type: "Ready", status: extra.ready === false ? "False" : "True", ...(extra.ready === false ? { reason: "KubeletNotReady" } : {}) }],
    },
  } as V1Node;
}

function readyPod(nodeName: string): V1Pod {
  return {
    metadata: { name: `${DS}-${nodeName}`, namespace: "berth-system", labels: { "berth.dev/service-uid": UID, "berth.dev/daemonset": DS } },
    spec: { nodeName, containers: [{ name: "lb-pod", image: "berth:test" }] },
    status: {
      phase: "Running",
      conditions: [{ type: "PodScheduled", status: "True" }, { type: "Ready", status: "True" }],
      containerStatuses: [{ name: "lb-pod", image: "berth:test", imageID: "", ready: true, restartCount: 0, state: { running: {} } }],
    },
  } as unknown as V1Pod;
}

/** The pod on `nodeName` with its status replaced (not Ready). */
function brokenPod(nodeName: string, status: Obj, bound = true): V1Pod {
  const pod = readyPod(nodeName) as Obj;
  pod.status = status;
  if (!bound) {
    delete pod.spec.nodeName;
    pod.spec.affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: "metadata.name", operator: "In", values: [nodeName] }] }] } } };
  }
  return pod as V1Pod;
}

function waiting(reason: string, message: string, extra: Obj = {}): Obj {
  return {
    phase: "Running",
    conditions: [{ type: "PodScheduled", status: "True" }, { type: "Ready", status: "False" }],
    containerStatuses: [{ name: "lb-pod", image: "berth:test", imageID: "", ready: false, restartCount: extra.restarts ?? 0, state: { waiting: { reason, message } },
      ...(extra.last ? { lastState: { terminated: extra.last } } : {}) }],
  };
}

function event(kind: string, name: string, reason: string, message: string, type = "Warning"): Obj {
  return { metadata: { name: `${name}.1` }, involvedObject: { kind, name, namespace: kind === "Service" ? "default" : "berth-system" }, reason, message, type, lastTimestamp: ago(10), count: 3 };
}

/** A Service that works: two nodes serve it, its backend is ready on n1, the controller leads. */
function healthy(): DoctorSnapshot {
  return {
    namespace: "default",
    name: "web",
    controllerNamespace: "berth-system",
    now: NOW,
    service: {
      metadata: { name: "web", namespace: "default", uid: UID, creationTimestamp: ago(600) as never, finalizers: ["berth.dev/cleanup"] },
      spec: {
        type: "LoadBalancer", clusterIP: "10.43.0.10", clusterIPs: ["10.43.0.10"], ipFamilies: ["IPv4"], externalTrafficPolicy: "Cluster",
        selector: { app: "web" }, ports: [{ name: "http", protocol: "TCP", port: 80, nodePort: 30080 }],
      },
      status: {
        loadBalancer: { ingress: [{ ip: "192.0.2.1" }, { ip: "192.0.2.2" }] },
        conditions: [{ type: "berth.dev/LoadBalancerReady", status: "True", reason: "Serving", message: "Serving on 192.0.2.1, 192.0.2.2.", lastTransitionTime: ago(500) as never }],
      },
    },
    daemonSets: [{ metadata: { name: DS, namespace: "berth-system", labels: { "berth.dev/service-uid": UID } }, spec: { selector: {}, template: {} }, status: { desiredNumberScheduled: 2 } as never }],
    pods: [readyPod("n1"), readyPod("n2")],
    nodes: [node("n1"), node("n2")],
    endpointSlices: [{ addressType: "IPv4", endpoints: [{ addresses: ["10.42.0.5"], nodeName: "n1", conditions: { ready: true } }] }],
    events: [],
    podsOnBlockedNodes: [],
    lease: { metadata: { name: "berth-controller" }, spec: { holderIdentity: "berth-controller-abc", renewTime: ago(1), leaseDurationSeconds: 15 } },
    deployment: undefined,
  };
}

type Row = {
  name: string;
  change: (s: Obj) => void;
  code: ReasonCode;
  /** Matched against the finding's summary + why + fix + evidence. */
  says?: RegExp[];
  healthy?: boolean;
};

const noIngress = (s: Obj): void => {
  s.service.status.loadBalancer = {};
  s.service.status.conditions = [];
};

/** The healthy Service switched to VIP mode, pending, with one full pool in the cluster. */
const vipMode = (s: Obj): void => {
  s.service.metadata.annotations = { "berth.dev/mode": "vip" };
  noIngress(s);
  s.daemonSets = [];
  s.pods = [];
  s.addressPools = [{
    metadata: { name: "lan" }, spec: { addresses: ["192.0.2.240/28"] },
    status: { assignedIPv4: 16, availableIPv4: 0, assignedIPv6: 0, availableIPv6: 0, conditions: [{ type: "Valid", status: "True", reason: "Valid", message: "1 address range (IPv4)" }] },
  }];
};

/** vipMode, serving: the pool's first address assigned. */
const vipServing = (s: Obj): void => {
  vipMode(s);
  s.service.metadata.annotations["berth.dev/allocated-from-pool"] = "lan";
  s.service.status.loadBalancer = { ingress: [{ ip: "192.0.2.240", ipMode: "VIP" }] };
  s.service.status.conditions = [{ type: "berth.dev/LoadBalancerReady", status: "True", reason: "AddressAssigned", message: "Assigned 192.0.2.240 from pool lan." }];
};

function speakerPod(nodeName: string): V1Pod {
  return {
    metadata: { name: `berth-speaker-${nodeName}`, namespace: "berth-system", labels: { "app.kubernetes.io/name": "berth", "app.kubernetes.io/component": "speaker" } },
    spec: { nodeName, hostNetwork: true, containers: [{ name: "speaker", image: "berth:test" }] },
    status: { phase: "Running" },
  } as unknown as V1Pod;
}

const rows: Row[] = [
  { name: "a Service that does not exist", code: REASONS.serviceNotFound, change: (s) => (s.service = null), says: [/no Service web in namespace default/] },
  { name: "a ClusterIP Service", code: REASONS.notLoadBalancer, change: (s) => (s.service.spec.type = "ClusterIP"), says: [/type ClusterIP/, /"type":"LoadBalancer"/] },
  { name: "another loadBalancerClass", code: REASONS.otherClass, change: (s) => (s.service.spec.loadBalancerClass = "metallb.io/metallb"), says: [/metallb\.io\/metallb/, /berth\.dev\/lb/] },
  {
    name: "an unset class while the Deployment runs the controller with --ignore-unset-class", code: REASONS.unsetClassIgnored,
    change: (s) => (s.deployment = { spec: { replicas: 2, template: { spec: { containers: [{ name: "c", args: ["controller", "--ignore-unset-class"] }] } } }, status: { availableReplicas: 2 } } as never),
    says: [/--ignore-unset-class/, /loadBalancerClass: berth\.dev\/lb/],
  },
  {
    name: "an unset class the running controller has not touched for minutes", code: REASONS.unsetClassIgnored,
    change: (s) => {
      s.service.metadata.finalizers = [];
      noIngress(s);
      s.daemonSets = [];
      s.pods = [];
    },
    says: [/has not touched this Service in 600 s/, /berth-controller-abc/],
  },
  {
    name: "a Service being deleted while no controller runs", code: REASONS.serviceDeleting,
    change: (s) => {
      s.service.metadata.deletionTimestamp = ago(120);
      s.lease = null;
      s.deployment = null;
    },
    says: [/being deleted/, /remove the finalizer/, /"path":"\/metadata\/finalizers\/0"/],
  },
  {
    name: "an invalid tolerations annotation", code: REASONS.invalidConfiguration,
    change: (s) => {
      s.service.metadata.annotations = { "berth.dev/tolerations": "[{\"opertor\":\"Exists\"}]" };
      s.service.status.conditions = [{ type: "berth.dev/LoadBalancerReady", status: "False", reason: "InvalidConfiguration", message: "bad" }];
      s.events = [event("Service", "web", "InvalidConfiguration", "metadata.annotations[berth.dev/tolerations][0].opertor: unknown field")];
    },
    says: [/opertor: unknown field/, /condition berth\.dev\/LoadBalancerReady=False \(InvalidConfiguration\)/, /Event Warning InvalidConfiguration/],
  },
  {
    name: "a dual-stack Local Service whose 400 ports' rules do not fit one ConfigMap", code: REASONS.rulesTooLarge,
    change: (s) => {
      s.service.spec.ipFamilies = ["IPv4", "IPv6"];
      s.service.spec.ipFamilyPolicy = "RequireDualStack";
      s.service.spec.clusterIPs = [s.service.spec.clusterIP, "fd00:43::10"];
      s.service.spec.externalTrafficPolicy = "Local";
      s.service.spec.ports = Array.from({ length: 400 }, (_, i) => ({ name: `p${i}`, port: 10000 + i, protocol: "TCP", targetPort: 10000 + i, nodePort: 30000 + i }));
      s.service.status.conditions = [{ type: "berth.dev/LoadBalancerReady", status: "False", reason: "RulesTooLarge", message: "too large" }];
      s.daemonSets = [];
      s.pods = [];
    },
    says: [/do not fit in one ConfigMap/, /400 ports are [\d,]+ bytes/, /split the ports/i, /condition berth\.dev\/LoadBalancerReady=False \(RulesTooLarge\)/],
  },
  {
    name: "a VIP-mode Service in a cluster without the AddressPool CRD", code: REASONS.vipNoAddressPools,
    change: (s) => {
      vipMode(s);
      s.addressPools = null;
    },
    says: [/not installed/, /kubectl apply -f deploy\/berth\.yaml/],
  },
  {
    name: "a VIP-mode Service and no AddressPool", code: REASONS.vipNoAddressPools,
    change: (s) => {
      vipMode(s);
      s.addressPools = [];
    },
    says: [/no AddressPool/, /kind: AddressPool/, /berth convert metallb/],
  },
  ...([
    [REASONS.vipPoolNotFound, "PoolNotFound", /berth\.dev\/pool=<pool>/],
    [REASONS.vipNoPoolMatches, "NoPoolMatches", /serviceAllocation/],
    [REASONS.vipPoolExhausted, "PoolExhausted", /Add addresses to the pool/],
    [REASONS.vipAddressTaken, "AddressTaken", /berth\.dev\/allow-shared-ip key on both/],
    [REASONS.vipAddressOutsidePools, "AddressOutsidePools", /Request an address inside a pool/],
    [REASONS.vipSharingConflict, "SharingConflict", /no port \(protocol and number\) in common/],
    [REASONS.vipFamilyMismatch, "FamilyMismatch", /one address per family/],
  ] as const).map(([code, reason, fix]): Row => ({
    name: `a VIP-mode Service the controller reports ${reason}`, code,
    change: (s) => {
      vipMode(s);
      s.service.status.conditions = [{ type: "berth.dev/LoadBalancerReady", status: "False", reason, message: `the allocator says ${reason}` }];
      s.events = [event("Service", "web", reason, `the allocator says ${reason}`)];
    },
    says: [new RegExp(`the allocator says ${reason}`), fix, /AddressPool lan: 192\.0\.2\.240\/28; Valid=True; IPv4 16 assigned\/0 free/],
  })),
  {
    name: "a VIP-mode Service keeping an address no pool holds any more", code: REASONS.vipAssignedOutsidePools, healthy: true,
    change: (s) => {
      vipMode(s);
      s.service.status.loadBalancer = { ingress: [{ ip: "192.0.2.99", ipMode: "VIP" }] };
      s.service.status.conditions = [{ type: "berth.dev/LoadBalancerReady", status: "True", reason: "AssignedOutsidePools", message: "Keeps 192.0.2.99, which no valid AddressPool contains any more" }];
    },
    says: [/keeps 192\.0\.2\.99/, /never taken away or moved/, /Put the address back into a pool/],
  },
  {
    name: "a VIP-mode Service served from an Invalid pool's last valid spec", code: REASONS.vipPoolInvalid, healthy: true,
    change: (s) => {
      vipMode(s);
      s.service.metadata.annotations["berth.dev/allocated-from-pool"] = "lan";
      s.service.status.loadBalancer = { ingress: [{ ip: "192.0.2.240", ipMode: "VIP" }] };
      s.service.status.conditions = [{ type: "berth.dev/LoadBalancerReady", status: "True", reason: "AddressAssigned", message: "Assigned 192.0.2.240 from pool lan." }];
      s.addressPools[0].status.conditions = [{ type: "Valid", status: "False", reason: "Overlap", message: "spec.addresses: overlaps pool other" }];
    },
    says: [/Invalid \(Overlap\)/, /last valid spec/, /kubectl edit addresspool lan/],
  },
  {
    name: "a VIP-mode Service whose address a node's kubelet took as its node IP", code: REASONS.vipNodeAddressInPool, healthy: true,
    change: (s) => {
      vipServing(s);
      s.nodes[1].status.addresses = [{ type: "InternalIP", address: "192.0.2.240" }];
    },
    says: [/a node's own address is inside an AddressPool/, /node n2: InternalIP 192\.0\.2\.240 is in AddressPool lan and is this Service's VIP/, /--node-ip/],
  },
  {
    name: "a VIP-mode Service, and k3s nodes running a speaker, one without --node-ip", code: REASONS.vipNodeIpNotPinned, healthy: true,
    change: (s) => {
      vipServing(s);
      s.nodes[0].metadata.annotations = { "k3s.io/node-args": JSON.stringify(["server", "--disable", "servicelb", "--token", "********"]), "k3s.io/node-env": "{}" };
      s.nodes[1].metadata.annotations = { "k3s.io/node-args": JSON.stringify(["agent", "--node-ip", "192.0.2.2"]) };
      s.speakerPods = [speakerPod("n1"), speakerPod("n2")];
    },
    says: [/^k3s on node n1 picks its node IP itself/, /node n1: k3s\.io\/node-args \["server","--disable","servicelb","--token","\*{8}"\]/, /node-ip: <address> in \/etc\/rancher\/k3s\/config\.yaml/],
  },
  {
    name: "no DaemonSet and an expired Lease", code: REASONS.controllerNotRunning,
    change: (s) => {
      s.lease.spec.renewTime = ago(300);
      s.daemonSets = [];
      s.pods = [];
      noIngress(s);
    },
    says: [/last renewed 300 s ago by berth-controller-abc/, /deploy\/berth\.yaml/],
  },
  {
    name: "no DaemonSet, no Lease and no Deployment", code: REASONS.controllerNotRunning,
    change: (s) => {
      s.lease = null;
      s.deployment = null;
      s.daemonSets = [];
      s.pods = [];
      noIngress(s);
    },
    says: [/no Lease and no Deployment berth-controller in berth-system/, /--controller-namespace/],
  },
  {
    name: "no DaemonSet although the controller leads", code: REASONS.noDaemonSet,
    change: (s) => {
      s.daemonSets = [];
      s.pods = [];
      noIngress(s);
    },
    says: [/no lb-pod DaemonSet/, /leader berth-controller-abc/, /logs deploy\/berth-controller/],
  },
  {
    name: "every node excluded from external load balancers", code: REASONS.noEligibleNodes,
    change: (s) => {
      s.nodes = [node("n1", { labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "" } }), node("n2", { labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "true" } })];
      s.pods = [];
      noIngress(s);
    },
    says: [/n1 \(labelled node\.kubernetes\.io\/exclude-from-external-load-balancers\)/, /exclude-from-external-load-balancers-/],
  },
  {
    name: "berth.dev/enabled on some nodes, true on none", code: REASONS.noEligibleNodes,
    change: (s) => {
      s.nodes = [node("n1", { labels: { "berth.dev/enabled": "false" } }), node("n2")];
      s.pods = [];
      noIngress(s);
    },
    says: [/n1 \(labelled berth\.dev\/enabled=false, not true\)/, /berth\.dev\/enabled=true --overwrite/],
  },
  {
    name: "a Service pinned to a pool no node is in", code: REASONS.noEligibleNodes,
    change: (s) => {
      s.service.metadata.labels = { "berth.dev/pool": "edge" };
      s.pods = [];
      noIngress(s);
    },
    says: [/not in node pool edge/, /berth\.dev\/pool=edge/],
  },
  {
    name: "every node NotReady", code: REASONS.noEligibleNodes,
    change: (s) => {
      s.nodes = [node("n1", { ready: false }), node("n2", { ready: false })];
      noIngress(s);
    },
    says: [/n1 \(not Ready \(Ready=False, KubeletNotReady\)\)/, /describe node/],
  },
  {
    name: "every node tainted with a taint the lb-pods do not tolerate", code: REASONS.noEligibleNodes,
    change: (s) => {
      const taints = [{ key: "dedicated", value: "db", effect: "NoSchedule" }];
      s.nodes = [node("n1", { taints }), node("n2", { taints })];
      s.pods = [];
      noIngress(s);
    },
    says: [/taint dedicated=db:NoSchedule is not tolerated/, /berth\.dev\/tolerations=/],
  },
  {
    name: "the port held by another Service on both nodes", code: REASONS.portConflict,
    change: (s) => {
      const message = "0/2 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. 1 node(s) didn't match Pod's node affinity/selector.";
      const pending = { phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message }] };
      s.pods = [brokenPod("n1", pending, false), brokenPod("n2", pending, false)];
      s.service.spec.ports = [{ name: "http", protocol: "TCP", port: 80, nodePort: 30080 }];
      s.podsOnBlockedNodes = ["n1", "n2"].map((n) => ({
        metadata: { name: `svclb-first-1234abcd-${n}`, namespace: "berth-system", labels: { "berth.dev/service-name": "first", "berth.dev/service-namespace": "default" } },
        spec: { nodeName: n, containers: [{ name: "lb-pod", ports: [{ containerPort: 80, hostPort: 80, protocol: "TCP" }] }] },
        status: { phase: "Running" },
      }));
      noIngress(s);
      s.service.status.conditions = [{ type: "berth.dev/PortConflict", status: "True", reason: "PortInUse", message: "TCP/80 on node n1: held by Service default/first" }];
    },
    says: [/TCP\/80 held by Service default\/first on nodes n1 and n2/, /change the port of default\/first/, /condition berth\.dev\/PortConflict=True \(PortInUse\)/],
  },
  {
    name: "the kubelet refusing the IPv6 forwarding sysctl", code: REASONS.sysctlForbidden,
    change: (s) => {
      const status = { phase: "Failed", reason: "SysctlForbidden", message: "Pod was rejected: forbidden sysctl: \"net.ipv6.conf.all.forwarding\" not allowlisted" };
      s.pods = [brokenPod("n1", status), brokenPod("n2", status)];
      s.events = [event("DaemonSet", DS, "FailedDaemonPod", `Found failed daemon pod berth-system/${DS}-n1 on node n1, will try to kill it`)];
      noIngress(s);
    },
    says: [
      /on nodes n1 and n2 refuses the lb-pods because they set net\.ipv6\.conf\.all\.forwarding/, /not allowlisted/,
      /Event Warning FailedDaemonPod on DaemonSet svclb-web-3f2a9c1e \(x3\): Found failed daemon pod/,
      /--allowed-unsafe-sysctls=net\.ipv6\.conf\.all\.forwarding \(kubeadm: allowedUnsafeSysctls in the KubeletConfiguration; k3s: --kubelet-arg=allowed-unsafe-sysctls=net\.ipv6\.conf\.all\.forwarding\)/,
      /IPv4 Services ask for nothing/,
    ],
  },
  {
    name: "an older berth's lb-pods refused for net.ipv4.ip_forward: the fix names the sysctl the kubelet named", code: REASONS.sysctlForbidden,
    change: (s) => {
      const status = { phase: "Failed", reason: "SysctlForbidden", message: "Pod was rejected: forbidden sysctl: \"net.ipv4.ip_forward\" not allowlisted" };
      s.pods = [brokenPod("n1", status)];
      noIngress(s);
    },
    says: [/--allowed-unsafe-sysctls=net\.ipv4\.ip_forward /],
  },
  {
    name: "earlier SysctlForbidden rejections seen only in Events", code: REASONS.sysctlForbidden,
    change: (s) => {
      s.pods = [];
      s.events = [event("Pod", `${DS}-x7k2p`, "SysctlForbidden", "forbidden sysctl: \"net.ipv4.ip_forward\" not allowlisted")];
      noIngress(s);
    },
    says: [/Event Warning SysctlForbidden on Pod svclb-web-3f2a9c1e-x7k2p/],
  },
  {
    name: "an image that cannot be pulled", code: REASONS.imagePullError,
    change: (s) => {
      const status = waiting("ImagePullBackOff", "Back-off pulling image \"ghcr.io/berth-lb/berth-lb-pod:nope\"");
      s.pods = [brokenPod("n1", status), brokenPod("n2", status)];
      noIngress(s);
    },
    says: [/cannot be pulled on nodes n1 and n2/, /berth-lb-pod:nope/, /--lb-image/],
  },
  {
    name: "an lb-pod in CrashLoopBackOff", code: REASONS.crashLoopBackOff,
    change: (s) => {
      const status = waiting("CrashLoopBackOff", "back-off 40s restarting failed container", {
        restarts: 4, last: { exitCode: 2, reason: "Error", message: "berth: net.ipv4.ip_forward is 0 in this pod's network namespace" },
      });
      s.pods = [brokenPod("n1", status), brokenPod("n2", status)];
      noIngress(s);
    },
    says: [/keeps exiting on nodes n1 and n2/, /exit code 2 \(Error\): berth: net\.ipv4\.ip_forward is 0/, /logs svclb-web-3f2a9c1e-n1 --previous/],
  },
  {
    name: "an lb-pod whose readiness probe fails", code: REASONS.readinessProbeFailing,
    change: (s) => {
      const status = { phase: "Running", conditions: [{ type: "Ready", status: "False" }], containerStatuses: [{ name: "lb-pod", ready: false, restartCount: 0, state: { running: {} } }] };
      s.pods = [brokenPod("n1", status), brokenPod("n2", status)];
      s.events = [event("Pod", `${DS}-n1`, "Unhealthy", "Readiness probe failed: berth: nat rule for tcp/80 is missing")];
      noIngress(s);
    },
    says: [/run but are not Ready/, /Readiness probe failed: berth: nat rule for tcp\/80 is missing/],
  },
  {
    name: "lb-pods still being created", code: REASONS.podsPending,
    change: (s) => {
      const status = waiting("ContainerCreating", "");
      status.phase = "Pending";
      s.pods = [brokenPod("n1", status)];
      noIngress(s);
    },
    says: [/have not started/],
  },
  {
    name: "Local policy with the backends only on nodes without a Ready lb-pod", code: REASONS.noReadyEndpointsOnServingNodes,
    change: (s) => {
      s.service.spec.externalTrafficPolicy = "Local";
      s.nodes = [node("n1"), node("n2"), node("n3", { labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "" } })];
      s.endpointSlices = [{ endpoints: [{ addresses: ["10.42.2.5"], nodeName: "n3", conditions: { ready: true } }] }];
      noIngress(s);
    },
    says: [/Ready lb-pod \(nodes n1 and n2\)/, /they run on node n3/, /"externalTrafficPolicy":"Cluster"/],
  },
  {
    name: "a selector that matches no ready pod", code: REASONS.noEndpoints,
    change: (s) => (s.endpointSlices = [{ endpoints: [{ addresses: ["10.42.0.5"], nodeName: "n1", conditions: { ready: false } }] }]),
    says: [/selector app=web/, /1 endpoint\(s\), none ready/, /kubectl get pods -n default -l app=web/],
  },
  {
    name: "everything ready but no address written yet", code: REASONS.statusNotWritten,
    change: (s) => noIngress(s),
    says: [/no EXTERNAL-IP yet/],
  },
  { name: "a healthy Service", code: REASONS.serving, healthy: true, change: () => undefined, says: [/serving on 192\.0\.2\.1, 192\.0\.2\.2/, /nodes n1 and n2/] },
  {
    name: "a healthy VIP-mode Service", code: REASONS.serving, healthy: true,
    change: (s) => {
      vipMode(s);
      s.service.metadata.annotations["berth.dev/allocated-from-pool"] = "lan";
      s.service.status.loadBalancer = { ingress: [{ ip: "192.0.2.240", ipMode: "VIP" }] };
      s.service.status.conditions = [{ type: "berth.dev/LoadBalancerReady", status: "True", reason: "AddressAssigned", message: "Assigned 192.0.2.240 from pool lan." }];
    },
    says: [/VIP 192\.0\.2\.240 from pool lan/, /ARP \(IPv4\) or NDP/],
  },
];

describe("berth doctor: diagnose", () => {
  for (const row of rows) {
    it(`says ${row.code} for ${row.name}`, () => {
      const snapshot = healthy();
      row.change(snapshot as Obj);
      const diagnosis = diagnose(snapshot);
      const main = diagnosis.findings[0];
      assert.ok(main, "at least one finding");
      assert.equal(main.code, row.code, renderText(diagnosis));
      assert.equal(diagnosis.healthy, row.healthy ?? false);
      const text = [main.summary, main.why, main.fix, ...main.evidence].join("\n");
      for (const re of row.says ?? []) assert.match(text, re);
      assert.ok(diagnosis.headline.startsWith(row.healthy ? "default/web is healthy" : "default/web is not working: "), diagnosis.headline);
    });
  }

  it("covers every reason code in the table above", () => {
    const covered = new Set(rows.map((r) => r.code));
    const missing = Object.values(REASONS).filter((code) => !covered.has(code) && code !== REASONS.podsNotReady);
    assert.deepEqual(missing, []);
  });

  it("says nothing about node IPs the API cannot show: speakers on nodes of a kubelet that records no flags", () => {
    const snapshot: Obj = healthy();
    vipServing(snapshot);
    snapshot.speakerPods = [speakerPod("n1"), speakerPod("n2")];
    const diagnosis = diagnose(snapshot as DoctorSnapshot);
    assert.deepEqual(diagnosis.findings.map((f) => f.code), [REASONS.serving], renderText(diagnosis));
  });

  it("reads a k3s or RKE2 node's arguments and environment for its node IP", () => {
    const k3s = (args: unknown, env?: unknown, prefix = "k3s"): V1Node => ({
      metadata: { name: "n1", annotations: { [`${prefix}.io/node-args`]: typeof args === "string" ? args : JSON.stringify(args), ...(env !== undefined ? { [`${prefix}.io/node-env`]: JSON.stringify(env) } : {}) } },
    }) as V1Node;
    const table: [string, V1Node, boolean | undefined][] = [
      ["no annotation (a kubelet records its flags nowhere)", { metadata: { name: "n1" } } as V1Node, undefined],
      ["unreadable annotation", k3s("not json"), undefined],
      ["server without --node-ip", k3s(["server", "--disable", "servicelb"]), false],
      ["--node-ip (as k3s splits --node-ip=X)", k3s(["server", "--node-ip", "192.0.2.1"]), true],
      ["-i, its short form", k3s(["agent", "-i", "192.0.2.1"]), true],
      ["--kubelet-arg node-ip=", k3s(["agent", "--kubelet-arg", "node-ip=192.0.2.1"]), true],
      ["--kubelet-arg for something else", k3s(["agent", "--kubelet-arg", "max-pods=200"]), false],
      ["K3S_NODE_IP in the environment", k3s(["agent"], { K3S_NODE_IP: "192.0.2.1", K3S_TOKEN: "********" }), true],
      ["an empty K3S_NODE_IP", k3s(["agent"], { K3S_NODE_IP: "" }), false],
      ["RKE2 with --node-ip", k3s(["server", "--node-ip", "192.0.2.1"], undefined, "rke2"), true],
      ["RKE2 without", k3s(["server"], { RKE2_TOKEN: "********" }, "rke2"), false],
    ];
    for (const [name, n, want] of table) assert.equal(nodeIpPinned(n)?.pinned, want, name);
  });

  it("stays healthy with a warning when one node's lb-pod crashes and the other serves", () => {
    const snapshot: Obj = healthy();
    snapshot.pods = [readyPod("n1"), brokenPod("n2", waiting("CrashLoopBackOff", "back-off", { restarts: 2, last: { exitCode: 1 } }))];
    snapshot.service.status.loadBalancer.ingress = [{ ip: "192.0.2.1" }];
    const diagnosis = diagnose(snapshot as DoctorSnapshot);
    assert.equal(diagnosis.healthy, true);
    assert.deepEqual(diagnosis.findings.map((f) => [f.severity, f.code]), [["warning", REASONS.crashLoopBackOff], ["info", REASONS.serving]]);
    assert.match(diagnosis.headline, /is healthy: EXTERNAL-IP 192\.0\.2\.1 \(1 warning\)/);
  });

  it("is not fooled by addresses left in the status when no lb-pod is Ready any more", () => {
    const snapshot: Obj = healthy();
    snapshot.lease.spec.renewTime = ago(3600);
    const status = waiting("CrashLoopBackOff", "back-off", { restarts: 9, last: { exitCode: 2 } });
    snapshot.pods = [brokenPod("n1", status), brokenPod("n2", status)];
    const diagnosis = diagnose(snapshot as DoctorSnapshot);
    assert.equal(diagnosis.healthy, false);
    assert.deepEqual(diagnosis.findings.filter((f) => f.severity === "error").map((f) => f.code), [REASONS.controllerNotRunning, REASONS.crashLoopBackOff]);
  });

  it("warns that nothing updates the Service when the controller is gone but the lb-pods still serve", () => {
    const snapshot: Obj = healthy();
    snapshot.lease.spec.renewTime = ago(3600);
    const diagnosis = diagnose(snapshot as DoctorSnapshot);
    assert.equal(diagnosis.healthy, true);
    assert.equal(diagnosis.findings[0]?.code, REASONS.controllerNotRunning);
    assert.equal(diagnosis.findings[0]?.severity, "warning");
  });

  it("names a plain pod holding the port, and says how to look when the holder cannot be seen", () => {
    const message = "0/2 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.";
    const pending = { phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message }] };
    const snapshot: Obj = healthy();
    snapshot.pods = [readyPod("n1"), brokenPod("n2", pending, false)];
    snapshot.service.status.loadBalancer.ingress = [{ ip: "192.0.2.1" }];
    snapshot.podsOnBlockedNodes = [{
      metadata: { name: "squatter", namespace: "default" },
      spec: { nodeName: "n2", containers: [{ name: "c", ports: [{ containerPort: 8080, hostPort: 80 }] }] },
      status: { phase: "Running" },
    }];
    let found = diagnose(snapshot as DoctorSnapshot).findings.find((f) => f.code === REASONS.portConflict);
    assert.equal(found?.severity, "warning");
    assert.equal(found?.summary, "port conflict: TCP/80 held by pod default/squatter on node n2");
    assert.match(found?.fix ?? "", /move or delete the pod holding it/);

    snapshot.podsOnBlockedNodes = [];
    found = diagnose(snapshot as DoctorSnapshot).findings.find((f) => f.code === REASONS.portConflict);
    assert.equal(found?.summary, "port conflict: TCP/80 held by something berth cannot see on node n2");
    assert.match(found?.fix ?? "", /kubectl get pods -A -o wide --field-selector spec\.nodeName=n2/);
  });

  it("reports an lb-pod in a state it has no specific advice for as not Ready", () => {
    const snapshot: Obj = healthy();
    snapshot.pods = [readyPod("n1"), brokenPod("n2", waiting("CreateContainerConfigError", "secret \"x\" not found"))];
    const found = diagnose(snapshot as DoctorSnapshot).findings.find((f) => f.code === REASONS.podsNotReady);
    assert.match(found?.evidence[0] ?? "", /CreateContainerConfigError: secret "x" not found/);
  });

  it("says less, not wrong, when nodes and EndpointSlices may not be read", () => {
    const snapshot: Obj = healthy();
    snapshot.nodes = undefined;
    snapshot.endpointSlices = undefined;
    assert.equal(diagnose(snapshot as DoctorSnapshot).healthy, true);
  });

  it("waits for a young Service before concluding the controller ignores its unset class", () => {
    const snapshot: Obj = healthy();
    snapshot.service.metadata.creationTimestamp = ago(2);
    snapshot.service.metadata.finalizers = [];
    snapshot.daemonSets = [];
    snapshot.pods = [];
    noIngress(snapshot);
    assert.equal(diagnose(snapshot as DoctorSnapshot).findings[0]?.code, REASONS.noDaemonSet);
    assert.equal(diagnose(snapshot as DoctorSnapshot, { settleMs: 1000 }).findings[0]?.code, REASONS.unsetClassIgnored);
  });

  it("prints the headline, then why and what to do; -o json carries the same findings", () => {
    const snapshot: Obj = healthy();
    snapshot.service.spec.type = "NodePort";
    const diagnosis = diagnose(snapshot as DoctorSnapshot);
    const text = renderText(diagnosis);
    assert.match(text, /^default\/web is not working: the Service is type NodePort, not LoadBalancer\n\nERROR NotLoadBalancer: .*\n {2}why: {5}.*\n {2}do this: .*kubectl patch svc web -n default/);
    const json = JSON.parse(renderJson(diagnosis)) as { healthy: boolean; findings: { code: string }[] };
    assert.equal(json.healthy, false);
    assert.equal(json.findings[0]?.code, "NotLoadBalancer");
  });
});
