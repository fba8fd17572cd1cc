"""Folding stored events straight from the store's JSON into an aggregate's state.

A replay of 10,000 events pays for everything it does per event, so this path makes nothing
it does not need. The store sends a page of a stream's events as one JSON array of
`{"v": version, "k": "<event type>@<schema version>", "p": payload}` in version order, and
pydantic-core decodes the whole page in one pass through a union tagged by "k": an event at
its type's current schema version straight into the payload model (no envelope, no dict per
payload), an older one as a dict that the registry then upcasts and validates.

A page that does not decode (an unknown type, a payload that fails its model) is read again
event by event through the registry, which names the event that is wrong by its version.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union
from weakref import WeakKeyDictionary

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import from_json
from typing_extensions import TypedDict

from domain.aggregate import Aggregate, StateT
from domain.decider import Loaded, out_of_sequence
from domain.registry import EventType, Registry

_PageAdapter = TypeAdapter[list[Any]]
# Row types are made at run time, one per event type, so the type checker cannot follow them.
_typed_dict: Any = TypedDict
_list: Any = list
_adapters: WeakKeyDictionary[Registry, tuple[int, _PageAdapter]] = WeakKeyDictionary()


def _row_types(event_type: EventType) -> list[Any]:
    """The page rows of one event type: at its current schema version, and at each older."""
    name = event_type.name.replace(".", "_")
    rows = [_typed_dict(
        f"Row_{name}_v{event_type.version}",
        {"v": int, "k": Literal[f"{event_type.name}@{event_type.version}"],
         "p": event_type.payload_model},
    )]
    for older in range(1, event_type.version):
        rows.append(_typed_dict(
            f"Row_{name}_v{older}",
            {"v": int, "k": Literal[f"{event_type.name}@{older}"], "p": dict[str, Any]},
        ))
    return rows


def _page_adapter(registry: Registry) -> _PageAdapter:
    """The registry's page decoder, built once (again if event types were added since)."""
    types = registry.event_types()
    cached = _adapters.get(registry)
    if cached is not None and cached[0] == len(types):
        return cached[1]
    rows = [row for t in types.values() for row in _row_types(t)]
    row = Annotated[Union[tuple(rows)], Field(discriminator="k")]  # type: ignore[valid-type]  # noqa: UP007
    adapter: _PageAdapter = TypeAdapter(_list[row])
    _adapters[registry] = (len(types), adapter)
    return adapter


def decode_page(
    registry: Registry, stream: object, page: str | bytes
) -> list[dict[str, Any]]:
    """A page's rows with each payload ("p") as its current typed model, in page order."""
    try:
        rows: list[dict[str, Any]] = _page_adapter(registry).validate_json(page)
    except ValidationError:
        rows = from_json(page)  # read again to name the event at fault
        for row in rows:
            row["p"] = _load(registry, stream, row)
        return rows
    for row in rows:
        if type(row["p"]) is dict:  # an older schema version
            row["p"] = _load(registry, stream, row)
    return rows


def _load(registry: Registry, stream: object, row: dict[str, Any]) -> BaseModel:
    event_type, _, version = row["k"].rpartition("@")
    return registry.load_payload(
        event_type, int(version), row["p"], event=f"version {row['v']} of {stream}"
    )


def fold_page(
    registry: Registry,
    aggregate: type[Aggregate[StateT]],
    start: Loaded[StateT],
    page: str | bytes,
) -> Loaded[StateT]:
    """`start` with a page of the events after it folded in; the page's versions must
    continue `start` without a gap or a repeat."""
    state, version = start.state, start.version
    evolve = aggregate.evolve
    for row in decode_page(registry, start.stream, page):
        if row["v"] != version + 1:
            raise out_of_sequence(start.stream, version + 1, row["v"], f"version {row['v']}")
        state = evolve(state, row["p"])
        version += 1
    return Loaded(stream=start.stream, state=state, version=version)
