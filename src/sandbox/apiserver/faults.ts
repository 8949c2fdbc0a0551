// Fault injection for the sandbox API server: the failures a controller must survive on a real cluster (slow
// answers, 409/429/5xx, watches that end, resourceVersions that expire), switched on from tests in-process or over
// HTTP at /_sandbox/faults. Rules are matched per request; nothing here touches the store except history expiry.
import { ApiError } from "./types.js";

export const FAULT_ERROR_CODES = [409, 429, 500, 503] as const;
export type FaultErrorCode = (typeof FAULT_ERROR_CODES)[number];

/** One injection rule. `verb`/`resource`/`namespace` narrow which requests it hits; unset means any. */
export interface FaultRule {
  /** get, list, watch, create, update, patch, delete, deletecollection; unset = any. */
  verb?: string;
  /** Resource plural, optionally with subresource ("services/status"); unset = any resource. */
  resource?: string;
  namespace?: string;
  /**
   * Only requests whose User-Agent contains this (e.g. "berth-controller", or one replica's identity when each
   * sends it): a fault aimed at the component under test, while the stand-ins playing the rest of the cluster (and
   * a bench watching from outside) are served as usual.
   */
  userAgent?: string;
  /**
   * Delay before the request is served, in milliseconds. A client that disconnects meanwhile gets nothing done
   * (the request is "abandoned" in the request log), as with kube-apiserver's queueing (see request-log.ts).
   */
  latencyMs?: number;
  /** Answer with this error instead of serving the request. */
  error?: FaultErrorCode;
  /** Retry-After seconds sent with 429 (and 503); defaults to 1 for 429. */
  retryAfterSeconds?: number;
  /** Watches opened while the rule is active end after this many events (initial ADDED events count). */
  closeWatchAfterEvents?: number;
  /** Watches opened while the rule is active end after this many seconds. */
  closeWatchAfterSeconds?: number;
  /** Applies to this many matching requests, then the rule retires. Unset = until removed. */
  times?: number;
  /** Chance in [0, 1] that a matching request is hit. Unset = 1. */
  probability?: number;
}

export interface ActiveFault extends FaultRule {
  id: number;
  /** How many requests this rule has hit so far. */
  hits: number;
}

/** What the server must do to one request. */
export interface FaultDecision {
  latencyMs: number;
  error?: ApiError;
  closeWatchAfterEvents?: number;
  closeWatchAfterSeconds?: number;
}

export function faultError(rule: FaultRule, resource: string, name: string | undefined): ApiError {
  const code = rule.error as FaultErrorCode;
  const retryAfter = rule.retryAfterSeconds ?? (code === 429 ? 1 : undefined);
  const details = retryAfter !== undefined ? { retryAfterSeconds: retryAfter } : undefined;
  switch (code) {
    case 409:
      return new ApiError(409, "Conflict",
        `Operation cannot be fulfilled on ${resource} "${name ?? ""}": the object has been modified; please apply your changes to the latest version and try again`,
        { ...(name ? { name } : {}), kind: resource });
    case 429:
      return new ApiError(429, "TooManyRequests", "Too many requests, please try again later.", details);
    case 500:
      return new ApiError(500, "InternalError", "Internal error occurred: injected fault", details);
    case 503:
      return new ApiError(503, "ServiceUnavailable", "The server is currently unable to handle the request", details);
  }
}

/** Validates a rule coming from the admin endpoint; returns the first problem. */
export function faultRuleError(rule: unknown): string | undefined {
  if (!rule || typeof rule !== "object" || Array.isArray(rule)) return "a fault rule must be a JSON object";
  const r = rule as Record<string, unknown>;
  const known = new Set(["verb", "resource", "namespace", "userAgent", "latencyMs", "error", "retryAfterSeconds",
    "closeWatchAfterEvents", "closeWatchAfterSeconds", "times", "probability"]);
  for (const k of Object.keys(r)) if (!known.has(k)) return `unknown field "${k}"`;
  for (const k of ["verb", "resource", "namespace", "userAgent"]) {
    if (r[k] !== undefined && typeof r[k] !== "string") return `${k} must be a string`;
  }
  for (const k of ["latencyMs", "retryAfterSeconds", "closeWatchAfterEvents", "closeWatchAfterSeconds", "times"]) {
    if (r[k] !== undefined && (typeof r[k] !== "number" || !Number.isFinite(r[k]) || (r[k] as number) < 0)) {
      return `${k} must be a non-negative number`;
    }
  }
  if (r.probability !== undefined && (typeof r.probability !== "number" || r.probability < 0 || r.probability > 1)) {
    return "probability must be a number in [0, 1]";
  }
  if (r.error !== undefined && !FAULT_ERROR_CODES.includes(r.error as FaultErrorCode)) {
    return `error must be one of ${FAULT_ERROR_CODES.join(", ")}`;
  }
  if (r.latencyMs === undefined && r.error === undefined && r.closeWatchAfterEvents === undefined &&
    r.closeWatchAfterSeconds === undefined) {
    return "a fault rule needs latencyMs, error, closeWatchAfterEvents or closeWatchAfterSeconds";
  }
  return undefined;
}

/**
 * The set of active fault rules. `random` decides probabilistic rules (pass a seeded one for reproducible tests);
 * `expireHistory` is wired by the server to the store, so a test can force the next watch resume to get 410.
 */
export class Faults {
  private rules: ActiveFault[] = [];
  private nextId = 1;

  private closeAll: () => number = () => 0;

  constructor(
    private readonly random: () => number = Math.random,
    private expire: () => void = () => undefined,
  ) {}

  /** Connects history expiry to a store; called once by the server. */
  bindHistoryExpiry(expire: () => void): void {
    this.expire = expire;
  }

  /** Connects closeWatches to a server; called once by the server. */
  bindWatchCloser(closeAll: () => number): void {
    this.closeAll = closeAll;
  }

  /**
   * Ends every open watch now, as an API server restart or a load balancer timeout would. Together with
   * expireHistory this makes every informer resume, get 410 Gone and relist. Returns how many watches ended.
   */
  closeWatches(): number {
    return this.closeAll();
  }

  add(rule: FaultRule): number {
    const problem = faultRuleError(rule);
    if (problem) throw new ApiError(400, "BadRequest", `invalid fault rule: ${problem}`);
    const id = this.nextId++;
    this.rules.push({ ...rule, id, hits: 0 });
    return id;
  }

  remove(id: number): boolean {
    const before = this.rules.length;
    this.rules = this.rules.filter((r) => r.id !== id);
    return this.rules.length !== before;
  }

  clear(): void {
    this.rules = [];
  }

  list(): ActiveFault[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /** Drops the store's watch history: every watch or continue from an earlier resourceVersion now gets 410 Gone. */
  expireHistory(): void {
    this.expire();
  }

  /** Decides what happens to one request; counts hits and retires exhausted rules. */
  decide(req: { verb: string; resource: string; subresource?: string; namespace?: string; name?: string; userAgent?: string }): FaultDecision {
    const decision: FaultDecision = { latencyMs: 0 };
    const full = req.subresource ? `${req.resource}/${req.subresource}` : req.resource;
    for (const rule of this.rules) {
      if (rule.verb !== undefined && rule.verb !== "*" && rule.verb !== req.verb) continue;
      if (rule.resource !== undefined && rule.resource !== "*" && rule.resource !== full) continue;
      if (rule.namespace !== undefined && rule.namespace !== req.namespace) continue;
      if (rule.userAgent !== undefined && !(req.userAgent ?? "").includes(rule.userAgent)) continue;
      const watchOnly = rule.error === undefined && rule.latencyMs === undefined;
      if (watchOnly && req.verb !== "watch") continue;
      if (rule.probability !== undefined && this.random() >= rule.probability) continue;
      rule.hits++;
      if (rule.latencyMs) decision.latencyMs += rule.latencyMs;
      if (rule.error !== undefined && !decision.error) decision.error = faultError(rule, full, req.name);
      if (rule.closeWatchAfterEvents !== undefined) decision.closeWatchAfterEvents = rule.closeWatchAfterEvents;
      if (rule.closeWatchAfterSeconds !== undefined) decision.closeWatchAfterSeconds = rule.closeWatchAfterSeconds;
    }
    this.rules = this.rules.filter((r) => r.times === undefined || r.hits < r.times);
    return decision;
  }
}
