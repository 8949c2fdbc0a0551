// The repository stands on its own: nothing in it (README, docs, code comments, scripts, manifests) points to a file
// outside the checkout, which a reader of a clone or a release tarball does not have, and the sections of
// docs/architecture.md that code comments cite by heading exist. Links in every Markdown file reach a file, and a
// heading, that exists.
import { strict as assert } from "node:assert";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { anchors } from "../../support/markdown.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));

/** What the repository is made of; build output, dependencies and scratch space are not. */
const SCANNED = ["README.md", "package.json", "eslint.config.js", "tsconfig.json", "tsconfig.build.json", ".mocharc.json",
  ".ci", "bench", "bin", "deploy", "docs", "images", "scripts", "src", "test"];
const SKIPPED_DIRS = new Set(["node_modules", "dist", ".git", ".test-results", ".scratch", ".node"]);

/**
 * References to places outside the repository: the team's brief and style notes that live beside the checkout, and
 * absolute paths of the machine it was written on. Written so that this file's own source does not match them.
 */
const OUTSIDE: readonly { pattern: RegExp; what: string }[] = [
  { pattern: /\.\.\/shared\b/, what: "a folder beside the checkout" },
  { pattern: /\b(?:DESIGN|STYLE)\.md\b/, what: "the team's brief or style notes (cite docs/architecture.md instead)" },
  { pattern: /(?<![\w.-])\/work\//, what: "an absolute path on the development machine" },
];

/** Sections of docs/architecture.md the code relies on (comments cite them by heading). */
const REQUIRED_SECTIONS = ["hostPort mode", "How traffic really flows", "The lb-pod", "Reliability", "Conventions", "VIP mode"];

function walk(path: string, out: string[]): string[] {
  if (!existsSync(path)) return out;
  if (statSync(path).isDirectory()) {
    for (const entry of readdirSync(path).sort()) if (!SKIPPED_DIRS.has(entry)) walk(join(path, entry), out);
  } else {
    out.push(path);
  }
  return out;
}

const files = SCANNED.flatMap((p) => walk(join(root, p), [])).map((f) => relative(root, f).split(sep).join("/"));
const read = (file: string): string => readFileSync(join(root, file), "utf8");

/** Every line of `text` that points outside the repository, as `file:line: what (text)`. */
export function outsideReferences(file: string, text: string): string[] {
  const found: string[] = [];
  text.split("\n").forEach((line, i) => {
    for (const { pattern, what } of OUTSIDE) {
      if (pattern.test(line)) found.push(`${file}:${i + 1}: ${what}: ${line.trim().slice(0, 120)}`);
    }
  });
  return found;
}

/** Broken or outward relative links of one Markdown file. */
export function badLinks(file: string, markdown: string, exists: (repoPath: string) => boolean, headings: (repoPath: string) => Set<string>): string[] {
  const bad: string[] = [];
  const body = markdown.replace(/^```[\s\S]*?^```/gm, "");
  for (const match of body.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = match[1] as string;
    if (/^[a-z]+:/.test(target)) continue; // https:, mailto: and the like
    const [path, hash] = target.split("#") as [string, string | undefined];
    const resolved = path === "" ? file : join(dirname(file), path).split(sep).join("/");
    if (resolved === ".." || resolved.startsWith("../") || target.startsWith("/")) {
      bad.push(`${file}: ${target} (outside the repository)`);
      continue;
    }
    if (!exists(resolved)) {
      bad.push(`${file}: ${target} (no ${resolved})`);
      continue;
    }
    if (hash !== undefined && resolved.endsWith(".md") && !headings(resolved).has(hash)) {
      bad.push(`${file}: ${target} (no heading #${hash} in ${resolved})`);
    }
  }
  return bad;
}

/** Citations of a docs/architecture.md section: its heading, quoted, after a comma (a comment may break the line there). */
export function architectureCitations(text: string): string[] {
  return [...text.matchAll(/docs\/architecture\.md,\s*(?:(?:\/\/|\*|#)\s*)?"([^"]+)"/g)].map((m) => m[1] as string);
}

describe("the repository stands on its own", () => {
  it("scans the whole repository", () => {
    for (const f of ["README.md", "src/lib/names.ts", "docs/architecture.md", "test/unit/docs/self-contained.test.ts", "deploy/berth.yaml"]) {
      assert.ok(files.includes(f), `${f} should be scanned`);
    }
    assert.ok(!files.some((f) => f.startsWith("node_modules/") || f.includes("/node_modules/")));
  });

  it("recognises a reference to a file outside the repository", () => {
    const brief = ["..", "shared", ["DESIGN", "md"].join(".")].join("/");
    assert.equal(outsideReferences("x.ts", `// see ${brief} section 3`).length, 2);
    assert.equal(outsideReferences("x.md", `[style](${["STYLE", "md"].join(".")})`).length, 1);
    assert.equal(outsideReferences("x.sh", `cd ${["", "work", "main"].join("/")}`).length, 1);
    assert.deepEqual(outsideReferences("x.ts", "// docs/architecture.md and docs/design/0003-our-own-informer.md"), []);
  });

  it("has no README, doc, comment, script or manifest that points outside the repository", () => {
    assert.deepEqual(files.flatMap((f) => outsideReferences(f, read(f))), []);
  });

  it("links, in every Markdown file, only to files and headings inside the repository that exist", () => {
    const cache = new Map<string, Set<string>>();
    const headings = (p: string): Set<string> => {
      let set = cache.get(p);
      if (!set) cache.set(p, (set = anchors(read(p))));
      return set;
    };
    const exists = (p: string): boolean => existsSync(join(root, p));
    assert.deepEqual(badLinks("README.md", `[brief](${["..", "shared", "x.md"].join("/")}) [a](docs/nope.md) [b](#nope)`, exists, headings).length, 3,
      "the link check must see links that leave the repository, missing files and missing headings");
    const markdown = files.filter((f) => f.endsWith(".md"));
    assert.ok(markdown.includes("README.md") && markdown.includes("docs/architecture.md"));
    assert.deepEqual(markdown.flatMap((f) => badLinks(f, read(f), exists, headings)), []);
  });

  it("names every folder under src/, test/ and bench/ in the README's layout list", () => {
    const readme = read("README.md");
    const design = readme.slice(readme.indexOf("\n## Design\n"));
    assert.ok(design.includes("Layout:"), "README.md's Design section should have the layout list");
    const folders = ["src", "test", "bench"].flatMap((top) => readdirSync(join(root, top), { withFileTypes: true })
      .filter((e) => e.isDirectory()).map((e) => `${top}/${e.name}`));
    assert.ok(folders.includes("src/controller") && folders.includes("test/unit"), folders.join(", "));
    assert.deepEqual(folders.filter((f) => !design.includes(`\`${f}\``) && !design.includes(`\`${f}/\``)), []);
  });

  it("has docs/architecture.md with every section the code cites", () => {
    const sections = new Set([...read("docs/architecture.md").matchAll(/^## (.+)$/gm)].map((m) => m[1] as string));
    const missing = REQUIRED_SECTIONS.filter((s) => !sections.has(s));
    const citations = files.flatMap((f) => architectureCitations(read(f)).map((heading) => ({ f, heading })));
    assert.ok(citations.length >= 10, `expected the code's citations of docs/architecture.md, found ${citations.length}`);
    missing.push(...citations.filter(({ heading }) => !sections.has(heading)).map(({ f, heading }) => `${heading} (cited in ${f})`));
    assert.deepEqual([...new Set(missing)], []);
  });
});
