import { strict as assert } from "node:assert";

import { desiredEndpointSlices, type Pod, type Service } from "../../../src/sandbox/cluster/endpoints.js";

const service = (spec: Record<string, unknown>, name = "web"): Service =>
  ({ metadata: { name, namespace: "default", uid: "svc-uid" }, spec: { selector: { app: "web" }, ipFamilies: ["IPv4"], ...spec } }) as Service;

interface PodSpec {
  name: string;
  ips?: string[];
  node?: string;
  ready?: boolean;
  labels?: Record<string, string>;
  namespace?: string;
  phase?: string;
  deleting?: boolean;
  ports?: { name: string; containerPort: number; protocol?: string }[];
}

const pod = (p: PodSpec): Pod =>
  ({
    metadata: {
      name: p.name, namespace: p.namespace ?? "default", uid: `uid-${p.name}`, labels: p.labels ?? { app: "web" },
      ...(p.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
    },
    spec: { nodeName: p.node ?? "node-1", containers: [{ name: "app", ports: p.ports ?? [{ name: "http", containerPort: 8080 }] }] },
    status: {
      phase: p.phase ?? "Running",
      podIPs: (p.ips ?? ["10.42.1.2"]).map((ip) => ({ ip })),
      conditions: [{ type: "Ready", status: p.ready === false ? "False" : "True" }],
    },
  }) as Pod;

/** A slice boiled down to what the assertions care about. */
const summary = (svc: Service, pods: Pod[]) =>
  desiredEndpointSlices(svc, pods).map((s) => ({
    name: s.metadata?.name,
    addressType: s.addressType,
    ports: s.ports?.map((p) => `${p.name}:${p.port}/${p.protocol}`),
    endpoints: (s.endpoints ?? []).map((e) => {
      const c = e.conditions ?? {};
      return `${e.addresses.join(",")}@${e.nodeName} ${c.ready ? "R" : "-"}${c.serving ? "S" : "-"}${c.terminating ? "T" : "-"}`;
    }),
  }));

describe("sandbox EndpointSlice stand-in: desired slices", () => {
  it("lists the selected pods' IPs with node and Ready/serving conditions, resolving named and numeric targetPorts", () => {
    const svc = service({ ports: [{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }, { name: "raw", port: 81, targetPort: 9090 }, { name: "same", port: 82 }] });
    const slices = desiredEndpointSlices(svc, [pod({ name: "b", ips: ["10.42.2.2"], node: "node-2", ready: false }), pod({ name: "a" })]);
    assert.equal(slices.length, 1);
    const [slice] = slices;
    assert.deepEqual(slice?.metadata?.labels, { "kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "berth-sandbox" });
    assert.deepEqual(slice?.metadata?.ownerReferences, [{ apiVersion: "v1", kind: "Service", name: "web", uid: "svc-uid", controller: true, blockOwnerDeletion: true }]);
    assert.deepEqual(slice?.endpoints?.[0]?.targetRef, { kind: "Pod", namespace: "default", name: "a", uid: "uid-a" });
    assert.deepEqual(summary(svc, [pod({ name: "b", ips: ["10.42.2.2"], node: "node-2", ready: false }), pod({ name: "a" })]), [
      {
        name: "web-sandbox", addressType: "IPv4", ports: ["http:8080/TCP", "raw:9090/TCP", "same:82/TCP"],
        endpoints: ["10.42.1.2@node-1 RS-", "10.42.2.2@node-2 ---"],
      },
    ]);
  });

  it("makes one slice per address family of a dual-stack Service, each with that family's pod IPs only", () => {
    const svc = service({ ipFamilies: ["IPv6", "IPv4"], ports: [{ port: 80, targetPort: 8080, protocol: "UDP" }] });
    assert.deepEqual(summary(svc, [pod({ name: "a", ips: ["10.42.1.2", "fd42:b5e7:7a42:1::2"] }), pod({ name: "v4only", ips: ["10.42.1.3"] })]), [
      { name: "web-sandbox-ipv6", addressType: "IPv6", ports: [":8080/UDP"], endpoints: ["fd42:b5e7:7a42:1::2@node-1 RS-"] },
      { name: "web-sandbox", addressType: "IPv4", ports: [":8080/UDP"], endpoints: ["10.42.1.2@node-1 RS-", "10.42.1.3@node-1 RS-"] },
    ]);
  });

  it("marks terminating pods not ready but still serving while Ready, and leaves out finished, unscheduled and unselected pods", () => {
    const svc = service({ ports: [{ port: 80, targetPort: 8080 }] });
    const pods = [
      pod({ name: "leaving", ips: ["10.42.1.2"], deleting: true }),
      pod({ name: "leaving-unready", ips: ["10.42.1.3"], deleting: true, ready: false }),
      pod({ name: "done", ips: ["10.42.1.4"], phase: "Succeeded" }),
      pod({ name: "other-app", ips: ["10.42.1.5"], labels: { app: "other" } }),
      pod({ name: "other-ns", ips: ["10.42.1.6"], namespace: "elsewhere" }),
      { ...pod({ name: "unscheduled", ips: ["10.42.1.7"] }), spec: { containers: [] } } as Pod,
    ];
    assert.deepEqual(summary(svc, pods)[0]?.endpoints, ["10.42.1.2@node-1 -ST", "10.42.1.3@node-1 --T"]);
  });

  it("publishes not-ready pods as ready when publishNotReadyAddresses is set", () => {
    const svc = service({ publishNotReadyAddresses: true, ports: [{ port: 80 }] });
    assert.deepEqual(summary(svc, [pod({ name: "a", ready: false })])[0]?.endpoints, ["10.42.1.2@node-1 RS-"]);
  });

  it("splits pods whose named port resolves to different numbers into separate slices, and drops a port a pod lacks", () => {
    const svc = service({ ports: [{ name: "http", port: 80, targetPort: "http" }, { name: "fixed", port: 81, targetPort: 7000 }] });
    const pods = [
      pod({ name: "a", ips: ["10.42.1.2"], ports: [{ name: "http", containerPort: 8080 }] }),
      pod({ name: "b", ips: ["10.42.1.3"], ports: [{ name: "http", containerPort: 9090 }] }),
      pod({ name: "c", ips: ["10.42.1.4"], ports: [{ name: "http", containerPort: 8080, protocol: "UDP" }] }),
    ];
    assert.deepEqual(summary(svc, pods), [
      { name: "web-sandbox", addressType: "IPv4", ports: ["fixed:7000/TCP"], endpoints: ["10.42.1.4@node-1 RS-"] },
      { name: "web-sandbox-2", addressType: "IPv4", ports: ["http:8080/TCP", "fixed:7000/TCP"], endpoints: ["10.42.1.2@node-1 RS-"] },
      { name: "web-sandbox-3", addressType: "IPv4", ports: ["http:9090/TCP", "fixed:7000/TCP"], endpoints: ["10.42.1.3@node-1 RS-"] },
    ]);
  });

  it("keeps an empty placeholder slice per family when nothing matches, and none for Services without a selector", () => {
    assert.deepEqual(summary(service({ ports: [{ port: 80 }] }), []), [{ name: "web-sandbox", addressType: "IPv4", ports: [], endpoints: [] }]);
    assert.deepEqual(desiredEndpointSlices(service({ selector: undefined, ports: [{ port: 80 }] }), [pod({ name: "a" })]), []);
    assert.deepEqual(desiredEndpointSlices(service({ type: "ExternalName", externalName: "example.org" }), [pod({ name: "a" })]), []);
  });
});
