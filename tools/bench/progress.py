"""The progress bar's tasks, for benchmarks run with one or without (`progress` None)."""

from __future__ import annotations

from rich.progress import Progress, TaskID


def add_task(progress: Progress | None, title: str, total: int) -> TaskID | None:
    return progress.add_task(title, total=total) if progress is not None else None


def advance(progress: Progress | None, task: TaskID | None, steps: int = 1) -> None:
    if progress is not None and task is not None:
        progress.advance(task, steps)


def remove_task(progress: Progress | None, task: TaskID | None) -> None:
    if progress is not None and task is not None:
        progress.remove_task(task)
