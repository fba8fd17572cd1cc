"""The Deno processes that run the edge functions: one per function, on 127.0.0.1.

Deno.serve ignores PORT; Deno 2 reads `DENO_SERVE_ADDRESS=tcp:127.0.0.1:<port>`, which
overrides whatever the code passes, so the function's code stays exactly what is deployed.
A process is started on demand; one that dies is started again (by a watcher, or by the
next request at the latest), backing off when it keeps dying; each is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.gateway.shared import log_event
from tools.local.cluster import free_port

# A process that exits this soon after it was ready counts as crashing, for the backoff.
QUICK_EXIT_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class FunctionSpec:
    """A function as discovered: its folder, entrypoint, deno.json and verify_jwt."""

    slug: str
    directory: Path
    entrypoint: Path
    deno_config: Path | None = None
    verify_jwt: bool = True


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
