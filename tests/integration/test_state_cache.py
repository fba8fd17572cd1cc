"""The batch processor's state cache: a later batch resumes from the state this process
committed, reads what other processes appended since, and never keeps a rolled-back state."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg_pool import AsyncConnectionPool

from domain.contracts import StreamId
from domain.inventory import Item
from projections.shop import registry
from pump.batches.processor import BatchProcessor
from pump.store.aggregates import AggregateRepository
from pump.store.commands import PostgresCommandStore
from pump.store.connections import Conn
from tests.support.pipeline import enqueue, statuses
from tests.support.streams import new_stream

pytestmark = pytest.mark.integration


async def run_one(
    pool: AsyncConnectionPool[Conn], processor: BatchProcessor, stream: StreamId, kind: str,
    **payload: Any,
) -> UUID:
    """Enqueue one command, claim it alone into a batch, and let `processor` run it."""
    command = await enqueue(pool, stream, kind, **payload)
    batch = await PostgresCommandStore(pool).claim(1)
    assert batch is not None
    assert batch.command_ids == (command,)
    await processor.process(batch.batch_id)
    return command


async def test_processors_taking_turns_on_an_aggregate_each_see_the_others_events(
    pool: AsyncConnectionPool[Conn], repo: AggregateRepository
) -> None:
    first, second = BatchProcessor(pool, registry), BatchProcessor(pool, registry)
    stream = new_stream()
    ids = [await run_one(pool, first, stream, "register_item", sku="S", name="W")]
    ids.append(await run_one(pool, second, stream, "receive_stock", quantity=5))
    ids.append(await run_one(pool, second, stream, "receive_stock", quantity=7))
    # `first` cached the item at version 1 with nothing on hand: it must read 2 and 3.
    ids.append(await run_one(pool, first, stream, "reserve_stock", order_id=uuid4(),
                             quantity=12))
    assert set((await statuses(pool, ids)).values()) == {"processed"}
    loaded = await repo.load(Item, stream, use_snapshots=False)
    assert loaded.version == 4
    assert loaded.state.on_hand == 12
    assert sum(loaded.state.reservations.values()) == 12


async def test_a_rolled_back_batch_leaves_no_state_in_the_cache(
    pool: AsyncConnectionPool[Conn], repo: AggregateRepository
) -> None:
    processor = BatchProcessor(pool, registry)
    stream = new_stream()
    await run_one(pool, processor, stream, "register_item", sku="S", name="W")
    command = await enqueue(pool, stream, "receive_stock", quantity=5)
    batch = await PostgresCommandStore(pool).claim(1)
    assert batch is not None

    class CrashError(Exception):
        pass

    def crash() -> None:
        raise CrashError

    with pytest.raises(CrashError):
        await processor.process(batch.batch_id, before_commit=crash)
    result = await processor.process(batch.batch_id)  # the retry, from the committed state
    assert (result.processed, result.events) == (1, 1)
    assert (await statuses(pool, [command]))[command] == "processed"
    loaded = await repo.load(Item, stream, use_snapshots=False)
    assert (loaded.version, loaded.state.on_hand) == (2, 5)
