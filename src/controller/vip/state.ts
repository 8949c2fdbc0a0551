// The controller's VIP-mode state: informers on AddressPools and Namespaces, the pools' validation (validatePools,
// keeping each pool's last valid spec), the allocator, and each pool's status. The Controller owns one and calls it
// from a few hooks (docs/design/0014-vip-allocation.md): reset() at the start of every leadership term rebuilds the
// allocator from the Services' status before any reconcile runs; reconcilePool() writes a pool's status.
import type { V1Namespace } from "@kubernetes/client-node";

import type { KubeClient, KubeObject, LogFn, Resource } from "../../lib/kube/client.js";
import type { Clock } from "../../lib/kube/clock.js";
import { Informer, type InformerOptions } from "../../lib/kube/informer.js";
import type { ControllerMetrics } from "../../lib/kube/metrics.js";
import { FIELD_MANAGER, MODES, SERVICE_ANNOTATIONS } from "../../lib/names.js";
import { ADDRESS_POOL, ALLOCATED_FROM_POOL_ANNOTATION, type AddressPool, type AddressPoolCondition, type AddressPoolStatus } from "../../lib/vip/address-pool.js";
import { trimAddressPool, trimNamespace } from "../cache-trim.js";
import type { V1Service } from "../types.js";
import { Allocator, type FamilyPolicy, type VipService } from "./allocator.js";
import { validatePools, type ParsedPool, type PoolsDecision } from "./pools.js";
import type { ServiceLbConfig } from "../types.js";

export const ADDRESS_POOL_RESOURCE: Resource = {
  group: ADDRESS_POOL.group, version: ADDRESS_POOL.version, plural: ADDRESS_POOL.plural, kind: ADDRESS_POOL.kind, namespaced: false,
};
const NAMESPACES: Resource = { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false };

/**
 * Queue keys of pools: Service keys are always "namespace/name", so a key without "/" cannot be one. The prefix
 * keeps the two apart in logs.
 */
export const POOL_KEY_PREFIX = "addresspool:";
export const poolKey = (name: string): string => `${POOL_KEY_PREFIX}${name}`;
export const isPoolKey = (key: string): boolean => key.startsWith(POOL_KEY_PREFIX) && !key.includes("/");

export const POOL_CONDITION_VALID = "Valid";

type Pool = AddressPool & KubeObject;
type Ns = V1Namespace & KubeObject;

export interface VipStateOptions {
  client: KubeClient;
  clock: Clock;
  log: LogFn;
  metrics?: ControllerMetrics;
  informer?: Pick<InformerOptions, "relistIntervalMs" | "backoff" | "watchTimeoutSeconds">;
  /** Enqueue a key (a Service key or a poolKey). */
  enqueue(key: string): void;
  /** Every VIP-mode Service (a pool changed: pending ones may now get an address). */
  vipServiceKeys(): string[];
}

/** Whether a Service is (asking to be) in VIP mode, from its annotation alone. */
export function isVipService(service: V1Service): boolean {
  return service.spec?.type === "LoadBalancer" && service.metadata?.annotations?.[SERVICE_ANNOTATIONS.mode]?.trim().toLowerCase() === MODES.vip;
}

export class VipState {
  readonly pools: Informer<Pool>;
  readonly namespaces: Informer<Ns>;
  private decision: PoolsDecision = { serving: [], verdicts: new Map(), lastValid: new Map() };
  private lastValid = new Map<string, ParsedPool>();
  private allocatorValue = new Allocator();
  /** Per Service: resourceVersions our own writes replaced, while the cache may still show them (see staleWaitMs). */
  private readonly superseded = new Map<string, { rvs: Set<string>; at: number }>();

  constructor(private readonly options: VipStateOptions) {
    const common = {
      client: options.client, clock: options.clock, log: options.log, ...(options.metrics ? { metrics: options.metrics } : {}), ...(options.informer ?? {}),
    };
    this.pools = new Informer<Pool>({ ...common, resource: ADDRESS_POOL_RESOURCE, transform: trimAddressPool });
    this.namespaces = new Informer<Ns>({ ...common, resource: NAMESPACES, transform: trimNamespace });
    const revalidate = (): void => this.revalidate();
    this.pools.addHandlers({
      onAdd: revalidate,
      // Our own status writes come back as updates: only a spec change (a new generation) is revalidated.
      onUpdate: (old, pool) => {
        if (old.metadata?.generation !== pool.metadata?.generation || JSON.stringify(old.spec) !== JSON.stringify(pool.spec)) revalidate();
      },
      onDelete: revalidate,
    });
    this.namespaces.addHandlers({
      onUpdate: (old, ns) => {
        if (JSON.stringify(old.metadata?.labels ?? {}) === JSON.stringify(ns.metadata?.labels ?? {})) return;
        for (const key of options.vipServiceKeys()) if (key.startsWith(`${ns.metadata?.name}/`)) options.enqueue(key);
      },
    });
  }

  informers(): Record<string, Informer<KubeObject>> {
    return { addresspools: this.pools as Informer<KubeObject>, namespaces: this.namespaces as Informer<KubeObject> };
  }

  get allocator(): Allocator {
    return this.allocatorValue;
  }

  /** Both caches synced: only then may an address be given (the pools must all be known). */
  ready(): boolean {
    return this.pools.isSynced() && this.namespaces.isSynced();
  }

  /** Why the pools cannot be read, when they cannot (the CRD not installed, RBAC missing). */
  poolsUnreadable(): string | undefined {
    if (this.pools.isSynced() || this.pools.stats.errors === 0) return undefined;
    return `cannot list ${ADDRESS_POOL.plural}.${ADDRESS_POOL.group} (${this.pools.stats.lastError ?? "unknown error"}); ` +
      "is the AddressPool CustomResourceDefinition installed (it is part of deploy/berth.yaml)?";
  }

  /** The serving pool this name refers to, and its Valid verdict. */
  verdict(name: string): PoolsDecision["verdicts"] extends Map<string, infer V> ? V | undefined : never {
    return this.decision.verdicts.get(name);
  }

  poolNames(): string[] {
    return this.pools.keys();
  }

  private revalidate(): void {
    this.decision = validatePools(this.pools.list(), this.lastValid);
    this.lastValid = this.decision.lastValid;
    this.allocatorValue.setPools(this.decision.serving);
    for (const name of this.pools.keys()) this.options.enqueue(poolKey(name));
    for (const key of this.options.vipServiceKeys()) this.options.enqueue(key);
  }

  /**
   * A new allocator, rebuilt from what the Services' status says (oldest Service first, so when two claim the same
   * address the older one keeps it). Called when a term starts, before its first reconcile: a restart or a new
   * leader never hands out an address some Service holds.
   */
  reset(services: readonly V1Service[], describe: (service: V1Service) => VipService | undefined): void {
    const allocator = new Allocator(this.decision.serving);
    const sorted = services.filter(isVipService).sort(compareAge);
    for (const service of sorted) {
      const ips = heldVipIps(service);
      const svc = ips.length > 0 ? describe(service) : undefined;
      if (svc) allocator.restore(svc, ips, service.metadata?.annotations?.[ALLOCATED_FROM_POOL_ANNOTATION]);
    }
    this.allocatorValue = allocator;
  }

  /**
   * A VIP reconcile writes twice (annotation, then status), after the finalizer write of a new Service; each write's
   * watch event re-queues the key, and a reconcile from a version between them would write from a stale object (a
   * certain 409). So the versions our writes replaced are remembered, and a reconcile that sees one waits for the
   * next event (at most ttlMs, so a lost event costs a delay, never a stuck Service). reconcile.ts's PendingWrites
   * does the same for the version the reconcile started from.
   */
  wroteOver(key: string, rvs: readonly (string | undefined)[], now: number): void {
    const set = new Set(rvs.filter((rv): rv is string => rv !== undefined));
    if (set.size > 0) this.superseded.set(key, { rvs: set, at: now });
  }

  /** How long to wait for the cache to show our last write of this Service (0: it does, or the wait expired). */
  staleWaitMs(key: string, rv: string | undefined, now: number, ttlMs = 5000): number {
    const entry = this.superseded.get(key);
    if (!entry) return 0;
    if (rv === undefined || !entry.rvs.has(rv) || now - entry.at >= ttlMs) {
      this.superseded.delete(key);
      return 0;
    }
    return ttlMs - (now - entry.at);
  }

  namespaceLabels(namespace: string): Record<string, string> | undefined {
    return this.namespaces.get(namespace)?.metadata?.labels;
  }

  /** What the allocator needs of a Service whose configuration parsed. */
  describe(service: V1Service, config: ServiceLbConfig): VipService {
    const namespace = service.metadata?.namespace ?? "";
    const policy = service.spec?.ipFamilyPolicy;
    const namespaceLabels = this.namespaceLabels(namespace);
    return {
      key: `${namespace}/${service.metadata?.name ?? ""}`,
      namespace,
      labels: service.metadata?.labels ?? {},
      ...(namespaceLabels ? { namespaceLabels } : {}),
      families: config.families,
      familyPolicy: (policy === "PreferDualStack" || policy === "RequireDualStack" ? policy : "SingleStack") as FamilyPolicy,
      request: config.vip ?? { ips: [] },
      ports: config.ports.map((p) => ({ protocol: p.protocol, port: p.port })),
      trafficPolicy: config.externalTrafficPolicy,
      selector: service.spec?.selector ?? {},
    };
  }

  /** Writes one pool's status (counts per family, Valid) when it differs from the cached one. */
  async reconcilePool(name: string, client: KubeClient, now: Date): Promise<"unchanged" | "updated"> {
    const pool = this.pools.get(name);
    if (!pool) return "unchanged";
    const verdict = this.decision.verdicts.get(name);
    if (!verdict) return "unchanged";
    const usage = verdict.serving ? this.allocatorValue.usage(verdict.serving) : { assignedIPv4: 0, availableIPv4: 0, assignedIPv6: 0, availableIPv6: 0 };
    const before = pool.status?.conditions?.find((c) => c.type === POOL_CONDITION_VALID);
    const status = verdict.valid ? "True" : "False";
    const condition: AddressPoolCondition = {
      type: POOL_CONDITION_VALID,
      status,
      reason: verdict.reason,
      message: verdict.message,
      lastTransitionTime: before && before.status === status ? before.lastTransitionTime : new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z"),
      ...(pool.metadata?.generation !== undefined ? { observedGeneration: pool.metadata.generation } : {}),
    };
    const desired: AddressPoolStatus = { ...usage, conditions: [condition] };
    const current = pool.status ?? {};
    const same = (["assignedIPv4", "availableIPv4", "assignedIPv6", "availableIPv6"] as const).every((k) => (current[k] ?? 0) === desired[k]) &&
      before !== undefined && before.status === condition.status && before.reason === condition.reason && before.message === condition.message &&
      before.observedGeneration === condition.observedGeneration && (current.conditions ?? []).length === 1;
    if (same) return "unchanged";
    await client.patchStatus(ADDRESS_POOL_RESOURCE, name, "merge", { status: desired }, { fieldManager: FIELD_MANAGER });
    return "updated";
  }

  start(): void {
    for (const inf of Object.values(this.informers())) inf.start();
  }

  async stop(): Promise<void> {
    await Promise.all(Object.values(this.informers()).map((inf) => inf.stop()));
  }
}

export function ingressIps(service: V1Service): string[] {
  return (service.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? "").filter((ip) => ip !== "");
}

/**
 * The addresses a Service holds in VIP mode: its ingress, but only once the allocated-from-pool annotation says they
 * came from a pool (it is written before the status, and removed when the Service leaves VIP mode). Without it the
 * ingress is something else's: the node addresses hostPort mode wrote before the Service was switched to VIP mode,
 * which must not be kept as if they were VIPs.
 */
export function heldVipIps(service: V1Service): string[] {
  return service.metadata?.annotations?.[ALLOCATED_FROM_POOL_ANNOTATION] === undefined ? [] : ingressIps(service);
}

function compareAge(a: V1Service, b: V1Service): number {
  const at = String(a.metadata?.creationTimestamp ?? "");
  const bt = String(b.metadata?.creationTimestamp ?? "");
  if (at !== bt) return at < bt ? -1 : 1;
  const ak = `${a.metadata?.namespace}/${a.metadata?.name}`;
  const bk = `${b.metadata?.namespace}/${b.metadata?.name}`;
  return ak < bk ? -1 : ak > bk ? 1 : 0;
}
