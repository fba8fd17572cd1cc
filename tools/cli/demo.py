"""`intent demo`: start the stack (or use a running one) and tell the demo's story."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from queue import Empty, Queue
from typing import TYPE_CHECKING

import click
from rich.table import Table

from tools.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, err, out, refuse

if TYPE_CHECKING:
    from tools.demo.scenario import Summary

# The stack's payment deadline for the demo's own stack: long enough for the paid order to
# be paid in time, short enough to watch the unpaid one expire.
DEMO_DEADLINE_SECONDS = 4


class StackError(Exception):
    """The demo's own stack did not come up; the message carries its last output."""


@click.command("demo", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", metavar="URL",
              help="Use the stack already running there (e.g. `intent dev`'s "
              "http://127.0.0.1:54321) instead of starting one.")
@click.option("--short", is_flag=True, help="Fewer deliveries (for CI); the same steps.")
@click.option("--ready-timeout", type=click.FloatRange(10, 3600), default=300.0,
              show_default=True, metavar="SECONDS",
              help="How long the demo's own stack may take to come up.")
@click.option("--deadline-wait", type=click.FloatRange(1, 3600), default=None,
              metavar="SECONDS",
              help="How long to wait for the unpaid order's payment deadline (default: "
              f"{DEMO_DEADLINE_SECONDS * 5} s with the demo's own stack, whose deadline is "
              f"{DEMO_DEADLINE_SECONDS} s; 60 s with --url).")
def demo(url: str | None, short: bool, ready_timeout: float,
         deadline_wait: float | None) -> None:
    """The main job: a shop's story told through the official supabase-py client.

    \b
    Starts its own stack (`intent dev` in <state>/demo, fresh, on free ports, with a
    4-second payment deadline) unless --url names a running one, then:
      1. Everyone signs up or in through /auth/v1; Alice creates tenant Acme and
         invites Bob and Dana, who accept; Carol creates Globex; each refreshed token
         carries its tenant (the access-token hook)
      2. Alice registers an item and receives 60 deliveries through the `command`
         edge function (ten at a time): past the snapshot interval
      3. Bob's live view hydrates the item from its snapshot plus later events
         (load_aggregate) and follows it on its private Realtime topic
      4. Dana orders and pays: the fulfilment saga reserves stock and completes
      5. Bob orders and never pays: at the deadline the saga cancels the order, and
         on order_cancelled releases the stock (the compensation); the live view
         shows each step
      6. Alice reads the stock_levels read model through PostgREST
      7. Carol (tenant Globex) tries the read model, hydration, a command and the
         private topic on Acme's item: each is refused
    then prints a summary and stops what it started. With --url the running stack's
    saga router must have a short deadline (INTENT_SAGA_TIMERS=
    orders.fulfilment.payment_deadline=<seconds>) or step 5 waits --deadline-wait and
    fails. Exit 0 when every step came out right, 1 when one did not (it says which),
    3 when the stack could not be started or reached, 130 when interrupted.
    """
    from tools.demo.scenario import DemoStepError, Story

    started = time.monotonic()
    stack: subprocess.Popen[str] | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if url is None:
            stack, url = _start_stack(ready_timeout)
            wait = deadline_wait or DEMO_DEADLINE_SECONDS * 5
        else:
            _check_reachable(url)
            wait = deadline_wait or 60.0
        story = Story(url, out.print, short=short, deadline_seconds=wait)
        try:
            summary = asyncio.run(story.run())
        except DemoStepError as exc:
            refuse(f"demo step {len(story.summary.steps)} failed: {exc}", EXIT_FAILED)
        _print_summary(summary, time.monotonic() - started)
    except StackError as exc:
        refuse(str(exc))
    except KeyboardInterrupt:
        err.print("[yellow]intent: demo interrupted[/yellow]")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if stack is not None:
            _stop_stack(stack)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _check_reachable(url: str) -> None:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{url.rstrip('/')}/rest/v1/", timeout=10)
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError) as exc:
        raise StackError(f"no stack answers at {url} ({exc}); start one with `./run dev` or "
                         "leave out --url") from None


def _start_stack(ready_timeout: float) -> tuple[subprocess.Popen[str], str]:
    """`intent dev --reset` in <state>/demo on free ports, until it prints its API URL."""
    from tools.local.cluster import free_port
    from tools.settings import REPO_ROOT, state_dir

    state = state_dir() / "demo"
    ports = [free_port() for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
    env |= {"INTENT_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1",
            "INTENT_SAGA_TIMERS": f"orders.fulfilment.payment_deadline={DEMO_DEADLINE_SECONDS}"}
    err.print(f"starting the demo's own stack in {state} (logs in {state / 'logs'}) ...")
    stack = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "dev", "--reset",
         "--gateway-port", str(ports[0]), "--db-port", str(ports[1]),
         "--temporal-port", str(ports[2]), "--ready-timeout", str(ready_timeout)],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines: Queue[str | None] = Queue()
    threading.Thread(target=_pump_lines, args=(stack, lines), daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + ready_timeout + 30
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if line.startswith("API URL: ") or " API URL: " in line:
            url = line.split("API URL: ", 1)[1].strip()
            err.print(f"[dim]stack up: {url}[/dim]")
            return stack, url
        err.print(f"[dim]  {line}[/dim]")
    _stop_stack(stack)
    tail = "\n".join(seen[-20:])
    raise StackError(f"the demo's stack did not come up (exit {stack.poll()}):\n{tail}")


def _pump_lines(process: subprocess.Popen[str], lines: Queue[str | None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _stop_stack(stack: subprocess.Popen[str]) -> None:
    """SIGTERM to `intent dev` (it stops its children in order), by PID."""
    if stack.poll() is None:
        err.print("stopping the demo's stack ...")
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=90)
        except subprocess.TimeoutExpired:
            stack.kill()
            stack.wait(timeout=10)
    if stack.stdout is not None:
        stack.stdout.close()


def _print_summary(summary: Summary, seconds: float) -> None:
    table = Table(title="demo summary", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    table.add_row("steps", str(len(summary.steps)))
    table.add_row("commands sent (through the edge function)", f"{summary.commands:,}")
    table.add_row("events appended (that the demo saw)", f"{summary.events:,}")
    table.add_row("live updates on Bob's screen", f"{summary.live_updates:,}")
    table.add_row("cross-tenant attempts refused", f"{summary.refused}")
    table.add_row("story time", f"{summary.seconds:.1f} s")
    table.add_row("total time (the stack's start included)", f"{seconds:.1f} s")
    out.print(table)
    out.print("[green]demo done: every step came out right[/green]")

