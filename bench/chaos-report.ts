// The chaos soak's arithmetic, apart from any I/O (bench/chaos.ts gathers, this file judges): outages from the
// prober's failed probes, what each fault touched, ingress addresses lost without a fault to explain them, and
// duplicate rules in an iptables-save or nft listing.

export interface Target {
  id: number;
  svc: string;
  node: string;
  ip: string;
  port: number;
}

/** One fault as injected: [start, end] is when it was on; convergedAt when the expected state held again. */
export interface FaultRecord {
  kind: string;
  start: number;
  end: number;
  /** Undefined = did not converge within the cap (notConverged says what was still wrong). */
  convergedAt?: number;
  notConverged?: string[];
  /** Target ids whose traffic the fault may legitimately interrupt; empty = none (any outage counts against it). */
  touched: number[];
  detail: string;
  /** What held convergence up, in order (for the JSON). */
  trace?: string[];
}

/** A Service's status.loadBalancer.ingress IPs from time t on. */
export interface IngressSample {
  t: number;
  ips: string[];
}

export interface Outage {
  target: number;
  from: number;
  to: number;
}

/** Nearest-rank percentile of a list (0 for an empty one). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

/** The ingress IPs of a Service at time t (the last sample at or before t; none before the first). */
export function ingressAt(samples: IngressSample[], t: number): string[] {
  let found: string[] = [];
  for (const s of samples) {
    if (s.t > t) break;
    found = s.ips;
  }
  return found;
}

/**
 * Outages: runs of failed probes of one target, counted only while the target's address was in its Service's
 * EXTERNAL-IP list (a client is only promised the addresses in the status). Failures closer than `gapMs` join one
 * run; a run lasts from its first failure to its last plus one probe period.
 */
export function outages(o: {
  failures: Map<number, number[]>;
  targets: Target[];
  ingress: Map<string, IngressSample[]>;
  periodMs: number;
  gapMs: number;
}): Outage[] {
  const result: Outage[] = [];
  for (const target of o.targets) {
    const samples = o.ingress.get(target.svc) ?? [];
    const times = (o.failures.get(target.id) ?? []).filter((t) => ingressAt(samples, t).includes(target.ip)).sort((a, b) => a - b);
    let run: Outage | undefined;
    for (const t of times) {
      if (run !== undefined && t - (run.to - o.periodMs) <= o.gapMs) {
        run.to = t + o.periodMs;
        continue;
      }
      if (run !== undefined) result.push(run);
      run = { target: target.id, from: t, to: t + o.periodMs };
    }
    if (run !== undefined) result.push(run);
  }
  return result;
}

function overlap(a: { from: number; to: number }, b: { from: number; to: number }): number {
  return Math.max(0, Math.min(a.to, b.to) - Math.max(a.from, b.from));
}

/** Where a fault's effects may show: from its start until it converged (or the cap), plus a settle margin. */
export function faultWindow(f: FaultRecord, capMs: number, settleMs: number): { from: number; to: number } {
  return { from: f.start, to: (f.convergedAt ?? f.end + capMs) + settleMs };
}

export interface FaultOutage {
  /** The longest total outage of one touched target inside the fault's window, ms. */
  touchedMs: number;
  /** The same over every other target (goal: 0). */
  othersMs: number;
  /** The target of othersMs, for the report. */
  worstOther?: number;
}

/** Per fault: the worst touched and the worst untouched target's outage inside the fault's window. */
export function outagePerFault(f: FaultRecord, all: Outage[], window: { from: number; to: number }): FaultOutage {
  const touched = new Set(f.touched);
  const total = new Map<number, number>();
  for (const o of all) {
    const ms = overlap(o, window);
    if (ms > 0) total.set(o.target, (total.get(o.target) ?? 0) + ms);
  }
  let touchedMs = 0;
  let othersMs = 0;
  let worstOther: number | undefined;
  for (const [target, ms] of total) {
    if (touched.has(target)) touchedMs = Math.max(touchedMs, ms);
    else if (ms > othersMs) {
      othersMs = ms;
      worstOther = target;
    }
  }
  return { touchedMs, othersMs, ...(worstOther !== undefined ? { worstOther } : {}) };
}

/** Outages outside every fault's window (the machine or the data plane failing with no fault injected). */
export function outagesOutside(all: Outage[], windows: { from: number; to: number }[]): Outage[] {
  return all.filter((o) => windows.every((w) => overlap(o, w) === 0));
}

export interface LostAddress {
  svc: string;
  ip: string;
  from: number;
  to: number;
}

/**
 * Addresses that left a Service's EXTERNAL-IP list while no fault touching that (Service, address) was on: a
 * Ready, serving node's address lost. `end` closes an interval still open at the end of the run.
 */
export function lostAddresses(o: {
  ingress: Map<string, IngressSample[]>;
  targets: Target[];
  windows: { from: number; to: number; touched: Set<number> }[];
  since: number;
  end: number;
}): LostAddress[] {
  const lost: LostAddress[] = [];
  for (const target of o.targets) {
    const samples = (o.ingress.get(target.svc) ?? []).filter((s) => s.t >= o.since);
    let gone: number | undefined;
    const close = (to: number): void => {
      if (gone === undefined) return;
      const interval = { from: gone, to };
      const explained = o.windows.some((w) => w.touched.has(target.id) && overlap(interval, w) > 0);
      if (!explained && !lost.some((l) => l.svc === target.svc && l.ip === target.ip && l.from === gone)) lost.push({ svc: target.svc, ip: target.ip, ...interval });
      gone = undefined;
    };
    for (const s of samples) {
      const present = s.ips.includes(target.ip);
      if (!present && gone === undefined) gone = s.t;
      if (present) close(s.t);
    }
    close(o.end);
  }
  return lost;
}

/**
 * Rules that appear more than once in the same table and chain of an `iptables-save` output (counters and
 * comments ignored): a rule applied twice by a restarted lb-pod or a reconcile that appended instead of replacing.
 */
export function duplicateIptablesRules(save: string): string[] {
  const seen = new Set<string>();
  const dups: string[] = [];
  let table = "";
  for (const raw of save.split("\n")) {
    const line = raw.replace(/^\[\d+:\d+\]\s*/, "").trim();
    if (line.startsWith("*")) table = line.slice(1);
    if (!line.startsWith("-A ")) continue;
    const key = `${table} ${line}`;
    if (seen.has(key)) dups.push(key);
    seen.add(key);
  }
  return dups;
}

/** The same for `nft list ruleset`: identical rule lines inside one chain of one table (handles and counters ignored). */
export function duplicateNftRules(ruleset: string): string[] {
  const seen = new Set<string>();
  const dups: string[] = [];
  let table = "";
  let chain = "";
  for (const raw of ruleset.split("\n")) {
    const line = raw.replace(/\s*# handle \d+$/, "").replace(/counter packets \d+ bytes \d+/, "counter").trim();
    const t = /^table (\S+ \S+) \{$/.exec(line);
    if (t) {
      table = t[1] as string;
      continue;
    }
    const c = /^chain (\S+) \{$/.exec(line);
    if (c) {
      chain = c[1] as string;
      continue;
    }
    if (line === "}" || line === "" || /^(type |policy |elements |set |map |flags )/.test(line) || chain === "") continue;
    const key = `${table} ${chain} ${line}`;
    if (seen.has(key)) dups.push(key);
    seen.add(key);
  }
  return dups;
}

export interface KindSummary {
  kind: string;
  count: number;
  touchedMs: { p50: number; p99: number; max: number };
  othersMs: { p50: number; p99: number; max: number };
  convergeMs: { p50: number; p99: number; max: number };
  notConverged: number;
}

export function summarize(kind: string, rows: { outage: FaultOutage; convergeMs: number | undefined }[]): KindSummary {
  const stats = (values: number[]): { p50: number; p99: number; max: number } => ({
    p50: percentile(values, 50), p99: percentile(values, 99), max: values.length === 0 ? 0 : Math.max(...values),
  });
  const converged = rows.map((r) => r.convergeMs).filter((v): v is number => v !== undefined);
  return {
    kind,
    count: rows.length,
    touchedMs: stats(rows.map((r) => r.outage.touchedMs)),
    othersMs: stats(rows.map((r) => r.outage.othersMs)),
    convergeMs: stats(converged),
    notConverged: rows.length - converged.length,
  };
}
