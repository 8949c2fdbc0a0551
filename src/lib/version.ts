import { readFileSync } from "node:fs";

/** The version in package.json, read at call time (not import time) so that importing this module costs nothing. */
export function berthVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}
