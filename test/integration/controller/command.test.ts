// The real `berth controller` process against the sandbox API server: it serves Services, answers /readyz and
// /metrics, and on SIGTERM stops and releases its Lease; bad flags exit 2 with one line.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { create, getObj, node, nodePath, NS, startEnv, service, waitFor, waitForIngress, type Env } from "./support.js";

const CLI = fileURLToPath(new URL("../../../src/cli.ts", import.meta.url));

function run(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe("berth controller (the process)", function () {
  this.timeout(30_000);
  let env: Env;
  let proc: ReturnType<typeof run> | undefined;
  beforeEach(async () => {
    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.41" }));
  });
  afterEach(async () => {
    if (proc && proc.child.exitCode === null) {
      proc.child.kill("SIGKILL");
      await proc.exited;
    }
    proc = undefined;
    await env?.close();
  });

  it("serves a Service, reports ready and metrics, and releases its Lease on SIGTERM", async () => {
    const port = await freePort();
    proc = run(["controller", "--kubeconfig", env.kubeconfig, "--listen", `127.0.0.1:${port}`, "--lb-image", "berth:test",
      "--lease-duration", "2s", "--renew-deadline", "1s", "--retry-period", "200ms", "--resync", "1s", "--identity", "cli-test"]);
    await create(env.client, "/api/v1/namespaces/default/services", service("web"));
    await waitForIngress(env.client, "web", ["192.0.2.41"], 15_000);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /berth_reconcile_total\{result="updated"\} [1-9]/);
    assert.match(metrics, /berth_api_requests_total\{verb="apply",resource="daemonsets",code="(200|201)"\} 1/);
    assert.match(metrics, /berth_leader 1/);
    const lease = await getObj(env.client, `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/berth-controller`);
    assert.equal(lease?.spec.holderIdentity, "cli-test");
    proc.child.kill("SIGTERM");
    assert.equal(await proc.exited, 0, proc.output());
    const released = await waitFor("lease released", async () => {
      const l = await getObj(env.client, `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/berth-controller`);
      return !l?.spec.holderIdentity ? l : undefined;
    });
    assert.ok(released);
  });

  it("exits 2 with one line for a bad flag, before touching the cluster", async () => {
    proc = run(["controller", "--kubeconfig", env.kubeconfig, "--lease-duration", "1s", "--renew-deadline", "5s"]);
    assert.equal(await proc.exited, 2);
    const lines = proc.output().trim().split("\n");
    assert.deepEqual(lines, ["berth: --lease-duration must be greater than --renew-deadline"]);
    assert.equal(await getObj(env.client, `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/berth-controller`), undefined);
  });
});
