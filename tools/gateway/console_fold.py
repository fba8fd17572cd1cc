"""`POST /console/fold`: the console's aggregate inspector asks the application's own domain
for the state after each event of a stream it has read (under RLS, with read_stream).

The states come from the registry's upcasters and the aggregate's `evolve`, through the same
functions the store loads with (`domain.decider`), so the inspector can never disagree with
the write path. The endpoint is pure: it folds only what the request carries and touches no
database, so it cannot show a caller anything they did not send. Input is bounded (body
size, event count, nesting) and every refusal is a 4xx `{code, message}`, never a 500.

The diff is a dozen lines of its own: JSON Patch libraries (jsonpatch) answer operations to
apply, not the before and after of each changed leaf, which is what the page shows.

Request:  {aggregate_type, aggregate_id?, state_before: {version, state, schema_version?}
           | null, events: [...as read_stream returns them, at most MAX_EVENTS]}
Response: {aggregate_type, start: {version, state}, steps: [{version, event_type, state,
           diff: [{path, kind, before, after}]}]}
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import ValidationError

from domain.aggregate import Aggregate
from domain.contracts import Event, Snapshot, StreamId
from domain.decider import Loaded, evolve_all, starting_point
from domain.errors import IntentError, validation_problems
from domain.registry import Registry
from projections.application import Application
from tools.gateway.errors import json_response
from tools.gateway.limits import InputError, json_depth, loads_json, read_body

MAX_EVENTS = 1000  # read_stream's page
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_RESULT_BYTES = 32 * 1024 * 1024  # states after every event add up: ask for fewer
MAX_NESTING = 64  # a payload nests at most 32 levels (domain.bounds); a state a little more
# The fold does not depend on the aggregate's id; a request that names none gets this one.
NO_ID = UUID(int=0)
# The fields of a read_stream event that make an envelope (the stream comes from the request).
EVENT_FIELDS = ("event_id", "event_type", "schema_version", "version", "payload", "metadata",
                "recorded_at", "position")


class FoldRefusal(Exception):  # noqa: N818 - a refusal, answered as such
    """Why a fold request is not answered: the HTTP status, a stable code, a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def _malformed(message: str) -> FoldRefusal:
    return FoldRefusal(400, "malformed", message)


# -- the diff ---------------------------------------------------------------------------------

def _pointer(path: tuple[str, ...]) -> str:
    """A JSON Pointer (RFC 6901) for a path of keys: keys may hold dots and slashes."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path) or "/"


def json_diff(before: Any, after: Any) -> list[dict[str, Any]]:
    """What changed from one JSON value to another, one row per changed leaf: objects are
    compared key by key and arrays index by index; anything else is replaced whole."""
    rows: list[dict[str, Any]] = []
    _diff_into(rows, (), before, after, present=(True, True))
    return rows


def _diff_into(rows: list[dict[str, Any]], path: tuple[str, ...], before: Any, after: Any,
               *, present: tuple[bool, bool]) -> None:
    if present == (True, True) and isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys()):
            _diff_into(rows, (*path, key), before.get(key), after.get(key),
                       present=(key in before, key in after))
        return
    if present == (True, True) and isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            _diff_into(rows, (*path, str(index)),
                       before[index] if index < len(before) else None,
                       after[index] if index < len(after) else None,
                       present=(index < len(before), index < len(after)))
        return
    if present == (True, True) and type(before) is type(after) and before == after:
        return
    kind = "changed" if present == (True, True) else "added" if present[1] else "removed"
    rows.append({"path": _pointer(path), "kind": kind, "before": before, "after": after})


# -- reading the request ----------------------------------------------------------------------

def _parse_request(registry: Registry, document: Any
                   ) -> tuple[type[Aggregate[Any]], UUID, dict[str, Any] | None, list[Any]]:
    """The aggregate, its id, the state before the first event and the events, checked for
    shape and size (what they mean is the domain's business)."""
    if not isinstance(document, dict):
        raise _malformed("the request must be a JSON object")
    if json_depth(document, stop_after=MAX_NESTING) > MAX_NESTING:
        raise FoldRefusal(400, "too_deep", f"the request nests deeper than {MAX_NESTING} levels")
    name, events = document.get("aggregate_type"), document.get("events")
    if not isinstance(name, str) or not name:
        raise _malformed("aggregate_type must be a non-empty string")
    if not isinstance(events, list):
        raise _malformed("events must be an array")
    if len(events) > MAX_EVENTS:
        raise FoldRefusal(400, "too_many_events",
                          f"at most {MAX_EVENTS} events per request, got {len(events)}")
    before = document.get("state_before")
    if before is not None and not (isinstance(before, dict)
                                   and isinstance(before.get("state"), dict)
                                   and _is_version(before.get("version"))):
        raise _malformed("state_before must be null or {version >= 1, state: object}")
    raw_id = document.get("aggregate_id")
    try:
        aggregate_id = NO_ID if raw_id is None else UUID(str(raw_id))
    except ValueError:
        raise _malformed("aggregate_id must be a UUID") from None
    try:
        aggregate = registry.aggregate_type(name)
    except IntentError as error:
        raise FoldRefusal(422, error.code, error.message) from None
    return aggregate, aggregate_id, before, events


def _is_version(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _envelope(stream: StreamId, raw: Any, index: int) -> Event:
    """One read_stream event as the store's envelope, in the request's stream."""
    if not isinstance(raw, dict):
        raise _malformed(f"events[{index}] must be an object")
    fields = {key: raw[key] for key in EVENT_FIELDS if key in raw}
    try:
        return Event.model_validate({**fields, "stream": stream})
    except ValidationError as error:
        problems = "; ".join(f"{p['field']}: {p['message']}" for p in validation_problems(error))
        raise FoldRefusal(422, "invalid_event", f"events[{index}]: {problems}") from None


def _tenant_of(events: list[Any]) -> UUID:
    """The tenant the events' metadata names (the envelope refuses one naming another)."""
    first = events[0] if events else None
    metadata = first.get("metadata") if isinstance(first, dict) else None
    try:
        return UUID(str(metadata["tenant_id"])) if isinstance(metadata, dict) else NO_ID
    except (KeyError, ValueError):
        return NO_ID  # the envelope says what is wrong with it


# -- folding ----------------------------------------------------------------------------------

def fold(registry: Registry, document: Any) -> dict[str, Any]:
    """The answer to a fold request (a parsed JSON document), or FoldRefusal."""
    aggregate, aggregate_id, before, events = _parse_request(registry, document)
    stream = StreamId(tenant_id=_tenant_of(events), aggregate_type=aggregate.type_name,
                      aggregate_id=aggregate_id)
    loaded = _start(aggregate, stream, before)
    state = _dumped(loaded)
    answer: dict[str, Any] = {"aggregate_type": aggregate.type_name,
                              "start": {"version": loaded.version, "state": state}, "steps": []}
    size = 0
    for index, raw in enumerate(events):
        event = _envelope(stream, raw, index)
        loaded, after = _evolve(registry, aggregate, loaded, event)
        diff = json_diff(state, after)
        size += len(json.dumps(after)) + len(json.dumps(diff, default=str))
        if size > MAX_RESULT_BYTES:
            raise FoldRefusal(413, "result_too_large",
                              f"the states of {index + 1} events exceed {MAX_RESULT_BYTES} "
                              "bytes: send fewer events per request")
        answer["steps"].append({"version": loaded.version, "event_type": event.event_type,
                                "state": after, "diff": diff})
        state = after
    return answer


def _start(aggregate: type[Aggregate[Any]], stream: StreamId,
           before: dict[str, Any] | None) -> Loaded[Any]:
    """The initial state, or `state_before` restored as the store restores a snapshot
    (upcast from its schema_version, validated by the state model)."""
    snapshot = None
    if before is not None:
        schema_version = before.get("schema_version", aggregate.state_schema_version)
        try:
            snapshot = Snapshot(stream=stream, version=before["version"],
                                schema_version=schema_version, state=before["state"])
        except ValidationError:
            raise _malformed("state_before.schema_version must be an integer >= 1") from None
    try:
        return starting_point(aggregate, stream, snapshot)
    except IntentError as error:
        raise FoldRefusal(422, "invalid_state_before", error.message) from None


def _evolve(registry: Registry, aggregate: type[Aggregate[Any]], loaded: Loaded[Any],
            event: Event) -> tuple[Loaded[Any], dict[str, Any]]:
    """The stream one event on, and its state as JSON (the store's fold: upcast, validate,
    evolve, with its checks of the version sequence)."""
    try:
        after = evolve_all(registry, aggregate, loaded, [event])
        return after, _dumped(after)
    except IntentError as error:  # a gap, an unknown type, a payload that does not fit
        raise FoldRefusal(422, error.code, error.message) from None
    except Exception as error:  # the application's evolve tripped on this input
        raise FoldRefusal(422, "fold_failed",
                          f"{aggregate.type_name} cannot apply version {event.version}: "
                          f"{error!r}") from None


def _dumped(loaded: Loaded[Any]) -> dict[str, Any]:
    state: dict[str, Any] = loaded.state.model_dump(mode="json")
    return state


# -- the route --------------------------------------------------------------------------------

class FoldRoute:
    """The aiohttp handler, holding the application the gateway was started with (None:
    no application is configured, and the route says so)."""

    def __init__(self, application: Application | None) -> None:
        self._application = application

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            answer = await self._answer(request)
        except FoldRefusal as refusal:
            return json_response(refusal.body(), status=refusal.status)
        return json_response(answer)

    async def _answer(self, request: web.Request) -> dict[str, Any]:
        if self._application is None:
            raise FoldRefusal(503, "no_application",
                              "the gateway runs without an application: set [tool.intent] "
                              "app in pyproject.toml or INTENT_APP, then restart it")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise FoldRefusal(413, "too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            body = await read_body(request)
            if len(body) > MAX_BODY_BYTES:
                raise FoldRefusal(413, "too_large",
                                  f"the body is larger than {MAX_BODY_BYTES} bytes")
            document = loads_json(body)
        except InputError as error:
            code = "too_large" if error.status == 413 else "invalid_json"
            raise FoldRefusal(error.status, code, str(error)) from None
        # Off the event loop: a long fold must not hold up Realtime and the other paths.
        return await asyncio.to_thread(fold, self._application.registry, document)
