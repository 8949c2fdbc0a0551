// `berth manifests`: prints the install YAML (deploy/berth.yaml is its output with the defaults). Flags are checked
// here, once, into ManifestOptions; the generator (and js-yaml) load only when the command runs.
import { Command } from "commander";
import { z } from "zod";
import { parseFlags } from "../lib/flags.js";
import { UsageError } from "../lib/errors.js";
import { DEFAULT_NAMESPACE } from "../lib/names.js";
import { berthVersion } from "../lib/version.js";
import type { ManifestOptions } from "./manifests.js";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

// An image reference as distribution/reference's grammar writes it: [registry[:port]/]path[:tag][@digest].
const DOMAIN = "(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)";
const PATH = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const IMAGE = new RegExp(`^${DOMAIN}?${PATH}(?:/${PATH})*(?::[\\w][\\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$`);

const rawSchema = z.object({
  namespace: z.string().max(63, "--namespace: at most 63 characters").regex(DNS_LABEL, "--namespace must be a DNS label (lower case, digits, '-')"),
  image: z.string().optional(),
  lbImage: z.string().optional(),
  replicas: z.string().regex(/^[1-9]\d{0,2}$/, "--replicas must be an integer from 1 to 999"),
});

export type RawManifestOptions = z.input<typeof rawSchema>;

function image(flag: string, value: string | undefined, fallback: string): string {
  if (value === undefined) return fallback;
  if (!IMAGE.test(value)) {
    throw new UsageError(`${flag}: "${value}" is not an image reference (e.g. ghcr.io/berth-lb/berth-controller:0.1.0)`);
  }
  return value;
}

/** Validates the flags; bad input is a UsageError naming the flag (one line on stderr, exit code 2). */
export function parseManifestOptions(raw: RawManifestOptions, defaults: ManifestOptions): ManifestOptions {
  const o = parseFlags(rawSchema, raw);
  return {
    namespace: o.namespace,
    image: image("--image", o.image, defaults.image),
    lbImage: image("--lb-image", o.lbImage, defaults.lbImage),
    replicas: Number(o.replicas),
    version: defaults.version,
  };
}

export function manifestsCommand(): Command {
  return new Command("manifests")
    .exitOverride()
    .description("print the install YAML (namespace, AddressPool CRD, RBAC, controller Deployment, PodDisruptionBudget, metrics Service)")
    .option("--namespace <ns>", "namespace of the controller and of the per-Service DaemonSets", DEFAULT_NAMESPACE)
    .option("--image <image>", "controller image (default: ghcr.io/berth-lb/berth-controller:<version>)")
    .option("--lb-image <image>", "lb-pod image (default: ghcr.io/berth-lb/berth-lb-pod:<version>)")
    .option("--replicas <n>", "controller replicas (one leads; a PodDisruptionBudget is added from 2)", "2")
    .action(async (raw: RawManifestOptions) => {
      const { defaultManifestOptions, renderManifests } = await import("./manifests.js");
      const options = parseManifestOptions(raw, defaultManifestOptions(berthVersion()));
      process.stdout.write(renderManifests(options));
    });
}
