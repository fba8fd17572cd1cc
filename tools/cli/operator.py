"""`intent operator grant|revoke|list`: the platform operators, who see the whole system in
the console (health, read models, traces of every tenant).

Operators are people who run the platform, not a tenant role: the list lives in
intent.operators (supabase/migrations/*_console_operations.sql), which no client can read
or write, so it is managed here, as the database owner, by the user's email (or id)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import click
from rich.markup import escape
from rich.table import Table

from tools.cli.common import (
    EXIT_FAILED,
    Group,
    connect_sync,
    database_url_option,
    out,
    refuse,
    resolve_database,
    wide_out,
)

_DATABASE_HELP = "Use this database (default: DATABASE_URL or the embedded cluster)."


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def operator() -> None:
    """Platform operators: who sees the whole system in the console.

    An operator's token (any signed-in user listed here) gets the system-wide health,
    every projection's error and every tenant's traces from the console's RPCs; everyone
    else sees only the tenant of their token.
    """


def _run(database_url: str | None, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """One statement's rows; a database without the operators table is refused (exit 3)."""
    import psycopg

    url, shown = resolve_database(database_url)
    with connect_sync(url, shown) as conn:
        try:
            return conn.execute(query, params).fetchall()
        except psycopg.errors.UndefinedTable as exc:
            refuse(f"{shown} has no intent.operators ({str(exc).strip()}); run `intent db "
                   "migrate` first")


def _user_of(database_url: str | None, who: str) -> tuple[UUID, str | None]:
    """The auth user named by an email (case-insensitive) or an id; exit 1 when none is."""
    try:
        by_id: UUID | None = UUID(who)
    except ValueError:
        by_id = None
    rows = _run(database_url,
                "select id, email::text from auth.users where id = %s or lower(email) = lower(%s)"
                " limit 2", (by_id, who))
    if by_id is not None and not rows:
        return by_id, None  # a user deleted from Auth may still be revoked by id
    if len(rows) != 1:
        refuse(f"no user with email {who}" if not rows else f"{who} names two users",
               EXIT_FAILED)
    return rows[0][0], rows[0][1]


@operator.command("grant")
@click.argument("who", metavar="EMAIL")
@database_url_option(_DATABASE_HELP)
def grant(who: str, database_url: str | None) -> None:
    """Make the user with EMAIL (or this user id) an operator.

    Takes effect at their next request (their token is not changed). Exit 0 when they are
    an operator (also if they already were), 1 when no user has that email, 3 when the
    database cannot be reached.
    """
    user, email = _user_of(database_url, who)
    if email is None:
        refuse(f"no user with id {user}", EXIT_FAILED)
    added = _run(database_url, "insert into intent.operators (user_id) values (%s)"
                               " on conflict (user_id) do nothing returning user_id", (user,))
    state = "is now an operator" if added else "was already an operator"
    out.print(f"{escape(email)} ({user}) {state}")


@operator.command("revoke")
@click.argument("who", metavar="EMAIL")
@database_url_option(_DATABASE_HELP)
def revoke(who: str, database_url: str | None) -> None:
    """Make the user with EMAIL (or this user id) an ordinary user again.

    Exit 0 when they were an operator, 1 when they were not (or no user has that email),
    3 when the database cannot be reached.
    """
    user, email = _user_of(database_url, who)
    removed = _run(database_url, "delete from intent.operators where user_id = %s"
                                 " returning user_id", (user,))
    if not removed:
        refuse(f"{email or user} is not an operator", EXIT_FAILED)
    out.print(f"{escape(email or str(user))} ({user}) is no longer an operator")


@operator.command("list")
@database_url_option(_DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the operators as JSON.")
def list_operators(database_url: str | None, as_json: bool) -> None:
    """List the operators: email, user id, when granted (oldest first).

    A user deleted from Auth shows without an email (revoke them by id). Exit 0, 3 when
    the database cannot be reached.
    """
    rows = _run(database_url,
                "select o.user_id, u.email::text, o.granted_at from intent.operators o"
                " left join auth.users u on u.id = o.user_id order by o.granted_at, o.user_id",
                ())
    if as_json:
        click.echo(json.dumps([{"user_id": str(user), "email": email,
                                "granted_at": granted.isoformat()}
                               for user, email, granted in rows], indent=2))
        return
    if not rows:
        out.print("no operators (grant one with `intent operator grant EMAIL`)")
        return
    table = Table(title="operators", title_justify="left")
    for column in ("email", "user id", "granted"):
        table.add_column(column)
    for user, email, granted in rows:
        table.add_row(escape(email or "(no such user)"), str(user),
                      granted.isoformat(timespec="seconds"))
    wide_out(120).print(table)
