// `berth sandbox up --demo`: a DaemonSet of the demo app (one pod per node) behind two LoadBalancer Services on the
// same port, one per mode: `berth-demo` in hostPort mode (EXTERNAL-IP = the nodes' LAN addresses) and
// `berth-demo-vip` in VIP mode (an address of its own from the sandbox's pool, address-pool.ts, announced by one
// node's speaker). Then proof that both work: the real kubectl's `get svc -o wide` (the addresses set by the real
// controller) and one request to every EXTERNAL-IP from the client namespace, which is outside the cluster.
//
// The Service uses externalTrafficPolicy: Local so each answer comes from the pod on the node that was asked and the
// app sees the client's own address (198.18.0.100), which is what a newcomer wants to see; with Cluster the lb-pod
// masquerades and kube-proxy picks any pod.
import { runChecked, type CommandRunner } from "../../lib/exec.js";
import { Resources, type KubeClient, type KubeObject } from "../../lib/kube/client.js";
import type { SandboxLayout } from "./layout.js";
import { SANDBOX_DEMO_IMAGE } from "./images.js";
import { SANDBOX_POOL } from "./address-pool.js";
import type { SandboxOptions } from "./state.js";
import { FORWARDING_SYSCTLS } from "../../controller/daemonset.js";

export const DEMO_NAME = "berth-demo";
/** The demo's VIP-mode Service: same pods, same port, its own address. */
export const DEMO_VIP_NAME = "berth-demo-vip";
export const DEMO_NAMESPACE = "default";
export const DEMO_PORT = 80;
export const DEMO_APP_PORT = 8080;

/** The demo's DaemonSet, its hostPort-mode Service and its VIP-mode Service. */
export function demoObjects(dualStack: boolean): { daemonSet: KubeObject; service: KubeObject; vipService: KubeObject } {
  const labels = { app: DEMO_NAME };
  const daemonSet = {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: DEMO_NAME, namespace: DEMO_NAMESPACE, labels },
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          containers: [{
            name: "demo",
            image: SANDBOX_DEMO_IMAGE,
            args: ["--port", String(DEMO_APP_PORT)],
            env: [
              { name: "POD_NAME", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "metadata.name" } } },
              { name: "NODE_NAME", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "spec.nodeName" } } },
            ],
            ports: [{ name: "http", containerPort: DEMO_APP_PORT, protocol: "TCP" }],
            // A real HTTP request to the app (the kubelet stand-in sends it inside the pod's network namespace): the
            // endpoint turns ready only once the app answers. Timeout 5 s: a 2-core machine starting every pod's
            // Node.js at once can take seconds to answer the first one.
            readinessProbe: { httpGet: { path: "/", port: "http" }, periodSeconds: 5, timeoutSeconds: 5 },
          }],
        },
      },
    },
  };
  const service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: DEMO_NAME, namespace: DEMO_NAMESPACE, labels },
    spec: {
      type: "LoadBalancer",
      selector: labels,
      externalTrafficPolicy: "Local",
      ...(dualStack ? { ipFamilyPolicy: "PreferDualStack", ipFamilies: ["IPv4", "IPv6"] } : {}),
      ports: [{ name: "http", port: DEMO_PORT, targetPort: "http", protocol: "TCP" }],
    },
  };
  // VIP mode: only the annotation differs. Local as above, so the answer names the pod on the announcing node (the
  // speaker elects only nodes with a ready endpoint) and the client's own address; port 80 like the hostPort
  // Service, which VIP mode allows because each Service has an address of its own.
  const vipService = {
    ...service,
    metadata: { name: DEMO_VIP_NAME, namespace: DEMO_NAMESPACE, labels, annotations: { "berth.dev/mode": "vip" } },
  };
  return { daemonSet, service, vipService };
}

/**
 * The sandbox options `up --demo` runs with. With --dual-stack the hostPort Service's lb-pods ask for IPv6
 * forwarding, which a kubelet (and the sandbox's, as a stock one) refuses unless told to allow it: the demo tells
 * its kubelets, as the install docs tell a dual-stack cluster's, and says so (`note`) instead of failing after 90 s.
 */
export function demoSandboxOptions(options: SandboxOptions, demo: boolean): { options: SandboxOptions; note?: string } {
  const sysctl = FORWARDING_SYSCTLS.ipv6;
  const allowed = options.allowedUnsafeSysctls ?? [];
  const covered = allowed.some((p) => p === sysctl || (p.endsWith("*") && sysctl.startsWith(p.slice(0, -1))));
  if (!demo || !options.dualStack || covered) return { options };
  return {
    options: { ...options, allowedUnsafeSysctls: [...allowed, sysctl] },
    note: `demo: --dual-stack: the kubelets allow ${sysctl} (what the dual-stack lb-pods ask for; a dual-stack cluster's kubelets need --allowed-unsafe-sysctls=${sysctl} too)`,
  };
}

/** Every LAN address of every node: the EXTERNAL-IPs the demo Service should end up with. */
export function expectedIngressIps(layout: SandboxLayout): string[] {
  return layout.nodes.flatMap((n) => n.lanIps);
}

/** `http://198.18.0.11:80`, `http://[fd42:b5e7:7a00::b]:80`. */
export function demoUrl(ip: string, port = DEMO_PORT): string {
  return ip.includes(":") ? `http://[${ip}]:${port}` : `http://${ip}:${port}`;
}

/** IPs in status.loadBalancer.ingress of a Service. */
export function ingressIps(service: KubeObject): string[] {
  const ingress = ((service as { status?: { loadBalancer?: { ingress?: { ip?: string }[] } } }).status?.loadBalancer?.ingress ?? []);
  return ingress.map((i) => i.ip).filter((ip): ip is string => typeof ip === "string");
}

/** Why the Service is not serving yet, from its berth.dev/LoadBalancerReady condition (one line). */
function readinessMessage(service: KubeObject | undefined): string {
  const conditions = ((service as { status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] } } | undefined)?.status?.conditions ?? []);
  const ready = conditions.find((c) => c.type === "berth.dev/LoadBalancerReady");
  if (ready === undefined) return "the controller has not reported on it";
  return `${ready.reason ?? ready.status}: ${ready.message ?? ""}`.trim();
}

export async function deployDemo(client: KubeClient, dualStack: boolean): Promise<void> {
  const { daemonSet, service, vipService } = demoObjects(dualStack);
  await client.create(Resources.daemonSets, daemonSet);
  await client.create(Resources.services, service);
  await client.create(Resources.services, vipService);
}

/** Waits until the Service lists every node's address; throws a one-line reason after timeoutMs. */
export async function waitForIngress(client: KubeClient, expected: readonly string[], timeoutMs: number, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<string[]> {
  return waitForService(client, DEMO_NAME, (ips) => expected.every((ip) => ips.includes(ip)), `expected [${expected.join(", ")}]`, timeoutMs, sleep);
}

/**
 * Waits until the VIP Service has one address per family of the sandbox's pool (the pool has both families only
 * with --dual-stack); throws a one-line reason after timeoutMs.
 */
export async function waitForVipIngress(client: KubeClient, dualStack: boolean, timeoutMs: number, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<string[]> {
  const want = dualStack ? 2 : 1;
  return waitForService(client, DEMO_VIP_NAME, (ips) => ips.length === want, `expected ${want} address${want > 1 ? "es" : ""} from the AddressPool ${SANDBOX_POOL}`, timeoutMs, sleep);
}

async function waitForService(client: KubeClient, name: string, done: (ips: string[]) => boolean, expected: string, timeoutMs: number, sleep: (ms: number) => Promise<unknown>): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let last: KubeObject | undefined;
  for (;;) {
    last = await client.get(Resources.services, name, { namespace: DEMO_NAMESPACE });
    const ips = ingressIps(last);
    if (done(ips)) return ips;
    if (Date.now() > deadline) {
      throw new Error(`the demo Service ${name} has EXTERNAL-IP [${ips.join(", ")}] after ${Math.round(timeoutMs / 1000)} s, ${expected}: ${readinessMessage(last)}`);
    }
    await sleep(250);
  }
}

/**
 * One request per URL from the client namespace, through `berth sandbox http-get` run there (a process is the only
 * way into another network namespace). Returns one line per URL, in order.
 */
export async function fetchFromClient(o: { runner: CommandRunner; clientNs: string; nodeBinary: string; cli: string; urls: string[]; retryForMs: number }): Promise<string[]> {
  const result = await runChecked(o.runner, o.nodeBinary, [o.cli, "sandbox", "http-get", "--retry-for", String(o.retryForMs), ...o.urls], { netns: o.clientNs, timeoutMs: o.retryForMs + 15_000 }, [0, 1]);
  return result.stdout.split("\n").filter((line) => line.trim() !== "");
}

/** The closing hints, one line each. */
/**
 * The quick start `sandbox up` prints: any guide's first kubectl commands (a Deployment of nginx behind a
 * LoadBalancer Service), then a request from outside the cluster to one EXTERNAL-IP.
 */
export function quickStart(o: { prefix: string; defaultPrefix: boolean; clientNs: string; firstNodeIp: string }): string[] {
  const flag = o.defaultPrefix ? "" : ` --prefix ${o.prefix}`;
  const host = o.firstNodeIp.includes(":") ? `[${o.firstNodeIp}]` : o.firstNodeIp;
  return [
    "quick start (the kubectl commands of any guide work here; docs/sandbox.md, \"Your own app\"):",
    `  export KUBECONFIG=$(bin/berth sandbox kubeconfig${flag})`,
    "  kubectl create deployment web --image=nginx --replicas=3 --port=80",
    "  kubectl expose deployment web --type=LoadBalancer --port=8080 --target-port=80",
    "  kubectl rollout status deployment/web && kubectl get svc web",
    `  ip netns exec ${o.clientNs} bin/berth sandbox http-get --retry-for 30000 http://${host}:8080   # from outside the cluster`,
    `  bin/berth sandbox down${flag}`,
  ];
}

export function nextSteps(o: { prefix: string; defaultPrefix: boolean; clientNs: string; firstUrl: string }): string[] {
  const flag = o.defaultPrefix ? "" : ` --prefix ${o.prefix}`;
  return [
    `next: export KUBECONFIG=$(bin/berth sandbox kubeconfig${flag}); kubectl get pods -A -o wide`,
    `next: ip netns exec ${o.clientNs} bin/berth sandbox http-get ${o.firstUrl}   # a request from outside the cluster (curl works too)`,
    `next: bin/berth sandbox down${flag}   # removes every namespace, rule and process it made`,
  ];
}
