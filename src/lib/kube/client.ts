// A small typed Kubernetes client: @kubernetes/client-node only loads a kubeconfig file (contexts, auth plugins,
// exec credentials); the in-cluster service account is read directly. Requests go out through node:http(s) so that we
// choose the content types (merge / JSON / strategic / server-side apply), read watches line by line, and count
// every request. Never import this from the lb-pod: client-node alone takes ~750 ms to load (docs/architecture.md, "The lb-pod"), which
// is why it is imported lazily in fromKubeconfig().
import { request as httpRequest, Agent as HttpAgent, type IncomingMessage, type ClientRequest } from "node:http";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import { parseRetryAfter } from "./backoff.js";
import { realClock, type Clock } from "./clock.js";
import type { PlainKubeconfig } from "./kubeconfig.js";
import { ListItemSplitter, ListStreamError } from "./list-stream.js";

// ---- objects and resources ----

/** The part of ObjectMeta this library relies on; client-node's V1ObjectMeta is assignable to it. */
export interface ObjectMetaLite {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: { [key: string]: string };
  annotations?: { [key: string]: string };
  finalizers?: string[];
}

/**
 * Any Kubernetes object. Objects come back as parsed JSON, not through client-node's ObjectSerializer, so when
 * typing them with client-node's V1* models remember that timestamps are strings on the wire, not Dates.
 */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMetaLite;
}

export interface KubeList<T> {
  apiVersion?: string;
  kind?: string;
  metadata: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  items: T[];
}

/** Where a kind is served. */
export interface Resource {
  /** "" for the core group. */
  group: string;
  version: string;
  /** Lower-case plural, as in the URL. */
  plural: string;
  kind: string;
  namespaced: boolean;
}

/** The resources berth reads and writes. */
export const Resources = {
  namespaces: { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false },
  nodes: { group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false },
  services: { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true },
  pods: { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true },
  events: { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true },
  configMaps: { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true },
  endpointSlices: { group: "discovery.k8s.io", version: "v1", plural: "endpointslices", kind: "EndpointSlice", namespaced: true },
  daemonSets: { group: "apps", version: "v1", plural: "daemonsets", kind: "DaemonSet", namespaced: true },
  eventsV1: { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event", namespaced: true },
  leases: { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease", namespaced: true },
} as const satisfies Record<string, Resource>;

/** apiVersion as written in objects: "v1" or "apps/v1". */
export function apiVersionOf(res: Resource): string {
  return res.group === "" ? res.version : `${res.group}/${res.version}`;
}

/** The URL path of a collection or object, e.g. /apis/apps/v1/namespaces/x/daemonsets/y/status. */
export function resourcePath(res: Resource, where: { namespace?: string; name?: string; subresource?: string } = {}): string {
  let p = res.group === "" ? `/api/${res.version}` : `/apis/${res.group}/${res.version}`;
  if (res.namespaced && where.namespace !== undefined) p += `/namespaces/${encodeURIComponent(where.namespace)}`;
  p += `/${res.plural}`;
  if (where.name !== undefined) p += `/${encodeURIComponent(where.name)}`;
  if (where.subresource !== undefined) {
    if (where.name === undefined) throw new Error(`a subresource (${where.subresource}) needs an object name`);
    p += `/${where.subresource}`;
  }
  return p;
}

// ---- errors ----

/**
 * A failed API call: `code` is the HTTP status (0 when no answer came: connection refused, reset, timeout),
 * `reason` the Status reason (NotFound, Conflict, AlreadyExists, Gone/Expired, TooManyRequests, ...).
 */
export class KubeError extends Error {
  override readonly name = "KubeError";

  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly retryAfterSeconds?: number,
    readonly details?: unknown,
  ) {
    super(message);
  }

  /** Builds the error from a metav1.Status body (from an HTTP answer or a watch ERROR event). */
  static fromStatus(status: unknown, httpCode: number, retryAfterHeader?: string | null): KubeError {
    const s = (status && typeof status === "object" ? status : {}) as {
      code?: number; reason?: string; message?: string; details?: { retryAfterSeconds?: number };
    };
    const code = typeof s.code === "number" && s.code > 0 ? s.code : httpCode;
    const retryAfter = parseRetryAfter(retryAfterHeader) ?? s.details?.retryAfterSeconds;
    return new KubeError(code, s.reason ?? `HTTP${code}`, s.message ?? `the API server answered ${code}`, retryAfter, s.details);
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof KubeError && e.code === 404;
export const isConflict = (e: unknown): boolean => e instanceof KubeError && e.code === 409;
export const isAlreadyExists = (e: unknown): boolean => e instanceof KubeError && e.code === 409 && e.reason === "AlreadyExists";
/** 410 Gone: the resourceVersion is too old (watch history compacted, or a list continue token expired). */
export const isGone = (e: unknown): boolean => e instanceof KubeError && e.code === 410;
/** Worth retrying as is, after a backoff: no answer, 429, or a server-side 5xx. */
export function isRetryable(e: unknown): boolean {
  return e instanceof KubeError && (e.code === 0 || e.code === 429 || e.code >= 500);
}

// ---- metrics and logging hooks (implemented by metrics.ts; the client does not depend on prom-client) ----

export interface ApiRequestRecorder {
  /**
   * One finished request: verb as kube-apiserver counts it, resource plural (with "/subresource"), status code or
   * "error", and the time from sending it to its answer's headers (client-go's rest_client_request_duration_seconds).
   */
  apiRequest(verb: string, resource: string, code: string, seconds?: number): void;
}

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFn = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;
export const noLog: LogFn = () => undefined;

// ---- options ----

export interface RequestOptionsBase {
  namespace?: string;
  signal?: AbortSignal;
}

export interface ListOptions extends RequestOptionsBase {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: "Exact" | "NotOlderThan";
  /** Items as PartialObjectMetadata (metadata only), as client-go's metadata client asks for them. */
  metadataOnly?: boolean;
}

export interface WriteOptions extends RequestOptionsBase {
  fieldManager?: string;
  dryRun?: boolean;
  fieldValidation?: "Strict" | "Warn" | "Ignore";
}

export interface ApplyOptions extends WriteOptions {
  fieldManager: string;
  /** Take ownership of fields other managers hold (kubectl apply --server-side --force-conflicts). */
  force?: boolean;
}

export interface DeleteOptions extends RequestOptionsBase {
  propagationPolicy?: "Foreground" | "Background" | "Orphan";
  preconditions?: { uid?: string; resourceVersion?: string };
  gracePeriodSeconds?: number;
  dryRun?: boolean;
}

export type PatchType = "merge" | "json" | "strategic";

const PATCH_CONTENT_TYPES: Record<PatchType | "apply", string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
  // Server-side apply takes YAML, and JSON is YAML; kubernetes-fluent-client does the same.
  apply: "application/apply-patch+yaml",
};

export interface WatchOptions extends RequestOptionsBase {
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  /** Server-side end of the watch; kube-apiserver picks a random 30-60 min when unset. */
  timeoutSeconds?: number;
  labelSelector?: string;
  fieldSelector?: string;
  /** Objects as PartialObjectMetadata (metadata only), as client-go's metadata client asks for them. */
  metadataOnly?: boolean;
}

/**
 * The Accept headers of client-go's metadata client (k8s.io/client-go/metadata/metadata.go), JSON only: the server
 * sends each object's metadata and nothing else (a ConfigMap's data never crosses the wire).
 */
const METADATA_ONLY = {
  list: "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
  watch: "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
} as const;

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK";

export interface WatchEvent<T> {
  type: WatchEventType;
  object: T;
}

export interface TlsOptions {
  ca?: Buffer | string;
  cert?: Buffer | string;
  key?: Buffer | string;
  rejectUnauthorized?: boolean;
  servername?: string;
}

export interface KubeClientOptions {
  /** API server base URL, e.g. https://10.43.0.1:443 or http://127.0.0.1:41234. */
  server: string;
  /** Headers with credentials, asked for before every request (tokens rotate). */
  authHeaders?: () => Promise<Record<string, string>> | Record<string, string>;
  tls?: TlsOptions;
  metrics?: ApiRequestRecorder;
  userAgent?: string;
  /** Deadline of a non-watch request; default 30 s. */
  requestTimeoutMs?: number;
  /**
   * Times a request answered with Retry-After is sent again after waiting that long: any verb on 429 (API
   * priority and fairness rejects before doing anything), reads only on 5xx. Default 3; 0 turns it off.
   * client-go's rest client does the same, up to 10 times.
   */
  maxRetries?: number;
  /** For the Retry-After waits; default the real clock. */
  clock?: Clock;
}

export interface FromKubeconfigOptions {
  /** A kubeconfig file; unset means in-cluster (the pod's service account). */
  kubeconfig?: string;
  /** Context in the kubeconfig; default its current-context. */
  context?: string;
  metrics?: ApiRequestRecorder;
  userAgent?: string;
  requestTimeoutMs?: number;
  maxRetries?: number;
  /** Where the in-cluster configuration lives (tests); defaults are the pod's service account and env. */
  inCluster?: InClusterOptions;
}

export interface InClusterOptions {
  /** Default $KUBERNETES_SERVICE_HOST. */
  host?: string;
  /** Default $KUBERNETES_SERVICE_PORT. */
  port?: string;
  /** Default /var/run/secrets/kubernetes.io/serviceaccount/token. */
  tokenFile?: string;
  /** Default /var/run/secrets/kubernetes.io/serviceaccount/ca.crt. */
  caFile?: string;
  /** How long a token read from tokenFile is reused; default 60 s (client-go re-reads the file every minute). */
  tokenReloadMs?: number;
}

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * A bearer token read from a file and reused for `reloadMs` (client-go re-reads a token file every minute: kubelet
 * rotates bound service account tokens); the last good token is kept while the file is briefly missing during
 * kubelet's atomic swap. `what` names the configuration in the error when there has never been a token.
 */
function tokenReader(tokenFile: string, reloadMs: number, what: string): () => Promise<string> {
  let token = "";
  let readAt = -Infinity;
  return async () => {
    if (Date.now() - readAt < reloadMs && token) return token;
    try {
      const { readFile } = await import("node:fs/promises");
      token = (await readFile(tokenFile, "utf8")).trim();
      readAt = Date.now();
    } catch (e) {
      if (!token) throw new KubeError(0, "NoCredentials", `${what}: cannot read the token ${tokenFile}: ${(e as Error).message}`);
    }
    return token;
  };
}

/** Marks a request that failed on a reused keep-alive socket before any answer (see send()). */
const STALE_SOCKET = Object.freeze({ staleKeepAliveSocket: true });

interface SendOptions {
  verb: string;
  resource: string;
  method: string;
  path: string;
  query?: URLSearchParams;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  stream?: boolean;
  /** Default application/json. */
  accept?: string;
}

// ---- the client ----

export class KubeClient {
  private readonly base: URL;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly requestTimeoutMs: number;

  constructor(private readonly options: KubeClientOptions) {
    this.base = new URL(options.server);
    if (this.base.protocol !== "http:" && this.base.protocol !== "https:") {
      throw new Error(`the API server URL must be http(s), got ${options.server}`);
    }
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.agent = this.base.protocol === "https:"
      ? new HttpsAgent({ keepAlive: true, ...(options.tls ?? {}) })
      : new HttpAgent({ keepAlive: true });
  }

  /**
   * Loads a kubeconfig file (`--kubeconfig`) or the in-cluster service account with client-node's KubeConfig,
   * keeping its auth handling (token files, exec plugins, client certificates).
   */
  static async fromKubeconfig(opts: FromKubeconfigOptions = {}): Promise<KubeClient> {
    if (opts.kubeconfig === undefined) return KubeClient.inCluster(opts);
    const { readFile } = await import("node:fs/promises");
    const { plainKubeconfig } = await import("./kubeconfig.js");
    let plain: PlainKubeconfig | undefined;
    try {
      plain = plainKubeconfig(await readFile(opts.kubeconfig, "utf8"), opts.kubeconfig, opts.context);
    } catch (e) {
      throw new Error(`cannot load kubeconfig ${opts.kubeconfig}: ${(e as Error).message}`, { cause: e });
    }
    if (plain) {
      // A token or a client certificate: no plugin to run, so no client-node (~90 MiB RSS for the process's life).
      const { token, tokenFile } = plain;
      const readToken = tokenFile !== undefined ? tokenReader(tokenFile, 60_000, `kubeconfig ${opts.kubeconfig}`) : undefined;
      if (readToken) await readToken();
      return new KubeClient({
        server: plain.server,
        authHeaders: async (): Promise<Record<string, string>> => {
          const t = readToken ? await readToken() : token;
          return t ? { Authorization: `Bearer ${t}` } : {};
        },
        tls: plain.tls,
        ...(opts.metrics ? { metrics: opts.metrics } : {}),
        ...(opts.userAgent ? { userAgent: opts.userAgent } : {}),
        ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
        ...(opts.maxRetries !== undefined ? { maxRetries: opts.maxRetries } : {}),
      });
    }
    const { KubeConfig } = await import("@kubernetes/client-node");
    const kc = new KubeConfig();
    try {
      kc.loadFromFile(opts.kubeconfig);
    } catch (e) {
      throw new Error(`cannot load kubeconfig ${opts.kubeconfig}: ${(e as Error).message}`, { cause: e });
    }
    if (opts.context !== undefined) kc.setCurrentContext(opts.context);
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error(`kubeconfig ${opts.kubeconfig} has no cluster for its current context`);
    const scratch: Record<string, unknown> = {};
    await kc.applyToHTTPSOptions(scratch);
    const tls: TlsOptions = {};
    for (const k of ["ca", "cert", "key", "rejectUnauthorized", "servername"] as const) {
      if (scratch[k] !== undefined && scratch[k] !== null) (tls as Record<string, unknown>)[k] = scratch[k];
    }
    const authHeaders = async (): Promise<Record<string, string>> => {
      const o: { headers?: Record<string, string>; auth?: string } = {};
      await kc.applyToHTTPSOptions(o as never);
      const h: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.auth) h.Authorization = `Basic ${Buffer.from(o.auth).toString("base64")}`;
      return h;
    };
    return new KubeClient({
      server: cluster.server,
      authHeaders,
      tls,
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      ...(opts.userAgent ? { userAgent: opts.userAgent } : {}),
      ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
      ...(opts.maxRetries !== undefined ? { maxRetries: opts.maxRetries } : {}),
    });
  }

  /**
   * The pod's service account, read the way client-go's rest.InClusterConfig does: server from
   * KUBERNETES_SERVICE_HOST/PORT, the CA bundle, and the bound token file re-read every minute (kubelet rotates it).
   * Done here rather than with client-node's KubeConfig, whose import costs ~0.5 s and ~70 MB RSS in every
   * controller replica, for four files' worth of work.
   */
  static async inCluster(opts: Omit<FromKubeconfigOptions, "kubeconfig" | "context"> = {}): Promise<KubeClient> {
    const ic = opts.inCluster ?? {};
    // Read at call time, never at import (docs/architecture.md, "Conventions").
    const host = ic.host ?? process.env.KUBERNETES_SERVICE_HOST;
    const port = ic.port ?? process.env.KUBERNETES_SERVICE_PORT;
    if (!host || !port) throw new Error("not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset): pass --kubeconfig FILE");
    const tokenFile = ic.tokenFile ?? `${SERVICE_ACCOUNT_DIR}/token`;
    const caFile = ic.caFile ?? `${SERVICE_ACCOUNT_DIR}/ca.crt`;
    const { readFile } = await import("node:fs/promises");
    let ca: Buffer;
    try {
      ca = await readFile(caFile);
    } catch (e) {
      throw new Error(`in-cluster configuration: cannot read the CA bundle ${caFile}: ${(e as Error).message}`, { cause: e });
    }
    const readToken = tokenReader(tokenFile, ic.tokenReloadMs ?? 60_000, "in-cluster configuration");
    await readToken();
    const hostPart = host.includes(":") ? `[${host}]` : host;
    return new KubeClient({
      server: `https://${hostPart}:${port}`,
      authHeaders: async () => ({ Authorization: `Bearer ${await readToken()}` }),
      tls: { ca },
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      ...(opts.userAgent ? { userAgent: opts.userAgent } : {}),
      ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
      ...(opts.maxRetries !== undefined ? { maxRetries: opts.maxRetries } : {}),
    });
  }

  /** The API server base URL. */
  get server(): string {
    return this.base.toString().replace(/\/$/, "");
  }

  async get<T extends KubeObject = KubeObject>(res: Resource, name: string, opts: RequestOptionsBase & { subresource?: string } = {}): Promise<T> {
    return this.json<T>({
      verb: "get", resource: label(res, opts.subresource), method: "GET",
      path: resourcePath(res, { ...nsOf(opts.namespace), name, ...(opts.subresource ? { subresource: opts.subresource } : {}) }),
      ...sig(opts.signal),
    });
  }

  /** get, but undefined for 404. */
  async tryGet<T extends KubeObject = KubeObject>(res: Resource, name: string, opts: RequestOptionsBase = {}): Promise<T | undefined> {
    try {
      return await this.get<T>(res, name, opts);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** One page (or all, without `limit`). Without a namespace on a namespaced resource: all namespaces. */
  async list<T extends KubeObject = KubeObject>(res: Resource, opts: ListOptions = {}): Promise<KubeList<T>> {
    const items: T[] = [];
    const list = await this.listPage<T>(res, opts, (obj) => items.push(obj));
    return { ...list, items };
  }

  /**
   * Every page of a list, `pageSize` at a time. A continue token that expires mid-way (410) restarts the list
   * from the beginning, as client-go's pager does after falling back to a full list.
   * - `transform` runs on each item as it arrives (an informer's trim: 100,000 lb-pods as the server sends them
   *   are ~600 MiB of JSON, trimmed ~45 MiB), so no page of full objects is ever alive at once;
   * - `each` takes every item as it arrives instead of collecting them (then `items` comes back empty), and
   *   `onRestart` is told when an expired continue token makes the list start over, so what `each` saw of the
   *   abandoned attempt can be forgotten.
   */
  async listAll<T extends KubeObject = KubeObject>(res: Resource,
    opts: Omit<ListOptions, "limit" | "continue"> & {
      pageSize?: number; transform?: (obj: T) => T; each?: (obj: T) => void; onRestart?: () => void;
    } = {}): Promise<{ items: T[]; resourceVersion: string }> {
    const { pageSize = 500, transform, each, onRestart, ...rest } = opts;
    for (let attempt = 0; ; attempt++) {
      const items: T[] = [];
      const take = each ?? ((obj: T): void => {
        items.push(transform ? transform(obj) : obj);
      });
      let cont: string | undefined;
      try {
        for (;;) {
          const page = await this.listPage<T>(res, { ...rest, limit: pageSize, ...(cont ? { continue: cont } : {}) }, take);
          cont = page.metadata.continue;
          if (!cont) return { items, resourceVersion: page.metadata.resourceVersion ?? "" };
        }
      } catch (e) {
        if (isGone(e) && cont !== undefined && attempt < 2) {
          onRestart?.();
          continue;
        }
        throw e;
      }
    }
  }

  /**
   * One list answer, each item handed to `each` as soon as its bytes are in (ListItemSplitter): neither the
   * answer's text nor its parsed items are ever held whole. An error thrown by `each` ends the list as is.
   */
  private async listPage<T extends KubeObject>(res: Resource, opts: ListOptions, each: (obj: T) => void): Promise<Omit<KubeList<T>, "items">> {
    const query = new URLSearchParams();
    if (opts.labelSelector) query.set("labelSelector", opts.labelSelector);
    if (opts.fieldSelector) query.set("fieldSelector", opts.fieldSelector);
    if (opts.limit !== undefined) query.set("limit", String(opts.limit));
    if (opts.continue) query.set("continue", opts.continue);
    if (opts.resourceVersion !== undefined) query.set("resourceVersion", opts.resourceVersion);
    if (opts.resourceVersionMatch) query.set("resourceVersionMatch", opts.resourceVersionMatch);
    const o: SendOptions = {
      verb: "list", resource: label(res), method: "GET", path: resourcePath(res, nsOf(opts.namespace)), query, ...sig(opts.signal),
      ...(opts.metadataOnly ? { accept: METADATA_ONLY.list } : {}),
    };
    const { res: answer } = await this.send(o);
    const bad = (what: string): KubeError => new KubeError(answer.statusCode ?? 0, "BadResponse", `${o.method} ${o.path}: ${what}`);
    let itemError: { error: unknown } | undefined;
    const splitter = new ListItemSplitter((json) => {
      let obj: T;
      try {
        obj = JSON.parse(json) as T;
      } catch {
        throw bad("the API server answered with an invalid list item");
      }
      try {
        each(obj);
      } catch (e) {
        itemError = { error: e };
        throw e;
      }
    });
    let rest: KubeList<T>;
    try {
      for await (const chunk of answer as AsyncIterable<Buffer>) splitter.write(chunk);
      rest = JSON.parse(splitter.end()) as KubeList<T>;
    } catch (e) {
      if (itemError) throw itemError.error;
      if (e instanceof KubeError) throw e;
      if (e instanceof ListStreamError || e instanceof SyntaxError) throw bad(`the API server answered with an invalid list: ${e.message}`);
      if (o.signal?.aborted) throw new KubeError(0, "Aborted", `${o.method} ${o.path}: aborted`);
      throw new KubeError(0, "NetworkError", `${o.method} ${o.path}: reading the answer failed: ${(e as Error).message}`);
    }
    if (!rest || typeof rest !== "object") throw bad("the API server's answer is not a list");
    const { items: _none, ...list } = rest;
    list.metadata ??= {};
    return list;
  }

  async create<T extends KubeObject>(res: Resource, obj: T, opts: WriteOptions = {}): Promise<T> {
    const namespace = opts.namespace ?? obj.metadata?.namespace;
    return this.json<T>({
      verb: "create", resource: label(res), method: "POST", path: resourcePath(res, nsOf(namespace)),
      query: writeQuery(opts), body: withTypeMeta(res, obj), ...sig(opts.signal),
    });
  }

  /** PUT: optimistic concurrency through metadata.resourceVersion (409 Conflict when stale). */
  async replace<T extends KubeObject>(res: Resource, obj: T, opts: WriteOptions = {}): Promise<T> {
    return this.put(res, obj, undefined, opts);
  }

  async replaceStatus<T extends KubeObject>(res: Resource, obj: T, opts: WriteOptions = {}): Promise<T> {
    return this.put(res, obj, "status", opts);
  }

  /** Returns the deleted object (or the object with deletionTimestamp set, while finalizers hold it). */
  async delete(res: Resource, name: string, opts: DeleteOptions = {}): Promise<KubeObject> {
    const body: Record<string, unknown> = { kind: "DeleteOptions", apiVersion: "v1" };
    if (opts.propagationPolicy) body.propagationPolicy = opts.propagationPolicy;
    if (opts.preconditions) body.preconditions = opts.preconditions;
    if (opts.gracePeriodSeconds !== undefined) body.gracePeriodSeconds = opts.gracePeriodSeconds;
    const query = new URLSearchParams();
    if (opts.dryRun) query.set("dryRun", "All");
    return this.json<KubeObject>({
      verb: "delete", resource: label(res), method: "DELETE", path: resourcePath(res, { ...nsOf(opts.namespace), name }),
      query, body, ...sig(opts.signal),
    });
  }

  async patch<T extends KubeObject = KubeObject>(res: Resource, name: string, type: PatchType, patch: unknown, opts: WriteOptions & { subresource?: string } = {}): Promise<T> {
    return this.json<T>({
      verb: "patch", resource: label(res, opts.subresource), method: "PATCH",
      path: resourcePath(res, { ...nsOf(opts.namespace), name, ...(opts.subresource ? { subresource: opts.subresource } : {}) }),
      query: writeQuery(opts), body: patch, contentType: PATCH_CONTENT_TYPES[type], ...sig(opts.signal),
    });
  }

  async patchStatus<T extends KubeObject = KubeObject>(res: Resource, name: string, type: PatchType, patch: unknown, opts: WriteOptions = {}): Promise<T> {
    return this.patch<T>(res, name, type, patch, { ...opts, subresource: "status" });
  }

  /**
   * Server-side apply: the object is the full intent of `fieldManager`; fields it stops sending are removed if
   * nobody else owns them. Idempotent: applying the same intent again changes nothing (same resourceVersion).
   */
  async apply<T extends KubeObject>(res: Resource, obj: T, opts: ApplyOptions & { subresource?: string }): Promise<T> {
    const name = obj.metadata?.name;
    if (!name) throw new Error(`apply ${res.kind}: metadata.name is required`);
    const query = writeQuery(opts);
    if (opts.force) query.set("force", "true");
    return this.json<T>({
      verb: "apply", resource: label(res, opts.subresource), method: "PATCH",
      path: resourcePath(res, { ...nsOf(opts.namespace ?? obj.metadata?.namespace), name, ...(opts.subresource ? { subresource: opts.subresource } : {}) }),
      query, body: withTypeMeta(res, obj), contentType: PATCH_CONTENT_TYPES.apply, ...sig(opts.signal),
    });
  }

  async applyStatus<T extends KubeObject>(res: Resource, obj: T, opts: ApplyOptions): Promise<T> {
    return this.apply(res, obj, { ...opts, subresource: "status" });
  }

  /**
   * A watch as an async iterator. A watch ERROR event (410 Gone when the resourceVersion is too old) is thrown as
   * a KubeError; the iterator ends when the server closes the stream or `signal` aborts. Breaking out of the loop
   * closes the connection.
   */
  async *watch<T extends KubeObject = KubeObject>(res: Resource, opts: WatchOptions = {}): AsyncGenerator<WatchEvent<T>, void, undefined> {
    const query = new URLSearchParams({ watch: "true" });
    if (opts.resourceVersion !== undefined) query.set("resourceVersion", opts.resourceVersion);
    if (opts.allowWatchBookmarks) query.set("allowWatchBookmarks", "true");
    if (opts.timeoutSeconds !== undefined) query.set("timeoutSeconds", String(opts.timeoutSeconds));
    if (opts.labelSelector) query.set("labelSelector", opts.labelSelector);
    if (opts.fieldSelector) query.set("fieldSelector", opts.fieldSelector);
    const { res: stream, req } = await this.send({
      verb: "watch", resource: label(res), method: "GET", path: resourcePath(res, nsOf(opts.namespace)), query, stream: true,
      ...sig(opts.signal), ...(opts.metadataOnly ? { accept: METADATA_ONLY.watch } : {}),
    });
    let buffer = "";
    try {
      stream.setEncoding("utf8");
      for await (const chunk of stream as AsyncIterable<string>) {
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (line) yield parseWatchLine<T>(line);
        }
      }
      const rest = buffer.trim();
      if (rest) yield parseWatchLine<T>(rest);
    } catch (e) {
      if (e instanceof KubeError) throw e;
      if (opts.signal?.aborted) return;
      throw new KubeError(0, "WatchBroken", `watch ${label(res)}: ${(e as Error).message}`);
    } finally {
      req.destroy();
    }
  }

  // ---- transport ----

  private async put<T extends KubeObject>(res: Resource, obj: T, subresource: string | undefined, opts: WriteOptions): Promise<T> {
    const name = obj.metadata?.name;
    if (!name) throw new Error(`replace ${res.kind}: metadata.name is required`);
    return this.json<T>({
      verb: "update", resource: label(res, subresource), method: "PUT",
      path: resourcePath(res, { ...nsOf(opts.namespace ?? obj.metadata?.namespace), name, ...(subresource ? { subresource } : {}) }),
      query: writeQuery(opts), body: withTypeMeta(res, obj), ...sig(opts.signal),
    });
  }

  private async json<T>(o: SendOptions): Promise<T> {
    const { res } = await this.send(o);
    const text = await readBody(res, o);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new KubeError(res.statusCode ?? 0, "BadResponse", `${o.method} ${o.path}: the API server answered with invalid JSON`);
    }
  }

  /** send(), again after Retry-After when the server asks for it (see maxRetries). */
  private async send(o: SendOptions): Promise<{ res: IncomingMessage; req: ClientRequest }> {
    const max = this.options.maxRetries ?? 3;
    const clock = this.options.clock ?? realClock;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.sendOnce(o);
      } catch (e) {
        // A kept-alive connection the server (or a proxy) closed while idle fails the next request sent on it
        // before the server saw any of it; Node's http docs prescribe sending it again once on a fresh socket.
        if (e instanceof KubeError && e.details === STALE_SOCKET && attempt === 0 && !o.signal?.aborted) continue;
        if (!(e instanceof KubeError) || e.retryAfterSeconds === undefined || attempt >= max || o.signal?.aborted) throw e;
        const read = o.method === "GET";
        if (!(e.code === 429 || (read && e.code >= 500))) throw e;
        // Capped: a server asking for minutes is better answered by the caller's own backoff.
        await clock.sleep(Math.min(e.retryAfterSeconds, 10) * 1000, o.signal);
      }
    }
  }

  /** One HTTP exchange; answers >= 400 become KubeError (body read), the rest return the open response. */
  private async sendOnce(o: SendOptions): Promise<{ res: IncomingMessage; req: ClientRequest }> {
    const headers: Record<string, string> = {
      Accept: o.accept ?? "application/json",
      "User-Agent": this.options.userAgent ?? "berth",
      ...(await this.options.authHeaders?.() ?? {}),
    };
    let payload: string | undefined;
    if (o.body !== undefined) {
      payload = JSON.stringify(o.body);
      headers["Content-Type"] = o.contentType ?? "application/json";
      headers["Content-Length"] = String(Buffer.byteLength(payload));
    }
    const url = new URL(this.base.pathname.replace(/\/$/, "") + o.path, this.base);
    if (o.query && [...o.query.keys()].length > 0) url.search = o.query.toString();
    const sentAt = performance.now();
    const record = (code: string): void => this.options.metrics?.apiRequest(o.verb, o.resource, code, (performance.now() - sentAt) / 1000);
    if (o.signal?.aborted) throw new KubeError(0, "Aborted", `${o.method} ${o.path}: aborted`);
    const doRequest = this.base.protocol === "https:" ? httpsRequest : httpRequest;
    return await new Promise<{ res: IncomingMessage; req: ClientRequest }>((resolve, reject) => {
      let settled = false;
      const req = doRequest(url, { method: o.method, headers, agent: this.agent });
      // The caller's signal usually outlives this request (one per informer or per leadership term): the listener
      // must go with the request, on every way it ends, or a long outage piles them up on the signal.
      const unlisten = (): void => o.signal?.removeEventListener("abort", onAbort);
      const fail = (e: KubeError): void => {
        unlisten();
        if (settled) return;
        settled = true;
        record("error");
        reject(e);
      };
      const onAbort = (): void => {
        req.destroy();
        fail(new KubeError(0, "Aborted", `${o.method} ${o.path}: aborted`));
      };
      o.signal?.addEventListener("abort", onAbort, { once: true });
      // Watches are long-lived by design; their liveness is the server's timeoutSeconds and the caller's signal.
      if (!o.stream) {
        req.setTimeout(this.requestTimeoutMs, () => {
          req.destroy();
          fail(new KubeError(0, "Timeout", `${o.method} ${o.path}: no answer within ${this.requestTimeoutMs} ms`));
        });
      }
      req.on("error", (e: NodeJS.ErrnoException) => {
        const stale = req.reusedSocket && (e.code === "ECONNRESET" || e.code === "EPIPE");
        fail(new KubeError(0, "NetworkError", `${o.method} ${url.host}${o.path}: ${e.message}`, undefined, stale ? STALE_SOCKET : undefined));
      });
      req.on("response", (res) => {
        if (settled) {
          res.resume();
          return;
        }
        const code = res.statusCode ?? 0;
        // "close" comes after "end", and also when the answer is torn down half-read.
        res.on("close", unlisten);
        // A response torn down after its reader stopped listening ("aborted" on a closed watch) must not become an
        // unhandled 'error' event, which would kill the process; readers still see errors through their iterator.
        res.on("error", () => undefined);
        if (code >= 400) {
          settled = true;
          record(String(code));
          readBody(res, o).then((text) => {
            let status: unknown;
            try {
              status = JSON.parse(text);
            } catch {
              status = { message: text.trim() || `HTTP ${code}` };
            }
            reject(KubeError.fromStatus(status, code, headerOf(res, "retry-after")));
          }, reject);
          return;
        }
        settled = true;
        record(String(code));
        resolve({ res, req });
      });
      req.end(payload);
    });
  }

  /** Closes idle keep-alive connections (open watches end through their signals). */
  close(): void {
    this.agent.destroy();
  }
}

function parseWatchLine<T>(line: string): WatchEvent<T> {
  let ev: { type?: string; object?: unknown };
  try {
    ev = JSON.parse(line) as { type?: string; object?: unknown };
  } catch {
    throw new KubeError(0, "BadResponse", `watch: invalid JSON line from the API server: ${line.slice(0, 200)}`);
  }
  if (ev.type === "ERROR") throw KubeError.fromStatus(ev.object, 500);
  if (ev.type !== "ADDED" && ev.type !== "MODIFIED" && ev.type !== "DELETED" && ev.type !== "BOOKMARK") {
    throw new KubeError(0, "BadResponse", `watch: unknown event type ${String(ev.type)}`);
  }
  return { type: ev.type, object: ev.object as T };
}

async function readBody(res: IncomingMessage, o: SendOptions): Promise<string> {
  res.setEncoding("utf8");
  let text = "";
  try {
    for await (const chunk of res as AsyncIterable<string>) text += chunk;
  } catch (e) {
    throw new KubeError(0, "NetworkError", `${o.method} ${o.path}: reading the answer failed: ${(e as Error).message}`);
  }
  return text;
}

function headerOf(res: IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function label(res: Resource, subresource?: string): string {
  return subresource ? `${res.plural}/${subresource}` : res.plural;
}

function nsOf(namespace: string | undefined): { namespace?: string } {
  return namespace !== undefined ? { namespace } : {};
}

function sig(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}

function writeQuery(opts: WriteOptions): URLSearchParams {
  const q = new URLSearchParams();
  if (opts.fieldManager) q.set("fieldManager", opts.fieldManager);
  if (opts.dryRun) q.set("dryRun", "All");
  if (opts.fieldValidation) q.set("fieldValidation", opts.fieldValidation);
  return q;
}

/** Fills apiVersion/kind when the caller left them out (server-side apply requires both). */
function withTypeMeta<T extends KubeObject>(res: Resource, obj: T): T {
  if (obj.apiVersion && obj.kind) return obj;
  return { apiVersion: apiVersionOf(res), kind: res.kind, ...obj };
}
