"""The RLS lint against a live database: the same rules, the same findings as SQL mode.

Broken tables live in a schema of their own (fresh per module), so the shared session
database keeps no insecure table in `public`/`intent` and other tests cannot disturb ours.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest
from click.testing import CliRunner

from projections.shop import catalog
from tools import settings
from tools.checks.rls import LintReport, declared_anon_readers, lint, load_live, load_sql
from tools.cli.rls import rls

pytestmark = pytest.mark.integration

CURRENT_TENANT = "(select intent.current_tenant_id())"

BROKEN = f"""
create schema {{s}};

create table {{s}}.no_policy (id uuid primary key, tenant_id uuid not null);
alter table {{s}}.no_policy enable row level security;
alter table {{s}}.no_policy force row level security;
grant select on {{s}}.no_policy to authenticated;

create table {{s}}.not_forced (id uuid primary key, tenant_id uuid not null);
alter table {{s}}.not_forced enable row level security;
create policy not_forced_read on {{s}}.not_forced for select to authenticated
  using (tenant_id = {CURRENT_TENANT});
grant select on {{s}}.not_forced to authenticated;

create table {{s}}.for_anon (id uuid primary key, tenant_id uuid not null);
alter table {{s}}.for_anon enable row level security;
alter table {{s}}.for_anon force row level security;
create policy for_anon_read on {{s}}.for_anon for select to authenticated
  using (tenant_id = {CURRENT_TENANT});
grant select on {{s}}.for_anon to authenticated, anon;

create table {{s}}.by_profile (id uuid primary key, tenant_id uuid not null);
alter table {{s}}.by_profile enable row level security;
alter table {{s}}.by_profile force row level security;
create function {{s}}.profile_tenant() returns uuid language sql stable
  as $$ select (auth.jwt() -> 'user_metadata' ->> 'tenant_id')::uuid $$;
revoke all on function {{s}}.profile_tenant() from public;
grant execute on function {{s}}.profile_tenant() to authenticated;
create policy by_profile_read on {{s}}.by_profile for select to authenticated
  using (tenant_id = {{s}}.profile_tenant());
grant select on {{s}}.by_profile to authenticated;

create table {{s}}.good (id uuid primary key, tenant_id uuid not null, name text);
alter table {{s}}.good enable row level security;
alter table {{s}}.good force row level security;
create policy good_read on {{s}}.good for select to authenticated
  using (tenant_id = {CURRENT_TENANT});
revoke all on {{s}}.good from public, anon, authenticated;
grant select on {{s}}.good to authenticated;

create table {{s}}.countries (code text primary key);
grant select on {{s}}.countries to authenticated;

create function {{s}}.open_to_all() returns int language sql as 'select 1';
"""


@pytest.fixture(scope="module")
def broken(database_url: str) -> Iterator[tuple[str, str]]:
    """(schema, the SQL that built it), applied to the session database."""
    schema = f"rls_lint_{uuid4().hex[:8]}"
    sql = BROKEN.format(s=schema)
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        conn.execute(sql)
    try:
        yield schema, sql
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"drop schema {schema} cascade")


def app_anon_readers() -> set[tuple[str, str]]:
    return declared_anon_readers(catalog)


def live(database_url: str, schemas: tuple[str, ...]) -> LintReport:
    with psycopg.connect(database_url, autocommit=True) as conn:
        model = load_live(conn, schemas)
    return lint(model, schemas=schemas, anon_readers=app_anon_readers())


def keyed(report: LintReport) -> set[tuple[str, str, str | None]]:
    return {(f.code, f.subject, f.role) for f in report.errors}


def test_each_broken_table_is_found_live(database_url: str, broken: tuple[str, str]) -> None:
    schema, _ = broken
    report = live(database_url, (schema,))
    assert keyed(report) == {
        ("no-tenant-policy", f"{schema}.no_policy", "authenticated"),
        ("rls-not-forced", f"{schema}.not_forced", None),
        ("anon-grant", f"{schema}.for_anon", "anon"),
        ("no-tenant-policy", f"{schema}.for_anon", "anon"),
        ("user-metadata", f"{schema}.by_profile policy by_profile_read", None),
        ("anon-function", f"function {schema}.open_to_all()", "anon"),
    }
    assert [(w.code, w.subject) for w in report.warnings] == [
        ("no-rls-client-table", f"{schema}.countries")
    ]
    profile = next(f for f in report.errors if f.code == "user-metadata")
    assert f"{schema}.profile_tenant" in profile.message


def test_sql_mode_finds_exactly_what_live_mode_finds(
    database_url: str, broken: tuple[str, str]
) -> None:
    schema, sql = broken
    offline = lint(load_sql([("broken.sql", sql)]), schemas=(schema,),
                   anon_readers=app_anon_readers())
    online = live(database_url, (schema,))
    assert keyed(offline) == keyed(online)
    assert {(w.code, w.subject) for w in offline.warnings} == {
        (w.code, w.subject) for w in online.warnings
    }


def test_fixing_the_database_makes_the_finding_go(
    database_url: str, broken: tuple[str, str]
) -> None:
    schema, _ = broken
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"create table {schema}.fixable (tenant_id uuid not null)")
        conn.execute(f"alter table {schema}.fixable enable row level security")
        assert ("rls-not-forced", f"{schema}.fixable", None) in keyed(
            live(database_url, (schema,))
        )
        conn.execute(f"alter table {schema}.fixable force row level security")
    assert not {k for k in keyed(live(database_url, (schema,))) if k[1] == f"{schema}.fixable"}


def test_the_repos_migrations_lint_clean_live(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        model = load_live(conn, ("public", "intent"))
    events = model.relations[("intent", "events")]
    assert (events.rls_enabled, events.rls_forced) == (True, True)
    assert events.privileges.get("authenticated") == {"SELECT"}
    assert "anon" not in events.privileges
    assert "events_tenant_read" in events.policies
    # Only what the migrations create: other tests may leave tables of their own here.
    files = sorted(settings.migrations_dir().glob("*.sql"))
    migrated = load_sql([(p.name, p.read_text(encoding="utf-8")) for p in files])
    # The app's schemas only: policies on Supabase's own realtime.messages (the events'
    # broadcast topics) are in the migrations but not linted.
    relations = {r.qualified for r in migrated.relations.values()
                 if r.schema in ("public", "intent")}
    functions = {f"function {f.schema}.{f.name}(" for f in migrated.functions.values()}
    report = lint(model, anon_readers=app_anon_readers())
    ours = [
        f.as_json() for f in report.findings
        if f.subject.split(" ")[0] in relations
        or any(f.subject.startswith(name) for name in functions)
    ]
    assert ours == []
    assert relations <= {r.qualified for r in model.relations.values()}


def test_cli_live_reports_json_and_exits_1(database_url: str, broken: tuple[str, str]) -> None:
    schema, _ = broken
    result = CliRunner().invoke(
        rls, ["lint", "--database-url", database_url, "--schema", schema, "--json"]
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "live"
    assert report["clean"] is False
    assert {e["subject"] for e in report["errors"]} >= {
        f"{schema}.no_policy", f"{schema}.not_forced", f"{schema}.for_anon"
    }


def test_cli_live_is_clean_on_a_clean_schema(database_url: str) -> None:
    schema = f"rls_lint_clean_{uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(BROKEN.format(s=schema).split(f"create table {schema}.no_policy")[0])
        try:
            conn.execute(
                f"create table {schema}.good (tenant_id uuid not null);"
                f"alter table {schema}.good enable row level security;"
                f"alter table {schema}.good force row level security;"
                f"create policy good_read on {schema}.good for select to authenticated"
                f" using (tenant_id = {CURRENT_TENANT});"
                f"grant select on {schema}.good to authenticated;"
            )
            result = CliRunner().invoke(
                rls, ["lint", "--database-url", database_url, "--schema", schema]
            )
        finally:
            conn.execute(f"drop schema {schema} cascade")
    assert result.exit_code == 0, result.output
    assert "clean" in result.output


def test_cli_exits_3_when_the_database_is_unreachable() -> None:
    url = "postgresql://postgres:postgres@127.0.0.1:1/postgres"
    result = CliRunner().invoke(rls, ["lint", "--database-url", url])
    assert result.exit_code == 3
