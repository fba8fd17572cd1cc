"""Poison isolation's search (pump.batches.isolation.isolate) with a fake `run`: which parts
it tries, what it holds, what it fails, and which errors it does not isolate at all."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import pytest

from domain.errors import ConcurrencyError
from pump.batches.isolation import is_transient, is_unavailable, isolate

Part = Sequence[tuple[str, Sequence[str]]]


class PoisonError(Exception):
    pass


class FakeRun:
    """Fails any part that holds a poisoned command; records what committed."""

    def __init__(self, poisoned: set[str], error: Exception | None = None):
        self.poisoned, self.error = poisoned, error
        self.calls = 0
        self.committed: list[str] = []

    async def __call__(self, part: Part) -> None:
        self.calls += 1
        commands = [c for _, cs in part for c in cs]
        if self.poisoned & set(commands):
            raise self.error or PoisonError(sorted(self.poisoned & set(commands))[0])
        self.committed.extend(commands)


def streams(count: int, per_stream: int = 3) -> list[tuple[str, list[str]]]:
    return [(f"s{i}", [f"s{i}c{j}" for j in range(per_stream)]) for i in range(count)]


async def test_before_the_last_attempt_the_poison_and_what_follows_it_are_held() -> None:
    # given 64 aggregates of 3 commands, the second command of one of them poisoned
    run = FakeRun({"s41c1"})
    failed: list[str] = []
    # when isolation runs before the batch's last attempt
    found = await isolate(streams(64), run, last_attempt=False,
                          on_failed=lambda c, e: failed.append(c))
    # then every other aggregate committed, and the poisoned one up to the poison
    assert [c for c, _ in found.found] == ["s41c1"]
    assert found.held == ["s41c1", "s41c2"]
    assert failed == []
    assert set(run.committed) == {c for _, cs in streams(64) for c in cs} - {"s41c1", "s41c2"}
    # by bisection: a few parts, not one per aggregate
    assert run.calls <= 2 * 7 + 3 + 1


async def test_on_the_last_attempt_the_poison_fails_and_the_commands_after_it_run() -> None:
    run = FakeRun({"s2c0"})
    failed: list[str] = []
    found = await isolate(streams(4), run, last_attempt=True,
                          on_failed=lambda c, e: failed.append(c))
    assert failed == ["s2c0"]
    assert found.held == []
    assert {"s2c1", "s2c2"} <= set(run.committed)
    assert "s2c0" not in run.committed


async def test_two_poisons_in_different_aggregates_are_both_found() -> None:
    run = FakeRun({"s0c2", "s7c0"})
    found = await isolate(streams(8), run, last_attempt=False, on_failed=lambda c, e: None)
    assert sorted(c for c, _ in found.found) == ["s0c2", "s7c0"]
    assert sorted(found.held) == ["s0c2", "s7c0", "s7c1", "s7c2"]


@pytest.mark.parametrize("error", [
    psycopg.OperationalError("server closed the connection unexpectedly"),
    psycopg.errors.SerializationFailure("could not serialize access"),
    ConcurrencyError("tenant/inventory.item/x", 1, 2),
])
async def test_an_infrastructure_error_is_not_isolated_but_raised(error: Exception) -> None:
    run = FakeRun({"s1c1"}, error=error)
    with pytest.raises(type(error)):
        await isolate(streams(4), run, last_attempt=True, on_failed=lambda c, e: None)
    assert run.calls == 1  # the attempt is lost as a whole, nobody is blamed


def test_only_connection_failures_count_as_the_database_being_away() -> None:
    assert is_unavailable(psycopg.OperationalError("connection refused"))
    assert is_unavailable(OSError("no route"))
    assert not is_unavailable(psycopg.errors.SerializationFailure("x"))
    assert is_transient(psycopg.errors.SerializationFailure("x"))
    assert not is_transient(psycopg.errors.NumericValueOutOfRange("bigint out of range"))
    assert not is_transient(ValueError("a bug in one aggregate"))
