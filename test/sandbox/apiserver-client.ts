// A tiny HTTP client for the API server conformance tests: real requests with Node's fetch, real watch streams
// read line by line. Deliberately not @kubernetes/client-node, so the tests see exactly what goes over the wire.
import { startApiServer, type ApiServerHandle, type ApiServerOptions } from "../../src/sandbox/apiserver/index.js";

export interface Reply {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
}

export interface WatchLine {
  type: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  object: any;
}

export class Watch {
  private buffer = "";
  private readonly queue: WatchLine[] = [];
  private waiter: (() => void) | undefined;
  ended = false;

  constructor(readonly status: number, private readonly reader: ReadableStreamDefaultReader<Uint8Array>, private readonly abort: AbortController) {
    void this.pump();
  }

  private async pump(): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await this.reader.read();
        if (done) break;
        this.buffer += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = this.buffer.indexOf("\n")) >= 0) {
          const line = this.buffer.slice(0, nl).trim();
          this.buffer = this.buffer.slice(nl + 1);
          if (line) this.queue.push(JSON.parse(line) as WatchLine);
        }
        this.waiter?.();
      }
    } catch {
      // aborted
    }
    this.ended = true;
    this.waiter?.();
  }

  /** The next event, or undefined if the stream ends or nothing arrives within `ms`. */
  async next(ms = 2000): Promise<WatchLine | undefined> {
    const deadline = Date.now() + ms;
    while (this.queue.length === 0 && !this.ended && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, deadline - Date.now());
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.queue.shift();
  }

  /** Collects events until `n` arrived (or `ms` passed). */
  async take(n: number, ms = 2000): Promise<WatchLine[]> {
    const out: WatchLine[] = [];
    const deadline = Date.now() + ms;
    while (out.length < n) {
      const ev = await this.next(Math.max(1, deadline - Date.now()));
      if (!ev) break;
      out.push(ev);
    }
    return out;
  }

  /** Resolves once the server ends the stream; false if it is still open after `ms`. */
  async waitEnd(ms = 2000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.ended;
  }

  close(): void {
    this.abort.abort();
  }
}

export class Client {
  private readonly watches: Watch[] = [];

  private readonly token: string | undefined;

  /** `token` null = send no Authorization header; omitted = the server's token. */
  constructor(readonly server: ApiServerHandle, token?: string | null) {
    this.token = token === undefined ? server.token : (token ?? undefined);
  }

  async req(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    const h: Record<string, string> = { ...headers };
    if (this.token !== undefined) h.Authorization = `Bearer ${this.token}`;
    let payload: string | Uint8Array | undefined;
    if (body !== undefined) {
      payload = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
      h["Content-Type"] ??= "application/json";
    }
    const res = await fetch(this.server.url + path, { method, headers: h, ...(payload !== undefined ? { body: payload } : {}) });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  }

  get(path: string, headers?: Record<string, string>): Promise<Reply> {
    return this.req("GET", path, undefined, headers);
  }

  post(path: string, body: unknown): Promise<Reply> {
    return this.req("POST", path, body);
  }

  put(path: string, body: unknown): Promise<Reply> {
    return this.req("PUT", path, body);
  }

  patch(path: string, contentType: string, body: unknown): Promise<Reply> {
    return this.req("PATCH", path, body, { "Content-Type": contentType });
  }

  del(path: string, body?: unknown): Promise<Reply> {
    return this.req("DELETE", path, body);
  }

  /** Opens a watch (adds watch=true unless the path uses the /watch/ prefix). */
  async watch(path: string, headers: Record<string, string> = {}): Promise<Watch> {
    const abort = new AbortController();
    const url = path.includes("/watch/") ? path : `${path}${path.includes("?") ? "&" : "?"}watch=true`;
    const h: Record<string, string> = { ...headers };
    if (this.token !== undefined) h.Authorization = `Bearer ${this.token}`;
    const res = await fetch(this.server.url + url, { headers: h, signal: abort.signal });
    if (!res.body) throw new Error("watch without a body");
    const w = new Watch(res.status, res.body.getReader(), abort);
    this.watches.push(w);
    return w;
  }

  closeWatches(): void {
    for (const w of this.watches.splice(0)) w.close();
  }
}

/** Starts a server for one test file (mocha before/after) and a client for it. */
export function useServer(options: ApiServerOptions = {}): { server: () => ApiServerHandle; client: () => Client } {
  let server: ApiServerHandle | undefined;
  let client: Client | undefined;
  beforeEach(async () => {
    server = await startApiServer({ port: 0, ...options });
    client = new Client(server);
  });
  afterEach(async () => {
    client?.closeWatches();
    await server?.close();
    server = undefined;
  });
  return {
    server: () => server as ApiServerHandle,
    client: () => client as Client,
  };
}

export function configMap(name: string, labels: Record<string, string> = {}, data: Record<string, string> = {}): Record<string, unknown> {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, labels }, data };
}

export const CM = "/api/v1/namespaces/default/configmaps";
