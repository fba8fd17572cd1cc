"""The demo's story, told through the official supabase-py client as an app would tell it.

Acme (tenant A) runs a shop: Alice stocks the warehouse, Bob and Dana order. Globex
(tenant B) is another customer of the same backend: Carol must see nothing of Acme.
Every command goes through the `command` edge function with the user's own token; reads go
through PostgREST and the hydration RPC; the live view comes from Realtime. Nothing here
talks to the database directly: what the demo shows is what a client can do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from supabase import AsyncClient
from supabase_functions.errors import FunctionsHttpError

from domain.inventory import Item, ItemState
from projections.shop import registry
from tools.client import LiveAggregate, StreamEvent
from tools.client.hydration import channel_options
from tools.demo.people import Person, SignInError, form_tenant, refreshed, signed_in
from tools.local.dev.stack import DEMO_TENANT_ID

# Fixed ids, so that a run's output can be compared with the next one's. Acme is `intent
# dev`'s demo tenant: its printed token sees what the demo did.
ACME = DEMO_TENANT_ID
GLOBEX = UUID("00000000-0000-4000-8000-0000000061b0")
RECEIPTS = 60  # deliveries of one unit: past the item's snapshot interval (50)
RECEIPTS_SHORT = 55


class DemoStepError(Exception):
    """A step of the story did not come out as it should; the message says which and why."""


@dataclass
class Summary:
    commands: int = 0
    rejected: int = 0
    events: int = 0
    refused: int = 0
    live_updates: int = 0
    seconds: float = 0.0
    steps: list[str] = field(default_factory=list)


Say = Callable[[str], None]


class Story:
    def __init__(self, api_url: str, say: Say, *, short: bool = False,
                 deadline_seconds: float = 60.0) -> None:
        self.api_url = api_url
        self.say = say
        self.short = short
        # How long to wait for the saga's payment deadline to pass (the stack's timer).
        self.deadline_seconds = deadline_seconds
        self.summary = Summary()
        self.alice = Person("Alice", ACME)
        self.bob = Person("Bob", ACME)
        self.dana = Person("Dana", ACME)
        self.carol = Person("Carol", GLOBEX)
        self._clients: dict[str, AsyncClient] = {}

    async def client(self, person: Person) -> AsyncClient:
        """The person's client, signed in (through /auth/v1) the first time it is asked."""
        if person.name not in self._clients:
            try:
                self._clients[person.name] = await signed_in(self.api_url, person)
            except SignInError as exc:
                raise DemoStepError(str(exc)) from exc
        return self._clients[person.name]

    async def close(self) -> None:
        for c in self._clients.values():
            await c.realtime.close()

    # -- commands -------------------------------------------------------------------------

    async def send(self, person: Person, body: dict[str, Any], *,
                   expect: str | tuple[str, ...] = "processed") -> dict[str, Any]:
        """One command through the edge function, waiting for its outcome."""
        c = await self.client(person)
        answer = await c.functions.invoke(
            "command", {"body": {**body, "wait": True}, "responseType": "json"})
        if not isinstance(answer, dict):
            raise DemoStepError(f"the command function answered {answer!r}")
        self.summary.commands += 1
        self.summary.events += len(answer.get("events") or [])
        wanted = (expect,) if isinstance(expect, str) else expect
        if answer.get("status") not in wanted:
            raise DemoStepError(
                f"{person.name}'s {body['type']} came back {answer.get('status')}, not "
                f"{' or '.join(wanted)}: {answer.get('error')}")
        if expect == "rejected":
            self.summary.rejected += 1
        return answer

    async def status(self, person: Person, command_id: str) -> str | None:
        c = await self.client(person)
        answer = (await c.rpc("command_status", {"command_id": command_id}).execute()).data
        return answer.get("status") if isinstance(answer, dict) else None

    # -- the story --------------------------------------------------------------------------

    async def run(self) -> Summary:
        began = time.monotonic()
        try:
            await self.sign_in()
            item = await self.stock_the_warehouse()
            live = await self.watch(item)
            try:
                await self.paid_order(item, live)
                await self.unpaid_order(item, live)
            finally:
                await live.stop()
            await self.read_model(item)
            await self.other_tenant(item)
        finally:
            await self.close()
        self.summary.seconds = time.monotonic() - began
        return self.summary

    def step(self, title: str) -> None:
        self.summary.steps.append(title)
        self.say(f"\n[bold]{len(self.summary.steps)}. {title}[/bold]")

    async def sign_in(self) -> None:
        self.step("Everyone signs in; Alice forms Acme with Bob and Dana, Carol forms Globex")
        await form_tenant(self.send, self.alice, "Acme", [self.bob, self.dana])
        await form_tenant(self.send, self.carol, "Globex", [])
        for person in (self.alice, self.bob, self.dana, self.carol):
            try:
                await refreshed(await self.client(person), person)
            except SignInError as exc:
                raise DemoStepError(str(exc)) from exc
        self.say("   four users signed in through /auth/v1; each refreshed token carries its "
                 "tenant (the access-token hook, from memberships)")

    async def stock_the_warehouse(self) -> str:
        receipts = RECEIPTS_SHORT if self.short else RECEIPTS
        self.step(f"Alice (Acme) registers a lamp and receives {receipts} deliveries")
        item = str(uuid4())
        await self.send(self.alice, {"type": "inventory.register_item", "payload": {
            "item_id": item, "sku": "LAMP-01", "name": "Desk lamp"}})
        sent = 0

        async def deliver() -> None:
            nonlocal sent
            await self.send(self.alice, {"type": "inventory.receive_stock",
                                         "aggregateId": item, "payload": {"quantity": 1}})
            sent += 1

        for start in range(0, receipts, 10):  # ten at a time, as a busy client might
            await asyncio.gather(*(deliver() for _ in range(min(10, receipts - start))))
        self.say(f"   {sent} deliveries processed; the item's stream is at version "
                 f"{sent + 1}, past its snapshot interval ({Item.snapshot_every} events)")
        return item

    async def watch(self, item: str) -> LiveAggregate[ItemState]:
        self.step("Bob opens the item's page: it hydrates from the snapshot and goes live")
        snapshots: list[int] = []

        def from_snapshot(snapshot: Mapping[str, Any]) -> ItemState:
            snapshots.append(int(snapshot["version"]))
            return ItemState.model_validate(snapshot["state"])

        def changed(live: LiveAggregate[ItemState]) -> None:
            self.summary.live_updates += 1
            state = live.state
            held = sum(state.reservations.values())
            self.say(f"   [cyan]live[/cyan] v{live.version}: on hand {state.on_hand}, "
                     f"reserved {held}, available {state.available}")

        live: LiveAggregate[ItemState] = LiveAggregate(
            await self.client(self.bob), Item.type_name, item,
            evolve=_evolve_item, initial=ItemState(), from_snapshot=from_snapshot,
            access_token=self.bob.token, on_change=changed,
        )
        await live.start()
        if not snapshots:
            raise DemoStepError("the item hydrated without a snapshot")
        self.say(f"   hydrated: snapshot at v{snapshots[0]} plus "
                 f"{live.version - snapshots[0]} later event(s), now v{live.version} "
                 f"(on hand {live.state.on_hand})")
        return live

    async def paid_order(self, item: str, live: LiveAggregate[ItemState]) -> None:
        self.step("Dana orders 3 lamps and pays: the fulfilment saga reserves, then completes")
        order = str(uuid4())
        before = live.version
        await self.send(self.dana, {"type": "orders.place_order", "payload": {
            "order_id": order, "item_id": item, "quantity": 3}})
        await self._live_until(live, before + 1, "the saga's reservation")
        if live.state.reservations.get(UUID(order)) != 3:
            raise DemoStepError(f"the reservation for order {order} is not on the item")
        await self.send(self.dana, {"type": "orders.confirm_payment",
                                    "payload": {"order_id": order}})
        self.say("   paid: the saga cancels its payment deadline and completes; 3 lamps "
                 "stay reserved for Dana")

    async def unpaid_order(self, item: str, live: LiveAggregate[ItemState]) -> None:
        self.step("Bob orders 2 lamps and never pays: at the deadline the saga cancels the "
                  "order, and on order_cancelled releases the stock (compensation)")
        order = str(uuid4())
        before = live.version
        placed = await self.send(self.bob, {"type": "orders.place_order", "payload": {
            "order_id": order, "item_id": item, "quantity": 2}})
        await self._live_until(live, before + 1, "the saga's reservation")
        self.say("   waiting for the payment deadline ...")
        await self._live_until(live, before + 2, "the saga's release",
                               seconds=self.deadline_seconds)
        if UUID(order) in live.state.reservations:
            raise DemoStepError("the expired order still holds stock")
        c = await self.client(self.bob)
        # The cancel comes first and the release follows its event: by the time the stock is
        # back the order is cancelled, but its event is read through another path.
        deadline = time.monotonic() + 10
        while "orders.order_cancelled" not in (events := await _event_types(c, "orders.order",
                                                                            order)):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        if "orders.order_cancelled" not in events:
            raise DemoStepError(f"order {order} was not cancelled: its events are {events}")
        self.summary.events += 3  # reserved, released, cancelled: issued by the saga
        self.say(f"   order {order[:8]}… events: {', '.join(events)} "
                 f"(correlation id {placed.get('correlationId')}: try `intent trace` on it)")

    async def read_model(self, item: str) -> None:
        self.step("Alice reads the stock_levels read model through PostgREST")
        c = await self.client(self.alice)
        rows = _rows((await c.table("stock_levels").select("sku,name,available,reserved")
                      .eq("item_id", item).execute()).data)
        if len(rows) != 1:
            raise DemoStepError(f"stock_levels has {len(rows)} row(s) for the item")
        row = rows[0]
        self.say(f"   {row['sku']} {row['name']}: available {row['available']} (free to sell), "
                 f"reserved {row['reserved']}")

    async def other_tenant(self, item: str) -> None:
        self.step("Carol (Globex) tries to reach Acme's lamp: every path refuses")
        c = await self.client(self.carol)
        rows = _rows((await c.table("stock_levels").select("item_id").eq("item_id", item)
                      .execute()).data)
        if rows or await _event_types(c, Item.type_name, item):
            raise DemoStepError("Carol could read Acme's item")
        self.summary.refused += 1
        self.say("   read model and hydration: nothing (row-level security)")
        try:
            answer = await c.functions.invoke("command", {"body": {
                "type": "inventory.receive_stock", "aggregateId": item,
                "payload": {"quantity": 100}, "wait": True}, "responseType": "json"})
        except FunctionsHttpError as exc:
            refusal = f"HTTP {exc.status}"
        else:
            raise DemoStepError(f"Carol's command on Acme's item was accepted: {answer!r}")
        self.summary.refused += 1
        self.say(f"   a command on Acme's item: refused by the edge function ({refusal})")
        await c.realtime.set_auth(self.carol.token)
        topic = f"intent:aggregate:{ACME}:{Item.type_name}:{item}"
        channel = c.channel(topic, channel_options(private=True))
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_state(state: Any, error: Exception | None) -> None:
            reason = str(error)
            if error is not None and error.args and isinstance(error.args[0], dict):
                reason = str(error.args[0].get("reason", reason))
            if not outcome.done():
                outcome.set_result(f"{getattr(state, 'value', state)}: {reason}")

        await channel.subscribe(on_state)
        result = await asyncio.wait_for(outcome, 10)
        await c.remove_channel(channel)
        if result.startswith("SUBSCRIBED"):
            raise DemoStepError("Carol could join Acme's private topic")
        self.summary.refused += 1
        self.say(f"   Acme's private Realtime topic: refused ({result.split(': ', 1)[-1]})")

    async def _live_until(self, live: LiveAggregate[ItemState], version: int, what: str,
                          seconds: float = 15.0) -> None:
        try:
            await live.wait_for(version, seconds)
        except TimeoutError:
            raise DemoStepError(
                f"the live view did not reach v{version} ({what}) within {seconds:g} s; "
                f"it is at v{live.version}") from None


def _rows(data: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in data] if isinstance(data, list) else []


async def _event_types(c: AsyncClient, aggregate_type: str, aggregate_id: str) -> list[str]:
    """The types of an aggregate's events as the caller may see them (none: not theirs)."""
    loaded: Any = (await c.rpc("load_aggregate", {
        "aggregate_type": aggregate_type, "aggregate_id": aggregate_id}).execute()).data
    events = loaded.get("events") if isinstance(loaded, dict) else None
    return [str(e["event_type"]) for e in events or []]


def _evolve_item(state: ItemState, event: StreamEvent) -> ItemState:
    """The client folds the same events with the domain's own (pure) evolve."""
    _, payload = registry.upcast(event.event_type, event.schema_version, dict(event.payload))
    model = registry.event_types()[event.event_type].payload_model
    return Item.evolve(state, model.model_validate(payload))

