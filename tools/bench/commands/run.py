"""`intent bench commands` from start to results."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.progress import Progress

from tools.bench.commands.loads import CommandBench
from tools.bench.commands.plan import BEFORE_SIDES, DIRECT, TEMPORAL, TRACED, Plan
from tools.bench.commands.results import Results
from tools.bench.commands.setup import CommandSetup
from tools.bench.database import server_facts


async def run_commands(
    url: str,
    plan: Plan,
    progress: Progress | None = None,
    *,
    before_after: bool = False,
    clients: int = 1,
    tracing: bool = False,
) -> Results:
    """`tracing` adds the Temporal side with tracing on (in-memory exporter), in the same
    rounds and rotation, for the tracing overhead."""
    started = datetime.now(UTC)
    server = await server_facts(url)
    sides = [DIRECT, TEMPORAL, *((TRACED,) if tracing else ()),
             *(BEFORE_SIDES if before_after else ())]
    setup = CommandSetup(url, plan, sides, clients)
    bench = CommandBench(setup, progress)
    async with setup.running():
        await bench.run()
    return Results(
        plan=plan, sides=bench.results, server=server, started_at=started,
        finished_at=datetime.now(UTC), tenants=bench.tenants, clients=clients,
        hop=bench.hop, spans_recorded=setup.spans_recorded,
    )
