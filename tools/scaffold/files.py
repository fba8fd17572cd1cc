"""The files a scaffold writes: rendered from the templates beside this module, refused as a
whole when any of them exists, then written together with the registration."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).parent / "templates"
_FROM = re.compile(r"from (\S+) import ")


class WouldOverwriteError(Exception):
    """A file the scaffold would write is already there; nothing was written."""


def render(template: str, values: Mapping[str, str]) -> str:
    text = Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)
    return sorted_imports(text)


def sorted_imports(text: str) -> str:
    """Each run of one-line `from x import y` lines sorted by module, as ruff's isort sorts
    a section (the templates' first-party block depends on the package's name)."""
    lines = text.split("\n")
    start = 0
    while start < len(lines):
        end = start
        while end < len(lines) and _FROM.match(lines[end]) and "(" not in lines[end]:
            end += 1
        if end > start:
            run = lines[start:end]
            run.sort(key=lambda line: _module_key(line))
            lines[start:end] = run
            start = end
        else:
            start += 1
    return "\n".join(lines)


def _module_key(line: str) -> tuple[str, ...]:
    found = _FROM.match(line)
    assert found is not None
    return tuple(found.group(1).split("."))


@dataclass
class Plan:
    """Files to create, files to rewrite (the application's module), and paths that must not
    exist (the slice's folder, a module that would shadow it)."""

    create: dict[Path, str] = field(default_factory=dict)
    rewrite: dict[Path, str] = field(default_factory=dict)
    absent: list[Path] = field(default_factory=list)

    def refuse_existing(self) -> None:
        there = [path for path in [*self.absent, *self.create] if path.exists()]
        if there:
            raise WouldOverwriteError(", ".join(str(path) for path in there))

    def write(self) -> None:
        self.refuse_existing()
        for path, text in self.create.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as file:  # never over a file
                file.write(text)
        for path, text in self.rewrite.items():
            path.write_text(text, encoding="utf-8")
        formatted(list(self.create))


def formatted(paths: list[Path]) -> None:
    """`ruff format` the new files when ruff is installed (Intent's dev extra brings it): the
    templates are already in its style, so this only wraps the lines long names made too
    long for the project's line length. Without ruff they stay as rendered."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    python = [str(path) for path in paths if path.suffix == ".py"]
    if ruff and python:
        subprocess.run([ruff, "format", "--quiet", *python], check=False)
