"""The database side of Realtime: committed changes read by logical decoding (wal2json).

One dedicated connection, logged in as the database URL's user (`postgres`, which has
REPLICATION), creates a TEMPORARY logical slot and polls it with
`pg_logical_slot_get_changes`. A temporary slot belongs to its session, so nothing is left
behind in the database when the gateway stops or dies. Only the tables of publication
`supabase_realtime` and `realtime.messages` are decoded into JSON (`add-tables`), so busy
tables nobody can subscribe to cost little.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection

from tools.gateway.shared import log_event

PUBLICATION = "supabase_realtime"
MESSAGES = ("realtime", "messages")
# Seconds between polls: short after a poll that found changes, longer when idle.
BUSY_POLL_SECONDS = 0.05
IDLE_POLL_SECONDS = 0.1
# After the feed's connection is lost: the first pause before opening it again, doubling.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 5.0
# Changes fetched per poll at most (whole transactions are always returned).
POLL_LIMIT = 5000
# The prefix of the logical messages that flush the WAL (never decoded).
FLUSH_PREFIX = "intent.gateway.flush"
# realtime.messages rows are read from the WAL as they are written and never again; hosted
# Realtime drops the table's old daily partitions, and locally the rows would only pile up
# (two per appended event). The feed deletes those older than this, a bounded batch a minute.
MESSAGES_KEPT_SECONDS = 3600
PRUNE_EVERY_SECONDS = 60.0
PRUNE_BATCH = 10_000
_PRUNE_SQL = """
delete from realtime.messages where ctid = any(array(
  select ctid from realtime.messages
   where inserted_at < now() - make_interval(secs => %(kept)s) limit %(batch)s))
"""

# One statement reads the publication and decodes, so that a table added to it is decoded
# from the same moment on. wal2json's add-tables wants ` ',.*\` escaped with a backslash.
_CHANGES_SQL = r"""
select data from pg_logical_slot_get_changes(
  %(slot)s, null, %(limit)s,
  'format-version', '2', 'include-transaction', '1', 'include-timestamp', '1',
  'include-pk', '1', 'filter-msg-prefixes', %(flush)s,
  'add-tables', (
    select string_agg(regexp_replace(schemaname, '([ '',.*\\])', '\\\1', 'g') || '.'
                      || regexp_replace(tablename, '([ '',.*\\])', '\\\1', 'g'), ',')
      from (select schemaname, tablename from pg_catalog.pg_publication_tables
             where pubname = %(publication)s
            union select 'realtime', 'messages') published))
"""
_TABLE_SQL = """
select a.attname, t.typname, coalesce(a.attnum = any(i.indkey), false), c.relrowsecurity
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  join pg_catalog.pg_type t on t.oid = a.atttypid
  left join pg_catalog.pg_index i on i.indrelid = c.oid and i.indisprimary
 where n.nspname = %s and c.relname = %s
 order by a.attnum
"""


@dataclass(frozen=True)
class TableInfo:
    """A table's columns (name -> type name, in order), primary key and RLS flag."""

    schema: str
    name: str
    columns: dict[str, str]
    primary_key: tuple[str, ...]
    rls: bool


@dataclass
class Change:
    """One committed row change, values as wal2json gives them (JSON-typed where it can)."""

    schema: str
    table: str
    type: str  # INSERT, UPDATE, DELETE
    record: dict[str, Any] | None
    old_record: dict[str, Any] | None
    key_types: dict[str, str]  # primary-key column -> SQL type (wal2json's, with typmod)
    commit_timestamp: str = ""
    info: TableInfo | None = field(default=None, repr=False)


def commit_time(text: str | None) -> str:
    """wal2json's `2026-11-22 20:12:25.123456+00` as Supabase's `...T20:12:25.123Z`."""
    if not text:
        moment = datetime.now(UTC)
    else:
        try:
            moment = datetime.fromisoformat(text).astimezone(UTC)
        except ValueError:
            moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _values(items: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
    return {str(i["name"]): i.get("value") for i in items or []}


def parse_transaction(rows: Sequence[dict[str, Any]]) -> list[Change]:
    """wal2json format-version 2 records of one transaction (B ... C) as changes."""
    stamp = ""
    changes: list[Change] = []
    for row in rows:
        action = row.get("action")
        if action in {"B", "C"}:
            stamp = row.get("timestamp") or stamp
            continue
        kind = {"I": "INSERT", "U": "UPDATE", "D": "DELETE"}.get(str(action))
        if kind is None:  # truncate and messages are not Postgres Changes
            continue
        columns = _values(row.get("columns"))
        identity = _values(row.get("identity"))
        key_types = {str(k["name"]): str(k["type"]) for k in row.get("pk") or []}
        if kind == "UPDATE" and not identity:
            identity = {k: columns.get(k) for k in key_types}
        changes.append(Change(
            schema=str(row["schema"]), table=str(row["table"]), type=kind,
            record=columns if kind != "DELETE" else None,
            old_record=identity if kind != "INSERT" else None,
            key_types=key_types,
        ))
    for change in changes:
        change.commit_timestamp = commit_time(stamp)
    return changes


class ChangeFeed:
    """Polls a temporary wal2json slot and hands each poll's changes to `deliver`."""

    def __init__(self, database_url: str,
                 deliver: Callable[[list[Change]], Awaitable[None]]) -> None:
        self._url = database_url
        self._deliver = deliver
        self._conn: AsyncConnection[Any] | None = None
        self._slot = f"intent_gateway_{os.getpid()}_{secrets.token_hex(4)}"
        self._tables: dict[tuple[str, str], TableInfo] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.failed: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="realtime-change-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._conn is not None:
            await self._conn.close()  # the temporary slot goes with the session

    async def wait_ready(self, *, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.ready.wait(), seconds)
        except TimeoutError:
            return False
        return self.failed is None

    def forget_table(self, schema: str, table: str) -> None:
        """A join names this table: read its columns again at the next change (it may have
        been dropped and made again since)."""
        self._tables.pop((schema, table), None)

    async def _run(self) -> None:
        """Open the feed and follow it; when its connection is lost (PostgreSQL restarted,
        the backend terminated), open it again with backoff. A failure to open it at the
        start is reported (`failed`) and not retried: the gateway then says why it cannot
        serve Realtime. The slot is temporary, so what commits while the feed is away is not
        decoded: subscribers see a gap, which clients that hydrate close themselves."""
        if not await self._open():
            self.ready.set()
            return
        self.ready.set()
        pause = RECONNECT_FIRST_SECONDS
        while True:
            await self._follow()
            self.failed = "the change feed's connection was lost; reconnecting"
            log_event("realtime_feed_lost", logging.WARNING, slot=self._slot)
            while not await self._open():
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT_MAX_SECONDS)
            pause = RECONNECT_FIRST_SECONDS
            self.failed = None
            self._tables.clear()  # tables may have changed while the feed was away

    async def _open(self) -> bool:
        """A new connection and a new temporary slot (the old slot ended with its session)."""
        if self._conn is not None and not self._conn.closed:
            await self._conn.close()
        self._slot = f"intent_gateway_{os.getpid()}_{secrets.token_hex(4)}"
        try:
            self._conn = await AsyncConnection.connect(self._url, autocommit=True)
            await self._conn.execute(
                "select pg_create_logical_replication_slot(%s, 'wal2json', true)",
                (self._slot,))
        except (psycopg.Error, OSError) as exc:
            self.failed = " ".join(str(exc).split())
            log_event("realtime_feed_failed", logging.ERROR, error=self.failed)
            return False
        log_event("realtime_feed_started", slot=self._slot)
        return True

    async def _follow(self) -> None:
        """Poll the slot until the connection is lost."""
        next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
        while True:
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                    await self.prune()
                found = await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bad batch must not stop Realtime for everyone
                if self._conn is None or self._conn.closed:
                    return  # the connection is gone: _run says so and opens it again
                log_event("realtime_feed_error", logging.ERROR, error=repr(exc))
                found = False
            await asyncio.sleep(BUSY_POLL_SECONDS if found else IDLE_POLL_SECONDS)

    async def prune(self, *, kept_seconds: float = MESSAGES_KEPT_SECONDS) -> int:
        """Delete (at most PRUNE_BATCH of) the realtime.messages rows older than
        `kept_seconds`; how many. A failure (e.g. no privilege) is logged, not raised."""
        assert self._conn is not None
        try:
            cursor = await self._conn.execute(_PRUNE_SQL, {"kept": kept_seconds,
                                                           "batch": PRUNE_BATCH})
        except psycopg.Error as exc:
            log_event("realtime_prune_failed", logging.WARNING, error=" ".join(str(exc).split()))
            return 0
        deleted = max(cursor.rowcount, 0)
        if deleted:
            log_event("realtime_messages_pruned", deleted=deleted)
        return deleted

    async def _poll(self) -> bool:
        assert self._conn is not None
        await self._flush_wal()
        cursor = await self._conn.execute(_CHANGES_SQL, {
            "slot": self._slot, "limit": POLL_LIMIT, "flush": FLUSH_PREFIX,
            "publication": PUBLICATION})
        rows = [json.loads(data) for (data,) in await cursor.fetchall()]
        if not any(row.get("action") not in {"B", "C"} for row in rows):
            return False
        changes: list[Change] = []
        transaction: list[dict[str, Any]] = []
        for row in rows:
            transaction.append(row)
            if row.get("action") == "C":
                changes.extend(parse_transaction(transaction))
                transaction = []
        if transaction:
            changes.extend(parse_transaction(transaction))
        for change in changes:
            info = await self.table_info(change.schema, change.table)
            stale = info is not None and not (change.record or {}).keys() <= info.columns.keys()
            if stale:
                # The table was made again with other columns since it was read.
                self.forget_table(change.schema, change.table)
                info = await self.table_info(change.schema, change.table)
            change.info = info
        changes = [c for c in changes if c.info is not None]
        if changes:
            await self._deliver(changes)
        return True

    async def _flush_wal(self) -> None:
        """Decoding stops at the WAL flushed to disk; with `synchronous_commit = off` (the
        throwaway test clusters) a commit waits up to `wal_writer_delay` (200 ms) for that.
        When WAL is waiting, one synchronous commit of a logical message (a transaction
        that only takes an xid is committed asynchronously) flushes it all: measured here,
        commit to delivery went from ~200 ms to ~2 ms on such a cluster."""
        assert self._conn is not None
        cursor = await self._conn.execute(
            "select pg_current_wal_insert_lsn() > pg_current_wal_flush_lsn()")
        row = await cursor.fetchone()
        if row and row[0]:
            async with self._conn.transaction():
                await self._conn.execute("set local synchronous_commit = on")
                await self._conn.execute(
                    "select pg_logical_emit_message(true, %s, '')", (FLUSH_PREFIX,))

    async def table_info(self, schema: str, table: str) -> TableInfo | None:
        known = self._tables.get((schema, table))
        if known is not None:
            return known
        assert self._conn is not None
        cursor = await self._conn.execute(_TABLE_SQL, (schema, table))
        rows = await cursor.fetchall()
        if not rows:
            return None
        info = TableInfo(
            schema, table,
            columns={str(name): str(type_name) for name, type_name, _, _ in rows},
            primary_key=tuple(str(name) for name, _, key, _ in rows if key),
            rls=bool(rows[0][3]),
        )
        self._tables[(schema, table)] = info
        return info
