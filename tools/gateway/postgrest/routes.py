"""`/rest/v1`: PostgREST's surface, mounted as a sub-application with its own error shape.

Tables and views are read by `tables.py`, functions called by `rpc.py`; any other path is
PostgREST's 404 (PGRST125).
"""

from __future__ import annotations

from aiohttp import web

from tools.gateway.errors import PostgrestError
from tools.gateway.postgrest import rpc
from tools.gateway.postgrest.http import postgrest_errors, preflight
from tools.gateway.postgrest.tables import read_table, refuse_table_write
from tools.gateway.shared import ANY_TAIL, GATEWAY


async def not_served(request: web.Request) -> web.StreamResponse:
    raise PostgrestError(404, "PGRST125", f"Invalid path specified in request URL: "
                         f"{request.path}",
                         hint="The local gateway serves /rest/v1/<table> and "
                              "/rest/v1/rpc/<function>.")


class RestModule:
    """Mounts PostgREST's surface at /rest/v1 (a sub-application with its own error shape)."""

    name = "rest"

    def install(self, app: web.Application) -> None:
        rest = web.Application(middlewares=[postgrest_errors])
        rest[GATEWAY] = app[GATEWAY]
        rest.router.add_get("/rpc/{function}", rpc.call_function)  # and HEAD
        rest.router.add_route("POST", "/rpc/{function}", rpc.call_function)
        rest.router.add_route("OPTIONS", "/rpc/{function}", preflight)
        rest.router.add_route("*", "/rpc/{function}", rpc.refuse_method)
        rest.router.add_get("/{table}", read_table)  # and HEAD
        rest.router.add_route("OPTIONS", "/{table}", preflight)
        rest.router.add_route("*", "/{table}", refuse_table_write)
        rest.router.add_route("*", "/" + ANY_TAIL, not_served)
        app.add_subapp("/rest/v1", rest)
