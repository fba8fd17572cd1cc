"""The SQL fold of declared projections (projections.set_fold) gives exactly the rows the
Python path gives, on random histories of every example projection and of a projection
built to reach the fold's corners (deletes and re-creation, adds to a fresh row, defaults,
a set followed by adds, null defaults), in ranges small enough to cross rows; ranges it
cannot fold go through Python; bad stored data is named, not written."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg_pool import AsyncConnectionPool

from domain.contracts import Event, Metadata, StreamId
from domain.feed import FeedPosition
from projections.inventory import STOCK_LEVELS
from projections.metadata import Catalog, Column, Projection, Table
from projections.orders import ORDER_SUMMARIES
from projections.rules import AGGREGATE_ID, OCCURRED_AT, On, Rules, literal, neg, payload
from projections.set_fold import unsupported
from projections.shop import registry
from pump.projections import rebuild as rebuild_module
from pump.projections import runner as runner_module
from pump.projections.rebuild import Rebuilder, RebuildError, rebuild_consumer
from pump.store.connections import Conn
from pump.store.events import PostgresEventStore
from tests.support.feed import checkpoint_of, head
from tests.support.projections import Made, fresh, runner_for, table_rows
from tests.support.tenants import TENANT_A, TENANT_B

pytestmark = pytest.mark.integration

ITEM = {"item_id": payload("item_id")}
# Every corner of the fold: `level` is set and then added to (and added to before any set,
# on a row the first op creates); `moves` has no default, so a row created by another op
# keeps null through later adds; `received` defaults to 10 unless the creating op adds;
# reservations are deleted and made again.
CORNERS = Projection(
    name="corners",
    version=1,
    reads=("inventory.item_registered", "inventory.stock_received",
           "inventory.stock_reserved", "inventory.stock_released"),
    tables=(
        Table(name="items", primary_key=("tenant_id", "item_id"), columns=(
            Column(name="tenant_id", type="uuid", nullable=False),
            Column(name="item_id", type="uuid", nullable=False),
            Column(name="name", type="text"),
            Column(name="level", type="bigint", nullable=False, default=5),
            Column(name="moves", type="integer"),
            Column(name="received", type="numeric", nullable=False, default=10),
            Column(name="stream", type="uuid"),
            Column(name="updated_at", type="timestamptz"),
        )),
        Table(name="reservations", primary_key=("tenant_id", "order_id"), columns=(
            Column(name="tenant_id", type="uuid", nullable=False),
            Column(name="order_id", type="uuid", nullable=False),
            Column(name="item_id", type="uuid", nullable=False),
            Column(name="quantity", type="integer", nullable=False),
            Column(name="state", type="text", nullable=False, default="new"),
        )),
    ),
    handler=Rules(
        On("inventory.item_registered", "items", key=ITEM,
           set={"name": payload("name"), "level": literal(100), "stream": AGGREGATE_ID}),
        On("inventory.stock_received", "items", key=ITEM,
           set={"updated_at": OCCURRED_AT},
           add={"level": payload("quantity"), "moves": literal(1),
                "received": payload("quantity")}),
        On("inventory.stock_reserved", "items", key=ITEM,
           add={"level": neg(payload("quantity")), "moves": literal(1)}),
        On("inventory.stock_reserved", "reservations", key={"order_id": payload("order_id")},
           set={"item_id": payload("item_id"), "quantity": payload("quantity"),
                "state": literal("held")}),
        On("inventory.stock_released", "reservations", key={"order_id": payload("order_id")},
           delete=True),
        On("inventory.stock_released", "items", key=ITEM,
           set={"updated_at": OCCURRED_AT}, add={"level": payload("quantity")}),
    ),
)
MODELS = {name: kind.payload_model for name, kind in registry.event_types().items()}


def test_the_corners_projection_passes_the_rules_check() -> None:
    Catalog([CORNERS, STOCK_LEVELS, ORDER_SUMMARIES], event_types=MODELS, models=MODELS)
    assert unsupported(CORNERS) is None


def _event(stream: StreamId, version: int, event_type: str, body: dict[str, Any],
           schema_version: int = 1) -> Event:
    return Event(
        event_id=uuid4(), event_type=event_type, schema_version=schema_version, stream=stream,
        version=version, payload=body,
        metadata=Metadata(tenant_id=stream.tenant_id, correlation_id=uuid4()),
    )


def _histories(seed: int, *, old_versions: bool) -> Iterator[Event]:
    """Random events over a few items and orders of two tenants, in a random interleaving:
    items may be received or reserved before they are registered, orders reserved and
    released more than once, stock_received sometimes stored at schema version 1."""
    rng = random.Random(seed)
    streams: list[StreamId] = []
    for tenant in (TENANT_A, TENANT_B):
        for _ in range(3):
            streams.append(StreamId(tenant_id=tenant, aggregate_type="inventory.item",
                                    aggregate_id=uuid4()))
    orders = {s.aggregate_id: [uuid4() for _ in range(2)] for s in streams}
    order_streams = {s.aggregate_id: StreamId(tenant_id=s.tenant_id,
                                               aggregate_type="orders.order",
                                               aggregate_id=uuid4()) for s in streams}
    versions: dict[UUID, int] = {}

    def next_version(stream: StreamId) -> int:
        versions[stream.aggregate_id] = versions.get(stream.aggregate_id, 0) + 1
        return versions[stream.aggregate_id]

    for _ in range(120):
        stream = rng.choice(streams)
        item = str(stream.aggregate_id)
        kind = rng.choice(["registered", "received", "received", "reserved", "released",
                           "placed", "paid", "cancelled"])
        quantity = rng.randint(1, 9)
        order = str(rng.choice(orders[stream.aggregate_id]))
        if kind == "registered":
            yield _event(stream, next_version(stream), "inventory.item_registered",
                         {"item_id": item, "sku": f"S-{rng.randint(1, 99)}",
                          "name": rng.choice(["bolt", "nut", "gear"])})
        elif kind == "received":
            if old_versions and rng.random() < 0.3:
                yield _event(stream, next_version(stream), "inventory.stock_received",
                             {"item_id": item, "qty": quantity}, schema_version=1)
            else:
                yield _event(stream, next_version(stream), "inventory.stock_received",
                             {"item_id": item, "quantity": quantity}, schema_version=2)
        elif kind in ("reserved", "released"):
            yield _event(stream, next_version(stream), f"inventory.stock_{kind}",
                         {"item_id": item, "order_id": order, "quantity": quantity})
        else:
            placed = order_streams[stream.aggregate_id]
            body: dict[str, Any] = {"order_id": str(placed.aggregate_id)}
            if kind == "placed":
                body |= {"item_id": item, "quantity": quantity}
            if kind == "cancelled":
                body["reason"] = rng.choice(["late", "no stock"])
            yield _event(placed, next_version(placed), f"orders.order_{kind}", body)


async def _store(pool: AsyncConnectionPool[Conn], events: Iterator[Event]) -> None:
    # Without a registry the store takes older schema versions too, as they were once written.
    unchecked = PostgresEventStore(pool, None)
    for event in events:  # one transaction each: a feed of many transactions
        await unchecked.append(event.stream, event.version - 1, [event])


async def _rebuilt(pool: AsyncConnectionPool[Conn], made: Made, base: Projection,
                   start: FeedPosition, fold: str) -> tuple[Projection, Rebuilder]:
    projection = fresh(base)
    made.schemas.append(projection.schema_name)
    rebuilder = Rebuilder(pool, projection, fold=fold, registry=registry)  # type: ignore[arg-type]
    await rebuilder.run(start)
    return projection, rebuilder


async def _rows(pool: AsyncConnectionPool[Conn], projection: Projection) -> dict[str, Any]:
    return {t.name: await table_rows(pool, projection, table=t.name) for t in projection.tables}


@pytest.mark.parametrize(("seed", "chunk"), [(1, 7), (2, 25_000), (3, 1), (4, 40)])
async def test_sql_and_python_folds_give_the_same_rows(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made,
    monkeypatch: pytest.MonkeyPatch, seed: int, chunk: int,
) -> None:
    monkeypatch.setattr(rebuild_module, "SQL_CHUNK", chunk)
    start = await head(pool)
    await _store(pool, _histories(seed, old_versions=False))
    for base in (CORNERS, STOCK_LEVELS, ORDER_SUMMARIES):
        by_python, python = await _rebuilt(pool, made, base, start, "python")
        by_sql, folded = await _rebuilt(pool, made, base, start, "sql")
        assert python.fold_path == "python"
        assert folded.fold_path == "sql"
        assert folded.ranges["sql"] > 0
        assert folded.ranges["python"] == 0
        expected = await _rows(pool, by_python)
        assert any(expected.values()), f"{base.name}: the history made no rows"
        assert await _rows(pool, by_sql) == expected, base.name


async def test_ranges_with_older_schema_versions_go_through_python(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rebuild_module, "SQL_CHUNK", 10)
    start = await head(pool)
    await _store(pool, _histories(5, old_versions=True))
    by_python, _ = await _rebuilt(pool, made, STOCK_LEVELS, start, "python")
    by_sql, folded = await _rebuilt(pool, made, STOCK_LEVELS, start, "sql")
    assert folded.ranges["python"] > 0
    assert folded.ranges["sql"] > 0
    assert await _rows(pool, by_sql) == await _rows(pool, by_python)


async def test_a_stored_payload_sql_cannot_cast_is_named_and_nothing_is_swapped(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made,
) -> None:
    start = await head(pool)
    stream = StreamId(tenant_id=TENANT_A, aggregate_type="inventory.item", aggregate_id=uuid4())
    item = str(stream.aggregate_id)
    await store.append(stream, 0, [_event(stream, 1, "inventory.item_registered",
                                          {"item_id": item, "sku": "S", "name": "n"})])
    # What no worker would write (its model refuses it): a quantity in words.
    bad = _event(stream, 2, "inventory.stock_received", {"item_id": item, "quantity": "three"},
                 schema_version=2)
    await PostgresEventStore(pool, None).append(stream, 1, [bad])
    projection = fresh(STOCK_LEVELS)
    made.schemas.append(projection.schema_name)
    rebuilder = Rebuilder(pool, projection, fold="sql", registry=registry)
    with pytest.raises(RebuildError) as raised:
        await rebuilder.run(start)
    assert str(bad.event_id) in str(raised.value)
    error = (await checkpoint_of(pool, rebuild_consumer(projection))).error
    assert error is not None
    assert error["event_id"] == str(bad.event_id)
    async with pool.connection() as conn:
        cur = await conn.execute("select to_regclass(%s)",
                                 (f"{projection.schema_name}.stock_levels",))
        assert (await cur.fetchone()) == (None,)  # never swapped in


def test_a_python_handler_or_a_float_sum_is_not_folded_in_sql() -> None:
    def handler(event: Event, body: Any) -> list[Any]:
        return []

    assert "Python code" in (unsupported(STOCK_LEVELS.model_copy(update={"handler": handler}))
                             or "")
    floats = CORNERS.model_copy(update={"tables": (
        CORNERS.tables[0].model_copy(update={"columns": tuple(
            c.model_copy(update={"type": "double precision"}) if c.name == "level" else c
            for c in CORNERS.tables[0].columns)}),
        CORNERS.tables[1],
    )})
    assert "double precision" in (unsupported(floats) or "")
    with pytest.raises(ValueError, match="cannot be folded in SQL"):
        Rebuilder(None, floats, fold="sql", registry=registry)  # type: ignore[arg-type]


# -- the runner's catch-up -------------------------------------------------------------------


async def test_a_runner_far_behind_catches_up_in_sql_with_the_rows_python_gives(
    pool: AsyncConnectionPool[Conn], made: Made, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Short ranges: some hold a schema-version-1 receipt (those go through Python), some not.
    monkeypatch.setattr(runner_module, "SQL_RANGE_MIN", 2)
    pairs = []
    for base in (CORNERS, ORDER_SUMMARIES):  # both start before the history
        pairs.append((await made.create(fresh(base)), await made.create(fresh(base))))
    await _store(pool, _histories(6, old_versions=True))
    for in_sql, in_python in pairs:
        folding = runner_for(pool, in_sql, sql_range_events=8, page_size=8)
        await folding.catch_up(folding.projections[0])
        assert folding.sql_ranges > 0
        plain = runner_for(pool, in_python, sql_range_events=0)
        await plain.catch_up(plain.projections[0])
        assert plain.sql_ranges == 0
        expected = await _rows(pool, in_python)
        assert any(expected.values())
        assert await _rows(pool, in_sql) == expected
        assert (await checkpoint_of(pool, in_sql.consumer)).position == (
            await checkpoint_of(pool, in_python.consumer)).position


async def test_a_range_the_runner_cannot_fold_fails_as_a_page_and_moves_nothing(
    pool: AsyncConnectionPool[Conn], made: Made, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_module, "SQL_RANGE_MIN", 1)
    projection = await made.create(fresh(STOCK_LEVELS))
    before = (await checkpoint_of(pool, projection.consumer)).position
    stream = StreamId(tenant_id=TENANT_A, aggregate_type="inventory.item", aggregate_id=uuid4())
    item = str(stream.aggregate_id)
    unchecked = PostgresEventStore(pool, None)
    await unchecked.append(stream, 0, [_event(stream, 1, "inventory.item_registered",
                                              {"item_id": item, "sku": "S", "name": "n"})])
    bad = _event(stream, 2, "inventory.stock_received", {"item_id": item, "quantity": "x"},
                 schema_version=2)
    await unchecked.append(stream, 1, [bad])
    runner = runner_for(pool, projection)
    result = await runner.step(runner.projections[0])
    assert result.status == "failed"
    assert result.events == 2  # the whole range, which the runner then redoes event by event
    assert runner.sql_ranges == 0
    assert (await checkpoint_of(pool, projection.consumer)).position == before
    assert await table_rows(pool, projection) == []
    first = await runner.step(runner.projections[0], limit=1)
    assert first.status == "applied"
    second = await runner.step(runner.projections[0], limit=1)
    assert second.status == "failed"
    assert second.error is not None
    assert second.error["event_id"] == str(bad.event_id)
