// A stand-in for the DaemonSet controller, the scheduler's NodePorts/affinity/taint filters and the kubelet, for
// controller tests against the sandbox API server: it speaks plain HTTP (list-then-watch, create, patch, delete)
// like any other client, so the controller under test sees the same objects and watch events a cluster would give.
//
// What it reproduces, and from where:
// - DaemonSet controller (pkg/controller/daemon): one pod per node that passes the template's nodeSelector,
//   required node affinity and taints (with the tolerations every DaemonSet pod gets, daemon/util
//   AddOrUpdateDaemonPodTolerations); the pod's required node affinity replaced by `matchFields metadata.name In
//   [node]` (util.ReplaceDaemonSetPodNodeNameNodeAffinity); pods of nodes that no longer match are deleted; a
//   changed template replaces the pods (OnDelete-free RollingUpdate, simplified to delete + create); DaemonSet
//   status counts (desiredNumberScheduled, currentNumberScheduled, numberReady, numberAvailable).
//   Pods are created unbound, as the real controller has done since 1.12 (ScheduleDaemonSetPods): only the node
//   affinity names their node.
// - scheduler (pkg/scheduler, schedule_one.go): binds each pod through pods/<name>/binding `bindDelayMs` after it
//   first saw it (its queue and bind cycle), oldest first per node; a pod whose hostPort/protocol/hostIP is already
//   held on its node stays unbound and Pending with PodScheduled=False, reason Unschedulable and kube-scheduler's
//   FitError message (NodePorts), and is bound once the port frees up.
// - kubelet + node lifecycle controller: bound pods run (phase Running, hostIP, podIP) and are Ready unless the
//   test says otherwise (setReady); on a node whose Ready condition is not True, pods are marked not Ready
//   (node lifecycle controller's MarkPodsNotReady); graceful deletions are confirmed at once.
// - client-side rate limits: each role writes no faster than the real component's client allows by default
//   (src/sandbox/cluster/client-limits.ts: the DaemonSet controller 20/s with a burst of 30, the scheduler 50/s with
//   100, each node's kubelet 50/s with 100); what a limit holds back goes out in a later pass, when its tokens are
//   back. `clientLimits: false` lifts them (a controller manager run with its QPS raised without bound).
import { createHash } from "node:crypto";
import {
  CONTROLLER_MANAGER_LIMIT,
  KUBELET_LIMIT,
  SCHEDULER_LIMIT,
  TokenBucket,
  type ClientLimit,
} from "../../src/sandbox/cluster/client-limits.js";
import {
  newDaemonPod,
  nodeMismatch,
  nodeReady,
  ownerDaemonSetUid as ownerUid,
  podTargetNode as podNode,
  portsClash,
  TEMPLATE_HASH_LABEL,
  templateHash,
  unschedulableCondition,
} from "../../src/sandbox/cluster/scheduling.js";

// The placement filters (nodeSelector, node affinity, taints and the daemon tolerations, the NodePorts check, the
// template hash) are the sandbox's own (src/sandbox/cluster/scheduling.ts), so this stand-in and the sandbox's
// kubelet place pods the same way.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

export interface FakeKubeletOptions {
  /** API server URL, e.g. http://127.0.0.1:40000 */
  server: string;
  token: string;
  /** Namespace whose DaemonSets it runs (the controller's namespace). */
  namespace: string;
  /** Pods are Ready once running unless setReady says otherwise (default true). */
  readyByDefault?: boolean;
  /** Pause between retries after a failed request (default 50 ms). */
  retryMs?: number;
  /** From the scheduler first seeing a pod to its binding (default 20 ms; the real one takes a few ms to tens of ms). */
  bindDelayMs?: number;
  /** Writes in flight at once within one pass (default 4), as the real controllers' clients send in parallel. */
  writeConcurrency?: number;
  /**
   * Client-side rate limits per role (default: the real components' defaults, client-limits.ts); a role left out
   * keeps its default. false: none, every write goes out in the pass that decided it.
   */
  clientLimits?: false | Partial<Record<StandInClient, ClientLimit>>;
  /** Called when a list is made again after the first (a watch that ended with 410, or a failed request). */
  onRelist?: (path: string) => void;
}

/** The components this stand-in plays, each with its own client (the kubelet's is one per node). */
export type StandInClient = "daemonSetController" | "scheduler" | "kubelet";

/** Readiness override: pods of this DaemonSet (any if unset) on this node (any if unset). */
export interface ReadinessRule {
  daemonSet?: string;
  node?: string;
  ready: boolean;
}

/** A list-then-watch cache over plain HTTP: relists on 410 or error, resumes watches from the last resourceVersion. */
class Reflector {
  readonly items = new Map<string, Obj>();
  private rv = "";
  /** One controller for every request of this reflector, so stop() ends a list in flight too. */
  private readonly abort = new AbortController();
  private stopped = false;
  private listed = false;
  synced: Promise<void>;
  private markSynced!: () => void;

  constructor(
    private readonly kubelet: FakeKubelet,
    private readonly path: string,
    private readonly onChange: () => void,
  ) {
    this.synced = new Promise((resolve) => (this.markSynced = resolve));
  }

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  private async loop(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          // In pages of 500, as client-go's reflector lists (its pager's default): one answer of 100,000 pods would
          // be a JSON text longer than a JavaScript string may be.
          const items = new Map<string, Obj>();
          let next = "";
          let rv = "";
          do {
            const sep = this.path.includes("?") ? "&" : "?";
            const page = await this.kubelet.request("GET", `${this.path}${sep}limit=500${next ? `&continue=${encodeURIComponent(next)}` : ""}`,
              undefined, undefined, this.abort.signal);
            if (page.status !== 200) throw new Error(`list ${this.path}: ${page.status}`);
            for (const o of page.body.items as Obj[]) items.set(`${o.metadata.namespace ?? ""}/${o.metadata.name}`, o);
            rv = page.body.metadata.resourceVersion as string;
            next = (page.body.metadata.continue as string | undefined) ?? "";
          } while (next);
          this.items.clear();
          for (const [k, o] of items) this.items.set(k, o);
          this.rv = rv;
          needList = false;
          if (this.listed) this.kubelet.onRelist?.(this.path);
          this.listed = true;
          this.markSynced();
          this.onChange();
        }
        needList = await this.watch();
      } catch {
        if (this.stopped) return;
        needList = true;
        await new Promise((r) => setTimeout(r, this.kubelet.retryMs));
      }
    }
  }

  /** Follows one watch stream; true when a relist is needed (410 Gone). */
  private async watch(): Promise<boolean> {
    const sep = this.path.includes("?") ? "&" : "?";
    const res = await fetch(`${this.kubelet.server}${this.path}${sep}watch=true&allowWatchBookmarks=true&resourceVersion=${this.rv}`, {
      headers: { Authorization: `Bearer ${this.kubelet.token}` },
      signal: this.abort.signal,
    });
    if (res.status === 410) return true;
    if (res.status !== 200 || !res.body) throw new Error(`watch ${this.path}: ${res.status}`);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return false;
      buffer += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (!line) continue;
        const ev = JSON.parse(line) as { type: string; object: Obj };
        if (ev.type === "ERROR") return ev.object.code === 410;
        this.rv = ev.object.metadata.resourceVersion as string;
        if (ev.type === "BOOKMARK") continue;
        const key = `${ev.object.metadata.namespace ?? ""}/${ev.object.metadata.name}`;
        if (ev.type === "DELETED") this.items.delete(key);
        else this.items.set(key, ev.object);
        this.onChange();
      }
    }
  }
}

export class FakeKubelet {
  readonly server: string;
  readonly token: string;
  readonly namespace: string;
  readonly retryMs: number;
  readonly onRelist: ((path: string) => void) | undefined;
  private readonly bindDelayMs: number;
  private readonly writeConcurrency: number;
  /** When the scheduler first saw each unbound pod (by uid). */
  private readonly firstSeen = new Map<string, number>();
  private wakeTimer: { at: number; timer: NodeJS.Timeout } | undefined;
  private readyByDefault: boolean;
  private readonly rules: ReadinessRule[] = [];
  private readonly daemonSets: Reflector;
  private readonly nodes: Reflector;
  private readonly pods: Reflector;
  private running = false;
  private stopped = false;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  /** Writes this stand-in made (creates, deletes, status patches), for tests that want to know it acted. */
  writes = 0;
  /** Writes a client limit held back to a later pass (each counted once per pass that held it). */
  deferredWrites = 0;
  private readonly limits: false | Record<StandInClient, ClientLimit>;
  /** Token buckets by client: "daemonSetController", "scheduler", "kubelet/NODE". */
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(options: FakeKubeletOptions) {
    this.server = options.server.replace(/\/+$/, "");
    this.token = options.token;
    this.namespace = options.namespace;
    this.readyByDefault = options.readyByDefault ?? true;
    this.retryMs = options.retryMs ?? 50;
    this.onRelist = options.onRelist;
    this.bindDelayMs = options.bindDelayMs ?? 20;
    this.writeConcurrency = options.writeConcurrency ?? 4;
    this.limits = options.clientLimits === false ? false : {
      daemonSetController: CONTROLLER_MANAGER_LIMIT, scheduler: SCHEDULER_LIMIT, kubelet: KUBELET_LIMIT, ...options.clientLimits,
    };
    const ns = encodeURIComponent(options.namespace);
    const kick = () => this.schedule(0);
    this.daemonSets = new Reflector(this, `/apis/apps/v1/namespaces/${ns}/daemonsets`, kick);
    this.nodes = new Reflector(this, "/api/v1/nodes", kick);
    // Every pod in the cluster: any pod bound to a node can hold a hostPort our pods need (the scheduler looks at all).
    this.pods = new Reflector(this, "/api/v1/pods", kick);
  }

  /** Starts watching; resolves once the first lists are in. */
  async start(): Promise<void> {
    for (const r of [this.daemonSets, this.nodes, this.pods]) r.start();
    await Promise.all([this.daemonSets.synced, this.nodes.synced, this.pods.synced]);
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    for (const r of [this.daemonSets, this.nodes, this.pods]) r.stop();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.wakeTimer) clearTimeout(this.wakeTimer.timer);
    this.wakeTimer = undefined;
    this.dirty = false;
  }

  /** Overrides readiness for matching pods (later rules win); the pods' status follows within one sync. */
  setReady(rule: ReadinessRule): void {
    this.rules.push(rule);
    this.schedule(0);
  }

  setReadyByDefault(ready: boolean): void {
    this.readyByDefault = ready;
    this.schedule(0);
  }

  /** Resolves once a sync pass finds nothing to do. */
  async settled(timeoutMs = 5000): Promise<void> {
    this.schedule(0);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("fake kubelet did not settle")), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** The pods this stand-in currently sees in the namespace. */
  podList(): Obj[] {
    return [...this.pods.items.values()].filter((p) => p.metadata.namespace === this.namespace);
  }

  async request(method: string, path: string, body?: unknown, contentType = "application/json", signal?: AbortSignal): Promise<{ status: number; body: Obj }> {
    const res = await fetch(this.server + path, {
      method,
      ...(signal ? { signal } : {}),
      headers: { Authorization: `Bearer ${this.token}`, ...(body !== undefined ? { "Content-Type": contentType } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Obj) : {} };
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.dirty = true;
    if (this.timer || this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, delayMs);
  }

  /** A pass at `at` (epoch ms) at the latest: a pod's bind falls due then. */
  private wakeAt(at: number): void {
    if (this.stopped || (this.wakeTimer && this.wakeTimer.at <= at)) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer.timer);
    this.wakeTimer = {
      at,
      timer: setTimeout(() => {
        this.wakeTimer = undefined;
        this.schedule(0);
      }, Math.max(0, at - Date.now())),
    };
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    let failed = false;
    let heldUntil: number | undefined;
    try {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        const pass = await this.sync();
        heldUntil = pass.heldUntil;
        // Our own writes come back as watch events and set dirty again; one more pass confirms a fixed point.
        if (pass.acted) await new Promise((r) => setTimeout(r, 5));
      }
    } catch {
      failed = true;
    } finally {
      this.running = false;
    }
    if (failed) this.schedule(this.retryMs);
    // Writes a limit held back are still to do: not settled; the pass that has their tokens comes at heldUntil.
    else if (heldUntil !== undefined) this.wakeAt(heldUntil);
    else for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * Takes a token of `client`'s bucket ("daemonSetController", "scheduler" or "kubelet/NODE", each kubelet with its
   * own); undefined if it has one now, else when it will.
   */
  private takeToken(client: string): number | undefined {
    if (this.limits === false) return undefined;
    const now = Date.now();
    let bucket = this.buckets.get(client);
    const role: StandInClient = client.startsWith("kubelet/") ? "kubelet" : client as StandInClient;
    if (!bucket) this.buckets.set(client, (bucket = new TokenBucket(this.limits[role], now)));
    return bucket.tryTake(now) ? undefined : bucket.nextTokenAt(now);
  }

  private readinessFor(ds: string, node: string): boolean {
    let ready = this.readyByDefault;
    for (const r of this.rules) {
      if ((r.daemonSet === undefined || r.daemonSet === ds) && (r.node === undefined || r.node === node)) ready = r.ready;
    }
    return ready;
  }

  /**
   * One pass over everything: whether it wrote anything, and when the earliest write a client limit held back may
   * go (undefined: none held). Throws on a failed write (retried later).
   */
  private async sync(): Promise<{ acted: boolean; heldUntil: number | undefined }> {
    const ns = encodeURIComponent(this.namespace);
    const podsPath = `/api/v1/namespaces/${ns}/pods`;
    let acted = false;
    let heldUntil: number | undefined;
    const batch: { group: string; job: () => Promise<void> }[] = [];
    // Queued, then sent `writeConcurrency` at a time by flush() at the end of each phase (deletes, then binds and
    // statuses, then creates, then DaemonSet statuses), so the order between phases holds. Within a phase the writes
    // go out grouped by DaemonSet: every node has its own kubelet and the scheduler binds a DaemonSet's pods in one
    // go, so on a cluster one DaemonSet's pods start within moments of each other, not spread over a whole pass.
    // `client` is whose bucket pays for the write ("kubelet/NODE" for a node's kubelet); a write without a token is
    // not sent: the state that called for it is still there in the next pass, which decides it again. Requests wait
    // for tokens in the order they were made (client-go's limiter), so once a client is held in a pass, its later
    // writes of that pass are held too: none overtakes one decided before it. A body given as a function is built
    // only for a write that goes out.
    const held = new Set<string>();
    const write = (client: string, method: string, path: string, body?: unknown, contentType?: string, group = ""): void => {
      if (!held.has(client)) {
        const notBefore = this.takeToken(client);
        if (notBefore !== undefined) {
          held.add(client);
          heldUntil = Math.min(heldUntil ?? notBefore, notBefore);
        }
      }
      if (held.has(client)) {
        this.deferredWrites++;
        return;
      }
      if (typeof body === "function") body = (body as () => unknown)();
      batch.push({ group, job: async () => {
        const res = await this.request(method, path, body, contentType);
        // 404 on delete and 409 on create mean someone (or our previous pass) got there first: the watch will tell.
        if (res.status >= 300 && !(method === "DELETE" && res.status === 404) && !(method === "POST" && res.status === 409)) {
          throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
        }
        this.writes++;
        acted = true;
      } });
    };
    const flush = async (): Promise<void> => {
      const firstSeen = new Map<string, number>();
      for (const w of batch) if (!firstSeen.has(w.group)) firstSeen.set(w.group, firstSeen.size);
      const jobs = batch.splice(0).map((w, i) => ({ ...w, i }))
        .sort((a, b) => (firstSeen.get(a.group) as number) - (firstSeen.get(b.group) as number) || a.i - b.i)
        .map((w) => w.job);
      let next = 0;
      let failure: unknown;
      await Promise.all(Array.from({ length: Math.min(this.writeConcurrency, jobs.length) }, async () => {
        while (next < jobs.length) {
          const job = jobs[next++] as () => Promise<void>;
          try {
            await job();
          } catch (e) {
            failure ??= e;
          }
        }
      }));
      if (failure !== undefined) throw failure;
    };
    const now = Date.now();
    const nodes = [...this.nodes.items.values()].sort((a, b) => String(a.metadata.name).localeCompare(String(b.metadata.name)));
    const nodeByName = new Map(nodes.map((n) => [n.metadata.name as string, n]));
    const nodeIndex = new Map(nodes.map((n, i) => [n.metadata.name as string, i]));
    const dsByUid = new Map<string, Obj>();
    for (const ds of this.daemonSets.items.values()) if (!ds.metadata.deletionTimestamp) dsByUid.set(ds.metadata.uid as string, ds);
    // Computed once per DaemonSet (and node) per pass, not once per pod: at 1,000 DaemonSets x 100 nodes a pass
    // otherwise hashed a template 100,000 times and matched 200,000 node filters (the full flow never finished).
    const hashes = new Map<string, string>();
    const hashOf = (ds: Obj): string => {
      let h = hashes.get(ds.metadata.uid as string);
      if (h === undefined) hashes.set(ds.metadata.uid as string, (h = templateHash(ds as Obj)));
      return h;
    };
    const mismatches = new Map<string, string | undefined>();
    const mismatch = (ds: Obj, node: Obj): string | undefined => {
      const key = `${ds.metadata.uid}/${node.metadata.name}`;
      if (!mismatches.has(key)) mismatches.set(key, nodeMismatch(ds.spec.template, node));
      return mismatches.get(key);
    };
    const pods = [...this.pods.items.values()].filter((p) => p.metadata.namespace === this.namespace);
    // Bound pods elsewhere hold their host ports too; they are placed first, as if they had been there before.
    const foreign = [...this.pods.items.values()].filter((p) => p.metadata.namespace !== this.namespace && p.spec?.nodeName &&
      !["Succeeded", "Failed"].includes(p.status?.phase as string));

    // Graceful deletions are confirmed at once (the kubelet has stopped the containers); pods of deleted
    // DaemonSets are removed, as the garbage collector would.
    const live: Obj[] = [];
    for (const pod of pods) {
      const uid = ownerUid(pod);
      if (pod.metadata.deletionTimestamp) {
        write(pod.spec?.nodeName ? `kubelet/${pod.spec.nodeName}` : "daemonSetController", "DELETE", `${podsPath}/${encodeURIComponent(pod.metadata.name)}?gracePeriodSeconds=0`);
        continue;
      }
      if (uid === undefined) {
        live.push(pod);
        continue;
      }
      const ds = dsByUid.get(uid);
      const node = podNode(pod);
      const stale = !ds || node === undefined || !nodeByName.has(node) ||
        mismatch(ds, nodeByName.get(node) as Obj) !== undefined ||
        pod.metadata.labels?.[TEMPLATE_HASH_LABEL] !== hashOf(ds);
      if (stale) write("daemonSetController", "DELETE", `${podsPath}/${encodeURIComponent(pod.metadata.name)}?gracePeriodSeconds=0`);
      else live.push(pod);
    }
    await flush();
    const liveUids = new Set(live.map((p) => p.metadata.uid as string));
    for (const uid of this.firstSeen.keys()) if (!liveUids.has(uid)) this.firstSeen.delete(uid);

    // Per node, earlier pods keep their ports; later ones with a clashing hostPort stay unbound.
    const byNode = new Map<string, Obj[]>();
    for (const pod of foreign) byNode.set(pod.spec.nodeName as string, [...(byNode.get(pod.spec.nodeName as string) ?? []), pod]);
    const isForeign = (pod: Obj): boolean => pod.metadata.namespace !== this.namespace;
    for (const pod of live) {
      const node = podNode(pod);
      if (node === undefined) continue;
      const list = byNode.get(node) ?? [];
      list.push(pod);
      byNode.set(node, list);
    }
    for (const [nodeName, list] of byNode) {
      const node = nodeByName.get(nodeName);
      list.sort((a, b) => Number(isForeign(b)) - Number(isForeign(a)) ||
        String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)) ||
        Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
      // The pods holding ports on this node, by PROTOCOL/port (the key scheduling.ts portsClash compares): only
      // those sharing a key are checked, not every earlier pod of the node (1,000 per node at 1,000 Services).
      const holders = new Map<string, Obj[]>();
      const hold = (pod: Obj): void => {
        for (const key of new Set(portKeys(pod))) {
          const held = holders.get(key);
          if (held) held.push(pod);
          else holders.set(key, [pod]);
        }
      };
      for (const pod of list) {
        if (isForeign(pod)) {
          hold(pod);
          continue;
        }
        let clash: string | undefined;
        for (const key of portKeys(pod)) {
          for (const h of holders.get(key) ?? []) {
            clash ??= portsClash(pod, h);
            if (clash !== undefined) break;
          }
          if (clash !== undefined) break;
        }
        const bound = Boolean(pod.spec.nodeName);
        if (clash === undefined && bound) {
          hold(pod);
          if (!node) continue;
          const ds = dsByUid.get(ownerUid(pod) ?? "");
          const ready = nodeReady(node) && this.readinessFor(ds?.metadata.name as string, nodeName);
          const status = runningStatus(pod, node, ready, nodeIndex.get(nodeName) as number);
          if (!sameStatus(pod.status, status)) {
            write(`kubelet/${nodeName}`, "PATCH", `${podsPath}/${encodeURIComponent(pod.metadata.name)}/status`, { status }, "application/merge-patch+json", ownerUid(pod));
          }
        } else if (clash === undefined && !bound) {
          // The ports are free: the scheduler binds it once its bind cycle comes (it holds them from now on, as the
          // scheduler's cache assumes a pod on its node before the binding returns).
          const uid = pod.metadata.uid as string;
          const seen = this.firstSeen.get(uid) ?? now;
          this.firstSeen.set(uid, seen);
          if (now - seen >= this.bindDelayMs) {
            write("scheduler", "POST", `${podsPath}/${encodeURIComponent(pod.metadata.name)}/binding`,
              { apiVersion: "v1", kind: "Binding", metadata: { name: pod.metadata.name }, target: { apiVersion: "v1", kind: "Node", name: nodeName } }, undefined, ownerUid(pod));
          } else {
            this.wakeAt(seen + this.bindDelayMs);
          }
          hold(pod);
        } else if (bound) {
          // A bound pod that clashes (created bound while another held the port in a race): the later one yields.
          write("daemonSetController", "DELETE", `${podsPath}/${encodeURIComponent(pod.metadata.name)}?gracePeriodSeconds=0`);
        } else {
          const status = pendingStatus(nodes.length);
          if (!sameStatus(pod.status, status)) {
            write("scheduler", "PATCH", `${podsPath}/${encodeURIComponent(pod.metadata.name)}/status`, { status }, "application/merge-patch+json", ownerUid(pod));
          }
        }
      }
    }

    await flush();

    // Missing pods are created unbound; the scheduler above binds them in a later pass.
    const podKeys = new Set(live.map((p) => `${ownerUid(p)}/${podNode(p)}`));
    for (const ds of dsByUid.values()) {
      for (const node of nodes) {
        const nodeName = node.metadata.name as string;
        if (podKeys.has(`${ds.metadata.uid}/${nodeName}`)) continue;
        if (mismatch(ds, node) !== undefined) continue;
        write("daemonSetController", "POST", podsPath, () => newDaemonPod(ds, nodeName), undefined, ds.metadata.uid as string);
      }
    }
    await flush();

    // DaemonSet status, as the DaemonSet controller keeps it.
    const byOwner = new Map<string, Obj[]>();
    for (const p of live) {
      const uid = ownerUid(p);
      if (uid === undefined) continue;
      const mine = byOwner.get(uid);
      if (mine) mine.push(p);
      else byOwner.set(uid, [p]);
    }
    for (const ds of dsByUid.values()) {
      const mine = byOwner.get(ds.metadata.uid as string) ?? [];
      const desired = nodes.filter((n) => mismatch(ds, n) === undefined).length;
      const scheduled = mine.filter((p) => p.spec.nodeName).length;
      const ready = mine.filter((p) => ((p.status?.conditions ?? []) as Obj[]).some((c) => c.type === "Ready" && c.status === "True")).length;
      const status = {
        currentNumberScheduled: scheduled, desiredNumberScheduled: desired, numberMisscheduled: 0, numberReady: ready,
        numberAvailable: ready, updatedNumberScheduled: scheduled, observedGeneration: ds.metadata.generation,
        ...(desired - ready > 0 ? { numberUnavailable: desired - ready } : {}),
      };
      const cur = ds.status ?? {};
      if (Object.entries(status).some(([k, v]) => cur[k] !== v)) {
        write("daemonSetController", "PATCH", `/apis/apps/v1/namespaces/${encodeURIComponent(this.namespace)}/daemonsets/${encodeURIComponent(ds.metadata.name)}/status`,
          { status: { numberUnavailable: null, ...status } }, "application/merge-patch+json");
      }
    }
    await flush();
    return { acted, heldUntil };
  }
}

/** A pod's host ports as scheduling.ts hostPorts keys them: PROTOCOL/port. */
function portKeys(pod: Obj): string[] {
  const keys: string[] = [];
  for (const c of (pod.spec?.containers ?? []) as Obj[]) {
    for (const p of (c.ports ?? []) as Obj[]) if (p.hostPort) keys.push(`${p.protocol ?? "TCP"}/${p.hostPort}`);
  }
  return keys;
}

/** Pod name -> its hash, remembered: every pass recomputes every bound pod's status (100,000 hashes a pass). */
const shortHashes = new Map<string, string>();

function shortHash(s: string): string {
  let h = shortHashes.get(s);
  if (h === undefined) {
    if (shortHashes.size >= 500_000) shortHashes.clear();
    shortHashes.set(s, (h = createHash("sha256").update(s).digest("hex").slice(0, 5)));
  }
  return h;
}

/**
 * The pod IP this stand-in gives a pod: from its name and its node's place among the nodes sorted by name (so a
 * benchmark that puts Running pods straight into the store can give them the status this stand-in would keep).
 */
export function fakePodIp(podName: string, nodeIndex: number): string {
  return `10.42.${nodeIndex % 256}.${(Number.parseInt(shortHash(podName), 16) % 250) + 2}`;
}

function nodeInternalIp(node: Obj): string {
  const addrs = (node.status?.addresses ?? []) as Obj[];
  return (addrs.find((a) => a.type === "InternalIP")?.address as string | undefined) ?? "127.0.0.1";
}

function runningStatus(pod: Obj, node: Obj, ready: boolean, nodeIndex: number): Obj {
  const flag = ready ? "True" : "False";
  const hostIP = nodeInternalIp(node);
  const podIP = fakePodIp(pod.metadata.name as string, nodeIndex);
  const started = (pod.status?.startTime as string | undefined) ?? new Date().toISOString().replace(/\.\d+Z$/, "Z");
  return {
    phase: "Running",
    hostIP,
    hostIPs: [{ ip: hostIP }],
    podIP,
    podIPs: [{ ip: podIP }],
    startTime: started,
    conditions: [
      { type: "PodScheduled", status: "True" },
      { type: "Initialized", status: "True" },
      { type: "ContainersReady", status: flag },
      { type: "Ready", status: flag },
    ],
    containerStatuses: ((pod.spec?.containers ?? []) as Obj[]).map((c) => ({
      name: c.name, image: c.image, imageID: "", ready, restartCount: 0, started: true,
      state: { running: { startedAt: started } },
    })),
  };
}

function pendingStatus(nodeCount: number): Obj {
  return { phase: "Pending", conditions: [unschedulableCondition(nodeCount)] };
}

/** Compares the fields we set, ignoring what the server adds (timestamps we did not send). */
function sameStatus(cur: Obj | undefined, want: Obj): boolean {
  if (!cur) return false;
  if (cur.phase !== want.phase || cur.hostIP !== want.hostIP || cur.podIP !== want.podIP) return false;
  const conds = (c: Obj): string => ((c.conditions ?? []) as Obj[]).map((x) => `${x.type}=${x.status}:${x.reason ?? ""}:${x.message ?? ""}`).join(",");
  return conds(cur) === conds(want);
}
