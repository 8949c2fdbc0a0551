// The rules ConfigMap around the DaemonSet apply (src/controller/rules-configmap.ts), against the sandbox API server
// over HTTP: written before the DaemonSet, owned by it once it exists, the previous one deleted when the rules
// change, and the rest removed by the garbage collector with the DaemonSet.
import { strict as assert } from "node:assert";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { buildDaemonSet, lbPodRulesBundle, rulesConfigMapOf } from "../../../src/controller/daemonset.js";
import { applyWithRules } from "../../../src/controller/rules-configmap.js";
import { parseServiceConfig } from "../../../src/controller/service-config.js";
import { defaultControllerConfig, type V1DaemonSet, type V1Service } from "../../../src/controller/types.js";
import { FIELD_MANAGER } from "../../../src/lib/names.js";
import { KubeClient, Resources } from "../../../src/lib/kube/client.js";
import { startApiServer, type ApiServerHandle } from "../../../src/sandbox/apiserver/index.js";

const NS = "berth-system";

describe("controller: the rules ConfigMap beside each DaemonSet", () => {
  let server: ApiServerHandle;
  let client: KubeClient;
  const config = defaultControllerConfig();

  beforeEach(async () => {
    server = await startApiServer({ port: 0 });
    client = new KubeClient({ server: server.url, authHeaders: () => ({ Authorization: `Bearer ${server.token}` }) });
    await client.create(Resources.namespaces, { metadata: { name: NS } });
  });
  afterEach(async () => {
    client.close();
    await server.close();
  });

  const service = (port: number): V1Service => ({
    apiVersion: "v1", kind: "Service",
    metadata: { name: "web", namespace: "default", uid: "3f2a9c1e-7b4d-4e6f-9a8b-0c1d2e3f4a5b" },
    spec: { type: "LoadBalancer", clusterIP: "10.43.0.10", clusterIPs: ["10.43.0.10"], ipFamilies: ["IPv4"], ports: [{ protocol: "TCP", port }] },
  });
  const apply = async (port: number, live: V1DaemonSet | undefined): Promise<{ desired: V1DaemonSet; applied: V1DaemonSet }> => {
    const parsed = parseServiceConfig(service(port), config);
    assert.ok(parsed.ok);
    const desired = buildDaemonSet(service(port), parsed.value, [], { ...config, namespace: NS });
    const applied = await applyWithRules(client, NS, parsed.value, desired, live,
      () => client.apply(Resources.daemonSets, desired, { namespace: NS, fieldManager: FIELD_MANAGER, force: true }));
    return { desired, applied };
  };
  const configMaps = async (): Promise<V1ConfigMap[]> => (await client.list<V1ConfigMap & { metadata: object }>(Resources.configMaps, { namespace: NS })).items;

  it("a new Service: the ConfigMap its pods mount exists, immutable, holding the rendered bundle, owned by the DaemonSet", async () => {
    const { desired, applied } = await apply(80, undefined);
    const [cm, ...others] = await configMaps();
    assert.deepEqual(others, []);
    assert.equal(cm?.metadata?.name, rulesConfigMapOf(desired));
    assert.equal(cm?.immutable, true);
    const parsed = parseServiceConfig(service(80), config);
    assert.ok(parsed.ok);
    assert.deepEqual(cm?.data, lbPodRulesBundle(parsed.value));
    assert.deepEqual(cm?.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]), [["DaemonSet", applied.metadata?.name, applied.metadata?.uid, true]]);
  });

  it("changed rules: a new ConfigMap for the new template, the previous one deleted", async () => {
    const first = await apply(80, undefined);
    const second = await apply(81, first.applied);
    assert.notEqual(rulesConfigMapOf(second.desired), rulesConfigMapOf(first.desired));
    assert.deepEqual((await configMaps()).map((cm) => cm.metadata?.name), [rulesConfigMapOf(second.desired)]);
    // The same rules again (a re-apply after a lost watch event): nothing new, nothing deleted.
    await apply(81, second.applied);
    assert.deepEqual((await configMaps()).map((cm) => cm.metadata?.name), [rulesConfigMapOf(second.desired)]);
  });

  it("the garbage collector removes the ConfigMap with its DaemonSet", async () => {
    const { applied } = await apply(80, undefined);
    await client.delete(Resources.daemonSets, applied.metadata?.name ?? "", { namespace: NS, propagationPolicy: "Background" });
    const deadline = Date.now() + 5000;
    while ((await configMaps()).length > 0) {
      assert.ok(Date.now() < deadline, "the ConfigMap outlived its DaemonSet");
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  });
});
