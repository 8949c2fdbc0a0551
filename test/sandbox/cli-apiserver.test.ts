// `berth sandbox apiserver` as a user runs it: the built CLI in its own process, talked to over HTTP with the
// kubeconfig it writes.
import { strict as assert } from "node:assert";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { request } from "node:https";
import { join } from "node:path";
import { skipBecause } from "../support/skip.js";

const cli = new URL("../../dist/cli.js", import.meta.url).pathname;
const READY = /^berth sandbox apiserver: serving on (https?:\/\/127\.0\.0\.1:(\d+)), kubeconfig (\S+)\n$/;

/** What a kubeconfig-reading client sends: the token over https, trusting the kubeconfig's CA. */
function call(method: string, url: string, kubeconfig: string, token?: string, body?: unknown): Promise<{ status: number; text: string }> {
  const text = readFileSync(kubeconfig, "utf8");
  const ca = Buffer.from(/certificate-authority-data: "([^"]+)"/.exec(text)?.[1] ?? "", "base64").toString("utf8");
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return new Promise((done, fail) => {
    const req = request(url, { method, ca, headers }, (res) => {
      let out = "";
      res.on("data", (d: Buffer) => (out += d.toString()));
      res.on("end", () => done({ status: res.statusCode ?? 0, text: out }));
    });
    req.on("error", fail);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const get = async (url: string, kubeconfig: string, token?: string): Promise<number> => (await call("GET", url, kubeconfig, token)).status;

function kubectl(kubeconfig: string, cacheDir: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const k = spawn("/usr/bin/kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", cacheDir, ...args]);
    let stdout = "";
    let stderr = "";
    k.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    k.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    k.on("close", (code) => done({ code, stdout, stderr }));
  });
}

const tokenOf = (kubeconfig: string): string => /token: "([^"]+)"/.exec(readFileSync(kubeconfig, "utf8"))?.[1] ?? "";

interface Started {
  child: ChildProcessWithoutNullStreams;
  url: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

describe("berth sandbox apiserver (the built CLI)", function () {
  this.timeout(20_000);
  let dir = "";
  const running: ChildProcessWithoutNullStreams[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "berth-b2-cli-"));
  });

  // Per test, so that each skipped test's title carries the reason.
  beforeEach(function () {
    if (!existsSync(cli)) skipBecause(this, "dist/cli.js is missing: run `npm run build` first (the test command does)");
  });

  after(() => {
    for (const child of running) if (child.exitCode === null) child.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function start(args: string[]): Promise<Started> {
    const child = spawn("node", [cli, "sandbox", "apiserver", ...args], { stdio: "pipe" });
    running.push(child);
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)));
    return new Promise((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`no ready line within 10 s; stdout=${stdout} stderr=${stderr}`)), 10_000);
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        const m = READY.exec(stdout);
        if (m) {
          clearTimeout(timer);
          done({ child, url: m[1] ?? "", stdout: () => stdout, stderr: () => stderr, exited });
        }
      });
      void exited.then((code) => fail(new Error(`exited with ${code} before ready; stderr=${stderr}`)));
    });
  }

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`prints one ready line, serves with the kubeconfig's token, and exits 0 on ${signal}`, async () => {
      const kubeconfig = join(dir, `kc-${signal}`);
      const s = await start(["--port", "0", "--kubeconfig", kubeconfig]);
      assert.equal(s.stdout(), `berth sandbox apiserver: serving on ${s.url}, kubeconfig ${kubeconfig}\n`);
      assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
      assert.match(s.url, /^https:/, "https by default: kubectl sends tokens only over TLS");
      const token = tokenOf(kubeconfig);
      assert.match(token, /^[0-9a-f]{32}$/, "a random token when --token is not given");
      assert.equal(await get(`${s.url}/api/v1/namespaces`, kubeconfig, token), 200);
      assert.equal(await get(`${s.url}/api/v1/namespaces`, kubeconfig), 401);

      s.child.kill(signal);
      assert.equal(await s.exited, 0);
      assert.equal(s.stdout().split("\n").filter(Boolean).length, 1);
      assert.equal(s.stderr(), "");
    });
  }

  it("uses the --token given and a fixed --port, and kubectl works with the kubeconfig", async function () {
    const kubeconfig = join(dir, "kc-token");
    const probe = await start(["--port", "0", "--kubeconfig", join(dir, "kc-probe")]);
    const port = Number(new URL(probe.url).port);
    probe.child.kill("SIGTERM");
    assert.equal(await probe.exited, 0);

    const s = await start(["--port", String(port), "--kubeconfig", kubeconfig, "--token", "b2-secret"]);
    assert.equal(s.url, `https://127.0.0.1:${port}`);
    assert.equal(tokenOf(kubeconfig), "b2-secret");
    assert.equal(await get(`${s.url}/api`, kubeconfig, "not-it"), 401);
    assert.equal(await get(`${s.url}/api`, kubeconfig, "b2-secret"), 200);
    if (existsSync("/usr/bin/kubectl")) {
      const r = await kubectl(kubeconfig, join(dir, "cache"), ["get", "namespace", "default", "-o", "name"]);
      assert.deepEqual(r, { code: 0, stdout: "namespace/default\n", stderr: "" });
    } else {
      s.child.kill("SIGTERM");
      skipBecause(this, "kubectl is not installed at /usr/bin/kubectl");
    }
    s.child.kill("SIGTERM");
    assert.equal(await s.exited, 0);
  });

  it("switches faults over its admin endpoint: kubectl waits out a 429's Retry-After and reports a 500", async function () {
    if (!existsSync("/usr/bin/kubectl")) skipBecause(this, "kubectl is not installed at /usr/bin/kubectl");
    const kubeconfig = join(dir, "kc-faults");
    const s = await start(["--port", "0", "--kubeconfig", kubeconfig]);
    const token = tokenOf(kubeconfig);
    const cache = join(dir, "cache-faults");
    assert.equal((await kubectl(kubeconfig, cache, ["get", "namespaces", "-o", "name"])).code, 0, "discovery cached first");

    const added = await call("POST", `${s.url}/_sandbox/faults`, kubeconfig, token, { verb: "list", resource: "namespaces", error: 429, retryAfterSeconds: 1, times: 1 });
    assert.equal(added.status, 201, added.text);
    const started = Date.now();
    const retried = await kubectl(kubeconfig, cache, ["get", "namespaces", "-o", "name"]);
    assert.equal(retried.code, 0, retried.stderr);
    assert.match(retried.stdout, /^namespace\/default$/m);
    assert.ok(Date.now() - started >= 900, "client-go honoured Retry-After");

    await call("POST", `${s.url}/_sandbox/faults`, kubeconfig, token, { verb: "get", resource: "namespaces", error: 500, times: 1 });
    const failed = await kubectl(kubeconfig, cache, ["get", "namespace", "default"]);
    assert.equal(failed.code, 1);
    assert.equal(failed.stderr.trim(), "Error from server (InternalError): Internal error occurred: injected fault");
    const rules = await call("GET", `${s.url}/_sandbox/faults`, kubeconfig, token);
    assert.deepEqual(JSON.parse(rules.text), { rules: [] }, "rules with times: 1 retire after their hit");
    assert.equal((await call("GET", `${s.url}/_sandbox/faults`, kubeconfig)).status, 401, "the admin endpoint needs the token too");

    s.child.kill("SIGTERM");
    assert.equal(await s.exited, 0);
  });

  it("serves plain http with --plain-http, for clients that send tokens over http", async () => {
    const kubeconfig = join(dir, "kc-plain");
    const s = await start(["--port", "0", "--kubeconfig", kubeconfig, "--plain-http", "--token", "plain"]);
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.doesNotMatch(readFileSync(kubeconfig, "utf8"), /certificate-authority-data/);
    const res = await fetch(`${s.url}/version`, { headers: { authorization: "Bearer plain" } });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { major?: string }).major, "1");
    // client-node refuses http:// unless the kubeconfig says insecure-skip-tls-verify, which it does.
    const { KubeConfig, CoreV1Api } = await import("@kubernetes/client-node");
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const list = await kc.makeApiClient(CoreV1Api).listNamespace();
    assert.ok(list.items.some((n) => n.metadata?.name === "default"));
    s.child.kill("SIGTERM");
    assert.equal(await s.exited, 0);
  });

  it("reports a port already in use with one line and exit code 1, writing nothing", async () => {
    const { createServer } = await import("node:net");
    const blocker = createServer();
    await new Promise<void>((done) => blocker.listen(0, "127.0.0.1", done));
    try {
      const port = (blocker.address() as { port: number }).port;
      const kubeconfig = join(dir, "kc-busy");
      const r = spawnSync("node", [cli, "sandbox", "apiserver", "--port", String(port), "--kubeconfig", kubeconfig], { encoding: "utf8", timeout: 10_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stderr, `berth: listen EADDRINUSE: address already in use 127.0.0.1:${port}\n`);
      assert.equal(existsSync(kubeconfig), false);
    } finally {
      blocker.close();
    }
  });

  const bad: { name: string; args: string[]; message: RegExp }[] = [
    { name: "a port that is not a number", args: ["--port", "http", "--kubeconfig", "K"], message: /invalid --port "http": expected an integer from 0 to 65535/ },
    { name: "a port out of range", args: ["--port", "65536", "--kubeconfig", "K"], message: /invalid --port "65536"/ },
    { name: "a host that is not an IP", args: ["--host", "localhost", "--kubeconfig", "K"], message: /invalid --host "localhost": expected an IP address/ },
    { name: "a token with whitespace", args: ["--token", "a b", "--kubeconfig", "K"], message: /invalid --token/ },
    { name: "a zero history limit", args: ["--history-limit", "0", "--kubeconfig", "K"], message: /invalid --history-limit "0"/ },
    { name: "no --kubeconfig", args: ["--port", "0"], message: /required option '--kubeconfig <file>' not specified/ },
    { name: "an unknown flag", args: ["--kubeconfig", "K", "--tls"], message: /unknown option '--tls'/ },
    { name: "a kubeconfig in a missing directory", args: ["--port", "0", "--kubeconfig", "/nonexistent-b2/dir/kc"], message: /cannot write --kubeconfig \/nonexistent-b2\/dir\/kc/ },
  ];
  for (const c of bad) {
    it(`refuses ${c.name} with one line and exit code 2`, () => {
      const r = spawnSync("node", [cli, "sandbox", "apiserver", ...c.args.map((a) => (a === "K" ? join(dir, "unused") : a))], { encoding: "utf8", timeout: 10_000 });
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stdout, "");
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, c.message);
      assert.equal(existsSync(join(dir, "unused")), false, "nothing written");
    });
  }
});
