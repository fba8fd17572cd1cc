"""Stored-event builders: valid inventory events for any stream and version, and appends
that give the events back as the feed returns them."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID, uuid4

from domain.contracts import Event, Metadata, StreamId
from pump.store.connections import Conn
from pump.store.events import AppendResult, PostgresEventStore
from tests.support.tenants import TENANT_A


def new_stream(tenant_id: UUID = TENANT_A) -> StreamId:
    return StreamId(tenant_id=tenant_id, aggregate_type="inventory.item", aggregate_id=uuid4())


def received(stream: StreamId, version: int, quantity: int = 1, **overrides: object) -> Event:
    """An `inventory.stock_received` event (current schema version 2) at `version`."""
    fields: dict[str, object] = {
        "event_id": uuid4(),
        "event_type": "inventory.stock_received",
        "schema_version": 2,
        "stream": stream,
        "version": version,
        "payload": {"item_id": str(stream.aggregate_id), "quantity": quantity},
        "metadata": Metadata(tenant_id=stream.tenant_id, correlation_id=uuid4()),
    }
    return Event.model_validate(fields | overrides)


def registered(stream: StreamId) -> Event:
    return received(
        stream,
        1,
        event_type="inventory.item_registered",
        schema_version=1,
        payload={"item_id": str(stream.aggregate_id), "sku": "SKU-1", "name": "Widget"},
    )


def history(stream: StreamId, length: int) -> list[Event]:
    """A registered item followed by `length - 1` receipts of one unit each."""
    return [registered(stream)] + [received(stream, v) for v in range(2, length + 1)]


def stored(events: Sequence[Event], result: AppendResult) -> list[Event]:
    """The appended events as the feed returns them: with position and transaction id."""
    return [
        e.model_copy(update={"position": p, "transaction_id": result.transaction_id})
        for e, p in zip(events, result.positions, strict=True)
    ]


async def append(store: PostgresEventStore, events: list[Event], expected: int = 0,
                 conn: Conn | None = None) -> list[Event]:
    result = await store.append(events[0].stream, expected, events, conn=conn)
    return stored(events, result)
