// The fake kubelet (test/support/kubelet.ts) as its own process, so that in bench/controller.ts its work does not
// share an event loop with the measuring watches.
//   node --import tsx bench/kubelet-process.ts URL TOKEN NAMESPACE [default|none]
// The last word is the stand-in's client-side rate limits: the real components' defaults (src/sandbox/cluster/
// client-limits.ts: the DaemonSet controller's 20/s, the scheduler's and each kubelet's 50/s), or none.
// Prints "ready" once its caches are in. Reads commands on stdin, one a line:
//   ready DAEMONSET NODE true|false     readiness of that DaemonSet's pod on that node (FakeKubelet.setReady)
import { createInterface } from "node:readline";
import { FakeKubelet } from "../test/support/kubelet.js";

const [server, token, namespace, limits = "default"] = process.argv.slice(2);
if (!server || !token || !namespace || (limits !== "default" && limits !== "none")) {
  console.error("usage: kubelet-process.ts URL TOKEN NAMESPACE [default|none]");
  process.exit(2);
}
const kubelet = new FakeKubelet({
  server, token, namespace, ...(limits === "none" ? { clientLimits: false as const } : {}),
  // A relist of every pod is heavy work for the API server: the bench's reader should know when one happened.
  onRelist: (path) => console.error(`kubelet-process: relisted ${path} at ${new Date().toISOString()}`),
});
await kubelet.start();
console.log("ready");
createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, daemonSet, node, ready] = line.trim().split(/\s+/);
  if (command === "ready" && daemonSet && node && (ready === "true" || ready === "false")) {
    kubelet.setReady({ daemonSet, node, ready: ready === "true" });
  } else if (line.trim()) {
    console.error(`kubelet-process: unknown command: ${line}`);
  }
});
process.once("SIGTERM", () => {
  kubelet.stop();
  process.exit(0);
});
