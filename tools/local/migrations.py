"""Apply the local bootstrap and the files of supabase/migrations, as the Supabase CLI would.

Each migration file runs in one transaction as the connecting role (`postgres` on hosted
Supabase) and is recorded in supabase_migrations.schema_migrations, so that `supabase db
push` and this runner agree on what has been applied.

A file is split into statements by PostgreSQL's own lexer and parser (libpg_query, through
pglast), so an error can name the statement and its line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg
from pglast import parser

MIGRATION_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[A-Za-z0-9_\-]+)\.sql$")
# One lock id for "someone is migrating this database": concurrent runners queue up.
_MIGRATION_LOCK = 0x1A7E_0001


class MigrationError(Exception):
    """A migration could not be read or applied; the message names the file and statement."""


@dataclass(frozen=True)
class Statement:
    text: str  # from its first token (comments before it left out) to its semicolon
    line: int  # 1-based line where the statement starts


class SqlSplitError(ValueError):
    """The script does not even lex: an unterminated quote, quoted name or comment."""


_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_LINE_COMMENTS = re.compile(r"(?:\s*--[^\n]*)*")


def split_sql(script: str) -> list[Statement]:
    """The statements of `script`, as psql would send them.

    PostgreSQL's parser says where each statement ends (so semicolons inside quotes,
    dollar-quoted bodies, comments and BEGIN ATOMIC bodies do not split); a script with a
    syntax error is split at its lexer's semicolons instead, so that the server names the
    statement that fails. Statements made only of comments are dropped.
    """
    try:
        parts = [(_code_start(script, p.start, p.stop), p.stop)
                 for p in parser.split(script, with_parser=True, only_slices=True)]
    except parser.ParseError:
        parts = _at_semicolons(script)
    statements: list[Statement] = []
    line, counted = 1, 0
    for code, stop in parts:
        if code is None:
            continue  # only comments
        line += script.count("\n", counted, code)
        counted = code
        statements.append(Statement(text=script[code:stop].strip(), line=line))
    return statements


def _code_start(script: str, start: int, stop: int) -> int | None:
    """Where the first token after the comments that open a statement is. The lexer reads
    a growing prefix only: the comments, not a long body behind them, are what it needs
    (pglast's scan costs about a microsecond a token)."""
    if not script.startswith(("--", "/*"), start):
        return start
    # Only a first guess at how much to lex; the lexer decides what is a comment.
    comments = _LINE_COMMENTS.match(script, start, stop)
    size = (comments.end() if comments else start) - start + 64
    while True:
        end = min(stop, start + size)
        try:
            tokens = parser.scan(script[start:end])
        except parser.ParseError:  # the prefix ends inside a comment or a quote
            tokens = []
        # A token that reaches the prefix's end may be the cut-off start of a longer one.
        whole = [t for t in tokens if end == stop or start + t.end + 1 < end]
        code = next((int(t.start) for t in whole if t.name not in _COMMENTS), None)
        if code is not None:
            return start + code
        if end == stop:
            return None
        size *= 8


def _at_semicolons(script: str) -> list[tuple[int | None, int]]:
    """(first token, stop) of the text between the lexer's semicolons. Not libpg_query's
    scanner split: that one drops whatever follows an unbalanced parenthesis."""
    try:
        tokens = parser.scan(script)
    except parser.ParseError as exc:
        raise SqlSplitError(_lex_error(script, exc)) from None
    parts: list[tuple[int | None, int]] = []
    code: int | None = None
    for token in tokens:
        if script[token.start] == ";":
            parts.append((code, token.start))
            code = None
        elif code is None and token.name not in _COMMENTS:
            code = token.start
    parts.append((code, len(script)))
    return parts


def _lex_error(script: str, exc: parser.ParseError) -> str:
    """The lexer's message with its line. pglast's error offsets are not character offsets
    once non-ASCII text precedes them, so the line is found by lexing an ASCII copy (any
    non-ASCII character is an identifier character to PostgreSQL's lexer, as "x" is)."""
    message = str(exc.args[0])
    ascii_copy = _NON_ASCII.sub("x", script)
    try:
        parser.scan(ascii_copy)
    except parser.ParseError as again:
        index = again.args[1] if len(again.args) > 1 else 0
        if isinstance(index, int) and 0 <= index <= len(script):
            return f"line {ascii_copy.count(chr(10), 0, index) + 1}: {message}"
    return message


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
    return (resources.files("tools.local") / "sql" / "bootstrap.sql").read_text(encoding="utf-8")


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
