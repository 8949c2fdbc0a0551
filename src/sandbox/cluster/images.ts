// The sandbox's "registry": there is no container engine, so an image is a command from this repository. The
// controller is started with --lb-image SANDBOX_LB_IMAGE, and the demo's DaemonSet names SANDBOX_DEMO_IMAGE.
import { dirname, join } from "node:path";
import { RULES_DIR } from "../../lb-pod/bundle.js";
import type { ContainerImage, ImageCatalog } from "./kubelet.js";
import { LB_POD_ROOTFS_ENTRYPOINT, LB_POD_ROOTFS_PATH } from "./kubelet/rootfs.js";

/** The lb-pod "image" the sandbox's controller puts in its DaemonSets; the kubelet stand-in runs bin/berth-lb-pod for it. */
export const SANDBOX_LB_IMAGE = "berth.dev/sandbox/lb-pod:dev";
/** The demo app's "image": `bin/berth sandbox demo-app`. */
export const SANDBOX_DEMO_IMAGE = "berth.dev/sandbox/demo-app:dev";

/**
 * How often the kubelet stand-in probes a container until it is Ready (afterwards at the probe's own periodSeconds):
 * pods turn Ready about a second after they can. Probing everything every second for good was too much: an lb-pod's
 * probe was then a Node.js start plus iptables-save, and three of them per second kept a 2-core machine saturated
 * until their 5 s timeouts expired (measured: the demo never became ready under load). It is a shell script now
 * (`berth-lb-pod-check`, ~30 ms CPU), but every other exec probe still costs a process start.
 */
export const SANDBOX_PROBE_PERIOD_MS = 1000;

/** The system directories a Debian root shell has on PATH, after the image's own. */
const SYSTEM_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/**
 * The sandbox's "registry": image name -> what to run. There is no container engine, so an image is a command from
 * this repository; anything else is unknown and its pod waits (as with an image that cannot be pulled).
 */
export function sandboxImages(repoDir: string, nodeBinary: string, lbPodRootfs?: string): ImageCatalog {
  const binDir = join(repoDir, "bin");
  // bin/ first (berth, berth-lb-pod, berth-wait), then the node binary's directory (the probe runs `berth`, a
  // `#!/bin/sh` script that runs BERTH_NODE), then the system tools (iptables-restore, nft, sysctl).
  const pathDirs = [binDir, dirname(nodeBinary), ...SYSTEM_PATH];
  const env = { BERTH_NODE: nodeBinary };
  const images = new Map<string, ContainerImage>([
    // The lb-pod image's own tree when it is built (ensureLbPodRootfs): what the image ships is what runs.
    [SANDBOX_LB_IMAGE, lbPodRootfs !== undefined
      ? { entrypoint: LB_POD_ROOTFS_ENTRYPOINT, pathDirs: LB_POD_ROOTFS_PATH, env: { BERTH_STATE_DIR: "/run/berth", BERTH_RULES_DIR: RULES_DIR }, rootfs: lbPodRootfs }
      : { entrypoint: [join(binDir, "berth-lb-pod")], pathDirs, env }],
    [SANDBOX_DEMO_IMAGE, { entrypoint: [join(binDir, "berth"), "sandbox", "demo-app"], pathDirs, env }],
  ]);
  return (image) => images.get(image);
}
