"""The state cache keeps the newest committed state per stream and forgets the least
recently used stream first."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.contracts import StreamId
from domain.decider import Loaded
from domain.inventory.item import ItemState
from pump.store.aggregates import StateCache


def loaded(stream: StreamId, version: int) -> Loaded[ItemState]:
    return Loaded(stream=stream, state=ItemState(on_hand=version), version=version)


def stream() -> StreamId:
    return StreamId(tenant_id=uuid4(), aggregate_type="inventory.item", aggregate_id=uuid4())


def test_an_older_state_never_replaces_a_newer_one() -> None:
    cache = StateCache()
    s = stream()
    cache.put_committed([loaded(s, 5)])
    cache.put_committed([loaded(s, 3)])
    hit = cache.get(s)
    assert hit is not None
    assert hit.version == 5


def test_the_least_recently_used_stream_is_forgotten_first() -> None:
    cache = StateCache(max_entries=2)
    a, b, c = stream(), stream(), stream()
    cache.put_committed([loaded(a, 1), loaded(b, 1)])
    assert cache.get(a) is not None  # a is now the most recently used
    cache.put_committed([loaded(c, 1)])
    assert len(cache) == 2
    assert cache.get(b) is None
    assert cache.get(a) is not None
    assert cache.get(c) is not None


def test_a_cache_without_room_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        StateCache(max_entries=0)
