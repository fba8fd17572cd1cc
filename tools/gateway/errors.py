"""Error answers in the shapes the real services give, so clients parse them unchanged.

PostgREST answers `{"code", "message", "details", "hint"}` with a status from the SQLSTATE
(docs.postgrest.org, "Errors": the table below) or from its own `PGRSTnnn` code; the edge
runtime answers `{"msg": ...}` for JWT refusals and `{"code", "message"}` otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# SQLSTATE -> HTTP status, as PostgREST maps them; the first match wins, "other" is 400.
_EXACT_STATUS: dict[str, int] = {
    "23503": 409,  # foreign key violation
    "23505": 409,  # uniqueness violation
    "25006": 405,  # read only sql transaction
    "42883": 404,  # undefined function
    "42P01": 404,  # undefined table
    "53400": 500,  # config limit exceeded
    "P0001": 400,  # default code for RAISE
}
_CLASS_STATUS: dict[str, int] = {
    "08": 503,  # connection
    "09": 500,  # triggered action
    "0L": 403,  # invalid grantor
    "0P": 403,  # invalid role specification
    "25": 500,  # invalid transaction state
    "28": 403,  # invalid authorization specification
    "2D": 500,  # invalid transaction termination
    "38": 500,  # external routine
    "39": 500,  # external routine invocation
    "3B": 500,  # savepoint
    "40": 500,  # transaction rollback
    "53": 503,  # insufficient resources
    "54": 413,  # program limit exceeded (too complex)
    "55": 500,  # object not in prerequisite state
    "57": 500,  # operator intervention
    "58": 500,  # system error
    "F0": 500,  # config file
    "HV": 500,  # foreign data wrapper
    "P0": 500,  # PL/pgSQL
    "XX": 500,  # internal
}


def status_for_sqlstate(sqlstate: str | None, *, anonymous: bool) -> int:
    """PostgREST's status for a database error; `PTnnn` is status nnn, as the ingress uses."""
    if not sqlstate:
        return 500
    if sqlstate.startswith("PT"):
        digits = sqlstate[2:]
        if len(digits) == 3 and digits.isdigit() and 100 <= int(digits) <= 599:
            return int(digits)
        return 500
    if sqlstate == "42501":  # insufficient privilege: "who are you" for anon, else "no"
        return 401 if anonymous else 403
    if sqlstate in _EXACT_STATUS:
        return _EXACT_STATUS[sqlstate]
    return _CLASS_STATUS.get(sqlstate[:2], 400)


class PostgrestError(Exception):
    """An answer in PostgREST's error shape, raised anywhere below a /rest/v1 handler."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: str | None = None,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "details": self.details,
            "hint": self.hint,
            "message": self.message,
        }

    def response(self) -> web.Response:
        return json_response(self.body(), status=self.status, headers=self.headers)


def bad_request(message: str, *, details: str | None = None, hint: str | None = None,
                code: str = "PGRST100") -> PostgrestError:
    """A request the gateway will not run: PostgREST's parse error (400) unless told."""
    return PostgrestError(400, code, message, details=details, hint=hint)


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
    )


def functions_error(
    status: int, code: str, message: str, *, relay: bool = False
) -> web.Response:
    """The edge runtime's error answer, with the `sb-error-code` header clients inspect;
    `relay` marks failures of the runtime itself (supabase clients raise a relay error)."""
    headers = {"sb-error-code": code}
    if relay:
        headers["x-relay-error"] = "true"
    return json_response({"code": code, "message": message}, status=status, headers=headers)
