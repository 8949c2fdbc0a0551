// `berth doctor SERVICE`: says in plain words why a LoadBalancer Service works or not, and what to do. Exit code 0
// when it is healthy, 1 when not, 2 for bad flags. Only commander loads up front; the kube client, and with a
// kubeconfig @kubernetes/client-node (~750 ms to import), load when the command runs, so `berth --help` stays fast.
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { Command, Option } from "commander";
import { UsageError } from "../lib/errors.js";
import { DEFAULT_NAMESPACE } from "../lib/names.js";

export interface DoctorSettings {
  service: string;
  namespace: string;
  controllerNamespace: string;
  /** Unset: in-cluster service account. */
  kubeconfig?: string;
  output: "text" | "json";
}

interface DoctorFlags {
  kubeconfig?: string;
  namespace: string;
  controllerNamespace: string;
  output: string;
}

/** Service names are DNS-1035 labels; namespaces DNS-1123 labels (apimachinery validation). */
const DNS_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Checks the arguments once; every problem is one UsageError line. The kubeconfig is found as kubectl finds it:
 * --kubeconfig, else the first file of $KUBECONFIG that exists, else ~/.kube/config, else the in-cluster account.
 */
export function parseDoctorArgs(service: string, flags: DoctorFlags, env: Record<string, string | undefined>, home: string): DoctorSettings {
  if (service.length > 63 || !DNS_1035.test(service)) throw new UsageError(`"${service}" is not a Service name (lower-case letters, digits and '-', at most 63)`);
  for (const [flag, value] of [["--namespace", flags.namespace], ["--controller-namespace", flags.controllerNamespace]] as const) {
    if (value.length > 63 || !DNS_1123.test(value)) throw new UsageError(`${flag}: "${value}" is not a namespace name`);
  }
  if (flags.output !== "text" && flags.output !== "json") throw new UsageError(`-o/--output: "${flags.output}" is not text or json`);
  let kubeconfig = flags.kubeconfig;
  if (kubeconfig === "") throw new UsageError("--kubeconfig: empty path");
  if (kubeconfig === undefined) {
    const candidates = [...(env.KUBECONFIG ?? "").split(":").filter((p) => p !== ""), join(home, ".kube", "config")];
    kubeconfig = candidates.find((p) => existsSync(p));
  }
  return {
    service,
    namespace: flags.namespace,
    controllerNamespace: flags.controllerNamespace,
    ...(kubeconfig !== undefined ? { kubeconfig } : {}),
    output: flags.output,
  };
}

/** Reads the cluster, prints the diagnosis to `out`, and returns the exit code (0 healthy, 1 not). */
export async function runDoctor(settings: DoctorSettings, out: (text: string) => void): Promise<number> {
  const { KubeClient } = await import("../lib/kube/client.js");
  const { collect } = await import("./collect.js");
  const { diagnose } = await import("./diagnose.js");
  const { renderJson, renderText } = await import("./render.js");
  const client = await KubeClient.fromKubeconfig({
    ...(settings.kubeconfig !== undefined ? { kubeconfig: settings.kubeconfig } : {}),
    userAgent: "berth-doctor",
    requestTimeoutMs: 15_000,
  });
  try {
    const snapshot = await collect(client, { namespace: settings.namespace, name: settings.service, controllerNamespace: settings.controllerNamespace });
    const diagnosis = diagnose(snapshot);
    out(settings.output === "json" ? renderJson(diagnosis) : renderText(diagnosis));
    return diagnosis.healthy ? 0 : 1;
  } finally {
    client.close();
  }
}

export function doctorCommand(): Command {
  return new Command("doctor")
    .exitOverride()
    .description("say why a LoadBalancer Service works or not, and what to do (exit 0 healthy, 1 not)")
    .argument("<service>", "name of the Service")
    .option("--kubeconfig <file>", "kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, else in-cluster)")
    .option("-n, --namespace <ns>", "namespace of the Service", "default")
    .option("--controller-namespace <ns>", "namespace of berth's controller and DaemonSets", DEFAULT_NAMESPACE)
    .addOption(new Option("-o, --output <format>", "text or json").default("text"))
    .action(async (service: string, flags: DoctorFlags) => {
      // Read at run time, never at import (docs/architecture.md, "Conventions").
      const settings = parseDoctorArgs(service, flags, process.env, homedir());
      const code = await runDoctor(settings, (text) => process.stdout.write(text));
      if (code !== 0) process.exitCode = code;
    });
}
