"""The application: one object that holds everything an app built on Intent declares (its
command and event registry, its sagas, its projections), checked together once.

It is named once, in the app's pyproject.toml (`[tool.intent] app = "module:attribute"`),
loaded by the CLI and passed down to every process; nothing in the framework reaches for a
global. It lives here, the lowest layer that knows both the domain's registries and the
projection catalog."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from domain.registry import Registry
from domain.saga import Saga, SagaRegistry
from projections.metadata import Catalog, Projection


@dataclass(frozen=True)
class Application:
    name: str  # for logs and messages
    registry: Registry
    sagas: SagaRegistry
    catalog: Catalog

    @classmethod
    def compose(
        cls,
        name: str,
        registry: Registry,
        *,
        sagas: SagaRegistry | Iterable[type[Saga[Any]]] = (),
        projections: Iterable[Projection] = (),
    ) -> Application:
        """Validate the registry and check the projections against its event types."""
        registry.validate()
        catalog = Catalog(
            projections,
            event_types=registry.event_types(),
            models={name: kind.payload_model for name, kind in registry.event_types().items()},
        )
        if not isinstance(sagas, SagaRegistry):
            sagas = SagaRegistry(sagas)
        return cls(name, registry, sagas, catalog)

    def code_packages(self) -> frozenset[str]:
        """The top-level packages the app's commands, events and sagas are defined in: pure
        code the Temporal workflow sandbox may pass through rather than import again."""
        classes: list[type] = [saga for saga in self.sagas]
        for kind in self.registry.event_types().values():
            classes.append(kind.payload_model)
        for command in self.registry.command_types().values():
            classes += [command.payload_model, command.aggregate]
        return frozenset(c.__module__.split(".")[0] for c in classes)
