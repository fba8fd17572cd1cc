"""`intent projections run` and `intent projections rebuild`: applying the read models
(registered on the `projections` group by tools.cli.projections)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from tools.cli.application import load_application
from tools.cli.common import EXIT_FAILED, database_url_option, err, probe, refuse, resolve_database

if TYPE_CHECKING:
    from domain.feed import FeedPosition
    from projections.metadata import Projection
    from pump.projections.rebuild import FoldPath, Rebuilder

R = TypeVar("R")


def _catalog_projections(names: tuple[str, ...]) -> list[Projection]:
    catalog = load_application().catalog

    if not names:
        return list(catalog)
    chosen = []
    for name in names:
        try:
            chosen.append(catalog.get(name))
        except KeyError as exc:
            raise click.BadParameter(str(exc.args[0]), param_hint="--only") from None
    return chosen


def _run_async(work: Callable[[], Coroutine[Any, Any, R]]) -> R:
    """Run `work`; an unreachable database is the environment's fault (exit 3)."""
    import psycopg
    from psycopg_pool import PoolTimeout

    try:
        return asyncio.run(work())
    except (psycopg.OperationalError, PoolTimeout) as exc:
        refuse(f"the database is not usable: {str(exc).strip()}")


async def _reachable(url: str) -> None:
    await probe(*resolve_database(url))


def _logging() -> None:
    from pump.observability import telemetry
    from pump.observability.logs import setup_logging

    setup_logging("projections")
    telemetry.configure_from_env("projections")  # flushed by the SDK's exit hook


@click.command("run")
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="Run only this projection (repeat for several). Default: every async one.")
@click.option("--poll-interval", type=click.FloatRange(0.05, 60), default=0.25,
              show_default=True, help="Seconds between polls of the feed when it is idle.")
@click.option("--page-size", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Most events applied in one transaction through Python.")
@click.option("--sql-range", type=click.IntRange(0, 1_000_000), default=25_000,
              show_default=True, metavar="EVENTS",
              help="Most feed events one SQL catch-up step folds (0: always page through "
              "Python).")
def run(only: tuple[str, ...], poll_interval: float, page_size: int, sql_range: int) -> None:
    """Follow the event feed and apply the async projections, until SIGTERM or Ctrl-C.

    Each projection reads the feed from its checkpoint in intent.checkpoints
    (consumer projection:<name>@<version>); every page is applied and the checkpoint moved
    in one transaction, under the projection's advisory lock, so each event is applied
    exactly once and several runners may run side by side. A failing event stops only its
    projection: the error (event id, type, position, message) is logged and stored in
    intent.checkpoints.error, and the projection is retried with backoff (1 s doubling to
    60 s) until it passes. A projection declared as Rules that is 500 or more of its events
    behind catches up in SQL, up to --sql-range feed events per transaction (--page-size
    applies to the Python pages near the head). Inline projections are applied by the worker, not
    here; a new one is caught up with `intent projections rebuild NAME` (a warning names
    those that need it). Database from DATABASE_URL or the embedded cluster. Exit 0 when
    stopped, 2 for an unknown or inline --only name, 3 when the database cannot be reached.
    """
    chosen = _catalog_projections(only)
    inline = [p.name for p in chosen if p.mode == "inline"]
    if only and inline:
        raise click.BadParameter(
            f"{', '.join(inline)} is inline (applied by the worker); catch it up with "
            "`intent projections rebuild NAME`",
            param_hint="--only",
        )
    url = resolve_database(None)[0]
    _logging()
    _run_async(lambda: _run(url, chosen, poll_interval, page_size, sql_range))


async def _run(
    url: str, chosen: list[Projection], poll_interval: float, page_size: int, sql_range: int
) -> None:
    registry = load_application().registry
    from pump.projections.checkpoints import inline_catch_up_needed
    from pump.projections.runner import ProjectionRunner
    from pump.readiness import mark_ready
    from pump.store.connections import open_pool

    await _reachable(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async_ones = [p for p in chosen if p.mode == "async"]
    pool = await open_pool(url, min_size=1, max_size=len(async_ones) + 2, name="projections")
    try:
        for projection in await inline_catch_up_needed(pool, chosen):
            err.print(
                f"[yellow]warning:[/yellow] inline projection {projection.name} has never "
                "been rebuilt, and the store holds events it reads: if it was added after "
                "some of them, it lacks them. Run `intent projections rebuild "
                f"{projection.name}` once (that also silences this warning)."
            )
        runner = ProjectionRunner(
            pool, async_ones, registry=registry, page_size=page_size,
            poll_interval=poll_interval, sql_range_events=sql_range,
        )
        names = ", ".join(p.name for p in async_ones) or "none"
        err.print(f"projection runner running (async projections: {names}; "
                  f"pages of up to {page_size})")
        mark_ready()
        await runner.run(stop)
        if not async_ones:
            await stop.wait()
        applied = sum(runner.applied.values())
        err.print(f"projection runner stopped after applying {applied} event(s)")
    finally:
        await pool.close()


class _RateColumn(ProgressColumn):
    """Events per second, as rich measures the task's speed."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} events/s" if speed else "", style="cyan")


def _position(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> FeedPosition | None:
    from pump.projections.rebuild import parse_position

    if value is None:
        return None
    try:
        return parse_position(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("rebuild")
@click.argument("name")
@click.option("--from-position", callback=_position, metavar="TXID:POS",
              help="Start after this feed position instead of the beginning: the rebuilt "
              "rows then reflect only later events.")
@database_url_option("Rebuild in this database instead of DATABASE_URL / the embedded cluster.")
@click.option("--page-size", type=click.IntRange(1, 100_000), default=2000, show_default=True,
              help="Most events applied in one transaction on the Python path.")
@click.option("--lock-timeout", type=click.FloatRange(0.1, 600), default=5.0,
              show_default=True,
              help="Seconds the swap waits for its locks before it catches up and retries.")
@click.option("--fold", type=click.Choice(["auto", "sql", "python"]), default="auto",
              show_default=True,
              help="How the catch-up applies events: in SQL (projections declared as Rules), "
              "through the Python handler page by page, or auto: SQL when it can.")
def rebuild(
    name: str,
    from_position: FeedPosition | None,
    database_url: str | None,
    page_size: int,
    lock_timeout: float,
    fold: str,
) -> None:
    """Rebuild projection NAME from the feed beside the live tables, then swap it in.

    Builds <table>__rebuild twins from the whole feed (or after --from-position) with a
    checkpoint of their own, showing progress and events/s; the live tables stay readable.
    A projection declared as Rules is folded in SQL, 25,000 events per transaction (ranges
    holding older schema versions go through its Python form); any other is applied page
    by page through its handler.
    Once caught up, one short transaction under the projection's lock applies what came
    since, renames live -> <table>__old and twin -> <table> (indexes and primary key too),
    drops the old tables, restores Realtime publication membership and sets the live
    checkpoint to where the rebuild ended. For an inline projection the swap also locks
    the live tables, so the worker's writes wait for it. Exit 0 when swapped in, 1 when a
    handler or write failed (the live tables are unchanged; the error is stored on the
    checkpoint <consumer>:rebuild), 2 for an unknown projection or --fold sql for one that
    cannot be folded in SQL, 3 when the database cannot be reached.
    """
    catalog = load_application().catalog
    from projections.set_fold import unsupported

    try:
        projection = catalog.get(name)
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="NAME") from None
    why = unsupported(projection)
    if fold == "sql" and why is not None:
        raise click.BadParameter(f"{name} cannot be folded in SQL: {why}", param_hint="--fold")
    url = resolve_database(database_url)[0]
    _logging()
    _run_async(
        lambda: _rebuild(url, projection, from_position, page_size, lock_timeout, fold)
    )


def _fold_path(rebuilder: Rebuilder) -> str:
    if rebuilder.fold_path == "python":
        return "Python"
    ranges = rebuilder.ranges
    if ranges["python"]:
        return f"SQL ({ranges['python']} of {ranges['sql'] + ranges['python']} ranges in Python)"
    return "SQL"


async def _rebuild(
    url: str,
    projection: Projection,
    start: FeedPosition | None,
    page_size: int,
    lock_timeout: float,
    fold: str,
) -> None:
    registry = load_application().registry
    from domain.feed import START
    from pump.projections.rebuild import Rebuilder, RebuildError
    from pump.store.connections import open_pool

    await _reachable(url)
    pool = await open_pool(url, min_size=1, max_size=3, name="rebuild")
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
            TimeElapsedColumn(), console=err, transient=True,
            refresh_per_second=4,  # its thread competes with the rebuild for the GIL
        ) as progress:
            task = progress.add_task(f"rebuilding {projection.name}", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            rebuilder = Rebuilder(
                pool, projection, registry=registry, page_size=page_size,
                lock_timeout=lock_timeout, on_progress=advance,
                fold=cast("FoldPath", fold),
            )
            try:
                result = await rebuilder.run(start or START)
            except RebuildError as exc:
                refuse(f"rebuild failed: {exc}", EXIT_FAILED)
    finally:
        await pool.close()
    end = result.end
    err.print(
        f"rebuilt {projection.name}: {result.events:,} events read ({result.handled:,} "
        f"applied) in {result.seconds:.1f} s, {result.events_per_second:,.0f} events/s, "
        f"folded in {_fold_path(rebuilder)}; "
        f"swap {result.swap_seconds * 1000:.0f} ms ({result.swap_events} events, "
        f"{result.swap_attempts} attempt(s)); checkpoint {projection.consumer} at "
        f"{end.transaction_id}:{end.position}"
    )
