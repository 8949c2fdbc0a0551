// The operator's docs stay true to the code and to each other: every relative link reaches a file (and heading) that
// exists, and every command-line flag they mention is one that berth, or the named foreign tool, really has.
import { strict as assert } from "node:assert";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import type { Command } from "commander";

import { referenceInputs } from "../../../src/docs/reference.js";
import { anchors } from "../../support/markdown.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const docs = join(root, "docs");

/** The pages this suite vouches for: the install path, the architecture and the design records from 0004 on. */
const pages = [
  "docs/README.md",
  "docs/install-k3s.md",
  "docs/install-kubeadm.md",
  "docs/architecture.md",
  ...readdirSync(join(docs, "design")).filter((f) => /^0(0(0[4-9]|[1-9]\d)|[1-9]\d\d)-.*\.md$/.test(f)).map((f) => `docs/design/${f}`),
];

/**
 * Flags of other tools the pages mention, each with where it belongs. Anything else that looks like a flag must be a
 * flag of some `berth` command.
 */
const FOREIGN_FLAGS: Record<string, string> = {
  "--disable": "k3s server",
  "--allowed-unsafe-sysctls": "kubelet",
  "--kubelet-arg": "k3s server / agent",
  "--config": "kubeadm init",
  "--type": "kubectl patch / kubectl expose",
  "--image": "kubectl create deployment (berth manifests has it too)",
  "--port": "kubectl expose",
  "--target-port": "kubectl expose",
  "--raw": "kubectl get",
  "--show-managed-fields": "kubectl get",
  "--noflush": "iptables-restore (how the lb-pod applies its rules)",
  "--kube-api-qps": "kube-controller-manager (the client limit the bench's stand-ins keep)",
  "--concurrent-daemonset-syncs": "kube-controller-manager",
  "--trace-gc": "node (a benchmark run's GC trace)",
};

/** Flags of the benchmarks the design records cite, each with the script that must really take it. */
const BENCH_FLAGS: Record<string, string> = {
  "--until-daemonsets": "bench/controller.ts",
  "--preload": "bench/controller.ts",
  "--arrivals": "bench/controller.ts",
  "--stand-in-limits": "bench/controller.ts",
  "--runs": "bench/lb-pod.ts",
};

function allFlags(command: Command): Set<string> {
  const flags = new Set<string>();
  const visit = (c: Command): void => {
    for (const option of c.options) {
      if (option.long) flags.add(option.long);
      if (option.short) flags.add(option.short);
    }
    c.commands.forEach(visit);
  };
  visit(command);
  return flags;
}

describe("operator docs", () => {
  it("cover the install path and the design records", () => {
    for (const page of pages.slice(0, 4)) assert.ok(existsSync(join(root, page)), `${page} is missing`);
    assert.ok(pages.length >= 9, `expected design records 0004 and later, found ${pages.join(", ")}`);
  });

  it("link only to files and headings that exist", () => {
    const broken: string[] = [];
    for (const page of pages) {
      const text = readFileSync(join(root, page), "utf8");
      for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = match[1] as string;
        if (/^[a-z]+:/.test(target)) continue; // https: and the like
        const [path, hash] = target.split("#") as [string, string | undefined];
        const file = path === "" ? join(root, page) : join(dirname(join(root, page)), path);
        if (!existsSync(file)) {
          broken.push(`${page}: ${target} (no ${relative(root, file)})`);
          continue;
        }
        if (hash !== undefined && file.endsWith(".md") && !anchors(readFileSync(file, "utf8")).has(hash)) {
          broken.push(`${page}: ${target} (no heading #${hash} in ${relative(root, file)})`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });

  it("name only repository paths that exist", () => {
    const missing: string[] = [];
    for (const page of pages) {
      const text = readFileSync(join(root, page), "utf8");
      for (const match of text.matchAll(/`((?:src|deploy|bin|docs|images|scripts|test|bench)\/[^`\s]*)`/g)) {
        const path = (match[1] as string).replace(/[.,:;]+$/, "");
        if (!existsSync(join(root, path))) missing.push(`${page}: ${path}`);
      }
    }
    assert.deepEqual([...new Set(missing)], []);
  });

  it("mention only flags that berth or the named tool has", () => {
    const berthFlags = allFlags(referenceInputs().program);
    assert.ok(berthFlags.has("--no-forwarding-sysctls") && berthFlags.has("--ignore-unset-class"));
    const unknown: string[] = [];
    for (const page of pages) {
      const text = readFileSync(join(root, page), "utf8");
      for (const match of text.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*)/g)) {
        const flag = match[1] as string;
        if (!berthFlags.has(flag) && FOREIGN_FLAGS[flag] === undefined && BENCH_FLAGS[flag] === undefined) unknown.push(`${page}: ${flag}`);
      }
    }
    assert.deepEqual([...new Set(unknown)], []);
    // A benchmark's flag counts only while its script still reads it (process.argv, by the flag's exact text).
    const stale = Object.entries(BENCH_FLAGS).filter(([flag, script]) => !readFileSync(join(root, script), "utf8").includes(`"${flag}"`));
    assert.deepEqual(stale, []);
  });
});
