// configMap volumes for the sandbox kubelet: each key of the ConfigMap becomes a file in the volume's directory, as
// the kubelet's configmap volume plugin does (kubernetes pkg/volume/configmap/configmap.go: SetUpAt reads the
// ConfigMap through the API and writes its data with the atomic writer). A missing ConfigMap fails the pod's setup,
// which the caller retries (the kubelet retries the mount too, with a FailedMount Event). Not here: `items`
// (key-to-path lists), binaryData, defaultMode, optional, and updates: the lb-pods' ConfigMaps are immutable, so
// what is written once is what the kubelet would show for the pod's whole life.
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { V1ConfigMap, V1Pod } from "@kubernetes/client-node";
import { isNotFound, Resources, type KubeClient } from "../../../lib/kube/client.js";

/** Writes every configMap volume of the pod into `<volumesDir>/<volume name>/<key>`; throws when one cannot be read. */
export async function writeConfigMapVolumes(client: KubeClient, pod: V1Pod, volumesDir: string): Promise<void> {
  for (const volume of pod.spec?.volumes ?? []) {
    const name = volume.configMap?.name;
    if (name === undefined) continue;
    if ((volume.configMap?.items ?? []).length > 0) throw new Error(`volume ${volume.name}: configMap items are not supported by the sandbox kubelet`);
    let configMap: V1ConfigMap;
    try {
      configMap = await client.get<V1ConfigMap & { metadata: object }>(Resources.configMaps, name, { namespace: pod.metadata?.namespace ?? "" });
    } catch (e) {
      if (isNotFound(e)) throw new Error(`MountVolume.SetUp failed for volume "${volume.name}": configmap "${name}" not found`, { cause: e });
      throw e;
    }
    // Written beside the final directory and renamed into place, so a container never sees half a volume.
    const dir = join(volumesDir, volume.name);
    const staging = `${dir}.tmp`;
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    for (const [key, value] of Object.entries(configMap.data ?? {})) await writeFile(join(staging, key), value);
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
  }
}
