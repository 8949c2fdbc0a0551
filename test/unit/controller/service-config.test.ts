import { strict as assert } from "node:assert";

import { ownership, parseServiceConfig } from "../../../src/controller/service-config.js";
import { defaultControllerConfig, type ServiceLbConfig, type V1Service } from "../../../src/controller/types.js";
import { service } from "./fixtures.js";

const config = defaultControllerConfig();

/** What a plain fixture Service parses to; rows override only what they are about. */
const plain: ServiceLbConfig = {
  mode: "hostport",
  ports: [{ protocol: "tcp", port: 80, destinationPort: 80 }],
  externalTrafficPolicy: "Cluster",
  families: ["ipv4"],
  clusterIps: ["10.43.0.10"],
  sourceRanges: [],
  tolerations: [],
  priorityClassName: "system-node-critical",
};

describe("controller: which Services are ours", () => {
  const rows: { name: string; svc: V1Service; claimUnsetClass?: boolean; want: ReturnType<typeof ownership> }[] = [
    { name: "claims a LoadBalancer Service with no class by default", svc: service(), want: { ours: true } },
    { name: "claims a Service with class berth.dev/lb", svc: service({ spec: { loadBalancerClass: "berth.dev/lb" } }), want: { ours: true } },
    {
      name: "claims a Service with class berth.dev/lb even when unset classes are left alone",
      svc: service({ spec: { loadBalancerClass: "berth.dev/lb" } }), claimUnsetClass: false, want: { ours: true },
    },
    {
      name: "leaves a ClusterIP Service alone",
      svc: service({ spec: { type: "ClusterIP" } }),
      want: { ours: false, code: "NotLoadBalancer", reason: "not type LoadBalancer (type is ClusterIP)" },
    },
    {
      name: "treats a Service with no type as ClusterIP (the API default)",
      svc: { metadata: { name: "x", namespace: "default" }, spec: {} },
      want: { ours: false, code: "NotLoadBalancer", reason: "not type LoadBalancer (type is ClusterIP)" },
    },
    {
      name: "never touches a Service of another loadBalancerClass",
      svc: service({ spec: { loadBalancerClass: "metallb.io/metallb" } }),
      want: { ours: false, code: "OtherClass", reason: "loadBalancerClass metallb.io/metallb is not ours (ours is berth.dev/lb)" },
    },
    {
      name: "leaves unset classes alone when told to",
      svc: service(), claimUnsetClass: false,
      want: {
        ours: false, code: "UnsetClassIgnored",
        reason: "no loadBalancerClass and the controller is told to leave unset ones alone (set spec.loadBalancerClass: berth.dev/lb)",
      },
    },
    { name: "claims VIP-mode Services too (they are told VIP mode is unavailable)", svc: service({ annotations: { "berth.dev/mode": "vip" } }), want: { ours: true } },
  ];
  for (const row of rows) {
    it(row.name, () => {
      assert.deepEqual(ownership(row.svc, { claimUnsetClass: row.claimUnsetClass ?? true }), row.want);
    });
  }
});

describe("controller: reading a Service's configuration", () => {
  const accepted: { name: string; svc: V1Service; want: Partial<ServiceLbConfig> }[] = [
    { name: "defaults to hostport mode, Cluster policy, the ClusterIP, every source, the default priority class", svc: service(), want: {} },
    {
      name: "Cluster policy forwards to the Service port; ports sorted by protocol then number",
      svc: service({ spec: { ports: [
        { protocol: "UDP", port: 53, nodePort: 30053 }, { protocol: "TCP", port: 443, nodePort: 30443 },
        { protocol: "TCP", port: 80, nodePort: 30080 }, { protocol: "SCTP", port: 9999, nodePort: 30999 },
      ] } }),
      want: { ports: [
        { protocol: "sctp", port: 9999, destinationPort: 9999 }, { protocol: "tcp", port: 80, destinationPort: 80 },
        { protocol: "tcp", port: 443, destinationPort: 443 }, { protocol: "udp", port: 53, destinationPort: 53 },
      ] },
    },
    {
      name: "Local policy forwards to the node port",
      svc: service({ spec: { externalTrafficPolicy: "Local", ports: [{ protocol: "UDP", port: 53, nodePort: 30053 }] } }),
      want: { externalTrafficPolicy: "Local", ports: [{ protocol: "udp", port: 53, destinationPort: 30053 }] },
    },
    {
      name: "a port with no protocol is TCP (the API default)",
      svc: service({ spec: { ports: [{ port: 8080, nodePort: 30000 }] } }),
      want: { ports: [{ protocol: "tcp", port: 8080, destinationPort: 8080 }] },
    },
    {
      name: "the same port number over TCP and UDP is two ports",
      svc: service({ spec: { ports: [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 53 }] } }),
      want: { ports: [{ protocol: "tcp", port: 53, destinationPort: 53 }, { protocol: "udp", port: 53, destinationPort: 53 }] },
    },
    {
      name: "dual-stack: families and ClusterIPs in spec order, IPv6 canonical",
      svc: service({ spec: { ipFamilies: ["IPv6", "IPv4"], clusterIPs: ["fd00:43:0::a", "10.43.0.10"] } }),
      want: { families: ["ipv6", "ipv4"], clusterIps: ["fd00:43::a", "10.43.0.10"] },
    },
    {
      name: "no ipFamilies (pre-1.20 server): the family of the ClusterIP",
      svc: service({ spec: { ipFamilies: undefined, clusterIPs: undefined, clusterIP: "fd00::10" } }),
      want: { families: ["ipv6"], clusterIps: ["fd00::10"] },
    },
    {
      name: "source ranges from the spec: canonical, host bits cleared, IPv4 first, numerically sorted, deduplicated",
      svc: service({ spec: { loadBalancerSourceRanges: ["fd00::/8", "192.168.1.7/16", "10.0.0.0/8", "9.0.0.0/8", "192.168.0.0/16"] } }),
      want: { sourceRanges: ["9.0.0.0/8", "10.0.0.0/8", "192.168.0.0/16", "fd00::/8"] },
    },
    {
      name: "source ranges from the annotation when the spec field is empty",
      svc: service({ annotations: { "service.beta.kubernetes.io/load-balancer-source-ranges": " 10.0.0.0/8 , 1.2.3.4 ," } }),
      want: { sourceRanges: ["1.2.3.4/32", "10.0.0.0/8"] },
    },
    {
      name: "the spec field wins over the annotation, as in kube-proxy (the annotation is not even validated)",
      svc: service({
        annotations: { "service.beta.kubernetes.io/load-balancer-source-ranges": "garbage" },
        spec: { loadBalancerSourceRanges: ["10.0.0.0/8"] },
      }),
      want: { sourceRanges: ["10.0.0.0/8"] },
    },
    {
      name: "mode is case-insensitive and trimmed",
      svc: service({ annotations: { "berth.dev/mode": " HostPort " } }),
      want: {},
    },
    {
      name: "vip mode reads the pool, requested IPs and sharing key (MetalLB spellings too)",
      svc: service({ annotations: {
        "berth.dev/mode": "vip", "metallb.universe.tf/address-pool": "lan",
        "metallb.io/loadBalancerIPs": "fd00::5, 192.168.1.5", "metallb.io/allow-shared-ip": "key1",
      } }),
      want: { mode: "vip", vip: { pool: "lan", ips: ["192.168.1.5", "fd00::5"], sharingKey: "key1" } },
    },
    {
      name: "vip mode with Local policy needs no node ports (nothing forwards to them)",
      svc: service({ annotations: { "berth.dev/mode": "vip" }, spec: { externalTrafficPolicy: "Local", allocateLoadBalancerNodePorts: false, ports: [{ protocol: "TCP", port: 80 }] } }),
      want: { mode: "vip", externalTrafficPolicy: "Local", vip: { ips: [] } },
    },
    {
      name: "vip mode honours spec.loadBalancerIP",
      svc: service({ annotations: { "berth.dev/mode": "vip" }, spec: { loadBalancerIP: "192.168.1.9" } }),
      want: { mode: "vip", vip: { ips: ["192.168.1.9"] } },
    },
    {
      name: "berth.dev/ips and its MetalLB alias may both be set to the same addresses in any order",
      svc: service({ annotations: { "berth.dev/mode": "vip", "berth.dev/ips": "192.168.1.5,fd00::5", "metallb.io/loadBalancerIPs": "fd00:0::5,192.168.1.5" } }),
      want: { mode: "vip", vip: { ips: ["192.168.1.5", "fd00::5"] } },
    },
    {
      name: "tolerations: normalised (operator defaulted to Equal), sorted, duplicates dropped",
      svc: service({ annotations: { "berth.dev/tolerations": JSON.stringify([
        { key: "zone", value: "b", effect: "NoSchedule" },
        { operator: "Exists" },
        { key: "dedicated", operator: "Exists", effect: "NoExecute", tolerationSeconds: 30 },
        { effect: "NoSchedule", value: "b", key: "zone" },
      ]) } }),
      want: { tolerations: [
        { operator: "Exists" },
        { key: "dedicated", operator: "Exists", effect: "NoExecute", tolerationSeconds: 30 },
        { key: "zone", operator: "Equal", value: "b", effect: "NoSchedule" },
      ] },
    },
    {
      name: "tolerations from the k3s annotation",
      svc: service({ annotations: { "svccontroller.k3s.cattle.io/tolerations": '[{"key":"a","operator":"Exists"}]' } }),
      want: { tolerations: [{ key: "a", operator: "Exists" }] },
    },
    {
      name: "berth and k3s tolerations may both be set when they say the same thing",
      svc: service({ annotations: {
        "berth.dev/tolerations": '[{"key":"a","operator":"Exists"},{"key":"b","operator":"Exists"}]',
        "svccontroller.k3s.cattle.io/tolerations": '[ {"operator":"Exists","key":"b"}, {"key":"a","operator":"Exists"} ]',
      } }),
      want: { tolerations: [{ key: "a", operator: "Exists" }, { key: "b", operator: "Exists" }] },
    },
    {
      name: "priority class from berth.dev/priority-class",
      svc: service({ annotations: { "berth.dev/priority-class": "lb-critical" } }), want: { priorityClassName: "lb-critical" },
    },
    {
      name: "priority class from the k3s annotation",
      svc: service({ annotations: { "svccontroller.k3s.cattle.io/priorityclassname": "lb.high" } }), want: { priorityClassName: "lb.high" },
    },
    {
      name: "an empty priority class annotation means none (the cluster default), as in k3s",
      svc: service({ annotations: { "berth.dev/priority-class": "" } }), want: { priorityClassName: "" },
    },
    { name: "node pool from the berth.dev/pool label", svc: service({ labels: { "berth.dev/pool": "edge" } }), want: { nodePool: "edge" } },
    {
      name: "node pool from the k3s lbpool label; an empty berth label is no pool",
      svc: service({ labels: { "berth.dev/pool": "", "svccontroller.k3s.cattle.io/lbpool": "edge" } }), want: { nodePool: "edge" },
    },
  ];
  for (const row of accepted) {
    it(row.name, () => {
      const result = parseServiceConfig(row.svc, config);
      assert.deepEqual(result, { ok: true, value: { ...plain, ...row.want } });
    });
  }

  const rejected: { name: string; svc: V1Service; problems: { field: string; message: RegExp }[] }[] = [
    {
      name: "rejects an unknown mode",
      svc: service({ annotations: { "berth.dev/mode": "bgp" } }),
      problems: [{ field: "metadata.annotations[berth.dev/mode]", message: /"bgp" is not a mode; use "hostport" \(the default\) or "vip"/ }],
    },
    {
      name: "rejects a Service with no ports",
      svc: service({ spec: { ports: [] } }),
      problems: [{ field: "spec.ports", message: /no ports/ }],
    },
    {
      name: "rejects Local policy without node ports (allocateLoadBalancerNodePorts: false)",
      svc: service({ spec: { externalTrafficPolicy: "Local", allocateLoadBalancerNodePorts: false, ports: [{ protocol: "TCP", port: 80 }] } }),
      problems: [{ field: "spec.ports[0].nodePort", message: /Local needs a node port/ }],
    },
    {
      name: "rejects an unknown protocol and an out-of-range port",
      svc: service({ spec: { ports: [{ protocol: "ICMP", port: 1 }, { protocol: "TCP", port: 70000 }] } }),
      problems: [
        { field: "spec.ports[0].protocol", message: /"ICMP" is not TCP, UDP or SCTP/ },
        { field: "spec.ports[1].port", message: /70000 is not a port number/ },
      ],
    },
    {
      name: "rejects the same protocol and port listed twice",
      svc: service({ spec: { ports: [{ protocol: "TCP", port: 80 }, { protocol: "TCP", port: 80 }] } }),
      problems: [{ field: "spec.ports[1].port", message: /TCP port 80 is listed twice/ }],
    },
    {
      name: "rejects an unknown IP family",
      svc: service({ spec: { ipFamilies: ["IPv5"] } }),
      problems: [{ field: "spec.ipFamilies[0]", message: /"IPv5" is not IPv4 or IPv6/ }],
    },
    {
      name: "rejects a Cluster-policy Service with no ClusterIP",
      svc: service({ spec: { clusterIP: "None", clusterIPs: ["None"] } }),
      problems: [{ field: "spec.clusterIPs", message: /no ClusterIP to forward to/ }],
    },
    {
      name: "rejects a malformed ClusterIP",
      svc: service({ spec: { clusterIPs: ["10.43.0.010"] } }),
      problems: [{ field: "spec.clusterIPs[0]", message: /leading zero/ }],
    },
    {
      name: "rejects a bad source range in the spec, naming its index",
      svc: service({ spec: { loadBalancerSourceRanges: ["10.0.0.0/8", "10.0.0.0/33"] } }),
      problems: [{ field: "spec.loadBalancerSourceRanges[1]", message: /prefix length "33"/ }],
    },
    {
      name: "rejects a bad source range in the annotation",
      svc: service({ annotations: { "service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/8,example.com" } }),
      problems: [{ field: "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]", message: /"example.com" is not a valid CIDR/ }],
    },
    {
      name: "rejects tolerations that are not JSON",
      svc: service({ annotations: { "berth.dev/tolerations": "key=a:NoSchedule" } }),
      problems: [{ field: "metadata.annotations[berth.dev/tolerations]", message: /not valid JSON .*expected a list like/ }],
    },
    {
      name: "rejects tolerations that are not a list",
      svc: service({ annotations: { "berth.dev/tolerations": '{"key":"a"}' } }),
      problems: [{ field: "metadata.annotations[berth.dev/tolerations]", message: /expected a JSON list of tolerations/ }],
    },
    {
      name: "rejects a toleration that is not an object",
      svc: service({ annotations: { "berth.dev/tolerations": '["a"]' } }),
      problems: [{ field: "metadata.annotations[berth.dev/tolerations][0]", message: /expected an object/ }],
    },
    {
      name: "rejects a misspelt toleration field instead of silently tolerating nothing",
      svc: service({ annotations: { "berth.dev/tolerations": '[{"key":"a","opertor":"Exists"}]' } }),
      problems: [{ field: "metadata.annotations[berth.dev/tolerations][0].opertor", message: /unknown field/ }],
    },
    {
      name: "rejects an unknown toleration operator and effect",
      svc: service({ annotations: { "berth.dev/tolerations": '[{"key":"a","operator":"In","effect":"NoRun"}]' } }),
      problems: [
        { field: "metadata.annotations[berth.dev/tolerations][0].operator", message: /"In" is not Exists or Equal/ },
        { field: "metadata.annotations[berth.dev/tolerations][0].effect", message: /"NoRun" is not NoSchedule, PreferNoSchedule or NoExecute/ },
      ],
    },
    {
      name: "rejects an empty toleration key without operator Exists",
      svc: service({ annotations: { "berth.dev/tolerations": '[{"value":"x"}]' } }),
      problems: [{ field: "metadata.annotations[berth.dev/tolerations][0].operator", message: /must be Exists when key is empty/ }],
    },
    {
      name: "rejects a value with operator Exists",
      svc: service({ annotations: { "berth.dev/tolerations": '[{"key":"a","operator":"Exists","value":"x"}]' } }),
      problems: [{ field: "metadata.annotations[berth.dev/tolerations][0].value", message: /must be empty when operator is Exists/ }],
    },
    {
      name: "rejects a toleration key that is not a qualified name",
      svc: service({ annotations: { "berth.dev/tolerations": '[{"key":"bad key!","operator":"Exists"},{"key":"a/b/c","operator":"Exists"}]' } }),
      problems: [
        { field: "metadata.annotations[berth.dev/tolerations][0].key", message: /name part must consist of alphanumeric/ },
        { field: "metadata.annotations[berth.dev/tolerations][1].key", message: /at most one '\/'/ },
      ],
    },
    {
      name: "rejects a toleration value that is not a label value",
      svc: service({ annotations: { "berth.dev/tolerations": '[{"key":"a","value":"-x-"}]' } }),
      problems: [{ field: "metadata.annotations[berth.dev/tolerations][0].value", message: /must start and end with an alphanumeric/ }],
    },
    {
      name: "rejects tolerationSeconds without NoExecute, and a non-integer one",
      svc: service({ annotations: { "berth.dev/tolerations":
        '[{"key":"a","operator":"Exists","effect":"NoSchedule","tolerationSeconds":5},{"key":"b","operator":"Exists","effect":"NoExecute","tolerationSeconds":"5"}]' } }),
      problems: [
        { field: "metadata.annotations[berth.dev/tolerations][0].tolerationSeconds", message: /only allowed with effect NoExecute/ },
        { field: "metadata.annotations[berth.dev/tolerations][1].tolerationSeconds", message: /whole number of seconds/ },
      ],
    },
    {
      name: "rejects a toleration field of the wrong JSON type",
      svc: service({ annotations: { "berth.dev/tolerations": '[{"key":1,"operator":"Exists"}]' } }),
      problems: [{ field: "metadata.annotations[berth.dev/tolerations][0].key", message: /must be a string, not 1/ }],
    },
    {
      name: "rejects berth and k3s tolerations that differ, naming both keys",
      svc: service({ annotations: {
        "berth.dev/tolerations": '[{"key":"a","operator":"Exists"}]',
        "svccontroller.k3s.cattle.io/tolerations": '[{"key":"b","operator":"Exists"}]',
      } }),
      problems: [{ field: "metadata.annotations[berth.dev/tolerations]", message: /differs from svccontroller.k3s.cattle.io\/tolerations/ }],
    },
    {
      name: "reports a bad k3s toleration alias under its own key",
      svc: service({ annotations: { "berth.dev/tolerations": "[]", "svccontroller.k3s.cattle.io/tolerations": "[{]" } }),
      problems: [{ field: "metadata.annotations[svccontroller.k3s.cattle.io/tolerations]", message: /not valid JSON/ }],
    },
    {
      name: "rejects a priority class that is not a DNS subdomain",
      svc: service({ annotations: { "berth.dev/priority-class": "System_Critical" } }),
      problems: [{ field: "metadata.annotations[berth.dev/priority-class]", message: /"System_Critical" is not a valid PriorityClass name/ }],
    },
    {
      name: "rejects berth and k3s priority classes that differ",
      svc: service({ annotations: { "berth.dev/priority-class": "a", "svccontroller.k3s.cattle.io/priorityclassname": "b" } }),
      problems: [{ field: "metadata.annotations[berth.dev/priority-class]", message: /"a" differs from svccontroller.k3s.cattle.io\/priorityclassname "b"/ }],
    },
    {
      name: "rejects berth and k3s pool labels that differ",
      svc: service({ labels: { "berth.dev/pool": "a", "svccontroller.k3s.cattle.io/lbpool": "b" } }),
      problems: [{ field: "metadata.labels[berth.dev/pool]", message: /"a" differs from svccontroller.k3s.cattle.io\/lbpool "b"/ }],
    },
    {
      name: "rejects a pool label that is not a label value (Services built by hand)",
      svc: service({ labels: { "berth.dev/pool": "a b" } }),
      problems: [{ field: "metadata.labels[berth.dev/pool]", message: /alphanumeric/ }],
    },
    {
      name: "vip: rejects two addresses of one family",
      svc: service({ annotations: { "berth.dev/mode": "vip", "berth.dev/ips": "192.168.1.5,192.168.1.6" } }),
      problems: [{ field: "metadata.annotations[berth.dev/ips]", message: /more than one address of a family/ }],
    },
    {
      name: "vip: rejects a malformed requested address",
      svc: service({ annotations: { "berth.dev/mode": "vip", "metallb.io/loadBalancerIPs": "::ffff:1.2.3.4" } }),
      problems: [{ field: "metadata.annotations[metallb.io/loadBalancerIPs]", message: /IPv4-mapped/ }],
    },
    {
      name: "vip: rejects berth and MetalLB pools that differ",
      svc: service({ annotations: { "berth.dev/mode": "vip", "berth.dev/pool": "a", "metallb.io/address-pool": "b" } }),
      problems: [{ field: "metadata.annotations[berth.dev/pool]", message: /differs from metallb.io\/address-pool/ }],
    },
    {
      name: "vip: rejects requested IPs together with spec.loadBalancerIP",
      svc: service({ annotations: { "berth.dev/mode": "vip", "berth.dev/ips": "192.168.1.5" }, spec: { loadBalancerIP: "192.168.1.5" } }),
      problems: [{ field: "spec.loadBalancerIP", message: /use only berth.dev\/ips/ }],
    },
    {
      name: "reports every problem at once, not only the first",
      svc: service({
        annotations: { "berth.dev/mode": "x", "berth.dev/priority-class": "A" },
        spec: { loadBalancerSourceRanges: ["nope"] },
      }),
      problems: [
        { field: "metadata.annotations[berth.dev/mode]", message: /not a mode/ },
        { field: "spec.loadBalancerSourceRanges[0]", message: /not a valid CIDR/ },
        { field: "metadata.annotations[berth.dev/priority-class]", message: /not a valid PriorityClass name/ },
      ],
    },
  ];
  for (const row of rejected) {
    it(row.name, () => {
      const result = parseServiceConfig(row.svc, config);
      assert.equal(result.ok, false, `expected problems, got ${JSON.stringify(result)}`);
      if (result.ok) return;
      assert.deepEqual(result.problems.map((p) => p.field), row.problems.map((p) => p.field));
      result.problems.forEach((problem, index) => assert.match(problem.message, row.problems[index]!.message));
    });
  }
});
