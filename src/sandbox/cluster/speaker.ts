// VIP mode's speaker in the sandbox: the DaemonSet `berth manifests` installs (src/manifests/speaker.ts), with the
// sandbox's "image" for `bin/berth` and the sandbox's kubeconfig (reachable from every node through the API relay,
// api-relay.ts). The kubelet stand-in runs its pods with host networking, in each node's namespace, so the real
// speaker puts VIPs on the node's LAN interface and the client namespace sees them as on a cluster.
import { isAlreadyExists, Resources, type KubeClient } from "../../lib/kube/client.js";
import { berthVersion } from "../../lib/version.js";
import { defaultManifestOptions } from "../../manifests/manifests.js";
import { speakerManifests } from "../../manifests/speaker.js";
import { SANDBOX_SPEAKER_IMAGE } from "./images.js";

/** The speaker DaemonSet as the sandbox runs it. */
export function sandboxSpeakerDaemonSet(namespace: string, kubeconfig: string): Record<string, unknown> {
  const ds = speakerManifests({ ...defaultManifestOptions(berthVersion()), namespace }).find((m) => m.kind === "DaemonSet");
  if (!ds) throw new Error("speakerManifests has no DaemonSet");
  // A JSON copy: the manifest carries YAML comment markers under symbol keys, which must not reach the wire.
  const copy = JSON.parse(JSON.stringify(ds)) as { spec: { template: { spec: { containers: { image: string; args: string[] }[] } } } };
  const container = copy.spec.template.spec.containers[0]!;
  container.image = SANDBOX_SPEAKER_IMAGE;
  container.args = [...container.args, `--kubeconfig=${kubeconfig}`];
  return copy as unknown as Record<string, unknown>;
}

export async function installSpeaker(client: KubeClient, namespace: string, kubeconfig: string): Promise<void> {
  await client.create(Resources.daemonSets, sandboxSpeakerDaemonSet(namespace, kubeconfig) as never, { namespace }).catch((err: unknown) => {
    if (!isAlreadyExists(err)) throw err;
  });
}
