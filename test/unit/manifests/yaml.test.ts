// The manifests' YAML writer: what it writes reads back as the same values (strings that look like numbers,
// booleans or nulls stay strings), and comments land before the key or list item they explain.
import assert from "node:assert/strict";
import * as yaml from "js-yaml";
import { commentKeys, commented, toYaml, toYamlStream } from "../../../src/manifests/yaml.js";

describe("manifests YAML writer", () => {
  it("writes values that read back unchanged, quoting strings that would read as something else", () => {
    const doc = {
      strings: ["true", "no", "null", "~", "1", "0x10", "1e3", "", " lead", "a: b", "#x", "- x", "[x]", "{x}", "*x", "&x",
        "!x", "%x", "@x", "`x", "x #y", "'", "\"", "line\nbreak", "$(POD_NAME)", "--flag=v"],
      numbers: [0, 1, -3, 2.5],
      booleans: [true, false],
      nothing: null,
      empty: { list: [], map: {} },
      nested: [{ a: 1, b: [{ c: "d" }] }, { e: { f: ["g"] } }],
      "key: odd": "v",
      "pod-security.kubernetes.io/enforce": "privileged",
    };
    assert.deepEqual(yaml.load(toYaml(doc)), doc);
  });

  it("writes block style with lists of short scalars in flow style", () => {
    assert.equal(toYaml({ a: { b: ["x", "z"] }, c: [{ d: 1, e: 2 }] }), "a:\n  b: [x, z]\nc:\n  - d: 1\n    e: 2\n");
    const long = Array.from({ length: 30 }, (_, i) => `item-${i}`);
    assert.equal(toYaml({ l: long }), `l:\n${long.map((s) => `  - ${s}\n`).join("")}`);
  });

  it("puts comments before the document, the key or the list item they belong to", () => {
    const doc = commented("about the doc", {
      kind: "X",
      rules: [commented("first rule\nsecond line", { verbs: ["get"] }), { verbs: ["list"] }],
      labels: commentKeys({ a: "1", b: "2" }, { b: "why b" }),
      spec: commented("about spec", { x: 1 }),
    });
    assert.equal(toYaml(doc), [
      "# about the doc",
      "kind: X",
      "rules:",
      "  # first rule",
      "  # second line",
      "  - verbs: [get]",
      "  - verbs: [list]",
      "labels:",
      "  a: \"1\"",
      "  # why b",
      "  b: \"2\"",
      "# about spec",
      "spec:",
      "  x: 1",
      "",
    ].join("\n"));
    // Comments are symbol keys: invisible to JSON (and so to schema validation and to the API server).
    assert.equal(JSON.stringify(doc), "{\"kind\":\"X\",\"rules\":[{\"verbs\":[\"get\"]},{\"verbs\":[\"list\"]}],\"labels\":{\"a\":\"1\",\"b\":\"2\"},\"spec\":{\"x\":1}}");
  });

  it("writes a stream of documents after a header", () => {
    const text = toYamlStream([{ a: 1 }, { b: 2 }], "made by a test");
    assert.equal(text, "# made by a test\n---\na: 1\n---\nb: 2\n");
    assert.deepEqual(yaml.loadAll(text), [{ a: 1 }, { b: 2 }]);
  });
});
