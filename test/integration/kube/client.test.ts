// KubeClient against the sandbox API server over HTTP: configuration loading, every verb, the patch content
// types, server-side apply, watches, and errors as typed KubeErrors.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { getEventListeners } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeKubeconfig } from "../../../src/sandbox/kubeconfig.js";
import { isConflict, isGone, isNotFound, isRetryable, KubeClient, KubeError, Resources, type KubeObject } from "../../../src/lib/kube/client.js";
import { FakeClock } from "../../../src/lib/kube/clock.js";
import { configMap, startFixture, waitFor, type Fixture } from "./fixture.js";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

describe("kube client (sandbox API server over HTTP)", function () {
  let f: Fixture;
  beforeEach(async () => {
    f = await startFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  it("loads a kubeconfig file and sends its bearer token", async function () {
    this.timeout(10_000);
    const dir = mkdtempSync(join(tmpdir(), "bt-c2-kc-"));
    try {
      const file = join(dir, "kubeconfig");
      writeKubeconfig(file, { server: f.api.url, token: f.api.token });
      const client = await KubeClient.fromKubeconfig({ kubeconfig: file });
      const ns = await client.get(Resources.namespaces, "default");
      assert.equal(ns.metadata?.name, "default");
      client.close();
      writeKubeconfig(file, { server: f.api.url, token: "wrong-token" });
      const bad = await KubeClient.fromKubeconfig({ kubeconfig: file });
      await assert.rejects(bad.get(Resources.namespaces, "default"), (e: unknown) => e instanceof KubeError && e.code === 401);
      bad.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a missing kubeconfig file, and in-cluster config outside a cluster, with one clear message", async function () {
    this.timeout(10_000);
    await assert.rejects(KubeClient.fromKubeconfig({ kubeconfig: "/nonexistent/bt-c2-kubeconfig" }), /cannot load kubeconfig \/nonexistent\/bt-c2-kubeconfig: .*ENOENT/);
    const saved = process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      await assert.rejects(KubeClient.fromKubeconfig(), /not running in a cluster .*pass --kubeconfig FILE/);
    } finally {
      if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
    }
  });

  it("reads the in-cluster service account: verifies the server with its CA and picks up a rotated token", async function () {
    this.timeout(15_000);
    await f.close();
    f = await startFixture({ tls: true });
    const dir = mkdtempSync(join(tmpdir(), "bt-c2-sa-"));
    try {
      const tokenFile = join(dir, "token");
      const caFile = join(dir, "ca.crt");
      writeFileSync(tokenFile, `${f.api.token}\n`);
      writeFileSync(caFile, f.api.caCert as string);
      const client = await KubeClient.fromKubeconfig({ inCluster: { host: "127.0.0.1", port: String(f.api.port), tokenFile, caFile, tokenReloadMs: 0 } });
      assert.equal(client.server, `https://127.0.0.1:${f.api.port}`);
      assert.equal((await client.get(Resources.namespaces, "default")).metadata?.name, "default");
      writeFileSync(tokenFile, "rotated-but-wrong");
      await assert.rejects(client.get(Resources.namespaces, "default"), (e: unknown) => e instanceof KubeError && e.code === 401);
      writeFileSync(tokenFile, f.api.token);
      assert.equal((await client.get(Resources.namespaces, "default")).metadata?.name, "default");
      client.close();
      // A CA that did not sign the server's certificate: the TLS handshake fails, no request is sent.
      writeFileSync(caFile, OTHER_CA);
      const untrusting = await KubeClient.inCluster({ inCluster: { host: "127.0.0.1", port: String(f.api.port), tokenFile, caFile } });
      await assert.rejects(untrusting.get(Resources.namespaces, "default"), (e: unknown) => e instanceof KubeError && e.code === 0 && /certificate/i.test(e.message));
      untrusting.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("creates, reads, lists by label, replaces with optimistic concurrency and deletes", async () => {
    const created = await f.client.create<ConfigMap>(Resources.configMaps, { ...configMap("a", { k: "1" }), metadata: { name: "a", namespace: "default", labels: { app: "x" } } });
    await f.client.create(Resources.configMaps, configMap("b"));
    assert.equal((await f.client.get<ConfigMap>(Resources.configMaps, "a", { namespace: "default" })).data?.k, "1");
    assert.equal(await f.client.tryGet(Resources.configMaps, "missing", { namespace: "default" }), undefined);
    await assert.rejects(f.client.get(Resources.configMaps, "missing", { namespace: "default" }), (e: unknown) => isNotFound(e) && (e as KubeError).reason === "NotFound");

    const labelled = await f.client.list(Resources.configMaps, { namespace: "default", labelSelector: "app=x" });
    assert.deepEqual(labelled.items.map((o) => o.metadata?.name), ["a"]);
    const byName = await f.client.list(Resources.configMaps, { fieldSelector: "metadata.name=b" });
    assert.deepEqual(byName.items.map((o) => o.metadata?.name), ["b"]);

    const updated = await f.client.replace<ConfigMap>(Resources.configMaps, { ...created, data: { k: "2" } });
    assert.equal(updated.data?.k, "2");
    // The old resourceVersion is stale now: kube answers 409 Conflict.
    await assert.rejects(f.client.replace(Resources.configMaps, { ...created, data: { k: "3" } }), isConflict);

    await assert.rejects(f.client.delete(Resources.configMaps, "a", { namespace: "default", preconditions: { uid: "not-the-uid" } }), isConflict);
    await f.client.delete(Resources.configMaps, "a", { namespace: "default", propagationPolicy: "Background", preconditions: { uid: created.metadata?.uid as string } });
    assert.equal(await f.client.tryGet(Resources.configMaps, "a", { namespace: "default" }), undefined);
  });

  it("pages a list with limit and continue, and listAll gathers every page", async () => {
    for (let i = 0; i < 7; i++) await f.client.create(Resources.configMaps, configMap(`p${i}`));
    const first = await f.client.list(Resources.configMaps, { namespace: "default", limit: 3 });
    assert.equal(first.items.length, 3);
    assert.ok(first.metadata.continue, "first page has a continue token");
    const second = await f.client.list(Resources.configMaps, { namespace: "default", limit: 3, continue: first.metadata.continue as string });
    assert.equal(second.items.length, 3);
    const all = await f.client.listAll(Resources.configMaps, { namespace: "default", pageSize: 2 });
    assert.deepEqual(all.items.map((o) => o.metadata?.name).filter((n) => n?.startsWith("p")).sort(), ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
    assert.match(all.resourceVersion, /^\d+$/);
  });

  it("listAll transforms each page as it arrives, so one page of full objects is alive at a time", async () => {
    for (let i = 0; i < 5; i++) await f.client.create(Resources.configMaps, configMap(`t${i}`, { big: "x".repeat(1000) }));
    const listsBefore = f.requests.filter((r) => r.startsWith("list configmaps")).length;
    // Per object: how many list requests had been answered when the transform saw it.
    const seenAfter: number[] = [];
    const all = await f.client.listAll<ConfigMap>(Resources.configMaps, {
      namespace: "default", pageSize: 2,
      transform: (o) => {
        if (o.metadata?.name?.startsWith("t")) seenAfter.push(f.requests.filter((r) => r.startsWith("list configmaps")).length - listsBefore);
        return { ...o, data: undefined } as ConfigMap;
      },
    });
    assert.ok(all.items.every((o) => o.data === undefined), "every item transformed");
    assert.deepEqual(seenAfter, [1, 1, 2, 2, 3]);
  });

  it("hands each listed item over as soon as its bytes are in, before the rest of its page has arrived", async () => {
    // The page written as kube-apiserver's streaming list encoder writes it (k8s.io/apimachinery
    // pkg/runtime/serializer/json/collections.go: the list's head, then each item, then "]}"), with a pause after
    // the first item until the client has seen it: a client that reads the page whole before parsing never does.
    let sawFirst: () => void = () => undefined;
    const firstSeen = new Promise<boolean>((resolve) => {
      sawFirst = () => resolve(true);
      setTimeout(() => resolve(false), 3000);
    });
    let secondPageSentBeforeFirstItemSeen: boolean | undefined;
    const server = createServer((req, res) => {
      const page2 = new URL(req.url ?? "/", "http://x").searchParams.get("continue") === "next";
      res.writeHead(200, { "Content-Type": "application/json" });
      const item = (name: string): string => JSON.stringify(configMap(name, { pad: "é".repeat(3000) }));
      if (page2) {
        res.end(`{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[${item("c")}]}`);
        return;
      }
      res.write(`{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"next"},"items":[${item("a")}`);
      void firstSeen.then((seen) => {
        secondPageSentBeforeFirstItemSeen = !seen;
        res.end(`,${item("b")}]}`);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const client = new KubeClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    try {
      const names: string[] = [];
      const listed = await client.listAll<ConfigMap>(Resources.configMaps, {
        namespace: "default", pageSize: 2,
        each: (o) => {
          names.push(o.metadata?.name as string);
          if (o.metadata?.name === "a") sawFirst();
        },
      });
      assert.equal(secondPageSentBeforeFirstItemSeen, false, "the first item reached the caller while its page was still arriving");
      assert.deepEqual(names, ["a", "b", "c"]);
      assert.deepEqual(listed, { items: [], resourceVersion: "9" }, "with each, nothing is collected");
    } finally {
      client.close();
      server.close();
    }
  });

  it("sends merge, JSON and strategic merge patches with their content types, and status patches", async () => {
    await f.client.create(Resources.configMaps, configMap("m", { a: "1", b: "2" }));
    const merged = await f.client.patch<ConfigMap>(Resources.configMaps, "m", "merge", { data: { a: null, c: "3" } }, { namespace: "default" });
    assert.deepEqual(merged.data, { b: "2", c: "3" });
    const jsonPatched = await f.client.patch<ConfigMap>(Resources.configMaps, "m", "json", [{ op: "replace", path: "/data/b", value: "9" }], { namespace: "default" });
    assert.equal(jsonPatched.data?.b, "9");
    const svc = await f.client.create(Resources.services, {
      metadata: { name: "s", namespace: "default" },
      spec: { type: "LoadBalancer", ports: [{ name: "http", port: 80, protocol: "TCP" }] },
    } as KubeObject);
    const strategic = await f.client.patch<KubeObject & { spec: { ports: { name: string }[] } }>(Resources.services, "s", "strategic",
      { spec: { ports: [{ name: "https", port: 443, protocol: "TCP" }] } }, { namespace: "default" });
    // Strategic merge merges ports by their key (port) instead of replacing the list, unlike a merge patch.
    assert.deepEqual(strategic.spec.ports.map((p) => p.name).sort(), ["http", "https"]);
    const withStatus = await f.client.patchStatus<KubeObject & { status: { loadBalancer: { ingress: { ip: string }[] } } }>(Resources.services, "s", "merge",
      { status: { loadBalancer: { ingress: [{ ip: "192.0.2.10" }] } } }, { namespace: "default" });
    assert.equal(withStatus.status.loadBalancer.ingress[0]?.ip, "192.0.2.10");
    assert.ok(svc.metadata?.uid);
    assert.ok(f.requests.includes("patch services/status 200"), f.requests.join("\n"));
  });

  it("server-side apply is idempotent, reports conflicts with other managers, and force takes over", async () => {
    const intent = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "ssa", namespace: "default", labels: { owner: "berth" } }, data: { x: "1" } };
    const first = await f.client.apply<ConfigMap>(Resources.configMaps, intent, { fieldManager: "berth-controller" });
    const again = await f.client.apply<ConfigMap>(Resources.configMaps, intent, { fieldManager: "berth-controller" });
    assert.equal(again.metadata?.resourceVersion, first.metadata?.resourceVersion, "re-applying the same intent writes nothing");
    const other = { ...intent, data: { x: "2" } };
    await assert.rejects(f.client.apply(Resources.configMaps, other, { fieldManager: "someone-else" }), (e: unknown) => isConflict(e));
    const forced = await f.client.apply<ConfigMap>(Resources.configMaps, other, { fieldManager: "someone-else", force: true });
    assert.equal(forced.data?.x, "2");
    assert.deepEqual(f.requests.filter((r) => r.startsWith("apply ")), ["apply configmaps 201", "apply configmaps 200", "apply configmaps 409", "apply configmaps 200"]);
  });

  it("watches events from a resourceVersion and throws 410 Gone once history has expired", async () => {
    const list = await f.client.list(Resources.configMaps, { namespace: "default" });
    const rv = list.metadata.resourceVersion as string;
    await f.client.create(Resources.configMaps, configMap("w1"));
    await f.client.patch(Resources.configMaps, "w1", "merge", { data: { a: "b" } }, { namespace: "default" });
    await f.client.delete(Resources.configMaps, "w1", { namespace: "default" });
    const seen: string[] = [];
    const ac = new AbortController();
    for await (const ev of f.client.watch(Resources.configMaps, { namespace: "default", resourceVersion: rv, signal: ac.signal })) {
      seen.push(`${ev.type} ${ev.object.metadata?.name}`);
      if (seen.length === 3) break;
    }
    assert.deepEqual(seen, ["ADDED w1", "MODIFIED w1", "DELETED w1"]);

    f.api.faults.expireHistory();
    await assert.rejects(async () => {
      for await (const _ of f.client.watch(Resources.configMaps, { namespace: "default", resourceVersion: rv })) {
        assert.fail("no event expected before the 410");
      }
    }, isGone);
  });

  it("aborting a watch ends the iteration quietly", async () => {
    const ac = new AbortController();
    const events: string[] = [];
    const done = (async () => {
      for await (const ev of f.client.watch(Resources.configMaps, { namespace: "default", signal: ac.signal })) events.push(ev.type);
    })();
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    await done;
    assert.ok(events.every((t) => t === "ADDED"));
  });

  it("turns 429, 500 and 503 answers into typed, retryable errors with Retry-After", async () => {
    await f.close();
    f = await startFixture({}, { maxRetries: 0 });
    f.api.faults.add({ verb: "get", resource: "namespaces", error: 429, retryAfterSeconds: 3, times: 1 });
    await assert.rejects(f.client.get(Resources.namespaces, "default"), (e: unknown) =>
      e instanceof KubeError && e.code === 429 && e.reason === "TooManyRequests" && e.retryAfterSeconds === 3 && isRetryable(e));
    f.api.faults.add({ verb: "get", resource: "namespaces", error: 503, times: 1 });
    await assert.rejects(f.client.get(Resources.namespaces, "default"), (e: unknown) => e instanceof KubeError && e.code === 503 && isRetryable(e));
    f.api.faults.add({ verb: "list", resource: "namespaces", error: 500, times: 1 });
    await assert.rejects(f.client.list(Resources.namespaces), (e: unknown) => e instanceof KubeError && e.code === 500 && e.reason === "InternalError");
    assert.deepEqual(f.requests.slice(-3), ["get namespaces 429", "get namespaces 503", "list namespaces 500"]);
    // Fault rules with `times` retire: the next call succeeds.
    assert.equal((await f.client.get(Resources.namespaces, "default")).metadata?.name, "default");
  });

  it("sends a request again after the Retry-After of a 429, and gives up after maxRetries", async () => {
    const clock = new FakeClock();
    await f.close();
    f = await startFixture({}, { clock, maxRetries: 2 });
    f.api.faults.add({ verb: "create", resource: "configmaps", error: 429, retryAfterSeconds: 2, times: 2 });
    const created = f.client.create(Resources.configMaps, configMap("after-429"));
    for (let i = 0; i < 2; i++) {
      await waitFor("the Retry-After wait", () => clock.pending === 1);
      await clock.advance(1999);
      assert.equal(clock.pending, 1, "not before Retry-After");
      await clock.advance(1);
    }
    assert.equal((await created).metadata?.name, "after-429");
    assert.deepEqual(f.requests, ["create configmaps 429", "create configmaps 429", "create configmaps 201"]);
    // Three 429s with maxRetries 2: the third is the caller's.
    f.api.faults.add({ verb: "get", resource: "configmaps", error: 429, retryAfterSeconds: 1, times: 3 });
    const got = f.client.get(Resources.configMaps, "after-429", { namespace: "default" });
    const outcome = got.then(() => "ok", (e: unknown) => (e instanceof KubeError ? e.code : -1));
    for (let i = 0; i < 2; i++) {
      await waitFor("the Retry-After wait", () => clock.pending === 1);
      await clock.advance(1000);
    }
    assert.equal(await outcome, 429);
    // A 500 with Retry-After on a write is not repeated: the write may have happened.
    f.api.faults.add({ verb: "delete", resource: "configmaps", error: 500, retryAfterSeconds: 1, times: 1 });
    await assert.rejects(f.client.delete(Resources.configMaps, "after-429", { namespace: "default" }), (e: unknown) => e instanceof KubeError && e.code === 500);
  });

  it("sends a request again once when a kept-alive connection turns out to be closed", async () => {
    // A server that drops any connection on its second request, as an idle-timeout race with a proxy would.
    const seen: string[] = [];
    const perSocket = new WeakMap<object, number>();
    const server = createServer((req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      seen.push(`${req.url} #${n}`);
      if (n > 1) {
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ metadata: { name: "default" } }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const client = new KubeClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    try {
      assert.equal((await client.get(Resources.namespaces, "default")).metadata?.name, "default");
      assert.equal((await client.get(Resources.namespaces, "default")).metadata?.name, "default");
      assert.deepEqual(seen, ["/api/v1/namespaces/default #1", "/api/v1/namespaces/default #2", "/api/v1/namespaces/default #1"]);
    } finally {
      client.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("leaves no abort listener on the caller's signal after refused connections, timeouts, errors and answers", async () => {
    // A long API outage: every request of an informer or a reconcile shares one long-lived signal. Each refused
    // request used to leave its listener behind (20 refused lists: 20 listeners and a MaxListenersExceededWarning).
    const signal = new AbortController().signal;
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on("warning", onWarning);
    // A port nothing listens on: bind one, note it, close it.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const deadPort = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const refused = new KubeClient({ server: `http://127.0.0.1:${deadPort}`, maxRetries: 0 });
    // A server that accepts and never answers: the request times out.
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const slow = new KubeClient({ server: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, requestTimeoutMs: 50, maxRetries: 0 });
    try {
      for (let i = 0; i < 20; i++) {
        await assert.rejects(refused.list(Resources.services, { signal }), (e: unknown) => e instanceof KubeError && e.reason === "NetworkError");
      }
      for (let i = 0; i < 3; i++) {
        await assert.rejects(slow.get(Resources.namespaces, "default", { signal }), (e: unknown) => e instanceof KubeError && e.reason === "Timeout");
      }
      // Answers: an error status and a success, through the sandbox.
      await assert.rejects(f.client.get(Resources.configMaps, "absent", { namespace: "default", signal }), isNotFound);
      await f.client.get(Resources.namespaces, "default", { signal });
      assert.equal(getEventListeners(signal, "abort").length, 0);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message), []);
    } finally {
      process.off("warning", onWarning);
      refused.close();
      slow.close();
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  });

  it("reports an unreachable server as a retryable error with code 0", async () => {
    const url = f.api.url;
    await f.api.close();
    const client = new KubeClient({ server: url, requestTimeoutMs: 2000 });
    await assert.rejects(client.get(Resources.namespaces, "default"), (e: unknown) => e instanceof KubeError && e.code === 0 && isRetryable(e));
    client.close();
    f = await startFixture();
  });
});

/** A self-signed CA that signed nothing the sandbox serves (made once with openssl for this test). */
const OTHER_CA = `-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIUQwTNFFn7Hz5/14S6xhePnyOhG9gwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOYnQtYzItb3RoZXItY2EwIBcNMjYxMTI0MDgwMTIzWhgPMjEy
NjEwMzEwODAxMjNaMBkxFzAVBgNVBAMMDmJ0LWMyLW90aGVyLWNhMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEjFfHy9iqnajSf4YB3yB0ai+MddCJxgjxAgwNPC+w
l/iYM1kyslAXisLE2YRYkKoCaH7oUPMsHGmFya8KayZ/o6NTMFEwHQYDVR0OBBYE
FOgjTJnVt4yedM+KWylM6WT9fZphMB8GA1UdIwQYMBaAFOgjTJnVt4yedM+KWylM
6WT9fZphMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhANxTzF4d
31nTh9TEvK2TOlroeBXgAKsTXHMY8GyU6JA9AiBoGwV7jT/nuRviIrjGvRTc4jKR
OyjFEKWueI45AsMrRQ==
-----END CERTIFICATE-----
`;
