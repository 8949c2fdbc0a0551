// Writing a Service's rules ConfigMap around the DaemonSet apply (docs/design/0013-the-controller-renders-lb-pod-rules.md).
// The order keeps a pod from ever waiting for a ConfigMap that no later reconcile would write:
//   1. the ConfigMap first (owned by the live DaemonSet when there is one), so the pods of the new template find it;
//   2. the DaemonSet (the caller);
//   3. for a new DaemonSet, the ConfigMap again, now with the owner reference (its uid exists only now), so the
//      garbage collector removes the ConfigMap with the DaemonSet; then the previous template's ConfigMap is deleted.
// One write per change of a Service's rules (two for a new Service) and one delete of the previous ConfigMap. The
// controller never reads a ConfigMap's content back (its name carries the content's hash); an informer trimmed to
// names and labels (cache-trim.ts trimConfigMap) only tells it one is missing, and reconcile.ts then writes it again
// with applyRulesConfigMap.
import { isNotFound, Resources, type KubeClient } from "../lib/kube/client.js";
import { FIELD_MANAGER } from "../lib/names.js";
import { buildRulesConfigMap, lbPodRulesBundle, rulesConfigMapOf } from "./daemonset.js";
import type { RulesBundle } from "../lb-pod/bundle.js";
import type { ServiceLbConfig, V1DaemonSet } from "./types.js";

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
