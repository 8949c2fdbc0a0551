// The sandbox's controller replicas as pods, so the cluster shows them as a cluster would: `kubectl -n berth-system
// get pods` lists one pod per replica (named by its --identity, the Lease's holderIdentity while it leads, as the
// Deployment in deploy/berth.yaml names each replica by its pod name), `kubectl logs` shows its output, and
// `kubectl delete pod` of a replica ends that process (SIGTERM: a leader hands its Lease over at once) and starts a
// replacement under a new name, as the Deployment's ReplicaSet would.
//
// Why mirrored pods and not pods the kubelet stand-in runs: the controller reaches the sandbox API server on the
// host's 127.0.0.1, which no pod network namespace can reach, and the supervisor waits for each replica's /readyz
// before `up` returns. So the supervisor keeps running the processes (supervisor.ts ControllerProcess) and writes
// a Pod per replica: unbound, with a schedulerName of its own (the scheduler stand-in binds only default-scheduler
// pods, the kubelet stand-in runs only pods bound to its nodes), its status (Running, Ready from /readyz, restart
// count) written by the supervisor as a kubelet would. `kubectl get pods -o wide` shows NODE <none>: the replicas
// run on the sandbox's host, outside the nodes.
import type { V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { isNotFound, noLog, Resources, type KubeClient, type KubeObject, type LogFn } from "../../lib/kube/client.js";
import { Informer } from "../../lib/kube/informer.js";

/** The labels of deploy/berth.yaml's controller pods, plus one that marks them as the supervisor's. */
export const CONTROLLER_POD_LABELS = {
  "app.kubernetes.io/name": "berth",
  "app.kubernetes.io/component": "controller",
  "berth.dev/sandbox-replica": "true",
} as const;
/** Keeps the scheduler stand-in off these pods. */
export const SUPERVISOR_SCHEDULER = "berth-sandbox-supervisor";
export const CONTROLLER_IMAGE = "berth.dev/sandbox/controller:dev";

/** The Pod that stands for replica `identity` (running `args`). */
export function controllerPod(identity: string, namespace: string, args: string[]): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: identity, namespace, labels: { ...CONTROLLER_POD_LABELS } },
    spec: {
      schedulerName: SUPERVISOR_SCHEDULER,
      containers: [{ name: "controller", image: CONTROLLER_IMAGE, args }],
    },
  };
}

export interface ReplicaState {
  pid: number | undefined;
  ready: boolean;
  startedAt: string;
  restarts: number;
}

/** The status a kubelet would post for the replica: Running while its process lives, Ready while /readyz answers. */
export function controllerPodStatus(s: ReplicaState, previous: V1PodStatus | undefined, now: string): V1PodStatus {
  const running = s.pid !== undefined;
  const condition = (type: string, status: boolean) => {
    const old = previous?.conditions?.find((c) => c.type === type);
    const value = status ? "True" : "False";
    return { type, status: value, lastProbeTime: null, lastTransitionTime: old?.status === value ? old.lastTransitionTime : now };
  };
  return {
    phase: "Running",
    hostIP: "127.0.0.1",
    hostIPs: [{ ip: "127.0.0.1" }],
    startTime: (previous?.startTime ?? s.startedAt) as unknown as Date,
    conditions: [condition("Initialized", true), condition("Ready", s.ready && running), condition("ContainersReady", s.ready && running),
      condition("PodScheduled", true)] as unknown as V1PodStatus["conditions"],
    containerStatuses: [{
      name: "controller", image: CONTROLLER_IMAGE, imageID: "", ready: s.ready && running, restartCount: s.restarts, started: running,
      state: running ? { running: { startedAt: s.startedAt as unknown as Date } } : { waiting: { reason: "CrashLoopBackOff" } },
    }],
    qosClass: "BestEffort",
  };
}

export interface ControllerPodsOptions {
  client: KubeClient;
  namespace: string;
  /** A replica's pod was deleted (by kubectl or anyone): end that replica and start a replacement. */
  onDeleted: (identity: string) => void;
  log?: LogFn;
}

/** Writes the replicas' pods and notices their deletion. */
export class ControllerPods {
  private readonly log: LogFn;
  private readonly pods: Informer<V1Pod & KubeObject>;
  /** Pods of replicas the supervisor runs now, by name, with the uid it created. */
  private readonly ours = new Map<string, string>();
  private readonly lastStatus = new Map<string, string>();

  constructor(private readonly o: ControllerPodsOptions) {
    this.log = o.log ?? noLog;
    this.pods = new Informer<V1Pod & KubeObject>({
      client: o.client, resource: Resources.pods, namespace: o.namespace, name: "controller-pods", log: this.log,
      labelSelector: "berth.dev/sandbox-replica=true",
    });
    this.pods.addHandlers({
      onUpdate: (_old, pod) => {
        if (pod.metadata?.deletionTimestamp) this.gone(pod);
      },
      onDelete: (pod) => this.gone(pod),
    });
  }

  async start(): Promise<void> {
    this.pods.start();
    await this.pods.synced;
  }

  async stop(): Promise<void> {
    this.ours.clear();
    await this.pods.stop();
  }

  private gone(pod: V1Pod): void {
    const name = pod.metadata?.name ?? "";
    if (this.ours.get(name) !== pod.metadata?.uid) return;
    this.ours.delete(name);
    this.log("info", `controller pod ${name} deleted: replacing the replica`);
    this.o.onDeleted(name);
  }

  /** Creates the pod of a replica (a leftover of the same name, from a replica replaced earlier, is removed first). */
  async create(identity: string, args: string[]): Promise<void> {
    const c = this.o.client;
    try {
      await c.delete(Resources.pods, identity, { namespace: this.o.namespace, gracePeriodSeconds: 0 });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    const created = await c.create<V1Pod & KubeObject>(Resources.pods, controllerPod(identity, this.o.namespace, args) as V1Pod & KubeObject);
    this.ours.set(identity, created.metadata?.uid ?? "");
    this.lastStatus.delete(identity);
  }

  /** Posts the replica's status when it changed. */
  async report(identity: string, state: ReplicaState): Promise<void> {
    if (!this.ours.has(identity)) return;
    const current = this.pods.get(`${this.o.namespace}/${identity}`);
    const status = controllerPodStatus(state, current?.status, new Date().toISOString().replace(/\.\d+Z$/, "Z"));
    const text = JSON.stringify({ ...status, conditions: status.conditions?.map((c) => ({ ...c, lastTransitionTime: undefined })) });
    if (this.lastStatus.get(identity) === text) return;
    try {
      await this.o.client.patchStatus(Resources.pods, identity, "merge", { status }, { namespace: this.o.namespace });
      this.lastStatus.set(identity, text);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  /** Deletes the pod of a replica that is going away with the sandbox (nothing else). */
  forget(identity: string): void {
    this.ours.delete(identity);
  }
}
