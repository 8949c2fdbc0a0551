import type { Context } from "mocha";

/**
 * Skips the current test and makes the reason visible in the report: mocha prints a skipped test's title only, so
 * the reason goes into the title. Use this instead of a bare `this.skip()` so no test ever skips silently.
 */
export function skipBecause(ctx: Context, reason: string): never {
  const runnable = ctx.currentTest ?? ctx.test;
  if (runnable) runnable.title = `${runnable.title} [skipped: ${reason}]`;
  ctx.skip();
}

/** Reason to skip tests that need root (network namespaces, netfilter), or undefined when we are root. */
export function needsRoot(): string | undefined {
  return process.getuid?.() === 0 ? undefined : "needs root for network namespaces and netfilter (CI runs as root)";
}
