"""The local gateway: one aiohttp application answering Supabase's URLs on one port.

It is assembled from modules (REST, functions, Realtime, Auth), each adding its routes and
its own start/stop work to the application. They share what `create_app` provides (the
types are in `tools.gateway.shared`): the configuration, the verified-caller logic
(`tools.gateway.auth`), the `authenticator` database pool, and one structured log line per
request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from projections.application import Application
from tools.gateway.auth_api.module import AuthModule
from tools.gateway.config import GatewayConfig, GatewayError
from tools.gateway.console import ConsoleModule
from tools.gateway.errors import json_response
from tools.gateway.functions import FunctionsModule
from tools.gateway.limits import MAX_BODY_BYTES
from tools.gateway.postgrest.routes import RestModule
from tools.gateway.realtime.routes import RealtimeModule
from tools.gateway.session import open_authenticator_pool
from tools.gateway.shared import ANY_TAIL, GATEWAY, ROLE, Gateway, GatewayModule, log_event

# Query parameters that carry secrets; logged as "***".
_SECRET_PARAMETERS = frozenset({"apikey", "access_token", "token"})


def redacted_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "***" if k.lower() in _SECRET_PARAMETERS else v) for k, v in pairs])


@web.middleware
async def _request_log(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A structured line per request; an unexpected error becomes a logged 500 in JSON."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception as exc:
        log_event("unhandled_error", logging.ERROR, method=request.method, path=request.path,
                  error=repr(exc))
        return json_response({"message": "internal error in the local gateway"}, status=500)
    finally:
        fields: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }
        if request.query_string:
            fields["query"] = redacted_query(request.query_string)
        role = request.get(ROLE)
        if role:
            fields["role"] = role
        log_event("request", **fields)


def create_app(
    config: GatewayConfig, modules: Sequence[GatewayModule] | None = None,
    *, application: Application | None = None,
) -> web.Application:
    """The gateway with the given modules (default: REST, functions, Realtime, Auth and the
    console, which folds aggregates with `application`, the one the CLI loaded)."""
    if modules is None:
        modules = [RestModule(), FunctionsModule(), RealtimeModule(), AuthModule(),
                   ConsoleModule(application)]
    app = web.Application(middlewares=[_request_log], client_max_size=MAX_BODY_BYTES)
    gateway = Gateway(config)
    app[GATEWAY] = gateway

    async def database(app: web.Application) -> AsyncIterator[None]:
        try:
            gateway._pool = await open_authenticator_pool(
                config.database_url, max_size=config.db_pool_size
            )
        except Exception as exc:
            reason = " ".join(str(exc).split())
            raise GatewayError(f"cannot reach the database as authenticator: {reason}") from None
        try:
            yield
        finally:
            pool, gateway._pool = gateway._pool, None
            await pool.close()

    app.cleanup_ctx.append(database)
    for module in modules:
        module.install(app)
    app.router.add_route("*", "/" + ANY_TAIL, _not_served)  # last: modules' routes win
    return app


async def _not_served(request: web.Request) -> web.StreamResponse:
    message = f"{request.path} is not served by the local gateway"
    return json_response({"message": message}, status=404)
