// The lb-pod runs with exactly the privileges buildDaemonSet gives it, on every netfilter backend: this runs the
// real entrypoint (bin/berth-lb-pod --once) on the rules ConfigMap's bundle and then the readiness probe
// (bin/berth-lb-pod-check), with the container's environment, in a fresh network namespace (unshare -n, gone when the
// shell exits), with the DaemonSet's sysctls set as the kubelet would and every capability dropped except the
// container's (setpriv).
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { buildDaemonSet, buildRulesConfigMap, lbPodRulesBundle } from "../../../src/controller/daemonset.js";
import { parseServiceConfig } from "../../../src/controller/service-config.js";
import { defaultControllerConfig } from "../../../src/controller/types.js";
import { needsRoot, skipBecause } from "../../support/skip.js";
import { node, service } from "./fixtures.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

function run(command: string, args: string[], env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

async function haveTool(name: string): Promise<boolean> {
  return (await run("sh", ["-c", `command -v ${name}`], {})).code === 0;
}

/** Applies and checks the lb-pod as the DaemonSet would run it; returns the shell's exit code and output. */
async function runLikeThePod(stateDir: string, rulesDir: string, backend: string, capabilities: string[], sysctls: { name: string; value: string }[],
  env: Record<string, string>): Promise<{ code: number; output: string }> {
  const caps = capabilities.map((c) => `+${c.toLowerCase()}`).join(",");
  const script = [
    // What a real node gives a new pod namespace: a copy of its own IPv4 forwarding, which is on (every Kubernetes
    // node forwards). This machine's host runs with ip_forward=0, and `unshare -n` copies the host's value.
    "sysctl -qw net.ipv4.ip_forward=1 || exit 10",
    ...sysctls.map((s) => `sysctl -qw ${s.name}=${s.value} || exit 10`),
    `exec setpriv --inh-caps=-all,${caps} --ambient-caps=-all,${caps} --bounding-set=-all,${caps} -- sh -c '` +
      `sh bin/berth-lb-pod --once --rules ${rulesDir} --backend ${backend} --state-dir ${stateDir} && sh bin/berth-lb-pod-check --state-dir ${stateDir}'`,
  ].join("\n");
  return run("unshare", ["-n", "sh", "-c", script], env);
}

describe("controller: the lb-pod works with the DaemonSet's privileges and nothing more", function () {
  this.timeout(120_000);
  let stateDir = "";
  let rulesDir = "";

  before(async function () {
    const reason = needsRoot();
    if (reason) skipBecause(this, reason);
    for (const tool of ["unshare", "setpriv", "sysctl"]) {
      if (!(await haveTool(tool))) skipBecause(this, `${tool} is not installed`);
    }
  });
  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "bt-c1-state-"));
    // The rules ConfigMap as the kubelet mounts it: one file per key.
    rulesDir = join(stateDir, "mounted-rules");
    await mkdir(rulesDir);
    for (const [key, value] of Object.entries(rulesConfigMap.data ?? {})) await writeFile(join(rulesDir, key), value);
  });
  afterEach(async () => {
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  const svc = service({
    spec: {
      ipFamilies: ["IPv4", "IPv6"], clusterIPs: ["10.43.0.10", "fd00:43::a"],
      ports: [{ protocol: "TCP", port: 80 }, { protocol: "UDP", port: 53 }], loadBalancerSourceRanges: ["10.0.0.0/8", "fd00::/8"],
    },
  });
  const parsed = parseServiceConfig(svc, defaultControllerConfig());
  if (!parsed.ok) throw new Error("fixture does not parse");
  const ds = buildDaemonSet(svc, parsed.value, [node("n1")], defaultControllerConfig());
  const podSpec = ds.spec?.template.spec;
  const container = podSpec?.containers[0];
  const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value ?? ""]));
  const rulesConfigMap = buildRulesConfigMap(ds, undefined, lbPodRulesBundle(parsed.value));
  const capabilities = container?.securityContext?.capabilities?.add ?? [];
  const sysctls = podSpec?.securityContext?.sysctls ?? [];

  for (const backend of ["iptables-legacy", "iptables-nft", "nftables"]) {
    it(`applies and passes its readiness check with ${backend}`, async () => {
      const result = await runLikeThePod(stateDir, rulesDir, backend, capabilities, sysctls, env);
      assert.equal(result.code, 0, result.output);
    });
  }

  it("NET_RAW is needed: without it iptables-legacy cannot even open its tables", async () => {
    const result = await runLikeThePod(stateDir, rulesDir, "iptables-legacy", capabilities.filter((c) => c !== "NET_RAW"), sysctls, env);
    assert.notEqual(result.code, 0);
    assert.match(result.output, /unable to initialize table/);
  });
});
