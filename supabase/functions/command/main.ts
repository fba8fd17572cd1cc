/**
 * The real dependencies of the handler: supabase-js calling PostgREST as the
 * caller, the clock, ids and a JSON log line on stdout.
 *
 * Environment (set by Supabase for every function): SUPABASE_URL and
 * SUPABASE_ANON_KEY. Optional: INTENT_PUBLIC_SUPABASE_URL, the base of the
 * statusUrl answered to clients when SUPABASE_URL is an internal address (the
 * Supabase CLI's local stack gives functions http://kong:8000).
 */
import { SpanStatusCode, trace } from "@opentelemetry/api";
import { createClient } from "@supabase/supabase-js";
import { catalog } from "../_shared/catalog.ts";
import { ApiError } from "./errors.ts";
import { createHandler, type LogLine, type Rpc } from "./handler.ts";
import type { TraceContext } from "./headers.ts";

export type Env = (name: string) => string | undefined;

function rpcClient(url: string, anonKey: string): (authorization: string) => Rpc {
  return (authorization) => {
    // The caller's own token: PostgREST verifies it and Postgres takes the tenant and
    // role from it; this function never holds more rights than its caller.
    const client = createClient(url, anonKey, {
      global: { headers: { Authorization: authorization } },
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    });
    return async (fn, args) => {
      const { data, error, status } = await client.rpc(fn, args);
      return { data, error, status };
    };
  };
}

function misconfigured(missing: string[]): (authorization: string) => Rpc {
  return () => {
    throw new ApiError(500, "misconfigured", "The function is not configured.", { missing });
  };
}

export function logLine(line: LogLine): void {
  console.log(JSON.stringify({ ts: new Date().toISOString(), fn: "command", ...line }));
}

/**
 * The ingress span, through Deno's built-in OpenTelemetry (OTEL_DENO=true exports
 * OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT): a child of the request's server span,
 * which Deno parents on the caller's traceparent. With OpenTelemetry off the API's
 * tracer is the no-op one, its span context invalid, and `run` gets null.
 */
export function ingressSpan(
  run: (span: TraceContext | null) => Promise<Response>,
): Promise<Response> {
  return trace.getTracer("intent-command").startActiveSpan("intent.ingress", async (span) => {
    const context = span.spanContext();
    const passOn = trace.isSpanContextValid(context)
      ? {
        traceId: context.traceId,
        parentId: context.spanId,
        flags: context.traceFlags.toString(16).padStart(2, "0"),
      }
      : null;
    try {
      const response = await run(passOn);
      span.setAttribute("http.response.status_code", response.status);
      if (response.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      return response;
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The handler, configured from the environment. */
export function handlerFromEnv(env: Env): (request: Request) => Promise<Response> {
  const url = env("SUPABASE_URL");
  const anonKey = env("SUPABASE_ANON_KEY");
  const missing = [
    ...(url ? [] : ["SUPABASE_URL"]),
    ...(anonKey ? [] : ["SUPABASE_ANON_KEY"]),
  ];
  if (missing.length > 0) logLine({ level: "error", msg: "missing environment", missing });
  return createHandler({
    catalog,
    publicUrl: env("INTENT_PUBLIC_SUPABASE_URL") || url || "",
    rpcFor: url && anonKey ? rpcClient(url, anonKey) : misconfigured(missing),
    now: () => performance.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    newId: () => crypto.randomUUID(),
    log: logLine,
    ingressSpan,
  });
}
