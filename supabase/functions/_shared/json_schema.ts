/**
 * A small JSON Schema (draft 2020-12) validator for the payload schemas that
 * `intent schemas generate` writes from the pydantic models.
 *
 * Why not a library: edge functions import npm packages only, and these schemas
 * use a small, known set of keywords. The generator refuses any keyword outside
 * VALIDATION_KEYWORDS (tools/json_schemas.py keeps the same list, and a test
 * compares them), so a schema never reaches this code with a rule it would skip.
 * `format` is an annotation in 2020-12; the formats pydantic emits for our types
 * (uuid, date-time, date) are asserted, others are left to the domain.
 */

export type Schema = boolean | { readonly [keyword: string]: unknown };

/** One failed rule: where (a JSON Pointer into the payload), which keyword, why. */
export interface SchemaProblem {
  path: string;
  keyword: string;
  message: string;
}

export const VALIDATION_KEYWORDS: readonly string[] = [
  "type",
  "enum",
  "const",
  "properties",
  "required",
  "additionalProperties",
  "patternProperties",
  "minProperties",
  "maxProperties",
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "uniqueItems",
  "minLength",
  "maxLength",
  "pattern",
  "format",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "anyOf",
  "oneOf",
  "allOf",
  "not",
];

export const ANNOTATION_KEYWORDS: readonly string[] = [
  "$schema",
  "title",
  "description",
  "default",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
  "$comment",
];

const validationKeywords = new Set(VALIDATION_KEYWORDS);
const annotationKeywords = new Set(ANNOTATION_KEYWORDS);
const MAX_PROBLEMS = 20;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

type Json = { readonly [key: string]: unknown };

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Where each unsupported keyword sits in a schema; empty when all are known. */
export function unsupportedKeywords(schema: unknown, at = "#"): string[] {
  if (typeof schema === "boolean") return [];
  if (!isObject(schema)) return [`${at} (not a schema)`];
  const found: string[] = [];
  for (const [key, value] of Object.entries(schema)) {
    const here = `${at}/${key}`;
    if (annotationKeywords.has(key)) continue;
    if (!validationKeywords.has(key)) {
      found.push(here);
    } else if (key === "additionalProperties" || key === "items" || key === "not") {
      found.push(...unsupportedKeywords(value, here));
    } else if (["prefixItems", "anyOf", "oneOf", "allOf"].includes(key)) {
      const list = Array.isArray(value) ? value : [value];
      list.forEach((item, i) => found.push(...unsupportedKeywords(item, `${here}/${i}`)));
    } else if (key === "properties" || key === "patternProperties") {
      if (!isObject(value)) {
        found.push(`${here} (not an object)`);
        continue;
      }
      for (const [name, item] of Object.entries(value)) {
        found.push(...unsupportedKeywords(item, `${here}/${name}`));
      }
    }
  }
  return found;
}

/** JSON Pointer segment escaping (RFC 6901). */
export function pointer(base: string, segment: string | number): string {
  return `${base}/${String(segment).replaceAll("~", "~0").replaceAll("/", "~1")}`;
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case "null":
      return value === null;
    case "boolean":
      return typeof value === "boolean";
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "integer":
      return typeof value === "number" && Number.isInteger(value);
    case "array":
      return Array.isArray(value);
    case "object":
      return isObject(value);
    default:
      return false;
  }
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length &&
      keys.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

function validDate(text: string): boolean {
  const match = DATE.exec(text);
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day;
}

function formatProblem(format: string, text: string): string | null {
  switch (format) {
    case "uuid":
      return UUID.test(text) ? null : "must be a UUID";
    case "date":
      return validDate(text) ? null : "must be a date (YYYY-MM-DD)";
    case "date-time": {
      const match = DATE_TIME.exec(text);
      const ok = match !== null && validDate(match[1]) && Number(match[2]) < 24 &&
        Number(match[3]) < 60 && Number(match[4]) < 61;
      return ok ? null : "must be an RFC 3339 date-time";
    }
    default:
      return null; // an annotation only
  }
}

const patterns = new Map<string, RegExp>();

function regex(source: string): RegExp {
  let compiled = patterns.get(source);
  if (!compiled) {
    compiled = new RegExp(source, "u");
    patterns.set(source, compiled);
  }
  return compiled;
}

function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** Every rule `value` breaks (up to 20), or an empty list when it is valid. */
export function validate(schema: Schema, value: unknown, path = ""): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  check(schema, value, path, problems);
  return problems.slice(0, MAX_PROBLEMS);
}

function check(schema: Schema, value: unknown, path: string, out: SchemaProblem[]): void {
  if (out.length >= MAX_PROBLEMS) return;
  if (schema === true) return;
  if (schema === false) {
    out.push({ path, keyword: "false", message: "is not allowed" });
    return;
  }
  const s = schema;
  const add = (keyword: string, message: string, at = path) =>
    out.push({ path: at, keyword, message });

  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type as string[] : [s.type as string];
    if (!types.some((t) => hasType(value, t))) {
      add("type", `must be ${types.join(" or ")}, not ${jsonType(value)}`);
      return; // the other rules would only repeat the same mistake
    }
  }
  if (s.enum !== undefined && !(s.enum as unknown[]).some((v) => deepEqual(v, value))) {
    add("enum", `must be one of ${(s.enum as unknown[]).map(describe).join(", ")}`);
  }
  if (s.const !== undefined && !deepEqual(s.const, value)) {
    add("const", `must be ${describe(s.const)}`);
  }

  if (typeof value === "string") checkString(s, value, add);
  if (typeof value === "number") checkNumber(s, value, add);
  if (Array.isArray(value)) checkArray(s, value, path, out, add);
  if (isObject(value)) checkObject(s, value, path, out, add);

  if (s.allOf !== undefined) {
    for (const sub of s.allOf as Schema[]) check(sub, value, path, out);
  }
  if (s.anyOf !== undefined) {
    const branches = (s.anyOf as Schema[]).map((sub) => validate(sub, value, path));
    if (!branches.some((b) => b.length === 0)) {
      // Show the branch that came closest, when one got past the type check.
      const near = branches.filter((b) => !(b[0].keyword === "type" && b[0].path === path));
      if (near.length === 1) out.push(...near[0]);
      else add("anyOf", "does not match any of the allowed forms");
    }
  }
  if (s.oneOf !== undefined) {
    const matches = (s.oneOf as Schema[]).filter((sub) => validate(sub, value, path).length === 0);
    if (matches.length !== 1) {
      add(
        "oneOf",
        matches.length === 0
          ? "does not match any of the allowed forms"
          : "matches more than one of the allowed forms",
      );
    }
  }
  if (s.not !== undefined && validate(s.not as Schema, value, path).length === 0) {
    add("not", "matches a form that is not allowed");
  }
}

type Add = (keyword: string, message: string, at?: string) => void;

function checkString(s: Json, value: string, add: Add): void {
  if (typeof s.minLength === "number" || typeof s.maxLength === "number") {
    const length = codePoints(value);
    if (typeof s.minLength === "number" && length < s.minLength) {
      add("minLength", `must be at least ${s.minLength} characters long`);
    }
    if (typeof s.maxLength === "number" && length > s.maxLength) {
      add("maxLength", `must be at most ${s.maxLength} characters long`);
    }
  }
  if (typeof s.pattern === "string" && !regex(s.pattern).test(value)) {
    add("pattern", `must match the pattern ${s.pattern}`);
  }
  if (typeof s.format === "string") {
    const problem = formatProblem(s.format, value);
    if (problem) add("format", problem);
  }
}

function checkNumber(s: Json, value: number, add: Add): void {
  if (typeof s.minimum === "number" && value < s.minimum) {
    add("minimum", `must be at least ${s.minimum}`);
  }
  if (typeof s.maximum === "number" && value > s.maximum) {
    add("maximum", `must be at most ${s.maximum}`);
  }
  if (typeof s.exclusiveMinimum === "number" && value <= s.exclusiveMinimum) {
    add("exclusiveMinimum", `must be greater than ${s.exclusiveMinimum}`);
  }
  if (typeof s.exclusiveMaximum === "number" && value >= s.exclusiveMaximum) {
    add("exclusiveMaximum", `must be less than ${s.exclusiveMaximum}`);
  }
  if (typeof s.multipleOf === "number" && s.multipleOf > 0) {
    const ratio = value / s.multipleOf;
    if (Math.abs(ratio - Math.round(ratio)) > 1e-9) {
      add("multipleOf", `must be a multiple of ${s.multipleOf}`);
    }
  }
}

function checkArray(
  s: Json,
  value: unknown[],
  path: string,
  out: SchemaProblem[],
  add: Add,
): void {
  if (typeof s.minItems === "number" && value.length < s.minItems) {
    add("minItems", `must have at least ${s.minItems} items`);
  }
  if (typeof s.maxItems === "number" && value.length > s.maxItems) {
    add("maxItems", `must have at most ${s.maxItems} items`);
  }
  if (s.uniqueItems === true) {
    const duplicate = value.findIndex((item, i) =>
      value.slice(0, i).some((o) => deepEqual(o, item))
    );
    if (duplicate >= 0) add("uniqueItems", "must not repeat an item", pointer(path, duplicate));
  }
  const prefix = Array.isArray(s.prefixItems) ? s.prefixItems as Schema[] : [];
  value.forEach((item, i) => {
    const sub = i < prefix.length ? prefix[i] : s.items as Schema | undefined;
    if (sub !== undefined) check(sub, item, pointer(path, i), out);
  });
}

function checkObject(s: Json, value: Json, path: string, out: SchemaProblem[], add: Add): void {
  const keys = Object.keys(value);
  if (typeof s.minProperties === "number" && keys.length < s.minProperties) {
    add("minProperties", `must have at least ${s.minProperties} fields`);
  }
  if (typeof s.maxProperties === "number" && keys.length > s.maxProperties) {
    add("maxProperties", `must have at most ${s.maxProperties} fields`);
  }
  for (const name of (s.required as string[] | undefined) ?? []) {
    if (!Object.hasOwn(value, name)) add("required", "is required", pointer(path, name));
  }
  const properties = isObject(s.properties) ? s.properties : {};
  const patternRules = isObject(s.patternProperties)
    ? Object.entries(s.patternProperties).map(([p, sub]) => [regex(p), sub] as const)
    : [];
  for (const key of keys) {
    const at = pointer(path, key);
    let matched = false;
    if (Object.hasOwn(properties, key)) {
      matched = true;
      check(properties[key] as Schema, value[key], at, out);
    }
    for (const [re, sub] of patternRules) {
      if (re.test(key)) {
        matched = true;
        check(sub as Schema, value[key], at, out);
      }
    }
    if (!matched && s.additionalProperties !== undefined) {
      if (s.additionalProperties === false) add("additionalProperties", "is not allowed", at);
      else check(s.additionalProperties as Schema, value[key], at, out);
    }
  }
}
