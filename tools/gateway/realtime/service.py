"""Everything Realtime shares: the hub, the open connections and the change feed.

Broadcast and Presence live in the `Hub` (hub.py); Postgres Changes and Broadcast from
Database come from the `ChangeFeed` (wal.py), checked against each subscriber's RLS before
delivery. The database checks of channels (may they read, write, subscribe) are here too.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

import psycopg
from psycopg import sql

from pump.observability import telemetry
from tools.gateway.auth import Caller
from tools.gateway.realtime.filters import Binding, BindingError, binding_matches
from tools.gateway.realtime.frames import Message
from tools.gateway.realtime.hub import Channel, Hub, PresenceDiff
from tools.gateway.realtime.payloads import broadcast_frame, change_data
from tools.gateway.realtime.wal import MESSAGES, Change, ChangeFeed
from tools.gateway.session import SEARCH_PATH, Conn
from tools.gateway.shared import Gateway, log_event

# How long a join with Postgres Changes waits for the change feed's slot to exist.
FEED_READY_SECONDS = 60.0

_PUBLISHED_SQL = """
select exists (
  select from pg_catalog.pg_publication_tables
   where pubname = 'supabase_realtime' and schemaname = %s and (tablename = %s or %s = '*'))
"""
# Through the catalogs, not a ::regclass cast: the gateway's login role (authenticator) has
# no USAGE on the app's schemas, and a cast would need it.
_COLUMN_SQL = """
select exists (
  select from pg_catalog.pg_attribute a
    join pg_catalog.pg_class c on c.oid = a.attrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
   where n.nspname = %s and c.relname = %s
     and a.attname = %s and a.attnum > 0 and not a.attisdropped)
"""
_CHECK_MESSAGE_SQL = """
insert into realtime.messages (topic, extension, event, payload, private)
values (%s, 'broadcast', 'intent.gateway.authorization', '{}'::jsonb, true) returning id
"""
_CLAIMS_SQL = """
select set_config('search_path', %s, true), set_config('role', %s, true),
       set_config('request.jwt.claims', %s, true), set_config('realtime.topic', %s, true)
"""


class Subscriber(Protocol):
    """What the service needs of a socket. connection.py's `Connection` is one; a protocol,
    because the connection holds (and imports) the service, not the other way round."""

    vsn: str
    channels: dict[str, Channel]

    def push(self, message: Message) -> None: ...

    def enqueue(self, frame: str | bytes) -> None: ...

    async def close(self, code: int, reason: str, *, seconds: float) -> None: ...


class RealtimeService:
    """Everything Realtime shares: the hub, the open connections and the change feed."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.hub = Hub()
        self.connections: set[Subscriber] = set()
        self.feed = ChangeFeed(gateway.config.database_url, self.deliver)

    async def feed_ready(self) -> bool:
        return await self.feed.wait_ready(seconds=FEED_READY_SECONDS)

    def leave(self, channel: Channel) -> None:
        diff = self.hub.remove(channel)
        if diff is not None:
            self.send_diff(channel.name, channel.private, diff)

    def send_diff(self, name: str, private: bool, diff: PresenceDiff) -> None:
        for member in self.hub.members(name, private):
            member.owner.push(Message(member.topic, "presence_diff", diff.payload()))

    def fan_out(self, sender: Channel, event: str, payload: Any) -> None:
        _send_broadcast(self.hub.broadcast_targets(sender), event, payload, None)

    def publish(self, name: str, private: bool, event: str, payload: Any,
                meta: dict[str, Any] | None = None) -> int:
        members = self.hub.members(name, private)
        _send_broadcast(members, event, payload, meta)
        return len(members)

    # -- database checks ------------------------------------------------------------------

    async def check_binding(self, binding: Binding) -> None:
        """Only tables of `supabase_realtime` can be subscribed, and a filter's column must
        exist; the reason is Supabase's wording."""
        filters = [binding.filter.text()] if binding.filter else []
        refusal = BindingError(
            "Unable to subscribe to changes with given parameters. Please check Realtime is "
            f"enabled for the given connect parameters: [event: {binding.event}, schema: "
            f"{binding.schema}, table: {binding.table}, filters: {filters}]")
        async with self.gateway.pool.connection() as conn:
            cursor = await conn.execute(_PUBLISHED_SQL,
                                        (binding.schema, binding.table, binding.table))
            row = await cursor.fetchone()
            if not row or not row[0]:
                raise refusal
            if binding.filter is not None:
                cursor = await conn.execute(
                    _COLUMN_SQL, (binding.schema, binding.table, binding.filter.column))
                row = await cursor.fetchone()
                if not row or not row[0]:
                    raise refusal
        if binding.table != "*":
            self.feed.forget_table(binding.schema, binding.table)

    async def may_read(self, channel: Channel) -> bool:
        """Whether the channel's role and claims pass the SELECT policies of
        realtime.messages for its topic: a probe row is written as service_role, read as
        the subscriber with `realtime.topic` set, and everything is rolled back."""
        try:
            async with self.gateway.pool.connection() as conn, \
                    conn.transaction(force_rollback=True):
                await conn.execute("select set_config('role', 'service_role', true)")
                cursor = await conn.execute(_CHECK_MESSAGE_SQL, (channel.name,))
                row = await cursor.fetchone()
                assert row is not None
                await conn.execute(_CLAIMS_SQL, (SEARCH_PATH, channel.role,
                                                 json.dumps(channel.claims), channel.name))
                cursor = await conn.execute(
                    "select exists (select from realtime.messages where id = %s)", (row[0],))
                seen = await cursor.fetchone()
                return bool(seen and seen[0])
        except psycopg.Error as exc:
            log_event("realtime_authorization_error", logging.WARNING, topic=channel.topic,
                      error=" ".join(str(exc).split())[:300])
            return False

    async def may_write(self, caller: Caller, name: str, event: str, payload: Any, *,
                        extension: str) -> bool:
        """Whether the caller passes the INSERT policies of realtime.messages for a topic
        and extension (a private broadcast, or presence tracked); rolled back."""
        try:
            async with self.gateway.pool.connection() as conn, \
                    conn.transaction(force_rollback=True):
                await conn.execute(_CLAIMS_SQL, (SEARCH_PATH, caller.role,
                                                 json.dumps(caller.claims), name))
                await conn.execute(
                    "insert into realtime.messages (topic, extension, event, payload, private)"
                    " values (%s, %s, %s, %s::jsonb, true)",
                    (name, extension, event,
                     json.dumps(payload if isinstance(payload, dict) else {})))
                return True
        except psycopg.Error:
            return False

    async def _visible(self, conn: Conn, channel: Channel, changes: list[tuple[int, Change]]
                       ) -> set[int]:
        """Of these changes (one table), the positions whose row the channel's role and
        claims may SELECT now, in one query, in a transaction that is rolled back."""
        first = changes[0][1]
        keys = list(first.key_types)
        if not keys:
            return set() if first.info is not None and first.info.rls else {
                i for i, _ in changes}
        rows = [{"__intent_ord": i, **{k: (c.record or {}).get(k) for k in keys}}
                for i, c in changes]
        spec = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(first.key_types[k]))
            for k in keys)
        condition = sql.SQL(" and ").join(
            sql.SQL("t.{k} = x.{k}").format(k=sql.Identifier(k)) for k in keys)
        query = sql.SQL(
            "select x.__intent_ord from jsonb_to_recordset(%s::jsonb) as x(__intent_ord int, "
            "{spec}) where exists (select from {table} t where {condition})"
        ).format(spec=spec, table=sql.Identifier(first.schema, first.table),
                 condition=condition)
        try:
            async with conn.transaction(force_rollback=True):
                await conn.execute(_CLAIMS_SQL, (SEARCH_PATH, channel.role,
                                                 json.dumps(channel.claims), ""))
                cursor = await conn.execute(query, (json.dumps(rows, default=str),))
                return {int(r[0]) for r in await cursor.fetchall()}
        except psycopg.Error as exc:
            log_event("realtime_rls_check_failed", logging.WARNING, table=first.table,
                      role=channel.role, error=" ".join(str(exc).split())[:300])
            return set()

    async def deliver(self, changes: list[Change]) -> None:
        """One poll's changes, in commit order: database broadcasts to their topic's
        subscribers; row changes to the bindings they match, when RLS lets them see it."""
        subscribers = self.hub.with_bindings()
        wanted: dict[int, list[tuple[Channel, list[int]]]] = {}
        checks: dict[tuple[str, str, str, str], list[tuple[int, Change]]] = {}
        representative: dict[tuple[str, str, str, str], Channel] = {}
        for index, change in enumerate(changes):
            if (change.schema, change.table) == MESSAGES or change.info is None:
                continue
            types = change.info.columns
            for channel in subscribers:
                ids = [b.id for b in channel.bindings if binding_matches(
                    b, change.schema, change.table, change.type, change.record,
                    change.old_record, types)]
                if not ids:
                    continue
                wanted.setdefault(index, []).append((channel, ids))
                if change.type != "DELETE":
                    group = (change.schema, change.table, channel.role,
                             json.dumps(channel.claims, sort_keys=True))
                    checks.setdefault(group, []).append((index, change))
                    representative.setdefault(group, channel)
        visible: dict[tuple[str, str, str, str], set[int]] = {}
        if checks:
            async with self.gateway.pool.connection() as conn:
                for group, items in checks.items():
                    unique = list({i: (i, c) for i, c in items}.values())
                    visible[group] = await self._visible(conn, representative[group], unique)
        for index, change in enumerate(changes):
            if (change.schema, change.table) == MESSAGES:
                self._database_broadcast(change)
                continue
            targets = wanted.get(index)
            if not targets:
                continue
            data = change_data(change)
            for channel, ids in targets:
                if change.type != "DELETE":
                    group = (change.schema, change.table, channel.role,
                             json.dumps(channel.claims, sort_keys=True))
                    if index not in visible.get(group, set()):
                        continue
                if channel.owner.channels.get(channel.topic) is not channel:
                    continue
                _delivered("postgres_changes")
                channel.owner.push(Message(channel.topic, "postgres_changes",
                                           {"ids": ids, "data": data}))

    def _database_broadcast(self, change: Change) -> None:
        row = change.record
        if change.type != "INSERT" or row is None or row.get("extension") != "broadcast":
            return
        topic, event = row.get("topic"), row.get("event")
        if not isinstance(topic, str) or not isinstance(event, str):
            return
        payload = row.get("payload")
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                return
        private = row.get("private") in {True, "t", "true"}
        self.publish(topic, private, event, payload, {"id": str(row.get("id"))})


def _delivered(kind: str, count: int = 1) -> None:
    if count and (metrics := telemetry.instruments()) is not None:
        metrics.realtime_deliveries.add(count, {"kind": kind})


def _send_broadcast(targets: list[Channel], event: str, payload: Any,
                    meta: dict[str, Any] | None) -> None:
    """Encode once per (topic, version), however many subscribers share it."""
    _delivered("broadcast", len(targets))
    frames: dict[tuple[str, str], str | bytes | None] = {}
    for target in targets:
        connection: Subscriber = target.owner
        key = (target.topic, connection.vsn)
        if key not in frames:
            frames[key] = broadcast_frame(target.topic, event, payload, meta, connection.vsn)
        frame = frames[key]
        if frame is not None:
            connection.enqueue(frame)
