"""The ingress allow list generated from a registry: deterministic SQL, a new migration only
when the command types changed, and a check that says what changed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field

from domain.aggregate import Aggregate
from domain.registry import Registry
from projections.shop import registry as app_registry
from tools.cli.generate import check_command_types, generate_command_types
from tools.cli.generate import generate as generate_command
from tools.codegen.command_types import (
    FILE_SUFFIX,
    MARKER,
    CommandTypeRow,
    check,
    content_hash,
    differences,
    generate,
    generated_files,
    latest_generated,
    render,
    rows_of,
    status,
)
from tools.local.migrations import MIGRATION_NAME, split_sql

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


class CounterState(BaseModel):
    value: int = 0


class Counter(Aggregate[CounterState]):
    type_name = "test.counter"
    state_model = CounterState


class Gauge(Aggregate[CounterState]):
    type_name = "test.gauge"
    state_model = CounterState


class Increment(BaseModel):
    counter_id: UUID


class Reset(BaseModel):
    counter_id: UUID


class SetGauge(BaseModel):
    gauge_id: UUID
    level: int = Field(ge=0)


def small_registry(
    *,
    reset_roles: Iterable[str] = ("service_role",),
    with_gauge: bool = False,
    order: tuple[str, ...] = ("increment", "reset"),
) -> Registry:
    registry = Registry()
    registry.aggregate(Counter)
    declarations: dict[str, Callable[[], object]] = {
        "increment": lambda: registry.command(
            "test.increment", aggregate=Counter, aggregate_id="counter_id",
            roles=["authenticated", "service_role"],
        )(Increment),
        "reset": lambda: registry.command(
            "test.reset", aggregate=Counter, aggregate_id="counter_id", roles=reset_roles
        )(Reset),
    }
    for name in order:
        declarations[name]()
    if with_gauge:
        registry.aggregate(Gauge)
        registry.command(
            "test.set_gauge", aggregate=Gauge, aggregate_id="gauge_id", roles=["authenticated"]
        )(SetGauge)
    registry.validate()
    return registry


# -- rendering ---------------------------------------------------------------------------------


def test_rows_are_sorted_with_sorted_roles() -> None:
    rows = rows_of(small_registry(reset_roles=["service_role", "authenticated"], with_gauge=True))
    assert [(r.command_type, r.aggregate_type, r.aggregate_id_field, r.roles) for r in rows] == [
        ("test.increment", "test.counter", "counter_id", ("authenticated", "service_role")),
        ("test.reset", "test.counter", "counter_id", ("authenticated", "service_role")),
        ("test.set_gauge", "test.gauge", "gauge_id", ("authenticated",)),
    ]


def test_a_row_carries_its_payload_limits_with_the_default_bounds() -> None:
    gauge = rows_of(small_registry(with_gauge=True))[-1]
    assert json.loads(gauge.limits) == [
        {"field": "(payload)", "path": "$", "type": "object",
         "required": ["gauge_id", "level"], "maxDepth": 32},
        {"field": "gauge_id", "path": '$."gauge_id"', "type": "string"},
        {"field": "level", "path": '$."level"', "type": "integer", "minimum": 0,
         "maximum": 2**63 - 1},
    ]
    assert "level" in describe_change(gauge)


def describe_change(row: CommandTypeRow) -> str:
    before = CommandTypeRow(row.command_type, row.aggregate_type, row.aggregate_id_field,
                            row.roles)
    return "\n".join(differences([before], [row]))


def test_rendering_is_deterministic_whatever_the_declaration_order() -> None:
    one = render(rows_of(small_registry(order=("increment", "reset"))))
    two = render(rows_of(small_registry(order=("reset", "increment"))))
    assert one == two
    assert one == render(rows_of(small_registry()))
    assert render(rows_of(app_registry)) == render(rows_of(app_registry))


def test_the_rendered_migration_replaces_the_whole_table_and_carries_its_hash() -> None:
    rows = rows_of(small_registry())
    text = render(rows)
    assert f"{MARKER}{content_hash(rows)}\n" in text
    statements = [s.text for s in split_sql(text)]
    assert statements[0] == "delete from intent.command_types where true"
    assert statements[1].startswith("insert into intent.command_types")
    assert ("('test.reset', 'test.counter', 'counter_id', array['service_role']::text[], "
            "'[{\"field\":\"(payload)\"") in text
    assert len(statements) == 2


def test_an_empty_registry_renders_only_the_delete() -> None:
    statements = [s.text for s in split_sql(render(()))]
    assert statements == ["delete from intent.command_types where true"]


def test_quotes_in_a_role_are_escaped() -> None:
    rows = rows_of(small_registry(reset_roles=["it's"]))
    text = render(rows)
    assert "array['it''s']::text[]" in text


def test_the_hash_depends_on_the_rows_only() -> None:
    base = rows_of(small_registry())
    assert content_hash(base) == content_hash(tuple(reversed(base)))
    assert content_hash(base) != content_hash(rows_of(small_registry(reset_roles=["admin"])))
    assert content_hash(base) != content_hash(rows_of(small_registry(with_gauge=True)))


# -- generate ----------------------------------------------------------------------------------


def test_generate_writes_the_first_migration_into_an_empty_folder(tmp_path: Path) -> None:
    result = generate(tmp_path, small_registry(), now=NOW)
    assert result.written == tmp_path / f"20300102030405{FILE_SUFFIX}"
    assert MIGRATION_NAME.match(result.written.name)
    assert result.written.read_text() == render(rows_of(small_registry()))
    assert result.status.latest is None
    assert check(tmp_path, small_registry()).ok


def test_generate_writes_nothing_when_current(tmp_path: Path) -> None:
    generate(tmp_path, small_registry(), now=NOW)
    before = sorted(p.name for p in tmp_path.iterdir())
    again = generate(tmp_path, small_registry(order=("reset", "increment")),
                     now=datetime(2031, 1, 1, tzinfo=UTC))
    assert again.written is None
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_new_migration_sorts_after_every_existing_one(tmp_path: Path) -> None:
    (tmp_path / "20991231235959_later_schema.sql").write_text("select 1;\n")
    result = generate(tmp_path, small_registry(), now=NOW)
    assert result.written is not None
    assert result.written.name == f"21000101000000{FILE_SUFFIX}"
    changed = generate(tmp_path, small_registry(with_gauge=True), now=NOW)
    assert changed.written is not None
    assert changed.written.name == f"21000101000001{FILE_SUFFIX}"


def test_a_changed_registry_gets_a_new_migration_and_the_old_one_stays(tmp_path: Path) -> None:
    first = generate(tmp_path, small_registry(), now=NOW).written
    assert first is not None
    original = first.read_text()
    second = generate(tmp_path, small_registry(with_gauge=True),
                      now=datetime(2030, 1, 3, tzinfo=UTC)).written
    assert second is not None
    assert second != first
    assert first.read_text() == original  # applied migrations are never edited
    assert generated_files(tmp_path) == [first, second]
    latest = latest_generated(tmp_path)
    assert latest is not None
    assert latest.path == second
    assert check(tmp_path, small_registry(with_gauge=True)).ok
    assert not check(tmp_path, small_registry()).ok  # going back is a change too


def test_only_command_type_migrations_count(tmp_path: Path) -> None:
    generate(tmp_path, small_registry(), now=NOW)
    (tmp_path / "20400101000000_projections.sql").write_text("select 1;\n")
    (tmp_path / "notes_command_types.sql").write_text("-- not a migration name\n")
    assert check(tmp_path, small_registry()).ok
    assert generate(tmp_path, small_registry(), now=NOW).written is None


# -- check -------------------------------------------------------------------------------------


def test_check_without_any_generated_migration_fails(tmp_path: Path) -> None:
    result = check(tmp_path, small_registry())
    assert not result.ok
    assert "no generated command-types migration" in result.message
    assert "run `intent generate`" in result.message


def test_check_detects_a_changed_registry_and_says_what_changed(tmp_path: Path) -> None:
    generate(tmp_path, small_registry(), now=NOW)
    changed = small_registry(reset_roles=["authenticated", "service_role"], with_gauge=True)
    result = check(tmp_path, changed)
    assert not result.ok
    lines = result.message.splitlines()
    assert lines[0] == f"20300102030405{FILE_SUFFIX} is out of date: the registry's command " \
        "types changed since it was generated:"
    assert "  + test.set_gauge: new (aggregate test.gauge, id field gauge_id, roles " \
        "authenticated, 3 field limit(s))" in lines
    assert "  ~ test.reset: roles service_role -> authenticated, service_role" in lines
    assert not any("test.increment" in line for line in lines)
    assert "run `intent generate`" in lines[-1]


def test_check_detects_a_removed_command_type(tmp_path: Path) -> None:
    generate(tmp_path, small_registry(with_gauge=True), now=NOW)
    result = check(tmp_path, small_registry())
    assert not result.ok
    assert "  - test.set_gauge: removed (was aggregate test.gauge, id field gauge_id, roles " \
        "authenticated, 3 field limit(s))" in result.message.splitlines()


def test_check_detects_a_hand_edit_and_generate_repairs_it(tmp_path: Path) -> None:
    written = generate(tmp_path, small_registry(), now=NOW).written
    assert written is not None
    written.write_text(written.read_text().replace(
        "array['service_role']::text[]", "array['authenticated']::text[]"
    ))
    result = check(tmp_path, small_registry())
    assert not result.ok
    assert "edited by hand" in result.message
    repaired = generate(tmp_path, small_registry(), now=datetime(2030, 1, 3, tzinfo=UTC))
    assert repaired.written is not None
    assert check(tmp_path, small_registry()).ok


def test_differences_reads_back_what_it_rendered(tmp_path: Path) -> None:
    registry = small_registry(reset_roles=["it's", "service_role"], with_gauge=True)
    generate(tmp_path, registry, now=NOW)
    latest = latest_generated(tmp_path)
    assert latest is not None
    assert latest.rows == rows_of(registry)
    assert differences(latest.rows, rows_of(registry)) == []
    assert status(tmp_path, registry).current


# -- the command line --------------------------------------------------------------------------


def test_help() -> None:
    result = CliRunner().invoke(generate_command, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "command types" in result.output


def test_generate_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command_types(tmp_path, app_registry) == 1
    assert "run `intent generate`" in capsys.readouterr().err

    assert generate_command_types(tmp_path, app_registry) == 0
    assert capsys.readouterr().out.startswith("wrote ")
    assert len(generated_files(tmp_path)) == 1

    assert generate_command_types(tmp_path, app_registry) == 0
    assert "nothing written" in capsys.readouterr().out
    assert len(generated_files(tmp_path)) == 1

    assert check_command_types(tmp_path, app_registry) == 0
    current = capsys.readouterr().out
    assert "command types are current" in current
    count = len(app_registry.command_types())
    assert f"({count} command types)" in current


def test_check_names_the_stale_artefact_and_writes_nothing(tmp_path: Path) -> None:
    catalogue = tmp_path / "command_schemas.json"
    outcome = CliRunner().invoke(generate_command, ["--check", "--migrations-dir", str(tmp_path),
                                            "--catalogue", str(catalogue)])
    assert outcome.exit_code == 1, outcome.output
    assert "stale: command types, catalogue, projections" in outcome.output
    assert "run `intent generate`" in outcome.output
    assert list(tmp_path.iterdir()) == []
