// `berth doctor` against the sandbox API server over HTTP, with the real controller and the fake kubelet making the
// objects a cluster would have (DaemonSet, lb-pods, conditions, Events). Where the fake kubelet has no switch for a
// state (a rejected pod, a crash loop, a failed pull), the test stops it and writes the pod status and the Event the
// way the real kubelet does, so the doctor reads exactly what `kubectl describe` would show.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

import { collect } from "../../../src/doctor/collect.js";
import { runDoctor } from "../../../src/doctor/command.js";
import { diagnose, type DiagnoseOptions } from "../../../src/doctor/diagnose.js";
import { renderText } from "../../../src/doctor/render.js";
import { REASONS, type Diagnosis } from "../../../src/doctor/types.js";
import { KubeClient } from "../../../src/lib/kube/client.js";
import { CONDITION_TYPES } from "../../../src/lib/names.js";
import {
  condition, create, getObj, mergePatch, node, nodePath, NS, service, startController, startEnv, svcPath, waitFor,
  waitForIngress, type Env, type Obj, type TestController,
} from "../controller/support.js";

const CLI = fileURLToPath(new URL("../../../dist/cli.js", import.meta.url));
const SVCS = "/api/v1/namespaces/default/services";
const SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const PODS = `/api/v1/namespaces/${NS}/pods`;

function endpointSlice(svc: string, endpoints: { ip: string; node: string; ready: boolean }[]): Obj {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: `${svc}-abc12`, labels: { "kubernetes.io/service-name": svc } },
    addressType: "IPv4",
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], nodeName: e.node, conditions: { ready: e.ready } })),
    ports: [{ name: "p0", port: 8080, protocol: "TCP" }],
  };
}

/** A Service with one ready backend on n1, as the EndpointSlice controller would make it. */
async function createWithBackend(env: Env, name: string, spec: Parameters<typeof service>[1] = {}): Promise<void> {
  await create(env.client, SVCS, service(name, spec));
  await create(env.client, SLICES, endpointSlice(name, [{ ip: "10.42.0.5", node: "n1", ready: true }]));
}

/** An Event as the kubelet records it about a pod (record.EventRecorder, source kubelet). */
async function kubeletEvent(env: Env, pod: Obj, reason: string, message: string): Promise<void> {
  const stamp = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  await create(env.client, `/api/v1/namespaces/${NS}/events`, {
    metadata: { name: `${pod.metadata.name}.${Date.now().toString(16)}` },
    involvedObject: { apiVersion: "v1", kind: "Pod", namespace: NS, name: pod.metadata.name, uid: pod.metadata.uid },
    reason, message, type: "Warning", source: { component: "kubelet", host: pod.spec.nodeName },
    firstTimestamp: stamp, lastTimestamp: stamp, count: 1,
  });
}

async function lbPods(env: Env, name: string, count: number): Promise<Obj[]> {
  return waitFor(`${count} lb-pods of ${name}`, async () => {
    const res = await env.client.get(`${PODS}?labelSelector=${encodeURIComponent(`berth.dev/service-name=${name}`)}`);
    const items = (res.body?.items ?? []) as Obj[];
    return items.length === count && items.every((p) => p.spec.nodeName) ? items : undefined;
  });
}

/** The built CLI in a child process (asynchronously: the API server answering it lives in this process). */
function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, "doctor", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

describe("berth doctor against the sandbox API server", function () {
  this.timeout(20_000);
  let env: Env;
  let ctl: TestController | undefined;
  let client: KubeClient;

  const doctor = async (name: string, options: DiagnoseOptions = {}): Promise<Diagnosis> =>
    diagnose(await collect(client, { namespace: "default", name, controllerNamespace: NS }), options);
  /** Polls until the doctor's main finding is `code` (the controller and kubelet get there in their own time). */
  const doctorSays = async (name: string, code: string, options: DiagnoseOptions = {}): Promise<Diagnosis> => {
    let last: Diagnosis | undefined;
    try {
      return await waitFor(`doctor says ${code} for ${name}`, async () => {
        last = await doctor(name, options);
        return last.findings[0]?.code === code ? last : undefined;
      });
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${last ? renderText(last) : ""}`, { cause: e });
    }
  };
  const mainText = (d: Diagnosis): string => {
    const f = d.findings[0];
    return f ? [d.headline, f.summary, f.why, f.fix, ...f.evidence].join("\n") : d.headline;
  };

  beforeEach(async () => {
    env = await startEnv();
    client = new KubeClient({ server: env.server.url, authHeaders: () => ({ Authorization: `Bearer ${env.server.token}` }) });
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.51" }));
    await create(env.client, nodePath(), node("n2", { internalIp: "192.0.2.52" }));
  });
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    client.close();
    await env?.close();
  });

  it("says healthy with the EXTERNAL-IPs and exits 0, through a kubeconfig as a user runs it", async () => {
    ctl = await startController(env, { identity: "ctl-a" });
    await createWithBackend(env, "web");
    await waitForIngress(env.client, "web", ["192.0.2.51", "192.0.2.52"]);
    let out = "";
    const code = await runDoctor({ service: "web", namespace: "default", controllerNamespace: NS, kubeconfig: env.kubeconfig, output: "text" }, (t) => (out += t));
    assert.equal(code, 0, out);
    assert.match(out, /^default\/web is healthy: EXTERNAL-IP 192\.0\.2\.51, 192\.0\.2\.52\n/);
    assert.match(out, /INFO Serving: serving on 192\.0\.2\.51, 192\.0\.2\.52 \(lb-pods Ready on nodes n1 and n2\)/);
  });

  it("says a ClusterIP Service is not a LoadBalancer, and another class is not berth's", async () => {
    ctl = await startController(env, { identity: "ctl-a" });
    await createWithBackend(env, "plain", { type: "ClusterIP" });
    await create(env.client, SVCS, service("other", { loadBalancerClass: "example.com/lb" }));
    assert.equal((await doctorSays("plain", REASONS.notLoadBalancer)).healthy, false);
    assert.match(mainText(await doctorSays("other", REASONS.otherClass)), /loadBalancerClass is example\.com\/lb/);
  });

  it("says the controller leaves Services without a class alone when it runs with --ignore-unset-class", async () => {
    ctl = await startController(env, { identity: "ctl-a", claimUnsetClass: false });
    await createWithBackend(env, "web");
    await waitFor("the controller looked at it", async () => (ctl?.controller.stats.reconciles["not-ours"] ?? 0) > 0);
    // The Service is seconds old here; a real run waits 30 s before concluding, the test asks at once.
    const d = await doctorSays("web", REASONS.unsetClassIgnored, { settleMs: 0 });
    assert.match(mainText(d), /leader ctl-a/);
  });

  it("says the Service is being deleted and how to remove the finalizer when no controller is left", async () => {
    ctl = await startController(env, { identity: "ctl-a" });
    await createWithBackend(env, "web");
    await waitForIngress(env.client, "web", ["192.0.2.51", "192.0.2.52"]);
    await ctl.stop();
    ctl = undefined;
    assert.equal((await env.client.del(svcPath("web"))).status, 200);
    assert.equal((await doctorSays("web", REASONS.serviceDeleting)).healthy, false);
    // The stopped controller released its Lease; had that write failed, the Lease would expire within 2 s + 5 s of slack.
    const d = await waitFor("the doctor sees no controller", async () => {
      const found = await doctor("web");
      return /remove the finalizer/.test(mainText(found)) ? found : undefined;
    }, 12_000);
    assert.match(mainText(d), /there is none \((nobody holds the Lease berth-system\/berth-controller|the Lease .* was last renewed)/);
    assert.match(mainText(d), /"path":"\/metadata\/finalizers\/0"/);
  });

  it("repeats the controller's condition for an invalid annotation, and its Event (the same text) only once", async () => {
    ctl = await startController(env, { identity: "ctl-a" });
    await createWithBackend(env, "web", { annotations: { "berth.dev/tolerations": "not json" } });
    await waitFor("the controller's Event", async () => {
      const res = await env.client.get(`/api/v1/namespaces/default/events?fieldSelector=${encodeURIComponent("involvedObject.name=web,reason=InvalidConfiguration")}`);
      return (res.body?.items ?? []).length > 0;
    });
    const d = await waitFor("the condition in the diagnosis", async () => {
      const found = await doctorSays("web", REASONS.invalidConfiguration);
      return /condition berth\.dev\/LoadBalancerReady=False \(InvalidConfiguration\)/.test(mainText(found)) ? found : undefined;
    });
    assert.match(mainText(d), /metadata\.annotations\[berth\.dev\/tolerations\]: not valid JSON/);
    assert.equal(d.findings[0]?.evidence.filter((e) => e.startsWith("Event ")).length, 0, mainText(d));
  });

  it("explains a VIP-mode Service left pending by a full pool, naming the pool and its counts, and says where a served one got its VIP", async () => {
    ctl = await startController(env, { identity: "ctl-a" });
    await create(env.client, "/apis/berth.dev/v1alpha1/addresspools", { apiVersion: "berth.dev/v1alpha1", kind: "AddressPool", metadata: { name: "one" }, spec: { addresses: ["198.51.100.7"] } });
    await createWithBackend(env, "web", { annotations: { "berth.dev/mode": "vip" } });
    const served = await doctorSays("web", REASONS.serving);
    assert.match(mainText(served), /VIP 198\.51\.100\.7 from pool one/);
    await createWithBackend(env, "api", { annotations: { "berth.dev/mode": "vip" } });
    const d = await waitFor("the pool's counts in the diagnosis", async () => {
      const found = await doctorSays("api", REASONS.vipPoolExhausted);
      return /AddressPool one: 198\.51\.100\.7; Valid=True; IPv4 1 assigned\/0 free/.test(mainText(found)) ? found : undefined;
    });
    assert.match(mainText(d), /one \(no free IPv4 address\)/);
    assert.match(mainText(d), /Add addresses to the pool/);
  });

  it("says no controller runs when there is no Lease, no Deployment and no DaemonSet", async () => {
    await createWithBackend(env, "web");
    const d = await doctorSays("web", REASONS.controllerNotRunning);
    assert.match(d.headline, /not working: the berth controller is not running \(no Lease and no Deployment berth-controller in berth-system\)/);
  });

  it("names each node and why it may not serve when none may", async () => {
    ctl = await startController(env, { identity: "ctl-a" });
    await mergePatch(env.client, nodePath("n1"), { metadata: { labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "" } } });
    await mergePatch(env.client, nodePath("n2"), { spec: { taints: [{ key: "dedicated", value: "db", effect: "NoSchedule" }] } });
    await createWithBackend(env, "web");
    const d = await doctorSays("web", REASONS.noEligibleNodes);
    assert.match(mainText(d), /n1 \(labelled node\.kubernetes\.io\/exclude-from-external-load-balancers\), n2 \(taint dedicated=db:NoSchedule is not tolerated by the lb-pods\)/);
  });

  it("names the Service holding the port on both nodes", async () => {
    ctl = await startController(env, { identity: "ctl-a" });
    await createWithBackend(env, "first");
    await waitForIngress(env.client, "first", ["192.0.2.51", "192.0.2.52"]);
    await create(env.client, SVCS, service("second"));
    await create(env.client, SLICES, endpointSlice("second", [{ ip: "10.42.0.6", node: "n1", ready: true }]));
    const d = await doctorSays("second", REASONS.portConflict);
    assert.match(d.headline, /not working: port conflict: TCP\/80 held by Service default\/first on nodes n1 and n2/);
    await waitFor("the controller's condition in the evidence", async () =>
      (await doctor("second")).findings[0]?.evidence.some((e) => e.startsWith(`condition ${CONDITION_TYPES.portConflict}=True (PortInUse)`)));
  });

  it("quotes the failing readiness probe of lb-pods that run but are not Ready", async () => {
    ctl = await startController(env, { identity: "ctl-a" });
    env.kubelet.setReadyByDefault(false);
    await createWithBackend(env, "web");
    const pods = await lbPods(env, "web", 2);
    for (const pod of pods) await kubeletEvent(env, pod, "Unhealthy", "Readiness probe failed: berth: the nat rule for tcp/80 is missing");
    const d = await doctorSays("web", REASONS.readinessProbeFailing);
    assert.match(mainText(d), /lb-pods on nodes n1 and n2 run but are not Ready/);
    assert.match(mainText(d), /Readiness probe failed: berth: the nat rule for tcp\/80 is missing/);
  });

  it("tells a crash loop (with the last termination message) from a failed image pull", async () => {
    ctl = await startController(env, { identity: "ctl-a" });
    env.kubelet.setReadyByDefault(false);
    await createWithBackend(env, "web");
    const [p1, p2] = await lbPods(env, "web", 2) as [Obj, Obj];
    await env.kubelet.settled();
    env.kubelet.stop();
    await mergePatch(env.client, `${PODS}/${p1.metadata.name}/status`, { status: { containerStatuses: [{
      name: "lb-pod", image: "berth:test", imageID: "", ready: false, restartCount: 5,
      state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 2m40s restarting failed container=lb-pod" } },
      lastState: { terminated: { exitCode: 2, reason: "Error", message: "berth: net.ipv4.ip_forward is 0 in this pod's network namespace" } },
    }] } });
    await mergePatch(env.client, `${PODS}/${p2.metadata.name}/status`, { status: { containerStatuses: [{
      name: "lb-pod", image: "berth:test", imageID: "", ready: false, restartCount: 0,
      state: { waiting: { reason: "ImagePullBackOff", message: "Back-off pulling image \"berth:test\"" } },
    }] } });
    // No node serves, so both are errors; the doctor lists pull errors before crash loops.
    const d = await doctorSays("web", REASONS.imagePullError);
    assert.match(d.findings[0]?.summary ?? "", new RegExp(`cannot be pulled on node ${p2.spec.nodeName}`));
    const crash = d.findings.find((f) => f.code === REASONS.crashLoopBackOff);
    assert.equal(crash?.severity, "error");
    assert.match(crash?.evidence.join("\n") ?? "", new RegExp(`pod ${NS}/${p1.metadata.name} on ${p1.spec.nodeName}: CrashLoopBackOff, restarted 5 time\\(s\\), last exit code 2 \\(Error\\): berth: net\\.ipv4\\.ip_forward is 0`));
  });

  it("says the kubelet refuses the forwarding sysctls, from the pod status and Event it writes", async () => {
    ctl = await startController(env, { identity: "ctl-a" });
    env.kubelet.setReadyByDefault(false);
    await createWithBackend(env, "web");
    const pods = await lbPods(env, "web", 2);
    await env.kubelet.settled();
    env.kubelet.stop();
    const message = "forbidden sysctl: \"net.ipv6.conf.all.forwarding\" not allowlisted";
    for (const pod of pods) {
      // pkg/kubelet rejectPod: phase Failed, reason SysctlForbidden, message "Pod was rejected: ...", and an Event.
      await mergePatch(env.client, `${PODS}/${pod.metadata.name}/status`, {
        status: { phase: "Failed", reason: "SysctlForbidden", message: `Pod was rejected: ${message}`, conditions: null, containerStatuses: null },
      });
      await kubeletEvent(env, pod, "SysctlForbidden", message);
    }
    const d = await doctorSays("web", REASONS.sysctlForbidden);
    assert.match(d.headline, /the kubelet on nodes n1 and n2 refuses the lb-pods/);
    assert.match(mainText(d), /--allowed-unsafe-sysctls=net\.ipv6\.conf\.all\.forwarding \(kubeadm: allowedUnsafeSysctls/);
    assert.match(mainText(d), /--kubelet-arg=allowed-unsafe-sysctls=net\.ipv6\.conf\.all\.forwarding/);
    assert.match(mainText(d), /Pod was rejected: forbidden sysctl/);
  });

  it("says no node with a Ready lb-pod has a ready endpoint under Local", async () => {
    await create(env.client, nodePath(), node("n3", { internalIp: "192.0.2.53", labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "" } }));
    ctl = await startController(env, { identity: "ctl-a" });
    await create(env.client, SVCS, service("loc", { externalTrafficPolicy: "Local" }));
    await create(env.client, SLICES, endpointSlice("loc", [{ ip: "10.42.2.5", node: "n3", ready: true }]));
    const d = await doctorSays("loc", REASONS.noReadyEndpointsOnServingNodes);
    assert.match(mainText(d), /no node with a Ready lb-pod \(nodes n1 and n2\) runs a ready endpoint \(they run on node n3\)/);
    await waitFor("the controller's NoReadyEndpoints condition", async () =>
      condition(await getObj(env.client, svcPath("loc")), CONDITION_TYPES.ready)?.reason === "NoReadyEndpoints");
  });

  it("says nothing is behind the Service when its selector matches no ready pod", async () => {
    ctl = await startController(env, { identity: "ctl-a" });
    await create(env.client, SVCS, service("web"));
    await create(env.client, SLICES, endpointSlice("web", [{ ip: "10.42.0.5", node: "n1", ready: false }]));
    await waitForIngress(env.client, "web", ["192.0.2.51", "192.0.2.52"]);
    const d = await doctorSays("web", REASONS.noEndpoints);
    assert.match(d.headline, /not working: no ready pod matches the Service's selector app=web \(1 endpoint\(s\), none ready\)/);
  });

  it("exits 1 when not working and 2 for bad arguments, as a process", async () => {
    await createWithBackend(env, "web", { type: "NodePort" });
    const notWorking = await run(["web", "--kubeconfig", env.kubeconfig, "-o", "json"]);
    assert.equal(notWorking.status, 1, notWorking.stderr);
    assert.equal((JSON.parse(notWorking.stdout) as Diagnosis).findings[0]?.code, REASONS.notLoadBalancer);
    const bad = await run(["web", "--kubeconfig", env.kubeconfig, "-o", "yaml"]);
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr.trim(), "berth: -o/--output: \"yaml\" is not text or json");
  });
});
