// docs/troubleshooting.md stays true to berth doctor: every reason code the doctor can give is explained there, and
// every relative link (and heading) it points to exists.
import { strict as assert } from "node:assert";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { REASONS } from "../../../src/doctor/types.js";
import { anchors } from "../../support/markdown.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const page = join(root, "docs", "troubleshooting.md");

describe("docs/troubleshooting.md", () => {
  const text = readFileSync(page, "utf8");

  it("explains every reason code berth doctor gives", () => {
    const missing = Object.values(REASONS).filter((code) => !text.includes(`\`${code}\``));
    assert.deepEqual(missing, []);
  });

  it("links only to files and headings that exist", () => {
    const broken: string[] = [];
    for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1] as string;
      if (/^[a-z]+:/.test(target)) continue;
      const [path, hash] = target.split("#") as [string, string | undefined];
      const file = path === "" ? page : join(dirname(page), path);
      if (!existsSync(file)) broken.push(`${target} (no file)`);
      else if (hash !== undefined && !anchors(readFileSync(file, "utf8")).has(hash)) broken.push(`${target} (no heading)`);
    }
    assert.deepEqual(broken, []);
  });
});
