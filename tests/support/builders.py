"""Small builders shared by the unit tests: envelopes with sensible defaults, and an
in-memory stock item that runs commands through the real decider."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from domain.contracts import Command, Event, Metadata, StreamId
from domain.decider import Loaded, decide, evolve_all, rehydrate
from domain.inventory import Item, ItemState
from projections.shop import registry

TENANT = UUID("00000000-0000-4000-8000-000000000001")
OTHER_TENANT = UUID("00000000-0000-4000-8000-000000000002")
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def metadata(**overrides: Any) -> Metadata:
    fields: dict[str, Any] = {"tenant_id": TENANT, "correlation_id": uuid4(), "occurred_at": NOW}
    return Metadata.model_validate(fields | overrides)


def command(
    command_type: str,
    payload: dict[str, Any],
    *,
    command_id: UUID | None = None,
    meta: Metadata | None = None,
) -> Command:
    return Command(
        command_id=command_id or uuid4(),
        command_type=command_type,
        payload=payload,
        metadata=meta or metadata(),
    )


def item_stream(item_id: UUID, tenant_id: UUID = TENANT) -> StreamId:
    return StreamId(tenant_id=tenant_id, aggregate_type="inventory.item", aggregate_id=item_id)


class StockItem:
    """One stock item's stream kept in memory, as the store adapter would keep it in Postgres."""

    def __init__(self, item_id: UUID | None = None) -> None:
        self.item_id = item_id or uuid4()
        self.stream = item_stream(self.item_id)
        self.events: list[Event] = []
        self.loaded: Loaded[ItemState] = rehydrate(registry, Item, self.stream, None, [])

    @property
    def state(self) -> ItemState:
        return self.loaded.state

    def command(self, command_type: str, **payload: Any) -> Command:
        json_payload = {k: str(v) if isinstance(v, UUID) else v for k, v in payload.items()}
        return command(f"inventory.{command_type}", {"item_id": str(self.item_id), **json_payload})

    def send(self, command_type: str, **payload: Any) -> list[Event]:
        new = decide(registry, self.command(command_type, **payload), self.loaded)
        self.loaded = evolve_all(registry, Item, self.loaded, new)
        self.events.extend(new)
        return new

    def registered(self, on_hand: int = 0) -> StockItem:
        self.send("register_item", sku="SKU-1", name="Widget")
        if on_hand:
            self.send("receive_stock", quantity=on_hand)
        return self
