/**
 * CORS for functions called from browsers. The allowed request headers are the
 * ones supabase-js sends (authorization, x-client-info, apikey, content-type,
 * x-retry-count and the W3C trace headers) plus our correlation header; a
 * header missing here makes the browser's preflight fail before any request.
 */
export const CORS_HEADERS: Readonly<Record<string, string>> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers":
    "authorization, x-client-info, apikey, content-type, x-retry-count, traceparent, " +
    "tracestate, baggage, x-correlation-id",
  "Access-Control-Allow-Methods": "POST, OPTIONS",
  "Access-Control-Expose-Headers": "x-correlation-id",
  "Access-Control-Max-Age": "86400",
};

/** The answer to a preflight (OPTIONS) request. */
export function preflight(): Response {
  return new Response("ok", { status: 200, headers: CORS_HEADERS });
}
