import { strict as assert } from "node:assert";
import { formatLabelSelector, humanDuration, parseSimpleJsonPath, toTable } from "../../../src/sandbox/apiserver/table.js";
import type { KubeObject, ResourceDefinition } from "../../../src/sandbox/apiserver/types.js";

const now = new Date("2026-01-10T12:00:00Z");
const ago = (seconds: number): string => new Date(now.getTime() - seconds * 1000).toISOString();

function def(group: string, plural: string, kind: string, extra: Partial<ResourceDefinition> = {}): ResourceDefinition {
  return {
    group,
    version: "v1",
    kind,
    listKind: `${kind}List`,
    plural,
    singular: kind.toLowerCase(),
    shortNames: [],
    namespaced: true,
    subresources: [],
    verbs: ["get", "list"],
    ...extra,
  };
}

const SERVICES = def("", "services", "Service");
const NODES = def("", "nodes", "Node", { namespaced: false });
const PODS = def("", "pods", "Pod");
const DAEMONSETS = def("apps", "daemonsets", "DaemonSet");
const EVENTS = def("", "events", "Event");
const EVENTS_V1 = def("events.k8s.io", "events", "Event");
const LEASES = def("coordination.k8s.io", "leases", "Lease");
const SLICES = def("discovery.k8s.io", "endpointslices", "EndpointSlice");
const ENDPOINTS = def("", "endpoints", "Endpoints");
const CRDS = def("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", { namespaced: false });

function k(kind: string, name: string, fields: Record<string, unknown> = {}, meta: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: "v1", kind, metadata: { name, namespace: "default", creationTimestamp: ago(200), ...meta }, ...fields };
}

/** The cells of the one row `toTable` renders, keyed by column name. */
function row(d: ResourceDefinition, o: KubeObject): Record<string, unknown> {
  const table = toTable(d, [o], { includeObject: "None", now });
  const cells = table.rows[0]?.cells ?? [];
  assert.equal(cells.length, table.columnDefinitions.length, "one cell per column");
  return Object.fromEntries(table.columnDefinitions.map((c, i) => [c.name, cells[i]]));
}

const headers = (d: ResourceDefinition, priority: number): string[] =>
  toTable(d, [], { includeObject: "None", now })
    .columnDefinitions.filter((c) => c.priority === priority)
    .map((c) => c.name);

describe("server-side Table output", () => {
  describe("ages like duration.HumanDuration", () => {
    const cases: [number, string][] = [
      [-3, "<invalid>"],
      [-1, "0s"],
      [0, "0s"],
      [5, "5s"],
      [119, "119s"],
      [120, "2m"],
      [200, "3m20s"],
      [599, "9m59s"],
      [600, "10m"],
      [3 * 3600 - 1, "179m"],
      [3 * 3600, "3h"],
      [7 * 3600 + 59 * 60, "7h59m"],
      [8 * 3600, "8h"],
      [47 * 3600, "47h"],
      [2 * 86400 + 3 * 3600, "2d3h"],
      [7 * 86400, "7d"],
      [8 * 86400, "8d"],
      [729 * 86400, "729d"],
      [730 * 86400, "2y"],
      [800 * 86400, "2y70d"],
      [9 * 365 * 86400, "9y"],
    ];
    for (const [seconds, text] of cases) {
      it(`prints ${seconds}s as ${text}`, () => assert.equal(humanDuration(seconds * 1000), text));
    }
  });

  it("declares the columns kubectl prints for each built-in kind, wide ones at priority 1", () => {
    const expected: [ResourceDefinition, string[], string[]][] = [
      [SERVICES, ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"], ["Selector"]],
      [NODES, ["Name", "Status", "Roles", "Age", "Version"], ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]],
      [PODS, ["Name", "Ready", "Status", "Restarts", "Age"], ["IP", "Node", "Nominated Node", "Readiness Gates"]],
      [DAEMONSETS, ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"], ["Containers", "Images", "Selector"]],
      [EVENTS, ["Last Seen", "Type", "Reason", "Object", "Message"], ["Subobject", "Source", "First Seen", "Count", "Name"]],
      [LEASES, ["Name", "Holder", "Age"], []],
      [SLICES, ["Name", "AddressType", "Ports", "Endpoints", "Age"], []],
      [ENDPOINTS, ["Name", "Endpoints", "Age"], []],
      [def("", "namespaces", "Namespace"), ["Name", "Status", "Age"], []],
      [def("", "configmaps", "ConfigMap"), ["Name", "Data", "Age"], []],
      [def("", "serviceaccounts", "ServiceAccount"), ["Name", "Secrets", "Age"], []],
      [CRDS, ["Name", "Created At"], []],
    ];
    for (const [d, normal, wide] of expected) {
      assert.deepEqual(headers(d, 0), normal, d.plural);
      assert.deepEqual(headers(d, 1), wide, d.plural);
    }
  });

  describe("services", () => {
    const lb = (status: unknown, spec: Record<string, unknown> = {}): KubeObject =>
      k("Service", "web", {
        spec: { type: "LoadBalancer", clusterIP: "10.43.0.10", clusterIPs: ["10.43.0.10"], selector: { app: "web", tier: "a" }, ...spec,
          ports: [{ port: 80, nodePort: 31234, protocol: "TCP" }, { port: 53, protocol: "UDP" }] },
        status,
      });
    const cases: { name: string; svc: KubeObject; external: string }[] = [
      { name: "a LoadBalancer without ingress is <pending>", svc: lb({ loadBalancer: {} }), external: "<pending>" },
      { name: "ingress IPs are sorted and comma-joined", svc: lb({ loadBalancer: { ingress: [{ ip: "192.0.2.20" }, { ip: "192.0.2.3" }] } }), external: "192.0.2.20,192.0.2.3" },
      { name: "a hostname stands in for a missing IP", svc: lb({ loadBalancer: { ingress: [{ hostname: "lb.example" }] } }), external: "lb.example" },
      { name: "externalIPs follow the ingress", svc: lb({ loadBalancer: { ingress: [{ ip: "192.0.2.1" }] } }, { externalIPs: ["198.51.100.7"] }), external: "192.0.2.1,198.51.100.7" },
      { name: "externalIPs alone replace <pending>", svc: lb({}, { externalIPs: ["198.51.100.7"] }), external: "198.51.100.7" },
      { name: "a long ingress list is not clipped (the server renders wide)", svc: lb({ loadBalancer: { ingress: [{ ip: "2001:db8::1234:5678" }] } }), external: "2001:db8::1234:5678" },
      { name: "a ClusterIP service has <none>", svc: k("Service", "c", { spec: { type: "ClusterIP", clusterIPs: ["10.43.0.2"] } }), external: "<none>" },
      { name: "an ExternalName service shows the name", svc: k("Service", "x", { spec: { type: "ExternalName", externalName: "db.example" } }), external: "db.example" },
    ];
    for (const c of cases) it(`EXTERNAL-IP: ${c.name}`, () => assert.equal(row(SERVICES, c.svc)["External-IP"], c.external));

    it("prints type, first cluster IP, node ports, age and selector", () => {
      assert.deepEqual(row(SERVICES, lb({ loadBalancer: {} })), {
        Name: "web", Type: "LoadBalancer", "Cluster-IP": "10.43.0.10", "External-IP": "<pending>",
        "Port(s)": "80:31234/TCP,53/UDP", Age: "3m20s", Selector: "app=web,tier=a",
      });
    });

    it("prints <none> for a headless service's missing cluster IP, ports and selector", () => {
      const r = row(SERVICES, k("Service", "h", { spec: { type: "ClusterIP", clusterIP: "None", clusterIPs: ["None"] } }));
      assert.equal(r["Cluster-IP"], "None");
      assert.equal(r["Port(s)"], "<none>");
      assert.equal(r.Selector, "<none>");
      assert.equal(row(SERVICES, k("Service", "n", { spec: { type: "ClusterIP" } }))["Cluster-IP"], "<none>");
      assert.equal(row(SERVICES, k("Service", "o", { spec: { type: "ClusterIP", clusterIP: "10.43.0.9" } }))["Cluster-IP"], "10.43.0.9");
    });
  });

  describe("nodes", () => {
    const node = (extra: Record<string, unknown>, labels: Record<string, string> = {}): KubeObject =>
      k("Node", "n1", extra, { namespace: undefined, labels });
    const cases: { name: string; node: KubeObject; status: string; roles: string }[] = [
      { name: "Ready", node: node({ status: { conditions: [{ type: "MemoryPressure", status: "False" }, { type: "Ready", status: "True" }] } }), status: "Ready", roles: "<none>" },
      { name: "NotReady", node: node({ status: { conditions: [{ type: "Ready", status: "Unknown" }] } }), status: "NotReady", roles: "<none>" },
      { name: "Unknown without a Ready condition", node: node({}), status: "Unknown", roles: "<none>" },
      {
        name: "cordoned, with roles from both label styles",
        node: node({ spec: { unschedulable: true }, status: { conditions: [{ type: "Ready", status: "True" }] } },
          { "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "true", "kubernetes.io/role": "lb", "node-role.kubernetes.io/": "x" }),
        status: "Ready,SchedulingDisabled",
        roles: "control-plane,lb,master",
      },
    ];
    for (const c of cases) {
      it(`STATUS and ROLES: ${c.name}`, () => {
        const r = row(NODES, c.node);
        assert.equal(r.Status, c.status);
        assert.equal(r.Roles, c.roles);
      });
    }

    it("prints version and the wide columns, <unknown>/<none> for missing ones", () => {
      const r = row(NODES, node({ status: { addresses: [{ type: "Hostname", address: "n1" }, { type: "InternalIP", address: "172.31.0.2" }],
        nodeInfo: { kubeletVersion: "v1.32.0", kernelVersion: "6.1.0" } } }));
      assert.deepEqual([r.Version, r["Internal-IP"], r["External-IP"], r["OS-Image"], r["Kernel-Version"], r["Container-Runtime"]],
        ["v1.32.0", "172.31.0.2", "<none>", "<unknown>", "6.1.0", "<unknown>"]);
    });
  });

  describe("pods", () => {
    const running = { running: { startedAt: ago(100) } };
    const pod = (status: Record<string, unknown>, spec: Record<string, unknown> = {}, meta: Record<string, unknown> = {}): KubeObject =>
      k("Pod", "p", { spec: { containers: [{ name: "a" }, { name: "b" }], ...spec }, status }, meta);
    const cases: { name: string; pod: KubeObject; ready: string; status: string; restarts: string }[] = [
      { name: "a pending pod", pod: pod({ phase: "Pending" }), ready: "0/2", status: "Pending", restarts: "0" },
      {
        name: "a running pod with one ready container",
        pod: pod({ phase: "Running", containerStatuses: [{ name: "a", ready: true, state: running }, { name: "b", ready: false, state: running }] }),
        ready: "1/2", status: "Running", restarts: "0",
      },
      {
        name: "a waiting container's reason wins",
        pod: pod({ phase: "Running", containerStatuses: [{ name: "a", ready: false, restartCount: 4, state: { waiting: { reason: "CrashLoopBackOff" } },
          lastState: { terminated: { exitCode: 1, finishedAt: ago(90) } } }] }),
        ready: "0/2", status: "CrashLoopBackOff", restarts: "4 (90s ago)",
      },
      {
        name: "a terminated container without reason shows its exit code",
        pod: pod({ phase: "Running", containerStatuses: [{ name: "a", state: { terminated: { exitCode: 3 } } }] }),
        ready: "0/2", status: "ExitCode:3", restarts: "0",
      },
      { name: "an init container in progress", pod: pod({ phase: "Pending", initContainerStatuses: [{ name: "i", state: { running: {} } }] }, { initContainers: [{ name: "i" }] }), ready: "0/2", status: "Init:0/1", restarts: "0" },
      {
        name: "a deleted pod is Terminating",
        pod: pod({ phase: "Running", containerStatuses: [{ name: "a", ready: true, state: running }] }, {}, { deletionTimestamp: ago(1) }),
        ready: "1/2", status: "Terminating", restarts: "0",
      },
      { name: "a deleted pod that succeeded stays Succeeded", pod: pod({ phase: "Succeeded" }, {}, { deletionTimestamp: ago(1) }), ready: "0/2", status: "Succeeded", restarts: "0" },
      { name: "status.reason wins over the phase", pod: pod({ phase: "Failed", reason: "Evicted" }), ready: "0/2", status: "Evicted", restarts: "0" },
    ];
    for (const c of cases) {
      it(`READY, STATUS, RESTARTS: ${c.name}`, () => {
        const r = row(PODS, c.pod);
        assert.deepEqual([r.Ready, r.Status, r.Restarts], [c.ready, c.status, c.restarts]);
      });
    }

    it("prints the first pod IP, node, nominated node and readiness gates in wide columns", () => {
      const r = row(PODS, pod({ phase: "Running", podIP: "10.42.0.9", podIPs: [{ ip: "10.42.0.9" }, { ip: "fd00::9" }], conditions: [{ type: "example.com/gate", status: "True" }] },
        { nodeName: "n1", readinessGates: [{ conditionType: "example.com/gate" }, { conditionType: "other" }] }));
      assert.deepEqual([r.IP, r.Node, r["Nominated Node"], r["Readiness Gates"]], ["10.42.0.9", "n1", "<none>", "1/2"]);
      assert.equal(row(PODS, pod({ phase: "Running", podIP: "10.42.0.7" })).IP, "10.42.0.7", "a lone podIP counts, as conversion fills podIPs from it");
      const bare = row(PODS, pod({ phase: "Pending" }));
      assert.deepEqual([bare.IP, bare.Node, bare["Readiness Gates"]], ["<none>", "<none>", "<none>"]);
    });
  });

  it("prints a DaemonSet's counts, node selector, containers and selector", () => {
    const ds = k("DaemonSet", "svclb-web", {
      spec: {
        selector: { matchLabels: { app: "svclb-web" }, matchExpressions: [{ key: "zone", operator: "In", values: ["b", "a"] }, { key: "gpu", operator: "DoesNotExist" }] },
        template: { spec: { nodeSelector: { "kubernetes.io/os": "linux" }, containers: [{ name: "lb-tcp-80", image: "berth:1" }, { name: "lb-udp-53", image: "berth:1" }] } },
      },
      status: { desiredNumberScheduled: 3, currentNumberScheduled: 3, numberReady: 2, updatedNumberScheduled: 3, numberAvailable: 2 },
    });
    assert.deepEqual(row(DAEMONSETS, ds), {
      Name: "svclb-web", Desired: 3, Current: 3, Ready: 2, "Up-to-date": 3, Available: 2, "Node Selector": "kubernetes.io/os=linux", Age: "3m20s",
      Containers: "lb-tcp-80,lb-udp-53", Images: "berth:1,berth:1", Selector: "app=svclb-web,!gpu,zone in (a,b)",
    });
  });

  it("formats label selectors like metav1.FormatLabelSelector", () => {
    assert.equal(formatLabelSelector(undefined), "<none>");
    assert.equal(formatLabelSelector({}), "<none>");
    assert.equal(formatLabelSelector({ matchExpressions: [{ key: "a", operator: "NotIn", values: ["x"] }, { key: "b", operator: "Exists" }] }), "a notin (x),b");
    assert.equal(formatLabelSelector({ matchExpressions: [{ key: "a", operator: "Bogus" }] }), "<error>");
  });

  describe("events", () => {
    it("prints a core/v1 event like `kubectl get events`", () => {
      const e = k("Event", "web.1", {
        involvedObject: { kind: "Service", name: "web", namespace: "default" },
        type: "Warning", reason: "AllocationFailed", message: " no address left \n", source: { component: "berth-controller" },
        firstTimestamp: ago(300), lastTimestamp: ago(30), count: 3,
      });
      assert.deepEqual(row(EVENTS, e), {
        "Last Seen": "30s", Type: "Warning", Reason: "AllocationFailed", Object: "service/web", Subobject: "", Source: "berth-controller",
        Message: "no address left", "First Seen": "5m", Count: 3, Name: "web.1",
      });
    });

    it("uses eventTime, series and reporting fields when the deprecated ones are unset", () => {
      const e = k("Event", "web.2", {
        involvedObject: { kind: "Node" }, type: "Normal", reason: "R", message: "m", eventTime: ago(60),
        series: { count: 7, lastObservedTime: ago(10) }, reportingComponent: "speaker", reportingInstance: "n1",
      });
      const r = row(EVENTS, e);
      assert.deepEqual([r["Last Seen"], r["First Seen"], r.Count, r.Object, r.Source], ["10s", "60s", 7, "node", "speaker, n1"]);
    });

    it("prints an events.k8s.io/v1 event from its regarding and note fields, count 1 for a singleton", () => {
      const e = k("Event", "web.3", { regarding: { kind: "Service", name: "web" }, note: "assigned", reason: "IPAllocated", type: "Normal",
        eventTime: ago(5), reportingController: "berth", reportingInstance: "c1" });
      const r = row(EVENTS_V1, e);
      assert.deepEqual([r["Last Seen"], r.Object, r.Message, r.Count, r.Source], ["5s", "service/web", "assigned", 1, "berth, c1"]);
    });
  });

  it("prints a Lease's holder, empty when unheld", () => {
    assert.equal(row(LEASES, k("Lease", "l", { spec: { holderIdentity: "n1" } })).Holder, "n1");
    assert.equal(row(LEASES, k("Lease", "l", { spec: {} })).Holder, "");
  });

  it("prints EndpointSlice ports and addresses, three at most", () => {
    const slice = k("EndpointSlice", "web-abc", {
      addressType: "IPv4", ports: [{ port: 80 }, { name: "dns" }, {}],
      endpoints: [{ addresses: ["10.42.0.1"] }, { addresses: ["10.42.0.2", "10.42.0.3"] }, { addresses: ["10.42.0.4", "10.42.0.5"] }],
    });
    const r = row(SLICES, slice);
    assert.deepEqual([r.AddressType, r.Ports, r.Endpoints], ["IPv4", "80,dns,*", "10.42.0.1,10.42.0.2,10.42.0.3 + 2 more..."]);
    assert.deepEqual([row(SLICES, k("EndpointSlice", "e", { addressType: "IPv6" })).Ports, row(SLICES, k("EndpointSlice", "e", {})).Endpoints], ["<unset>", "<unset>"]);
  });

  it("prints Endpoints as host:port pairs, IPv6 bracketed", () => {
    const ep = k("Endpoints", "web", { subsets: [{ addresses: [{ ip: "10.42.0.1" }, { ip: "fd00::1" }], ports: [{ port: 8080 }] }] });
    assert.equal(row(ENDPOINTS, ep).Endpoints, "10.42.0.1:8080,[fd00::1]:8080");
    assert.equal(row(ENDPOINTS, k("Endpoints", "none", {})).Endpoints, "<none>");
  });

  it("prints namespaces, configmaps and serviceaccounts with their counts", () => {
    assert.equal(row(def("", "namespaces", "Namespace"), k("Namespace", "ns", { status: { phase: "Terminating" } })).Status, "Terminating");
    assert.equal(row(def("", "configmaps", "ConfigMap"), k("ConfigMap", "c", { data: { a: "1", b: "2" }, binaryData: { c: "AA==" } })).Data, 3);
    assert.equal(row(def("", "serviceaccounts", "ServiceAccount"), k("ServiceAccount", "default", {})).Secrets, 0);
  });

  it("prints a CRD with the default NAME and CREATED AT (RFC 3339) columns", () => {
    const crd = k("CustomResourceDefinition", "pools.berth.example", {}, { namespace: undefined, creationTimestamp: "2026-01-10T11:00:00.000Z" });
    assert.deepEqual(row(CRDS, crd), { Name: "pools.berth.example", "Created At": "2026-01-10T11:00:00Z" });
  });

  describe("custom resources", () => {
    const POOLS = def("berth.example", "addresspools", "AddressPool", {
      custom: true,
      printerColumns: [
        { name: "Range", type: "string", jsonPath: ".spec.range" },
        { name: "Free", type: "integer", jsonPath: ".status.free" },
        { name: "Ratio", type: "number", jsonPath: ".status.ratio" },
        { name: "Shared", type: "boolean", jsonPath: ".spec.shared" },
        { name: "First", type: "string", jsonPath: ".spec.ranges[0]" },
        { name: "Zone", type: "string", jsonPath: ".metadata.labels['topology.kubernetes.io/zone']" },
        { name: "Renewed", type: "date", jsonPath: ".status.renewed" },
        { name: "Extra", type: "string", jsonPath: ".spec.extra", priority: 1 },
      ],
    });

    it("evaluates additionalPrinterColumns with typed cells, null where the path is missing or mistyped", () => {
      const pool = k("AddressPool", "lan", {
        spec: { range: "192.0.2.0/28", shared: true, ranges: ["a", "b"], extra: { b: [1, 2], a: "x" } },
        status: { free: 12.7, ratio: "high", renewed: ago(7200) },
      }, { labels: { "topology.kubernetes.io/zone": "z1" } });
      assert.deepEqual(row(POOLS, pool), {
        Name: "lan", Range: "192.0.2.0/28", Free: 12, Ratio: null, Shared: true, First: "a", Zone: "z1", Renewed: "120m", Extra: "map[a:x b:[1 2]]",
      });
      const empty = row(POOLS, k("AddressPool", "e", {}));
      assert.deepEqual(Object.values(empty).slice(1), [null, null, null, null, null, null, null, null]);
    });

    it("serves NAME and AGE when a CRD declares no columns", () => {
      const d = def("berth.example", "things", "Thing", { custom: true });
      assert.deepEqual(row(d, k("Thing", "t")), { Name: "t", Age: "3m20s" });
      assert.equal(toTable(d, [], { includeObject: "None", now }).columnDefinitions[1]?.type, "date");
    });

    it("parses the simple JSONPaths CRDs allow and rejects others", () => {
      assert.deepEqual(parseSimpleJsonPath(".a.b[2]['c.d']"), [{ key: "a" }, { key: "b" }, { index: 2 }, { key: "c.d" }]);
      assert.deepEqual(parseSimpleJsonPath("{.a\\.b}"), [{ key: "a.b" }]);
      assert.throws(() => parseSimpleJsonPath(".a[*]"), /unsupported JSONPath/);
      assert.throws(() => parseSimpleJsonPath("a"), /unsupported JSONPath/);
    });
  });

  describe("row objects and list metadata", () => {
    const svc = k("Service", "web", { spec: { type: "ClusterIP" } }, { resourceVersion: "42" });
    it("sends PartialObjectMetadata by default (includeObject=Metadata)", () => {
      const t = toTable(SERVICES, [svc], { includeObject: "Metadata", now, resourceVersion: "43" });
      assert.deepEqual(t.rows[0]?.object, { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: svc.metadata });
      assert.deepEqual(t.metadata, { resourceVersion: "43" });
      assert.equal(t.kind, "Table");
      assert.equal(t.apiVersion, "meta.k8s.io/v1");
    });
    it("sends the whole object for includeObject=Object and none for None", () => {
      assert.deepEqual(toTable(SERVICES, [svc], { includeObject: "Object", now }).rows[0]?.object, svc);
      assert.equal("object" in (toTable(SERVICES, [svc], { includeObject: "None", now }).rows[0] ?? {}), false);
    });
    it("passes continue and remainingItemCount through", () => {
      const t = toTable(SERVICES, [], { includeObject: "None", now, resourceVersion: "9", continue: "tok", remainingItemCount: 5 });
      assert.deepEqual(t.metadata, { resourceVersion: "9", continue: "tok", remainingItemCount: 5 });
    });
  });
});
