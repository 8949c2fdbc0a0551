// The sandbox's kubelet stand-in with real processes: pods of the controller's exact lb-pod DaemonSet (and its rules
// ConfigMap) run the lb-pod image's own tree (chrooted, scripts/build-lb-pod-rootfs.sh) in their own network
// namespaces (SandboxNetwork), become Ready from their real readiness probe,
// restart when killed, and leave nothing behind when deleted. Against an in-process sandbox API server over HTTP.
// Needs root (network namespaces, netfilter) and the built CLI.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { V1DaemonSet, V1Node, V1Pod, V1Service } from "@kubernetes/client-node";
import { buildDaemonSet, buildRulesConfigMap, lbPodRulesBundle } from "../../src/controller/daemonset.js";
import { LB_POD_ROOTFS_ENTRYPOINT, LB_POD_ROOTFS_PATH, ensureLbPodRootfs } from "../../src/sandbox/cluster/kubelet/rootfs.js";
import { parseServiceConfig } from "../../src/controller/service-config.js";
import { defaultControllerConfig } from "../../src/controller/types.js";
import { systemRunner } from "../../src/lib/exec.js";
import { KubeClient, Resources, type KubeObject, type LogLevel } from "../../src/lib/kube/client.js";
import { startApiServer, type ApiServerHandle } from "../../src/sandbox/apiserver/index.js";
import { KubeletStandIn, type ContainerImage, type KubeletOptions } from "../../src/sandbox/cluster/kubelet.js";
import { planLayout, podNamespaceName, type SandboxLayout } from "../../src/sandbox/cluster/layout.js";
import { removeSandboxNetwork, SandboxNetwork } from "../../src/sandbox/cluster/network.js";
import { SchedulerStandIn } from "../../src/sandbox/cluster/scheduler.js";
import { unschedulableCondition } from "../../src/sandbox/cluster/scheduling.js";
import { needsRoot, skipBecause } from "../support/skip.js";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const BIN = join(REPO, "bin");
const CLI = join(REPO, "dist", "cli.js");
const NS = "berth-system";
const LB_IMAGE = "berth.test/lb-pod:dev";
/** A shell, for containers whose behaviour a test writes (command given in the pod). */
const SHELL_IMAGE = "berth.test/shell:dev";
/** Our own prefix per run (`bsk<pid>`): network namespaces are `<prefix>-node-1`, `<prefix>-pod-<uid8>`, ... */
const PREFIX = `bsk${process.pid}`;

const runner = systemRunner();
/** The host's IPv4 forwarding, read before any test: the sandbox gives pods a node's value without changing it. */
const hostForwarding = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();

/** The lb-pod image's tree, built in before(). */
let lbPodRootfs = "";

function images(image: string): ContainerImage | undefined {
  const pathDirs = [BIN, dirname(process.execPath)];
  if (image === LB_IMAGE) return { entrypoint: LB_POD_ROOTFS_ENTRYPOINT, pathDirs: LB_POD_ROOTFS_PATH, rootfs: lbPodRootfs };
  if (image === SHELL_IMAGE) return { entrypoint: ["sh"], pathDirs };
  return undefined;
}

interface Env {
  server: ApiServerHandle;
  client: KubeClient;
  layout: SandboxLayout;
  network: SandboxNetwork;
  kubelet: KubeletStandIn;
  scheduler: SchedulerStandIn;
  logDir: string;
  logs: string[];
}

async function startEnv(nodes = 2, options: Pick<KubeletOptions, "allowedUnsafeSysctls"> & { dualStack?: boolean } = {}): Promise<Env> {
  const { dualStack = false, ...kubeletOptions } = options;
  // Undone in reverse order if a later step fails, so nothing half-made outlives a failed setup.
  const undo: (() => Promise<void> | void)[] = [];
  try {
    const server = await startApiServer({ serviceCidrs: { ipv4: "10.43.0.0/16", ...(dualStack ? { ipv6: "fd00:43::/112" } : {}) } });
    undo.push(() => server.close());
    const client = new KubeClient({ server: server.url, authHeaders: () => ({ Authorization: `Bearer ${server.token}` }) });
    undo.push(() => client.close());
    const layout = planLayout({ prefix: PREFIX, nodes, dualStack });
    await removeSandboxNetwork(PREFIX);
    undo.push(async () => void (await removeSandboxNetwork(PREFIX)));
    const network = await SandboxNetwork.create(layout);
    await client.create(Resources.namespaces, { metadata: { name: NS } });
    for (const n of layout.nodes) {
      await client.create<V1Node>(Resources.nodes, {
        metadata: { name: n.name, labels: { "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux" } },
        spec: { podCIDRs: n.podCidrs },
        status: {
          addresses: [...n.lanIps.map((address) => ({ type: "InternalIP", address })), { type: "Hostname", address: n.name }],
          conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status" }],
        },
      });
    }
    const logDir = mkdtempSync(join(tmpdir(), "berth-kubelet-test-"));
    undo.push(() => rmSync(logDir, { recursive: true, force: true }));
    const logs: string[] = [];
    const log = (level: LogLevel, message: string) => logs.push(`${new Date().toISOString().slice(11, 23)} ${level} ${message}`);
    // The DaemonSet controller (in the kubelet stand-in) creates pods unbound; the scheduler binds them.
    const scheduler = new SchedulerStandIn({ client, log });
    undo.push(() => scheduler.stop());
    await scheduler.start();
    const kubelet = new KubeletStandIn({
      client, network, images, logDir, runner,
      nodes: layout.nodes.map((n) => ({ name: n.name, ips: n.lanIps })),
      ...kubeletOptions,
      log,
    });
    undo.push(() => kubelet.stop());
    await kubelet.start();
    return { server, client, layout, network, kubelet, scheduler, logDir, logs };
  } catch (e) {
    for (const step of undo.reverse()) await step();
    throw e;
  }
}

async function stopEnv(env: Env | undefined): Promise<void> {
  if (!env) return;
  await env.kubelet.stop();
  await env.scheduler.stop();
  await env.network.destroy();
  env.client.close();
  await env.server.close();
  rmSync(env.logDir, { recursive: true, force: true });
}

/** Polls until fn returns a value other than undefined (no fixed sleeps). */
async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function podsOf(client: KubeClient, namespace: string, selector?: string): Promise<V1Pod[]> {
  return (await client.list<V1Pod>(Resources.pods, { namespace, ...(selector ? { labelSelector: selector } : {}) })).items;
}

function condition(pod: V1Pod, type: string): string | undefined {
  return pod.status?.conditions?.find((c) => c.type === type)?.status;
}

const ready = (pod: V1Pod): boolean => pod.status?.phase === "Running" && condition(pod, "Ready") === "True";

function podNs(pod: V1Pod): string {
  return podNamespaceName(PREFIX, pod.metadata?.uid ?? "");
}

async function namespaces(): Promise<string[]> {
  const out = await runner.run("ip", ["netns", "list"]);
  return out.stdout.split("\n").map((l) => l.split(" ")[0] ?? "").filter((n) => n.startsWith(`${PREFIX}-`));
}

async function pidsIn(ns: string): Promise<number[]> {
  const out = await runner.run("ip", ["netns", "pids", ns]);
  return out.stdout.split("\n").filter((l) => /^\d+$/.test(l.trim())).map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The main process of a pod's container: the pod namespace's process whose parent is outside it. */
async function containerPid(pod: V1Pod): Promise<number> {
  const pids = await pidsIn(podNs(pod));
  const main = pids.find((pid) => !pids.includes(Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[1])));
  if (main === undefined) throw new Error(`no process in ${podNs(pod)}`);
  return main;
}

function environOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")) {
    const i = entry.indexOf("=");
    if (i > 0) out[entry.slice(0, i)] = entry.slice(i + 1);
  }
  return out;
}

type Event = KubeObject & { reason?: string; message?: string; type?: string; count?: number; involvedObject?: { kind?: string; uid?: string } };

/** Waits for an Event about the object with that reason (Events are written in the background). */
async function eventFor(client: KubeClient, namespace: string, uid: string, reason: string): Promise<Event> {
  return waitFor(`a ${reason} Event`, async () =>
    (await client.list<Event>(Resources.events, { namespace })).items.find((ev) => ev.reason === reason && ev.involvedObject?.uid === uid));
}

/** A LoadBalancer Service and the DaemonSet the controller would write for it. */
async function lbDaemonSet(env: Env, name: string, port: number, policy: "Local" | "Cluster", dualStack = false): Promise<V1DaemonSet> {
  const svc = await env.client.create<V1Service>(Resources.services, {
    metadata: { name, namespace: "default" },
    spec: {
      type: "LoadBalancer", externalTrafficPolicy: policy, selector: { app: name }, ports: [{ port, protocol: "TCP", targetPort: 8080 }],
      ...(dualStack ? { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] } : {}),
    },
  });
  const config = defaultControllerConfig({ lbPodImage: LB_IMAGE });
  const parsed = parseServiceConfig(svc, config);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  const nodes = (await env.client.list<V1Node>(Resources.nodes)).items;
  const ds = await env.client.create(Resources.daemonSets, buildDaemonSet(svc, parsed.value, nodes, config));
  // The rules the lb-pods mount, as the controller writes them (src/controller/rules-configmap.ts).
  await env.client.create(Resources.configMaps, buildRulesConfigMap(ds, { uid: ds.metadata?.uid ?? "" }, lbPodRulesBundle(parsed.value)));
  return ds;
}

function shellDaemonSet(name: string, script: string, o: { hostPort?: number; node?: string; grace?: number } = {}): V1DaemonSet {
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name, namespace: NS },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          ...(o.node ? { nodeSelector: { "kubernetes.io/hostname": o.node } } : {}),
          ...(o.grace !== undefined ? { terminationGracePeriodSeconds: o.grace } : {}),
          containers: [{
            name: "main", image: SHELL_IMAGE, command: ["sh", "-c", script],
            ...(o.hostPort ? { ports: [{ containerPort: o.hostPort, hostPort: o.hostPort, protocol: "TCP" }] } : {}),
          }],
        },
      },
    },
  };
}

describe("sandbox kubelet stand-in (real processes in pod network namespaces)", function () {
  // Generous: lb-pods start Node.js twice (apply, then every probe), and CI machines have 2 cores.
  this.timeout(180_000);
  let env: Env | undefined;

  before(async function () {
    const reason = needsRoot();
    if (reason) skipBecause(this, reason);
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    lbPodRootfs = (await ensureLbPodRootfs(REPO, runner)).dir;
    // Leftovers of runs of this file that were killed (their pid is gone); live runs of others are left alone.
    const list = await runner.run("ip", ["netns", "list"]);
    const dead = new Set(list.stdout.split("\n").map((l) => /^bsk(\d+)-/.exec(l)?.[1]).filter((pid): pid is string => pid !== undefined && !alive(Number(pid))));
    for (const pid of dead) await removeSandboxNetwork(`bsk${pid}`);
  });
  afterEach(async function () {
    // What the kubelet did, for a failed test (timings, probe failures, restarts).
    if (this.currentTest?.state === "failed" && env) console.log(env.logs.slice(-40).join("\n"));
    await stopEnv(env);
    env = undefined;
    // Nothing of ours may outlive a test, whatever it did.
    assert.deepEqual(await namespaces(), []);
  });

  it("runs an IPv4 Service's lb-pod DaemonSet on a stock kubelet: admitted, Ready from its real probe, downward-API env, per-pod /run/berth", async () => {
    // No --allowed-unsafe-sysctls: the IPv4 lb-pod asks for no sysctl and must be admitted as it is.
    env = await startEnv();
    const e = env;
    const ds = await lbDaemonSet(e, "web", 80, "Local");
    const selector = `berth.dev/daemonset=${ds.metadata?.name}`;
    const pods = await waitFor("two Ready lb-pods", async () => {
      const list = await podsOf(e.client, NS, selector);
      return list.length === 2 && list.every(ready) ? list : undefined;
    });
    assert.deepEqual(pods.map((p) => p.spec?.nodeName).sort(), ["node-1", "node-2"]);
    const states: string[] = [];
    for (const pod of pods) {
      const node = e.layout.nodes.find((n) => n.name === pod.spec?.nodeName);
      assert.ok(node);
      assert.deepEqual(pod.status?.hostIPs, node.lanIps.map((ip) => ({ ip })));
      const podIp = pod.status?.podIP ?? "";
      assert.ok(podIp.startsWith("10.42."), podIp);
      assert.equal(pod.status?.containerStatuses?.[0]?.ready, true);

      const pid = await containerPid(pod);
      const environ = environOf(pid);
      // DEST_IPS from the downward API's status.hostIPs (Local); the ports are in the mounted bundle only.
      assert.equal(environ.DEST_IPS, node.lanIps.join(","));
      assert.equal(environ.BERTH_PORTS, undefined);
      assert.ok((environ.PATH ?? "").startsWith(`${LB_POD_ROOTFS_PATH.join(":")}:`), environ.PATH);
      // Its root is the image's tree, not the host's.
      assert.equal(readlinkSync(`/proc/${pid}/root`), lbPodRootfs);

      // No sysctl asked for; the pod namespace starts as on a real node: IPv4 forwarding on (copied from a node that
      // forwards), IPv6 forwarding off; the host's own setting is left as it was.
      assert.equal(pod.spec?.securityContext?.sysctls, undefined);
      const forward = await runner.run("cat", ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"], { netns: podNs(pod) });
      assert.deepEqual(forward.stdout.trim().split("\n"), ["1", "0"]);
      assert.equal(readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim(), hostForwarding);
      // The rules are in the pod's namespace, not on its node.
      const rules = await runner.run("iptables-save", ["-t", "nat"], { netns: podNs(pod) });
      assert.match(rules.stdout, new RegExp(`--to-destination ${node.lanIps[0]}:`));

      // /run/berth in the container is the pod's own emptyDir (a directory per pod uid on the host).
      const state = await runner.run("nsenter", ["-t", String(pid), "-m", "-r", "cat", "/run/berth/want-ipv4"]);
      assert.equal(state.exitCode, 0, state.stderr);
      assert.equal(state.stdout, readFileSync(join(e.logDir, "pods", pod.metadata?.uid ?? "", "state", "want-ipv4"), "utf8"));
      states.push(state.stdout);
    }
    // Two pods, two states (their DEST_IPS differ, so do the rules they expect): nothing shared through /run/berth,
    // although every sandbox "node" and every container's tree is the same host with one filesystem.
    assert.notEqual(states[0], states[1]);
    // The host's own /run/berth holds nothing of theirs.
    assert.ok(!existsSync("/run/berth/state.json"));
    // The container's output is in its log file.
    const log = readFileSync(join(e.logDir, `${NS}_${pods[0]?.metadata?.name}_lb-pod.log`), "utf8");
    assert.match(log, /berth lb-pod: forwarding tcp\/80\b/);
    // The rules came from the ConfigMap the DaemonSet mounts (a file per key, read-only in the container).
    const rules = await runner.run("nsenter", ["-t", String(await containerPid(pods[0] as V1Pod)), "-m", "-r", "cat", "/etc/berth/rules/format"]);
    assert.equal(rules.stdout, "1");

    // Idle Ready pods are not rewritten: a status is written only when it changes.
    const versions = async (): Promise<string[]> => (await podsOf(e.client, NS, selector)).map((p) => p.metadata?.resourceVersion ?? "");
    const settled = await versions();
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual(await versions(), settled);

    const status = await waitFor("DaemonSet status", async () => {
      const live = await e.client.get<V1DaemonSet>(Resources.daemonSets, ds.metadata?.name ?? "", { namespace: NS });
      return live.status?.numberReady === 2 ? live.status : undefined;
    });
    assert.equal(status.desiredNumberScheduled, 2);
  });

  it("the DaemonSet controller creates pods unbound and the scheduler binds them through pods/binding (watch: ADDED without nodeName, then MODIFIED with it)", async () => {
    env = await startEnv(2);
    const e = env;
    const events: { type: string; name: string; nodeName?: string; scheduled?: string }[] = [];
    const abort = new AbortController();
    const watching = (async () => {
      try {
        for await (const ev of e.client.watch<V1Pod>(Resources.pods, { namespace: NS, resourceVersion: "0", labelSelector: "app=everywhere", signal: abort.signal })) {
          events.push({
            type: ev.type, name: ev.object.metadata?.name ?? "", ...(ev.object.spec?.nodeName ? { nodeName: ev.object.spec.nodeName } : {}),
            ...(ev.object.status?.conditions?.find((c) => c.type === "PodScheduled")?.status ? { scheduled: ev.object.status?.conditions?.find((c) => c.type === "PodScheduled")?.status } : {}),
          });
        }
      } catch {
        // Aborted.
      }
    })();
    await e.client.create(Resources.daemonSets, shellDaemonSet("everywhere", "exec sleep 1000"));
    const pods = await waitFor("two Ready pods", async () => {
      const list = await podsOf(e.client, NS, "app=everywhere");
      return list.length === 2 && list.every(ready) ? list : undefined;
    });
    abort.abort();
    await watching;
    for (const pod of pods) {
      const mine = events.filter((ev) => ev.name === pod.metadata?.name);
      assert.deepEqual(mine[0], { type: "ADDED", name: pod.metadata?.name }, JSON.stringify(mine));
      const bound = mine.find((ev) => ev.nodeName);
      assert.deepEqual(bound, { type: "MODIFIED", name: pod.metadata?.name, nodeName: pod.spec?.nodeName, scheduled: "True" });
    }
    assert.deepEqual(pods.map((p) => p.spec?.nodeName).sort(), ["node-1", "node-2"]);
    assert.match((await eventFor(e.client, NS, pods[0]?.metadata?.uid ?? "", "Scheduled")).message ?? "", new RegExp(`^Successfully assigned ${NS}/${pods[0]?.metadata?.name} to node-[12]$`));
  });

  it("dual-stack: the pod gets an address of each family, and the downward API lists both (IPv4 first)", async () => {
    env = await startEnv(1, { dualStack: true });
    const e = env;
    const field = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
    await e.client.create<V1Pod>(Resources.pods, {
      metadata: { name: "both", namespace: "default" },
      spec: {
        nodeName: "node-1",
        containers: [{
          name: "c", image: SHELL_IMAGE, command: ["sh", "-c", "exec sleep 1000"],
          env: [field("POD_IPS", "status.podIPs"), field("HOST_IPS", "status.hostIPs"), field("POD_IP", "status.podIP")],
        }],
      },
    });
    const pod = await waitFor("Ready", async () => {
      const p = await e.client.get<V1Pod>(Resources.pods, "both", { namespace: "default" });
      return ready(p) ? p : undefined;
    });
    const [v4, v6] = (pod.status?.podIPs ?? []).map((x) => x.ip);
    assert.ok(v4?.startsWith("10.42.1.") && v6?.startsWith("fd42:b5e7:7a42:1::"), JSON.stringify(pod.status?.podIPs));
    const environ = environOf(await containerPid(pod));
    assert.equal(environ.POD_IPS, `${v4},${v6}`);
    assert.equal(environ.POD_IP, v4);
    assert.equal(environ.HOST_IPS, e.layout.nodes[0]?.lanIps.join(","));
    assert.equal(e.layout.nodes[0]?.lanIps.length, 2);
    // Both addresses are really the pod's.
    const addrs = await runner.run("ip", ["-brief", "addr", "show", "eth0"], { netns: podNs(pod) });
    assert.ok(addrs.stdout.includes(v4 ?? "?") && addrs.stdout.includes(v6 ?? "?"), addrs.stdout);
  });

  it("reports Ready exactly while the readiness probe, run inside the container's namespaces, passes", async () => {
    env = await startEnv(1);
    const e = env;
    const created = await e.client.create<V1Pod>(Resources.pods, {
      metadata: { name: "flag", namespace: "default" },
      spec: {
        nodeName: "node-1",
        volumes: [{ name: "flags", emptyDir: {} }],
        containers: [{
          name: "c", image: SHELL_IMAGE, command: ["sh", "-c", "exec sleep 1000"],
          volumeMounts: [{ name: "flags", mountPath: "/run/berth-test-flags" }],
          // /run/berth-test-flags exists only in the container's mount namespace: a probe run elsewhere always fails.
          readinessProbe: { exec: { command: ["test", "-f", "/run/berth-test-flags/ready"] }, periodSeconds: 1, failureThreshold: 2 },
        }],
      },
    });
    const get = (): Promise<V1Pod> => e.client.get<V1Pod>(Resources.pods, "flag", { namespace: "default" });
    await waitFor("Running", async () => ((await get()).status?.containerStatuses?.[0]?.state?.running ? true : undefined));
    // Three probe periods without the file: still not Ready.
    for (let i = 0; i < 6; i++) {
      assert.equal(condition(await get(), "Ready"), "False");
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal((await eventFor(e.client, "default", created.metadata?.uid ?? "", "Unhealthy")).message, "Readiness probe failed: exit code 1");
    const flag = join(e.logDir, "pods", created.metadata?.uid ?? "", "flags", "ready");
    writeFileSync(flag, "");
    await waitFor("Ready", async () => (condition(await get(), "Ready") === "True" ? true : undefined));
    rmSync(flag);
    await waitFor("not Ready again", async () => (condition(await get(), "Ready") === "False" ? true : undefined));
    assert.equal((await get()).status?.phase, "Running");
  });

  it("probes httpGet readiness from inside the pod's network namespace, without the host's bash start-up files", async () => {
    // bash runs ~/.bashrc when its stdin is a socket (as Node's spawn pipes are) and $BASH_ENV always: a probe must
    // not (a pyenv init in root's .bashrc once hung every probe). Both point at a script that leaves a mark here.
    const home = mkdtempSync(join(tmpdir(), "berth-kubelet-home-"));
    const mark = join(home, "sourced");
    writeFileSync(join(home, ".bashrc"), `touch ${mark}\n`);
    const saved = { HOME: process.env.HOME, BASH_ENV: process.env.BASH_ENV };
    process.env.HOME = home;
    process.env.BASH_ENV = join(home, ".bashrc");
    try {
      env = await startEnv(1);
      const e = env;
      const server = "require('node:http').createServer((q, s) => { s.statusCode = q.url === '/healthz' ? 200 : 500; s.end(); }).listen(8080)";
      await e.client.create<V1Pod>(Resources.pods, {
        metadata: { name: "web", namespace: "default" },
        spec: {
          nodeName: "node-1",
          containers: [{
            name: "c", image: SHELL_IMAGE, command: [process.execPath, "-e", server], ports: [{ name: "http", containerPort: 8080 }],
            readinessProbe: { httpGet: { port: "http", path: "/healthz" } },
          }],
        },
      });
      const pod = await waitFor("Ready", async () => {
        const p = await e.client.get<V1Pod>(Resources.pods, "web", { namespace: "default" });
        return ready(p) ? p : undefined;
      });
      assert.ok(!existsSync(mark), "a probe ran the host's bash start-up file");
      // The container's server is in the pod's namespace: the pod IP answers there.
      const inPod = await runner.run("env", ["-i", "bash", "--norc", "-c", `exec 3<>/dev/tcp/${pod.status?.podIP}/8080`], { netns: podNs(pod) });
      assert.equal(inPod.exitCode, 0, inPod.stderr);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      rmSync(home, { recursive: true, force: true });
    }
  });

  it("restarts a killed container (restartCount 1) and the pod is Ready again with one copy of its rules", async () => {
    env = await startEnv(1);
    const e = env;
    const ds = await lbDaemonSet(e, "web", 80, "Cluster");
    const selector = `berth.dev/daemonset=${ds.metadata?.name}`;
    const [pod] = await waitFor("a Ready lb-pod", async () => {
      const list = await podsOf(e.client, NS, selector);
      return list.length === 1 && list.every(ready) ? list : undefined;
    });
    assert.ok(pod);
    const before = await runner.run("iptables-save", ["-t", "nat"], { netns: podNs(pod) });
    const pid = await containerPid(pod);
    process.kill(pid, "SIGKILL");
    const restarted = await waitFor("the restarted container Ready", async () => {
      const [p] = await podsOf(e.client, NS, selector);
      return p && p.status?.containerStatuses?.[0]?.restartCount === 1 && ready(p) ? p : undefined;
    });
    const cs = restarted.status?.containerStatuses?.[0];
    assert.equal((cs?.lastState as { terminated?: { exitCode?: number } } | undefined)?.terminated?.exitCode, 137);
    assert.notEqual(await containerPid(restarted), pid);
    assert.match((await eventFor(e.client, NS, pod.metadata?.uid ?? "", "BackOff")).message ?? "", /^Back-off restarting failed container lb-pod in pod /);
    const after = await runner.run("iptables-save", ["-t", "nat"], { netns: podNs(pod) });
    const dnat = (text: string): string[] => text.split("\n").filter((l) => l.includes("DNAT"));
    assert.deepEqual(dnat(after.stdout), dnat(before.stdout));
  });

  it("deleting the DaemonSet stops its pods with SIGTERM first (berth-wait removes the rules), then the pods, namespaces and processes are gone", async () => {
    env = await startEnv(1);
    const e = env;
    const ds = await lbDaemonSet(e, "web", 80, "Cluster");
    const selector = `berth.dev/daemonset=${ds.metadata?.name}`;
    const [pod] = await waitFor("a Ready lb-pod", async () => {
      const list = await podsOf(e.client, NS, selector);
      return list.length === 1 && list.every(ready) ? list : undefined;
    });
    assert.ok(pod);
    const pids = await pidsIn(podNs(pod));
    assert.ok(pids.length > 0);
    await e.client.delete(Resources.daemonSets, ds.metadata?.name ?? "", { namespace: NS });
    await waitFor("the pod gone", async () => ((await podsOf(e.client, NS, selector)).length === 0 ? true : undefined));
    // berth-wait exits 0 only when its cleanup script removed the rules; SIGKILL would have been 137.
    assert.ok(e.logs.some((l) => l.includes(`${NS}/${pod.metadata?.name}/lb-pod`) && l.includes("stopped (exit 0)")), e.logs.join("\n"));
    await waitFor("the pod namespace removed", async () => (!(await namespaces()).includes(podNs(pod)) ? true : undefined));
    assert.deepEqual(pids.filter(alive), []);
  });

  it("a container that ignores SIGTERM is killed after the pod's grace period", async () => {
    env = await startEnv(1);
    const e = env;
    await e.client.create(Resources.daemonSets, shellDaemonSet("stubborn", "trap 'echo got TERM' TERM; while :; do sleep 0.1; done", { grace: 1 }));
    const [pod] = await waitFor("a Ready pod", async () => {
      const list = await podsOf(e.client, NS, "app=stubborn");
      return list.length === 1 && list.every(ready) ? list : undefined;
    });
    assert.ok(pod);
    const pids = await pidsIn(podNs(pod));
    const started = Date.now();
    await e.client.delete(Resources.pods, pod.metadata?.name ?? "", { namespace: NS });
    await waitFor("the pod gone", async () => {
      const left = await e.client.tryGet(Resources.pods, pod.metadata?.name ?? "", { namespace: NS }) as KubeObject | undefined;
      return left === undefined || left.metadata?.uid !== pod.metadata?.uid ? true : undefined;
    });
    const took = Date.now() - started;
    assert.ok(took >= 1000 && took < 5000, `took ${took} ms`);
    const log = readFileSync(join(e.logDir, `${NS}_${pod.metadata?.name}_main.log`), "utf8");
    assert.match(log, /got TERM/);
    assert.deepEqual(pids.filter(alive), []);
  });

  it("leaves the second pod wanting a taken hostPort Pending and Unschedulable, with the NodePorts plugin's message", async () => {
    env = await startEnv(2);
    const e = env;
    await e.client.create(Resources.daemonSets, shellDaemonSet("first", "exec sleep 1000", { hostPort: 8080, node: "node-1" }));
    await waitFor("first Ready", async () => ((await podsOf(e.client, NS, "app=first")).some(ready) ? true : undefined));
    await e.client.create(Resources.daemonSets, shellDaemonSet("second", "exec sleep 1000", { hostPort: 8080, node: "node-1" }));
    const pending = await waitFor("second Unschedulable", async () => {
      const [p] = await podsOf(e.client, NS, "app=second");
      return p?.status?.conditions?.some((c) => c.type === "PodScheduled" && c.status === "False") ? p : undefined;
    });
    assert.equal(pending.status?.phase, "Pending");
    assert.equal(pending.spec?.nodeName, undefined);
    const cond = pending.status?.conditions?.find((c) => c.type === "PodScheduled");
    assert.equal(cond?.reason, "Unschedulable");
    // kube-scheduler 1.32's text: its node's port is taken, the other node is left out by NodeAffinity's PreFilter.
    assert.equal(cond?.message, unschedulableCondition(2).message);
    assert.equal((await eventFor(e.client, NS, pending.metadata?.uid ?? "", "FailedScheduling")).message, cond?.message);
    // Once the first DaemonSet goes, the port is free and the second pod is bound and runs.
    await e.client.delete(Resources.daemonSets, "first", { namespace: NS });
    await waitFor("second Ready", async () => ((await podsOf(e.client, NS, "app=second")).some(ready) ? true : undefined));
  });

  // pkg/kubelet/lifecycle/predicate.go: the kubelet admits a pod only if GeneralPredicates pass against the pods it
  // already runs, NodePorts among them, whoever bound it (here: a pod created with spec.nodeName, no scheduler).
  it("rejects a pod bound to a node whose hostPort a running pod holds (Failed, NodePorts, Event), and runs nothing of it", async () => {
    env = await startEnv(1);
    const e = env;
    const bare = (name: string): V1Pod => ({
      metadata: { name, namespace: NS },
      spec: { nodeName: "node-1", containers: [{ name: "main", image: SHELL_IMAGE, command: ["sh", "-c", "exec sleep 1000"], ports: [{ containerPort: 8080, hostPort: 8080, protocol: "TCP" }] }] },
    });
    await e.client.create(Resources.pods, bare("holder"));
    await waitFor("holder Ready", async () => ((await podsOf(e.client, NS)).some((p) => p.metadata?.name === "holder" && ready(p)) ? true : undefined));
    const late = await e.client.create<V1Pod>(Resources.pods, bare("late"));
    const failed = await waitFor("late Failed", async () => (await podsOf(e.client, NS)).find((p) => p.metadata?.name === "late" && p.status?.phase === "Failed"), 30_000);
    assert.deepEqual({ reason: failed.status?.reason, message: failed.status?.message }, { reason: "NodePorts", message: "Pod was rejected: Predicate NodePorts failed" });
    const event = await eventFor(e.client, NS, late.metadata?.uid ?? "", "NodePorts");
    assert.deepEqual({ type: event.type, message: event.message }, { type: "Warning", message: "Predicate NodePorts failed" });
    assert.ok(!(await namespaces()).includes(podNs(late)));
    assert.ok((await podsOf(e.client, NS)).some((p) => p.metadata?.name === "holder" && ready(p)), "the holder still runs");
  });

  it("rolls a changed template out: the old pod is stopped and gone before its replacement runs the new command, with no hostPort clash on the way", async () => {
    env = await startEnv(1);
    const e = env;
    const created = await e.client.create<V1DaemonSet>(Resources.daemonSets, shellDaemonSet("roll", "exec sleep 1000", { hostPort: 8080 }));
    const [old] = await waitFor("a Ready pod", async () => {
      const list = await podsOf(e.client, NS, "app=roll");
      return list.length === 1 && list.every(ready) ? list : undefined;
    });
    assert.ok(old);
    const oldPids = await pidsIn(podNs(old));
    await e.client.patch(Resources.daemonSets, created.metadata?.name ?? "", "json",
      [{ op: "replace", path: "/spec/template/spec/containers/0/command", value: ["sh", "-c", "exec sleep 1001"] }], { namespace: NS });
    let most = 0;
    const fresh = await waitFor("the replacement Ready", async () => {
      const list = await podsOf(e.client, NS, "app=roll");
      most = Math.max(most, list.length);
      const p = list.find((x) => x.metadata?.uid !== old.metadata?.uid);
      return p && ready(p) ? p : undefined;
    });
    assert.equal(most, 1, "old and new pod existed at the same time");
    assert.deepEqual(fresh.spec?.containers[0]?.command, ["sh", "-c", "exec sleep 1001"]);
    assert.deepEqual(oldPids.filter(alive), []);
    assert.ok(!(await namespaces()).includes(podNs(old)));
    const events = await e.client.list<Event>(Resources.events, { namespace: NS });
    assert.ok(!events.items.some((ev) => ev.reason === "FailedScheduling"), "a FailedScheduling Event was written");
  });

  it("a kubelet without --allowed-unsafe-sysctls rejects a dual-stack Service's lb-pod (Failed, SysctlForbidden, Event) and nothing runs", async () => {
    env = await startEnv(1, { dualStack: true });
    const e = env;
    const ds = await lbDaemonSet(e, "web", 80, "Cluster", true);
    const selector = `berth.dev/daemonset=${ds.metadata?.name}`;
    const pod = await waitFor("a rejected pod", async () => (await podsOf(e.client, NS, selector)).find((p) => p.status?.phase === "Failed"));
    assert.equal(pod.status?.reason, "SysctlForbidden");
    assert.equal(pod.status?.message, 'Pod was rejected: forbidden sysctl: "net.ipv6.conf.all.forwarding" not allowlisted');
    const rejected = await eventFor(e.client, NS, pod.metadata?.uid ?? "", "SysctlForbidden");
    assert.equal(rejected.type, "Warning");
    assert.ok(!(await namespaces()).includes(podNs(pod)));
    // The DaemonSet controller replaces the failed pod a few seconds later, and says so.
    const failed = await eventFor(e.client, NS, ds.metadata?.uid ?? "", "FailedDaemonPod");
    assert.match(failed.message ?? "", new RegExp(`Found failed daemon pod ${NS}/${pod.metadata?.name} on node node-1`));
  });

  it("an unknown image leaves the pod Pending, waiting with ErrImagePull naming the image", async () => {
    env = await startEnv(1);
    const e = env;
    await e.client.create<V1Pod>(Resources.pods, {
      metadata: { name: "lost", namespace: "default" },
      spec: { nodeName: "node-1", containers: [{ name: "c", image: "registry.example/nothing:1" }] },
    });
    const pod = await waitFor("ErrImagePull", async () => {
      const p = await e.client.get<V1Pod>(Resources.pods, "lost", { namespace: "default" });
      return p.status?.containerStatuses?.[0]?.state?.waiting?.reason === "ErrImagePull" ? p : undefined;
    });
    assert.equal(pod.status?.phase, "Pending");
    assert.equal(condition(pod, "Ready"), "False");
    assert.match(pod.status?.containerStatuses?.[0]?.state?.waiting?.message ?? "", /registry\.example\/nothing:1/);
  });

  it("deleting a Node deletes and stops its pods", async () => {
    env = await startEnv(2);
    const e = env;
    await e.client.create(Resources.daemonSets, shellDaemonSet("everywhere", "exec sleep 1000"));
    const pods = await waitFor("two Ready pods", async () => {
      const list = await podsOf(e.client, NS, "app=everywhere");
      return list.length === 2 && list.every(ready) ? list : undefined;
    });
    const onTwo = pods.find((p) => p.spec?.nodeName === "node-2");
    assert.ok(onTwo);
    const pids = await pidsIn(podNs(onTwo));
    await e.client.delete(Resources.nodes, "node-2");
    await waitFor("node-2's pod gone", async () => {
      const list = await podsOf(e.client, NS, "app=everywhere");
      return list.length === 1 && list[0]?.spec?.nodeName === "node-1" ? true : undefined;
    });
    await waitFor("its namespace removed and processes gone", async () =>
      !(await namespaces()).includes(podNs(onTwo)) && pids.filter(alive).length === 0 ? true : undefined);
  });

  it("stop() ends every container process and detaches every pod", async () => {
    env = await startEnv(1);
    const e = env;
    await e.client.create(Resources.daemonSets, shellDaemonSet("everywhere", "exec sleep 1000"));
    await lbDaemonSet(e, "web", 80, "Cluster");
    const pods = await waitFor("two Ready pods", async () => {
      const list = await podsOf(e.client, NS);
      return list.length === 2 && list.every(ready) ? list : undefined;
    });
    const pids = (await Promise.all(pods.map((p) => pidsIn(podNs(p))))).flat();
    assert.ok(pids.length >= 2);
    await e.kubelet.stop();
    assert.deepEqual(pids.filter(alive), []);
    const left = await namespaces();
    for (const pod of pods) assert.ok(!left.includes(podNs(pod)), `${podNs(pod)} still there`);
  });
});
