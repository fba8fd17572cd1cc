"""Projection SQL without a database: what a table's DDL contains, that names are checked
again before rendering, that output is deterministic, and how the migration generator
treats each kind of metadata change."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from projections import access_sql, ddl, migration_state, sql
from projections.metadata import Column, Index, Projection, SqlFunction, Table
from projections.shapes import canonical_sql
from projections.shop import catalog as app_catalog
from tests.support.projections import GENERATED_AT, SHELF_COLUMNS, generated, shelves
from tools import settings
from tools.cli.generate import check_projections as run_check
from tools.cli.generate import generate_projections as run_generate
from tools.local.migrations import split_sql

NOW = GENERATED_AT
LATER = datetime(2030, 1, 2, 3, 5, 0, tzinfo=UTC)


# -- table DDL -----------------------------------------------------------------------------


def test_table_ddl_declares_columns_then_guard_columns_then_the_primary_key() -> None:
    create = ddl.table_ddl(shelves(), shelves().tables[0])[0]
    parts = ("tenant_id UUID NOT NULL", "shelf_id", "label TEXT",
             "count BIGINT DEFAULT 0 NOT NULL", "event_txid BIGINT NOT NULL",
             "event_position BIGINT NOT NULL", "PRIMARY KEY (tenant_id, shelf_id)")
    order = [create.index(part) for part in parts]
    assert order == sorted(order)
    assert create.startswith("CREATE TABLE public.shelves (")


def test_table_ddl_forces_rls_and_grants_select_only_to_readers() -> None:
    projection = shelves(readers=("authenticated", "service_role"))
    statements = ddl.table_ddl(projection, projection.tables[0])
    assert "ALTER TABLE public.shelves ENABLE ROW LEVEL SECURITY" in statements
    assert "ALTER TABLE public.shelves FORCE ROW LEVEL SECURITY" in statements
    policies = [s for s in statements if s.startswith("CREATE POLICY")]
    # service_role bypasses RLS: only authenticated gets a (tenant) policy.
    assert policies == [
        "CREATE POLICY authenticated_tenant_read ON public.shelves AS PERMISSIVE FOR SELECT "
        "TO authenticated USING (tenant_id = (SELECT intent.current_tenant_id()))"
    ]
    revoke = statements.index(
        "REVOKE ALL ON TABLE public.shelves FROM public, anon, authenticated, service_role")
    grant = statements.index("GRANT SELECT ON TABLE public.shelves TO authenticated, service_role")
    assert revoke < grant
    # The runtime writes rows and does nothing else (no TRUNCATE, no DDL).
    writer = statements.index(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.shelves TO intent_worker")
    assert revoke < writer
    assert not any("PUBLICATION" in s for s in statements)


def test_realtime_tables_join_the_publication_and_twins_may_stay_out() -> None:
    projection = shelves(realtime=True)
    table = projection.tables[0]
    assert ddl.table_ddl(projection, table)[-1] == (
        "ALTER PUBLICATION supabase_realtime ADD TABLE public.shelves")
    twin = ddl.table_ddl(projection, table, physical_name="shelves__rebuild", realtime=False)
    assert not any("PUBLICATION" in s for s in twin)


def test_a_twin_has_the_same_shape_under_its_own_names() -> None:
    projection = shelves(indexes=(Index(columns=("tenant_id", "label")),))
    table = projection.tables[0]
    live = ddl.table_ddl(projection, table)
    twin = ddl.table_ddl(projection, table, physical_name="shelves__rebuild")
    assert [s.replace("shelves__rebuild", "shelves") for s in twin] == live
    assert "CREATE INDEX shelves__rebuild_tenant_id_label_idx ON public.shelves__rebuild" \
        "(tenant_id, label)" in twin
    renamed = ddl.rename_table(projection, table, from_name="shelves__rebuild", to_name="shelves")
    assert renamed == [
        "ALTER TABLE public.shelves__rebuild RENAME TO shelves",
        "ALTER TABLE public.shelves RENAME CONSTRAINT shelves__rebuild_pkey TO shelves_pkey",
        "ALTER INDEX public.shelves__rebuild_tenant_id_label_idx RENAME TO "
        "shelves_tenant_id_label_idx",
    ]


def test_defaults_render_as_literals_or_the_function_call() -> None:
    columns = (
        *SHELF_COLUMNS,
        Column(name="note", type="text", default="it's; drop table x"),
        Column(name="seen", type="boolean", nullable=False, default=True),
        Column(name="ratio", type="double precision", default=0.5),
        Column(name="at", type="timestamptz", default=SqlFunction.NOW),
        Column(name="ref", type="uuid", default=SqlFunction.GEN_RANDOM_UUID),
    )
    create = ddl.table_ddl(shelves(columns=columns), shelves(columns=columns).tables[0])[0]
    assert "note TEXT DEFAULT 'it''s; drop table x'" in create
    assert "seen BOOLEAN DEFAULT TRUE NOT NULL" in create
    assert "ratio DOUBLE PRECISION DEFAULT 0.5" in create
    assert "at TIMESTAMPTZ DEFAULT NOW()" in create
    assert "ref UUID DEFAULT GEN_RANDOM_UUID()" in create
    # One statement, whatever the literal holds.
    assert len(split_sql(create + ";")) == 1


def test_reserved_words_are_quoted_and_other_names_are_not() -> None:
    columns = (*SHELF_COLUMNS, Column(name="order", type="integer"))
    create = ddl.table_ddl(shelves(columns=columns), shelves(columns=columns).tables[0])[0]
    assert '"order" INT' in create
    assert '"' not in create.replace('"order"', "")


@pytest.mark.parametrize(
    "name",
    ["Shelves", "a-b", "x; drop table y", "", "1abc", "a" * 64, 'x"y', "naïve", "a b"],
)
def test_the_renderer_refuses_names_that_are_not_plain_identifiers(name: str) -> None:
    with pytest.raises(sql.UnsafeIdentifierError):
        sql.identifier(name)
    with pytest.raises(sql.UnsafeIdentifierError):
        ddl.table_ddl(shelves(), shelves().tables[0], physical_name=name)


def test_the_renderer_refuses_a_bad_name_that_slipped_past_the_metadata() -> None:
    # model_construct skips validation: the renderer must still refuse.
    bad = Column.model_construct(name="x); drop table y; --", type="text", nullable=True,
                                 default=None)
    with pytest.raises(sql.UnsafeIdentifierError):
        sql.add_column("public", "shelves", bad)


def test_projection_ddl_is_deterministic_and_ignores_reader_order() -> None:
    one = ddl.projection_ddl(shelves(readers=("authenticated", "anon")))
    two = ddl.projection_ddl(shelves(readers=("anon", "authenticated")))
    assert one == two == ddl.projection_ddl(shelves(readers=("authenticated", "anon")))
    for projection in app_catalog:
        assert ddl.projection_ddl(projection) == ddl.projection_ddl(projection)


def test_a_projection_in_its_own_schema_creates_it_and_lets_readers_use_it() -> None:
    statements = ddl.projection_ddl(shelves(schema_name="reads", readers=("anon",)))
    assert statements[:2] == ["CREATE SCHEMA IF NOT EXISTS reads",
                              "GRANT USAGE ON SCHEMA reads TO anon, intent_worker"]
    assert statements[2].startswith("CREATE TABLE reads.shelves (")


def test_canonical_sql_reads_postgres_spellings_as_ours() -> None:
    assert canonical_sql("'placed'::text") == canonical_sql("'placed'")
    assert canonical_sql("now()") == canonical_sql("NOW()")
    assert canonical_sql("'-1'::integer") == canonical_sql("-1")
    assert canonical_sql(
        "(tenant_id = ( SELECT intent.current_tenant_id() AS current_tenant_id))"
    ) == canonical_sql(access_sql.tenant_filter_sql())
    assert canonical_sql("true") != canonical_sql("false")


# -- generate ------------------------------------------------------------------------------


def test_generation_is_deterministic(tmp_path: Path) -> None:
    one = generated(tmp_path / "one", shelves())
    two = generated(tmp_path / "two", shelves())
    assert one == two


def test_nothing_is_written_when_only_handler_reads_mode_or_version_change(
    tmp_path: Path,
) -> None:
    generated(tmp_path, shelves())
    changed = shelves(version=7, mode="inline", handler=lambda e, p: [],
                      reads=("inventory.stock_received", "inventory.stock_reserved"))
    result = migration_state.generate(tmp_path, [changed], now=LATER)
    assert result.written is None
    assert len(migration_state.generated_files(tmp_path)) == 1


def test_an_added_column_and_index_become_alter_and_create_index(tmp_path: Path) -> None:
    generated(tmp_path, shelves())
    v2 = shelves(columns=(*SHELF_COLUMNS, Column(name="aisle", type="text")),
                 indexes=(Index(columns=("tenant_id", "aisle")),))
    text = generated(tmp_path, v2, LATER)
    statements = [s.text for s in split_sql(text)]
    assert statements == [
        "ALTER TABLE public.shelves ADD COLUMN IF NOT EXISTS aisle TEXT",
        "CREATE INDEX IF NOT EXISTS shelves_tenant_id_aisle_idx ON public.shelves"
        "(tenant_id, aisle)",
    ]
    assert migration_state.generated_files(tmp_path)[-1].name == "20300102030500_projections.sql"


def test_reader_and_realtime_changes_become_policies_grants_and_publication(
    tmp_path: Path,
) -> None:
    generated(tmp_path, shelves())
    v2 = shelves(readers=("anon", "authenticated"), realtime=True)
    statements = [s.text for s in split_sql(generated(tmp_path, v2, LATER))]
    assert statements == [
        "CREATE POLICY anon_tenant_read ON public.shelves AS PERMISSIVE FOR SELECT TO anon "
        "USING (tenant_id = (SELECT intent.current_tenant_id()))",
        "GRANT SELECT ON TABLE public.shelves TO anon",
        "ALTER PUBLICATION supabase_realtime ADD TABLE public.shelves",
    ]
    v3 = shelves(readers=("service_role",), realtime=False)
    statements = [s.text for s in split_sql(
        generated(tmp_path, v3, datetime(2030, 1, 3, tzinfo=UTC)))]
    assert statements == [
        "DROP POLICY IF EXISTS anon_tenant_read ON public.shelves",
        "DROP POLICY IF EXISTS authenticated_tenant_read ON public.shelves",
        "REVOKE SELECT ON TABLE public.shelves FROM anon",
        "REVOKE SELECT ON TABLE public.shelves FROM authenticated",
        "GRANT SELECT ON TABLE public.shelves TO service_role",
        "ALTER PUBLICATION supabase_realtime DROP TABLE public.shelves",
    ]


@pytest.mark.parametrize(
    ("v2", "named"),
    [
        (shelves(columns=SHELF_COLUMNS[:3]), "column count"),
        (shelves(columns=(*SHELF_COLUMNS[:2], Column(name="label", type="integer"),
                          SHELF_COLUMNS[3])), "column label is text"),
        (shelves(columns=(*SHELF_COLUMNS[:2], Column(name="label", type="text", nullable=False),
                          SHELF_COLUMNS[3])), "column label is nullable"),
        (shelves(primary_key=("tenant_id",)), "primary key"),
        (shelves(name="racks", tables=(Table(name="racks", columns=SHELF_COLUMNS,
                                             primary_key=("tenant_id", "shelf_id")),)),
         "public.shelves"),
    ],
    ids=["drop-column", "type-change", "not-null", "primary-key", "drop-table"],
)
def test_destructive_changes_are_refused_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], v2: Projection, named: str
) -> None:
    generated(tmp_path, shelves())
    assert run_generate(tmp_path, [v2]) == 1
    err = capsys.readouterr().err
    assert "destructive" in err
    assert named in err
    assert "--allow-destructive" in err
    assert len(migration_state.generated_files(tmp_path)) == 1
    text = generated(tmp_path, v2, LATER, allow_destructive=True)
    assert split_sql(text)
    assert migration_state.check(tmp_path, [v2]).ok


def test_a_not_null_column_without_default_is_refused_even_when_destructive_is_allowed(
    tmp_path: Path,
) -> None:
    generated(tmp_path, shelves())
    v2 = shelves(columns=(*SHELF_COLUMNS, Column(name="aisle", type="text", nullable=False)))
    with pytest.raises(migration_state.RefusedError) as refused:
        migration_state.generate(tmp_path, [v2], allow_destructive=True, now=LATER)
    message = str(refused.value)
    assert "aisle" in message
    assert "default" in message
    assert "rebuild" in message
    # With a default it is an ordinary change.
    v3 = shelves(columns=(*SHELF_COLUMNS,
                          Column(name="aisle", type="text", nullable=False, default="a")))
    assert "ADD COLUMN IF NOT EXISTS aisle TEXT DEFAULT 'a' NOT NULL" in generated(
        tmp_path, v3, LATER)


def test_a_new_table_in_a_later_migration_gets_its_full_ddl(tmp_path: Path) -> None:
    generated(tmp_path, shelves())
    extra = Table(name="shelf_notes", columns=SHELF_COLUMNS, primary_key=("tenant_id", "shelf_id"))
    v2 = shelves(tables=(*shelves().tables, extra))
    statements = [s.text for s in split_sql(generated(tmp_path, v2, LATER))]
    assert statements == ddl.table_ddl(v2, extra)


# -- check ---------------------------------------------------------------------------------


def test_the_repository_migrations_match_the_app_metadata() -> None:
    """`./run test` fails here when someone changed projections/ without generating."""
    result = migration_state.check(settings.migrations_dir(), list(app_catalog))
    assert result.ok, result.message
    assert run_check(settings.migrations_dir(), list(app_catalog)) == 0


def test_check_names_a_column_added_to_the_metadata_without_a_migration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in migration_state.generated_files(settings.migrations_dir()):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    stock = app_catalog.get("stock_levels")
    table = stock.tables[0]
    edited = stock.model_copy(update={"tables": (table.model_copy(update={
        "columns": (*table.columns, Column(name="bin", type="text"))}),)})
    layouts = [edited if p.name == "stock_levels" else p for p in app_catalog]
    result = migration_state.check(tmp_path, layouts)
    assert not result.ok
    assert "public.stock_levels: column bin (text) is missing" in result.message
    assert run_check(tmp_path, layouts) == 1
    assert "intent generate" in capsys.readouterr().err


def test_check_fails_without_any_generated_migration(tmp_path: Path) -> None:
    result = migration_state.check(tmp_path, [shelves()])
    assert not result.ok
    assert "public.shelves" in result.message


def test_check_refuses_a_hand_edited_state_block(tmp_path: Path) -> None:
    text = generated(tmp_path, shelves())
    path = migration_state.generated_files(tmp_path)[-1]
    path.write_text(text.replace('"realtime": false', '"realtime": true'), encoding="utf-8")
    result = migration_state.check(tmp_path, [shelves()])
    assert not result.ok
    assert "sha256" in result.message
    with pytest.raises(migration_state.StateError):
        migration_state.generate(tmp_path, [shelves()], now=LATER)


def test_the_recorded_state_reads_back_as_the_same_layout(tmp_path: Path) -> None:
    columns = (*SHELF_COLUMNS, Column(name="at", type="timestamptz", default=SqlFunction.NOW),
               Column(name="ratio", type="numeric", default=1.5))
    projection = shelves(columns=columns, readers=("anon", "authenticated"), realtime=True)
    generated(tmp_path, projection)
    stored = migration_state.latest(tmp_path)
    assert stored is not None
    assert stored.state is not None
    (layout,) = migration_state.layouts_of(stored.state)
    assert layout.tables == projection.tables
    assert ddl.projection_ddl(layout) == ddl.projection_ddl(projection)


def test_no_projections_and_no_migrations_is_up_to_date(tmp_path: Path) -> None:
    assert migration_state.check(tmp_path, []).ok
    assert migration_state.generate(tmp_path, [], now=NOW).written is None
    assert migration_state.generated_files(tmp_path) == []
