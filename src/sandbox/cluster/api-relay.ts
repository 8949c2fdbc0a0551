// How a host-network pod in the sandbox reaches the API server. On a cluster, every node reaches the API server over
// the network; the sandbox's API server listens on the host's 127.0.0.1 only, which a node's network namespace cannot
// reach. So the supervisor relays it: one socat in the host namespace listens on a Unix socket (file system paths are
// the same in every network namespace) and connects to the API server; one socat per node namespace listens on that
// namespace's 127.0.0.1 at the API server's own port and connects to the Unix socket. The sandbox's kubeconfig
// (https://127.0.0.1:PORT, a certificate for 127.0.0.1) then works unchanged inside every node, which is what VIP
// mode's speaker DaemonSet is given. TLS passes through untouched: the relay sees only bytes.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, rmSync } from "node:fs";

export interface ApiRelayOptions {
  /** The API server's URL on the host (https://127.0.0.1:PORT). */
  apiUrl: string;
  nodeNamespaces: readonly string[];
  /** Where the Unix socket goes (the sandbox's state directory). */
  socketPath: string;
  log?: (message: string) => void;
}

export interface ApiRelay {
  stop(): Promise<void>;
}

export async function startApiRelay(o: ApiRelayOptions): Promise<ApiRelay> {
  const url = new URL(o.apiUrl);
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  if (url.hostname !== "127.0.0.1") throw new Error(`the API relay expects the API server on 127.0.0.1, not ${url.hostname}`);
  rmSync(o.socketPath, { force: true });
  const children: ChildProcess[] = [];
  const start = (file: string, args: string[], what: string): void => {
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.on("data", (chunk: Buffer) => o.log?.(`${what}: ${chunk.toString().trim()}`));
    child.on("error", (err) => o.log?.(`${what}: ${err.message}`));
    children.push(child);
  };
  start("socat", [`UNIX-LISTEN:${o.socketPath},fork,mode=600`, `TCP:127.0.0.1:${port}`], "API relay (host)");
  for (let i = 0; i < 50 && !existsSync(o.socketPath); i++) await new Promise((r) => setTimeout(r, 20));
  if (!existsSync(o.socketPath)) throw new Error(`the API relay did not create ${o.socketPath} (is socat installed?)`);
  for (const ns of o.nodeNamespaces) {
    start("ip", ["netns", "exec", ns, "socat", `TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${o.socketPath}`], `API relay (${ns})`);
  }
  return {
    async stop() {
      await Promise.all(children.map((c) => new Promise<void>((done) => {
        if (c.exitCode !== null || c.signalCode !== null) return done();
        c.once("exit", () => done());
        c.kill("SIGTERM");
      })));
      rmSync(o.socketPath, { force: true });
    },
  };
}
