"""The saga runtime's pure parts: the bounded window of applied events (redeliveries are
dropped, also after the window forgot them and across continue-as-new) and the history
limit setting."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.contracts import Event
from pump.sagas.contracts import DEFAULT_HISTORY_LIMIT, AppliedWindow
from pump.sagas.worker import saga_history_limit
from pump.sagas.workflow import AppliedEvents
from tests.support.builders import item_stream, metadata


def stored(position: int | None, transaction_id: int | None = 7) -> Event:
    return Event(
        event_id=uuid4(), event_type="inventory.stock_received", schema_version=2,
        stream=item_stream(uuid4()), version=1, payload={"quantity": 1}, metadata=metadata(),
        position=position, transaction_id=transaction_id if position is not None else None,
    )


def test_an_event_is_applied_once() -> None:
    # given a window that applied one event
    applied = AppliedEvents(window=3)
    event = stored(1)
    assert applied.first_time(event)
    # when it is delivered again
    # then it is a redelivery
    assert not applied.first_time(event)


def test_a_redelivery_older_than_the_window_is_still_dropped() -> None:
    # given more events applied, in feed order, than the window remembers
    applied = AppliedEvents(window=3)
    events = [stored(position) for position in range(1, 11)]
    assert all(applied.first_time(event) for event in events)
    assert len(applied.carry().latest) == 3
    # when the router redelivers from an old checkpoint
    # then none is applied twice, and a new event still is
    assert not any(applied.first_time(event) for event in events)
    assert applied.first_time(stored(11))


def test_the_window_tolerates_reordering_within_it() -> None:
    applied = AppliedEvents(window=4)
    first, second, third = stored(1), stored(2), stored(3)
    assert applied.first_time(second)
    assert applied.first_time(first)  # overtaken, not yet forgotten: applied
    assert applied.first_time(third)
    assert not applied.first_time(first)


def test_events_with_no_feed_position_are_judged_by_id() -> None:
    applied = AppliedEvents(window=2)
    loose = stored(None)
    assert applied.first_time(loose)
    assert applied.first_time(stored(5))
    assert applied.first_time(stored(6))  # `loose` drops out; it had no spot to floor on
    assert applied.first_time(stored(None))


def test_the_window_carries_over_to_the_next_run() -> None:
    # given a run that applied events and hands its window on
    applied = AppliedEvents(window=3)
    events = [stored(position) for position in range(1, 6)]
    for event in events:
        applied.first_time(event)
    carried = AppliedWindow.model_validate_json(applied.carry().model_dump_json())
    # when the next run starts from it (maybe with a smaller window)
    following = AppliedEvents(window=2, carried=carried)
    # then it drops every redelivery the first run would have dropped
    assert not any(following.first_time(event) for event in events)
    assert following.first_time(stored(6))
    assert len(following.carry().latest) == 2


def test_the_history_limit_setting() -> None:
    assert saga_history_limit("") == DEFAULT_HISTORY_LIMIT
    assert saga_history_limit("200") == 200
    for bad in ("ten", "49", "-1"):
        with pytest.raises(ValueError, match="INTENT_SAGA_HISTORY_LIMIT"):
            saga_history_limit(bad)
