// The sandbox API server's CPU per write, apart from the machine's load (CPU seconds, not latency):
//
//   node --import tsx bench/apiserver-writes.ts [--tree DIR] [--daemonsets 200] [--nodes 10]
//
// This process runs only the API server (of this checkout, or of another one given by --tree, to compare builds);
// a child process sends the DaemonSet controller's, scheduler's and kubelet's writes for --daemonsets DaemonSets of
// --nodes lb-pods each, one after another: the DaemonSet applied, per node its pod created unbound, bound through
// pods/binding and made Running and Ready through a status patch, then the DaemonSet's status; meanwhile it holds
// three pod watches and one DaemonSet watch (the controller's, the kubelet's and a measuring one) and parses every
// event. Prints the server's user and system CPU seconds and CPU per write.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const TREE = arg("--tree", fileURLToPath(new URL("..", import.meta.url)));
const DAEMONSETS = Number(arg("--daemonsets", "200"));
const NODES = Number(arg("--nodes", "10"));
const NS = "berth-system";
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

async function load(url: string, token: string): Promise<void> {
  const headers = { Authorization: `Bearer ${token}` };
  for (const path of [`/api/v1/namespaces/${NS}/pods`, `/api/v1/namespaces/${NS}/pods`, `/api/v1/namespaces/${NS}/pods`, `/apis/apps/v1/namespaces/${NS}/daemonsets`]) {
    const res = await fetch(`${url}${path}?watch=true&resourceVersion=0`, { headers });
    void (async () => {
      let buffer = "";
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let i = buffer.indexOf("\n"); i >= 0; i = buffer.indexOf("\n")) {
          JSON.parse(buffer.slice(0, i));
          buffer = buffer.slice(i + 1);
        }
      }
    })().catch(() => undefined);
  }
  const send = async (method: string, path: string, body: unknown, type = "application/json"): Promise<Obj> => {
    const res = await fetch(`${url}${path}`, { method, headers: { ...headers, "Content-Type": type }, body: JSON.stringify(body) });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return await res.json() as Obj;
  };
  for (let d = 0; d < DAEMONSETS; d++) {
    const name = `svclb-svc-${d}`;
    const ds = await send("PATCH", `/apis/apps/v1/namespaces/${NS}/daemonsets/${name}?fieldManager=berth&force=true`, {
      apiVersion: "apps/v1", kind: "DaemonSet", metadata: { name, labels: { "berth.dev/service-name": `svc-${d}` } },
      spec: { selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: {
        containers: [{ name: "lb-tcp-80", image: "berth:bench", ports: [{ containerPort: 10000 + d, hostPort: 10000 + d, protocol: "TCP" }],
          env: [{ name: "A", value: "1" }, { name: "B", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } }],
          readinessProbe: { exec: { command: ["cat", "/run/ready"] }, periodSeconds: 2 }, securityContext: { capabilities: { add: ["NET_ADMIN"] } } }],
        tolerations: [{ operator: "Exists" }], priorityClassName: "system-node-critical" } } },
    }, "application/apply-patch+yaml");
    for (let n = 0; n < NODES; n++) {
      const pod = await send("POST", `/api/v1/namespaces/${NS}/pods`, {
        metadata: { name: `${name}-${n}`, labels: { app: name },
          ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name, uid: ds.metadata.uid, controller: true, blockOwnerDeletion: true }] },
        spec: { ...ds.spec.template.spec, affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchFields: [{ key: "metadata.name", operator: "In", values: [`node-${n}`] }] }] } } } },
      });
      const podName = pod.metadata.name as string;
      await send("POST", `/api/v1/namespaces/${NS}/pods/${podName}/binding`, { apiVersion: "v1", kind: "Binding", metadata: { name: podName }, target: { kind: "Node", name: `node-${n}` } });
      await send("PATCH", `/api/v1/namespaces/${NS}/pods/${podName}/status`, { status: {
        phase: "Running", hostIP: `10.0.0.${n}`, podIP: `10.42.${n % 256}.${d % 250 + 2}`,
        conditions: [{ type: "PodScheduled", status: "True" }, { type: "Initialized", status: "True" }, { type: "ContainersReady", status: "True" }, { type: "Ready", status: "True" }],
        containerStatuses: [{ name: "lb-tcp-80", image: "berth:bench", imageID: "", ready: true, restartCount: 0, started: true, state: { running: { startedAt: "2026-01-01T00:00:00Z" } } }],
      } }, "application/strategic-merge-patch+json");
    }
    await send("PATCH", `/apis/apps/v1/namespaces/${NS}/daemonsets/${name}/status`,
      { status: { desiredNumberScheduled: NODES, currentNumberScheduled: NODES, numberReady: NODES, numberMisscheduled: 0 } }, "application/merge-patch+json");
  }
}

if (process.argv.includes("--child")) {
  const [url, token] = process.argv.slice(process.argv.indexOf("--child") + 1) as [string, string];
  process.once("message", () => void load(url, token).then(() => process.send?.("done")).then(() => process.exit(0)));
  process.send?.("ready");
} else {
  const { startApiServer } = await import(`${TREE}/src/sandbox/apiserver/index.ts`) as typeof import("../src/sandbox/apiserver/index.js");
  const server = await startApiServer({ port: 0, historyLimit: 5000 });
  const post = (path: string, body: unknown): Promise<Response> => fetch(`${server.url}${path}`, {
    method: "POST", headers: { Authorization: `Bearer ${server.token}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
  await post("/api/v1/namespaces", { metadata: { name: NS } });
  for (let n = 0; n < NODES; n++) await post("/api/v1/nodes", { metadata: { name: `node-${n}` }, status: { conditions: [{ type: "Ready", status: "True" }] } });
  const child = fork(fileURLToPath(import.meta.url), ["--child", server.url, server.token], { execArgv: ["--import", "tsx"] });
  await new Promise((r) => child.once("message", r));
  const before = process.cpuUsage();
  const t0 = performance.now();
  child.send("go");
  await new Promise((r) => child.once("message", r));
  const cpu = process.cpuUsage(before);
  const writes = DAEMONSETS * (2 + 3 * NODES);
  const s = (us: number): number => Math.round(us / 1e4) / 100;
  console.log(JSON.stringify({ tree: TREE, writes, wallS: Math.round(performance.now() - t0) / 1000, userS: s(cpu.user), systemS: s(cpu.system),
    cpuPerWriteUs: Math.round((cpu.user + cpu.system) / writes) }));
  await server.close();
  process.exit(0);
}
