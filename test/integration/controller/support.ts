// Shared fixtures for the controller integration tests: a sandbox API server over HTTP, the fake kubelet, literal
// Node/Service builders, and polling waits (no fixed sleeps: every wait ends as soon as its condition holds).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApiServer, type ApiServerHandle } from "../../../src/sandbox/apiserver/index.js";
import { writeKubeconfig } from "../../../src/sandbox/kubeconfig.js";
import { Client } from "../../sandbox/apiserver-client.js";
import { FakeKubelet, type FakeKubeletOptions } from "../../support/kubelet.js";
import { Controller, leaseLeadership, type ControllerOptions } from "../../../src/controller/controller.js";
import { defaultControllerConfig } from "../../../src/controller/types.js";
import type { StatusPacing } from "../../../src/controller/reconcile.js";
import { KubeClient } from "../../../src/lib/kube/client.js";
import { addressPoolCrd } from "../../../src/manifests/crd.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export const NS = "berth-system";

export interface Env {
  server: ApiServerHandle;
  client: Client;
  kubelet: FakeKubelet;
  kubeconfig: string;
  close(): Promise<void>;
}

/** A server with the controller's namespace, a kubeconfig for it, and a started fake kubelet. */
export async function startEnv(options: { readyByDefault?: boolean; bindDelayMs?: number; clientLimits?: FakeKubeletOptions["clientLimits"] } = {}): Promise<Env> {
  const server = await startApiServer({ port: 0 });
  const client = new Client(server);
  const created = await client.post("/api/v1/namespaces", { metadata: { name: NS } });
  if (created.status !== 201) throw new Error(`cannot create ${NS}: ${created.text}`);
  // The AddressPool CRD, as deploy/berth.yaml installs it beside the controller.
  const crd = await client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", JSON.parse(JSON.stringify(addressPoolCrd({}))));
  if (crd.status !== 201) throw new Error(`cannot create the AddressPool CRD: ${crd.text}`);
  const dir = mkdtempSync(join(tmpdir(), "berth-ctl-test-"));
  const kubeconfig = join(dir, "kubeconfig");
  writeKubeconfig(kubeconfig, { server: server.url, token: server.token });
  const kubelet = new FakeKubelet({
    server: server.url, token: server.token, namespace: NS, readyByDefault: options.readyByDefault ?? true,
    ...(options.bindDelayMs !== undefined ? { bindDelayMs: options.bindDelayMs } : {}),
    ...(options.clientLimits !== undefined ? { clientLimits: options.clientLimits } : {}),
  });
  await kubelet.start();
  return {
    server, client, kubelet, kubeconfig,
    async close() {
      kubelet.stop();
      client.closeWatches();
      server.faults.clear();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface NodeSpec {
  labels?: Record<string, string>;
  internalIp?: string;
  externalIp?: string;
  /** Extra addresses, e.g. a second family. */
  addresses?: { type: string; address: string }[];
  taints?: Obj[];
  ready?: boolean;
}

export function node(name: string, spec: NodeSpec = {}): Obj {
  const addresses = [
    ...(spec.internalIp ? [{ type: "InternalIP", address: spec.internalIp }] : []),
    ...(spec.externalIp ? [{ type: "ExternalIP", address: spec.externalIp }] : []),
    ...(spec.addresses ?? []),
    { type: "Hostname", address: name },
  ];
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", ...(spec.labels ?? {}) } },
    spec: { ...(spec.taints ? { taints: spec.taints } : {}) },
    status: {
      addresses,
      conditions: [{ type: "Ready", status: spec.ready === false ? "False" : "True", reason: "KubeletReady", message: "kubelet is posting ready status" }],
    },
  };
}

export interface ServiceSpec {
  ports?: { port: number; protocol?: string; name?: string; nodePort?: number }[];
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  type?: string;
  loadBalancerClass?: string;
  externalTrafficPolicy?: "Cluster" | "Local";
  ipFamilies?: string[];
  ipFamilyPolicy?: string;
  selector?: Record<string, string>;
}

export function service(name: string, spec: ServiceSpec = {}): Obj {
  const ports = (spec.ports ?? [{ port: 80 }]).map((p, i) => ({
    name: p.name ?? `p${i}`, port: p.port, protocol: p.protocol ?? "TCP", targetPort: p.port,
    ...(p.nodePort ? { nodePort: p.nodePort } : {}),
  }));
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, ...(spec.annotations ? { annotations: spec.annotations } : {}), ...(spec.labels ? { labels: spec.labels } : {}) },
    spec: {
      type: spec.type ?? "LoadBalancer",
      ports,
      selector: spec.selector ?? { app: name },
      ...(spec.loadBalancerClass ? { loadBalancerClass: spec.loadBalancerClass } : {}),
      ...(spec.externalTrafficPolicy ? { externalTrafficPolicy: spec.externalTrafficPolicy } : {}),
      ...(spec.ipFamilies ? { ipFamilies: spec.ipFamilies } : {}),
      ...(spec.ipFamilyPolicy ? { ipFamilyPolicy: spec.ipFamilyPolicy } : {}),
    },
  };
}

/** Creates an object and fails loudly with the server's message. */
export async function create(client: Client, path: string, body: Obj): Promise<Obj> {
  const res = await client.post(path, body);
  if (res.status !== 201) throw new Error(`POST ${path} -> ${res.status}: ${res.text}`);
  return res.body as Obj;
}

export async function getObj(client: Client, path: string): Promise<Obj | undefined> {
  const res = await client.get(path);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`GET ${path} -> ${res.status}: ${res.text}`);
  return res.body as Obj;
}

export async function mergePatch(client: Client, path: string, body: Obj): Promise<Obj> {
  const res = await client.patch(path, "application/merge-patch+json", body);
  if (res.status !== 200) throw new Error(`PATCH ${path} -> ${res.status}: ${res.text}`);
  return res.body as Obj;
}

export const svcPath = (name: string, ns = "default"): string => `/api/v1/namespaces/${ns}/services/${name}`;
export const dsPath = (name?: string): string => `/apis/apps/v1/namespaces/${NS}/daemonsets${name ? `/${name}` : ""}`;
export const nodePath = (name?: string): string => `/api/v1/nodes${name ? `/${name}` : ""}`;

/**
 * Polls `probe` until it returns something other than undefined/false, or fails with the last observation so a
 * failed wait says what it saw.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 8000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (err) {
      last = err instanceof Error ? err.message : err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last saw: ${JSON.stringify(last)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The DaemonSets in the controller's namespace that belong to a Service (by berth's labels). */
export async function daemonSetsFor(client: Client, name: string, ns = "default"): Promise<Obj[]> {
  const sel = encodeURIComponent(`berth.dev/service-name=${name},berth.dev/service-namespace=${ns}`);
  const res = await client.get(`${dsPath()}?labelSelector=${sel}`);
  return (res.body?.items ?? []) as Obj[];
}

export function ingressIps(svc: Obj | undefined): string[] {
  return ((svc?.status?.loadBalancer?.ingress ?? []) as Obj[]).map((i) => i.ip as string);
}

export function condition(svc: Obj | undefined, type: string): Obj | undefined {
  return ((svc?.status?.conditions ?? []) as Obj[]).find((c) => c.type === type);
}

/** Events about one object (core/v1), newest last. */
export async function eventsFor(client: Client, name: string, ns = "default"): Promise<Obj[]> {
  const sel = encodeURIComponent(`involvedObject.name=${name}`);
  const res = await client.get(`/api/v1/namespaces/${ns}/events?fieldSelector=${sel}`);
  return (res.body?.items ?? []) as Obj[];
}

/** Waits until the Service's ingress IPs equal `ips` (order included). */
export async function waitForIngress(client: Client, name: string, ips: string[], timeoutMs = 8000, ns = "default"): Promise<Obj> {
  return waitFor(`ingress of ${ns}/${name} = ${JSON.stringify(ips)}`, async () => {
    const svc = await getObj(client, svcPath(name, ns));
    return JSON.stringify(ingressIps(svc)) === JSON.stringify(ips) ? svc : undefined;
  }, timeoutMs);
}

/**
 * Changes a Node by read-modify-write (GET + PUT with its resourceVersion, retried on 409), as the kubelet and
 * `kubectl label` (older) do; the node status updates a kubelet sends are PUTs too.
 */
export async function updateNode(client: Client, name: string, mutate: (n: Obj) => void, subresource = ""): Promise<Obj> {
  for (let attempt = 0; ; attempt++) {
    const current = await getObj(client, nodePath(name));
    if (!current) throw new Error(`node ${name} not found`);
    mutate(current);
    const res = await client.put(`${nodePath(name)}${subresource ? `/${subresource}` : ""}`, current);
    if (res.status === 200) return res.body as Obj;
    if (res.status !== 409 || attempt > 20) throw new Error(`PUT node ${name} -> ${res.status}: ${res.text}`);
  }
}

export function setNodeReady(n: Obj, ready: boolean): void {
  n.status.conditions = [{ type: "Ready", status: ready ? "True" : "False", reason: ready ? "KubeletReady" : "KubeletNotReady" }];
}

export interface ApiCall {
  verb: string;
  resource: string;
  code: string;
}

export interface TestController {
  controller: Controller;
  client: KubeClient;
  /** Every API request this controller made (verb as kube counts it, resource with subresource, HTTP code). */
  calls: ApiCall[];
  /** Writes other than leader election (the ones only a leader may make). */
  writes(): ApiCall[];
  stop(opts?: { release?: boolean }): Promise<void>;
}

const WRITE_VERBS = new Set(["create", "update", "patch", "apply", "delete", "deletecollection"]);

/**
 * A controller in this process, talking HTTP to the env's server, with test-short timings. With `identity`, it
 * elects on the Lease berth-controller (2 s lease, 1 s renew deadline, 200 ms retry).
 */
/**
 * Tests make changes seconds apart, which the default status pacing (250 ms tripling to 2 min) would treat as one
 * long burst; a short pacing keeps them quick. The pacing test passes the defaults ({}).
 */
export const TEST_PACING: StatusPacing = { baseMs: 50, factor: 2, maxMs: 400, quietMs: 500 };

export async function startController(env: Env, opts: {
  claimUnsetClass?: boolean; resyncMs?: number; identity?: string; workers?: number; statusPacing?: StatusPacing;
  /** ControllerOptions.rulesOrphanGraceMs (default: the controller's 10 minutes). */
  rulesOrphanGraceMs?: number;
  /** Called after every processed key (ControllerOptions.onReconcile). */
  onReconcile?: ControllerOptions["onReconcile"];
  /** The controller's Prometheus metrics (its client's requests are counted in `calls` instead). */
  metrics?: ControllerOptions["metrics"];
} = {}): Promise<TestController> {
  const calls: ApiCall[] = [];
  const client = new KubeClient({
    server: env.server.url,
    authHeaders: () => ({ Authorization: `Bearer ${env.server.token}` }),
    metrics: { apiRequest: (verb, resource, code) => calls.push({ verb, resource, code }) },
  });
  const leadership = opts.identity !== undefined
    ? leaseLeadership({ client, namespace: NS, name: "berth-controller", identity: opts.identity, leaseDurationSeconds: 2, renewDeadlineMs: 1000, retryPeriodMs: 200 })
    : undefined;
  const controller = new Controller({
    client,
    config: defaultControllerConfig({ namespace: NS, lbPodImage: "berth:test", claimUnsetClass: opts.claimUnsetClass ?? true }),
    resyncMs: opts.resyncMs ?? 2000,
    workers: opts.workers ?? 2,
    informer: { backoff: { baseMs: 20, maxMs: 200, factor: 2, jitter: 0.2 }, relistIntervalMs: 0 },
    queueBackoff: { baseMs: 10, maxMs: 300, factor: 2 },
    statusPacing: opts.statusPacing ?? TEST_PACING,
    ...(leadership ? { leadership } : {}),
    ...(opts.onReconcile ? { onReconcile: opts.onReconcile } : {}),
    ...(opts.rulesOrphanGraceMs !== undefined ? { rulesOrphanGraceMs: opts.rulesOrphanGraceMs } : {}),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  });
  await controller.start();
  return {
    controller, client, calls,
    writes: () => calls.filter((c) => WRITE_VERBS.has(c.verb) && !c.resource.startsWith("leases")),
    async stop(stopOpts = {}) {
      if (stopOpts.release === false) await leadership?.elector.stop({ release: false });
      await controller.stop();
      client.close();
    },
  };
}
