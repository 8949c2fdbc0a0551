// The lb-pod's code path must never load @kubernetes/client-node (its import alone takes ~750 ms here, paid on every
// pod start and every readiness probe). Proved at module level: the built CLI runs with a module resolve hook that
// logs every module it loads, and the log must name lb-pod's own modules (so the path really ran) and no module of
// @kubernetes/client-node.
import { strict as assert } from "node:assert";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { needsRoot, skipBecause } from "../support/skip.js";
import { ADDR, CLI, createTopology, lbPodArgs, requireBuiltCli, type Topology } from "./lb-pod-fixture.js";

const HOOKS = `
import { appendFileSync } from "node:fs";
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(process.env.BERTH_MODULE_LOG, result.url + "\\n");
  return result;
}`;
const REGISTER = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)});`;
/** node arguments that log every resolved module URL to $BERTH_MODULE_LOG. */
const LOG_MODULES = ["--import", `data:text/javascript,${encodeURIComponent(REGISTER)}`];

function assertLbPodPathOnly(log: string, ownModule: string): void {
  const urls = log.split("\n").filter(Boolean);
  assert.ok(urls.some((url) => url.endsWith("/node_modules/commander/esm.mjs") || url.includes("/node_modules/commander/")), "the hook saw commander load");
  assert.ok(urls.some((url) => url.endsWith(`/dist/lb-pod/${ownModule}`)), `the hook saw dist/lb-pod/${ownModule} load`);
  const kube = urls.filter((url) => url.includes("@kubernetes/client-node"));
  assert.deepEqual(kube, [], "the lb-pod path loaded @kubernetes/client-node");
}

describe("lb-pod footprint", function () {
  let dir: string;
  let topology: Topology | undefined;

  before(() => requireBuiltCli());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "berth-footprint-"));
  });
  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await topology?.destroy();
    topology = undefined;
  });

  it("`lb-pod check` (the readiness probe) never loads @kubernetes/client-node", () => {
    const log = join(dir, "modules.log");
    const result = spawnSync(
      process.execPath,
      [...LOG_MODULES, CLI, "lb-pod", "check", "--state-dir", join(dir, "state"), "--port", "tcp:80:80", "--destination-ip", "10.0.0.1"],
      { encoding: "utf8", env: { ...process.env, BERTH_MODULE_LOG: log } },
    );
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /not ready: not applied/);
    assertLbPodPathOnly(readFileSync(log, "utf8"), "check.js");
  });

  it("`lb-pod apply` never loads @kubernetes/client-node", async function () {
    const reason = needsRoot();
    if (reason) skipBecause(this, reason);
    const t = (topology = await createTopology());
    const log = join(dir, "modules.log");
    const result = await t.lab.exec(t.pod, "env", [
      `BERTH_MODULE_LOG=${log}`,
      process.execPath,
      ...LOG_MODULES,
      CLI,
      "lb-pod",
      "apply",
      ...lbPodArgs(t, { ports: ["tcp:80:8080"], destinations: [ADDR.ipv4.b2] }),
    ]);
    assert.equal(result.exitCode, 0, result.stderr);
    assertLbPodPathOnly(readFileSync(log, "utf8"), "bundle.js");
  });
});
