"""Inline projections: applied by the worker in the transaction that appends the events, so
a client that sees its command processed reads the read model as of that command.

The batch processor calls `InlineProjections.apply(conn, events)` after the append, with the
stored events (they carry their position and the transaction's id). Each inline projection
of the catalog gets the events it reads, folded and written like a runner's page.

Writes are strict: a row that already holds a newer feed position than this transaction's
events means another transaction with a later id wrote it first. Applying the guard would
silently drop this transaction's change, so `StaleWriteError` is raised instead and the batch
rolls back; its retry gets a new, later transaction id. The same goes for two transactions
creating the same new row at once (the second one's insert meets the first one's row). Both
are lost races, to retry like a `ConcurrencyError`. A handler failure fails the batch
too (and so the commands in it, once retries are exhausted): that is the price of reading
your own writes, and why a projection that may fail on odd data is better async.

Catching up (a new inline projection, or a new version of one) is `intent projections
rebuild NAME`: it builds the tables from the feed and swaps them in while it holds them
locked, which makes the worker's inline writes wait for a moment rather than go to a table
about to be dropped (see pump.projections.rebuild).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from domain.contracts import Event
from domain.registry import Registry
from projections.apply import Applier
from projections.metadata import Projection
from projections.writes import ApplyResult
from pump.observability import telemetry
from pump.store.connections import Conn


class InlineProjections:
    def __init__(self, projections: Iterable[Projection], *, registry: Registry):
        self._appliers = [
            Applier(p, registry=registry, strict=True) for p in projections if p.mode == "inline"
        ]

    @property
    def projections(self) -> list[Projection]:
        return [a.projection for a in self._appliers]

    def reads(self, event_type: str) -> bool:
        return any(event_type in a.reads for a in self._appliers)

    async def apply(self, conn: Conn, events: Sequence[Event]) -> None:
        """Apply every inline projection to `events`, stored in the caller's transaction."""
        await self.apply_all(conn, events)

    async def apply_all(self, conn: Conn, events: Sequence[Event]) -> list[ApplyResult]:
        """`apply`, returning what each projection wrote (in catalog order)."""
        results = []
        for applier in self._appliers:
            mine = [e for e in events if e.event_type in applier.reads]
            if not mine:
                continue
            # One span per projection per batch: under the batch's span, linked to the
            # traces of the commands whose events it applies.
            with telemetry.span(
                f"intent.project {applier.projection.name}",
                {"intent.projection": applier.projection.name,
                 "intent.projection.mode": "inline", "intent.events": len(mine)},
                over=(e.metadata.traceparent for e in mine),
            ):
                results.append(await applier.apply(conn, mine))
        return results
