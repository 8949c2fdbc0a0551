// The in-memory object store behind the sandbox API server, with kube-apiserver's storage semantics: one global,
// monotonic resourceVersion; uid, creationTimestamp, generateName and generation handled by the server; optimistic
// concurrency; a bounded per-resource event history that serves watches from an older resourceVersion and
// consistent paginated lists (and answers 410 Gone once it no longer can); finalizers and deletionTimestamp;
// namespace termination; ownerReference garbage collection by propagationPolicy.
//
// Writes are synchronous: a read-modify-write inside one call cannot interleave with another request, which is what
// etcd's compare-and-swap gives kube-apiserver. The "controllers" kube-apiserver's deletions rely on (namespace
// controller, garbage collector, CRD finalizer) run inline, after the triggering write's own event.
import { randomUUID } from "node:crypto";
import {
  checkCrd,
  crdStatus,
  pruneOmitEmpty,
  resourcesFromCrd,
  type ResourceRegistry,
  type ServedResource,
} from "./resources.js";
import { isEmptySelector, matchesSelectors, type Selectors } from "./selectors.js";
import { pruneAndDefault, validateSchema } from "./crd-schema.js";
import { strictError, type FieldValidation } from "./typed.js";
import { ApiError, apiVersionOf, type KubeObject, type ResourceDefinition } from "./types.js";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject | Record<string, unknown>;
}

export type PatchType = "json" | "merge" | "strategic" | "apply";

/** The pieces of kube-apiserver the store calls out to; index.ts wires the real modules in. */
export interface StoreHooks {
  /** 422 with causes for an invalid object (validation.ts). */
  validate?(def: ResourceDefinition, obj: KubeObject, old?: KubeObject): void;
  /** ClusterIP/NodePort allocation and Service defaulting (services.ts). */
  services?: {
    prepareCreate(svc: KubeObject): KubeObject;
    prepareUpdate(old: KubeObject, next: KubeObject): KubeObject;
    prepareStatus?(old: KubeObject, next: KubeObject): KubeObject;
    /** Undoes a prepareUpdate whose result is not stored (later validation failure, dry run, no-op). */
    revertUpdate?(old: KubeObject, prepared: KubeObject): void;
    /** The defaults kube's decoding fills (sessionAffinity, type, ...), without any allocation. */
    applyDefaults?(svc: KubeObject): void;
    release(svc: KubeObject): void;
  };
  /** Patch application, including server-side apply and its managedFields (patch.ts). */
  applyPatch?(
    def: ResourceDefinition,
    current: KubeObject | undefined,
    patchType: PatchType,
    body: unknown,
    opts: { fieldManager?: string; force?: boolean; now: Date; subresource?: string; name?: string; namespace?: string },
  ): KubeObject;
  /** Typed decoding of built-in kinds (typed.ts): unknown fields dropped and listed, wrong JSON types a 400. */
  decode?(def: ResourceDefinition, obj: KubeObject): { object: KubeObject; unknown: string[] };
  /** managedFields bookkeeping for create/update/non-apply patches (patch.ts). */
  recordUpdate?(def: ResourceDefinition, old: KubeObject | undefined, next: KubeObject, manager: string, now: Date,
    subresource?: string): KubeObject;
}

export interface StoreOptions {
  registry: ResourceRegistry;
  /** Events kept per resource for watch resumption and paginated lists (kube's watch cache). Default 1000. */
  historyLimit?: number;
  clock?: () => Date;
  hooks?: StoreHooks;
  /** Bound pods get a grace period on DELETE, as on a real cluster (the kubelet confirms with gracePeriodSeconds=0). */
  podGracefulDeletion?: boolean;
}

export interface WriteOptions {
  dryRun?: boolean;
  fieldManager?: string;
  /** Subresource written by an update or patch ("status", "finalize"). */
  subresource?: string;
  /** What unknown fields of built-in kinds cause: 400 (Strict), a warning (Warn, the default) or nothing. */
  fieldValidation?: FieldValidation;
  /** Receives the request's warnings (answered as `Warning: 299 - "..."` headers). */
  warnings?: string[];
}

export interface DeleteOptions {
  dryRun?: boolean;
  propagationPolicy?: "Orphan" | "Background" | "Foreground";
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface ListOptions {
  namespace?: string;
  selectors?: Selectors;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

export interface ListResult {
  items: KubeObject[];
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface WatchOptions {
  namespace?: string;
  selectors?: Selectors;
  resourceVersion?: string;
  resourceVersionMatch?: string;
  sendInitialEvents?: boolean;
  allowWatchBookmarks?: boolean;
}

export interface WatchHandle {
  stop(): void;
}

interface HistoryEvent {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  key: string;
  obj: KubeObject;
  prev?: KubeObject;
}

/** Fixed-size ring of the most recent events of one resource. */
class History {
  private readonly buf: (HistoryEvent | undefined)[];
  private start = 0;
  private size = 0;
  /** Every event with rv > oldestRv is retained. */
  oldestRv = 0;

  constructor(private readonly capacity: number) {
    this.buf = new Array<HistoryEvent | undefined>(Math.max(1, capacity));
  }

  push(ev: HistoryEvent): void {
    if (this.size === this.capacity) {
      const evicted = this.buf[this.start] as HistoryEvent;
      this.oldestRv = evicted.rv;
      this.buf[this.start] = ev;
      this.start = (this.start + 1) % this.capacity;
      return;
    }
    this.buf[(this.start + this.size) % this.capacity] = ev;
    this.size++;
  }

  clear(rv: number): void {
    this.buf.fill(undefined);
    this.start = 0;
    this.size = 0;
    this.oldestRv = rv;
  }

  /** Events with rv > after, oldest first. */
  since(after: number): HistoryEvent[] {
    const out: HistoryEvent[] = [];
    for (let i = 0; i < this.size; i++) {
      const ev = this.buf[(this.start + i) % this.capacity] as HistoryEvent;
      if (ev.rv > after) out.push(ev);
    }
    return out;
  }
}

interface Watcher {
  resource: ServedResource;
  namespace?: string;
  selectors?: Selectors;
  send(ev: WatchEvent): void;
  /** Called when the store ends the watch itself (the resource stopped being served). */
  end?(): void;
}

interface Collection {
  objects: Map<string, KubeObject>;
  history: History;
  watchers: Set<Watcher>;
}

const NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";
const CRD_FINALIZER = "customresourcecleanup.apiextensions.k8s.io";

/** RFC 3339 with second precision, as metav1.Time serialises. */
export function formatTime(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z");
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits (lease acquireTime/renewTime, eventTime). */
export function formatMicroTime(d: Date, micros = d.getUTCMilliseconds() * 1000): string {
  return `${d.toISOString().slice(0, 19)}.${String(micros).padStart(6, "0")}Z`;
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

function parseTimeField(value: unknown, field: string): { date: Date; micros: number } {
  const m = typeof value === "string" ? RFC3339.exec(value) : null;
  const date = m ? new Date(`${m[1]}${m[3]}`) : undefined;
  if (!m || !date || Number.isNaN(date.getTime())) {
    throw new ApiError(400, "BadRequest",
      `parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05Z07:00": cannot parse ${JSON.stringify(field)} field`);
  }
  const micros = Number(((m[2] ?? "") + "000000").slice(0, 6));
  return { date, micros };
}

// Fields kube serialises as metav1.Time (seconds) or metav1.MicroTime (microseconds), wherever they appear. A
// client that writes milliseconds reads back what a real cluster would give it.
const TIME_FIELDS = new Set(["lastTransitionTime", "lastHeartbeatTime", "lastProbeTime", "firstTimestamp",
  "lastTimestamp", "deprecatedFirstTimestamp", "deprecatedLastTimestamp", "startedAt", "finishedAt", "startTime",
  "lastUpdateTime"]);
const MICRO_TIME_FIELDS = new Set(["acquireTime", "renewTime", "eventTime", "lastObservedTime"]);

function normalizeTimes(value: unknown, path: string): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => normalizeTimes(v, `${path}[${i}]`));
    return;
  }
  if (!value || typeof value !== "object") return;
  const rec = value as Record<string, unknown>;
  for (const [k, v] of Object.entries(rec)) {
    const p = path ? `${path}.${k}` : k;
    if (typeof v === "string" && TIME_FIELDS.has(k)) {
      rec[k] = formatTime(parseTimeField(v, p).date);
    } else if (typeof v === "string" && MICRO_TIME_FIELDS.has(k)) {
      // metav1.MicroTime parses with RFC3339Micro, whose ".000000" takes exactly six digits: a JavaScript Date's
      // three (toISOString) are a 400 on a real cluster, which is why client-node has V1MicroTime.
      const frac = RFC3339.exec(v)?.[2];
      if (frac !== undefined && frac.length !== 6 || (frac === undefined && RFC3339.test(v))) {
        const rest = v.slice(19);
        throw new ApiError(400, "BadRequest",
          `parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse ${JSON.stringify(rest)} as ".000000"`);
      }
      const t = parseTimeField(v, p);
      rec[k] = formatMicroTime(t.date, t.micros);
    } else if (v && typeof v === "object") {
      normalizeTimes(v, p);
    }
  }
}

/**
 * Stored objects are frozen: reads hand them out without copying (lists of 10k objects, watch fan-out), so an
 * in-process caller that mutates what it got fails loudly (TypeError in strict mode) instead of corrupting the store.
 */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]));
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const ka = Object.keys(ra).filter((k) => ra[k] !== undefined);
  const kb = Object.keys(rb).filter((k) => rb[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => deepEqual(ra[k], rb[k]));
}

function notFound(res: ServedResource, name: string): ApiError {
  const qualified = res.def.group ? `${res.def.plural}.${res.def.group}` : res.def.plural;
  return new ApiError(404, "NotFound", `${qualified} "${name}" not found`,
    { name, group: res.def.group, kind: res.def.plural });
}

function conflict(res: ServedResource, name: string, detail: string): ApiError {
  const qualified = res.def.group ? `${res.def.plural}.${res.def.group}` : res.def.plural;
  return new ApiError(409, "Conflict", `Operation cannot be fulfilled on ${qualified} "${name}": ${detail}`,
    { name, group: res.def.group, kind: res.def.plural });
}

function badRequest(message: string): ApiError {
  return new ApiError(400, "BadRequest", message);
}

function invalid(res: ServedResource, name: string, causes: { reason: string; message: string; field: string }[]): ApiError {
  const qualified = res.def.group ? `${res.def.kind}.${res.def.group}` : res.def.kind;
  const text = causes.map((c) => `${c.field}: ${c.message}`).join(", ");
  return new ApiError(422, "Invalid", `${qualified} "${name}" is invalid: ${text}`,
    { name, group: res.def.group, kind: res.def.kind, causes });
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The checks kube-apiserver makes on every object, used when validation.ts is not wired in. */
function basicValidate(res: ServedResource, obj: KubeObject): void {
  const name = obj.metadata.name ?? "";
  if (!DNS_SUBDOMAIN.test(name) || name.length > 253) {
    throw invalid(res, name, [{ reason: "FieldValueInvalid", field: "metadata.name",
      message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')` }]);
  }
}

/**
 * ObjectMeta's maps and lists are `omitempty` in Go: an emptied labels map (e.g. after `kubectl label x k-`) is
 * absent from what kube-apiserver returns, not `{}`. Custom resources' metadata goes through ObjectMeta too.
 */
function pruneMetadata(meta: KubeObject["metadata"]): void {
  for (const key of ["labels", "annotations", "finalizers", "ownerReferences", "managedFields"]) {
    const v = meta[key];
    if (v === null || (Array.isArray(v) && v.length === 0) ||
      (v !== undefined && typeof v === "object" && !Array.isArray(v) && Object.keys(v as object).length === 0)) {
      delete meta[key];
    }
  }
}

function objectKey(res: ServedResource, namespace: string | undefined, name: string): string {
  return res.def.namespaced ? `${namespace ?? ""}/${name}` : name;
}

/** Everything generation tracks: the object minus metadata and (when it has its own endpoint) status. */
function generationPart(res: ServedResource, obj: KubeObject): Record<string, unknown> {
  const { metadata: _m, status, apiVersion: _a, kind: _k, ...rest } = obj;
  return res.def.subresources.includes("status") ? rest : { ...rest, status };
}

function withoutVolatileMeta(obj: KubeObject): KubeObject {
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = obj.metadata;
  return { ...obj, metadata };
}

function parseRv(value: string, what = "resourceVersion"): number {
  if (!/^\d+$/.test(value)) throw badRequest(`${what}: Invalid value: "${value}": must be a non-negative integer`);
  return Number(value);
}

function tooLarge(requested: number, current: number): ApiError {
  return new ApiError(504, "Timeout", `Timeout: Too large resource version: ${requested}, current: ${current}`, {
    causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version", field: "" }],
    retryAfterSeconds: 1,
  });
}

function expired(requested: number, oldest: number): ApiError {
  return new ApiError(410, "Expired", `too old resource version: ${requested} (${oldest + 1})`);
}

interface ContinueToken {
  rv: number;
  start: string;
}

function encodeContinue(t: ContinueToken): string {
  // Same shape as kube-apiserver's token (storage.continueToken), base64url-encoded JSON.
  return Buffer.from(JSON.stringify({ v: "meta.k8s.io/v1", rv: t.rv, start: t.start })).toString("base64url");
}

function decodeContinue(token: string): ContinueToken {
  try {
    const raw = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { v?: string; rv?: number; start?: string };
    if (raw.v !== "meta.k8s.io/v1" || typeof raw.rv !== "number" || typeof raw.start !== "string") throw new Error("shape");
    return { rv: raw.rv, start: raw.start };
  } catch {
    throw badRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
  }
}

export class Store {
  readonly registry: ResourceRegistry;
  private readonly collections = new Map<string, Collection>();
  private rv = 0;
  private expiredAt = 0;
  /** owner uid -> "storageKey\0key" of its dependents. */
  private readonly byOwner = new Map<string, Set<string>>();
  /** namespace -> number of stored objects in it. */
  private readonly namespaceCounts = new Map<string, number>();
  private readonly historyLimit: number;
  private readonly clock: () => Date;
  private readonly hooks: StoreHooks;
  private readonly podGracefulDeletion: boolean;

  constructor(opts: StoreOptions) {
    this.registry = opts.registry;
    this.historyLimit = opts.historyLimit ?? 1000;
    this.clock = opts.clock ?? (() => new Date());
    this.hooks = opts.hooks ?? {};
    this.podGracefulDeletion = opts.podGracefulDeletion ?? true;
  }

  /** The current (latest) resourceVersion. */
  resourceVersion(): string {
    return String(this.rv);
  }

  /**
   * Forgets all watch history: a watch or continue from any resourceVersion handed out so far gets 410 Gone.
   * The resourceVersion moves on by one (as if compaction were a write), so a relist gets one that works.
   */
  expireHistory(): void {
    this.rv++;
    this.expiredAt = this.rv;
    for (const c of this.collections.values()) c.history.clear(this.rv);
  }

  /** Number of stored objects, for tests and the memory check. */
  size(): number {
    let n = 0;
    for (const c of this.collections.values()) n += c.objects.size;
    return n;
  }

  watcherCount(): number {
    let n = 0;
    for (const c of this.collections.values()) n += c.watchers.size;
    return n;
  }

  private collection(storageKey: string): Collection {
    let c = this.collections.get(storageKey);
    if (!c) {
      c = { objects: new Map(), history: new History(this.historyLimit), watchers: new Set() };
      // A resource never written has missed no events: only an explicit expiry limits how far back it goes.
      c.history.oldestRv = this.expiredAt;
      this.collections.set(storageKey, c);
    }
    return c;
  }

  /** The stored object in the shape and version `res` serves. Never mutate the result: it may be the stored one. */
  private serve(res: ServedResource, obj: KubeObject): KubeObject {
    const converted = res.fromStorage ? res.fromStorage(obj) : obj;
    const apiVersion = apiVersionOf(res.def);
    return converted.apiVersion === apiVersion ? converted : { ...converted, apiVersion };
  }

  private toStorage(res: ServedResource, obj: KubeObject): KubeObject {
    return res.toStorage ? res.toStorage(obj) : obj;
  }

  private now(): Date {
    return this.clock();
  }

  private emit(res: ServedResource, type: HistoryEvent["type"], key: string, obj: KubeObject, prev?: KubeObject): void {
    const c = this.collection(res.storageKey);
    const ev: HistoryEvent = { rv: this.rv, type, key, obj, ...(prev ? { prev } : {}) };
    c.history.push(ev);
    for (const w of [...c.watchers]) this.deliver(w, ev);
  }

  /**
   * One event to one watcher, with the cacher's selector semantics: an object that starts matching arrives as
   * ADDED, one that stops matching as DELETED (its last matching state, at the new resourceVersion).
   */
  private deliver(w: Watcher, ev: HistoryEvent): void {
    const ns = (o: KubeObject | undefined): string | undefined => o?.metadata.namespace;
    if (w.namespace !== undefined && ns(ev.obj) !== w.namespace) return;
    const cur = this.serve(w.resource, ev.obj);
    const matches = (o: KubeObject): boolean => !w.selectors || matchesSelectors(w.selectors, o);
    if (ev.type === "ADDED") {
      if (matches(cur)) w.send({ type: "ADDED", object: cur });
      return;
    }
    if (ev.type === "DELETED") {
      if (matches(cur)) w.send({ type: "DELETED", object: cur });
      return;
    }
    if (!w.selectors || isEmptySelector(w.selectors)) {
      w.send({ type: "MODIFIED", object: cur });
      return;
    }
    const prev = ev.prev ? this.serve(w.resource, ev.prev) : undefined;
    const was = prev ? matches(prev) : false;
    const is = matches(cur);
    if (was && is) w.send({ type: "MODIFIED", object: cur });
    else if (is) w.send({ type: "ADDED", object: cur });
    else if (was && prev) {
      w.send({ type: "DELETED", object: { ...prev, metadata: { ...prev.metadata, resourceVersion: String(ev.rv) } } });
    }
  }

  private namespaceExists(namespace: string): KubeObject | undefined {
    return this.collections.get("/namespaces")?.objects.get(namespace);
  }

  private checkNamespace(res: ServedResource, namespace: string | undefined, name: string): void {
    if (!res.def.namespaced) return;
    if (!namespace) throw badRequest("the server could not find the requested resource: namespace is required");
    const ns = this.namespaceExists(namespace);
    if (!ns) throw new ApiError(404, "NotFound", `namespaces "${namespace}" not found`, { name: namespace, kind: "namespaces" });
    if (ns.metadata.deletionTimestamp) {
      const qualified = res.def.group ? `${res.def.plural}.${res.def.group}` : res.def.plural;
      const message = `unable to create new content in namespace ${namespace} because it is being terminated`;
      throw new ApiError(403, "Forbidden", `${qualified} "${name}" is forbidden: ${message}`, {
        name, group: res.def.group, kind: res.def.plural,
        causes: [{ reason: "NamespaceTerminating", message, field: "metadata.namespace" }],
      });
    }
  }

  // ---- reads ----

  get(res: ServedResource, namespace: string | undefined, name: string): KubeObject {
    const obj = this.collection(res.storageKey).objects.get(objectKey(res, namespace, name));
    if (!obj) throw notFound(res, name);
    return this.serve(res, obj);
  }

  /** Objects of a storage as they were at `rv` (undoing newer events), or 410 if history no longer reaches it. */
  private snapshot(res: ServedResource, rv: number): Map<string, KubeObject> {
    const c = this.collection(res.storageKey);
    if (rv >= this.rv) return c.objects;
    // etcd3 store: a list at a compacted revision (interpretListError).
    if (rv < c.history.oldestRv) throw new ApiError(410, "Expired", "The resourceVersion for the provided list is too old.");
    const state = new Map(c.objects);
    const newer = c.history.since(rv);
    for (let i = newer.length - 1; i >= 0; i--) {
      const ev = newer[i] as HistoryEvent;
      if (ev.type === "ADDED") state.delete(ev.key);
      else if (ev.prev) state.set(ev.key, ev.prev);
    }
    return state;
  }

  list(res: ServedResource, opts: ListOptions = {}): ListResult {
    let snapshotRv = this.rv;
    let start: string | undefined;
    let limit = opts.limit && opts.limit > 0 ? opts.limit : undefined;
    if (opts.resourceVersionMatch && !opts.resourceVersion) {
      throw invalidOptions("resourceVersionMatch", opts.resourceVersionMatch,
        "resourceVersionMatch is forbidden unless resourceVersion is provided");
    }
    if (opts.continue) {
      if (opts.resourceVersion && opts.resourceVersion !== "0") {
        throw badRequest("specifying resource version is not allowed when using continue");
      }
      const token = decodeContinue(opts.continue);
      const c = this.collection(res.storageKey);
      if (token.rv < c.history.oldestRv) {
        throw new ApiError(410, "Expired",
          "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.");
      }
      snapshotRv = token.rv;
      start = token.start;
    } else if (opts.resourceVersion && opts.resourceVersion !== "0") {
      const requested = parseRv(opts.resourceVersion);
      if (requested > this.rv) throw tooLarge(requested, this.rv);
      if (opts.resourceVersionMatch === "Exact") snapshotRv = requested;
      else if (opts.resourceVersionMatch && opts.resourceVersionMatch !== "NotOlderThan") {
        throw invalidOptions("resourceVersionMatch", opts.resourceVersionMatch,
          `supported values: "Exact", "NotOlderThan", ""`);
      }
    } else if (opts.resourceVersion === "0") {
      // Served from the watch cache in 1.32, which ignores limit: the whole list in one page, no continue.
      if (opts.resourceVersionMatch === "Exact") {
        throw invalidOptions("resourceVersionMatch", "Exact", "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"");
      }
      limit = undefined;
    }
    const state = this.snapshot(res, snapshotRv);
    const keys = [...state.keys()].sort();
    const prefix = res.def.namespaced && opts.namespace ? `${opts.namespace}/` : undefined;
    const items: KubeObject[] = [];
    let lastKey: string | undefined;
    let remaining = 0;
    let more = false;
    for (const key of keys) {
      if (start !== undefined && key <= start) continue;
      if (prefix && !key.startsWith(prefix)) continue;
      const obj = this.serve(res, state.get(key) as KubeObject);
      if (opts.selectors && !matchesSelectors(opts.selectors, obj)) continue;
      if (limit !== undefined && items.length >= limit) {
        more = true;
        remaining++;
        continue;
      }
      items.push(obj);
      lastKey = key;
    }
    const result: ListResult = { items, resourceVersion: String(snapshotRv) };
    if (more && lastKey !== undefined) {
      result.continue = encodeContinue({ rv: snapshotRv, start: lastKey });
      // kube-apiserver reports remainingItemCount only when no selector filtered the list.
      if (!opts.selectors || isEmptySelector(opts.selectors)) result.remainingItemCount = remaining;
    }
    return result;
  }

  /**
   * Starts a watch. Events are delivered synchronously through `send`, in resourceVersion order; the initial
   * ADDED events (no resourceVersion, "0", or sendInitialEvents) are sent before this returns.
   */
  watch(res: ServedResource, opts: WatchOptions, send: (ev: WatchEvent) => void, end?: () => void): WatchHandle {
    const c = this.collection(res.storageKey);
    const w: Watcher = {
      resource: res,
      send,
      ...(end ? { end } : {}),
      ...(opts.namespace !== undefined && res.def.namespaced ? { namespace: opts.namespace } : {}),
      ...(opts.selectors ? { selectors: opts.selectors } : {}),
    };
    const rvParam = opts.resourceVersion ?? "";
    if (opts.sendInitialEvents !== undefined) {
      if (opts.resourceVersionMatch !== "NotOlderThan") {
        throw invalidOptions("resourceVersionMatch", opts.resourceVersionMatch ?? "",
          "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan");
      }
      if (opts.sendInitialEvents && !opts.allowWatchBookmarks) {
        throw invalidOptions("allowWatchBookmarks", "false", "sendInitialEvents requires setting allowWatchBookmarks to true");
      }
    } else if (opts.resourceVersionMatch) {
      throw invalidOptions("resourceVersionMatch", opts.resourceVersionMatch,
        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided");
    }
    const initial = opts.sendInitialEvents ?? (rvParam === "" || rvParam === "0");
    if (initial) {
      if (rvParam !== "" && rvParam !== "0") {
        const requested = parseRv(rvParam);
        if (requested > this.rv) throw tooLarge(requested, this.rv);
      }
      const ns = w.namespace !== undefined ? `${w.namespace}/` : undefined;
      for (const key of [...c.objects.keys()].sort()) {
        if (ns && !key.startsWith(ns)) continue;
        const obj = this.serve(res, c.objects.get(key) as KubeObject);
        if (w.selectors && !matchesSelectors(w.selectors, obj)) continue;
        send({ type: "ADDED", object: obj });
      }
      if (opts.sendInitialEvents) {
        // KEP-3157 (watch-list): a bookmark marks the end of the initial state.
        send({ type: "BOOKMARK", object: this.bookmarkObject(res, { "k8s.io/initial-events-end": "true" }) });
      }
    } else if (rvParam !== "") {
      const requested = parseRv(rvParam);
      if (requested > this.rv) throw tooLarge(requested, this.rv);
      if (requested < c.history.oldestRv) throw expired(requested, c.history.oldestRv);
      for (const ev of c.history.since(requested)) this.deliver(w, ev);
    }
    c.watchers.add(w);
    return { stop: () => void c.watchers.delete(w) };
  }

  /** The object a BOOKMARK event carries: only kind, apiVersion and metadata.resourceVersion (+ annotations). */
  bookmarkObject(res: ServedResource, annotations?: Record<string, string>): KubeObject {
    return {
      kind: res.def.kind,
      apiVersion: apiVersionOf(res.def),
      metadata: { resourceVersion: this.resourceVersion(), ...(annotations ? { annotations } : {}) },
    };
  }

  // ---- writes ----

  private checkBody(res: ServedResource, body: unknown): KubeObject {
    if (!body || typeof body !== "object" || Array.isArray(body)) {
      throw badRequest("the body of the request must be a JSON object");
    }
    const input = body as KubeObject;
    const apiVersion = apiVersionOf(res.def);
    if (input.kind !== undefined && input.kind !== res.def.kind) {
      throw badRequest(`the API version in the data (${String(input.apiVersion)}) and kind (${String(input.kind)}) do not match the resource (${apiVersion}, Kind=${res.def.kind})`);
    }
    if (input.apiVersion !== undefined && input.apiVersion !== apiVersion) {
      throw badRequest(`the API version in the data (${String(input.apiVersion)}) does not match the expected API version (${apiVersion})`);
    }
    // apiVersion and kind first, as kube-apiserver serialises them.
    const { apiVersion: _a, kind: _k, ...rest } = structuredClone(input);
    const obj = { apiVersion, kind: res.def.kind, ...rest } as KubeObject;
    if (!obj.metadata || typeof obj.metadata !== "object" || Array.isArray(obj.metadata)) obj.metadata = {};
    try {
      normalizeTimes(obj, "");
    } catch (error) {
      // A time that does not parse fails the typed decoding, reported as kube's decoder reports it.
      if (error instanceof ApiError) {
        throw badRequest(`${res.def.kind} in version "${res.def.version}" cannot be handled as a ${res.def.kind}: ${error.message}`);
      }
      throw error;
    }
    return obj;
  }

  private validate(res: ServedResource, obj: KubeObject, old?: KubeObject): void {
    if (this.hooks.validate) this.hooks.validate(res.def, obj, old);
    else basicValidate(res, obj);
    if (res.schema) {
      const causes = validateSchema(res.schema, obj);
      if (causes.length > 0) throw invalid(res, obj.metadata.name ?? "", causes);
    }
  }

  private recordManager(res: ServedResource, old: KubeObject | undefined, next: KubeObject, manager: string | undefined,
    subresource?: string): void {
    if (!this.hooks.recordUpdate || manager === undefined) return;
    const result = this.hooks.recordUpdate(res.def, old, next, manager, this.now(), subresource);
    if (result.metadata.managedFields === undefined) delete next.metadata.managedFields;
    else next.metadata.managedFields = result.metadata.managedFields;
  }

  /** The managedFields of a Service write as recorded before allocation: on a defaulted copy of the request. */
  private managedBeforeAllocation(res: ServedResource, old: KubeObject | undefined, obj: KubeObject,
    manager: string | undefined): KubeObject {
    const copy = structuredClone(obj);
    this.hooks.services?.applyDefaults?.(copy);
    pruneOmitEmpty(res.storageKey, copy);
    this.recordManager(res, old, copy, manager);
    return copy;
  }

  private generateName(res: ServedResource, namespace: string | undefined, base: string): string {
    const objects = this.collection(res.storageKey).objects;
    for (let attempt = 0; attempt < 8; attempt++) {
      let suffix = "";
      for (let i = 0; i < 5; i++) suffix += NAME_SUFFIX_ALPHABET[Math.floor(Math.random() * NAME_SUFFIX_ALPHABET.length)];
      const name = `${base.slice(0, 58)}${suffix}`;
      if (!objects.has(objectKey(res, namespace, name))) return name;
    }
    return `${base.slice(0, 58)}${randomUUID().slice(0, 5)}`;
  }

  /** The typed round trip of a body (see StoreHooks.decode), with fieldValidation applied to unknown fields. */
  private typed(res: ServedResource, obj: KubeObject, opts: WriteOptions, forPatch: boolean): KubeObject {
    let object = obj;
    let unknown: string[] = [];
    if (res.def.custom) {
      // apiextensions-apiserver: unknown fields pruned and defaults applied per the structural schema.
      if (res.schema) unknown = pruneAndDefault(res.schema, object);
    } else if (this.hooks.decode) {
      ({ object, unknown } = this.hooks.decode(res.def, obj));
    }
    if (unknown.length > 0) {
      const mode = opts.fieldValidation ?? "Warn";
      if (mode === "Strict") throw strictError(res.def, unknown, forPatch);
      if (mode === "Warn") opts.warnings?.push(...unknown.map((p) => `unknown field ${JSON.stringify(p)}`));
    }
    return object;
  }

  create(res: ServedResource, namespace: string | undefined, body: unknown, opts: WriteOptions = {}): KubeObject {
    const obj = this.typed(res, this.checkBody(res, body), opts, false);
    return this.createChecked(res, namespace, obj, opts, true);
  }

  private createChecked(res: ServedResource, namespace: string | undefined, input: KubeObject, opts: WriteOptions,
    recordManager: boolean): KubeObject {
    let obj = input;
    const meta = obj.metadata;
    if (res.def.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== "" && namespace !== undefined && meta.namespace !== namespace) {
        throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
      }
      meta.namespace = namespace ?? meta.namespace;
    } else {
      delete meta.namespace;
    }
    if (!meta.name && meta.generateName) meta.name = this.generateName(res, meta.namespace, meta.generateName);
    if (!meta.name) {
      throw invalid(res, "", [{ reason: "FieldValueRequired", field: "metadata.name", message: "Required value: name or generateName is required" }]);
    }
    const name = meta.name;
    this.checkNamespace(res, meta.namespace, name);
    const c = this.collection(res.storageKey);
    const key = objectKey(res, meta.namespace, name);
    if (c.objects.has(key)) {
      const qualified = res.def.group ? `${res.def.plural}.${res.def.group}` : res.def.plural;
      throw new ApiError(409, "AlreadyExists", `${qualified} "${name}" already exists`,
        { name, group: res.def.group, kind: res.def.plural });
    }
    if (typeof meta.resourceVersion === "string" && /^\d+$/.test(meta.resourceVersion) && Number(meta.resourceVersion) > 0) {
      // etcd3 store's Create refuses it, as an internal error: the object was most likely copied from a read.
      throw new ApiError(500, "InternalError", "resourceVersion should not be set on objects to be created");
    }
    const now = this.now();
    meta.uid = randomUUID();
    meta.creationTimestamp = formatTime(now);
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    delete meta.resourceVersion;
    delete meta.selfLink;
    if (res.tracksGeneration) meta.generation = 1;
    else delete meta.generation;
    res.prepareCreate?.(obj);
    if (res.storageKey === "apiextensions.k8s.io/customresourcedefinitions") {
      checkCrd(obj);
      obj.status = crdStatus(obj, formatTime(now));
      const finalizers = meta.finalizers ?? [];
      if (!finalizers.includes(CRD_FINALIZER)) meta.finalizers = [...finalizers, CRD_FINALIZER];
    }
    let allocated: KubeObject | undefined;
    let preAllocation: KubeObject | undefined;
    if (res.storageKey === "/services" && this.hooks.services) {
      // kube-apiserver's field manager sees the decoded, defaulted object; ClusterIPs and NodePorts are allocated
      // later by the registry, so the creator does not own them.
      if (recordManager) preAllocation = this.managedBeforeAllocation(res, undefined, obj, opts.fieldManager);
      obj = this.hooks.services.prepareCreate(obj);
      allocated = obj;
    }
    try {
      res.normalize?.(obj);
      this.validate(res, obj);
      pruneOmitEmpty(res.storageKey, obj);
      if (preAllocation) obj.metadata.managedFields = preAllocation.metadata.managedFields;
      else if (recordManager) this.recordManager(res, undefined, obj, opts.fieldManager);
      pruneMetadata(obj.metadata);
    } catch (error) {
      if (allocated) this.hooks.services?.release(allocated);
      throw error;
    }
    if (opts.dryRun) {
      if (allocated) this.hooks.services?.release(allocated);
      return this.serve(res, this.toStorage(res, obj));
    }
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    const stored = this.toStorage(res, obj);
    this.put(res.storageKey, key, stored);
    this.emit(res, "ADDED", key, stored);
    this.afterCreate(res, stored);
    return this.serve(res, stored);
  }

  private afterCreate(res: ServedResource, obj: KubeObject): void {
    if (res.storageKey === "apiextensions.k8s.io/customresourcedefinitions") {
      this.registry.registerCrd(obj);
    } else if (res.storageKey === "/namespaces") {
      // The serviceaccounts controller gives every namespace a "default" ServiceAccount.
      const sa = this.registry.lookup({ group: "", version: "v1", plural: "serviceaccounts" });
      const ns = obj.metadata.name as string;
      if (sa && !this.collection(sa.storageKey).objects.has(`${ns}/default`)) {
        this.createChecked(sa, ns, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: ns } }, {}, false);
      }
    }
  }

  /** PUT semantics: optimistic concurrency, status/main split, server-owned metadata kept, create-on-update. */
  update(res: ServedResource, namespace: string | undefined, name: string, body: unknown, opts: WriteOptions = {}): KubeObject {
    const obj = this.typed(res, this.checkBody(res, body), opts, false);
    if (obj.metadata.name !== undefined && obj.metadata.name !== name) {
      throw badRequest(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`);
    }
    if (res.def.namespaced && obj.metadata.namespace && namespace !== undefined && obj.metadata.namespace !== namespace) {
      throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
    }
    obj.metadata.name = name;
    const c = this.collection(res.storageKey);
    const key = objectKey(res, namespace, name);
    const stored = c.objects.get(key);
    if (!stored) {
      if (res.allowCreateOnUpdate && !opts.subresource) {
        delete obj.metadata.resourceVersion;
        return this.createChecked(res, namespace, obj, opts, true);
      }
      throw notFound(res, name);
    }
    const current = this.serve(res, stored);
    const rv = obj.metadata.resourceVersion;
    if (rv !== undefined && rv !== "") {
      if (rv !== current.metadata.resourceVersion) {
        throw conflict(res, name, "the object has been modified; please apply your changes to the latest version and try again");
      }
    } else if (!res.allowUnconditionalUpdate) {
      throw invalid(res, name, [{ reason: "FieldValueInvalid", field: "metadata.resourceVersion",
        message: "Invalid value: 0x0: must be specified for an update" }]);
    }
    return this.writeUpdate(res, key, current, obj, opts, true);
  }

  /** The shared tail of update and patch: builds the next object from current + input and stores it. */
  private writeUpdate(res: ServedResource, key: string, current: KubeObject, input: KubeObject, opts: WriteOptions,
    recordManager: boolean): KubeObject {
    let next: KubeObject;
    const sub = opts.subresource;
    if (sub === "status") {
      next = { ...structuredClone(current), status: input.status };
      if (input.status === undefined) delete next.status;
      // Server-side apply computed the managedFields of this write (recordManager is off for it): keep them.
      if (!recordManager && input.metadata.managedFields !== undefined) next.metadata.managedFields = input.metadata.managedFields;
    } else if (sub === "binding") {
      next = input;
    } else if (sub === "finalize") {
      const spec = (current.spec ?? {}) as Record<string, unknown>;
      const finalizers = (input.spec as { finalizers?: unknown } | undefined)?.finalizers;
      next = { ...structuredClone(current), spec: { ...spec, finalizers: Array.isArray(finalizers) ? finalizers : [] } };
    } else if (sub !== undefined) {
      throw notFound(res, key);
    } else {
      next = input;
      if (res.def.subresources.includes("status")) {
        if (current.status === undefined) delete next.status;
        else next.status = structuredClone(current.status);
      }
      if (res.storageKey === "/namespaces") {
        // spec.finalizers changes only through /finalize; the metadata.name label is the server's (1.22+).
        next.spec = { ...((next.spec ?? {}) as Record<string, unknown>), finalizers: (current.spec as { finalizers?: unknown } | undefined)?.finalizers ?? [] };
        next.metadata.labels = { ...(next.metadata.labels ?? {}), "kubernetes.io/metadata.name": current.metadata.name ?? "" };
      }
    }
    const meta = next.metadata;
    const cur = current.metadata;
    meta.uid = cur.uid;
    meta.creationTimestamp = cur.creationTimestamp;
    meta.namespace = cur.namespace;
    meta.name = cur.name;
    if (cur.deletionTimestamp) meta.deletionTimestamp = cur.deletionTimestamp;
    else delete meta.deletionTimestamp;
    if (cur.deletionGracePeriodSeconds !== undefined) meta.deletionGracePeriodSeconds = cur.deletionGracePeriodSeconds;
    else delete meta.deletionGracePeriodSeconds;
    if (cur.generation !== undefined) meta.generation = cur.generation;
    else delete meta.generation;
    delete meta.selfLink;
    if (cur.deletionTimestamp) {
      const added = (meta.finalizers ?? []).filter((f) => !(cur.finalizers ?? []).includes(f));
      if (added.length > 0) {
        throw invalid(res, cur.name ?? "", [{ reason: "FieldValueForbidden", field: "metadata.finalizers",
          message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((f) => JSON.stringify(f)).join(", ")}}` }]);
      }
    }
    if (res.storageKey === "apiextensions.k8s.io/customresourcedefinitions" && sub === undefined) {
      checkCrd(next);
      next.status = { ...crdStatus(next, formatTime(this.now())), ...(current.status as object) };
    }
    let prepared: KubeObject | undefined;
    let preAllocation: KubeObject | undefined;
    const services = this.hooks.services;
    if (res.storageKey === "/services" && services) {
      if (sub === "status") {
        if (services.prepareStatus) next = services.prepareStatus(current, next);
        else defaultIngressIpMode(next);
      } else if (sub === undefined) {
        if (recordManager) preAllocation = this.managedBeforeAllocation(res, current, next, opts.fieldManager);
        next = services.prepareUpdate(current, next);
        prepared = next;
      }
    } else if (res.storageKey === "/services" && sub === "status") {
      defaultIngressIpMode(next);
    }
    const abandon = (): void => {
      if (prepared) services?.revertUpdate?.(current, prepared);
    };
    try {
      res.normalize?.(next);
      // A bind is not an update: BindingREST writes through GuaranteedUpdate, past the pod update validation.
      if (sub !== "binding") this.validate(res, next, current);
      if (res.tracksGeneration && !deepEqual(generationPart(res, next), generationPart(res, current))) {
        next.metadata.generation = (current.metadata.generation ?? 0) + 1;
      }
      pruneOmitEmpty(res.storageKey, next);
      if (preAllocation) next.metadata.managedFields = preAllocation.metadata.managedFields;
      else if (recordManager) this.recordManager(res, current, next, opts.fieldManager, sub);
      pruneMetadata(next.metadata);
    } catch (error) {
      abandon();
      throw error;
    }
    // An update that changes nothing is not written: same resourceVersion, no event (etcd3 store's GuaranteedUpdate).
    if (deepEqual(withoutVolatileMeta(next), withoutVolatileMeta(current))) {
      abandon();
      return current;
    }
    if (opts.dryRun) {
      abandon();
      next.metadata.resourceVersion = current.metadata.resourceVersion;
      return next;
    }
    const c = this.collection(res.storageKey);
    const prevStored = c.objects.get(key) as KubeObject;
    if (next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0 && this.readyToRemove(res, next)) {
      // The update that empties the finalizers of a terminating object deletes it instead of writing it
      // (genericregistry Store.Update's errEmptiedFinalizers): one DELETED event carrying the last stored state.
      return this.serve(res, this.remove(res, key, prevStored));
    }
    this.rv++;
    next.metadata.resourceVersion = String(this.rv);
    const stored = this.toStorage(res, next);
    this.put(res.storageKey, key, stored);
    this.emit(res, "MODIFIED", key, stored, prevStored);
    if (res.storageKey === "apiextensions.k8s.io/customresourcedefinitions" && !stored.metadata.deletionTimestamp) {
      this.registry.registerCrd(stored);
    }
    return this.serve(res, stored);
  }

  /** PATCH: the patch applied to the current object, then stored as an update (or a create, for apply). */
  patch(res: ServedResource, namespace: string | undefined, name: string, patchType: PatchType, body: unknown,
    opts: WriteOptions & { force?: boolean } = {}): { object: KubeObject; created: boolean } {
    const apply = this.hooks.applyPatch;
    if (!apply) throw new ApiError(415, "UnsupportedMediaType", "patch is not available in this server");
    const c = this.collection(res.storageKey);
    const key = objectKey(res, namespace, name);
    const stored = c.objects.get(key);
    const current = stored ? this.serve(res, stored) : undefined;
    if (!current && (patchType !== "apply" || opts.subresource)) throw notFound(res, name);
    const patchOpts = { now: this.now(), name, ...(namespace !== undefined ? { namespace } : {}),
      ...(opts.subresource !== undefined ? { subresource: opts.subresource } : {}),
      ...(opts.fieldManager !== undefined ? { fieldManager: opts.fieldManager } : {}),
      ...(opts.force !== undefined ? { force: opts.force } : {}) };
    // applyPatch works on its own copy (its contract), and the stored object is frozen besides: no copy here.
    const result = apply(res.def, current, patchType, body, patchOpts);
    const obj = this.typed(res, this.checkBody(res, result), opts, true);
    if (obj.metadata.name !== undefined && obj.metadata.name !== name) {
      throw badRequest(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`);
    }
    obj.metadata.name = name;
    if (!current) {
      return { object: this.createChecked(res, namespace, obj, opts, false), created: true };
    }
    const rv = obj.metadata.resourceVersion;
    if (rv !== undefined && rv !== "" && rv !== current.metadata.resourceVersion) {
      throw conflict(res, name, "the object has been modified; please apply your changes to the latest version and try again");
    }
    return { object: this.writeUpdate(res, key, current, obj, opts, patchType !== "apply"), created: false };
  }

  /**
   * POST pods/{name}/binding, the scheduler's bind (pkg/registry/core/pod/storage BindingREST): sets spec.nodeName
   * and the PodScheduled condition once; a pod already bound is a 409, a terminating one a 409 too.
   */
  bind(res: ServedResource, namespace: string | undefined, name: string, body: unknown, opts: WriteOptions = {}): KubeObject {
    const binding = (body ?? {}) as { target?: { kind?: string; name?: string }; metadata?: { uid?: string; annotations?: Record<string, string> } };
    const target = binding.target ?? {};
    if (target.kind !== undefined && target.kind !== "" && target.kind !== "Node") {
      throw invalid(res, name, [{ reason: "FieldValueNotSupported", field: "target.kind", message: `Unsupported value: "${target.kind}": supported values: "Node"` }]);
    }
    if (!target.name) throw invalid(res, name, [{ reason: "FieldValueRequired", field: "target.name", message: "Required value" }]);
    const key = objectKey(res, namespace, name);
    const stored = this.collection(res.storageKey).objects.get(key);
    if (!stored) throw notFound(res, name);
    const current = this.serve(res, stored);
    // setPodHostAndAnnotations: the Binding's uid is a storage precondition (a pod created again under the same
    // name is not the one the scheduler decided for); its failure is a 409 (storeerr.InterpretUpdateError).
    const uid = binding.metadata?.uid;
    if (uid && uid !== current.metadata.uid) {
      throw conflict(res, name, `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${current.metadata.uid ?? ""}`);
    }
    if (current.metadata.deletionTimestamp) throw conflict(res, name, `pod ${name} is being deleted, cannot be assigned to a host`);
    const spec = (current.spec ?? {}) as { nodeName?: string };
    if (spec.nodeName) throw conflict(res, name, `pod ${name} is already assigned to node "${spec.nodeName}"`);
    const next = structuredClone(current);
    (next.spec as { nodeName?: string }).nodeName = target.name;
    if (binding.metadata?.annotations) {
      next.metadata.annotations = { ...(next.metadata.annotations ?? {}), ...binding.metadata.annotations };
    }
    const status = (next.status ?? {}) as { conditions?: { type: string }[] };
    const conditions = (status.conditions ?? []).filter((c) => c.type !== "PodScheduled");
    conditions.push({ type: "PodScheduled", status: "True", lastProbeTime: null, lastTransitionTime: formatTime(this.now()) } as { type: string });
    next.status = { ...status, conditions };
    // The bind writes spec and status at once, which neither the main resource nor /status may: store it directly.
    return this.writeUpdate(res, key, current, next, { ...opts, subresource: "binding" }, false);
  }

  /** DELETE semantics; `deleted` is false while finalizers or a grace period keep the object. */
  delete(res: ServedResource, namespace: string | undefined, name: string, opts: DeleteOptions = {}): { object: KubeObject; deleted: boolean } {
    const c = this.collection(res.storageKey);
    const key = objectKey(res, namespace, name);
    const stored = c.objects.get(key);
    if (!stored) throw notFound(res, name);
    const pre = opts.preconditions ?? {};
    if (pre.uid !== undefined && pre.uid !== stored.metadata.uid) {
      throw conflict(res, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${stored.metadata.uid ?? ""}`);
    }
    if (pre.resourceVersion !== undefined && pre.resourceVersion !== stored.metadata.resourceVersion) {
      throw conflict(res, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${stored.metadata.resourceVersion ?? ""}`);
    }
    if (opts.dryRun) return { object: this.serve(res, stored), deleted: !(stored.metadata.finalizers ?? []).length };
    const policy = opts.propagationPolicy ?? "Background";
    if (policy === "Orphan") this.orphanDependents(stored);
    else if (policy === "Foreground") this.deleteDependents(stored);
    if (res.storageKey === "/namespaces") return { object: this.terminateNamespace(res, key, stored), deleted: false };
    if (res.storageKey === "apiextensions.k8s.io/customresourcedefinitions") this.deleteCustomResources(stored);
    const current = c.objects.get(key) as KubeObject;
    const grace = this.gracePeriod(res, current, opts.gracePeriodSeconds);
    const finalizers = current.metadata.finalizers ?? [];
    if (finalizers.length > 0 || grace > 0) {
      if (current.metadata.deletionTimestamp && grace >= (current.metadata.deletionGracePeriodSeconds ?? 0)) {
        return { object: this.serve(res, current), deleted: false };
      }
      const now = this.now();
      const next: KubeObject = {
        ...current,
        metadata: {
          ...current.metadata,
          deletionTimestamp: formatTime(new Date(now.getTime() + grace * 1000)),
          deletionGracePeriodSeconds: grace,
        },
      };
      // BeforeDelete bumps generation when deletion starts (a shortened grace period is no new start).
      if (current.metadata.generation !== undefined && !current.metadata.deletionTimestamp) {
        next.metadata.generation = current.metadata.generation + 1;
      }
      this.rv++;
      next.metadata.resourceVersion = String(this.rv);
      this.put(res.storageKey, key, next);
      this.emit(res, "MODIFIED", key, next, current);
      return { object: this.serve(res, next), deleted: false };
    }
    const removed = this.remove(res, key, current);
    return { object: this.serve(res, removed), deleted: true };
  }

  /** Pods bound to a node wait for the kubelet (gracePeriodSeconds=0); everything else goes at once. */
  private gracePeriod(res: ServedResource, obj: KubeObject, requested: number | undefined): number {
    if (res.storageKey !== "/pods" || !this.podGracefulDeletion) return 0;
    const spec = (obj.spec ?? {}) as { nodeName?: string; terminationGracePeriodSeconds?: number };
    const phase = (obj.status as { phase?: string } | undefined)?.phase;
    if (!spec.nodeName || phase === "Succeeded" || phase === "Failed") return 0;
    const grace = requested ?? spec.terminationGracePeriodSeconds ?? 30;
    return Math.max(0, grace);
  }

  /** DELETE on a collection: every matching object deleted; answers the list of what was deleted. */
  deleteCollection(res: ServedResource, opts: ListOptions & DeleteOptions): KubeObject[] {
    const { items } = this.list(res, { ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
      ...(opts.selectors ? { selectors: opts.selectors } : {}) });
    const out: KubeObject[] = [];
    for (const item of items) {
      try {
        out.push(this.delete(res, item.metadata.namespace, item.metadata.name as string, opts).object);
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 404)) throw error;
      }
    }
    return out;
  }

  private readyToRemove(res: ServedResource, obj: KubeObject): boolean {
    if (res.storageKey === "/namespaces") {
      const spec = (obj.spec ?? {}) as { finalizers?: string[] };
      return (spec.finalizers ?? []).length === 0;
    }
    if (res.storageKey === "/pods" && this.podGracefulDeletion) {
      // A pod in its grace period is removed by the kubelet's final DELETE (or once finalizers clear after it).
      return (obj.metadata.deletionGracePeriodSeconds ?? 0) === 0;
    }
    return true;
  }

  /** Removes an object for good: DELETED event, allocations released, dependents collected. */
  private remove(res: ServedResource, key: string, obj: KubeObject): KubeObject {
    this.rv++;
    const final: KubeObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(this.rv) } };
    this.drop(res.storageKey, key);
    this.emit(res, "DELETED", key, final, obj);
    if (res.storageKey === "/services") this.hooks.services?.release(obj);
    if (res.storageKey === "apiextensions.k8s.io/customresourcedefinitions") this.registry.unregisterCrd(obj);
    this.collectGarbage(obj);
    const ns = obj.metadata.namespace;
    if (ns) this.maybeFinishNamespace(ns);
    return final;
  }

  /** Objects whose ownerReferences name `owner` (by uid), with the resource they belong to. */
  private dependentsOf(owner: KubeObject): { res: ServedResource; key: string; obj: KubeObject }[] {
    const uid = owner.metadata.uid;
    const out: { res: ServedResource; key: string; obj: KubeObject }[] = [];
    if (!uid) return out;
    for (const ref of this.byOwner.get(uid) ?? []) {
      const [storageKey, key] = ref.split("\u0000") as [string, string];
      const res = this.registry.byStorage(storageKey)[0];
      const obj = this.collections.get(storageKey)?.objects.get(key);
      if (res && obj) out.push({ res, key, obj });
    }
    return out;
  }

  /**
   * The one way objects enter storage: frozen, and indexed by owner uid (for the garbage collector) and by
   * namespace (for namespace termination), so neither scans every object.
   */
  private put(storageKey: string, key: string, obj: KubeObject): void {
    const c = this.collection(storageKey);
    const prev = c.objects.get(key);
    if (prev) this.unindex(storageKey, key, prev);
    c.objects.set(key, deepFreeze(obj));
    const ref = `${storageKey}\u0000${key}`;
    for (const o of (obj.metadata.ownerReferences ?? []) as { uid?: string }[]) {
      if (!o.uid) continue;
      let set = this.byOwner.get(o.uid);
      if (!set) this.byOwner.set(o.uid, (set = new Set()));
      set.add(ref);
    }
    const ns = obj.metadata.namespace;
    if (ns) this.namespaceCounts.set(ns, (this.namespaceCounts.get(ns) ?? 0) + 1);
  }

  private drop(storageKey: string, key: string): void {
    const c = this.collection(storageKey);
    const prev = c.objects.get(key);
    if (!prev) return;
    this.unindex(storageKey, key, prev);
    c.objects.delete(key);
  }

  private unindex(storageKey: string, key: string, obj: KubeObject): void {
    const ref = `${storageKey}\u0000${key}`;
    for (const o of (obj.metadata.ownerReferences ?? []) as { uid?: string }[]) {
      const set = o.uid ? this.byOwner.get(o.uid) : undefined;
      if (!set) continue;
      set.delete(ref);
      if (set.size === 0) this.byOwner.delete(o.uid as string);
    }
    const ns = obj.metadata.namespace;
    if (ns) {
      const n = (this.namespaceCounts.get(ns) ?? 1) - 1;
      if (n <= 0) this.namespaceCounts.delete(ns);
      else this.namespaceCounts.set(ns, n);
    }
  }

  /** The garbage collector's background deletion: dependents of a removed owner are deleted. */
  private collectGarbage(owner: KubeObject): void {
    for (const d of this.dependentsOf(owner)) {
      if (!this.collection(d.res.storageKey).objects.has(d.key)) continue;
      const refs = (d.obj.metadata.ownerReferences ?? []) as { uid?: string }[];
      // A dependent with another live owner stays (the GC removes only the dangling reference).
      const others = refs.filter((r) => r.uid !== owner.metadata.uid);
      if (others.length > 0) {
        this.replaceMeta(d.res, d.key, d.obj, { ownerReferences: others });
        continue;
      }
      try {
        this.delete(d.res, d.obj.metadata.namespace, d.obj.metadata.name as string, { propagationPolicy: "Background" });
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 404)) throw error;
      }
    }
  }

  private orphanDependents(owner: KubeObject): void {
    for (const d of this.dependentsOf(owner)) {
      const refs = (d.obj.metadata.ownerReferences ?? []) as { uid?: string }[];
      const rest = refs.filter((r) => r.uid !== owner.metadata.uid);
      this.replaceMeta(d.res, d.key, d.obj, { ownerReferences: rest.length ? rest : undefined });
    }
  }

  /** Foreground deletion, simplified: dependents go first, then the owner (no foregroundDeletion finalizer window). */
  private deleteDependents(owner: KubeObject): void {
    for (const d of this.dependentsOf(owner)) {
      try {
        this.delete(d.res, d.obj.metadata.namespace, d.obj.metadata.name as string, { propagationPolicy: "Foreground" });
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 404)) throw error;
      }
    }
  }

  private replaceMeta(res: ServedResource, key: string, obj: KubeObject, patch: Record<string, unknown>): void {
    const metadata = { ...obj.metadata, ...patch };
    for (const k of Object.keys(patch)) if (patch[k] === undefined) delete metadata[k];
    this.rv++;
    metadata.resourceVersion = String(this.rv);
    const next = { ...obj, metadata };
    this.put(res.storageKey, key, next);
    this.emit(res, "MODIFIED", key, next, obj);
  }

  /**
   * Namespace deletion as the namespace controller does it: phase Terminating, every object in it deleted
   * (objects with finalizers linger), then the "kubernetes" finalizer removed and the namespace with it once empty.
   */
  private terminateNamespace(res: ServedResource, key: string, ns: KubeObject): KubeObject {
    let current = ns;
    if (!ns.metadata.deletionTimestamp) {
      this.rv++;
      current = {
        ...ns,
        metadata: { ...ns.metadata, deletionTimestamp: formatTime(this.now()), deletionGracePeriodSeconds: 0, resourceVersion: String(this.rv) },
        status: { ...((ns.status ?? {}) as object), phase: "Terminating" },
      };
      this.put(res.storageKey, key, current);
      this.emit(res, "MODIFIED", key, current, ns);
      const name = ns.metadata.name as string;
      for (const [storageKey, coll] of this.collections) {
        const r = this.registry.byStorage(storageKey)[0];
        if (!r || !r.def.namespaced) continue;
        for (const [k, obj] of [...coll.objects]) {
          if (!k.startsWith(`${name}/`) || obj.metadata.deletionTimestamp) continue;
          try {
            this.delete(r, name, obj.metadata.name as string, { propagationPolicy: "Background", gracePeriodSeconds: 0 });
          } catch (error) {
            if (!(error instanceof ApiError && error.code === 404)) throw error;
          }
        }
      }
      this.maybeFinishNamespace(name);
    }
    return this.serve(res, this.collection(res.storageKey).objects.get(key) ?? current);
  }

  private namespaceEmpty(name: string): boolean {
    return (this.namespaceCounts.get(name) ?? 0) === 0;
  }

  private maybeFinishNamespace(name: string): void {
    const res = this.registry.lookup({ group: "", version: "v1", plural: "namespaces" });
    const ns = this.namespaceExists(name);
    if (!res || !ns || !ns.metadata.deletionTimestamp || !this.namespaceEmpty(name)) return;
    const spec = (ns.spec ?? {}) as { finalizers?: string[] };
    let current = ns;
    if ((spec.finalizers ?? []).includes("kubernetes")) {
      this.rv++;
      current = {
        ...ns,
        metadata: { ...ns.metadata, resourceVersion: String(this.rv) },
        spec: { ...spec, finalizers: (spec.finalizers ?? []).filter((f) => f !== "kubernetes") },
      };
      this.put(res.storageKey, name, current);
      this.emit(res, "MODIFIED", name, current, ns);
    }
    if ((current.metadata.finalizers ?? []).length === 0 && this.readyToRemove(res, current)) this.remove(res, name, current);
  }

  /** The CRD finalizer's work: every custom resource of the CRD is removed, then the finalizer. */
  private deleteCustomResources(crd: KubeObject): void {
    const served = resourcesFromCrd(crd)[0];
    if (served) {
      const c = this.collection(served.storageKey);
      for (const [key, obj] of [...c.objects]) {
        const r = this.registry.byStorage(served.storageKey)[0] ?? served;
        // Custom resources with finalizers would block the CRD forever on a real cluster; the sandbox drops them.
        this.remove(r, key, obj);
      }
      // The CRD's storage goes away with it, and so do the watches on it (their clients see the stream end).
      for (const w of [...c.watchers]) w.end?.();
      c.watchers.clear();
    }
    const res = this.registry.lookup({ group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions" });
    const key = crd.metadata.name as string;
    const current = res ? this.collection(res.storageKey).objects.get(key) : undefined;
    if (res && current && (current.metadata.finalizers ?? []).includes(CRD_FINALIZER)) {
      this.replaceMeta(res, key, current, {
        finalizers: (current.metadata.finalizers ?? []).filter((f) => f !== CRD_FINALIZER),
      });
    }
  }

  // ---- in-process conveniences ----

  /** The served resource for an object's apiVersion and kind, or 404 as kube-apiserver's RESTMapper would. */
  resourceFor(apiVersion: string, kind: string): ServedResource {
    const res = this.registry.byKind(apiVersion, kind);
    if (!res) throw new ApiError(404, "NotFound", `the server could not find the requested resource (${apiVersion}, Kind=${kind})`);
    return res;
  }
}

function invalidOptions(field: string, value: string, message: string): ApiError {
  return new ApiError(422, "Invalid", `ListOptions.meta.k8s.io "" is invalid: ${field}: Invalid value: "${value}": ${message}`, {
    kind: "ListOptions", group: "meta.k8s.io", causes: [{ reason: "FieldValueInvalid", message, field }],
  });
}

/**
 * kube-apiserver 1.32 (LoadBalancerIPMode, beta and on by default) defaults status.loadBalancer.ingress[].ipMode to
 * VIP where an ip is set. Used only when no ServiceAllocator is wired in (services.ts's prepareStatus does it).
 */
export function defaultIngressIpMode(svc: KubeObject): void {
  const ingress = (svc.status as { loadBalancer?: { ingress?: Record<string, unknown>[] } } | undefined)?.loadBalancer?.ingress;
  if (!Array.isArray(ingress)) return;
  for (const entry of ingress) if (entry.ip !== undefined && entry.ipMode === undefined) entry.ipMode = "VIP";
}

export { CRD_FINALIZER };
