"""The database an `intent` command works on: resolved from its --database-url option (or
DATABASE_URL, or the embedded cluster) and reached, or one clear line and exit code 3."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from psycopg import AsyncConnection
from rich.console import Console

EXIT_ENVIRONMENT = 3


def _refuse(err: Console, message: str) -> NoReturn:
    err.print(f"[red]intent:[/red] {message}")
    sys.exit(EXIT_ENVIRONMENT)


def resolve(given: str | None, err: Console) -> tuple[str, str]:
    """The URL, and its form with the password hidden (for messages)."""
    from tools import settings

    try:
        url = given or settings.database().url
    except settings.SettingsError as exc:
        _refuse(err, str(exc))
    return url, settings.Database(url=url, from_env=True).redacted()


async def connect(url: str, shown: str, err: Console, *,
                  autocommit: bool = True) -> AsyncConnection[Any]:
    """A connection, failing fast (a pool would retry for half a minute)."""
    import psycopg

    try:
        return await psycopg.AsyncConnection.connect(url, connect_timeout=10,
                                                     autocommit=autocommit)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        _refuse(err, f"cannot reach the database {shown}: {first}")


async def probe(url: str, shown: str, err: Console) -> None:
    """Reach the database once, before a pool is opened on it."""
    conn = await connect(url, shown, err)
    await conn.close()
