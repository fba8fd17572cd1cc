import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { measureJsonb, numericText } from "../_shared/jsonb.ts";

// Expected sizes were read from PostgreSQL 15: octet_length('<JSON.stringify(value)>'::jsonb::text).
const POSTGRES_SIZES: Array<[unknown, number]> = [
  [{}, 2],
  [[], 2],
  [{ a: 1 }, 8],
  [{
    b: [1, 2.5, {}],
    a: 'x"y\né\u0001',
    n: 1e21,
    m: 1.5e-7,
    z: null,
    t: true,
    f: false,
    e: [],
    k: -0,
  }, 139],
  [{ emoji: "😀", del: "\u007f", sl: "a/b", tab: "\t\b\f\r\u000b", back: "\\" }, 81],
  [{ nested: { deep: [[[{ x: "ü" }]]] }, big: 123456789012, neg: -42.125, small: 5e-324 }, 413],
  [{ "ключ": "значение", "": "", 'k"q': ["a", "b"] }, 60],
];

Deno.test("jsonb text size matches what PostgreSQL prints for the same JSON", () => {
  for (const [value, bytes] of POSTGRES_SIZES) {
    strictEqual(measureJsonb(value).bytes, bytes, JSON.stringify(value));
  }
});

Deno.test("numbers print as PostgreSQL numeric does, never with an exponent", () => {
  strictEqual(numericText(1e21), "1000000000000000000000");
  strictEqual(numericText(1.5e-7), "0.00000015");
  strictEqual(numericText(-2.5e-3), "-0.0025");
  strictEqual(numericText(1.25e22), "12500000000000000000000");
  strictEqual(numericText(-0), "0");
  strictEqual(numericText(42), "42");
});

Deno.test("text PostgreSQL cannot store is reported with its path", () => {
  const { problems } = measureJsonb({ ok: "fine", bad: "a\u0000b", list: ["x", "\ud800"] });
  deepStrictEqual(problems.map((p) => p.path).sort(), ["/bad", "/list/1"]);
});

Deno.test("integers beyond 2^53 are refused: JSON numbers cannot carry them exactly", () => {
  const { problems } = measureJsonb({ safe: 9007199254740991, unsafe: 9007199254740993 });
  deepStrictEqual(problems.map((p) => p.path), ["/unsafe"]);
});

Deno.test("a deeply nested value is measured without exhausting the stack", () => {
  let value: unknown = 1;
  for (let i = 0; i < 100_000; i++) value = [value];
  strictEqual(measureJsonb(value).bytes, 200_001);
});

Deno.test("keys with / and ~ are escaped in problem paths (JSON Pointer)", () => {
  const { problems } = measureJsonb({ "a/b~c": "\u0000" });
  strictEqual(problems[0].path, "/a~1b~0c");
});
