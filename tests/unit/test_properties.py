"""Properties that must hold for every history, not just the ones we thought of."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.aggregate import Aggregate
from domain.contracts import Event
from domain.decider import rehydrate, snapshot_due, take_snapshot
from domain.errors import DomainRejection
from domain.inventory import Item, ItemState
from projections.shop import registry
from tests.support.builders import StockItem

ORDERS = [UUID(int=n) for n in range(1, 5)]  # a few orders, so that they collide


@dataclass(frozen=True)
class Step:
    command_type: str
    quantity: int = 1
    order: int = 0

    def send_to(self, item: StockItem) -> None:
        if self.command_type == "register_item":
            item.send("register_item", sku="SKU", name="Thing")
        elif self.command_type == "receive_stock":
            item.send("receive_stock", quantity=self.quantity)
        elif self.command_type == "reserve_stock":
            item.send("reserve_stock", order_id=ORDERS[self.order], quantity=self.quantity)
        else:
            item.send("release_stock", order_id=ORDERS[self.order])


quantities = st.integers(min_value=1, max_value=20)
orders = st.integers(min_value=0, max_value=len(ORDERS) - 1)
steps = st.lists(
    st.one_of(
        st.builds(Step, st.just("receive_stock"), quantities),
        st.builds(Step, st.just("reserve_stock"), quantities, orders),
        st.builds(Step, st.just("release_stock"), order=orders),
        st.just(Step("register_item")),
    ),
    max_size=40,
)


def history(plan: list[Step]) -> StockItem:
    """A registered item after `plan`; steps the item refuses leave no trace, as in real life."""
    item = StockItem().registered()
    for step in plan:
        with suppress(DomainRejection):
            step.send_to(item)
    return item


def as_stored(event: Event, legacy: bool) -> Event:
    """The event as read back from the store; `legacy` writes stock receipts in schema v1."""
    stored = Event.model_validate_json(event.model_dump_json())
    if legacy and stored.event_type == "inventory.stock_received":
        payload = {"item_id": stored.payload["item_id"], "qty": stored.payload["quantity"]}
        stored = stored.model_copy(update={"schema_version": 1, "payload": payload})
    return stored


@settings(deadline=None)
@given(plan=steps, legacy=st.booleans())
def test_a_snapshot_at_any_point_plus_later_events_equals_a_full_replay(
    plan: list[Step], legacy: bool
) -> None:
    item = history(plan)
    events = [as_stored(event, legacy) for event in item.events]
    full = rehydrate(registry, Item, item.stream, None, events)
    assert full == item.loaded
    for cut in range(1, len(events) + 1):
        snapshot = take_snapshot(Item, rehydrate(registry, Item, item.stream, None, events[:cut]))
        assert rehydrate(registry, Item, item.stream, snapshot, events[cut:]) == full
        assert rehydrate(registry, Item, item.stream, snapshot, events) == full


@settings(deadline=None)
@given(plan=steps)
def test_reservations_never_exceed_what_is_on_hand(plan: list[Step]) -> None:
    item = StockItem().registered()
    for step in plan:
        with suppress(DomainRejection):
            step.send_to(item)
        assert item.state.available >= 0
        assert all(quantity > 0 for quantity in item.state.reservations.values())


def snapshotting_every(n: int) -> type[Aggregate[ItemState]]:
    class Every(Aggregate[ItemState]):
        type_name = "test.every"
        state_model = ItemState
        snapshot_every = n

    return Every


@given(
    every=st.integers(min_value=1, max_value=60),
    before=st.integers(min_value=0, max_value=500),
    appended=st.integers(min_value=0, max_value=200),
)
def test_a_snapshot_is_due_exactly_when_a_multiple_is_crossed(
    every: int, before: int, appended: int
) -> None:
    after = before + appended
    crossed = any(version % every == 0 for version in range(before + 1, after + 1))
    assert snapshot_due(snapshotting_every(every), before, after) is crossed


@given(every=st.integers(min_value=1, max_value=60), length=st.integers(0, 300))
def test_one_event_at_a_time_snapshots_fire_at_the_multiples(every: int, length: int) -> None:
    aggregate = snapshotting_every(every)
    fired = [v for v in range(1, length + 1) if snapshot_due(aggregate, v - 1, v)]
    assert fired == list(range(every, length + 1, every))
