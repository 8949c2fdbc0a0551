// The I/O half of `berth doctor`: reads, with our KubeClient, everything diagnose() looks at for one Service. Reads
// only (the doctor never changes the cluster), in parallel where they do not depend on each other. What the user may
// not read (403) or the cluster does not serve (404 on a kind) becomes "not visible" in the snapshot, and the
// diagnosis says less instead of failing: a namespace admin without node access still gets an answer.
import { KubeError, Resources, type KubeClient, type KubeObject, type Resource } from "../lib/kube/client.js";
import type { Lease } from "../lib/kube/leader.js";
import { LABELS } from "../lib/names.js";
import type { V1DaemonSet, V1EndpointSlice, V1Node, V1Pod, V1Service } from "../controller/types.js";
import { podTargetNode } from "../controller/status.js";
import { ADDRESS_POOL_RESOURCE } from "../controller/vip/state.js";
import type { AddressPool } from "../lib/vip/address-pool.js";
import { CONTROLLER_NAME } from "./diagnose.js";
import type { CoreV1Event, DoctorSnapshot, V1Deployment } from "./types.js";

/** apps/v1 Deployments (the controller's); the kube library's Resources has no use for them elsewhere. */
const DEPLOYMENTS: Resource = { group: "apps", version: "v1", plural: "deployments", kind: "Deployment", namespaced: true };

/** The EndpointSlice label naming its Service (discovery.k8s.io/v1 LabelServiceName). */
const ENDPOINTSLICE_SERVICE_LABEL = "kubernetes.io/service-name";

/** The speaker DaemonSet's pod labels (src/manifests/speaker.ts). */
const SPEAKER_SELECTOR = "app.kubernetes.io/name=berth,app.kubernetes.io/component=speaker";

export interface CollectOptions {
  namespace: string;
  name: string;
  controllerNamespace: string;
  now?: () => Date;
}

export async function collect(client: KubeClient, options: CollectOptions): Promise<DoctorSnapshot> {
  const { namespace, name, controllerNamespace } = options;
  const ours = `${LABELS.serviceName}=${name},${LABELS.serviceNamespace}=${namespace}`;
  const list = async <T>(res: Resource, opts: Parameters<KubeClient["list"]>[1]): Promise<T[]> =>
    (await client.list<T & KubeObject>(res, opts)).items;

  const [service, daemonSets, pods, nodes, endpointSlices, serviceEvents, controllerEvents, lease, deployment, addressPools, speakerPods] = await Promise.all([
    client.tryGet<V1Service & KubeObject>(Resources.services, name, { namespace }).then((s) => s ?? null),
    visible(list<V1DaemonSet>(Resources.daemonSets, { namespace: controllerNamespace, labelSelector: ours })),
    visible(list<V1Pod>(Resources.pods, { namespace: controllerNamespace, labelSelector: ours })),
    visible(list<V1Node>(Resources.nodes, {})),
    visible(list<V1EndpointSlice>(Resources.endpointSlices, { namespace, labelSelector: `${ENDPOINTSLICE_SERVICE_LABEL}=${name}` })),
    visible(list<CoreV1Event>(Resources.events, { namespace, fieldSelector: `involvedObject.name=${name}` })),
    // Events of the DaemonSets and lb-pods: berth's namespace holds little else, and pod names change as the
    // DaemonSet controller replaces rejected pods, so they are filtered here rather than asked for one by one.
    visible(list<CoreV1Event>(Resources.events, { namespace: controllerNamespace })),
    visible(client.tryGet<Lease>(Resources.leases, CONTROLLER_NAME, { namespace: controllerNamespace }).then((l) => l ?? null)),
    visible(client.tryGet<V1Deployment & KubeObject>(DEPLOYMENTS, CONTROLLER_NAME, { namespace: controllerNamespace }).then((d) => d ?? null)),
    // A cluster without the CRD answers 404 for the whole resource: "not installed", which the VIP diagnosis names.
    visible(list<AddressPool>(ADDRESS_POOL_RESOURCE, {}).catch((e: unknown) => {
      if (e instanceof KubeError && e.code === 404) return null;
      throw e;
    })),
    visible(list<V1Pod>(Resources.pods, { namespace: controllerNamespace, labelSelector: SPEAKER_SELECTOR })),
  ]);

  const dsNames = (daemonSets ?? []).map((ds) => ds.metadata?.name ?? "");
  const aboutOurs = (e: CoreV1Event): boolean => {
    const involved = e.involvedObject?.name ?? "";
    return dsNames.some((ds) => involved === ds || involved.startsWith(`${ds}-`));
  };
  const blockedNodes = [...new Set((pods ?? []).filter((p) => !p.spec?.nodeName).map(podTargetNode).filter((n): n is string => n !== undefined))].sort();
  const podsOnBlockedNodes = (await Promise.all(blockedNodes.map((node) =>
    visible(list<V1Pod>(Resources.pods, { fieldSelector: `spec.nodeName=${node}` }))))).flatMap((items) => items ?? []);

  return {
    namespace,
    name,
    controllerNamespace,
    now: options.now?.() ?? new Date(),
    service: service as V1Service | null,
    daemonSets: daemonSets ?? [],
    pods: pods ?? [],
    nodes,
    endpointSlices,
    events: [
      ...(serviceEvents ?? []).filter((e) => e.involvedObject?.kind === "Service"),
      ...(controllerEvents ?? []).filter(aboutOurs),
    ],
    podsOnBlockedNodes,
    lease: lease as Lease | null | undefined,
    deployment: deployment as V1Deployment | null | undefined,
    addressPools,
    speakerPods,
  };
}

/** The read's result, or undefined when this user may not read it (403). */
async function visible<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (e) {
    if (e instanceof KubeError && e.code === 403) return undefined;
    throw e;
  }
}
