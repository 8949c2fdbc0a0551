// A kubeconfig for the sandbox's API server that kubectl and @kubernetes/client-node both load unchanged: one
// cluster, one user with a bearer token, one current context. kubectl (client-go's clientcmd) sends a kubeconfig's
// token only over TLS, so for kubectl the server is https with its self-signed certificate as the trusted CA;
// an http server works for client-node (given insecure-skip-tls-verify) and plain HTTP clients only.
import { chmodSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export interface KubeconfigOptions {
  /** e.g. http://127.0.0.1:6443 */
  server: string;
  token: string;
  /** PEM certificate to trust for an https server (certificate-authority-data). */
  caCert?: string;
  /** Name of the cluster, user and context; default "berth-sandbox". */
  context?: string;
  /** The context's default namespace; default "default". */
  namespace?: string;
}

/** YAML double-quoted scalars are JSON strings, so JSON.stringify quotes any value safely. */
const q = (s: string): string => JSON.stringify(s);

export function renderKubeconfig(options: KubeconfigOptions): string {
  const url = new URL(options.server);
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`kubeconfig server must be an http(s) URL, got ${options.server}`);
  if (options.token === "" || /\s/.test(options.token)) throw new Error("kubeconfig token must be non-empty and contain no whitespace");
  const name = options.context ?? "berth-sandbox";
  const server = options.server.replace(/\/+$/, "");
  if (url.protocol === "https:" && options.caCert === undefined) throw new Error("an https kubeconfig server needs caCert");
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: ${q(name)}`,
    "  cluster:",
    `    server: ${q(server)}`,
    ...(options.caCert !== undefined ? [`    certificate-authority-data: ${q(Buffer.from(options.caCert).toString("base64"))}`] : []),
    // client-node (1.x, 2.x) refuses an http:// server unless the cluster skips TLS verification (there is none to skip).
    ...(url.protocol === "http:" ? ["    insecure-skip-tls-verify: true"] : []),
    "users:",
    `- name: ${q(name)}`,
    "  user:",
    `    token: ${q(options.token)}`,
    "contexts:",
    `- name: ${q(name)}`,
    "  context:",
    `    cluster: ${q(name)}`,
    `    user: ${q(name)}`,
    `    namespace: ${q(options.namespace ?? "default")}`,
    `current-context: ${q(name)}`,
    "preferences: {}",
    "",
  ].join("\n");
}

/**
 * Writes the kubeconfig with mode 0600 (it holds a credential; kubectl warns about group/world-readable ones),
 * atomically: a reader never sees half a file, even when a test polls for it.
 */
export function writeKubeconfig(path: string, options: KubeconfigOptions): void {
  const text = renderKubeconfig(options);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
