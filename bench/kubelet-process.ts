// The fake kubelet (test/support/kubelet.ts) as its own process, so that in bench/controller.ts its work does not
// share an event loop with the measuring watches.   node --import tsx bench/kubelet-process.ts URL TOKEN NAMESPACE
// Prints "ready" once its caches are in. Reads commands on stdin, one a line:
//   ready DAEMONSET NODE true|false     readiness of that DaemonSet's pod on that node (FakeKubelet.setReady)
import { createInterface } from "node:readline";
import { FakeKubelet } from "../test/support/kubelet.js";

const [server, token, namespace] = process.argv.slice(2);
if (!server || !token || !namespace) {
  console.error("usage: kubelet-process.ts URL TOKEN NAMESPACE");
  process.exit(2);
}
const kubelet = new FakeKubelet({ server, token, namespace });
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
