// End-to-end: the sandbox as a playground. A newcomer's quick start, typed as any Kubernetes guide (MetalLB's, k3s')
// writes it, with the real kubectl against `berth sandbox up`: a Deployment of nginx, exposed as a LoadBalancer,
// answering from the client namespace on every EXTERNAL-IP; scaled to zero and back; a rolling image change while
// requests flow, without one failed request; rollout history and undo; a guide's manifest applied; an image the
// sandbox does not know. Everything asserted is kubectl's own output or a real answer over the sandbox's network.
// Needs root.
import assert from "node:assert/strict";
import { BERTH, type Obj, type Sandbox, show, suiteSandbox } from "./fixture.js";

const NS = "default";

/**
 * Requests from the client namespace, back to back on `loops` parallel loops over every target, for `ms`: each one
 * a fresh connection (as a browser's first request), counted answered or failed with why.
 */
const LOAD_SCRIPT = `
const http = await import("node:http");
const [targets, ms, loops] = JSON.parse(process.argv[1]);
const end = Date.now() + ms; let ok = 0; const failed = [];
const one = (url) => new Promise((resolve) => {
  const req = http.get(url, { agent: false, timeout: 3000 }, (res) => {
    let body = ""; res.setEncoding("utf8"); res.on("data", (c) => { body += c; });
    res.on("end", () => resolve(res.statusCode === 200 && body.startsWith("pod ") ? null : \`\${url}: HTTP \${res.statusCode} \${body.trim()}\`));
    res.on("error", (e) => resolve(\`\${url}: \${e.code}\`));
  });
  req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "TIMEOUT" })));
  req.on("error", (e) => resolve(\`\${url}: \${e.code}\`));
});
await Promise.all(Array.from({ length: loops }, async (_, i) => {
  for (let n = i; Date.now() < end; n++) {
    const error = await one(targets[n % targets.length]);
    if (error === null) ok++; else failed.push(new Date().toISOString() + " " + error);
  }
}));
process.stdout.write(JSON.stringify({ ok, failed }));
process.exit(0);
`;

async function load(s: Sandbox, urls: string[], ms: number, loops = 3): Promise<{ ok: number; failed: string[] }> {
  const result = await s.runner.run(process.execPath, ["--input-type=module", "-e", LOAD_SCRIPT, JSON.stringify([urls, ms, loops])],
    { netns: s.clientNs, timeoutMs: ms + 30_000 });
  if (result.exitCode !== 0) throw new Error(`load in ${s.clientNs} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
  return JSON.parse(result.stdout) as { ok: number; failed: string[] };
}

/** kubectl in the default namespace, as a newcomer types it; throws with kubectl's stderr on a non-zero exit. */
function k(s: Sandbox, ...args: string[]): Promise<string> {
  return s.kubectl(["-n", NS, ...args]);
}

describe("e2e: the sandbox as a playground (a quick start's kubectl commands, 3 nodes)", function () {
  this.timeout(180_000);
  const sb = suiteSandbox("p", { nodes: 3 });
  const externalIps = (): string[] => sb().nodes.map((n) => n.ipv4);
  const urls = (port: number): string[] => externalIps().map((ip) => `http://${ip}:${port}/`);

  it("runs the quick start: create deployment nginx, expose it as a LoadBalancer, every EXTERNAL-IP answers", async () => {
    const s = sb();
    assert.match(await k(s, "create", "deployment", "web", "--image=nginx", "--replicas=3", "--port=80"), /^deployment\.apps\/web created$/m);
    assert.match(await k(s, "expose", "deployment", "web", "--type=LoadBalancer", "--port=8080", "--target-port=80"), /^service\/web exposed$/m);
    assert.match(await k(s, "rollout", "status", "deployment/web", "--timeout=60s"), /deployment "web" successfully rolled out/);
    assert.match(await k(s, "wait", "--for=condition=Available", "deployment/web", "--timeout=30s"), /deployment\.apps\/web condition met/);

    const deploy = await k(s, "get", "deployment", "web");
    assert.match(deploy, /^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE$/m);
    assert.match(deploy, /^web\s+3\/3\s+3\s+3\s+\S+$/m);
    const pods = (await s.getJson(["-n", NS, "get", "pods", "-l", "app=web"])).items as Obj[];
    assert.equal(pods.length, 3);
    assert.deepEqual(pods.map((p) => p.spec.nodeName).sort(), ["node-1", "node-2", "node-3"], "the scheduler spreads the replicas");
    for (const pod of pods) {
      assert.equal(pod.metadata.ownerReferences?.[0]?.kind, "ReplicaSet");
      assert.match(pod.metadata.name, /^web-[b-df-hj-np-tv-z2-9]+-[a-z0-9]{5}$/);
    }

    await s.waitForIngress("web", externalIps(), 60_000, NS);
    const svc = await k(s, "get", "svc", "web");
    assert.match(svc, new RegExp(`^web\\s+LoadBalancer\\s+10\\.43\\.\\S+\\s+${externalIps().join(",").replace(/\./g, "\\.")}\\s+8080:\\d+/TCP`, "m"));
    const answers = await s.waitForAnswers("web on every EXTERNAL-IP", externalIps().map((ip) => ({ protocol: "http" as const, ip, port: 8080 })));
    for (const a of answers) assert.ok(a.answered && /^web-\S+-[a-z0-9]{5}$/.test(a.pod), show(a));

    // The pods' access lines are their container log, as nginx writes them.
    const logs = await Promise.all(pods.map((p) => k(s, "logs", String(p.metadata.name))));
    assert.ok(logs.some((text) => /^\S+ - - \[[^\]]+\] "GET \/ HTTP\/1\.1" 200 \d+ "-" "-"$/m.test(text)), `an access line in the logs:\n${logs.join("\n")}`);
    const events = await k(s, "get", "events");
    assert.match(events, /ScalingReplicaSet\s+deployment\/web\s+Scaled up replica set web-\S+ from 0 to 3/);
    assert.match(events, /SuccessfulCreate\s+replicaset\/web-\S+\s+Created pod: web-/);
    assert.match(events, /Pulled\s+pod\/web-\S+\s+Image "nginx" runs the sandbox's web stand-in/);
  });

  it("scales to zero (nothing answers) and back to three (every EXTERNAL-IP answers again)", async () => {
    const s = sb();
    assert.match(await k(s, "scale", "deployment/web", "--replicas=0"), /^deployment\.apps\/web scaled$/m);
    assert.match(await k(s, "rollout", "status", "deployment/web", "--timeout=60s"), /successfully rolled out/);
    await s.waitFor("no web pods", async () => {
      const left = ((await s.getJson(["-n", NS, "get", "pods", "-l", "app=web"])).items as Obj[]).length;
      return left === 0 ? undefined : `${left} pods left`;
    }, 60_000);
    assert.match(await k(s, "get", "deployment", "web"), /^web\s+0\/0\s+0\s+0\s+/m);
    await s.waitForSilence("no answer without endpoints", externalIps().map((ip) => ({ protocol: "http" as const, ip, port: 8080 })));

    assert.match(await k(s, "scale", "deployment/web", "--replicas=3"), /scaled/);
    assert.match(await k(s, "rollout", "status", "deployment/web", "--timeout=60s"), /successfully rolled out/);
    await s.waitForAnswers("web answers again", externalIps().map((ip) => ({ protocol: "http" as const, ip, port: 8080 })));
  });

  it("rolls out a new image while requests flow, without one failed request, and rolls it back", async () => {
    const s = sb();
    const flowing = load(s, urls(8080), 25_000);
    await new Promise((r) => setTimeout(r, 3000));
    assert.match(await k(s, "set", "image", "deployment/web", "nginx=nginx:1.27"), /^deployment\.apps\/web image updated$/m);
    assert.match(await k(s, "rollout", "status", "deployment/web", "--timeout=90s"), /successfully rolled out/);
    const result = await flowing;
    console.log(`      (${result.ok} requests answered during the rollout, ${result.failed.length} failed)`);
    assert.ok(result.ok > 50, `requests answered during the rollout: ${result.ok}`);
    assert.deepEqual(result.failed, [], `${result.failed.length} of ${result.ok + result.failed.length} requests failed during the rollout`);

    const pods = (await s.getJson(["-n", NS, "get", "pods", "-l", "app=web"])).items as Obj[];
    assert.deepEqual(pods.filter((p) => !p.metadata.deletionTimestamp).map((p) => p.spec.containers[0].image), ["nginx:1.27", "nginx:1.27", "nginx:1.27"]);
    const rs = await k(s, "get", "rs", "-l", "app=web");
    assert.match(rs, /^web-\S+\s+3\s+3\s+3\s+/m);
    assert.match(rs, /^web-\S+\s+0\s+0\s+0\s+/m);
    const history = await k(s, "rollout", "history", "deployment/web");
    assert.match(history, /^1\s+<none>$/m);
    assert.match(history, /^2\s+<none>$/m);

    assert.match(await k(s, "rollout", "undo", "deployment/web"), /^deployment\.apps\/web rolled back$/m);
    assert.match(await k(s, "rollout", "status", "deployment/web", "--timeout=90s"), /successfully rolled out/);
    const image = await k(s, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}");
    assert.equal(image, "nginx");
    assert.equal(await k(s, "get", "deployment", "web", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"), "3");
    await s.waitForAnswers("web answers after the undo", externalIps().map((ip) => ({ protocol: "http" as const, ip, port: 8080 })));
  });

  it("applies a guide's Deployment + Service manifest (http-echo with its args) and serves it on every EXTERNAL-IP", async () => {
    const s = sb();
    const manifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 2
  selector:
    matchLabels:
      app: echo
  template:
    metadata:
      labels:
        app: echo
    spec:
      containers:
      - name: echo
        image: hashicorp/http-echo:1.0
        args: ["-text=hello", "-listen=:5678"]
        ports:
        - containerPort: 5678
---
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  type: LoadBalancer
  selector:
    app: echo
  ports:
  - port: 80
    targetPort: 5678
`;
    const applied = await s.kubectl(["-n", NS, "apply", "-f", "-"], manifest);
    assert.match(applied, /^deployment\.apps\/echo created$/m);
    assert.match(applied, /^service\/echo created$/m);
    assert.match(await k(s, "rollout", "status", "deployment/echo", "--timeout=60s"), /successfully rolled out/);
    await s.waitForIngress("echo", externalIps(), 60_000, NS);
    const answers = await s.waitForAnswers("echo on every EXTERNAL-IP", externalIps().map((ip) => ({ protocol: "http" as const, ip, port: 80 })));
    for (const a of answers) assert.ok(a.answered && a.pod.startsWith("echo-"), show(a));
    // Applied again unchanged: nothing to do, as on a cluster.
    assert.match(await s.kubectl(["-n", NS, "apply", "-f", "-"], manifest), /^deployment\.apps\/echo unchanged$/m);
  });

  it("runs an image it does not know as the web stand-in on the declared port, and says so in an Event", async () => {
    const s = sb();
    await k(s, "create", "deployment", "mine", "--image=registry.example/team/shop:2.1", "--port=8080");
    assert.match(await k(s, "rollout", "status", "deployment/mine", "--timeout=60s"), /successfully rolled out/);
    await k(s, "expose", "deployment", "mine", "--type=LoadBalancer", "--port=9090", "--target-port=8080");
    await s.waitForIngress("mine", externalIps(), 60_000, NS);
    await s.waitForAnswers("mine on every EXTERNAL-IP", externalIps().map((ip) => ({ protocol: "http" as const, ip, port: 9090 })));
    const pod = ((await s.getJson(["-n", NS, "get", "pods", "-l", "app=mine"])).items as Obj[])[0];
    const described = await k(s, "describe", "pod", String(pod?.metadata?.name));
    assert.match(described, /Warning\s+ImageStandIn\s+\S+\s+kubelet\s+The sandbox has no image "registry\.example\/team\/shop:2\.1"/);
    assert.match(described, /answering HTTP on port 8080/);
  });

  it("shows the controller as two pods with logs; deleting the leader's pod while a Service is created hands over", async () => {
    const s = sb();
    const table = await s.kubectl(["-n", "berth-system", "get", "pods", "-l", "app.kubernetes.io/component=controller"]);
    assert.match(table, /^sandbox-controller-1\s+1\/1\s+Running\s+0\s+/m);
    assert.match(table, /^sandbox-controller-2\s+1\/1\s+Running\s+0\s+/m);
    const leader = (await s.kubectl(["-n", "berth-system", "get", "lease", "berth-controller", "-o", "jsonpath={.spec.holderIdentity}"])).trim();
    assert.match(leader, /^sandbox-controller-[12]$/);
    assert.match(await s.kubectl(["-n", "berth-system", "logs", leader]), /is now the leader/);

    // The leader goes while a new Service arrives: the standby takes the Lease (released on SIGTERM) and serves it.
    const [deleted] = await Promise.all([
      s.kubectl(["-n", "berth-system", "delete", "pod", leader]),
      k(s, "expose", "deployment", "web", "--name=web-again", "--type=LoadBalancer", "--port=8090", "--target-port=80"),
    ]);
    assert.match(deleted, new RegExp(`^pod "${leader}" deleted$`, "m"));
    await s.waitForIngress("web-again", externalIps(), 60_000, NS);
    await s.waitForAnswers("web-again on every EXTERNAL-IP", externalIps().map((ip) => ({ protocol: "http" as const, ip, port: 8090 })));
    const now = (await s.kubectl(["-n", "berth-system", "get", "lease", "berth-controller", "-o", "jsonpath={.spec.holderIdentity}"])).trim();
    assert.notEqual(now, leader, "another replica leads");
    await s.waitForReadyPods("app.kubernetes.io/component=controller", 2, "berth-system", 60_000);
    const names = ((await s.getJson(["-n", "berth-system", "get", "pods", "-l", "app.kubernetes.io/component=controller"])).items as Obj[]).map((p) => String(p.metadata.name));
    assert.ok(names.includes(`${leader}-2`), `a replacement replica under a new name: ${names.join(", ")}`);

    // berth doctor reads the same cluster and finds the controller running and the Service served.
    const doctor = await s.runner.run(BERTH, ["doctor", "web-again", "-n", NS, "--kubeconfig", s.kubeconfig], { timeoutMs: 30_000 });
    assert.equal(doctor.exitCode, 0, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, /^default\/web-again is healthy: EXTERNAL-IP /m);
    assert.doesNotMatch(doctor.stdout, /not running/);
  });

  it("deletes a Deployment with its ReplicaSets and pods (garbage collection by owner references)", async () => {
    const s = sb();
    assert.match(await k(s, "delete", "deployment", "mine"), /^deployment\.apps "mine" deleted$/m);
    await s.waitFor("mine's ReplicaSets and pods gone", async () => {
      const rs = ((await s.getJson(["-n", NS, "get", "rs", "-l", "app=mine"])).items as Obj[]).length;
      const pods = ((await s.getJson(["-n", NS, "get", "pods", "-l", "app=mine"])).items as Obj[]).length;
      return rs === 0 && pods === 0 ? undefined : `${rs} ReplicaSets, ${pods} pods`;
    }, 60_000);
  });
});
