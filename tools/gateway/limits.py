"""What the gateway accepts from a client, bounded once for every path it serves.

Each path (/rest/v1, /functions/v1, /realtime/v1) reads bodies with `read_body`, parses
JSON with `loads_json` and checks names and query text with `text_problem`, then answers
an `InputError` in its own error shape. Nothing here may let hostile input become a 5xx:

- Python's json parser has no depth limit of its own: deep input ends in RecursionError,
  and even a shallower document may be too deep to encode again later. `loads_json` parses
  with the standard library, turns RecursionError into a refusal, and then walks the
  result without recursion to refuse anything nested deeper than MAX_JSON_DEPTH.
- `NaN`, `Infinity` and numbers overflowing a float are not JSON (PostgreSQL and every
  client refuse them), although Python's json accepts them; they are refused here.
- psycopg cannot send a NUL byte in a text parameter (it fails before the server is asked,
  which looked like a lost connection), nor a lone surrogate (a UnicodeEncodeError).
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from aiohttp import web

# Request bodies above this are refused with 413: aiohttp stops reading there (the app's
# client_max_size) and read_body turns that into an InputError for the path to answer.
MAX_BODY_BYTES = 16 * 1024 * 1024
# JSON nested deeper than this is refused (400). Far beyond any command, RPC argument or
# broadcast payload, and far enough below Python's recursion limit (1000) that a parsed
# document can always be encoded again (json.dumps recurses once per level).
MAX_JSON_DEPTH = 256


class InputError(ValueError):
    """Client input the gateway refuses; `status` is the HTTP status it deserves (4xx)."""

    status = 400


class BodyTooLargeError(InputError):
    """A body over MAX_BODY_BYTES: 413, whatever the path."""

    status = 413


def text_problem(value: str) -> str | None:
    """Why `value` cannot reach the database as text (a NUL byte, a lone surrogate), or
    None when it can."""
    if "\x00" in value:
        return "contains a NUL byte"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 (it contains a lone surrogate)"
    return None


async def read_body(request: web.Request) -> bytes:
    """The whole body, or InputError: over MAX_BODY_BYTES (413), or a body aiohttp cannot
    decode (a broken Content-Encoding, a truncated chunk: 400)."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLargeError(f"the request body is larger than {MAX_BODY_BYTES} bytes") from None
    except web.RequestPayloadError as exc:
        reason = " ".join(str(exc).split()) or "unreadable"
        raise InputError(f"the request body cannot be read: {reason}") from None


def _refuse_constant(name: str) -> NoReturn:
    raise InputError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InputError(f"the number {text[:40]} is too large")
    return number


def json_depth(value: Any, *, stop_after: int = MAX_JSON_DEPTH) -> int:
    """How deeply arrays and objects nest in a parsed document (a scalar is 0), counted
    without recursion; counting stops once it passes `stop_after`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > stop_after:
            break
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return deepest


def loads_json(data: bytes | str) -> Any:
    """A JSON document (UTF-8 when bytes) parsed by the standard library, or InputError
    when it is not JSON, not UTF-8, has a non-finite number or nests deeper than
    MAX_JSON_DEPTH."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise InputError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    except InputError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise InputError(f"not JSON: {exc}") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise InputError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    return value
