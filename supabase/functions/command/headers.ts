/** Reading the request's headers: content type, bearer token, correlation and trace. */
import { ApiError } from "./errors.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX = /^[0-9a-f]+$/;

export function isUuid(value: unknown): value is string {
  return typeof value === "string" && UUID.test(value);
}

/** application/json, with or without parameters (charset=utf-8). */
export function isJsonContentType(header: string | null): boolean {
  if (header === null) return false;
  const [mediaType, ...params] = header.split(";").map((part) => part.trim().toLowerCase());
  if (mediaType !== "application/json") return false;
  const charset = params.find((p) => p.startsWith("charset="));
  return charset === undefined || ["charset=utf-8", 'charset="utf-8"'].includes(charset);
}

/** The caller's Authorization header, which must carry a bearer token. */
export function bearer(header: string | null): string {
  const match = header === null ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) {
    throw new ApiError(
      401,
      "missing_authorization",
      "Send the user's access token as `Authorization: Bearer <jwt>`.",
    );
  }
  return `Bearer ${match[1]}`;
}

/** The x-correlation-id header: a UUID when given (refused otherwise), else a new one. */
export function correlationId(header: string | null, newId: () => string): string {
  if (header === null || header.trim() === "") return newId();
  const value = header.trim();
  if (!isUuid(value)) {
    throw new ApiError(400, "invalid_correlation_id", "x-correlation-id must be a UUID.", {
      header: "x-correlation-id",
    });
  }
  return value.toLowerCase();
}

export interface TraceContext {
  traceId: string;
  parentId: string;
  flags: string;
}

export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.parentId}-${context.flags}`;
}

/**
 * A W3C traceparent header (https://www.w3.org/TR/trace-context/#traceparent-header),
 * or null when it is absent or invalid. Version 00 must be exactly four fields;
 * a higher version is read by its first four fields (and passed on as 00, the
 * version we speak). All-zero ids, version ff and upper-case hex are invalid.
 */
export function parseTraceparent(header: string | null): TraceContext | null {
  if (header === null) return null;
  const value = header.trim();
  const parts = value.split("-");
  if (parts.length < 4) return null;
  const [version, traceId, parentId, flags] = parts;
  const hex = (text: string, length: number) => text.length === length && HEX.test(text);
  if (!hex(version, 2) || version === "ff") return null;
  if (version === "00" ? parts.length !== 4 : value.length > 55 && value[55] !== "-") {
    return null;
  }
  if (!hex(traceId, 32) || /^0+$/.test(traceId)) return null;
  if (!hex(parentId, 16) || /^0+$/.test(parentId)) return null;
  if (!hex(flags, 2)) return null;
  return { traceId, parentId, flags };
}

function randomHex(bytes: number, random: (buffer: Uint8Array) => Uint8Array): string {
  for (;;) {
    const text = Array.from(random(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0"))
      .join("");
    if (!/^0+$/.test(text)) return text;
  }
}

/**
 * A new trace rooted at this request, marked sampled: nothing upstream decided, and a trace
 * marked not sampled would make every backend process (whose samplers follow the parent)
 * record nothing of the command. To sample, send a traceparent from the client or run the
 * function with OTEL_DENO, whose own sampler then decides (see main.ts).
 */
export function newTraceContext(
  random: (buffer: Uint8Array) => Uint8Array = (b) => crypto.getRandomValues(b),
): TraceContext {
  return { traceId: randomHex(16, random), parentId: randomHex(8, random), flags: "01" };
}

/**
 * The trace context to pass on: the caller's when its traceparent is valid;
 * otherwise a new trace, as the W3C spec asks of a receiver that cannot parse
 * the header (an invalid header is dropped, never a reason to refuse a command).
 */
export function traceContext(
  header: string | null,
  random?: (buffer: Uint8Array) => Uint8Array,
): { context: TraceContext; received: "valid" | "invalid" | "absent" } {
  const parsed = parseTraceparent(header);
  if (parsed) return { context: parsed, received: "valid" };
  return { context: newTraceContext(random), received: header === null ? "absent" : "invalid" };
}
