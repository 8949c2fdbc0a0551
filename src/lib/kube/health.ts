// /healthz, /readyz and /metrics on one small HTTP server.
// Readiness is "this process can do its job if asked", not "this replica leads": a follower whose informers have
// synced is Ready too. A never-Ready standby would keep `kubectl rollout status` from completing and count as
// unavailable against a PodDisruptionBudget, and Service routing does not apply (nothing sends traffic to the
// controller). Leadership is exported as the `berth_leader` metric instead. Liveness only says the event loop
// answers: restarting a process because the API server is down would not help (docs/architecture.md, "Reliability": keep retrying).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { MetricsSource } from "./metrics.js";

export interface HealthServerOptions {
  /** Default 0.0.0.0 (kubelet probes the pod IP). */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** true = ready; false or a string (the reason, shown in the 503 body) = not ready. */
  ready: () => boolean | string;
  /** Optional liveness check, same convention; default always live. */
  live?: () => boolean | string;
  metrics?: MetricsSource;
}

export interface HealthServer {
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  close(): Promise<void>;
}

function verdict(check: (() => boolean | string) | undefined): { ok: boolean; text: string } {
  if (!check) return { ok: true, text: "ok" };
  let r: boolean | string;
  try {
    r = check();
  } catch (e) {
    return { ok: false, text: `check failed: ${String(e)}` };
  }
  if (r === true) return { ok: true, text: "ok" };
  return { ok: false, text: typeof r === "string" && r !== "" ? r : "not ready" };
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain" }).end("method not allowed\n");
      return;
    }
    const plain = (code: number, text: string): void => {
      res.writeHead(code, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : `${text}\n`);
    };
    if (path === "/healthz" || path === "/livez") {
      const v = verdict(options.live);
      plain(v.ok ? 200 : 503, v.text);
    } else if (path === "/readyz") {
      const v = verdict(options.ready);
      plain(v.ok ? 200 : 503, v.text);
    } else if (path === "/metrics" && options.metrics) {
      const m = options.metrics;
      m.render().then((body) => {
        res.writeHead(200, { "Content-Type": m.contentType });
        res.end(req.method === "HEAD" ? undefined : body);
      }, (e: unknown) => plain(500, `metrics failed: ${String(e)}`));
    } else {
      plain(404, "not found");
    }
  });
  server.keepAliveTimeout = 5000;
  const host = options.host ?? "0.0.0.0";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
