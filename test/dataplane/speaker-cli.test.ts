// `berth speaker` as it runs on a node: the real CLI in each node's namespace, talking HTTP to the sandbox API server
// (run by `berth sandbox apiserver` in its own namespace on the same LAN), reading Nodes, an AddressPool and a
// VIP-mode Service whose status the test writes with kubectl as the controller would (allocation is the controller's
// part: src/lib/vip/address-pool.ts is the contract). Checks the VIP answers, the Event on the Service, a hard kill,
// and that stopping the API server changes nothing announced. Needs root.
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { needsRoot, skipBecause } from "../support/skip.js";
import { SpeakerLab, VIP4 } from "./speaker-lab.js";

const CLI = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));
const API_IP = "10.77.0.250";
const NODES = ["n1", "n2", "n3"];

const CRD = {
  apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition", metadata: { name: "addresspools.berth.dev" },
  spec: {
    group: "berth.dev", scope: "Cluster",
    names: { plural: "addresspools", singular: "addresspool", kind: "AddressPool", listKind: "AddressPoolList" },
    versions: [{ name: "v1alpha1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } }, subresources: { status: {} } }],
  },
};

describe("berth speaker: the CLI against an API server, on a LAN of namespaces", function () {
  this.timeout(120_000);
  let lab: SpeakerLab | undefined;
  let dir = "";
  let apiNs = "";
  let apiServer: ChildProcess | undefined;
  const speakers = new Map<string, ChildProcess>();
  const logs = new Map<string, string[]>();

  before(function () {
    const reason = needsRoot();
    if (reason) skipBecause(this, reason);
  });
  afterEach(async () => {
    for (const p of speakers.values()) p.kill("SIGKILL");
    speakers.clear();
    apiServer?.kill("SIGKILL");
    await lab?.destroy();
    lab = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const kubeconfig = (): string => join(dir, "kubeconfig");
  async function kubectl(args: string[], input?: string): Promise<string> {
    const r = await lab!.lab.exec(apiNs, "kubectl", ["--kubeconfig", kubeconfig(), "--cache-dir", join(dir, "cache"), ...args], input === undefined ? {} : { input });
    if (r.exitCode !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Spawns a process in a namespace and resolves when a stdout/stderr line matches `ready`. */
  function start(ns: string, args: string[], ready: RegExp, log: string[]): Promise<ChildProcess> {
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "--import", "tsx", CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${args[0]} not ready in 20 s:\n${log.join("\n")}`)), 20_000);
      for (const stream of [child.stdout!, child.stderr!]) {
        createInterface({ input: stream }).on("line", (line) => {
          log.push(line);
          if (ready.test(line)) {
            clearTimeout(timer);
            resolve(child);
          }
        });
      }
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${args.join(" ")} exited (${code}):\n${log.join("\n")}`));
      });
    });
  }

  async function startSpeaker(node: string): Promise<void> {
    const log = logs.get(node) ?? [];
    logs.set(node, log);
    speakers.set(node, await start(lab!.node(node).ns, ["speaker", "--kubeconfig", kubeconfig(), "--node-name", node, "--listen", "off"], /"joined; announcing"/, log));
  }

  async function soleHolder(deadlineMs = 8000): Promise<string> {
    const start = Date.now();
    let holders: string[] = [];
    let since = { name: "", at: 0 };
    while (Date.now() - start < deadlineMs) {
      holders = await lab!.holders(VIP4);
      if (holders.length === 1) {
        if (since.name !== holders[0]) since = { name: holders[0]!, at: Date.now() };
        if (Date.now() - since.at >= 400) return since.name;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${VIP4} held by [${holders.join(", ")}]\n${[...logs].map(([n, l]) => `--- ${n}\n${l.slice(-20).join("\n")}`).join("\n")}`);
  }

  async function events(): Promise<string[]> {
    const out = await kubectl(["get", "events", "-n", "default", "-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}"]);
    return out.split("\n").filter((l) => l !== "");
  }

  async function setUp(): Promise<void> {
    lab = await SpeakerLab.create("bt-spc", NODES.length);
    dir = mkdtempSync(join(tmpdir(), "berth-speaker-cli-"));
    apiNs = await lab.addHost("api", [`${API_IP}/24`]);
    apiServer = await start(apiNs, ["sandbox", "apiserver", "--host", API_IP, "--port", "6443", "--kubeconfig", kubeconfig()], /serving on/, []);
    await kubectl(["apply", "--validate=false", "-f", "-"], JSON.stringify(CRD));
    const nodes = lab.nodes.map((n) => ({
      apiVersion: "v1", kind: "Node", metadata: { name: n.name },
      status: { conditions: [{ type: "Ready", status: "True" }], addresses: [{ type: "InternalIP", address: n.ip4 }] },
    }));
    await kubectl(["apply", "--validate=false", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: nodes }));
    for (const n of lab.nodes) {
      await kubectl(["patch", "node", n.name, "--subresource=status", "--type=merge", "-p", JSON.stringify({ status: nodes.find((x) => x.metadata.name === n.name)!.status })]);
    }
    await kubectl(["apply", "--validate=false", "-f", "-"], JSON.stringify({ apiVersion: "berth.dev/v1alpha1", kind: "AddressPool", metadata: { name: "lan" }, spec: { addresses: ["10.77.0.200-10.77.0.210"] } }));
    await kubectl(["patch", "addresspool", "lan", "--subresource=status", "--type=merge", "-p",
      JSON.stringify({ status: { conditions: [{ type: "Valid", status: "True", reason: "Valid", message: "", lastTransitionTime: "2026-12-07T00:00:00Z" }] } })]);
    await kubectl(["apply", "--validate=false", "-f", "-"], JSON.stringify({
      apiVersion: "v1", kind: "Service",
      metadata: { name: "web", namespace: "default", annotations: { "berth.dev/mode": "vip", "berth.dev/allocated-from-pool": "lan" } },
      spec: { type: "LoadBalancer", selector: { app: "web" }, ports: [{ port: 7070, protocol: "UDP" }] },
    }));
    // What the controller writes once it has allocated the address.
    await kubectl(["patch", "service", "web", "-n", "default", "--subresource=status", "--type=merge", "-p",
      JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: VIP4, ipMode: "VIP" }] } } })]);
    await Promise.all(NODES.map((n) => startSpeaker(n)));
  }

  it("announces the Service's VIP from one node, says so in an Event, and moves it on a hard kill", async () => {
    await setUp();
    const owner = await soleHolder();
    assert.equal(await lab!.ask(VIP4), owner);
    assert.equal(await lab!.clientNeighbour(VIP4), await lab!.macOf(owner));

    speakers.get(owner)!.kill("SIGKILL");
    speakers.delete(owner);
    await lab!.linkDown(owner);
    const moved = await lab!.waitFor(VIP4, (a) => a !== owner && !a.startsWith("<"), 5000);
    assert.notEqual(moved.answer, owner);
    assert.ok(moved.afterMs <= 2500, `took ${moved.afterMs} ms`);
    const deadline = Date.now() + 5000;
    const want = `Announcing: node ${moved.answer} announces ${VIP4} (pool lan), taking over from ${owner}: its speaker stopped answering (node down, speaker gone, or the network between)`;
    let seen: string[] = [];
    while (Date.now() < deadline && !(seen = await events()).includes(want)) await new Promise((r) => setTimeout(r, 200));
    assert.ok(seen.includes(want), `events: ${seen.join(" | ")}`);
  });

  it("keeps announcing when the API server goes away", async () => {
    await setUp();
    const owner = await soleHolder();
    apiServer!.kill("SIGKILL");
    apiServer = undefined;
    // Longer than an address's lifetime: it must be renewed, not left to expire.
    await new Promise((r) => setTimeout(r, 5000));
    assert.deepEqual(await lab!.holders(VIP4), [owner]);
    assert.equal(await lab!.ask(VIP4), owner);
  });
});
