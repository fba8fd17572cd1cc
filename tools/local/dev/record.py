"""<state>/dev.json: what a running `intent dev` runs, by PID, and in what state, written on
every change. Scripts and tests read it to know what to stop; `intent status` reads it to
say what is restarting while the database cannot be reached."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# PostgreSQL's states: serving, being restarted by dev, waiting for whoever started it,
# given up on (dev is stopping everything).
POSTGRES_STATES = ("up", "restarting", "waiting", "lost")


@dataclass(frozen=True)
class DevRecord:
    dev: int
    postgres: int | None
    postgres_started_by_dev: bool
    postgres_state: str
    db_port: int
    processes: dict[str, int] = field(default_factory=dict)  # the live ones, by name
    states: dict[str, str] = field(default_factory=dict)  # every one: "ready", ...
    updated_at: str = ""

    def not_ready(self) -> dict[str, str]:
        """The processes that are not serving now, with their state."""
        return {name: state for name, state in self.states.items() if state != "ready"}


def write(path: Path, record: DevRecord) -> None:
    """Whole or absent, never half-written (a reader may look at any moment)."""
    stamped = {**asdict(record), "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(stamped, indent=2) + "\n")
    tmp.replace(path)


def read(path: Path) -> DevRecord | None:
    """The record, or None when there is none or it is not one (an older format included)."""
    try:
        data: Any = json.loads(path.read_text())
        return DevRecord(
            dev=int(data["dev"]),
            postgres=data.get("postgres") if isinstance(data.get("postgres"), int) else None,
            postgres_started_by_dev=bool(data.get("postgres_started_by_dev")),
            postgres_state=str(data.get("postgres_state", "up")),
            db_port=int(data["db_port"]),
            processes={str(k): int(v) for k, v in dict(data.get("processes", {})).items()},
            states={str(k): str(v) for k, v in dict(data.get("states", {})).items()},
            updated_at=str(data.get("updated_at", "")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
