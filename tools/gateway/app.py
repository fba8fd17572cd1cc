"""The local gateway: one aiohttp application answering Supabase's URLs on one port.

It is assembled from modules (REST, functions, Realtime), each adding its routes and
its own start/stop work to the application. They share what `create_app` provides: the
configuration, the verified-caller logic (`tools.gateway.auth`), the `authenticator`
database pool, and one structured log line per request.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from tools.gateway.errors import json_response
from tools.gateway.limits import MAX_BODY_BYTES
from tools.gateway.session import Conn, open_authenticator_pool
from tools.settings import REPO_ROOT

log = logging.getLogger("intent.gateway")

DEFAULT_PORT = 54321
# Query parameters that carry secrets; logged as "***".
_SECRET_PARAMETERS = frozenset({"apikey", "access_token", "token"})


class GatewayError(Exception):
    """The gateway cannot start here (port taken, database unreachable, no Deno, ...)."""


@dataclass(frozen=True)
class GatewayConfig:
    database_url: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    functions_dir: Path | None = REPO_ROOT / "supabase" / "functions"
    # supabase/config.toml; None: the config.toml beside the functions folder, if any.
    functions_config: Path | None = None
    deno: Path = REPO_ROOT / "node_modules" / ".bin" / "deno"
    deno_dir: Path = REPO_ROOT / ".intent" / "deno"
    db_pool_size: int = 10
    # Seconds a function may take to listen (the first start may fetch npm packages).
    function_ready_seconds: float = 60.0

    @property
    def url(self) -> str:
        """The URL clients (and the functions, as SUPABASE_URL) reach the gateway at."""
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        return f"http://{host}:{self.port}"

    def config_toml(self) -> Path | None:
        if self.functions_config is not None:
            return self.functions_config
        if self.functions_dir is None:
            return None
        candidate = self.functions_dir.parent / "config.toml"
        return candidate if candidate.is_file() else None


@dataclass
class Gateway:
    """What the modules share; the pool exists between startup and cleanup."""

    config: GatewayConfig
    _pool: AsyncConnectionPool[Conn] | None = field(default=None, repr=False)

    @property
    def pool(self) -> AsyncConnectionPool[Conn]:
        if self._pool is None:
            raise RuntimeError("the gateway's database pool is not open (app not started)")
        return self._pool


# The rest of a path, whatever it holds. Not `.*`: that stops at a newline (%0A), and a
# path no route matches gets aiohttp's plain-text 404 instead of the service's JSON one.
ANY_TAIL = r"{tail:[\s\S]*}"

GATEWAY = web.AppKey("gateway", Gateway)
# The caller's role, set by the module that verified the request, for the request's log line.
ROLE = web.RequestKey("intent.role", str)


def gateway_of(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


class GatewayModule(Protocol):
    """A part of the gateway: adds routes, and start/stop work through app.cleanup_ctx."""

    name: str

    def install(self, app: web.Application) -> None: ...


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One JSON object per line, so that logs can be grepped and parsed alike."""
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": logging.getLevelName(level).lower(),
        "event": event,
        **fields,
    }
    log.log(level, json.dumps(record, default=str, separators=(",", ":")))


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
    config: GatewayConfig, modules: Sequence[GatewayModule] | None = None
) -> web.Application:
    """The gateway with the given modules (default: REST, functions and Realtime)."""
    if modules is None:
        from tools.gateway.functions import FunctionsModule
        from tools.gateway.realtime import RealtimeModule
        from tools.gateway.rest import RestModule

        modules = [RestModule(), FunctionsModule(), RealtimeModule()]
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
    if request.path.startswith("/auth/"):
        message += " (GoTrue is not emulated: mint user tokens with `intent token`)"
    return json_response({"message": message}, status=404)
