import { strict as assert } from "node:assert";

import type { EndpointSlice, Pod, Service } from "../../../src/sandbox/cluster/endpoints.js";
import { missingJumps, planProxyRules, presentChains, renderRestore, staleUdpFlows, type ProxyRulesInput } from "../../../src/sandbox/cluster/proxy-rules.js";

const svc = (name: string, spec: Record<string, unknown>, ingress: Record<string, unknown>[] = []): Service =>
  ({
    metadata: { name, namespace: "default" },
    spec: { type: "LoadBalancer", clusterIPs: ["10.43.0.10", "fd00:43::10"], ports: [{ name: "http", port: 80, nodePort: 30080, protocol: "TCP" }], ...spec },
    status: { loadBalancer: { ingress } },
  }) as Service;

const slice = (service: string, addressType: "IPv4" | "IPv6", endpoints: { ip: string; node: string; ready?: boolean }[], port = 8080, portName = "http"): EndpointSlice =>
  ({
    metadata: { name: `${service}-${addressType}`, namespace: "default", labels: { "kubernetes.io/service-name": service } },
    addressType,
    ports: [{ name: portName, port, protocol: "TCP" }],
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], nodeName: e.node, conditions: e.ready === undefined ? {} : { ready: e.ready } })),
  }) as EndpointSlice;

const input = (o: Partial<ProxyRulesInput>): ProxyRulesInput => ({
  family: "ipv4", nodeName: "node-1", nodeIps: ["198.18.0.11"], clusterCidr: "10.42.0.0/16",
  services: [], endpointSlices: [], pods: [], captureLoadBalancerIps: true, ...o,
});

/** The nat rules with chain hashes replaced by the chain kind, for readable expectations. */
const nat = (i: ProxyRulesInput): string[] => planProxyRules(i).nat.rules.slice(7).map(readable);
const readable = (rule: string): string => rule.replace(/BSB-(SVC|SEP|EXT|FW|SVL|HP)-[A-Z2-7]{16}/g, "$1");

describe("sandbox kube-proxy stand-in rules", () => {
  it("spreads a ClusterIP over ready endpoints at random, masquerades hairpin and off-cluster traffic, skips not-ready ones", () => {
    const rules = nat(input({
      services: [svc("web", { type: "ClusterIP", ports: [{ name: "http", port: 80, protocol: "TCP" }] })],
      endpointSlices: [slice("web", "IPv4", [{ ip: "10.42.2.2", node: "node-2" }, { ip: "10.42.1.2", node: "node-1", ready: true }, { ip: "10.42.1.3", node: "node-1", ready: false }, { ip: "10.42.3.2", node: "node-3" }])],
    }));
    assert.deepEqual(rules, [
      '-A BSB-SERVICES ! -s 10.42.0.0/16 -d 10.43.0.10/32 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http cluster IP" -j BSB-MARK-MASQ',
      '-A BSB-SERVICES -d 10.43.0.10/32 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http cluster IP" -j SVC',
      '-A BSB-SERVICES -d 198.18.0.11/32 -m comment --comment "node IP: NodePorts" -j BSB-NODEPORTS',
      '-A SVC -m comment --comment "default/web:http -> 10.42.1.2:8080" -m statistic --mode random --probability 0.3333333333 -j SEP',
      "-A SEP -s 10.42.1.2/32 -j BSB-MARK-MASQ",
      "-A SEP -p tcp -m tcp -j DNAT --to-destination 10.42.1.2:8080",
      '-A SVC -m comment --comment "default/web:http -> 10.42.2.2:8080" -m statistic --mode random --probability 0.5000000000 -j SEP',
      "-A SEP -s 10.42.2.2/32 -j BSB-MARK-MASQ",
      "-A SEP -p tcp -m tcp -j DNAT --to-destination 10.42.2.2:8080",
      '-A SVC -m comment --comment "default/web:http -> 10.42.3.2:8080" -j SEP',
      "-A SEP -s 10.42.3.2/32 -j BSB-MARK-MASQ",
      "-A SEP -p tcp -m tcp -j DNAT --to-destination 10.42.3.2:8080",
    ]);
  });

  it("writes IPv6 rules from IPv6 slices only, with bracketed DNAT targets", () => {
    const rules = nat(input({
      family: "ipv6", nodeIps: ["fd42:b5e7:7a00::b"], clusterCidr: "fd42:b5e7:7a42::/48",
      services: [svc("web", { type: "ClusterIP", ports: [{ name: "http", port: 80, protocol: "TCP" }] })],
      endpointSlices: [slice("web", "IPv4", [{ ip: "10.42.1.2", node: "node-1" }]), slice("web", "IPv6", [{ ip: "fd42:b5e7:7a42:1::2", node: "node-1" }])],
    }));
    assert.ok(rules.includes("-A SEP -p tcp -m tcp -j DNAT --to-destination [fd42:b5e7:7a42:1::2]:8080"), rules.join("\n"));
    assert.ok(rules.some((r) => r.includes("-d fd00:43::10/128")), rules.join("\n"));
    assert.ok(!rules.some((r) => r.includes("10.42.1.2")), rules.join("\n"));
  });

  it("rejects traffic to a ClusterIP, NodePort and captured LB IP with no ready endpoints, in the filter table", () => {
    const plan = planProxyRules(input({
      services: [svc("web", {}, [{ ip: "198.18.0.11" }])],
      endpointSlices: [slice("web", "IPv4", [{ ip: "10.42.1.2", node: "node-1", ready: false }])],
    }));
    assert.deepEqual(plan.filter.rules.slice(1), [
      '-A BSB-SERVICES -d 10.43.0.10/32 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http has no endpoints" -j REJECT',
      '-A BSB-SERVICES -d 198.18.0.11/32 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http has no endpoints" -j REJECT',
      '-A BSB-SERVICES -d 198.18.0.11/32 -p tcp -m tcp --dport 30080 -m comment --comment "default/web:http has no endpoints" -j REJECT',
    ]);
    assert.deepEqual(plan.nat.chains.filter((c) => /-[A-Z2-7]{16}$/.test(c)), []);
  });

  it("Cluster policy masquerades NodePort and LB traffic to every endpoint; Local keeps the source and uses local endpoints only", () => {
    const endpointSlices = [slice("web", "IPv4", [{ ip: "10.42.1.2", node: "node-1" }, { ip: "10.42.2.2", node: "node-2" }])];
    const cluster = nat(input({ services: [svc("web", {}, [{ ip: "198.18.0.11" }])], endpointSlices }));
    assert.deepEqual(cluster.filter((r) => r.startsWith("-A EXT") || r.startsWith("-A BSB-NODEPORTS") || r.includes("loadbalancer")), [
      '-A BSB-SERVICES -d 198.18.0.11/32 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http loadbalancer IP" -j EXT',
      '-A BSB-NODEPORTS -p tcp -m tcp --dport 30080 -m comment --comment "default/web:http nodePort" -j EXT',
      '-A EXT -m comment --comment "default/web:http masquerade traffic for external destinations" -j BSB-MARK-MASQ',
      "-A EXT -j SVC",
    ]);

    const local = nat(input({ services: [svc("web", { externalTrafficPolicy: "Local" }, [{ ip: "198.18.0.11" }])], endpointSlices }));
    assert.deepEqual(local.filter((r) => r.startsWith("-A EXT") || r.startsWith("-A SVL")), [
      '-A EXT -s 10.42.0.0/16 -m comment --comment "default/web:http pod traffic for external destinations" -j SVC',
      '-A EXT -m addrtype --src-type LOCAL -m comment --comment "default/web:http masquerade LOCAL traffic" -j BSB-MARK-MASQ',
      '-A EXT -m addrtype --src-type LOCAL -m comment --comment "default/web:http route LOCAL traffic to cluster endpoints" -j SVC',
      "-A EXT -j SVL",
      '-A SVL -m comment --comment "default/web:http -> 10.42.1.2:8080" -j SEP',
    ]);

    const noLocal = nat(input({ nodeName: "node-3", services: [svc("web", { externalTrafficPolicy: "Local" })], endpointSlices }));
    assert.deepEqual(noLocal.filter((r) => r.startsWith("-A SVL")), ['-A SVL -m comment --comment "default/web:http has no local endpoints" -j BSB-MARK-DROP']);
  });

  it("captures only VIP-mode ingress IPs of the family, and none when capture is off", () => {
    const endpointSlices = [slice("web", "IPv4", [{ ip: "10.42.1.2", node: "node-1" }])];
    const ingress = [{ ip: "198.18.0.11" }, { ip: "198.18.0.12", ipMode: "VIP" }, { ip: "198.18.0.13", ipMode: "Proxy" }, { ip: "fd42:b5e7:7a00::b" }, { hostname: "lb.example" }];
    const lbTargets = (i: ProxyRulesInput): string[] => nat(i).filter((r) => r.includes("loadbalancer IP")).map((r) => r.split(" ")[3] ?? "");
    assert.deepEqual(lbTargets(input({ services: [svc("web", {}, ingress)], endpointSlices })), ["198.18.0.11/32", "198.18.0.12/32"]);
    assert.deepEqual(lbTargets(input({ services: [svc("web", {}, ingress)], endpointSlices, captureLoadBalancerIps: false })), []);
  });

  it("lets only the source ranges of the family and the LB IP itself through a FW chain, and marks the rest for drop", () => {
    const endpointSlices = [slice("web", "IPv4", [{ ip: "10.42.1.2", node: "node-1" }])];
    const fw = (ranges: string[]): string[] =>
      nat(input({ services: [svc("web", { loadBalancerSourceRanges: ranges }, [{ ip: "198.18.0.11" }])], endpointSlices })).filter((r) => r.startsWith("-A FW")).map((r) => r.replace(/ -m comment --comment "[^"]*"/, ""));
    assert.deepEqual(fw(["192.0.2.7/24", "2001:db8::/32", " 198.51.100.1 "]), [
      "-A FW -s 192.0.2.0/24 -j EXT",
      "-A FW -s 198.51.100.1/32 -j EXT",
      "-A FW -s 198.18.0.11/32 -j EXT",
      "-A FW -j BSB-MARK-DROP",
    ]);
    // Ranges of the other family only: every IPv4 client is dropped (the LB IP itself still passes).
    assert.deepEqual(fw(["2001:db8::/32"]), ["-A FW -s 198.18.0.11/32 -j EXT", "-A FW -j BSB-MARK-DROP"]);
    assert.deepEqual(fw([]), []);
  });
});

describe("sandbox portmap stand-in rules", () => {
  const pod = (name: string, node: string, ips: string[], ports: { containerPort: number; hostPort?: number; hostIP?: string; protocol?: string }[]): Pod =>
    ({ metadata: { name, namespace: "ns", uid: `uid-${name}` }, spec: { nodeName: node, containers: [{ name: "c", ports }] }, status: { podIPs: ips.map((ip) => ({ ip })) } }) as Pod;

  it("DNATs hostPorts of this node's pods to podIP:containerPort (hostIP honoured), with hairpin masquerade", () => {
    const pods = [
      pod("lb", "node-1", ["10.42.1.5", "fd42:b5e7:7a42:1::5"], [{ containerPort: 80, hostPort: 8000, protocol: "UDP" }, { containerPort: 81 }, { containerPort: 82, hostPort: 82, hostIP: "198.18.0.11" }]),
      pod("elsewhere", "node-2", ["10.42.2.5"], [{ containerPort: 80, hostPort: 80 }]),
    ];
    const hostPortRules = (family: "ipv4" | "ipv6"): string[] => nat(input({ family, pods })).filter((r) => /^-A (BSB-HOSTPORTS|HP) /.test(r));
    assert.deepEqual(hostPortRules("ipv4"), [
      '-A BSB-HOSTPORTS -p udp -m udp --dport 8000 -m comment --comment "ns/lb hostPort 8000/udp" -j HP',
      "-A HP -s 10.42.1.5/32 -j BSB-HOSTPORT-SETMARK",
      "-A HP -p udp -m udp -j DNAT --to-destination 10.42.1.5:80",
      '-A BSB-HOSTPORTS -d 198.18.0.11/32 -p tcp -m tcp --dport 82 -m comment --comment "ns/lb hostPort 82/tcp" -j HP',
      "-A HP -s 10.42.1.5/32 -j BSB-HOSTPORT-SETMARK",
      "-A HP -p tcp -m tcp -j DNAT --to-destination 10.42.1.5:82",
    ]);
    assert.deepEqual(hostPortRules("ipv6"), [
      '-A BSB-HOSTPORTS -p udp -m udp --dport 8000 -m comment --comment "ns/lb hostPort 8000/udp" -j HP',
      "-A HP -s fd42:b5e7:7a42:1::5/128 -j BSB-HOSTPORT-SETMARK",
      "-A HP -p udp -m udp -j DNAT --to-destination [fd42:b5e7:7a42:1::5]:80",
    ]);
  });
});

describe("sandbox proxy restore text", () => {
  it("declares every chain, deletes stale ones after the rules that referred to them are gone, and adds only missing jumps", () => {
    const plan = planProxyRules(input({}));
    const saved = [
      "*nat", ":PREROUTING ACCEPT [0:0]", ":BSB-SERVICES - [0:0]", ":BSB-SVC-OLD0000000000000 - [0:0]",
      "-A PREROUTING -j BSB-SERVICES", "-A OUTPUT -j BSB-SERVICES", "-A PREROUTING -m addrtype --dst-type LOCAL -j BSB-HOSTPORTS", "COMMIT",
      "*filter", ":INPUT ACCEPT [0:0]", "-A INPUT -m conntrack --ctstate NEW -j BSB-SERVICES", "COMMIT",
    ].join("\n");
    const jumps = missingJumps(saved);
    assert.deepEqual(jumps, {
      nat: ["-A OUTPUT -m addrtype --dst-type LOCAL -j BSB-HOSTPORTS", "-A POSTROUTING -j BSB-POSTROUTING"],
      filter: [
        "-A FORWARD -m conntrack --ctstate NEW -j BSB-SERVICES", "-A OUTPUT -m conntrack --ctstate NEW -j BSB-SERVICES",
        "-A INPUT -j BSB-FIREWALL", "-A FORWARD -j BSB-FIREWALL", "-A OUTPUT -j BSB-FIREWALL",
      ],
    });
    const text = renderRestore(plan, { staleChains: presentChains(saved), missingJumps: jumps }).split("\n");
    const natPart = text.slice(0, text.indexOf("COMMIT"));
    assert.equal(natPart[0], "*nat");
    assert.ok(natPart.includes(":BSB-SVC-OLD0000000000000 - [0:0]"));
    assert.equal(natPart.filter((l) => l.startsWith(":")).length, plan.nat.chains.length + 1);
    assert.ok(natPart.indexOf("-X BSB-SVC-OLD0000000000000") > natPart.lastIndexOf(plan.nat.rules.at(-1) ?? ""));
    assert.deepEqual(natPart.slice(-2), jumps.nat);
    assert.ok(!natPart.includes("-X BSB-SERVICES"));
  });

  it("is the same text whatever order the objects arrive in", () => {
    const services = [svc("a", {}, [{ ip: "198.18.0.11" }]), svc("b", { ports: [{ name: "x", port: 81, nodePort: 30081, protocol: "UDP" }] })];
    const endpointSlices = [slice("a", "IPv4", [{ ip: "10.42.1.2", node: "node-1" }, { ip: "10.42.2.2", node: "node-2" }]), slice("b", "IPv4", [{ ip: "10.42.1.3", node: "node-1" }], 53, "x")];
    const forward = planProxyRules(input({ services, endpointSlices }));
    const backward = planProxyRules(input({ services: [...services].reverse(), endpointSlices: [...endpointSlices].reverse() }));
    assert.deepEqual(backward, forward);
  });
});

describe("sandbox proxy stale UDP flows (kube-proxy's conntrack cleanup)", () => {
  const udpService = svc("dns", { ports: [{ name: "dns", port: 53, nodePort: 30053, protocol: "UDP" }] }, [{ ip: "198.18.0.11" }]);
  const udpSlice = (ips: string[]): EndpointSlice =>
    ({ ...slice("dns", "IPv4", ips.map((ip) => ({ ip, node: "node-1" }))), ports: [{ name: "dns", port: 5353, protocol: "UDP" }] }) as EndpointSlice;
  const entries = (ips: string[]) => planProxyRules(input({ services: [udpService], endpointSlices: ips.length ? [udpSlice(ips)] : [] })).udp;

  it("lists every UDP way in (ClusterIP, LB IP, NodePort on each node IP) with its endpoints", () => {
    assert.deepEqual(entries(["10.42.1.2"]), [
      { ip: "10.43.0.10", port: 53, endpoints: ["10.42.1.2"] },
      { ip: "198.18.0.11", port: 53, endpoints: ["10.42.1.2"] },
      { ip: "198.18.0.11", port: 30053, endpoints: ["10.42.1.2"] },
    ]);
  });

  it("clears flows to a removed endpoint, all flows of a way in that gains endpoints, and flows of one that loses them all", () => {
    assert.deepEqual(staleUdpFlows(entries(["10.42.1.2", "10.42.1.3"]), entries(["10.42.1.3"])), [
      { origDst: "10.43.0.10", port: 53, dstNat: "10.42.1.2" },
      { origDst: "198.18.0.11", port: 53, dstNat: "10.42.1.2" },
      { origDst: "198.18.0.11", port: 30053, dstNat: "10.42.1.2" },
    ]);
    assert.deepEqual(staleUdpFlows(entries([]), entries(["10.42.1.2"])), [
      { origDst: "10.43.0.10", port: 53 },
      { origDst: "198.18.0.11", port: 53 },
      { origDst: "198.18.0.11", port: 30053 },
    ]);
    assert.deepEqual(staleUdpFlows(entries(["10.42.1.2"]), entries([])).map((f) => f.dstNat), ["10.42.1.2", "10.42.1.2", "10.42.1.2"]);
    assert.deepEqual(staleUdpFlows(entries(["10.42.1.2"]), entries(["10.42.1.2", "10.42.1.3"])), []);
  });
});
