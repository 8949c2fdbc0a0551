import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";

import {
  buildDaemonSet,
  buildRulesConfigMap,
  daemonSetHash,
  lbPodRulesBundle,
  daemonSetName,
  nodeEligibility,
  nodeSelectorTerms,
  ownedFieldsDiffer,
  recordedHash,
  rulesConfigMapOf,
} from "../../../src/controller/daemonset.js";
import { parseServiceConfig } from "../../../src/controller/service-config.js";
import { defaultControllerConfig, type V1DaemonSet, type V1Node, type V1Service } from "../../../src/controller/types.js";
import { HOST_IP_PLACEHOLDER, renderBundle } from "../../../src/lb-pod/bundle.js";
import { parseLbPodConfig } from "../../../src/lb-pod/config.js";
import { node, service } from "./fixtures.js";

const config = defaultControllerConfig({ lbPodImage: "example.org/berth:1" });

function build(svc: V1Service, nodes: V1Node[] = [node("n1")], overrides: Partial<typeof config> = {}): V1DaemonSet {
  const parsed = parseServiceConfig(svc, config);
  if (!parsed.ok) throw new Error(`fixture does not parse: ${JSON.stringify(parsed.problems)}`);
  return buildDaemonSet(svc, parsed.value, nodes, { ...config, ...overrides });
}

function container(ds: V1DaemonSet) {
  const first = ds.spec?.template.spec?.containers[0];
  assert.ok(first);
  return first;
}

function envOf(ds: V1DaemonSet): Record<string, string | undefined> {
  return Object.fromEntries((container(ds).env ?? []).map((e) => [e.name, e.value ?? `<from ${e.valueFrom?.fieldRef?.fieldPath}>`]));
}

const uid = "3f2a9c1e-7b4d-4e6f-9a8b-0c1d2e3f4a5b";

describe("controller: DaemonSet names", () => {
  const rows = [
    { name: "svclb-<service>-<first 8 of the UID>", service: "web", want: "svclb-web-3f2a9c1e" },
    { name: "a 48-character Service name fits whole (63 in all)", service: "a".repeat(48), want: `svclb-${"a".repeat(48)}-3f2a9c1e` },
    { name: "a 63-character Service name is cut so the whole is 63", service: "b".repeat(63), want: `svclb-${"b".repeat(48)}-3f2a9c1e` },
    { name: "the cut never leaves a '-' before the UID", service: `${"c".repeat(46)}---tail`, want: `svclb-${"c".repeat(46)}-3f2a9c1e` },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const name = daemonSetName(service({ name: row.service, uid }));
      assert.equal(name, row.want);
      assert.ok(name.length <= 63, `${name} is ${name.length} characters`);
      assert.match(name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    });
  }
  it("two Services of one name in different namespaces get different DaemonSets", () => {
    assert.notEqual(daemonSetName(service({ namespace: "a", uid: "11111111-x" })), daemonSetName(service({ namespace: "b", uid: "22222222-x" })));
  });
});

describe("controller: the desired DaemonSet", () => {
  it("builds the whole object for a plain Cluster-policy Service", () => {
    const ds = build(service({ spec: { loadBalancerSourceRanges: ["192.168.0.0/16", "10.0.0.0/8"] } }));
    const hash = recordedHash(ds);
    assert.match(hash ?? "", /^[0-9a-f]{16}$/);
    const labels = {
      "berth.dev/service-name": "web",
      "berth.dev/service-namespace": "default",
      "berth.dev/service-uid": uid,
      "app.kubernetes.io/managed-by": "berth",
      "app.kubernetes.io/component": "lb-pod",
    };
    const want: V1DaemonSet = {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: { name: "svclb-web-3f2a9c1e", namespace: "berth-system", labels, annotations: { "berth.dev/spec-hash": hash as string } },
      spec: {
        selector: { matchLabels: { "berth.dev/daemonset": "svclb-web-3f2a9c1e" } },
        updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
        template: {
          metadata: { labels: { "berth.dev/daemonset": "svclb-web-3f2a9c1e", ...labels } },
          spec: {
            priorityClassName: "system-node-critical",
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            tolerations: [
              { key: "CriticalAddonsOnly", operator: "Exists" },
              { key: "node-role.kubernetes.io/control-plane", operator: "Exists", effect: "NoSchedule" },
              { key: "node-role.kubernetes.io/master", operator: "Exists", effect: "NoSchedule" },
            ],
            affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [
              { matchExpressions: [{ key: "node.kubernetes.io/exclude-from-external-load-balancers", operator: "DoesNotExist" }] },
            ] } } },
            containers: [{
              name: "lb-pod",
              image: "example.org/berth:1",
              imagePullPolicy: "IfNotPresent",
              command: ["berth-lb-pod"],
              ports: [{ name: "lb-tcp-80", containerPort: 80, hostPort: 80, protocol: "TCP" }],
              readinessProbe: { exec: { command: ["berth-lb-pod-check"] }, periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 },
              securityContext: { privileged: false, allowPrivilegeEscalation: false, capabilities: { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] } },
              volumeMounts: [{ name: "rules", mountPath: "/etc/berth/rules", readOnly: true }, { name: "state", mountPath: "/run/berth" }],
            }],
            volumes: [{ name: "rules", configMap: { name: rulesConfigMapOf(ds) as string } }, { name: "state", emptyDir: { medium: "Memory" } }],
          },
        },
      },
    };
    assert.deepEqual(ds, want);
    assert.match(rulesConfigMapOf(ds) ?? "", /^svclb-web-3f2a9c1e-[0-9a-f]{10}$/);
  });

  it("mounts the rules `berth lb-pod render` writes for the same configuration, in an immutable ConfigMap owned by the DaemonSet", () => {
    const svc = service({ spec: { ipFamilies: ["IPv4", "IPv6"], clusterIPs: ["10.43.0.10", "fd00:43::a"], loadBalancerSourceRanges: ["10.0.0.0/8"] } });
    const ds = build(svc);
    const parsed = parseServiceConfig(svc, config);
    assert.ok(parsed.ok);
    // What `berth lb-pod render` makes of the same Service described in berth's environment contract.
    const bundle = renderBundle(parseLbPodConfig({ BERTH_PORTS: "tcp:80:80", DEST_IPS: "10.43.0.10,fd00:43::a", SRC_RANGES: "10.0.0.0/8" }));
    assert.deepEqual(lbPodRulesBundle(parsed.value), bundle);
    const cm = buildRulesConfigMap(ds, { uid: "ds-uid" }, bundle);
    assert.equal(cm.metadata?.name, rulesConfigMapOf(ds));
    assert.equal(cm.metadata?.namespace, "berth-system");
    assert.equal(cm.immutable, true);
    assert.deepEqual(cm.metadata?.ownerReferences, [{ apiVersion: "apps/v1", kind: "DaemonSet", name: ds.metadata?.name, uid: "ds-uid", controller: true }]);
    assert.deepEqual(cm.data, bundle);
    assert.equal(buildRulesConfigMap(ds, undefined, bundle).metadata?.ownerReferences, undefined, "no owner before the DaemonSet exists");
  });

  it("Local policy: the rules hold placeholders for the node's addresses, filled in by the pod from DEST_IPS", () => {
    const svc = service({ spec: { externalTrafficPolicy: "Local", ports: [{ protocol: "TCP", port: 80, nodePort: 30080 }] } });
    const ds = build(svc);
    const parsed = parseServiceConfig(svc, config);
    assert.ok(parsed.ok);
    const cm = buildRulesConfigMap(ds, undefined, lbPodRulesBundle(parsed.value));
    assert.equal(cm.data?.["host-ips"], "1");
    assert.match(cm.data?.["iptables-ipv4.restore"] ?? "", new RegExp(`--to-destination ${HOST_IP_PLACEHOLDER.ipv4}:30080`));
  });

  // The pod's environment carries only what its entrypoint reads: ports, ClusterIPs, source ranges and families are in
  // the mounted bundle, and a copy in the environment would only roll every lb-pod when nothing it runs changed.
  const entrypoint = readFileSync(new URL("../../../bin/berth-lb-pod", import.meta.url), "utf8");
  const envRows = [
    { name: "Cluster, dual-stack, source ranges, every protocol", svc: service({
      spec: {
        ipFamilies: ["IPv4", "IPv6"], clusterIPs: ["10.43.0.10", "fd00:43::a"],
        ports: [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 80 }, { protocol: "SCTP", port: 9 }],
        loadBalancerSourceRanges: ["fd00::/8", "10.0.0.0/8"],
      },
    }), overrides: {}, want: [] },
    { name: "Cluster with --lb-backend", svc: service(), overrides: { lbPodBackend: "iptables-legacy" as const }, want: ["BERTH_BACKEND"] },
    { name: "Local, dual-stack, source ranges", svc: service({
      spec: {
        externalTrafficPolicy: "Local", ipFamilies: ["IPv4", "IPv6"], clusterIPs: ["10.43.0.10", "fd00:43::a"],
        ports: [{ protocol: "TCP", port: 80, nodePort: 30080 }], loadBalancerSourceRanges: ["10.0.0.0/8"],
      },
    }), overrides: {}, want: ["DEST_IPS"] },
  ];
  for (const row of envRows) {
    it(`${row.name}: the pod's environment is only what bin/berth-lb-pod reads (${row.want.join(", ") || "nothing"})`, () => {
      const ds = build(row.svc, [node("n1")], row.overrides);
      assert.deepEqual(Object.keys(envOf(ds)), row.want);
      for (const name of row.want) assert.match(entrypoint, new RegExp(`\\$\\{?${name}\\b`), `bin/berth-lb-pod never reads ${name}`);
      if (row.want.length === 0) assert.equal("env" in container(ds), false, "an empty list the API server would drop");
    });
  }

  it("serves every port from one container, hostPort = containerPort = the Service port", () => {
    const ds = build(service({ spec: { ports: [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 53 }, { protocol: "TCP", port: 443 }] } }));
    assert.equal(ds.spec?.template.spec?.containers.length, 1);
    assert.deepEqual(container(ds).ports, [
      { name: "lb-tcp-53", containerPort: 53, hostPort: 53, protocol: "TCP" },
      { name: "lb-tcp-443", containerPort: 443, hostPort: 443, protocol: "TCP" },
      { name: "lb-udp-53", containerPort: 53, hostPort: 53, protocol: "UDP" },
    ]);
  });

  const local = service({ spec: { externalTrafficPolicy: "Local", ports: [{ protocol: "TCP", port: 80, nodePort: 30080 }, { protocol: "UDP", port: 53, nodePort: 30053 }] } });
  it("Local policy: forwards to the node's own IPs (downward API status.hostIPs) on the NodePort", () => {
    const ds = build(local);
    assert.deepEqual(container(ds).env, [{ name: "DEST_IPS", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "status.hostIPs" } } }]);
    const parsed = parseServiceConfig(local, config);
    assert.ok(parsed.ok);
    const restore = lbPodRulesBundle(parsed.value)["iptables-ipv4.restore"] ?? "";
    assert.match(restore, new RegExp(`--to-destination ${HOST_IP_PLACEHOLDER.ipv4}:30080`));
    assert.match(restore, new RegExp(`--to-destination ${HOST_IP_PLACEHOLDER.ipv4}:30053`));
  });
  it("--lb-backend reaches the pods as BERTH_BACKEND; auto (the entrypoint's default) writes nothing", () => {
    assert.equal(envOf(build(service(), [node("n1")], { lbPodBackend: "nftables" })).BERTH_BACKEND, "nftables");
    assert.equal("BERTH_BACKEND" in envOf(build(service())), false);
  });
  it("Local policy on clusters before 1.29 can use status.hostIP instead", () => {
    assert.equal(envOf(build(local, [node("n1")], { hostIpsFieldPath: "status.hostIP" })).DEST_IPS, "<from status.hostIP>");
  });

  const sysctlRows = [
    {
      name: "asks for no sysctl for an IPv4 Service (a new pod namespace copies the node's IPv4 forwarding; a stock kubelet admits it)",
      families: ["IPv4"], ips: ["10.43.0.10"], want: [],
    },
    {
      name: "asks only for IPv6 forwarding for an IPv6 Service (it starts at 0 in a new namespace)",
      families: ["IPv6"], ips: ["fd00::a"], want: ["net.ipv6.conf.all.forwarding"],
    },
    {
      name: "asks only for IPv6 forwarding for a dual-stack Service, whatever the family order",
      families: ["IPv6", "IPv4"], ips: ["fd00::a", "10.43.0.10"], want: ["net.ipv6.conf.all.forwarding"],
    },
  ];
  for (const row of sysctlRows) {
    it(row.name, () => {
      const ds = build(service({ spec: { ipFamilies: row.families, clusterIPs: row.ips } }));
      const sysctls = ds.spec?.template.spec?.securityContext?.sysctls;
      if (row.want.length === 0) assert.equal(ds.spec?.template.spec?.securityContext, undefined);
      else assert.deepEqual(sysctls, row.want.map((name) => ({ name, value: "1" })));
    });
  }

  const dualStackNode = node("n1", { addresses: [{ type: "InternalIP", address: "192.168.1.11" }, { type: "InternalIP", address: "fd00::11" }] });
  it("Local: an IPv4 Service on dual-stack nodes touches only IPv4 (the bundle's families filter status.hostIPs) and asks for no sysctl", () => {
    const ds = build(local, [dualStackNode]);
    assert.equal(ds.spec?.template.spec?.securityContext, undefined);
    const parsed = parseServiceConfig(local, config);
    assert.ok(parsed.ok);
    assert.equal(lbPodRulesBundle(parsed.value).families, "ipv4");
  });

  it("--no-forwarding-sysctls leaves the IPv6 one out too (for nodes whose pod namespaces already forward IPv6)", () => {
    const dual = service({ spec: { ipFamilies: ["IPv4", "IPv6"], clusterIPs: ["10.43.0.10", "fd00::a"] } });
    const spec = build(dual, [node("n1")], { forwardingSysctls: false }).spec?.template.spec;
    assert.equal(spec?.securityContext, undefined);
  });

  it("adds the Service's tolerations to the defaults, sorted, without duplicates", () => {
    const ds = build(service({ annotations: { "berth.dev/tolerations": JSON.stringify([
      { key: "zone", operator: "Equal", value: "edge", effect: "NoSchedule" },
      { key: "CriticalAddonsOnly", operator: "Exists" },
      { key: "dedicated", operator: "Exists" },
    ]) } }));
    assert.deepEqual(ds.spec?.template.spec?.tolerations, [
      { key: "CriticalAddonsOnly", operator: "Exists" },
      { key: "dedicated", operator: "Exists" },
      { key: "node-role.kubernetes.io/control-plane", operator: "Exists", effect: "NoSchedule" },
      { key: "node-role.kubernetes.io/master", operator: "Exists", effect: "NoSchedule" },
      { key: "zone", operator: "Equal", value: "edge", effect: "NoSchedule" },
    ]);
  });

  const priorityRows: { name: string; annotations: Record<string, string>; want: string | undefined }[] = [
    { name: "uses system-node-critical by default", annotations: {}, want: "system-node-critical" },
    { name: "uses the Service's priority class", annotations: { "berth.dev/priority-class": "lb" }, want: "lb" },
    { name: "sets no priority class when the annotation is empty", annotations: { "svccontroller.k3s.cattle.io/priorityclassname": "" }, want: undefined },
  ];
  for (const row of priorityRows) {
    it(row.name, () => {
      assert.equal(build(service({ annotations: row.annotations })).spec?.template.spec?.priorityClassName, row.want);
    });
  }

  it("never runs privileged, mounts no API token, and adds only the network capabilities", () => {
    const spec = build(service()).spec?.template.spec;
    assert.equal(spec?.automountServiceAccountToken, false);
    assert.equal(spec?.hostNetwork, undefined);
    const security = spec?.containers[0]?.securityContext;
    assert.equal(security?.privileged, false);
    assert.deepEqual(security?.capabilities, { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] });
  });
});

describe("controller: DaemonSet stability", () => {
  const shuffledPair: { name: string; a: V1Service; b: V1Service; nodesA?: V1Node[]; nodesB?: V1Node[] }[] = [
    {
      name: "ports, source ranges and tolerations in another order build the same object",
      a: service({
        annotations: { "berth.dev/tolerations": '[{"key":"a","operator":"Exists"},{"key":"b","operator":"Exists"}]' },
        spec: { ports: [{ protocol: "TCP", port: 80 }, { protocol: "UDP", port: 53 }], loadBalancerSourceRanges: ["10.0.0.0/8", "fd00::/8", "1.0.0.0/8"] },
      }),
      b: service({
        annotations: { "berth.dev/tolerations": '[{"operator":"Exists","key":"b"},{"key":"a","operator":"Exists"}]' },
        spec: { ports: [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 80 }], loadBalancerSourceRanges: ["fd00::/8", "1.0.0.0/8", "10.0.0.0/8"] },
      }),
    },
    {
      name: "the same source ranges spelled differently (host bits, IPv6 zeros, annotation vs spec) build the same object",
      a: service({ spec: { loadBalancerSourceRanges: ["10.1.2.3/8", "fd00:0:0::/8"] } }),
      b: service({ annotations: { "service.beta.kubernetes.io/load-balancer-source-ranges": "fd00::/8,10.0.0.0/8" } }),
    },
    {
      name: "node order and unrelated node changes build the same object",
      a: service(), b: service(),
      nodesA: [node("n1"), node("n2", { labels: { "berth.dev/enabled": "true" } })],
      nodesB: [node("n2", { labels: { "berth.dev/enabled": "false" } }), node("n1", { ready: false }), node("n3")],
    },
  ];
  for (const row of shuffledPair) {
    it(row.name, () => {
      const a = build(row.a, row.nodesA);
      const b = build(row.b, row.nodesB);
      assert.deepEqual(a, b);
      assert.equal(JSON.stringify(a), JSON.stringify(b), "same key order too, so the serialised object is byte-identical");
      assert.equal(recordedHash(a), recordedHash(b));
    });
  }

  it("the hash and the rules ConfigMap's name change when the rules change (so the pods roll)", () => {
    const base = build(service());
    for (const changed of [
      build(service({ spec: { ports: [{ protocol: "TCP", port: 81 }] } })),
      build(service({ spec: { clusterIPs: ["10.43.0.11"] } })),
      build(service({ spec: { loadBalancerSourceRanges: ["10.0.0.0/8"] } })),
    ]) {
      assert.notEqual(rulesConfigMapOf(changed), rulesConfigMapOf(base));
      assert.notEqual(recordedHash(changed), recordedHash(base));
    }
    assert.equal(rulesConfigMapOf(build(service(), [node("n2")])), rulesConfigMapOf(base), "nodes do not change the rules");
  });

  it("the hash changes when anything that matters changes", () => {
    const base = recordedHash(build(service()));
    const changed = [
      build(service({ spec: { ports: [{ protocol: "TCP", port: 81 }] } })),
      build(service({ spec: { loadBalancerSourceRanges: ["10.0.0.0/8"] } })),
      build(service({ spec: { externalTrafficPolicy: "Local", ports: [{ protocol: "TCP", port: 80, nodePort: 30080 }] } })),
      build(service(), [node("n1", { labels: { "svccontroller.k3s.cattle.io/enablelb": "true" } })]),
      build(service(), [node("n1")], { lbPodImage: "example.org/berth:2" }),
    ].map(recordedHash);
    for (const hash of changed) assert.notEqual(hash, base);
    assert.equal(new Set(changed).size, changed.length);
  });

  it("the recorded hash is the hash of the rest of the object", () => {
    const ds = build(service());
    assert.equal(daemonSetHash(ds), recordedHash(ds));
  });
});

/** A NodeSelectorTerm evaluator with kube-scheduler's semantics for the operators we use (terms ORed, expressions ANDed). */
function selects(terms: ReturnType<typeof nodeSelectorTerms>, labels: Record<string, string>): boolean {
  return terms.some((term) => term.matchExpressions.every((e) => {
    const value = labels[e.key];
    switch (e.operator) {
      case "In": return value !== undefined && (e.values ?? []).includes(value);
      case "NotIn": return value === undefined || !(e.values ?? []).includes(value);
      case "Exists": return value !== undefined;
      case "DoesNotExist": return value === undefined;
    }
  }));
}

describe("controller: which nodes serve", () => {
  const rows: { name: string; nodes: V1Node[]; pool?: string; want: Record<string, string | true> }[] = [
    {
      name: "every node when no node carries the enabled label",
      nodes: [node("a"), node("b")],
      want: { a: true, b: true },
    },
    {
      name: "a node labelled exclude-from-external-load-balancers never serves, whatever the value",
      nodes: [node("a"), node("b", { labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "false" } })],
      want: { a: true, b: "labelled node.kubernetes.io/exclude-from-external-load-balancers" },
    },
    {
      name: "once any node carries berth.dev/enabled, only nodes with true serve",
      nodes: [node("a", { labels: { "berth.dev/enabled": "true" } }), node("b", { labels: { "berth.dev/enabled": "false" } }), node("c")],
      want: {
        a: true,
        b: "labelled berth.dev/enabled=false, not true",
        c: "not labelled berth.dev/enabled=true (some nodes carry berth.dev/enabled or svccontroller.k3s.cattle.io/enablelb, so only nodes with true serve)",
      },
    },
    {
      name: "k3s's enablelb works the same, and berth's key wins on a node with both",
      nodes: [
        node("a", { labels: { "svccontroller.k3s.cattle.io/enablelb": "true" } }),
        node("b", { labels: { "svccontroller.k3s.cattle.io/enablelb": "true", "berth.dev/enabled": "false" } }),
        node("c", { labels: { "svccontroller.k3s.cattle.io/enablelb": "false", "berth.dev/enabled": "true" } }),
        node("d"),
      ],
      want: {
        a: true, b: "labelled berth.dev/enabled=false, not true", c: true,
        d: "not labelled berth.dev/enabled=true (some nodes carry berth.dev/enabled or svccontroller.k3s.cattle.io/enablelb, so only nodes with true serve)",
      },
    },
    {
      name: "a pinned Service runs only on nodes of its pool (berth or k3s label; berth's wins)",
      pool: "edge",
      nodes: [
        node("a", { labels: { "berth.dev/pool": "edge" } }),
        node("b", { labels: { "svccontroller.k3s.cattle.io/lbpool": "edge" } }),
        node("c", { labels: { "berth.dev/pool": "core", "svccontroller.k3s.cattle.io/lbpool": "edge" } }),
        node("d"),
      ],
      want: { a: true, b: true, c: "in node pool core, not edge", d: "not in node pool edge (no berth.dev/pool label)" },
    },
    {
      name: "pool and enabled label combine",
      pool: "edge",
      nodes: [
        node("a", { labels: { "berth.dev/pool": "edge", "berth.dev/enabled": "true" } }),
        node("b", { labels: { "berth.dev/pool": "edge", "svccontroller.k3s.cattle.io/enablelb": "false" } }),
        node("c", { labels: { "svccontroller.k3s.cattle.io/lbpool": "edge", "svccontroller.k3s.cattle.io/enablelb": "true" } }),
        node("d", { labels: { "berth.dev/enabled": "true" } }),
      ],
      want: {
        a: true, b: "labelled svccontroller.k3s.cattle.io/enablelb=false, not true", c: true,
        d: "not in node pool edge (no berth.dev/pool label)",
      },
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const serviceConfig = row.pool === undefined ? {} : { nodePool: row.pool };
      const terms = nodeSelectorTerms(serviceConfig, row.nodes);
      for (const n of row.nodes) {
        const name = n.metadata?.name as string;
        const eligibility = nodeEligibility(n, serviceConfig, row.nodes);
        assert.deepEqual(eligibility, row.want[name] === true ? { eligible: true } : { eligible: false, reason: row.want[name] }, name);
        assert.equal(selects(terms, n.metadata?.labels ?? {}), eligibility.eligible, `affinity and nodeEligibility disagree on ${name}`);
      }
    });
  }
});

describe("controller: is the live DaemonSet still ours as we applied it", () => {
  const desired = build(service({ spec: { ports: [{ protocol: "TCP", port: 80 }, { protocol: "UDP", port: 53 }] } }));
  /** What the API server gives back: our object plus its defaults, in its own key order. */
  function asServed(ds: V1DaemonSet): V1DaemonSet {
    const copy = structuredClone(ds) as V1DaemonSet & { spec: { template: { spec: Record<string, unknown> } } };
    const spec = copy.spec as unknown as Record<string, unknown>;
    spec.revisionHistoryLimit = 10;
    (spec.updateStrategy as { rollingUpdate: Record<string, unknown> }).rollingUpdate.maxSurge = 0;
    const pod = copy.spec.template.spec;
    Object.assign(pod, { restartPolicy: "Always", dnsPolicy: "ClusterFirst", schedulerName: "default-scheduler", terminationGracePeriodSeconds: 30 });
    const c = (pod.containers as unknown as Record<string, unknown>[])[0] as Record<string, unknown>;
    Object.assign(c, { terminationMessagePath: "/dev/termination-log", terminationMessagePolicy: "File", resources: {} });
    Object.assign(c.readinessProbe as object, { successThreshold: 1 });
    Object.assign(copy.metadata as object, { uid: "u", resourceVersion: "7", generation: 1, creationTimestamp: "2026-01-01T00:00:00Z" });
    return copy;
  }
  const edit = (change: (pod: Record<string, unknown>, c: Record<string, unknown>) => void): V1DaemonSet => {
    const live = asServed(desired);
    const pod = live.spec?.template.spec as unknown as Record<string, unknown>;
    change(pod, (pod.containers as Record<string, unknown>[])[0] as Record<string, unknown>);
    return live;
  };

  const rows: { name: string; live: V1DaemonSet | undefined; differs: string | undefined }[] = [
    { name: "the API server's defaults are not a difference", live: asServed(desired), differs: undefined },
    {
      name: "an entry someone else added to a list is not ours (no re-apply loop)",
      live: edit((pod) => (pod.tolerations as unknown[]).push({ key: "extra", operator: "Exists" })),
      differs: undefined,
    },
    { name: "list entries in another order are the same", live: edit((pod) => (pod.tolerations as unknown[]).reverse()), differs: undefined },
    { name: "an edited image", live: edit((_, c) => { c.image = "evil:1"; }), differs: "spec.template.spec.containers[0]" },
    { name: "a removed port", live: edit((_, c) => { (c.ports as unknown[]).pop(); }), differs: "spec.template.spec.containers[0]" },
    { name: "a dropped toleration", live: edit((pod) => { (pod.tolerations as unknown[]).shift(); }), differs: "spec.template.spec.tolerations[0]" },
    { name: "a changed command (scalar lists are ours whole)", live: edit((_, c) => { (c.command as string[]).push("--debug"); }), differs: "spec.template.spec.containers[0]" },
    {
      name: "a removed label",
      live: (() => { const l = asServed(desired); delete (l.metadata?.labels as Record<string, string>)["app.kubernetes.io/managed-by"]; return l; })(),
      differs: "metadata.labels.app.kubernetes.io/managed-by",
    },
    {
      name: "a changed update strategy",
      live: (() => { const l = asServed(desired); (l.spec as { updateStrategy: unknown }).updateStrategy = { type: "OnDelete" }; return l; })(),
      differs: "spec.updateStrategy.type",
    },
    { name: "no live DaemonSet", live: undefined, differs: "no live DaemonSet" },
  ];
  for (const row of rows) {
    it(row.name, () => {
      assert.equal(ownedFieldsDiffer(row.live, desired), row.differs);
    });
  }

  it("an empty list we would set equals the field the API server left out", () => {
    const want = structuredClone(desired);
    (want.spec?.template.spec as { volumes: unknown[] }).volumes = [];
    const live = asServed(desired);
    delete (live.spec?.template.spec as { volumes?: unknown }).volumes;
    assert.equal(ownedFieldsDiffer(live, want), undefined);
  });
});
