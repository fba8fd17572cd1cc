"""One command's trace through the whole pipeline, with an in-memory span exporter in this
process: the pump (claim), Temporal's batch workflow and its local activity, the command's
decide/append span, an inline and an async projection, the saga router and the saga step,
and the command the saga issues — one trace, every span under the right parent. A second
test starts at the real `command` edge function under Deno, whose own ingress span (Deno's
built-in OpenTelemetry, OTLP/HTTP) is received here and continued by the pipeline."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.contracts import StreamId
from domain.orders import OrderFulfilment
from domain.saga import saga_command_id
from projections.shop import application, catalog, registry, sagas
from pump.batches.processor import BatchProcessor
from pump.batches.pump import Pump, PumpSettings
from pump.batches.temporal import TemporalDispatcher, build_worker
from pump.observability import telemetry
from pump.observability.gauges import sample_held_back, sample_lag
from pump.projections.runner import ProjectionRunner
from pump.sagas.router import SagaRouter
from pump.sagas.worker import build_saga_worker
from pump.store.commands import PostgresCommandStore
from pump.store.connections import Conn
from pump.temporal.client import traced
from tests.support import sagas as saga_support
from tests.support.ingress import Caller, submit
from tests.support.pipeline import enqueue, running_pumps, shop_processor, statuses, wait_terminal
from tests.support.streams import new_stream
from tests.support.telemetry import Watching, metric_points
from tests.support.tenants import TENANT_A
from tools.gateway.testing import running_gateway
from tools.local.keys import anon_key, user_token
from tools.settings import REPO_ROOT

pytestmark = pytest.mark.integration


@asynccontextmanager
async def traced_stack(
    pool: AsyncConnectionPool[Conn], url: str, env: WorkflowEnvironment
) -> AsyncIterator[None]:
    """Pump, batch worker (inline projections), saga worker and router, and the async
    projection runner, in this loop, on Temporal clients that carry the tracing
    interceptor."""
    client = traced(env.client)
    batches, saga_queue = f"batches-{uuid4().hex[:8]}", f"sagas-{uuid4().hex[:8]}"
    stop = asyncio.Event()
    processor = shop_processor(pool)
    pump = Pump(pool, url, TemporalDispatcher(client, batches), PumpSettings(poll_interval=0.1))
    router = SagaRouter(
        pool, client, registry=registry, sagas=sagas, task_queue=saga_queue,
        timer_seconds={OrderFulfilment.name: {"payment_deadline": 120}}, poll_interval=0.1,
    )
    runner = ProjectionRunner(pool, catalog, registry=registry, poll_interval=0.1)
    saga_client = await Client.connect(
        env.client.service_client.config.target_host, data_converter=pydantic_data_converter,
        interceptors=telemetry.temporal_interceptors(),
    )
    async with build_worker(client, processor, batches), \
            build_saga_worker(saga_client, pool, application, saga_queue):
        tasks = [asyncio.create_task(pump.run(stop)), asyncio.create_task(router.run(stop)),
                 asyncio.create_task(runner.run(stop))]
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


async def stocked_item(pool: AsyncConnectionPool[Conn]) -> StreamId:
    """Tenant A's item with 10 in stock, its commands processed."""
    item, commands = await saga_support.stocked_item(pool, on_hand=10)
    await wait_terminal(pool, commands)
    return item


async def submit_order(
    pool: AsyncConnectionPool[Conn], item: StreamId, order_id: UUID, traceparent: str
) -> UUID:
    """As PostgREST would call the SQL ingress for a signed-in user, with a traceparent."""
    answer = await submit(
        pool, Caller(TENANT_A), "orders.place_order",
        {"order_id": str(order_id), "item_id": str(item.aggregate_id), "quantity": 2},
        traceparent=traceparent,
    )
    return UUID(answer["command_id"])


def reserve_step(order_id: UUID) -> UUID:
    return saga_command_id(OrderFulfilment.name, TENANT_A, str(order_id), "reserve")


async def traceparent_of_command(pool: AsyncConnectionPool[Conn], command_id: UUID) -> str:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select metadata->>'traceparent' from intent.commands where command_id = %s",
            (command_id,),
        )
        row = await cur.fetchone()
    assert row is not None
    assert row[0] is not None
    return str(row[0])


async def traceparents_of_events(
    pool: AsyncConnectionPool[Conn], command_id: UUID
) -> set[str]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select metadata->>'traceparent' from intent.events"
            " where metadata->>'causation_id' = %s",
            (str(command_id),),
        )
        return {str(row[0]) for row in await cur.fetchall()}


def _named(found: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in found if s.name == name]


async def spans_until(
    exporter: InMemorySpanExporter, trace_id: int, names: Sequence[str], seconds: float = 60
) -> list[ReadableSpan]:
    """The trace's finished spans, once every name in `names` is among them as often as it
    is listed (bounded): a batch's spans end after its commands', so waiting for one of
    each could look before the second batch's are exported."""
    deadline = asyncio.get_running_loop().time() + seconds
    wanted = Counter(names)
    while True:
        found = [s for s in exporter.get_finished_spans()
                 if s.context is not None and s.context.trace_id == trace_id]
        missing = [n for n, count in wanted.items() if len(_named(found, n)) < count]
        if not missing:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"spans never finished: {missing}; have "
                                 f"{sorted(s.name for s in found)}")
        await asyncio.sleep(0.1)


class Tree:
    """Parent lookups over one trace's spans."""

    def __init__(self, found: Sequence[ReadableSpan]):
        self.found = list(found)
        self.by_id = {s.context.span_id: s for s in found if s.context is not None}

    def one(self, name: str, parent: int, **attributes: str) -> ReadableSpan:
        """The span named `name` whose parent is span id `parent` (exactly one; with
        these attribute values, when given)."""
        matches = [s for s in _named(self.found, name)
                   if s.parent is not None and s.parent.span_id == parent
                   and all((s.attributes or {}).get(k) == v for k, v in attributes.items())]
        assert len(matches) == 1, (
            f"{name} under {parent:016x}: {len(matches)} of "
            f"{[(s.name, s.parent.span_id if s.parent else None) for s in self.found]}"
        )
        return matches[0]

    def ancestors(self, span: ReadableSpan) -> list[str]:
        names = []
        while span.parent is not None and span.parent.span_id in self.by_id:
            span = self.by_id[span.parent.span_id]
            names.append(span.name)
        return names


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def traceparent(span: ReadableSpan) -> str | None:
    assert span.context is not None
    return telemetry.traceparent_of(span.context)


BATCH = "intent.batch"
PROCESS = "intent.process_batch"
# The order's batch and the saga's reserve_stock batch: each pipeline span twice.
PIPELINE = [
    "intent.claim", "intent.batch", f"StartWorkflow:{BATCH}", f"RunWorkflow:{BATCH}",
    f"StartActivity:{PROCESS}", f"RunActivity:{PROCESS}",
]
EXPECTED = [
    *PIPELINE, *PIPELINE,
    "intent.command orders.place_order", "intent.project order_summaries",
    "intent.saga.route orders.order_placed", "intent.saga.step orders.fulfilment",
    "intent.command inventory.reserve_stock", "intent.project stock_levels",
]


def check_pipeline(tree: Tree, root: int) -> tuple[ReadableSpan, ReadableSpan]:
    """Every pipeline span of the order's trace under its parent; returns the place_order
    command's span and the saga step's."""
    claim = tree.one("intent.claim", root)
    batch = tree.one("intent.batch", span_id(claim))
    # Temporal's interceptor hangs the workflow's spans under the client's start span.
    start = tree.one(f"StartWorkflow:{BATCH}", span_id(batch))
    tree.one(f"RunWorkflow:{BATCH}", span_id(start))
    start_activity = tree.one(f"StartActivity:{PROCESS}", span_id(start))
    tree.one(f"RunActivity:{PROCESS}", span_id(start_activity))
    # The command's own span continues the context it was submitted with.
    command = tree.one("intent.command orders.place_order", root)
    assert command.attributes is not None
    assert command.attributes["intent.status"] == "processed"
    # Async projection, saga router and saga step continue the event's context: the
    # command span that appended it.
    tree.one("intent.project order_summaries", span_id(command))
    tree.one("intent.saga.route orders.order_placed", span_id(command))
    step = tree.one("intent.saga.step orders.fulfilment", span_id(command),
                    **{"intent.saga.step": "reserve"})
    # The command the saga issued carries the step's context on, through its own pipeline.
    reserve = tree.one("intent.command inventory.reserve_stock", span_id(step))
    assert reserve.attributes is not None
    reserve_claim = tree.one("intent.claim", span_id(step))
    inline = [s for s in _named(tree.found, "intent.project stock_levels")
              if f"RunActivity:{PROCESS}" in tree.ancestors(s)]
    assert len(inline) == 1, [tree.ancestors(s) for s in inline]
    assert tree.ancestors(inline[0])[:6] == [
        f"RunActivity:{PROCESS}", f"StartActivity:{PROCESS}", f"StartWorkflow:{BATCH}",
        "intent.batch", "intent.claim", "intent.saga.step orders.fulfilment",
    ]
    assert tree.ancestors(inline[0])[5:6] == [tree.by_id[span_id(step)].name]
    assert tree.ancestors(reserve_claim)[0] == step.name
    return command, step


async def test_one_command_yields_one_trace_across_the_pipeline(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment,
    spans: InMemorySpanExporter,
) -> None:
    async with traced_stack(pool, database_url, temporal_env):
        item = await stocked_item(pool)
        with telemetry.tracer().start_as_current_span("test.ingress") as ingress:
            incoming = telemetry.current_traceparent()
        assert incoming is not None
        order_id = uuid4()
        command_id = await submit_order(pool, item, order_id, incoming)
        statuses = await wait_terminal(pool, [command_id, reserve_step(order_id)], seconds=60)
        found = await spans_until(spans, ingress.get_span_context().trace_id, EXPECTED)
    assert set(statuses.values()) == {"processed"}
    tree = Tree(found)
    command, step = check_pipeline(tree, ingress.get_span_context().span_id)
    # What the store keeps: the events carry the span that appended them; the issued
    # command carries the saga step's.
    assert await traceparents_of_events(pool, command_id) == {traceparent(command)}
    assert await traceparent_of_command(pool, reserve_step(order_id)) == traceparent(step)



# -- one batch's command spans, to a processor that sees them start and one that does not --


@pytest.fixture(params=["simple", "watching"])
def either_path(request: pytest.FixtureRequest) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    processor = SimpleSpanProcessor(exporter) if request.param == "simple" else Watching(exporter)
    provider.add_span_processor(processor)
    telemetry.use_tracer_provider(provider)
    try:
        yield exporter
        if isinstance(processor, Watching):
            finished = [s.name for s in exporter.get_finished_spans()]
            assert sorted(processor.started[-len(finished):]) == sorted(finished)
    finally:
        telemetry.use_tracer_provider(None)
        provider.shutdown()


class WorkerDiedError(Exception):
    pass


def command_spans(exporter: InMemorySpanExporter, ids: Sequence[UUID]) -> list[ReadableSpan]:
    wanted = {str(i) for i in ids}
    return [s for s in exporter.get_finished_spans()
            if (s.attributes or {}).get("intent.command_id") in wanted]


async def test_a_batchs_command_spans_carry_its_error_then_each_commands_outcome(
    pool: AsyncConnectionPool[Conn], either_path: InMemorySpanExporter,
) -> None:
    stream = new_stream()
    register = await enqueue(pool, stream, "register_item", sku="S", name="W")
    refused = await enqueue(pool, stream, "receive_stock", quantity=-1)
    batch = await PostgresCommandStore(pool).claim(100)
    assert batch is not None
    assert {register, refused} <= set(batch.command_ids)
    processor = BatchProcessor(pool, registry)

    def crash() -> None:
        raise WorkerDiedError("gone")

    with telemetry.tracer().start_as_current_span("test.crashed") as crashed, \
            pytest.raises(WorkerDiedError):
        await processor.process(batch.batch_id, before_commit=crash)
    failed = command_spans(either_path, [register, refused])
    assert len(failed) == 2
    for span in failed:
        assert span.parent is not None
        assert span.parent.span_id == crashed.get_span_context().span_id
        assert span.status.description == "WorkerDiedError"
        assert "intent.status" not in (span.attributes or {})
        assert [(e.name, (e.attributes or {}).get("exception.message")) for e in span.events] \
            == [("exception", "gone")]
    either_path.clear()

    with telemetry.tracer().start_as_current_span("test.retried") as retried:
        await processor.process(batch.batch_id)
    assert await statuses(pool, [register, refused]) == {
        register: "processed", refused: "rejected"}
    done = {str((s.attributes or {})["intent.command_id"]): s
            for s in command_spans(either_path, [register, refused])}
    assert sorted(done) == sorted([str(register), str(refused)])
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select error->>'code' from intent.commands where command_id = %s", (refused,))
        row = await cur.fetchone()
    assert row is not None
    rejected = done[str(refused)]
    assert rejected.attributes is not None
    assert rejected.attributes["intent.status"] == "rejected"
    assert rejected.attributes["intent.rejection"] == row[0]
    processed = done[str(register)]
    assert processed.attributes is not None
    assert processed.attributes["intent.status"] == "processed"
    assert processed.attributes["intent.tenant_id"] == str(stream.tenant_id)
    assert processed.attributes["intent.aggregate_id"] == str(stream.aggregate_id)
    assert processed.name == "intent.command inventory.register_item"
    assert processed.parent is not None
    assert processed.parent.span_id == retried.get_span_context().span_id
    assert not processed.events
    # The appended event carries the span of the attempt that committed it.
    assert await traceparents_of_events(pool, register) == {traceparent(processed)}


# -- from the edge function ---------------------------------------------------------------


class OtlpReceiver:
    """A small OTLP/HTTP receiver: keeps the spans of every /v1/traces export."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _other(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/{kind}", self._other)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def span_named(self, name: str, seconds: float = 30) -> Any:
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            for span in self.spans:
                if span.name == name:
                    return span
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"Deno exported no {name} span; got "
                                     f"{[s.name for s in self.spans]}")
            await asyncio.sleep(0.1)


async def order_through_function(
    pool: AsyncConnectionPool[Conn], gateway_url: str, headers: dict[str, str]
) -> UUID:
    """Place an order for a stocked item through the `command` edge function as a user of
    tenant A, and wait for it and the saga step it causes; the command's id."""
    item = await stocked_item(pool)
    order_id = uuid4()
    async with aiohttp.ClientSession() as http, http.post(
        f"{gateway_url}/functions/v1/command",
        json={"type": "orders.place_order",
              "payload": {"order_id": str(order_id), "item_id": str(item.aggregate_id),
                          "quantity": 1}},
        headers={"apikey": anon_key(),
                 "Authorization": f"Bearer {user_token(TENANT_A, uuid4())}", **headers},
    ) as response:
        answer = await response.json()
        assert response.status == 202, answer
    command_id = UUID(answer["commandId"])
    await wait_terminal(pool, [command_id, reserve_step(order_id)], seconds=60)
    return command_id


async def test_the_edge_functions_ingress_span_is_the_root_of_the_pipelines_spans(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment,
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = OtlpReceiver()
    await receiver.start()
    # Inherited by the gateway and from it by the function's Deno process.
    monkeypatch.setenv("OTEL_DENO", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "intent-command-function")
    caller_trace, caller_span = uuid4().hex, uuid4().hex[:16]
    try:
        with running_gateway(
            database_url, functions_dir=REPO_ROOT / "supabase" / "functions",
            functions_config=REPO_ROOT / "supabase" / "config.toml",
        ) as gateway:
            async with traced_stack(pool, database_url, temporal_env):
                command_id = await order_through_function(
                    pool, gateway.url, {"traceparent": f"00-{caller_trace}-{caller_span}-01"})
                ingress = await receiver.span_named("intent.ingress")
                found = await spans_until(spans, int(caller_trace, 16), EXPECTED)
    finally:
        await receiver.stop()
    # Deno's server span is the caller's child, and the function's ingress span its child.
    assert ingress.trace_id.hex() == caller_trace
    server = next(s for s in receiver.spans if s.span_id == ingress.parent_span_id)
    assert server.parent_span_id.hex() == caller_span
    # The command carries the ingress span's context; the pipeline hangs below it.
    ingress_id = int.from_bytes(ingress.span_id, "big")
    assert await traceparent_of_command(pool, command_id) == (
        f"00-{caller_trace}-{ingress.span_id.hex()}-01"
    )
    check_pipeline(Tree(found), ingress_id)


async def test_a_request_without_trace_context_is_still_traced_by_the_pipeline(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment,
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_DENO", raising=False)  # the function itself records nothing
    with running_gateway(
        database_url, functions_dir=REPO_ROOT / "supabase" / "functions",
        functions_config=REPO_ROOT / "supabase" / "config.toml",
    ) as gateway:
        async with traced_stack(pool, database_url, temporal_env):
            command_id = await order_through_function(pool, gateway.url, {})
            started = await traceparent_of_command(pool, command_id)
            # A new trace, marked sampled, so the pipeline's parent-based sampler records it.
            _version, trace_id, parent_id, flags = started.split("-")
            assert flags == "01"
            found = await spans_until(spans, int(trace_id, 16), EXPECTED)
    check_pipeline(Tree(found), int(parent_id, 16))


# -- metrics ------------------------------------------------------------------------------


async def test_the_pipeline_records_its_metrics_and_the_samplers_read_the_store(
    pool: AsyncConnectionPool[Conn], database_url: str,
) -> None:
    reader = InMemoryMetricReader()
    telemetry.use_meter_provider(MeterProvider(metric_readers=[reader]))
    try:
        item = StreamId(tenant_id=TENANT_A, aggregate_type="inventory.item",
                        aggregate_id=uuid4())
        ids = [await enqueue(pool, item, "register_item", sku="S", name="W"),
               await enqueue(pool, item, "receive_stock", quantity=-1)]  # refused
        processor = BatchProcessor(pool, registry)
        async with running_pumps(pool, database_url, processor=processor, poll_interval=0.1):
            statuses = await wait_terminal(pool, ids)
        consumer = "projection:metrics-probe@1"  # no checkpoint: the whole feed is behind
        await sample_lag(pool, [consumer])
        await sample_held_back(pool)
        points = metric_points(reader)
    finally:
        telemetry.use_meter_provider(None)
    assert sorted(statuses.values()) == ["processed", "rejected"]
    counted = {(a["command_type"], a["status"]): v for a, v in points["intent.commands"]}
    assert counted[("inventory.register_item", "processed")] >= 1
    assert counted[("inventory.receive_stock", "rejected")] >= 1
    assert sum(count for _, count in points["intent.command.latency"]) >= 2
    assert sum(count for _, count in points["intent.batch.size"]) >= 1
    assert sum(count for _, count in points["intent.append.duration"]) >= 1
    (lag,) = [v for a, v in points["intent.projection.lag.events"] if a["consumer"] == consumer]
    assert lag >= 1  # at least the item's registration is behind a consumer at the start
    (held,) = points["intent.feed.held_back.seconds"]
    assert held[1] >= 0.0
