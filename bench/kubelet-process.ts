// The fake kubelet (test/support/kubelet.ts) as its own process, so that in bench/controller.ts its work does not
// share an event loop with the measuring watches.   node --import tsx bench/kubelet-process.ts URL TOKEN NAMESPACE
import { FakeKubelet } from "../test/support/kubelet.js";

const [server, token, namespace] = process.argv.slice(2);
if (!server || !token || !namespace) {
  console.error("usage: kubelet-process.ts URL TOKEN NAMESPACE");
  process.exit(2);
}
const kubelet = new FakeKubelet({ server, token, namespace });
await kubelet.start();
console.log("ready");
process.once("SIGTERM", () => {
  kubelet.stop();
  process.exit(0);
});
