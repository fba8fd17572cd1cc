"""Feed pages as the projection processes read them: one round trip per page, events of the
wanted types as JSON arrays validated by pydantic in one call each, the others only moving
the page on. Same horizon and order as pump.store.feed.GlobalFeed (see there for why)."""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from domain.contracts import Event
from domain.errors import InvalidEvent
from domain.feed import FeedPage, FeedPosition
from pump.store.connections import Conn

# The feed, as GlobalFeed reads it (same horizon, same order). The order names the
# table's columns, not the bigint the select list makes of transaction_id: only then can
# events_feed_idx serve it, rather than a sort of everything after the position on every
# page. A page comes back as one row: how many events it read, the position of the last
# one, and the events of the wanted types as JSON arrays (of CHUNK events each), which
# pydantic validates in one call per array (measured at well under half the Python time of
# decoding columns row by row).
_PAGE = """
with page as materialized (
  select e.transaction_id, e.position, {document} as doc
  from intent.events e
  where (e.transaction_id, e.position) > (%(txid)s::text::xid8, %(position)s)
    {horizon}
  order by e.transaction_id, e.position
  limit %(limit)s
), wanted as (
  select (row_number() over (order by transaction_id, position) - 1) / {chunk} as chunk,
         transaction_id, position, doc
  from page where doc is not null
)
select counted.n, last.txid, last.pos, chunks.texts
from (select count(*) as n from page) counted
left join lateral (
  select transaction_id::text::bigint as txid, position as pos from page
  order by transaction_id desc, position desc limit 1
) last on true
cross join (
  select coalesce(array_agg(text order by chunk), '{{}}') as texts
  from (
    select chunk, json_agg(doc order by transaction_id, position)::text as text
    from wanted group by chunk
  ) c
) chunks
"""
# Events per JSON array: a caller can decode a page a slice at a time, letting other tasks
# (the rebuild's writer) run in between.
CHUNK = 250
_DOCUMENT = """json_build_object(
    'event_id', e.event_id, 'event_type', e.event_type, 'schema_version', e.schema_version,
    'stream', json_build_object('tenant_id', e.tenant_id, 'aggregate_type', e.aggregate_type,
                                'aggregate_id', e.aggregate_id),
    'version', e.version, 'payload', e.payload, 'metadata', e.metadata,
    'position', e.position, 'transaction_id', e.transaction_id::text::bigint,
    'recorded_at', e.recorded_at)"""
_HORIZON = "and e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())"


def _page_sql(*, horizon: bool, filtered: bool) -> bytes:
    document = _DOCUMENT
    if filtered:
        document = f"case when e.event_type = any(%(types)s::text[]) then {document} end"
    return _PAGE.format(
        document=document, horizon=_HORIZON if horizon else "", chunk=CHUNK
    ).encode()


# Without the horizon, everything committed and visible: only for a caller that has made
# sure no transaction still open can add to what it needs (the inline swap, which holds the
# live tables locked against the worker).
_PAGE_SQL = {
    (horizon, filtered): _page_sql(horizon=horizon, filtered=filtered)
    for horizon in (True, False)
    for filtered in (True, False)
}
_EVENTS = TypeAdapter(list[Event])


@dataclass(frozen=True)
class Page:
    events: list[Event]  # the events of the types asked for, in feed order
    next: FeedPosition  # after the last event read, whatever its type
    read: int  # events read, of every type


@dataclass(frozen=True)
class RawPage:
    """A page as fetched: the events still as JSON text, not validated yet."""

    chunks: list[str]  # JSON arrays of the events of the types asked for, in feed order
    next: FeedPosition
    read: int

    def decode(self) -> Page:
        events: list[Event] = []
        for chunk in self.chunks:
            events += decode_events(chunk)
        return Page(events, self.next, self.read)


def decode_events(chunk: str) -> list[Event]:
    """One JSON array of stored events, validated in one call."""
    try:
        return _EVENTS.validate_json(chunk)
    except ValidationError:
        raise _invalid_event(chunk) from None


async def fetch_page(
    conn: Conn,
    after: FeedPosition,
    *,
    limit: int,
    types: frozenset[str] | None = None,
    horizon: bool = True,
) -> RawPage:
    """The next `limit` feed events after `after`, undecoded; those of types not in `types`
    (None: every type) only move the page on. Read before writing in the transaction: once
    it has a transaction id, it holds its own horizon back."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    params: dict[str, Any] = {
        "txid": str(after.transaction_id), "position": after.position, "limit": limit,
    }
    if types is not None:
        params["types"] = sorted(types)
    cur = await conn.execute(_PAGE_SQL[horizon, types is not None], params)
    row = await cur.fetchone()
    if row is None or not row[0]:
        return RawPage([], after, 0)
    read, txid, position, chunks = row
    return RawPage(list(chunks), FeedPosition(int(txid), int(position)), int(read))


async def read_page(
    conn: Conn,
    after: FeedPosition,
    *,
    limit: int,
    types: frozenset[str] | None = None,
    horizon: bool = True,
) -> Page:
    """`fetch_page`, decoded."""
    raw = await fetch_page(conn, after, limit=limit, types=types, horizon=horizon)
    return raw.decode() if raw.read else Page([], after, 0)


def _invalid_event(documents: str) -> InvalidEvent:
    """The first event of the page that is not a valid envelope, named by its position."""
    for document in json.loads(documents):
        try:
            Event.model_validate(document)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            return InvalidEvent(
                f"stored event {document.get('event_id')} (position "
                f"{document.get('transaction_id')}:{document.get('position')}) is not a valid "
                f"envelope: {problems}",
                position=document.get("position"),
            )
    return InvalidEvent("a stored event of the page is not a valid envelope")


async def read_feed(
    conn: Conn, after: FeedPosition, *, limit: int, horizon: bool = True
) -> FeedPage:
    """`read_page` of every type, shaped as GlobalFeed.read's answer."""
    page = await read_page(conn, after, limit=limit, horizon=horizon)
    return FeedPage(events=page.events, next=page.next)


# Several catch-ups may overlap in one process: the first raises the threshold, the last
# one to finish puts it back.
_collections: dict[str, Any] = {"raised": 0, "before": gc.get_threshold()}


@contextlib.contextmanager
def fewer_collections(threshold: int = 20_000) -> Iterator[None]:
    """Run the cyclic garbage collector rarely while pages are applied.

    A page allocates tens of thousands of small objects (envelopes, payloads, ops, row
    writes) that all die when it is written, by reference counting: nothing on this path
    makes reference cycles. At the default threshold (700 allocations) the collector runs
    dozens of times per page and was measured at about a quarter of the catch-up's time."""
    if _collections["raised"] == 0:
        before = gc.get_threshold()
        _collections["before"] = before
        gc.set_threshold(max(before[0], threshold), *before[1:])
    _collections["raised"] += 1
    try:
        yield
    finally:
        _collections["raised"] -= 1
        if _collections["raised"] == 0:
            gc.set_threshold(*_collections["before"])
