"""The edge function's command catalogue, generated from the Python registry.

The `command` edge function refuses a bad command before it costs a database round trip,
so it needs what the registry knows: each command type's payload schema, its target
aggregate, the payload field naming that aggregate, the roles that may send it, and the
payload size limit the SQL ingress enforces. This module renders all of that as one JSON
file (`supabase/functions/_shared/command_schemas.json`) and tells whether the file on disk
still matches.

Sources of truth, one each: the registry (`projections.shop.registry`) for the command types, and
the newest migration defining `public.submit_command` for the size limit (its
`max_payload_bytes` constant), so the limit is never written down twice.

The schemas are pydantic's JSON Schemas (draft 2020-12) made self-contained: `$ref`s into
`$defs` are inlined, because the function's validator is deliberately small. Every keyword
used must be one that validator implements (or a pure annotation); generation fails
naming any other, rather than shipping a schema the edge would silently not enforce.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.bounds import bounded_schema
from domain.registry import Registry
from tools.codegen.results import CheckResult
from tools.local.migrations import MIGRATION_NAME
from tools.settings import REPO_ROOT

SCHEMAS_PATH = REPO_ROOT / "supabase" / "functions" / "_shared" / "command_schemas.json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE_HINT = "run `intent generate` and commit the result"

# Keywords the edge function enforces (VALIDATION_KEYWORDS in
# supabase/functions/_shared/catalog.ts). Keep the lists in step:
# tests/unit/test_json_schemas.py compares them.
VALIDATION_KEYWORDS = frozenset(
    {
        "type", "enum", "const",
        "properties", "required", "additionalProperties", "patternProperties",
        "minProperties", "maxProperties",
        "items", "prefixItems", "minItems", "maxItems", "uniqueItems",
        "minLength", "maxLength", "pattern", "format",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "anyOf", "oneOf", "allOf", "not",
    }
)
# Keywords that only describe; the validator ignores them.
ANNOTATION_KEYWORDS = frozenset(
    {"$schema", "title", "description", "default", "examples", "deprecated", "readOnly",
     "writeOnly", "$comment"}
)
# Keywords whose value is one subschema, a list of them, or a name -> subschema map.
_SUBSCHEMA = ("additionalProperties", "items", "not")
_SUBSCHEMA_LISTS = ("prefixItems", "anyOf", "oneOf", "allOf")
_SUBSCHEMA_MAPS = ("properties", "patternProperties")

_SUBMIT_COMMAND = re.compile(
    r"create\s+(?:or\s+replace\s+)?function\s+public\.submit_command\s*\(", re.IGNORECASE
)
_PAYLOAD_LIMIT = re.compile(
    r"max_payload_bytes\s+constant\s+integer\s*:=\s*(\d+)\s*;", re.IGNORECASE
)


class SchemaError(Exception):
    """The catalogue cannot be built; the message says what to change."""


@dataclass(frozen=True)
class GenerateResult:
    written: bool
    differences: tuple[str, ...]  # what changed, empty when the file was already current


# -- the payload limit, from the SQL ingress ---------------------------------------------------


def payload_limit(migrations_dir: Path) -> int:
    """`max_payload_bytes` of the newest migration that (re)defines public.submit_command."""
    limit: int | None = None
    source: str | None = None
    files = migrations_dir.glob("*.sql") if migrations_dir.is_dir() else iter(())
    for path in sorted(p for p in files if MIGRATION_NAME.match(p.name)):
        text = path.read_text(encoding="utf-8")
        definition = _SUBMIT_COMMAND.search(text)
        if definition is None:
            continue
        found = _PAYLOAD_LIMIT.search(text, definition.end())
        if found is None:
            raise SchemaError(
                f"{path.name} defines public.submit_command without a "
                "`max_payload_bytes constant integer := <n>;` declaration; the edge "
                "function's size limit is read from it"
            )
        limit, source = int(found[1]), path.name
    if limit is None or source is None:
        raise SchemaError(f"no migration in {migrations_dir} defines public.submit_command")
    if limit < 1:
        raise SchemaError(f"{source}: max_payload_bytes must be positive, got {limit}")
    return limit


# -- making a pydantic schema self-contained ---------------------------------------------------


def _resolve(node: Any, defs: Mapping[str, Any], trail: tuple[str, ...]) -> Any:
    """Inline `#/$defs/...` references; refuse recursive models (they cannot be inlined)."""
    if isinstance(node, list):
        return [_resolve(item, defs, trail) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        prefix = "#/$defs/"
        name = ref[len(prefix):] if ref.startswith(prefix) else None
        if name is None or name not in defs:
            raise SchemaError(f"unsupported reference {ref!r}")
        if name in trail:
            raise SchemaError(
                f"recursive model {' -> '.join((*trail, name))}: the edge validator needs "
                "self-contained schemas"
            )
        target = _resolve(defs[name], defs, (*trail, name))
        siblings = {k: _resolve(v, defs, trail) for k, v in node.items() if k != "$ref"}
        return {"allOf": [target], **siblings} if siblings else target
    return {
        key: _resolve(value, defs, trail)
        for key, value in node.items()
        # pydantic's OpenAPI-style hint for tagged unions: its mapping points into $defs,
        # and the oneOf beside it already does the validating.
        if key not in ("$defs", "discriminator")
    }


def _unsupported(schema: Any, path: str) -> Iterator[str]:
    """Paths of keywords the edge validator would not enforce."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        yield f"{path} (a schema must be an object or a boolean)"
        return
    for key, value in schema.items():
        here = f"{path}/{key}"
        if key in ANNOTATION_KEYWORDS:
            continue
        if key not in VALIDATION_KEYWORDS:
            yield here
        elif key in _SUBSCHEMA:
            yield from _unsupported(value, here)
        elif key in _SUBSCHEMA_LISTS:
            for index, item in enumerate(value if isinstance(value, list) else [value]):
                yield from _unsupported(item, f"{here}/{index}")
        elif key in _SUBSCHEMA_MAPS:
            for name, item in (value.items() if isinstance(value, dict) else []):
                yield from _unsupported(item, f"{here}/{name}")


def payload_schema(model: type[Any], command_type: str,
                   platform_field: str | None = None) -> dict[str, Any]:
    """The payload model's JSON Schema, self-contained, with the default bounds of
    `domain.bounds` filled in, and checked against the validator. `platform_field` (a
    command's actor, domain.senders) is left out: the platform fills it, so a client that
    sends it is refused as sending an unknown field."""
    raw = copy.deepcopy(model.model_json_schema(mode="validation"))
    if platform_field is not None:
        raw.get("properties", {}).pop(platform_field, None)
        if platform_field in raw.get("required", []):
            raw["required"].remove(platform_field)
    defs = raw.pop("$defs", {})
    schema = bounded_schema(_resolve(raw, defs, ()))
    bad = list(_unsupported(schema, "#"))
    if bad:
        raise SchemaError(
            f"{command_type}: the payload schema uses keywords the edge function does not "
            f"enforce: {', '.join(bad)} (extend VALIDATION_KEYWORDS here and in "
            "supabase/functions/_shared/catalog.ts together)"
        )
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


# -- the document ------------------------------------------------------------------------------


def document(registry: Registry, max_payload_bytes: int) -> dict[str, Any]:
    """Everything the edge function needs, as one JSON-ready dict."""
    commands = {
        name: {
            "aggregate_type": command.aggregate.type_name,
            "aggregate_id_field": command.aggregate_id_field,
            "roles": sorted(command.roles),
            "schema": payload_schema(command.payload_model, name, command.actor_field),
        }
        for name, command in sorted(registry.command_types().items())
    }
    return {
        "generated_by": "intent generate (from the application's registry); do not edit",
        "max_payload_bytes": max_payload_bytes,
        "commands": commands,
    }


def render(doc: Mapping[str, Any]) -> str:
    """Deterministic text: sorted keys, two-space indent, one trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected_text(registry: Registry, migrations_dir: Path) -> str:
    return render(document(registry, payload_limit(migrations_dir)))


# -- differences -------------------------------------------------------------------------------


def _describe(entry: Mapping[str, Any]) -> str:
    roles = entry.get("roles")
    shown = ", ".join(roles) if isinstance(roles, list) else roles
    return (
        f"aggregate {entry.get('aggregate_type')}, id field "
        f"{entry.get('aggregate_id_field')}, roles {shown}"
    )


def differences(old: Any, new: Mapping[str, Any]) -> list[str]:
    """What changed from the file's content to the expected one, one line per change."""
    if not isinstance(old, dict):
        return ["  the file is not a JSON object"]
    lines: list[str] = []
    if old.get("max_payload_bytes") != new["max_payload_bytes"]:
        lines.append(
            f"  ~ max_payload_bytes: {old.get('max_payload_bytes')} -> "
            f"{new['max_payload_bytes']}"
        )
    before = old.get("commands")
    before = before if isinstance(before, dict) else {}
    after: Mapping[str, Any] = new["commands"]
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was is None and now is not None:
            lines.append(f"  + {name}: new ({_describe(now)})")
        elif now is None and isinstance(was, dict):
            lines.append(f"  - {name}: removed (was {_describe(was)})")
        elif now is not None and was != now:
            if not isinstance(was, dict):
                lines.append(f"  ~ {name}: not an object")
                continue
            changed = [
                key
                for key in ("aggregate_type", "aggregate_id_field", "roles", "schema")
                if was.get(key) != now.get(key)
            ]
            changed += sorted(k for k in was.keys() - now.keys())
            lines.append(f"  ~ {name}: {', '.join(changed)} changed")
    if not lines and old.get("generated_by") != new["generated_by"]:
        lines.append("  ~ generated_by changed")
    return lines


def _read(path: Path) -> tuple[str | None, Any]:
    if not path.is_file():
        return None, None
    text = path.read_text(encoding="utf-8")
    try:
        return text, json.loads(text)
    except json.JSONDecodeError:
        return text, None


def display_path(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def check(path: Path, registry: Registry, migrations_dir: Path) -> CheckResult:
    """Whether the file on disk is exactly what `generate` would write now."""
    doc = document(registry, payload_limit(migrations_dir))
    text = render(doc)
    found_text, found = _read(path)
    name = display_path(path)
    if found_text == text:
        count = len(doc["commands"])
        return CheckResult(True, f"{name} is current ({count} command types, payload limit "
                                 f"{doc['max_payload_bytes']} bytes)")
    if found_text is None:
        return CheckResult(False, f"{name} is missing; {REGENERATE_HINT}")
    if found is None:
        return CheckResult(False, f"{name} is not valid JSON; {REGENERATE_HINT}")
    lines = differences(found, doc) or ["  (the same content, written differently: edited "
                                        "by hand?)"]
    return CheckResult(False, "\n".join([f"{name} is stale:", *lines, REGENERATE_HINT]))


def generate(path: Path, registry: Registry, migrations_dir: Path) -> GenerateResult:
    """Write the file when its content differs from what the registry says."""
    doc = document(registry, payload_limit(migrations_dir))
    text = render(doc)
    found_text, found = _read(path)
    if found_text == text:
        return GenerateResult(written=False, differences=())
    changes = differences(found, doc) if found is not None else ["  (new file)"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return GenerateResult(written=True, differences=tuple(changes))
