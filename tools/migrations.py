"""Apply the local bootstrap and the files of supabase/migrations, as the Supabase CLI would.

Each migration file runs in one transaction as the connecting role (`postgres` on hosted
Supabase) and is recorded in supabase_migrations.schema_migrations, so that `supabase db
push` and this runner agree on what has been applied.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

from tools.sql_split import SqlSplitError, Statement, split_sql

MIGRATION_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[A-Za-z0-9_\-]+)\.sql$")
# One lock id for "someone is migrating this database": concurrent runners queue up.
_MIGRATION_LOCK = 0x1A7E_0001


class MigrationError(Exception):
    """A migration could not be read or applied; the message names the file and statement."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    def statements(self) -> list[Statement]:
        try:
            return split_sql(self.path.read_text(encoding="utf-8"))
        except SqlSplitError as exc:
            raise MigrationError(f"{self.path.name}: {exc}") from None


@dataclass(frozen=True)
class MigrationReport:
    applied: list[str]
    already: list[str]
    changed: list[str]  # applied earlier, but the file differs now (migrations are immutable)


def discover(folder: Path) -> list[Migration]:
    if not folder.is_dir():
        raise MigrationError(f"no migrations folder at {folder}")
    found: list[Migration] = []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name} is not named <YYYYMMDDHHMMSS>_<name>.sql, so it has no place "
                "in the order; rename it"
            )
        found.append(Migration(match["version"], match["name"], path))
    versions = [m.version for m in found]
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        raise MigrationError(f"two migrations share the version(s) {', '.join(duplicates)}")
    return found


def bootstrap_sql() -> str:
    return (resources.files("tools") / "sql" / "bootstrap.sql").read_text(encoding="utf-8")


def apply_bootstrap(admin_url: str) -> None:
    """The local Supabase stand-in: roles, auth, extensions, realtime. Superuser only."""
    script = bootstrap_sql()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        _run_statements(conn, split_sql(script), "bootstrap.sql")


def _run_statements(conn: psycopg.Connection, statements: list[Statement], label: str) -> None:
    for number, statement in enumerate(statements, start=1):
        try:
            conn.execute(statement.text.encode())
        except psycopg.Error as exc:
            first_line = statement.text.splitlines()[0][:120]
            raise MigrationError(
                f"{label}: statement {number} (line {statement.line}: {first_line!r}) failed: "
                f"{str(exc).strip()}"
            ) from exc


def _ensure_history_table(conn: psycopg.Connection) -> None:
    conn.execute("create schema if not exists supabase_migrations")
    conn.execute(
        "create table if not exists supabase_migrations.schema_migrations ("
        " version text primary key, statements text[], name text)"
    )


def migrate(
    url: str,
    folder: Path,
    *,
    on_apply: Callable[[Migration], None] | None = None,
) -> MigrationReport:
    """Apply every migration not yet recorded, in version order, one transaction each."""
    migrations = discover(folder)
    applied: list[str] = []
    already: list[str] = []
    changed: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            _ensure_history_table(conn)
        for migration in migrations:
            statements = migration.statements()
            texts = [s.text for s in statements]
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                row = conn.execute(
                    "select statements from supabase_migrations.schema_migrations"
                    " where version = %s",
                    (migration.version,),
                ).fetchone()
                if row is not None:
                    already.append(migration.path.name)
                    if row[0] is not None and list(row[0]) != texts:
                        changed.append(migration.path.name)
                    continue
                if on_apply:
                    on_apply(migration)
                _run_statements(conn, statements, migration.path.name)
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name, statements)"
                    " values (%s, %s, %s)",
                    (migration.version, migration.name, texts),
                )
            applied.append(migration.path.name)
    return MigrationReport(applied=applied, already=already, changed=changed)


def applied_versions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        exists = conn.execute(
            "select to_regclass('supabase_migrations.schema_migrations') is not null"
        ).fetchone()
        if not exists or not exists[0]:
            return []
        rows = conn.execute(
            "select version from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    return [r[0] for r in rows]
