// The informer's transform option against the sandbox API server over HTTP: what the list and every watch event
// deliver is transformed before the cache and the handlers see it (client-go's SetTransform).
import assert from "node:assert/strict";
import { Resources, type KubeObject } from "../../../src/lib/kube/client.js";
import { Informer } from "../../../src/lib/kube/informer.js";
import { configMap, startFixture, waitFor, type Fixture } from "../../integration/kube/fixture.js";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

/** Keeps only data.keep, so a test can tell a transformed object from a raw one. */
const keepOnly = (o: ConfigMap): ConfigMap => ({
  apiVersion: o.apiVersion, kind: o.kind,
  metadata: { name: o.metadata?.name, namespace: o.metadata?.namespace, resourceVersion: o.metadata?.resourceVersion },
  data: o.data?.keep !== undefined ? { keep: o.data.keep } : {},
});

describe("informer transform", function () {
  this.timeout(15_000);
  let f: Fixture;
  let informer: Informer<ConfigMap> | undefined;
  beforeEach(async () => {
    f = await startFixture();
  });
  afterEach(async () => {
    await informer?.stop();
    await f.close();
  });

  it("caches and hands to handlers only the transformed object, from the list and from every watch event", async () => {
    await f.client.create(Resources.configMaps, configMap("listed", { keep: "1", drop: "x".repeat(100) }));
    informer = new Informer<ConfigMap>({ client: f.client, resource: Resources.configMaps, namespace: "default", transform: keepOnly });
    const seen: ConfigMap[] = [];
    informer.addHandlers({ onAdd: (o) => seen.push(o), onUpdate: (_a, b) => seen.push(b), onDelete: (o) => seen.push(o) });
    informer.start();
    await informer.synced;
    await f.client.create(Resources.configMaps, configMap("watched", { keep: "2", drop: "y" }));
    await f.client.patch(Resources.configMaps, "listed", "merge", { data: { keep: "3" } }, { namespace: "default" });
    await f.client.delete(Resources.configMaps, "watched", { namespace: "default" });
    await waitFor("add, add, update, delete", () => seen.length === 4);
    assert.deepEqual(seen.map((o) => [o.metadata?.name, o.data]), [
      ["listed", { keep: "1" }], ["watched", { keep: "2" }], ["listed", { keep: "3" }], ["watched", { keep: "2" }],
    ]);
    assert.deepEqual(informer.get("default/listed")?.data, { keep: "3" });
  });
  it("a relist keeps the cached object of an unchanged resourceVersion and transforms only what changed", async () => {
    await f.client.create(Resources.configMaps, configMap("same", { keep: "1" }));
    await f.client.create(Resources.configMaps, configMap("changed", { keep: "1" }));
    const transformed: string[] = [];
    informer = new Informer<ConfigMap>({
      client: f.client, resource: Resources.configMaps, namespace: "default", backoff: { baseMs: 10, maxMs: 50, factor: 2, jitter: 0 },
      transform: (o) => {
        transformed.push(o.metadata?.name as string);
        return keepOnly(o);
      },
    });
    informer.start();
    await informer.synced;
    const before = informer.get("default/same");
    // Changed while the informer is away: its watch ends and the history it would resume from is gone (410).
    f.api.faults.expireHistory();
    await f.client.patch(Resources.configMaps, "changed", "merge", { data: { keep: "2" } }, { namespace: "default" });
    f.api.faults.expireHistory();
    f.api.faults.closeWatches();
    await waitFor("a relist", () => informer?.stats.relists === 1);
    assert.equal(informer.get("default/same"), before, "the very object cached before, not a copy");
    assert.deepEqual(informer.get("default/changed")?.data, { keep: "2" });
    assert.deepEqual(transformed.filter((n) => n === "same"), ["same"], "transformed once, at the first list");
  });
});
