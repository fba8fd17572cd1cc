"""What the benchmarks write: valid inventory events, and the same facts as raw table rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb

from domain.contracts import Event, Metadata, StreamId
from domain.inventory import Item
from projections.shop import registry

REGISTERED = "inventory.item_registered"
RECEIVED = "inventory.stock_received"

# The columns an append writes; the rest (position, transaction_id, recorded_at) are the
# table's defaults, for the Intent table and the raw copy of it alike.
RAW_COLUMNS = (
    "event_id", "tenant_id", "aggregate_type", "aggregate_id", "version",
    "event_type", "schema_version", "payload", "metadata",
)
RawRow = tuple[object, ...]


def new_stream(tenant_id: UUID) -> StreamId:
    return StreamId(tenant_id=tenant_id, aggregate_type=Item.type_name, aggregate_id=uuid4())


def item_events(stream: StreamId, count: int, *, first_version: int = 1) -> list[Event]:
    """Versions first_version.. of an item's stream: registered at 1, then receipts of 1.

    Built and validated here, so that a timed loop only appends them."""
    types = registry.event_types()
    metadata = Metadata(
        tenant_id=stream.tenant_id, correlation_id=uuid4(), role="service_role"
    )
    item_id = str(stream.aggregate_id)
    events: list[Event] = []
    for version in range(first_version, first_version + count):
        if version == 1:
            name = REGISTERED
            payload: dict[str, object] = {"item_id": item_id, "sku": "BENCH-1", "name": "Bench"}
        else:
            name = RECEIVED
            payload = {"item_id": item_id, "quantity": 1}
        events.append(
            Event(
                event_id=uuid4(),
                event_type=name,
                schema_version=types[name].version,
                stream=stream,
                version=version,
                payload=payload,
                metadata=metadata,
            )
        )
    return events


def _json_text(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def raw_rows(events: list[Event], *, jsonb: bool = False) -> list[RawRow]:
    """The events as parameter tuples in RAW_COLUMNS order.

    By default payload and metadata are JSON text serialised here, before any timing: the
    baseline then pays nothing on the Python side that the database does not need. With
    `jsonb`, they are Python values in psycopg's `Jsonb` wrapper, serialised by the driver
    as it sends them, as for any application that inserts JSON itself.
    """
    encode: Callable[[dict[str, Any]], object] = Jsonb if jsonb else _json_text
    return [
        (
            e.event_id,
            e.stream.tenant_id,
            e.stream.aggregate_type,
            e.stream.aggregate_id,
            e.version,
            e.event_type,
            e.schema_version,
            encode(e.payload),
            encode(e.metadata.model_dump(mode="json")),
        )
        for e in events
    ]
