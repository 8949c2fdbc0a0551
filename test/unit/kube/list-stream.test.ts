// ListItemSplitter: every list below is fed whole, cut at every single byte boundary, and one byte at a time; each
// way must give the items and the rest of the list JSON.parse gives, or the same clear error.
import assert from "node:assert/strict";
import { ListItemSplitter, ListStreamError } from "../../../src/lib/kube/list-stream.js";

function split(chunks: Buffer[]): { items: unknown[]; rest: unknown } {
  const items: unknown[] = [];
  const s = new ListItemSplitter((json) => items.push(JSON.parse(json)));
  for (const c of chunks) s.write(c);
  return { items, rest: JSON.parse(s.end()) as unknown };
}

/** Whole; in two at every boundary; byte by byte. */
function cuttings(text: string): { how: string; chunks: Buffer[] }[] {
  const buf = Buffer.from(text, "utf8");
  const out = [{ how: "whole", chunks: [buf] }];
  for (let i = 1; i < buf.length; i++) out.push({ how: `cut at byte ${i}`, chunks: [buf.subarray(0, i), buf.subarray(i)] });
  out.push({ how: "byte by byte", chunks: [...buf].map((b) => Buffer.from([b])) });
  return out;
}

describe("list item splitter", () => {
  const pod = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    metadata: { name, namespace: "berth-system", resourceVersion: "7", labels: { a: "b" } }, spec: { nodeName: "n1", containers: [{ name: "c", ports: [1, 2] }] }, ...extra,
  });
  const lists: { name: string; text: string }[] = [
    { name: "a list as kube-apiserver writes it", text: JSON.stringify({ kind: "PodList", apiVersion: "v1", metadata: { resourceVersion: "42", continue: "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ" }, items: [pod("a"), pod("b"), pod("c")] }) },
    { name: "items before metadata", text: JSON.stringify({ items: [pod("a")], metadata: { resourceVersion: "9", remainingItemCount: 3 }, kind: "PodList" }) },
    { name: "no items", text: JSON.stringify({ kind: "PodList", metadata: { resourceVersion: "1" }, items: [] }) },
    { name: "items null (a Go nil slice)", text: JSON.stringify({ kind: "PodList", metadata: { resourceVersion: "1" }, items: null }) },
    { name: "no items key at all", text: JSON.stringify({ kind: "PodList", metadata: { resourceVersion: "1" } }) },
    { name: "strings with quotes, backslashes, braces and brackets", text: JSON.stringify({ metadata: { resourceVersion: "3" }, items: [
      pod("q", { data: { a: "say \"hi\" {", b: "\\", c: "\\\"]}", d: "[[[", e: "}\\\\\"" } }), pod("r"),
    ] }) },
    { name: "multi-byte UTF-8 in items and in metadata", text: JSON.stringify({ kind: "ConfigMapList", metadata: { resourceVersion: "5", note: "naïve ✓" }, items: [
      pod("é", { data: { x: "日本語 🚀 ü" } }), pod("z", { data: { "🔑": "€" } }),
    ] }) },
    { name: "nested keys called items", text: JSON.stringify({ metadata: { resourceVersion: "2", items: [1, 2] }, items: [pod("a", { items: [{ items: [] }] })] }) },
    { name: "a key that only starts like items", text: JSON.stringify({ itemsX: [{ a: 1 }], items: [pod("a")] }) },
    { name: "unicode escapes and pretty-printing", text: `{\n  "kind" : "PodList",\r\n  "metadata" : { "resourceVersion" : "8" } ,\n  "items" : [\n    { "metadata" : { "name" : "\\u0041\\n" } } ,\n\t{ "a" : [ ] }\n  ]\n}\n` },
  ];
  for (const l of lists) {
    it(`splits ${l.name}, however the bytes arrive`, () => {
      const whole = JSON.parse(l.text) as { items?: unknown[] | null };
      const wantItems = whole.items ?? [];
      const wantRest = { ...whole, ...("items" in whole ? { items: whole.items === null ? null : [] } : {}) };
      for (const c of cuttings(l.text)) {
        const got = split(c.chunks);
        assert.deepEqual(got.items, wantItems, c.how);
        assert.deepEqual(got.rest, wantRest, c.how);
      }
    });
  }

  const bad: { name: string; text: string; error: RegExp }[] = [
    { name: "an empty answer", text: "", error: /the answer is empty/ },
    { name: "a truncated list", text: JSON.stringify({ metadata: {}, items: [pod("a"), pod("b")] }).slice(0, -30), error: /ended before the list did/ },
    { name: "a list cut inside a string", text: "{\"items\":[{\"a\":\"b", error: /ended before the list did/ },
    { name: "an array answer", text: "[{\"a\":1}]", error: /must be a JSON object/ },
    { name: "an item that is no object", text: "{\"items\":[{\"a\":1},\"x\"]}", error: /a list item is not a JSON object/ },
    { name: "a number item", text: "{\"items\":[1]}", error: /a list item is not a JSON object/ },
  ];
  for (const b of bad) {
    it(`refuses ${b.name}`, () => {
      for (const c of cuttings(b.text)) {
        assert.throws(() => split(c.chunks), (e: unknown) => e instanceof ListStreamError && b.error.test(e.message), c.how);
      }
    });
  }

  it("refuses more than its limit outside the items, and holds no item text after handing it over", () => {
    const s = new ListItemSplitter(() => undefined, 64);
    assert.throws(() => s.write(Buffer.from(JSON.stringify({ metadata: { x: "y".repeat(100) }, items: [] }))), /more than 64 bytes outside/);
    const seen: string[] = [];
    const t = new ListItemSplitter((json) => seen.push(json), 64);
    // 1,000 items of 1 KiB pass under a 64-byte limit: only the bytes outside the items count.
    const items = Array.from({ length: 1000 }, (_, i) => ({ i, pad: "p".repeat(1000) }));
    t.write(Buffer.from(JSON.stringify({ metadata: { resourceVersion: "1" }, items })));
    assert.equal(seen.length, 1000);
    assert.deepEqual(JSON.parse(t.end()), { metadata: { resourceVersion: "1" }, items: [] });
  });
});
