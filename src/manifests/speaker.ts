// The VIP-mode speaker's part of the install: its ServiceAccount, read-only ClusterRole (plus Events), binding and
// DaemonSet. Kept apart from manifests.ts (the controller's objects) so each role's install reads on its own;
// buildManifests() appends these. Why a host-network DaemonSet with NET_ADMIN + NET_RAW and nothing else:
// docs/design/0015-how-the-speaker-announces.md.
import type { ManifestOptions, Manifest } from "./manifests.js";
import type { PolicyRule } from "./rbac.js";
import { commentKeys, commented } from "./yaml.js";

export const SPEAKER = "berth-speaker";
/** UDP port of the heartbeats between speakers (the speaker's --port default). */
export const SPEAKER_HEARTBEAT_PORT = 7946;
/** Port of the speaker's /healthz, /readyz and /metrics (its --listen default). */
export const SPEAKER_METRICS_PORT = 7473;

const SELECTOR = { "app.kubernetes.io/name": "berth", "app.kubernetes.io/component": "speaker" };

/** What the speaker reads (to elect and announce) and writes (Events on the Services it announces). Nothing else. */
export function speakerRules(): PolicyRule[] {
  return [
    { apiGroups: [""], resources: ["services", "nodes"], verbs: ["get", "list", "watch"] },
    { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["get", "list", "watch"] },
    { apiGroups: ["berth.dev"], resources: ["addresspools"], verbs: ["get", "list", "watch"] },
    { apiGroups: [""], resources: ["events"], verbs: ["create"] },
  ];
}

/** The speaker's flags: what must agree with these manifests is passed explicitly. */
export function speakerArgs(): string[] {
  return ["speaker", "--node-name=$(NODE_NAME)", `--port=${SPEAKER_HEARTBEAT_PORT}`, `--listen=0.0.0.0:${SPEAKER_METRICS_PORT}`];
}

export function speakerManifests(o: ManifestOptions): Manifest[] {
  const labels = { ...SELECTOR };
  const probe = (path: string, extra: Record<string, number>) => ({ httpGet: { path, port: "speaker-metrics" }, ...extra });
  const container = commentKeys({
    name: "speaker",
    image: o.image,
    imagePullPolicy: "IfNotPresent",
    args: speakerArgs(),
    env: [{ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }],
    ports: [
      { name: "heartbeat", containerPort: SPEAKER_HEARTBEAT_PORT, protocol: "UDP" },
      { name: "speaker-metrics", containerPort: SPEAKER_METRICS_PORT, protocol: "TCP" },
    ],
    livenessProbe: probe("/healthz", { initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 }),
    readinessProbe: probe("/readyz", { periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 }),
    resources: { requests: { cpu: "20m", memory: "64Mi" }, limits: { memory: "256Mi" } },
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsUser: 0,
      capabilities: { drop: ["ALL"], add: ["NET_ADMIN", "NET_RAW"] },
    },
  }, {
    securityContext:
      "NET_ADMIN adds and removes the VIP on the node's interface; NET_RAW sends gratuitous ARP and\n" +
      "unsolicited NA. Root (uid 0) because a container's capabilities reach a non-root process only as\n" +
      "ambient capabilities, which Kubernetes does not set; every other capability is dropped.",
  });
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: SPEAKER, namespace: o.namespace, labels } },
    commented(
      "The speaker reads what decides who announces which VIP, and writes only Events on those Services.",
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: SPEAKER, labels }, rules: speakerRules() },
    ),
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: SPEAKER, labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: SPEAKER },
      subjects: [{ kind: "ServiceAccount", name: SPEAKER, namespace: o.namespace }],
    },
    {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: { name: SPEAKER, namespace: o.namespace, labels },
      spec: {
        selector: { matchLabels: { ...SELECTOR } },
        updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
        template: {
          metadata: { labels },
          spec: commentKeys({
            serviceAccountName: SPEAKER,
            hostNetwork: true,
            dnsPolicy: "ClusterFirstWithHostNet",
            terminationGracePeriodSeconds: 10,
            tolerations: [{ operator: "Exists" }],
            containers: [container],
          }, {
            hostNetwork: "The VIP goes on the node's own interface, and heartbeats go between node IPs.",
            terminationGracePeriodSeconds: "SIGTERM hands every VIP to a peer (within --handover-timeout, 1 s) before withdrawing.",
            tolerations: "On every node: a node's speaker must run wherever a pool may announce, control planes included;\n" +
              "nodes excluded from load balancers still run one and are simply never elected.",
          }),
        },
      },
    },
  ];
}
