// Writing a Service's rules ConfigMap around the DaemonSet apply (docs/design/0013-the-controller-renders-lb-pod-rules.md).
// The order keeps a pod from ever waiting for a ConfigMap that no later reconcile would write:
//   1. the ConfigMap first (owned by the live DaemonSet when there is one), so the pods of the new template find it;
//   2. the DaemonSet (the caller);
//   3. for a new DaemonSet, the ConfigMap again, now with the owner reference (its uid exists only now), so the
//      garbage collector removes the ConfigMap with the DaemonSet; then the previous template's ConfigMap is deleted.
// One write per change of a Service's rules (two for a new Service) and one delete of the previous ConfigMap. The
// controller never reads a ConfigMap's content back (its name carries the content's hash); an informer trimmed to
// names, labels and owners (cache-trim.ts trimConfigMap) tells it one is missing, and reconcile.ts then writes it
// again with applyRulesConfigMap, or that one was left without owner or mount, which repairRulesConfigMaps (below)
// adopts or deletes.
import { isConflict, isNotFound, Resources, type KubeClient, type LogFn } from "../lib/kube/client.js";
import { FIELD_MANAGER } from "../lib/names.js";
import { MODES } from "../lib/names.js";
import { buildRulesConfigMap, daemonSetName, lbPodRulesBundle, rulesConfigMapNameFor, rulesConfigMapOf } from "./daemonset.js";
import { ownership, parseServiceConfig } from "./service-config.js";
import type { RulesBundle } from "../lb-pod/bundle.js";
import type { ControllerConfig, ServiceLbConfig, V1DaemonSet, V1Service } from "./types.js";

/** Applies the DaemonSet (`applyDaemonSet`) between the steps above; returns what the DaemonSet apply returned. */
export async function applyWithRules(
  client: KubeClient,
  namespace: string,
  serviceConfig: ServiceLbConfig,
  desired: V1DaemonSet,
  live: V1DaemonSet | undefined,
  applyDaemonSet: () => Promise<V1DaemonSet>,
): Promise<V1DaemonSet> {
  const bundle = lbPodRulesBundle(serviceConfig);
  const applyRules = (uid: string | undefined): Promise<unknown> => applyRulesConfigMap(client, namespace, serviceConfig, desired, uid, bundle);
  const liveUid = live?.metadata?.uid;
  await applyRules(liveUid);
  const applied = await applyDaemonSet();
  const appliedUid = applied.metadata?.uid;
  if (appliedUid && appliedUid !== liveUid) await applyRules(appliedUid);
  const previous = rulesConfigMapOf(live);
  if (previous !== undefined && previous !== rulesConfigMapOf(desired)) {
    try {
      await client.delete(Resources.configMaps, previous, { namespace });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  return applied;
}

/** Applies the DaemonSet's rules ConfigMap, owned by the DaemonSet `ownerUid` when given. */
export function applyRulesConfigMap(
  client: KubeClient,
  namespace: string,
  serviceConfig: ServiceLbConfig,
  daemonSet: V1DaemonSet,
  ownerUid: string | undefined,
  bundle: RulesBundle = lbPodRulesBundle(serviceConfig),
): Promise<unknown> {
  return client.apply(Resources.configMaps, buildRulesConfigMap(daemonSet, ownerUid ? { uid: ownerUid } : undefined, bundle),
    { namespace, fieldManager: FIELD_MANAGER, force: true });
}

// ---- Repairing orphaned rules ConfigMaps ----
//
// The writes above leave a ConfigMap without owner, or owned but mounted by nobody, when the controller stops
// between them: killed after step 1 (no DaemonSet yet), after step 2 (the owner reference never added) or before the
// previous ConfigMap's delete (or that delete failed and the retry found the DaemonSet already switched). Without an
// owner the garbage collector never removes it; owned but unmounted, it stays as long as its DaemonSet. The
// controller's ConfigMap cache (metadata only: owner references included) shows both, so after each reconcile of a
// Service the decision below looks at that Service's ConfigMaps, from the cache alone: an unchanged cluster costs no
// request. docs/design/0013-the-controller-renders-lb-pod-rules.md, "Addendum: leftovers".

/**
 * How long a rules ConfigMap must have looked orphaned to this leader before it is repaired. Counted from this
 * leadership term's first look, not from creationTimestamp (the API server's clock, and a ConfigMap written again by
 * step 1 keeps its old one): a new leader waits this long before touching anything, so a DaemonSet the previous
 * leader was still creating (its request in flight at a slow API server: kube-apiserver gives a request 60 s, the
 * Lease expires after 15 s) has long landed. Meanwhile our own writes' watch events arrive, so a state seen between
 * two of our writes is never acted on.
 */
export const RULES_ORPHAN_GRACE_MS = 10 * 60_000;

/**
 * The rules ConfigMap this Service's reconcile writes and mounts now, or undefined when it writes none (gone, being
 * deleted, not ours, invalid, VIP mode). From the same cached render as buildDaemonSet, so asking costs no render.
 */
export function wantedRulesConfigMap(service: V1Service | undefined, config: Pick<ControllerConfig, "claimUnsetClass" | "defaultPriorityClass">): string | undefined {
  if (!service || service.metadata?.deletionTimestamp || !ownership(service, config).ours) return undefined;
  const parsed = parseServiceConfig(service, config);
  if (!parsed.ok || parsed.value.mode === MODES.vip) return undefined;
  return rulesConfigMapNameFor(daemonSetName(service), parsed.value);
}

/** What the ConfigMap cache holds of one (cache-trim.ts trimConfigMap). */
export interface CachedRulesConfigMap {
  metadata?: { name?: string; uid?: string; resourceVersion?: string; ownerReferences?: readonly unknown[]; deletionTimestamp?: unknown };
}

export type RulesConfigMapRepair =
  /** Nothing to repair: owned and mounted, the one the Service's reconcile wants now, or being deleted. */
  | { action: "none" }
  /** Looks orphaned, but not yet for `graceMs`. */
  | { action: "wait"; ms: number }
  /** Mounted by `owner` but without owner reference: the garbage collector would never remove it. */
  | { action: "adopt"; owner: { name: string; uid: string } }
  /** Mounted by no DaemonSet of its Service and not the one the Service wants: a leftover. */
  | { action: "delete" };

/**
 * The repair for one rules ConfigMap (pure). `daemonSets`: its Service's DaemonSets in the cache; `wanted`: the
 * ConfigMap name the Service's reconcile wants now (undefined: none, e.g. the Service is gone, invalid or in VIP
 * mode); `suspectForMs`: how long this term has seen it needing a repair (0 at the first look).
 */
export function decideRulesConfigMapRepair(input: {
  configMap: CachedRulesConfigMap;
  daemonSets: readonly V1DaemonSet[];
  wanted: string | undefined;
  suspectForMs: number;
  graceMs: number;
}): RulesConfigMapRepair {
  const meta = input.configMap.metadata;
  const name = meta?.name;
  if (name === undefined || meta?.deletionTimestamp) return { action: "none" };
  const owned = (meta?.ownerReferences?.length ?? 0) > 0;
  const mountedBy = input.daemonSets.find((ds) => !ds.metadata?.deletionTimestamp && rulesConfigMapOf(ds) === name && ds.metadata?.uid);
  // Owned and mounted is the steady state; the one the Service wants is about to be mounted (or is being retried:
  // a DaemonSet apply that keeps failing writes the same ConfigMap again, deleting it would only churn).
  if (mountedBy !== undefined ? owned : name === input.wanted) return { action: "none" };
  if (input.suspectForMs < input.graceMs) return { action: "wait", ms: input.graceMs - input.suspectForMs };
  return mountedBy !== undefined
    ? { action: "adopt", owner: { name: mountedBy.metadata?.name as string, uid: mountedBy.metadata?.uid as string } }
    : { action: "delete" };
}

/**
 * When this term first saw each rules ConfigMap needing a repair, by Service key. A ConfigMap is known by uid and
 * resourceVersion, so any write to it starts the wait again. One per leadership term (a new leader starts with
 * none), holding only ConfigMaps that currently need a repair.
 */
export class RulesOrphanClock {
  private readonly byKey = new Map<string, Map<string, number>>();

  constructor(private readonly now: () => number) {}

  /** How long `id` has needed a repair (0 now, the first time it is asked about). */
  since(key: string, id: string): number {
    let seen = this.byKey.get(key);
    if (!seen) this.byKey.set(key, (seen = new Map()));
    const at = seen.get(id);
    if (at === undefined) seen.set(id, this.now());
    return at === undefined ? 0 : this.now() - at;
  }

  /** Forgets every id of this key not in `current` (repaired, gone, or fine again). */
  retain(key: string, current: ReadonlySet<string>): void {
    const seen = this.byKey.get(key);
    if (!seen) return;
    for (const id of seen.keys()) if (!current.has(id)) seen.delete(id);
    if (seen.size === 0) this.byKey.delete(key);
  }

  /** Forgets every key not in `keys` (a resync's list of Services with a ConfigMap to repair). */
  retainKeys(keys: ReadonlySet<string>): void {
    for (const key of this.byKey.keys()) if (!keys.has(key)) this.byKey.delete(key);
  }

  get size(): number {
    let n = 0;
    for (const seen of this.byKey.values()) n += seen.size;
    return n;
  }
}

/**
 * Repairs one Service's rules ConfigMaps (the decision above, the clock, the writes). Returns how many requests
 * it sent (0 for everything in order). A ConfigMap changed or gone since the cache saw it (409, 404) is left for
 * the next look: the uid and resourceVersion preconditions make sure only the object decided about is written.
 */
export async function repairRulesConfigMaps(key: string, deps: {
  client: KubeClient;
  namespace: string;
  configMaps: readonly CachedRulesConfigMap[];
  daemonSets: readonly V1DaemonSet[];
  /** Computed only when a ConfigMap is not mounted (renders at most once per Service configuration). */
  wanted: () => string | undefined;
  clock: RulesOrphanClock;
  graceMs: number;
  log: LogFn;
}): Promise<number> {
  let wanted: string | undefined;
  let wantedKnown = false;
  const wantedName = (): string | undefined => {
    if (!wantedKnown) [wanted, wantedKnown] = [deps.wanted(), true];
    return wanted;
  };
  const suspects = new Set<string>();
  let requests = 0;
  for (const cm of deps.configMaps) {
    const name = cm.metadata?.name as string;
    const id = `${cm.metadata?.uid}/${cm.metadata?.resourceVersion}`;
    const decide = (wantedNow: string | undefined, suspectForMs: number, graceMs: number): RulesConfigMapRepair =>
      decideRulesConfigMapRepair({ configMap: cm, daemonSets: deps.daemonSets, wanted: wantedNow, suspectForMs, graceMs });
    // Cheap looks first, which start no wait: owned and mounted (nearly every ConfigMap), then the one the Service
    // wants (the only look that may render, and only for a ConfigMap that needs a repair).
    if (decide(undefined, 0, 1).action === "none" || decide(wantedName(), 0, 1).action === "none") continue;
    const decision = decide(wantedName(), deps.clock.since(key, id), deps.graceMs);
    if (decision.action === "none") continue;
    if (decision.action === "wait") {
      // Not queued for the wait's end: the resync enqueues this key again (Controller.enqueueAll). A state seen
      // between two of our own writes, gone by then, so costs no extra reconcile.
      suspects.add(id);
      continue;
    }
    requests++;
    try {
      if (decision.action === "adopt") {
        // A merge patch of the owner reference alone: the data stays as it is (immutable), and the resourceVersion
        // makes it fail instead of replacing an owner someone added since the cache saw it.
        await deps.client.patch(Resources.configMaps, name, "merge", {
          metadata: {
            resourceVersion: cm.metadata?.resourceVersion,
            ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: decision.owner.name, uid: decision.owner.uid, controller: true }],
          },
        }, { namespace: deps.namespace, fieldManager: FIELD_MANAGER });
      } else {
        await deps.client.delete(Resources.configMaps, name, {
          namespace: deps.namespace,
          preconditions: { ...(cm.metadata?.uid ? { uid: cm.metadata.uid } : {}), ...(cm.metadata?.resourceVersion ? { resourceVersion: cm.metadata.resourceVersion } : {}) },
        });
      }
      deps.log("info", decision.action === "adopt" ? "adopted an ownerless rules ConfigMap" : "deleted a leftover rules ConfigMap",
        { key, configMap: name, ...(decision.action === "adopt" ? { daemonSet: decision.owner.name } : {}) });
    } catch (e) {
      if (!isNotFound(e) && !isConflict(e)) throw e;
    }
  }
  deps.clock.retain(key, suspects);
  return requests;
}
