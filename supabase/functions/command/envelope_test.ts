import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { catalog } from "../_shared/catalog.ts";
import { type Envelope, MAX_WAIT_SECONDS, parseEnvelope, parseJson } from "./envelope.ts";
import { ApiError } from "./errors.ts";

const ITEM = "6f1c2a34-1b2c-4d5e-8f90-123456789abc";
const OTHER = "0b1c2a34-1b2c-4d5e-8f90-123456789abc";

function refusal(body: unknown): { status: number; code: string; details?: unknown } {
  try {
    parseEnvelope(body, catalog);
  } catch (error) {
    if (error instanceof ApiError) {
      return { status: error.status, code: error.code, details: error.details };
    }
    throw error;
  }
  return { status: 0, code: "accepted" };
}

function ok(body: unknown): Envelope {
  return parseEnvelope(body, catalog);
}

const receive = (payload: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  type: "inventory.receive_stock",
  payload,
  ...extra,
});

Deno.test("a valid command is accepted with its catalogue entry", () => {
  const envelope = ok(receive({ item_id: ITEM, quantity: 5 }));
  strictEqual(envelope.spec.aggregateType, "inventory.item");
  strictEqual(envelope.aggregateId, ITEM);
  strictEqual(envelope.commandId, null);
  strictEqual(envelope.waitMs, 0);
});

Deno.test("the envelope must be an object with only the known fields", () => {
  strictEqual(refusal([]).code, "invalid_envelope");
  strictEqual(refusal("x").code, "invalid_envelope");
  deepStrictEqual(refusal({ ...receive({ item_id: ITEM, quantity: 1 }), aggregate_id: ITEM }), {
    status: 400,
    code: "invalid_envelope",
    details: { unknown: ["aggregate_id"] },
  });
  strictEqual(refusal({ payload: {} }).code, "invalid_envelope");
  strictEqual(refusal({ type: "inventory.receive_stock", payload: [] }).code, "invalid_envelope");
});

Deno.test("an unknown command type is refused with its own code", () => {
  deepStrictEqual(refusal({ type: "inventory.steal", payload: {} }), {
    status: 400,
    code: "unknown_command_type",
    details: { type: "inventory.steal" },
  });
});

Deno.test("a bad payload is refused naming every failing path", () => {
  const r = refusal(receive({ item_id: "not-a-uuid", quantity: 0, colour: "red" }));
  strictEqual(r.status, 400);
  strictEqual(r.code, "invalid_payload");
  const errors = (r.details as { errors: Array<{ path: string }> }).errors;
  deepStrictEqual(errors.map((e) => e.path), ["/item_id", "/quantity", "/colour"]);
  const missing = refusal(receive({ item_id: ITEM }));
  deepStrictEqual(
    (missing.details as { errors: Array<{ path: string; keyword: string }> }).errors,
    [{ path: "/quantity", keyword: "required", message: "is required" }],
  );
});

Deno.test("bad ids in the envelope are refused", () => {
  strictEqual(
    refusal(receive({ item_id: ITEM, quantity: 1 }, { aggregateId: "x" })).code,
    "invalid_envelope",
  );
  strictEqual(
    refusal(receive({ item_id: ITEM, quantity: 1 }, { commandId: 42 })).code,
    "invalid_envelope",
  );
  strictEqual(
    ok(receive({ item_id: ITEM, quantity: 1 }, { commandId: OTHER.toUpperCase() })).commandId,
    OTHER,
  );
});

Deno.test("aggregateId fills a missing id field, and must agree with a present one", () => {
  const filled = ok(receive({ quantity: 1 }, { aggregateId: ITEM }));
  strictEqual(filled.payload.item_id, ITEM);
  strictEqual(filled.aggregateId, ITEM);
  strictEqual(
    ok(receive({ item_id: ITEM, quantity: 1 }, { aggregateId: ITEM.toUpperCase() }))
      .aggregateId,
    ITEM,
  );
  deepStrictEqual(refusal(receive({ item_id: ITEM, quantity: 1 }, { aggregateId: OTHER })), {
    status: 400,
    code: "aggregate_id_mismatch",
    details: { field: "item_id" },
  });
});

Deno.test("wait is a boolean or a number of seconds up to the maximum", () => {
  const waitOf = (wait: unknown) => ok(receive({ item_id: ITEM, quantity: 1 }, { wait })).waitMs;
  strictEqual(waitOf(false), 0);
  strictEqual(waitOf(true), MAX_WAIT_SECONDS * 1000);
  strictEqual(waitOf(2.5), 2500);
  strictEqual(waitOf(10), 10_000);
  for (const bad of [10.5, -1, "5", {}, Number.NaN]) {
    strictEqual(
      refusal(receive({ item_id: ITEM, quantity: 1 }, { wait: bad })).code,
      "invalid_envelope",
    );
  }
});

Deno.test("a payload over the ingress's size limit is refused with 413", () => {
  const name = "x".repeat(200);
  // A valid payload (register_item caps its fields well below 64 KiB) and a smaller limit.
  const small = { ...catalog, maxPayloadBytes: 100 };
  try {
    parseEnvelope(
      { type: "inventory.register_item", payload: { item_id: ITEM, sku: "S", name } },
      small,
    );
    throw new Error("accepted");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    strictEqual(error.status, 413);
    strictEqual(error.code, "payload_too_large");
    // {"item_id":"...","sku":"S","name":"x...x"} as compact JSON: 2 + 48 + 9 + 209 + 2 (the
    // SQL ingress's jsonb text, with a space after each "," and ":", is 275).
    deepStrictEqual(error.details, { bytes: 270, limit: 100 });
  }
});

Deno.test("a payload PostgreSQL could not store is refused before the database", () => {
  const r = refusal({
    type: "inventory.register_item",
    payload: { item_id: ITEM, sku: "S", name: "a\u0000b" },
  });
  strictEqual(r.code, "invalid_payload");
  // A field name the schema library could not even point at, and numbers JSON.parse lost.
  for (
    const payload of [
      JSON.parse(`{"item_id": "${ITEM}", "quantity": 1, "\\ud800": 1}`),
      { item_id: ITEM, quantity: 2 ** 53 + 2 },
      JSON.parse(`{"item_id": "${ITEM}", "quantity": 1e400}`),
    ]
  ) {
    const { status, code } = refusal(receive(payload));
    deepStrictEqual([status, code], [400, "invalid_payload"]);
  }
});

Deno.test("malformed JSON is refused with its own code", () => {
  try {
    parseJson("{not json");
    throw new Error("accepted");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    strictEqual(`${error.status} ${error.code}`, "400 malformed_json");
  }
});
