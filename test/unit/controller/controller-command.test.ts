// `berth controller` flags: parsed once into one configuration; bad input is one UsageError naming the flag.
import assert from "node:assert/strict";
import { parseControllerOptions, parseDuration, parseListen } from "../../../src/controller/command.js";
import { UsageError } from "../../../src/lib/errors.js";

const defaults = {
  namespace: "berth-system", lbImage: "img:1", imagePullPolicy: "IfNotPresent" as const, ignoreUnsetClass: false,
  leaderElect: true, leaseName: "berth-controller", leaseDuration: "15s", renewDeadline: "10s", retryPeriod: "2s",
  listen: "0.0.0.0:9090", resync: "5m", workers: "4",
};

describe("berth controller flags", function () {
  it("parses durations as Go writes them", () => {
    const table: [string, number][] = [["500ms", 500], ["30s", 30_000], ["5m", 300_000], ["1h", 3_600_000], ["1m30s", 90_000], ["1.5s", 1500]];
    for (const [text, ms] of table) assert.equal(parseDuration("--resync", text), ms, text);
    for (const bad of ["", "5", "5 m", "m5", "5d", "-1s"]) assert.throws(() => parseDuration("--resync", bad), UsageError, bad);
  });

  it("leaves the forwarding sysctls out with --no-forwarding-sysctls", () => {
    assert.equal(parseControllerOptions({ ...defaults, forwardingSysctls: false }).forwardingSysctls, false);
  });

  it("takes the lb-pods' backend from --lb-backend, auto by default, and refuses one the image cannot run", () => {
    assert.equal(parseControllerOptions(defaults).lbPodBackend, "auto");
    assert.equal(parseControllerOptions({ ...defaults, lbBackend: "iptables-legacy" }).lbPodBackend, "iptables-legacy");
    assert.throws(() => parseControllerOptions({ ...defaults, lbBackend: "ipvs" as "auto" }), (e: unknown) => e instanceof UsageError && /^--lb-backend: /.test(e.message));
  });

  it("parses listen addresses, and off", () => {
    assert.deepEqual(parseListen(":9090"), { host: "0.0.0.0", port: 9090 });
    assert.deepEqual(parseListen("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
    assert.deepEqual(parseListen("[::1]:9090"), { host: "::1", port: 9090 });
    assert.equal(parseListen("off"), undefined);
    for (const bad of ["9090", "host:", "host:99999", "::1:80"]) assert.throws(() => parseListen(bad), /--listen/, bad);
  });

  it("fills the defaults: Lease in the controller's namespace, unset class claimed", () => {
    const c = parseControllerOptions({ ...defaults, namespace: "lb" });
    assert.equal(c.leaseNamespace, "lb");
    assert.equal(c.claimUnsetClass, true);
    assert.equal(c.forwardingSysctls, true);
    assert.equal(c.leaseDurationMs, 15_000);
    assert.equal(c.resyncMs, 300_000);
    assert.deepEqual(c.listen, { host: "0.0.0.0", port: 9090 });
    assert.equal(parseControllerOptions({ ...defaults, ignoreUnsetClass: true }).claimUnsetClass, false);
  });

  it("rejects bad input with one message naming the flag", () => {
    const table: [Partial<typeof defaults> & Record<string, unknown>, RegExp][] = [
      [{ namespace: "Not_A_Label" }, /--namespace/],
      [{ lbImage: "" }, /--lb-image/],
      [{ leaseName: "UPPER" }, /--lease-name/],
      [{ workers: "0" }, /--workers/],
      [{ resync: "10ms" }, /--resync must be at least/],
      [{ resync: "often" }, /--resync/],
      [{ leaseDuration: "5s", renewDeadline: "10s" }, /--lease-duration must be greater than --renew-deadline/],
      [{ renewDeadline: "2s", retryPeriod: "2s" }, /--renew-deadline must be greater than --retry-period/],
      [{ listen: "nowhere" }, /--listen/],
    ];
    for (const [over, message] of table) {
      assert.throws(() => parseControllerOptions({ ...defaults, ...over }), (e: unknown) => e instanceof UsageError && message.test(e.message), JSON.stringify(over));
    }
  });

  it("does not check lease timings when leader election is off", () => {
    const c = parseControllerOptions({ ...defaults, leaderElect: false, leaseDuration: "1s", renewDeadline: "10s" });
    assert.equal(c.leaderElect, false);
  });
});
