"""Poison isolation: when a batch fails as a whole, find the commands at fault and process
everyone else's.

A batch is one transaction, so one command that cannot be processed (a number its inline
projection's column cannot hold, a handler that raises on its data, a bug in one aggregate)
would otherwise fail the batch on every attempt and hold up every other command claimed
with it, another tenant's included. After a failure that is not the infrastructure's, the
processor runs the batch again in isolation, inside one transaction with savepoints:

- the streams (aggregates) are tried together, and a part that fails is split in halves
  until the failing streams stand alone (bisection: a few savepoints for one poison among
  hundreds of streams);
- a failing stream is then tried one command at a time, in submission order.

Everything that succeeds commits at once. The command at fault is left open, and the
commands after it on the same aggregate wait behind it (per-aggregate order), until the
batch's last attempt: then it is recorded `failed` with its error and the commands after it
are processed without it.

Infrastructure errors (the database unreachable, a lost race, a serialization failure) are
not isolated: they abort the whole attempt, which is retried as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import psycopg
from psycopg_pool import PoolTimeout

from domain.errors import ConcurrencyError
from projections.errors import StaleWriteError

Stream = TypeVar("Stream")
Command = TypeVar("Command")

# SQLSTATE classes and codes that mean "the server is not there (now)", not "this data".
_UNAVAILABLE_CLASSES = ("08",)  # connection exceptions
_UNAVAILABLE_CODES = frozenset({"57P01", "57P02", "57P03"})  # shutdown, crash, cannot connect


def is_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or went away: waiting helps, the data is not at
    fault, and such a failure should not use up a batch's attempts."""
    if isinstance(exc, PoolTimeout | OSError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        return state is None or state.startswith(_UNAVAILABLE_CLASSES) or (
            state in _UNAVAILABLE_CODES
        )
    return False


def is_transient(exc: BaseException) -> bool:
    """A failure that a later attempt of the same work can get past: the database away,
    a lost race (another writer first, a stale projection write, a serialization failure
    or deadlock), a cancelled statement. Not worth isolating: it is nobody's command."""
    return is_unavailable(exc) or isinstance(
        exc, psycopg.OperationalError | ConcurrencyError | StaleWriteError
    )


@dataclass
class Poisoned(Generic[Command]):
    """What isolation found at fault: each command with the error it raised alone."""

    found: list[tuple[Command, BaseException]] = field(default_factory=list)
    # Commands left open: the one at fault and the ones after it on its aggregate.
    held: list[Command] = field(default_factory=list)


Part = Sequence[tuple[Stream, Sequence[Command]]]


async def isolate(
    streams: Part[Stream, Command],
    run: Callable[[Part[Stream, Command]], Awaitable[None]],
    *,
    last_attempt: bool,
    on_failed: Callable[[Command, BaseException], None],
) -> Poisoned[Command]:
    """Run `streams` through `run` (which must undo a part it fails on: a savepoint), part
    by part as described above. A transient error is raised as it is: the attempt is lost.
    On the last attempt each command at fault is handed to `on_failed` and the commands
    after it run without it; before that they are held (returned, left open)."""
    poisoned: Poisoned[Command] = Poisoned()
    pending: list[Part[Stream, Command]] = [streams]
    while pending:
        part = pending.pop()
        if not part:
            continue
        try:
            await run(part)
            continue
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(part) > 1:
                middle = len(part) // 2
                pending.extend((part[middle:], part[:middle]))
                continue
        stream, commands = part[0]
        await _one_by_one(stream, commands, run, last_attempt, on_failed, poisoned)
    return poisoned


async def _one_by_one(
    stream: Stream,
    commands: Sequence[Command],
    run: Callable[[Part[Stream, Command]], Awaitable[None]],
    last_attempt: bool,
    on_failed: Callable[[Command, BaseException], None],
    poisoned: Poisoned[Command],
) -> None:
    for index, command in enumerate(commands):
        try:
            await run([(stream, [command])])
        except Exception as exc:
            if is_transient(exc):
                raise
            poisoned.found.append((command, exc))
            if not last_attempt:
                poisoned.held.extend(commands[index:])
                return
            on_failed(command, exc)
