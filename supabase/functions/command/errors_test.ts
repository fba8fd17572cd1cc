import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { ApiError, fromUpstream } from "./errors.ts";

function mapped(error: Parameters<typeof fromUpstream>[0], status = 400): string {
  const e = fromUpstream(error, status);
  return `${e.status} ${e.code}`;
}

Deno.test("PTnnn refusals keep their status and take the hint as the code", () => {
  const cases: Array<[string, string, string]> = [
    ["PT400", "unknown_command_type", "400 unknown_command_type"],
    ["PT400", "malformed", "400 malformed"],
    ["PT401", "no_tenant", "401 no_tenant"],
    ["PT401", "invalid_claims", "401 invalid_claims"],
    ["PT403", "forbidden", "403 forbidden"],
    ["PT409", "command_id_conflict", "409 command_id_conflict"],
    ["PT413", "payload_too_large", "413 payload_too_large"],
  ];
  for (const [code, hint, expected] of cases) {
    strictEqual(mapped({ code, hint, message: "m" }), expected);
  }
});

Deno.test("the SQL message is passed on; an unusable hint falls back to http_nnn", () => {
  const e = fromUpstream({ code: "PT403", hint: "Not A Code!", message: "Role x may not." }, 403);
  strictEqual(e.code, "http_403");
  strictEqual(e.message, "Role x may not.");
  strictEqual(mapped({ code: "PT418", hint: null }), "418 http_418");
});

Deno.test("PostgREST and PostgreSQL errors map to stable codes", () => {
  strictEqual(mapped({ code: "PGRST301", message: "JWT expired" }, 401), "401 invalid_jwt");
  strictEqual(mapped({ code: "PGRST303" }, 401), "401 invalid_jwt");
  strictEqual(mapped({ code: "PGRST302" }, 401), "401 missing_authorization");
  strictEqual(mapped({ code: "42501", message: "permission denied" }, 401), "401 unauthenticated");
  strictEqual(mapped({ code: "42501", message: "permission denied" }, 403), "403 forbidden");
  strictEqual(mapped({ code: "PGRST202" }, 404), "500 misconfigured");
  strictEqual(mapped({ code: "22P02" }), "400 malformed");
  strictEqual(mapped({ code: "57014" }, 500), "504 timeout");
  strictEqual(mapped({ code: "40001" }, 500), "503 busy");
  strictEqual(mapped({ code: "08006" }, 503), "502 upstream_unavailable");
  strictEqual(
    mapped({ message: "TypeError: fetch failed", code: "" }, 0),
    "502 upstream_unavailable",
  );
  strictEqual(mapped({ code: "XX000" }, 500), "502 upstream_error");
  strictEqual(mapped({ code: "" }, 401), "401 invalid_jwt");
});

Deno.test("the error body is {error: {code, message, details?}}", () => {
  deepStrictEqual(new ApiError(400, "x", "y").body(), { error: { code: "x", message: "y" } });
  deepStrictEqual(new ApiError(400, "x", "y", { a: 1 }).body(), {
    error: { code: "x", message: "y", details: { a: 1 } },
  });
});
