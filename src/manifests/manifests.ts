// The install manifests (`berth manifests`, checked in as deploy/berth.yaml): a pure function of a few options,
// objects in a fixed order (kubectl apply creates them in file order, so the Namespace comes first and the
// Deployment after the identity it runs as), then YAML with comments that say why each setting is there.
import { DEFAULT_NAMESPACE, FINALIZER } from "../lib/names.js";
import { addressPoolCrd } from "./crd.js";
import { clusterRules, namespaceRules } from "./rbac.js";
import { speakerManifests } from "./speaker.js";
import { commentKeys, commented, toYamlStream } from "./yaml.js";

/** What `berth manifests` can change. */
export interface ManifestOptions {
  /** Namespace of the controller and of every per-Service DaemonSet (the controller's --namespace). */
  namespace: string;
  /** The controller's image. */
  image: string;
  /** The lb-pods' image, passed to the controller as --lb-image. */
  lbImage: string;
  /** Controller replicas (one leads, the others stand by). */
  replicas: number;
  /** berth's version (package.json), written in the header. */
  version: string;
}

/**
 * The name of the controller's ServiceAccount, roles, bindings, Deployment, PodDisruptionBudget and Lease. It is the
 * default of the controller's --lease-name (src/controller/command.ts; a unit test keeps the two equal), which the
 * Role grants get/update on by name.
 */
export const CONTROLLER = "berth-controller";
/** Name of the Service in front of the controllers' /metrics. */
export const METRICS_SERVICE = "berth-controller-metrics";
/** Port of /healthz, /readyz and /metrics (the controller's --listen). */
export const METRICS_PORT = 9090;
/** Where the images are published; the tag is berth's version, so the controller and lb-pod versions match. */
export const IMAGE_REPOSITORIES = {
  controller: "ghcr.io/berth-lb/berth-controller",
  lbPod: "ghcr.io/berth-lb/berth-lb-pod",
} as const;
/**
 * The non-root user the controller image runs as (images/controller/Dockerfile's USER) and the Deployment's
 * runAsUser; 65532 is the usual "nonroot" id of minimal images. Numeric, so the kubelet can verify runAsNonRoot.
 */
export const CONTROLLER_UID = 65532;

export function defaultManifestOptions(version: string): ManifestOptions {
  return {
    namespace: DEFAULT_NAMESPACE,
    image: `${IMAGE_REPOSITORIES.controller}:${version}`,
    lbImage: `${IMAGE_REPOSITORIES.lbPod}:${version}`,
    replicas: 2,
    version,
  };
}

/** A Kubernetes object as written: apiVersion, kind, metadata, then the kind's own fields. */
export type Manifest = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
};

const SELECTOR = { "app.kubernetes.io/name": "berth", "app.kubernetes.io/component": "controller" };

function labels(): Record<string, string> {
  return { ...SELECTOR };
}

function namespace(o: ManifestOptions): Manifest {
  const podSecurity = commentKeys({
    "app.kubernetes.io/name": "berth",
    "pod-security.kubernetes.io/enforce": "privileged",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/audit": "privileged",
    "pod-security.kubernetes.io/warn": "privileged",
  }, {
    "pod-security.kubernetes.io/enforce":
      "Pod Security Admission: the per-Service lb-pods the controller creates here need the \"privileged\" level.\n" +
      "They hold hostPorts, add NET_ADMIN and NET_RAW (netfilter rules, conntrack, iptables-legacy's raw socket) and\n" +
      "(for Services with IPv6) set the net.ipv6.conf.all.forwarding sysctl, and the \"baseline\" level forbids all three\n" +
      "(https://kubernetes.io/docs/concepts/security/pod-security-standards/). They are never privileged containers\n" +
      "and drop every other capability. The controller's own pods meet \"restricted\". Explicit labels also override a\n" +
      "stricter cluster-wide default (e.g. a CIS-hardened k3s/RKE2 AdmissionConfiguration). audit and warn are set to\n" +
      "the same level: otherwise every lb-pod DaemonSet the controller applies would be answered with warnings.",
  });
  return {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: o.namespace, labels: podSecurity },
  };
}

function serviceAccount(o: ManifestOptions): Manifest {
  return {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: CONTROLLER, namespace: o.namespace, labels: labels() },
  };
}

function subjects(o: ManifestOptions): Record<string, string>[] {
  return [{ kind: "ServiceAccount", name: CONTROLLER, namespace: o.namespace }];
}

function rbac(o: ManifestOptions): Manifest[] {
  return [
    commented(
      "What spans namespaces: the user's Services (read, finalizer, status, Events) and what decides where they are\n" +
      "served (Nodes, EndpointSlices). Everything berth creates is granted by the Role below, in its own namespace only.",
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: CONTROLLER, labels: labels() },
        rules: clusterRules(),
      },
    ),
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: CONTROLLER, labels: labels() },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: CONTROLLER },
      subjects: subjects(o),
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: CONTROLLER, namespace: o.namespace, labels: labels() },
      rules: namespaceRules(CONTROLLER),
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: CONTROLLER, namespace: o.namespace, labels: labels() },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: CONTROLLER },
      subjects: subjects(o),
    },
  ];
}

/** The controller's flags: everything that must agree with the rest of these manifests is passed explicitly. */
export function controllerArgs(o: ManifestOptions): string[] {
  return [
    "controller",
    `--namespace=${o.namespace}`,
    `--lb-image=${o.lbImage}`,
    // The pod name is what `kubectl get lease` then shows as the holder (the kubelet expands $(POD_NAME)).
    "--identity=$(POD_NAME)",
    `--listen=0.0.0.0:${METRICS_PORT}`,
  ];
}

function deployment(o: ManifestOptions): Manifest {
  const probe = (path: string, extra: Record<string, number>) => ({
    httpGet: { path, port: "metrics" },
    ...extra,
  });
  const container = commentKeys({
    name: "controller",
    image: o.image,
    imagePullPolicy: "IfNotPresent",
    args: commented(
      "Leader election is on by default (the Lease berth-controller in this namespace).\n" +
      "--lb-image is given explicitly so the lb-pods run the same berth version as the controller.",
      controllerArgs(o),
    ),
    env: [
      { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      commented(
        "A heap ceiling under the memory limit: V8 collects garbage before the kernel OOM-kills\n" +
        "the process, whether or not this Node version reads the container's limit itself; a\n" +
        "small young generation (4 MiB semi-spaces) keeps the resident size near the live heap.",
        { name: "NODE_OPTIONS", value: "--max-old-space-size=256 --max-semi-space-size=4" },
      ),
    ],
    ports: [{ name: "metrics", containerPort: METRICS_PORT, protocol: "TCP" }],
    livenessProbe: commented(
      "/healthz only says the event loop answers: an unreachable API server is retried,\n" +
      "not restarted.",
      probe("/healthz", { initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 }),
    ),
    readinessProbe: commented(
      "/readyz: the caches have synced. Followers are ready too (ready to take over),\n" +
      "so rollouts and the PodDisruptionBudget count them.",
      probe("/readyz", { periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 }),
    ),
    resources: {
      requests: { cpu: "50m", memory: "128Mi" },
      limits: { memory: "384Mi" },
    },
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
    },
  }, {
    resources:
      "From bench/controller (bench/README.md): with 1000 Services on 100 nodes (100,000\n" +
      "lb-pods) the controller held ~100 MiB of live heap and peaked at 260-280 MiB resident\n" +
      "through a full relist; the heap ceiling and this limit are those with margin. Raise both for\n" +
      "far more lb-pods. No CPU limit: an idle controller uses almost none, and CFS throttling\n" +
      "would only delay reconciles during a burst.",
    securityContext:
      "Pod Security \"restricted\": the controller only talks HTTPS to the API server and\n" +
      "serves :9090; it writes no file and needs no capability.",
  });
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: CONTROLLER, namespace: o.namespace, labels: labels() },
    spec: commentKeys({
      replicas: o.replicas,
      selector: { matchLabels: { ...SELECTOR } },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: labels() },
        spec: {
          serviceAccountName: CONTROLLER,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: CONTROLLER_UID,
            runAsGroup: CONTROLLER_UID,
            seccompProfile: { type: "RuntimeDefault" },
          },
          affinity: commented(
            "Spread the replicas over nodes when possible: one node going down never takes them all.",
            {
              podAntiAffinity: {
                preferredDuringSchedulingIgnoredDuringExecution: [{
                  weight: 100,
                  podAffinityTerm: { labelSelector: { matchLabels: { ...SELECTOR } }, topologyKey: "kubernetes.io/hostname" },
                }],
              },
            },
          ),
          containers: [container],
        },
      },
    }, {
      replicas: "One replica leads and writes; the others keep synced caches and take over within the\n" +
        "lease duration (15 s).",
    }),
  };
}

function podDisruptionBudget(o: ManifestOptions): Manifest {
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: { name: CONTROLLER, namespace: o.namespace, labels: labels() },
    spec: { minAvailable: 1, selector: { matchLabels: { ...SELECTOR } } },
  };
}

function metricsService(o: ManifestOptions): Manifest {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: METRICS_SERVICE, namespace: o.namespace, labels: labels() },
    spec: {
      type: "ClusterIP",
      selector: { ...SELECTOR },
      ports: [{ name: "metrics", port: METRICS_PORT, targetPort: "metrics", protocol: "TCP" }],
    },
  };
}

/** Every object of the install, in apply order. */
export function buildManifests(o: ManifestOptions): Manifest[] {
  // The CRD before the controller: its informer on AddressPools lists them from the start.
  const docs = [namespace(o), addressPoolCrd(labels()), serviceAccount(o), ...rbac(o), deployment(o)];
  // With one replica a minAvailable: 1 budget could never be met during a drain: `kubectl drain` would wait forever.
  if (o.replicas >= 2) docs.push(podDisruptionBudget(o));
  docs.push(metricsService(o));
  // VIP mode's speaker (src/manifests/speaker.ts): its own identity, read-only role and host-network DaemonSet.
  docs.push(...speakerManifests(o));
  return docs;
}

/** The whole install as one YAML stream, with a header saying what made it. */
export function renderManifests(o: ManifestOptions): string {
  const header =
    `berth ${o.version}: install manifests (hostPort and VIP mode's controller), generated by \`berth manifests\`.\n` +
    "Apply with: kubectl apply -f berth.yaml\n" +
    "Regenerate instead of editing: berth manifests [--namespace NS] [--image IMG] [--lb-image IMG] [--replicas N]\n" +
    `Uninstall: delete your LoadBalancer Services (or set another type) while the controller still runs, so it removes\n` +
    `its ${FINALIZER} finalizer; a Service deleted once the controller is gone waits on that finalizer.`;
  return toYamlStream(buildManifests(o), header);
}
