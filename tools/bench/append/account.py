"""The append bench's own aggregate: an account that takes deposits, in an Application of its
own (as an app built on Intent declares one), so the bench depends on no example slice.

One command (`bench.deposit`), one event type (`bench.deposited`, ~80 bytes of JSON), a
state of two integers, a snapshot every 100 events. The events the bench appends are made
by `domain.decider.decide` from real `Command` envelopes, before anything is timed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from domain.aggregate import Aggregate
from domain.contracts import Command, Event, Metadata, StreamId
from domain.decider import Loaded, decide, evolve_all
from domain.registry import Registry
from projections.application import Application

SNAPSHOT_EVERY = 100
DEPOSIT = "bench.deposit"
DEPOSITED = "bench.deposited"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Deposit(_Model):  # the command
    account_id: UUID
    amount: int = Field(ge=1, le=1_000_000)
    memo: str = Field(max_length=100)


class Deposited(_Model):  # the event
    account_id: UUID
    amount: int
    memo: str


class AccountState(_Model):
    balance: int = 0
    deposits: int = 0


class Account(Aggregate[AccountState]):
    type_name = "bench.account"
    state_model = AccountState
    snapshot_every = SNAPSHOT_EVERY

    @classmethod
    def decide(cls, command: BaseModel, state: AccountState) -> Sequence[BaseModel]:
        match command:
            case Deposit(account_id=account_id, amount=amount, memo=memo):
                return [Deposited(account_id=account_id, amount=amount, memo=memo)]
        cls.unhandled_command(command)

    @classmethod
    def evolve(cls, state: AccountState, event: BaseModel) -> AccountState:
        match event:
            case Deposited(amount=amount):
                # The RAW fold (raw.fold) does this same arithmetic on the rows' dicts. A new
                # state by its constructor: for a small state about half the time of
                # model_copy(update=...), and validated.
                return AccountState(balance=state.balance + amount, deposits=state.deposits + 1)
        cls.unhandled_event(event)


registry = Registry()
registry.aggregate(Account)
registry.event(DEPOSITED)(Deposited)
registry.command(
    DEPOSIT, aggregate=Account, aggregate_id="account_id", roles={"authenticated", "service_role"}
)(Deposit)
application = Application.compose("bench.append", registry)


def amount_for(version: int) -> int:
    """The deposit that becomes event `version` of a stream: varied, and known in advance."""
    return version * 37 % 991 + 1


def new_account(tenant_id: UUID) -> Loaded[AccountState]:
    """A fresh account's stream, before its first event."""
    stream = StreamId(tenant_id=tenant_id, aggregate_type=Account.type_name, aggregate_id=uuid4())
    return Loaded(stream=stream, state=Account.initial_state(), version=0)


def decided(loaded: Loaded[AccountState], count: int) -> tuple[list[Event], Loaded[AccountState]]:
    """`count` deposit commands decided one after the other from `loaded` (each on the state
    the previous one left), as a worker would decide them: their events, and the state after.

    One user's session: the commands share a user and a correlation id, each has its own
    command id (so its event ids are derived from it)."""
    session = Metadata(
        tenant_id=loaded.stream.tenant_id, user_id=uuid4(), role="authenticated",
        correlation_id=uuid4(),
    )
    account_id = str(loaded.stream.aggregate_id)
    events: list[Event] = []
    for _ in range(count):
        version = loaded.version + 1
        command = Command(
            command_id=uuid4(),
            command_type=DEPOSIT,
            payload={"account_id": account_id, "amount": amount_for(version),
                     "memo": f"dep {version}"},
            metadata=session,
        )
        new = decide(registry, command, loaded)
        loaded = evolve_all(registry, Account, loaded, new)
        events += new
    return events, loaded


def payload_text(event: Event) -> str:
    """An event's payload as the JSON text a RAW row carries (serialised before timing)."""
    return json.dumps(event.payload, separators=(",", ":"))


def metadata_text(event: Event) -> str:
    """An event's metadata as the JSON text a RAW row carries: what decide made."""
    return event.metadata.model_dump_json()
