"""The stock item aggregate: how much is on hand and how much of it each order holds."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.aggregate import Aggregate
from domain.errors import DomainRejection
from domain.inventory.commands import ReceiveStock, RegisterItem, ReleaseStock, ReserveStock
from domain.inventory.events import ItemRegistered, StockReceived, StockReleased, StockReserved


class ItemState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    registered: bool = False
    sku: str | None = None
    name: str | None = None
    on_hand: int = 0
    reservations: dict[UUID, int] = {}  # order id -> quantity held for it

    @property
    def available(self) -> int:
        return self.on_hand - sum(self.reservations.values())


class Item(Aggregate[ItemState]):
    type_name = "inventory.item"
    state_model = ItemState
    snapshot_every = 50

    @classmethod
    def decide(cls, command: BaseModel, state: ItemState) -> Sequence[BaseModel]:
        if not state.registered and not isinstance(command, RegisterItem):
            raise DomainRejection("item_not_registered", "the item has not been registered")
        match command:
            case RegisterItem(item_id=item_id, sku=sku, name=name):
                if state.registered:
                    raise DomainRejection(
                        "already_registered", f"the item is already registered as {state.sku}"
                    )
                return [ItemRegistered(item_id=item_id, sku=sku, name=name)]
            case ReceiveStock(item_id=item_id, quantity=quantity):
                return [StockReceived(item_id=item_id, quantity=quantity)]
            case ReserveStock(item_id=item_id, order_id=order_id, quantity=quantity):
                return cls._reserve(state, item_id, order_id, quantity)
            case ReleaseStock(item_id=item_id, order_id=order_id):
                held = state.reservations.get(order_id)
                if held is None:
                    raise DomainRejection(
                        "unknown_reservation",
                        f"order {order_id} holds no reservation",
                        order_id=str(order_id),
                    )
                return [StockReleased(item_id=item_id, order_id=order_id, quantity=held)]
            case _:
                cls.unhandled_command(command)

    @classmethod
    def _reserve(
        cls, state: ItemState, item_id: UUID, order_id: UUID, quantity: int
    ) -> Sequence[BaseModel]:
        held = state.reservations.get(order_id)
        if held == quantity:
            return []  # a retry of a reservation already made
        if held is not None:
            raise DomainRejection(
                "reservation_conflict",
                f"order {order_id} already holds {held}, not {quantity}",
                order_id=str(order_id),
                held=held,
                requested=quantity,
            )
        if quantity > state.available:
            raise DomainRejection(
                "insufficient_stock",
                f"cannot reserve {quantity}: only {state.available} available",
                requested=quantity,
                available=state.available,
            )
        return [StockReserved(item_id=item_id, order_id=order_id, quantity=quantity)]

    @classmethod
    def evolve(cls, state: ItemState, event: BaseModel) -> ItemState:
        match event:
            case ItemRegistered(sku=sku, name=name):
                return state.model_copy(update={"registered": True, "sku": sku, "name": name})
            case StockReceived(quantity=quantity):
                return state.model_copy(update={"on_hand": state.on_hand + quantity})
            case StockReserved(order_id=order_id, quantity=quantity):
                reservations = {**state.reservations, order_id: quantity}
                return state.model_copy(update={"reservations": reservations})
            case StockReleased(order_id=order_id):
                reservations = {k: v for k, v in state.reservations.items() if k != order_id}
                return state.model_copy(update={"reservations": reservations})
            case _:
                cls.unhandled_event(event)
