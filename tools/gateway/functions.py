"""`/functions/v1/<slug>[/...]`: edge functions, each its own Deno process on 127.0.0.1.

A function is a folder `<functions-dir>/<slug>/index.ts` (slug `^[A-Za-z][A-Za-z0-9_-]*$`,
`_shared/` is not one), served by `Deno.serve`. Deno.serve ignores PORT; Deno 2 reads
`DENO_SERVE_ADDRESS=tcp:127.0.0.1:<port>`, which overrides whatever the code passes, so
the function's code stays exactly what is deployed. The gateway enforces `verify_jwt` from
supabase/config.toml (default true; OPTIONS always passes, for CORS preflights), rewrites
the path to `/<slug>/...` as the edge runtime does, and forwards everything else unchanged.
A process that dies is started again (by a watcher, or by the next request at the latest);
every process is stopped by its PID when the gateway stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import signal
import sys
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tools import local_keys
from tools.gateway.app import ANY_TAIL, GATEWAY, ROLE, GatewayConfig, GatewayError, log_event
from tools.gateway.auth import AuthError, authenticate
from tools.gateway.errors import functions_error, json_response
from tools.gateway.limits import InputError, read_body
from tools.local_pg import free_port

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
# A process that exits this soon after it was ready counts as crashing, for the backoff.
QUICK_EXIT_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class FunctionSpec:
    slug: str
    directory: Path
    entrypoint: Path
    deno_config: Path | None = None
    verify_jwt: bool = True


def read_functions_settings(config_toml: Path | None) -> dict[str, dict[str, Any]]:
    """The `[functions.<slug>]` tables of supabase/config.toml (none when there is no file)."""
    if config_toml is None:
        return {}
    try:
        with config_toml.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise GatewayError(f"cannot read {config_toml}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GatewayError(f"{config_toml} is not valid TOML: {exc}") from None
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


class FunctionBootError(Exception):
    """The function's process did not come up listening; the message says why."""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the gateway dies, even by SIGKILL (Linux),
    so that no function outlives it."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


@dataclass(frozen=True)
class Launcher:
    """How to start a function: the Deno binary, its cache, the environment it gets."""

    deno: Path
    deno_dir: Path
    environment: dict[str, str]
    ready_seconds: float = 60.0

    def command(self, spec: FunctionSpec) -> list[str]:
        args = [str(self.deno), "run", "--allow-net", "--allow-env", "--allow-read",
                "--no-prompt"]
        if spec.deno_config is not None:
            args += ["--config", str(spec.deno_config)]
        else:
            args.append("--no-config")  # never pick up a config of a parent folder
        lock = spec.directory / "deno.lock"
        args += [f"--lock={lock}"] if lock.is_file() else ["--no-lock"]
        args.append(str(spec.entrypoint))
        return args

    def env(self, port: int) -> dict[str, str]:
        return {
            **os.environ,
            **self.environment,
            "DENO_DIR": str(self.deno_dir),
            "DENO_SERVE_ADDRESS": f"tcp:127.0.0.1:{port}",
            "DENO_NO_PACKAGE_JSON": "1",
            "DENO_NO_UPDATE_CHECK": "1",
            "NO_COLOR": "1",
        }


@dataclass
class FunctionProcess:
    """One function's Deno process: started on demand, restarted when it dies."""

    spec: FunctionSpec
    launcher: Launcher
    port: int | None = None
    starts: int = 0
    _proc: asyncio.subprocess.Process | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    _stopping: bool = False
    _quick_exits: int = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def ensure_running(self) -> int:
        """The port of a live process, starting one when there is none."""
        async with self._lock:
            if self._stopping:
                raise FunctionBootError("the gateway is stopping")
            if self.running() and self.port is not None:
                return self.port
            return await self._start()

    async def recover(self, failed_port: int) -> int:
        """After a refused connection: start again unless another request already did; a
        process that is alive but not listening is stopped first."""
        async with self._lock:
            if self._stopping:
                raise FunctionBootError("the gateway is stopping")
            if self.port != failed_port and self.running() and self.port is not None:
                return self.port
            if self._proc is not None and self._proc.returncode is None:
                log_event("function_unresponsive", logging.WARNING, slug=self.spec.slug,
                          pid=self._proc.pid, port=failed_port)
                await self._terminate(self._proc)
            return await self._start()

    async def _start(self) -> int:
        previous = self._proc
        if previous is not None and previous.returncode is not None:
            log_event("function_restarting", logging.WARNING, slug=self.spec.slug,
                      previous_pid=previous.pid, exit_code=previous.returncode)
        port = free_port()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.launcher.command(self.spec),
                cwd=self.spec.directory,
                env=self.launcher.env(port),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # a terminal's Ctrl-C reaches the gateway only
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as exc:
            raise FunctionBootError(f"cannot run {self.launcher.deno}: {exc}") from None
        self._proc, self.port = proc, port
        self.starts += 1
        for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            if stream is not None:
                self._spawn(self._relay_output(stream, name, proc.pid))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.launcher.ready_seconds
        while True:
            if proc.returncode is not None:
                raise FunctionBootError(
                    f"function {self.spec.slug} exited with code {proc.returncode} before "
                    "it listened (see its output in the log)")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if loop.time() > deadline:
                    await self._terminate(proc)
                    raise FunctionBootError(
                        f"function {self.spec.slug} did not listen on 127.0.0.1:{port} "
                        f"within {self.launcher.ready_seconds:g} s") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            break
        log_event("function_started", slug=self.spec.slug, pid=proc.pid, port=port,
                  start=self.starts)
        self._spawn(self._watch(proc, loop.time()))
        return port

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay_output(self, stream: asyncio.StreamReader, name: str, pid: int) -> None:
        while line := await stream.readline():
            log_event("function_output", slug=self.spec.slug, pid=pid, stream=name,
                      line=line.decode(errors="replace").rstrip("\n"))

    async def _watch(self, proc: asyncio.subprocess.Process, ready_at: float) -> None:
        """When the process dies on its own, start it again, backing off if it keeps dying."""
        code = await proc.wait()
        if self._stopping or self._proc is not proc:
            return
        lived = asyncio.get_running_loop().time() - ready_at
        self._quick_exits = self._quick_exits + 1 if lived < QUICK_EXIT_SECONDS else 0
        delay = min(30.0, 0.5 * 2 ** (self._quick_exits - 1)) if self._quick_exits else 0.0
        log_event("function_exited", logging.WARNING, slug=self.spec.slug, pid=proc.pid,
                  exit_code=code, restart_in_s=delay)
        await asyncio.sleep(delay)
        if self._stopping or self._proc is not proc:
            return
        try:
            await self.ensure_running()
        except FunctionBootError as exc:
            log_event("function_boot_failed", logging.ERROR, slug=self.spec.slug,
                      error=str(exc))

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM to the process's PID, SIGKILL after 5 s."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    async def settle(self, seconds: float) -> int | None:
        """After a connection broke: wait (briefly) for the process to finish dying, so the
        next request finds it dead and starts a new one instead of reaching a process that
        is still tearing down. The exit code, or None while it lives on."""
        proc = self._proc
        if proc is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(proc.wait()), seconds)
        except TimeoutError:
            return None

    async def stop(self) -> None:
        self._stopping = True
        async with self._lock:
            if self._proc is not None:
                await self._terminate(self._proc)
                log_event("function_stopped", slug=self.spec.slug, pid=self._proc.pid)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


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
