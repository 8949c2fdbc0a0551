// `berth lb-pod`: the per-Service forwarding agent's command line. Its heavy modules load only when it runs.
import { Command } from "commander";

export function lbPodCommand(): Command {
  return new Command("lb-pod")
    .description("forward a Service's ports from this pod's network namespace (hostPort mode)")
    .action(() => {
      throw new Error("lb-pod: not built yet (work in progress on issue 2)");
    });
}
