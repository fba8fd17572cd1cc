"""Whether a payload's new JSON Schema still accepts what its old one accepted.

The schema lock (tools.codegen.schema_lock) keeps each event and command type's payload
schema as pydantic wrote it (`model_json_schema(mode="validation")`, `$defs` and all), and
asks this module what a code change narrowed. Pure: two schemas in, a list of `Narrowing`s
(field path, reason) out; an empty list means compatible.

Why not a library: PyPI's candidates do not fit. `jsoncompat` (the one maintained checker)
needs Python >= 3.12 while the project supports 3.11, and answers with its own verdicts
rather than per-field reasons in the terms below; `jsonschema-diff` only displays
differences, and `api-schema-diff` is OpenAPI-shaped. The rules are few, and are the
project's policy as much as JSON Schema logic, so they live here.

The rules, both kinds (a change is a narrowing when a value the old schema accepted may be
refused by the new one):

- type: each old JSON type must stay accepted (integer -> number is a widening; a type
  gaining `null`, or a union gaining a branch, is a widening; the reverse is not);
- enum/const (Enum, Literal): each old value must stay in the new list; a list where there
  was none is a narrowing;
- constraints: a larger minimum/minLength/minItems/minProperties, a smaller maximum/
  maxLength/maxItems/maxProperties, an exclusive bound where the same bound was inclusive,
  and a new or changed pattern, format or multipleOf, or a new uniqueItems, narrow;
- objects: a new field listed in `required` (pydantic: no default) narrows, and so does
  an optional field becoming required; a field's own schema is compared recursively
  (nested models through `$ref`/`$defs`, list items as `field[]`, dict values as
  `field.*`).

Only for events (stored payloads are read again, by the newest model): a removed field
narrows whatever `extra` says, since stored events carry it and it would be lost or refused;
a removed field whose schema reappears under a new name is reported as a rename.

Only for commands (a sender's input must keep being accepted): a removed field narrows only
when the new model forbids extra fields (`additionalProperties: false`); forbidding extra
fields where they were allowed narrows too.

Not covered, knowingly: a new optional field on a command that used to ignore extra fields
(input may have carried it with any value); the default bounds of domain.bounds (the same
for every type, changed by hand, never by a model); cross-field validators (not in a JSON
Schema at all); `not`, `if`/`then`, `dependentRequired` and other keywords pydantic does not
emit for plain models (they are ignored).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["event", "command"]

_ANNOTATIONS = frozenset(
    {"$schema", "title", "description", "default", "examples", "deprecated", "readOnly",
     "writeOnly", "$comment", "discriminator"}
)
_RAISED_NARROWS = ("minLength", "minItems", "minProperties")
_LOWERED_NARROWS = ("maxLength", "maxItems", "maxProperties")
_EXACT = ("pattern", "format")
_REF_PREFIX = "#/$defs/"


@dataclass(frozen=True)
class Narrowing:
    field: str  # a dotted path into the payload ("" for the payload itself)
    reason: str


def narrowings(old: Mapping[str, Any], new: Mapping[str, Any], kind: Kind) -> list[Narrowing]:
    """What `new` refuses that `old` accepted, per the rules in the module docstring."""
    return list(_Walk(old, new, kind).node(dict(old), dict(new), ""))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _types(node: Mapping[str, Any]) -> set[str] | None:
    """The JSON types a (resolved, single-branch) schema allows; None when it says nothing."""
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {str(t) for t in declared}
    values = _values(node)
    if values is not None:
        return {_json_type(v) for v in values}
    if "properties" in node:
        return {"object"}
    if "items" in node or "prefixItems" in node:
        return {"array"}
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _values(node: Mapping[str, Any]) -> list[Any] | None:
    if "const" in node:
        return [node["const"]]
    enum = node.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _describe(node: Mapping[str, Any]) -> str:
    values = _values(node)
    if values is not None:
        return "one of " + ", ".join(repr(v) for v in values)
    types = _types(node)
    return "|".join(sorted(types)) if types else "any value"


def _accepts_all(node: Any) -> bool:
    return node is True or (isinstance(node, dict) and not set(node) - _ANNOTATIONS)


class _Walk:
    """One comparison: the two roots' `$defs`, and the references being compared (so a
    recursive model is compared once, not forever)."""

    def __init__(self, old: Mapping[str, Any], new: Mapping[str, Any], kind: Kind) -> None:
        self.old_defs: Mapping[str, Any] = old.get("$defs", {})
        self.new_defs: Mapping[str, Any] = new.get("$defs", {})
        self.kind = kind
        self.active: set[tuple[str, str]] = set()

    def node(self, old: Any, new: Any, path: str) -> Iterator[Narrowing]:
        old, old_ref = _resolve(old, self.old_defs)
        new, new_ref = _resolve(new, self.new_defs)
        if old_ref is None or new_ref is None:
            yield from self._compare(old, new, path)
            return
        pair = (old_ref, new_ref)
        if pair in self.active:
            return
        self.active.add(pair)
        try:
            yield from self._compare(old, new, path)
        finally:
            self.active.discard(pair)

    def _compare(self, old: Any, new: Any, path: str) -> Iterator[Narrowing]:
        if _accepts_all(new) or old is False:
            return
        if new is False:
            yield Narrowing(path, "no value is accepted any more")
            return
        if old is True:
            old = {}
        old_branches, new_branches = _branches(old), _branches(new)
        if len(old_branches) > 1:
            for branch in old_branches:
                yield from self.node(branch, new, path)
            return
        if len(new_branches) > 1:
            attempts = [list(self.node(old, branch, path)) for branch in new_branches]
            if not all(attempts):
                return
            yield from min(attempts, key=len)
            return
        yield from self._single(old, new, path)

    def _single(self, old: dict[str, Any], new: dict[str, Any], path: str) -> Iterator[Narrowing]:
        old_types, new_types = _types(old), _types(new)
        if new_types is not None:
            lost = (old_types or {"any"}) - new_types
            if "number" in new_types:
                lost.discard("integer")
            if lost:
                yield Narrowing(
                    path, f"type changed from {_describe(old)} to {_describe(new)}"
                )
                return
        yield from _enum(old, new, path)
        yield from _bounds(old, new, path)
        if "properties" in old or "properties" in new or "additionalProperties" in new:
            yield from self._object(old, new, path)
        if "items" in old or "items" in new:
            yield from self.node(old.get("items", True), new.get("items", True), f"{path}[]")
        for index, (was, now) in enumerate(
            zip(old.get("prefixItems", []), new.get("prefixItems", []), strict=False)
        ):
            yield from self.node(was, now, f"{path}[{index}]")

    def _object(self, old: dict[str, Any], new: dict[str, Any], path: str) -> Iterator[Narrowing]:
        old_props: dict[str, Any] = old.get("properties", {})
        new_props: dict[str, Any] = new.get("properties", {})
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        added = [name for name in new_props if name not in old_props]
        for name in old_props:
            here = _join(path, name)
            if name in new_props:
                if name in new_required and name not in old_required:
                    yield Narrowing(here, "an optional field became required")
                yield from self.node(old_props[name], new_props[name], here)
            elif self.kind == "event":
                yield Narrowing(here, _removed(old_props[name], new_props, added))
            elif new_extra is False:
                yield Narrowing(here, "removed while extra fields are forbidden, so input "
                                      "carrying it is refused")
            elif isinstance(new_extra, dict):
                yield from self.node(old_props[name], new_extra, here)
        for name in added:
            if name in new_required:
                yield Narrowing(_join(path, name), "a new required field without a default")
        if self.kind == "command" and new_extra is False and old_extra is not False:
            yield Narrowing(path, "extra fields are now forbidden")
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            yield from self.node(old_extra, new_extra, _join(path, "*"))


def _removed(schema: Any, new_props: Mapping[str, Any], added: list[str]) -> str:
    """A removed event field's reason, naming the new field it was probably renamed to."""
    renamed = [name for name in added if _bare(new_props[name]) == _bare(schema)]
    if renamed:
        return f"removed or renamed (to `{renamed[0]}`?)"
    return "removed"


def _bare(schema: Any) -> Any:
    """A schema without its annotations (a renamed field's title changes with its name)."""
    if not isinstance(schema, dict):
        return schema
    return {k: v for k, v in schema.items() if k not in _ANNOTATIONS}


def _resolve(node: Any, defs: Mapping[str, Any]) -> tuple[Any, str | None]:
    """Follow `$ref`s into `$defs` and fold a pydantic-style `allOf` into its node; the
    last reference's name comes back too, for the recursion guard."""
    name: str | None = None
    for _ in range(64):
        if not isinstance(node, dict):
            return node, name
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith(_REF_PREFIX) or ref[len(_REF_PREFIX):] not in defs:
                raise ValueError(f"unsupported reference {ref!r}")
            name = ref[len(_REF_PREFIX):]
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**defs[name], **siblings}
            continue
        parts = node.get("allOf")
        if isinstance(parts, list) and all(isinstance(p, dict) for p in parts):
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for part in parts:
                merged.update(_resolve(part, defs)[0])
            return merged, name
        return node, name
    raise ValueError("a chain of 64 references: refusing to follow it further")


def _branches(node: Any) -> list[Any]:
    """The alternatives of an anyOf/oneOf (each with the node's other keywords), or the node."""
    if not isinstance(node, dict):
        return [node]
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list) and options:
            siblings = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
            return [{**siblings, **o} if isinstance(o, dict) else o for o in options]
    return [node]


def _enum(old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> Iterator[Narrowing]:
    now = _values(new)
    if now is None:
        return
    was = _values(old)
    if was is None:
        yield Narrowing(path, f"now limited to {_describe(new)} (was {_describe(old)})")
        return
    lost = [value for value in was if value not in now]
    if lost:
        shown = ", ".join(repr(v) for v in lost)
        yield Narrowing(path, f"enum narrowed: {shown} no longer accepted")


def _bounds(old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> Iterator[Narrowing]:
    for key in _RAISED_NARROWS:
        if key in new and new[key] > old.get(key, 0):
            yield Narrowing(path, f"{key} raised from {old.get(key, 'none')} to {new[key]}")
    for key in _LOWERED_NARROWS:
        if key in new and (key not in old or new[key] < old[key]):
            yield Narrowing(path, f"{key} lowered from {old.get(key, 'none')} to {new[key]}")
    low_old, low_new = _bound(old, "minimum"), _bound(new, "minimum")
    if low_new is not None and (low_old is None or low_new > low_old):
        yield Narrowing(path, f"lower bound raised from {_shown(low_old)} to {_shown(low_new)}")
    high_old, high_new = _bound(old, "maximum"), _bound(new, "maximum")
    if high_new is not None and (high_old is None or _tighter_upper(high_new, high_old)):
        yield Narrowing(path, f"upper bound lowered from {_shown(high_old)} to "
                              f"{_shown(high_new)}")
    for key in _EXACT:
        if key in new and new[key] != old.get(key):
            yield Narrowing(path, f"{key} changed from {old.get(key, 'none')!r} to {new[key]!r}")
    step_old, step_new = old.get("multipleOf"), new.get("multipleOf")
    if step_new is not None and not (step_old and (step_old / step_new) % 1 == 0):
        yield Narrowing(path, f"multipleOf changed from {step_old} to {step_new}")
    if new.get("uniqueItems") and not old.get("uniqueItems"):
        yield Narrowing(path, "items must now be unique")


def _bound(node: Mapping[str, Any], key: str) -> tuple[float, bool] | None:
    """(value, exclusive) of the tighter of `key` and its exclusive twin."""
    exclusive_key = "exclusive" + key[0].upper() + key[1:]
    found = [(float(node[k]), k == exclusive_key) for k in (key, exclusive_key) if k in node]
    if not found:
        return None
    return max(found) if key == "minimum" else min(found, key=lambda b: (b[0], not b[1]))


def _tighter_upper(new: tuple[float, bool], old: tuple[float, bool]) -> bool:
    return new[0] < old[0] or (new[0] == old[0] and new[1] and not old[1])


def _shown(bound: tuple[float, bool] | None) -> str:
    if bound is None:
        return "none"
    value, exclusive = bound
    number = int(value) if value.is_integer() else value
    return f"{number} (exclusive)" if exclusive else str(number)
