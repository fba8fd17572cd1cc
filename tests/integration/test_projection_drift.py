"""Drift and repair against the real PostgreSQL: hand changes to a projection table are each
reported, `repair --apply` removes the ones ALTER can fix, and what needs data or would drop
data is named instead of guessed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from click.testing import CliRunner

from projections import ddl
from projections.introspection import drift
from projections.metadata import Column, Index, Projection, Table
from tests.support.projections import no_ops
from tools.cli.projections import projections, run_drift, run_repair
from tools.local.cluster import free_port

pytestmark = pytest.mark.integration


def bins(schema: str) -> Projection:
    return Projection(
        name="bins",
        version=1,
        reads=("inventory.stock_received",),
        tables=(
            Table(
                name="bins",
                columns=(
                    Column(name="tenant_id", type="uuid", nullable=False),
                    Column(name="bin_id", type="uuid", nullable=False),
                    Column(name="label", type="text"),
                    Column(name="level", type="integer", nullable=False, default=0),
                ),
                primary_key=("tenant_id", "bin_id"),
                indexes=(Index(columns=("tenant_id", "label")),),
            ),
        ),
        readers=("authenticated",),
        realtime=True,
        schema_name=schema,
        handler=no_ops,
    )


@pytest.fixture
def layout(conn: psycopg.Connection[Any]) -> Iterator[Projection]:
    """The `bins` projection created from its DDL in a schema of this test's own."""
    projection = bins(f"drift_{uuid4().hex[:12]}")
    with conn.transaction():
        for statement in ddl.projection_ddl(projection):
            conn.execute(statement.encode())
    yield projection
    conn.execute(f"drop schema if exists {projection.schema_name} cascade".encode())


def run(conn: psycopg.Connection[Any], *statements: str) -> None:
    for statement in statements:
        conn.execute(statement.encode())


def kinds(conn: psycopg.Connection[Any], layout: Projection) -> list[str]:
    return [d.kind for d in drift(conn, [layout])]


def test_a_table_created_from_the_metadata_has_no_drift(
    conn: psycopg.Connection[Any], layout: Projection, database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert drift(conn, [layout]) == []
    assert run_drift(database_url, [layout], as_json=True) == 0
    assert json.loads(capsys.readouterr().out) == {"clean": True, "differences": []}


def test_hand_changes_are_each_reported_and_repair_apply_removes_them(
    conn: psycopg.Connection[Any], layout: Projection, database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    table = f"{layout.schema_name}.bins"
    run(
        conn,
        f"alter table {table} drop column label",  # drops its index too
        f"create index bins_level_by_hand on {table} (level)",
        f"alter table {table} disable row level security",
        f"drop policy authenticated_tenant_read on {table}",
        f"create policy everyone_reads on {table} for select to anon using (true)",
        f"grant select, insert on {table} to anon",
        f"alter publication supabase_realtime drop table {table}",
        f"alter table {table} alter column level drop default",
    )
    capsys.readouterr()
    assert run_drift(database_url, [layout], as_json=True) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] is False
    found = {(d["kind"], d["detail"].split(" ")[1]) for d in report["differences"]}
    assert {
        ("missing_column", "label"),
        ("default", "level"),
        ("missing_index", "bins_tenant_id_label_idx"),
        ("extra_index", "bins_level_by_hand"),
        ("missing_policy", "authenticated_tenant_read"),
        ("extra_policy", "everyone_reads"),
        ("grants", "has"),
    } <= found
    assert {"rls_disabled", "publication"} <= {d["kind"] for d in report["differences"]}
    assert all(d["table"] == table for d in report["differences"])

    assert run_repair(database_url, [layout], apply=True) == 0
    out = capsys.readouterr().out
    assert f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;" in out
    assert f"ALTER PUBLICATION supabase_realtime ADD TABLE {table};" in out
    assert "no drift after repair" in out
    assert drift(conn, [layout]) == []


def test_repair_without_apply_prints_the_sql_and_changes_nothing(
    conn: psycopg.Connection[Any], layout: Projection, database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    table = f"{layout.schema_name}.bins"
    run(conn, f"alter table {table} no force row level security")
    assert run_repair(database_url, [layout], apply=False) == 1
    captured = capsys.readouterr()
    assert f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;" in captured.out
    assert "--apply" in captured.err
    assert kinds(conn, layout) == ["rls_not_forced"]


def test_changes_that_need_data_are_left_to_a_rebuild(
    conn: psycopg.Connection[Any], layout: Projection, database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    table = f"{layout.schema_name}.bins"
    run(conn, f"alter table {table} alter column label type integer using null")
    # The metadata now also wants a NOT NULL column without default: rows have no value.
    declared = layout.tables[0]
    wider = layout.model_copy(update={"tables": (declared.model_copy(update={"columns": (
        *declared.columns, Column(name="size", type="integer", nullable=False))}),)})
    differences = drift(conn, [wider])
    assert {(d.kind, d.severity) for d in differences} == {
        ("column_type", "rebuild"), ("missing_column", "rebuild")}
    assert all(d.statements == () for d in differences)
    assert run_repair(database_url, [wider], apply=True) == 1
    err = capsys.readouterr().err
    assert "intent projections rebuild bins" in err
    assert "column label is integer" in err
    assert "column size" in err
    # Nothing was guessed: the column keeps its hand-made type.
    assert kinds(conn, layout) == ["column_type"]


def test_an_extra_column_is_dropped_only_when_destructive_repair_is_allowed(
    conn: psycopg.Connection[Any], layout: Projection, database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    table = f"{layout.schema_name}.bins"
    run(conn, f"alter table {table} add column notes text")
    assert run_repair(database_url, [layout], apply=True) == 1
    assert "destructive, skipped" in capsys.readouterr().err
    assert kinds(conn, layout) == ["extra_column"]
    assert run_repair(database_url, [layout], apply=True, allow_destructive=True) == 0
    assert drift(conn, [layout]) == []


def test_rebuild_twins_are_ignored_but_a_table_of_an_undeclared_projection_is_reported(
    conn: psycopg.Connection[Any], layout: Projection,
) -> None:
    table = layout.tables[0]
    for twin in ("bins__rebuild", "bins__old"):
        run(conn, *ddl.table_ddl(layout, table, physical_name=twin, realtime=False))
    assert drift(conn, [layout]) == []
    gone = bins(layout.schema_name).model_copy(update={"name": "crates"})
    run(conn, *ddl.table_ddl(gone, table.model_copy(update={"name": "crates"})))
    (extra,) = drift(conn, [layout])
    assert (extra.kind, extra.table, extra.projection, extra.severity) == (
        "extra_table", "crates", "crates", "destructive")


def test_a_loosened_policy_is_reported_and_recreated(
    conn: psycopg.Connection[Any], layout: Projection, database_url: str,
) -> None:
    table = f"{layout.schema_name}.bins"
    run(conn, f"alter policy authenticated_tenant_read on {table} using (true)")
    (difference,) = drift(conn, [layout])
    assert difference.kind == "policy_definition"
    assert "using (TRUE)" in difference.detail
    assert run_repair(database_url, [layout], apply=True) == 0
    assert drift(conn, [layout]) == []


def test_an_unreachable_database_is_an_environment_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"postgresql://postgres:postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=2"
    assert run_drift(url, [bins("public")], as_json=False) == 3
    assert run_repair(url, [bins("public")], apply=True) == 3
    assert "cannot reach the database" in capsys.readouterr().err
    result = CliRunner().invoke(projections, ["drift", "--database-url", url, "--json"])
    assert result.exit_code == 3


def test_every_schema_command_has_help() -> None:
    for name in ("drift", "repair"):
        result = CliRunner().invoke(projections, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output
