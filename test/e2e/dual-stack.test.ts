// End-to-end: a dual-stack sandbox (IPv4 and IPv6 on the LAN, the nodes and the pods), then `sandbox down` and a
// check that nothing of it is left on the machine: no network namespace, no link, no netfilter rule in the host's
// tables, no process, no mount, no state directory. The host's links and rules are recorded before `up` and compared
// after `down` (the sandbox must never touch the host's own network, so they must be identical).
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { needsRoot, skipBecause } from "../support/skip.js";
import {
  APP_NAMESPACE,
  Sandbox,
  appDaemonSet,
  appPod,
  commandLine,
  descendants,
  sandboxHooks,
  setUpOrDump,
  e2ePrefix,
  hostLinks,
  hostRules,
  lbService,
  processAlive,
  show,
  type Target,
} from "./fixture.js";

const http = (ip: string, port: number): Target => ({ protocol: "http", ip, port });

describe("e2e: dual-stack sandbox, then sandbox down", function () {
  this.timeout(150_000);
  let sandbox: Sandbox | undefined;
  let rulesBefore = "";
  let linksBefore: string[] = [];
  const sb = (): Sandbox => {
    if (!sandbox) throw new Error("sandbox not up");
    return sandbox;
  };

  before(async function () {
    const reason = needsRoot();
    if (reason) skipBecause(this, reason);
    this.timeout(180_000);
    rulesBefore = await hostRules();
    linksBefore = await hostLinks();
    // IPv6 forwarding in a pod needs net.ipv6.conf.all.forwarding, which a kubelet admits only when told to (as
    // docs/install-kubeadm.md tells users to); test/e2e/sysctl-admission.test.ts runs without it.
    sandbox = await Sandbox.up(e2ePrefix("c"), { nodes: 2, dualStack: true, allowedUnsafeSysctls: ["net.ipv6.conf.all.forwarding"] });
    await setUpOrDump(sandbox, async (s) => {
      await s.create(appDaemonSet("web"));
      await s.waitForReadyPods("app=web", 2);
    });
  });

  sandboxHooks(() => sandbox);

  it("gives a RequireDualStack Service each node's IPv4 and IPv6 address and answers on both families", async () => {
    assert.ok(sb().nodes.every((node) => node.ipv6 !== undefined), "every Node has an IPv6 InternalIP");
    await sb().create(lbService("dual", "web", [{ port: 8201 }], { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] }));
    const v4 = sb().nodes.map((node) => node.ipv4);
    const v6 = sb().nodes.map((node) => node.ipv6 ?? "");
    await sb().waitForIngress("dual", [...v4, ...v6]);
    const outcomes = await sb().waitForAnswers("IPv4 and IPv6 on every node", [...v4, ...v6].map((ip) => http(ip, 8201)));
    for (const outcome of outcomes) assert.ok(outcome.answered && outcome.pod.startsWith("web-"), show(outcome));
  });

  it("an IPv6-only Local Service lists only the node with the endpoint, which answers with the client's IPv6 address", async () => {
    const client6 = (await sb().clientAddress(6)).ip;
    await sb().create(appPod("local-1", "local", "node-1"));
    await sb().waitForReadyPods("app=local", 1);
    await sb().create(lbService("local6", "local", [{ port: 8202 }], { externalTrafficPolicy: "Local", ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"] }));
    await sb().waitForIngress("local6", [sb().node("node-1").ipv6 ?? ""]);
    const [outcome] = await sb().waitForAnswers("node-1 over IPv6", [http(sb().node("node-1").ipv6 ?? "", 8202)]);
    assert.ok(outcome?.answered, outcome && show(outcome));
    assert.equal(outcome.pod, "local-1");
    assert.equal(outcome.clientIp, client6, "Local keeps the client's IPv6 address");
    await sb().kubectl(["delete", "service", "local6", "-n", APP_NAMESPACE]);
  });

  it("sandbox down leaves no namespace, link, rule, process, mount or state behind, and is idempotent", async () => {
    const s = sb();
    const supervisor = s.supervisorPid();
    const controller = s.controllerPid();
    assert.ok(controller !== undefined, "a controller runs before down");
    const namespaces = await s.namespaces();
    assert.ok(namespaces.length >= 2 + 1 + 1 + 2, `lan, client, nodes and pods exist: ${namespaces.join(", ")}`);
    const pids = [supervisor, ...descendants(supervisor)];
    for (const ns of namespaces) pids.push(...(await s.pidsIn(ns)));

    await s.down();

    assert.deepEqual(await s.namespaces(), [], "no network namespace of the sandbox");
    const netnsFiles = existsSync("/run/netns") ? readdirSync("/run/netns").filter((name) => name.startsWith(`${s.prefix}-`)) : [];
    assert.deepEqual(netnsFiles, [], "no /run/netns entry");
    const newLinks = (await hostLinks()).filter((name) => !linksBefore.includes(name));
    assert.deepEqual(newLinks, [], "no link left in the host namespace");
    assert.equal(await hostRules(), rulesBefore, "the host's netfilter rules are exactly as before up");
    const alive = [...new Set(pids)].filter((pid) => processAlive(pid) && commandLine(pid).length > 0);
    assert.deepEqual(alive.map((pid) => `${pid} ${commandLine(pid).join(" ")}`), [], "no process of the sandbox runs");
    const mounts = readFileSync("/proc/self/mounts", "utf8").split("\n").filter((line) => line.includes(s.prefix));
    assert.deepEqual(mounts, [], "no mount of the sandbox");
    assert.equal(existsSync(s.stateDir), false, `state directory ${s.stateDir} removed`);

    const again = await s.down();
    assert.equal(again.exitCode, 0, "a second down succeeds");
  });
});
