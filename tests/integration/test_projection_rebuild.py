"""Rebuilds: the same rows as live, swapped in with the live names, grants, policies and
publication; events arriving meanwhile are not lost; failures leave the live tables alone.
Also `intent projections rebuild` and `intent bench projections --quick` end to end."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from domain.contracts import Event
from domain.feed import FeedPosition
from projections.ddl import projection_ddl
from projections.inventory import STOCK_LEVELS, stock_levels_rules
from projections.metadata import Op, Projection, Upsert
from projections.orders import ORDER_SUMMARIES
from projections.shop import registry
from projections.sql import PUBLICATION
from pump.projections.rebuild import (
    Rebuilder,
    RebuildError,
    parse_position,
    rebuild_consumer,
)
from pump.store.connections import Conn
from pump.store.events import PostgresEventStore
from tests.support.feed import checkpoint_of, head
from tests.support.processes import run_intent
from tests.support.projections import THINGS, Made, fresh, runner_for, table_rows
from tests.support.streams import append, new_stream, received, registered

pytestmark = pytest.mark.integration




async def catalog_state(pool: AsyncConnectionPool[Conn], projection: Projection) -> dict[str, Any]:
    """Names, access rules and publication membership of a projection's schema."""
    schema = projection.schema_name
    async with pool.connection() as conn:
        tables = await (await conn.execute(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " coalesce(array_to_string(c.relacl, ','), '') from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relkind = 'r' order by 1", (schema,),
        )).fetchall()
        indexes = await (await conn.execute(
            "select indexname from pg_indexes where schemaname = %s order by 1", (schema,),
        )).fetchall()
        policies = await (await conn.execute(
            "select tablename, policyname, roles::text, qual from pg_policies"
            " where schemaname = %s order by 1, 2", (schema,),
        )).fetchall()
        published = await (await conn.execute(
            "select tablename from pg_publication_tables where pubname = %s"
            " and schemaname = %s order by 1", (PUBLICATION, schema),
        )).fetchall()
    return {"tables": tables, "indexes": indexes, "policies": policies,
            "published": published}


async def stock_history(store: PostgresEventStore, tenant: Any, items: int = 3) -> list[Event]:
    events: list[Event] = []
    for _ in range(items):
        stream = new_stream(tenant)
        events += await append(store, [registered(stream), received(stream, 2, 4),
                                       received(stream, 3, 5)])
    return events


async def test_a_rebuild_swaps_in_the_same_rows_under_the_live_names(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS, mode="async", realtime=True))
    start = await head(pool)
    tenant = uuid4()
    await stock_history(store, tenant)
    await runner_for(pool, projection).catch_up(projection)
    live_rows = await table_rows(pool, projection, tenant=tenant)
    before = await catalog_state(pool, projection)
    assert before["published"] == [("stock_levels",)]
    progress: list[tuple[int, int]] = []
    result = await Rebuilder(pool, projection, page_size=2,
                             on_progress=lambda done, total: progress.append((done, total))
                             , registry=registry).run(start)
    assert await table_rows(pool, projection, tenant=tenant) == live_rows
    assert await catalog_state(pool, projection) == before
    assert result.events == result.handled == 9
    assert progress[-1] == (9, 9)
    checkpoint = await checkpoint_of(pool, projection.consumer)
    assert checkpoint.position == result.end == await head(pool)
    assert not (await checkpoint_of(pool, rebuild_consumer(projection))).exists


async def test_events_arriving_during_a_rebuild_are_applied_once(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS, mode="async"))
    start = await head(pool)
    tenant = uuid4()
    await stock_history(store, tenant, items=2)
    runner = runner_for(pool, projection)
    await runner.catch_up(projection)
    rebuilder = Rebuilder(pool, projection, registry=registry)
    await rebuilder.prepare(start)
    position = await rebuilder.catch_up(start)
    late = new_stream(tenant)
    late_events = await append(store, [registered(late), received(late, 2, 6)])
    end, attempts = await rebuilder.swap(position)
    assert (end, attempts) == (FeedPosition.of(late_events[-1]), 1)
    assert (await runner.step(projection)).status == "idle"  # nothing applied twice
    rows = await table_rows(pool, projection, tenant=tenant)
    assert sorted(r[4] for r in rows) == [6, 9, 9]


async def test_a_rebuild_from_a_position_holds_only_later_events(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS, mode="async"))
    tenant = uuid4()
    early = await stock_history(store, tenant, items=1)
    later = await stock_history(store, tenant, items=1)
    await Rebuilder(pool, projection, registry=registry).run(FeedPosition.of(early[-1]))
    rows = await table_rows(pool, projection, tenant=tenant)
    assert [r[1] for r in rows] == [later[0].stream.aggregate_id]


async def test_a_failing_rebuild_leaves_the_live_tables_and_records_the_error(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS, mode="async"))
    start = await head(pool)
    tenant = uuid4()
    events = await stock_history(store, tenant, items=1)
    await runner_for(pool, projection).catch_up(projection)
    live_rows = await table_rows(pool, projection, tenant=tenant)

    def broken(event: Event, payload: BaseModel) -> Sequence[Op]:
        if event.event_id == events[1].event_id:
            raise RuntimeError("cannot rebuild this")
        return stock_levels_rules(event, payload)

    broken_projection = projection.model_copy(update={"handler": broken})
    with pytest.raises(RebuildError, match="cannot rebuild this"):
        await Rebuilder(pool, broken_projection, registry=registry).run(start)
    assert await table_rows(pool, projection, tenant=tenant) == live_rows
    error = (await checkpoint_of(pool, rebuild_consumer(projection))).error
    assert error is not None
    assert error["event_id"] == str(events[1].event_id)


async def test_a_write_the_database_refuses_stops_the_rebuild_and_is_recorded(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    def unlabelled(event: Event, payload: BaseModel) -> Sequence[Op]:
        return [Upsert(table="things", key={"id": event.stream.aggregate_id})]

    table = THINGS
    projection = await made.create(fresh(STOCK_LEVELS, mode="async", tables=(table,),
                                         handler=unlabelled))
    start = await head(pool)
    await stock_history(store, uuid4(), items=1)
    with pytest.raises(RebuildError, match="label"):
        await Rebuilder(pool, projection, registry=registry).run(start)
    error = (await checkpoint_of(pool, rebuild_consumer(projection))).error
    assert error is not None
    assert error["kind"] == "write_failed"
    assert await table_rows(pool, projection, table="things") == []


def test_feed_positions_parse_as_txid_colon_position() -> None:
    assert parse_position("12:34") == FeedPosition(12, 34)
    for bad in ("12", "a:1", "1:-2", ""):
        with pytest.raises(ValueError, match="TXID:POS"):
            parse_position(bad)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_intent(*args, timeout=300)


async def test_the_rebuild_command_swaps_the_app_projection_in(
    pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    async with pool.connection() as conn:
        cur = await conn.execute("select to_regclass('public.order_summaries') is not null")
        if not (await cur.fetchone() or (False,))[0]:
            for statement in projection_ddl(ORDER_SUMMARIES):
                await conn.execute(statement.encode())
    at = await head(pool)
    done = cli("projections", "rebuild", "order_summaries", "--database-url", database_url,
               "--from-position", f"{at.transaction_id}:{at.position}")
    assert done.returncode == 0, done.stderr
    assert "rebuilt order_summaries" in done.stderr
    assert "folded in SQL" in done.stderr  # it is declared as Rules
    assert (await checkpoint_of(pool, ORDER_SUMMARIES.consumer)).position >= at
    through_python = cli("projections", "rebuild", "order_summaries", "--database-url",
                         database_url, "--from-position", f"{at.transaction_id}:{at.position}",
                         "--fold", "python")
    assert through_python.returncode == 0, through_python.stderr
    assert "folded in Python" in through_python.stderr
    unknown = cli("projections", "rebuild", "nope", "--database-url", database_url)
    assert unknown.returncode == 2
    assert "no projection named 'nope'" in unknown.stderr
    bad = cli("projections", "rebuild", "order_summaries", "--from-position", "x")
    assert bad.returncode == 2


def test_quick_projections_bench_reports_both_sides(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "projections.json"
    done = cli("bench", "projections", "--quick", "--database-url", database_url,
               "--json", str(out))
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["benchmark"] == "projections"
    section = report["sections"]["rebuild"]
    assert section["intent"]["median"] > 0
    assert section["catch_up"]["median"] > 0
    assert section["baseline"]["median"] > 0
    assert all(rate > 0 for rate in section["intent"]["per_round"])
    assert section["rows"] == report["plan"]["items"] == 500
    assert section["ratio"] > 0
    assert len(section["python_path"]["per_round"]) == report["plan"]["rounds"]
    assert section["python_path_ratio"] > 0
    assert len(section["runner_catch_up"]["per_round"]) == report["plan"]["rounds"]
    assert section["runner_catch_up_ratio"] > 0
    assert {t["target"] for t in section["targets"]} == {
        "rebuild events/s", "rebuild events/s / COPY rows/s",
    }
