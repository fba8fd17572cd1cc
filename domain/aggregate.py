"""The aggregate base, in the decider shape: `decide` says what happens, `evolve` folds it in.

Aggregates are never instantiated: they are namespaces of pure class methods, so that the
state lives only in the (immutable) state model and nothing can hide between calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Generic, NoReturn, TypeVar

from pydantic import BaseModel

from domain.errors import InvalidEvent, InvalidSnapshot, RegistryError

StateT = TypeVar("StateT", bound=BaseModel)


class Aggregate(Generic[StateT]):
    """Subclass per aggregate type, set the class variables and override decide and evolve.

    `decide` must not change anything: it returns the typed event payloads to record, or
    raises `DomainRejection`. `evolve` must accept every event `decide` ever produced (also
    the ones recorded by older code), so it never validates, it only applies.
    """

    type_name: ClassVar[str]
    state_model: ClassVar[type[StateT]]
    # Bump when the state model changes shape, and teach `upcast_state` the old shape.
    state_schema_version: ClassVar[int] = 1
    # Take a snapshot whenever the stream crosses a multiple of this; None: never.
    snapshot_every: ClassVar[int | None] = None

    @classmethod
    def initial_state(cls) -> StateT:
        return cls.state_model()

    @classmethod
    def decide(cls, command: BaseModel, state: StateT) -> Sequence[BaseModel]:
        cls.unhandled_command(command)

    @classmethod
    def evolve(cls, state: StateT, event: BaseModel) -> StateT:
        cls.unhandled_event(event)

    @classmethod
    def upcast_state(cls, state: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Bring a snapshot's state from `from_version` to `state_schema_version`.

        Refusing is always safe: the caller drops the snapshot and replays the stream.
        """
        raise InvalidSnapshot(
            f"{cls.type_name} cannot read state of schema version {from_version} "
            f"(current: {cls.state_schema_version})",
            aggregate_type=cls.type_name,
            from_version=from_version,
        )

    @classmethod
    def unhandled_command(cls, command: BaseModel) -> NoReturn:
        """For the fall-through case of `decide`: a command was routed here by mistake."""
        raise RegistryError(
            f"{cls.type_name} has no decision for {type(command).__name__}",
            aggregate_type=cls.type_name,
        )

    @classmethod
    def unhandled_event(cls, event: BaseModel) -> NoReturn:
        """For the fall-through case of `evolve`: this stream holds an event it cannot apply."""
        raise InvalidEvent(
            f"{cls.type_name} cannot apply {type(event).__name__}",
            aggregate_type=cls.type_name,
        )
