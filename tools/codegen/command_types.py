"""The SQL ingress's allow list, generated from the Python registry.

`public.submit_command` accepts a command only when its type is in `intent.command_types`,
and only from the roles listed there; it reads the target aggregate's type and the payload
field naming it from the same row. The registry (`projections.shop.registry`) is the single source
of truth, so the table is never edited by hand: this module renders the registry's command
types as a migration that replaces the whole table, and tells whether the newest such
migration still matches the registry.

Generated migrations are named `<YYYYMMDDHHMMSS>_command_types.sql` and carry a marker line
with a hash of the rows they insert. The newest one is "current" when its marker hash is the
registry's hash and its text is exactly what would be rendered now (so a hand edit shows up
as well). `generate` writes a new file only when the newest one is not current; `check`
fails with a readable difference when it is not.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from domain.bounds import field_limits
from domain.registry import Registry
from tools.codegen.json_schemas import payload_schema
from tools.codegen.results import CheckResult
from tools.local.migrations import MIGRATION_NAME

FILE_SUFFIX = "_command_types.sql"
MARKER = "-- intent:command-types sha256="
_MARKER_LINE = re.compile(r"^-- intent:command-types sha256=(?P<hash>[0-9a-f]{64})\s*$", re.M)
_ROW_LINE = re.compile(r"^\s*\('.*\)[,;]?\s*$")
_LITERAL = re.compile(r"'((?:[^']|'')*)'")
# A row's tenant field, after its limits: `'[...]'::jsonb, 'tenant_id')`.
_TENANT_FIELD = re.compile(r"::jsonb, '[a-z_][a-z0-9_]*'\)[,;]?\s*$")
_VERSION_FORMAT = "%Y%m%d%H%M%S"
REGENERATE_HINT = "run `intent generate` to write a new migration (never edit an old one)"

_HEADER = """\
-- The command types the SQL ingress accepts (intent.command_types), generated from the
-- application's registry by `intent generate`. Do not edit: change the registry and
-- generate again. Each generated migration replaces the whole list, so the newest one
-- alone says what is allowed.
"""


@dataclass(frozen=True, order=True)
class CommandTypeRow:
    """One row of intent.command_types."""

    command_type: str
    aggregate_type: str
    aggregate_id_field: str
    roles: tuple[str, ...]  # sorted
    # The payload's field limits (domain.bounds.field_limits) as canonical JSON text.
    limits: str = "[]"
    # The payload field naming the tenant it is filed under (domain.senders), if any.
    tenant_field: str | None = None

    def describe(self) -> str:
        tenant = f", tenant from {self.tenant_field}" if self.tenant_field else ""
        return (
            f"aggregate {self.aggregate_type}, id field {self.aggregate_id_field}, "
            f"roles {', '.join(self.roles)}, {len(json.loads(self.limits))} field limit(s)"
            f"{tenant}"
        )


@dataclass(frozen=True)
class GeneratedFile:
    """A generated migration as found on disk."""

    path: Path
    text: str
    marker_hash: str | None
    rows: tuple[CommandTypeRow, ...] | None  # None when its rows cannot be read back


@dataclass(frozen=True)
class Status:
    """How the newest generated migration compares with a registry."""

    expected_rows: tuple[CommandTypeRow, ...]
    expected_hash: str
    expected_text: str
    latest: GeneratedFile | None

    @property
    def current(self) -> bool:
        return (
            self.latest is not None
            and self.latest.marker_hash == self.expected_hash
            and self.latest.text == self.expected_text
        )


@dataclass(frozen=True)
class GenerateResult:
    written: Path | None  # None when the newest generated migration was already current
    status: Status  # as it was before writing


# -- rendering ---------------------------------------------------------------------------------


def rows_of(registry: Registry) -> tuple[CommandTypeRow, ...]:
    """The registry's command types as table rows, in a fixed order."""
    return tuple(
        sorted(
            CommandTypeRow(
                command_type=command.name,
                aggregate_type=command.aggregate.type_name,
                aggregate_id_field=command.aggregate_id_field,
                roles=tuple(sorted(command.roles)),
                limits=_canonical(
                    field_limits(payload_schema(command.payload_model, command.name,
                                                command.actor_field))
                ),
                tenant_field=command.tenant_field,
            )
            for command in registry.command_types().values()
        )
    )


def _canonical(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=True)


def content_hash(rows: Iterable[CommandTypeRow]) -> str:
    """A hash of the rows alone (not of the SQL around them)."""
    canonical = _canonical(
        [
            [row.command_type, row.aggregate_type, row.aggregate_id_field, list(row.roles),
             json.loads(row.limits), *([row.tenant_field] if row.tenant_field else [])]
            for row in sorted(rows, key=_order)
        ]
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _order(row: CommandTypeRow) -> tuple[str, ...]:
    return (row.command_type, row.aggregate_type, row.aggregate_id_field, *row.roles,
            row.limits, row.tenant_field or "")


def _row_sql(row: CommandTypeRow, with_tenant: bool) -> str:
    roles = ", ".join(_literal(role) for role in row.roles)
    tenant = ""
    if with_tenant:
        tenant = f", {_literal(row.tenant_field)}" if row.tenant_field else ", null"
    return (
        f"({_literal(row.command_type)}, {_literal(row.aggregate_type)}, "
        f"{_literal(row.aggregate_id_field)}, array[{roles}]::text[], "
        f"{_literal(row.limits)}::jsonb{tenant})"
    )


def render(rows: Sequence[CommandTypeRow]) -> str:
    """The whole migration: deterministic for a given set of rows."""
    ordered = sorted(rows, key=_order)
    with_tenant = any(row.tenant_field for row in ordered)
    parts = [
        _HEADER,
        f"{MARKER}{content_hash(ordered)}\n",
        "\n",
        # A WHERE clause, for databases that load pg-safeupdate.
        "delete from intent.command_types where true;\n",
    ]
    if ordered:
        values = ",\n".join(f"  {_row_sql(row, with_tenant)}" for row in ordered)
        columns = "command_type, aggregate_type, aggregate_id_field, roles, payload_limits"
        if with_tenant:
            columns += ", tenant_field"
        parts += [
            "\n",
            f"insert into intent.command_types ({columns})\n",
            "values\n",
            f"{values};\n",
        ]
    return "".join(parts)


# -- reading back ------------------------------------------------------------------------------


def _parse_rows(text: str) -> tuple[CommandTypeRow, ...] | None:
    rows: list[CommandTypeRow] = []
    for line in text.splitlines():
        if line.lstrip().startswith("--") or not _ROW_LINE.match(line):
            continue
        values = [match.replace("''", "'") for match in _LITERAL.findall(line)]
        tenant = values.pop() if _TENANT_FIELD.search(line) else None
        limits = values.pop() if "::jsonb" in line and len(values) > 4 else "[]"
        if len(values) < 4:
            return None
        rows.append(
            CommandTypeRow(
                command_type=values[0],
                aggregate_type=values[1],
                aggregate_id_field=values[2],
                roles=tuple(sorted(values[3:])),
                limits=limits,
                tenant_field=tenant,
            )
        )
    return tuple(sorted(rows, key=_order))


def generated_files(folder: Path) -> list[Path]:
    """Generated command-type migrations in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.name.endswith(FILE_SUFFIX) and MIGRATION_NAME.match(path.name)
    )


def latest_generated(folder: Path) -> GeneratedFile | None:
    files = generated_files(folder)
    if not files:
        return None
    path = files[-1]
    text = path.read_text(encoding="utf-8")
    marker = _MARKER_LINE.search(text)
    return GeneratedFile(
        path=path,
        text=text,
        marker_hash=marker["hash"] if marker else None,
        rows=_parse_rows(text),
    )


def status(folder: Path, registry: Registry) -> Status:
    rows = rows_of(registry)
    return Status(
        expected_rows=rows,
        expected_hash=content_hash(rows),
        expected_text=render(rows),
        latest=latest_generated(folder),
    )


# -- differences -------------------------------------------------------------------------------


def differences(
    old: Sequence[CommandTypeRow], new: Sequence[CommandTypeRow]
) -> list[str]:
    """What changed from `old` to `new`, one readable line per command type."""
    before = {row.command_type: row for row in old}
    after = {row.command_type: row for row in new}
    lines: list[str] = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was is None and now is not None:
            lines.append(f"  + {name}: new ({now.describe()})")
        elif now is None and was is not None:
            lines.append(f"  - {name}: removed (was {was.describe()})")
        elif was is not None and now is not None and was != now:
            changes = [
                f"{label} {getattr(was, field_name)} -> {getattr(now, field_name)}"
                for label, field_name in (
                    ("aggregate", "aggregate_type"),
                    ("id field", "aggregate_id_field"),
                )
                if getattr(was, field_name) != getattr(now, field_name)
            ]
            if was.roles != now.roles:
                changes.append(f"roles {', '.join(was.roles)} -> {', '.join(now.roles)}")
            if was.limits != now.limits:
                changes.append(f"field limits {was.limits} -> {now.limits}")
            lines.append(f"  ~ {name}: {'; '.join(changes)}")
    return lines


def explain(state: Status) -> str:
    """Why the newest generated migration is not current (empty when it is)."""
    if state.current:
        return ""
    latest = state.latest
    if latest is None:
        return (
            f"no generated command-types migration (*{FILE_SUFFIX}) yet; the ingress would "
            f"refuse every command type. {REGENERATE_HINT}"
        )
    name = latest.path.name
    if latest.marker_hash == state.expected_hash or latest.rows is None:
        reason = (
            f"{name} does not have the content generated for the registry's command types "
            "(edited by hand, or written by another version of the generator)"
        )
        found = differences(latest.rows, state.expected_rows) if latest.rows is not None else []
        return "\n".join([f"{reason}:" if found else reason, *found, REGENERATE_HINT])
    lines = [f"{name} is out of date: the registry's command types changed since it was "
             "generated:"]
    lines += differences(latest.rows, state.expected_rows) or [
        "  (the same command types, in a different form)"
    ]
    lines.append(REGENERATE_HINT)
    return "\n".join(lines)


# -- the two operations ------------------------------------------------------------------------


def _next_version(folder: Path, now: datetime) -> str:
    """Now (UTC), but always after every migration already in the folder."""
    version = now.astimezone(UTC).strftime(_VERSION_FORMAT)
    existing = [
        match["version"]
        for path in (folder.iterdir() if folder.is_dir() else [])
        if (match := MIGRATION_NAME.match(path.name))
    ]
    newest = max(existing, default="")
    if version <= newest:
        try:
            after = datetime.strptime(newest, _VERSION_FORMAT) + timedelta(seconds=1)
            version = after.strftime(_VERSION_FORMAT)
        except ValueError:
            version = str(int(newest) + 1).zfill(len(newest))
    return version


def generate(folder: Path, registry: Registry, *, now: datetime | None = None) -> GenerateResult:
    """Write a new generated migration when the newest one does not match the registry."""
    state = status(folder, registry)
    if state.current:
        return GenerateResult(written=None, status=state)
    folder.mkdir(parents=True, exist_ok=True)
    version = _next_version(folder, now or datetime.now(UTC))
    path = folder / f"{version}{FILE_SUFFIX}"
    path.write_text(state.expected_text, encoding="utf-8")
    return GenerateResult(written=path, status=state)


def check(folder: Path, registry: Registry) -> CheckResult:
    """Whether the newest generated migration matches the registry, with a message."""
    state = status(folder, registry)
    if state.current and state.latest is not None:
        count = len(state.expected_rows)
        return CheckResult(
            ok=True,
            message=f"command types are current: {state.latest.path.name} "
            f"({count} command type{'' if count == 1 else 's'})",
        )
    return CheckResult(ok=False, message=explain(state))
