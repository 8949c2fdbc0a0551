// The EndpointSlice stand-in against the sandbox API server over HTTP: slices follow Services and Pods as they change.
import { strict as assert } from "node:assert";

import { KubeClient, Resources, type KubeObject } from "../../../src/lib/kube/client.js";
import { startApiServer, type ApiServerHandle } from "../../../src/sandbox/apiserver/index.js";
import { EndpointsStandIn, type EndpointSlice } from "../../../src/sandbox/cluster/endpoints.js";

type Obj = KubeObject & Record<string, unknown>;

describe("sandbox EndpointSlice stand-in against the API server", () => {
  let api: ApiServerHandle;
  let client: KubeClient;
  let standIn: EndpointsStandIn | undefined;

  beforeEach(async () => {
    api = await startApiServer({ port: 0, serviceCidrs: { ipv4: "10.43.0.0/16", ipv6: "fd00:43::/112" } });
    client = new KubeClient({ server: api.url, authHeaders: () => ({ Authorization: `Bearer ${api.token}` }) });
  });

  afterEach(async () => {
    await standIn?.stop();
    standIn = undefined;
    client.close();
    await api.close();
  });

  const createService = (name: string, spec: Record<string, unknown>): Promise<Obj> =>
    client.create<Obj>(Resources.services, { metadata: { name, namespace: "default" }, spec: { selector: { app: name }, ports: [{ name: "http", port: 80, targetPort: "http" }], ...spec } });

  /** A pod bound to a node, with its IPs and Ready condition set through the status subresource (as a kubelet does). */
  async function createPod(name: string, app: string, o: { node: string; ips: string[]; ready: boolean; httpPort?: number }): Promise<void> {
    await client.create<Obj>(Resources.pods, {
      metadata: { name, namespace: "default", labels: { app } },
      spec: { nodeName: o.node, containers: [{ name: "app", image: "demo", ports: [{ name: "http", containerPort: o.httpPort ?? 8080 }] }] },
    });
    await setPodStatus(name, o.ips, o.ready);
  }

  async function setPodStatus(name: string, ips: string[], ready: boolean): Promise<void> {
    await client.patchStatus(Resources.pods, name, "merge", {
      status: { phase: "Running", podIP: ips[0], podIPs: ips.map((ip) => ({ ip })), conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
    }, { namespace: "default" });
  }

  const slices = async (service: string): Promise<EndpointSlice[]> =>
    (await client.list<EndpointSlice>(Resources.endpointSlices, { namespace: "default", labelSelector: `kubernetes.io/service-name=${service}` })).items;

  /** "name addressType ip@node:R/-,... ports" per slice, sorted: what the assertions compare. */
  const view = async (service: string): Promise<string[]> =>
    (await slices(service))
      .map((s) => `${s.metadata?.name} ${s.addressType} ${(s.endpoints ?? []).map((e) => `${e.addresses[0]}@${e.nodeName}:${e.conditions?.ready ? "R" : "-"}`).join(",")} ${(s.ports ?? []).map((p) => p.port).join(",")}`)
      .sort();

  async function eventually(service: string, want: string[]): Promise<void> {
    const deadline = Date.now() + 5000;
    let got: string[] = [];
    while (Date.now() < deadline) {
      got = await view(service);
      if (JSON.stringify(got) === JSON.stringify(want)) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.deepEqual(got, want);
  }

  it("has the slices in place when start() resolves, and removes slices of Services that no longer exist", async () => {
    await createService("web", {});
    await createPod("web-1", "web", { node: "node-1", ips: ["10.42.1.2"], ready: true });
    await client.create<Obj>(Resources.endpointSlices, {
      metadata: { name: "gone-sandbox", namespace: "default", labels: { "kubernetes.io/service-name": "gone", "endpointslice.kubernetes.io/managed-by": "berth-sandbox" } },
      addressType: "IPv4", endpoints: [{ addresses: ["10.42.1.9"] }], ports: [],
    });
    standIn = new EndpointsStandIn({ client });
    await standIn.start();
    assert.deepEqual(await view("web"), ["web-sandbox IPv4 10.42.1.2@node-1:R 8080"]);
    await eventually("gone", []);
  });

  it("follows pods becoming ready, new pods, deleted pods, dual-stack and Service deletion", async () => {
    await createService("web", { ipFamilyPolicy: "PreferDualStack", ipFamilies: ["IPv4", "IPv6"] });
    standIn = new EndpointsStandIn({ client });
    await standIn.start();
    await eventually("web", ["web-sandbox IPv4  ", "web-sandbox-ipv6 IPv6  "]);

    await createPod("web-1", "web", { node: "node-1", ips: ["10.42.1.2", "fd42:b5e7:7a42:1::2"], ready: false });
    await eventually("web", ["web-sandbox IPv4 10.42.1.2@node-1:- 8080", "web-sandbox-ipv6 IPv6 fd42:b5e7:7a42:1::2@node-1:- 8080"]);

    await setPodStatus("web-1", ["10.42.1.2", "fd42:b5e7:7a42:1::2"], true);
    await createPod("web-2", "web", { node: "node-2", ips: ["10.42.2.2", "fd42:b5e7:7a42:2::2"], ready: true });
    await eventually("web", [
      "web-sandbox IPv4 10.42.1.2@node-1:R,10.42.2.2@node-2:R 8080",
      "web-sandbox-ipv6 IPv6 fd42:b5e7:7a42:1::2@node-1:R,fd42:b5e7:7a42:2::2@node-2:R 8080",
    ]);

    await client.delete(Resources.pods, "web-1", { namespace: "default", gracePeriodSeconds: 0 });
    await eventually("web", ["web-sandbox IPv4 10.42.2.2@node-2:R 8080", "web-sandbox-ipv6 IPv6 fd42:b5e7:7a42:2::2@node-2:R 8080"]);

    await client.delete(Resources.services, "web", { namespace: "default" });
    await eventually("web", []);
  });

  it("moves a pod between Services when its labels change, and leaves slices it does not manage alone", async () => {
    await createService("web", {});
    await createService("api", {});
    await createPod("p", "web", { node: "node-1", ips: ["10.42.1.2"], ready: true });
    await client.create<Obj>(Resources.endpointSlices, {
      metadata: { name: "web-manual", namespace: "default", labels: { "kubernetes.io/service-name": "web" } },
      addressType: "IPv4", endpoints: [{ addresses: ["192.0.2.1"] }], ports: [],
    });
    standIn = new EndpointsStandIn({ client });
    await standIn.start();
    await eventually("web", ["web-manual IPv4 192.0.2.1@undefined:- ", "web-sandbox IPv4 10.42.1.2@node-1:R 8080"]);

    await client.patch(Resources.pods, "p", "merge", { metadata: { labels: { app: "api" } } }, { namespace: "default" });
    await eventually("api", ["api-sandbox IPv4 10.42.1.2@node-1:R 8080"]);
    await eventually("web", ["web-manual IPv4 192.0.2.1@undefined:- ", "web-sandbox IPv4  "]);
  });
});
