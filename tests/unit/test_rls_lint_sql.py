"""The RLS lint in SQL mode: migrations replayed into the model, then the rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from projections.shop import catalog
from tools import settings
from tools.checks.rls import (
    LintReport,
    called_functions,
    declared_anon_readers,
    lint,
    load_sql,
    reads_user_metadata,
    references_tenant,
)
from tools.cli.rls import rls

SCHEMA = "app"

# A tenant table done right: the baseline every test below breaks in one way.
GOOD = """
create table app.items (id uuid primary key, tenant_id uuid not null, name text);
alter table app.items enable row level security;
alter table app.items force row level security;
create policy items_read on app.items for select to authenticated
  using (tenant_id = (select intent.current_tenant_id()));
revoke all on app.items from public, anon, authenticated;
grant select on app.items to authenticated;
"""


def app_anon_readers() -> set[tuple[str, str]]:
    return declared_anon_readers(catalog)


def run(sql: str, *, readers: set[tuple[str, str]] | None = None) -> LintReport:
    return lint(load_sql([("test.sql", sql)]), schemas=(SCHEMA,), anon_readers=readers)


def codes(report: LintReport) -> set[tuple[str, str]]:
    return {(f.code, f.subject) for f in report.errors}


def test_the_baseline_tenant_table_is_clean() -> None:
    report = run(GOOD)
    assert report.findings == ()
    assert report.tables == 1


def test_the_repos_own_migrations_lint_clean() -> None:
    files = sorted(settings.migrations_dir().glob("*.sql"))
    model = load_sql([(p.name, p.read_text(encoding="utf-8")) for p in files])
    report = lint(model, anon_readers=app_anon_readers())
    assert [f.as_json() for f in report.findings] == []
    assert {("intent", "events"), ("intent", "snapshots"), ("intent", "commands")} <= set(
        model.relations
    )
    assert model.relations[("intent", "events")].rls_forced


def test_a_tenant_table_without_any_policy_is_found() -> None:
    lines = [line for line in GOOD.splitlines() if "policy" not in line and "using" not in line]
    report = run("\n".join(lines))
    assert codes(report) == {("no-tenant-policy", "app.items")}
    (finding,) = report.errors
    assert finding.role == "authenticated"
    grant_line = next(i for i, line in enumerate(lines, 1) if line.startswith("grant"))
    assert finding.origin == f"test.sql:{grant_line}"  # the grant that gave the role access


def test_rls_enabled_but_not_forced_is_found() -> None:
    report = run(GOOD.replace("alter table app.items force row level security;", ""))
    assert codes(report) == {("rls-not-forced", "app.items")}


def test_rls_never_enabled_is_found_even_without_grants() -> None:
    sql = "create table app.t (tenant_id uuid not null);"
    assert codes(run(sql)) == {("rls-disabled", "app.t")}


def test_rls_disabled_again_by_a_later_migration_is_found() -> None:
    report = run(GOOD + "alter table only app.items disable row level security;")
    assert ("rls-disabled", "app.items") in codes(report)


def test_a_grant_to_anon_is_found() -> None:
    report = run(GOOD + "grant select on table app.items to anon;")
    assert ("anon-grant", "app.items") in codes(report)
    # anon now reads with no policy of its own either
    assert ("no-tenant-policy", "app.items") in codes(report)


def test_a_grant_to_public_reaches_anon() -> None:
    report = run(GOOD + "grant select on app.items to public;")
    assert ("anon-grant", "app.items") in codes(report)


def test_select_for_anon_is_allowed_on_declared_reader_tables_only() -> None:
    sql = GOOD.replace("to authenticated\n", "to authenticated, anon\n") + (
        "grant select on app.items to anon;"
    )
    assert codes(run(sql, readers={("app", "items")})) == set()
    assert ("anon-grant", "app.items") in codes(run(sql))
    # a rebuild twin of a declared table is declared too
    twin = sql.replace("app.items", "app.items__rebuild")
    assert codes(run(twin, readers={("app", "items")})) == set()
    # but readers read: anything beyond SELECT is still a finding
    writes = sql + "grant insert on app.items to anon;"
    assert ("anon-grant", "app.items") in codes(run(writes, readers={("app", "items")}))


def test_revoking_a_table_privilege_also_revokes_its_column_grants() -> None:
    sql = GOOD + "grant select (id, name) on app.items to anon;"
    assert ("anon-grant", "app.items") in codes(run(sql))
    assert codes(run(sql + "revoke select on app.items from anon;")) == set()
    partly = sql + "revoke select (id) on app.items from anon;"
    assert ("anon-grant", "app.items") in codes(run(partly))


def test_a_permissive_policy_without_tenant_opens_every_tenant() -> None:
    sql = GOOD + (
        "create policy items_all on app.items as permissive for select to public using (true);"
    )
    report = run(sql)
    assert codes(report) == {("policy-not-tenant-scoped", "app.items policy items_all")}
    fenced = sql + (
        "create policy items_fence on app.items as restrictive for all to authenticated"
        " using (tenant_id = (select intent.current_tenant_id()));"
    )
    assert codes(run(fenced)) == set()


def test_a_write_policy_is_judged_by_its_with_check() -> None:
    sql = GOOD + (
        "grant insert on app.items to authenticated;"
        "create policy items_add on app.items for insert to authenticated with check (true);"
    )
    assert codes(run(sql)) == {("policy-not-tenant-scoped", "app.items policy items_add")}
    fixed = sql.replace(
        "with check (true)", "with check (tenant_id = (select intent.current_tenant_id()))"
    )
    assert codes(run(fixed)) == set()


def test_truncate_for_a_client_is_found() -> None:
    report = run(GOOD + "grant truncate on app.items to authenticated;")
    assert codes(report) == {("truncate-granted", "app.items")}


@pytest.mark.parametrize(
    "condition",
    [
        "tenant_id = (auth.jwt() -> 'user_metadata' ->> 'tenant_id')::uuid",
        "tenant_id = (auth.jwt() #>> '{user_metadata,tenant_id}')::uuid",
        "tenant_id = (auth.jwt() -> 'user_' || 'metadata' ->> 'tenant_id')::uuid",
        "tenant_id = (current_setting('request.jwt.claims', true)::jsonb"
        " -> 'USER_METADATA' ->> 't')::uuid",
        "tenant_id in (select (raw_user_meta_data ->> 't')::uuid from auth.users)",
        "tenant_id = (auth.jwt() -> U&'user\\005fmetadata' ->> 't')::uuid",
    ],
)
def test_a_policy_reading_user_metadata_is_found(condition: str) -> None:
    sql = GOOD.replace(
        "using (tenant_id = (select intent.current_tenant_id()))", f"using ({condition})"
    )
    assert ("user-metadata", "app.items policy items_read") in codes(run(sql))


def test_a_policy_calling_a_function_that_reads_user_metadata_is_found() -> None:
    helper = (
        "create function app.my_tenant() returns uuid language sql stable as $$"
        " select (auth.jwt() -> 'user_metadata' ->> 'tenant_id')::uuid $$;"
        "revoke all on function app.my_tenant() from public;"
    )
    sql = helper + GOOD.replace("(select intent.current_tenant_id())", "app.my_tenant()")
    report = run(sql)
    assert codes(report) == {("user-metadata", "app.items policy items_read")}
    assert "app.my_tenant" in report.errors[0].message


def test_a_new_function_is_executable_by_anon_until_revoked() -> None:
    create = "create or replace function app.f(x int) returns int language sql as 'select x';"
    assert {f.code for f in run(create).errors} == {"anon-function"}
    revoked = create + "revoke all on function app.f(int) from public;"
    assert run(revoked).errors == []
    granted = revoked + "grant execute on function app.f(integer) to anon;"
    assert {f.code for f in run(granted).errors} == {"anon-function"}
    trigger = "create function app.t() returns trigger language plpgsql as $$begin end$$;"
    assert run(trigger).errors == []


def test_anon_may_execute_what_the_policies_of_its_declared_tables_call() -> None:
    sql = GOOD.replace("to authenticated\n", "to authenticated, anon\n").replace(
        "intent.current_tenant_id()", "intent.request_tenant()"
    ) + (
        "grant select on app.items to anon;"
        "create function intent.request_tenant() returns uuid language sql as 'select null';"
        "revoke all on function intent.request_tenant() from public;"
        "grant execute on function intent.request_tenant() to anon;"
    )
    report = lint(load_sql([("t.sql", sql)]), schemas=(SCHEMA, "intent"),
                  anon_readers={("app", "items")})
    assert report.errors == []
    undeclared = lint(load_sql([("t.sql", sql)]), schemas=(SCHEMA, "intent"))
    assert {f.code for f in undeclared.errors} == {"anon-grant", "anon-function"}


def test_anon_may_always_execute_the_tenant_claim_reader() -> None:
    sql = (
        "create function intent.current_tenant_id() returns uuid language sql as 'select null';"
        "revoke all on function intent.current_tenant_id() from public;"
        "grant execute on function intent.current_tenant_id() to anon;"
    )
    assert lint(load_sql([("t.sql", sql)]), schemas=("intent",)).errors == []


def test_a_view_granted_to_clients_must_be_security_invoker() -> None:
    view = "create view app.v as select id from app.items;grant select on app.v to authenticated;"
    assert codes(run(GOOD + view)) == {("view-bypasses-rls", "app.v")}
    invoker = view.replace("create view app.v", "create view app.v with (security_invoker=true)")
    assert codes(run(GOOD + invoker)) == set()
    altered = view + "alter view app.v set (security_invoker = on);"
    assert codes(run(GOOD + altered)) == set()


def test_a_shared_table_with_rls_off_is_only_a_warning() -> None:
    report = run("create table app.countries (code text); grant select on app.countries "
                 "to authenticated;")
    assert report.errors == []
    assert [(w.code, w.subject) for w in report.warnings] == [
        ("no-rls-client-table", "app.countries")
    ]


def test_alter_table_follows_renames_columns_and_several_actions() -> None:
    sql = (
        "create table app.staging (id uuid, owner uuid);"
        "alter table app.staging rename column owner to tenant_id;"
        "alter table app.staging enable row level security, force row level security;"
        "alter table app.staging rename to items;"
    )
    model = load_sql([("t.sql", sql)])
    items = model.relations[("app", "items")]
    assert items.columns == ["id", "tenant_id"]
    assert (items.rls_enabled, items.rls_forced) == (True, True)
    added = (
        "create table app.x (id uuid);alter table app.x add column if not exists tenant_id uuid;"
    )
    assert codes(run(added)) == {("rls-disabled", "app.x")}


def test_quoted_identifiers_keep_their_case() -> None:
    sql = 'create table app."Items" ("Tenant_ID" uuid);create table app.t2 ("tenant_id" uuid);'
    report = run(sql)
    assert codes(report) == {("rls-disabled", "app.t2")}


def test_create_table_like_copies_columns() -> None:
    sql = GOOD + "create table app.copy (like app.items including all);"
    assert ("rls-disabled", "app.copy") in codes(run(sql))


def test_dropped_policies_and_tables_are_forgotten() -> None:
    assert ("no-tenant-policy", "app.items") in codes(
        run(GOOD + "drop policy if exists items_read on app.items;")
    )
    assert run(GOOD + "drop table app.items cascade;").tables == 0


def test_an_unreadable_grant_is_an_error_and_a_do_block_a_warning() -> None:
    report = run("grant select on;")
    assert [f.code for f in report.errors] == ["unparsed"]
    report = run("do $$ begin execute 'grant select on app.items to anon'; end $$;")
    assert report.errors == []
    assert [w.code for w in report.warnings] == ["unmodelled"]


def test_condition_helpers() -> None:
    assert references_tenant("(t.tenant_id = (select intent.current_tenant_id()))")
    assert not references_tenant("(auth.jwt() -> 'app_metadata' ->> 'tenant_id') is not null")
    assert not references_tenant(None)
    assert reads_user_metadata("x ->> 'user_metadata'")
    assert not reads_user_metadata("auth.jwt() -> 'app_metadata'")
    assert called_functions("a = (select intent.current_tenant_id()) and lower(b) = 'x'") == (
        "intent.current_tenant_id", "lower",
    )


def test_generated_projection_sql_for_anon_readers_passes_only_when_declared() -> None:
    from projections.ddl import projection_ddl
    from projections.inventory import STOCK_LEVELS

    public = STOCK_LEVELS.model_copy(update={"readers": ("anon", "authenticated")})
    model = load_sql([("generated", ";\n".join(projection_ddl(public)) + ";")])
    declared = lint(model, anon_readers=declared_anon_readers([public]))
    assert declared.findings == ()
    undeclared = lint(model, anon_readers=declared_anon_readers([STOCK_LEVELS]))
    assert {(f.code, f.subject) for f in undeclared.errors} == {
        ("anon-grant", "public.stock_levels")
    }


# -- the command line ---------------------------------------------------------------------


def test_cli_sql_mode_exits_1_on_findings_and_names_them(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_text(GOOD.replace("alter table app.items force row level security;", ""))
    result = CliRunner().invoke(rls, ["lint", "--sql", str(bad), "--schema", SCHEMA])
    assert result.exit_code == 1, result.output
    assert "rls-not-forced" in result.output
    assert "app.items" in result.output


def test_cli_sql_mode_json_and_clean_exit(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_a.sql").write_text(GOOD)
    (folder / "002_b.sql").write_text("grant select on app.items to anon;")
    result = CliRunner().invoke(rls, ["lint", "--sql", str(folder), "--schema", SCHEMA,
                                      "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["mode"] == "sql"
    assert [s.rsplit("/", 1)[-1] for s in report["sources"]] == ["001_a.sql", "002_b.sql"]
    anon = [e for e in report["errors"] if e["code"] == "anon-grant"]
    assert len(anon) == 1
    assert anon[0]["origin"].endswith("002_b.sql:1")
    (folder / "002_b.sql").write_text("revoke all on app.items from anon;")
    clean = CliRunner().invoke(rls, ["lint", "--sql", str(folder), "--schema", SCHEMA])
    assert clean.exit_code == 0, clean.output
    assert "clean" in clean.output


def test_cli_lints_the_repos_migrations_clean() -> None:
    result = CliRunner().invoke(rls, ["lint", "--migrations"])
    assert result.exit_code == 0, result.output


def test_cli_lints_the_apps_generated_projection_sql_clean() -> None:
    result = CliRunner().invoke(rls, ["lint", "--projection", "all", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sources"] == sorted(
        f"projection:{projection.name}" for projection in catalog)
    assert "projection:stock_levels" in json.loads(result.stdout)["sources"]


def test_cli_refuses_a_database_url_with_sql() -> None:
    result = CliRunner().invoke(rls, ["lint", "--migrations", "--database-url", "x"])
    assert result.exit_code == 2
