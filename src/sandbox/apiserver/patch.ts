// PATCH for the sandbox API server: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch
// (k8s.io/apimachinery/pkg/util/strategicpatch) and server-side apply with managedFields
// (sigs.k8s.io/structured-merge-diff, as k8s.io/apiserver's fieldmanager drives it). Pure functions over plain JSON:
// the store owns resourceVersion, uid and persistence; this module computes the patched object and its
// managedFields, and answers kube-apiserver's errors (400 malformed, 404 missing, 409 apply conflict, 415 strategic
// patch on a custom resource, 422 a JSON patch that does not apply).
import { DEFAULTED_KEY_FIELDS, isAtomicStruct, listRule, ownsNodeOnUpdate } from "./merge-keys.js";
import { ApiError, apiVersionOf, type KubeObject, type ManagedFieldsEntry, type ResourceDefinition } from "./types.js";
import { deepEqual, isRecord } from "./validation.js";

export type PatchType = "json" | "merge" | "strategic" | "apply";

export interface PatchOptions {
  /** Required for "apply" (kube answers 400 without it); the manager recorded in managedFields. */
  fieldManager?: string;
  /** Server-side apply: take ownership of conflicting fields instead of answering 409. */
  force?: boolean;
  now: Date;
  /** "status" when patching /status; decides which fields an applier can own. */
  subresource?: string;
  /** The name from the URL, for the 404's message and for apply-creates when the body names none. */
  name?: string;
  /** The namespace from the URL, for apply-creates. */
  namespace?: string;
}

type Json = unknown;
type JsonObject = Record<string, unknown>;

/**
 * Applies a PATCH body to `current` and returns the patched object (a new object; `current` is untouched).
 * resourceVersion, uid and the like are left for the store: a patch that sets metadata.resourceVersion keeps it,
 * which the store treats as a precondition, as kube-apiserver does. For "apply" the result carries updated
 * managedFields; for the other types call `recordUpdateManagedFields` afterwards, as for a PUT.
 * Throws ApiError: 404 when `current` is missing (except for apply, which creates), 400 for malformed bodies,
 * 422 for a JSON patch that does not apply (failed `test`, missing path), 415 for strategic merge on custom
 * resources, 409 for apply conflicts without force.
 */
export function applyPatch(
  def: ResourceDefinition,
  current: KubeObject | undefined,
  patchType: PatchType,
  body: unknown,
  opts: PatchOptions,
): KubeObject {
  if (patchType === "strategic" && def.custom) {
    throw new ApiError(415, "UnsupportedMediaType",
      "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml");
  }
  if (patchType === "apply") return dropUndefined(serverSideApply(def, current, body, opts)) as KubeObject;
  if (!current) {
    const name = opts.name ?? (isRecord(body) && isRecord(body.metadata) ? String(body.metadata.name ?? "") : "");
    const resource = def.group ? `${def.plural}.${def.group}` : def.plural;
    throw new ApiError(404, "NotFound", `${resource} "${name}" not found`, { name, group: def.group, kind: def.plural });
  }
  const base = structuredClone(current);
  let result: Json;
  switch (patchType) {
    case "json":
      result = jsonPatch(base, body);
      break;
    case "merge":
      if (!isRecord(body)) throw new ApiError(400, "BadRequest", "Invalid JSON Patch");
      result = mergePatch(base, body);
      break;
    case "strategic":
      if (!isRecord(body)) throw new ApiError(400, "BadRequest", "json: cannot unmarshal into Go value of type map[string]interface {}");
      result = strategicMerge(def, [], base, body);
      break;
    default:
      throw new ApiError(415, "UnsupportedMediaType", `unsupported patch type ${String(patchType)}`);
  }
  if (!isRecord(result)) throw new ApiError(400, "BadRequest", "the patched object is not a JSON object");
  return dropUndefined(result) as KubeObject;
}

/** Plain JSON out: keys whose value is undefined (which JSON cannot carry) are removed. */
function dropUndefined(value: Json): Json {
  if (Array.isArray(value)) {
    for (const item of value) dropUndefined(item);
  } else if (isRecord(value)) {
    for (const [key, child] of Object.entries(value)) {
      if (child === undefined) delete value[key];
      else dropUndefined(child);
    }
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON patch (RFC 6902) with JSON pointers (RFC 6901). kube answers a patch that cannot be decoded with 400 and a
// patch that does not apply with 422 "the server rejected our request due to an error in our request", the
// json-patch library's message as the cause.

const MAX_JSON_PATCH_OPERATIONS = 10000;

function jsonPatch(doc: Json, body: unknown): Json {
  if (!Array.isArray(body)) throw new ApiError(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
  if (body.length > MAX_JSON_PATCH_OPERATIONS) {
    throw new ApiError(413, "RequestEntityTooLarge", `Request entity too large: The allowed maximum operations in a JSON patch is ${MAX_JSON_PATCH_OPERATIONS}, got ${body.length}`);
  }
  let result = doc;
  for (const op of body) {
    if (!isRecord(op) || typeof op.op !== "string") throw new ApiError(400, "BadRequest", "Unexpected kind: <nil>");
    const path = pointer(op.path, "path", op.op);
    switch (op.op) {
      case "add":
        result = pointerAdd(result, path, cloneValue(op, "add"), op.op, String(op.path));
        break;
      case "remove":
        result = pointerRemove(result, path, String(op.path)).doc;
        break;
      case "replace": {
        const value = cloneValue(op, "replace");
        if (path.length === 0) {
          result = value;
          break;
        }
        if (pointerGet(result, path) === MISSING) notApplicable(`replace operation does not apply: doc is missing key: ${String(op.path)}: missing value`);
        result = pointerRemove(result, path, String(op.path)).doc;
        result = pointerAdd(result, path, value, "replace", String(op.path));
        break;
      }
      case "move": {
        const from = pointer(op.from, "from", op.op);
        if (String(op.path).startsWith(`${String(op.from)}/`)) notApplicable(`move operation does not apply: "from" is a prefix of "path"`);
        const removed = pointerRemove(result, from, String(op.from));
        result = pointerAdd(removed.doc, path, removed.value, "move", String(op.path));
        break;
      }
      case "copy": {
        const from = pointer(op.from, "from", op.op);
        const value = pointerGet(result, from);
        if (value === MISSING) notApplicable(`copy operation does not apply: doc is missing from path: ${String(op.from)}: missing value`);
        result = pointerAdd(result, path, structuredClone(value), "copy", String(op.path));
        break;
      }
      case "test": {
        const actual = pointerGet(result, path);
        if (!("value" in op)) throw new ApiError(400, "BadRequest", "test operation missing value");
        if (actual === MISSING ? op.value !== null : !deepEqual(actual, op.value)) {
          notApplicable(`testing value ${String(op.path)} failed: test failed`);
        }
        break;
      }
      default:
        throw new ApiError(400, "BadRequest", `Unexpected kind: ${op.op}`);
    }
  }
  return result;
}

const MISSING = Symbol("missing");

/**
 * kube-apiserver answers a JSON patch that does not apply with errors.NewGenericServerResponse(422, ...,
 * isUnexpectedResponse=false): a bare "Invalid" whose message does not say what failed (kubectl prints "The request
 * is invalid: the server rejected our request due to an error in our request"). The json-patch library's reason
 * is kept as the error's `cause`, for logs and tests, not sent.
 */
function notApplicable(message: string): never {
  const error = new ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {});
  Object.defineProperty(error, "cause", { value: message, enumerable: false });
  throw error;
}

function cloneValue(op: JsonObject, name: string): Json {
  if (!("value" in op)) throw new ApiError(400, "BadRequest", `${name} operation missing value`);
  return structuredClone(op.value);
}

function pointer(value: unknown, field: string, op: string): string[] {
  if (typeof value !== "string") throw new ApiError(400, "BadRequest", `${op} operation missing ${field} string`);
  if (value === "") return [];
  if (!value.startsWith("/")) throw new ApiError(400, "BadRequest", `JSON pointer must be empty or start with a "/": ${value}`);
  return value.slice(1).split("/").map((token) => token.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function arrayIndex(token: string, length: number, allowEnd: boolean, opPath: string): number {
  if (allowEnd && token === "-") return length;
  if (!/^(0|[1-9]\d*)$/.test(token)) notApplicable(`Unable to access invalid index: ${token}: ${opPath}`);
  const index = Number(token);
  if (index > length || (!allowEnd && index === length)) notApplicable(`Unable to access invalid index: ${index}: ${opPath}`);
  return index;
}

function pointerGet(doc: Json, path: string[]): Json | typeof MISSING {
  let node: Json = doc;
  for (const token of path) {
    if (Array.isArray(node)) {
      if (!/^(0|[1-9]\d*)$/.test(token) || Number(token) >= node.length) return MISSING;
      node = node[Number(token)];
    } else if (isRecord(node)) {
      if (!Object.hasOwn(node, token)) return MISSING;
      node = node[token];
    } else {
      return MISSING;
    }
  }
  return node;
}

function parentOf(doc: Json, path: string[], opName: string, opPath: string): Json {
  const parent = pointerGet(doc, path.slice(0, -1));
  if (parent === MISSING || (!Array.isArray(parent) && !isRecord(parent))) {
    notApplicable(`${opName} operation does not apply: doc is missing path: "${opPath}": missing value`);
  }
  return parent;
}

function pointerAdd(doc: Json, path: string[], value: Json, opName: string, opPath: string): Json {
  if (path.length === 0) return value;
  const parent = parentOf(doc, path, opName, opPath);
  const last = path[path.length - 1] as string;
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length, true, opPath), 0, value);
  else (parent as JsonObject)[last] = value;
  return doc;
}

function pointerRemove(doc: Json, path: string[], opPath: string): { doc: Json; value: Json } {
  if (path.length === 0) return { doc: null, value: doc };
  const parent = parentOf(doc, path, "remove", opPath);
  const last = path[path.length - 1] as string;
  if (Array.isArray(parent)) {
    const index = arrayIndex(last, parent.length, false, opPath);
    return { doc, value: parent.splice(index, 1)[0] as Json };
  }
  const object = parent as JsonObject;
  if (!Object.hasOwn(object, last)) notApplicable(`remove operation does not apply: doc is missing key: ${opPath}: missing value`);
  const value = object[last];
  delete object[last];
  return { doc, value };
}

// ---------------------------------------------------------------------------------------------------------------
// JSON merge patch (RFC 7386).

function mergePatch(target: Json, patch: Json): Json {
  if (!isRecord(patch)) return structuredClone(patch);
  const out: JsonObject = isRecord(target) ? target : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Strategic merge patch, after strategicpatch.mergeMap/mergeSlice (server side: nulls for absent keys ignored,
// parallel $deleteFromPrimitiveList lists honoured).

const DIRECTIVE = "$patch";
const RETAIN_KEYS = "$retainKeys";
const SET_ELEMENT_ORDER = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/";

function badPatch(message: string, code = 400): never {
  throw new ApiError(code, code === 422 ? "Invalid" : "BadRequest", message);
}

/** Merges `patch` into `original` (a map at `path`, which is mutated and returned). */
function strategicMerge(def: ResourceDefinition, path: string[], original: JsonObject | undefined, patch: JsonObject): JsonObject | undefined {
  if (DIRECTIVE in patch) {
    const directive = patch[DIRECTIVE];
    if (directive === "replace") {
      const copy = { ...patch };
      delete copy[DIRECTIVE];
      return cleanNew(def, path, copy) as JsonObject;
    }
    // sic: kube's handleDirectiveInMergeMap answers "$patch: delete" on a map with an empty map, not no field.
    if (directive === "delete") return {};
    badPatch(`Unknown patch type: ${String(directive)} in map: ${JSON.stringify(patch)}`);
  }
  const out: JsonObject = original ?? {};
  if (RETAIN_KEYS in patch) {
    const retain = patch[RETAIN_KEYS];
    if (!Array.isArray(retain) || !retain.every((k) => typeof k === "string")) {
      badPatch(`invalid patch format: $retainKeys must be a list of strings: ${JSON.stringify(retain)}`, 422);
    }
    for (const key of Object.keys(patch)) {
      if (!key.startsWith("$") && !retain.includes(key)) badPatch(`doesn't satisfy the retainKeys directive: ${key} is not in ${JSON.stringify(retain)}`, 422);
    }
    for (const key of Object.keys(out)) if (!retain.includes(key)) delete out[key];
  }
  const ordered = new Set<string>();
  for (const [key, order] of Object.entries(patch)) {
    if (!key.startsWith(SET_ELEMENT_ORDER)) continue;
    const field = key.slice(SET_ELEMENT_ORDER.length);
    if (!Array.isArray(order)) badPatch(`invalid patch format: ${key} must be a list: ${JSON.stringify(order)}`, 422);
    const patchList = patch[field];
    if (patchList !== undefined && patchList !== null && !Array.isArray(patchList)) {
      badPatch(`invalid patch format: ${field} must be a list when ${key} is set`, 422);
    }
    // Only merging lists have an order to set; on any other list the directive is moot.
    if (listRule(def, [...path, field]).strategy !== "merge" && (patchList === undefined || patchList === null)) continue;
    const originalList = Array.isArray(out[field]) ? (out[field] as Json[]) : [];
    const deletions = patch[`${DELETE_FROM_PRIMITIVE_LIST}${field}`];
    const merged = mergeList(def, [...path, field], originalList, (patchList ?? []) as Json[], order,
      Array.isArray(deletions) ? deletions : undefined);
    if (merged === undefined) delete out[field];
    else out[field] = merged;
    ordered.add(field);
  }
  for (const [rawKey, value] of Object.entries(patch)) {
    if (rawKey === RETAIN_KEYS || rawKey.startsWith(SET_ELEMENT_ORDER)) continue;
    if (rawKey.startsWith(DELETE_FROM_PRIMITIVE_LIST)) {
      const field = rawKey.slice(DELETE_FROM_PRIMITIVE_LIST.length);
      if (ordered.has(field)) continue;
      if (!Array.isArray(value)) badPatch(`invalid patch format: ${rawKey} must be a list of primitives`, 422);
      if (Array.isArray(out[field])) out[field] = (out[field] as Json[]).filter((item) => !value.some((v) => deepEqual(v, item)));
      continue;
    }
    if (rawKey.startsWith("$")) badPatch(`unknown directive ${rawKey} in ${JSON.stringify(patch)}`);
    const key = rawKey;
    if (ordered.has(key)) continue;
    if (value === null) {
      delete out[key];
      continue;
    }
    const existing = out[key];
    const fieldPath = [...path, key];
    if (isRecord(value) && (isRecord(existing) || existing === undefined)) {
      const merged = strategicMerge(def, fieldPath, isRecord(existing) ? existing : undefined, value);
      if (merged === undefined) delete out[key];
      else out[key] = merged;
    } else if (Array.isArray(value) && Array.isArray(existing)) {
      const merged = mergeList(def, fieldPath, existing, value, undefined, undefined);
      if (merged === undefined) delete out[key];
      else out[key] = merged;
    } else {
      out[key] = cleanNew(def, fieldPath, value);
    }
  }
  return out;
}

/** A value for a key the original lacks: nulls dropped and directives applied against nothing. */
function cleanNew(def: ResourceDefinition, path: string[], value: Json): Json {
  if (isRecord(value)) return strategicMerge(def, path, undefined, value) ?? {};
  if (Array.isArray(value)) return mergeList(def, path, [], value, undefined, undefined) ?? [];
  return structuredClone(value);
}

function mergeList(
  def: ResourceDefinition, path: string[], original: Json[], patch: Json[], order: Json[] | undefined, deletions: Json[] | undefined,
): Json[] | undefined {
  const rule = listRule(def, path);
  if (rule.strategy !== "merge") {
    return patch.filter((item) => !(isRecord(item) && DIRECTIVE in item)).map((item) => cleanNew(def, [...path, "[]"], item));
  }
  const scalars = [...original, ...patch].every((item) => !isRecord(item));
  if (scalars) {
    if (patch.some((item) => Array.isArray(item))) badPatch("lists of lists are not supported", 422);
    let merged = [...original];
    for (const item of patch) if (!merged.some((m) => deepEqual(m, item))) merged.push(structuredClone(item));
    if (deletions) merged = merged.filter((item) => !deletions.some((d) => deepEqual(d, item)));
    return order ? normaliseOrder(merged.filter((m) => order.some((o) => deepEqual(o, m))), merged.filter((m) => !order.some((o) => deepEqual(o, m))), order, original, undefined)
      : normaliseOrder(merged.filter((m) => patch.some((p) => deepEqual(p, m))), merged.filter((m) => !patch.some((p) => deepEqual(p, m))), patch, original, undefined);
  }
  const mergeKey = rule.mergeKey;
  if (!mergeKey) badPatch(`cannot merge lists without merge key for ${path.join(".")}`);
  let working = original.map((item) => item);
  const items: JsonObject[] = [];
  let replace = false;
  for (const item of patch) {
    if (!isRecord(item)) badPatch(`invalid list item in ${path.join(".")}: ${JSON.stringify(item)}`);
    if (DIRECTIVE in item) {
      const directive = item[DIRECTIVE];
      if (directive === "delete") {
        if (!(mergeKey in item)) badPatch(`map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey}`);
        working = working.filter((o) => !(isRecord(o) && deepEqual(o[mergeKey], item[mergeKey])));
      } else if (directive === "replace") {
        replace = true;
      } else if (directive === "merge") {
        badPatch("merging lists cannot yet be specified in the patch");
      } else {
        badPatch(`Unknown patch type: ${String(directive)} in map: ${JSON.stringify(item)}`);
      }
      continue;
    }
    if (!(mergeKey in item)) badPatch(`map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey}`);
    items.push(item);
  }
  if (replace) return items.map((item) => cleanNew(def, [...path, "[]"], item));
  const merged = [...working];
  for (const item of items) {
    const index = merged.findIndex((o) => isRecord(o) && deepEqual(o[mergeKey], item[mergeKey]));
    if (index >= 0) merged[index] = strategicMerge(def, [...path, "[]"], merged[index] as JsonObject, item) ?? {};
    else merged.push(cleanNew(def, [...path, "[]"], item));
  }
  const keyOf = (item: Json) => (isRecord(item) ? item[mergeKey] : undefined);
  const orderKeys = (order ?? items).map((o) => (isRecord(o) ? o[mergeKey] : undefined));
  const inOrder = (item: Json) => orderKeys.some((k) => deepEqual(k, keyOf(item)));
  return normaliseOrder(merged.filter(inOrder), merged.filter((m) => !inOrder(m)), order ?? items, original, mergeKey);
}

/**
 * strategicpatch.normalizeElementOrder: items named by the patch (or `$setElementOrder`) in that order, items only
 * on the server in server order, the two interleaved so each keeps its place relative to the server's order.
 */
function normaliseOrder(patchItems: Json[], serverOnly: Json[], patchOrder: Json[], serverOrder: Json[], mergeKey: string | undefined): Json[] {
  const identity = (item: Json) => (mergeKey !== undefined && isRecord(item) ? item[mergeKey] : item);
  const indexIn = (list: Json[], item: Json) => list.findIndex((o) => deepEqual(identity(o), identity(item)));
  const sortBy = (items: Json[], list: Json[]) => [...items].sort((a, b) => indexIn(list, a) - indexIn(list, b));
  const left = sortBy(serverOnly, serverOrder);
  const right = sortBy(patchItems, patchOrder);
  const out: Json[] = [];
  let i = 0;
  let j = 0;
  while (i < left.length || j < right.length) {
    if (i >= left.length) out.push(right[j++]);
    else if (j >= right.length) out.push(left[i++]);
    else {
      const li = indexIn(serverOrder, left[i]);
      const ri = indexIn(serverOrder, right[j]);
      if (li >= 0 && ri >= 0 && li < ri) out.push(left[i++]);
      else out.push(right[j++]);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Field sets (structured-merge-diff paths) and their FieldsV1 encoding.

/** One step of a field path, in FieldsV1 spelling: `f:name`, `k:{"name":"x"}`, `v:"value"`. */
type Step = string;
type FieldPath = Step[];

const SEP = "\u0000";
const joinPath = (path: FieldPath) => path.join(SEP);
const splitPath = (key: string): FieldPath => (key === "" ? [] : key.split(SEP));

/** Paths no manager owns: identity and bookkeeping fields (fieldmanager's stripMeta). */
const STRIPPED_META = new Set(["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
  "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"]);

function sortedJson(value: Json): string {
  if (isRecord(value)) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${sortedJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function keyStep(item: JsonObject, keys: string[], listPath: string): Step {
  const key: JsonObject = {};
  for (const field of keys) {
    const value = item[field] ?? DEFAULTED_KEY_FIELDS[field];
    if (value === undefined) {
      throw new ApiError(500, "InternalError", `failed to create typed patch object: ${listPath}: element ${JSON.stringify(item)}: associative list with keys has an element that omits key field ${JSON.stringify(field)} (and doesn't have default value)`);
    }
    key[field] = value;
  }
  return `k:${sortedJson(key)}`;
}

/** keyStep for matching stored items: an item lacking a key field matches nothing instead of failing. */
function lookupKey(item: JsonObject, keys: string[]): Step | undefined {
  try {
    return keyStep(item, keys, "");
  } catch {
    return undefined;
  }
}

/** Which top-level fields a manager can own through this endpoint (main resource vs /status). */
function ownable(def: ResourceDefinition, subresource: string | undefined, field: string): boolean {
  if (field === "apiVersion" || field === "kind") return false;
  if (subresource === "status") return field === "status";
  return !(field === "status" && def.subresources.includes("status"));
}

/** An object's field set, and the value at every path it walked (maps and lists on the way included). */
interface FieldIndex {
  set: Set<string>;
  values: Map<string, Json>;
}

/** The set of paths an object's fields make up (leaves, list elements by key or value), with their values. */
function indexFields(def: ResourceDefinition, obj: JsonObject, subresource: string | undefined): FieldIndex {
  const set = new Set<string>();
  const values = new Map<string, Json>();
  const child = (path: string, step: string) => (path === "" ? step : path + SEP + step);
  const walk = (value: Json, path: string, names: string[]) => {
    values.set(path, value);
    if (isRecord(value)) {
      const keys = Object.keys(value);
      if (keys.length === 0 || isAtomicStruct(def, names)) {
        set.add(path);
        return;
      }
      for (const key of keys) walk(value[key], child(path, `f:${key}`), [...names, key]);
    } else if (Array.isArray(value)) {
      const rule = listRule(def, names).ssa;
      if (rule.type === "atomic" || value.length === 0) {
        set.add(path);
      } else if (rule.type === "set") {
        for (const item of value) {
          const itemPath = child(path, `v:${sortedJson(item)}`);
          set.add(itemPath);
          values.set(itemPath, item);
        }
      } else {
        if (!value.every(isRecord)) {
          set.add(path);
          return;
        }
        for (const item of value) {
          const elementPath = child(path, keyStep(item, rule.keys, names.join(".")));
          set.add(elementPath);
          values.set(elementPath, item);
          for (const key of Object.keys(item)) walk(item[key], child(elementPath, `f:${key}`), [...names, "[]", key]);
        }
      }
    } else {
      set.add(path);
    }
  };
  for (const [field, value] of Object.entries(obj)) {
    if (!ownable(def, subresource, field)) continue;
    if (field === "metadata" && isRecord(value)) {
      for (const [metaField, metaValue] of Object.entries(value)) {
        if (STRIPPED_META.has(metaField)) continue;
        walk(metaValue, `f:metadata${SEP}f:${metaField}`, ["metadata", metaField]);
      }
      continue;
    }
    walk(value, `f:${field}`, [field]);
  }
  return { set, values };
}

/** Encodes a field set as FieldsV1 (`{"f:spec":{"f:ports":{"k:{...}":{".":{},"f:port":{}}}}}`). */
export function toFieldsV1(set: Iterable<string>): Record<string, unknown> {
  // One tree of the paths' steps, then each level written with its keys sorted; a path that is in the set and also
  // has children gets "." (owned itself as well as through them). Every write records managedFields, so this is
  // on every request's path: no separate pass to find the parents, no second copy to sort.
  interface Step { children: Map<string, Step>; member: boolean }
  const root: Step = { children: new Map(), member: false };
  for (const path of set) {
    let node = root;
    for (const step of splitPath(path)) {
      let next = node.children.get(step);
      if (next === undefined) {
        next = { children: new Map(), member: false };
        node.children.set(step, next);
      }
      node = next;
    }
    node.member = true;
  }
  const write = (node: Step, top: boolean): JsonObject => {
    const keys = [...node.children.keys()];
    if (node.member && !top && keys.length > 0) keys.push(".");
    keys.sort();
    const out: JsonObject = {};
    for (const key of keys) out[key] = key === "." ? {} : write(node.children.get(key) as Step, false);
    return out;
  };
  return write(root, true);
}

/** Decodes FieldsV1 back into a field set. */
export function fromFieldsV1(fields: unknown): Set<string> {
  const set = new Set<string>();
  const walk = (node: unknown, path: FieldPath) => {
    if (!isRecord(node)) return;
    const children = Object.keys(node).filter((k) => k !== ".");
    if (path.length > 0 && ("." in node || children.length === 0)) set.add(joinPath(path));
    for (const key of children) walk(node[key], [...path, key]);
  };
  walk(fields, []);
  return set;
}

/** Renders a path as structured-merge-diff prints it in conflicts: `.spec.ports[port=80,protocol="TCP"].name`. */
function printPath(key: string): string {
  return splitPath(key).map((step) => {
    if (step.startsWith("f:")) return `.${step.slice(2)}`;
    if (step.startsWith("k:")) {
      const value = JSON.parse(step.slice(2)) as JsonObject;
      return `[${Object.keys(value).map((k) => `${k}=${JSON.stringify(value[k])}`).join(",")}]`;
    }
    if (step.startsWith("v:")) return `[=${step.slice(2)}]`;
    return step;
  }).join("");
}

/** The value at a field path, or MISSING. */
function valueAt(obj: Json, key: string, def: ResourceDefinition): Json | typeof MISSING {
  let node: Json = obj;
  const names: string[] = [];
  for (const step of splitPath(key)) {
    if (step.startsWith("f:")) {
      const field = step.slice(2);
      if (!isRecord(node) || !Object.hasOwn(node, field)) return MISSING;
      node = node[field];
      names.push(field);
    } else if (step.startsWith("k:")) {
      if (!Array.isArray(node)) return MISSING;
      const rule = listRule(def, names).ssa;
      const keys = rule.type === "map" ? rule.keys : [];
      const found = node.find((item) => isRecord(item) && lookupKey(item, keys) === step);
      if (found === undefined) return MISSING;
      node = found;
      names.push("[]");
    } else if (step.startsWith("v:")) {
      if (!Array.isArray(node)) return MISSING;
      const found = node.find((item) => `v:${sortedJson(item)}` === step);
      if (found === undefined) return MISSING;
      node = found;
    } else {
      return MISSING;
    }
  }
  return node;
}

/** Removes the field, list element or set value at a path (no-op when absent). */
function removeAt(obj: JsonObject, key: string, def: ResourceDefinition): void {
  const steps = splitPath(key);
  const last = steps[steps.length - 1];
  if (last === undefined) return;
  const parentKey = joinPath(steps.slice(0, -1));
  const parent = parentKey === "" ? obj : valueAt(obj, parentKey, def);
  if (last.startsWith("f:") && isRecord(parent)) {
    delete parent[last.slice(2)];
  } else if (Array.isArray(parent)) {
    const names: string[] = [];
    for (const step of steps.slice(0, -1)) if (step.startsWith("f:")) names.push(step.slice(2));
    else if (step.startsWith("k:")) names.push("[]");
    const rule = listRule(def, names).ssa;
    const index = parent.findIndex((item) => (last.startsWith("k:")
      ? isRecord(item) && rule.type === "map" && lookupKey(item, rule.keys) === last
      : `v:${sortedJson(item)}` === last));
    if (index >= 0) parent.splice(index, 1);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// managedFields bookkeeping.

interface Manager {
  manager: string;
  operation: "Apply" | "Update";
  apiVersion: string;
  time?: string;
  subresource?: string;
  set: Set<string>;
}

function readManagers(obj: KubeObject | undefined): Manager[] {
  const entries = obj?.metadata?.managedFields;
  if (!Array.isArray(entries)) return [];
  return entries.filter((e) => isRecord(e) && typeof e.manager === "string").map((e) => ({
    manager: e.manager, operation: e.operation, apiVersion: e.apiVersion, time: e.time,
    ...(e.subresource ? { subresource: e.subresource } : {}),
    set: fromFieldsV1(e.fieldsV1),
  }));
}

/**
 * Entries with an empty set are dropped; the rest ordered as kube's fieldmanager sorts them
 * (sortEncodedManagedFields): operation (Apply before Update), time, manager, apiVersion, subresource.
 */
function writeManagers(managers: Manager[]): ManagedFieldsEntry[] {
  const seconds = (m: Manager) => (m.time ? Math.floor(Date.parse(m.time) / 1000) : 0);
  const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const sorted = managers.filter((m) => m.set.size > 0).sort((p, q) => compare(p.operation, q.operation)
    || seconds(p) - seconds(q) || compare(p.manager, q.manager) || compare(p.apiVersion, q.apiVersion)
    || compare(p.subresource ?? "", q.subresource ?? ""));
  return sorted.map((m) => ({
    manager: m.manager,
    operation: m.operation,
    apiVersion: m.apiVersion,
    ...(m.time ? { time: m.time } : {}),
    fieldsType: "FieldsV1",
    fieldsV1: toFieldsV1(m.set),
    ...(m.subresource ? { subresource: m.subresource } : {}),
  }));
}

/** metav1.Time as kube serialises it: RFC 3339, seconds precision, UTC. */
function timeOf(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function sameManager(m: Manager, manager: string, operation: "Apply" | "Update", subresource: string | undefined): boolean {
  return m.manager === manager && m.operation === operation && (m.subresource ?? "") === (subresource ?? "");
}

/**
 * Records who changed what in an Update operation (POST, PUT, or a non-apply PATCH), as kube-apiserver's
 * fieldmanager does: `manager` (kubectl's are "kubectl-client-side-apply", "kubectl-edit", "kubectl-create",
 * "kubectl-label", ...) gains every field whose value it set or changed, other managers lose those fields, and
 * fields that disappeared leave every manager. On create (`old` undefined) the manager owns every field. Returns
 * a copy of `next` with metadata.managedFields rewritten (below metadata it shares `next`'s values). A client that sends managedFields different from the stored ones
 * replaces them (`[{}]` clears them), as kube allows.
 */
export function recordUpdateManagedFields(
  def: ResourceDefinition, old: KubeObject | undefined, next: KubeObject, manager: string, now: Date, subresource?: string,
): KubeObject {
  // Only metadata.managedFields of the result differs from `next`, and nothing here writes into the rest: a copy of
  // the two levels on the way, not of the object (a pod is a few hundred nodes, and every write comes through here).
  const out: KubeObject = { ...next, metadata: { ...next.metadata } };
  const sent = next.metadata?.managedFields;
  let managers: Manager[];
  if (sent !== undefined && !deepEqual(sent, old?.metadata?.managedFields)) {
    managers = readManagers(next);
  } else {
    managers = readManagers(old);
  }
  const nextIndex = indexFields(def, out, subresource);
  const nextSet = nextIndex.set;
  const nextParents = parentsOf(nextSet);
  const oldIndex = old ? indexFields(def, old, subresource) : undefined;
  let changed: Set<string>;
  if (!old) {
    changed = nextSet;
  } else {
    const oldSet = oldIndex?.set ?? new Set<string>();
    changed = new Set<string>();
    for (const path of nextSet) {
      const before = oldIndex?.values.has(path) ? oldIndex.values.get(path) : MISSING;
      const after = nextIndex.values.get(path);
      const isLeafInNext = !nextParents.has(path);
      if (!oldSet.has(path) || (isLeafInNext && (before === MISSING || !deepEqual(before, after)))) changed.add(path);
    }
    // Fields gone from the object leave their owners; fields outside this endpoint's reach (status on the main
    // resource, spec on /status) are not judged by it.
    for (const m of managers) {
      for (const path of [...m.set]) {
        if (!inScope(def, subresource, path)) continue;
        if (!nextSet.has(path) && !nextParents.has(path)) m.set.delete(path);
      }
    }
  }
  for (const path of newlyOwnedNodes(def, oldIndex, nextIndex, nextParents)) changed.add(path);
  if (changed.size > 0) {
    for (const m of managers) {
      if (sameManager(m, manager, "Update", subresource)) continue;
      for (const path of changed) m.set.delete(path);
    }
    let mine = managers.find((m) => sameManager(m, manager, "Update", subresource));
    if (!mine) {
      mine = { manager, operation: "Update", apiVersion: apiVersionOf(def), set: new Set(), ...(subresource ? { subresource } : {}) };
      managers.push(mine);
    }
    for (const path of changed) mine.set.add(path);
    mine.time = timeOf(now);
    mine.apiVersion = apiVersionOf(def);
  }
  const written = writeManagers(capUpdateManagers(managers));
  if (written.length > 0) out.metadata.managedFields = written;
  else delete out.metadata.managedFields;
  return out;
}

const BEFORE_FIRST_APPLY = "before-first-apply";
const ANCIENT_CHANGES = "ancient-changes";
/** capManagersManager's DefaultMaxUpdateManagers. */
const MAX_UPDATE_MANAGERS = 10;

/**
 * capManagersManager: past ten Update entries, the oldest are folded into one "ancient-changes" entry, so an object
 * written by many clients keeps bounded managedFields.
 */
function capUpdateManagers(managers: Manager[]): Manager[] {
  const updates = managers.filter((m) => m.operation === "Update" && m.set.size > 0);
  if (updates.length <= MAX_UPDATE_MANAGERS) return managers;
  const byAge = [...updates].sort((a, b) => Date.parse(a.time ?? "") - Date.parse(b.time ?? ""));
  const ancient = managers.find((m) => m.manager === ANCIENT_CHANGES && m.operation === "Update" && !m.subresource);
  const fold = byAge.filter((m) => m !== ancient).slice(0, updates.length - MAX_UPDATE_MANAGERS + (ancient ? 0 : 1));
  const target: Manager = ancient ?? { manager: ANCIENT_CHANGES, operation: "Update", apiVersion: fold[0]?.apiVersion ?? "v1", set: new Set() };
  for (const m of fold) {
    for (const path of m.set) target.set.add(path);
    if (!target.time || Date.parse(m.time ?? "") > Date.parse(target.time)) target.time = m.time;
  }
  const kept = managers.filter((m) => !fold.includes(m) && m !== ancient);
  return [...kept, target];
}

/**
 * lastAppliedUpdater: a server-side apply by kubectl ("kubectl" manager) keeps an existing client-side apply
 * annotation in step with what it applied, so switching back to client-side apply does not undo it.
 */
function syncLastApplied(merged: KubeObject, config: JsonObject): void {
  const key = "kubectl.kubernetes.io/last-applied-configuration";
  const annotations = merged.metadata?.annotations;
  if (!annotations || !(key in annotations)) return;
  const applied = structuredClone(config);
  const meta = isRecord(applied.metadata) ? applied.metadata : {};
  if (isRecord(meta.annotations)) {
    delete meta.annotations[key];
    if (Object.keys(meta.annotations).length === 0) delete meta.annotations;
  }
  annotations[key] = `${sortedJson(applied)}\n`;
}

/** Maps and keyed lists that `next` has and `old` lacks, which an Update operation owns as nodes (see ownsNodeOnUpdate). */
function newlyOwnedNodes(def: ResourceDefinition, old: FieldIndex | undefined, next: FieldIndex, nextParents: Set<string>): string[] {
  const found: string[] = [];
  for (const key of nextParents) {
    const steps = splitPath(key);
    const last = steps[steps.length - 1] ?? "";
    if (!last.startsWith("f:")) continue;
    if (old?.values.has(key) || !next.values.has(key)) continue;
    const names: string[] = [];
    for (const step of steps) if (step.startsWith("f:")) names.push(step.slice(2));
    else if (step.startsWith("k:")) names.push("[]");
    if (ownsNodeOnUpdate(def, names)) found.push(key);
  }
  return found;
}

function inScope(def: ResourceDefinition, subresource: string | undefined, path: string): boolean {
  const first = splitPath(path)[0] ?? "";
  return first.startsWith("f:") && ownable(def, subresource, first.slice(2));
}

/** Every proper prefix of the set's paths: the paths that have children in it. */
function parentsOf(set: Iterable<string>): Set<string> {
  const parents = new Set<string>();
  for (const path of set) {
    let end = path.lastIndexOf(SEP);
    while (end > 0) {
      const prefix = path.slice(0, end);
      if (parents.has(prefix)) break;
      parents.add(prefix);
      end = prefix.lastIndexOf(SEP);
    }
  }
  return parents;
}

// ---------------------------------------------------------------------------------------------------------------
// Server-side apply.

function serverSideApply(def: ResourceDefinition, current: KubeObject | undefined, body: unknown, opts: PatchOptions): KubeObject {
  const manager = opts.fieldManager;
  if (manager === undefined || manager === "") {
    throw new ApiError(400, "BadRequest", "PATCH, application/apply-patch+yaml requires fieldManager to be set");
  }
  if (!isRecord(body)) throw new ApiError(400, "BadRequest", "error decoding YAML: the applied configuration is not an object");
  // A null in an applied configuration says nothing: the field is neither set nor owned (as if omitted).
  const config = dropNulls(structuredClone(body)) as JsonObject;
  if (typeof config.apiVersion !== "string" || config.apiVersion === "") throw new ApiError(400, "BadRequest", "apiVersion must be set in the applied configuration");
  if (typeof config.kind !== "string" || config.kind === "") throw new ApiError(400, "BadRequest", "kind must be set in the applied configuration");
  if (config.kind !== def.kind) {
    throw new ApiError(400, "BadRequest", `the kind of the applied configuration (${config.kind}) does not match the kind served here (${def.kind})`);
  }
  const group = config.apiVersion.includes("/") ? config.apiVersion.slice(0, config.apiVersion.indexOf("/")) : "";
  if (group !== def.group) {
    throw new ApiError(400, "BadRequest", `the apiVersion of the applied configuration (${config.apiVersion}) is not in group "${def.group}"`);
  }
  const meta = isRecord(config.metadata) ? config.metadata : {};
  config.metadata = meta;
  if (Array.isArray(meta.managedFields) ? meta.managedFields.length > 0 : meta.managedFields !== undefined) {
    throw new ApiError(400, "BadRequest", `metadata.managedFields must be nil but was ${JSON.stringify(meta.managedFields)}`);
  }
  delete meta.managedFields;
  for (const field of Object.keys(config)) {
    if (field !== "apiVersion" && field !== "kind" && field !== "metadata" && !ownable(def, opts.subresource, field)) delete config[field];
  }
  if (opts.subresource === "status") {
    // On /status an applier may set status only; identity metadata stays for matching.
    for (const field of Object.keys(meta)) if (field !== "name" && field !== "namespace" && field !== "resourceVersion") delete meta[field];
  }
  const live: KubeObject = current ? structuredClone(current) : {
    apiVersion: apiVersionOf(def),
    kind: def.kind,
    metadata: {
      name: (meta.name as string | undefined) ?? opts.name,
      ...(def.namespaced ? { namespace: (meta.namespace as string | undefined) ?? opts.namespace } : {}),
    },
  };
  let managers = readManagers(current);
  if (current && managers.length === 0) {
    // skipNonAppliedManager: fields of an object nobody tracked yet belong to "before-first-apply", so a first
    // apply conflicts with them instead of silently taking them over.
    const tracked = recordUpdateManagedFields(def, undefined, current, BEFORE_FIRST_APPLY, opts.now, opts.subresource);
    managers = readManagers(tracked);
  }
  const configIndex = indexFields(def, config, opts.subresource);
  const liveIndex = indexFields(def, live, opts.subresource);
  const newSet = configIndex.set;
  const newParents = parentsOf(newSet);
  const mine = managers.find((m) => sameManager(m, manager, "Apply", opts.subresource));
  const previous = mine?.set ?? new Set<string>();

  const conflicts: { manager: Manager; path: string }[] = [];
  for (const path of newSet) {
    if (newParents.has(path)) continue;
    if (!liveIndex.values.has(path)) continue;
    const applied = configIndex.values.get(path);
    const existing = liveIndex.values.get(path);
    if (deepEqual(existing, applied)) continue;
    for (const other of managers) {
      if (other === mine || !other.set.has(path)) continue;
      conflicts.push({ manager: other, path });
    }
  }
  if (conflicts.length > 0 && !opts.force) {
    // lastAppliedManager: kubectl moving from client-side to server-side apply may take the fields whose live
    // values are still what its last-applied annotation says; only the others conflict.
    const allowed = manager === "kubectl" ? lastAppliedAllowed(def, live, liveIndex, opts.subresource) : new Set<string>();
    const remaining = conflicts.filter((c) => !allowed.has(c.path));
    if (remaining.length > 0) throw conflictError(remaining);
  }
  for (const { manager: other, path } of conflicts) other.set.delete(path);

  const merged = applyMerge(def, [], live, config) as KubeObject;

  // Fields this manager applied before and dropped now go, unless someone else still owns them (or their children).
  const keep = new Set<string>();
  const addWithPrefixes = (path: string) => {
    const steps = splitPath(path);
    for (let i = 1; i <= steps.length; i++) keep.add(joinPath(steps.slice(0, i)));
  };
  for (const path of newSet) addWithPrefixes(path);
  for (const other of managers) if (other !== mine) for (const path of other.set) addWithPrefixes(path);
  const dropped = new Set([...previous].filter((path) => !keep.has(path)));
  // A dropped list element or map goes with everything under it: remove only the outermost dropped paths.
  const removed = [...dropped].filter((path) => {
    const steps = splitPath(path);
    for (let i = 1; i < steps.length; i++) if (dropped.has(joinPath(steps.slice(0, i)))) return false;
    // An element that stays keeps its key fields (structured-merge-diff's EnsureNamedFieldsAreMembers).
    const element = steps[steps.length - 2] ?? "";
    const last = steps[steps.length - 1] ?? "";
    if (element.startsWith("k:") && last.startsWith("f:") && Object.hasOwn(JSON.parse(element.slice(2)) as object, last.slice(2))) return false;
    return true;
  }).sort((a, b) => splitPath(b).length - splitPath(a).length);
  for (const path of removed) {
    removeAt(merged, path, def);
    pruneEmptyParents(merged, path, keep, def);
  }

  if (manager === "kubectl") syncLastApplied(merged, config);
  // An apply that changes no field is a no-op (structured-merge-diff returns no object, so the field manager keeps
  // the entry's time): re-applying the same intent leaves the object, resourceVersion included, as it was.
  const unchanged = current !== undefined && deepEqual(withoutManagedFields(merged), withoutManagedFields(current));
  const entry: Manager = mine ?? { manager, operation: "Apply", apiVersion: apiVersionOf(def), set: new Set(), ...(opts.subresource ? { subresource: opts.subresource } : {}) };
  entry.set = newSet;
  if (!unchanged || !entry.time) entry.time = timeOf(opts.now);
  entry.apiVersion = config.apiVersion;
  const all = mine ? managers : [...managers, entry];
  const written = writeManagers(all);
  merged.metadata = isRecord(merged.metadata) ? merged.metadata : {};
  if (written.length > 0) merged.metadata.managedFields = written;
  else delete merged.metadata.managedFields;
  return merged;
}

/** Paths of kubectl's last-applied configuration whose live values still equal it. */
function lastAppliedAllowed(def: ResourceDefinition, live: KubeObject, liveIndex: FieldIndex, subresource: string | undefined): Set<string> {
  const text = live.metadata?.annotations?.["kubectl.kubernetes.io/last-applied-configuration"];
  if (typeof text !== "string" || text === "") return new Set();
  let lastApplied: unknown;
  try {
    lastApplied = JSON.parse(text);
  } catch {
    return new Set();
  }
  if (!isRecord(lastApplied)) return new Set();
  const index = indexFields(def, lastApplied, subresource);
  const allowed = new Set<string>();
  for (const path of index.set) {
    if (liveIndex.values.has(path) && deepEqual(liveIndex.values.get(path), index.values.get(path))) allowed.add(path);
  }
  return allowed;
}

function withoutManagedFields(obj: KubeObject): Json {
  const { managedFields: _managedFields, ...metadata } = obj.metadata ?? {};
  return { ...obj, metadata };
}

function dropNulls(value: Json): Json {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (isRecord(value)) {
    for (const [key, child] of Object.entries(value)) {
      if (child === null) delete value[key];
      else value[key] = dropNulls(child);
    }
  }
  return value;
}

/** After removing a dropped field, maps it leaves empty go too when nobody owns them (no `labels: {}` left over). */
function pruneEmptyParents(obj: JsonObject, path: string, keep: Set<string>, def: ResourceDefinition): void {
  const steps = splitPath(path);
  for (let i = steps.length - 1; i >= 1; i--) {
    const parentKey = joinPath(steps.slice(0, i));
    if (keep.has(parentKey)) return;
    const value = valueAt(obj, parentKey, def);
    const empty = (isRecord(value) && Object.keys(value).length === 0) || (Array.isArray(value) && value.length === 0);
    if (!empty || (steps[i - 1] ?? "").startsWith("k:")) return;
    if (parentKey === joinPath(["f:metadata"])) return;
    removeAt(obj, parentKey, def);
  }
}

/** structured-merge-diff's merge of an applied configuration into the live object. */
function applyMerge(def: ResourceDefinition, names: string[], live: Json, config: Json): Json {
  if (isRecord(config)) {
    if (!isRecord(live) || isAtomicStruct(def, names)) return structuredClone(config);
    const out: JsonObject = live;
    for (const [key, value] of Object.entries(config)) {
      out[key] = applyMerge(def, [...names, key], out[key], value);
    }
    return out;
  }
  if (Array.isArray(config)) {
    const rule = listRule(def, names).ssa;
    if (!Array.isArray(live) || rule.type === "atomic") return structuredClone(config);
    let identify: (item: Json) => string | undefined;
    if (rule.type === "set") {
      identify = (item) => `v:${sortedJson(item)}`;
    } else {
      if (!config.every(isRecord)) return structuredClone(config);
      const listPath = names.join(".");
      for (const item of config) keyStep(item as JsonObject, rule.keys, listPath);
      identify = (item) => (isRecord(item) ? lookupKey(item, rule.keys) : undefined);
    }
    return mergeListItems(live, config, identify, (l, r) => (rule.type === "set" ? structuredClone(r) : applyMerge(def, [...names, "[]"], l, r)));
  }
  return structuredClone(config);
}

/**
 * structured-merge-diff's visitListItems order: live-only items keep their places, items the config names come in
 * the config's order (merged with their live version), new ones where the config puts them.
 */
function mergeListItems(live: Json[], config: Json[], identify: (item: Json) => string | undefined,
  merge: (live: Json, applied: Json) => Json): Json[] {
  const liveIds = live.map(identify);
  const configIds = config.map(identify);
  const liveById = new Map<string, Json>();
  liveIds.forEach((id, i) => { if (id !== undefined && !liveById.has(id)) liveById.set(id, live[i]); });
  const configSet = new Set(configIds.filter((id): id is string => id !== undefined));
  const shared = configIds.filter((id) => id !== undefined && liveById.has(id));
  let sharedIndex = 0;
  const nextShared = () => shared[sharedIndex];
  const merged = new Set<string>();
  const out: Json[] = [];
  let l = 0;
  let r = 0;
  while (l < live.length || r < config.length) {
    if (l < live.length && r < config.length) {
      const id = liveIds[l];
      if (id !== undefined && id === configIds[r]) {
        merged.add(id);
        out.push(merge(live[l], config[r]));
        l++;
        r++;
        sharedIndex++;
        continue;
      }
      if (id !== undefined && configSet.has(id) && nextShared() !== undefined && nextShared() !== id) {
        l++;
        continue;
      }
    }
    if (l < live.length) {
      const id = liveIds[l];
      if (id === undefined || !configSet.has(id)) {
        out.push(live[l]);
        l++;
        continue;
      }
      if (merged.has(id)) {
        l++;
        continue;
      }
    }
    if (r < config.length) {
      const id = configIds[r] as string;
      merged.add(id);
      out.push(liveById.has(id) ? merge(liveById.get(id), config[r]) : structuredClone(config[r]));
      r++;
      if (nextShared() === id) sharedIndex++;
    }
  }
  return out;
}

/** The 409 kube answers for apply conflicts (managedfields internal NewConflictError). */
function conflictError(conflicts: { manager: Manager; path: string }[]): ApiError {
  const describe = (m: Manager) => {
    let text = JSON.stringify(m.manager);
    if (m.subresource) text += ` with subresource ${JSON.stringify(m.subresource)}`;
    if (m.operation === "Update") text += m.time ? ` using ${m.apiVersion} at ${m.time}` : ` using ${m.apiVersion}`;
    return text;
  };
  const causes = conflicts.map((c) => ({ reason: "FieldManagerConflict", message: `conflict with ${describe(c.manager)}`, field: printPath(c.path) }));
  let message: string;
  if (conflicts.length === 1) {
    const only = conflicts[0] as { manager: Manager; path: string };
    message = `Apply failed with 1 conflict: conflict with ${describe(only.manager)}: ${printPath(only.path)}`;
  } else {
    const byManager = new Map<string, { manager: Manager; paths: string[] }>();
    for (const c of conflicts) {
      const key = describe(c.manager);
      const group = byManager.get(key) ?? { manager: c.manager, paths: [] };
      group.paths.push(printPath(c.path));
      byManager.set(key, group);
    }
    const lines: string[] = [];
    for (const key of [...byManager.keys()].sort()) {
      lines.push(`conflicts with ${key}:`);
      for (const path of byManager.get(key)?.paths ?? []) lines.push(`- ${path}`);
    }
    message = `Apply failed with ${conflicts.length} conflicts: ${lines.join("\n")}`;
  }
  return new ApiError(409, "Conflict", message, { causes });
}
