/**
 * What PostgreSQL will make of a JSON value the function forwards: how many
 * bytes its jsonb text (`payload::text`, which the SQL ingress limits) takes,
 * and what it cannot store at all. Checking here refuses an oversized or
 * unstorable payload with a precise answer before any database round trip;
 * the SQL ingress stays the authority (its PT413 maps to the same answer).
 */

export interface ValueProblem {
  path: string;
  message: string;
}

export interface JsonbMeasure {
  /** octet_length(value::jsonb::text), as PostgreSQL 15 prints jsonb. */
  bytes: number;
  problems: ValueProblem[];
}

const MAX_PROBLEMS = 20;

/** A JS number as PostgreSQL's numeric prints it: never in exponent notation. */
export function numericText(value: number): string {
  const text = String(value);
  const match = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!match) return text;
  const [, sign, whole, fraction = "", exponent] = match;
  const digits = whole + fraction;
  const point = whole.length + Number(exponent);
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + "0".repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

function stringBytes(text: string, path: string, problems: ValueProblem[]): number {
  let bytes = 2; // the quotes
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit === 0) {
      problems.push({ path, message: "contains \\u0000, which PostgreSQL text cannot hold" });
      bytes += 6;
    } else if (unit === 0x22 || unit === 0x5c || (unit >= 0x08 && unit <= 0x0d && unit !== 0x0b)) {
      bytes += 2; // \" \\ \b \t \n \f \r
    } else if (unit < 0x20) {
      bytes += 6; // \u00XX
    } else if (unit < 0x80) {
      bytes += 1;
    } else if (unit < 0x800) {
      bytes += 2;
    } else if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else {
        problems.push({ path, message: "contains an unpaired UTF-16 surrogate" });
        bytes += 6;
      }
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      problems.push({ path, message: "contains an unpaired UTF-16 surrogate" });
      bytes += 6;
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

function escapePointer(segment: string | number): string {
  return String(segment).replaceAll("~", "~0").replaceAll("/", "~1");
}

/**
 * Measure a parsed JSON value. Iterative, so a deeply nested payload cannot
 * exhaust the stack.
 */
export function measureJsonb(value: unknown): JsonbMeasure {
  const problems: ValueProblem[] = [];
  let bytes = 0;
  const stack: Array<{ value: unknown; path: string }> = [{ value, path: "" }];
  while (stack.length > 0) {
    const { value: current, path } = stack.pop()!;
    if (current === null) {
      bytes += 4;
    } else if (typeof current === "boolean") {
      bytes += current ? 4 : 5;
    } else if (typeof current === "number") {
      if (!Number.isFinite(current)) {
        problems.push({ path, message: "is not a finite number" });
      } else if (Number.isInteger(current) && !Number.isSafeInteger(current)) {
        problems.push({
          path,
          message: "is an integer beyond ±(2^53 - 1), which cannot be carried exactly; " +
            "send it as a string",
        });
      }
      bytes += numericText(current).length;
    } else if (typeof current === "string") {
      bytes += stringBytes(current, path, problems);
    } else if (Array.isArray(current)) {
      bytes += 2 + Math.max(0, current.length - 1) * 2; // [ ] and ", "
      current.forEach((item, i) => stack.push({ value: item, path: `${path}/${i}` }));
    } else if (typeof current === "object") {
      const entries = Object.entries(current as Record<string, unknown>);
      bytes += 2 + Math.max(0, entries.length - 1) * 2; // { } and ", "
      for (const [key, item] of entries) {
        const at = `${path}/${escapePointer(key)}`;
        bytes += stringBytes(key, at, problems) + 2; // the key and ": "
        stack.push({ value: item, path: at });
      }
    } else {
      problems.push({ path, message: `is not JSON (${typeof current})` });
    }
  }
  return { bytes, problems: problems.slice(0, MAX_PROBLEMS) };
}
