// How `berth doctor` prints a Diagnosis: a headline, then each finding with its why, what to do, and what the
// cluster shows, in plain text that reads the same in a terminal and in a pasted bug report.
import type { Diagnosis } from "./types.js";

export function renderText(diagnosis: Diagnosis): string {
  const lines = [diagnosis.headline];
  for (const f of diagnosis.findings) {
    lines.push("", `${f.severity.toUpperCase()} ${f.code}: ${f.summary}`);
    lines.push(`  why:     ${f.why}`);
    if (f.fix !== "") lines.push(`  do this: ${f.fix}`);
    f.evidence.forEach((e, i) => lines.push(`  ${i === 0 ? "seen:   " : "        "} ${e}`));
  }
  return `${lines.join("\n")}\n`;
}

export function renderJson(diagnosis: Diagnosis): string {
  return `${JSON.stringify(diagnosis, null, 2)}\n`;
}
