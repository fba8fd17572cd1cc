"""Builders for stored-event tests: valid inventory events for any stream and version."""

from __future__ import annotations

from uuid import UUID, uuid4

from domain.contracts import Event, Metadata, StreamId

TENANT_A = UUID("00000000-0000-4000-8000-00000000000a")
TENANT_B = UUID("00000000-0000-4000-8000-00000000000b")


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
