// The sandbox's "registry": there is no container engine, so an image is a command from this repository. The
// controller is started with --lb-image SANDBOX_LB_IMAGE, and the demo's DaemonSet names SANDBOX_DEMO_IMAGE.
import { dirname, join } from "node:path";
import { RULES_DIR } from "../../lb-pod/bundle.js";
import type { ContainerImage, ImageCatalog } from "./kubelet.js";
import { planWebContainer } from "./web-images.js";
import { LB_POD_ROOTFS_ENTRYPOINT, LB_POD_ROOTFS_PATH } from "./kubelet/rootfs.js";

/** The lb-pod "image" the sandbox's controller puts in its DaemonSets; the kubelet stand-in runs bin/berth-lb-pod for it. */
export const SANDBOX_LB_IMAGE = "berth.dev/sandbox/lb-pod:dev";
/** VIP mode's speaker "image": `bin/berth` (the DaemonSet's args say `speaker ...`), with ip, arping and na6 on PATH. */
export const SANDBOX_SPEAKER_IMAGE = "berth.dev/sandbox/speaker:dev";
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

/**
 * How long the web stand-in serves on after SIGTERM: longer than the EndpointSlice and kube-proxy stand-ins take to
 * drop a terminating pod (well under a second on an idle machine, a few seconds on a loaded one), so a rolling update
 * or a scale-down loses no request. Real web images close at once (nginx's fast shutdown) and guides add a
 * `preStop: sleep` for the same reason; the sandbox kubelet runs no lifecycle hooks, so the stand-in does it.
 */
export const WEB_DRAIN_MS = 3000;

/** The system directories a Debian root shell has on PATH, after the image's own. */
const SYSTEM_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/**
 * The sandbox's "registry": image name -> what to run. There is no container engine, so an image is a command from
 * this repository: the lb-pod and the demo app by their own names, every other image the web stand-in
 * (web-images.ts: the demo app on the image's usual and declared ports, with an access log).
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
    [SANDBOX_SPEAKER_IMAGE, { entrypoint: [join(binDir, "berth")], pathDirs, env }],
  ]);
  const web = (image: string): ContainerImage => ({
    entrypoint: [],
    pathDirs,
    env,
    standIn: (container, pod) => {
      const plan = planWebContainer(image, container);
      return {
        // The pod and node names the demo app reads from its downward-API env otherwise (the demo's DaemonSet sets it).
        argv: [join(binDir, "berth"), "sandbox", "demo-app", "--access-log", "--image", image, "--drain-ms", String(WEB_DRAIN_MS),
          "--pod", pod.metadata?.name ?? "", "--node", pod.spec?.nodeName ?? "", ...plan.ports.flatMap((p) => ["--port", String(p)])],
        ...(plan.ports[0] !== undefined ? { listensOn: plan.ports[0] } : {}),
        event: plan.known
          ? { type: "Normal", reason: "Pulled", message: plan.message }
          : { type: "Warning", reason: "ImageStandIn", message: plan.message },
      };
    },
  });
  return (image) => images.get(image) ?? (image === "" ? undefined : web(image));
}
