// Entry point of the sandbox's in-memory Kubernetes API server (a test and demo server, not a production one):
// one call gives a listening server, its bearer token, the fault switches and the store behind it.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Faults } from "./faults.js";
import { applyPatch, recordUpdateManagedFields } from "./patch.js";
import { ResourceRegistry } from "./resources.js";
import { RequestLog } from "./request-log.js";
import { ApiServer } from "./server.js";
import { applyServiceDefaults, ServiceAllocator } from "./services.js";
import { Store, type StoreHooks } from "./store.js";
import { decodeTyped, loadTypeCatalog } from "./typed.js";
import { validateObject } from "./validation.js";

export interface ApiServerOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  /** Bearer token clients must send; a random one by default. */
  token?: string;
  serviceCidrs?: { ipv4?: string; ipv6?: string };
  /** Watch events kept per resource; a watch or continue from an older resourceVersion gets 410 Gone. */
  historyLimit?: number;
  /** Interval of BOOKMARK events on watches that allow them (default 60 s, like kube-apiserver). */
  bookmarkIntervalMs?: number;
  /** A watch whose client stops reading is closed once this much output waits for it (default 8 MiB). */
  maxWatchBufferBytes?: number;
  /** Bound pods linger after DELETE until gracePeriodSeconds=0 confirms them (default true, as on a real cluster). */
  podGracefulDeletion?: boolean;
  clock?: () => Date;
  /**
   * Serve HTTPS with a fresh self-signed certificate (made with the openssl CLI). kubectl's clientcmd sends a
   * kubeconfig's bearer token only over TLS, so the CLI uses this; in-process tests can stay on plain HTTP.
   */
  tls?: boolean;
  /** The sandbox kubelet's container log directory, served as `pods/<name>/log` (`kubectl logs`). */
  podLogDir?: string;
}

export interface ApiServerHandle {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  token: string;
  /** PEM certificate to trust (kubeconfig certificate-authority-data), when serving TLS. */
  caCert?: string;
  faults: Faults;
  store: Store;
  /** Every request the server received, as its own log records it (src/sandbox/apiserver/request-log.ts). */
  requestLog: RequestLog;
  close(): Promise<void>;
}

/** Namespaces every cluster has from the start. */
const INITIAL_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"];

export async function startApiServer(options: ApiServerOptions = {}): Promise<ApiServerHandle> {
  const host = options.host ?? "127.0.0.1";
  const token = options.token ?? randomBytes(16).toString("hex");
  const registry = new ResourceRegistry();
  const services = new ServiceAllocator({ serviceCidrs: options.serviceCidrs ?? {} });
  const types = await loadTypeCatalog();
  const hooks: StoreHooks = {
    validate: validateObject,
    services: {
      prepareCreate: (svc) => services.prepareCreate(svc),
      prepareUpdate: (old, next) => services.prepareUpdate(old, next),
      prepareStatus: (old, next) => services.prepareStatus(old, next),
      revertUpdate: (old, prepared) => services.revertUpdate(old, prepared),
      release: (svc) => services.release(svc),
      applyDefaults: applyServiceDefaults,
    },
    applyPatch,
    recordUpdate: recordUpdateManagedFields,
    decode: (def, obj) => decodeTyped(types, def, obj),
  };
  const store = new Store({
    registry,
    hooks,
    ...(options.historyLimit !== undefined ? { historyLimit: options.historyLimit } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.podGracefulDeletion !== undefined ? { podGracefulDeletion: options.podGracefulDeletion } : {}),
  });
  const namespaces = store.resourceFor("v1", "Namespace");
  for (const name of INITIAL_NAMESPACES) store.create(namespaces, undefined, { metadata: { name } });
  const faults = new Faults();
  const tls = options.tls ? await selfSignedCertificate(host) : undefined;
  const server = new ApiServer({
    store,
    faults,
    token,
    ...(tls ? { tls } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.bookmarkIntervalMs !== undefined ? { bookmarkIntervalMs: options.bookmarkIntervalMs } : {}),
    ...(options.maxWatchBufferBytes !== undefined ? { maxWatchBufferBytes: options.maxWatchBufferBytes } : {}),
    ...(options.podLogDir !== undefined ? { podLogDir: options.podLogDir } : {}),
  });
  const port = await server.listen(options.port ?? 0, host);
  createKubernetesService(store, services.serviceCidrs[0], host, port);
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `${tls ? "https" : "http"}://${urlHost}:${port}`,
    port,
    token,
    ...(tls ? { caCert: tls.cert } : {}),
    faults,
    store,
    requestLog: server.requestLog,
    close: () => server.close(),
  };
}

/**
 * The `kubernetes` Service in `default`, which every cluster has: the first address of the primary service CIDR,
 * port 443 (https) to the API server, with its EndpointSlice, as kube-apiserver's bootstrap controller keeps them.
 */
function createKubernetesService(store: Store, cidr: string | undefined, host: string, port: number): void {
  const first = cidr ? firstAddress(cidr) : undefined;
  const svc = store.resourceFor("v1", "Service");
  store.create(svc, "default", {
    metadata: { name: "kubernetes", labels: { component: "apiserver", provider: "kubernetes" } },
    spec: {
      type: "ClusterIP",
      ...(first ? { clusterIP: first, clusterIPs: [first] } : {}),
      ports: [{ name: "https", port: 443, protocol: "TCP", targetPort: port }],
      sessionAffinity: "None",
    },
  }, { fieldManager: "kube-apiserver" });
  const address = isIP(host) ? host : "127.0.0.1";
  const endpoints = store.resourceFor("v1", "Endpoints");
  store.create(endpoints, "default", {
    metadata: { name: "kubernetes", labels: { "endpointslice.kubernetes.io/skip-mirror": "true" } },
    subsets: [{ addresses: [{ ip: address }], ports: [{ name: "https", port, protocol: "TCP" }] }],
  }, { fieldManager: "kube-apiserver" });
  const slice = store.resourceFor("discovery.k8s.io/v1", "EndpointSlice");
  store.create(slice, "default", {
    metadata: { name: "kubernetes", labels: { "kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io" } },
    addressType: isIP(host) === 6 ? "IPv6" : "IPv4",
    endpoints: [{ addresses: [address], conditions: { ready: true } }],
    ports: [{ name: "https", port, protocol: "TCP" }],
  }, { fieldManager: "kube-apiserver" });
}

/** The first usable address of a CIDR (network address + 1), for IPv4 and IPv6. */
function firstAddress(cidr: string): string | undefined {
  const [addr] = cidr.split("/");
  if (!addr) return undefined;
  if (isIP(addr) === 4) {
    const parts = addr.split(".").map(Number);
    const n = ((parts[0] ?? 0) * 2 ** 24 + (parts[1] ?? 0) * 2 ** 16 + (parts[2] ?? 0) * 2 ** 8 + (parts[3] ?? 0)) + 1;
    return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
  }
  if (isIP(addr) === 6) {
    const expanded = new URL(`http://[${addr}]`).hostname.slice(1, -1);
    return expanded.endsWith("::") ? `${expanded}1` : undefined;
  }
  return undefined;
}

/** A self-signed P-256 certificate valid for the listen address, loopback and localhost. */
async function selfSignedCertificate(host: string): Promise<{ cert: string; key: string }> {
  const sans = new Set(["IP:127.0.0.1", "IP:::1", "DNS:localhost"]);
  sans.add(isIP(host) ? `IP:${host}` : `DNS:${host}`);
  const dir = await mkdtemp(join(tmpdir(), "berth-apiserver-tls-"));
  try {
    const keyFile = join(dir, "key.pem");
    const certFile = join(dir, "cert.pem");
    const args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", keyFile, "-out", certFile, "-days", "3650", "-subj", "/CN=berth-sandbox-apiserver",
      "-addext", `subjectAltName=${[...sans].join(",")}`];
    await new Promise<void>((resolve, reject) => {
      execFile("openssl", args, (error, _stdout, stderr) => {
        if (error) reject(new Error(`cannot make the sandbox API server's TLS certificate with openssl: ${stderr || error.message}`));
        else resolve();
      });
    });
    return { cert: await readFile(certFile, "utf8"), key: await readFile(keyFile, "utf8") };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export { ApiServer } from "./server.js";
export { Store } from "./store.js";
export { Faults, type FaultRule } from "./faults.js";
export { RequestLog, requestLogNow, type LoggedRequest, type RequestOutcome } from "./request-log.js";
export { ResourceRegistry } from "./resources.js";
