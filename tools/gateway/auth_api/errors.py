"""GoTrue's error answers, for the local stand-in (not GoTrue) of `/auth/v1`.

GoTrue answers `{"code": <status>, "error_code", "msg"}`; a client that sends
`X-Supabase-Api-Version: 2024-01-01` or later (supabase-js and supabase-py do) gets
`{"code": <error_code>, "message"}` and the version echoed, which is how the clients know
to read `code` as the error code. Both shapes are answered here as GoTrue answers them.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from tools.gateway.errors import json_response

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION_2024 = "2024-01-01"
_VERSION = re.compile(r"^2[0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")


class AuthApiError(Exception):
    """A refusal in GoTrue's terms: HTTP status, stable error code, message."""

    def __init__(self, status: int, error_code: str, message: str,
                 *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.extra = extra or {}


def validation_failed(message: str, status: int = 400) -> AuthApiError:
    return AuthApiError(status, "validation_failed", message)


def bad_json(reason: str) -> AuthApiError:
    return AuthApiError(400, "bad_json", f"Could not parse request body as JSON: {reason}")


def weak_password(message: str) -> AuthApiError:
    return AuthApiError(422, "weak_password", message,
                        extra={"weak_password": {"reasons": ["length"]}})


def user_not_found() -> AuthApiError:
    return AuthApiError(404, "user_not_found", "User not found")


def api_version(request: web.Request) -> str | None:
    """The API version the client asked for, when it names one GoTrue knows (>= 2024-01-01)."""
    value = request.headers.get(API_VERSION_HEADER, "").strip()
    if _VERSION.match(value) and value >= API_VERSION_2024:
        return API_VERSION_2024
    return None


def error_response(request: web.Request, error: AuthApiError) -> web.Response:
    """The refusal in the shape the client's API version asks for."""
    version = api_version(request)
    if version is None:
        body: dict[str, Any] = {"code": error.status, "error_code": error.error_code,
                                "msg": error.message}
        return json_response({**body, **error.extra}, status=error.status)
    body = {"code": error.error_code, "message": error.message}
    return json_response({**body, **error.extra}, status=error.status,
                         headers={API_VERSION_HEADER: version})
