/**
 * Every refusal the function gives, as one shape: an HTTP status and a JSON
 * body `{error: {code, message, details?}}` whose `code` is stable (clients
 * branch on it; the message is for people). Errors from PostgREST are mapped
 * here: the SQL ingress raises SQLSTATE PTnnn with the code in HINT, which
 * becomes status nnn and that code, so a refusal reads the same whether a
 * client called the function or the RPC directly.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }

  body(): { error: { code: string; message: string; details?: unknown } } {
    const error: { code: string; message: string; details?: unknown } = {
      code: this.code,
      message: this.message,
    };
    if (this.details !== undefined) error.details = this.details;
    return { error };
  }
}

/** What supabase-js hands back for a failed call (a PostgrestError, or a fetch failure). */
export interface UpstreamError {
  message?: string;
  code?: string;
  details?: string | null;
  hint?: string | null;
}

const STABLE_CODE = /^[a-z][a-z0-9_]{0,62}$/;

/** A PostgREST / PostgreSQL error as the function's answer. `status` is the HTTP status
 * PostgREST answered with (0 when the request never got an answer). */
export function fromUpstream(error: UpstreamError, status: number): ApiError {
  const sqlstate = error.code ?? "";
  const message = error.message ?? "";
  const hint = error.hint ?? "";
  const raised = /^PT([1-5]\d\d)$/.exec(sqlstate);
  if (raised) {
    const code = STABLE_CODE.test(hint) ? hint : `http_${raised[1]}`;
    const nnn = Number(raised[1]);
    return new ApiError(nnn >= 400 ? nnn : 500, code, message || `refused (${code})`);
  }
  switch (sqlstate) {
    case "PGRST301": // the JWT does not verify, or has expired
    case "PGRST303": // its claims fail validation (exp, aud...)
      return new ApiError(401, "invalid_jwt", message || "The access token is not valid.");
    case "PGRST302": // no bearer token and anonymous access is off
      return new ApiError(401, "missing_authorization", "An access token is required.");
    case "42501": // insufficient_privilege; PostgREST answers 401 when the caller is anon
      return status === 401
        ? new ApiError(
          401,
          "unauthenticated",
          "Sign in first: anonymous callers may not send commands.",
        )
        : new ApiError(403, "forbidden", "This role may not send commands.");
    case "PGRST202": // the function is not in PostgREST's schema cache
    case "42883":
      return new ApiError(500, "misconfigured", "The command ingress is not installed.", {
        upstream_code: sqlstate,
      });
    case "57014":
      return new ApiError(504, "timeout", "The database took too long to answer.");
    case "40001":
    case "40P01":
      return new ApiError(503, "busy", "The database is busy; retry.", undefined, {
        "Retry-After": "1",
      });
  }
  if (/^22/.test(sqlstate)) {
    return new ApiError(400, "malformed", message || "The database refused the input.");
  }
  if (status === 0 || /^(08|53|57P)/.test(sqlstate) || status === 503) {
    return new ApiError(502, "upstream_unavailable", "The database could not be reached.", {
      upstream_code: sqlstate || undefined,
    });
  }
  if (status === 401) {
    return new ApiError(401, "invalid_jwt", message || "The access token is not valid.");
  }
  return new ApiError(502, "upstream_error", "The database answered with an unexpected error.", {
    upstream_code: sqlstate || undefined,
    upstream_status: status,
  });
}
