// Every Kubernetes-facing name berth reads or writes: labels, annotations, the finalizer, the loadBalancerClass,
// condition types and reasons, Event reasons. One module, like the constant block at the top of k3s's
// pkg/cloudprovider/servicelb.go, so a rename is one edit and a grep finds every user. Changing a value that is
// already written to clusters (labels on DaemonSets, the finalizer) is a migration: old objects keep the old name.

/** Prefix of every label and annotation berth owns. */
export const PREFIX = "berth.dev/";

/** `spec.loadBalancerClass` that names berth. Unset is ours too unless the controller is told otherwise. */
export const LOAD_BALANCER_CLASS = "berth.dev/lb";

/** Finalizer on every Service berth handles; removed once the Service's DaemonSet is gone and its status cleared. */
export const FINALIZER = "berth.dev/cleanup";

/** Namespace for every per-Service DaemonSet, unless configured otherwise. */
export const DEFAULT_NAMESPACE = "berth-system";

/** Priority class of the lb-pods unless the Service asks for another (k3s servicelb's default). */
export const DEFAULT_PRIORITY_CLASS = "system-node-critical";

/**
 * Labels on the per-Service DaemonSets and their pods. Ownership goes by these labels, not ownerReferences:
 * a Service in another namespace cannot own an object in berth-system (cross-namespace owner references are
 * invalid and the garbage collector deletes their dependents).
 */
export const LABELS = {
  serviceName: "berth.dev/service-name",
  serviceNamespace: "berth.dev/service-namespace",
  /**
   * UID of the Service the DaemonSet serves: a Service deleted and re-created under the same name has a new UID, so
   * a DaemonSet whose UID label matches no live Service is an orphan to sweep.
   */
  serviceUid: "berth.dev/service-uid",
  /** Selector label of one DaemonSet's pods (value: the DaemonSet name), as k3s's `app: <name>`. */
  daemonSet: "berth.dev/daemonset",
  /** Which berth component made the object, `app.kubernetes.io/managed-by` style. */
  managedBy: "app.kubernetes.io/managed-by",
  component: "app.kubernetes.io/component",
} as const;

/** Annotations on the per-Service DaemonSets. */
export const DAEMONSET_ANNOTATIONS = {
  /** Hash of the desired DaemonSet as berth built it; equal hash = nothing to write (no apply, no rollout). */
  specHash: "berth.dev/spec-hash",
} as const;

/** Values of LABELS.managedBy / LABELS.component on what the controller creates. */
export const MANAGED_BY = "berth";
export const COMPONENT_LB_POD = "lb-pod";

/** Service annotations read by the controller. */
export const SERVICE_ANNOTATIONS = {
  /** `hostport` (default) or `vip`. */
  mode: "berth.dev/mode",
  /** JSON list of core/v1 Tolerations added to the lb-pods. */
  tolerations: "berth.dev/tolerations",
  /** priorityClassName of the lb-pods. */
  priorityClass: "berth.dev/priority-class",
  /** VIP mode: address pool to allocate from. */
  pool: "berth.dev/pool",
  /** VIP mode: requested addresses, one per family, comma separated. */
  ips: "berth.dev/ips",
  /** VIP mode: sharing key. */
  allowSharedIp: "berth.dev/allow-shared-ip",
} as const;

/** Values of SERVICE_ANNOTATIONS.mode. */
export const MODES = { hostPort: "hostport", vip: "vip" } as const;
export type Mode = (typeof MODES)[keyof typeof MODES];

/**
 * Label on a Service (and on nodes) that pins a hostPort-mode Service to the nodes with the same value, as k3s's
 * `svccontroller.k3s.cattle.io/lbpool`. The same key as the VIP-mode pool annotation, but a label: k3s reads it
 * from labels.
 */
export const SERVICE_LABELS = {
  pool: "berth.dev/pool",
} as const;

/** Node labels. */
export const NODE_LABELS = {
  /** `true`: this node serves. When any node carries the key, only nodes whose value is `true` serve. */
  enabled: "berth.dev/enabled",
  /** Node group; a Service with the same label value only runs on these nodes. */
  pool: "berth.dev/pool",
  /** Upstream well-known label (any value): never used for external load balancers (service controller honours it). */
  excludeFromExternalLoadBalancers: "node.kubernetes.io/exclude-from-external-load-balancers",
  /** Control-plane role labels (taint keys too), used in the default tolerations, as k3s does. */
  controlPlane: "node-role.kubernetes.io/control-plane",
  master: "node-role.kubernetes.io/master",
} as const;

/** Upstream annotation equivalent to spec.loadBalancerSourceRanges (read when the field is empty, as kube-proxy does). */
export const SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges";

/** k3s servicelb keys read as aliases (drop-in compatibility); berth's own keys win when both are set and equal. */
export const K3S = {
  /** Node label, same meaning as NODE_LABELS.enabled. */
  enableLb: "svccontroller.k3s.cattle.io/enablelb",
  /** Node label and Service label, same meaning as berth.dev/pool. */
  lbPool: "svccontroller.k3s.cattle.io/lbpool",
  /** Service annotation, same meaning as berth.dev/priority-class. */
  priorityClassName: "svccontroller.k3s.cattle.io/priorityclassname",
  /** Service annotation, same meaning as berth.dev/tolerations. */
  tolerations: "svccontroller.k3s.cattle.io/tolerations",
} as const;

/** MetalLB Service annotations read as aliases for VIP mode, current and pre-0.13 spellings. */
export const METALLB = {
  loadBalancerIps: ["metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"],
  addressPool: ["metallb.io/address-pool", "metallb.universe.tf/address-pool"],
  allowSharedIp: ["metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"],
} as const;

/**
 * Condition types on the Service's `status.conditions` (metav1.Condition). Domain-prefixed, as the API conventions
 * ask of types not defined by Kubernetes itself, so they never collide with another controller's conditions on the
 * same Service (the only upstream Service condition type is `LoadBalancerPortsError`).
 */
export const CONDITION_TYPES = {
  /** True when at least one node serves the Service and its address is in status.loadBalancer.ingress. */
  ready: "berth.dev/LoadBalancerReady",
  /** True when a hostPort the Service needs is held by something else on at least one node (abnormal-true). */
  portConflict: "berth.dev/PortConflict",
} as const;

/** Reasons on the conditions (CamelCase, as metav1.Condition requires). */
export const CONDITION_REASONS = {
  /** ready=True: every node that should serve does. */
  serving: "Serving",
  /** ready=True: some nodes serve, others cannot (conflict, pod not ready); the message names them. */
  partiallyServing: "PartiallyServing",
  /** ready=False: DaemonSet applied, no pod Ready yet. */
  waitingForPods: "WaitingForPods",
  /** ready=False: no node is eligible (labels, pool, exclusion, none Ready). */
  noEligibleNodes: "NoEligibleNodes",
  /** ready=False: externalTrafficPolicy Local and no node with a ready endpoint also has a ready lb-pod. */
  noReadyEndpoints: "NoReadyEndpoints",
  /** ready=False: a bad annotation or label; nothing applied. */
  invalidConfiguration: "InvalidConfiguration",
  /** ready=False: berth.dev/mode: vip is asked for but not in this version. */
  vipModeUnavailable: "VIPModeUnavailable",
  /** ready=False: every node that would serve has the port taken. */
  portConflict: "PortConflict",
  /**
   * ready=False: the kubelets reject the lb-pods at admission for a sysctl they do not allow (IPv6 forwarding); the
   * message names the nodes and the kubelet flag that allows it.
   */
  sysctlForbidden: "SysctlForbidden",
  /**
   * ready=False: the rendered rules exceed what a ConfigMap may hold (1 MiB); nothing applied, an existing DaemonSet
   * keeps serving the last rules that fitted.
   */
  rulesTooLarge: "RulesTooLarge",
  /** portConflict=True. */
  portInUse: "PortInUse",
  /** portConflict=False. */
  noConflict: "NoConflict",
} as const;

/** Event reasons on the Service. The first four match k3s servicelb's, so existing alerts keep matching. */
export const EVENT_REASONS = {
  appliedDaemonSet: "AppliedDaemonSet",
  deletedDaemonSet: "DeletedDaemonSet",
  updatedLoadBalancer: "UpdatedLoadBalancer",
  /** k3s spells it `UnAvailableLoadBalancer`; we use the conventional spelling. */
  unavailableLoadBalancer: "UnavailableLoadBalancer",
  portConflict: "PortConflict",
  portConflictResolved: "PortConflictResolved",
  invalidConfiguration: "InvalidConfiguration",
  configurationAccepted: "ConfigurationAccepted",
  vipModeUnavailable: "VIPModeUnavailable",
  clearedLoadBalancer: "ClearedLoadBalancer",
  /** Warning, once per set of nodes and sysctl (not per rejected pod): names the kubelet flag that allows it. */
  sysctlForbidden: "SysctlForbidden",
  /** Warning when the Service's rendered rules stop fitting in a ConfigMap (once, not again while the size changes). */
  rulesTooLarge: "RulesTooLarge",
} as const;


export type EventType = "Normal" | "Warning";

/** Name Events and field managers carry as their source (`reportingController` / SSA fieldManager). */
export const CONTROLLER_NAME = "berth.dev/controller";
export const FIELD_MANAGER = "berth-controller";
