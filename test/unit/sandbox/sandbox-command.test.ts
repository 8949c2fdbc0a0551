// `berth sandbox up/down/status/kubeconfig` before anything starts: flags checked into settings, and every refusal
// (not root, a tool missing, a host route into the LAN, a sandbox already up or left over) as one line. Plus the
// small pieces the supervisor and the demo are made of: the state file, the Node objects (accepted by the sandbox
// API server), the image catalog, the demo app's answer.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { UsageError } from "../../../src/lib/errors.js";
import { KubeClient, Resources } from "../../../src/lib/kube/client.js";
import { startApiServer } from "../../../src/sandbox/apiserver/index.js";
import { parseDemoAppFlags, parseHttpGetFlags, parseUpFlags } from "../../../src/sandbox/command.js";
import { demoObjects, demoSandboxOptions, demoUrl, expectedIngressIps, ingressIps, quickStart } from "../../../src/sandbox/cluster/demo.js";
import { SANDBOX_DEMO_IMAGE, SANDBOX_LB_IMAGE, sandboxImages } from "../../../src/sandbox/cluster/images.js";
import { planLayout } from "../../../src/sandbox/cluster/layout.js";
import { namespacesWithPrefix, preflightProblem, type PreflightFacts } from "../../../src/sandbox/cluster/preflight.js";
import { isSupervisorOf, readState, sandboxPaths, writeState } from "../../../src/sandbox/cluster/state.js";
import { nodeObject } from "../../../src/sandbox/cluster/nodes.js";
import { ControllerProcess } from "../../../src/sandbox/cluster/supervisor.js";
import { clientAddress, demoAnswer, startDemoApp, startDemoUdp } from "../../../src/sandbox/demo-app.js";
import { createSocket } from "node:dgram";
import { skipBecause } from "../../support/skip.js";

const cli = new URL("../../../dist/cli.js", import.meta.url).pathname;
const defaults = { nodes: "3", lbIpCapture: true, prefix: "bsb" };

function usageMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    return err.message;
  }
  assert.fail("expected a UsageError");
}

const okFacts: PreflightFacts = { uid: 0, missingTools: [], hostRouteClashes: [], leftoverNamespaces: [], stateFileExists: false };
const request = { prefix: "bsb", lanCidrs: ["198.18.0.0/24"] };

describe("berth sandbox up: flags", () => {
  it("defaults to 3 IPv4 nodes under prefix bsb, capturing LoadBalancer IPs, no demo", () => {
    assert.deepEqual(parseUpFlags(defaults), {
      options: { prefix: "bsb", nodes: 3, dualStack: false, captureLoadBalancerIps: true },
      demo: false,
    });
  });

  it("takes --nodes, --dual-stack, --demo, --no-lb-ip-capture and --prefix", () => {
    assert.deepEqual(parseUpFlags({ nodes: "5", dualStack: true, demo: true, lbIpCapture: false, prefix: "bse2e42" }), {
      options: { prefix: "bse2e42", nodes: 5, dualStack: true, captureLoadBalancerIps: false },
      demo: true,
    });
  });

  it("takes --allowed-unsafe-sysctls as the kubelet flag does (names, prefixes ending in *), and refuses anything else in one line", () => {
    assert.deepEqual(parseUpFlags({ ...defaults, allowedUnsafeSysctls: "net.ipv6.conf.all.forwarding, net.core.*" }).options.allowedUnsafeSysctls,
      ["net.ipv6.conf.all.forwarding", "net.core.*"]);
    assert.equal(parseUpFlags(defaults).options.allowedUnsafeSysctls, undefined);
    assert.match(usageMessage(() => parseUpFlags({ ...defaults, allowedUnsafeSysctls: "net.ipv6/conf" })), /^invalid --allowed-unsafe-sysctls entry "net\.ipv6\/conf": /);
  });

  for (const nodes of ["0", "21", "two", "-1", "1.5", ""]) {
    it(`refuses --nodes ${JSON.stringify(nodes)} in one line naming the range`, () => {
      const message = usageMessage(() => parseUpFlags({ ...defaults, nodes }));
      assert.match(message, /^invalid --nodes .*from 1 to 20$/);
    });
  }

  // A dash would let `down --prefix bsb` match another sandbox's `bsb-x-...` namespaces.
  for (const prefix of ["BSB", "bsb-x", "1bsb", "", "abcdefghijklmnopqr"]) {
    it(`refuses --prefix ${JSON.stringify(prefix)} in one line`, () => {
      const message = usageMessage(() => parseUpFlags({ ...defaults, prefix }));
      assert.match(message, /^invalid --prefix /);
      assert.doesNotMatch(message, /\n/);
    });
  }

  it("checks http-get's URLs and demo-app's port", () => {
    assert.deepEqual(parseHttpGetFlags(["http://198.18.0.11:80"], { retryFor: "1000", timeout: "500" }), {
      urls: ["http://198.18.0.11:80"], retryForMs: 1000, timeoutMs: 500,
    });
    assert.match(usageMessage(() => parseHttpGetFlags([], { retryFor: "0", timeout: "1" })), /at least one URL/);
    assert.match(usageMessage(() => parseHttpGetFlags(["https://x"], { retryFor: "0", timeout: "1" })), /only http:\/\//);
    assert.match(usageMessage(() => parseHttpGetFlags(["nonsense"], { retryFor: "0", timeout: "1" })), /invalid URL/);
    assert.deepEqual(parseDemoAppFlags({ port: "8080", check: true }), { port: 8080, check: true });
    assert.deepEqual(parseDemoAppFlags({ port: "8080", udpPort: "5353" }), { port: 8080, udpPort: 5353, check: false });
    assert.match(usageMessage(() => parseDemoAppFlags({ port: "0" })), /--port/);
  });
});

describe("berth sandbox up: preflight", () => {
  it("lets a root user with every tool and a clean slate start", () => {
    assert.equal(preflightProblem(okFacts, request), undefined);
  });

  it("refuses a non-root user first, in one line", () => {
    const message = preflightProblem({ ...okFacts, uid: 1000, missingTools: ["ip"] }, request) ?? "";
    assert.match(message, /needs root/);
    assert.doesNotMatch(message, /\n/);
  });

  it("names each missing tool, what needs it and the Debian package to install", () => {
    const message = preflightProblem({ ...okFacts, missingTools: ["nsenter", "unshare", "kubectl"] }, request) ?? "";
    assert.match(message, /^missing nsenter \(readiness probes inside pods\), unshare \(.*\), kubectl \(.*\): install util-linux kubernetes-client/);
    assert.doesNotMatch(message, /\n/);
  });

  it("refuses when the host routes into the sandbox LAN, quoting the route", () => {
    const message = preflightProblem({ ...okFacts, hostRouteClashes: ["198.18.0.0/15 dev eth1"] }, request) ?? "";
    assert.match(message, /route into the sandbox LAN 198\.18\.0\.0\/24 \(198\.18\.0\.0\/15 dev eth1\)/);
  });

  it("refuses a second sandbox under the same prefix, and says how to take the first down", () => {
    assert.match(preflightProblem({ ...okFacts, runningPid: 4242 }, request) ?? "", /already up \(supervisor pid 4242\): run `berth sandbox down` first/);
    assert.match(preflightProblem({ ...okFacts, runningPid: 7 }, { ...request, prefix: "bse2e1" }) ?? "", /`berth sandbox down --prefix bse2e1`/);
  });

  it("refuses over leftovers of a crashed sandbox (namespaces or state files) and points at down", () => {
    assert.match(preflightProblem({ ...okFacts, leftoverNamespaces: ["bsb-lan", "bsb-node-1"] }, request) ?? "", /leftovers .*network namespaces bsb-lan, bsb-node-1\): run `berth sandbox down` first/);
    assert.match(preflightProblem({ ...okFacts, stateFileExists: true }, request) ?? "", /leftovers .*its state files/);
  });

  it("counts only namespaces of its own prefix as leftovers", () => {
    assert.deepEqual(namespacesWithPrefix("bsb-lan (id: 0)\nbsbx-lan (id: 1)\nbsb-node-1\nother\n", "bsb"), ["bsb-lan", "bsb-node-1"]);
  });
});

describe("berth sandbox (the built CLI) refuses in one line", function () {
  this.timeout(20_000);
  beforeEach(function () {
    if (!existsSync(cli)) skipBecause(this, "dist/cli.js is missing: run `npm run build` first (the test command does)");
  });

  it("exits 2 with one line for a bad flag", () => {
    const result = spawnSync(process.execPath, [cli, "sandbox", "up", "--nodes", "0"], { encoding: "utf8" });
    assert.equal(result.status, 2);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.match(result.stderr, /^berth: invalid --nodes "0"/);
  });

  it("exits 2 with one line naming every missing tool when PATH has none of them", function () {
    if (process.getuid?.() !== 0) skipBecause(this, "the tool check comes after the root check");
    const result = spawnSync(process.execPath, [cli, "sandbox", "up", "--demo", "--prefix", "bsbunit"], {
      encoding: "utf8",
      env: { ...process.env, PATH: dirname(process.execPath) === "/usr/bin" ? "/nonexistent" : dirname(process.execPath) },
    });
    assert.equal(result.status, 2, result.stderr);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.match(result.stderr, /^berth: missing ip \(.*\), iptables-restore .*kubectl .*: install iproute2 iptables util-linux procps openssl kubernetes-client/);
  });

  it("exits 2 with one line when not root", function () {
    if (process.getuid?.() !== 0) skipBecause(this, "needs root to switch to an unprivileged user for the test");
    const result = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, cli, "sandbox", "up"], { encoding: "utf8" });
    assert.equal(result.status, 2, result.stderr);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.match(result.stderr, /^berth: berth sandbox needs root/);
  });

  it("says in one line that no sandbox is up when asked for the kubeconfig of a prefix that is not", () => {
    const result = spawnSync(process.execPath, [cli, "sandbox", "kubeconfig", "--prefix", "bsbnone"], { encoding: "utf8" });
    assert.equal(result.status, 1);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.match(result.stderr, /no sandbox with prefix bsbnone is up: run `berth sandbox up --prefix bsbnone` first/);
  });
});

describe("berth sandbox: state, Node objects, images, demo", () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "berth-sandbox-unit-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes and reads back the state file, and ignores a half-written or foreign one", () => {
    const paths = sandboxPaths("bsb", dir);
    assert.equal(readState(paths), undefined);
    const layout = planLayout({ prefix: "bsb", nodes: 2, dualStack: false });
    const state = {
      pid: 123, url: "https://127.0.0.1:1", kubeconfig: paths.kubeconfig, logDir: paths.logs, startedAt: "2026-01-01T00:00:00Z",
      options: { prefix: "bsb", nodes: 2, dualStack: false, captureLoadBalancerIps: true }, layout,
    };
    writeState(paths, state);
    assert.deepEqual(readState(paths), state);
    writeFileSync(paths.state, "{\"pid\": 12");
    assert.equal(readState(paths), undefined);
    writeFileSync(paths.state, "{\"hello\": 1}");
    assert.equal(readState(paths), undefined);
  });

  it("recognises its own supervisor by command line, never a process that reused the pid", () => {
    const cmdline = (argv: string[]) => () => argv.join("\0") + "\0";
    assert.equal(isSupervisorOf(1, "bsb", cmdline(["node", "/x/dist/cli.js", "sandbox", "run", "--prefix", "bsb", "--nodes", "3"])), true);
    assert.equal(isSupervisorOf(1, "bsb", cmdline(["node", "/x/dist/cli.js", "sandbox", "run", "--prefix", "bsbx"])), false);
    assert.equal(isSupervisorOf(1, "bsb", cmdline(["sleep", "run", "--prefix", "bsb"])), false);
    assert.equal(isSupervisorOf(1, "bsb", () => undefined), false);
  });

  it("creates Node objects the API server accepts: Ready, InternalIPs from the LAN, podCIDRs, hostname label", async () => {
    const api = await startApiServer();
    const client = new KubeClient({ server: api.url, authHeaders: () => ({ Authorization: `Bearer ${api.token}` }) });
    try {
      const layout = planLayout({ prefix: "bsb", nodes: 2, dualStack: true });
      for (const node of layout.nodes) {
        const object = nodeObject(node, new Date("2026-01-01T00:00:00Z"));
        await client.create(Resources.nodes, { metadata: object.metadata as { name: string }, spec: object.spec } as never);
        await client.patchStatus(Resources.nodes, node.name, "merge", { status: object.status });
      }
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const node2 = await client.get<any>(Resources.nodes, "node-2");
      assert.deepEqual(node2.spec.podCIDRs, ["10.42.2.0/24", "fd42:b5e7:7a42:2::/64"]);
      assert.deepEqual(node2.status.addresses.filter((a: { type: string }) => a.type === "InternalIP").map((a: { address: string }) => a.address), ["198.18.0.12", "fd42:b5e7:7a00::c"]);
      assert.equal(node2.status.conditions.find((c: { type: string }) => c.type === "Ready")?.status, "True");
      assert.equal(node2.metadata.labels["kubernetes.io/hostname"], "node-2");
    } finally {
      client.close();
      await api.close();
    }
  });

  it("runs the repository's programs for its two images, bin/ first on PATH, and the web stand-in for any other", () => {
    const images = sandboxImages("/repo", "/opt/node/bin/node");
    assert.deepEqual(images(SANDBOX_LB_IMAGE)?.entrypoint, ["/repo/bin/berth-lb-pod"]);
    assert.deepEqual(images(SANDBOX_DEMO_IMAGE)?.entrypoint, ["/repo/bin/berth", "sandbox", "demo-app"]);
    assert.deepEqual(images(SANDBOX_LB_IMAGE)?.pathDirs.slice(0, 2), ["/repo/bin", "/opt/node/bin"]);
    assert.equal(images(SANDBOX_LB_IMAGE)?.env?.BERTH_NODE, "/opt/node/bin/node");
    const nginx = images("docker.io/library/nginx:latest")?.standIn?.({ name: "web", ports: [{ containerPort: 8443 }] },
      { metadata: { name: "web-1" }, spec: { nodeName: "node-2", containers: [] } });
    assert.deepEqual(nginx?.argv, ["/repo/bin/berth", "sandbox", "demo-app", "--access-log", "--image", "docker.io/library/nginx:latest",
      "--drain-ms", "3000", "--pod", "web-1", "--node", "node-2", "--port", "80", "--port", "8443"]);
    assert.equal(nginx?.listensOn, 80);
    assert.deepEqual([nginx?.event.type, nginx?.event.reason], ["Normal", "Pulled"]);
    const unknown = images("registry.example/shop:1")?.standIn?.({ name: "shop" }, { metadata: { name: "shop-1" }, spec: { containers: [] } });
    assert.deepEqual([unknown?.event.type, unknown?.event.reason], ["Warning", "ImageStandIn"]);
    assert.equal(images(""), undefined);
  });

  it("prints a quick start after up: a Deployment of nginx behind a LoadBalancer, then a request from outside", () => {
    const lines = quickStart({ prefix: "lab", defaultPrefix: false, clientNs: "lab-client", firstNodeIp: "198.18.0.11" });
    assert.ok(lines.includes("  export KUBECONFIG=$(bin/berth sandbox kubeconfig --prefix lab)"), lines.join("\n"));
    assert.ok(lines.includes("  kubectl create deployment web --image=nginx --replicas=3 --port=80"));
    assert.ok(lines.includes("  kubectl expose deployment web --type=LoadBalancer --port=8080 --target-port=80"));
    assert.ok(lines.some((l) => l.startsWith("  ip netns exec lab-client bin/berth sandbox http-get --retry-for 30000 http://198.18.0.11:8080")));
    assert.ok(quickStart({ prefix: "bsb", defaultPrefix: true, clientNs: "bsb-client", firstNodeIp: "fd42::b" }).some((l) => l.includes("http://[fd42::b]:8080")));
  });

  it("puts the demo behind a Local LoadBalancer Service that selects the DaemonSet's pods by a named port", () => {
    const { daemonSet, service } = demoObjects(true);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const ds = daemonSet as any;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const svc = service as any;
    assert.equal(svc.spec.type, "LoadBalancer");
    assert.equal(svc.spec.externalTrafficPolicy, "Local");
    assert.deepEqual(svc.spec.ipFamilies, ["IPv4", "IPv6"]);
    assert.deepEqual(svc.spec.selector, ds.spec.template.metadata.labels);
    assert.equal(svc.spec.ports[0].targetPort, ds.spec.template.spec.containers[0].ports[0].name);
    assert.equal(ds.spec.template.spec.containers[0].image, SANDBOX_DEMO_IMAGE);
    assert.equal((demoObjects(false).service as { spec: { ipFamilies?: string[] } }).spec.ipFamilies, undefined);
    const layout = planLayout({ prefix: "bsb", nodes: 2, dualStack: true });
    assert.deepEqual(expectedIngressIps(layout), ["198.18.0.11", "fd42:b5e7:7a00::b", "198.18.0.12", "fd42:b5e7:7a00::c"]);
    assert.deepEqual(ingressIps({ metadata: { name: "x" }, status: { loadBalancer: { ingress: [{ ip: "198.18.0.11" }, { hostname: "h" }] } } } as never), ["198.18.0.11"]);
    assert.equal(demoUrl("fd42:b5e7:7a00::b"), "http://[fd42:b5e7:7a00::b]:80");
  });

  it("puts a VIP-mode Service beside it: the same pods, policy and port, only the annotation and the name differ", () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const { service, vipService } = demoObjects(true) as any;
    assert.equal(vipService.metadata.name, "berth-demo-vip");
    assert.deepEqual(vipService.metadata.annotations, { "berth.dev/mode": "vip" });
    assert.equal(service.metadata.annotations, undefined, "the hostPort Service stays in the default mode");
    assert.deepEqual(vipService.spec, service.spec);
  });

  it("lets the demo's kubelets allow IPv6 forwarding with --dual-stack, and says so", () => {
    const base = { prefix: "bsb", nodes: 3, dualStack: true, captureLoadBalancerIps: true };
    const table: [string, Parameters<typeof demoSandboxOptions>[0], boolean, string[] | undefined, boolean][] = [
      ["dual-stack demo", base, true, ["net.ipv6.conf.all.forwarding"], true],
      ["dual-stack demo with other sysctls allowed", { ...base, allowedUnsafeSysctls: ["net.core.somaxconn"] }, true, ["net.core.somaxconn", "net.ipv6.conf.all.forwarding"], true],
      ["already allowed by a pattern", { ...base, allowedUnsafeSysctls: ["net.ipv6.*"] }, true, ["net.ipv6.*"], false],
      ["no demo: the kubelets stay as asked", base, false, undefined, false],
      ["IPv4 demo: nothing asks for it", { ...base, dualStack: false }, true, undefined, false],
    ];
    for (const [name, options, demo, want, noted] of table) {
      const got = demoSandboxOptions(options, demo);
      assert.deepEqual(got.options.allowedUnsafeSysctls, want, name);
      assert.equal(got.note !== undefined, noted, name);
    }
  });

  it("the demo app answers with its pod, its node and the client's address as the client sent it", async () => {
    const { server, port } = await startDemoApp({ pod: "berth-demo-abcde", node: "node-1" }, 0, "127.0.0.1");
    try {
      const { body, localPort } = await new Promise<{ body: string; localPort: number }>((done, fail) => {
        const req = get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
          const localPort = res.socket.localPort ?? -1;
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => done({ body: text, localPort }));
        });
        req.on("error", fail);
      });
      assert.equal(body, `pod berth-demo-abcde on node-1 saw client 127.0.0.1:${localPort}\n`);
    } finally {
      server.close();
    }
    assert.equal(clientAddress("::ffff:198.18.0.100"), "198.18.0.100");
    assert.equal(clientAddress("fd42:b5e7:7a00::100"), "fd42:b5e7:7a00::100");
    assert.equal(demoAnswer({ pod: "p", node: "n" }, undefined, undefined), "pod p on n saw client unknown:0");
    assert.equal(demoAnswer({ pod: "p", node: "n" }, "fd42:b5e7:7a00::100", 4242), "pod p on n saw client [fd42:b5e7:7a00::100]:4242");
    assert.equal(demoAnswer({ pod: "p", node: "n" }, "::ffff:198.18.0.100", 4242), "pod p on n saw client 198.18.0.100:4242");
  });

  it("the demo app answers a UDP datagram with the same line, to the sender", async () => {
    const { socket: server, port } = await startDemoUdp({ pod: "berth-demo-udp", node: "node-2" }, 0, "127.0.0.1");
    const client = createSocket("udp4");
    try {
      const answer = await new Promise<{ text: string; localPort: number }>((done, fail) => {
        client.once("message", (message) => done({ text: message.toString(), localPort: client.address().port }));
        client.once("error", fail);
        client.send("hello\n", port, "127.0.0.1");
      });
      assert.equal(answer.text, `pod berth-demo-udp on node-2 saw client 127.0.0.1:${answer.localPort}\n`);
    } finally {
      client.close();
      server.close();
    }
  });
});

describe("berth sandbox: the supervisor's controller process", function () {
  this.timeout(20_000);
  let dir = "";
  const running: ControllerProcess[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "berth-sandbox-controller-"));
  });
  after(async () => {
    for (const c of running) await c.stop(1000);
    rmSync(dir, { recursive: true, force: true });
  });

  // A stand-in "controller": serves /readyz with 200 on the port it is given, like `berth controller --listen`.
  const serveReadyz = (port: number): string[] => ["-e", `require("node:http").createServer((q, s) => s.end("ok")).listen(${port}, "127.0.0.1")`];

  it("waits for /readyz, and restarts the controller when it dies, on a fresh port", async () => {
    const pids: number[] = [];
    const controller = new ControllerProcess({
      command: process.execPath, args: serveReadyz, logPath: join(dir, "ok.log"), log: () => undefined, onStart: (pid, port) => { pids.push(pid); assert.ok(port > 0); },
    });
    running.push(controller);
    await controller.start();
    await controller.waitReady(10_000);
    const first = controller.pid;
    assert.ok(first !== undefined && pids[0] === first);
    process.kill(first, "SIGKILL");
    const deadline = Date.now() + 10_000;
    while (controller.restarts < 1 || controller.pid === undefined) {
      assert.ok(Date.now() < deadline, "not restarted within 10 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    await controller.waitReady(10_000);
    assert.notEqual(controller.pid, first);
    assert.equal(pids.length, 2, "onStart saw both runs (state.json records the new pid)");
  });

  it("fails with the end of its log when the controller exits before it is ready", async () => {
    const controller = new ControllerProcess({
      command: process.execPath,
      args: () => ["-e", "console.log('berth: cannot load kubeconfig /nope'); process.exit(3)"],
      logPath: join(dir, "fail.log"), log: () => undefined, onStart: () => undefined,
    });
    running.push(controller);
    await controller.start();
    await assert.rejects(controller.waitReady(10_000), /^Error: exited \(code 3\) before it was ready: berth: cannot load kubeconfig \/nope$/);
    await controller.stop(1000);
  });
});
