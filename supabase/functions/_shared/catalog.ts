/**
 * The command catalogue generated from the Python registry
 * (`intent schemas generate` writes command_schemas.json). Parsed and checked
 * once at start-up, so a broken or hand-edited file fails the function's cold
 * start loudly instead of letting bad commands through.
 */
import raw from "./command_schemas.json" with { type: "json" };
import { type Schema, unsupportedKeywords } from "./json_schema.ts";

export interface CommandSpec {
  readonly type: string;
  readonly aggregateType: string;
  /** The payload field (a UUID) naming the target aggregate. */
  readonly idField: string;
  readonly roles: readonly string[];
  readonly schema: Schema;
}

export interface Catalog {
  /** The SQL ingress's limit on the payload's JSON text (jsonb::text), in bytes. */
  readonly maxPayloadBytes: number;
  readonly commands: ReadonlyMap<string, CommandSpec>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
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
    commands.set(type, {
      type,
      aggregateType: entry.aggregate_type,
      idField: entry.aggregate_id_field,
      roles: entry.roles.map(String),
      schema: entry.schema as Schema,
    });
  }
  if (problems.length > 0) {
    throw new Error(`command catalogue: ${problems.join("; ")}`);
  }
  return { maxPayloadBytes: limit as number, commands };
}

/** The catalogue shipped with the function. */
export const catalog: Catalog = parseCatalog(raw);
