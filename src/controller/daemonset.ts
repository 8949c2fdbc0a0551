// The desired per-Service DaemonSet (hostPort mode), as a pure function of the Service, its parsed configuration,
// the node list and the controller's configuration. Modelled on k3s servicelb's newDaemonSet
// (pkg/cloudprovider/servicelb.go), with one lb-pod container for all ports instead of one container per port, and
// a stable output: every list sorted and every object built in a fixed key order, so an unchanged Service always
// yields the same object, the same hash, and no rollout (servicelb's unsorted source ranges caused rollouts).
import { createHash } from "node:crypto";

import type { V1ConfigMap } from "@kubernetes/client-node";
import { RULES_DIR, renderBundle, renderHostIpsBundle, type RulesBundle } from "../lb-pod/bundle.js";
import { LB_POD_ENV } from "../lb-pod/config.js";
import {
  COMPONENT_LB_POD,
  DAEMONSET_ANNOTATIONS,
  K3S,
  LABELS,
  MANAGED_BY,
  NODE_LABELS,
} from "../lib/names.js";
import type { Family } from "../lib/rules/model.js";
import { sortTolerations } from "./service-config.js";
import type { ControllerConfig, ServiceLbConfig, V1DaemonSet, V1Node, V1Service, V1Toleration } from "./types.js";

/** Longest Kubernetes object name that is also a valid label value (DaemonSet names end up in pod labels). */
const MAX_NAME = 63;
const NAME_PREFIX = "svclb-";
const UID_CHARS = 8;

/**
 * `svclb-<service name>-<first 8 chars of the Service UID>`, the name cut so the whole fits 63 characters (the
 * DaemonSet controller puts it in a label of each pod, and labels stop at 63) and never left ending in '-'.
 * Same scheme as k3s's generateName, so `kubectl get ds -A | grep svclb-` keeps working; the UID part keeps two
 * Services of one name in different namespaces (or a re-created Service) apart.
 */
export function daemonSetName(service: V1Service): string {
  const name = service.metadata?.name ?? "";
  const uid = (service.metadata?.uid ?? "").slice(0, UID_CHARS);
  const room = MAX_NAME - NAME_PREFIX.length - 1 - uid.length;
  const cut = name.slice(0, room).replace(/[-.]+$/, "");
  return `${NAME_PREFIX}${cut}-${uid}`;
}

/** Container and volume names inside the lb-pod. */
export const LB_POD_CONTAINER = "lb-pod";
export const STATE_VOLUME = "state";
export const RULES_VOLUME = "rules";
/** Where the lb-pod keeps its state and cleanup script (bin/berth-lb-pod's default BERTH_STATE_DIR). */
export const STATE_DIR = "/run/berth";

/**
 * The sysctl that turns forwarding on per family (the lb-pod checks it and refuses to start without it:
 * src/lb-pod/check.ts). Only the IPv6 one is ever asked for: see podSysctls.
 */
export const FORWARDING_SYSCTLS: Record<Family, string> = {
  ipv4: "net.ipv4.ip_forward",
  ipv6: "net.ipv6.conf.all.forwarding",
};

/**
 * Tolerations every lb-pod gets, as k3s servicelb's: it must run on control-plane nodes too (single-node and small
 * clusters often serve from them), and on nodes reserved for critical add-ons.
 */
export const DEFAULT_TOLERATIONS: readonly V1Toleration[] = [
  { key: NODE_LABELS.master, operator: "Exists", effect: "NoSchedule" },
  { key: NODE_LABELS.controlPlane, operator: "Exists", effect: "NoSchedule" },
  { key: "CriticalAddonsOnly", operator: "Exists" },
];

/**
 * Whether node selection by `berth.dev/enabled` (or k3s's `svccontroller.k3s.cattle.io/enablelb`) is on: it is as
 * soon as any node carries either key, whatever the value, as in k3s (nodeHasDaemonSetLabel). The controller must
 * rebuild DaemonSets when this flips.
 */
export function enabledLabelInUse(nodes: readonly V1Node[]): boolean {
  return nodes.some((node) => {
    const labels = node.metadata?.labels ?? {};
    return labels[NODE_LABELS.enabled] !== undefined || labels[K3S.enableLb] !== undefined;
  });
}

/**
 * Whether a node may serve this Service, by the same rules as nodeSelectorTerms (a test checks they agree), with
 * the reason when it may not: for the per-node reasons in status and conditions.
 */
export function nodeEligibility(
  node: V1Node,
  serviceConfig: Pick<ServiceLbConfig, "nodePool">,
  nodes: readonly V1Node[],
): { eligible: true } | { eligible: false; reason: string } {
  const labels = node.metadata?.labels ?? {};
  if (labels[NODE_LABELS.excludeFromExternalLoadBalancers] !== undefined) {
    return { eligible: false, reason: `labelled ${NODE_LABELS.excludeFromExternalLoadBalancers}` };
  }
  if (enabledLabelInUse(nodes)) {
    const key = labels[NODE_LABELS.enabled] !== undefined ? NODE_LABELS.enabled : K3S.enableLb;
    const value = labels[key];
    if (value !== "true") {
      return {
        eligible: false,
        reason: value === undefined
          ? `not labelled ${NODE_LABELS.enabled}=true (some nodes carry ${NODE_LABELS.enabled} or ${K3S.enableLb}, so only nodes with true serve)`
          : `labelled ${key}=${value}, not true`,
      };
    }
  }
  const pool = serviceConfig.nodePool;
  if (pool !== undefined) {
    const key = labels[NODE_LABELS.pool] !== undefined ? NODE_LABELS.pool : K3S.lbPool;
    const value = labels[key];
    if (value !== pool) {
      return {
        eligible: false,
        reason: value === undefined ? `not in node pool ${pool} (no ${NODE_LABELS.pool} label)` : `in node pool ${value}, not ${pool}`,
      };
    }
  }
  return { eligible: true };
}

/**
 * The Service's families, in a fixed order. Under Local the destinations come from the downward API's
 * status.hostIPs, which lists every node IP whatever the Service's families, so the bundle names the Service's
 * families (its `families` file) and the pod ignores node IPs of other families (klipper-lb skips an IPv6
 * destination when forwarding is off instead). An IPv4-only Local Service on dual-stack nodes therefore never
 * touches IPv6.
 */
export function forwardingFamilies(serviceConfig: Pick<ServiceLbConfig, "families">): Family[] {
  const wanted = new Set<Family>(serviceConfig.families);
  return (["ipv4", "ipv6"] as const).filter((family) => wanted.has(family));
}

/**
 * The sysctls the lb-pods ask the kubelet for (docs/design/0010-only-ipv6-asks-for-a-sysctl.md). A new pod network
 * namespace copies the host's net.ipv4 settings (net.core.devconf_inherit_init_net=0, the default), and every
 * Kubernetes node forwards IPv4, so IPv4 needs none: asking for net.ipv4.ip_forward only made a stock kubelet
 * reject the pod (it is not on the kubelet's safe list). IPv6 forwarding starts at 0 in a new namespace whatever
 * the host says, so a Service with IPv6 asks for net.ipv6.conf.all.forwarding, which the kubelet must allow
 * (--allowed-unsafe-sysctls). `forwardingSysctls: false` (--no-forwarding-sysctls) leaves that one out too, for
 * nodes whose pod namespaces already forward IPv6 (a CNI or devconf_inherit_init_net that turns it on).
 */
export function podSysctls(
  serviceConfig: Pick<ServiceLbConfig, "families">,
  config: Pick<ControllerConfig, "forwardingSysctls">,
): { name: string; value: string }[] {
  if (!config.forwardingSysctls || !serviceConfig.families.includes("ipv6")) return [];
  return [{ name: FORWARDING_SYSCTLS.ipv6, value: "1" }];
}

type Requirement = { key: string; operator: "In" | "NotIn" | "Exists" | "DoesNotExist"; values?: string[] };

/**
 * Node affinity that picks the nodes allowed to serve this Service. NodeSelectorTerms are ORed and the expressions
 * inside one term ANDed, so each berth key / k3s alias pair becomes two alternatives: the berth label says so, or
 * the berth label is absent and the k3s label says so (berth's key wins when both are set, as in the annotations).
 * - `node.kubernetes.io/exclude-from-external-load-balancers` present (any value) excludes the node, as the
 *   upstream service controller reads it (k8s.io/cloud-provider nodeIncludedForLoadBalancing: presence, not value).
 * - `berth.dev/enabled`: when any node carries it (or k3s's enablelb), only nodes whose value is `true` serve.
 * - A Service pool (`berth.dev/pool` or k3s `lbpool` Service label) pins it to nodes with the same node label. k3s
 *   honours lbpool only while enablelb selection is on; berth always does (a pinned Service never spreads to every
 *   node by surprise when the last enablelb label is removed).
 */
export function nodeSelectorTerms(serviceConfig: Pick<ServiceLbConfig, "nodePool">, nodes: readonly V1Node[]): { matchExpressions: Requirement[] }[] {
  const base: Requirement[] = [{ key: NODE_LABELS.excludeFromExternalLoadBalancers, operator: "DoesNotExist" }];
  const enabled: Requirement[][] = enabledLabelInUse(nodes)
    ? [
      [{ key: NODE_LABELS.enabled, operator: "In", values: ["true"] }],
      [{ key: NODE_LABELS.enabled, operator: "DoesNotExist" }, { key: K3S.enableLb, operator: "In", values: ["true"] }],
    ]
    : [[]];
  const pool = serviceConfig.nodePool;
  const pinned: Requirement[][] = pool !== undefined
    ? [
      [{ key: NODE_LABELS.pool, operator: "In", values: [pool] }],
      [{ key: NODE_LABELS.pool, operator: "DoesNotExist" }, { key: K3S.lbPool, operator: "In", values: [pool] }],
    ]
    : [[]];
  const terms: { matchExpressions: Requirement[] }[] = [];
  for (const enabledPart of enabled) {
    for (const poolPart of pinned) terms.push({ matchExpressions: [...base, ...enabledPart, ...poolPart] });
  }
  return terms;
}

/**
 * The Service's rules bundle (src/lb-pod/bundle.ts), rendered here so the lb-pod runs no Node.js: the iptables and
 * nftables texts for the ClusterIPs (Cluster policy), or with placeholders for the node's own addresses, which the
 * pod fills in from the downward API (Local) (docs/design/0013-the-controller-renders-lb-pod-rules.md).
 */
export function lbPodRulesBundle(serviceConfig: Pick<ServiceLbConfig, "ports" | "externalTrafficPolicy" | "clusterIps" | "sourceRanges" | "families">): RulesBundle {
  const ports = serviceConfig.ports.map((p) => ({ protocol: p.protocol, port: p.port, destinationPort: p.destinationPort }));
  return serviceConfig.externalTrafficPolicy === "Local"
    ? renderHostIpsBundle({ ports, sourceRanges: serviceConfig.sourceRanges }, forwardingFamilies(serviceConfig))
    : renderBundle({ ports, destinationIps: serviceConfig.clusterIps, sourceRanges: serviceConfig.sourceRanges });
}

/**
 * `<DaemonSet name>-<first 10 hex of the bundle's sha256>`: a new bundle is a new name, so the pod template changes
 * and the DaemonSet rolls its pods; the ConfigMap itself never changes (immutable).
 */
export function rulesConfigMapName(daemonSetName: string, bundle: RulesBundle): string {
  const hash = createHash("sha256");
  for (const key of Object.keys(bundle).sort()) hash.update(`${key}\0${bundle[key] ?? ""}\0`);
  return `${daemonSetName}-${hash.digest("hex").slice(0, 10)}`;
}

/**
 * The immutable ConfigMap holding the bundle, owned by its DaemonSet (same namespace) once that exists, so the
 * garbage collector removes it with the DaemonSet. Immutable: kubelets fetch it once instead of watching it.
 */
export function buildRulesConfigMap(daemonSet: V1DaemonSet, owner: { uid: string } | undefined, bundle: RulesBundle): V1ConfigMap {
  const name = rulesConfigMapOf(daemonSet);
  if (name === undefined) throw new Error(`internal: DaemonSet ${daemonSet.metadata?.name} mounts no rules ConfigMap`);
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name,
      namespace: daemonSet.metadata?.namespace,
      labels: { ...(daemonSet.metadata?.labels ?? {}) },
      ...(owner ? { ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: daemonSet.metadata?.name ?? "", uid: owner.uid, controller: true }] } : {}),
    },
    immutable: true,
    data: { ...bundle },
  };
}

/**
 * What kube-apiserver allows a ConfigMap to hold: data plus binaryData at most core.MaxSecretSize, 1 MiB
 * (pkg/apis/core/validation/validation.go, ValidateConfigMap; the sandbox API server enforces the same).
 */
export const CONFIGMAP_MAX_BYTES = 1_048_576;

/**
 * The size ValidateConfigMap checks against CONFIGMAP_MAX_BYTES: the values' bytes (Go's len of a string is its
 * UTF-8 bytes; keys do not count), binaryData decoded from base64.
 */
export function configMapDataBytes(data: Readonly<Record<string, string | undefined>>, binaryData: Readonly<Record<string, string>> = {}): number {
  let bytes = 0;
  for (const value of Object.values(data)) bytes += Buffer.byteLength(value ?? "", "utf8");
  for (const value of Object.values(binaryData)) bytes += Buffer.from(value, "base64").length;
  return bytes;
}

/**
 * Why a rules bundle of `bytes` cannot be applied (the condition's message), or undefined when it fits. Checked
 * before anything is written: kube-apiserver would refuse the ConfigMap with a generic 422 on every retry, and a
 * DaemonSet mounting a ConfigMap that cannot exist would leave its new pods waiting forever.
 */
export function rulesTooLargeMessage(bytes: number, serviceConfig: Pick<ServiceLbConfig, "ports" | "externalTrafficPolicy" | "families">): string | undefined {
  if (bytes <= CONFIGMAP_MAX_BYTES) return undefined;
  const perPort = Math.ceil(bytes / Math.max(1, serviceConfig.ports.length));
  const fit = Math.floor(CONFIGMAP_MAX_BYTES / perPort);
  return `The lb-pod rules rendered for this Service's ${serviceConfig.ports.length} ports are ${bytes.toLocaleString("en-US")} bytes, ` +
    `more than the ${CONFIGMAP_MAX_BYTES.toLocaleString("en-US")} bytes a ConfigMap may hold` +
    `${serviceConfig.externalTrafficPolicy === "Local" && serviceConfig.families.length > 1 ? " (a dual-stack Local Service renders one rule set per family and address combination)" : ""}. ` +
    `About ${fit} ports fit: split the ports over several Services${serviceConfig.externalTrafficPolicy === "Local" ? ", or use externalTrafficPolicy: Cluster or a single IP family" : ""}. ` +
    "Nothing is applied for this Service until they fit (an existing DaemonSet keeps serving the last rules that did); other Services are not affected.";
}

// Every reconcile builds the desired DaemonSet, and its ConfigMap's name is a hash of the rendered rules (0.1-5 ms
// per render: 1-100 ports, dual-stack); rendering again only when a Service's rules inputs change keeps a full
// resync of thousands of Services from rendering them all. Names and sizes only (no texts) are kept, at most
// RULES_NAME_CACHE.
const RULES_NAME_CACHE = 10_000;
const rulesNames = new Map<string, { name: string; bytes: number }>();

function renderedRules(daemonSetName: string, serviceConfig: ServiceLbConfig): { name: string; bytes: number } {
  const key = JSON.stringify([daemonSetName, serviceConfig.ports, serviceConfig.externalTrafficPolicy, serviceConfig.clusterIps,
    serviceConfig.sourceRanges, serviceConfig.families]);
  let rendered = rulesNames.get(key);
  if (rendered === undefined) {
    const bundle = lbPodRulesBundle(serviceConfig);
    rendered = { name: rulesConfigMapName(daemonSetName, bundle), bytes: configMapDataBytes(bundle) };
    if (rulesNames.size >= RULES_NAME_CACHE) rulesNames.delete(rulesNames.keys().next().value as string);
  } else {
    rulesNames.delete(key);
  }
  rulesNames.set(key, rendered);
  return rendered;
}

/** The rules ConfigMap's name for this DaemonSet name and Service (rendered once per configuration, then cached). */
export function rulesConfigMapNameFor(daemonSetName: string, serviceConfig: ServiceLbConfig): string {
  return renderedRules(daemonSetName, serviceConfig).name;
}

/** The size of the rules ConfigMap's data for this DaemonSet name and Service (from the cache buildDaemonSet fills). */
export function rulesBytesFor(daemonSetName: string, serviceConfig: ServiceLbConfig): number {
  return renderedRules(daemonSetName, serviceConfig).bytes;
}

/** The rules ConfigMap a (live or desired) DaemonSet's pods mount, if any. */
export function rulesConfigMapOf(daemonSet: V1DaemonSet | undefined): string | undefined {
  return daemonSet?.spec?.template.spec?.volumes?.find((volume) => volume.name === RULES_VOLUME)?.configMap?.name;
}

/** `lb-tcp-80`: an IANA service name (at most 15 characters; the longest, `lb-sctp-65535`, has 13). */
function portName(protocol: string, port: number): string {
  return `lb-${protocol}-${port}`;
}

/**
 * The DaemonSet that serves one Service in hostPort mode. `serviceConfig` must come from parseServiceConfig on the
 * same Service; `nodes` is every node in the cluster (their labels decide node selection).
 *
 * The metadata carries `berth.dev/spec-hash`, a hash of everything else: the reconcile writes only when the live
 * DaemonSet's hash differs (the live object also holds server-filled defaults, so comparing whole objects would
 * always differ). The object is ready for server-side apply (apiVersion, kind, name, namespace set).
 */
export function buildDaemonSet(
  service: V1Service,
  serviceConfig: ServiceLbConfig,
  nodes: readonly V1Node[],
  config: Pick<ControllerConfig, "namespace" | "lbPodImage" | "imagePullPolicy" | "lbPodCommand" | "lbPodCheckCommand" | "hostIpsFieldPath" | "forwardingSysctls"> &
    Partial<Pick<ControllerConfig, "lbPodBackend">>,
): V1DaemonSet {
  const name = daemonSetName(service);
  const serviceName = service.metadata?.name ?? "";
  const serviceNamespace = service.metadata?.namespace ?? "";
  const serviceUid = service.metadata?.uid ?? "";
  const ports = [...serviceConfig.ports];
  const local = serviceConfig.externalTrafficPolicy === "Local";

  // Only what the entrypoint (bin/berth-lb-pod) reads: the ports, ClusterIPs, source ranges and families are all in
  // the rules bundle the pod mounts, so repeating them here would only roll every lb-pod when nothing it runs changed
  // (docs/design/0013-the-controller-renders-lb-pod-rules.md, "Addendum: leftovers").
  const env: { name: string; value?: string; valueFrom?: { fieldRef: { apiVersion: string; fieldPath: string } } }[] = [];
  // Local: the node's own IPs, which no controller knows (the bundle holds placeholders the pod fills in from them).
  // Under Local this path does not keep Local's promises: the lb-pod MASQUERADEs, so kube-proxy sees a pod source
  // and its "pod traffic for external destinations" rule (KUBE-EXT-*, when a cluster CIDR is set, as on k3s and
  // kubeadm) sends it to endpoints on any node, from the lb-pod's address. Local's guarantees (local endpoints only,
  // client address kept) come from kube-proxy capturing the LoadBalancer IPs before the hostPort chain, which is
  // the path traffic to a node's own IP takes on a real cluster (docs/architecture.md, "How traffic really flows").
  if (local) env.push({ name: LB_POD_ENV.destinationIps, valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: config.hostIpsFieldPath } } });
  // --lb-backend: left out for auto (the entrypoint's default), so existing DaemonSets do not roll for nothing.
  if (config.lbPodBackend !== undefined && config.lbPodBackend !== "auto") env.push({ name: "BERTH_BACKEND", value: config.lbPodBackend });

  const sysctls = podSysctls(serviceConfig, config);
  const rules = rulesConfigMapNameFor(name, serviceConfig);
  const tolerations = sortTolerations([...DEFAULT_TOLERATIONS, ...serviceConfig.tolerations]);

  const labels = {
    [LABELS.serviceName]: serviceName,
    [LABELS.serviceNamespace]: serviceNamespace,
    [LABELS.serviceUid]: serviceUid,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.component]: COMPONENT_LB_POD,
  };
  const podLabels = { [LABELS.daemonSet]: name, ...labels };

  const daemonSet: V1DaemonSet = {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name, namespace: config.namespace, labels, annotations: {} },
    spec: {
      selector: { matchLabels: { [LABELS.daemonSet]: name } },
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels: podLabels },
        spec: {
          ...(serviceConfig.priorityClassName !== "" ? { priorityClassName: serviceConfig.priorityClassName } : {}),
          // The lb-pod never talks to the API server (k3s servicelb: AutomountServiceAccountToken false).
          automountServiceAccountToken: false,
          // Nothing in the pod uses Service environment variables; without them the environment stays exactly ours.
          enableServiceLinks: false,
          // Left out when empty, as the API server would drop it (see podSysctls for why IPv4 asks for nothing).
          ...(sysctls.length > 0 ? { securityContext: { sysctls } } : {}),
          tolerations,
          affinity: {
            nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: nodeSelectorTerms(serviceConfig, nodes) } },
          },
          containers: [{
            name: LB_POD_CONTAINER,
            image: config.lbPodImage,
            imagePullPolicy: config.imagePullPolicy,
            command: [...config.lbPodCommand],
            // Left out when empty (Cluster policy, automatic backend), as the API server would drop it.
            ...(env.length > 0 ? { env } : {}),
            ports: ports.map((p) => ({
              name: portName(p.protocol, p.port),
              containerPort: p.port,
              hostPort: p.port,
              protocol: p.protocol.toUpperCase(),
            })),
            // Ready only once the rules are in place (a servicelb pain point: Ready before the rules existed).
            readinessProbe: {
              exec: { command: [...config.lbPodCheckCommand] },
              periodSeconds: 5,
              timeoutSeconds: 5,
              failureThreshold: 3,
            },
            securityContext: {
              privileged: false,
              allowPrivilegeEscalation: false,
              // NET_ADMIN for netfilter and conntrack; NET_RAW because iptables-legacy (libiptc) talks to the kernel
              // through a raw socket: without it `iptables-legacy-restore` fails with "unable to initialize table"
              // (measured: setpriv with NET_ADMIN alone in a fresh netns). Everything else is dropped.
              capabilities: { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] },
            },
            volumeMounts: [{ name: RULES_VOLUME, mountPath: RULES_DIR, readOnly: true }, { name: STATE_VOLUME, mountPath: STATE_DIR }],
          }],
          // The state dir must be writable and must not outlive the pod: a restarted container finds the previous
          // state there and replaces its rules instead of adding a second copy. The rules: what the entrypoint applies.
          volumes: [{ name: RULES_VOLUME, configMap: { name: rules } }, { name: STATE_VOLUME, emptyDir: { medium: "Memory" } }],
        },
      },
    },
  };
  (daemonSet.metadata as { annotations: Record<string, string> }).annotations[DAEMONSET_ANNOTATIONS.specHash] = daemonSetHash(daemonSet);
  return daemonSet;
}

/**
 * sha256 (first 16 hex digits) of the DaemonSet without its own hash annotation. Stable because buildDaemonSet
 * builds every object in a fixed key order and sorts every list.
 */
export function daemonSetHash(daemonSet: V1DaemonSet): string {
  const annotations = { ...(daemonSet.metadata?.annotations ?? {}) };
  delete annotations[DAEMONSET_ANNOTATIONS.specHash];
  const copy = { ...daemonSet, metadata: { ...daemonSet.metadata, annotations } };
  return createHash("sha256").update(JSON.stringify(copy)).digest("hex").slice(0, 16);
}

/** The hash recorded on a (live) DaemonSet, if any. */
export function recordedHash(daemonSet: V1DaemonSet | undefined): string | undefined {
  return daemonSet?.metadata?.annotations?.[DAEMONSET_ANNOTATIONS.specHash];
}

/**
 * Where the live DaemonSet no longer says what we applied, as the path of the first difference (for the log), or
 * undefined when everything we own is as we want it. Our hash annotation alone misses an edit by someone else
 * (`kubectl edit` of the image, a removed port or toleration) since the annotation stays; comparing whole objects
 * would always differ, because the API server fills in defaults. So only what the desired object sets is compared
 * (metadata labels and annotations, the whole spec as we build it):
 * - an object field we set must be there with an equal value; fields we do not set (server defaults such as
 *   terminationMessagePath, revisionHistoryLimit, rollingUpdate.maxSurge) are not ours and are ignored;
 * - a list of objects: each of our entries must match (by these same rules) a distinct live entry, whatever the
 *   order, so an entry someone added (server-side apply keeps another manager's entries in keyed lists) never
 *   makes us re-apply forever, while a removed or changed one does;
 * - a list of scalars (command, values) is ours whole and must be equal, in order;
 * - an empty list or object we set equals an absent one (the API server drops them).
 */
export function ownedFieldsDiffer(live: V1DaemonSet | undefined, desired: V1DaemonSet): string | undefined {
  if (live === undefined) return "no live DaemonSet";
  const parts: [string, unknown, unknown][] = [
    ["metadata.labels", desired.metadata?.labels, live.metadata?.labels],
    ["metadata.annotations", desired.metadata?.annotations, live.metadata?.annotations],
    ["spec", desired.spec, live.spec],
  ];
  for (const [path, want, have] of parts) {
    const diff = firstDifference(want, have, path);
    if (diff !== undefined) return diff;
  }
  return undefined;
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === "object" && Object.keys(value).length === 0;
}

function firstDifference(want: unknown, have: unknown, path: string): string | undefined {
  if (want === undefined) return undefined;
  if (isEmpty(want) && isEmpty(have)) return undefined;
  if (Array.isArray(want)) {
    if (!Array.isArray(have)) return path;
    if (want.every((item) => typeof item !== "object" || item === null)) {
      return want.length === have.length && want.every((item, i) => item === have[i]) ? undefined : path;
    }
    const unused = new Set(have.map((_, i) => i));
    for (const [i, item] of want.entries()) {
      const match = [...unused].find((j) => firstDifference(item, have[j], "") === undefined);
      if (match === undefined) return `${path}[${i}]`;
      unused.delete(match);
    }
    return undefined;
  }
  if (typeof want === "object" && want !== null) {
    if (typeof have !== "object" || have === null || Array.isArray(have)) return path;
    for (const [key, value] of Object.entries(want)) {
      const diff = firstDifference(value, (have as Record<string, unknown>)[key], `${path}.${key}`);
      if (diff !== undefined) return diff;
    }
    return undefined;
  }
  return want === have ? undefined : path;
}
