"""A copy of this repository for a test to change: what `git ls-files` holds (tracked files
and new ones not ignored, as they are in the working tree) in a folder removed afterwards.

The set-up is shared, not repeated: `.venv`, `node_modules` and Deno's cache are symlinks to
this checkout's, and the set-up stamps are copied, so `./run` in the copy goes straight to
its command. The venv's editable install points at this checkout; PYTHONPATH puts the copy
first, so the copy's code (and what a test writes into it) is what runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ambient_env, public_tempdir
from tools.settings import REPO_ROOT

SHARED = (".venv", "node_modules", ".intent/deno")


@dataclass(frozen=True)
class RepoCopy:
    root: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment commands in the copy run with (no DATABASE_URL, no INTENT_APP:
        the copy's pyproject.toml names the application)."""
        return {**ambient_env("INTENT_APP", "PYTHONPATH"), "PYTHONPATH": str(self.root),
                "CI": "true", **extra}

    def run(self, command: Sequence[str] | str, *, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """A command in the copy's root (a string runs in bash), to its end, output captured."""
        args: Sequence[str] = ["bash", "-c", command] if isinstance(command, str) else command
        return subprocess.run(list(args), cwd=self.root, env=env or self.env(), text=True,
                              capture_output=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)

    def intent(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.root / ".venv" / "bin" / "intent"), *args], timeout=timeout)

    def python(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.root / ".venv" / "bin" / "python"), *args], timeout=timeout)


def tracked_files(root: Path) -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=root, check=True,
                            capture_output=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (root / name).is_file()]


@contextmanager
def repo_copy() -> Iterator[RepoCopy]:
    with public_tempdir("intent-copy-") as parent:
        root = parent / "repo"
        for name in tracked_files(REPO_ROOT):
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, target)
        for shared in SHARED:
            if (REPO_ROOT / shared).exists():
                (root / shared).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(REPO_ROOT / shared, root / shared)
        if (REPO_ROOT / ".intent" / "setup").is_dir():
            shutil.copytree(REPO_ROOT / ".intent" / "setup", root / ".intent" / "setup")
        yield RepoCopy(root)
