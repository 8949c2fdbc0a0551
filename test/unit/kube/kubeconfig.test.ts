// Plain kubeconfigs (a token or a client certificate) are read without @kubernetes/client-node, with clientcmd's
// rules (src/lib/kube/kubeconfig.ts); anything needing a plugin is left to client-node. The last case runs a real
// process against a TLS sandbox API server and checks that client-node was never imported while the request worked.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { plainKubeconfig } from "../../../src/lib/kube/kubeconfig.js";
import { startApiServer } from "../../../src/sandbox/apiserver/index.js";
import { writeKubeconfig } from "../../../src/sandbox/kubeconfig.js";

const doc = (cluster: Record<string, unknown>, user: Record<string, unknown>, extra = ""): string => JSON.stringify({
  apiVersion: "v1", kind: "Config", "current-context": "c",
  clusters: [{ name: "k", cluster }], users: [{ name: "u", user }], contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
}) + extra;
const b64 = (s: string): string => Buffer.from(s).toString("base64");
const files: Record<string, string> = { "/etc/kc/ca.pem": "CA", "/etc/kc/sub/crt.pem": "CRT", "/abs/key.pem": "KEY" };
const readFile = (p: string): Buffer => {
  if (!(p in files)) throw new Error(`ENOENT: ${p}`);
  return Buffer.from(files[p] as string);
};

describe("plain kubeconfigs without client-node", () => {
  const cases: { name: string; text: string; want: unknown }[] = [
    { name: "inline token and CA data", text: doc({ server: "https://a:6443", "certificate-authority-data": b64("CA") }, { token: "t" }),
      want: { server: "https://a:6443", tls: { ca: "CA" }, token: "t" } },
    { name: "files relative to the kubeconfig's directory, absolute ones as they are", text: doc({ server: "https://a", "certificate-authority": "ca.pem" },
      { "client-certificate": "sub/crt.pem", "client-key": "/abs/key.pem" }), want: { server: "https://a", tls: { ca: "CA", cert: "CRT", key: "KEY" } } },
    { name: "token file resolved, skip-verify and server name", text: doc({ server: "https://a", "insecure-skip-tls-verify": true, "tls-server-name": "n" }, { tokenFile: "tok" }),
      want: { server: "https://a", tls: { rejectUnauthorized: false, servername: "n" }, tokenFile: "/etc/kc/tok" } },
    { name: "an exec plugin is client-node's", text: doc({ server: "https://a" }, { exec: { command: "aws" } }), want: undefined },
    { name: "an auth provider is client-node's", text: doc({ server: "https://a" }, { "auth-provider": { name: "oidc" } }), want: undefined },
    { name: "basic auth is client-node's", text: doc({ server: "https://a" }, { username: "u", password: "p" }), want: undefined },
    { name: "a proxy is client-node's", text: doc({ server: "https://a", "proxy-url": "http://p" }, { token: "t" }), want: undefined },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = plainKubeconfig(c.text, "/etc/kc/config", undefined, readFile);
      const printable = got && { ...got, tls: Object.fromEntries(Object.entries(got.tls).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString() : v])) };
      assert.deepEqual(printable, c.want);
    });
  }

  const bad: { name: string; text: string; context?: string; error: RegExp }[] = [
    { name: "no current context", text: "apiVersion: v1\nkind: Config\n", error: /no current-context set and no context given/ },
    { name: "an unknown context", text: doc({ server: "https://a" }, { token: "t" }), context: "x", error: /no context named "x"/ },
    { name: "a cluster without a server", text: doc({ "certificate-authority-data": b64("CA") }, { token: "t" }), error: /cluster "k" has no server/ },
    { name: "a certificate without its key", text: doc({ server: "https://a" }, { "client-certificate-data": b64("CRT") }), error: /client certificate without its key/ },
    { name: "a CA file that is not there", text: doc({ server: "https://a", "certificate-authority": "gone.pem" }, { token: "t" }), error: /ENOENT: \/etc\/kc\/gone.pem/ },
  ];
  for (const c of bad) it(`says what is wrong: ${c.name}`, () => assert.throws(() => plainKubeconfig(c.text, "/etc/kc/config", c.context, readFile), c.error));

  it("a controller process given a token kubeconfig talks TLS to the API server and never imports client-node", async function () {
    this.timeout(30_000);
    const api = await startApiServer({ port: 0, tls: true });
    const dir = mkdtempSync(join(tmpdir(), "bt-kc-plain-"));
    try {
      const file = join(dir, "kubeconfig");
      writeKubeconfig(file, { server: api.url, token: api.token, caCert: api.caCert as string });
      const probe = join(dir, "probe.mts");
      // A resolve hook records every module the process loads; the client then does one authenticated request.
      writeFileSync(probe, [
        `import { registerHooks } from "node:module";`,
        `const seen = [];`,
        `registerHooks({ resolve: (s, c, next) => { seen.push(s); return next(s, c); } });`,
        `const { KubeClient, Resources } = await import(${JSON.stringify(new URL("../../../src/lib/kube/client.ts", import.meta.url).pathname)});`,
        `const client = await KubeClient.fromKubeconfig({ kubeconfig: ${JSON.stringify(file)} });`,
        `const ns = await client.get(Resources.namespaces, "default");`,
        `client.close();`,
        `console.log(JSON.stringify({ name: ns.metadata.name, clientNode: seen.some((s) => s.includes("@kubernetes/client-node")) }));`,
      ].join("\n"));
      const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", probe], { timeout: 25_000 });
      assert.deepEqual(JSON.parse(stdout.trim().split("\n").pop() as string), { name: "default", clientNode: false });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await api.close();
    }
  });
});
