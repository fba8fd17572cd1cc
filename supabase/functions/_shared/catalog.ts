/**
 * The command catalogue generated from the Python registry
 * (`intent generate` writes command_schemas.json). Parsed and checked once at
 * start-up, each schema compiled once for @cfworker/json-schema, so a broken or
 * hand-edited file fails the function's cold start loudly instead of letting bad
 * commands through.
 */
import raw from "./command_schemas.json" with { type: "json" };
import { type Schema, Validator } from "@cfworker/json-schema";

export type { Schema };

/**
 * The keywords a payload schema may use: the ones the generator emits
 * (tools/codegen/json_schemas.py keeps the same list, and a test compares them). The
 * validator knows all of draft 2020-12; the list keeps a hand-edited catalogue from
 * carrying a rule nobody meant the function to enforce.
 */
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

export interface CommandSpec {
  readonly type: string;
  readonly aggregateType: string;
  /** The payload field (a UUID) naming the target aggregate. */
  readonly idField: string;
  readonly roles: readonly string[];
  readonly schema: Schema | boolean;
  /** The schema, compiled once (draft 2020-12, every failure reported). */
  readonly validator: Validator;
}

export interface Catalog {
  /** The SQL ingress's limit on the payload's JSON text (jsonb::text), in bytes. */
  readonly maxPayloadBytes: number;
  readonly commands: ReadonlyMap<string, CommandSpec>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Where each keyword outside the two lists sits in a schema; empty when all are known. */
export function unsupportedKeywords(schema: unknown, at = "#"): string[] {
  if (typeof schema === "boolean") return [];
  if (!isRecord(schema)) return [`${at} (not a schema)`];
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
      if (!isRecord(value)) {
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

/** A catalogue from the generated JSON; throws listing every problem found. */
export function parseCatalog(document: unknown): Catalog {
  const problems: string[] = [];
  const commands = new Map<string, CommandSpec>();
  if (!isRecord(document)) throw new Error("command catalogue: not a JSON object");
  const limit = document.max_payload_bytes;
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1) {
    problems.push("max_payload_bytes must be a positive integer");
  }
  const entries = isRecord(document.commands) ? Object.entries(document.commands) : [];
  if (!isRecord(document.commands)) problems.push("commands must be an object");
  for (const [type, entry] of entries) {
    if (
      !isRecord(entry) || typeof entry.aggregate_type !== "string" ||
      typeof entry.aggregate_id_field !== "string" || !Array.isArray(entry.roles) ||
      !(isRecord(entry.schema) || typeof entry.schema === "boolean")
    ) {
      problems.push(`${type}: needs aggregate_type, aggregate_id_field, roles and schema`);
      continue;
    }
    const unknown = unsupportedKeywords(entry.schema);
    if (unknown.length > 0) {
      problems.push(`${type}: unsupported schema keywords ${unknown.join(", ")}`);
      continue;
    }
    const schema = entry.schema as Schema | boolean;
    let validator: Validator;
    try {
      validator = new Validator(schema, "2020-12", false);
    } catch (error) {
      problems.push(`${type}: the schema does not compile (${String(error)})`);
      continue;
    }
    commands.set(type, {
      type,
      aggregateType: entry.aggregate_type,
      idField: entry.aggregate_id_field,
      roles: entry.roles.map(String),
      schema,
      validator,
    });
  }
  if (problems.length > 0) {
    throw new Error(`command catalogue: ${problems.join("; ")}`);
  }
  return { maxPayloadBytes: limit as number, commands };
}

/** The catalogue shipped with the function. */
export const catalog: Catalog = parseCatalog(raw);
