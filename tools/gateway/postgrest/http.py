"""What every /rest/v1 handler shares: who is calling, what it accepts, how answers look."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from tools.gateway.auth import AuthError, Caller, authenticate
from tools.gateway.errors import JSON_CONTENT_TYPE, PostgrestError, bad_request
from tools.gateway.limits import InputError, text_problem
from tools.gateway.session import EXPOSED_SCHEMA
from tools.gateway.shared import ROLE

OBJECT_MEDIA_TYPE = "application/vnd.pgrst.object+json"
ARRAY_MEDIA_TYPE = "application/vnd.pgrst.array+json"
_JSON_MEDIA_TYPES = frozenset({"application/json", ARRAY_MEDIA_TYPE, "*/*", "application/*"})
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Range, Content-Location",
}
_PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PATCH, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type, "
                                    "accept, accept-profile, content-profile, prefer, range",
    "Access-Control-Max-Age": "86400",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Representation:
    """What the client asked to get back: one object or an array; nulls stripped or not."""

    single: bool = False
    strip_nulls: bool = False


def negotiate(accept: str | None) -> Representation:
    """The first acceptable media type of `Accept`, as PostgREST picks it (406 if none)."""
    if not accept or not accept.strip():
        return Representation()
    offered: list[str] = []
    for part in accept.split(","):
        media_type, *parameters = (p.strip() for p in part.split(";"))
        media_type = media_type.lower()
        offered.append(media_type)
        strip = any(p.replace(" ", "").lower() == "nulls=stripped" for p in parameters)
        if media_type == OBJECT_MEDIA_TYPE:
            return Representation(single=True, strip_nulls=strip)
        if media_type in _JSON_MEDIA_TYPES:
            return Representation(strip_nulls=strip and media_type == ARRAY_MEDIA_TYPE)
    raise PostgrestError(406, "PGRST107",
                         f"None of these media types are available: {', '.join(offered)}")


def check_profile(request: web.Request) -> None:
    """Only `public` is exposed; another schema is PostgREST's 406 PGRST106."""
    for header in ("Accept-Profile", "Content-Profile"):
        schema = request.headers.get(header)
        if schema is not None and schema != EXPOSED_SCHEMA:
            raise PostgrestError(406, "PGRST106", f"Invalid schema: {schema}",
                                 hint=f"Only the following schemas are exposed: "
                                      f"{EXPOSED_SCHEMA}")


def caller_of(request: web.Request) -> Caller:
    """The verified caller, or PostgREST's 401 (PGRST301; PGRST303 for an expired token)."""
    try:
        caller = authenticate(request.headers, query_api_key=request.query.get("apikey"))
    except AuthError as exc:
        code = "PGRST303" if exc.expired else "PGRST301"
        description = exc.reason.replace('"', "'")
        raise PostgrestError(
            401, code, exc.reason,
            headers={"WWW-Authenticate":
                     f'Bearer error="invalid_token", error_description="{description}"'},
        ) from None
    request[ROLE] = caller.role
    return caller


def json_body_response(
    body: str | None, *, status: int = 200, content_type: str = JSON_CONTENT_TYPE,
    headers: dict[str, str] | None = None, head: bool = False,
) -> web.Response:
    response = web.Response(
        body=None if head or body is None else body.encode(),
        status=status,
        headers={**CORS_HEADERS, **(headers or {})},
    )
    if body is not None:
        response.headers["Content-Type"] = content_type
    return response



async def preflight(request: web.Request) -> web.StreamResponse:
    return web.Response(status=200, headers=_PREFLIGHT_HEADERS)


def check_request_text(request: web.Request) -> None:
    """Refuse a NUL byte (or a lone surrogate) in the path or the query string before any
    handler runs: table and function names and every parameter reach psycopg as text,
    which cannot carry them (it failed before asking the server: a 503 "retrying")."""
    problem = text_problem(request.path)
    if problem is not None:
        raise bad_request(f"the request path {problem}",
                          details="Names of tables and functions cannot contain it.")
    for key, value in request.query.items():
        problem = text_problem(key) or text_problem(value)
        if problem is not None:
            raise bad_request(f"the query parameter {key[:40]!r} {problem}",
                              details="PostgreSQL text cannot contain it.")


@web.middleware
async def postgrest_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """PostgrestError anywhere under /rest/v1 becomes PostgREST's JSON answer; so does
    input refused by the gateway's limits (tools.gateway.limits), never a 500."""
    try:
        check_request_text(request)
        return await handler(request)
    except PostgrestError as exc:
        error = exc
    except InputError as exc:
        error = PostgrestError(exc.status, "PGRST100", str(exc))
    response = error.response()
    response.headers.update(CORS_HEADERS)
    return response
