"""The local gateway's `/auth/v1`: a development stand-in for Supabase Auth, not GoTrue.

A sub-application with its own pool (as supabase_auth_admin), its settings read once from
config.toml at startup, CORS as Supabase's API gateway answers it, and GoTrue's 404 for any
path it does not serve.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from tools.gateway.auth_api import admin, routes
from tools.gateway.auth_api.errors import AuthApiError, error_response
from tools.gateway.auth_api.inputs import MAX_AUTH_BODY_BYTES
from tools.gateway.auth_api.settings import read_auth_settings
from tools.gateway.auth_api.state import AUTH, AuthState
from tools.gateway.auth_api.store import AUTH_ADMIN, open_auth_pool
from tools.gateway.config import GatewayError
from tools.gateway.shared import ANY_TAIL, GATEWAY

PREFIX = "/auth/v1"
_CORS = {"Access-Control-Allow-Origin": "*",
         "Access-Control-Expose-Headers": "X-Total-Count, Link, X-Supabase-Api-Version"}
_PREFLIGHT = {
    **_CORS,
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type, "
                                    "x-supabase-api-version",
    "Access-Control-Max-Age": "86400",
}


async def _preflight(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204, headers=_PREFLIGHT)


async def _not_found(request: web.Request) -> web.StreamResponse:
    return error_response(request, AuthApiError(404, "not_found", f"{request.path} is not "
                                                "served by the local gateway's /auth/v1"))


async def _cors(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in _CORS.items():
        response.headers.setdefault(name, value)


class AuthModule:
    """Installs `/auth/v1` and opens its pool at startup (closed at cleanup)."""

    name = "auth"

    def install(self, app: web.Application) -> None:
        sub = web.Application(client_max_size=MAX_AUTH_BODY_BYTES + 1)
        sub.router.add_post("/signup", routes.signup)
        sub.router.add_post("/token", routes.token)
        sub.router.add_get("/user", routes.get_user)
        sub.router.add_put("/user", routes.put_user)
        sub.router.add_post("/logout", routes.logout)
        sub.router.add_get("/settings", routes.settings)
        sub.router.add_get("/health", routes.health)
        sub.router.add_post("/admin/users", admin.create)
        sub.router.add_get("/admin/users", admin.list_all)
        sub.router.add_get("/admin/users/{user_id}", admin.get_one)
        sub.router.add_put("/admin/users/{user_id}", admin.update)
        sub.router.add_delete("/admin/users/{user_id}", admin.delete)
        sub.router.add_route("OPTIONS", "/" + ANY_TAIL, _preflight)
        sub.router.add_route("*", "/" + ANY_TAIL, _not_found)
        sub.on_response_prepare.append(_cors)
        config = app[GATEWAY].config
        sub[AUTH] = AuthState(read_auth_settings(config.config_toml()),
                              issuer=config.url + PREFIX)

        async def database(_: web.Application) -> AsyncIterator[None]:
            state = sub[AUTH]
            try:
                state._pool = await open_auth_pool(config.database_url)
            except Exception as exc:
                reason = " ".join(str(exc).split())
                raise GatewayError(f"cannot reach the database as {AUTH_ADMIN} (for "
                                   f"/auth/v1; `intent db start` creates it): {reason}") from None
            try:
                yield
            finally:
                pool, state._pool = state._pool, None
                await pool.close()

        app.cleanup_ctx.append(database)
        app.add_subapp(PREFIX, sub)
