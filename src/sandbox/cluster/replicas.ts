// `sandbox status` with several controller replicas: one line per replica, with whether it leads (its berth_leader
// gauge on /metrics), so a reader sees which pid to kill to test a failover.
import { get } from "node:http";
import type { ControllerReplicaState } from "./state.js";

/** berth_leader's value in a Prometheus text exposition, or undefined when it is absent. */
export function leaderGauge(metrics: string): boolean | undefined {
  const m = /^berth_leader(?:\{[^}]*\})?\s+(\S+)$/m.exec(metrics);
  return m === null ? undefined : Number(m[1]) === 1;
}

function fetchText(url: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((done) => {
    const req = get(url, { timeout: timeoutMs, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => done(res.statusCode === 200 ? text : undefined));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => done(undefined));
  });
}

export async function replicaLines(replicas: ControllerReplicaState[], timeoutMs = 2000): Promise<string[]> {
  const roles = await Promise.all(replicas.map(async (r) => {
    const text = await fetchText(`${r.url}/metrics`, timeoutMs);
    if (text === undefined) return "not answering";
    const leads = leaderGauge(text);
    return leads === undefined ? "no berth_leader metric" : leads ? "LEADER" : "standby";
  }));
  return replicas.map((r, i) => `  controller ${r.identity}: pid ${r.pid}, ${roles[i]}; /metrics, /healthz, /readyz on ${r.url}`);
}
