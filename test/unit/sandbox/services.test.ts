import { strict as assert } from "node:assert";

import { ServiceAllocator } from "../../../src/sandbox/apiserver/services.js";
import { ApiError, type KubeObject } from "../../../src/sandbox/apiserver/types.js";
import { apiError } from "../../support/api-error.js";

const svc = (spec: Record<string, unknown>, name = "web"): KubeObject => ({
  apiVersion: "v1", kind: "Service", metadata: { name, namespace: "default" }, spec,
});
const dual = () => new ServiceAllocator({ serviceCidrs: { ipv4: "10.43.0.0/16", ipv6: "fd00:43::/112" } });
const v4only = () => new ServiceAllocator({ serviceCidrs: { ipv4: "10.43.0.0/16" } });


const causes = (error: ApiError) => (error.details?.causes ?? []).map((c) => `${c.field}: ${c.message}`);

describe("sandbox Service defaults and allocation (kube-apiserver 1.32 behaviour)", () => {
  const created: { name: string; allocator: () => ServiceAllocator; spec: Record<string, unknown>; want: Record<string, unknown> }[] = [
    {
      name: "fills ClusterIP defaults: type, sessionAffinity, protocol, targetPort, single-stack primary family",
      allocator: dual,
      spec: { selector: { app: "web" }, ports: [{ port: 80 }] },
      want: {
        selector: { app: "web" }, type: "ClusterIP", sessionAffinity: "None", internalTrafficPolicy: "Cluster",
        ports: [{ port: 80, protocol: "TCP", targetPort: 80 }],
        ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"], clusterIP: "10.43.1.1", clusterIPs: ["10.43.1.1"],
      },
    },
    {
      name: "allocates NodePorts above the static band and defaults LoadBalancer fields",
      allocator: v4only,
      spec: { type: "LoadBalancer", ports: [{ name: "http", port: 80, targetPort: "web" }, { name: "dns", port: 53, protocol: "UDP" }] },
      want: {
        type: "LoadBalancer", sessionAffinity: "None", internalTrafficPolicy: "Cluster", externalTrafficPolicy: "Cluster",
        allocateLoadBalancerNodePorts: true,
        ports: [
          { name: "http", port: 80, protocol: "TCP", targetPort: "web", nodePort: 30086 },
          { name: "dns", port: 53, protocol: "UDP", targetPort: 53, nodePort: 30087 },
        ],
        ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"], clusterIP: "10.43.1.1", clusterIPs: ["10.43.1.1"],
      },
    },
    {
      name: "gives TCP and UDP on the same port one shared NodePort, as kube does",
      allocator: v4only,
      spec: { type: "NodePort", ports: [{ name: "a", port: 53, protocol: "TCP" }, { name: "b", port: 53, protocol: "UDP" }] },
      want: {
        type: "NodePort", sessionAffinity: "None", internalTrafficPolicy: "Cluster", externalTrafficPolicy: "Cluster",
        ports: [
          { name: "a", port: 53, protocol: "TCP", targetPort: 53, nodePort: 30086 },
          { name: "b", port: 53, protocol: "UDP", targetPort: 53, nodePort: 30086 },
        ],
        ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"], clusterIP: "10.43.1.1", clusterIPs: ["10.43.1.1"],
      },
    },
    {
      name: "allocates a healthCheckNodePort for LoadBalancer with externalTrafficPolicy Local",
      allocator: v4only,
      spec: { type: "LoadBalancer", externalTrafficPolicy: "Local", ports: [{ port: 443, nodePort: 30443 }] },
      want: {
        type: "LoadBalancer", sessionAffinity: "None", internalTrafficPolicy: "Cluster", externalTrafficPolicy: "Local",
        allocateLoadBalancerNodePorts: true, healthCheckNodePort: 30086,
        ports: [{ port: 443, protocol: "TCP", targetPort: 443, nodePort: 30443 }],
        ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"], clusterIP: "10.43.1.1", clusterIPs: ["10.43.1.1"],
      },
    },
    {
      name: "skips NodePorts when allocateLoadBalancerNodePorts is false but keeps requested ones",
      allocator: v4only,
      spec: { type: "LoadBalancer", allocateLoadBalancerNodePorts: false, ports: [{ name: "a", port: 80 }, { name: "b", port: 81, nodePort: 31000 }] },
      want: {
        type: "LoadBalancer", sessionAffinity: "None", internalTrafficPolicy: "Cluster", externalTrafficPolicy: "Cluster",
        allocateLoadBalancerNodePorts: false,
        ports: [{ name: "a", port: 80, protocol: "TCP", targetPort: 80 }, { name: "b", port: 81, protocol: "TCP", targetPort: 81, nodePort: 31000 }],
        ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"], clusterIP: "10.43.1.1", clusterIPs: ["10.43.1.1"],
      },
    },
    {
      name: "gives PreferDualStack both families on a dual-stack server, primary first",
      allocator: dual,
      spec: { ipFamilyPolicy: "PreferDualStack", ports: [{ port: 80 }] },
      want: {
        type: "ClusterIP", sessionAffinity: "None", internalTrafficPolicy: "Cluster",
        ports: [{ port: 80, protocol: "TCP", targetPort: 80 }],
        ipFamilyPolicy: "PreferDualStack", ipFamilies: ["IPv4", "IPv6"], clusterIP: "10.43.1.1", clusterIPs: ["10.43.1.1", "fd00:43::101"],
      },
    },
    {
      name: "gives PreferDualStack one family on a single-stack server",
      allocator: v4only,
      spec: { ipFamilyPolicy: "PreferDualStack", ports: [{ port: 80 }] },
      want: {
        type: "ClusterIP", sessionAffinity: "None", internalTrafficPolicy: "Cluster",
        ports: [{ port: 80, protocol: "TCP", targetPort: 80 }],
        ipFamilyPolicy: "PreferDualStack", ipFamilies: ["IPv4"], clusterIP: "10.43.1.1", clusterIPs: ["10.43.1.1"],
      },
    },
    {
      name: "honours a requested secondary-first family order (IPv6 primary for this Service)",
      allocator: dual,
      spec: { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv6"], ports: [{ port: 80 }] },
      want: {
        type: "ClusterIP", sessionAffinity: "None", internalTrafficPolicy: "Cluster",
        ports: [{ port: 80, protocol: "TCP", targetPort: 80 }],
        ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv6", "IPv4"], clusterIP: "fd00:43::101", clusterIPs: ["fd00:43::101", "10.43.1.1"],
      },
    },
    {
      name: "reserves a requested ClusterIP as written and infers its family",
      allocator: dual,
      spec: { clusterIP: "fd00:43:0::a", ports: [{ port: 80 }] },
      want: {
        type: "ClusterIP", sessionAffinity: "None", internalTrafficPolicy: "Cluster",
        ports: [{ port: 80, protocol: "TCP", targetPort: 80 }],
        ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"], clusterIP: "fd00:43:0::a", clusterIPs: ["fd00:43:0::a"],
      },
    },
    {
      name: "makes a headless selectorless Service RequireDualStack with no IPs allocated",
      allocator: dual,
      spec: { clusterIP: "None" },
      want: {
        type: "ClusterIP", sessionAffinity: "None", internalTrafficPolicy: "Cluster",
        ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"], clusterIP: "None", clusterIPs: ["None"],
      },
    },
    {
      name: "defaults ClientIP affinity's timeout to 10800 seconds",
      allocator: v4only,
      spec: { sessionAffinity: "ClientIP", ports: [{ port: 80 }] },
      want: {
        type: "ClusterIP", sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } },
        internalTrafficPolicy: "Cluster", ports: [{ port: 80, protocol: "TCP", targetPort: 80 }],
        ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"], clusterIP: "10.43.1.1", clusterIPs: ["10.43.1.1"],
      },
    },
    {
      name: "allocates nothing for ExternalName",
      allocator: v4only,
      spec: { type: "ExternalName", externalName: "db.example.com" },
      want: { type: "ExternalName", externalName: "db.example.com", sessionAffinity: "None" },
    },
  ];
  for (const c of created) {
    it(c.name, () => {
      const out = c.allocator().prepareCreate(svc(c.spec));
      assert.deepEqual(out.spec, c.want);
      assert.deepEqual(out.status, { loadBalancer: {} });
    });
  }

  const refused: { name: string; allocator?: () => ServiceAllocator; before?: Record<string, unknown>[]; spec: Record<string, unknown>; code?: number; want: string[] }[] = [
    { name: "refuses port 0", spec: { ports: [{ port: 0 }] }, want: ["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"] },
    {
      name: "refuses the same port and protocol twice",
      spec: { ports: [{ name: "a", port: 80 }, { name: "b", port: 80, protocol: "TCP" }] },
      want: ['spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}'],
    },
    {
      name: "refuses an unknown protocol",
      spec: { ports: [{ port: 80, protocol: "ICMP" }] },
      want: ['spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'],
    },
    { name: "requires port names when there are several ports", spec: { ports: [{ port: 80 }, { name: "b", port: 81 }] }, want: ["spec.ports[0].name: Required value"] },
    {
      name: "refuses a ClusterIP outside the service CIDR",
      spec: { clusterIP: "10.0.0.1", ports: [{ port: 80 }] },
      want: ['spec.clusterIPs: Invalid value: []string{"10.0.0.1"}: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.43.0.0/16'],
    },
    {
      name: "refuses a ClusterIP already in use",
      before: [{ clusterIP: "10.43.0.10", ports: [{ port: 53 }] }],
      spec: { clusterIP: "10.43.0.10", ports: [{ port: 80 }] },
      want: ['spec.clusterIPs: Invalid value: []string{"10.43.0.10"}: failed to allocate IP 10.43.0.10: provided IP is already allocated'],
    },
    {
      name: "refuses an IPv6 ClusterIP already in use under another spelling",
      before: [{ clusterIP: "fd00:43:0::a", ports: [{ port: 53 }] }],
      spec: { clusterIP: "fd00:43::a", ports: [{ port: 80 }] },
      want: ['spec.clusterIPs: Invalid value: []string{"fd00:43::a"}: failed to allocate IP fd00:43::a: provided IP is already allocated'],
    },
    {
      name: "refuses a NodePort already in use",
      before: [{ type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] }],
      spec: { type: "NodePort", ports: [{ port: 81, nodePort: 30080 }] },
      want: ["spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"],
    },
    {
      name: "refuses a NodePort outside the range",
      spec: { type: "NodePort", ports: [{ port: 81, nodePort: 8080 }] },
      want: ["spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"],
    },
    {
      name: "refuses a nodePort on a ClusterIP Service",
      spec: { ports: [{ port: 81, nodePort: 30001 }] },
      want: ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
    },
    {
      name: "refuses loadBalancerClass on a non-LoadBalancer Service",
      spec: { type: "NodePort", loadBalancerClass: "berth.io/lb", ports: [{ port: 80 }] },
      want: ["spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'"],
    },
    {
      name: "refuses RequireDualStack on a single-stack server",
      allocator: v4only,
      spec: { ipFamilyPolicy: "RequireDualStack", ports: [{ port: 80 }] },
      want: ['spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services'],
    },
    {
      name: "refuses a family the server lacks",
      allocator: v4only,
      spec: { ipFamilies: ["IPv6"], ports: [{ port: 80 }] },
      want: ['spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster'],
    },
    {
      name: "refuses two families without a dual-stack policy",
      spec: { ipFamilies: ["IPv4", "IPv6"], ports: [{ port: 80 }] },
      want: ["spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"],
    },
    {
      name: "refuses headless LoadBalancer Services",
      spec: { type: "LoadBalancer", clusterIP: "None", ports: [{ port: 80 }] },
      want: ["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for LoadBalancer services"],
    },
    {
      name: "refuses IP family fields on an ExternalName Service",
      spec: { type: "ExternalName", externalName: "db.example.com", ipFamilies: ["IPv4"], ipFamilyPolicy: "SingleStack" },
      want: ["spec.ipFamilies: Forbidden: may not be set for ExternalName services", "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services"],
    },
    {
      name: "refuses externalTrafficPolicy on a ClusterIP Service",
      spec: { externalTrafficPolicy: "Local", ports: [{ port: 80 }] },
      want: ['spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services'],
    },
    {
      name: "answers 500 when the node port range is exhausted, as kube does",
      allocator: () => new ServiceAllocator({ serviceCidrs: { ipv4: "10.43.0.0/16" }, nodePortRange: [30000, 30001] }),
      before: [{ type: "NodePort", ports: [{ name: "a", port: 80 }, { name: "b", port: 81 }] }],
      spec: { type: "NodePort", ports: [{ port: 82 }] },
      code: 500,
      want: [],
    },
    {
      name: "answers 500 when the service CIDR is exhausted",
      allocator: () => new ServiceAllocator({ serviceCidrs: { ipv4: "10.43.0.0/30" } }),
      before: [{ ports: [{ port: 80 }] }, { ports: [{ port: 80 }] }],
      spec: { ports: [{ port: 80 }] },
      code: 500,
      want: [],
    },
  ];
  for (const c of refused) {
    it(c.name, () => {
      const allocator = (c.allocator ?? dual)();
      c.before?.forEach((spec, i) => allocator.prepareCreate(svc(spec, `before-${i}`)));
      const error = apiError(() => allocator.prepareCreate(svc(c.spec)));
      assert.equal(error.code, c.code ?? 422, error.message);
      assert.deepEqual(causes(error), c.want);
    });
  }

  it("lists the service CIDRs primary family first", () => {
    assert.deepEqual(dual().serviceCidrs, ["10.43.0.0/16", "fd00:43::/112"]);
    assert.deepEqual(new ServiceAllocator({ serviceCidrs: { ipv4: "10.43.0.0/16", ipv6: "fd00:43::/112" }, primaryFamily: "IPv6" }).serviceCidrs,
      ["fd00:43::/112", "10.43.0.0/16"]);
  });

  it("undoes every allocation of a refused create (no leaked ClusterIP or NodePort)", () => {
    const allocator = v4only();
    const before = allocator.capacity();
    allocator.prepareCreate(svc({ type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] }, "a"));
    const afterA = allocator.capacity();
    apiError(() => allocator.prepareCreate(svc({ type: "NodePort", ports: [{ name: "x", port: 1 }, { name: "y", port: 2, nodePort: 30080 }] }, "b")));
    assert.deepEqual(allocator.capacity(), afterA);
    assert.equal(afterA.nodePorts, before.nodePorts - 1);
  });

  it("hands out every address of a small range exactly once, then frees on release", () => {
    const allocator = new ServiceAllocator({ serviceCidrs: { ipv4: "10.43.0.0/28" } });
    const ips = new Set<string>();
    const made: KubeObject[] = [];
    for (let i = 0; i < 14; i++) {
      const out = allocator.prepareCreate(svc({ ports: [{ port: 80 }] }, `s${i}`));
      ips.add((out.spec as { clusterIP: string }).clusterIP);
      made.push(out);
    }
    assert.equal(ips.size, 14);
    assert.ok(!ips.has("10.43.0.0") && !ips.has("10.43.0.15"), "network and broadcast addresses are never handed out");
    assert.equal(apiError(() => allocator.prepareCreate(svc({ ports: [{ port: 80 }] }, "full"))).code, 500);
    allocator.release(made[3] as KubeObject);
    const again = allocator.prepareCreate(svc({ ports: [{ port: 80 }] }, "again"));
    assert.equal((again.spec as { clusterIP: string }).clusterIP, (made[3]?.spec as { clusterIP: string }).clusterIP);
  });

  it("restores allocations of stored Services so they are not handed out twice", () => {
    const first = v4only().prepareCreate(svc({ type: "NodePort", ports: [{ port: 80 }] }, "a"));
    const allocator = v4only();
    allocator.restore(first);
    const second = allocator.prepareCreate(svc({ type: "NodePort", ports: [{ port: 80 }] }, "b"));
    assert.notEqual((second.spec as { clusterIP: string }).clusterIP, (first.spec as { clusterIP: string }).clusterIP);
    assert.notEqual((second.spec as { ports: { nodePort: number }[] }).ports[0]?.nodePort, (first.spec as { ports: { nodePort: number }[] }).ports[0]?.nodePort);
  });
});

describe("sandbox Service updates (immutability, carried-over and released allocations)", () => {
  it("carries clusterIP, nodePorts and healthCheckNodePort over when a PUT leaves them out (kubectl apply)", () => {
    const allocator = v4only();
    const old = allocator.prepareCreate(svc({ type: "LoadBalancer", externalTrafficPolicy: "Local", ports: [{ name: "http", port: 80 }] }));
    const next = allocator.prepareUpdate(old, svc({ type: "LoadBalancer", externalTrafficPolicy: "Local", ports: [{ name: "http", port: 80 }], selector: { app: "x" } }));
    assert.deepEqual(next.spec, { ...(old.spec as object), selector: { app: "x" } });
  });

  it("refuses a changed clusterIP", () => {
    const allocator = v4only();
    const old = allocator.prepareCreate(svc({ ports: [{ port: 80 }] }));
    const error = apiError(() => allocator.prepareUpdate(old, svc({ clusterIP: "10.43.0.99", ports: [{ port: 80 }] })));
    assert.deepEqual(causes(error), ['spec.clusterIPs[0]: Invalid value: []string{"10.43.0.99"}: may not change once set']);
  });

  it("refuses a clusterIP changed alone (an old client's patch), naming clusterIPs[0] as kube does", () => {
    const allocator = v4only();
    const old = allocator.prepareCreate(svc({ ports: [{ port: 80 }] }));
    const error = apiError(() => allocator.prepareUpdate(old, { ...old, spec: { ...(old.spec as object), clusterIP: "10.43.9.9" } }));
    assert.deepEqual(causes(error), ['spec.clusterIPs[0]: Invalid value: []string{"10.43.9.9"}: may not change once set']);
  });

  it("refuses a changed loadBalancerClass on a LoadBalancer Service", () => {
    const allocator = v4only();
    const old = allocator.prepareCreate(svc({ type: "LoadBalancer", loadBalancerClass: "berth.io/lb", ports: [{ port: 80 }] }));
    const error = apiError(() => allocator.prepareUpdate(old, { ...old, spec: { ...(old.spec as object), loadBalancerClass: "other.io/lb" } }));
    assert.deepEqual(causes(error), ['spec.loadBalancerClass: Invalid value: "other.io/lb": field is immutable']);
  });

  it("refuses a changed primary IP family", () => {
    const allocator = dual();
    const old = allocator.prepareCreate(svc({ ports: [{ port: 80 }] }));
    const error = apiError(() => allocator.prepareUpdate(old, { ...old, spec: { ...(old.spec as object), clusterIP: undefined, clusterIPs: undefined, ipFamilies: ["IPv6"] } }));
    assert.ok(causes(error).some((c) => c.startsWith("spec.ipFamilies[0]:") && c.endsWith("may not change once set")), causes(error).join("\n"));
  });

  it("releases NodePorts when the type goes back to ClusterIP, and the freed port can be requested again", () => {
    const allocator = v4only();
    const old = allocator.prepareCreate(svc({ type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] }));
    const next = allocator.prepareUpdate(old, { ...old, spec: { ...(old.spec as object), type: "ClusterIP" } });
    const spec = next.spec as Record<string, unknown> & { ports: Record<string, unknown>[] };
    assert.equal(spec.ports[0]?.nodePort, undefined);
    assert.equal(spec.externalTrafficPolicy, undefined);
    allocator.prepareCreate(svc({ type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] }, "other"));
  });

  it("allocates NodePorts when the type becomes LoadBalancer and wipes the LB fields when it stops being one", () => {
    const allocator = v4only();
    const old = allocator.prepareCreate(svc({ ports: [{ port: 80 }] }));
    const lb = allocator.prepareUpdate(old, { ...old, spec: { ...(old.spec as object), type: "LoadBalancer", loadBalancerClass: "berth.io/lb" } });
    const lbSpec = lb.spec as Record<string, unknown> & { ports: { nodePort?: number }[] };
    assert.equal(lbSpec.ports[0]?.nodePort, 30086);
    assert.equal(lbSpec.allocateLoadBalancerNodePorts, true);
    const withStatus = allocator.prepareStatus(lb, { ...lb, status: { loadBalancer: { ingress: [{ ip: "192.0.2.10" }] } } });
    const back = allocator.prepareUpdate(withStatus, { ...withStatus, spec: { ...(withStatus.spec as object), type: "ClusterIP" } });
    const backSpec = back.spec as Record<string, unknown>;
    assert.equal(backSpec.loadBalancerClass, undefined);
    assert.equal(backSpec.allocateLoadBalancerNodePorts, undefined);
    assert.deepEqual(back.status, { loadBalancer: {} });
  });

  it("upgrades a Service to dual-stack and downgrades it again, releasing the secondary IP", () => {
    const allocator = dual();
    const old = allocator.prepareCreate(svc({ ports: [{ port: 80 }] }));
    const up = allocator.prepareUpdate(old, { ...old, spec: { ...(old.spec as object), ipFamilyPolicy: "RequireDualStack" } });
    const upSpec = up.spec as { clusterIPs: string[]; ipFamilies: string[] };
    assert.deepEqual(upSpec.ipFamilies, ["IPv4", "IPv6"]);
    assert.equal(upSpec.clusterIPs.length, 2);
    const v6Free = allocator.capacity().ipv6;
    const down = allocator.prepareUpdate(up, { ...up, spec: { ...(up.spec as object), ipFamilyPolicy: "SingleStack" } });
    assert.deepEqual((down.spec as { clusterIPs: string[] }).clusterIPs, [upSpec.clusterIPs[0]]);
    assert.equal(allocator.capacity().ipv6, (v6Free ?? 0) + 1);
  });

  it("releases ClusterIPs when a Service becomes ExternalName", () => {
    const allocator = v4only();
    const free = allocator.capacity().ipv4;
    const old = allocator.prepareCreate(svc({ ports: [{ port: 80 }] }));
    const next = allocator.prepareUpdate(old, { ...old, spec: { ...(old.spec as object), type: "ExternalName", externalName: "db.example.com" } });
    const spec = next.spec as Record<string, unknown>;
    assert.equal(spec.clusterIP, undefined);
    assert.equal(spec.ipFamilies, undefined);
    assert.equal(allocator.capacity().ipv4, free);
  });

  it("puts allocations back as they were when a prepared update is abandoned", () => {
    const allocator = v4only();
    const old = allocator.prepareCreate(svc({ type: "NodePort", ports: [{ name: "a", port: 80, nodePort: 30080 }] }));
    const before = allocator.capacity();
    const prepared = allocator.prepareUpdate(old, svc({ type: "NodePort", ports: [{ name: "a", port: 80, nodePort: 30081 }, { name: "b", port: 81 }] }));
    assert.equal(allocator.capacity().nodePorts, before.nodePorts - 1, "30080 freed, 30081 and one more taken");
    allocator.revertUpdate(old, prepared);
    assert.deepEqual(allocator.capacity(), before);
    const error = apiError(() => allocator.prepareCreate(svc({ type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] }, "other")));
    assert.deepEqual(causes(error), ["spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"]);
    allocator.prepareCreate(svc({ type: "NodePort", ports: [{ port: 80, nodePort: 30081 }] }, "third"));
  });

  it("refuses a changed healthCheckNodePort", () => {
    const allocator = v4only();
    const old = allocator.prepareCreate(svc({ type: "LoadBalancer", externalTrafficPolicy: "Local", ports: [{ port: 80 }] }));
    const error = apiError(() => allocator.prepareUpdate(old, { ...old, spec: { ...(old.spec as object), healthCheckNodePort: 31999 } }));
    assert.deepEqual(causes(error), ["spec.healthCheckNodePort: Invalid value: 31999: cannot change healthCheckNodePort on loadBalancer service with externalTraffic=Local during update"]);
  });

  it("keeps status from the stored object on a main-resource update", () => {
    const allocator = v4only();
    const old = allocator.prepareStatus(allocator.prepareCreate(svc({ type: "LoadBalancer", ports: [{ port: 80 }] })),
      { apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: "default" }, status: { loadBalancer: { ingress: [{ ip: "192.0.2.1" }] } } });
    const next = allocator.prepareUpdate(old, { ...old, status: { loadBalancer: {} } });
    assert.deepEqual(next.status, { loadBalancer: { ingress: [{ ip: "192.0.2.1", ipMode: "VIP" }] } });
  });
});

describe("sandbox Service status writes", () => {
  const lb = () => {
    const allocator = v4only();
    return { allocator, old: allocator.prepareCreate(svc({ type: "LoadBalancer", ports: [{ port: 80 }] })) };
  };
  const statusCases: { name: string; ingress: unknown[]; want?: unknown[]; causes?: string[] }[] = [
    { name: "defaults ipMode to VIP where an ip is set", ingress: [{ ip: "192.0.2.10" }, { hostname: "lb.example.com" }], want: [{ ip: "192.0.2.10", ipMode: "VIP" }, { hostname: "lb.example.com" }] },
    { name: "keeps an explicit Proxy ipMode", ingress: [{ ip: "2001:db8::1", ipMode: "Proxy" }], want: [{ ip: "2001:db8::1", ipMode: "Proxy" }] },
    { name: "refuses an invalid ingress ip", ingress: [{ ip: "300.1.1.1" }], causes: ['status.loadBalancer.ingress[0].ip: Invalid value: "300.1.1.1": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'] },
    { name: "refuses an ipMode without an ip", ingress: [{ hostname: "a.example.com", ipMode: "VIP" }], causes: ["status.loadBalancer.ingress[0].ipMode: Forbidden: may not be specified when `ip` is not set"] },
    { name: "refuses an unknown ipMode", ingress: [{ ip: "192.0.2.1", ipMode: "Tunnel" }], causes: ['status.loadBalancer.ingress[0].ipMode: Unsupported value: "Tunnel": supported values: "VIP", "Proxy"'] },
    { name: "refuses an IP address as hostname", ingress: [{ hostname: "192.0.2.1" }], causes: ['status.loadBalancer.ingress[0].hostname: Invalid value: "192.0.2.1": must be a DNS name, not an IP address'] },
  ];
  const conditionCases: { name: string; conditions: unknown[]; causes: string[] }[] = [
    {
      name: "accepts a well-formed condition",
      conditions: [{ type: "berth.io/Allocated", status: "True", reason: "AddressAssigned", message: "192.0.2.10 from lan", lastTransitionTime: "2026-11-24T07:00:00Z" }],
      causes: [],
    },
    {
      name: "refuses a condition without lastTransitionTime or reason, with an unknown status",
      conditions: [{ type: "Ready", status: "Yes" }],
      causes: [
        'status.conditions[0].status: Unsupported value: "Yes": supported values: "False", "True", "Unknown"',
        "status.conditions[0].lastTransitionTime: Required value: must be set",
        "status.conditions[0].reason: Required value: must be set",
      ],
    },
    {
      name: "refuses a reason that is not CamelCase-like and a repeated type",
      conditions: [
        { type: "Ready", status: "True", reason: "Ok", lastTransitionTime: "2026-11-24T07:00:00Z" },
        { type: "Ready", status: "False", reason: "no pool", lastTransitionTime: "2026-11-24T07:00:00Z" },
      ],
      causes: [
        'status.conditions[1].type: Duplicate value: "Ready"',
        "status.conditions[1].reason: Invalid value: \"no pool\": a condition reason must start with alphabetic character, optionally followed by a string of alphanumeric characters or '_,:', and must end with an alphanumeric character or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or 'ReasonA:ReasonB', regex used for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')",
      ],
    },
  ];
  for (const c of conditionCases) {
    it(`conditions: ${c.name}`, () => {
      const { allocator, old } = lb();
      const next = { ...old, status: { loadBalancer: {}, conditions: c.conditions } };
      if (c.causes.length === 0) {
        assert.deepEqual((allocator.prepareStatus(old, next).status as { conditions: unknown }).conditions, c.conditions);
        return;
      }
      assert.deepEqual(causes(apiError(() => allocator.prepareStatus(old, next))), c.causes);
    });
  }

  for (const c of statusCases) {
    it(c.name, () => {
      const { allocator, old } = lb();
      const next = { ...old, spec: { type: "ClusterIP" }, status: { loadBalancer: { ingress: c.ingress } } };
      if (c.causes) {
        assert.deepEqual(causes(apiError(() => allocator.prepareStatus(old, next))), c.causes);
        return;
      }
      const out = allocator.prepareStatus(old, next);
      assert.deepEqual(out.status, { loadBalancer: { ingress: c.want } });
      assert.deepEqual(out.spec, old.spec, "spec is ignored on /status");
    });
  }
});
