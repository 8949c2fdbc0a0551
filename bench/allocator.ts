// VIP allocator benchmark (src/controller/vip/allocator.ts, no I/O): 10,000 Services from one /16.
//
//   node --import tsx bench/allocator.ts [--services 10000] [--runs 5]
//
// Per run, on a fresh allocator over validatePools' output:
//   1. allocate: every Service allocated once, in creation order (goal: <= 1 s for 10,000 from a /16);
//   2. steady: every Service allocated again (what a resync's reconciles ask: each keeps its address);
//   3. rebuild: a new allocator restored from the addresses of step 1 (a restart or a new leader), then one more
//      Service allocated, which must take the first free address;
//   4. churn: every tenth Service released and allocated again (deletes and re-creates);
//   5. dual-stack: 10,000 RequireDualStack Services from a /16 plus a /112;
//   6. sharing: 5,000 pairs on one sharing key with disjoint ports (each pair one address).
// Medians of --runs runs. Prints a table and writes bench/results/allocator.json with the machine it ran on.
import { writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { Allocator, type VipService } from "../src/controller/vip/allocator.js";
import { validatePools, type ParsedPool } from "../src/controller/vip/pools.js";

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const SERVICES = Number(arg("--services", "10000"));
const RUNS = Number(arg("--runs", "5"));
const RESULTS = fileURLToPath(new URL("./results/allocator.json", import.meta.url));

function pools(addresses: string[]): ParsedPool[] {
  const d = validatePools([{ metadata: { name: "lan" }, spec: { addresses } }], new Map());
  if (d.serving.length !== 1) throw new Error(`pool not valid: ${d.verdicts.get("lan")?.message}`);
  return d.serving;
}

function svc(i: number, over: Partial<VipService> = {}): VipService {
  return {
    key: `ns${i % 100}/svc-${i}`, namespace: `ns${i % 100}`, labels: {}, families: ["ipv4"], familyPolicy: "SingleStack",
    request: { ips: [] }, ports: [{ protocol: "tcp", port: 80 }], trafficPolicy: "Cluster", selector: { app: `svc-${i}` }, ...over,
  };
}

function time(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function ok(result: ReturnType<Allocator["allocate"]>): string[] {
  if (!result.ok) throw new Error(`${result.failure.code}: ${result.failure.message}`);
  return result.ips;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

interface Run {
  allocateMs: number;
  steadyMs: number;
  rebuildMs: number;
  churnMs: number;
  dualStackMs: number;
  sharingMs: number;
}

function run(): Run {
  const lan = pools(["10.20.0.0/16"]);
  const services = Array.from({ length: SERVICES }, (_, i) => svc(i));
  const a = new Allocator(lan);
  const given: string[][] = [];
  const allocateMs = time(() => {
    for (const s of services) given.push(ok(a.allocate(s)));
  });
  if (new Set(given.map((g) => g[0])).size !== SERVICES) throw new Error("an address was given twice");
  const steadyMs = time(() => {
    for (const s of services) {
      const r = a.allocate(s);
      if (!r.ok || r.changed) throw new Error(`${s.key} moved`);
    }
  });
  const b = new Allocator(lan);
  let next: string[] = [];
  const rebuildMs = time(() => {
    services.forEach((s, i) => b.restore(s, given[i] as string[], "lan"));
    next = ok(b.allocate(svc(SERVICES)));
  });
  if (given.some((g) => g[0] === next[0])) throw new Error(`after the rebuild ${next[0]} was given again`);
  const churnMs = time(() => {
    for (let i = 0; i < SERVICES; i += 10) a.release((services[i] as VipService).key);
    for (let i = 0; i < SERVICES; i += 10) ok(a.allocate(svc(SERVICES + i)));
  });
  const dual = new Allocator(pools(["10.20.0.0/16", "fd00:20::/112"]));
  const dualStackMs = time(() => {
    for (let i = 0; i < SERVICES; i++) {
      if (ok(dual.allocate(svc(i, { families: ["ipv4", "ipv6"], familyPolicy: "RequireDualStack" }))).length !== 2) throw new Error("not dual");
    }
  });
  const shared = new Allocator(lan);
  const sharingMs = time(() => {
    for (let i = 0; i < SERVICES; i++) {
      // Pairs: service 2k and 2k+1 share key k, on ports 80 and 443.
      ok(shared.allocate(svc(i, { request: { ips: [], sharingKey: `k${Math.floor(i / 2)}` }, ports: [{ protocol: "tcp", port: i % 2 === 0 ? 80 : 443 }] })));
    }
  });
  return { allocateMs, steadyMs, rebuildMs, churnMs, dualStackMs, sharingMs };
}

const runs: Run[] = [];
for (let i = 0; i < RUNS; i++) runs.push(run());
const med = (k: keyof Run): number => Math.round(median(runs.map((r) => r[k])) * 10) / 10;
const max = (k: keyof Run): number => Math.round(Math.max(...runs.map((r) => r[k])) * 10) / 10;
const rows: [string, keyof Run][] = [
  [`allocate ${SERVICES} from a /16`, "allocateMs"],
  [`allocate ${SERVICES} again (each keeps its address)`, "steadyMs"],
  [`rebuild from status + 1 allocation`, "rebuildMs"],
  [`release and re-allocate ${SERVICES / 10}`, "churnMs"],
  [`allocate ${SERVICES} RequireDualStack (/16 + /112)`, "dualStackMs"],
  [`allocate ${SERVICES} in shared pairs`, "sharingMs"],
];
console.log(`| case | median | max (of ${RUNS}) |\n|---|---:|---:|`);
for (const [label, k] of rows) console.log(`| ${label} | ${med(k)} ms | ${max(k)} ms |`);
writeFileSync(RESULTS, `${JSON.stringify({
  date: new Date().toISOString(),
  machine: {
    nproc: cpus().length, cpu: cpus()[0]?.model ?? "", memoryMiB: Math.round(totalmem() / 2 ** 20), kernel: release(),
    node: process.version, loadavgAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
  },
  services: SERVICES,
  runs: RUNS,
  medianMs: Object.fromEntries(rows.map(([, k]) => [k, med(k)])),
  maxMs: Object.fromEntries(rows.map(([, k]) => [k, max(k)])),
}, null, 1)}\n`);
console.log(`wrote ${RESULTS}`);
