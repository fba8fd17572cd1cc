"""`/functions/v1/<slug>[/...]`: edge functions, each its own Deno process on 127.0.0.1.

A function is a folder `<functions-dir>/<slug>/index.ts` (slug `^[A-Za-z][A-Za-z0-9_-]*$`,
`_shared/` is not one), served by `Deno.serve` in a process of its own (started, watched,
restarted and stopped by its PID in function_processes.py). The gateway enforces
`verify_jwt` from supabase/config.toml (default true; OPTIONS always passes, for CORS
preflights), rewrites the path to `/<slug>/...` as the edge runtime does, and forwards
everything else unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tools.gateway.auth import AuthError, authenticate
from tools.gateway.config import GatewayConfig, GatewayError, read_config_toml
from tools.gateway.errors import functions_error, json_response
from tools.gateway.function_processes import (
    FunctionBootError,
    FunctionProcess,
    FunctionSpec,
    Launcher,
)
from tools.gateway.limits import InputError, read_body
from tools.gateway.shared import ANY_TAIL, GATEWAY, ROLE, log_event
from tools.local import keys as local_keys

SLUG = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
PREFIX = "/functions/v1"
# The methods the edge runtime serves; anything else is its 405.
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Per-connection headers, never forwarded (RFC 9110 section 7.6.1); lengths are recomputed.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "content-length",
})
# aiohttp adds these to a request when absent; a forwarded request must not gain them.
_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
# Seconds a request may wait for the function's answer to go on (the hosted idle timeout).
IDLE_TIMEOUT = 150


def read_functions_settings(config_toml: Path | None) -> dict[str, dict[str, Any]]:
    """The `[functions.<slug>]` tables of supabase/config.toml (none when there is no file)."""
    if config_toml is None:
        return {}
    document = read_config_toml(config_toml)
    functions = document.get("functions", {})
    if not isinstance(functions, dict):
        raise GatewayError(f"{config_toml}: [functions] must be a table")
    settings: dict[str, dict[str, Any]] = {}
    for slug, table in functions.items():
        if not isinstance(table, dict):
            raise GatewayError(f"{config_toml}: [functions.{slug}] must be a table")
        for key in ("verify_jwt", "enabled"):
            if key in table and not isinstance(table[key], bool):
                raise GatewayError(
                    f"{config_toml}: functions.{slug}.{key} must be true or false")
        settings[slug] = table
    return settings


def discover_functions(
    functions_dir: Path | None, config_toml: Path | None = None
) -> dict[str, FunctionSpec]:
    """Every folder with an index.ts whose name is a valid slug, except _shared and those
    disabled in config.toml, with its verify_jwt (default true) and deno.json."""
    settings = read_functions_settings(config_toml)
    if functions_dir is None or not functions_dir.is_dir():
        return {}
    functions_dir = functions_dir.resolve()  # Deno runs in the function's own folder
    found: dict[str, FunctionSpec] = {}
    for directory in sorted(functions_dir.iterdir()):
        slug = directory.name
        entrypoint = directory / "index.ts"
        if not directory.is_dir() or not SLUG.match(slug) or not entrypoint.is_file():
            continue
        table = settings.get(slug, {})
        if table.get("enabled", True) is False:
            continue
        deno_config = next(
            (directory / name for name in ("deno.json", "deno.jsonc")
             if (directory / name).is_file()),
            None,
        )
        found[slug] = FunctionSpec(slug, directory, entrypoint, deno_config,
                                   bool(table.get("verify_jwt", True)))
    return found


@dataclass
class FunctionsRuntime:
    """The discovered functions, their processes, and the client that forwards to them."""

    processes: dict[str, FunctionProcess]
    client: aiohttp.ClientSession

    async def start_all(self) -> None:
        results = await asyncio.gather(
            *(p.ensure_running() for p in self.processes.values()), return_exceptions=True
        )
        for process, result in zip(self.processes.values(), results, strict=True):
            if isinstance(result, BaseException):
                log_event("function_boot_failed", logging.ERROR, slug=process.spec.slug,
                          error=str(result))

    async def stop_all(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.processes.values()))


FUNCTIONS = web.AppKey("functions", FunctionsRuntime)


def launcher_for(config: GatewayConfig) -> Launcher:
    return Launcher(
        deno=config.deno,
        deno_dir=config.deno_dir,
        environment={
            "SUPABASE_URL": config.url,
            "SUPABASE_ANON_KEY": local_keys.anon_key(),
            "SUPABASE_SERVICE_ROLE_KEY": local_keys.service_role_key(),
            "SUPABASE_DB_URL": config.database_url,
        },
        ready_seconds=config.function_ready_seconds,
    )


def _forwarded_headers(request: web.Request) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        if name.lower() not in HOP_BY_HOP:
            headers.add(name, value)
    return headers


def _upstream_url(request: web.Request, port: int) -> URL:
    """The same path after /functions/v1 and the same query, still percent-encoded."""
    raw_path = request.raw_path.split("?", 1)[0][len(PREFIX):]
    query = request.rel_url.raw_query_string
    return URL(f"http://127.0.0.1:{port}{raw_path}" + (f"?{query}" if query else ""),
               encoded=True)


async def no_function(request: web.Request) -> web.StreamResponse:
    """A path under /functions/v1 naming no function: the runtime's 404, not the gateway's."""
    return functions_error(404, "NOT_FOUND", "Requested function was not found")


async def forward(request: web.Request) -> web.StreamResponse:
    runtime = request.app[FUNCTIONS]
    slug = request.match_info["slug"]
    process = runtime.processes.get(slug)
    if process is None:
        return functions_error(404, "NOT_FOUND", "Requested function was not found")
    if request.method not in METHODS:
        return functions_error(405, "METHOD_NOT_ALLOWED",
                               f"{request.method} is not supported by edge functions")
    if process.spec.verify_jwt and request.method != "OPTIONS":
        try:
            caller = authenticate(request.headers, require=True)
        except AuthError as exc:
            message = "Error: Missing authorization header" if exc.missing else "Invalid JWT"
            return json_response({"msg": message}, status=401)
        request[ROLE] = caller.role
    try:
        body = await read_body(request)
    except InputError as exc:
        code = "REQUEST_TOO_LARGE" if exc.status == 413 else "INVALID_REQUEST"
        return functions_error(exc.status, code, str(exc))
    headers = _forwarded_headers(request)
    skip = [name for name in _AUTO_HEADERS if name not in request.headers]
    try:
        port = await process.ensure_running()
        for attempt in (1, 2):
            try:
                upstream = await runtime.client.request(
                    request.method, _upstream_url(request, port), headers=headers,
                    data=body or None, allow_redirects=False, skip_auto_headers=skip,
                )
                break
            except aiohttp.ClientConnectorError:
                # Nothing reached the function: safe to start it again and retry once.
                if attempt == 2:
                    raise FunctionBootError(f"function {slug} refuses connections") from None
                log_event("function_unreachable", logging.WARNING, slug=slug, port=port)
                port = await process.recover(port)
    except FunctionBootError as exc:
        log_event("function_boot_failed", logging.ERROR, slug=slug, error=str(exc))
        return functions_error(503, "BOOT_ERROR", "Function failed to start (please check "
                               "logs)", relay=True)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        pid = process.pid
        exit_code = await process.settle(1.0)
        log_event("function_failed_request", logging.ERROR, slug=slug, pid=pid,
                  exit_code=exit_code, error=repr(exc))
        return functions_error(500, "WORKER_ERROR", "Function exited due to an error "
                               "(please check logs)", relay=True)
    async with upstream:
        return await _relay_response(request, upstream)


async def _relay_response(
    request: web.Request, upstream: aiohttp.ClientResponse
) -> web.StreamResponse:
    """Status, headers and body as the function sent them (streamed, still encoded)."""
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    for name, value in upstream.headers.items():
        if name.lower() not in HOP_BY_HOP:
            response.headers.add(name, value)
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        log_event("function_broke_response", logging.ERROR,
                  slug=request.match_info["slug"], error=repr(exc))
        raise
    await response.write_eof()
    return response


class FunctionsModule:
    """Discovers the functions at startup, runs them, and forwards /functions/v1 to them."""

    name = "functions"

    def install(self, app: web.Application) -> None:
        app.cleanup_ctx.append(self._lifecycle)
        app.router.add_route("*", PREFIX + "/{slug}", forward)
        app.router.add_route("*", PREFIX + "/{slug}/" + ANY_TAIL, forward)
        # No slug (`/functions/v1/`, `/functions/v1//x`): still the runtime's 404 shape.
        app.router.add_route("*", PREFIX, no_function)
        app.router.add_route("*", PREFIX + "/" + ANY_TAIL, no_function)

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        config = app[GATEWAY].config
        specs = discover_functions(config.functions_dir, config.config_toml())
        if specs and not config.deno.exists():
            raise GatewayError(
                f"Deno is not installed at {config.deno}; run ./run setup (npm package deno)")
        config.deno_dir.mkdir(parents=True, exist_ok=True)
        launcher = launcher_for(config)
        client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=IDLE_TIMEOUT),
        )
        # aiohttp sends an idempotent request again when the connection drops; a proxy must
        # not (a function that died mid-request would get it twice). There is no public
        # switch; aiohttp's own test client turns it off the same way.
        client._retry_connection = False
        runtime = FunctionsRuntime({s: FunctionProcess(spec, launcher)
                                    for s, spec in specs.items()}, client)
        app[FUNCTIONS] = runtime
        log_event("functions_discovered", slugs=sorted(specs),
                  functions_dir=str(config.functions_dir))
        try:
            await runtime.start_all()
            yield
        finally:
            await runtime.stop_all()
            await client.close()
