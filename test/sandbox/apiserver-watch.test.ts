// watch: initial state, resumption from a resourceVersion, 410 Gone, bookmarks, selectors, timeouts.
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:net";
import { CM, configMap, useServer } from "./apiserver-client.js";

describe("sandbox apiserver: watch", () => {
  const { server, client } = useServer({ historyLimit: 20, bookmarkIntervalMs: 100 });

  it("streams chunked JSON lines with status 200", async () => {
    const w = await client().watch(CM);
    assert.equal(w.status, 200);
    await client().post(CM, configMap("a"));
    const ev = await w.next();
    assert.equal(ev?.type, "ADDED");
    assert.equal(ev?.object.kind, "ConfigMap");
    assert.equal(ev?.object.apiVersion, "v1");
  });

  it("sends the current objects as ADDED first when no resourceVersion is given", async () => {
    await client().post(CM, configMap("a"));
    await client().post(CM, configMap("b"));
    const w = await client().watch(CM);
    const evs = await w.take(2);
    assert.deepEqual(evs.map((e) => [e.type, e.object.metadata.name]), [["ADDED", "a"], ["ADDED", "b"]]);
  });

  it("sends the current objects as ADDED first for resourceVersion=0 too", async () => {
    await client().post(CM, configMap("a"));
    const w = await client().watch(`${CM}?resourceVersion=0`);
    const ev = await w.next();
    assert.equal(ev?.type, "ADDED");
    assert.equal(ev?.object.metadata.name, "a");
  });

  it("sends only later changes when started from a list's resourceVersion", async () => {
    await client().post(CM, configMap("a"));
    const list = await client().get(CM);
    await client().post(CM, configMap("b"));
    const w = await client().watch(`${CM}?resourceVersion=${list.body.metadata.resourceVersion}`);
    const evs = await w.take(1);
    assert.deepEqual(evs.map((e) => [e.type, e.object.metadata.name]), [["ADDED", "b"]]);
    assert.equal(await w.next(200), undefined);
  });

  it("replays MODIFIED and DELETED events from history with their resourceVersions in order", async () => {
    const c = await client().post(CM, configMap("a"));
    const u = await client().put(`${CM}/a`, { ...c.body, data: { x: "1" } });
    await client().del(`${CM}/a`);
    const w = await client().watch(`${CM}?resourceVersion=${c.body.metadata.resourceVersion}`);
    const evs = await w.take(2);
    assert.deepEqual(evs.map((e) => e.type), ["MODIFIED", "DELETED"]);
    assert.equal(evs[0]?.object.metadata.resourceVersion, u.body.metadata.resourceVersion);
    assert.ok(Number(evs[1]?.object.metadata.resourceVersion) > Number(u.body.metadata.resourceVersion));
  });

  it("answers a resourceVersion older than the history with an ERROR event carrying 410 Expired", async () => {
    const c = await client().post(CM, configMap("a"));
    for (let i = 0; i < 25; i++) await client().post(CM, configMap(`x${i}`));
    const w = await client().watch(`${CM}?resourceVersion=${c.body.metadata.resourceVersion}`);
    assert.equal(w.status, 200);
    const ev = await w.next();
    assert.equal(ev?.type, "ERROR");
    assert.equal(ev?.object.kind, "Status");
    assert.equal(ev?.object.code, 410);
    assert.equal(ev?.object.reason, "Expired");
    assert.ok(await w.waitEnd());
  });

  it("answers a resourceVersion from the future with an ERROR event carrying 504 ResourceVersionTooLarge", async () => {
    const w = await client().watch(`${CM}?resourceVersion=999999`);
    assert.equal(w.status, 200);
    const ev = await w.next();
    assert.equal(ev?.type, "ERROR");
    assert.equal(ev?.object.code, 504);
    assert.equal(ev?.object.details.causes[0].reason, "ResourceVersionTooLarge");
  });

  it("answers 400 to a resourceVersion that is not a number", async () => {
    const w = await client().watch(`${CM}?resourceVersion=abc`);
    assert.equal(w.status, 400);
  });

  it("sends BOOKMARK events with only the resourceVersion when allowWatchBookmarks is set", async () => {
    const c = await client().post(CM, configMap("a"));
    const w = await client().watch(`${CM}?resourceVersion=${c.body.metadata.resourceVersion}&allowWatchBookmarks=true`);
    const ev = await w.next(1000);
    assert.equal(ev?.type, "BOOKMARK");
    assert.equal(ev?.object.kind, "ConfigMap");
    assert.deepEqual(Object.keys(ev?.object.metadata), ["resourceVersion"]);
    assert.equal(ev?.object.metadata.resourceVersion, server().store.resourceVersion());
  });

  it("sends no BOOKMARK events to watches that did not ask for them", async () => {
    const c = await client().post(CM, configMap("a"));
    const w = await client().watch(`${CM}?resourceVersion=${c.body.metadata.resourceVersion}`);
    assert.equal(await w.next(300), undefined);
  });

  it("ends the initial events with an initial-events-end BOOKMARK for sendInitialEvents=true", async () => {
    await client().post(CM, configMap("a"));
    const w = await client().watch(`${CM}?sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan`);
    const evs = await w.take(2);
    assert.equal(evs[0]?.type, "ADDED");
    assert.equal(evs[1]?.type, "BOOKMARK");
    assert.equal(evs[1]?.object.metadata.annotations["k8s.io/initial-events-end"], "true");
  });

  it("answers 422 to sendInitialEvents without resourceVersionMatch=NotOlderThan", async () => {
    const w = await client().watch(`${CM}?sendInitialEvents=true&allowWatchBookmarks=true`);
    assert.equal(w.status, 422);
  });

  it("delivers ADDED when an object starts matching the label selector and DELETED when it stops", async () => {
    const c = await client().post(CM, configMap("a", { app: "x" }));
    const w = await client().watch(`${CM}?labelSelector=app%3Dy&resourceVersion=${c.body.metadata.resourceVersion}`);
    const toY = await client().put(`${CM}/a`, { ...c.body, metadata: { ...c.body.metadata, labels: { app: "y" } } });
    const stillY = await client().put(`${CM}/a`, { ...toY.body, data: { k: "v" } });
    await client().put(`${CM}/a`, { ...stillY.body, metadata: { ...stillY.body.metadata, labels: { app: "z" } } });
    const evs = await w.take(3);
    assert.deepEqual(evs.map((e) => e.type), ["ADDED", "MODIFIED", "DELETED"]);
    // The DELETED event carries the last state that matched, at the resourceVersion of the change.
    assert.equal(evs[2]?.object.metadata.labels.app, "y");
    assert.ok(Number(evs[2]?.object.metadata.resourceVersion) > Number(stillY.body.metadata.resourceVersion));
  });

  it("filters a watch by field selector", async () => {
    const w = await client().watch(`${CM}?fieldSelector=metadata.name%3Db`);
    await client().post(CM, configMap("a"));
    await client().post(CM, configMap("b"));
    const ev = await w.next();
    assert.equal(ev?.object.metadata.name, "b");
    assert.equal(await w.next(200), undefined);
  });

  it("limits a namespaced watch to its namespace", async () => {
    const w = await client().watch("/api/v1/namespaces/kube-system/configmaps");
    await client().post(CM, configMap("a"));
    await client().post("/api/v1/namespaces/kube-system/configmaps", configMap("b"));
    const ev = await w.next();
    assert.equal(ev?.object.metadata.name, "b");
  });

  it("watches across namespaces on the cluster-wide path", async () => {
    const w = await client().watch("/api/v1/configmaps");
    await client().post(CM, configMap("a"));
    await client().post("/api/v1/namespaces/kube-system/configmaps", configMap("b"));
    const evs = await w.take(2);
    assert.deepEqual(evs.map((e) => e.object.metadata.name), ["a", "b"]);
  });

  it("watches one object through the legacy /watch/ path", async () => {
    await client().post(CM, configMap("a"));
    await client().post(CM, configMap("b"));
    const w = await client().watch("/api/v1/watch/namespaces/default/configmaps/b");
    const ev = await w.next();
    assert.equal(ev?.object.metadata.name, "b");
    assert.equal(await w.next(200), undefined);
  });

  it("ends the stream after timeoutSeconds", async () => {
    const w = await client().watch(`${CM}?timeoutSeconds=1`);
    assert.ok(await w.waitEnd(2500));
  });

  it("streams Table rows when kubectl get -w asks for them", async () => {
    const w = await client().watch(CM, { Accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json" });
    await client().post(CM, configMap("a"));
    const ev = await w.next();
    assert.equal(ev?.type, "ADDED");
    assert.equal(ev?.object.kind, "Table");
    assert.equal(ev?.object.rows[0].cells[0], "a");
  });

  it("stops delivering to a watch whose client went away", async () => {
    const w = await client().watch(CM);
    assert.equal(server().store.watcherCount(), 1);
    w.close();
    const deadline = Date.now() + 2000;
    while (server().store.watcherCount() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(server().store.watcherCount(), 0);
  });

  it("ends open watches when the server closes", async () => {
    const w = await client().watch(CM);
    await server().close();
    assert.ok(await w.waitEnd());
  });
});

describe("sandbox apiserver: watch deadline bookmark", () => {
  const { client } = useServer({ bookmarkIntervalMs: 60_000 });

  it("sends a BOOKMARK 2 s before a watch's timeoutSeconds runs out", async () => {
    const c = await client().post(CM, configMap("a"));
    const w = await client().watch(`${CM}?resourceVersion=${c.body.metadata.resourceVersion}&allowWatchBookmarks=true&timeoutSeconds=3`);
    const t0 = Date.now();
    const first = await w.next(1800);
    assert.equal(first?.type, "BOOKMARK");
    assert.ok(Date.now() - t0 >= 800, `bookmark after ${Date.now() - t0} ms`);
  });
});

describe("sandbox apiserver: watch writes", () => {
  const { server } = useServer();

  /**
   * Opens a watch on a raw socket and returns the HTTP/1.1 chunks of its body as they arrive: one chunk per write
   * the server made, whatever TCP did with the bytes.
   */
  async function rawWatch(path: string): Promise<{ chunks: string[]; close(): void }> {
    const url = new URL(server().url);
    const socket = connect(Number(url.port), url.hostname);
    await once(socket, "connect");
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server().token}\r\n\r\n`);
    const chunks: string[] = [];
    let buffer = Buffer.alloc(0);
    let headersDone = false;
    socket.on("data", (data: Buffer) => {
      buffer = Buffer.concat([buffer, data]);
      if (!headersDone) {
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        headersDone = true;
        buffer = buffer.subarray(end + 4);
      }
      for (;;) {
        const line = buffer.indexOf("\r\n");
        if (line < 0) return;
        const size = parseInt(buffer.subarray(0, line).toString(), 16);
        if (buffer.length < line + 2 + size + 2) return;
        chunks.push(buffer.subarray(line + 2, line + 2 + size).toString());
        buffer = buffer.subarray(line + 2 + size + 2);
      }
    });
    return { chunks, close: () => socket.destroy() };
  }

  it("sends a burst of events in two writes per watcher: the first at once, the rest together (kube flushes when none is pending)", async () => {
    const store = server().store;
    const cms = store.resourceFor("v1", "ConfigMap");
    store.create(cms, "default", configMap("first"));
    const watches = [await rawWatch(`${CM}?watch=true&resourceVersion=0`), await rawWatch(`${CM}?watch=true&resourceVersion=0`)];
    const until = async (what: string, ok: () => boolean): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (!ok()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await until("the initial ADDED", () => watches.every((w) => w.chunks.join("").includes('"first"')));
    const before = watches.map((w) => w.chunks.length);
    // Ten writes in one turn of the event loop but each in its own callback, as a busy server handles many requests
    // between two turns (node:http already merges what one callback writes: it corks the socket until nextTick).
    for (let i = 0; i < 10; i++) setImmediate(() => store.create(cms, "default", configMap(`cm-${i}`)));
    await until("the ten events", () => watches.every((w) => (w.chunks.join("").match(/"cm-\d"/g) ?? []).length === 10));
    for (const [i, w] of watches.entries()) {
      const burst = w.chunks.slice(before[i]);
      const names = burst.map((chunk) => chunk.trim().split("\n").map((l) => JSON.parse(l).object.metadata.name as string));
      assert.deepEqual(names, [["cm-0"], Array.from({ length: 9 }, (_, n) => `cm-${n + 1}`)], `writes for ten events: ${burst.length}`);
    }
    assert.equal(watches[0]?.chunks.slice(before[0]).join(""), watches[1]?.chunks.slice(before[1]).join(""), "the same bytes to both");
    for (const w of watches) w.close();
  });
});
