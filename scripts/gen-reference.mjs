#!/usr/bin/env node
// Writes docs/reference.md from the code (src/docs/reference.ts): `npm run docs:reference`. With --check it writes
// nothing and exits 1 when the file is not current (test/unit/docs/reference.test.ts checks the same).
// Run under tsx (the npm script does), because it imports the TypeScript sources directly.
import { readFileSync, writeFileSync } from "node:fs";
import { referenceInputs, renderReference, undescribedNames } from "../src/docs/reference.ts";
import * as names from "../src/lib/names.ts";

const target = new URL("../docs/reference.md", import.meta.url);
const missing = undescribedNames(names);
if (missing.length > 0) {
  console.error(`gen-reference: src/lib/names.ts exports ${missing.join(", ")} with no description in src/docs/reference.ts (NAME_DOCS); add one`);
  process.exit(1);
}
const text = renderReference(referenceInputs());
if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(target, "utf8");
  } catch {
    // missing counts as stale
  }
  if (current !== text) {
    console.error("gen-reference: docs/reference.md is not current; run `npm run docs:reference`");
    process.exit(1);
  }
  console.log("gen-reference: docs/reference.md is current");
} else {
  writeFileSync(target, text);
  console.log(`gen-reference: wrote docs/reference.md (${text.length} bytes)`);
}
