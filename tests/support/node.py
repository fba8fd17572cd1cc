"""JavaScript under Node from a test: the official clients (supabase-js, realtime-js) run
unchanged, driven by a script of tests/**/js."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tools.settings import REPO_ROOT


def node() -> str:
    """The `node` binary; the test fails, saying how to install it, when there is none."""
    binary = shutil.which("node")
    assert binary, "Node.js is needed (./run setup installs it)"
    return binary


async def run_script(script: Path, inputs: dict[str, Any], *, seconds: float = 120
                     ) -> dict[str, Any]:
    """`node <script>` from the repository root with `inputs` as JSON in INTENT_E2E; what
    it printed last, as JSON (the script exits non-zero on a failure, failing the test)."""
    process = await asyncio.create_subprocess_exec(
        node(), str(script), cwd=REPO_ROOT,
        env={**os.environ, "INTENT_E2E": json.dumps(inputs)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=seconds)
    assert process.returncode == 0, err.decode() + out.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result
