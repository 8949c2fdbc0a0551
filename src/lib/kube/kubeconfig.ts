// Reads the kubeconfigs that need no plugin (a bearer token or a client certificate, a CA) without
// @kubernetes/client-node, whose import alone costs ~90 MiB of RSS and ~0.5 s (measured: a bare Node 24 process
// 42 MiB RSS, after importing client-node 131 MiB). A controller run with --kubeconfig (outside the cluster, the
// sandbox, the bench) would otherwise carry that for its whole life, and the in-cluster controller does not.
// Anything this does not read itself (exec and auth-provider plugins, basic auth, impersonation, proxies) is left
// to client-node: plainKubeconfig answers undefined and KubeClient.fromKubeconfig imports it as before.
// Field names and their meaning mirror client-go's clientcmd (tools/clientcmd/api/v1/types.go): file paths are
// relative to the kubeconfig's own directory (clientcmd's ResolvePaths), *-data fields are base64 PEM, `token` wins
// over `tokenFile`, and insecure-skip-tls-verify turns verification off.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { load } from "js-yaml";

/** What a KubeClient needs from a plain kubeconfig. */
export interface PlainKubeconfig {
  server: string;
  tls: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: boolean; servername?: string };
  /** A bearer token given inline. */
  token?: string;
  /** A file holding the bearer token (re-read, as client-go's cached token source does, once a minute). */
  tokenFile?: string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

/** Cluster and user fields read here; any other field set means client-node must do it. */
const CLUSTER_FIELDS = new Set(["server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify", "tls-server-name", "extensions"]);
const USER_FIELDS = new Set(["token", "tokenFile", "client-certificate", "client-certificate-data", "client-key", "client-key-data", "extensions"]);

/**
 * The parsed kubeconfig `text` (read from `path`) for `context` (default: its current-context), or undefined when it
 * uses something only client-node does. Throws, naming the field, for a kubeconfig that is wrong either way.
 */
export function plainKubeconfig(text: string, path: string, context?: string, readFile: (p: string) => Buffer = readFileSync): PlainKubeconfig | undefined {
  const doc = load(text) as Obj | null | undefined;
  if (!doc || typeof doc !== "object") throw new Error("not a kubeconfig (no YAML mapping)");
  const named = (list: unknown, name: string, what: string): Obj => {
    const entry = Array.isArray(list) ? (list as Obj[]).find((e) => e?.name === name) : undefined;
    if (!entry) throw new Error(`no ${what} named ${JSON.stringify(name)}`);
    return (entry[what] ?? {}) as Obj;
  };
  const contextName = context ?? doc["current-context"];
  if (typeof contextName !== "string" || contextName === "") throw new Error("no current-context set and no context given");
  const ctx = named(doc.contexts, contextName, "context");
  const cluster = named(doc.clusters, String(ctx.cluster ?? ""), "cluster");
  const user = ctx.user === undefined || ctx.user === "" ? {} : named(doc.users, String(ctx.user), "user");
  if (Object.keys(cluster).some((k) => !CLUSTER_FIELDS.has(k)) || Object.keys(user).some((k) => !USER_FIELDS.has(k))) return undefined;
  if (typeof cluster.server !== "string" || cluster.server === "") throw new Error(`cluster ${JSON.stringify(ctx.cluster)} has no server`);

  const dir = dirname(path);
  const file = (p: unknown): Buffer => readFile(isAbsolute(String(p)) ? String(p) : resolve(dir, String(p)));
  const pem = (dataKey: string, fileKey: string, from: Obj): Buffer | undefined =>
    from[dataKey] !== undefined ? Buffer.from(String(from[dataKey]), "base64") : from[fileKey] !== undefined ? file(from[fileKey]) : undefined;
  const tls: PlainKubeconfig["tls"] = {};
  const ca = pem("certificate-authority-data", "certificate-authority", cluster);
  const cert = pem("client-certificate-data", "client-certificate", user);
  const key = pem("client-key-data", "client-key", user);
  if (ca) tls.ca = ca;
  if (cert) tls.cert = cert;
  if (key) tls.key = key;
  if ((cert === undefined) !== (key === undefined)) throw new Error(`user ${JSON.stringify(ctx.user)} has a client certificate without its key, or a key without its certificate`);
  if (cluster["insecure-skip-tls-verify"] === true) tls.rejectUnauthorized = false;
  if (typeof cluster["tls-server-name"] === "string") tls.servername = cluster["tls-server-name"];
  const out: PlainKubeconfig = { server: cluster.server, tls };
  if (typeof user.token === "string" && user.token !== "") out.token = user.token;
  else if (typeof user.tokenFile === "string" && user.tokenFile !== "") out.tokenFile = isAbsolute(user.tokenFile) ? user.tokenFile : resolve(dir, user.tokenFile);
  return out;
}
