// Markdown helpers shared by the docs tests.

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes; headings inside code fences skipped. */
export function anchors(markdown: string): Set<string> {
  const set = new Set<string>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const m = !fenced && /^#{1,6} (.+)$/.exec(line);
    if (m) set.add((m[1] as string).toLowerCase().replace(/[^a-z0-9 _-]/g, "").replace(/ /g, "-"));
  }
  return set;
}
