import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { type Schema, unsupportedKeywords, validate } from "../_shared/json_schema.ts";

const ITEM: Schema = {
  type: "object",
  additionalProperties: false,
  properties: {
    item_id: { type: "string", format: "uuid" },
    sku: { type: "string", minLength: 1, maxLength: 4 },
    quantity: { type: "integer", exclusiveMinimum: 0, maximum: 10 },
    note: { anyOf: [{ type: "string", pattern: "^[a-z]+$" }, { type: "null" }] },
    tags: { type: "array", items: { type: "string" }, maxItems: 2, uniqueItems: true },
  },
  required: ["item_id", "quantity"],
};
const ID = "6f1c2a34-1b2c-4d5e-8f90-123456789abc";

function paths(value: unknown, schema: Schema = ITEM): string[] {
  return validate(schema, value).map((p) => `${p.path} ${p.keyword}`);
}

Deno.test("a valid payload has no problems", () => {
  deepStrictEqual(validate(ITEM, { item_id: ID, quantity: 3, note: null, tags: ["a"] }), []);
  deepStrictEqual(validate(ITEM, { item_id: ID.toUpperCase(), quantity: 10, note: "ok" }), []);
});

Deno.test("each failing rule is reported at its path", () => {
  deepStrictEqual(paths({ item_id: "nope", quantity: 0, extra: 1 }), [
    "/item_id format",
    "/quantity exclusiveMinimum",
    "/extra additionalProperties",
  ]);
  deepStrictEqual(paths({ quantity: 11 }), ["/item_id required", "/quantity maximum"]);
  deepStrictEqual(paths({ item_id: ID, quantity: 1.5 }), ["/quantity type"]);
  deepStrictEqual(paths({ item_id: ID, quantity: "3" }), ["/quantity type"]);
  deepStrictEqual(paths([]), [" type"]);
});

Deno.test("string lengths count characters, not UTF-16 units", () => {
  deepStrictEqual(paths({ item_id: ID, quantity: 1, sku: "😀😀😀😀" }), []);
  deepStrictEqual(paths({ item_id: ID, quantity: 1, sku: "😀😀😀😀😀" }), ["/sku maxLength"]);
  deepStrictEqual(paths({ item_id: ID, quantity: 1, sku: "" }), ["/sku minLength"]);
});

Deno.test("anyOf shows the branch that came closest", () => {
  deepStrictEqual(paths({ item_id: ID, quantity: 1, note: "UPPER" }), ["/note pattern"]);
  deepStrictEqual(paths({ item_id: ID, quantity: 1, note: 5 }), ["/note anyOf"]);
});

Deno.test("array rules: items, maxItems, uniqueItems", () => {
  deepStrictEqual(paths({ item_id: ID, quantity: 1, tags: ["a", 1] }), ["/tags/1 type"]);
  deepStrictEqual(paths({ item_id: ID, quantity: 1, tags: ["a", "b", "c"] }), ["/tags maxItems"]);
  deepStrictEqual(paths({ item_id: ID, quantity: 1, tags: ["a", "a"] }), ["/tags/1 uniqueItems"]);
});

Deno.test("enum, const, oneOf, allOf, not, boolean schemas", () => {
  deepStrictEqual(paths("c", { enum: ["a", "b"] }), [" enum"]);
  deepStrictEqual(paths({ a: [1] }, { const: { a: [1] } }), []);
  deepStrictEqual(paths(2, { oneOf: [{ type: "integer" }, { type: "number" }] }), [" oneOf"]);
  deepStrictEqual(paths(2.5, { oneOf: [{ type: "integer" }, { type: "number" }] }), []);
  deepStrictEqual(paths(5, { allOf: [{ minimum: 1 }, { maximum: 4 }] }), [" maximum"]);
  deepStrictEqual(paths(5, { not: { type: "integer" } }), [" not"]);
  deepStrictEqual(paths(5, false), [" false"]);
  deepStrictEqual(paths(5, true), []);
});

Deno.test("formats: uuid, date and date-time are asserted, others are annotations", () => {
  deepStrictEqual(paths("2026-02-29", { format: "date" }), [" format"]);
  deepStrictEqual(paths("2028-02-29", { format: "date" }), []);
  deepStrictEqual(paths("2026-11-22T18:00:00.5Z", { format: "date-time" }), []);
  deepStrictEqual(paths("2026-11-22T18:00:00+01:00", { format: "date-time" }), []);
  deepStrictEqual(paths("2026-11-22 25:00:00Z", { format: "date-time" }), [" format"]);
  deepStrictEqual(paths("not an email", { format: "email" }), []);
});

Deno.test("problems are capped at 20", () => {
  const schema: Schema = { type: "object", additionalProperties: false };
  const value = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i]));
  strictEqual(validate(schema, value).length, 20);
});

Deno.test("unsupported keywords are found wherever they sit", () => {
  deepStrictEqual(unsupportedKeywords(ITEM), []);
  deepStrictEqual(
    unsupportedKeywords({
      type: "object",
      properties: { a: { $ref: "#/$defs/A" } },
      anyOf: [{ dependentRequired: {} }],
      if: {},
    }),
    ["#/properties/a/$ref", "#/anyOf/0/dependentRequired", "#/if"],
  );
});
