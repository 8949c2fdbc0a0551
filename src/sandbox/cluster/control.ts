// The supervisor's control socket (`<state dir>/control.sock`, root only, as the directory is 0700): what the
// sandbox must do that no API call would express, such as stopping a node's kubelet. HTTP over a Unix socket, so
// `berth sandbox kubelet stop node-2` is one request; the answer is JSON ({ message } or { error }).
import { createServer, request, type Server } from "node:http";
import { rmSync } from "node:fs";

export interface ControlHandlers {
  stopKubelet(node: string): Promise<string>;
  startKubelet(node: string): Promise<string>;
}

/** The route of one control request, or an error message. */
export function controlRoute(method: string, path: string): { action: "stop" | "start"; node: string } | { error: string } {
  const m = /^\/v1\/nodes\/([a-z0-9-]+)\/kubelet\/(stop|start)$/.exec(path);
  if (m === null) return { error: `no such control request: ${method} ${path}` };
  if (method !== "POST") return { error: `${path} takes POST, not ${method}` };
  return { action: m[2] as "stop" | "start", node: m[1] as string };
}

export async function serveControl(socketPath: string, handlers: ControlHandlers): Promise<Server> {
  rmSync(socketPath, { force: true });
  const server = createServer((req, res) => {
    const route = controlRoute(req.method ?? "GET", req.url ?? "/");
    const reply = (code: number, body: Record<string, string>): void => {
      res.writeHead(code, { "Content-Type": "application/json" });
      res.end(`${JSON.stringify(body)}\n`);
    };
    req.resume();
    if ("error" in route) return reply(404, { error: route.error });
    const run = route.action === "stop" ? handlers.stopKubelet(route.node) : handlers.startKubelet(route.node);
    run.then((message) => reply(200, { message }), (err: unknown) => reply(409, { error: err instanceof Error ? err.message : String(err) }));
  });
  await new Promise<void>((done, fail) => {
    server.once("error", fail);
    server.listen(socketPath, () => done());
  });
  return server;
}

/** One control request; resolves with the supervisor's message, rejects with its error. */
export function callControl(socketPath: string, path: string, timeoutMs = 15_000): Promise<string> {
  return new Promise((done, fail) => {
    const req = request({ socketPath, path, method: "POST", timeout: timeoutMs }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => {
        let body: { message?: string; error?: string } = {};
        try {
          body = JSON.parse(text) as typeof body;
        } catch {
          body = { error: text.trim() || `HTTP ${res.statusCode}` };
        }
        if (res.statusCode === 200) done(body.message ?? "done");
        else fail(new Error(body.error ?? `HTTP ${res.statusCode}`));
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from the sandbox supervisor within ${timeoutMs} ms`)));
    req.on("error", (err) => fail(err));
    req.end();
  });
}
