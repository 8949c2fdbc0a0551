// The chaos soak's prober: ONE long-lived process inside the sandbox's client namespace (bench/chaos.ts starts it with
// `ip netns exec <prefix>-client`), so a probe costs a connection, not a process start. Every target (a Service's
// port on one node address) is probed `hz` times a second: a new TCP connection, `GET /` and a 200 within
// `timeoutMs`. Probes of one target may overlap (a probe stuck in a dropped SYN does not delay the next one), so a
// failure's timestamp is when it was sent and an outage is a run of failures.
// Input: one JSON line on stdin, { targets: [{ id, ip, port }], hz, timeoutMs }. Output, JSON lines on stdout:
//   { "f": [id, sentAtMs, reason] } per failed probe, and once a second
//   { "s": { "t": ms, "sent": n, "ok": n, "failed": n, "skipped": n, "lagMs": n } }: lagMs is how late the timer fired
//   (a load gauge); a round that could not be sent in its period (a saturated machine) is skipped, not queued, so
//   probes stay on time and `skipped` says how much coverage was lost.
// It ends when stdin closes (the soak is over, or the soak died).
import { connect } from "node:net";
import { createInterface } from "node:readline";

export interface ProbeTarget {
  id: number;
  ip: string;
  port: number;
}

export interface ProberConfig {
  targets: ProbeTarget[];
  hz: number;
  timeoutMs: number;
}

/** One probe: connect, GET /, read the status line; resolves undefined on a 200, else the reason. */
export function probeOnce(ip: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((done) => {
    let settled = false;
    let head = "";
    const socket = connect({ host: ip, port });
    const finish = (reason: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      done(reason);
    };
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    socket.setNoDelay(true);
    socket.on("connect", () => socket.write(`GET / HTTP/1.1\r\nHost: ${ip}:${port}\r\nConnection: close\r\n\r\n`));
    socket.on("data", (chunk: Buffer) => {
      head += chunk.toString("latin1");
      const eol = head.indexOf("\r\n");
      if (eol < 0) return;
      const status = head.slice(0, eol);
      finish(/^HTTP\/1\.[01] 200 /.test(status) ? undefined : `status ${status.slice(9, 12)}`);
    });
    socket.on("error", (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    socket.on("end", () => finish("closed before a status line"));
  });
}

function run(config: ProberConfig): () => void {
  const period = 1000 / config.hz;
  const stats = { sent: 0, ok: 0, failed: 0, skipped: 0, lagMs: 0 };
  const out = (line: unknown): void => {
    process.stdout.write(`${JSON.stringify(line)}\n`);
  };
  // One timer drives every target: targets are spread evenly over the period (not all at once), and a late timer
  // (a busy machine) catches up instead of drifting.
  const start = Date.now();
  let round = 0;
  const timers: NodeJS.Timeout[] = [];
  const tick = (): void => {
    const due = start + round * period;
    stats.lagMs = Math.max(stats.lagMs, Date.now() - due);
    round++;
    const behind = Math.floor((Date.now() - due) / period);
    if (behind > 0) {
      stats.skipped += behind * config.targets.length;
      round += behind;
    }
    const spread = period / Math.max(1, config.targets.length);
    config.targets.forEach((t, i) => {
      const at = Date.now();
      setTimeout(() => {
        const sentAt = Date.now();
        stats.sent++;
        void probeOnce(t.ip, t.port, config.timeoutMs).then((reason) => {
          if (reason === undefined) stats.ok++;
          else {
            stats.failed++;
            out({ f: [t.id, sentAt, reason] });
          }
        });
      }, Math.max(0, Math.round(i * spread - (Date.now() - at))));
    });
    timers[0] = setTimeout(tick, Math.max(0, start + round * period - Date.now()));
  };
  tick();
  const reporter = setInterval(() => {
    out({ s: { t: Date.now(), ...stats } });
    stats.sent = stats.ok = stats.failed = stats.skipped = stats.lagMs = 0;
  }, 1000);
  return () => {
    for (const t of timers) clearTimeout(t);
    clearInterval(reporter);
  };
}

const lines = createInterface({ input: process.stdin });
let stop: (() => void) | undefined;
lines.once("line", (text) => {
  stop = run(JSON.parse(text) as ProberConfig);
});
lines.once("close", () => {
  stop?.();
  // Probes in flight end within timeoutMs; nobody reads them any more.
  process.exit(0);
});
