"""Where a reader of the global feed is, and what one read gives back: plain values, shared
by the store that reads the feed (pump) and the projections that fold it.

The feed's order is (writing transaction id, position); see pump/store/feed.py for why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from domain.contracts import Event


@dataclass(frozen=True, order=True)
class FeedPosition:
    """Where a reader is: after the event (transaction_id, position). Orders like the feed."""

    transaction_id: int = 0
    position: int = 0

    @classmethod
    def of(cls, event: Event) -> FeedPosition:
        if event.transaction_id is None or event.position is None:
            raise ValueError("an event that was never stored has no feed position")
        return cls(event.transaction_id, event.position)


START = FeedPosition()


@dataclass(frozen=True)
class FeedPage:
    events: list[Event]
    next: FeedPosition  # where to read from next time (unchanged when the page is empty)


@dataclass(frozen=True)
class HoldBack:
    """How far a reader is held back by transactions still open."""

    waiting_events: int  # committed after the reader's position but not yet deliverable
    oldest_open_pid: int | None  # the backend whose open transaction holds the horizon
    oldest_open_age: timedelta | None  # how long that transaction has been open

    @property
    def held(self) -> bool:
        return self.waiting_events > 0
