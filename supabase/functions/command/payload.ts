/**
 * What the function checks of a payload before it calls the SQL ingress, which stays
 * the authority on sizes, ranges and depth (`public.submit_command`,
 * `intent.payload_problem`):
 *
 * - `oversized`: a payload the ingress would refuse as too large for certain, so that it
 *   gets that answer (413) rather than a schema error about one of its fields;
 * - `unstorable`: what cannot reach the ingress intact: text with `\u0000` or a lone
 *   UTF-16 surrogate, which PostgreSQL's jsonb refuses, integers beyond ±(2^53 - 1),
 *   which `JSON.parse` has already rounded, and numbers it made infinite (1e400);
 * - `schemaProblems`: the command type's JSON Schema, checked by @cfworker/json-schema,
 *   its output turned into `[{path, keyword, message}]` (JSON Pointers into the payload).
 *
 * The fast path is one `JSON.stringify` and a few quick scans of its text; the payload
 * is walked only when a scan finds something suspect.
 */
import type { OutputUnit, Validator } from "@cfworker/json-schema";

/** One failed rule: where (a JSON Pointer into the payload), which keyword, why. */
export interface SchemaProblem {
  path: string;
  keyword: string;
  message: string;
}

/** A value the SQL ingress cannot be given as it is. */
export interface ValueProblem {
  path: string;
  message: string;
}

const MAX_PROBLEMS = 20;

// -- size ------------------------------------------------------------------------------------

/**
 * The payload's size as compact JSON (UTF-8 bytes) when that alone is over `limit`, else
 * null. PostgreSQL prints jsonb with a space after every `,` and `:`, the same escapes and
 * numbers never shorter, so its text is never smaller: this refuses nothing the ingress
 * would take. What it lets through, the ingress measures exactly (PT413, the same answer).
 */
export function oversized(text: string, limit: number): number | null {
  // UTF-16 units never outnumber UTF-8 bytes (a lone surrogate is written as an escape).
  if (text.length * 3 <= limit) return null;
  const bytes = text.length > limit ? text.length : new TextEncoder().encode(text).length;
  return bytes > limit ? bytes : null;
}

// -- what cannot be stored -------------------------------------------------------------------

// JSON.stringify writes U+0000 and lone surrogates as these escapes (lower-case hex); a
// match may also be a backslash-escaped backslash, which the walk then clears.
const SUSPECT_TEXT = /\\u(?:0000|d[89a-f])/;
// An integer beyond 2^53 is written with 16 digits or more, or with an exponent. (Spelt
// out: V8 runs `\d{16}` and alternations several times slower.)
const SUSPECT_DIGITS = /\d\d\d\d\d\d\d\d\d\d\d\d\d\d\d\d/;

function escapePointer(segment: string | number): string {
  return String(segment).replaceAll("~", "~0").replaceAll("/", "~1");
}

function textProblem(text: string): string | null {
  if (text.includes("\u0000")) return "contains \\u0000, which PostgreSQL text cannot hold";
  if (!text.isWellFormed()) return "contains an unpaired UTF-16 surrogate";
  return null;
}

/**
 * What in the payload the ingress cannot be given (up to 20), given the payload and its
 * JSON text. Iterative, so a deeply nested payload cannot exhaust the stack.
 */
export function unstorable(value: unknown, text: string): ValueProblem[] {
  if (
    !SUSPECT_TEXT.test(text) && !SUSPECT_DIGITS.test(text) && !text.includes("e+") &&
    !text.includes("null") // how JSON.stringify writes the Infinity that 1e400 parses to
  ) return [];
  const problems: ValueProblem[] = [];
  const stack: Array<[unknown, string]> = [[value, ""]];
  while (stack.length > 0 && problems.length < MAX_PROBLEMS) {
    const [current, path] = stack.pop()!;
    if (typeof current === "string") {
      const problem = textProblem(current);
      if (problem) problems.push({ path, message: problem });
    } else if (typeof current === "number") {
      if (!Number.isFinite(current)) {
        problems.push({ path, message: "is not a finite number" });
      } else if (Number.isInteger(current) && !Number.isSafeInteger(current)) {
        problems.push({
          path,
          message: "is an integer beyond ±(2^53 - 1), which cannot be carried exactly; " +
            "send it as a string",
        });
      }
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) stack.push([current[i], `${path}/${i}`]);
    } else if (typeof current === "object" && current !== null) {
      const keys = Object.keys(current);
      for (let i = keys.length - 1; i >= 0; i--) {
        stack.push([
          (current as Record<string, unknown>)[keys[i]],
          `${path}/${escapePointer(keys[i])}`,
        ]);
      }
      for (const key of keys) {
        const problem = textProblem(key);
        if (problem) problems.push({ path: `${path}/${escapePointer(key)}`, message: problem });
      }
    }
  }
  return problems;
}

// -- the schema ------------------------------------------------------------------------------

// Keywords whose failure @cfworker/json-schema reports with the failures below them: the
// ones below say what is wrong, these only where they sit.
const CONTAINERS = new Set([
  "properties",
  "patternProperties",
  "additionalProperties",
  "unevaluatedProperties",
  "items",
  "prefixItems",
  "additionalItems",
  "unevaluatedItems",
  "allOf",
  "$ref",
  "$recursiveRef",
  "if",
  "propertyNames",
  "dependentSchemas",
]);

const FORMATS: Readonly<Record<string, string>> = {
  uuid: "must be a UUID",
  date: "must be a date (YYYY-MM-DD)",
  "date-time": "must be an RFC 3339 date-time",
};

/** A JSON Pointer (or URI fragment) of the library's output, as segments. */
function segments(location: string): string[] {
  const pointer = pointerOf(location);
  if (pointer === "") return [];
  const parts = pointer.slice(1).split("/");
  if (!pointer.includes("~")) return parts;
  return parts.map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function at(root: unknown, path: string[]): unknown {
  let node = root;
  for (const segment of path) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string, unknown>)[segment];
  }
  return node;
}

/** The library's locations are URI fragments (`#/a%20b`); the answer's are JSON Pointers. */
function pointerOf(location: string): string {
  if (!location.startsWith("#")) return location;
  const pointer = location.slice(1);
  return pointer.includes("%") ? decodeURIComponent(pointer) : pointer;
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** A boolean `false` schema's failure: the library gives its instance as its location. */
function isFalseSchema(unit: OutputUnit): boolean {
  return unit.keyword === "false";
}

function leaf(unit: OutputUnit, schema: unknown, instance: unknown): SchemaProblem {
  const path = pointerOf(unit.instanceLocation);
  const keyword = unit.keyword;
  const rule = keyword === "false" ? false : at(schema, segments(unit.keywordLocation));
  const problem = (message: string, where = path) => ({ path: where, keyword, message });
  switch (keyword) {
    case "type": {
      const types = Array.isArray(rule) ? rule : [rule];
      const value = at(instance, segments(unit.instanceLocation));
      return problem(`must be ${types.join(" or ")}, not ${jsonType(value)}`);
    }
    case "enum":
      return problem(`must be one of ${(rule as unknown[]).map(describe).join(", ")}`);
    case "const":
      return problem(`must be ${describe(rule)}`);
    case "required": {
      const name = /property "(.*)"\.$/s.exec(unit.error)?.[1] ?? "";
      return problem("is required", `${path}/${escapePointer(name)}`);
    }
    case "false":
      return problem("is not allowed");
    case "minProperties":
      return problem(`must have at least ${rule} fields`);
    case "maxProperties":
      return problem(`must have at most ${rule} fields`);
    case "minItems":
      return problem(`must have at least ${rule} items`);
    case "maxItems":
      return problem(`must have at most ${rule} items`);
    case "uniqueItems": {
      const second = /and (\d+)\.$/.exec(unit.error)?.[1];
      return problem("must not repeat an item", second ? `${path}/${second}` : path);
    }
    case "minLength":
      return problem(`must be at least ${rule} characters long`);
    case "maxLength":
      return problem(`must be at most ${rule} characters long`);
    case "pattern":
      return problem(`must match the pattern ${rule}`);
    case "format":
      return problem(FORMATS[String(rule)] ?? `must be a valid ${rule}`);
    case "minimum":
      return problem(`must be at least ${rule}`);
    case "maximum":
      return problem(`must be at most ${rule}`);
    case "exclusiveMinimum":
      return problem(`must be greater than ${rule}`);
    case "exclusiveMaximum":
      return problem(`must be less than ${rule}`);
    case "multipleOf":
      return problem(`must be a multiple of ${rule}`);
    case "not":
      return problem("matches a form that is not allowed");
    case "anyOf":
      return problem("does not match any of the allowed forms");
    case "oneOf":
      return problem(
        /\(0 matches\)/.test(unit.error)
          ? "does not match any of the allowed forms"
          : "matches more than one of the allowed forms",
      );
    default:
      return problem(unit.error);
  }
}

/**
 * The library's units without what a failed `type` makes moot: the other rules of the same
 * (sub)schema would only repeat the same mistake.
 */
function withoutMoot(units: OutputUnit[]): OutputUnit[] {
  // Per instance location, the failed types there and the (sub)schemas holding them.
  const typed = new Map<string, Array<[OutputUnit, string]>>();
  for (const unit of units) {
    if (unit.keyword !== "type") continue;
    const here = typed.get(unit.instanceLocation) ?? [];
    here.push([unit, unit.keywordLocation.slice(0, -"type".length)]);
    typed.set(unit.instanceLocation, here);
  }
  if (typed.size === 0) return units;
  const kept: OutputUnit[] = [];
  let droppedLast = false;
  for (const unit of units) {
    const moot: boolean = isFalseSchema(unit) && unit.keywordLocation === unit.instanceLocation
      ? droppedLast // a false schema's failure follows the unit that holds it
      : (typed.get(unit.instanceLocation) ?? []).some(([t, holder]) =>
        t !== unit && unit.keywordLocation.startsWith(holder)
      );
    droppedLast = moot;
    if (!moot) kept.push(unit);
  }
  return kept;
}

/**
 * Whether `unit`, following units that do, sits below the `anyOf`/`oneOf` at `location`. A
 * false schema's failure is located at its instance, right after the unit holding it.
 */
function below(unit: OutputUnit, location: string): boolean {
  if (unit.keywordLocation.startsWith(`${location}/`)) return true;
  return isFalseSchema(unit) && unit.keywordLocation === unit.instanceLocation;
}

function collect(
  units: OutputUnit[],
  from: number,
  to: number,
  schema: unknown,
  instance: unknown,
  out: SchemaProblem[],
): void {
  let i = from;
  while (i < to) {
    const unit = units[i];
    if (unit.keyword === "anyOf" || unit.keyword === "oneOf") {
      const location = unit.keywordLocation;
      let end = i + 1;
      const branchOf: number[] = [];
      while (end < to && below(units[end], location)) {
        const rest = units[end].keywordLocation.slice(location.length + 1);
        const index = units[end].keywordLocation.startsWith(`${location}/`)
          ? Number.parseInt(rest, 10)
          : (branchOf.at(-1) ?? 0);
        branchOf.push(index);
        end++;
      }
      if (unit.keyword === "anyOf") {
        out.push(...closestBranch(units, i, end, branchOf, schema, instance, unit));
      } else {
        out.push(leaf(unit, schema, instance));
      }
      i = end;
      continue;
    }
    if (!CONTAINERS.has(unit.keyword)) {
      const problem = leaf(unit, schema, instance);
      // `additionalProperties: false`: the field is the one not allowed.
      if (unit.keyword === "false" && units[i - 1]?.keyword === "additionalProperties") {
        problem.keyword = "additionalProperties";
      }
      out.push(problem);
    }
    i++;
  }
}

/** A failed `anyOf`: the branch that came closest, when one got past the type check. */
function closestBranch(
  units: OutputUnit[],
  start: number,
  end: number,
  branchOf: number[],
  schema: unknown,
  instance: unknown,
  anyOf: OutputUnit,
): SchemaProblem[] {
  const branches = new Map<number, SchemaProblem[]>();
  let j = start + 1;
  while (j < end) {
    const index = branchOf[j - start - 1];
    let k = j;
    while (k < end && branchOf[k - start - 1] === index) k++;
    const found = branches.get(index) ?? [];
    collect(units, j, k, schema, instance, found);
    branches.set(index, found);
    j = k;
  }
  const path = pointerOf(anyOf.instanceLocation);
  const near = [...branches.values()].filter((b) =>
    b.length > 0 && !(b[0].keyword === "type" && b[0].path === path)
  );
  return near.length === 1 ? near[0] : [leaf(anyOf, schema, instance)];
}

/** Every rule `value` breaks (up to 20) of the schema `validator` was built from. */
export function schemaProblems(
  validator: Validator,
  schema: unknown,
  value: unknown,
): SchemaProblem[] {
  try {
    const result = validator.validate(value);
    if (result.valid) return [];
    const units = withoutMoot(result.errors);
    const problems: SchemaProblem[] = [];
    collect(units, 0, units.length, schema, value, problems);
    return inPayloadOrder(problems, value).slice(0, MAX_PROBLEMS);
  } catch (error) {
    // Nothing a JSON payload should cause (a stack overflow comparing two deeply nested
    // items, say); answered as a refusal, never as a crash.
    const reason = error instanceof Error ? error.name : "error";
    return [{ path: "", keyword: "schema", message: `could not be checked (${reason})` }];
  }
}

/**
 * Problems in the order of the payload's own fields (the library goes by the schema's),
 * a missing field before the fields present; stable otherwise.
 */
function inPayloadOrder(problems: SchemaProblem[], value: unknown): SchemaProblem[] {
  if (problems.length < 2) return problems;
  const positions = new Map<object, Map<string, number>>(); // each object's keys, indexed once
  const rank = (path: string): number[] => {
    const ranks: number[] = [];
    let node = value;
    for (const segment of segments(path)) {
      if (Array.isArray(node)) {
        ranks.push(Number(segment));
      } else if (typeof node === "object" && node !== null) {
        let keys = positions.get(node);
        if (keys === undefined) {
          keys = new Map(Object.keys(node).map((key, i) => [key, i]));
          positions.set(node, keys);
        }
        ranks.push(keys.get(segment) ?? -1);
      } else {
        break;
      }
      node = (node as Record<string, unknown>)[segment];
    }
    return ranks;
  };
  const ranked = problems.map((problem, index) => ({ problem, index, rank: rank(problem.path) }));
  ranked.sort((a, b) => {
    for (let i = 0; i < Math.min(a.rank.length, b.rank.length); i++) {
      if (a.rank[i] !== b.rank[i]) return a.rank[i] - b.rank[i];
    }
    return a.rank.length - b.rank.length || a.index - b.index;
  });
  return ranked.map((r) => r.problem);
}
