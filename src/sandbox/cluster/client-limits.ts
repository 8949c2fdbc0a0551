// The client-side rate limits of the components the stand-ins play, so that a stand-in loads the API server no
// harder than the real component would on a default install.
//
// Every Kubernetes component talks to the API server through client-go, whose clientset gets a token bucket from
// its QPS and burst (flowcontrol.NewTokenBucketRateLimiter, i.e. golang.org/x/time/rate with `burst` tokens, full
// at the start, refilled at `qps` per second); a request waits for a token. The defaults, from each component's
// config defaults (kubernetes/kubernetes):
// - kube-controller-manager, per controller (each has its own clientset from ClientOrDie): qps 20, burst 30
//   (pkg/controller/apis/config/v1alpha1, `Generic.ClientConnection`). The DaemonSet controller's pod creates and
//   deletes and its status writes share one bucket; so do the pod garbage collector's deletes.
// - kube-scheduler: qps 50, burst 100 (KubeSchedulerConfiguration `clientConnection`): bindings and the
//   PodScheduled=False status writes.
// - kubelet, per node: qps 50, burst 100 (KubeletConfiguration `kubeAPIQPS`/`kubeAPIBurst`, since 1.27).
// A stand-in that wrote as fast as it could would put on the server the load of a controller manager run with
// `--kube-api-qps` raised far above its default; benchmarks that want that worst case can still ask for it.

/** One client's limit: `qps` tokens a second into a bucket of `burst`. */
export interface ClientLimit {
  qps: number;
  burst: number;
}

/** kube-controller-manager's default, per controller. */
export const CONTROLLER_MANAGER_LIMIT: ClientLimit = { qps: 20, burst: 30 };
/** kube-scheduler's default. */
export const SCHEDULER_LIMIT: ClientLimit = { qps: 50, burst: 100 };
/** The kubelet's default, per node. */
export const KUBELET_LIMIT: ClientLimit = { qps: 50, burst: 100 };

/**
 * client-go's token bucket with an explicit clock (ms), for stand-ins that work in passes: instead of waiting for a
 * token, a pass takes what is there now (tryTake) and comes back at nextTokenAt() for the rest. Order is the
 * caller's: it asks in the order its requests would have queued.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly limit: ClientLimit, nowMs: number) {
    if (!(limit.qps > 0) || !(limit.burst >= 1)) throw new Error(`a client limit needs qps > 0 and burst >= 1, not ${limit.qps}/${limit.burst}`);
    this.tokens = limit.burst;
    this.last = nowMs;
  }

  private refill(nowMs: number): void {
    // A clock that went back refills nothing (and does not lose what was there).
    if (nowMs > this.last) {
      this.tokens = Math.min(this.limit.burst, this.tokens + ((nowMs - this.last) * this.limit.qps) / 1000);
      this.last = nowMs;
    }
  }

  /** Takes a token if one is there at `nowMs`. */
  tryTake(nowMs: number): boolean {
    this.refill(nowMs);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** When the next token is there: `nowMs` itself if one is there now. */
  nextTokenAt(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens >= 1 ? nowMs : nowMs + Math.ceil(((1 - this.tokens) * 1000) / this.limit.qps);
  }
}
