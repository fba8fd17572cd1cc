import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Validator } from "@cfworker/json-schema";
import { type Schema, unsupportedKeywords } from "../_shared/catalog.ts";
import { oversized, schemaProblems, unstorable } from "./payload.ts";

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

function check(value: unknown, schema: Schema | boolean = ITEM) {
  return schemaProblems(new Validator(schema, "2020-12", false), schema, value);
}

function paths(value: unknown, schema: Schema | boolean = ITEM): string[] {
  return check(value, schema).map((p) => `${p.path} ${p.keyword}`);
}

function unfit(value: unknown): string[] {
  return unstorable(value, JSON.stringify(value)).map((p) => p.path);
}

Deno.test("a valid payload has no problems", () => {
  deepStrictEqual(check({ item_id: ID, quantity: 3, note: null, tags: ["a"] }), []);
  deepStrictEqual(check({ item_id: ID.toUpperCase(), quantity: 10, note: "ok" }), []);
});

Deno.test("each failing rule is reported at its path, with its keyword and message", () => {
  deepStrictEqual(paths({ item_id: "nope", quantity: 0, extra: 1 }), [
    "/item_id format",
    "/quantity exclusiveMinimum",
    "/extra additionalProperties",
  ]);
  deepStrictEqual(check({ quantity: 11 }), [
    { path: "/item_id", keyword: "required", message: "is required" },
    { path: "/quantity", keyword: "maximum", message: "must be at most 10" },
  ]);
  deepStrictEqual(check({ item_id: ID, quantity: -1.5 }), [
    { path: "/quantity", keyword: "type", message: "must be integer, not number" },
  ]);
  deepStrictEqual(paths({ item_id: ID, quantity: "3" }), ["/quantity type"]);
  deepStrictEqual(paths([]), [" type"]);
  deepStrictEqual(check({ item_id: ID, quantity: 1, extra: 1 })[0].message, "is not allowed");
});

Deno.test("string lengths count characters, not UTF-16 units", () => {
  deepStrictEqual(paths({ item_id: ID, quantity: 1, sku: "😀😀😀😀" }), []);
  deepStrictEqual(paths({ item_id: ID, quantity: 1, sku: "😀😀😀😀😀" }), ["/sku maxLength"]);
  deepStrictEqual(
    check({ item_id: ID, quantity: 1, sku: "" })[0].message,
    "must be at least 1 characters long",
  );
});

Deno.test("anyOf shows the branch that came closest", () => {
  deepStrictEqual(paths({ item_id: ID, quantity: 1, note: "UPPER" }), ["/note pattern"]);
  deepStrictEqual(paths({ item_id: ID, quantity: 1, note: 5 }), ["/note anyOf"]);
  const optional: Schema = {
    anyOf: [
      { type: "object", additionalProperties: false, properties: { a: { type: "integer" } } },
      {
        type: "null",
      },
    ],
  };
  deepStrictEqual(paths({ a: "x", b: 2 }, optional), ["/a type", "/b additionalProperties"]);
  deepStrictEqual(paths({ a: 1 }, optional), []);
  deepStrictEqual(paths(null, optional), []);
});

Deno.test("array rules: items, maxItems, uniqueItems", () => {
  deepStrictEqual(paths({ item_id: ID, quantity: 1, tags: ["a", 1] }), ["/tags/1 type"]);
  deepStrictEqual(paths({ item_id: ID, quantity: 1, tags: ["a", "b", "c"] }), ["/tags maxItems"]);
  deepStrictEqual(paths({ item_id: ID, quantity: 1, tags: ["a", "a"] }), ["/tags/1 uniqueItems"]);
});

Deno.test("enum, const, oneOf, allOf, not, boolean schemas", () => {
  deepStrictEqual(check("c", { enum: ["a", "b"] }), [
    { path: "", keyword: "enum", message: 'must be one of "a", "b"' },
  ]);
  deepStrictEqual(paths({ a: [1] }, { const: { a: [1] } }), []);
  deepStrictEqual(paths(2, { oneOf: [{ type: "integer" }, { type: "number" }] }), [" oneOf"]);
  deepStrictEqual(paths(2.5, { oneOf: [{ type: "integer" }, { type: "number" }] }), []);
  deepStrictEqual(paths(5, { allOf: [{ minimum: 1 }, { maximum: 4 }] }), [" maximum"]);
  deepStrictEqual(paths(5, { not: { type: "integer" } }), [" not"]);
  deepStrictEqual(paths(5, false), [" false"]);
  deepStrictEqual(paths(5, true), []);
});

Deno.test("formats: uuid, date and date-time are asserted", () => {
  deepStrictEqual(paths("2026-02-29", { format: "date" }), [" format"]);
  deepStrictEqual(paths("2028-02-29", { format: "date" }), []);
  deepStrictEqual(paths("2026-11-22T18:00:00.5Z", { format: "date-time" }), []);
  deepStrictEqual(paths("2026-11-22T18:00:00+01:00", { format: "date-time" }), []);
  deepStrictEqual(paths("2026-11-22 25:00:00Z", { format: "date-time" }), [" format"]);
  deepStrictEqual(check("x", { format: "uuid" })[0].message, "must be a UUID");
});

Deno.test("problems are capped at 20, and odd keys are JSON Pointers", () => {
  const schema: Schema = { type: "object", additionalProperties: false };
  const value = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i]));
  strictEqual(check(value, schema).length, 20);
  deepStrictEqual(paths({ "a/b~c d%#": 1 }, schema), ["/a~1b~0c d%# additionalProperties"]);
  deepStrictEqual(check({}, { type: "object", required: ['say "hi"'] })[0].path, '/say "hi"');
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

Deno.test("text PostgreSQL cannot store is reported with its path", () => {
  deepStrictEqual(unfit({ ok: "fine", bad: "a\u0000b", list: ["x", "\ud800"] }), [
    "/bad",
    "/list/1",
  ]);
  deepStrictEqual(unfit({ "\udc00": 1, "a/b~c": "\u0000" }), ["/\udc00", "/a~1b~0c"]);
  // Escaped backslashes and well-formed pairs are fine.
  deepStrictEqual(unfit({ a: "\\u0000 \\ud800", b: "😀", c: "\\\\u0000" }), []);
});

Deno.test("integers beyond 2^53 are refused: JSON numbers cannot carry them exactly", () => {
  deepStrictEqual(unfit({ safe: 9007199254740991, unsafe: 9007199254740993, big: 1e21 }), [
    "/unsafe",
    "/big",
  ]);
  deepStrictEqual(unfit({ digits: "12345678901234567890", tiny: 1e-300, neg: -2.5 }), []);
  // 1e400 parses to Infinity, which JSON.stringify would send as null.
  deepStrictEqual(unfit(JSON.parse('{"ok": null, "huge": [1e400]}')), ["/huge/0"]);
});

Deno.test("a deeply nested payload is checked without exhausting the stack", () => {
  let value: unknown = 1;
  for (let i = 0; i < 100_000; i++) value = [value];
  const text = JSON.stringify({ deep: value, n: 2 ** 60 });
  deepStrictEqual(unstorable({ deep: value, n: 2 ** 60 }, text).map((p) => p.path), ["/n"]);
  deepStrictEqual(paths({ item_id: ID, quantity: value }), ["/quantity type"]);
});

Deno.test("the size check refuses only what the ingress would refuse too", () => {
  strictEqual(oversized("x".repeat(100), 100), null);
  strictEqual(oversized("x".repeat(101), 100), 101);
  strictEqual(oversized("é".repeat(40), 100), null); // 80 bytes
  strictEqual(oversized("é".repeat(51), 100), 102);
  strictEqual(oversized("😀".repeat(26), 100), 104);
});

Deno.test("what the library cannot check is a refusal, not a crash", () => {
  // Two arrays nested deeper than the stack: uniqueItems compares them recursively.
  let a: unknown = 1;
  let b: unknown = 1;
  for (let i = 0; i < 200_000; i++) {
    a = [a];
    b = [b];
  }
  const problems = check([a, b], { type: "array", uniqueItems: true });
  strictEqual(problems.length, 1);
  strictEqual(problems[0].keyword, "schema");
});

Deno.test("a map of values reports each failing value, and many quickly", () => {
  const schema: Schema = { type: "object", additionalProperties: { type: "integer" } };
  deepStrictEqual(paths({ a: "x", b: 1, c: [] }, schema), ["/a type", "/c type"]);
  const many = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, "x"]));
  const started = performance.now();
  const problems = check(many, schema);
  strictEqual(problems.length, 20);
  strictEqual(problems[0].path, "/k0");
  strictEqual(performance.now() - started < 2000, true);
});
