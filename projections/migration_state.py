"""Generated projection migrations, and the metadata state each one records.

A generated migration (`<YYYYMMDDHHMMSS>_projections.sql`) carries, in a comment block, the
whole projection layout it brings the database to (every projection's schema, tables,
readers and realtime flag; not the handler, the events read, the mode or the version,
which change no SQL), with a sha256 of that JSON. So a fresh clone knows what the committed
migrations produce without a database: the newest generated file's state.

`generate` compares that state with the metadata, using the same comparison as drift
(`projections.schema.compare`, with the recorded layout standing in for the database), and
writes the statements that take one to the other. It refuses a change that needs data (a
NOT NULL column without a default on an existing table) and, unless allowed, a destructive
one (dropping a table or column, changing a type or primary key, tightening nullability).
`check` fails when the newest state is not the metadata's.

Only the state is compared, not the SQL text below it: a later generator may render the same
change differently, and an old migration must never be regenerated because of that.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from projections import ddl
from projections.metadata import SqlFunction, Table
from projections.schema import compare
from projections.shapes import Difference, TableShape, expected_table
from projections.sql import Layout

FILE_SUFFIX = "_projections.sql"
STATE_FORMAT = 1
_FILE_NAME = re.compile(r"^\d{14}_projections\.sql$")
_ANY_MIGRATION = re.compile(r"^(?P<version>\d{14})_.+\.sql$")
_BEGIN = re.compile(r"^-- intent:projections-state sha256=(?P<hash>[0-9a-f]{64})\s*$", re.M)
_END = "-- intent:projections-state end"
_VERSION_FORMAT = "%Y%m%d%H%M%S"
GENERATE_HINT = (
    "run `intent generate` to write a new migration (never edit an old one)"
)

_HEADER = """\
-- Projection tables, generated from the application's projection metadata by
-- `intent generate`. Do not edit: change the metadata and generate again.
-- The state block records the layout this migration brings the database to; the next
-- generation starts from the newest one, and `intent generate --check` fails when it is
-- not the metadata's.
"""


# -- the state -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredLayout:
    """A projection's layout as a generated migration recorded it (a `Layout`)."""

    name: str
    schema_name: str
    tables: tuple[Table, ...]
    readers: tuple[str, ...]
    realtime: bool


def layout_state(layout: Layout) -> dict[str, Any]:
    return {
        "name": layout.name,
        "schema_name": layout.schema_name,
        "readers": sorted(set(layout.readers)),
        "realtime": layout.realtime,
        "tables": [table.model_dump(mode="json") for table in layout.tables],
    }


def catalog_state(layouts: Iterable[Layout]) -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "projections": sorted((layout_state(lay) for lay in layouts), key=lambda s: s["name"]),
    }


def state_json(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, indent=2, ensure_ascii=True)


def state_hash(state: dict[str, Any]) -> str:
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _untag(column: dict[str, Any]) -> dict[str, Any]:
    """Column defaults that are function calls were stored tagged (see Column)."""
    default = column.get("default")
    if isinstance(default, dict):
        return {**column, "default": SqlFunction(default["sql_function"])}
    return column


def layouts_of(state: dict[str, Any]) -> list[StoredLayout]:
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"unknown projection state format {state.get('format')!r}")
    layouts = []
    for item in state["projections"]:
        tables = tuple(
            Table.model_validate({**t, "columns": [_untag(c) for c in t["columns"]]})
            for t in item["tables"]
        )
        layouts.append(
            StoredLayout(
                name=item["name"],
                schema_name=item["schema_name"],
                tables=tables,
                readers=tuple(item["readers"]),
                realtime=bool(item["realtime"]),
            )
        )
    return layouts


def shapes_of(layouts: Iterable[Layout]) -> dict[tuple[str, str], TableShape]:
    """The tables a layout produces, as the comparison reads a database."""
    return {
        (layout.schema_name, table.name): expected_table(layout, table)
        for layout in layouts
        for table in layout.tables
    }


# -- generated files -----------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedMigration:
    path: Path
    state: dict[str, Any] | None  # None when its state block is missing or unreadable
    problem: str | None  # why the state could not be read or trusted


def generated_files(folder: Path) -> list[Path]:
    """Generated projection migrations, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _FILE_NAME.match(p.name))


def read_state(path: Path) -> GeneratedMigration:
    text = path.read_text(encoding="utf-8")
    begin = _BEGIN.search(text)
    if begin is None:
        return GeneratedMigration(path, None, f"{path.name} has no projection state block")
    end = text.find(_END, begin.end())
    if end < 0:
        return GeneratedMigration(path, None, f"{path.name}: the state block is not closed")
    lines = text[begin.end():end].strip("\n").splitlines()
    body = "\n".join(line[3:] if line.startswith("-- ") else line.lstrip("-") for line in lines)
    try:
        state = json.loads(body)
    except json.JSONDecodeError as exc:
        return GeneratedMigration(path, None, f"{path.name}: the state block is not JSON: {exc}")
    if not isinstance(state, dict) or state_hash(state) != begin["hash"]:
        return GeneratedMigration(
            path, None, f"{path.name}: the state block does not match its sha256 (edited by hand?)"
        )
    return GeneratedMigration(path, state, None)


def latest(folder: Path) -> GeneratedMigration | None:
    files = generated_files(folder)
    return read_state(files[-1]) if files else None


def render(state: dict[str, Any], changes: Sequence[Difference], statements: Sequence[str]) -> str:
    lines = [_HEADER, "--\n", "-- Changes:\n"]
    lines += [f"--   {c.qualified}: {c.detail}\n" for c in changes] or ["--   (none)\n"]
    lines.append("--\n")
    lines.append(f"-- intent:projections-state sha256={state_hash(state)}\n")
    lines += [f"-- {line}\n" for line in state_json(state).splitlines()]
    lines.append(f"{_END}\n")
    for statement in statements:
        if statement.startswith("CREATE TABLE"):
            lines.append("\n")  # a blank line before each table, for the reader
        lines.append(ddl.script([statement]))
    return "".join(lines)


# -- plan, generate, check -----------------------------------------------------------------


class StateError(Exception):
    """The newest generated migration cannot be trusted to say what the database has."""


@dataclass(frozen=True)
class Plan:
    previous: GeneratedMigration | None
    state: dict[str, Any]
    changes: tuple[Difference, ...]

    @property
    def up_to_date(self) -> bool:
        if self.previous is None:
            return not self.state["projections"]  # nothing declared, nothing generated
        return self.previous.state == self.state

    @property
    def needs_data(self) -> tuple[Difference, ...]:
        return tuple(c for c in self.changes if c.severity == "rebuild")

    @property
    def destructive(self) -> tuple[Difference, ...]:
        return tuple(c for c in self.changes if c.severity == "destructive")

    @property
    def statements(self) -> list[str]:
        statements: list[str] = []
        for change in self.changes:
            statements += [s for s in change.statements if s not in statements]
        return statements


def plan(folder: Path, layouts: Sequence[Layout]) -> Plan:
    """What a new migration would have to do to bring the newest state to the metadata."""
    previous = latest(folder)
    if previous is not None and previous.state is None:
        raise StateError(f"{previous.problem}; {GENERATE_HINT} after restoring it")
    before = layouts_of(previous.state) if previous is not None and previous.state else []
    state = catalog_state(layouts)
    changes = compare(layouts_of(state), shapes_of(before), live=False)
    return Plan(previous=previous, state=state, changes=tuple(changes))


class RefusedError(Exception):
    """Generation would write a migration that loses data or cannot run on existing rows."""

    def __init__(self, message: str, changes: Sequence[Difference]):
        super().__init__(message)
        self.changes = tuple(changes)


@dataclass(frozen=True)
class GenerateResult:
    written: Path | None  # None when up to date
    plan: Plan


def _next_version(folder: Path, now: datetime) -> str:
    """Now (UTC), but after every migration already in the folder."""
    version = now.astimezone(UTC).strftime(_VERSION_FORMAT)
    existing = [
        m["version"] for p in (folder.iterdir() if folder.is_dir() else [])
        if (m := _ANY_MIGRATION.match(p.name))
    ]
    newest = max(existing, default="")
    if version <= newest:
        after = datetime.strptime(newest, _VERSION_FORMAT) + timedelta(seconds=1)
        version = after.strftime(_VERSION_FORMAT)
    return version


def generate(
    folder: Path,
    layouts: Sequence[Layout],
    *,
    allow_destructive: bool = False,
    now: datetime | None = None,
) -> GenerateResult:
    """Write a new migration when the metadata's layout differs from the newest state."""
    result = plan(folder, layouts)
    if result.up_to_date:
        return GenerateResult(written=None, plan=result)
    if result.needs_data:
        raise RefusedError(
            "these changes need data that existing rows do not have:\n"
            + "\n".join(f"  {c.qualified}: {c.detail}" for c in result.needs_data),
            result.needs_data,
        )
    if result.destructive and not allow_destructive:
        raise RefusedError(
            "these changes are destructive (data is dropped, or the migration fails on "
            "existing rows); pass --allow-destructive if that is intended:\n"
            + "\n".join(f"  {c.qualified}: {c.detail}" for c in result.destructive),
            result.destructive,
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_next_version(folder, now or datetime.now(UTC))}{FILE_SUFFIX}"
    path.write_text(render(result.state, result.changes, result.statements), encoding="utf-8")
    return GenerateResult(written=path, plan=result)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
    changes: tuple[Difference, ...] = ()


def check(folder: Path, layouts: Sequence[Layout]) -> CheckResult:
    """Whether the committed migrations' newest state is the metadata's, with a message."""
    try:
        result = plan(folder, layouts)
    except StateError as exc:
        return CheckResult(ok=False, message=str(exc))
    count = len(result.state["projections"])
    if result.up_to_date and result.previous is not None:
        return CheckResult(
            ok=True,
            message=f"projection migrations are current: {result.previous.path.name} "
            f"({count} projection{'' if count == 1 else 's'})",
        )
    if result.up_to_date:
        return CheckResult(ok=True, message="no projections, and no projection migrations")
    where = result.previous.path.name if result.previous else "no generated migration yet"
    lines = [f"projection migrations are stale ({where}); the metadata differs:"]
    lines += [f"  {c.qualified}: {c.detail}" for c in result.changes] or [
        "  (no SQL changes: the recorded state differs in form only, e.g. declaration order)"
    ]
    lines.append(GENERATE_HINT)
    return CheckResult(ok=False, message="\n".join(lines), changes=result.changes)
