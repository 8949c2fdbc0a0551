// The client's pure parts: URL paths per resource scope and group, Status bodies into KubeErrors, retry classes,
// and the fake clock the other tests lean on.
import assert from "node:assert/strict";
import { apiVersionOf, isRetryable, KubeError, resourcePath, Resources } from "../../../src/lib/kube/client.js";
import { FakeClock } from "../../../src/lib/kube/clock.js";

describe("kube client paths and errors", () => {
  const paths: { name: string; got: () => string; want: string }[] = [
    { name: "core collection in all namespaces", got: () => resourcePath(Resources.services), want: "/api/v1/services" },
    { name: "core object in a namespace", got: () => resourcePath(Resources.services, { namespace: "a", name: "b" }), want: "/api/v1/namespaces/a/services/b" },
    { name: "status subresource", got: () => resourcePath(Resources.services, { namespace: "a", name: "b", subresource: "status" }), want: "/api/v1/namespaces/a/services/b/status" },
    { name: "grouped resource", got: () => resourcePath(Resources.daemonSets, { namespace: "berth-system" }), want: "/apis/apps/v1/namespaces/berth-system/daemonsets" },
    { name: "cluster-scoped ignores a namespace", got: () => resourcePath(Resources.nodes, { namespace: "x", name: "n1" }), want: "/api/v1/nodes/n1" },
    { name: "names are URL-escaped", got: () => resourcePath(Resources.configMaps, { namespace: "a", name: "x y" }), want: "/api/v1/namespaces/a/configmaps/x%20y" },
    { name: "core apiVersion", got: () => apiVersionOf(Resources.pods), want: "v1" },
    { name: "grouped apiVersion", got: () => apiVersionOf(Resources.leases), want: "coordination.k8s.io/v1" },
  ];
  for (const c of paths) it(`builds the path: ${c.name}`, () => assert.equal(c.got(), c.want));

  it("refuses a subresource without an object name", () => {
    assert.throws(() => resourcePath(Resources.services, { subresource: "status" }), /subresource \(status\) needs an object name/);
  });

  const errors: { name: string; status: unknown; http: number; header?: string; want: Partial<KubeError>; retryable: boolean }[] = [
    { name: "a NotFound Status", status: { code: 404, reason: "NotFound", message: "services \"x\" not found" }, http: 404,
      want: { code: 404, reason: "NotFound", message: "services \"x\" not found" }, retryable: false },
    { name: "429 with Retry-After header over details", status: { code: 429, reason: "TooManyRequests", details: { retryAfterSeconds: 9 } }, http: 429, header: "2",
      want: { code: 429, retryAfterSeconds: 2 }, retryable: true },
    { name: "retryAfterSeconds from details", status: { code: 503, reason: "ServiceUnavailable", details: { retryAfterSeconds: 4 } }, http: 503,
      want: { code: 503, retryAfterSeconds: 4 }, retryable: true },
    { name: "a watch ERROR event's 410", status: { code: 410, reason: "Expired", message: "too old resource version" }, http: 500,
      want: { code: 410, reason: "Expired" }, retryable: false },
    { name: "a body that is no Status", status: "oops", http: 502, want: { code: 502, reason: "HTTP502" }, retryable: true },
    { name: "a conflict", status: { code: 409, reason: "Conflict" }, http: 409, want: { code: 409 }, retryable: false },
  ];
  for (const c of errors) {
    it(`reads ${c.name} into a KubeError`, () => {
      const e = KubeError.fromStatus(c.status, c.http, c.header);
      for (const [k, v] of Object.entries(c.want)) assert.deepEqual((e as unknown as Record<string, unknown>)[k], v, k);
      assert.equal(isRetryable(e), c.retryable);
    });
  }
});

describe("fake clock", () => {
  it("fires due timers in time order, and only those", async () => {
    const clock = new FakeClock(0);
    const fired: string[] = [];
    clock.setTimer(30, () => fired.push("30"));
    clock.setTimer(10, () => fired.push("10"));
    const cancelled = clock.setTimer(20, () => fired.push("20"));
    cancelled.cancel();
    await clock.advance(29);
    assert.deepEqual(fired, ["10"]);
    assert.equal(clock.now(), 29);
    await clock.advance(1);
    assert.deepEqual(fired, ["10", "30"]);
  });

  it("lets a sleeper that schedules the next sleep run within one advance", async () => {
    const clock = new FakeClock(0);
    const ticks: number[] = [];
    void (async () => {
      for (let i = 0; i < 3; i++) {
        await clock.sleep(100);
        ticks.push(clock.now());
      }
    })();
    await clock.advance(300);
    assert.deepEqual(ticks, [100, 200, 300]);
  });

  it("ends a sleep early when its signal aborts", async () => {
    const clock = new FakeClock(0);
    const ac = new AbortController();
    let woke = false;
    void clock.sleep(1000, ac.signal).then(() => (woke = true));
    ac.abort();
    await clock.advance(0);
    assert.ok(woke);
    assert.equal(clock.pending, 0);
  });
});
