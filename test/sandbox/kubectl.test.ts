// The real kubectl (1.32, /usr/bin/kubectl) against the sandbox API server over HTTP: everything asserted here is
// kubectl's own output, so a server that answers differently from kube-apiserver shows up as a kubectl failure or
// a different line on the screen. With BERTH_TEST_KUBECONFIG set, the same tests run against that cluster instead
// (a disposable one without a LoadBalancer controller, e.g. kind): that is how the sandbox is held against a real
// kube-apiserver.
/* eslint-disable @typescript-eslint/no-explicit-any -- kubectl's JSON output is read field by field, as untyped JSON */
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApiServer } from "../../src/sandbox/apiserver/index.js";
import { writeKubeconfig } from "../../src/sandbox/kubeconfig.js";
import { skipBecause } from "../support/skip.js";

const KUBECTL = "/usr/bin/kubectl";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

type Server = Awaited<ReturnType<typeof startApiServer>>;

describe("kubectl against the sandbox API server", function () {
  this.timeout(30_000);
  let server: Server | undefined;
  let dir = "";
  let kubeconfig = "";
  const children: ChildProcess[] = [];

  let external = false;
  const createdNamespaces: string[] = [];

  // Skipped per test (not in `before`), so that every skipped test's title carries the reason.
  beforeEach(function () {
    if (!existsSync(KUBECTL)) skipBecause(this, "kubectl is not installed at /usr/bin/kubectl (.ci/run installs it)");
  });

  before(async () => {
    if (!existsSync(KUBECTL)) return;
    dir = mkdtempSync(join(tmpdir(), "berth-b2-kubectl-"));
    const target = process.env.BERTH_TEST_KUBECONFIG;
    if (target) {
      external = true;
      kubeconfig = target;
      return;
    }
    // kubectl sends a kubeconfig's bearer token only over TLS, as a real cluster is served.
    server = await startApiServer({ port: 0, tls: true });
    kubeconfig = join(dir, "kubeconfig");
    writeKubeconfig(kubeconfig, { server: server.url, token: server.token, caCert: server.caCert ?? "" });
  });

  after(async () => {
    for (const child of children) child.kill("SIGKILL");
    if (kubeconfig && external) {
      // Leave a real cluster as we found it; the sandbox just goes away.
      if (createdNamespaces.length > 0) await kubectl(["delete", "namespace", "--wait=false", "--ignore-not-found", ...createdNamespaces]);
      await kubectl(["delete", "crd", "--ignore-not-found", "addresspools.b2.berth.test"]);
    }
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** kubectl, asynchronously: the server runs in this process, so a synchronous spawn would deadlock. */
  function kubectl(args: string[], input?: string): Promise<Run> {
    return new Promise((done, fail) => {
      const child = spawn(KUBECTL, ["--kubeconfig", kubeconfig, "--cache-dir", join(dir, "cache"), ...args], { stdio: "pipe" });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      child.on("error", fail);
      child.on("close", (code) => {
        clearTimeout(timer);
        done({ code, stdout, stderr });
      });
      child.stdin.end(input ?? "");
    });
  }

  async function ok(args: string[], input?: string): Promise<string> {
    const r = await kubectl(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(" ")} failed:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  async function json(args: string[]): Promise<Record<string, any>> {
    return JSON.parse(await ok([...args, "-o", "json"])) as Record<string, any>;
  }

  /** A raw POST through kubectl (works the same against the sandbox and a real cluster), answering the created object. */
  async function post(path: string, body: unknown): Promise<Record<string, any>> {
    return JSON.parse(await ok(["create", "--raw", path, "-f", "-"], JSON.stringify(body))) as Record<string, any>;
  }

  /** A merge patch of the status subresource, as a controller writes status. */
  async function patchStatus(resource: string, name: string, ns: string, status: unknown): Promise<void> {
    await ok(["patch", resource, name, "-n", ns, "--subresource=status", "--type", "merge", "-p", JSON.stringify({ status })]);
  }

  /** Splits kubectl's table output into rows of whitespace-separated cells. */
  const table = (out: string): string[][] => out.trim().split("\n").map((line) => line.trim().split(/\s{2,}/));

  let nsCounter = 0;
  async function namespace(): Promise<string> {
    const name = `b2-${process.pid}-${++nsCounter}`;
    // kubectl's create generators send protobuf bodies.
    assert.equal((await ok(["create", "namespace", name])).trim(), `namespace/${name} created`);
    createdNamespaces.push(name);
    return name;
  }

  describe("apply -f (client-side apply)", () => {
    it("creates, then configures with a three-way merge that removes dropped keys and records last-applied", async () => {
      const ns = await namespace();
      const manifest = (data: Record<string, string>, labels: Record<string, string> = {}): string =>
        JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "settings", namespace: ns, labels }, data });
      const file = join(dir, `cm-${ns}.json`);

      writeFileSync(file, manifest({ a: "1", b: "2" }));
      assert.equal((await ok(["apply", "-f", file])).trim(), "configmap/settings created");

      writeFileSync(file, manifest({ a: "10" }, { tier: "front" }));
      assert.equal((await ok(["apply", "-f", file])).trim(), "configmap/settings configured");
      const cm = await json(["get", "configmap", "settings", "-n", ns]);
      assert.deepEqual(cm.data, { a: "10" });
      assert.deepEqual(cm.metadata.labels, { tier: "front" });
      const lastApplied = JSON.parse(cm.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]) as Record<string, any>;
      assert.deepEqual(lastApplied.data, { a: "10" });

      assert.equal((await ok(["apply", "-f", file])).trim(), "configmap/settings unchanged");
    });

    it("applies a Namespace, a LoadBalancer Service, a ConfigMap, a DaemonSet, a CRD and a custom resource", async () => {
      const ns = `b2-apply-${process.pid}`;
      createdNamespaces.push(ns);
      const crd = {
        apiVersion: "apiextensions.k8s.io/v1",
        kind: "CustomResourceDefinition",
        metadata: { name: "addresspools.b2.berth.test" },
        spec: {
          group: "b2.berth.test",
          scope: "Namespaced",
          names: { plural: "addresspools", singular: "addresspool", kind: "AddressPool", shortNames: ["b2pool"] },
          versions: [{
            name: "v1", served: true, storage: true,
            schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
            subresources: { status: {} },
            additionalPrinterColumns: [
              { name: "Range", type: "string", jsonPath: ".spec.range" },
              { name: "Free", type: "integer", jsonPath: ".status.free" },
              { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
            ],
          }],
        },
      };
      writeFileSync(join(dir, "crd.json"), JSON.stringify(crd));
      assert.equal((await ok(["apply", "-f", join(dir, "crd.json")])).trim(), "customresourcedefinition.apiextensions.k8s.io/addresspools.b2.berth.test created");
      await ok(["wait", "--for", "condition=established", "--timeout", "10s", "crd/addresspools.b2.berth.test"]);

      const objects = [
        { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
        {
          apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: ns },
          spec: { type: "LoadBalancer", selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
        },
        { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "pool", namespace: ns }, data: { range: "192.0.2.0/28" } },
        {
          apiVersion: "apps/v1", kind: "DaemonSet", metadata: { name: "svclb-web", namespace: ns },
          spec: {
            selector: { matchLabels: { app: "svclb-web" } },
            template: {
              metadata: { labels: { app: "svclb-web" } },
              spec: { nodeSelector: { "kubernetes.io/os": "linux" }, containers: [{ name: "lb-tcp-80", image: "berth:dev" }] },
            },
          },
        },
        { apiVersion: "b2.berth.test/v1", kind: "AddressPool", metadata: { name: "lan", namespace: ns }, spec: { range: "192.0.2.0/28" } },
      ];
      // A multi-document YAML stream (JSON is YAML; the leading comment keeps kubectl from reading it as a JSON stream).
      writeFileSync(join(dir, "set.yaml"), `# berth sandbox test manifests\n${objects.map((o) => JSON.stringify(o)).join("\n---\n")}\n`);
      const applied = (await ok(["apply", "-f", join(dir, "set.yaml")])).trim().split("\n");
      assert.deepEqual(applied, [
        `namespace/${ns} created`,
        "service/web created",
        "configmap/pool created",
        "daemonset.apps/svclb-web created",
        "addresspool.b2.berth.test/lan created",
      ]);

      const svc = table(await ok(["get", "svc", "-n", ns]));
      assert.deepEqual(svc[0], ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]);
      assert.equal(svc[1]?.[0], "web");
      assert.equal(svc[1]?.[1], "LoadBalancer");
      assert.match(svc[1]?.[2] ?? "", /^\d+\.\d+\.\d+\.\d+$/);
      assert.equal(svc[1]?.[3], "<pending>");
      assert.match(svc[1]?.[4] ?? "", /^80:3\d{4}\/TCP$/);

      const ds = table(await ok(["get", "ds", "-n", ns]));
      assert.deepEqual(ds[0], ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"]);
      assert.deepEqual(ds[1]?.slice(0, 7), ["svclb-web", "0", "0", "0", "0", "0", "kubernetes.io/os=linux"]);

      await patchStatus("addresspools.b2.berth.test", "lan", ns, { free: 14 });
      const pools = table(await ok(["get", "b2pool", "-n", ns]));
      assert.deepEqual(pools[0], ["NAME", "RANGE", "FREE", "AGE"]);
      assert.deepEqual(pools[1]?.slice(0, 3), ["lan", "192.0.2.0/28", "14"]);

      const crds = table(await ok(["get", "crd", "addresspools.b2.berth.test"]));
      assert.deepEqual(crds[0], ["NAME", "CREATED AT"]);
      assert.match(crds[1]?.[1] ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    });
  });

  describe("get", () => {
    let ns = "";
    before(async () => {
      if (!existsSync(KUBECTL)) return;
      ns = await namespace();
      await post(`/api/v1/namespaces/${ns}/services`, {
        apiVersion: "v1", kind: "Service", metadata: { name: "web", namespace: ns, labels: { app: "web" } },
        spec: { type: "LoadBalancer", selector: { app: "web" }, ports: [{ name: "http", port: 80, protocol: "TCP" }, { name: "dns", port: 53, protocol: "UDP" }] },
      });
    });

    it("prints -o yaml and -o json of the stored object", async () => {
      const yaml = await ok(["get", "svc", "web", "-n", ns, "-o", "yaml"]);
      assert.match(yaml, /^apiVersion: v1\nkind: Service\nmetadata:\n/);
      assert.match(yaml, /\n {2}name: web\n/);
      assert.match(yaml, /\n {2}type: LoadBalancer\n/);
      const obj = await json(["get", "svc", "web", "-n", ns]);
      assert.equal(obj.kind, "Service");
      assert.equal(obj.metadata.namespace, ns);
      assert.match(obj.metadata.uid, /^[0-9a-f-]{36}$/);
      const list = await json(["get", "svc", "-n", ns]);
      assert.equal(list.kind, "List");
      assert.deepEqual(list.items.map((i: any) => i.metadata.name), ["web"]);
    });

    it("has the default/kubernetes Service every cluster has", async () => {
      const rows = table(await ok(["get", "svc", "kubernetes", "-n", "default"]));
      assert.deepEqual([rows[1]?.[0], rows[1]?.[1], rows[1]?.[3], rows[1]?.[4]], ["kubernetes", "ClusterIP", "<none>", "443/TCP"]);
      assert.match(rows[1]?.[2] ?? "", /^[0-9a-f.:]+$/);
    });

    it("shows the selector column with -o wide and filters with -l", async () => {
      const wide = table(await ok(["get", "svc", "-n", ns, "-o", "wide"]));
      assert.deepEqual(wide[0], ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]);
      assert.equal(wide[1]?.[6], "app=web");
      assert.match(wide[1]?.[4] ?? "", /^80:\d+\/TCP,53:\d+\/UDP$/);
      const none = await kubectl(["get", "svc", "-n", ns, "-l", "app=other"]);
      assert.equal(none.code, 0);
      assert.equal(none.stderr.trim(), `No resources found in ${ns} namespace.`);
    });

    it("shows EXTERNAL-IP <pending>, then the address a status update sets, also in -w", async () => {
      const before = table(await ok(["get", "svc", "web", "-n", ns]));
      assert.equal(before[1]?.[3], "<pending>");

      // -v=6 logs the watch request once its response headers arrive, i.e. once the server has registered the watch.
      const watch = spawn(KUBECTL, ["--kubeconfig", kubeconfig, "--cache-dir", join(dir, "cache"), "get", "svc", "web", "-n", ns, "-w", "-v=6"]);
      children.push(watch);
      let out = "";
      let log = "";
      watch.stdout.on("data", (d: Buffer) => (out += d.toString()));
      watch.stderr.on("data", (d: Buffer) => (log += d.toString()));
      const seen = async (what: string, done: () => boolean): Promise<void> => {
        const deadline = Date.now() + 15_000;
        while (!done()) {
          if (Date.now() > deadline) throw new Error(`kubectl -w never showed ${what}; stdout:\n${out}\nlog:\n${log}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await seen("the pending row", () => /^web\s+LoadBalancer\s+\S+\s+<pending>/m.test(out));
      // A single object is watched from resourceVersion 0 and kubectl drops that watch's first (synthetic ADDED)
      // event; a status written before the watch is registered would arrive inside that dropped event, on a real
      // cluster too. So write it only once the watch is established.
      await seen("the watch request", () => /watch=true 200 OK/.test(log));
      await patchStatus("service", "web", ns, { loadBalancer: { ingress: [{ ip: "192.0.2.10", ipMode: "VIP" }] } });
      await seen("the address", () => /^web\s+LoadBalancer\s+\S+\s+192\.0\.2\.10\s/m.test(out));
      watch.kill("SIGTERM");

      const after = table(await ok(["get", "svc", "web", "-n", ns]));
      assert.equal(after[1]?.[3], "192.0.2.10");
    });
  });

  it("prints nodes, pods, events, leases and endpointslices with the columns and cells of a real cluster", async function () {
    if (external) skipBecause(this, "creates a Node object, which a real cluster's node controller would act on");
    const ns = await namespace();
    const past = (seconds: number): string => new Date(Date.now() - seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
    const node = `b2-node-${process.pid}`;
    const objects = [
      {
        apiVersion: "v1", kind: "Node", metadata: { name: node, labels: { "node-role.kubernetes.io/control-plane": "" } },
        spec: { unschedulable: true },
        status: {
          conditions: [{ type: "Ready", status: "True" }], addresses: [{ type: "InternalIP", address: "172.31.0.2" }],
          nodeInfo: { kubeletVersion: "v1.32.0", osImage: "Debian GNU/Linux 12 (bookworm)", kernelVersion: "6.1.0", containerRuntimeVersion: "containerd://1.7.0" },
        },
      },
      { apiVersion: "v1", kind: "Pod", metadata: { name: "web-1", namespace: ns }, spec: { nodeName: node, containers: [{ name: "web", image: "nginx" }, { name: "side", image: "busybox" }] } },
      {
        apiVersion: "v1", kind: "Event", metadata: { name: "web-1.started", namespace: ns },
        involvedObject: { apiVersion: "v1", kind: "Pod", name: "web-1", namespace: ns }, reason: "Scheduled", message: "assigned to a node",
        type: "Normal", source: { component: "default-scheduler" }, firstTimestamp: past(3600), lastTimestamp: past(1800), count: 3,
      },
      { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: "berth-controller", namespace: ns }, spec: { holderIdentity: "controller-0", leaseDurationSeconds: 15 } },
      {
        apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", metadata: { name: "web-x1", namespace: ns, labels: { "kubernetes.io/service-name": "web" } },
        addressType: "IPv4", ports: [{ name: "http", port: 8080, protocol: "TCP" }], endpoints: [{ addresses: ["10.42.0.5"] }, { addresses: ["10.42.1.7"] }],
      },
    ];
    await ok(["create", "-f", "-"], objects.map((o) => JSON.stringify(o)).join("\n"));
    try {
      const nodes = table(await ok(["get", "node", node, "-o", "wide"]));
      assert.deepEqual(nodes[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]);
      assert.deepEqual([...(nodes[1] ?? []).slice(0, 3), ...(nodes[1] ?? []).slice(4)],
        [node, "Ready,SchedulingDisabled", "control-plane", "v1.32.0", "172.31.0.2", "<none>", "Debian GNU/Linux 12 (bookworm)", "6.1.0", "containerd://1.7.0"]);

      const pods = table(await ok(["get", "pods", "-n", ns, "-o", "wide"]));
      assert.deepEqual(pods[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
      assert.deepEqual([...(pods[1] ?? []).slice(0, 4), ...(pods[1] ?? []).slice(5)], ["web-1", "0/2", "Pending", "0", "<none>", node, "<none>", "<none>"]);

      assert.deepEqual(table(await ok(["get", "events", "-n", ns])), [
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        ["30m", "Normal", "Scheduled", "pod/web-1", "assigned to a node"],
      ]);
      const leases = table(await ok(["get", "leases", "-n", ns]));
      assert.deepEqual(leases[0], ["NAME", "HOLDER", "AGE"]);
      assert.deepEqual(leases[1]?.slice(0, 2), ["berth-controller", "controller-0"]);
      const slices = table(await ok(["get", "endpointslices", "-n", ns]));
      assert.deepEqual(slices[0], ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
      assert.deepEqual(slices[1]?.slice(0, 4), ["web-x1", "IPv4", "8080", "10.42.0.5,10.42.1.7"]);
    } finally {
      await ok(["delete", "node", node]);
    }
  });

  it("creates a LoadBalancer service with kubectl's generator (a protobuf body)", async () => {
    const ns = await namespace();
    assert.equal((await ok(["create", "service", "loadbalancer", "lb", "-n", ns, "--tcp=80:8080"])).trim(), "service/lb created");
    const svc = await json(["get", "svc", "lb", "-n", ns]);
    assert.deepEqual(svc.spec.selector, { app: "lb" });
    assert.equal(svc.spec.ports[0].targetPort, 8080);
    assert.equal(table(await ok(["get", "svc", "lb", "-n", ns]))[1]?.[3], "<pending>");
  });

  it("rejects unknown fields (kubectl's strict validation), warns with --validate=warn, and never stores them", async () => {
    const ns = await namespace();
    const svc = (name: string): string => JSON.stringify({
      apiVersion: "v1", kind: "Service", metadata: { name },
      spec: { type: "LoadBalancer", bogus: 1, ports: [{ port: 80 }] },
    });
    const strict = await kubectl(["create", "-n", ns, "-f", "-"], svc("strict"));
    assert.equal(strict.code, 1);
    assert.equal(strict.stderr.trim(),
      'Error from server (BadRequest): error when creating "STDIN": Service in version "v1" cannot be handled as a Service: strict decoding error: unknown field "spec.bogus"');

    const warned = await kubectl(["create", "-n", ns, "--validate=warn", "-f", "-"], svc("warned"));
    assert.equal(warned.code, 0, warned.stderr);
    assert.equal(warned.stdout.trim(), "service/warned created");
    assert.match(warned.stderr, /^Warning: unknown field "spec\.bogus"$/m);
    assert.equal((await json(["get", "svc", "warned", "-n", ns])).spec.bogus, undefined);
  });

  it("answers a field of the wrong JSON type with kube's 400 decoding error", async () => {
    const ns = await namespace();
    // YAML 1.1 reads an unquoted Y as true: a classic way to send a boolean where a string belongs.
    const manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n    env:\n    - name: Y\n      value: \"1\"\n";
    const r = await kubectl(["create", "-n", ns, "-f", "-"], manifest);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(),
      'Error from server (BadRequest): error when creating "STDIN": Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal bool into Go struct field EnvVar.spec.containers.env.name of type string');
  });

  it("pages a list with --chunk-size and shows every object once", async () => {
    const ns = await namespace();
    const names = ["c1", "c2", "c3", "c4", "c5"];
    await ok(["create", "-n", ns, "-f", "-"], names.map((name) => JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name } })).join("\n"));
    const rows = table(await ok(["get", "configmaps", "-n", ns, "--chunk-size=2"]));
    assert.deepEqual(rows.map((r) => r[0]), ["NAME", ...names]);
  });

  it("describes a service with the core/v1 and events.k8s.io/v1 events that involve it", async () => {
    const ns = await namespace();
    const svc = await post(`/api/v1/namespaces/${ns}/services`, {
      apiVersion: "v1", kind: "Service", metadata: { name: "web" }, spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
    });
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    await post(`/api/v1/namespaces/${ns}/events`, {
      apiVersion: "v1", kind: "Event", metadata: { name: "web.1" },
      involvedObject: { apiVersion: "v1", kind: "Service", name: "web", namespace: ns, uid: svc.metadata.uid, resourceVersion: svc.metadata.resourceVersion },
      reason: "AllocationFailed", message: "no free address in pool lan", type: "Warning",
      source: { component: "berth-controller" }, firstTimestamp: now, lastTimestamp: now, count: 1,
    });
    await post(`/apis/events.k8s.io/v1/namespaces/${ns}/events`, {
      apiVersion: "events.k8s.io/v1", kind: "Event", metadata: { name: "web.2" }, eventTime: new Date().toISOString().replace("Z", "000Z"),
      reportingController: "berth.io/controller", reportingInstance: "controller-0", action: "Allocate", reason: "IPAllocated",
      note: "192.0.2.7 from pool lan", type: "Normal",
      regarding: { apiVersion: "v1", kind: "Service", name: "web", namespace: ns, uid: svc.metadata.uid },
    });
    const out = await ok(["describe", "service", "web", "-n", ns]);
    assert.match(out, /^Name:\s+web$/m);
    assert.match(out, /^Type:\s+LoadBalancer$/m);
    assert.match(out, /^Events:\n\s+Type\s+Reason\s+Age\s+From\s+Message\n\s+----/m);
    assert.match(out, /^\s+Warning\s+AllocationFailed\s+\d+s\s+berth-controller\s+no free address in pool lan$/m);
    assert.match(out, /^\s+Normal\s+IPAllocated\s+\d+s\s+berth\.io\/controller\s+192\.0\.2\.7 from pool lan$/m);
  });

  it("labels and annotates, refusing to overwrite without --overwrite, and removes with key-", async () => {
    const ns = await namespace();
    assert.equal((await ok(["create", "configmap", "c", "-n", ns, "--from-literal=a=1"])).trim(), "configmap/c created");
    assert.deepEqual((await json(["get", "configmap", "c", "-n", ns])).data, { a: "1" });
    assert.equal((await ok(["label", "configmap", "c", "-n", ns, "tier=front"])).trim(), "configmap/c labeled");
    const clash = await kubectl(["label", "configmap", "c", "-n", ns, "tier=back"]);
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /'tier' already has a value \(front\), and --overwrite is false/);
    await ok(["label", "configmap", "c", "-n", ns, "tier=back", "--overwrite"]);
    assert.deepEqual((await json(["get", "configmap", "c", "-n", ns])).metadata.labels, { tier: "back" });
    assert.equal((await ok(["label", "configmap", "c", "-n", ns, "tier-"])).trim(), "configmap/c unlabeled");
    // kube drops an emptied omitempty map: no `labels: {}` left behind.
    assert.equal((await json(["get", "configmap", "c", "-n", ns])).metadata.labels, undefined);

    assert.equal((await ok(["annotate", "configmap", "c", "-n", ns, "berth.test/owner=b2"])).trim(), "configmap/c annotated");
    await ok(["annotate", "configmap", "c", "-n", ns, "berth.test/owner=b3", "--overwrite"]);
    assert.equal((await json(["get", "configmap", "c", "-n", ns])).metadata.annotations["berth.test/owner"], "b3");
    await ok(["annotate", "configmap", "c", "-n", ns, "berth.test/owner-"]);
    assert.equal((await json(["get", "configmap", "c", "-n", ns])).metadata.annotations, undefined);
  });

  it("patches with strategic merge (ports merged by port), merge (list replaced) and JSON patch", async () => {
    const ns = await namespace();
    await post(`/api/v1/namespaces/${ns}/services`, {
      apiVersion: "v1", kind: "Service", metadata: { name: "web" }, spec: { ports: [{ name: "http", port: 80, protocol: "TCP" }] },
    });
    const httpsPort = { name: "https", port: 443, protocol: "TCP" };
    assert.equal((await ok(["patch", "svc", "web", "-n", ns, "-p", JSON.stringify({ spec: { ports: [httpsPort] } })])).trim(), "service/web patched");
    let ports = (await json(["get", "svc", "web", "-n", ns])).spec.ports.map((p: any) => p.port);
    assert.deepEqual(ports.sort(), [443, 80]);

    await ok(["patch", "svc", "web", "-n", ns, "--type", "merge", "-p", JSON.stringify({ spec: { ports: [{ name: "dns", port: 53, protocol: "UDP" }] } })]);
    ports = (await json(["get", "svc", "web", "-n", ns])).spec.ports.map((p: any) => p.port);
    assert.deepEqual(ports, [53]);

    await ok(["patch", "svc", "web", "-n", ns, "--type", "json", "-p", JSON.stringify([{ op: "add", path: "/metadata/labels", value: { app: "web" } }])]);
    assert.deepEqual((await json(["get", "svc", "web", "-n", ns])).metadata.labels, { app: "web" });

    const bad = await kubectl(["patch", "svc", "web", "-n", ns, "--type", "json", "-p", JSON.stringify([{ op: "test", path: "/metadata/name", value: "other" }])]);
    assert.equal(bad.code, 1);
    // A failed JSON patch test op is a 422 Invalid without causes (kube-apiserver's NewGenericServerResponse).
    assert.equal(bad.stderr.trim(), "The request is invalid: the server rejected our request due to an error in our request");
  });

  it("deletes an object with a finalizer only once the finalizer is removed, keeping it with a deletionTimestamp meanwhile", async () => {
    const ns = await namespace();
    await post(`/api/v1/namespaces/${ns}/configmaps`, {
      apiVersion: "v1", kind: "ConfigMap", metadata: { name: "held", finalizers: ["berth.test/hold"] }, data: { a: "1" },
    });
    assert.equal((await ok(["delete", "configmap", "held", "-n", ns, "--wait=false"])).trim(), 'configmap "held" deleted');
    const held = await json(["get", "configmap", "held", "-n", ns]);
    assert.match(held.metadata.deletionTimestamp, /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(held.metadata.finalizers, ["berth.test/hold"]);

    await ok(["patch", "configmap", "held", "-n", ns, "--type", "json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]']);
    const gone = await kubectl(["get", "configmap", "held", "-n", ns]);
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr.trim(), 'Error from server (NotFound): configmaps "held" not found');
  });

  it("waits in a plain delete until the finalizer goes", async () => {
    const ns = await namespace();
    await post(`/api/v1/namespaces/${ns}/configmaps`, {
      apiVersion: "v1", kind: "ConfigMap", metadata: { name: "held", finalizers: ["berth.test/hold"] },
    });
    const deleting = kubectl(["delete", "configmap", "held", "-n", ns, "--timeout=15s"]);
    let finished = false;
    void deleting.then(() => (finished = true));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(finished, false, "kubectl delete returned while the finalizer still held the object");
    await ok(["patch", "configmap", "held", "-n", ns, "--type", "merge", "-p", '{"metadata":{"finalizers":null}}']);
    const r = await deleting;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'configmap "held" deleted');
  });

  it("reports a missing object and an unknown kind the way kube-apiserver does", async () => {
    const missing = await kubectl(["get", "svc", "nope", "-n", "default"]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim(), 'Error from server (NotFound): services "nope" not found');
    const unknown = await kubectl(["get", "frobnicators"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /the server doesn't have a resource type "frobnicators"/);
  });
  describe("Deployments, as a quick start types them", () => {
    it("creates a Deployment (protobuf), scales it through the scale subresource, sets its image, restarts, labels, annotates", async () => {
      const ns = await namespace();
      assert.equal((await ok(["create", "deployment", "web", "-n", ns, "--image=nginx", "--replicas=3", "--port=80"])).trim(), "deployment.apps/web created");
      const created = await json(["get", "deployment", "web", "-n", ns]);
      assert.equal(created.metadata.generation, 1);
      assert.deepEqual(created.spec.strategy, { type: "RollingUpdate", rollingUpdate: { maxSurge: "25%", maxUnavailable: "25%" } });
      assert.deepEqual(created.spec.template.spec.containers[0].ports, [{ containerPort: 80, protocol: "TCP" }]);

      assert.equal((await ok(["scale", "deployment/web", "-n", ns, "--replicas=5"])).trim(), "deployment.apps/web scaled");
      const scale = await json(["get", "deployment", "web", "-n", ns, "--subresource=scale"]);
      assert.equal(scale.kind, "Scale");
      assert.equal(scale.apiVersion, "autoscaling/v1");
      assert.equal(scale.spec.replicas, 5);
      assert.equal(scale.status.selector, "app=web");
      const negative = await kubectl(["patch", "deployment", "web", "-n", ns, "--subresource=scale", "--type=merge", "-p", '{"spec":{"replicas":-1}}']);
      assert.equal(negative.code, 1);
      assert.match(negative.stderr, /The Scale "web" is invalid: spec\.replicas: Invalid value: -1: must be greater than or equal to 0/);

      assert.equal((await ok(["set", "image", "deployment/web", "-n", ns, "nginx=nginx:1.27"])).trim(), "deployment.apps/web image updated");
      assert.equal((await ok(["rollout", "restart", "deployment/web", "-n", ns])).trim(), "deployment.apps/web restarted");
      assert.equal((await ok(["label", "deployment", "web", "-n", ns, "tier=front"])).trim(), "deployment.apps/web labeled");
      assert.equal((await ok(["annotate", "deployment", "web", "-n", ns, "kubernetes.io/change-cause=nginx 1.27"])).trim(), "deployment.apps/web annotated");
      const changed = await json(["get", "deployment", "web", "-n", ns]);
      assert.equal(changed.spec.replicas, 5);
      assert.equal(changed.spec.template.spec.containers[0].image, "nginx:1.27");
      assert.ok(changed.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]);
      assert.equal(changed.metadata.generation, 4, "scale, set image and restart each changed the spec");

      const rows = table(await ok(["get", "deployment", "web", "-n", ns, "-o", "wide"]));
      assert.deepEqual(rows[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]);
      assert.deepEqual([rows[1]?.[0], rows[1]?.[5], rows[1]?.[6], rows[1]?.[7]], ["web", "nginx", "nginx:1.27", "app=web"]);
      assert.match(rows[1]?.[1] ?? "", /^\d\/5$/);
    });
  });
});
