"""The application a saga worker hosts, handed to its workflows.

A workflow cannot take the application as an argument (it is code, not data), and the
sandbox imports workflow modules afresh for every run. This module is passed through the
sandbox, so the workflow sees the very registries the worker was built with, looked up by
the task queue the run is on: two applications in one process (tests do that) stay apart."""

from __future__ import annotations

from dataclasses import dataclass

from domain.registry import Registry
from domain.saga import SagaRegistry


@dataclass(frozen=True)
class HostedSagas:
    registry: Registry
    sagas: SagaRegistry


_hosted: dict[str, HostedSagas] = {}


def host(task_queue: str, registry: Registry, sagas: SagaRegistry) -> None:
    """Called by the worker builder before the worker polls `task_queue`."""
    current = _hosted.get(task_queue)
    if current is not None and (current.registry, current.sagas) != (registry, sagas):
        raise RuntimeError(f"task queue {task_queue} already hosts another application's sagas")
    _hosted[task_queue] = HostedSagas(registry, sagas)


def hosted(task_queue: str) -> HostedSagas:
    try:
        return _hosted[task_queue]
    except KeyError:
        raise RuntimeError(
            f"no application hosts sagas on task queue {task_queue} in this process "
            "(build the worker with pump.sagas.worker.build_saga_worker)"
        ) from None
