"""The migration that replaces the broadcast trigger with the relay, applied to a database
the trigger was serving: what the trigger sent is not sent again, and an append whose
transaction is older than the migration but commits after it is not skipped."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from tools import settings
from tools.local.cluster import LocalCluster
from tools.local.migrations import apply_bootstrap, migrate

pytestmark = pytest.mark.integration

RELAY_MIGRATION = "_broadcast_relay.sql"


@pytest.fixture
def served_by_the_trigger(pg_cluster: LocalCluster, tmp_path: Path) -> Iterator[str]:
    """A new database migrated up to the last migration before the relay's (the trigger
    broadcasts); its URL as `postgres`."""
    name = f"cutover_{uuid4().hex[:12]}"
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        conn.execute(f"create database {name} owner postgres")
    apply_bootstrap(settings.local_url(pg_cluster.port, user=settings.LOCAL_SUPERUSER,
                                       dbname=name))
    older = tmp_path / "before-the-relay"
    older.mkdir()
    files = sorted(settings.migrations_dir().glob("*.sql"))
    relay = next(p for p in files if p.name.endswith(RELAY_MIGRATION))
    for path in files:
        if path.name < relay.name:
            shutil.copy(path, older / path.name)
    url = settings.local_url(pg_cluster.port, dbname=name)
    migrate(url, older)
    yield url
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        conn.execute(f"drop database {name} with (force)")


def append(conn: psycopg.Connection[Any], tenant: UUID, aggregate: UUID, version: int) -> UUID:
    event_id = uuid4()
    conn.execute(
        "insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,"
        " event_type, payload) values (%s, %s, 'inventory.item', %s, %s,"
        " 'inventory.stock_received', '{}')", (event_id, tenant, aggregate, version))
    return event_id


def messages_per_event(conn: psycopg.Connection[Any], tenant: UUID) -> dict[UUID, int]:
    rows = conn.execute(
        "select (payload ->> 'event_id')::uuid, count(*) from realtime.messages"
        " where topic like %s group by 1", (f"intent:%:{tenant}%",)).fetchall()
    return {row[0]: int(row[1]) for row in rows}


def test_the_cut_over_sends_nothing_twice_and_skips_no_late_commit(
    served_by_the_trigger: str,
) -> None:
    url, tenant, item, late_item = served_by_the_trigger, uuid4(), uuid4(), uuid4()
    with psycopg.connect(url, autocommit=True) as conn, psycopg.connect(url) as late:
        late.execute("select pg_current_xact_id()")  # older than the events below
        sent = [append(conn, tenant, item, 1), append(conn, tenant, item, 2)]
        assert messages_per_event(conn, tenant) == dict.fromkeys(sent, 2)  # by the trigger
        # Migrated while `late` is open: it appends afterwards, under its older id.
        applied = migrate(url, settings.migrations_dir()).applied
        assert any(name.endswith(RELAY_MIGRATION) for name in applied)
        held = append(late, tenant, late_item, 1)
        late.commit()
        after = append(conn, tenant, item, 3)
        assert messages_per_event(conn, tenant) == dict.fromkeys(sent, 2)  # no trigger now
        relayed = 1
        while relayed:
            row = conn.execute("select relayed from intent.relay_broadcasts()").fetchone()
            relayed = int(row[0]) if row else 0
        assert messages_per_event(conn, tenant) == dict.fromkeys([*sent, held, after], 2)
        order = [r[0] for r in conn.execute(
            "select event_id from intent.events where tenant_id = %s"
            " order by transaction_id, position", (tenant,)).fetchall()]
    assert order == [held, *sent, after]  # the late commit sorts before what was sent
