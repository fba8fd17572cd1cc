"""The application: one object that holds everything an app built on Intent declares (its
command and event registry, its sagas, its projections), checked together once.

It is named once, in the app's pyproject.toml (`[tool.intent] app = "module:attribute"`),
loaded by the CLI and passed down to every process; nothing in the framework reaches for a
global. It lives here, the lowest layer that knows both the domain's registries and the
projection catalog."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from domain.registry import Registry
from domain.saga import Saga, SagaRegistry
from projections.metadata import Catalog, Projection


class Slice(Protocol):
    """One bounded context's declarations (e.g. the module `domain.inventory`)."""

    @property
    def registry(self) -> Registry: ...


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
        registry: Registry | None = None,
        *,
        slices: Iterable[Slice] = (),
        sagas: SagaRegistry | Iterable[type[Saga[Any]]] = (),
        projections: Iterable[Projection] = (),
    ) -> Application:
        """Compose the slices (and/or a registry of one's own) with the projections: validate
        the registry and check the projections against its event types.

        A slice is a module (or any object) with a `registry` and, when it has sagas, a
        `SAGAS` sequence: what `intent new slice` writes, and what it lists in `slices=`."""
        slices = list(slices)
        if slices:
            composed = Registry()
            if registry is not None:
                composed.include(registry)
            for part in slices:
                composed.include(part.registry)
            registry = composed
        elif registry is None:
            raise TypeError("Application.compose needs slices, a registry, or both")
        registry.validate()
        catalog = Catalog(
            projections,
            event_types=registry.event_types(),
            models={name: kind.payload_model for name, kind in registry.event_types().items()},
        )
        saga_classes = list(sagas)
        for part in slices:
            saga_classes += getattr(part, "SAGAS", ())
        return cls(name, registry, SagaRegistry(saga_classes), catalog)

    def code_packages(self) -> frozenset[str]:
        """The top-level packages the app's commands, events and sagas are defined in: pure
        code the Temporal workflow sandbox may pass through rather than import again."""
        classes: list[type] = [saga for saga in self.sagas]
        for kind in self.registry.event_types().values():
            classes.append(kind.payload_model)
        for command in self.registry.command_types().values():
            classes += [command.payload_model, command.aggregate]
        return frozenset(c.__module__.split(".")[0] for c in classes)
