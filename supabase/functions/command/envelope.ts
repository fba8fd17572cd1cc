/**
 * The request body: `{type, payload, aggregateId?, commandId?, wait?}`, checked
 * against the catalogue generated from the Python registry. Everything here is
 * pure, so every refusal is unit-tested without a network.
 */
import type { Catalog, CommandSpec } from "../_shared/catalog.ts";
import { ApiError } from "./errors.ts";
import { isUuid } from "./headers.ts";
import { oversized, schemaProblems, unstorable } from "./payload.ts";

/** The longest a caller may ask the function to wait for the outcome, in seconds. */
export const MAX_WAIT_SECONDS = 10;

const FIELDS = new Set(["type", "payload", "aggregateId", "commandId", "wait"]);

export interface Envelope {
  spec: CommandSpec;
  payload: Record<string, unknown>;
  aggregateId: string;
  commandId: string | null;
  /** How long to wait for the outcome, in milliseconds; 0 = answer at once. */
  waitMs: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(message: string, details?: unknown): ApiError {
  return new ApiError(400, "invalid_envelope", message, details);
}

/** `wait`: absent/false = do not wait, true = the longest wait, a number = seconds. */
export function waitMilliseconds(wait: unknown): number {
  if (wait === undefined || wait === null || wait === false) return 0;
  if (wait === true) return MAX_WAIT_SECONDS * 1000;
  if (typeof wait === "number" && Number.isFinite(wait) && wait >= 0 && wait <= MAX_WAIT_SECONDS) {
    return Math.round(wait * 1000);
  }
  throw invalid(`wait must be a boolean or a number of seconds from 0 to ${MAX_WAIT_SECONDS}.`, {
    field: "wait",
  });
}

/** The body's JSON text, parsed (refusing what is not JSON). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiError(400, "malformed_json", "The body is not valid JSON.", {
      reason: error instanceof Error ? error.message : String(error),
    });
  }
}

/** The checked command: known type, consistent aggregate id, payload valid and storable. */
export function parseEnvelope(body: unknown, catalog: Catalog): Envelope {
  if (!isRecord(body)) {
    throw invalid(
      "The body must be a JSON object: {type, payload, aggregateId?, commandId?, wait?}.",
    );
  }
  const unknown = Object.keys(body).filter((key) => !FIELDS.has(key)).sort();
  if (unknown.length > 0) {
    throw invalid(`Unknown field(s): ${unknown.join(", ")}.`, { unknown });
  }
  const { type, payload, aggregateId, commandId } = body;
  if (typeof type !== "string" || type === "") {
    throw invalid("type must be a command type name.", { field: "type" });
  }
  if (!isRecord(payload)) {
    throw invalid("payload must be a JSON object.", { field: "payload" });
  }
  if (aggregateId !== undefined && !isUuid(aggregateId)) {
    throw invalid("aggregateId must be a UUID.", { field: "aggregateId" });
  }
  if (commandId !== undefined && commandId !== null && !isUuid(commandId)) {
    throw invalid("commandId must be a UUID.", { field: "commandId" });
  }
  const waitMs = waitMilliseconds(body.wait);

  const spec = catalog.commands.get(type);
  if (spec === undefined) {
    throw new ApiError(
      400,
      "unknown_command_type",
      `Unknown command type ${JSON.stringify(type.slice(0, 100))}.`,
      {
        type: type.slice(0, 100),
      },
    );
  }

  // aggregateId and the payload's id field must agree; aggregateId fills a missing one.
  const merged: Record<string, unknown> = { ...payload };
  const inPayload = payload[spec.idField];
  if (aggregateId !== undefined) {
    if (inPayload === undefined) {
      merged[spec.idField] = aggregateId;
    } else if (
      !(typeof inPayload === "string" && inPayload.toLowerCase() === aggregateId.toLowerCase())
    ) {
      throw new ApiError(
        400,
        "aggregate_id_mismatch",
        `aggregateId and payload.${spec.idField} name different aggregates.`,
        { field: spec.idField },
      );
    }
  }

  // Storable and within the size first: what PostgreSQL could not take at all is the more
  // basic answer. The SQL ingress stays the authority on size (its PT413 is the same answer).
  const text = JSON.stringify(merged);
  const unfit = unstorable(merged, text);
  if (unfit.length > 0) {
    throw new ApiError(400, "invalid_payload", `${type}: the payload cannot be stored as given.`, {
      errors: unfit,
    });
  }
  const bytes = oversized(text, catalog.maxPayloadBytes);
  if (bytes !== null) {
    throw new ApiError(
      413,
      "payload_too_large",
      `The payload is larger than ${catalog.maxPayloadBytes} bytes of JSON.`,
      { bytes, limit: catalog.maxPayloadBytes },
    );
  }

  const problems = schemaProblems(spec.validator, spec.schema, merged);
  if (problems.length > 0) {
    const summary = problems.slice(0, 3).map((p) => `${p.path || "(payload)"}: ${p.message}`);
    throw new ApiError(
      400,
      "invalid_payload",
      `${type}: invalid payload: ${summary.join("; ")}${problems.length > 3 ? "; ..." : ""}`,
      { errors: problems },
    );
  }

  return {
    spec,
    payload: merged,
    aggregateId: String(merged[spec.idField]).toLowerCase(),
    commandId: typeof commandId === "string" ? commandId.toLowerCase() : null,
    waitMs,
  };
}
