"""Generated projection SQL against the real PostgreSQL: the repository's migration made the
app's tables (the session fixture applied it), a generated migration applies to a fresh
schema and gives the RLS it promises, and a second generated migration applies on top of the
first one with rows already in the table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from projections import migration_state
from projections.introspection import drift
from projections.metadata import Column, Index
from projections.shop import catalog as app_catalog
from tests.support.projections import SHELF_COLUMNS, generated, shelves
from tests.support.tenants import TENANT_A, TENANT_B, claims_json
from tools.local.migrations import split_sql

pytestmark = pytest.mark.integration

V1_AT = datetime(2030, 1, 1, tzinfo=UTC)
V2_AT = datetime(2030, 1, 2, tzinfo=UTC)


@pytest.fixture
def schema(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """A schema of this test's own in the shared database, dropped afterwards."""
    name = f"proj_{uuid4().hex[:12]}"
    yield name
    conn.execute(f"drop schema if exists {name} cascade".encode())


def apply(conn: psycopg.Connection[Any], text: str) -> None:
    """As the migration runner does: every statement, one transaction, as `postgres`."""
    with conn.transaction():
        for statement in split_sql(text):
            conn.execute(statement.text.encode())


def insert_shelf(conn: psycopg.Connection[Any], schema: str, tenant: UUID,
                 label: str | None = None) -> UUID:
    shelf = uuid4()
    conn.execute(
        f"insert into {schema}.shelves (tenant_id, shelf_id, label, event_txid, event_position)"
        " values (%s, %s, %s, 1, 1)".encode(),
        (tenant, shelf, label),
    )
    return shelf


def select_as(conn: psycopg.Connection[Any], role: str, sql_text: str,
              jwt: str | None = None) -> list[tuple[Any, ...]]:
    """One client request: the role and JWT claims for one transaction only."""
    with conn.transaction():
        conn.execute("select set_config('role', %s, true), "
                     "set_config('request.jwt.claims', %s, true)", (role, jwt or "{}"))
        return conn.execute(sql_text.encode()).fetchall()


def test_the_session_database_has_the_app_projections_as_their_metadata_says(
    conn: psycopg.Connection[Any],
) -> None:
    layouts = list(app_catalog)
    declared = {(p.schema_name, t.name) for p in layouts for t in p.tables}
    # Other tests may add projection tables of their own to public; only the app's count.
    found = [d for d in drift(conn, layouts) if (d.schema, d.table) in declared]
    assert found == [], [d.detail for d in found]
    published = conn.execute(
        "select tablename from pg_publication_tables where pubname = 'supabase_realtime' "
        "and schemaname = 'public' and tablename in ('stock_levels', 'order_summaries')"
    ).fetchall()
    assert published == [("stock_levels",)]


def test_a_generated_migration_applies_to_a_fresh_schema_with_tenant_rls(
    conn: psycopg.Connection[Any], schema: str, tmp_path: Path
) -> None:
    projection = shelves(schema, readers=("authenticated",), realtime=True,
                         indexes=(Index(columns=("tenant_id", "label")),))
    apply(conn, generated(tmp_path, projection, V1_AT))
    assert drift(conn, [projection]) == []

    mine = insert_shelf(conn, schema, TENANT_A, "a")
    insert_shelf(conn, schema, TENANT_B, "b")
    query = f"select shelf_id from {schema}.shelves"
    assert select_as(conn, "authenticated", query, claims_json(TENANT_A)) == [(mine,)]
    assert select_as(conn, "authenticated", query) == []  # no tenant claim: nothing
    for outsider in ("anon", "service_role"):  # not readers of this projection
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            select_as(conn, outsider, query)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        select_as(conn, "authenticated",
                  f"delete from {schema}.shelves returning shelf_id", claims_json(TENANT_A))
    in_publication = conn.execute(
        "select count(*) from pg_publication_tables where pubname = 'supabase_realtime' "
        "and schemaname = %s and tablename = 'shelves'", (schema,)).fetchone()
    assert in_publication == (1,)


def test_a_second_generated_migration_applies_on_top_of_the_first_with_rows_present(
    conn: psycopg.Connection[Any], schema: str, tmp_path: Path
) -> None:
    v1 = shelves(schema)
    apply(conn, generated(tmp_path, v1, V1_AT))
    existing = insert_shelf(conn, schema, TENANT_A, "old")

    v2 = shelves(
        schema,
        columns=(*SHELF_COLUMNS, Column(name="aisle", type="text"),
                 Column(name="zone", type="text", nullable=False, default="main")),
        indexes=(Index(columns=("tenant_id", "aisle")),),
        readers=("authenticated", "service_role"),
    )
    text = generated(tmp_path, v2, V2_AT)
    assert "CREATE TABLE" not in text
    apply(conn, text)
    assert drift(conn, [v2]) == []
    assert drift(conn, [v1]) != []  # the database really changed
    row = conn.execute(f"select label, aisle, zone from {schema}.shelves where shelf_id = %s"
                       .encode(), (existing,)).fetchone()
    assert row == ("old", None, "main")
    assert select_as(conn, "service_role", f"select count(*) from {schema}.shelves") == [(1,)]
    assert migration_state.check(tmp_path, [v2]).ok


def test_an_anon_reader_sees_no_rows_without_a_tenant(
    conn: psycopg.Connection[Any], schema: str, tmp_path: Path
) -> None:
    projection = shelves(schema, readers=("anon", "authenticated"))
    apply(conn, generated(tmp_path, projection, V1_AT))
    insert_shelf(conn, schema, TENANT_A)
    assert select_as(conn, "anon", f"select shelf_id from {schema}.shelves") == []
