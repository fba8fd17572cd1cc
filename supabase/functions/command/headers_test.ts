import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { ApiError } from "./errors.ts";
import {
  bearer,
  correlationId,
  formatTraceparent,
  isJsonContentType,
  parseTraceparent,
  traceContext,
} from "./headers.ts";

const VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof ApiError) return `${error.status} ${error.code}`;
    throw error;
  }
  return "no error";
}

Deno.test("a valid traceparent is read and passed on unchanged", () => {
  const parsed = parseTraceparent(VALID);
  deepStrictEqual(parsed, {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    parentId: "00f067aa0ba902b7",
    flags: "01",
  });
  strictEqual(formatTraceparent(parsed!), VALID);
});

Deno.test("invalid traceparents are rejected by the W3C rules", () => {
  for (
    const bad of [
      "",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", // short trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // 00 has 4 fields
      "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
    ]
  ) {
    strictEqual(parseTraceparent(bad), null, bad);
  }
});

Deno.test("a future version is read by its first four fields and passed on as 00", () => {
  const parsed = parseTraceparent(
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future",
  );
  strictEqual(formatTraceparent(parsed!), VALID);
});

Deno.test("an absent or invalid traceparent starts a new trace instead of failing", () => {
  const fixed = (buffer: Uint8Array) => buffer.fill(0xab);
  const absent = traceContext(null, fixed);
  strictEqual(absent.received, "absent");
  // Sampled: the backend's parent-based samplers would otherwise record nothing of it.
  strictEqual(formatTraceparent(absent.context), `00-${"ab".repeat(16)}-${"ab".repeat(8)}-01`);
  strictEqual(traceContext("garbage", fixed).received, "invalid");
  strictEqual(traceContext(VALID).received, "valid");
  strictEqual(traceContext(VALID).context.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
});

Deno.test("the correlation id is the header's UUID, or a new one", () => {
  strictEqual(correlationId(null, () => "new"), "new");
  strictEqual(correlationId("  ", () => "new"), "new");
  strictEqual(
    correlationId("6F1C2A34-1B2C-4D5E-8F90-123456789ABC", () => "new"),
    "6f1c2a34-1b2c-4d5e-8f90-123456789abc",
  );
  strictEqual(code(() => correlationId("abc", () => "new")), "400 invalid_correlation_id");
});

Deno.test("only application/json bodies are accepted", () => {
  strictEqual(isJsonContentType("application/json"), true);
  strictEqual(isJsonContentType("Application/JSON; charset=UTF-8"), true);
  strictEqual(isJsonContentType("application/json; charset=latin1"), false);
  strictEqual(isJsonContentType("text/plain"), false);
  strictEqual(isJsonContentType("application/jsonx"), false);
  strictEqual(isJsonContentType(null), false);
});

Deno.test("the Authorization header must carry a bearer token", () => {
  strictEqual(bearer("Bearer abc.def.ghi"), "Bearer abc.def.ghi");
  strictEqual(bearer("bearer   abc"), "Bearer abc");
  strictEqual(code(() => bearer(null)), "401 missing_authorization");
  strictEqual(code(() => bearer("Basic dXNlcg==")), "401 missing_authorization");
  throws(() => bearer("Bearer "), ApiError);
});
