"""`/console` of the local gateway: the Intent console's static page (tools/console/), the
supabase-js browser bundle from the project's own node_modules (no CDN), and a
`config.json` with this gateway's URL and anon key, so the page signs in here by default,
and `catalogue.json`, the command catalogue the composer builds its forms from; and
`POST /console/fold` (tools.gateway.console_fold), where the aggregate inspector has the
application's own domain fold the events it read; and `projections.json`
(tools.gateway.console_catalog), the application's projections for the read-models view.
Pointed at a hosted project's URL and anon key, the same page works against it (all but
the fold and the projections, which only this gateway serves)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from projections.application import Application
from tools.gateway.console_catalog import CatalogRoute
from tools.gateway.console_fold import FoldRoute
from tools.local.keys import anon_key
from tools.settings import REPO_ROOT

PREFIX = "/console"
STATIC = REPO_ROOT / "tools" / "console"
CATALOGUE = REPO_ROOT / "supabase" / "functions" / "_shared" / "command_schemas.json"
BUNDLE = REPO_ROOT / "node_modules" / "@supabase" / "supabase-js" / "dist" / "umd" / "supabase.js"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _files() -> dict[str, str]:
    """The page's files by name: what tools/console/ holds (one folder, no subfolders)."""
    return {path.name: TYPES[path.suffix] for path in STATIC.iterdir()
            if path.is_file() and path.suffix in TYPES}


async def _page(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name") or "index.html"
    files = _files()
    if name not in files:
        raise web.HTTPNotFound(text=f"{request.path} is not part of the console")
    return web.FileResponse(STATIC / name, headers={"Content-Type": files[name],
                                                    "Cache-Control": "no-store"})


async def _bundle(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(BUNDLE, headers={"Content-Type": "text/javascript"})


async def _catalogue(request: web.Request) -> web.StreamResponse:
    """The command catalogue the `command` function validates with (intent generate)."""
    return web.FileResponse(CATALOGUE, headers={"Content-Type": "application/json"})


class Project(NamedTuple):
    """The project the page signs in to by default: a hosted one's URL and anon key (for
    `intent console`), else this gateway (None)."""

    url: str
    anon_key: str


def _config(project: Project | None) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def config(request: web.Request) -> web.StreamResponse:
        if project is not None:
            return web.json_response({"url": project.url, "anonKey": project.anon_key})
        return web.json_response({"url": f"{request.scheme}://{request.host}",
                                  "anonKey": anon_key()})

    return config


async def _to_slash(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{PREFIX}/")


class ConsoleModule:
    """The console's routes; `application` is what /console/fold folds with (None: the
    gateway was started without one, and the fold says so)."""

    name = "console"

    def __init__(self, application: Application | None = None,
                 project: Project | None = None) -> None:
        self.application = application
        self.project = project

    def install(self, app: web.Application) -> None:
        app.router.add_get(PREFIX, _to_slash)
        app.router.add_get(f"{PREFIX}/", _page)
        app.router.add_get(f"{PREFIX}/config.json", _config(self.project))
        app.router.add_get(f"{PREFIX}/catalogue.json", _catalogue)
        app.router.add_get(f"{PREFIX}/vendor/supabase.js", _bundle)
        app.router.add_post(f"{PREFIX}/fold", FoldRoute(self.application).handle)
        app.router.add_get(f"{PREFIX}/projections.json",
                           CatalogRoute(self.application).handle)
        app.router.add_get(PREFIX + "/{name}", _page)
