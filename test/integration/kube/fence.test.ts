// The term-bound client (src/lib/kube/fence.ts) over HTTP against the sandbox API server: for every method that
// sends a request, the term's signal reaches the request (in flight: aborted, and the server does nothing with
// it), and once the term has ended nothing is sent at all. The table is every KubeClient method with options, so a
// method whose options sit at another argument position cannot slip through unfenced.
import assert from "node:assert/strict";
import { KubeClient, KubeError, Resources } from "../../../src/lib/kube/client.js";
import { fencedClient, isFenced } from "../../../src/lib/kube/fence.js";
import { configMap, startFixture, waitFor, type Fixture } from "./fixture.js";

const ns = { namespace: "default" };
const cm = configMap("a");
const svc = { apiVersion: "v1", kind: "Service", metadata: { name: "s", namespace: "default" }, spec: { ports: [{ port: 80 }] } };

const CALLS: { name: string; write: boolean; call: (c: KubeClient) => Promise<unknown> }[] = [
  { name: "get", write: false, call: (c) => c.get(Resources.configMaps, "a", ns) },
  { name: "tryGet", write: false, call: (c) => c.tryGet(Resources.configMaps, "a", ns) },
  { name: "list", write: false, call: (c) => c.list(Resources.configMaps, ns) },
  { name: "listAll", write: false, call: (c) => c.listAll(Resources.configMaps, ns) },
  { name: "create", write: true, call: (c) => c.create(Resources.configMaps, configMap("b"), ns) },
  { name: "replace", write: true, call: (c) => c.replace(Resources.configMaps, cm, ns) },
  { name: "replaceStatus", write: true, call: (c) => c.replaceStatus(Resources.services, svc, ns) },
  { name: "delete", write: true, call: (c) => c.delete(Resources.configMaps, "a", ns) },
  { name: "patch", write: true, call: (c) => c.patch(Resources.configMaps, "a", "merge", { data: { x: "1" } }, ns) },
  { name: "patchStatus", write: true, call: (c) => c.patchStatus(Resources.services, "s", "merge", { status: {} }, ns) },
  { name: "apply", write: true, call: (c) => c.apply(Resources.configMaps, cm, { ...ns, fieldManager: "t" }) },
  { name: "applyStatus", write: true, call: (c) => c.applyStatus(Resources.services, svc, { ...ns, fieldManager: "t" }) },
];

describe("fenced client: a KubeClient bound to a leadership term (sandbox API server over HTTP)", function () {
  let f: Fixture;
  beforeEach(async () => {
    f = await startFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  it("aborts every kind of request in flight when the term ends, and the server does nothing with them", async () => {
    const counted: string[] = [];
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w.name);
    };
    process.on("warning", onWarning);
    const term = new AbortController();
    const client = fencedClient(f.client, term.signal, { fencedWrite: (verb, stage) => counted.push(`${verb} ${stage}`) });
    f.api.faults.add({ latencyMs: 5000 });
    const settled = CALLS.map((c) => c.call(client).then(() => "resolved", (e: unknown) => e));
    await waitFor("every request reached the server", () => f.api.requestLog.entries().length >= CALLS.length);
    term.abort();
    const results = await Promise.all(settled);
    for (const [i, c] of CALLS.entries()) {
      const e = results[i];
      assert.ok(isFenced(e) && /aborted in flight/.test((e as KubeError).message), `${c.name}: ${String(e)}`);
    }
    await waitFor("the server saw them go", () => f.api.requestLog.entries().every((e) => e.outcome === "abandoned"));
    await new Promise((r) => setImmediate(r));
    process.off("warning", onWarning);
    // One term signal, 12 requests in flight on it: not a leak, so no MaxListenersExceededWarning.
    assert.deepEqual(warnings, []);
    assert.deepEqual(counted.sort(), ["apply aborted", "apply aborted", "create aborted", "delete aborted", "patch aborted", "patch aborted",
      "update aborted", "update aborted"]);
  });

  it("sends nothing once the term has ended, and counts the writes it refused", async () => {
    const counted: string[] = [];
    const term = new AbortController();
    term.abort();
    const client = fencedClient(f.client, term.signal, { fencedWrite: (verb, stage) => counted.push(`${verb} ${stage}`) });
    for (const c of CALLS) {
      await assert.rejects(c.call(client), (e: unknown) => isFenced(e) && /not sent/.test((e as KubeError).message), c.name);
    }
    assert.deepEqual(f.api.requestLog.entries(), [], "requests that reached the server");
    assert.equal(counted.filter((x) => x.endsWith("refused")).length, CALLS.filter((c) => c.write).length);
    // A watch of an ended term ends at once, without a request.
    const events: unknown[] = [];
    for await (const ev of client.watch(Resources.configMaps, ns)) events.push(ev);
    assert.deepEqual(events, []);
  });

  it("still honours the caller's own signal, passes answers through, and does not close the shared client", async () => {
    const term = new AbortController();
    const client = fencedClient(f.client, term.signal);
    await client.create(Resources.configMaps, cm, ns);
    assert.equal((await client.get(Resources.configMaps, "a", ns)).metadata?.name, "a");
    f.api.faults.add({ verb: "get", latencyMs: 5000 });
    const own = new AbortController();
    const pending = client.get(Resources.configMaps, "a", { ...ns, signal: own.signal });
    await waitFor("the get reached the server", () => f.api.requestLog.entries().some((e) => e.verb === "get" && !e.outcome));
    own.abort();
    // The caller's abort is the caller's: an ordinary Aborted error, not a fenced one.
    await assert.rejects(pending, (e: unknown) => e instanceof KubeError && e.reason === "Aborted");
    f.api.faults.clear();
    client.close();
    assert.equal((await f.client.get(Resources.configMaps, "a", ns)).metadata?.name, "a");
    assert.equal(client.server, f.client.server);
  });
});
