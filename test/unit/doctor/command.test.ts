// `berth doctor`'s arguments: names checked before anything is read, and the kubeconfig found the way kubectl finds it.
import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { parseDoctorArgs } from "../../../src/doctor/command.js";
import { UsageError } from "../../../src/lib/errors.js";

const FLAGS = { namespace: "default", controllerNamespace: "berth-system", output: "text" };

describe("berth doctor: arguments", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "berth-doctor-args-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("rejects names that cannot be a Service or a namespace, and unknown output formats, as usage errors", () => {
    for (const [service, flags, message] of [
      ["Web", FLAGS, /"Web" is not a Service name/],
      ["1web", FLAGS, /"1web" is not a Service name/],
      ["web", { ...FLAGS, namespace: "Default" }, /--namespace: "Default" is not a namespace name/],
      ["web", { ...FLAGS, controllerNamespace: "" }, /--controller-namespace: "" is not a namespace name/],
      ["web", { ...FLAGS, output: "yaml" }, /-o\/--output: "yaml" is not text or json/],
      ["web", { ...FLAGS, kubeconfig: "" }, /--kubeconfig: empty path/],
    ] as const) {
      assert.throws(() => parseDoctorArgs(service, flags, {}, dir), (e: unknown) => e instanceof UsageError && message.test(e.message));
    }
  });

  it("uses --kubeconfig, else the first existing $KUBECONFIG file, else ~/.kube/config, else the in-cluster account", () => {
    const first = join(dir, "a");
    const second = join(dir, "b");
    writeFileSync(second, "");
    assert.equal(parseDoctorArgs("web", { ...FLAGS, kubeconfig: first }, { KUBECONFIG: second }, dir).kubeconfig, first);
    assert.equal(parseDoctorArgs("web", FLAGS, { KUBECONFIG: `${first}:${second}` }, dir).kubeconfig, second);
    assert.equal(parseDoctorArgs("web", FLAGS, {}, dir).kubeconfig, undefined);
    mkdirSync(join(dir, ".kube"));
    writeFileSync(join(dir, ".kube", "config"), "");
    assert.equal(parseDoctorArgs("web", FLAGS, { KUBECONFIG: first }, dir).kubeconfig, join(dir, ".kube", "config"));
  });
});
