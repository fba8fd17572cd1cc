"""`intent bench projections` from start to results: setup, the warm-up rebuild, the
rounds (the four sides in an order rotated every round), the final check, the cleanup."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.progress import Progress

from domain.feed import FeedPosition
from pump.store.connections import open_pool
from tools.bench.database import server_facts
from tools.bench.projections.plan import PROJECTION, TARGET_RATIO, Plan
from tools.bench.projections.results import Results
from tools.bench.projections.sides import ProjectionsBench
from tools.bench.stats import Comparison, Series

SIDES = ("sql", "copy", "python", "runner")


@dataclass
class Rounds:
    """Each side's figure per round."""

    rebuilds: list[float] = field(default_factory=list)  # events/s, SQL path
    catch_ups: list[float] = field(default_factory=list)  # events/s until the swap
    copies: list[float] = field(default_factory=list)  # rows/s
    pythons: list[float] = field(default_factory=list)  # events/s, Python path
    runners: list[float] = field(default_factory=list)  # events/s
    times: list[float] = field(default_factory=list)  # COPY seconds / rebuild seconds


async def _round(
    bench: ProjectionsBench, start: FeedPosition, rows: list[tuple[Any, ...]], number: int,
    rounds: Rounds,
) -> None:
    prefix = f"round {number + 1}/{bench.plan.rounds}"
    rate = catch_up = copy_rate = 0.0
    read = 0
    for side in SIDES[number % 4:] + SIDES[:number % 4]:
        if side == "sql":
            rate, catch_up, read = await bench.rebuild(start, f"{prefix}: rebuild")
        elif side == "copy":
            copy_rate = await bench.copy(rows)
        elif side == "python":
            through_python, _, _ = await bench.rebuild(
                start, f"{prefix}: rebuild through Python", fold="python")
            rounds.pythons.append(through_python)
        else:
            rounds.runners.append(await bench.runner_catch_up(
                start, f"{prefix}: runner catch-up"))
    rounds.rebuilds.append(rate)
    rounds.catch_ups.append(catch_up)
    rounds.copies.append(copy_rate)
    rounds.times.append((len(rows) / copy_rate) / (read / rate))


async def run_projections(url: str, plan: Plan, progress: Progress | None = None) -> Results:
    started = datetime.now(UTC)
    server = await server_facts(url)
    pool = await open_pool(url, min_size=2, max_size=4, name="bench")
    rounds = Rounds()
    try:
        bench = ProjectionsBench(pool, plan, progress)
        try:
            start = await bench.setup()
            await bench.load()
            await bench.rebuild(start, "warm-up rebuild")
            rows = await bench.rows()
            for number in range(plan.rounds):
                await _round(bench, start, rows, number, rounds)
            await bench.rows()
        finally:
            await bench.cleanup()
    finally:
        await pool.close()
    return Results(
        plan=plan,
        rebuild=_comparison(plan, len(rows), rounds),
        catch_up=Series("build", "twins created and caught up (all but the swap), events/s",
                        "events/s", rounds.catch_ups),
        time_ratios=rounds.times,
        python_path=Series("python path", "the same rebuild forced through the Python path "
                           "(a projection whose handler is code), events/s", "events/s",
                           rounds.pythons),
        runner=Series("runner catch-up", "the async runner catching an emptied live table up "
                      "from the same position, events/s", "events/s", rounds.runners),
        rows=len(rows),
        server=server,
        tenant_id=bench.tenant_id,
        started_at=started,
        finished_at=datetime.now(UTC),
    )


def _comparison(plan: Plan, rows: int, rounds: Rounds) -> Comparison:
    """The judged pair: the rebuild's events/s beside the COPY's rows/s."""
    return Comparison(
        intent=Series(
            "rebuild", f"Rebuilder.run of {PROJECTION.name} over {plan.total_events:,} events "
            "(twins, catch-up, swap), events/s", "events/s", rounds.rebuilds,
        ),
        baseline=Series(
            "COPY", f"COPY of the {rows:,} rows the rebuild produced into an equivalent "
            "table, one transaction, rows/s", "rows/s", rounds.copies,
        ),
        min_ratio=TARGET_RATIO,
    )
