"""What the gateway's modules (REST, functions, Realtime) share, below `create_app`.

The `Gateway` object (configuration and database pool) under the app key `GATEWAY`, the
caller's role for the request's log line (`ROLE`), the route pattern for the rest of a
path, the `GatewayModule` protocol the modules follow, and the structured log line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from tools.gateway.config import GatewayConfig
from tools.gateway.session import Conn

log = logging.getLogger("intent.gateway")


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
