"""What a running Intent is doing, read from its database (and Temporal, for sagas).

Everything here is a read: `intent status` may be pointed at any database, a production one
included. Each figure is one query; the report says what needs attention and why, so that a
script can act on the exit code and a person on the text.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict

from projections.metadata import Projection
from pump.broadcast.relay import CONSUMER as RELAY_CONSUMER
from pump.observability.gauges import HeldBack, read_broadcast_lag, read_held_back, read_lag

COMMAND_STATUSES = ("pending", "dispatched", "processed", "rejected", "failed")
_SAGA_ID = re.compile(r"^intent-saga-(?P<saga>.+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
                      r"[0-9a-f]{4}-[0-9a-f]{12}-")


@dataclass
class Commands:
    by_status: dict[str, int]
    oldest_pending_seconds: float | None
    failed_last_hour: int


@dataclass
class StuckBatch:
    batch_id: str
    command_count: int
    dispatches: int
    age_seconds: float
    last_error: Any


@dataclass
class Consumer:
    """A follower of the global feed: an async projection, the saga router, the broadcast
    relay, a rebuild."""

    consumer: str
    kind: str  # "projection", "saga router", "broadcast relay", "rebuild", "other"
    checkpoint: str | None  # "<transaction id>/<position>", None before its first page
    lag_events: int
    lag_capped: bool
    lag_seconds: float
    error: Any
    updated_seconds_ago: float | None


@dataclass
class InlineProjection:
    name: str
    version: int


@dataclass
class Sagas:
    reachable: bool
    running: dict[str, int] = field(default_factory=dict)  # by saga
    by_state: dict[str, int] = field(default_factory=dict)  # as the intent.sagas gauge
    error: str | None = None
    listed_all: bool = True


@dataclass
class DevStack:
    """What the local `intent dev` that runs this database says it is doing (its dev.json):
    PostgreSQL's state ("up", "restarting", "waiting") and each process's ("ready",
    "starting", "restarting", "waiting for postgres")."""

    pid: int
    postgres: str
    processes: dict[str, str]
    updated_at: str

    def notes(self) -> list[str]:
        """One line per thing that is not serving, e.g. "postgres is restarting"."""
        lines = [] if self.postgres == "up" else [_POSTGRES_NOTES.get(
            self.postgres, f"postgres is {self.postgres}")]
        lines += [f"{name} is {state}" for name, state in self.processes.items()
                  if state != "ready"]
        return lines


_POSTGRES_NOTES = {
    "restarting": "postgres is restarting",
    "waiting": "postgres is down and waited for (`intent dev` did not start it, so it "
               "does not restart it: start it again, e.g. with `intent db start`)",
    "lost": "postgres could not be restarted (`intent dev` is stopping)",
}


def read_dev_stack(state_dir: Path, database_url: str) -> DevStack | None:
    """The state of a running `intent dev` whose database is `database_url` (on this
    machine, its port), or None: no dev.json, a dev that is gone, another database."""
    from tools.local.cluster import process_exists
    from tools.local.dev import record

    found = record.read(state_dir / "dev.json")
    if found is None or not process_exists(found.dev):
        return None
    try:
        params = conninfo_to_dict(database_url)
    except Exception:  # not a URL psycopg reads: not ours to describe
        return None
    host, port = str(params.get("host") or "localhost"), str(params.get("port") or "5432")
    if host not in {"127.0.0.1", "localhost", "::1"} or port != str(found.db_port):
        return None
    return DevStack(found.dev, found.postgres_state, dict(found.states), found.updated_at)


@dataclass
class StatusReport:
    database: str
    commands: Commands
    stuck_batches: list[StuckBatch]
    consumers: list[Consumer]
    inline_projections: list[InlineProjection]
    held_back_by: HeldBack | None
    feed_head: str | None
    sagas: Sagas | None
    stuck_after_seconds: float
    held_back_warn_seconds: float
    dev: DevStack | None = None
    relay_behind_warn_seconds: float = 60.0

    @property
    def attention(self) -> list[str]:
        """What an operator should look at; empty when all is well."""
        notes: list[str] = []
        if self.stuck_batches:
            notes.append(f"{len(self.stuck_batches)} batch(es) dispatched more than "
                         f"{self.stuck_after_seconds:g} s ago and not finished")
        for consumer in self.consumers:
            if consumer.error is not None:
                notes.append(f"{consumer.consumer} is stopped by an error")
            elif (consumer.kind == "broadcast relay"
                  and consumer.lag_seconds > self.relay_behind_warn_seconds):
                notes.append(f"Realtime is {consumer.lag_seconds:.0f} s behind: "
                             f"{consumer.lag_events:,} event(s) without their broadcast "
                             "(is `intent relay` running?)")
        if self.held_back_by and self.held_back_by.age_seconds > self.held_back_warn_seconds:
            notes.append(f"transaction {self.held_back_by.transaction_id} (pid "
                         f"{self.held_back_by.pid}) has held the feed back for "
                         f"{self.held_back_by.age_seconds:.0f} s")
        if self.commands.failed_last_hour:
            notes.append(f"{self.commands.failed_last_hour} command(s) failed in the last hour")
        if self.sagas is not None and not self.sagas.reachable:
            notes.append(f"Temporal not reachable: {self.sagas.error}")
        if self.dev is not None:
            notes += [f"intent dev (pid {self.dev.pid}): {note}" for note in self.dev.notes()]
        return notes

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "attention": self.attention}


def dumps(report: StatusReport) -> str:
    return json.dumps(report.as_json(), indent=2, default=str) + "\n"


def consumer_kind(consumer: str) -> str:
    if consumer == "saga_router":
        return "saga router"
    if consumer == RELAY_CONSUMER:
        return "broadcast relay"
    if consumer.startswith("projection:") and ":rebuild" in consumer:
        return "rebuild"
    if consumer.startswith("projection:"):
        return "projection"
    return "other"


def saga_name(workflow_id: str) -> str:
    match = _SAGA_ID.match(workflow_id)
    return match.group("saga") if match else "unknown"


async def read_status(
    conn: AsyncConnection[Any],
    catalog: list[Projection],
    *,
    database: str,
    stuck_after: timedelta,
    held_back_warn: timedelta,
    relay_behind_warn: timedelta = timedelta(seconds=60),
) -> StatusReport:
    """Everything but the sagas, from one connection (autocommit: each query sees now)."""
    return StatusReport(
        database=database,
        commands=await _commands(conn),
        stuck_batches=await _stuck_batches(conn, stuck_after),
        consumers=await _consumers(conn, catalog),
        inline_projections=[InlineProjection(p.name, p.version)
                            for p in catalog if p.mode == "inline"],
        held_back_by=await read_held_back(conn),
        feed_head=await _feed_head(conn),
        sagas=None,
        stuck_after_seconds=stuck_after.total_seconds(),
        held_back_warn_seconds=held_back_warn.total_seconds(),
        relay_behind_warn_seconds=relay_behind_warn.total_seconds(),
    )


async def _commands(conn: AsyncConnection[Any]) -> Commands:
    cur = await conn.execute("select status, count(*) from intent.commands group by status")
    by_status = dict.fromkeys(COMMAND_STATUSES, 0)
    for status, count in await cur.fetchall():
        by_status[str(status)] = int(count)
    cur = await conn.execute(
        "select extract(epoch from now() - min(created_at))::float8 from intent.commands"
        " where status = 'pending'"
    )
    row = await cur.fetchone()
    cur = await conn.execute(
        "select count(*) from intent.commands"
        " where status = 'failed' and updated_at > now() - interval '1 hour'"
    )
    failed = await cur.fetchone()
    return Commands(by_status, row[0] if row else None, int(failed[0]) if failed else 0)


async def _stuck_batches(conn: AsyncConnection[Any], older_than: timedelta) -> list[StuckBatch]:
    cur = await conn.execute(
        "select batch_id::text, command_count, dispatches,"
        " extract(epoch from now() - updated_at)::float8, last_error from intent.batches"
        " where status = 'dispatched' and updated_at < now() - %s order by updated_at limit 100",
        (older_than,),
    )
    return [StuckBatch(*row) for row in await cur.fetchall()]


async def _consumers(conn: AsyncConnection[Any], catalog: list[Projection]) -> list[Consumer]:
    cur = await conn.execute(
        "select consumer, transaction_id::text, position, error,"
        " extract(epoch from now() - updated_at)::float8 from intent.checkpoints"
    )
    rows = {row[0]: row for row in await cur.fetchall()}
    # Every async projection of the app is listed, also before its runner's first page.
    wanted = {p.consumer for p in catalog if p.mode == "async"} | set(rows)
    consumers = []
    for name in sorted(wanted):
        row = rows.get(name)
        # The figures the lag gauges report; the relay's skips what the old trigger sent.
        lag = await (read_broadcast_lag(conn) if name == RELAY_CONSUMER
                     else read_lag(conn, name))
        consumers.append(Consumer(
            consumer=name,
            kind=consumer_kind(name),
            checkpoint=f"{row[1]}/{int(row[2])}" if row else None,
            lag_events=lag.events,
            lag_capped=lag.capped,
            lag_seconds=lag.seconds,
            error=row[3] if row else None,
            updated_seconds_ago=row[4] if row else None,
        ))
    return consumers


async def _feed_head(conn: AsyncConnection[Any]) -> str | None:
    cur = await conn.execute(
        "select transaction_id::text, position from intent.events"
        " order by transaction_id desc, position desc limit 1"
    )
    row = await cur.fetchone()
    return f"{row[0]}/{row[1]}" if row else None


async def read_sagas(address: str, namespace: str, *, limit: int = 10_000) -> Sagas:
    """Running saga workflows by saga, from Temporal's visibility; unreachable is reported,
    not raised (the database part of the status still stands)."""
    import asyncio
    from dataclasses import replace

    from pump.sagas.contracts import SAGA_WORKFLOW
    from pump.temporal.client import connect
    from pump.temporal.settings import TemporalSettings

    try:
        # The credentials (API key, TLS) from the environment, as the workers use them.
        settings = replace(TemporalSettings.from_env(), address=address, namespace=namespace)
        client = await asyncio.wait_for(connect(settings), 10)
    except Exception as exc:  # any connection failure: say it, keep the rest
        return Sagas(reachable=False, error=" ".join(str(exc).split())[:200] or repr(exc))
    from pump.observability.gauges import count_sagas

    running: dict[str, int] = {}
    seen = 0
    query = f'WorkflowType = "{SAGA_WORKFLOW}" AND ExecutionStatus = "Running"'
    try:
        async for execution in client.list_workflows(query, limit=limit):
            running[saga_name(execution.id)] = running.get(saga_name(execution.id), 0) + 1
            seen += 1
        by_state = await count_sagas(client, SAGA_WORKFLOW)
    except Exception as exc:
        return Sagas(reachable=False, error=" ".join(str(exc).split())[:200] or repr(exc))
    return Sagas(reachable=True, running=running, by_state=by_state, listed_all=seen < limit)
