"""Loading and saving aggregates: the event and snapshot stores joined to the pure domain."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from domain.aggregate import Aggregate, StateT
from domain.contracts import Event, StreamId
from domain.decider import (
    Loaded,
    evolve_all,
    rehydrate,
    snapshot_due,
    starting_point,
    take_snapshot,
)
from domain.errors import BadInput, InvalidSnapshot
from domain.registry import Registry
from domain.replay import fold_page
from pump.store.connections import Conn, connection
from pump.store.events import AppendResult, PostgresEventStore
from pump.store.replay import StreamRead, next_pages, read_start
from pump.store.snapshots import PostgresSnapshotStore

log = logging.getLogger(__name__)


class StateCache:
    """Aggregate states this process has seen committed, by stream, most recent last.

    Events are immutable and only ever appended, so a committed (version, state) stays a
    true prefix of its stream forever: loading resumes from it with the events after its
    version, and finds any that another worker appended since. Only put states whose
    transaction has committed; a state from a rolled-back transaction would be ahead of the
    stream."""

    def __init__(self, max_entries: int = 10_000):
        if max_entries < 1:
            raise ValueError("a state cache needs room for at least one aggregate")
        self._max = max_entries
        self._states: OrderedDict[StreamId, Loaded[Any]] = OrderedDict()

    def get(self, stream: StreamId) -> Loaded[Any] | None:
        loaded = self._states.get(stream)
        if loaded is not None:
            self._states.move_to_end(stream)
        return loaded

    def put_committed(self, states: Iterable[Loaded[Any]]) -> None:
        for loaded in states:
            current = self._states.get(loaded.stream)
            if current is None or current.version <= loaded.version:
                self._states[loaded.stream] = loaded
                self._states.move_to_end(loaded.stream)
        while len(self._states) > self._max:
            self._states.popitem(last=False)

    def __len__(self) -> int:
        return len(self._states)


class AggregateRepository:
    def __init__(self, pool: AsyncConnectionPool[Conn], registry: Registry):
        self._pool = pool
        self.registry = registry
        # No registry for the store: `save` evolves the new events through the registry
        # before appending, which validates every payload; checking again costs each append.
        self.events = PostgresEventStore(pool)
        self.snapshots = PostgresSnapshotStore(pool)

    async def load(
        self,
        aggregate: type[Aggregate[StateT]],
        stream: StreamId,
        *,
        version: int | None = None,
        as_of: datetime | None = None,
        use_snapshots: bool = True,
        conn: Conn | None = None,
    ) -> Loaded[StateT]:
        """The aggregate now, as of a version, or as of a time: the newest usable snapshot
        plus the events after it, read in one round trip (more only for tails longer than a
        page). A snapshot the code can no longer read is passed over."""
        if version is not None and version < 0:
            raise BadInput(f"version {version} is negative")
        if as_of is not None:
            if as_of.tzinfo is None:
                raise BadInput("as_of must carry a time zone")
            at_time = await self.events.version_at(stream, as_of, conn=conn)
            version = at_time if version is None else min(version, at_time)
        if version == 0:
            return starting_point(aggregate, stream, None)
        use = use_snapshots and aggregate.snapshot_every is not None
        async with connection(self._pool, conn) as c:
            read = await read_start(
                c, stream, to_version=version, use_snapshot=use
            )
            try:
                return await self._fold(c, aggregate, stream, read, version)
            except InvalidSnapshot as exc:
                if read.snapshot is None:
                    raise
                log.warning("passing over snapshot %s@%s: %s", stream, read.snapshot.version, exc)
                read = await read_start(
                    c, stream, to_version=version, use_snapshot=False
                )
                return await self._fold(c, aggregate, stream, read, version)

    async def _fold(
        self,
        conn: Conn,
        aggregate: type[Aggregate[StateT]],
        stream: StreamId,
        read: StreamRead,
        version: int | None,
    ) -> Loaded[StateT]:
        loaded = starting_point(aggregate, stream, read.snapshot)
        if read.first_page is not None:
            loaded = fold_page(self.registry, aggregate, loaded, read.first_page)
        if read.full:
            async for page in next_pages(
                conn, stream, after=loaded.version, to_version=version
            ):
                loaded = fold_page(self.registry, aggregate, loaded, page)
        return loaded

    async def load_many(
        self,
        targets: Sequence[tuple[type[Aggregate[Any]], StreamId]],
        *,
        conn: Conn | None = None,
        cache: StateCache | None = None,
    ) -> dict[StreamId, Loaded[Any]]:
        """Several aggregates now, in two queries whatever their number: the newest snapshot
        of every stream that keeps them, then every stream's events after its snapshot. A
        snapshot the code can no longer read is passed over (that stream alone is reloaded
        in full). A stream in `cache` resumes from the cached state instead of a snapshot."""
        cached = {
            stream: hit
            for _, stream in targets
            if cache is not None and (hit := cache.get(stream)) is not None
        }
        snapshotted = [
            stream
            for agg, stream in targets
            if agg.snapshot_every is not None and stream not in cached
        ]
        snapshots = await self.snapshots.latest_many(snapshotted, conn=conn)
        after = [
            (
                stream,
                cached[stream].version if stream in cached
                else snapshots[stream].version if stream in snapshots
                else 0,
            )
            for _, stream in targets
        ]
        events = await self.events.load_many(after, conn=conn)
        loaded: dict[StreamId, Loaded[Any]] = {}
        for aggregate, stream in targets:
            if stream in cached:
                loaded[stream] = evolve_all(self.registry, aggregate, cached[stream],
                                            events[stream])
                continue
            snapshot = snapshots.get(stream)
            if snapshot is not None:
                try:
                    loaded[stream] = rehydrate(
                        self.registry, aggregate, stream, snapshot, events[stream]
                    )
                    continue
                except InvalidSnapshot as exc:
                    log.warning("passing over snapshot %s@%s: %s", stream, snapshot.version, exc)
                    loaded[stream] = await self.load(
                        aggregate, stream, use_snapshots=False, conn=conn
                    )
                    continue
            loaded[stream] = rehydrate(self.registry, aggregate, stream, None, events[stream])
        return loaded

    async def record_many(
        self,
        changes: Sequence[
            tuple[type[Aggregate[Any]], Loaded[Any], Loaded[Any], Sequence[Event]]
        ],
        *,
        conn: Conn,
    ) -> list[AppendResult]:
        """`record` for several aggregates in the caller's transaction: one statement appends
        every stream's events (all or nothing), one more saves the snapshots that are due."""
        results = await self.events.append_many(
            [(before.stream, before.version, new) for _, before, _, new in changes], conn=conn
        )
        snapshots = [
            take_snapshot(aggregate, after)
            for aggregate, before, after, _ in changes
            if snapshot_due(aggregate, before.version, after.version)
        ]
        await self.snapshots.save_many(snapshots, conn=conn)
        return results

    async def save(
        self,
        aggregate: type[Aggregate[StateT]],
        loaded: Loaded[StateT],
        new_events: Sequence[Event],
        *,
        conn: Conn | None = None,
    ) -> tuple[Loaded[StateT], AppendResult]:
        """Append what was decided and snapshot when a snapshot point is crossed, in one
        transaction (the caller's, when `conn` is given)."""
        after = evolve_all(self.registry, aggregate, loaded, new_events)
        return after, await self.record(aggregate, loaded, after, new_events, conn=conn)

    async def record(
        self,
        aggregate: type[Aggregate[StateT]],
        before: Loaded[StateT],
        after: Loaded[StateT],
        new_events: Sequence[Event],
        *,
        conn: Conn | None = None,
    ) -> AppendResult:
        """Append events already evolved from `before` into `after` (so their payloads are
        validated), with a snapshot of `after` when the append crosses a snapshot point: one
        statement either way, in the caller's transaction when `conn` is given."""
        snapshot = (
            take_snapshot(aggregate, after)
            if snapshot_due(aggregate, before.version, after.version)
            else None
        )
        return await self.events.append(
            before.stream, before.version, new_events, snapshot=snapshot, conn=conn
        )
