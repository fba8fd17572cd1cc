"""Telling a supervisor that this process is serving, whatever the log level.

`intent dev` starts each long-running command with INTENT_READY_FILE naming a file of its own
and waits for it to appear with the child's pid in it. A log line would do the same until
someone sets INTENT_LOG_LEVEL=warning, which hides every "running" line.
"""

from __future__ import annotations

import os
from pathlib import Path

READY_FILE_VARIABLE = "INTENT_READY_FILE"


def mark_ready() -> None:
    """Write this process's pid to $INTENT_READY_FILE (nothing when it is unset)."""
    path = os.environ.get(READY_FILE_VARIABLE)
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_text(str(os.getpid()), encoding="utf-8")
    partial.replace(target)  # whole or absent, never half-written


def ready_pid(path: Path) -> int | None:
    """The pid a ready file holds, or None when it is absent or unreadable."""
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
