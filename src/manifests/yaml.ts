// A small YAML writer for the install manifests: block style, two-space indent, keys in insertion order (so the
// generator's fixed object order is the file's order), short scalar lists in flow style, and comments. Comments are
// why this exists: js-yaml's dump cannot write them, and an operator reading deploy/berth.yaml should see why each
// RBAC rule and security setting is there. Scalars are quoted by js-yaml itself, so every value reads back as the
// same string, number or boolean (a test parses the output back and compares).
import * as yaml from "js-yaml";

/** Comment lines printed before an object (a document, a list item, or the key holding it). */
const SELF = Symbol("comment");
/** Comment lines printed before some keys of a map, by key (for keys whose value is a scalar). */
const KEYS = Symbol("keyComments");

type Commented = { [SELF]?: string; [KEYS]?: Record<string, string> };

/** Attaches a comment to an object and returns it. Symbol keys are invisible to JSON and to schema validation. */
export function commented<T extends object>(text: string, value: T): T {
  (value as T & Commented)[SELF] = text;
  return value;
}

/** Attaches comments to keys of a map (printed before `key: value`) and returns it. */
export function commentKeys<T extends object>(value: T, comments: Partial<Record<keyof T & string, string>>): T {
  (value as T & Commented)[KEYS] = comments as Record<string, string>;
  return value;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isScalar(v: unknown): boolean {
  return v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean";
}

/** One scalar as js-yaml writes it (plain when that reads back as the same value, quoted otherwise). */
function scalar(v: unknown): string {
  if (typeof v === "string" && v.includes("\n")) return JSON.stringify(v); // a double-quoted JSON string is YAML
  if (!isScalar(v)) throw new Error(`not a YAML scalar: ${String(v)}`);
  return yaml.dump(v, { lineWidth: -1, quoteStyle: "double" }).trimEnd();
}

/** A list of scalars on one line (`[a, b]`), if it fits; undefined otherwise. */
function flowList(v: unknown[], room: number): string | undefined {
  if (!v.every(isScalar)) return undefined;
  const text = `[${v.map(scalar).join(", ")}]`;
  return text.length <= room ? text : undefined;
}

const WIDTH = 120;

function commentLines(text: string | undefined, pad: string): string[] {
  if (text === undefined) return [];
  return text.split("\n").map((line) => (line === "" ? `${pad}#` : `${pad}# ${line}`));
}

function selfComment(v: unknown): string | undefined {
  return typeof v === "object" && v !== null ? (v as Commented)[SELF] : undefined;
}

function mapLines(map: Record<string, unknown>, indent: number): string[] {
  const pad = " ".repeat(indent);
  const keyComments = (map as Commented)[KEYS] ?? {};
  const out: string[] = [];
  for (const [key, value] of Object.entries(map)) {
    if (value === undefined) continue;
    out.push(...commentLines(keyComments[key], pad), ...commentLines(selfComment(value), pad));
    const head = `${pad}${scalar(key)}:`;
    if (Array.isArray(value)) {
      const flow = value.length === 0 ? "[]" : flowList(value, WIDTH - head.length - 1);
      if (flow !== undefined) out.push(`${head} ${flow}`);
      else out.push(head, ...listLines(value, indent + 2));
    } else if (isMap(value)) {
      if (Object.keys(value).length === 0) out.push(`${head} {}`);
      else out.push(head, ...mapLines(value, indent + 2));
    } else {
      out.push(`${head} ${scalar(value)}`);
    }
  }
  return out;
}

function listLines(list: unknown[], indent: number): string[] {
  const pad = " ".repeat(indent);
  const out: string[] = [];
  for (const item of list) {
    out.push(...commentLines(selfComment(item), pad));
    if (isMap(item) && Object.keys(item).length > 0) {
      // The item's map is written two deeper; its first key line then takes the "- " (comments before it stay).
      const lines = mapLines(item, indent + 2);
      const first = lines.findIndex((l) => !l.trimStart().startsWith("#"));
      lines[first] = `${pad}- ${(lines[first] as string).slice(indent + 2)}`;
      out.push(...lines);
    } else if (Array.isArray(item)) {
      const flow = item.length === 0 ? "[]" : flowList(item, WIDTH - indent - 2);
      if (flow === undefined) throw new Error("nested block lists are not written by this YAML writer");
      out.push(`${pad}- ${flow}`);
    } else {
      out.push(`${pad}- ${isMap(item) ? "{}" : scalar(item)}`);
    }
  }
  return out;
}

/** One YAML document (no `---`): the object's own comment first, then its keys in insertion order. */
export function toYaml(doc: Record<string, unknown>): string {
  return [...commentLines(selfComment(doc), ""), ...mapLines(doc, 0)].join("\n") + "\n";
}

/** A multi-document YAML stream: an optional header comment, then each document after `---`. */
export function toYamlStream(docs: Record<string, unknown>[], header?: string): string {
  const head = header === undefined ? "" : commentLines(header, "").join("\n") + "\n";
  return head + docs.map((d) => `---\n${toYaml(d)}`).join("");
}
