// The sandbox's catalogue of web images. There is no container engine, so `kubectl create deployment web
// --image=nginx` cannot run nginx: every image maps to the sandbox's web stand-in (`berth sandbox demo-app`, the
// demo's app) listening on the ports the real image serves on and on the container's declared containerPorts,
// answering like the demo app (`pod <pod> on <node> saw client <address>:<port>`) and writing one access line per
// request to the container log. An image not in the catalogue gets the same stand-in on its declared ports (80 and
// 8080 when it declares none), and the kubelet records a Warning Event on its pod saying so.
//
// Pure: image reference -> what to run. images.ts turns it into the kubelet's ImageCatalog.
import type { V1Container } from "@kubernetes/client-node";

export interface WebImage {
  /** The repository as the catalogue names it (`nginx`, `traefik/whoami`). */
  name: string;
  /** Ports the real image listens on by default. */
  ports: number[];
  /** The container's args that set a port in the real image (e.g. http-echo's `-listen=:5678`). */
  portFromArgs?: (args: string[]) => number[];
}

function flagPorts(names: string[]): (args: string[]) => number[] {
  return (args) => {
    const out: number[] = [];
    args.forEach((arg, i) => {
      for (const name of names) {
        const m = new RegExp(`^-{1,2}${name}(?:=(.*))?$`).exec(arg);
        if (!m) continue;
        const value = m[1] ?? args[i + 1] ?? "";
        const port = /(\d+)$/.exec(value)?.[1];
        if (port !== undefined) out.push(Number(port));
      }
    });
    return out;
  };
}

/** Repository (normalised: no registry docker.io, no library/) -> the real image's usual ports. */
const CATALOGUE: WebImage[] = [
  { name: "nginx", ports: [80] },
  { name: "nginxinc/nginx-unprivileged", ports: [8080] },
  { name: "bitnami/nginx", ports: [8080] },
  { name: "nginxdemos/hello", ports: [80] },
  { name: "httpd", ports: [80] },
  { name: "caddy", ports: [80] },
  { name: "traefik/whoami", ports: [80], portFromArgs: flagPorts(["port"]) },
  { name: "containous/whoami", ports: [80], portFromArgs: flagPorts(["port"]) },
  { name: "hashicorp/http-echo", ports: [5678], portFromArgs: flagPorts(["listen"]) },
  { name: "registry.k8s.io/e2e-test-images/agnhost", ports: [8080], portFromArgs: flagPorts(["http-port", "port"]) },
  { name: "registry.k8s.io/echoserver", ports: [8080] },
  { name: "gcr.io/google-samples/hello-app", ports: [8080] },
  { name: "us-docker.pkg.dev/google-samples/containers/gke/hello-app", ports: [8080] },
  { name: "paulbouwer/hello-kubernetes", ports: [8080] },
  { name: "kennethreitz/httpbin", ports: [80] },
  { name: "mccutchen/go-httpbin", ports: [8080] },
  { name: "ealen/echo-server", ports: [80] },
  { name: "mendhak/http-https-echo", ports: [8080] },
  { name: "jmalloc/echo-server", ports: [8080] },
];

/** Registries renamed over the years; the catalogue names the current one. */
const ALIASES: Record<string, string> = {
  "k8s.gcr.io/e2e-test-images/agnhost": "registry.k8s.io/e2e-test-images/agnhost",
  "gcr.io/kubernetes-e2e-test-images/agnhost": "registry.k8s.io/e2e-test-images/agnhost",
  "k8s.gcr.io/echoserver": "registry.k8s.io/echoserver",
};

/** The repository of an image reference: registry docker.io and `library/` dropped, tag and digest cut off. */
export function imageRepository(image: string): string {
  let ref = image.trim();
  const at = ref.indexOf("@");
  if (at >= 0) ref = ref.slice(0, at);
  const lastSlash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  if (colon > lastSlash) ref = ref.slice(0, colon);
  for (const prefix of ["docker.io/", "index.docker.io/", "registry-1.docker.io/"]) {
    if (ref.startsWith(prefix)) ref = ref.slice(prefix.length);
  }
  if (ref.startsWith("library/")) ref = ref.slice("library/".length);
  ref = ref.toLowerCase();
  return ALIASES[ref] ?? ref;
}

export function catalogueEntry(image: string): WebImage | undefined {
  const repo = imageRepository(image);
  return CATALOGUE.find((e) => e.name === repo);
}

/** Every repository of the catalogue with its ports (docs/sandbox.md lists the same). */
export function catalogue(): readonly WebImage[] {
  return CATALOGUE;
}

/** Ports a container without declared ports gets from an image the catalogue does not know. */
export const UNKNOWN_IMAGE_PORTS = [80, 8080];

export interface WebPlan {
  /** TCP ports the stand-in listens on, sorted. */
  ports: number[];
  /** Whether the catalogue knows the image. */
  known: boolean;
  /** What the pod's Event says. */
  message: string;
}

/** The ports a container of `image` serves on in the sandbox, and the Event its pod gets. */
export function planWebContainer(image: string, container: Pick<V1Container, "ports" | "args" | "command">): WebPlan {
  const entry = catalogueEntry(image);
  const declared = (container.ports ?? []).filter((p) => (p.protocol ?? "TCP") === "TCP").map((p) => p.containerPort);
  const fromArgs = entry?.portFromArgs?.([...(container.command ?? []), ...(container.args ?? [])]) ?? [];
  const base = entry ? (fromArgs.length > 0 ? fromArgs : entry.ports) : (declared.length > 0 ? [] : UNKNOWN_IMAGE_PORTS);
  const ports = [...new Set([...base, ...declared])].filter((p) => Number.isInteger(p) && p > 0 && p < 65536).sort((a, b) => a - b);
  const list = ports.join(", ");
  const message = entry
    ? `Image "${image}" runs the sandbox's web stand-in (no container engine here), answering HTTP on port${ports.length === 1 ? "" : "s"} ${list}`
    : `The sandbox has no image "${image}" (no container engine, and it is not in the sandbox's web catalogue): the container runs the sandbox's web stand-in instead, answering HTTP on port${ports.length === 1 ? "" : "s"} ${list}`;
  return { ports, known: entry !== undefined, message };
}
