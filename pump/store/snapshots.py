"""Snapshots in PostgreSQL: an aggregate's state after some version, kept per version."""

from __future__ import annotations

import json
from collections.abc import Sequence

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.contracts import Snapshot, StreamId
from pump.store.connections import Conn, connection


class PostgresSnapshotStore:
    def __init__(self, pool: AsyncConnectionPool[Conn]):
        self._pool = pool

    async def save(self, snapshot: Snapshot, *, conn: Conn | None = None) -> None:
        """Store a snapshot; saving the same version again keeps the first (it is the same
        state, unless the code changed, and then the schema version tells them apart)."""
        stream = snapshot.stream
        async with connection(self._pool, conn) as c:
            await c.execute(
                "insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,"
                " schema_version, state) values (%s, %s, %s, %s, %s, %s::jsonb)"
                " on conflict (tenant_id, aggregate_type, aggregate_id, version) do nothing",
                (
                    stream.tenant_id, stream.aggregate_type, stream.aggregate_id,
                    snapshot.version, snapshot.schema_version,
                    json.dumps(snapshot.state, separators=(",", ":")),
                ),
            )

    async def save_many(self, snapshots: Sequence[Snapshot], *, conn: Conn | None = None) -> None:
        """`save` for several snapshots in one statement (same first-one-kept rule)."""
        if not snapshots:
            return
        rows = [
            {
                "tenant_id": str(s.stream.tenant_id),
                "aggregate_type": s.stream.aggregate_type,
                "aggregate_id": str(s.stream.aggregate_id),
                "version": s.version,
                "schema_version": s.schema_version,
                "state": s.state,
            }
            for s in snapshots
        ]
        async with connection(self._pool, conn) as c:
            await c.execute(
                "insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,"
                " schema_version, state) select * from jsonb_to_recordset(%s::jsonb) as s("
                "tenant_id uuid, aggregate_type text, aggregate_id uuid, version int,"
                " schema_version int, state jsonb)"
                " on conflict (tenant_id, aggregate_type, aggregate_id, version) do nothing",
                (json.dumps(rows, separators=(",", ":")),),
            )

    async def latest_many(
        self, streams: Sequence[StreamId], *, conn: Conn | None = None
    ) -> dict[StreamId, Snapshot]:
        """The newest snapshot of each stream that has one, in one query."""
        if not streams:
            return {}
        async with connection(self._pool, conn) as c, c.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "select distinct on (s.tenant_id, s.aggregate_type, s.aggregate_id)"
                " s.tenant_id, s.aggregate_type, s.aggregate_id, s.version, s.schema_version,"
                " s.state, s.created_at"
                " from unnest(%s::uuid[], %s::text[], %s::uuid[]) as w(t, a, i)"
                " join intent.snapshots s"
                "   on s.tenant_id = w.t and s.aggregate_type = w.a and s.aggregate_id = w.i"
                " order by s.tenant_id, s.aggregate_type, s.aggregate_id, s.version desc",
                (
                    [s.tenant_id for s in streams],
                    [s.aggregate_type for s in streams],
                    [s.aggregate_id for s in streams],
                ),
            )
            rows = await cur.fetchall()
        found: dict[StreamId, Snapshot] = {}
        for row in rows:
            stream = StreamId(
                tenant_id=row["tenant_id"],
                aggregate_type=row["aggregate_type"],
                aggregate_id=row["aggregate_id"],
            )
            found[stream] = Snapshot(
                stream=stream,
                version=row["version"],
                schema_version=row["schema_version"],
                state=row["state"],
                created_at=row["created_at"],
            )
        return found

    async def latest(
        self, stream: StreamId, *, at_or_below: int | None = None, conn: Conn | None = None
    ) -> Snapshot | None:
        """The newest snapshot, or the newest at or below a version (for as-of loads)."""
        async with connection(self._pool, conn) as c, c.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "select version, schema_version, state, created_at from intent.snapshots"
                " where tenant_id = %s and aggregate_type = %s and aggregate_id = %s"
                " and version <= coalesce(%s, 2147483647)"
                " order by version desc limit 1",
                (stream.tenant_id, stream.aggregate_type, stream.aggregate_id, at_or_below),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return Snapshot(
            stream=stream,
            version=row["version"],
            schema_version=row["schema_version"],
            state=row["state"],
            created_at=row["created_at"],
        )

    async def delete_from(
        self, stream: StreamId, version: int, *, conn: Conn | None = None
    ) -> int:
        """Drop snapshots at or above a version (a snapshot found wrong by verification)."""
        async with connection(self._pool, conn) as c:
            cur = await c.execute(
                "delete from intent.snapshots where tenant_id = %s and aggregate_type = %s"
                " and aggregate_id = %s and version >= %s",
                (stream.tenant_id, stream.aggregate_type, stream.aggregate_id, version),
            )
            return cur.rowcount
