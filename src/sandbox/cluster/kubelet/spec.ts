// Pure parts of the kubelet stand-in: what a container runs (command line, environment with the downward API and
// $(VAR) references, volume mounts) and the pod status the kubelet reports. No I/O here; kubelet.ts does it.
import type { V1Container, V1ContainerStatus, V1Pod, V1PodCondition, V1PodStatus } from "@kubernetes/client-node";

/** What the sandbox knows about an image: there is no registry and no container engine, so an image names host programs. */
export interface ContainerImage {
  /** The image's ENTRYPOINT, used when the container sets no command. */
  entrypoint: string[];
  /** Directories put first on the container's PATH (the image's PATH). */
  pathDirs: string[];
  /** The image's ENV (container env entries override them). */
  env?: Record<string, string>;
  /**
   * For an image the sandbox cannot run (nginx, any image it does not know): the stand-in program's command line
   * for this container, used instead of the container's command and args (they name programs of the real image),
   * and the Event the kubelet records on the pod when the container first starts (web-images.ts).
   */
  standIn?: (container: V1Container, pod: V1Pod) => {
    argv: string[];
    event: { type: "Normal" | "Warning"; reason: string; message: string };
    /**
     * A port the stand-in listens on once it is up. A container without a readiness probe is Ready when it starts;
     * the real web server listens within milliseconds of that, a Node.js stand-in only after ~0.5 s, so the kubelet
     * counts such a container Ready once this port accepts (listeningProbe), not before.
     */
    listensOn?: number;
  };
  /** The image's root filesystem as a directory tree: the container runs chrooted into it (kubelet/rootfs.ts). */
  rootfs?: string;
}

/** Looks an image reference up; undefined makes the container wait with ErrImagePull. */
export type ImageCatalog = (image: string) => ContainerImage | undefined;

/** The PATH a container gets after the image's own directories (Debian's default PATH for root). */
export const BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Values the downward API can hand out once the pod is placed and its network is up. */
export interface PodFacts {
  hostIPs: string[];
  podIPs: string[];
}

/** A container that cannot start, with the reason and message the kubelet would show in its waiting state. */
export class ContainerConfigError extends Error {
  override readonly name = "ContainerConfigError";
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

/** One bind mount into the container's private mount namespace. */
export interface Mount {
  /** Volume name (its directory on the host is <pod dir>/<name>). */
  volume: string;
  mountPath: string;
  readOnly: boolean;
}

export interface ContainerLaunch {
  argv: string[];
  env: Record<string, string>;
  mounts: Mount[];
}

/**
 * Pod features the sandbox kubelet does not have, as a message for the containers' waiting state; undefined when
 * it can run the pod. (The lb-pod and the demo app need none of them.)
 */
export function unsupportedPodFeature(pod: V1Pod): string | undefined {
  if ((pod.spec?.initContainers ?? []).length > 0) return "init containers are not supported by the sandbox kubelet";
  return undefined;
}

/**
 * The sysctls a kubelet allows without --allowed-unsafe-sysctls (pkg/kubelet/sysctl/safe_sysctls.go, Kubernetes
 * 1.32). The lb-pods' forwarding sysctls are not among them.
 */
export const SAFE_SYSCTLS: readonly string[] = [
  "kernel.shm_rmid_forced",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.ping_group_range",
  "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.tcp_keepalive_time",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
  "net.ipv4.tcp_rmem",
  "net.ipv4.tcp_wmem",
];

/**
 * The kubelet's sysctl admission (pkg/kubelet/sysctl): the first of the pod's sysctls that is neither safe nor
 * matched by the allowlist (`--allowed-unsafe-sysctls` patterns: a name, or a prefix ending in `*`), as the
 * rejection message; undefined when the pod is admitted. There is no "allow everything": a kubelet has none.
 */
export function forbiddenSysctl(pod: V1Pod, allowedUnsafe: readonly string[]): string | undefined {
  const allowed = (name: string): boolean => SAFE_SYSCTLS.includes(name) ||
    allowedUnsafe.some((p) => (p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : name === p));
  const bad = (pod.spec?.securityContext?.sysctls ?? []).find((s) => !allowed(s.name));
  return bad ? `forbidden sysctl: "${bad.name}" not allowlisted` : undefined;
}

/** ErrImagePull's message, as close to the kubelet's as a catalog lookup allows. */
export function imageNotFoundMessage(image: string): string {
  return `Failed to pull image "${image}": the sandbox's image catalog has no image "${image}" (it runs host programs, it cannot pull)`;
}

/**
 * The command line, environment and mounts of one container, or a ContainerConfigError saying why it cannot run
 * (CreateContainerConfigError, as the kubelet reports a bad env reference or an unsupported volume).
 *
 * Environment order, as a container runtime builds it: PATH (image dirs first) and HOSTNAME, the image's ENV, then
 * the container's env in order; `$(NAME)` in values, command and args expands to a variable defined before it
 * (`$$` escapes), as the kubelet's expansion (third_party/forked/golang/expansion) does.
 */
export function containerLaunch(pod: V1Pod, container: V1Container, image: ContainerImage, facts: PodFacts): ContainerLaunch {
  const env: Record<string, string> = {
    // Each directory once (an image's PATH may already list the system directories).
    PATH: [...new Set([...image.pathDirs, ...BASE_PATH.split(":")])].join(":"),
    HOSTNAME: pod.metadata?.name ?? "",
    ...(image.env ?? {}),
  };
  if (container.envFrom && container.envFrom.length > 0) {
    throw new ContainerConfigError("CreateContainerConfigError", "envFrom is not supported by the sandbox kubelet");
  }
  for (const e of container.env ?? []) {
    if (e.valueFrom === undefined) {
      env[e.name] = expand(e.value ?? "", env);
      continue;
    }
    const path = e.valueFrom.fieldRef?.fieldPath;
    if (path === undefined) {
      throw new ContainerConfigError("CreateContainerConfigError", `env ${e.name}: only valueFrom.fieldRef is supported by the sandbox kubelet`);
    }
    env[e.name] = fieldValue(pod, path, facts, e.name);
  }
  const entry = container.command ?? image.entrypoint;
  const argv = image.standIn ? image.standIn(container, pod).argv : [...entry, ...(container.args ?? [])].map((a) => expand(a, env));
  if (argv.length === 0) throw new ContainerConfigError("CreateContainerConfigError", "no command specified");

  const volumes = new Map((pod.spec?.volumes ?? []).map((v) => [v.name, v]));
  const mounts: Mount[] = [];
  for (const m of container.volumeMounts ?? []) {
    const volume = volumes.get(m.name);
    if (!volume) throw new ContainerConfigError("CreateContainerConfigError", `volume mount ${m.name}: no volume of that name in the pod`);
    if (!volume.emptyDir && !volume.configMap) throw new ContainerConfigError("CreateContainerConfigError", `volume ${m.name}: only emptyDir and configMap volumes are supported by the sandbox kubelet`);
    if (m.subPath) throw new ContainerConfigError("CreateContainerConfigError", `volume mount ${m.name}: subPath is not supported by the sandbox kubelet`);
    mounts.push({ volume: m.name, mountPath: m.mountPath, readOnly: m.readOnly === true });
  }
  return { argv, env, mounts };
}

/** The downward API's fieldRef values (pkg/fieldpath and the kubelet's podFieldSelectorRuntimeValue). */
function fieldValue(pod: V1Pod, path: string, facts: PodFacts, envName: string): string {
  const keyed = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(path);
  if (keyed) return (keyed[1] === "labels" ? pod.metadata?.labels : pod.metadata?.annotations)?.[keyed[2] as string] ?? "";
  switch (path) {
    case "metadata.name": return pod.metadata?.name ?? "";
    case "metadata.namespace": return pod.metadata?.namespace ?? "";
    case "metadata.uid": return pod.metadata?.uid ?? "";
    case "spec.nodeName": return pod.spec?.nodeName ?? "";
    case "spec.serviceAccountName": return pod.spec?.serviceAccountName ?? "";
    // Plural ones are comma-separated, as the kubelet formats them (status.hostIPs since 1.28, status.podIPs).
    case "status.hostIP": return facts.hostIPs[0] ?? "";
    case "status.hostIPs": return facts.hostIPs.join(",");
    case "status.podIP": return facts.podIPs[0] ?? "";
    case "status.podIPs": return facts.podIPs.join(",");
    default:
      throw new ContainerConfigError("CreateContainerConfigError", `env ${envName}: fieldRef ${path} is not supported by the sandbox kubelet`);
  }
}

/** Kubernetes' $(VAR) expansion: defined names are replaced, unknown ones kept as written, $$ is a literal $. */
export function expand(input: string, env: Record<string, string>): string {
  return input.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => {
    if (name === undefined) return "$";
    return Object.hasOwn(env, name) ? (env[name] as string) : whole;
  });
}

// ---- status ----

/** What the kubelet knows about one container right now. */
export type ContainerState =
  | { state: "waiting"; reason: string; message?: string }
  | { state: "running"; startedAt: string; ready: boolean }
  | { state: "terminated"; exitCode: number; signal?: number; reason: string; startedAt: string; finishedAt: string };

export interface ContainerReport {
  name: string;
  image: string;
  current: ContainerState;
  /** The previous run's end, once there was one. */
  last?: Extract<ContainerState, { state: "terminated" }>;
  restartCount: number;
  /** Whether it has ever run (the pod leaves Pending once every container has). */
  everStarted: boolean;
}

export interface PodReport {
  hostIPs: string[];
  podIPs: string[];
  /** PodReadyToStartContainers: the sandbox (network namespace, sysctls) is up. */
  sandboxReady: boolean;
  startTime: string;
  containers: ContainerReport[];
}

/**
 * The status the kubelet writes for a pod (kubelet_pods.go generateAPIPodStatus, simplified): phase Pending until
 * every container has started once, then Running (restartPolicy Always: a crashed container restarts and the pod
 * stays Running); Ready = ContainersReady = every container running and passing its readiness probe. Condition
 * transition times are kept from `previous` while a condition's status does not change.
 */
export function podStatus(report: PodReport, previous: V1PodStatus | undefined, now: string): V1PodStatus {
  const allReady = report.containers.length > 0 && report.containers.every((c) => c.current.state === "running" && c.current.ready);
  const started = report.containers.every((c) => c.everStarted);
  const flag = (b: boolean): string => (b ? "True" : "False");
  const notReady = report.containers.filter((c) => !(c.current.state === "running" && c.current.ready)).map((c) => c.name);
  const readyReason = allReady ? {} : { reason: "ContainersNotReady", message: `containers with unready status: [${notReady.join(" ")}]` };
  const conditions: V1PodCondition[] = [
    { type: "PodReadyToStartContainers", status: flag(report.sandboxReady) },
    { type: "Initialized", status: "True" },
    { type: "Ready", status: flag(allReady), ...readyReason },
    { type: "ContainersReady", status: flag(allReady), ...readyReason },
    { type: "PodScheduled", status: "True" },
  ].map((c) => {
    const old = (previous?.conditions ?? []).find((p) => p.type === c.type);
    const since = old && old.status === c.status && old.lastTransitionTime ? String(old.lastTransitionTime) : now;
    return { ...c, lastProbeTime: null, lastTransitionTime: since } as unknown as V1PodCondition;
  });
  return {
    phase: started ? "Running" : "Pending",
    conditions,
    hostIP: report.hostIPs[0],
    hostIPs: report.hostIPs.map((ip) => ({ ip })),
    ...(report.podIPs.length > 0 ? { podIP: report.podIPs[0], podIPs: report.podIPs.map((ip) => ({ ip })) } : {}),
    startTime: report.startTime as unknown as Date,
    qosClass: "BestEffort",
    containerStatuses: report.containers.map(containerStatus),
  };
}

function containerStatus(c: ContainerReport): V1ContainerStatus {
  const ready = c.current.state === "running" && c.current.ready;
  return {
    name: c.name,
    image: c.image,
    imageID: "",
    ready,
    restartCount: c.restartCount,
    started: c.current.state === "running",
    state: stateOf(c.current),
    lastState: c.last ? stateOf(c.last) : {},
  } as V1ContainerStatus;
}

function stateOf(s: ContainerState): Record<string, unknown> {
  switch (s.state) {
    case "waiting": return { waiting: { reason: s.reason, ...(s.message ? { message: s.message } : {}) } };
    case "running": return { running: { startedAt: s.startedAt } };
    case "terminated":
      return {
        terminated: {
          exitCode: s.exitCode, ...(s.signal !== undefined ? { signal: s.signal } : {}), reason: s.reason,
          startedAt: s.startedAt, finishedAt: s.finishedAt,
        },
      };
  }
}

/** What a readiness probe checks: a command in the container, or a TCP connect / HTTP GET from the pod's network namespace. */
export type ProbeAction =
  | { kind: "exec"; command: string[] }
  | { kind: "tcp"; port: number; host?: string }
  | { kind: "http"; port: number; path: string; host?: string; scheme: "HTTP" | "HTTPS" };

/** The readiness probe's settings (how the sandbox uses the period: see KubeletOptions.probePeriodMs). */
export interface ProbeSettings {
  action: ProbeAction;
  /** The probe's own periodSeconds (default 10 s), in ms. */
  periodMs: number;
  timeoutMs: number;
  failureThreshold: number;
  successThreshold: number;
  initialDelayMs: number;
}

/** The implicit readiness of a stand-in container without a probe: a TCP connect to the port it listens on. */
export function listeningProbe(port: number): ProbeSettings {
  return { action: { kind: "tcp", port }, periodMs: 10_000, timeoutMs: 1000, failureThreshold: 3, successThreshold: 1, initialDelayMs: 0 };
}

/** The container's readiness probe, or undefined (Ready as soon as it runs). Named ports resolve to containerPorts. */
export function readinessProbe(container: V1Container): ProbeSettings | undefined {
  const p = container.readinessProbe;
  if (!p) return undefined;
  const port = (value: number | string | undefined): number => {
    const named = typeof value === "string" && !/^\d+$/.test(value) ? container.ports?.find((cp) => cp.name === value)?.containerPort : undefined;
    const n = named ?? Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      throw new ContainerConfigError("CreateContainerConfigError", `readinessProbe: port ${String(value)} is not a number or a named container port`);
    }
    return n;
  };
  let action: ProbeAction;
  if (p.exec?.command && p.exec.command.length > 0) action = { kind: "exec", command: p.exec.command };
  else if (p.tcpSocket) action = { kind: "tcp", port: port(p.tcpSocket.port), ...(p.tcpSocket.host ? { host: p.tcpSocket.host } : {}) };
  else if (p.httpGet) {
    action = {
      kind: "http", port: port(p.httpGet.port), path: p.httpGet.path ?? "/", scheme: p.httpGet.scheme === "HTTPS" ? "HTTPS" : "HTTP",
      ...(p.httpGet.host ? { host: p.httpGet.host } : {}),
    };
  } else throw new ContainerConfigError("CreateContainerConfigError", "readinessProbe: only exec, tcpSocket and httpGet probes are supported by the sandbox kubelet");
  return {
    action,
    periodMs: (p.periodSeconds ?? 10) * 1000,
    timeoutMs: (p.timeoutSeconds ?? 1) * 1000,
    failureThreshold: p.failureThreshold ?? 3,
    successThreshold: p.successThreshold ?? 1,
    initialDelayMs: (p.initialDelaySeconds ?? 0) * 1000,
  };
}
