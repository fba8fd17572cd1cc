"""Live aggregates for supabase-py's AsyncClient: hydrate, follow Realtime, hydrate again.

    live = LiveAggregate(client, "inventory.item", item_id, access_token=token,
                         evolve=my_evolve, initial={}, on_change=print)
    await live.start()       # joins the private aggregate topic, then load_aggregate
    live.state, live.version
    await live.stop()

The order matters: the channel is joined first and hydration comes after, with live events
buffered meanwhile, so nothing appended in between is lost; the pure rules (ordering,
duplicates, gaps) are in `tools.client.stream`. A reconnect (the channel joins again) and a
version jump that does not fill within `grace` seconds both trigger a new hydration.

Two sources: `broadcast` (the default: the private topic
`intent:aggregate:<tenant>:<type>:<id>` the broadcast relay writes to; one policy check per
join) and `postgres_changes` (INSERTs on intent.events with an `aggregate_id=eq.<id>`
filter, under the table's RLS; Realtime checks every change against every subscriber).
`TenantFeed` follows a tenant's whole topic, `intent:tenant:<tenant>`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Generic, Literal, TypeVar

from realtime import AsyncRealtimeChannel, RealtimeSubscribeStates
from realtime.types import RealtimeChannelOptions, RealtimePostgresChangesListenEvent
from supabase import AsyncClient

from tools.client.stream import (
    DEFAULT_GRACE,
    Offer,
    StreamEvent,
    StreamState,
    TenantState,
    event_from_json,
    fold_hydration,
    snapshot_state,
)

S = TypeVar("S")
Source = Literal["broadcast", "postgres_changes"]
log = logging.getLogger(__name__)

PAGE = 1000  # read_stream's largest page


def channel_options(private: bool) -> RealtimeChannelOptions:
    """The channel config realtime-py wants in full; `private` is what matters here."""
    return {"config": {"broadcast": {"ack": False, "self": False},
                       "presence": {"key": "", "enabled": False}, "private": private}}


class SubscriptionError(RuntimeError):
    """The channel could not be joined (e.g. `Unauthorized` for another tenant's topic)."""


def tenant_topic(tenant_id: str) -> str:
    return f"intent:tenant:{tenant_id}"


def aggregate_topic(tenant_id: str, aggregate_type: str, aggregate_id: str) -> str:
    return f"intent:aggregate:{tenant_id}:{aggregate_type}:{aggregate_id}"


def tenant_of(access_token: str) -> str:
    """The tenant claim (`app_metadata.tenant_id`) of a user's JWT. Read, not verified: the
    token is only used to name the topic, and the server verifies it on join."""
    body = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    tenant = (claims.get("app_metadata") or {}).get("tenant_id")
    if not isinstance(tenant, str):
        raise ValueError("the token has no app_metadata.tenant_id claim")
    return tenant


def _tenant(tenant_id: str | None, access_token: str | None) -> str:
    """The tenant given, or the one the user's token names."""
    if tenant_id is not None:
        return tenant_id
    if access_token is None:
        raise ValueError("pass tenant_id or the user's access_token")
    return tenant_of(access_token)


class _Joined:
    """Turns the channel's subscribe callbacks into an awaitable first outcome, and later
    ones into `on_live` (each time the subscription is live again) and `on_lost`."""

    def __init__(self, on_live: Callable[[], None], on_lost: Callable[[], None]) -> None:
        self.first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.on_live = on_live
        self.on_lost = on_lost

    def live(self) -> None:
        if not self.first.done():
            self.first.set_result(None)
        else:
            self.on_live()

    def failed(self, reason: str) -> None:
        if not self.first.done():
            self.first.set_exception(SubscriptionError(reason))
        else:
            self.on_lost()


def _watch(channel: AsyncRealtimeChannel, joined: _Joined, source: Source) -> Callable[
        [RealtimeSubscribeStates, Exception | None], None]:
    """The subscribe callback. For Postgres Changes the subscription is live only at the
    server's `system` ok message, not at the join reply, so that one drives `live`."""
    if source == "postgres_changes":
        channel.on_system(lambda payload: joined.live()
                          if payload.extension == "postgres_changes" else None)

    def on_state(state: RealtimeSubscribeStates, error: Exception | None) -> None:
        if state == RealtimeSubscribeStates.SUBSCRIBED:
            if source == "broadcast":
                joined.live()
        else:
            joined.failed(f"{state.value}: {error}" if error else str(state.value))

    return on_state


class LiveAggregate(Generic[S]):
    """One aggregate's state, hydrated and kept current from Realtime."""

    def __init__(
        self,
        client: AsyncClient,
        aggregate_type: str,
        aggregate_id: str,
        *,
        evolve: Callable[[S, StreamEvent], S],
        initial: S,
        from_snapshot: Callable[[Mapping[str, Any]], S] = snapshot_state,
        access_token: str | None = None,
        tenant_id: str | None = None,
        on_change: Callable[[LiveAggregate[S]], None] | None = None,
        source: Source = "broadcast",
        grace: float = DEFAULT_GRACE,
    ) -> None:
        tenant_id = _tenant(tenant_id, access_token)
        self.client = client
        self.aggregate_type = aggregate_type
        self.aggregate_id = str(aggregate_id)
        self.tenant_id = tenant_id
        self.access_token = access_token
        self.source: Source = source
        self.on_change = on_change
        self.topic = aggregate_topic(tenant_id, aggregate_type, self.aggregate_id)
        self._evolve = evolve
        self._initial = initial
        self._from_snapshot = from_snapshot
        self._stream: StreamState[S] = StreamState(
            aggregate_type, self.aggregate_id, evolve, initial, grace=grace)
        self._channel: AsyncRealtimeChannel | None = None
        self._hydration: asyncio.Task[None] | None = None
        self._again = False
        self._timer: asyncio.TimerHandle | None = None
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- what the caller reads ------------------------------------------------------------
    @property
    def state(self) -> S:
        return self._stream.state

    @property
    def version(self) -> int:
        return self._stream.version

    @property
    def hydrations(self) -> int:
        """How many hydrations have completed (1 after start; more after gaps/reconnects)."""
        return self._stream.hydrations

    @property
    def stale(self) -> bool:
        """True while a hydration is due or in flight: the state may be behind."""
        return self._stream.hydrating or self._stream.waiting_since is not None

    async def wait_for(self, version: int, seconds: float) -> None:
        """Until the state has reached `version` (TimeoutError after `seconds`)."""
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(lambda: self.version >= version and not self.stale)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, join_seconds: float = 10) -> None:
        """Join the topic (SubscriptionError when refused), then hydrate."""
        if self.access_token is not None:
            await self.client.realtime.set_auth(self.access_token)
        joined = _Joined(on_live=self._relive, on_lost=self._lost)
        if self.source == "broadcast":
            channel = self.client.channel(self.topic, channel_options(private=True))
            channel.on_broadcast("*", self._on_broadcast)
        else:
            channel = self.client.channel(f"intent-changes:{self.topic}",
                                          channel_options(private=False))
            channel.on_postgres_changes(
                RealtimePostgresChangesListenEvent.Insert, self._on_change_row,
                table="events", schema="intent", filter=f"aggregate_id=eq.{self.aggregate_id}")
        self._channel = channel
        await channel.subscribe(_watch(channel, joined, self.source))
        try:
            async with asyncio.timeout(join_seconds):
                await joined.first
        except BaseException:
            await self.stop()
            raise
        # As a task, so that a reconnect meanwhile queues behind it instead of racing it.
        self._hydration = asyncio.create_task(self._hydrate_now())
        await self._hydration

    async def stop(self) -> None:
        """Leave the channel and cancel what is pending."""
        if self._timer is not None:
            self._timer.cancel()
        for task in [*self._tasks, *([self._hydration] if self._hydration else [])]:
            task.cancel()
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await self.client.remove_channel(channel)

    # -- live events ----------------------------------------------------------------------
    def _on_broadcast(self, message: Mapping[str, Any]) -> None:
        self._offer(event_from_json(message["payload"]))

    def _on_change_row(self, message: Mapping[str, Any]) -> None:
        self._offer(event_from_json(message["data"]["record"]))

    def _offer(self, event: StreamEvent) -> None:
        loop = asyncio.get_running_loop()
        outcome, _ = self._stream.offer(event, loop.time())
        if outcome == Offer.APPLIED:
            self._notify()
        self._arm_timer()
        log.debug("%s v%s: %s", self.topic, event.version, outcome.value)

    def _arm_timer(self) -> None:
        due = self._stream.due_at()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if due is not None:
            self._timer = asyncio.get_running_loop().call_at(due, self._check_gap)

    def _check_gap(self) -> None:
        self._timer = None
        if self._stream.overdue(asyncio.get_running_loop().time()):
            log.info("%s: version gap after %s, hydrating again", self.topic, self.version)
            self._rehydrate()

    def _relive(self) -> None:
        """The channel joined again (a reconnect): what was sent meanwhile is lost."""
        log.info("%s: subscribed again, hydrating", self.topic)
        self._rehydrate()

    def _lost(self) -> None:
        self._stream.begin_hydration()  # stale until the next join hydrates
        self._notify()

    # -- hydration ------------------------------------------------------------------------
    def _rehydrate(self) -> None:
        if self._hydration is not None and not self._hydration.done():
            self._again = True
            return
        self._hydration = asyncio.create_task(self._hydrate_now())

    async def _hydrate_now(self) -> None:
        while True:
            self._again = False
            self._stream.begin_hydration()
            try:
                state, version = await self._load()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: hydration failed; retrying", self.topic)
                await asyncio.sleep(1)
                continue
            if not self._again:
                break
        self._stream.finish_hydration(state, version, asyncio.get_running_loop().time())
        self._arm_timer()
        self._notify()

    async def _load(self) -> tuple[S, int]:
        args = {"aggregate_type": self.aggregate_type, "aggregate_id": self.aggregate_id}
        answer = _object((await self.client.rpc("load_aggregate", args).execute()).data)
        pages: list[dict[str, Any]] = []
        following = answer.get("next_version")
        while following is not None:
            page = _object((await self.client.rpc("read_stream", {
                **args, "from_version": following, "max_count": PAGE}).execute()).data)
            pages.append(page)
            following = page.get("next_version")
        return fold_hydration(answer, pages, self._evolve, self._initial, self._from_snapshot)

    def _notify(self) -> None:
        if self.on_change is not None and not self.stale:
            self.on_change(self)

        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.create_task(wake())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _object(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object from the RPC, got {type(data).__name__}")
    return data


class TenantFeed:
    """Every event of the caller's tenant as it comes (`intent:tenant:<tenant>`), without
    state: for read models and activity feeds. Duplicates (per aggregate version) are
    dropped; `on_resync` is called after a reconnect or a per-aggregate version gap, when
    the caller should re-read whatever it derives from the events."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        on_event: Callable[[StreamEvent], None],
        on_resync: Callable[[], None],
        access_token: str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        tenant_id = _tenant(tenant_id, access_token)
        self.client = client
        self.access_token = access_token
        self.topic = tenant_topic(tenant_id)
        self.on_event = on_event
        self.on_resync = on_resync
        self._state = TenantState()
        self._channel: AsyncRealtimeChannel | None = None

    async def start(self, join_seconds: float = 10) -> None:
        if self.access_token is not None:
            await self.client.realtime.set_auth(self.access_token)
        joined = _Joined(on_live=self._resync, on_lost=lambda: None)
        channel = self.client.channel(self.topic, channel_options(private=True))
        channel.on_broadcast("*", self._on_broadcast)
        self._channel = channel
        await channel.subscribe(_watch(channel, joined, "broadcast"))
        try:
            async with asyncio.timeout(join_seconds):
                await joined.first
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await self.client.remove_channel(channel)

    def _on_broadcast(self, message: Mapping[str, Any]) -> None:
        event = event_from_json(message["payload"])
        outcome = self._state.offer(event)
        if outcome == Offer.DUPLICATE:
            return
        self.on_event(event)
        if outcome is None:
            self._resync()

    def _resync(self) -> None:
        self._state.reset()
        self.on_resync()
