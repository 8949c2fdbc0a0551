// The install manifests against an API server: the real kubectl applies deploy/berth.yaml to the sandbox API server
// (https, bearer token, strict field validation as kubectl sends it), a second apply changes nothing, the built
// controller started with the Deployment's own args leads and answers its probes, and the `berth manifests` command's
// output for another namespace applies too. The sandbox stores RBAC, Deployments and PodDisruptionBudgets with their
// typed schemas (an unknown or mistyped field is refused) but runs nothing behind them.
/* eslint-disable @typescript-eslint/no-explicit-any -- kubectl's JSON output is read field by field */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as yaml from "js-yaml";
import { startApiServer } from "../../../src/sandbox/apiserver/index.js";
import { writeKubeconfig } from "../../../src/sandbox/kubeconfig.js";
import { skipBecause } from "../../support/skip.js";

const KUBECTL = "/usr/bin/kubectl";
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const BERTH_YAML = join(ROOT, "deploy/berth.yaml");
const BERTH = join(ROOT, "bin/berth");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program asynchronously (the API server lives in this process: a synchronous spawn would deadlock). */
function run(program: string, args: string[], input?: string): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(program, args, { stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", fail);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
    child.stdin.end(input ?? "");
  });
}

type Server = Awaited<ReturnType<typeof startApiServer>>;

describe("install manifests applied with kubectl", function () {
  this.timeout(60_000);
  let server: Server | undefined;
  let dir = "";
  let kubeconfig = "";

  beforeEach(function () {
    if (!existsSync(KUBECTL)) skipBecause(this, "kubectl is not installed at /usr/bin/kubectl (.ci/run installs it)");
  });

  before(async () => {
    if (!existsSync(KUBECTL)) return;
    dir = mkdtempSync(join(tmpdir(), "berth-manifests-"));
    // kubectl sends a kubeconfig's bearer token only over TLS, as a real cluster is served.
    server = await startApiServer({ port: 0, tls: true });
    kubeconfig = join(dir, "kubeconfig");
    writeKubeconfig(kubeconfig, { server: server.url, token: server.token, caCert: server.caCert ?? "" });
  });

  after(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const kubectl = (args: string[], input?: string) =>
    run(KUBECTL, ["--kubeconfig", kubeconfig, "--cache-dir", join(dir, "cache"), ...args], input);

  async function ok(args: string[], input?: string): Promise<string> {
    const r = await kubectl(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(" ")} failed:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** kind/name -> resourceVersion of every object in deploy/berth.yaml, as stored. */
  async function resourceVersions(): Promise<Record<string, string>> {
    const list = JSON.parse(await ok(["get", "-o", "json", "-f", BERTH_YAML])) as any;
    return Object.fromEntries((list.items as any[]).map((o) => [`${o.kind}/${o.metadata.name}`, o.metadata.resourceVersion]));
  }

  /** What kubectl apply prints for each object of a YAML stream, in order ("kind.group/name verb"). */
  function expected(text: string, verb: string): string[] {
    return (yaml.loadAll(text) as any[]).map((d) => {
      const group = d.apiVersion.includes("/") ? `.${d.apiVersion.split("/")[0]}` : "";
      return `${d.kind.toLowerCase()}${group}/${d.metadata.name} ${verb}`;
    });
  }

  it("kubectl apply creates every object of deploy/berth.yaml, and a second apply changes nothing", async () => {
    const text = readFileSync(BERTH_YAML, "utf8");
    const first = (await ok(["apply", "-f", BERTH_YAML])).trim().split("\n");
    assert.deepEqual(first, expected(text, "created"));
    assert.equal(first.length, 14);
    const before = await resourceVersions();
    assert.equal(Object.keys(before).length, 14);
    const second = (await ok(["apply", "-f", BERTH_YAML])).trim().split("\n");
    // kubectl always sends a patch for a policy/v1 PodDisruptionBudget: its spec.selector has patchStrategy
    // "replace", so the computed strategic merge patch is never empty (kubernetes/kubernetes#99290 added it;
    // Azure/eno#246 works around the same never-empty patch). The patch changes nothing: the object keeps its
    // resourceVersion, as on kube-apiserver, where a no-op patch is not written.
    assert.deepEqual(second, expected(text, "unchanged").map((l) => l.replace(/^(poddisruptionbudget\.policy\/\S+) unchanged$/, "$1 configured")));
    assert.deepEqual(await resourceVersions(), before);

    // Stored as written (defaults added around it), and served back through discovery by short name.
    const deployment = JSON.parse(await ok(["get", "deploy", "berth-controller", "-n", "berth-system", "-o", "json"])) as any;
    assert.equal(deployment.spec.replicas, 2);
    assert.equal(deployment.spec.template.spec.serviceAccountName, "berth-controller");
    assert.equal(deployment.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem, true);
    const pdb = JSON.parse(await ok(["get", "pdb", "berth-controller", "-n", "berth-system", "-o", "json"])) as any;
    assert.equal(pdb.spec.minAvailable, 1);
    const role = JSON.parse(await ok(["get", "role", "berth-controller", "-n", "berth-system", "-o", "json"])) as any;
    assert.deepEqual(role.rules.find((r: any) => r.resourceNames)?.resourceNames, ["berth-controller"]);
    const ns = JSON.parse(await ok(["get", "namespace", "berth-system", "-o", "json"])) as any;
    assert.equal(ns.metadata.labels["pod-security.kubernetes.io/enforce"], "privileged");
  });

  it("the controller runs with the Deployment's args and env: it leads on its Lease and answers its probes", async () => {
    await ok(["apply", "-f", BERTH_YAML]);
    const docs = yaml.loadAll(readFileSync(BERTH_YAML, "utf8")) as any[];
    const container = docs.find((d) => d.kind === "Deployment").spec.template.spec.containers[0];
    const podName = "berth-controller-6d4f8-x2x9q";
    // As the kubelet would: $(POD_NAME) from the downward API. Only the listen address changes (a free port on
    // loopback instead of the pod's :9090), and --kubeconfig stands in for the in-cluster service account.
    const args = (container.args as string[]).map((a) => a.replace("$(POD_NAME)", podName)).map((a) => (a.startsWith("--listen=") ? "--listen=127.0.0.1:0" : a));
    const env: Record<string, string> = { ...process.env as Record<string, string> };
    for (const e of container.env as any[]) if (e.value !== undefined) env[e.name] = e.value;
    const child = spawn(process.execPath, [join(ROOT, "dist/cli.js"), ...args, `--kubeconfig=${kubeconfig}`], { env, stdio: ["ignore", "ignore", "pipe"] });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    try {
      let log = "";
      const url = await new Promise<string>((resolve, fail) => {
        const timer = setTimeout(() => fail(new Error(`controller did not serve its endpoints:\n${log}`)), 20_000);
        child.stderr.on("data", (d: Buffer) => {
          log += d.toString();
          const m = /"msg":"serving \/healthz \/readyz \/metrics","url":"([^"]+)"/.exec(log);
          if (m) {
            clearTimeout(timer);
            resolve(m[1] as string);
          }
        });
      });
      const status = async (path: string) => (await fetch(url + path)).status;
      for (const probe of [container.livenessProbe, container.readinessProbe]) {
        const deadline = Date.now() + 20_000;
        while ((await status(probe.httpGet.path)) !== 200) {
          assert.ok(Date.now() < deadline, `${probe.httpGet.path} never answered 200:\n${log}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      assert.match(await (await fetch(`${url}/metrics`)).text(), /^berth_/m);
      const deadline = Date.now() + 20_000;
      for (;;) {
        const lease = await kubectl(["get", "lease", "berth-controller", "-n", "berth-system", "-o", "jsonpath={.spec.holderIdentity}"]);
        if (lease.stdout === podName) break;
        assert.ok(Date.now() < deadline, `the controller never took the Lease berth-system/berth-controller:\n${log}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  });

  it("the output of `berth manifests --namespace lb --replicas 1` applies as well", async () => {
    const gen = await run(BERTH, ["manifests", "--namespace", "lb", "--replicas", "1"]);
    assert.equal(gen.code, 0, gen.stderr);
    const applied = (await ok(["apply", "-f", "-"], gen.stdout)).trim().split("\n");
    // The cluster-scoped CRD, ClusterRole and ClusterRoleBinding have fixed names: the first test's install made them.
    assert.deepEqual(applied, expected(gen.stdout, "created").map((l) => l
      .replace(/^(customresourcedefinition\.\S+) created$/, "$1 unchanged")
      .replace(/^(clusterrole\.\S+) created$/, "$1 unchanged").replace(/^(clusterrolebinding\.\S+) created$/, "$1 configured")));
    assert.ok(applied.includes("deployment.apps/berth-controller created"));
    assert.ok(!applied.some((l) => l.startsWith("poddisruptionbudget")));
    const binding = JSON.parse(await ok(["get", "clusterrolebinding", "berth-controller", "-o", "json"])) as any;
    // One ClusterRoleBinding per cluster: the second install took it over for its own ServiceAccount.
    assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: "berth-controller", namespace: "lb" }]);
  });

  it("a manifest with a field the schema does not have is refused (the apply check is not vacuous)", async () => {
    const gen = await run(BERTH, ["manifests", "--namespace", "lb2"]);
    const broken = gen.stdout.replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystm: true");
    assert.notEqual(broken, gen.stdout);
    const r = await kubectl(["apply", "-f", "-"], broken);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown field "spec\.template\.spec\.containers\[0\]\.securityContext\.readOnlyRootFilesystm"/);
  });

  it("berth manifests refuses a bad flag with one line and exit code 2", async () => {
    for (const [args, message] of [
      [["--replicas", "0"], "berth: --replicas must be an integer from 1 to 999\n"],
      [["--namespace", "Berth"], "berth: --namespace must be a DNS label (lower case, digits, '-')\n"],
      [["--lb-image", "a b"], "berth: --lb-image: \"a b\" is not an image reference (e.g. ghcr.io/berth-lb/berth-controller:0.1.0)\n"],
    ] as const) {
      const r = await run(BERTH, ["manifests", ...args]);
      assert.equal(r.code, 2, args.join(" "));
      assert.equal(r.stderr, message);
      assert.equal(r.stdout, "");
    }
  });
});
