// Label and field selectors with the grammar and matching rules of k8s.io/apimachinery (pkg/labels/selector.go,
// pkg/fields/selector.go). Parse errors are 400 BadRequest, as kube-apiserver answers them.
import { ApiError, type KubeObject } from "./types.js";
import type { ServedResource } from "./resources.js";

export type LabelOperator = "=" | "!=" | "in" | "notin" | "exists" | "!" | "gt" | "lt";

export interface LabelRequirement {
  key: string;
  op: LabelOperator;
  values: string[];
}

export type LabelSelector = LabelRequirement[];

function badRequest(message: string): ApiError {
  return new ApiError(400, "BadRequest", message);
}

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** A label key is an optional DNS-subdomain prefix and "/" and a qualified name of at most 63 characters. */
export function labelKeyError(key: string): string | undefined {
  const slash = key.indexOf("/");
  const name = slash === -1 ? key : key.slice(slash + 1);
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  }
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with at most 63 characters";
  }
  return undefined;
}

export function labelValueError(value: string): string | undefined {
  if (value.length > 63) return "must be no more than 63 characters";
  if (!LABEL_VALUE.test(value)) {
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
  }
  return undefined;
}

type Token =
  | { kind: "id"; text: string }
  | { kind: "op"; text: "=" | "==" | "!=" | "!" | ">" | "<" | "," | "(" | ")" };

function tokenizeLabels(input: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const ch = input[i] as string;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const two = input.slice(i, i + 2);
    if (two === "==" || two === "!=") {
      out.push({ kind: "op", text: two });
      i += 2;
      continue;
    }
    if ("=!><,()".includes(ch)) {
      out.push({ kind: "op", text: ch as "=" });
      i++;
      continue;
    }
    let j = i;
    while (j < input.length && !/\s/.test(input[j] as string) && !"=!><,()".includes(input[j] as string)) j++;
    out.push({ kind: "id", text: input.slice(i, j) });
    i = j;
  }
  return out;
}

/** Parses a labelSelector query parameter. The empty string selects everything. */
export function parseLabelSelector(input: string): LabelSelector {
  const tokens = tokenizeLabels(input);
  const reqs: LabelRequirement[] = [];
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const fail = (msg: string): never => {
    throw badRequest(`unable to parse requirement: ${msg}`);
  };
  const checkKey = (key: string): string => {
    const err = labelKeyError(key);
    if (err) fail(`<nil>: Invalid value: "${key}": ${err}`);
    return key;
  };
  const checkValue = (value: string): string => {
    const err = labelValueError(value);
    if (err) fail(`values[0][${value}]: Invalid value: "${value}": ${err}`);
    return value;
  };
  const readValue = (): string => {
    const t = peek();
    if (t?.kind === "id") {
      pos++;
      return checkValue(t.text);
    }
    return ""; // `key=` selects an empty value
  };
  while (pos < tokens.length) {
    const t = peek();
    if (!t) break;
    if (t.kind === "op" && t.text === "!") {
      pos++;
      const k = peek();
      if (k?.kind !== "id") fail(`found '${k ? k.text : "EOF"}', expected: identifier after '!'`);
      pos++;
      reqs.push({ key: checkKey((k as Token).text), op: "!", values: [] });
    } else if (t.kind === "id") {
      pos++;
      const key = checkKey(t.text);
      const op = peek();
      if (op === undefined || (op.kind === "op" && op.text === ",")) {
        reqs.push({ key, op: "exists", values: [] });
      } else if (op.kind === "op" && (op.text === "=" || op.text === "==" || op.text === "!=")) {
        pos++;
        reqs.push({ key, op: op.text === "!=" ? "!=" : "=", values: [readValue()] });
      } else if (op.kind === "op" && (op.text === ">" || op.text === "<")) {
        pos++;
        const v = peek();
        if (v?.kind !== "id" || !/^-?\d+$/.test(v.text)) fail(`for 'Gt', 'Lt' operators, the value must be an integer`);
        pos++;
        reqs.push({ key, op: op.text === ">" ? "gt" : "lt", values: [(v as Token).text] });
      } else if (op.kind === "id" && (op.text === "in" || op.text === "notin")) {
        pos++;
        const open = peek();
        if (open?.kind !== "op" || open.text !== "(") fail(`found '${open ? open.text : "EOF"}', expected: '('`);
        pos++;
        const values: string[] = [];
        for (;;) {
          const v = peek();
          if (v?.kind === "id") {
            values.push(checkValue(v.text));
            pos++;
          } else if (v?.kind === "op" && (v.text === "," || v.text === ")")) {
            // An empty element, as in "(a,,b)" or "()", is the empty value.
            values.push("");
          } else {
            fail(`found '${v ? v.text : "EOF"}', expected: ',', ')' or identifier`);
          }
          const sep = peek();
          if (sep?.kind === "op" && sep.text === ",") {
            pos++;
            continue;
          }
          if (sep?.kind === "op" && sep.text === ")") {
            pos++;
            break;
          }
          fail(`found '${sep ? sep.text : "EOF"}', expected: ',' or ')'`);
        }
        reqs.push({ key, op: op.text, values: [...new Set(values)].sort() });
      } else {
        fail(`found '${op.text}', expected: in, notin, =, ==, !=, gt, lt`);
      }
    } else {
      fail(`found '${t.text}', expected: !, identifier, or 'end of string'`);
    }
    const sep = peek();
    if (sep === undefined) break;
    if (sep.kind === "op" && sep.text === ",") {
      pos++;
      if (peek() === undefined) fail("found 'EOF', expected: identifier");
      continue;
    }
    fail(`found '${sep.text}', expected: ',' or 'end of string'`);
  }
  return reqs;
}

export function matchesLabels(selector: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const r of selector) {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case "=":
        if (!has || v !== r.values[0]) return false;
        break;
      case "!=":
        if (has && v === r.values[0]) return false;
        break;
      case "in":
        if (!has || !r.values.includes(v as string)) return false;
        break;
      case "notin":
        if (has && r.values.includes(v as string)) return false;
        break;
      case "exists":
        if (!has) return false;
        break;
      case "!":
        if (has) return false;
        break;
      case "gt":
      case "lt": {
        if (!has || !/^-?\d+$/.test(v as string)) return false;
        const n = Number(v);
        const bound = Number(r.values[0]);
        if (r.op === "gt" ? !(n > bound) : !(n < bound)) return false;
        break;
      }
    }
  }
  return true;
}

export interface FieldRequirement {
  field: string;
  op: "=" | "!=";
  value: string;
}

export type FieldSelector = FieldRequirement[];

/** Splits on a separator that is not escaped with a backslash (fields.splitTerms / splitTerm). */
function splitUnescaped(input: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < input.length; i++) {
    const ch = input[i] as string;
    if (ch === "\\" && i + 1 < input.length) {
      cur += ch + (input[i + 1] as string);
      i++;
    } else if (ch === sep) {
      parts.push(cur);
      cur = "";
    } else {
      cur += ch;
    }
  }
  parts.push(cur);
  return parts;
}

function unescapeFieldValue(value: string): string {
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const ch = value[i] as string;
    if (ch === "\\") {
      const next = value[i + 1];
      if (next === "\\" || next === "," || next === "=") {
        out += next;
        i++;
        continue;
      }
      throw badRequest(`invalid field selector: invalid escape sequence: \\${next ?? ""}`);
    }
    if (ch === "," || ch === "=") throw badRequest(`invalid field selector: unescaped ${ch} in value`);
    out += ch;
  }
  return out;
}

/** Parses a fieldSelector query parameter (terms `f=v`, `f==v`, `f!=v`, comma-separated). */
export function parseFieldSelector(input: string): FieldSelector {
  if (input.trim() === "") return [];
  const out: FieldRequirement[] = [];
  for (const term of splitUnescaped(input, ",")) {
    if (term === "") continue;
    let m: { field: string; op: "=" | "!="; raw: string } | undefined;
    for (let i = 0; i < term.length && !m; i++) {
      if (term[i] === "\\") {
        i++;
        continue;
      }
      if (term.startsWith("!=", i)) m = { field: term.slice(0, i), op: "!=", raw: term.slice(i + 2) };
      else if (term.startsWith("==", i)) m = { field: term.slice(0, i), op: "=", raw: term.slice(i + 2) };
      else if (term[i] === "=") m = { field: term.slice(0, i), op: "=", raw: term.slice(i + 1) };
    }
    if (!m) throw badRequest(`invalid selector: '${input}'; can't understand '${term}'`);
    out.push({ field: m.field.trim(), op: m.op, value: unescapeFieldValue(m.raw) });
  }
  return out;
}

/** Rejects field labels the kind does not support, with kube-apiserver's message. */
export function checkFieldSelector(resource: ServedResource, selector: FieldSelector): void {
  for (const r of selector) {
    if (r.field === "metadata.name") continue;
    if (r.field === "metadata.namespace" && resource.def.namespaced) continue;
    if (resource.fieldLabels.includes(r.field)) continue;
    if (resource.def.custom) {
      const allowed = resource.def.namespaced ? `"metadata.name", "metadata.namespace"` : `"metadata.name"`;
      throw badRequest(`"${r.field}" is not a known field selector: only ${allowed}`);
    }
    throw badRequest(`field label not supported: ${r.field}`);
  }
}

function fieldValue(obj: KubeObject, field: string): string {
  // core/v1 Event's "source" selects on source.component (pkg/registry/core/event/strategy.go).
  const path = field === "source" ? ["source", "component"] : field.split(".");
  let cur: unknown = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== "object") return "";
    cur = (cur as Record<string, unknown>)[p];
  }
  if (field === "status.podIPs" && Array.isArray(cur)) {
    return cur.map((e) => (e as { ip?: string }).ip ?? "").join(",");
  }
  if (cur === undefined || cur === null) return field === "spec.unschedulable" || field === "spec.hostNetwork" ? "false" : "";
  return String(cur);
}

export function matchesFields(selector: FieldSelector, obj: KubeObject): boolean {
  for (const r of selector) {
    const v = fieldValue(obj, r.field);
    if (r.op === "=" ? v !== r.value : v === r.value) return false;
  }
  return true;
}

/** A parsed pair of selectors; `matches` is what list, watch and deletecollection filter on. */
export interface Selectors {
  labels: LabelSelector;
  fields: FieldSelector;
}

export function parseSelectors(resource: ServedResource, labelSelector?: string, fieldSelector?: string): Selectors {
  const fields = parseFieldSelector(fieldSelector ?? "");
  checkFieldSelector(resource, fields);
  return { labels: parseLabelSelector(labelSelector ?? ""), fields };
}

export function matchesSelectors(sel: Selectors, obj: KubeObject): boolean {
  return matchesLabels(sel.labels, obj.metadata.labels) && matchesFields(sel.fields, obj);
}

export function isEmptySelector(sel: Selectors): boolean {
  return sel.labels.length === 0 && sel.fields.length === 0;
}
