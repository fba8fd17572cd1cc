"""What every `intent` command shares: exit codes, consoles, error translation and the
database and migrations-folder options.

Exit codes a script can rely on: 0 done, 1 the work failed (a test, a check, a migration;
findings; something stale), 2 bad usage (click's own), 3 the environment is not usable (a
missing program, a port in use, a bad setting, a database that cannot be reached), 130
interrupted.

A command that cannot go on says why in one line on stderr (`intent: ...`) and exits with
the documented code, one way: `refuse` where the command decides it, and `Group` (the
class of every group) for the errors the layers below raise (`ENVIRONMENT_ERRORS`, and
`MigrationError`, a failed migration).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from pump.temporal.settings import TemporalSettingsError
from tools import settings
from tools.cli.application import ApplicationError
from tools.local.cluster import ClusterError
from tools.local.migrations import MigrationError

if TYPE_CHECKING:
    import psycopg
    from psycopg import AsyncConnection

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130

# Soft wrap: a long message stays one line, for logs and for scripts that grep it.
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def wide_out(pipe_width: int, *, soft_wrap: bool = True) -> Console:
    """Standard output for tables: the terminal's width, else `pipe_width` columns, so that
    a log or a pipe gets whole rows."""
    return Console(highlight=False, soft_wrap=soft_wrap,
                   width=None if sys.stdout.isatty() else pipe_width)


class UnusableError(Exception):
    """The environment is not usable (a database that cannot be reached, ...): exit 3."""


ENVIRONMENT_ERRORS: tuple[type[Exception], ...] = (
    ClusterError, settings.SettingsError, TemporalSettingsError, ApplicationError, UnusableError,
)


def say_refusal(message: str) -> None:
    """`intent: <message>` on stderr (the line `refuse` prints), for a caller that adds to
    it before it exits."""
    err.print(f"[red]intent:[/red] {escape(message)}")


def refuse(message: str, code: int = EXIT_ENVIRONMENT) -> NoReturn:
    """Say why the command cannot go on, in one line on stderr, and exit with `code`."""
    say_refusal(message)
    sys.exit(code)


def translate_errors(fn: Callable[[], Any]) -> Any:
    """Run `fn`; our own errors become one clear line and the documented exit code."""
    try:
        return fn()
    except ENVIRONMENT_ERRORS as exc:
        refuse(str(exc))
    except MigrationError as exc:
        refuse(f"migration failed: {exc}", EXIT_FAILED)


class Group(click.Group):
    """A click group whose commands' errors are translated by `translate_errors`."""

    def invoke(self, ctx: click.Context) -> Any:
        return translate_errors(lambda: super(Group, self).invoke(ctx))


# -- the database ----------------------------------------------------------------------------


def database_url_option(help: str) -> Callable[[F], F]:
    """`--database-url URL`, with the command's own help text."""
    return click.option("--database-url", metavar="URL", default=None, help=help)


def resolve_database(given: str | None) -> tuple[str, str]:
    """The URL (--database-url, else DATABASE_URL, else the embedded cluster), and its form
    with the password hidden (for messages). A bad setting is `UnusableError` (exit 3)."""
    try:
        url = given or settings.database().url
    except settings.SettingsError as exc:
        raise UnusableError(str(exc)) from None
    return url, settings.Database(url=url, from_env=True).redacted()


def _unreachable(shown: str, exc: Exception) -> UnusableError:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else repr(exc)
    return UnusableError(f"cannot reach the database {shown}: {first}")


async def connect(url: str, shown: str, *, autocommit: bool = True) -> AsyncConnection[Any]:
    """A connection, failing fast (a pool would retry for half a minute); `UnusableError` when
    the database cannot be reached."""
    import psycopg

    try:
        return await psycopg.AsyncConnection.connect(url, connect_timeout=10,
                                                     autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise _unreachable(shown, exc) from None


def connect_sync(url: str, shown: str) -> psycopg.Connection[tuple[Any, ...]]:
    """`connect` for synchronous code (autocommit)."""
    import psycopg

    try:
        return psycopg.connect(url, connect_timeout=10, autocommit=True)
    except psycopg.Error as exc:
        raise _unreachable(shown, exc) from None


async def probe(url: str, shown: str) -> None:
    """Reach the database once, before a pool is opened on it."""
    conn = await connect(url, shown)
    await conn.close()


# -- the migrations folder -------------------------------------------------------------------


MIGRATIONS_DIR_OPTION = click.option(
    "--migrations-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="The migrations folder (default: supabase/migrations, or INTENT_MIGRATIONS_DIR).",
)


def migrations_folder(migrations_dir: Path | None) -> Path:
    """The --migrations-dir given, else the project's."""
    return migrations_dir if migrations_dir is not None else settings.migrations_dir()


def shown_path(path: Path) -> str:
    """A path relative to the working directory when it is below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
