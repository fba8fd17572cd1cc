"""The migration runner on fresh databases of the session's cluster."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from tools import settings
from tools.local.cluster import LocalCluster
from tools.local.migrations import MigrationError, applied_versions, apply_bootstrap, migrate

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_db(pg_cluster: LocalCluster) -> Iterator[str]:
    """A new, bootstrapped database owned by `postgres`; its URL as `postgres`."""
    name = f"mig_{uuid4().hex[:12]}"
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        conn.execute(f"create database {name} owner postgres")
    admin = settings.local_url(pg_cluster.port, user=settings.LOCAL_SUPERUSER, dbname=name)
    apply_bootstrap(admin)
    yield settings.local_url(pg_cluster.port, dbname=name)
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        conn.execute(f"drop database {name} with (force)")


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    shutil.copytree(settings.migrations_dir(), folder)
    return folder


def test_pending_migrations_apply_once_in_order(fresh_db: str, migrations: Path) -> None:
    (migrations / "29990101000000_later.sql").write_text(
        "create table public.later (id int primary key);\n"
        "insert into public.later values (1);\n"
    )
    first = migrate(fresh_db, migrations)
    assert first.applied == sorted(p.name for p in migrations.glob("*.sql"))
    second = migrate(fresh_db, migrations)
    assert second.applied == []
    assert second.already == first.applied
    assert second.changed == []
    assert applied_versions(fresh_db) == sorted(p.name[:14] for p in migrations.glob("*.sql"))
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute(
            "select name, statements from supabase_migrations.schema_migrations"
            " where version = '29990101000000'"
        ).fetchone()
    assert row == ("later", ["create table public.later (id int primary key)",
                             "insert into public.later values (1)"])


def test_a_failing_migration_leaves_nothing_behind_and_names_the_statement(
    fresh_db: str, migrations: Path
) -> None:
    (migrations / "29990101000000_broken.sql").write_text(
        "create table public.half_done (id int);\n\nselect * from no_such_table;\n"
    )
    with pytest.raises(MigrationError, match=r"29990101000000_broken\.sql: statement 2 \(line 3"):
        migrate(fresh_db, migrations)
    with psycopg.connect(fresh_db) as conn:
        leftover = conn.execute("select to_regclass('public.half_done')").fetchone()
    assert leftover == (None,)
    assert "29990101000000" not in applied_versions(fresh_db)
    # The migrations before it were applied and stay applied.
    assert applied_versions(fresh_db) == sorted(
        p.name[:14] for p in migrations.glob("*.sql") if "broken" not in p.name
    )


def test_an_applied_migration_edited_afterwards_is_reported(
    fresh_db: str, migrations: Path
) -> None:
    target = migrations / "29990101000000_edit_me.sql"
    target.write_text("create table public.edit_me (id int);\n")
    migrate(fresh_db, migrations)
    target.write_text("create table public.edit_me (id bigint);\n")
    report = migrate(fresh_db, migrations)
    assert report.changed == ["29990101000000_edit_me.sql"]
    assert report.applied == []


@pytest.mark.parametrize(
    ("name", "problem"),
    [("2999_short.sql", "is not named"), ("29990101000000 spaced.sql", "is not named")],
)
def test_badly_named_migration_files_are_refused(
    fresh_db: str, migrations: Path, name: str, problem: str
) -> None:
    (migrations / name).write_text("select 1;")
    with pytest.raises(MigrationError, match=problem):
        migrate(fresh_db, migrations)
    assert applied_versions(fresh_db) == []


def test_two_files_with_one_version_are_refused(fresh_db: str, migrations: Path) -> None:
    (migrations / "29990101000000_a.sql").write_text("select 1;")
    (migrations / "29990101000000_b.sql").write_text("select 1;")
    with pytest.raises(MigrationError, match="share the version"):
        migrate(fresh_db, migrations)


def test_the_bootstrap_is_idempotent(pg_cluster: LocalCluster) -> None:
    apply_bootstrap(pg_cluster.admin_url)
    apply_bootstrap(pg_cluster.admin_url)
    with psycopg.connect(pg_cluster.url) as conn:
        row = conn.execute(
            "select rolsuper, rolbypassrls from pg_roles where rolname = current_user"
        ).fetchone()
        publication = conn.execute(
            "select pubowner::regrole::text from pg_publication where pubname = 'supabase_realtime'"
        ).fetchone()
    assert row == (False, True)  # `postgres` is not a superuser, as on hosted Supabase
    assert publication == ("postgres",)
