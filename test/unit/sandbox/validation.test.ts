import { strict as assert } from "node:assert";

import { ApiError, type KubeObject, type ResourceDefinition } from "../../../src/sandbox/apiserver/types.js";
import { validateObject } from "../../../src/sandbox/apiserver/validation.js";

const def = (group: string, version: string, kind: string, namespaced: boolean): ResourceDefinition => ({
  group, version, kind, listKind: `${kind}List`, plural: `${kind.toLowerCase()}s`, singular: kind.toLowerCase(),
  shortNames: [], namespaced, subresources: [], verbs: [],
});
const defs = {
  pod: def("", "v1", "Pod", true),
  service: def("", "v1", "Service", true),
  namespace: def("", "v1", "Namespace", false),
  node: def("", "v1", "Node", false),
  configmap: def("", "v1", "ConfigMap", true),
  event: def("", "v1", "Event", true),
  eventsV1: def("events.k8s.io", "v1", "Event", true),
  daemonset: def("apps", "v1", "DaemonSet", true),
  slice: def("discovery.k8s.io", "v1", "EndpointSlice", true),
  lease: def("coordination.k8s.io", "v1", "Lease", true),
  crd: def("apiextensions.k8s.io", "v1", "CustomResourceDefinition", false),
};

const obj = (kind: string, metadata: KubeObject["metadata"], rest: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: "v1", kind, metadata, ...rest,
});
const pod = (metadata: KubeObject["metadata"], spec: unknown = { containers: [{ name: "app", image: "busybox" }] }) => obj("Pod", metadata, { spec });
const ns = { namespace: "default" };

const podTemplate = { metadata: { labels: { app: "lb" } }, spec: { containers: [{ name: "lb", image: "berth" }] } };
const goodCrd = {
  group: "berth.io", scope: "Cluster", names: { plural: "addresspools", singular: "addresspool", kind: "AddressPool" },
  versions: [{ name: "v1alpha1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object" } } }],
};

function causesOf(fn: () => void): { code: number; causes: string[]; message: string } {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    return { code: error.code, causes: (error.details?.causes ?? []).map((c) => `${c.field}: ${c.message}`), message: error.message };
  }
  return { code: 0, causes: [], message: "" };
}

describe("sandbox object validation (kube-apiserver's 422 causes)", () => {
  const cases: { name: string; def: ResourceDefinition; obj: KubeObject; old?: KubeObject; code?: number; want: string[] }[] = [
    { name: "accepts a minimal valid pod", def: defs.pod, obj: pod({ name: "web-0", ...ns }), want: [] },
    {
      name: "refuses an upper-case name with the RFC 1123 subdomain message",
      def: defs.pod, obj: pod({ name: "Web", ...ns }),
      want: ["metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"],
    },
    {
      name: "requires a name or generateName",
      def: defs.pod, obj: pod({ ...ns }),
      want: ["metadata.name: Required value: name or generateName is required"],
    },
    {
      name: "accepts a generateName ending in a dash",
      def: defs.pod, obj: pod({ name: "web-x7k2p", generateName: "web-", ...ns }),
      want: [],
    },
    {
      name: "refuses a Service name that is not a DNS-1035 label (leading digit)",
      def: defs.service, obj: obj("Service", { name: "1web", ...ns }, { spec: { ports: [{ port: 80 }] } }),
      want: ["metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"],
    },
    {
      name: "refuses a dotted Namespace name (DNS-1123 label)",
      def: defs.namespace, obj: obj("Namespace", { name: "a.b" }),
      want: ["metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"],
    },
    { name: "requires a namespace for namespaced kinds", def: defs.pod, obj: pod({ name: "a" }), want: ["metadata.namespace: Required value"] },
    { name: "forbids a namespace on cluster-scoped kinds", def: defs.node, obj: obj("Node", { name: "n1", namespace: "default" }), want: ["metadata.namespace: Forbidden: not allowed on this type"] },
    {
      name: "refuses label keys with two slashes and label values over 63 characters",
      def: defs.node, obj: obj("Node", { name: "n1", labels: { "a/b/c": "x", ok: "v".repeat(64) } }),
      want: [
        "metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        `metadata.labels: Invalid value: "${"v".repeat(64)}": must be no more than 63 characters`,
      ],
    },
    {
      name: "refuses a label key prefix that is not a subdomain",
      def: defs.node, obj: obj("Node", { name: "n1", labels: { "Berth.io/x": "y" } }),
      want: ["metadata.labels: Invalid value: \"Berth.io/x\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"],
    },
    {
      name: "refuses annotations over 256 KiB in total",
      def: defs.node, obj: obj("Node", { name: "n1", annotations: { big: "x".repeat(262145) } }),
      want: ["metadata.annotations: Too long: may not be more than 262144 bytes"],
    },
    {
      name: "refuses finalizers that are not qualified names, on the list's path",
      def: defs.node, obj: obj("Node", { name: "n1", finalizers: ["berth.io/ok", "a/b/c"] }),
      want: ["metadata.finalizers: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"],
    },
    {
      name: "refuses ownerReferences without uid or apiVersion, and two controllers",
      def: defs.daemonset,
      obj: obj("DaemonSet", { name: "lb", ...ns, ownerReferences: [
        { apiVersion: "v1", kind: "Service", name: "web", uid: "u1", controller: true },
        { apiVersion: "", kind: "Service", name: "db", uid: "", controller: true },
      ] }, { spec: { selector: { matchLabels: { app: "lb" } }, template: podTemplate } }),
      want: [
        'metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty',
        'metadata.ownerReferences.uid: Invalid value: "": uid must not be empty',
        'metadata.ownerReferences: Invalid value: [{"apiVersion":"v1","kind":"Service","name":"web","uid":"u1","controller":true},{"apiVersion":"","kind":"Service","name":"db","uid":"","controller":true}]: Only one reference can have Controller set to true. Found "true" in references for Service/web and Service/db',
      ],
    },
    {
      name: "refuses a pod without containers",
      def: defs.pod, obj: pod({ name: "a", ...ns }, { containers: [] }),
      want: ["spec.containers: Required value"],
    },
    {
      name: "requires container name and image, and refuses duplicate names",
      def: defs.pod, obj: pod({ name: "a", ...ns }, { containers: [{ image: "x" }, { name: "b" }, { name: "b", image: "y" }] }),
      want: ["spec.containers[0].name: Required value", "spec.containers[1].image: Required value", "spec.containers[2].name: Duplicate value: \"b\""],
    },
    {
      name: "refuses a volumeMount of an undeclared volume, a repeated mountPath and a volume without source",
      def: defs.pod,
      obj: pod({ name: "a", ...ns }, {
        volumes: [{ name: "lock", hostPath: { path: "/run/xtables.lock", type: "FileOrCreate" } }, { name: "empty" }],
        containers: [{ name: "app", image: "x", volumeMounts: [{ name: "lock", mountPath: "/run/xtables.lock" }, { name: "modules", mountPath: "/run/xtables.lock" }] }],
      }),
      want: [
        "spec.volumes[1]: Required value: must specify a volume type",
        'spec.containers[0].volumeMounts[1].name: Not found: "modules"',
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/run/xtables.lock": must be unique',
      ],
    },
    {
      name: "refuses two volume sources and a bad hostPath type",
      def: defs.pod,
      obj: pod({ name: "a", ...ns }, { volumes: [{ name: "v", hostPath: { path: "/x", type: "Dir" }, emptyDir: {} }], containers: [{ name: "app", image: "x" }] }),
      want: [
        "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type",
        'spec.volumes[0].hostPath.type: Unsupported value: "Dir": supported values: "", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"',
      ],
    },
    {
      name: "refuses the same hostPort and protocol twice in a pod, and a hostPort unlike containerPort under hostNetwork",
      def: defs.pod,
      obj: pod({ name: "a", ...ns }, { hostNetwork: true, containers: [
        { name: "a", image: "x", ports: [{ containerPort: 80, hostPort: 80, protocol: "TCP" }, { containerPort: 53, hostPort: 53, protocol: "UDP" }] },
        { name: "b", image: "x", ports: [{ containerPort: 8080, hostPort: 80, protocol: "TCP" }, { containerPort: 53, hostPort: 53, protocol: "TCP" }] },
      ] }),
      want: [
        "spec.containers[1].ports[0].containerPort: Invalid value: 8080: must match `hostPort` when `hostNetwork` is true",
        'spec.containers[1].ports[0].hostPort: Duplicate value: "/TCP/80"',
      ],
    },
    {
      name: "refuses malformed tolerations",
      def: defs.pod,
      obj: pod({ name: "a", ...ns }, { containers: [{ name: "a", image: "x" }], tolerations: [
        { operator: "Equal", value: "x" },
        { key: "k", operator: "Exists", value: "v" },
        { key: "k", operator: "Exists", effect: "NoSchedule", tolerationSeconds: 30 },
        { key: "k", operator: "Exists", effect: "Never" },
      ] }),
      want: [
        'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which means "match all values and all keys"',
        'spec.tolerations[1].operator: Invalid value: core.Toleration{Key:"k", Operator:"Exists", Value:"v", Effect:"", TolerationSeconds:(*int64)(nil)}: value must be empty when `operator` is \'Exists\'',
        'spec.tolerations[2].effect: Invalid value: "NoSchedule": effect must be \'NoExecute\' when `tolerationSeconds` is set',
        'spec.tolerations[3].effect: Unsupported value: "Never": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
      ],
    },
    {
      name: "refuses an environment variable name starting with a digit",
      def: defs.pod,
      obj: pod({ name: "a", ...ns }, { containers: [{ name: "a", image: "x", env: [{ name: "1X", value: "y" }] }] }),
      want: ["spec.containers[0].env[0].name: Invalid value: \"1X\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"],
    },
    {
      name: "refuses pod updates beyond images (spec.nodeName goes through binding)",
      def: defs.pod, obj: pod({ name: "a", ...ns }, { nodeName: "n1", containers: [{ name: "app", image: "busybox" }] }),
      old: pod({ name: "a", ...ns }),
      want: ["spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"],
    },
    {
      name: "refuses pod status with an invalid pod IP or two IPs of one family",
      def: defs.pod,
      obj: { ...pod({ name: "a", ...ns }), status: { podIPs: [{ ip: "10.42.0.5" }, { ip: "10.42.0.6" }], hostIPs: [{ ip: "node-1" }] } },
      old: pod({ name: "a", ...ns }),
      want: [
        'status.podIPs: Invalid value: [{"ip":"10.42.0.5"},{"ip":"10.42.0.6"}]: may specify no more than one IP for each IP family',
        'status.hostIPs[0]: Invalid value: "node-1": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
      ],
    },
    {
      name: "allows a pod image update",
      def: defs.pod, obj: pod({ name: "a", ...ns }, { containers: [{ name: "app", image: "busybox:2" }] }), old: pod({ name: "a", ...ns }),
      want: [],
    },
    {
      name: "refuses a renamed object on update",
      def: defs.node, obj: obj("Node", { name: "n2", uid: "u2" }), old: obj("Node", { name: "n1", uid: "u1" }),
      want: ['metadata.name: Invalid value: "n2": field is immutable', 'metadata.uid: Invalid value: "u2": field is immutable'],
    },
    {
      name: "refuses a DaemonSet whose selector does not match its template labels",
      def: defs.daemonset,
      obj: obj("DaemonSet", { name: "lb", ...ns }, { spec: { selector: { matchLabels: { app: "other" } }, template: podTemplate } }),
      want: ['spec.template.metadata.labels: Invalid value: map[string]string{"app":"lb"}: `selector` does not match template `labels`'],
    },
    {
      name: "refuses a DaemonSet without selector (it selects nothing) or template containers",
      def: defs.daemonset,
      obj: obj("DaemonSet", { name: "lb", ...ns }, { spec: { template: { metadata: {}, spec: { containers: [] } } } }),
      want: ["spec.template.metadata.labels: Invalid value: map[string]string{}: `selector` does not match template `labels`", "spec.template.spec.containers: Required value"],
    },
    {
      name: "refuses an empty DaemonSet selector",
      def: defs.daemonset,
      obj: obj("DaemonSet", { name: "lb", ...ns }, { spec: { selector: {}, template: podTemplate } }),
      want: ["spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}: empty selector is invalid for daemonset"],
    },
    {
      name: "accepts a DaemonSet selected by matchExpressions",
      def: defs.daemonset,
      obj: obj("DaemonSet", { name: "lb", ...ns }, { spec: { selector: { matchExpressions: [{ key: "app", operator: "In", values: ["lb"] }] }, template: podTemplate } }),
      want: [],
    },
    {
      name: "refuses a changed DaemonSet selector",
      def: defs.daemonset,
      obj: obj("DaemonSet", { name: "lb", ...ns }, { spec: { selector: { matchLabels: { app: "lb" } }, template: { ...podTemplate, metadata: { labels: { app: "lb", v: "2" } } } } }),
      old: obj("DaemonSet", { name: "lb", ...ns }, { spec: { selector: { matchLabels: { app: "lb", v: "1" } }, template: podTemplate } }),
      want: ["spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{app: lb,},MatchExpressions:[]LabelSelectorRequirement{},}: field is immutable"],
    },
    {
      name: "requires an EndpointSlice addressType and at least one address per endpoint",
      def: defs.slice,
      obj: obj("EndpointSlice", { name: "web-abc", ...ns }, { endpoints: [{ addresses: [] }] }),
      want: ["addressType: Required value", "endpoints[0].addresses: Required value: must contain at least 1 address"],
    },
    {
      name: "refuses an IPv6 address in an IPv4 EndpointSlice",
      def: defs.slice,
      obj: obj("EndpointSlice", { name: "web-abc", ...ns }, { addressType: "IPv4", endpoints: [{ addresses: ["10.42.0.5", "fd00::5"] }] }),
      want: ['endpoints[0].addresses[1]: Invalid value: "fd00::5": must be a valid IPv4 address'],
    },
    {
      name: "refuses a non-positive lease duration",
      def: defs.lease, obj: obj("Lease", { name: "berth-controller", ...ns }, { spec: { holderIdentity: "a", leaseDurationSeconds: 0 } }),
      want: ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"],
    },
    {
      name: "answers 400 for a lease field of the wrong type (a decoding error in kube)",
      def: defs.lease, obj: obj("Lease", { name: "l", ...ns }, { spec: { leaseDurationSeconds: "15" } }),
      code: 400, want: [],
    },
    {
      name: "answers 400 for a renewTime that is not a MicroTime",
      def: defs.lease, obj: obj("Lease", { name: "l", ...ns }, { spec: { renewTime: "yesterday" } }),
      code: 400, want: [],
    },
    {
      name: "answers 400 for a MicroTime with millisecond precision (a JavaScript Date), as kube's RFC3339Micro parse does",
      def: defs.lease, obj: obj("Lease", { name: "l", ...ns }, { spec: { renewTime: "2026-11-24T07:00:00.123Z" } }),
      code: 400, want: [],
    },
    {
      name: "accepts a lease with MicroTime fields",
      def: defs.lease, obj: obj("Lease", { name: "l", ...ns }, { spec: { holderIdentity: "a", leaseDurationSeconds: 15, renewTime: "2026-11-24T07:00:00.123456Z" } }),
      want: [],
    },
    {
      name: "refuses a core Event outside its involved object's namespace",
      def: defs.event, obj: obj("Event", { name: "web.1", namespace: "kube-system" }, { involvedObject: { kind: "Service", namespace: "default", name: "web" } }),
      want: ['involvedObject.namespace: Invalid value: "default": does not match event.namespace'],
    },
    {
      name: "requires the reporting fields of an events.k8s.io Event",
      def: defs.eventsV1, obj: obj("Event", { name: "web.1", ...ns }, { eventTime: "2026-11-24T07:00:00.000000Z", type: "Normal" }),
      want: ["reportingController: Required value", "reportingInstance: Required value", "action: Required value", "reason: Required value"],
    },
    {
      name: "refuses an events.k8s.io Event with a bad type or deprecated fields set",
      def: defs.eventsV1,
      obj: obj("Event", { name: "web.1", ...ns }, { eventTime: "2026-11-24T07:00:00.000000Z", type: "Info", reportingController: "berth.io/controller",
        reportingInstance: "c-1", action: "Allocate", reason: "Allocated", regarding: { kind: "Service", namespace: "default", name: "web" }, deprecatedCount: 2 }),
      want: ["type: Invalid value: \"\": has invalid value: Info", "count: Invalid value: \"\": needs to be unset"],
    },
    {
      name: "answers 400 for an Event whose eventTime has millisecond precision",
      def: defs.eventsV1, obj: obj("Event", { name: "web.1", ...ns }, { eventTime: "2026-11-24T07:00:00.000Z" }),
      code: 400, want: [],
    },
    {
      name: "accepts a new-style Event about a cluster-scoped object in default",
      def: defs.eventsV1,
      obj: obj("Event", { name: "n1.1", ...ns }, { eventTime: "2026-11-24T07:00:00.000000Z", type: "Normal", reportingController: "berth.io/speaker",
        reportingInstance: "speaker-n1", action: "Announce", reason: "Announcing", regarding: { kind: "Node", name: "n1" } }),
      want: [],
    },
    {
      name: "accepts a core Event name that is no DNS subdomain (core events skip name validation)",
      def: defs.event, obj: obj("Event", { name: "Web_1", ...ns }, { involvedObject: { kind: "Service", namespace: "default", name: "web" } }),
      want: [],
    },
    { name: "accepts a valid CRD", def: defs.crd, obj: obj("CustomResourceDefinition", { name: "addresspools.berth.io" }, { spec: goodCrd }), want: [] },
    {
      name: "refuses a CRD whose name is not plural.group",
      def: defs.crd, obj: obj("CustomResourceDefinition", { name: "pools.berth.io" }, { spec: goodCrd }),
      want: ['metadata.name: Invalid value: "pools.berth.io": must be spec.names.plural+"."+spec.group'],
    },
    {
      name: "refuses a CRD without a dotted group, storage version or schema",
      def: defs.crd,
      obj: obj("CustomResourceDefinition", { name: "addresspools.berth" }, {
        spec: { ...goodCrd, group: "berth", versions: [{ name: "v1", served: true, storage: false }] },
      }),
      want: [
        'spec.group: Invalid value: "berth": should be a domain with at least one dot',
        'spec.versions: Invalid value: [{"name":"v1","served":true,"storage":false}]: must have exactly one version marked as storage version',
        "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required",
      ],
    },
    {
      name: "checks a Service's spec along with its metadata",
      def: defs.service, obj: obj("Service", { name: "web", ...ns }, { spec: { type: "Magic", ports: [{ port: 70000 }] } }),
      want: [
        'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
        "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
      ],
    },
    {
      name: "checks a DaemonSet's pod template labels as object metadata",
      def: defs.daemonset,
      obj: obj("DaemonSet", { name: "lb", ...ns }, { spec: { selector: { matchLabels: { app: "lb" } }, template: { ...podTemplate, metadata: { labels: { app: "lb", "bad key!": "x" } } } } }),
      want: ["spec.template.metadata.labels: Invalid value: \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"],
    },
    {
      name: "refuses a ConfigMap key in both data and binaryData, and more than 1 MiB in total",
      def: defs.configmap, obj: obj("ConfigMap", { name: "c", ...ns }, { data: { a: "x".repeat(1024 * 1024) }, binaryData: { a: "eA==" } }),
      want: ['data[a]: Invalid value: "a": duplicate of key present in binaryData', ": Too long: may not be more than 1048576 bytes"],
    },
    {
      name: "refuses ConfigMap keys with slashes",
      def: defs.configmap, obj: obj("ConfigMap", { name: "c", ...ns }, { data: { "a/b": "x" } }),
      want: ["data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = causesOf(() => validateObject(c.def, c.obj, c.old));
      assert.deepEqual(got.causes, c.want);
      assert.equal(got.code, c.code ?? (c.want.length > 0 ? 422 : 0), got.message);
    });
  }

  it("words lease decoding failures as kube's decoder does", () => {
    const micro = causesOf(() => validateObject(defs.lease, obj("Lease", { name: "l", ...ns }, { spec: { renewTime: "2026-11-24T07:00:00Z" } })));
    assert.equal(micro.message, 'Lease in version "v1" cannot be handled as a Lease: parsing time "2026-11-24T07:00:00Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000"');
    const int = causesOf(() => validateObject(defs.lease, obj("Lease", { name: "l", ...ns }, { spec: { leaseDurationSeconds: "15" } })));
    assert.equal(int.message, 'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal string into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32');
  });

  it("renders the message as kube does: qualified kind, name, one cause bare, several in brackets", () => {
    const one = causesOf(() => validateObject(defs.daemonset, obj("DaemonSet", { name: "lb", ...ns }, { spec: { template: podTemplate } })));
    assert.equal(one.message, 'DaemonSet.apps "lb" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"lb"}: `selector` does not match template `labels`');
    const two = causesOf(() => validateObject(defs.pod, pod({ name: "A" })));
    assert.match(two.message, /^Pod "A" is invalid: \[metadata\.name: Invalid value: "A": .*, metadata\.namespace: Required value\]$/);
  });
});
