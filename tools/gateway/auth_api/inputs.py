"""What the local `/auth/v1` (a development stand-in, not GoTrue) accepts, bounded.

Every field is checked before anything is stored, and every refusal is a GoTrue-shaped
4xx: bodies over MAX_AUTH_BODY_BYTES, JSON that is not an object, fields of the wrong type,
emails over GoTrue's 255 characters, passwords shorter than the configured minimum or
longer than bcrypt's 72 bytes, metadata that is not an object, larger than
MAX_METADATA_BYTES or nested deeper than domain.bounds.MAX_DEPTH, and text PostgreSQL
cannot store (NUL, lone surrogates; jsonb refuses \\u0000 too).

The fields are checked one by one here rather than by a pydantic model because each refusal
must carry GoTrue's own error code and message (weak_password, email_address_invalid, ...),
which the clients branch on; the JSON itself is parsed and bounded by tools.gateway.limits.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from domain.bounds import MAX_DEPTH, MAX_STRING_LENGTH
from tools.gateway.auth_api.errors import AuthApiError, bad_json, validation_failed, weak_password
from tools.gateway.auth_api.settings import MAX_PASSWORD_BYTES
from tools.gateway.limits import InputError, json_depth, loads_json, read_body, text_problem

# An auth request is an email, a password and two small metadata objects.
MAX_AUTH_BODY_BYTES = 64 * 1024
# user_metadata / app_metadata, as JSON text: the project's bound for one string.
MAX_METADATA_BYTES = MAX_STRING_LENGTH
MAX_EMAIL_LENGTH = 255
# GoTrue's check (a simplified RFC 5322), plus a dot-free domain allowed for `localhost`.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                    r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def too_large() -> AuthApiError:
    return AuthApiError(413, "request_too_large",
                        f"Request body larger than {MAX_AUTH_BODY_BYTES} bytes")


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is `{}`), bounded in size and depth."""
    if (request.content_length or 0) > MAX_AUTH_BODY_BYTES:
        raise too_large()
    try:
        raw = await read_body(request)
        if len(raw) > MAX_AUTH_BODY_BYTES:
            raise too_large()
        value = loads_json(raw) if raw.strip() else {}
    except InputError as exc:
        if exc.status == 413:
            raise too_large() from None
        raise bad_json(str(exc)) from None
    if not isinstance(value, dict):
        raise bad_json("the body must be a JSON object")
    return value


def optional_string(body: dict[str, Any], key: str) -> str | None:
    """A string field or None when absent or null; any other type is refused."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_json(f"{key} must be a string")
    problem = text_problem(value)
    if problem:
        raise validation_failed(f"{key} {problem}")
    return value


def optional_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise bad_json(f"{key} must be a boolean")
    return value


def email_address(value: str | None) -> str:
    """A valid email, lower-cased as GoTrue stores it."""
    if value is None or not value.strip():
        raise validation_failed("An email address is required")
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH:
        raise validation_failed("An email address is too long")
    if not _EMAIL.match(email):
        raise AuthApiError(400, "email_address_invalid",
                           "Unable to validate email address: invalid format")
    return email


def new_password(value: str | None, minimum: int) -> str:
    """A password GoTrue would accept to store: long enough, at most bcrypt's 72 bytes."""
    if value is None or len(value) < minimum:
        raise weak_password(f"Password should be at least {minimum} characters.")
    if len(value.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise validation_failed(f"Password cannot be longer than {MAX_PASSWORD_BYTES} characters")
    return value


def _text_problem_in(value: Any) -> str | None:
    """The first key or string in a document PostgreSQL's jsonb cannot hold."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def metadata(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    """A metadata object (None when absent or null), bounded in size, depth and text."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_json(f"{key} must be a JSON object")
    if json_depth(value, stop_after=MAX_DEPTH) > MAX_DEPTH:
        raise validation_failed(f"{key} nests deeper than {MAX_DEPTH} levels")
    problem = _text_problem_in(value)
    if problem:
        raise validation_failed(f"{key} has text that {problem}")
    if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
        raise validation_failed(f"{key} is larger than {MAX_METADATA_BYTES} bytes as JSON")
    return value
