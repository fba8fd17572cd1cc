/**
 * The `command` function's request handling, with every outside effect (the
 * database calls, the clock, ids, logging) passed in, so the whole flow runs
 * in `deno test` without a network. main.ts wires the real ones.
 *
 * POST {type, payload, aggregateId?, commandId?, wait?}
 *   -> 202 {commandId, status, statusUrl, correlationId}
 *   -> with wait, once the outcome is known:
 *      200 {commandId, status, result, error, events, statusUrl, correlationId}
 *   -> refusals: {error: {code, message, details?}} with the status of errors.ts
 * OPTIONS -> the CORS preflight.
 */
import type { Catalog } from "../_shared/catalog.ts";
import { CORS_HEADERS, preflight } from "../_shared/cors.ts";
import { type Envelope, parseEnvelope, parseJson } from "./envelope.ts";
import { ApiError, fromUpstream, type UpstreamError } from "./errors.ts";
import {
  bearer,
  correlationId,
  formatTraceparent,
  isJsonContentType,
  type TraceContext,
  traceContext,
} from "./headers.ts";
import { type CommandStatus, isCommandStatus, pollUntilTerminal, TERMINAL } from "./wait.ts";

/** One PostgREST RPC call's outcome, as supabase-js reports it. */
export interface RpcResult {
  data: unknown;
  error: UpstreamError | null;
  status: number;
}

export type Rpc = (fn: string, args: Record<string, unknown>) => Promise<RpcResult>;

export type LogLine = Record<string, unknown>;

export interface Deps {
  catalog: Catalog;
  /** The project URL clients use; statusUrl points below it. */
  publicUrl: string;
  /** An RPC client that calls as the request's caller (their Authorization header). */
  rpcFor: (authorization: string) => Rpc;
  /** Milliseconds, for durations and the wait deadline. */
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  newId: () => string;
  log: (line: LogLine) => void;
  random?: (buffer: Uint8Array) => Uint8Array;
  /**
   * Runs a request inside the function's ingress span and hands `run` that span's
   * context (null when tracing is off); the command then carries the span's context
   * as its traceparent. Without it, the caller's traceparent is passed on as it came.
   */
  ingressSpan?: (run: (span: TraceContext | null) => Promise<Response>) => Promise<Response>;
}

/** The largest body read: room for a payload at the limit written with escapes and spaces. */
export function bodyLimit(catalog: Catalog): number {
  return catalog.maxPayloadBytes * 4;
}

const JSON_HEADERS = { ...CORS_HEADERS, "Content-Type": "application/json; charset=utf-8" };

function json(status: number, body: unknown, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...extra } });
}

async function readBody(request: Request, limit: number): Promise<string> {
  const tooLarge = () =>
    new ApiError(413, "payload_too_large", `The request body is larger than ${limit} bytes.`, {
      limit,
    });
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge();
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ApiError(400, "malformed_json", "The body is not UTF-8 text.");
  }
}

async function call(rpc: Rpc, fn: string, args: Record<string, unknown>): Promise<unknown> {
  let result: RpcResult;
  try {
    result = await rpc(fn, args);
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(502, "upstream_unavailable", "The database could not be reached.", {
      reason: error instanceof Error ? error.message : String(error),
    });
  }
  if (result.error) throw fromUpstream(result.error, result.status);
  return result.data;
}

function statusUrl(base: string, commandId: string): string {
  return `${base.replace(/\/+$/, "")}/rest/v1/rpc/command_status?command_id=${
    encodeURIComponent(commandId)
  }`;
}

/** The events a processed command appended, read back by the versions in its result. */
async function appendedEvents(
  rpc: Rpc,
  envelope: Envelope,
  result: unknown,
): Promise<unknown[] | null> {
  const ids = (result as { events?: unknown } | null)?.events;
  const version = (result as { version?: unknown } | null)?.version;
  if (!Array.isArray(ids) || typeof version !== "number") return null;
  const wanted = new Set(ids.map(String));
  const events: unknown[] = [];
  let from = version - ids.length + 1;
  while (events.length < ids.length && from <= version) {
    const count = Math.min(1000, version - from + 1);
    const page = await call(rpc, "read_stream", {
      aggregate_type: envelope.spec.aggregateType,
      aggregate_id: envelope.aggregateId,
      from_version: from,
      max_count: count,
    }) as { events?: unknown } | null;
    const found = Array.isArray(page?.events) ? page.events : [];
    if (found.length === 0) break;
    events.push(
      ...found.filter((e) => wanted.has(String((e as { event_id?: unknown }).event_id))),
    );
    from += count;
  }
  return events;
}

async function submit(
  request: Request,
  deps: Deps,
  line: LogLine,
  span: TraceContext | null,
): Promise<Response> {
  const headers = request.headers;
  const correlation = correlationId(headers.get("x-correlation-id"), deps.newId);
  line.correlation_id = correlation;
  const trace = traceContext(headers.get("traceparent"), deps.random);
  // The ingress span, when there is one, is a child of the caller's context (or the
  // root of a new trace): the pipeline's spans hang below it.
  const passOn = span ?? trace.context;
  line.trace_id = passOn.traceId;
  if (trace.received === "invalid") line.traceparent_dropped = true;
  const extra = { "x-correlation-id": correlation };

  const authorization = bearer(headers.get("authorization"));
  if (!isJsonContentType(headers.get("content-type"))) {
    throw new ApiError(415, "unsupported_media_type", "Send the command as application/json.", {
      content_type: headers.get("content-type"),
    });
  }
  const body = parseJson(await readBody(request, bodyLimit(deps.catalog)));
  const envelope = parseEnvelope(body, deps.catalog);
  line.command_type = envelope.spec.type;
  line.command_id = envelope.commandId;

  const rpc = deps.rpcFor(authorization);
  const submitted = await call(rpc, "submit_command", {
    command_type: envelope.spec.type,
    payload: envelope.payload,
    command_id: envelope.commandId,
    correlation_id: correlation,
    traceparent: formatTraceparent(passOn),
  });
  const accepted = submitted as { command_id?: unknown; status?: unknown } | null;
  if (typeof accepted?.command_id !== "string" || typeof accepted.status !== "string") {
    throw new ApiError(502, "upstream_error", "submit_command answered in an unexpected shape.");
  }
  const commandId = accepted.command_id;
  line.command_id = commandId;
  const answer = {
    commandId,
    status: accepted.status,
    statusUrl: statusUrl(deps.publicUrl, commandId),
    correlationId: correlation,
  };
  if (envelope.waitMs === 0) return json(202, answer, extra);

  const waited = await pollUntilTerminal(
    async () => {
      const data = await call(rpc, "command_status", { command_id: commandId });
      return isCommandStatus(data) ? data : null;
    },
    {
      waitMs: envelope.waitMs,
      now: deps.now,
      sleep: deps.sleep,
      firstDelayMs: TERMINAL.has(accepted.status) ? 0 : 20,
    },
  );
  line.polls = waited.polls;
  const status: CommandStatus | null = waited.status;
  if (!waited.terminal || status === null) {
    return json(202, { ...answer, status: status?.status ?? accepted.status }, extra);
  }
  let events: unknown[] | null = null;
  if (status.status === "processed") {
    try {
      events = await appendedEvents(rpc, envelope, status.result);
    } catch (error) {
      // The command is done either way; say so, without the events.
      line.events_error = error instanceof ApiError ? error.code : String(error);
    }
  } else {
    events = [];
  }
  return json(200, {
    ...answer,
    status: status.status,
    result: status.result ?? null,
    error: status.error ?? null,
    events,
  }, extra);
}

/** The request handler for Deno.serve. */
export function createHandler(deps: Deps): (request: Request) => Promise<Response> {
  return async (request: Request): Promise<Response> => {
    const started = deps.now();
    const line: LogLine = {
      msg: "command request",
      method: request.method,
      command_type: null,
      command_id: null,
      correlation_id: null,
      trace_id: null,
    };
    let response: Response;
    try {
      if (request.method === "OPTIONS") {
        response = preflight();
      } else if (request.method !== "POST") {
        throw new ApiError(405, "method_not_allowed", "Send commands with POST.", undefined, {
          Allow: "POST, OPTIONS",
        });
      } else {
        response = deps.ingressSpan
          ? await deps.ingressSpan((span) => submit(request, deps, line, span))
          : await submit(request, deps, line, null);
      }
    } catch (caught) {
      const error = caught instanceof ApiError ? caught : new ApiError(
        500,
        "internal_error",
        "The function failed; the error is in its log.",
      );
      if (!(caught instanceof ApiError)) {
        line.exception = caught instanceof Error
          ? `${caught.name}: ${caught.message}`
          : String(caught);
      }
      line.error_code = error.code;
      const extra: Record<string, string> = { ...error.headers };
      if (typeof line.correlation_id === "string") extra["x-correlation-id"] = line.correlation_id;
      response = json(error.status, error.body(), extra);
    }
    line.status = response.status;
    line.duration_ms = Math.round((deps.now() - started) * 10) / 10;
    line.level = response.status >= 500 ? "error" : response.status >= 400 ? "warn" : "info";
    deps.log(line);
    return response;
  };
}
