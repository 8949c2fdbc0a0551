// The sandbox demo's backend (`berth sandbox demo-app`, the "image" berth.dev/sandbox/demo-app:dev): one line per
// HTTP request naming the pod that answered, its node and the client address it saw, so a newcomer can tell which
// node served a request and whether the client's own address survived (externalTrafficPolicy: Local keeps it;
// Cluster replaces it with a node's). It listens on both families (`::` with IPv4-mapped addresses), and its
// readiness probe (`demo-app --check`) is a real request to the same port from inside the pod. With --udp-port it
// also answers every UDP datagram with the same line (for the UDP end-to-end tests).
import { createSocket, type Socket } from "node:dgram";
import { createServer, request, type Server } from "node:http";

export interface DemoAppIdentity {
  /** The pod's name (downward API metadata.name, env POD_NAME). */
  pod: string;
  /** The node's name (downward API spec.nodeName, env NODE_NAME). */
  node: string;
}

/** `::ffff:198.18.0.100` (an IPv4 client on a dual-stack socket) reads as `198.18.0.100`. */
export function clientAddress(remote: string | undefined): string {
  if (remote === undefined) return "unknown";
  return remote.startsWith("::ffff:") && remote.includes(".") ? remote.slice("::ffff:".length) : remote;
}

/**
 * The answer's one line: `pod berth-demo-x7k2p on node-1 saw client 198.18.0.100:54321`; an IPv6 client is written
 * `[fd42:b5e7:7a00::100]:54321`, as in a URL, so its port stays readable.
 */
export function demoAnswer(identity: DemoAppIdentity, remoteAddress: string | undefined, remotePort: number | undefined): string {
  const address = clientAddress(remoteAddress);
  return `pod ${identity.pod} on ${identity.node} saw client ${address.includes(":") ? `[${address}]` : address}:${remotePort ?? 0}`;
}

/** Whether an error says the kernel has no IPv6 (then the app listens on IPv4 only). */
const noIpv6 = (err: unknown): boolean => ["EAFNOSUPPORT", "EADDRNOTAVAIL"].includes((err as NodeJS.ErrnoException).code ?? "");

/**
 * One access line in nginx's default (combined) log format, which is what people expect `kubectl logs` of a web pod
 * to show: `198.18.0.100 - - [07/Dec/2026:17:50:03 +0000] "GET / HTTP/1.1" 200 57 "-" "curl/8.5.0"`.
 */
export function accessLine(r: { remote: string | undefined; method: string; url: string; httpVersion: string; status: number; bytes: number; referer?: string; userAgent?: string }, at: Date): string {
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const two = (n: number) => String(n).padStart(2, "0");
  const stamp = `${two(at.getUTCDate())}/${months[at.getUTCMonth()] ?? ""}/${at.getUTCFullYear()}:${two(at.getUTCHours())}:${two(at.getUTCMinutes())}:${two(at.getUTCSeconds())} +0000`;
  return `${clientAddress(r.remote)} - - [${stamp}] "${r.method} ${r.url} HTTP/${r.httpVersion}" ${r.status} ${r.bytes} "${r.referer ?? "-"}" "${r.userAgent ?? "-"}"`;
}

/**
 * Starts the HTTP server on both families (IPv4 only when the kernel has no IPv6); resolves once it listens.
 * `onRequest` gets an access line per answered request.
 */
export async function startDemoApp(identity: DemoAppIdentity, port: number, host?: string, onRequest?: (line: string) => void): Promise<{ server: Server; port: number }> {
  if (host !== undefined) return listenHttp(identity, port, host, onRequest);
  try {
    return await listenHttp(identity, port, "::", onRequest);
  } catch (err) {
    if (!noIpv6(err)) throw err;
    return listenHttp(identity, port, "0.0.0.0", onRequest);
  }
}

/** Answers every datagram with the demo line (sender's address and port); resolves once bound. */
export async function startDemoUdp(identity: DemoAppIdentity, port: number, host?: string): Promise<{ socket: Socket; port: number }> {
  const bind = (type: "udp4" | "udp6", address: string): Promise<{ socket: Socket; port: number }> =>
    new Promise((done, fail) => {
      const socket = createSocket({ type, ipv6Only: false });
      socket.on("message", (_message, remote) => {
        socket.send(`${demoAnswer(identity, remote.address, remote.port)}\n`, remote.port, remote.address);
      });
      socket.once("error", fail);
      socket.bind({ port, address }, () => {
        socket.off("error", fail);
        done({ socket, port: socket.address().port });
      });
    });
  if (host !== undefined) return bind(host.includes(":") ? "udp6" : "udp4", host);
  try {
    return await bind("udp6", "::");
  } catch (err) {
    if (!noIpv6(err)) throw err;
    return bind("udp4", "0.0.0.0");
  }
}

function listenHttp(identity: DemoAppIdentity, port: number, host: string, onRequest?: (line: string) => void): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const body = `${demoAnswer(identity, req.socket.remoteAddress, req.socket.remotePort)}\n`;
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
    res.end(body);
    onRequest?.(accessLine({
      remote: req.socket.remoteAddress, method: req.method ?? "GET", url: req.url ?? "/", httpVersion: req.httpVersion,
      status: 200, bytes: Buffer.byteLength(body),
      ...(req.headers.referer !== undefined ? { referer: req.headers.referer } : {}),
      ...(req.headers["user-agent"] !== undefined ? { userAgent: req.headers["user-agent"] } : {}),
    }, new Date()));
  });
  // Short keep-alive: a benchmark's keep-alive connections stay open, a one-shot probe's do not linger.
  server.keepAliveTimeout = 5_000;
  return new Promise((done, fail) => {
    server.once("error", fail);
    // ipv6Only false: one socket for both families, so a single-stack pod (no IPv6 address) still listens on IPv4.
    server.listen({ port, host, ipv6Only: false }, () => {
      server.off("error", fail);
      const address = server.address();
      done({ server, port: typeof address === "object" && address !== null ? address.port : port });
    });
  });
}

/** One GET with a deadline; resolves to the body, rejects with a one-line reason. */
export function httpGet(url: string, timeoutMs: number): Promise<string> {
  return new Promise((done, fail) => {
    const req = request(url, { method: "GET", timeout: timeoutMs, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        if (res.statusCode === 200) done(body);
        else fail(new Error(`${url}: HTTP ${res.statusCode ?? "?"}`));
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${url}: no answer within ${timeoutMs} ms`)));
    req.on("error", (err) => fail(err));
    req.end();
  });
}
