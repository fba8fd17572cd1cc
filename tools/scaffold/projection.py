"""`intent new projection NAME --slice S`: a read model of a slice's aggregates declared as
Rules (one row per aggregate, the latest value of each field its events carry, so it folds
in SQL too), a test of it with the projection kit, and its place in the application's
`projections=[...]`. The columns and rules come from the slice's event payload models."""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

from pydantic import ValidationError

from domain.registry import EventType, Registry
from tools.scaffold.files import Plan, render
from tools.scaffold.names import check_snake
from tools.scaffold.project import Project
from tools.scaffold.slice import first_party
from tools.scaffold.wiring import register

_SQL_TYPES: dict[Any, str] = {
    UUID: "uuid", str: "text", bool: "boolean", int: "bigint", float: "double precision",
    Decimal: "numeric", datetime: "timestamptz", date: "date",
}
# An example value per column type, for the test (None: the test does not set the field).
_EXAMPLES: dict[str, tuple[str, Any] | None] = {
    "uuid": ("UUID(int=2)", UUID(int=2)), "text": ('"text"', "text"), "bigint": ("1", 1),
    "boolean": ("True", True),
}


class SliceNotFoundError(Exception):
    """The slice named by --slice cannot be imported, or declares no events."""


def sql_type(annotation: Any) -> str | None:
    """The column type for a payload field's annotation; None when no column type fits
    (nested models, lists: project them by hand)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return sql_type(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        return sql_type(inner[0]) if len(inner) == 1 else None
    if origin is Literal:
        kinds = {type(arg) for arg in get_args(annotation)}
        return _SQL_TYPES.get(kinds.pop()) if len(kinds) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "text" if issubclass(annotation, str) else None
    return _SQL_TYPES.get(annotation)


def load_slice(project: Project, slice_name: str) -> Registry:
    check_snake(slice_name, "slice")
    module_name = f"{project.slices}.{slice_name}"
    if str(project.root) not in sys.path:
        sys.path.insert(0, str(project.root))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SliceNotFoundError(f"slice {slice_name}: cannot import {module_name}: {exc}") from exc
    registry = getattr(module, "registry", None)
    if not isinstance(registry, Registry) or not registry.event_types():
        raise SliceNotFoundError(f"slice {slice_name}: {module_name} has no registry with events")
    return registry


def key_field(registry: Registry, chosen: str | None) -> str:
    fields = sorted({c.aggregate_id_field for c in registry.command_types().values()})
    if chosen is not None:
        return check_snake(chosen, "key")
    if len(fields) != 1:
        raise SliceNotFoundError(
            f"the slice's commands name their aggregates by {fields or 'none'}: say which "
            "field keys the rows with --key")
    return fields[0]


@dataclass(frozen=True)
class Shape:
    """The table's columns (name -> type) and, per event, the fields each rule sets."""

    key_type: str
    columns: dict[str, str]
    rules: list[tuple[EventType, list[str]]]
    skipped: list[str]


def shape(registry: Registry, key: str) -> Shape:
    columns: dict[str, str] = {}
    rules: list[tuple[EventType, list[str]]] = []
    skipped: list[str] = []
    key_type = "uuid"
    for kind in registry.event_types().values():
        fields = kind.payload_model.model_fields
        if key not in fields:
            skipped.append(f"{kind.name} (no {key} field)")
            continue
        key_type = sql_type(fields[key].annotation) or key_type
        sets: list[str] = []
        for name, info in fields.items():
            column = sql_type(info.annotation)
            if name == key:
                continue
            if column is None or columns.setdefault(name, column) != column:
                skipped.append(f"{kind.name}.{name}")
                continue
            sets.append(name)
        rules.append((kind, sets))
    if not rules:
        raise SliceNotFoundError(f"no event of the slice carries the key field {key}")
    return Shape(key_type, columns, rules, skipped)


def _rule(kind: EventType, table: str, sets: list[str]) -> str:
    values = [f'"{field}": payload("{field}")' for field in sets] + ['"updated_at": OCCURRED_AT']
    body = "".join(f"                {value},\n" for value in values)
    return (f'        On(\n            "{kind.name}",\n            "{table}",\n'
            f"            key=KEY,\n            set={{\n{body}            }},\n        ),")


def plan_projection(project: Project, name: str, slice_name: str, key: str | None) -> Plan:
    check_snake(name, "projection")
    registry = load_slice(project, slice_name)
    field = key_field(registry, key)
    found = shape(registry, field)
    module = f"{project.projections}.{name}"
    constant = name.upper()
    columns = "\n".join(f'                Column(name="{column}", type="{kind}"),'
                        for column, kind in found.columns.items())
    rules = "\n".join(_rule(kind, name, sets) for kind, sets in found.rules)
    aggregate = next(iter(registry.command_types().values()), None)
    values = {"name": name, "slice": slice_name, "constant": constant, "id_field": field,
              "id_type": found.key_type, "columns": columns, "rules": rules,
              "aggregate": aggregate.aggregate.type_name if aggregate else slice_name}
    plan = Plan()
    folder = project.package_dir(project.projections)
    plan.create[folder / f"{name}.py"] = render("projection/projection.py.tmpl", values)
    test = _test(project, module, constant, field, values["aggregate"], found)
    if test is not None:
        plan.create[project.test_file("integration", name)] = test
    plan.absent.append(folder / name)
    plan.refuse_existing()  # before the registration, which would refuse a second run too
    app = project.app_file
    plan.rewrite[app] = register(
        app.read_text(encoding="utf-8"), attribute=project.app_attribute,
        keyword="projections", module=module, name=constant,
        first_party=first_party(project))
    return plan


def _test(project: Project, module: str, constant: str, key: str, aggregate_type: str,
          found: Shape) -> str | None:
    """The kit's test of the first rule, or None when its event cannot be built from
    example values (a field of a type without one, a constraint they break)."""
    kind, sets = found.rules[0]
    model = kind.payload_model
    example: dict[str, str] = {key: "key"}
    values: dict[str, Any] = {key: UUID(int=1)}
    for field, info in model.model_fields.items():
        if field == key:
            continue
        known = _EXAMPLES.get(found.columns.get(field, ""))
        if known is None:
            if info.is_required():
                return None
            continue
        example[field], values[field] = known
    try:
        model.model_validate(values)
    except ValidationError:
        return None
    asserts = "\n".join(f'    assert row["{field}"] == {example[field]}'
                        for field in sets if field in example)
    stdlib = "from uuid import UUID\n\n" if "UUID(" in "".join(example.values()) else ""
    imports = [f"from {model.__module__} import {model.__name__}",
               f"from {module} import {constant}"]
    return render("projection/test.py.tmpl", {
        "name": module.rsplit(".", 1)[-1], "stdlib": stdlib, "imports": "\n".join(imports),
        "event_short": kind.name.rsplit(".", 1)[-1], "aggregate_type": aggregate_type,
        "constant": constant, "event_class": model.__name__, "id_field": key,
        "example": ", ".join(f"{field}={code}" for field, code in example.items()),
        "asserts": asserts,
    })


def next_steps(project: Project, name: str, written: list[str]) -> list[str]:
    module = project.shown(project.package_dir(project.projections) / f"{name}.py")
    test = project.shown(project.test_file("integration", name))
    return [
        f"shape the table and its rules to what readers need: {module}",
        f"run its test (a real PostgreSQL, started by Intent's pytest plugin): "
        f".venv/bin/pytest {test}" if test in written else
        f"write a test with the intent_projections fixture (docs/testing.md) in {test}",
        "after each change: ./run generate (the table's migration); `./run dev` applies it",
    ]
