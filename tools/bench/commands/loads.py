"""The loads of `intent bench commands`, each run on one side at a time: throughput (live
submitters), backlog drain, low load; the rounds that rotate them over the sides; then the
function hop."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from contextlib import suppress
from time import perf_counter, process_time
from uuid import UUID, uuid4

from rich.progress import Progress

from tools.bench.callers import (
    TERMINAL,
    Caller,
    Work,
    submit,
    submit_all,
    submit_in_process,
    wait_terminal,
)
from tools.bench.commands.function_hop import HopResults, measure_hop
from tools.bench.commands.plan import DIRECT, Plan, Side
from tools.bench.commands.results import SideResults
from tools.bench.commands.setup import CommandSetup
from tools.bench.database import BenchError
from tools.bench.stats import percentile


class CommandBench:
    """Two tenants' callers and their items, and what each side measured."""

    def __init__(self, setup: CommandSetup, progress: Progress | None):
        self.setup = setup
        self.plan: Plan = setup.plan
        self.sides = setup.sides
        self.progress = progress
        self.tenants = [uuid4(), uuid4()]
        self.callers = [Caller(t, uuid4()) for t in self.tenants]
        self.items: list[tuple[Caller, UUID]] = []
        self.results = {s.name: SideResults(s) for s in self.sides}
        self.hop: HopResults | None = None
        self._rng = random.Random(20261122)

    async def register(self) -> None:
        """The items every load targets, registered through the direct pipeline (untimed)."""
        ids: list[UUID] = []
        items = [(self.callers[i % 2], uuid4()) for i in range(self.plan.aggregates)]
        queue = list(items)
        pool = self.setup.submit_pool

        async def submitter() -> None:
            while queue:
                caller, item = queue.pop()
                payload = {"item_id": str(item), "sku": f"B-{item.hex[:8]}", "name": "bench"}
                ids.append(await submit(pool, caller, "inventory.register_item", payload))

        async with self.setup.pump(DIRECT):
            await asyncio.gather(*(submitter() for _ in range(self.plan.submitters)))
            counts = await wait_terminal(pool, ids)
        if counts.get("processed", 0) != len(ids):
            raise BenchError(f"registering the items did not succeed: {counts}")
        self.items = items

    def _work(self, count: int) -> Work:
        rng = random.Random(self._rng.random())
        work = []
        for _ in range(count):
            caller, item = rng.choice(self.items)
            work.append((caller.tenant_id, caller.user_id, item, rng.randint(1, 9)))
        return work

    async def _submit(self, work: Work) -> tuple[list[UUID], float, float]:
        """Submit `work` by the plan's concurrent callers (in the client processes, if any);
        the ids, the first submit's start and the last one's end."""
        executor, clients = self.setup.executor, self.setup.clients
        if executor is None:
            sent = [await submit_all(self.setup.submit_pool, work, self.plan.submitters)]
        else:
            shares = [work[i :: clients] for i in range(clients)]
            loop = asyncio.get_running_loop()
            each = max(1, self.plan.submitters // clients)
            sent = list(
                await asyncio.gather(
                    *(
                        loop.run_in_executor(executor, submit_in_process, self.setup.url, w, each)
                        for w in shares
                    )
                )
            )
        ids = [i for part in sent for i in part[0]]
        return ids, min(part[1] for part in sent), max(part[2] for part in sent)

    async def throughput(self, side: Side, count: int, record: bool) -> None:
        work = self._work(count)
        async with self.setup.pump(side) as pump:
            ids, started, submitted = await self._submit(work)
            counts = await wait_terminal(self.setup.submit_pool, ids)
            finished = perf_counter()
            batches = pump.batches_dispatched
        if not record:
            return
        result = self.results[side.name]
        result.rates.append(len(ids) / (finished - started))
        result.submit_rates.append(len(ids) / (submitted - started))
        result.batches.append(batches)
        result.rejected += len(ids) - counts.get("processed", 0)
        async with self.setup.submit_pool.connection() as conn:
            cur = await conn.execute(
                "select extract(epoch from updated_at - created_at) * 1000"
                " from intent.commands where command_id = any(%s)",
                (ids,),
            )
            db = [float(r[0]) for r in await cur.fetchall()]
        result.load_db_p50.append(percentile(db, 50))
        result.load_db_p99.append(percentile(db, 99))

    async def drain(self, side: Side, count: int, record: bool) -> None:
        """The pipeline's own capacity: `count` commands submitted while no pump runs, then
        the time from starting the pump to the last one processed. The load generator's
        CPU is out of the timed part."""
        ids, _, _ = await self._submit(self._work(count))
        started, cpu = perf_counter(), process_time()
        async with self.setup.pump(side):
            counts = await wait_terminal(self.setup.submit_pool, ids)
            finished, cpu_used = perf_counter(), process_time() - cpu
        if record:
            result = self.results[side.name]
            result.drain_rates.append(len(ids) / (finished - started))
            result.drain_cpu_us.append(cpu_used / len(ids) * 1e6)
            result.rejected += len(ids) - counts.get("processed", 0)

    async def low_load(self, side: Side, count: int, record: bool) -> None:
        latencies: list[float] = []
        rejected = 0
        async with self.setup.pump(side):
            await asyncio.sleep(0.05)  # the pump's LISTEN is up
            for _ in range(count):
                caller, item = self._rng.choice(self.items)
                payload = {"item_id": str(item), "quantity": 1}
                started = perf_counter()
                command_id = await submit(
                    self.setup.submit_pool, caller, "inventory.receive_stock", payload
                )
                status = await self._await_one(command_id)
                latencies.append((perf_counter() - started) * 1000)
                rejected += status != "processed"
        if record:
            self.results[side.name].latencies.append(latencies)
            self.results[side.name].rejected += rejected

    async def _await_one(self, command_id: UUID, seconds: float = 60) -> str:
        deadline = perf_counter() + seconds
        done = self.setup.batch_done
        while True:
            done.clear()
            async with self.setup.submit_pool.connection() as conn:
                cur = await conn.execute(
                    "select status from intent.commands where command_id = %s", (command_id,)
                )
                row = await cur.fetchone()
            if row is not None and row[0] in TERMINAL:
                return str(row[0])
            if perf_counter() > deadline:
                raise BenchError(f"command {command_id} still open after {seconds:.0f}s")
            with suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=0.05)

    async def run(self) -> None:
        """Register, warm every side up, the rounds, the function hop (inside `running()`)."""
        plan = self.plan
        steps = 1 + len(self.sides) * (plan.rounds + 1) * 3 + plan.rounds + 1
        task = self.progress.add_task("commands", total=steps) if self.progress else None

        def advance(what: str) -> None:
            if self.progress is not None and task is not None:
                self.progress.update(task, advance=1, description=what)

        await self.register()
        advance("registered items")
        await self._warm_up(advance)
        for r in range(plan.rounds):
            await self._round(r, advance)
        self.hop = await measure_hop(
            self.setup.url,
            [(caller.tenant_id, caller.user_id, item) for caller, item in self.items],
            rounds=plan.rounds, requests=plan.hop_requests, advance=advance,
        )
        await self._settle()
        advance("processed the function hop's commands")

    async def _warm_up(self, advance: Callable[[str], None]) -> None:
        """Every load once on every side, untimed."""
        plan = self.plan
        warm = max(1, int(plan.commands * plan.warmup_fraction))
        for side in self.sides:
            await self.throughput(side, warm, record=False)
            advance(f"warm-up {side.name}")
            await self.drain(side, warm, record=False)
            advance(f"warm-up {side.name}")
            await self.low_load(side, max(2, plan.latency_commands // 5), record=False)
            advance(f"warm-up {side.name}")

    async def _round(self, r: int, advance: Callable[[str], None]) -> None:
        """Round r: each load on every side, the sides' order rotated by r."""
        plan = self.plan
        order = self.sides[r % len(self.sides):] + self.sides[: r % len(self.sides)]
        for side in order:
            await self.throughput(side, plan.commands, record=True)
            advance(f"round {r + 1}: throughput {side.name}")
        for side in order:
            await self.drain(side, plan.drained, record=True)
            advance(f"round {r + 1}: backlog drain {side.name}")
        for side in order:
            await self.low_load(side, plan.latency_commands, record=True)
            advance(f"round {r + 1}: low load {side.name}")

    async def _settle(self) -> None:
        """Process what the function-hop measurement submitted (untimed), so that the run
        leaves no pending commands behind."""
        async with self.setup.pump(DIRECT):
            while True:
                async with self.setup.submit_pool.connection() as conn:
                    cur = await conn.execute(
                        "select count(*) from intent.commands where tenant_id = any(%s)"
                        " and status in ('pending', 'dispatched')",
                        (self.tenants,),
                    )
                    row = await cur.fetchone()
                if row is None or row[0] == 0:
                    return
                await asyncio.sleep(0.1)
