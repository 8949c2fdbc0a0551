// Events the sandbox's stand-ins write, as the kubelet, the scheduler and the DaemonSet controller do, so that
// `kubectl describe pod` and `berth doctor` read the same story in the sandbox as on a cluster. Like client-go's
// event recorder, a repeat of the same event (same object, reason, message) updates one Event's count and
// lastTimestamp instead of adding another; repeats are written at most every REPEAT_WRITE_MS (the recorder's
// spam filter does much the same), and writing is fire-and-forget: an Event that cannot be written is logged.
import { Resources, type KubeClient, type KubeObject, type LogFn } from "../../../lib/kube/client.js";
import { now } from "./container.js";

const REPEAT_WRITE_MS = 10_000;
/** Distinct events remembered for aggregation; the oldest are forgotten first. */
const MAX_REMEMBERED = 2000;

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid: string;
}

export function involved(kind: "Pod" | "DaemonSet", obj: KubeObject): InvolvedObject {
  return {
    apiVersion: kind === "Pod" ? "v1" : "apps/v1", kind,
    namespace: obj.metadata?.namespace ?? "", name: obj.metadata?.name ?? "", uid: obj.metadata?.uid ?? "",
  };
}

interface Seen {
  name: string;
  namespace: string;
  count: number;
  lastWrite: number;
}

export class EventRecorder {
  private readonly seen = new Map<string, Seen>();
  private counter = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly log: LogFn,
  ) {}

  /** Records one occurrence; `source` is the component (kubelet, default-scheduler, daemonset-controller) and its host. */
  record(source: { component: string; host?: string }, obj: InvolvedObject, type: "Normal" | "Warning", reason: string, message: string): void {
    const key = `${obj.uid}\u0000${source.component}\u0000${reason}\u0000${message}`;
    const at = Date.now();
    const stamp = now();
    const seen = this.seen.get(key);
    if (seen) {
      seen.count++;
      if (at - seen.lastWrite < REPEAT_WRITE_MS) return;
      seen.lastWrite = at;
      void this.client.patch(Resources.events, seen.name, "merge", { count: seen.count, lastTimestamp: stamp }, { namespace: seen.namespace })
        .catch((e: unknown) => this.log("debug", `event ${seen.namespace}/${seen.name} not updated`, { error: String(e) }));
      return;
    }
    // Named as client-go names them: the object's name, then a unique suffix.
    const name = `${obj.name}.${at.toString(16)}${(this.counter++ % 4096).toString(16).padStart(3, "0")}`;
    this.seen.set(key, { name, namespace: obj.namespace, count: 1, lastWrite: at });
    if (this.seen.size > MAX_REMEMBERED) this.seen.delete(this.seen.keys().next().value as string);
    void this.client.create(Resources.events, {
      metadata: { name, namespace: obj.namespace },
      involvedObject: obj, reason, message, type, source: { component: source.component, ...(source.host ? { host: source.host } : {}) },
      firstTimestamp: stamp, lastTimestamp: stamp, count: 1, reportingComponent: source.component, reportingInstance: source.host ?? "",
    } as KubeObject).catch((e: unknown) => this.log("debug", `event ${reason} for ${obj.kind} ${obj.namespace}/${obj.name} not written`, { error: String(e) }));
  }
}
