// The I/O half of the sandbox's Deployment and ReplicaSet controller stand-ins (the decisions are deployments.ts and
// replicasets.ts): it watches Deployments, ReplicaSets and pods over HTTP like any controller, runs a pass over all
// of them whenever one changes (passes never overlap), and carries the decisions out: pods created and deleted,
// ReplicaSets created, scaled, annotated and deleted, status written, Events recorded as the replicaset-controller
// and deployment-controller write them.
//
// A controller must not act twice on one decision because its cache still lags its own write (the real controllers
// keep "expectations" for that). Here every object a write returns is kept in an overlay that the next pass reads
// in place of the cache's older copy, until the watch delivers that resourceVersion or newer (the sandbox API
// server's resourceVersions are increasing integers); a pod this stand-in deleted stays out of the view until the
// watch shows it Terminating or gone.
import type { V1Deployment, V1Pod, V1ReplicaSet } from "@kubernetes/client-node";
import { isAlreadyExists, isConflict, isNotFound, noLog, Resources, type KubeClient, type KubeObject, type LogFn, type Resource } from "../../lib/kube/client.js";
import { Informer } from "../../lib/kube/informer.js";
import { planDeployment, type DeploymentAction } from "./deployments.js";
import { EventRecorder, type InvolvedObject } from "./kubelet/events.js";
import { now } from "./kubelet/container.js";
import { planReplicaSet, podFromTemplate } from "./replicasets.js";
import { PassLoop } from "./pass-loop.js";

export const DeploymentsResource = { group: "apps", version: "v1", plural: "deployments", kind: "Deployment", namespaced: true } as const satisfies Resource;
export const ReplicaSetsResource = { group: "apps", version: "v1", plural: "replicasets", kind: "ReplicaSet", namespaced: true } as const satisfies Resource;

/** A full pass this often anyway: availability after minReadySeconds is a matter of time, not of an event. */
const RESYNC_MS = 5000;
const RETRY_MS = 500;
/** An overlay entry the watch never confirmed (the object changed again meanwhile, or went away) is dropped after this. */
const OVERLAY_TTL_MS = 30_000;

const rvOf = (o: KubeObject | undefined): number => Number(o?.metadata?.resourceVersion ?? 0) || 0;

/** Read-your-writes over an informer's cache (see the header). */
class Overlay<T extends KubeObject> {
  private readonly written = new Map<string, { obj: T; at: number }>();
  private readonly deleted = new Map<string, number>();

  constructor(private readonly informer: Informer<T>) {}

  wrote(obj: T): void {
    const uid = obj.metadata?.uid ?? "";
    const seen = this.written.get(uid);
    if (!seen || rvOf(seen.obj) <= rvOf(obj)) this.written.set(uid, { obj, at: Date.now() });
  }

  removed(uid: string): void {
    this.deleted.set(uid, Date.now());
  }

  list(): T[] {
    const t = Date.now();
    const out = new Map<string, T>();
    for (const obj of this.informer.list()) out.set(obj.metadata?.uid ?? "", obj);
    for (const [uid, at] of this.deleted) {
      const cached = out.get(uid);
      if (t - at > OVERLAY_TTL_MS || !cached || (cached.metadata as { deletionTimestamp?: string } | undefined)?.deletionTimestamp) this.deleted.delete(uid);
      else out.delete(uid);
    }
    for (const [uid, { obj, at }] of this.written) {
      const cached = out.get(uid);
      if (t - at > OVERLAY_TTL_MS || (cached && rvOf(cached) >= rvOf(obj))) {
        this.written.delete(uid);
      } else if (!this.deleted.has(uid)) {
        out.set(uid, obj);
      }
    }
    return [...out.values()];
  }
}

export interface WorkloadOptions {
  client: KubeClient;
  log?: LogFn;
}

export class WorkloadControllers {
  private readonly log: LogFn;
  private readonly events: EventRecorder;
  private readonly deployments: Informer<V1Deployment & KubeObject>;
  private readonly replicaSets: Informer<V1ReplicaSet & KubeObject>;
  private readonly pods: Informer<V1Pod & KubeObject>;
  private readonly rsView: Overlay<V1ReplicaSet & KubeObject>;
  private readonly podView: Overlay<V1Pod & KubeObject>;
  private readonly loop: PassLoop;
  private resync: NodeJS.Timeout | undefined;

  constructor(private readonly o: WorkloadOptions) {
    this.log = o.log ?? noLog;
    this.events = new EventRecorder(o.client, this.log);
    // A short delay gathers the burst of events one write causes (a pod's status, its slice, its ReplicaSet).
    this.loop = new PassLoop(() => this.pass(), (e) => this.log("warn", "workload controllers' pass failed; retrying", { error: String(e) }),
      { delayMs: 20, retryMs: RETRY_MS });
    const kick = { onAdd: () => this.kick(), onUpdate: () => this.kick(), onDelete: () => this.kick() };
    const informer = <T extends KubeObject>(resource: Resource): Informer<T> => {
      const i = new Informer<T>({ client: o.client, resource, log: this.log, name: `workloads-${resource.plural}` });
      i.addHandlers(kick);
      return i;
    };
    this.deployments = informer(DeploymentsResource);
    this.replicaSets = informer(ReplicaSetsResource);
    this.pods = informer(Resources.pods);
    this.rsView = new Overlay(this.replicaSets);
    this.podView = new Overlay(this.pods);
  }

  async start(): Promise<void> {
    for (const i of [this.deployments, this.replicaSets, this.pods]) i.start();
    await Promise.all([this.deployments.synced, this.replicaSets.synced, this.pods.synced]);
    this.resync = setInterval(() => this.kick(), RESYNC_MS);
    this.kick();
  }

  async stop(): Promise<void> {
    const drained = this.loop.stop();
    if (this.resync) clearInterval(this.resync);
    await Promise.all([this.deployments, this.replicaSets, this.pods].map((i) => i.stop()));
    await drained;
  }

  private kick(): void {
    this.loop.kick();
  }

  private async pass(): Promise<void> {
    const t = Date.now();
    for (const rs of this.rsView.list()) {
      const plan = planReplicaSet(rs, this.podView.list(), t);
      const ns = rs.metadata?.namespace ?? "";
      const who = rsRef(rs);
      for (let i = 0; i < plan.create; i++) {
        const created = await this.write(() => this.o.client.create<V1Pod & KubeObject>(Resources.pods, podFromTemplate(rs) as V1Pod & KubeObject));
        if (!created) continue;
        this.podView.wrote(created);
        this.events.record({ component: "replicaset-controller" }, who, "Normal", "SuccessfulCreate", `Created pod: ${created.metadata?.name ?? ""}`);
      }
      for (const pod of plan.delete) {
        const name = pod.metadata?.name ?? "";
        const done = await this.write(() => this.o.client.delete(Resources.pods, name, { namespace: ns, preconditions: { uid: pod.metadata?.uid ?? "" } }));
        this.podView.removed(pod.metadata?.uid ?? "");
        if (done) this.events.record({ component: "replicaset-controller" }, who, "Normal", "SuccessfulDelete", `Deleted pod: ${name}`);
      }
      if (plan.status) {
        const status = plan.status;
        const updated = await this.write(() => this.o.client.patchStatus<V1ReplicaSet & KubeObject>(ReplicaSetsResource, rs.metadata?.name ?? "", "merge",
          { status: omitZero(status, ["replicas"]) }, { namespace: ns }));
        if (updated) this.rsView.wrote(updated);
      }
    }
    for (const d of this.deployments.list()) {
      const actions = planDeployment(d, this.rsView.list(), now());
      for (const action of actions) await this.carryOut(d, action);
    }
  }

  private async carryOut(d: V1Deployment & KubeObject, action: DeploymentAction): Promise<void> {
    const c = this.o.client;
    const ns = d.metadata?.namespace ?? "";
    const who: InvolvedObject = { apiVersion: "apps/v1", kind: "Deployment", namespace: ns, name: d.metadata?.name ?? "", uid: d.metadata?.uid ?? "" };
    const scaled = (rs: V1ReplicaSet, from: number, to: number): void => {
      if (from === to) return;
      this.events.record({ component: "deployment-controller" }, who, "Normal", "ScalingReplicaSet",
        `Scaled ${to > from ? "up" : "down"} replica set ${rs.metadata?.name ?? ""} from ${from} to ${to}`);
    };
    switch (action.kind) {
      case "createReplicaSet": {
        const created = await this.write(() => c.create<V1ReplicaSet & KubeObject>(ReplicaSetsResource, action.rs as V1ReplicaSet & KubeObject));
        if (created) {
          this.rsView.wrote(created);
          scaled(created, 0, created.spec?.replicas ?? 0);
        }
        return;
      }
      case "scaleReplicaSet": {
        const from = action.rs.spec?.replicas ?? 0;
        const updated = await this.write(() => c.patch<V1ReplicaSet & KubeObject>(ReplicaSetsResource, action.rs.metadata?.name ?? "", "merge", {
          metadata: { resourceVersion: action.rs.metadata?.resourceVersion, ...(Object.keys(action.annotations).length ? { annotations: action.annotations } : {}) },
          spec: { replicas: action.replicas },
        }, { namespace: ns }));
        if (updated) {
          this.rsView.wrote(updated);
          scaled(updated, from, action.replicas);
        }
        return;
      }
      case "annotateReplicaSet": {
        const updated = await this.write(() => c.patch<V1ReplicaSet & KubeObject>(ReplicaSetsResource, action.rs.metadata?.name ?? "", "merge",
          { metadata: { resourceVersion: action.rs.metadata?.resourceVersion, annotations: action.annotations } }, { namespace: ns }));
        if (updated) this.rsView.wrote(updated);
        return;
      }
      case "deleteReplicaSet":
        await this.write(() => c.delete(ReplicaSetsResource, action.rs.metadata?.name ?? "", { namespace: ns, preconditions: { uid: action.rs.metadata?.uid ?? "" } }));
        this.rsView.removed(action.rs.metadata?.uid ?? "");
        return;
      case "annotateDeployment":
        await this.write(() => c.patch(DeploymentsResource, d.metadata?.name ?? "", "merge", { metadata: { annotations: action.annotations } }, { namespace: ns }));
        return;
      case "status":
        await this.write(() => c.patchStatus(DeploymentsResource, d.metadata?.name ?? "", "merge", { status: omitZero(action.status, []) }, { namespace: ns }));
        return;
    }
  }

  /** One write; a conflict, a missing object or a name taken means the watch brings news: the next pass decides again. */
  private async write<T>(f: () => Promise<T>): Promise<T | undefined> {
    try {
      return await f();
    } catch (e) {
      if (isNotFound(e) || isConflict(e) || isAlreadyExists(e)) {
        this.loop.kick();
        return undefined;
      }
      throw e;
    }
  }
}

function rsRef(rs: V1ReplicaSet): InvolvedObject {
  return { apiVersion: "apps/v1", kind: "ReplicaSet", namespace: rs.metadata?.namespace ?? "", name: rs.metadata?.name ?? "", uid: rs.metadata?.uid ?? "" };
}

/**
 * A status as a merge patch: its zero counts as null (the fields are `omitempty`, so kube stores them absent), except
 * `keep` (ReplicaSetStatus.replicas is not omitempty).
 */
function omitZero(status: object, keep: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(status)) out[k] = v === 0 && !keep.includes(k) ? null : v;
  return out;
}
