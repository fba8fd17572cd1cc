"""The schema lock: the payload schemas every event and command type had, committed.

An event, once stored, is read again by every later version of the code; a command's shape
is a contract with whoever sends it. So a change to either must not quietly refuse what used
to be valid. `supabase/schema.lock.json` records, from the application's registry, per
event type its current schema version and the payload's JSON Schema at each version locked
so far (a version bump adds an entry; the old ones stay, so history stays checkable), and
per command type its payload's JSON Schema. `intent generate` updates it; `--check` fails
when it is stale. Both refuse an incompatible change (tools.codegen.schema_compat says what
narrows), naming the type, the field and what to do:

- an event type whose payload narrowed at the same version: bump the version and register
  an upcaster from the locked one. With a higher version and an upcaster for every step
  from the locked version, the new version's schema is added (the upcaster is what makes
  old payloads fit; it is not checked against the schemas); without them it is refused;
- a command type whose payload narrowed: commands have no versions, so keep the change
  compatible or declare a new command type;
- a locked type no longer registered: stored events of it could not be read, senders of
  it would be refused. Delete its entry from the lock by hand when that is meant (the
  deletion shows in review);
- a version lower than the locked one.

Schemas are pydantic's own (`model_json_schema(mode="validation")`, `$defs` included), so
the lock shows exactly what the models say.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.registry import Registry
from tools.codegen.results import CheckResult
from tools.codegen.schema_compat import Narrowing, narrowings
from tools.settings import REPO_ROOT

LOCK_PATH = REPO_ROOT / "supabase" / "schema.lock.json"
GENERATED_BY = (
    "intent generate (from the application's registry); do not edit, except to delete the "
    "entry of a type removed on purpose"
)
REGENERATE_HINT = "run `intent generate` and commit the result"


class LockError(Exception):
    """The lock cannot be updated: an incompatible change, or an unreadable lock file."""


@dataclass(frozen=True)
class Plan:
    document: dict[str, Any]  # what the lock says once updated
    refused: tuple[str, ...]  # one message per incompatible change
    changes: tuple[str, ...]  # one line per entry added or updated


@dataclass(frozen=True)
class GenerateResult:
    written: bool
    changes: tuple[str, ...]


def payload_schema(model: type[Any]) -> dict[str, Any]:
    """The JSON Schema a payload model validates with, as pydantic writes it."""
    return copy.deepcopy(model.model_json_schema(mode="validation"))


def render(document: Mapping[str, Any]) -> str:
    """Deterministic text: sorted keys, two-space indent, one trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _field(path: str) -> str:
    return f"field `{path}`" if path else "the payload"


# -- comparing with the registry -----------------------------------------------------------


def plan(locked: Mapping[str, Any] | None, registry: Registry) -> Plan:
    """The lock updated from the registry, and what of that update is refused."""
    events, commands = _sections(locked)
    refused: list[str] = []
    changes: list[str] = []
    for name in sorted(events.keys() - registry.event_types().keys()):
        refused.append(
            f"event type {name} is locked (version {events[name].get('version')}) but no "
            "longer registered: its stored events could not be read. Keep it registered, "
            "or delete its entry from the lock if no event of it was ever stored"
        )
    for name in sorted(commands.keys() - registry.command_types().keys()):
        refused.append(
            f"command type {name} is locked but no longer registered: senders of it would "
            "be refused. Keep it, or delete its entry from the lock if that is meant"
        )
    new_events: dict[str, Any] = {}
    for name, event in sorted(registry.event_types().items()):
        entry, lines, problems = _event(name, event.version, payload_schema(event.payload_model),
                                        events.get(name), registry)
        new_events[name] = entry
        changes += lines
        refused += problems
    new_commands: dict[str, Any] = {}
    for name, command in sorted(registry.command_types().items()):
        schema = payload_schema(command.payload_model)
        new_commands[name] = {"schema": schema}
        before = commands.get(name)
        if before is None:
            changes.append(f"  + command {name}: new")
        elif before.get("schema") != schema:
            found = narrowings(before.get("schema", {}), schema, "command")
            refused += [_command_refusal(name, n) for n in found]
            changes.append(f"  ~ command {name}: compatible change")
    document = {"generated_by": GENERATED_BY, "events": new_events, "commands": new_commands}
    return Plan(document, tuple(refused), tuple(changes))


def _event(
    name: str, version: int, schema: dict[str, Any], locked: Mapping[str, Any] | None,
    registry: Registry,
) -> tuple[dict[str, Any], list[str], list[str]]:
    """One event type's entry, the change lines and the refusals."""
    if locked is None:
        return ({"version": version, "schemas": {str(version): schema}},
                [f"  + event {name} v{version}: new"], [])
    was = _version(name, locked)
    schemas = dict(locked["schemas"])
    entry = {"version": version, "schemas": {**schemas, str(version): schema}}
    if version < was:
        return entry, [], [f"event type {name}: version {version} is below the locked "
                           f"version {was}; versions only go up"]
    before = schemas.get(str(was), {})
    if version == was:
        if before == schema:
            return entry, [], []
        problems = narrowings(before, schema, "event")
        return (entry, [f"  ~ event {name} v{version}: compatible change"],
                [_same_version_refusal(name, was, n) for n in problems])
    missing = [v for v in range(was, version) if not registry.has_upcaster(name, v)]
    if not missing:
        return entry, [f"  + event {name} v{version} (upcast from v{was})"], []
    hint = (f"the version is {version} but no upcaster from {missing[0]} is registered: "
            f"register one with registry.upcaster({name!r}, from_version={missing[0]})")
    problems = narrowings(before, schema, "event")
    if not problems:
        return entry, [], [f"event type {name}: {hint}"]
    return entry, [], [f"event type {name}, {_field(n.field)}: {n.reason}; {hint}"
                       for n in problems]


def _same_version_refusal(name: str, version: int, narrowing: Narrowing) -> str:
    return (
        f"event type {name}, {_field(narrowing.field)}: {narrowing.reason}, at the locked "
        f"version {version}, so stored events of it may no longer load. Bump the version "
        f"with registry.event({name!r}, version={version + 1}) and register an upcaster "
        f"from {version} (registry.upcaster({name!r}, from_version={version}))"
    )


def _command_refusal(name: str, narrowing: Narrowing) -> str:
    return (
        f"command type {name}, {_field(narrowing.field)}: {narrowing.reason}, so input that "
        "was valid would be refused. Commands have no versions: keep the change compatible "
        "(an optional field, a wider type or bound) or declare a new command type"
    )


def _version(name: str, locked: Mapping[str, Any]) -> int:
    version, schemas = locked.get("version"), locked.get("schemas")
    if not isinstance(version, int) or not isinstance(schemas, dict) or str(version) not in schemas:
        raise LockError(f"the lock's entry for event type {name} is malformed (it needs a "
                        "version and that version's schema)")
    return version


def _sections(locked: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    if locked is None:
        return {}, {}
    events, commands = locked.get("events", {}), locked.get("commands", {})
    if not isinstance(events, dict) or not isinstance(commands, dict):
        raise LockError("the lock has no `events` and `commands` objects")
    return events, commands


# -- the file ------------------------------------------------------------------------------


def _read(path: Path) -> tuple[str | None, dict[str, Any] | None]:
    if not path.is_file():
        return None, None
    text = path.read_text(encoding="utf-8")
    try:
        found = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LockError(f"{display_path(path)} is not valid JSON ({exc}); restore it from "
                        "version control") from exc
    if not isinstance(found, dict):
        raise LockError(f"{display_path(path)} is not a JSON object")
    return text, found


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _refusal(path: Path, refused: tuple[str, ...]) -> str:
    return "\n".join([f"{display_path(path)}: incompatible payload changes:",
                      *(f"  - {line}" for line in refused)])


def check(path: Path, registry: Registry) -> CheckResult:
    """Whether the lock is exactly what `generate` would write, and nothing is refused."""
    text, found = _read(path)
    result = plan(found, registry)
    name = display_path(path)
    if result.refused:
        return CheckResult(False, _refusal(path, result.refused))
    if text is None:
        return CheckResult(False, f"{name} is missing; {REGENERATE_HINT}")
    if text != render(result.document):
        lines = list(result.changes) or ["  (the same content, written differently: edited "
                                         "by hand?)"]
        return CheckResult(False, "\n".join([f"{name} is stale:", *lines, REGENERATE_HINT]))
    doc = result.document
    return CheckResult(True, f"{name} is current ({len(doc['events'])} event types, "
                             f"{len(doc['commands'])} command types)")


def generate(path: Path, registry: Registry) -> GenerateResult:
    """Write the updated lock; raise LockError (writing nothing) when a change is refused."""
    text, found = _read(path)
    result = plan(found, registry)
    if result.refused:
        raise LockError(_refusal(path, result.refused))
    rendered = render(result.document)
    if text == rendered:
        return GenerateResult(written=False, changes=())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rendered, encoding="utf-8")
    return GenerateResult(written=True, changes=result.changes or ("  (new file)",))

