// What the sandbox kubelet runs for a container and what it reports (src/sandbox/cluster/kubelet/spec.ts), on
// literal pods: command line, environment with the downward API and $(VAR) references, mounts, probes, pod status.
import assert from "node:assert/strict";
import type { V1Container, V1Pod, V1Volume } from "@kubernetes/client-node";
import {
  BASE_PATH,
  ContainerConfigError,
  containerLaunch,
  expand,
  forbiddenSysctl,
  podStatus,
  readinessProbe,
  type ContainerImage,
  type ContainerReport,
} from "../../../src/sandbox/cluster/kubelet/spec.js";
import { buildDaemonSet } from "../../../src/controller/daemonset.js";
import { parseServiceConfig } from "../../../src/controller/service-config.js";
import { defaultControllerConfig } from "../../../src/controller/types.js";
import { node, service } from "../controller/fixtures.js";

const image: ContainerImage = { entrypoint: ["/repo/bin/berth-lb-pod"], pathDirs: ["/repo/bin", "/opt/node/bin"], env: { BERTH_NODE: "/opt/node/bin/node", MODE: "image" } };
const facts = { hostIPs: ["198.18.0.11", "fd42:b5e7:7a00::b"], podIPs: ["10.42.1.2", "fd42:b5e7:7a42:1::2"] };

function pod(container: Partial<V1Container>, volumes: V1Volume[] = []): V1Pod {
  return {
    metadata: { name: "svclb-web-1234", namespace: "berth-system", uid: "u-1", labels: { app: "web" } },
    spec: { nodeName: "node-1", containers: [{ name: "lb-pod", image: "img", ...container }], volumes },
  };
}

function launchOf(p: V1Pod) {
  return containerLaunch(p, p.spec?.containers[0] as V1Container, image, facts);
}

describe("sandbox kubelet: what a container runs", () => {
  it("fills the downward API (plural IPs comma-separated, as the kubelet formats them) and puts the image's PATH first", () => {
    const field = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
    const launch = launchOf(pod({
      env: [
        { name: "BERTH_PORTS", value: "tcp:80:30080" },
        field("DEST_IPS", "status.hostIPs"), field("HOST_IP", "status.hostIP"), field("POD_IP", "status.podIP"), field("POD_IPS", "status.podIPs"),
        field("POD_NAME", "metadata.name"), field("POD_NAMESPACE", "metadata.namespace"), field("NODE_NAME", "spec.nodeName"),
        field("APP", "metadata.labels['app']"), { name: "MODE", value: "container" },
      ],
    }));
    assert.deepEqual(launch.env, {
      PATH: `/repo/bin:/opt/node/bin:${BASE_PATH}`, HOSTNAME: "svclb-web-1234", BERTH_NODE: "/opt/node/bin/node", MODE: "container",
      BERTH_PORTS: "tcp:80:30080", DEST_IPS: "198.18.0.11,fd42:b5e7:7a00::b", HOST_IP: "198.18.0.11", POD_IP: "10.42.1.2",
      POD_IPS: "10.42.1.2,fd42:b5e7:7a42:1::2", POD_NAME: "svclb-web-1234", POD_NAMESPACE: "berth-system", NODE_NAME: "node-1", APP: "web",
    });
    assert.deepEqual(launch.argv, ["/repo/bin/berth-lb-pod"]);
    // An image PATH that already lists system directories keeps each directory once, in its own order.
    const p = pod({});
    const own = containerLaunch(p, p.spec?.containers[0] as V1Container, { ...image, pathDirs: ["/repo/bin", "/usr/bin"] }, facts);
    assert.equal(own.env.PATH, "/repo/bin:/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/bin");
  });

  it("runs command + args instead of the entrypoint, expanding $(VAR) from the environment and leaving $$ and unknown names alone", () => {
    const launch = launchOf(pod({ command: ["berth", "sandbox", "demo-app"], args: ["--port", "$(PORT)", "$(NOPE)", "$$(PORT)"], env: [{ name: "PORT", value: "8080" }] }));
    assert.deepEqual(launch.argv, ["berth", "sandbox", "demo-app", "--port", "8080", "$(NOPE)", "$(PORT)"]);
    assert.equal(expand("a$(X)b", { X: "1" }), "a1b");
  });

  it("mounts emptyDir and configMap volumes at their mountPath, and refuses what the sandbox cannot do with a CreateContainerConfigError", () => {
    const ok = launchOf(pod({ volumeMounts: [{ name: "state", mountPath: "/run/berth" }] }, [{ name: "state", emptyDir: { medium: "Memory" } }]));
    assert.deepEqual(ok.mounts, [{ volume: "state", mountPath: "/run/berth", readOnly: false }]);
    const refused = (p: V1Pod, message: RegExp) => assert.throws(() => launchOf(p), (e: unknown) => e instanceof ContainerConfigError &&
      e.reason === "CreateContainerConfigError" && message.test(e.message));
    const cfg = launchOf(pod({ volumeMounts: [{ name: "cfg", mountPath: "/etc/x", readOnly: true }] }, [{ name: "cfg", configMap: { name: "x" } }]));
    assert.deepEqual(cfg.mounts, [{ volume: "cfg", mountPath: "/etc/x", readOnly: true }]);
    refused(pod({ volumeMounts: [{ name: "host", mountPath: "/etc/x" }] }, [{ name: "host", hostPath: { path: "/etc" } }]), /only emptyDir and configMap/);
    refused(pod({ volumeMounts: [{ name: "missing", mountPath: "/x" }] }), /no volume of that name/);
    refused(pod({ env: [{ name: "X", valueFrom: { fieldRef: { fieldPath: "spec.schedulerName" } } }] }), /fieldRef spec\.schedulerName is not supported/);
    refused(pod({ env: [{ name: "X", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }] }), /only valueFrom\.fieldRef/);
  });

  it("reads exec, tcpSocket and httpGet readiness probes (named ports resolved) with Kubernetes' defaults", () => {
    assert.equal(readinessProbe({ name: "c" }), undefined);
    assert.deepEqual(readinessProbe({ name: "c", readinessProbe: { exec: { command: ["berth", "lb-pod", "check"] }, timeoutSeconds: 5 } }), {
      action: { kind: "exec", command: ["berth", "lb-pod", "check"] }, periodMs: 10_000, timeoutMs: 5000, failureThreshold: 3, successThreshold: 1, initialDelayMs: 0,
    });
    const http = readinessProbe({ name: "c", ports: [{ name: "http", containerPort: 8080 }], readinessProbe: { httpGet: { port: "http", path: "/healthz" } } });
    assert.deepEqual(http?.action, { kind: "http", port: 8080, path: "/healthz", scheme: "HTTP" });
    assert.deepEqual(readinessProbe({ name: "c", readinessProbe: { tcpSocket: { port: 53 } } })?.action, { kind: "tcp", port: 53 });
  });
});

describe("sandbox kubelet: sysctl admission", () => {
  const withSysctls = (...names: string[]): V1Pod => ({
    spec: { containers: [], securityContext: { sysctls: names.map((name) => ({ name, value: "1" })) } },
  });

  it("rejects an unsafe sysctl outside --allowed-unsafe-sysctls with the kubelet's message, and admits safe and allowed ones", () => {
    assert.equal(forbiddenSysctl(withSysctls("net.ipv4.ip_forward"), []), 'forbidden sysctl: "net.ipv4.ip_forward" not allowlisted');
    assert.equal(forbiddenSysctl(withSysctls("net.ipv4.tcp_syncookies"), []), undefined);
    assert.equal(forbiddenSysctl(withSysctls("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"), ["net.ipv4.ip_forward"]),
      'forbidden sysctl: "net.ipv6.conf.all.forwarding" not allowlisted');
    assert.equal(forbiddenSysctl(withSysctls("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"), ["net.ipv4.ip_forward", "net.ipv6.*"]), undefined);
  });

  it("a stock kubelet (no --allowed-unsafe-sysctls) admits an IPv4 Service's lb-pod and rejects a dual-stack one's", () => {
    const lbPod = (families: string[], ips: string[]): V1Pod => {
      const svc = service({ spec: { ipFamilies: families, clusterIPs: ips } });
      const parsed = parseServiceConfig(svc, defaultControllerConfig());
      if (!parsed.ok) throw new Error("fixture does not parse");
      return { spec: buildDaemonSet(svc, parsed.value, [node("n1")], defaultControllerConfig()).spec?.template.spec as V1Pod["spec"] };
    };
    assert.equal(forbiddenSysctl(lbPod(["IPv4"], ["10.43.0.10"]), []), undefined);
    assert.equal(forbiddenSysctl(lbPod(["IPv4", "IPv6"], ["10.43.0.10", "fd00:43::a"]), []),
      'forbidden sysctl: "net.ipv6.conf.all.forwarding" not allowlisted');
    assert.equal(forbiddenSysctl(lbPod(["IPv4", "IPv6"], ["10.43.0.10", "fd00:43::a"]), ["net.ipv6.conf.all.forwarding"]), undefined);
  });
});

describe("sandbox kubelet: pod status", () => {
  const base = { hostIPs: ["198.18.0.11"], podIPs: ["10.42.1.2"], sandboxReady: true, startTime: "2026-01-01T00:00:00Z" };
  const container = (current: ContainerReport["current"], more: Partial<ContainerReport> = {}): ContainerReport => ({
    name: "lb-pod", image: "img", current, restartCount: 0, everStarted: current.state !== "waiting", ...more,
  });
  const cond = (s: ReturnType<typeof podStatus>, type: string) => s.conditions?.find((c) => c.type === type);

  it("is Pending while a container waits for its image, Running and not Ready until the probe passes, then Ready", () => {
    const waiting = podStatus({ ...base, containers: [container({ state: "waiting", reason: "ErrImagePull", message: "no image" })] }, undefined, "2026-01-01T00:00:01Z");
    assert.equal(waiting.phase, "Pending");
    assert.deepEqual(waiting.containerStatuses?.[0]?.state, { waiting: { reason: "ErrImagePull", message: "no image" } });
    assert.equal(cond(waiting, "Ready")?.status, "False");
    assert.equal(cond(waiting, "Ready")?.message, "containers with unready status: [lb-pod]");

    const running = podStatus({ ...base, containers: [container({ state: "running", startedAt: "2026-01-01T00:00:02Z", ready: false })] }, waiting, "2026-01-01T00:00:02Z");
    assert.equal(running.phase, "Running");
    assert.equal(cond(running, "Ready")?.status, "False");
    // Unchanged condition status: its transition time is kept.
    assert.equal(String(cond(running, "Ready")?.lastTransitionTime), "2026-01-01T00:00:01Z");

    const ready = podStatus({ ...base, containers: [container({ state: "running", startedAt: "2026-01-01T00:00:02Z", ready: true })] }, running, "2026-01-01T00:00:03Z");
    assert.equal(cond(ready, "Ready")?.status, "True");
    assert.equal(cond(ready, "ContainersReady")?.status, "True");
    assert.equal(String(cond(ready, "Ready")?.lastTransitionTime), "2026-01-01T00:00:03Z");
    assert.deepEqual(ready.hostIPs, [{ ip: "198.18.0.11" }]);
    assert.equal(ready.podIP, "10.42.1.2");
    assert.equal(ready.containerStatuses?.[0]?.ready, true);
  });

  it("stays Running through a crash, with the restart count, the last termination and CrashLoopBackOff", () => {
    const last = { state: "terminated" as const, exitCode: 137, signal: 9, reason: "Error", startedAt: "2026-01-01T00:00:02Z", finishedAt: "2026-01-01T00:00:09Z" };
    const s = podStatus({ ...base, containers: [container({ state: "waiting", reason: "CrashLoopBackOff", message: "back-off 1s" }, { restartCount: 1, last, everStarted: true })] }, undefined, "2026-01-01T00:00:10Z");
    assert.equal(s.phase, "Running");
    assert.equal(s.containerStatuses?.[0]?.restartCount, 1);
    assert.deepEqual(s.containerStatuses?.[0]?.lastState, { terminated: { exitCode: 137, signal: 9, reason: "Error", startedAt: last.startedAt, finishedAt: last.finishedAt } });
    assert.equal(cond(s, "Ready")?.status, "False");
  });
});
