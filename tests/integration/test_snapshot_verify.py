"""`intent snapshots verify`: snapshots written by the repository, broken by hand, found
and repaired. Each test uses a tenant of its own (`--tenant`), because other tests leave
deliberately wrong snapshots in the shared database."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from click.testing import CliRunner, Result
from psycopg_pool import AsyncConnectionPool

from domain.contracts import Snapshot, StreamId
from domain.decider import rehydrate, take_snapshot
from domain.inventory import Item
from projections.shop import registry
from pump.store.aggregates import AggregateRepository
from pump.store.connections import Conn
from tests.support.db import execute
from tests.support.streams import history, new_stream, received
from tools.checks.snapshots import BEYOND_STREAM, CORRUPT, MISMATCH, judge
from tools.cli.snapshots import snapshots

pytestmark = pytest.mark.integration


async def verify(database_url: str, tenant: UUID, *extra: str) -> Result:
    """The CLI, in a thread: it runs its own event loop."""
    args = ["verify", "--database-url", database_url, "--tenant", str(tenant), *extra]
    return await asyncio.to_thread(CliRunner().invoke, snapshots, args)


def report_of(result: Result) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(result.stdout)
    return report


async def write(repo: AggregateRepository, stream: StreamId, length: int) -> None:
    """`length` events through the repository, saved 50 at a time, so that it snapshots at
    every 50th version (a save snapshots the state it ends with)."""
    loaded = rehydrate(registry, Item, stream, None, [])
    events = history(stream, length)
    for start in range(0, length, 50):
        loaded, _ = await repo.save(Item, loaded, events[start : start + 50])


async def snapshot_rows(
    pool: AsyncConnectionPool[Conn], stream: StreamId
) -> list[tuple[int, int, dict[str, Any]]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select version, schema_version, state from intent.snapshots"
            " where tenant_id = %s and aggregate_type = %s and aggregate_id = %s"
            " order by version",
            (stream.tenant_id, stream.aggregate_type, stream.aggregate_id),
        )
        return list(await cur.fetchall())


async def test_a_tampered_snapshot_is_found_repaired_and_then_clean(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    tenant = uuid4()
    good, bad = new_stream(tenant), new_stream(tenant)
    await write(repo, good, 60)
    await write(repo, bad, 55)
    assert [v for v, _, _ in await snapshot_rows(pool, bad)] == [50]
    right_state = (await snapshot_rows(pool, bad))[0][2]
    await execute(pool,
                  "update intent.snapshots set state = jsonb_set(state, '{on_hand}', '999')"
                  " where aggregate_id = %s", bad.aggregate_id)

    found = await verify(database_url, tenant, "--json")
    assert found.exit_code == 1, found.output
    report = report_of(found)
    assert report["checked"] == 2
    assert report["ok"] == 1
    (problem,) = report["problems"]
    assert problem["tenant_id"] == str(tenant)
    assert problem["aggregate_type"] == "inventory.item"
    assert problem["aggregate_id"] == str(bad.aggregate_id)
    assert problem["problem"] == MISMATCH
    assert (problem["snapshot_version"], problem["stream_version"]) == (50, 55)
    assert problem["fields"] == ["on_hand"]

    readable = await verify(database_url, tenant)
    assert readable.exit_code == 1
    assert str(bad.aggregate_id) in readable.stdout
    assert str(good.aggregate_id) not in readable.stdout

    repaired = await verify(database_url, tenant, "--repair", "--json")
    assert repaired.exit_code == 0, repaired.output
    assert [r["aggregate_id"] for r in report_of(repaired)["repaired"]] == [str(bad.aggregate_id)]
    assert report_of(repaired)["unrepaired"] == []
    assert await snapshot_rows(pool, bad) == [(50, 1, right_state)]

    again = await verify(database_url, tenant, "--json")
    assert again.exit_code == 0, again.output
    assert report_of(again)["problems"] == []
    assert report_of(again)["ok"] == 2


async def test_a_snapshot_that_does_not_parse_is_reported_corrupt_and_rewritten(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    tenant = uuid4()
    stream = new_stream(tenant)
    await write(repo, stream, 50)
    await execute(pool,
                  "update intent.snapshots set state = '{\"on_hand\": \"lots\", \"x\": 1}'"
                  " where aggregate_id = %s", stream.aggregate_id)
    found = await verify(database_url, tenant, "--json")
    assert found.exit_code == 1
    (problem,) = report_of(found)["problems"]
    assert problem["problem"] == CORRUPT
    assert "ItemState" in problem["detail"]

    fixed = await verify(database_url, tenant, "--repair")
    assert fixed.exit_code == 0, fixed.output
    (version, _, state) = (await snapshot_rows(pool, stream))[0]
    assert version == 50
    assert state["on_hand"] == 49


async def test_a_snapshot_beyond_the_stream_is_dropped_by_repair(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    tenant = uuid4()
    stream = new_stream(tenant)
    await write(repo, stream, 52)
    await execute(
        pool,
        "insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,"
        " schema_version, state) select tenant_id, aggregate_type, aggregate_id, 70,"
        " schema_version, state from intent.snapshots where aggregate_id = %s",
        stream.aggregate_id,
    )
    found = await verify(database_url, tenant, "--json")
    (problem,) = report_of(found)["problems"]
    assert problem["problem"] == BEYOND_STREAM
    assert (problem["snapshot_version"], problem["stream_version"]) == (70, 52)
    assert (await verify(database_url, tenant, "--repair")).exit_code == 0
    assert [v for v, _, _ in await snapshot_rows(pool, stream)] == [50]
    assert (await verify(database_url, tenant)).exit_code == 0


async def test_aggregate_type_and_sample_narrow_what_is_checked(
    repo: AggregateRepository, database_url: str
) -> None:
    tenant = uuid4()
    for _ in range(3):
        await write(repo, new_stream(tenant), 50)
    sampled = report_of(await verify(database_url, tenant, "--sample", "2", "--json"))
    assert sampled["checked"] == 2
    orders = report_of(await verify(database_url, tenant, "--aggregate-type", "orders.order",
                                    "--json"))
    assert orders["checked"] == 0


async def test_a_tenant_with_correct_snapshots_only_is_clean(
    repo: AggregateRepository, database_url: str
) -> None:
    tenant = uuid4()
    await write(repo, new_stream(tenant), 101)
    result = await verify(database_url, tenant)
    assert result.exit_code == 0, result.output
    assert "1 ok, 0 problem(s)" in result.stdout


async def test_usage_and_environment_errors_have_their_exit_codes(database_url: str) -> None:
    unknown = await verify(database_url, uuid4(), "--aggregate-type", "nope.nothing")
    assert unknown.exit_code == 2
    down = await asyncio.to_thread(
        CliRunner().invoke, snapshots,
        ["verify", "--database-url", "postgresql://postgres:postgres@127.0.0.1:1/postgres"],
    )
    assert down.exit_code == 3


def test_judge_pins_the_difference_at_the_snapshot_version() -> None:
    """A wrong snapshot is wrong even when a later event hides the difference at the head:
    as-of loads at its version would still be wrong."""
    stream = new_stream(uuid4())
    events = history(stream, 3)
    right = take_snapshot(Item, rehydrate(registry, Item, stream, None, events[:2]))
    wrong = Snapshot(stream=stream, version=2, schema_version=1,
                     state={**right.state, "name": "Tampered"})
    assert judge(registry, right, events).problem is None
    verdict = judge(registry, wrong, [*events, received(stream, 4)])
    assert verdict.problem == MISMATCH
    assert verdict.fields == ("name",)
    assert "at version 2" in verdict.detail
