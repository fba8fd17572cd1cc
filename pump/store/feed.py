"""The global feed: every event of every stream, in an order that never skips a late commit.

A position is taken at INSERT but becomes visible at COMMIT, so reading "position > last"
skips an event whose transaction commits after a later one's. Each event therefore stores its
writing transaction's id, and a reader takes only events of transactions older than the
oldest one still open (`pg_snapshot_xmin`), in (transaction id, position) order. Everything
below that horizon is final, so the order is stable and nothing can appear behind a reader.
The price is that a long open transaction holds every reader back: `held_back` says how far
and by whom, so that lag is visible instead of silent.
"""

from __future__ import annotations

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.feed import START, FeedPage, FeedPosition, HoldBack
from pump.store.connections import Conn, connection
from pump.store.events import EVENT_COLUMNS, event_from_row

_READ = f"""
select {EVENT_COLUMNS} from intent.events
where (transaction_id, position) > (%(txid)s::text::xid8, %(position)s)
  and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
order by transaction_id, position
limit %(limit)s
"""

_WAITING = """
select count(*) from intent.events
where (transaction_id, position) > (%(txid)s::text::xid8, %(position)s)
  and transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
"""

# The open transaction with the oldest id is the one that pins the horizon. Other roles'
# sessions are visible only with pg_read_all_stats; without it the answer is just less
# precise (the counts above still hold).
_OLDEST_OPEN = """
select pid, now() - xact_start as age from pg_stat_activity
where backend_xid is not null and pid <> pg_backend_pid()
order by age(backend_xid) desc
limit 1
"""


class GlobalFeed:
    def __init__(self, pool: AsyncConnectionPool[Conn]):
        self._pool = pool

    async def read(
        self, after: FeedPosition = START, *, limit: int = 500, conn: Conn | None = None
    ) -> FeedPage:
        """The next events after `after`. Read before writing in the same transaction:
        once this transaction has an id of its own, it holds its own horizon back."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        params = {"txid": str(after.transaction_id), "position": after.position, "limit": limit}
        async with connection(self._pool, conn) as c, c.cursor(row_factory=dict_row) as cur:
            await cur.execute(_READ, params)
            rows = await cur.fetchall()
        events = [event_from_row(row) for row in rows]
        return FeedPage(events=events, next=FeedPosition.of(events[-1]) if events else after)

    async def held_back(self, after: FeedPosition, *, conn: Conn | None = None) -> HoldBack:
        params = {"txid": str(after.transaction_id), "position": after.position}
        async with connection(self._pool, conn) as c:
            waiting = await (await c.execute(_WAITING, params)).fetchone()
            oldest = await (await c.execute(_OLDEST_OPEN)).fetchone()
        return HoldBack(
            waiting_events=int(waiting[0]) if waiting else 0,
            oldest_open_pid=int(oldest[0]) if oldest else None,
            oldest_open_age=oldest[1] if oldest else None,
        )
