// The sandbox's stand-in for the DaemonSet controller, the pod GC and the kubelets of its nodes (a stand-in: small,
// documented, not a kubelet). It talks HTTP to the API server through our KubeClient and Informer like any other
// component, and runs pods as REAL processes:
// - the DaemonSet controller (unbound daemon pods created, pods deleted, rollouts, status counts) and the pod GC are
//   the pure planPlacement() in scheduling.ts, carried out here; binding is the scheduler stand-in's (scheduler.ts),
//   a separate component as in a cluster;
// - every pod bound to one of `nodes` (DaemonSet pods and bare pods that set spec.nodeName) is admitted (sysctls
//   outside the allowlist: rejected, Failed with SysctlForbidden; a host port one of the node's running pods holds:
//   rejected, Failed with NodePorts; as a kubelet does), then gets a network namespace
//   from the PodNetwork, its securityContext.sysctls set there, an emptyDir per volume (a host directory under
//   podsDir, bind-mounted in the container's private mount namespace), and one process per container
//   (kubelet/container.ts) with the downward API in its environment, readiness from its real probe, restarts with
//   backoff, and its output in `<logDir>/<namespace>_<pod>_<container>.log`;
// - a deleted pod (deletionTimestamp): SIGTERM, its grace period, SIGKILL, then DELETE with grace 0, the network
//   detached and its volumes removed; a pod that vanished (force-deleted, node gone): the same with a 2 s grace;
// - Events as the kubelet and the DaemonSet controller write them (kubelet/events.ts).
// Differences from a kubelet, on purpose: until a container is Ready its readiness probe runs every probePeriodMs
// (default 1 s) instead of every periodSeconds, and restarts back off 1 s .. 10 s instead of 10 s .. 5 min
// (container.ts), so the sandbox and its tests react in seconds. Not there: images (an ImageCatalog maps image
// names to host programs), resource limits, dropped capabilities (containers run as root), init containers,
// volumes other than emptyDir, probes other than exec/tcpSocket/httpGet (such a pod's containers
// wait with a message saying so).
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { V1DaemonSet, V1Node, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { runChecked, systemRunner, type CommandRunner } from "../../lib/exec.js";
import { isAlreadyExists, isConflict, isNotFound, noLog, Resources, type KubeClient, type LogFn, type Resource } from "../../lib/kube/client.js";
import { Informer } from "../../lib/kube/informer.js";
import { ContainerRuntime, now } from "./kubelet/container.js";
import { writeConfigMapVolumes } from "./kubelet/configmap-volume.js";
import { EventRecorder, involved, type InvolvedObject } from "./kubelet/events.js";
import { forbiddenSysctl, podStatus, unsupportedPodFeature, type ImageCatalog } from "./kubelet/spec.js";
import { hostNetworkAttachment, isHostNetwork } from "./kubelet/host-network.js";
import type { PodNetwork } from "./network.js";
import { planPlacement, portsClash, type PlacementAction } from "./scheduling.js";
import { PassLoop } from "./pass-loop.js";

export type { ContainerImage, ImageCatalog } from "./kubelet/spec.js";

export interface KubeletOptions {
  client: KubeClient;
  /**
   * The nodes whose pods this stand-in runs, with their IPs (status.hostIPs; IPv4 first) and network namespace
   * (where host-network pods run; without it such pods wait with a message saying so).
   */
  nodes: { name: string; ips: string[]; ns?: string }[];
  network: PodNetwork;
  images: ImageCatalog;
  /** Container output goes to `<logDir>/<namespace>_<pod>_<container>.log`. */
  logDir: string;
  /** Where pods' emptyDir volumes live (`<podsDir>/<pod uid>/<volume>`); default `<logDir>/pods`. */
  podsDir?: string;
  /**
   * Readiness probe period while a container is not Ready, default 1000 ms; once Ready, the probe's own
   * periodSeconds (at least this). A kubelet uses periodSeconds throughout (10 s by default, 5 s for lb-pods), so a
   * pod would become Ready up to 5 s after its rules are in; the sandbox wants it within a second.
   */
  probePeriodMs?: number;
  /**
   * `--allowed-unsafe-sysctls`: sysctl names or `prefix*` patterns a pod may set besides the safe ones; a pod asking
   * for another is rejected (phase Failed, reason SysctlForbidden) as a kubelet does. Default: none, as a stock
   * kubelet (kubeadm's, or k3s's with its servicelb disabled), so tests see what users see.
   */
  allowedUnsafeSysctls?: string[];
  /** Longest grace stop() gives a container before SIGKILL; default 5000 ms. */
  stopGraceMs?: number;
  runner?: CommandRunner;
  log?: LogFn;
}

/** Grace for pods that vanished from the API server without a graceful delete (force delete, pod GC). */
const VANISHED_GRACE_MS = 2000;
/** Retry after a failed write or pod setup; and a full pass this often anyway. */
const RETRY_MS = 500;
const RESYNC_MS = 5000;

/** One pod this kubelet runs. */
class PodRuntime {
  readonly uid: string;
  readonly containers: ContainerRuntime[] = [];
  netns: string | undefined;
  podIPs: string[] = [];
  sandboxError: string | undefined;
  /** Set once termination began; the promise resolves when nothing of the pod runs and its network is detached. */
  ending: Promise<void> | undefined;
  lastWritten = "";
  /**
   * The status last written. Transition times are kept from it rather than from the informer's copy, which lags one
   * write behind: computing from that copy made two in-flight versions overwrite each other forever (seen: 114
   * writes/s to one lb-pod, the supervisor at ~0.8 of a core while idle).
   */
  lastStatus: V1PodStatus | undefined;
  readonly startTime: string;
  private setup: Promise<void> | undefined;

  constructor(
    public pod: V1Pod,
    private readonly k: KubeletStandIn,
    readonly hostIPs: string[],
  ) {
    this.uid = pod.metadata?.uid ?? "";
    // Kept across restarts of this stand-in, as a kubelet keeps it.
    this.startTime = pod.status?.startTime ? String(pod.status.startTime) : now();
  }

  get key(): string {
    return `${this.pod.metadata?.namespace}/${this.pod.metadata?.name}`;
  }

  get volumesDir(): string {
    return join(this.k.podsDir, this.uid);
  }

  start(): void {
    this.setup ??= this.bringUp();
  }

  /** Network, sysctls, volumes, then the containers; retried until it works or the pod ends. */
  private async bringUp(): Promise<void> {
    const unsupported = unsupportedPodFeature(this.pod);
    if (unsupported) {
      this.sandboxError = unsupported;
      this.k.kick();
      return;
    }
    for (let delay = RETRY_MS; !this.ending; delay = Math.min(delay * 2, 10_000)) {
      try {
        const attached = isHostNetwork(this.pod) ? this.hostNetwork() : await this.k.o.network.attachPod(this.pod.spec?.nodeName ?? "", this.uid);
        this.netns = attached.ns;
        this.podIPs = attached.ips;
        for (const s of this.pod.spec?.securityContext?.sysctls ?? []) {
          await runChecked(this.k.runner, "sysctl", ["-w", `${s.name}=${s.value}`], { netns: attached.ns });
        }
        for (const v of this.pod.spec?.volumes ?? []) if (v.emptyDir) await mkdir(join(this.volumesDir, v.name), { recursive: true });
        await writeConfigMapVolumes(this.k.o.client, this.pod, this.volumesDir);
        this.sandboxError = undefined;
        break;
      } catch (e) {
        this.sandboxError = `failed to create the pod sandbox: ${(e as Error).message}`;
        this.k.log("warn", `pod ${this.key}: ${this.sandboxError}`);
        this.k.kick();
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    if (this.ending || this.netns === undefined) return;
    for (const container of this.pod.spec?.containers ?? []) {
      const runtime = new ContainerRuntime({
        pod: this.pod, container, netns: this.netns, facts: { hostIPs: this.hostIPs, podIPs: this.podIPs },
        images: this.k.o.images, volumesDir: this.volumesDir,
        logFile: join(this.k.o.logDir, `${this.pod.metadata?.namespace}_${this.pod.metadata?.name}_${container.name}.log`),
        probePeriodMs: this.k.probePeriodMs, runner: this.k.runner, log: this.k.log, onChange: () => this.k.kick(),
        event: (type, reason, message) => this.k.events.record(
          { component: "kubelet", host: this.pod.spec?.nodeName ?? "" }, involved("Pod", this.pod), type, reason, message),
      });
      this.containers.push(runtime);
      runtime.start();
    }
    this.k.kick();
  }

  /** The status to report now; `previous` (the live one) keeps unchanged conditions' transition times. */
  status(previous: V1PodStatus | undefined): V1PodStatus {
    const specContainers = this.pod.spec?.containers ?? [];
    const reports = this.containers.length === specContainers.length
      ? this.containers.map((c) => c.report())
      : specContainers.map((c) => ({
        name: c.name, image: c.image ?? "", restartCount: 0, everStarted: false,
        current: { state: "waiting" as const, reason: "ContainerCreating", ...(this.sandboxError ? { message: this.sandboxError } : {}) },
      }));
    return podStatus({ hostIPs: this.hostIPs, podIPs: this.podIPs, sandboxReady: this.netns !== undefined && !this.sandboxError, startTime: this.startTime, containers: reports }, previous, now());
  }

  /** A host-network pod's place: the node's namespace, never created or removed here. */
  private hostNetwork(): { ns: string; ips: string[] } {
    const nodeName = this.pod.spec?.nodeName ?? "";
    const where = hostNetworkAttachment(this.pod, this.k.o.nodes.find((n) => n.name === nodeName)?.ns, this.hostIPs);
    if ("problem" in where) throw new Error(where.problem);
    return where;
  }

  /** Stops every container (SIGTERM, grace, SIGKILL), detaches the network, removes the volumes. Idempotent. */
  end(graceMs: number): Promise<void> {
    this.ending ??= (async () => {
      await this.setup?.catch(() => undefined);
      await Promise.all(this.containers.map((c) => c.stop(graceMs)));
      // A host-network pod has no namespace of its own: detaching would kill what runs in the node's.
      if (!isHostNetwork(this.pod)) await this.k.o.network.detachPod(this.uid);
      await rm(this.volumesDir, { recursive: true, force: true });
    })();
    return this.ending;
  }
}

export class KubeletStandIn {
  readonly runner: CommandRunner;
  readonly log: LogFn;
  readonly probePeriodMs: number;
  readonly podsDir: string;
  readonly events: EventRecorder;
  private readonly pods: Informer<V1Pod>;
  private readonly nodes: Informer<V1Node>;
  private readonly daemonSets: Informer<V1DaemonSet>;
  private readonly runtimes = new Map<string, PodRuntime>();
  private readonly myNodes: Map<string, string[]>;
  /** Nodes whose kubelet is stopped (`sandbox kubelet stop`): their pods are left alone, their processes run on. */
  private readonly pausedNodes = new Set<string>();
  private readonly loop: PassLoop;
  private resync: NodeJS.Timeout | undefined;

  constructor(readonly o: KubeletOptions) {
    this.runner = o.runner ?? systemRunner();
    this.log = o.log ?? noLog;
    this.loop = new PassLoop(() => this.pass(), (e) => this.log("warn", "kubelet stand-in pass failed; retrying", { error: String(e) }), { retryMs: RETRY_MS });
    this.probePeriodMs = o.probePeriodMs ?? 1000;
    this.podsDir = o.podsDir ?? join(o.logDir, "pods");
    this.events = new EventRecorder(o.client, this.log);
    this.myNodes = new Map(o.nodes.map((n) => [n.name, n.ips]));
    const kick = { onAdd: () => this.kick(), onUpdate: () => this.kick(), onDelete: () => this.kick() };
    const informer = <T extends V1Pod | V1Node | V1DaemonSet>(resource: Resource): Informer<T> => {
      const i = new Informer<T>({ client: o.client, resource, log: this.log, name: `kubelet-${resource.plural}` });
      i.addHandlers(kick);
      return i;
    };
    this.pods = informer<V1Pod>(Resources.pods);
    this.nodes = informer<V1Node>(Resources.nodes);
    this.daemonSets = informer<V1DaemonSet>(Resources.daemonSets);
  }

  /** Starts watching; resolves once the caches are synced and the first pass is done. */
  async start(): Promise<void> {
    await mkdir(this.o.logDir, { recursive: true });
    await mkdir(this.podsDir, { recursive: true });
    for (const i of [this.pods, this.nodes, this.daemonSets]) i.start();
    await Promise.all([this.pods.synced, this.nodes.synced, this.daemonSets.synced]);
    this.resync = setInterval(() => this.kick(), RESYNC_MS);
    await this.loop.runNow();
  }

  /** Stops watching and ends every pod it runs: SIGTERM, grace (at most stopGraceMs), SIGKILL, network detached. */
  async stop(): Promise<void> {
    const drained = this.loop.stop();
    if (this.resync) clearInterval(this.resync);
    await Promise.all([this.pods, this.nodes, this.daemonSets].map((i) => i.stop()));
    await drained;
    const cap = this.o.stopGraceMs ?? 5000;
    await Promise.all([...this.runtimes.values()].map((r) => r.end(Math.min(cap, graceMsOf(r.pod)))
      .catch((e: unknown) => this.log("error", `pod ${r.key}: stopping failed`, { error: String(e) }))));
    this.runtimes.clear();
  }

  /**
   * Stops acting as the kubelet of `node`, as when a kubelet process dies: nothing of its pods is posted, started,
   * restarted or ended any more, while the processes already running go on (containers outlive their kubelet).
   */
  pause(node: string): void {
    this.pausedNodes.add(node);
  }

  /** Acts again for `node`: every pod's status is posted afresh (a restarted kubelet writes what it sees). */
  resume(node: string): void {
    if (!this.pausedNodes.delete(node)) return;
    for (const runtime of this.runtimes.values()) {
      if (runtime.pod.spec?.nodeName === node) runtime.lastWritten = "";
    }
    this.kick();
  }

  paused(node: string): boolean {
    return this.pausedNodes.has(node);
  }

  /** Asks for a pass (handlers and containers call this; passes never overlap). */
  kick(delayMs = 0): void {
    this.loop.kick(delayMs);
  }

  private async pass(): Promise<void> {
    const pods = this.pods.list();
    const nodes = this.nodes.list();
    for (const action of planPlacement({ daemonSets: this.daemonSets.list(), nodes, pods })) await this.carryOut(action);

    const nodeNames = new Set(nodes.map((n) => n.metadata?.name ?? ""));
    const podsByUid = new Map(pods.map((p) => [p.metadata?.uid ?? "", p]));
    // Pods gone from the API server (force-deleted, pod GC): stop what still runs.
    for (const [uid, runtime] of this.runtimes) {
      if (podsByUid.has(uid)) continue;
      if (runtime.ending) continue;
      if (this.pausedNodes.has(runtime.pod.spec?.nodeName ?? "")) continue;
      this.log("info", `pod ${runtime.key} is gone: stopping it`);
      void runtime.end(Math.min(VANISHED_GRACE_MS, graceMsOf(runtime.pod)))
        .catch((e: unknown) => this.log("error", `pod ${runtime.key}: stopping failed`, { error: String(e) }))
        .finally(() => this.runtimes.delete(uid));
    }
    for (const pod of pods) {
      const nodeName = pod.spec?.nodeName;
      const hostIPs = nodeName === undefined ? undefined : this.myNodes.get(nodeName);
      if (hostIPs === undefined || !nodeNames.has(nodeName as string)) continue;
      if (this.pausedNodes.has(nodeName as string)) continue;
      const uid = pod.metadata?.uid ?? "";
      let runtime = this.runtimes.get(uid);
      if (pod.metadata?.deletionTimestamp) {
        if (!runtime) {
          await this.confirmDeletion(pod);
        } else if (!runtime.ending) {
          const r = runtime;
          this.log("info", `pod ${r.key} is being deleted: stopping it (grace ${graceMsOf(pod)} ms)`);
          // Confirmed even when detaching failed: the processes are gone by then (stop() ends in SIGKILL), and a
          // pod left Terminating forever would block its DaemonSet's replacement on this node.
          const fail = (what: string) => (e: unknown) => this.log("error", `pod ${r.key}: ${what} failed`, { error: String(e) });
          void r.end(graceMsOf(pod)).catch(fail("stopping")).then(() => this.confirmDeletion(pod)).catch(fail("confirming the deletion"));
        }
        continue;
      }
      if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") continue;
      if (!runtime) {
        const forbidden = forbiddenSysctl(pod, this.o.allowedUnsafeSysctls ?? []);
        if (forbidden !== undefined) {
          await this.reject(pod, "SysctlForbidden", forbidden);
          continue;
        }
        // lifecycle/predicate.go: GeneralPredicates against the pods this node already runs (terminating ones
        // too, until they are gone), whoever bound it: a clash the scheduler could not see (a pod created with
        // spec.nodeName, a decision made on a lagging cache) fails the pod instead of running two on one port.
        if (this.holdsPortsOf(pod, nodeName as string, podsByUid)) {
          await this.reject(pod, "NodePorts", "Predicate NodePorts failed");
          continue;
        }
        runtime = new PodRuntime(pod, this, hostIPs);
        this.runtimes.set(uid, runtime);
        this.log("info", `pod ${runtime.key} on ${nodeName}: starting`);
        runtime.start();
      }
      runtime.pod = pod;
      if (runtime.ending) continue;
      await this.writeStatus(runtime, pod);
    }
  }

  private async writeStatus(runtime: PodRuntime, pod: V1Pod): Promise<void> {
    const status = runtime.status(runtime.lastStatus ?? pod.status);
    const text = JSON.stringify(status);
    if (text === runtime.lastWritten) return;
    try {
      await this.o.client.patchStatus(Resources.pods, pod.metadata?.name ?? "", "merge", { status }, { namespace: pod.metadata?.namespace ?? "" });
      runtime.lastWritten = text;
      runtime.lastStatus = status;
    } catch (e) {
      if (isNotFound(e)) return;
      throw e;
    }
  }

  private daemonSetEvent(pod: V1Pod, type: "Normal" | "Warning", reason: string, message: string): void {
    const owner = ownerOf(pod);
    if (owner) this.events.record({ component: "daemonset-controller" }, owner, type, reason, message);
  }

  /** Whether a pod this kubelet runs on `nodeName` (not finished; or still stopping) holds a host port `pod` asks for. */
  private holdsPortsOf(pod: V1Pod, nodeName: string, live: Map<string, V1Pod>): boolean {
    for (const [uid, runtime] of this.runtimes) {
      if (runtime.pod.spec?.nodeName !== nodeName) continue;
      const current = live.get(uid);
      const finished = current?.status?.phase === "Succeeded" || current?.status?.phase === "Failed";
      if ((runtime.ending || !finished) && portsClash(pod, runtime.pod) !== undefined) return true;
    }
    return false;
  }

  /** Admission refused (pkg/kubelet rejectPod): the pod fails without running, with a Warning Event saying why. */
  private async reject(pod: V1Pod, reason: string, message: string): Promise<void> {
    this.log("info", `pod ${pod.metadata?.namespace}/${pod.metadata?.name} rejected: ${message}`);
    const namespace = pod.metadata?.namespace ?? "";
    await this.o.client.patchStatus(Resources.pods, pod.metadata?.name ?? "", "merge", {
      status: { phase: "Failed", reason, message: `Pod was rejected: ${message}`, startTime: now(), qosClass: "BestEffort" },
    }, { namespace });
    this.events.record({ component: "kubelet", host: pod.spec?.nodeName ?? "" }, involved("Pod", pod), "Warning", reason, message);
  }

  private async confirmDeletion(pod: V1Pod): Promise<void> {
    try {
      await this.o.client.delete(Resources.pods, pod.metadata?.name ?? "", {
        namespace: pod.metadata?.namespace ?? "", gracePeriodSeconds: 0, preconditions: { uid: pod.metadata?.uid ?? "" },
      });
    } catch (e) {
      if (!isNotFound(e) && !isConflict(e)) throw e;
    } finally {
      this.runtimes.delete(pod.metadata?.uid ?? "");
    }
  }

  private async carryOut(action: PlacementAction): Promise<void> {
    const c = this.o.client;
    try {
      switch (action.kind) {
        case "create": {
          const created = await c.create<V1Pod>(Resources.pods, action.pod);
          this.daemonSetEvent(created, "Normal", "SuccessfulCreate", `Created pod: ${created.metadata?.name}`);
          break;
        }
        case "delete": {
          const podName = `${action.pod.metadata?.namespace}/${action.pod.metadata?.name}`;
          this.log("info", `deleting pod ${podName}: ${action.why}`);
          if (action.pod.status?.phase === "Failed") {
            this.daemonSetEvent(action.pod, "Warning", "FailedDaemonPod", `Found failed daemon pod ${podName} on node ${action.pod.spec?.nodeName}, will try to kill it`);
          }
          await c.delete(Resources.pods, action.pod.metadata?.name ?? "", {
            namespace: action.pod.metadata?.namespace ?? "", preconditions: { uid: action.pod.metadata?.uid ?? "" },
            ...(action.force ? { gracePeriodSeconds: 0 } : {}),
          });
          this.daemonSetEvent(action.pod, "Normal", "SuccessfulDelete", `Deleted pod: ${action.pod.metadata?.name}`);
          break;
        }
        case "daemonSetStatus":
          await c.patchStatus(Resources.daemonSets, action.daemonSet.metadata?.name ?? "", "merge",
            { status: { numberUnavailable: null, ...action.status } }, { namespace: action.daemonSet.metadata?.namespace ?? "" });
          break;
      }
    } catch (e) {
      // Someone (or an earlier pass) got there first; the watch brings the current state.
      if (isNotFound(e) || isAlreadyExists(e) || isConflict(e)) return;
      throw e;
    }
  }
}

/** The owner DaemonSet as an Event's involvedObject, from the pod's owner reference. */
function ownerOf(pod: V1Pod): InvolvedObject | undefined {
  const ref = pod.metadata?.ownerReferences?.find((o) => o.kind === "DaemonSet");
  return ref ? { apiVersion: "apps/v1", kind: "DaemonSet", namespace: pod.metadata?.namespace ?? "", name: ref.name, uid: ref.uid } : undefined;
}

/** The pod's grace period in ms: the deletion's, else the spec's, else Kubernetes' default of 30 s. */
function graceMsOf(pod: V1Pod): number {
  return (pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000;
}
