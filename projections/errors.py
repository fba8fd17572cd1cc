"""What can go wrong applying events to a projection: each error names the projection, the
event and, where known, the table and column, for intent.checkpoints.error."""

from __future__ import annotations

from typing import Any

from domain.contracts import Event


class ProjectionError(Exception):
    """A projection could not apply an event. Carries what an operator needs to find it."""

    kind = "projection_error"

    def __init__(
        self,
        message: str,
        *,
        projection: str,
        event: Event | None = None,
        table: str | None = None,
        column: str | None = None,
    ) -> None:
        where = f"projection {projection}"
        if event is not None:
            where += (
                f", event {event.event_id} ({event.event_type} at "
                f"{event.transaction_id}:{event.position})"
            )
        super().__init__(f"{where}: {message}")
        self.message = message
        self.projection = projection
        self.event = event
        self.table = table
        self.column = column

    def as_json(self) -> dict[str, Any]:
        """For intent.checkpoints.error."""
        event = self.event
        return {
            "kind": self.kind,
            "message": str(self),
            "projection": self.projection,
            "event_id": str(event.event_id) if event else None,
            "event_type": event.event_type if event else None,
            "transaction_id": event.transaction_id if event else None,
            "position": event.position if event else None,
            "table": self.table,
            "column": self.column,
        }


class HandlerError(ProjectionError):
    """The handler raised, or the event's payload could not be loaded for it."""

    kind = "handler_failed"


class InvalidOpError(ProjectionError):
    """An op does not fit the projection's tables (unknown table or column, a bad value)."""

    kind = "invalid_op"


class WriteError(ProjectionError):
    """The database refused a page's writes (a NOT NULL column never set, an overflow...)."""

    kind = "write_failed"


class StaleWriteError(ProjectionError):
    """Strict mode: a row already holds a newer event than the one being applied."""

    kind = "stale_write"
