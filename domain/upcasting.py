"""Old event payloads brought to their type's current schema version, one step at a time
(v1 -> v2 -> v3), each step a function the slice registered; the stored row never changes."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

from domain.contracts import JsonObject
from domain.errors import IntentError, InvalidEvent, RegistryError

Upcaster = Callable[[JsonObject], JsonObject]


def run_upcasters(
    event_type: str,
    schema_version: int,
    current_version: int,
    payload: JsonObject,
    upcasters: Mapping[tuple[str, int], Upcaster],
) -> JsonObject:
    """`payload` (of `schema_version`) at `current_version`, as a new dict: the caller's is
    never modified."""
    current = copy.deepcopy(payload)
    for version in range(schema_version, current_version):
        upcaster = upcasters.get((event_type, version))
        if upcaster is None:
            raise RegistryError(f"event type {event_type} has no upcaster from v{version}")
        try:
            current = upcaster(current)
        except IntentError:
            raise
        except Exception as error:  # an old payload the upcaster cannot read
            raise InvalidEvent(
                f"{event_type}: upcasting from v{version} failed: {error!r}",
                event_type=event_type,
                schema_version=version,
            ) from error
        if not isinstance(current, dict):
            raise RegistryError(
                f"upcaster {event_type} v{version} returned {type(current).__name__}, not a dict"
            )
    return current
