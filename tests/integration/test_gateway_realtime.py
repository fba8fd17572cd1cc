"""/realtime/v1 of the local gateway through both official clients: supabase-py (in this
process) and supabase-js (Node, tests/integration/js/realtime_agent.js). Each scenario is
written once against an `Agent` and run with either client, and the two-party ones with
one of each, so that both clients see both roles.

Nothing here waits a fixed time and asserts that nothing came: "B never gets A's row" is
shown by B getting a later row first (changes and broadcasts are delivered in order).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from tests.support.realtime import Agent, JsAgent, PyAgent, kind, realtime_gateway
from tests.support.tenants import new_user
from tools.gateway.testing import RunningGateway
from tools.local.keys import user_token

pytestmark = pytest.mark.integration

CLIENTS = ["py", "js"]
PAIRS = [("py", "js"), ("js", "py")]


@dataclass
class Setup:
    """The gateway, a published table with a tenant policy, a table that is not published,
    and a topic prefix whose private channels are readable by their own tenant only."""

    gateway: RunningGateway
    database_url: str
    suffix: str = field(default_factory=lambda: uuid4().hex[:10])
    agents: list[Agent] = field(default_factory=list)

    @property
    def table(self) -> str:
        return f"rt_probe_{self.suffix}"

    @property
    def hidden(self) -> str:
        return f"rt_hidden_{self.suffix}"

    def private_topic(self, tenant: UUID) -> str:
        return f"rtprobe{self.suffix}:{tenant}"

    async def agent(self, kind: str, token: str | None = None) -> Agent:
        made: Agent = await (PyAgent if kind == "py" else JsAgent).start(
            self.gateway.url, token)
        self.agents.append(made)
        return made

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(statement, params or None)


@pytest.fixture(scope="module")
def gateway(database_url: str) -> Iterator[RunningGateway]:
    with realtime_gateway(database_url) as running:
        yield running


@pytest.fixture(scope="module")
def schema(gateway: RunningGateway, database_url: str) -> Iterator[Setup]:
    made = Setup(gateway, database_url)
    made.sql(f"""
    create table public.{made.table} (
      id uuid primary key default gen_random_uuid(), tenant_id uuid not null,
      label text not null, n integer not null default 0, doc jsonb, tags text[],
      scores integer[]);
    alter table public.{made.table} enable row level security;
    create policy tenant_reads on public.{made.table} for select to authenticated
      using (tenant_id = ((select auth.jwt()) -> 'app_metadata' ->> 'tenant_id')::uuid);
    grant select on public.{made.table} to authenticated;
    alter publication supabase_realtime add table public.{made.table};
    create table public.{made.hidden} (id integer primary key);
    grant select on public.{made.hidden} to authenticated;
    create policy rtprobe_{made.suffix} on realtime.messages for select to authenticated
      using (realtime.topic() = 'rtprobe{made.suffix}:'
             || ((select auth.jwt()) -> 'app_metadata' ->> 'tenant_id'));
    """)
    yield made
    made.sql(f"""
    alter publication supabase_realtime drop table public.{made.table};
    drop table public.{made.table};
    drop table public.{made.hidden};
    drop policy rtprobe_{made.suffix} on realtime.messages;
    delete from realtime.messages where topic like 'rtprobe{made.suffix}%';
    """)


@pytest.fixture
async def setup(schema: Setup) -> AsyncIterator[Setup]:
    try:
        yield schema
    finally:
        for agent in schema.agents:
            await agent.close()
        schema.agents.clear()


# -- joining ------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
async def test_join_is_subscribed_and_announces_postgres_changes(
        setup: Setup, client: str) -> None:
    tenant, token = new_user()
    agent = await setup.agent(client, token)
    binding = {"event": "INSERT", "schema": "public", "table": setup.table,
               "filter": f"tenant_id=eq.{tenant}"}
    status = await agent.subscribe("c", f"join-{client}", {}, changes=[binding])
    assert status == "SUBSCRIBED"
    system = await agent.wait_for(kind("system", "c"))
    assert system["payload"]["extension"] == "postgres_changes"
    assert system["payload"]["status"] == "ok"
    assert system["payload"]["message"] == "Subscribed to PostgreSQL"
    joins = [e for e in setup.gateway.log_events()
             if e.get("event") == "realtime_join" and e.get("topic") == f"realtime:join-{client}"]
    assert joins
    assert joins[-1]["status"] == "ok"
    assert joins[-1]["bindings"] == 1


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_table_outside_the_publication_cannot_be_subscribed(
        setup: Setup, client: str) -> None:
    _, token = new_user()
    agent = await setup.agent(client, token)
    status = await agent.subscribe("c", f"hidden-{client}", {}, changes=[
        {"event": "*", "schema": "public", "table": setup.hidden}])
    assert status == "CHANNEL_ERROR"
    error = await agent.wait_for(kind("status", "c", status="CHANNEL_ERROR"))
    assert "Unable to subscribe to changes with given parameters" in str(error["error"])


# -- broadcast ----------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), PAIRS)
async def test_broadcast_reaches_others_and_self_only_when_asked_with_ack(
        setup: Setup, first: str, second: str) -> None:
    topic = f"room-{uuid4().hex[:8]}"
    loud = await setup.agent(first)
    quiet = await setup.agent(second)
    assert await loud.subscribe("r", topic, {"broadcast": {"self": True, "ack": True}}) == (
        "SUBSCRIBED")
    assert await quiet.subscribe("r", topic, {"broadcast": {"self": False, "ack": False}}) == (
        "SUBSCRIBED")
    assert await loud.send("r", "hello", {"n": 1, "text": "é"}) == "ok"
    heard = await quiet.wait_for(kind("broadcast", "r", event="hello"))
    assert heard["payload"] == {"n": 1, "text": "é"}
    echo = await loud.wait_for(kind("broadcast", "r", event="hello"))  # self: true
    assert echo["payload"] == {"n": 1, "text": "é"}
    await quiet.send("r", "reply", {"n": 2})
    await loud.wait_for(kind("broadcast", "r", event="reply"))
    await loud.send("r", "after", {"n": 3})
    await quiet.wait_for(kind("broadcast", "r", event="after"))
    # self: false — "after" was sent after "reply", and arrived, so "reply" never will.
    assert not [e for e in quiet.events if kind("broadcast", "r", event="reply")(e)]


# -- presence -----------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), PAIRS)
async def test_presence_joins_and_leaves_are_seen_by_both(
        setup: Setup, first: str, second: str) -> None:
    topic = f"lobby-{uuid4().hex[:8]}"
    alice = await setup.agent(first)
    bob = await setup.agent(second)
    assert await alice.subscribe("l", topic, {"presence": {"key": "alice"}},
                                 presence=True) == "SUBSCRIBED"
    await alice.track("l", {"name": "Alice"})
    await alice.wait_for(kind("presence", "l", kind="join", key="alice"))  # incl. tracker
    assert await bob.subscribe("l", topic, {"presence": {"key": "bob"}},
                               presence=True) == "SUBSCRIBED"
    seen = await bob.wait_for(kind("presence", "l", kind="join", key="alice"))  # the state
    assert seen["metas"][0]["name"] == "Alice"
    await bob.track("l", {"name": "Bob"})
    joined = await alice.wait_for(kind("presence", "l", kind="join", key="bob"))
    assert joined["metas"][0]["name"] == "Bob"
    await bob.wait_for(kind("presence", "l", kind="join", key="bob"))
    await bob.unsubscribe("l")
    left = await alice.wait_for(kind("presence", "l", kind="leave", key="bob"))
    assert left["metas"][0]["name"] == "Bob"


# -- postgres changes ---------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), PAIRS)
async def test_changes_are_filtered_and_delivered_only_under_rls(
        setup: Setup, first: str, second: str) -> None:
    tenant_a, token_a = new_user()
    tenant_b, token_b = new_user()
    owner = await setup.agent(first, token_a)
    nosy = await setup.agent(second, token_b)
    on_a = {"event": "INSERT", "schema": "public", "table": setup.table,
            "filter": f"tenant_id=eq.{tenant_a}"}
    on_b = {"event": "INSERT", "schema": "public", "table": setup.table,
            "filter": f"tenant_id=eq.{tenant_b}"}
    updates = {"event": "UPDATE", "schema": "public", "table": setup.table}
    assert await owner.subscribe("t", f"rows-{first}", {}, changes=[on_a, updates]) == (
        "SUBSCRIBED")
    # The nosy subscriber asks for tenant A's rows too: the filter matches, RLS must not.
    assert await nosy.subscribe("t", f"rows-{second}", {}, changes=[on_a, on_b]) == (
        "SUBSCRIBED")
    await owner.wait_for(kind("system", "t"))
    await nosy.wait_for(kind("system", "t"))
    setup.sql(f"insert into public.{setup.table} (tenant_id, label, doc, tags, scores) values "
              "(%s, 'a-row', '{\"k\": [1]}', array['x y', null], array[3, 1])", (tenant_a,))
    setup.sql(f"insert into public.{setup.table} (tenant_id, label) values (%s, 'b-row')",
              (tenant_b,))
    setup.sql(f"update public.{setup.table} set n = 5 where tenant_id = %s", (tenant_a,))
    got = await owner.wait_for(kind("change", "t", type="INSERT"))
    assert got["record"]["label"] == "a-row"
    assert got["record"]["doc"] == {"k": [1]}
    assert got["record"]["tags"] == ["x y", None]  # arrays as JSON arrays, not "{...}"
    assert got["record"]["scores"] == [3, 1]
    assert got["table"] == setup.table
    assert got["commit_timestamp"].endswith("Z")
    updated = await owner.wait_for(kind("change", "t", type="UPDATE"))
    assert updated["record"]["n"] == 5
    theirs = await nosy.wait_for(kind("change", "t", type="INSERT"))
    assert theirs["record"]["label"] == "b-row"  # the first change B sees is its own
    assert [e["record"]["label"] for e in nosy.events if e.get("ev") == "change"] == ["b-row"]
    assert [e["record"]["label"] for e in owner.events
            if kind("change", "t", type="INSERT")(e)] == ["a-row"]


# -- private channels and broadcast from the database -------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_private_topic_of_another_tenant_is_refused(setup: Setup, client: str) -> None:
    tenant_a, token_a = new_user()
    _, token_b = new_user()
    topic = setup.private_topic(tenant_a)
    owner = await setup.agent(client, token_a)
    intruder = await setup.agent(client, token_b)
    assert await owner.subscribe("p", topic, {"private": True}) == "SUBSCRIBED"
    assert await intruder.subscribe("p", topic, {"private": True}) == "CHANNEL_ERROR"
    refused = await intruder.wait_for(kind("status", "p", status="CHANNEL_ERROR"))
    assert ("Unauthorized: You do not have permissions to read from this Channel topic: "
            f"{topic}") in str(refused["error"])


@pytest.mark.parametrize(("first", "second"), PAIRS)
async def test_database_broadcasts_reach_their_private_or_public_channel(
        setup: Setup, first: str, second: str) -> None:
    tenant, token = new_user()
    topic = setup.private_topic(tenant)
    member = await setup.agent(first, token)
    public = await setup.agent(second, token)
    assert await member.subscribe("p", topic, {"private": True}) == "SUBSCRIBED"
    assert await public.subscribe("p", topic, {"private": False}) == "SUBSCRIBED"
    setup.sql("select realtime.send(%s::jsonb, 'stock', %s, true)",
              (json.dumps({"sku": "A-1", "on_hand": 3}), topic))
    setup.sql("insert into realtime.messages (topic, extension, event, payload, private) "
              "values (%s, 'broadcast', 'open', '{\"hello\": 1}', false)", (topic,))
    got = await member.wait_for(kind("broadcast", "p", event="stock"))
    assert got["payload"]["sku"] == "A-1"
    assert got["payload"]["on_hand"] == 3
    assert got["meta"]["id"] == got["payload"]["id"]  # realtime.send adds the id
    opened = await public.wait_for(kind("broadcast", "p", event="open"))
    assert opened["payload"] == {"hello": 1}
    assert UUID(opened["meta"]["id"])
    # "open" was committed after "stock" and arrived: "stock" is not for public channels.
    assert [e["event"] for e in public.events if e.get("ev") == "broadcast"] == ["open"]


@pytest.mark.parametrize("client", CLIENTS)
async def test_sending_on_a_private_channel_needs_the_insert_policies(
        setup: Setup, client: str) -> None:
    tenant, token = new_user()
    member = await setup.agent(client, token)
    topic = setup.private_topic(tenant)
    assert await member.subscribe("p", topic, {"private": True,
                                               "broadcast": {"ack": True}}) == "SUBSCRIBED"
    # The test policy lets a tenant read its topic, not write to it.
    assert await member.send("p", "shout", {"n": 1}) == "error"


@pytest.mark.parametrize("client", CLIENTS)
async def test_presence_on_a_private_channel_needs_an_insert_policy_for_presence(
        setup: Setup, client: str) -> None:
    tenant = uuid4()
    allowed, refused = uuid4(), uuid4()
    topic = setup.private_topic(tenant)
    policy = f"rtpresence_{uuid4().hex[:8]}"
    # Everyone of the tenant may read the topic (the fixture's policy); only `allowed` may
    # publish presence on it.
    setup.sql(f"""create policy {policy} on realtime.messages for insert to authenticated
        with check (realtime.messages.extension = 'presence'
                    and (select auth.jwt()) ->> 'sub' = '{allowed}')""")
    try:
        watcher = await setup.agent(client, user_token(tenant, uuid4()))
        intruder = await setup.agent(client, user_token(tenant, refused))
        member = await setup.agent(client, user_token(tenant, allowed))
        for agent, key in ((watcher, "watcher"), (intruder, "intruder"), (member, "member")):
            assert await agent.subscribe("p", topic, {"private": True,
                                                      "presence": {"key": key}},
                                         presence=True) == "SUBSCRIBED"
        answer = await intruder.track("p", {"who": "intruder"})
        if client == "js":
            assert answer == "error"
        await member.track("p", {"who": "member"})
        await watcher.wait_for(kind("presence", "p", kind="join", key="member"))
        # The member's track was sent after the intruder's and has arrived.
        assert not [e for e in watcher.events
                    if kind("presence", "p", kind="join", key="intruder")(e)]
    finally:
        setup.sql(f"drop policy {policy} on realtime.messages")


@pytest.mark.parametrize("client", CLIENTS)
async def test_deletes_carry_only_the_primary_key_of_a_table_with_rls(
        setup: Setup, client: str) -> None:
    tenant, token = new_user()
    agent = await setup.agent(client, token)
    binding = {"event": "DELETE", "schema": "public", "table": setup.table}
    assert await agent.subscribe("d", f"deletes-{client}", {}, changes=[binding]) == (
        "SUBSCRIBED")
    await agent.wait_for(kind("system", "d"))
    row = uuid4()
    setup.sql(f"insert into public.{setup.table} (id, tenant_id, label) values (%s, %s, 'x')",
              (row, tenant))
    setup.sql(f"delete from public.{setup.table} where id = %s", (row,))
    deleted = await agent.wait_for(kind("change", "d", type="DELETE"))
    assert deleted["old_record"] == {"id": str(row)}


# -- tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_token_that_expires_mid_session_closes_the_channel(
        setup: Setup, client: str) -> None:
    tenant = uuid4()
    token = user_token(tenant, uuid4(), expires_in=3)
    agent = await setup.agent(client, token)
    topic = f"expiring-{uuid4().hex[:8]}"
    assert await agent.subscribe("e", topic, {}) == "SUBSCRIBED"
    closed = await agent.wait_for(kind("status", "e", status="CLOSED"))
    assert closed["status"] == "CLOSED"
    expired = [e for e in setup.gateway.log_events()
               if e.get("event") == "realtime_token_expired"
               and e.get("topic") == f"realtime:{topic}"]
    assert expired
    assert expired[0]["reason"].startswith("Token has expired")
    if client == "py":  # supabase-py reports the system error as a channel error first
        error = await agent.wait_for(kind("status", "e", status="CHANNEL_ERROR"))
        assert "Token has expired" in str(error["error"])
    else:
        system = await agent.wait_for(kind("system", "e"))
        assert system["payload"]["status"] == "error"
        assert "Token has expired" in system["payload"]["message"]


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_refreshed_token_keeps_the_channel_past_the_old_expiry(
        setup: Setup, client: str) -> None:
    tenant, user = uuid4(), uuid4()
    agent = await setup.agent(client, user_token(tenant, user, expires_in=3))
    sender = await setup.agent("py")
    topic = f"refreshed-{uuid4().hex[:8]}"
    assert await agent.subscribe("f", topic, {}) == "SUBSCRIBED"
    assert await sender.subscribe("f", topic, {}) == "SUBSCRIBED"
    deadline = time.time() + 3
    await agent.set_auth(user_token(tenant, user, expires_in=3600))
    await asyncio.sleep(max(0.0, deadline - time.time()) + 1.5)  # past the first token
    await sender.send("f", "still-here", {"ok": True})
    await agent.wait_for(kind("broadcast", "f", event="still-here"))
    assert not [e for e in agent.events if kind("status", "f", status="CLOSED")(e)]


def feed_backend(setup: Setup) -> tuple[str, int] | None:
    """This gateway's change-feed slot and the backend holding it, when active."""
    with psycopg.connect(setup.database_url, autocommit=True) as conn:
        row = conn.execute(
            "select slot_name::text, active_pid from pg_replication_slots"
            " where slot_name like %s and active", (f"intent_gateway_{setup.gateway.pid}_%",),
        ).fetchone()
    return (row[0], int(row[1])) if row else None


async def test_the_change_feed_opens_again_after_its_connection_is_lost(setup: Setup) -> None:
    """PostgreSQL restarted or the backend terminated: the feed opens a new slot with
    backoff, and what commits afterwards reaches the subscribers again."""
    tenant, token = new_user()
    topic = setup.private_topic(tenant)
    member = await setup.agent("py", token)
    assert await member.subscribe("p", topic, {"private": True}) == "SUBSCRIBED"
    before = feed_backend(setup)
    assert before is not None
    setup.sql("select pg_terminate_backend(%s)", (before[1],))
    deadline = asyncio.get_running_loop().time() + 30
    while (now := feed_backend(setup)) is None or now[0] == before[0]:
        assert asyncio.get_running_loop().time() < deadline, "the feed did not open again"
        await asyncio.sleep(0.2)
    setup.sql("select realtime.send(%s::jsonb, 'after', %s, true)",
              (json.dumps({"n": 1}), topic))
    got = await member.wait_for(kind("broadcast", "p", event="after"))
    assert got["payload"]["n"] == 1
    assert any(e.get("event") == "realtime_feed_lost" for e in setup.gateway.log_events())
