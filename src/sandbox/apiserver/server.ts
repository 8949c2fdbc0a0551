// The HTTP face of the sandbox API server (node:http): kube-apiserver's URL layout, discovery, verbs, watch
// streaming, content negotiation (JSON, Table, PartialObjectMetadata), patch content types, bearer-token auth and
// the fault-injection admin endpoint. Everything stateful lives in store.ts; this file translates HTTP to it.
// A test and demo server, not a production one.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { Faults, type FaultDecision, type FaultRule } from "./faults.js";
import { applyPatch } from "./patch.js";
import { decodeKubeProtobuf } from "./protobuf.js";
import { replicasOfScale, scaleOf } from "./scale.js";
import { logContainer, logFile, streamLog } from "./pod-logs.js";
import { RequestLog, type LoggedRequest } from "./request-log.js";
import { type ResourceRegistry, type ServedResource } from "./resources.js";
import { parseSelectors, type Selectors } from "./selectors.js";
import type { DeleteOptions, PatchType, Store, WatchEvent, WatchHandle } from "./store.js";
import type { FieldValidation } from "./typed.js";
import { toTable, type IncludeObject } from "./table.js";
import { ApiError, apiVersionOf, type KubeObject } from "./types.js";

export interface ServerOptions {
  store: Store;
  faults: Faults;
  token: string;
  clock?: () => Date;
  /** How often watches that allow bookmarks get one (kube-apiserver: about a minute). */
  bookmarkIntervalMs?: number;
  /** A watch whose client reads nothing is closed once this much output is queued (the cacher drops slow watchers). */
  maxWatchBufferBytes?: number;
  /** Largest request body accepted. */
  maxBodyBytes?: number;
  /** Serve HTTPS with this certificate (kubectl sends bearer tokens only over TLS). */
  tls?: { cert: string; key: string };
  /** Where requests are recorded; a fresh log by default. */
  requestLog?: RequestLog;
  /** The sandbox kubelet's container log directory, read for `pods/<name>/log` (unset: logs are refused). */
  podLogDir?: string;
}

/** The Kubernetes version the sandbox reports: the one kubectl on these machines speaks. */
export const SERVED_VERSION = { major: "1", minor: "32", gitVersion: "v1.32.0+berth.sandbox" };

const PATCH_TYPES: Record<string, PatchType> = {
  "application/json-patch+json": "json",
  "application/merge-patch+json": "merge",
  "application/strategic-merge-patch+json": "strategic",
  "application/apply-patch+yaml": "apply",
};

const PUBLIC_PATHS = /^\/(healthz|livez|readyz|version)(\/.*)?$/;

interface ResourceRequest {
  resource: ServedResource;
  namespace?: string;
  name?: string;
  subresource?: string;
  verb: string;
  /** Watch asked for with the legacy /watch/ path prefix. */
  watchPath: boolean;
}

function notFoundPage(): ApiError {
  return new ApiError(404, "NotFound", "the server could not find the requested resource", {});
}

function methodNotAllowed(): ApiError {
  return new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {});
}

/** Parses an Accept header into its media ranges with parameters. */
function acceptRanges(header: string | undefined): { type: string; params: Record<string, string> }[] {
  if (!header) return [];
  return header.split(",").map((part) => {
    const [type, ...params] = part.split(";").map((s) => s.trim());
    const p: Record<string, string> = {};
    for (const kv of params) {
      const i = kv.indexOf("=");
      if (i > 0) p[kv.slice(0, i).toLowerCase()] = kv.slice(i + 1);
    }
    return { type: (type ?? "").toLowerCase(), params: p };
  });
}

type OutputForm = "object" | "table" | "partial";

/** The first acceptable representation, in the client's order (kubectl lists Table first, then plain JSON). */
function outputForm(req: IncomingMessage): OutputForm {
  for (const r of acceptRanges(req.headers.accept)) {
    if (r.params.as === "Table" && r.params.g === "meta.k8s.io" && (r.params.v === "v1" || r.params.v === "v1beta1")) return "table";
    if ((r.params.as === "PartialObjectMetadata" || r.params.as === "PartialObjectMetadataList") && r.params.g === "meta.k8s.io") {
      return "partial";
    }
    if (r.params.as === undefined) return "object";
  }
  return "object";
}

function stripKind(obj: KubeObject): Record<string, unknown> {
  const { apiVersion: _a, kind: _k, ...rest } = obj;
  return rest;
}

function boolParam(value: string | null): boolean | undefined {
  if (value === null) return undefined;
  return value === "true" || value === "1" || value === "";
}

export class ApiServer {
  private readonly http: Server;
  private readonly store: Store;
  private readonly faults: Faults;
  private readonly registry: ResourceRegistry;
  private readonly token: string;
  private readonly clock: () => Date;
  private readonly bookmarkIntervalMs: number;
  private readonly maxWatchBufferBytes: number;
  private readonly maxBodyBytes: number;
  private readonly watches = new Set<{ end(): void }>();
  /**
   * Each stored object's watch lines, encoded once for every watcher that gets it (as the cacher's cachingObject
   * serializes an event once per encoding, k8s.io/apiserver/pkg/storage/cacher/caching_object.go), per event type
   * (a selector can turn one store event into ADDED for one watcher and MODIFIED for another).
   */
  private readonly watchLines = new WeakMap<object, Partial<Record<string, Buffer>>>();
  /** The JSON of stored (frozen, so unchanging) objects: a write's answer and its watch events share one encoding. */
  private readonly storedJson = new WeakMap<object, string>();
  readonly requestLog: RequestLog;
  private readonly logged = new WeakMap<IncomingMessage, LoggedRequest>();
  /** Requests waiting in the latency injector, not yet served. */
  private readonly delayed = new WeakSet<IncomingMessage>();

  constructor(private readonly opts: ServerOptions) {
    this.store = opts.store;
    this.faults = opts.faults;
    this.registry = opts.store.registry;
    this.token = opts.token;
    this.clock = opts.clock ?? (() => new Date());
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 60_000;
    this.maxWatchBufferBytes = opts.maxWatchBufferBytes ?? 8 * 1024 * 1024;
    // kube-apiserver's limit for a request body (apiserver.Config.MaxRequestBodyBytes: 3 MiB).
    this.maxBodyBytes = opts.maxBodyBytes ?? 3 * 1024 * 1024;
    this.faults.bindHistoryExpiry(() => this.store.expireHistory());
    this.faults.bindWatchCloser(() => {
      const open = [...this.watches];
      for (const w of open) w.end();
      return open.length;
    });
    this.requestLog = opts.requestLog ?? new RequestLog();
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      const entry = this.requestLog.arrive(req.method ?? "GET", (req.url ?? "/").split("?")[0] ?? "/", req.headers["user-agent"] ?? "");
      this.logged.set(req, entry);
      // "close" comes after a complete answer too; only an unfinished one means the client went away. A request
      // parsed from a connection the client had already reset gets no "close" at all: the handler's end covers it.
      const ended = (): void => {
        if (!res.writableFinished && !req.socket.destroyed && !res.destroyed) return;
        const outcome = res.writableFinished ? "answered" : this.delayed.has(req) ? "abandoned" : "client-gone";
        this.requestLog.end(entry, outcome, res.headersSent ? res.statusCode : undefined);
      };
      res.once("close", ended);
      this.handle(req, res).catch((error: unknown) => this.fail(res, error)).finally(ended);
    };
    this.http = opts.tls ? createTlsServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : createServer(handler);
    this.http.keepAliveTimeout = 65_000;
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(port, host, () => {
        this.http.off("error", reject);
        resolve((this.http.address() as AddressInfo).port);
      });
    });
  }

  /** Ends every watch, then stops accepting connections and drops idle keep-alive ones. */
  close(): Promise<void> {
    for (const w of [...this.watches]) w.end();
    return new Promise((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }

  activeWatches(): number {
    return this.watches.size;
  }

  // ---- plumbing ----

  private send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    const text = this.json(body);
    res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  private json(value: unknown): string {
    if (typeof value !== "object" || value === null || !Object.isFrozen(value)) return JSON.stringify(value);
    let text = this.storedJson.get(value);
    if (text === undefined) {
      text = JSON.stringify(value);
      this.storedJson.set(value, text);
    }
    return text;
  }

  private fail(res: ServerResponse, error: unknown): void {
    const e = error instanceof ApiError ? error : new ApiError(500, "InternalError",
      `Internal error occurred: ${error instanceof Error ? error.message : String(error)}`);
    if (!(error instanceof ApiError)) console.error("berth sandbox apiserver: internal error:", error);
    const headers: Record<string, string> = {};
    if (e.details?.retryAfterSeconds !== undefined) headers["Retry-After"] = String(e.details.retryAfterSeconds);
    this.send(res, e.code, e.toStatus(), headers);
  }

  private async readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      const b = chunk as Buffer;
      size += b.length;
      if (size > this.maxBodyBytes) throw new ApiError(413, "RequestEntityTooLarge", `Request entity too large: limit is ${this.maxBodyBytes}`);
      chunks.push(b);
    }
    return Buffer.concat(chunks);
  }

  private async parseBody(req: IncomingMessage, body: Buffer): Promise<unknown> {
    const type = (req.headers["content-type"] ?? "application/json").split(";")[0]?.trim().toLowerCase() ?? "";
    if (type === "application/vnd.kubernetes.protobuf") return decodeKubeProtobuf(body);
    const text = body.toString("utf8");
    if (text.trim() === "") throw new ApiError(400, "BadRequest", "the request body is empty; an object is required");
    if (type.includes("yaml")) return parseYaml(text);
    if (type !== "application/json" && !type.endsWith("+json")) {
      throw new ApiError(415, "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf`);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new ApiError(400, "BadRequest",
        `couldn't get version/kind; json parse error: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(header);
    return m !== null && m[1]?.trim() === this.token;
  }

  // ---- dispatch ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://sandbox");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    if (!PUBLIC_PATHS.test(path) && !this.authorized(req)) {
      throw new ApiError(401, "Unauthorized", "Unauthorized");
    }
    if (path.startsWith("/_sandbox/")) return this.admin(req, res, path);
    if (/^\/(healthz|livez|readyz)(\/.*)?$/.test(path)) {
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
      res.end("ok");
      return;
    }
    if (path === "/version") return this.send(res, 200, this.versionInfo());
    if (path === "/") return this.send(res, 200, { paths: this.rootPaths() });
    if (path.startsWith("/openapi/")) return this.openapi(res, path);
    const segs = path.split("/").filter(Boolean).map(decodeURIComponent);
    if ((path === "/api" || path === "/apis") && aggregatedDiscoveryVersion(req)) {
      const v = aggregatedDiscoveryVersion(req) as string;
      return this.send(res, 200, this.aggregatedDiscovery(path === "/api", v), {
        "Content-Type": `application/json;g=apidiscovery.k8s.io;v=${v};as=APIGroupDiscoveryList`,
      });
    }
    if (segs[0] === "api") {
      if (segs.length === 1) return this.send(res, 200, this.coreVersions(req));
      if (segs[1] !== "v1") throw notFoundPage();
      if (segs.length === 2) return this.send(res, 200, this.resourceList("", "v1"));
      return this.resource(req, res, url, "", "v1", segs.slice(2));
    }
    if (segs[0] === "apis") {
      if (segs.length === 1) return this.send(res, 200, this.groupList());
      const group = this.registry.groups().find((g) => g.name === segs[1]);
      if (!group) throw notFoundPage();
      if (segs.length === 2) return this.send(res, 200, this.apiGroup(group.name));
      const version = segs[2] as string;
      if (!group.versions.includes(version)) throw notFoundPage();
      if (segs.length === 3) return this.send(res, 200, this.resourceList(group.name, version));
      return this.resource(req, res, url, group.name, version, segs.slice(3));
    }
    throw notFoundPage();
  }

  private route(req: IncomingMessage, group: string, version: string, segments: string[]): ResourceRequest {
    let rest = segments;
    let watchPath = false;
    if (rest[0] === "watch") {
      watchPath = true;
      rest = rest.slice(1);
    }
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3 && !(rest.length === 3 && (rest[2] === "status" || rest[2] === "finalize"))) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    if (rest.length === 0 || rest.length > 3) throw notFoundPage();
    const [plural, name, subresource] = rest as [string, string | undefined, string | undefined];
    const resource = this.registry.lookup({ group, version, plural });
    if (!resource) throw notFoundPage();
    if (namespace !== undefined && !resource.def.namespaced) throw notFoundPage();
    if (subresource !== undefined && !resource.def.subresources.includes(subresource)) throw notFoundPage();
    const method = req.method ?? "GET";
    let verb: string;
    if (watchPath) {
      if (method !== "GET") throw methodNotAllowed();
      verb = "watch";
    } else if (method === "GET") {
      verb = name === undefined ? "list" : "get";
    } else if (method === "POST") {
      if (name !== undefined && subresource !== "binding" && subresource !== "eviction") throw methodNotAllowed();
      verb = "create";
    } else if (method === "PUT") {
      if (name === undefined) throw methodNotAllowed();
      verb = "update";
    } else if (method === "PATCH") {
      if (name === undefined) throw methodNotAllowed();
      verb = "patch";
    } else if (method === "DELETE") {
      verb = name === undefined ? "deletecollection" : "delete";
    } else {
      throw methodNotAllowed();
    }
    if (resource.def.namespaced && namespace === undefined && !["list", "watch", "get"].includes(verb)) {
      throw notFoundPage();
    }
    if (resource.def.namespaced && namespace === undefined && verb === "get") throw notFoundPage();
    if (subresource !== undefined) {
      const allowed = subresourceVerbs(subresource).map((v) => v);
      if (!allowed.includes(verb)) throw methodNotAllowed();
    } else if (!resource.def.verbs.includes(verb) && !(verb === "watch" && resource.def.verbs.includes("list"))) {
      throw methodNotAllowed();
    }
    return {
      resource,
      verb,
      watchPath,
      ...(namespace !== undefined ? { namespace } : {}),
      ...(name !== undefined ? { name } : {}),
      ...(subresource !== undefined ? { subresource } : {}),
    };
  }

  private async resource(req: IncomingMessage, res: ServerResponse, url: URL, group: string, version: string, segments: string[]): Promise<void> {
    const r = this.route(req, group, version, segments);
    const q = url.searchParams;
    if ((r.verb === "list" || r.verb === "get") && boolParam(q.get("watch"))) r.verb = "watch";
    const decision = this.faults.decide({
      verb: r.verb, resource: r.resource.def.plural,
      ...(r.subresource ? { subresource: r.subresource } : {}),
      ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
      ...(r.name !== undefined ? { name: r.name } : {}),
      ...(req.headers["user-agent"] ? { userAgent: req.headers["user-agent"] } : {}),
    });
    const entry = this.logged.get(req);
    if (entry) {
      entry.verb = r.verb;
      entry.resource = r.subresource ? `${r.resource.def.plural}/${r.subresource}` : r.resource.def.plural;
      if (r.namespace !== undefined) entry.namespace = r.namespace;
      if (r.name !== undefined) entry.name = r.name;
    }
    if (decision.latencyMs > 0) {
      // A slow server: the request waits before anything is done with it. A client that goes away meanwhile gets
      // nothing done, as kube-apiserver drops a request whose context is cancelled while it waits in API Priority
      // and Fairness' queue (fairqueuing/queueset), and its storage call with a cancelled context never reaches etcd.
      this.delayed.add(req);
      const gone = await new Promise<boolean>((resolve) => {
        if (res.destroyed || req.socket.destroyed) return resolve(true);
        const timer = setTimeout(() => {
          res.off("close", onClose);
          resolve(req.socket.destroyed);
        }, decision.latencyMs);
        const onClose = (): void => {
          clearTimeout(timer);
          resolve(true);
        };
        res.once("close", onClose);
      });
      if (gone) return;
      this.delayed.delete(req);
    }
    if (decision.error) throw decision.error;
    const dryRun = parseDryRun(q.getAll("dryRun"));
    const fieldManager = q.get("fieldManager") ?? undefined;
    if (fieldManager !== undefined && fieldManager.length > 128) {
      throw new ApiError(422, "Invalid", `fieldManager: Too long: may not be more than 128 bytes`);
    }
    const manager = fieldManager ?? managerFromUserAgent(req.headers["user-agent"]);
    const validation = q.get("fieldValidation") ?? "Warn";
    if (validation !== "Strict" && validation !== "Warn" && validation !== "Ignore") {
      throw new ApiError(400, "BadRequest", `fieldValidation: Unsupported value: "${validation}": supported values: "Ignore", "Strict", "Warn"`);
    }
    const warnings: string[] = [];
    const fieldValidation = validation as FieldValidation;
    // Warnings travel as HTTP headers (RFC 7234 Warning, code 299), which kubectl prints as "Warning: ...".
    const flushWarnings = (): void => {
      if (warnings.length > 0 && !res.headersSent) res.setHeader("Warning", warnings.map((w) => `299 - ${JSON.stringify(w)}`));
    };
    const served = r.resource;
    if (r.subresource === "scale") return this.scale(req, res, r, manager);
    if (r.subresource === "log") return this.podLog(req, res, r, q);
    switch (r.verb) {
      case "get": {
        const obj = this.store.get(served, r.namespace, r.name as string);
        return this.sendObject(req, res, q, served, 200, obj);
      }
      case "list": {
        const result = this.store.list(served, {
          ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
          selectors: this.selectors(served, q),
          ...limitParam(q),
          ...(q.get("continue") ? { continue: q.get("continue") as string } : {}),
          ...(q.get("resourceVersion") !== null ? { resourceVersion: q.get("resourceVersion") as string } : {}),
          ...(q.get("resourceVersionMatch") ? { resourceVersionMatch: q.get("resourceVersionMatch") as string } : {}),
        });
        return this.sendList(req, res, q, served, result.items, {
          resourceVersion: result.resourceVersion,
          ...(result.continue ? { continue: result.continue } : {}),
          ...(result.remainingItemCount !== undefined ? { remainingItemCount: result.remainingItemCount } : {}),
        });
      }
      case "watch":
        return this.watch(req, res, q, r, decision);
      case "create": {
        const body = await this.parseBody(req, await this.readBody(req));
        if (served.review) {
          const input = (body && typeof body === "object" ? body : {}) as KubeObject;
          const reviewed = served.review({ ...input, apiVersion: apiVersionOf(served.def), kind: served.def.kind, metadata: input.metadata ?? {} });
          return this.send(res, 201, reviewed);
        }
        if (r.subresource === "eviction") {
          // No PodDisruptionBudgets here, so an eviction is the pod's deletion with the Eviction's DeleteOptions.
          const eviction = (body ?? {}) as { deleteOptions?: Record<string, unknown> };
          const del = eviction.deleteOptions ?? {};
          const pre = (del.preconditions ?? {}) as { uid?: string; resourceVersion?: string };
          this.store.delete(served, r.namespace, r.name as string, {
            dryRun: dryRun || (Array.isArray(del.dryRun) && del.dryRun.length > 0),
            ...(typeof del.gracePeriodSeconds === "number" ? { gracePeriodSeconds: del.gracePeriodSeconds } : {}),
            ...(typeof del.propagationPolicy === "string" ? { propagationPolicy: del.propagationPolicy as DeleteOptions["propagationPolicy"] } : {}),
            preconditions: { ...(pre.uid ? { uid: pre.uid } : {}), ...(pre.resourceVersion ? { resourceVersion: pre.resourceVersion } : {}) },
          });
          return this.send(res, 201, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", code: 201 });
        }
        if (r.subresource === "binding") {
          this.store.bind(served, r.namespace, r.name as string, body, { dryRun, fieldManager: manager });
          return this.send(res, 201, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", code: 201 });
        }
        const obj = this.store.create(served, r.namespace, body, { dryRun, fieldManager: manager, fieldValidation, warnings });
        flushWarnings();
        return this.sendObject(req, res, q, served, 201, obj);
      }
      case "update": {
        const body = await this.parseBody(req, await this.readBody(req));
        const existed = this.exists(served, r.namespace, r.name as string);
        const obj = this.store.update(served, r.namespace, r.name as string, body, {
          dryRun, fieldManager: manager, fieldValidation, warnings, ...(r.subresource ? { subresource: r.subresource } : {}),
        });
        flushWarnings();
        return this.sendObject(req, res, q, served, existed ? 200 : 201, obj);
      }
      case "patch":
        await this.patch(req, res, q, r, dryRun, fieldManager, manager, { fieldValidation, warnings, flush: flushWarnings });
        return;
      case "delete": {
        const opts = await this.deleteOptions(req, q, dryRun);
        const { object, deleted } = this.store.delete(served, r.namespace, r.name as string, opts);
        if (deleted && !served.returnDeletedObject) {
          return this.send(res, 200, {
            kind: "Status", apiVersion: "v1", metadata: {}, status: "Success",
            details: { name: r.name, group: served.def.group, kind: served.def.plural, uid: object.metadata.uid },
          });
        }
        return this.sendObject(req, res, q, served, 200, object);
      }
      case "deletecollection": {
        const opts = await this.deleteOptions(req, q, dryRun);
        const items = this.store.deleteCollection(served, {
          ...opts,
          ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
          selectors: this.selectors(served, q),
        });
        return this.sendList(req, res, q, served, items, { resourceVersion: this.store.resourceVersion() });
      }
    }
    throw methodNotAllowed();
  }

  /**
   * GET, PUT and PATCH of `<deployments|replicasets>/<name>/scale`: the Scale is computed from the object, a write
   * patches its spec.replicas (with the Scale's resourceVersion as precondition when it carries one).
   */
  private async scale(req: IncomingMessage, res: ServerResponse, r: ResourceRequest, manager: string): Promise<void> {
    const name = r.name as string;
    const current = this.store.get(r.resource, r.namespace, name);
    if (r.verb === "get") return this.send(res, 200, scaleOf(current));
    const raw = await this.readBody(req);
    let written: unknown;
    if (r.verb === "update") {
      written = await this.parseBody(req, raw);
    } else {
      const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
      const patchType = PATCH_TYPES[contentType];
      if (!patchType || patchType === "apply") {
        throw new ApiError(415, "UnsupportedMediaType",
          "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json");
      }
      let body: unknown;
      try {
        body = JSON.parse(raw.toString("utf8")) as unknown;
      } catch (error) {
        throw new ApiError(400, "BadRequest", `error decoding patch: ${error instanceof Error ? error.message : String(error)}`);
      }
      const scaleDef = { ...r.resource.def, group: "autoscaling", kind: "Scale", custom: false };
      written = applyPatch(scaleDef, scaleOf(current), patchType, body, { now: new Date(), name });
    }
    const replicas = replicasOfScale(written, name);
    const rv = (written as { metadata?: { resourceVersion?: unknown } }).metadata?.resourceVersion;
    const patch = { metadata: typeof rv === "string" && rv !== "" ? { resourceVersion: rv } : {}, spec: { replicas } };
    const { object } = this.store.patch(r.resource, r.namespace, name, "merge", patch, { fieldManager: manager });
    return this.send(res, 200, scaleOf(object));
  }

  /** `kubectl logs`: the container log files the sandbox kubelet writes (pod-logs.ts). */
  private async podLog(req: IncomingMessage, res: ServerResponse, r: ResourceRequest, q: URLSearchParams): Promise<void> {
    const pod = this.store.get(r.resource, r.namespace, r.name as string);
    const dir = this.opts.podLogDir;
    if (dir === undefined) {
      throw new ApiError(400, "BadRequest", "this API server runs without the sandbox's kubelet: no container logs (berth sandbox up serves them)");
    }
    const container = logContainer(pod, q.get("container") ?? undefined);
    const previous = boolParam(q.get("previous")) === true;
    const follow = boolParam(q.get("follow")) === true;
    const file = logFile(dir, pod, container, previous);
    const tailRaw = q.get("tailLines");
    const tailLines = tailRaw === null || tailRaw === "" ? undefined : Number(tailRaw);
    const uid = pod.metadata.uid;
    const alive = (): boolean => {
      try {
        return this.store.get(r.resource, r.namespace, r.name as string).metadata.uid === uid;
      } catch {
        return false;
      }
    };
    await streamLog(req, res, file, { container, follow, previous, ...(tailLines !== undefined && Number.isFinite(tailLines) ? { tailLines } : {}) }, alive);
  }

  private exists(res: ServedResource, namespace: string | undefined, name: string): boolean {
    try {
      this.store.get(res, namespace, name);
      return true;
    } catch {
      return false;
    }
  }

  private selectors(res: ServedResource, q: URLSearchParams): Selectors {
    return parseSelectors(res, q.get("labelSelector") ?? undefined, q.get("fieldSelector") ?? undefined);
  }

  private async deleteOptions(req: IncomingMessage, q: URLSearchParams, dryRun: boolean): Promise<DeleteOptions> {
    const raw = await this.readBody(req);
    let body: Record<string, unknown> = {};
    if (raw.toString("utf8").trim() !== "") {
      const parsed = await this.parseBody(req, raw);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
    }
    const policy = (body.propagationPolicy ?? q.get("propagationPolicy") ?? undefined) as string | undefined;
    if (body.orphanDependents !== undefined && policy !== undefined) {
      throw new ApiError(422, "Invalid", "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Invalid value: \"" + policy +
        "\": orphanDependents and deletionPropagation cannot be both set");
    }
    if (policy !== undefined && !["Orphan", "Background", "Foreground"].includes(policy)) {
      throw new ApiError(422, "Invalid", `DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`);
    }
    const graceRaw = body.gracePeriodSeconds ?? q.get("gracePeriodSeconds") ?? undefined;
    const grace = graceRaw === undefined || graceRaw === null ? undefined : Number(graceRaw);
    const bodyDry = Array.isArray(body.dryRun) ? parseDryRun(body.dryRun as string[]) : false;
    const pre = (body.preconditions ?? {}) as { uid?: string; resourceVersion?: string };
    return {
      dryRun: dryRun || bodyDry,
      ...(policy ? { propagationPolicy: policy as DeleteOptions["propagationPolicy"] } : {}),
      ...(body.orphanDependents === true ? { propagationPolicy: "Orphan" as const } : {}),
      ...(grace !== undefined && Number.isFinite(grace) ? { gracePeriodSeconds: grace } : {}),
      preconditions: {
        ...(pre.uid ? { uid: pre.uid } : {}),
        ...(pre.resourceVersion ? { resourceVersion: pre.resourceVersion } : {}),
      },
    };
  }

  private async patch(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, r: ResourceRequest, dryRun: boolean,
    fieldManager: string | undefined, manager: string,
    validation: { fieldValidation: FieldValidation; warnings: string[]; flush(): void }): Promise<void> {
    const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
    const patchType = PATCH_TYPES[contentType];
    if (!patchType || (patchType === "strategic" && r.resource.def.custom)) {
      const accepted = ["application/json-patch+json", "application/merge-patch+json",
        ...(r.resource.def.custom ? [] : ["application/strategic-merge-patch+json"]), "application/apply-patch+yaml"];
      throw new ApiError(415, "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: ${accepted.join(", ")}`);
    }
    const force = boolParam(q.get("force"));
    if (patchType === "apply" && fieldManager === undefined) {
      throw new ApiError(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch");
    }
    if (patchType !== "apply" && force !== undefined) {
      throw new ApiError(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch");
    }
    const text = (await this.readBody(req)).toString("utf8");
    let body: unknown;
    if (patchType === "apply") {
      body = await parseYaml(text);
    } else {
      try {
        body = JSON.parse(text) as unknown;
      } catch (error) {
        throw new ApiError(400, "BadRequest", `error decoding patch: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    const { object, created } = this.store.patch(r.resource, r.namespace, r.name as string, patchType, body, {
      dryRun, fieldManager: patchType === "apply" ? (fieldManager as string) : manager,
      fieldValidation: validation.fieldValidation, warnings: validation.warnings,
      ...(force !== undefined ? { force } : {}),
      ...(r.subresource ? { subresource: r.subresource } : {}),
    });
    validation.flush();
    return this.sendObject(req, res, q, r.resource, created ? 201 : 200, object);
  }

  private tableOptions(q: URLSearchParams): { includeObject: IncludeObject; now: Date } {
    const inc = q.get("includeObject");
    if (inc !== null && inc !== "None" && inc !== "Metadata" && inc !== "Object") {
      throw new ApiError(400, "BadRequest", `includeObject: Unsupported value: "${inc}": supported values: "Metadata", "None", "Object"`);
    }
    return { includeObject: (inc ?? "Metadata") as IncludeObject, now: this.clock() };
  }

  private sendObject(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, r: ServedResource, code: number, obj: KubeObject): void {
    const form = outputForm(req);
    if (form === "table") {
      return this.send(res, code, toTable(r.def, [obj], { ...this.tableOptions(q), resourceVersion: obj.metadata.resourceVersion ?? "" }));
    }
    if (form === "partial") {
      return this.send(res, code, { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: obj.metadata });
    }
    this.send(res, code, obj);
  }

  private sendList(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, r: ServedResource, items: KubeObject[],
    meta: { resourceVersion: string; continue?: string; remainingItemCount?: number }): void {
    const form = outputForm(req);
    if (form === "table") return this.send(res, 200, toTable(r.def, items, { ...this.tableOptions(q), ...meta }));
    if (form === "partial") {
      return this.send(res, 200, {
        kind: "PartialObjectMetadataList", apiVersion: "meta.k8s.io/v1", metadata: meta,
        items: items.map((i) => ({ kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: i.metadata })),
      });
    }
    // Typed lists of built-in kinds carry no apiVersion/kind per item; custom resource lists (unstructured) do.
    this.send(res, 200, {
      kind: r.def.listKind,
      apiVersion: apiVersionOf(r.def),
      metadata: meta,
      items: r.def.custom ? items : items.map(stripKind),
    });
  }

  // ---- watch ----

  private watch(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, r: ResourceRequest, decision: FaultDecision): void {
    if (r.name !== undefined) {
      // GET /watch/.../name is a watch with fieldSelector metadata.name=name.
      const existing = q.get("fieldSelector");
      q.set("fieldSelector", existing ? `${existing},metadata.name=${r.name}` : `metadata.name=${r.name}`);
    }
    const selectors = this.selectors(r.resource, q);
    const form = outputForm(req);
    const tableOpts = form === "table" ? this.tableOptions(q) : undefined;
    const allowBookmarks = boolParam(q.get("allowWatchBookmarks")) === true;
    const sendInitial = boolParam(q.get("sendInitialEvents"));
    const timeoutRaw = q.get("timeoutSeconds");
    const timeoutSeconds = timeoutRaw !== null && /^\d+$/.test(timeoutRaw) ? Number(timeoutRaw) : undefined;

    let ended = false;
    let sent = 0;
    let handle: WatchHandle | undefined;
    const timers: NodeJS.Timeout[] = [];
    const pending: WatchEvent[] = [];
    let started = false;
    const entry = { end: () => finish() };
    const finish = (): void => {
      if (ended) return;
      ended = true;
      handle?.stop();
      for (const t of timers) clearInterval(t);
      this.watches.delete(entry);
      // What was encoded before the end still goes out (as a Go handler's buffered writer is flushed on return).
      flush();
      if (!res.writableEnded) res.end();
    };
    const encode = (ev: WatchEvent): Buffer | string => {
      if (ev.type === "BOOKMARK" || ev.type === "ERROR") return `${JSON.stringify(ev)}\n`;
      const obj = ev.object as KubeObject;
      if (tableOpts) {
        return `${JSON.stringify({ type: ev.type, object: toTable(r.resource.def, [obj], { ...tableOpts, now: this.clock(), resourceVersion: obj.metadata.resourceVersion ?? "" }) })}\n`;
      }
      if (form === "partial") {
        return `${JSON.stringify({ type: ev.type, object: { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: obj.metadata } })}\n`;
      }
      let lines = this.watchLines.get(obj);
      if (lines === undefined) {
        lines = {};
        this.watchLines.set(obj, lines);
      }
      let line = lines[ev.type];
      if (line === undefined) {
        line = Buffer.from(`{"type":"${ev.type}","object":${this.json(obj)}}\n`);
        lines[ev.type] = line;
      }
      return line;
    };
    // kube-apiserver's watch handler flushes after an event only when no further one is waiting for this watcher
    // (`if len(ch) == 0 { flusher.Flush() }`, k8s.io/apiserver/pkg/endpoints/handlers/watch.go): an event that
    // finds the watcher idle goes out at once, and those that pile up meanwhile go out together. Here "meanwhile" is
    // the rest of this event-loop turn: the first event of a turn is written at once (node:http merges what one
    // callback writes), later ones wait in `queued` until the turn's I/O callbacks are done. A busy server's burst
    // of writes then costs each watcher two socket writes per turn instead of one per event, and a lone event (a new
    // Service, when little else happens) waits for nothing.
    let queued: (Buffer | string)[] = [];
    let queuedBytes = 0;
    let turnOpen = false;
    const flush = (): void => {
      turnOpen = false;
      if (queued.length === 0 || res.writableEnded || res.destroyed) return;
      const lines = queued;
      queued = [];
      queuedBytes = 0;
      if (lines.length === 1) res.write(lines[0] as Buffer | string);
      else res.write(Buffer.concat(lines.map((l) => (typeof l === "string" ? Buffer.from(l) : l))));
    };
    let initialBacklog = 0;
    const write = (ev: WatchEvent): void => {
      if (ended) return;
      if (!started) {
        pending.push(ev);
        return;
      }
      const line = encode(ev);
      if (!turnOpen) {
        turnOpen = true;
        setImmediate(flush);
        res.write(line);
      } else {
        queued.push(line);
        queuedBytes += typeof line === "string" ? Buffer.byteLength(line) : line.length;
      }
      if (ev.type !== "BOOKMARK") sent++;
      if (res.writableLength + queuedBytes > initialBacklog + this.maxWatchBufferBytes) {
        // The cacher's "Forcing watcher close due to unresponsiveness": a client that stops reading loses its watch.
        // The initial ADDED burst is written before the client can read anything, so it does not count.
        queued = [];
        finish();
        res.destroy();
        return;
      }
      if (decision.closeWatchAfterEvents !== undefined && sent >= decision.closeWatchAfterEvents) finish();
    };
    try {
      handle = this.store.watch(r.resource, {
        ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
        selectors,
        ...(q.get("resourceVersion") !== null ? { resourceVersion: q.get("resourceVersion") as string } : {}),
        ...(q.get("resourceVersionMatch") ? { resourceVersionMatch: q.get("resourceVersionMatch") as string } : {}),
        ...(sendInitial !== undefined ? { sendInitialEvents: sendInitial } : {}),
        allowWatchBookmarks: allowBookmarks,
      }, write, () => finish());
    } catch (error) {
      // Once the resourceVersion parses, the cacher answers its errors (too old: 410, too new: 504) with 200 and
      // one ERROR event (newErrWatcher: "to match the uncached watch implementation"), which is what client-go and
      // client-node reflectors look for before relisting.
      if (error instanceof ApiError && (error.code === 410 || error.code === 504)) {
        res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
        res.end(`${JSON.stringify({ type: "ERROR", object: error.toStatus() })}\n`);
        return;
      }
      throw error;
    }
    this.watches.add(entry);
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked", "Cache-Control": "no-cache, private" });
    res.flushHeaders();
    started = true;
    initialBacklog = Number.POSITIVE_INFINITY;
    for (const ev of pending.splice(0)) write(ev);
    flush();
    initialBacklog = res.writableLength;
    req.on("close", finish);
    res.on("close", finish);
    res.on("error", finish);
    if (decision.closeWatchAfterEvents !== undefined && sent >= decision.closeWatchAfterEvents) finish();
    if (ended) return;
    if (timeoutSeconds !== undefined) timers.push(setTimeout(finish, timeoutSeconds * 1000));
    if (decision.closeWatchAfterSeconds !== undefined) timers.push(setTimeout(finish, decision.closeWatchAfterSeconds * 1000));
    if (allowBookmarks) {
      const bookmark = (): void => write({ type: "BOOKMARK", object: this.store.bookmarkObject(r.resource) });
      timers.push(setInterval(bookmark, this.bookmarkIntervalMs));
      // The cacher also sends one 2 s before a watch's deadline (cacheWatcher.nextBookmarkTime), so a reflector can
      // resume from a recent resourceVersion.
      if (timeoutSeconds !== undefined && timeoutSeconds > 2) timers.push(setTimeout(bookmark, (timeoutSeconds - 2) * 1000));
    }
  }

  // ---- discovery ----

  private versionInfo(): Record<string, string> {
    return {
      ...SERVED_VERSION,
      gitCommit: "0000000000000000000000000000000000000000",
      gitTreeState: "clean",
      buildDate: "2026-01-01T00:00:00Z",
      goVersion: "go1.23.0",
      compiler: "gc",
      platform: `linux/${process.arch === "x64" ? "amd64" : process.arch}`,
    };
  }

  private rootPaths(): string[] {
    const paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3", "/readyz", "/version"];
    for (const g of this.registry.groups()) {
      paths.push(`/apis/${g.name}`);
      for (const v of g.versions) paths.push(`/apis/${g.name}/${v}`);
    }
    return paths.sort();
  }

  private coreVersions(req: IncomingMessage): Record<string, unknown> {
    const host = req.headers.host ?? "127.0.0.1";
    return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: host }] };
  }

  private apiGroup(name: string): Record<string, unknown> {
    const g = this.registry.groups().find((x) => x.name === name);
    if (!g) throw notFoundPage();
    return {
      kind: "APIGroup",
      apiVersion: "v1",
      name: g.name,
      versions: g.versions.map((v) => ({ groupVersion: `${g.name}/${v}`, version: v })),
      preferredVersion: { groupVersion: `${g.name}/${g.preferredVersion}`, version: g.preferredVersion },
    };
  }

  private groupList(): Record<string, unknown> {
    return {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: this.registry.groups().map((g) => {
        const { kind: _k, apiVersion: _a, ...rest } = this.apiGroup(g.name);
        return rest;
      }),
    };
  }

  /**
   * Aggregated discovery (apidiscovery.k8s.io/v2, GA in 1.30): every group, version and resource in one answer to
   * /api or /apis, which kubectl 1.32 asks for first and which saves it one request per group version.
   */
  private aggregatedDiscovery(core: boolean, apiVersion: string): Record<string, unknown> {
    const groups = core ? [{ name: "", versions: ["v1"] }] : this.registry.groups();
    return {
      kind: "APIGroupDiscoveryList",
      apiVersion: `apidiscovery.k8s.io/${apiVersion}`,
      metadata: {},
      items: groups.map((g) => ({
        metadata: { name: g.name, creationTimestamp: null },
        versions: g.versions.map((version) => ({
          version,
          resources: this.registry.inGroupVersion(g.name, version).map((r) => {
            const d = r.def;
            const responseKind = { group: d.group, version: d.version, kind: d.kind };
            return {
              resource: d.plural,
              responseKind,
              scope: d.namespaced ? "Namespaced" : "Cluster",
              singularResource: d.singular,
              verbs: d.verbs,
              ...(d.shortNames.length ? { shortNames: d.shortNames } : {}),
              ...(r.categories.length ? { categories: r.categories } : {}),
              ...(d.subresources.length ? {
                subresources: d.subresources.map((sub) => ({
                  subresource: sub,
                  responseKind: subresourceKind(sub, d),
                  verbs: subresourceVerbs(sub),
                })),
              } : {}),
            };
          }),
          freshness: "Current",
        })),
      })),
    };
  }

  private resourceList(group: string, version: string): Record<string, unknown> {
    const resources: Record<string, unknown>[] = [];
    for (const r of this.registry.inGroupVersion(group, version)) {
      const d = r.def;
      resources.push({
        name: d.plural,
        singularName: d.singular,
        namespaced: d.namespaced,
        kind: d.kind,
        verbs: d.verbs,
        ...(d.shortNames.length ? { shortNames: d.shortNames } : {}),
        ...(r.categories.length ? { categories: r.categories } : {}),
      });
      for (const sub of d.subresources) {
        resources.push({
          name: `${d.plural}/${sub}`,
          singularName: "",
          namespaced: d.namespaced,
          ...(sub === "eviction" || sub === "binding" ? (() => {
            const k = subresourceKind(sub, d);
            return { group: k.group, version: k.version, kind: k.kind };
          })() : { kind: d.kind }),
          verbs: subresourceVerbs(sub),
        });
      }
    }
    return { kind: "APIResourceList", apiVersion: "v1", groupVersion: group ? `${group}/${version}` : version, resources };
  }

  /**
   * A minimal OpenAPI v3: one document per group/version whose PATCH operations declare the fieldValidation
   * parameter. kubectl (1.27+) reads exactly that to decide the server validates fields itself; without any
   * OpenAPI it refuses `kubectl apply`/`create` with "failed to download openapi". No schemas are published, so
   * kubectl falls back to its built-in types for strategic merge patches, as with servers that lack them.
   */
  private openapi(res: ServerResponse, path: string): void {
    if (path === "/openapi/v3") {
      const paths: Record<string, { serverRelativeURL: string }> = {};
      const gvs = new Set(this.registry.all().map((r) => (r.def.group ? `apis/${r.def.group}/${r.def.version}` : `api/${r.def.version}`)));
      for (const gv of gvs) paths[gv] = { serverRelativeURL: `/openapi/v3/${gv}?hash=${this.store.registry.all().length}` };
      return this.send(res, 200, { paths });
    }
    const m = /^\/openapi\/v3\/(api\/v1|apis\/([^/]+)\/([^/]+))$/.exec(path);
    if (!m) throw notFoundPage();
    const group = m[2] ?? "";
    const version = m[3] ?? "v1";
    const served = this.registry.inGroupVersion(group, version);
    if (served.length === 0) throw notFoundPage();
    const paths: Record<string, unknown> = {};
    for (const r of served) {
      const d = r.def;
      const base = d.group ? `/apis/${d.group}/${d.version}` : `/api/${d.version}`;
      const item = d.namespaced ? `${base}/namespaces/{namespace}/${d.plural}/{name}` : `${base}/${d.plural}/{name}`;
      const gvk = { group: d.group, version: d.version, kind: d.kind };
      const params = ["dryRun", "fieldManager", "fieldValidation", "force"].map((name) => ({
        name, in: "query", uniqueItems: true, schema: { type: name === "force" ? "boolean" : "string", uniqueItems: true },
      }));
      paths[item] = {
        patch: {
          operationId: `patch${d.kind}`,
          parameters: params,
          responses: { "200": { description: "OK" } },
          "x-kubernetes-action": "patch",
          "x-kubernetes-group-version-kind": gvk,
        },
      };
    }
    this.send(res, 200, {
      openapi: "3.0.0",
      info: { title: "Kubernetes", version: SERVED_VERSION.gitVersion },
      paths,
      components: { schemas: {} },
    });
  }

  // ---- admin: fault injection ----

  private async admin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? "GET";
    if (path === "/_sandbox/requests") {
      if (method === "GET") return this.send(res, 200, { requests: this.requestLog.entries() });
      if (method === "DELETE") {
        this.requestLog.clear();
        return this.send(res, 200, { requests: [] });
      }
      throw methodNotAllowed();
    }
    if (path === "/_sandbox/faults") {
      if (method === "GET") return this.send(res, 200, { rules: this.faults.list() });
      if (method === "DELETE") {
        this.faults.clear();
        return this.send(res, 200, { rules: [] });
      }
      if (method === "POST") {
        const body = await this.parseBody(req, await this.readBody(req));
        const id = this.faults.add(body as FaultRule);
        return this.send(res, 201, { id });
      }
      throw methodNotAllowed();
    }
    if (path === "/_sandbox/faults/expire-history" && method === "POST") {
      this.faults.expireHistory();
      return this.send(res, 200, { resourceVersion: this.store.resourceVersion() });
    }
    if (path === "/_sandbox/faults/close-watches" && method === "POST") {
      return this.send(res, 200, { closed: this.faults.closeWatches() });
    }
    const m = /^\/_sandbox\/faults\/(\d+)$/.exec(path);
    if (m && method === "DELETE") {
      if (!this.faults.remove(Number(m[1]))) throw new ApiError(404, "NotFound", `fault rule ${m[1] ?? ""} not found`);
      return this.send(res, 200, { rules: this.faults.list() });
    }
    throw notFoundPage();
  }
}

/** The verbs a subresource takes. */
function subresourceVerbs(sub: string): string[] {
  if (sub === "finalize") return ["update"];
  if (sub === "binding" || sub === "eviction") return ["create"];
  if (sub === "log") return ["get"];
  return ["get", "patch", "update"];
}

/** pods/eviction answers with policy/v1 Eviction, which kubectl drain looks for in discovery. */
function subresourceKind(sub: string, def: { group: string; version: string; kind: string }): { group: string; version: string; kind: string } {
  if (sub === "eviction") return { group: "policy", version: "v1", kind: "Eviction" };
  if (sub === "binding") return { group: "", version: "v1", kind: "Binding" };
  if (sub === "scale") return { group: "autoscaling", version: "v1", kind: "Scale" };
  return { group: def.group, version: def.version, kind: def.kind };
}

/** "v2" or "v2beta1" when the client accepts aggregated discovery before plain JSON, else undefined. */
function aggregatedDiscoveryVersion(req: IncomingMessage): string | undefined {
  for (const r of acceptRanges(req.headers.accept)) {
    if (r.params.as === "APIGroupDiscoveryList" && r.params.g === "apidiscovery.k8s.io" && (r.params.v === "v2" || r.params.v === "v2beta1")) {
      return r.params.v;
    }
    if (r.params.as === undefined) return undefined;
  }
  return undefined;
}

function parseDryRun(values: string[]): boolean {
  for (const v of values) {
    if (v !== "All") throw new ApiError(400, "BadRequest", `Invalid dryRun value: "${v}": supported values: "All"`);
  }
  return values.length > 0;
}

function limitParam(q: URLSearchParams): { limit?: number } {
  const raw = q.get("limit");
  if (raw === null || raw === "") return {};
  if (!/^-?\d+$/.test(raw)) throw new ApiError(400, "BadRequest", `limit: Invalid value: "${raw}": must be an integer`);
  const n = Number(raw);
  return n > 0 ? { limit: n } : {};
}

/** kube-apiserver's default field manager: the User-Agent up to its first "/" (e.g. "kubectl"). */
function managerFromUserAgent(ua: string | undefined): string {
  const prefix = (ua ?? "").split("/")[0]?.trim() ?? "";
  return prefix === "" ? "unknown" : prefix.slice(0, 128);
}

/**
 * Apply bodies are YAML (JSON is a subset, and what kubectl and client-node send). js-yaml arrives with
 * @kubernetes/client-node; it is imported only when a body is not plain JSON.
 */
async function parseYaml(text: string): Promise<unknown> {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // not JSON; fall through to YAML
  }
  const yaml = await import("js-yaml");
  try {
    return yaml.load(text);
  } catch (error) {
    throw new ApiError(400, "BadRequest", `error decoding YAML: ${error instanceof Error ? error.message : String(error)}`);
  }
}
