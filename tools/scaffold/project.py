"""Where a project keeps its slices, projections and tests, and which module composes its
application: `[tool.intent]` in its pyproject.toml, with this repository's layout as the
default.

    [tool.intent]
    app = "projections.shop:application"   # the module `intent new` registers in
    slices = "domain"                      # slices are packages under it
    projections = "projections"            # projections are modules under it
    tests = "tests"                        # unit/ and integration/ under it, when there
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools import settings


class ProjectError(Exception):
    """The project's configuration does not say where things go."""


@dataclass(frozen=True)
class Project:
    root: Path  # the folder of pyproject.toml
    app_module: str  # the module that composes the application
    app_attribute: str
    slices: str  # a package, dotted
    projections: str  # a package, dotted
    tests: Path

    @classmethod
    def find(cls, app_spec: str, start: Path | None = None) -> Project:
        found = settings.project_config(start)
        if found is None:
            raise ProjectError(
                "no pyproject.toml with a [tool.intent] table here or above: `intent new` "
                "writes into a project that names its application there")
        root, table = found
        module, sep, attribute = app_spec.partition(":")
        if not sep:
            raise ProjectError(f"application {app_spec!r}: expected module:attribute")
        return cls(root=root, app_module=module, app_attribute=attribute,
                   slices=_package(table, "slices", "domain"),
                   projections=_package(table, "projections", "projections"),
                   tests=root / str(table.get("tests", "tests")))

    def package_dir(self, dotted: str) -> Path:
        return self.root.joinpath(*dotted.split("."))

    @property
    def app_file(self) -> Path:
        module = self.package_dir(self.app_module)
        for candidate in (module.with_suffix(".py"), module / "__init__.py"):
            if candidate.is_file():
                return candidate
        raise ProjectError(
            f"the application's module {self.app_module} is not a file under {self.root}: "
            "`intent new` registers slices and projections in that module's source")

    def test_file(self, kind: str, name: str) -> Path:
        """`<tests>/<kind>/test_<name>.py` when that folder exists, else `<tests>/`."""
        folder = self.tests / kind
        return (folder if folder.is_dir() else self.tests) / f"test_{name}.py"

    def shown(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)


def _package(table: dict[str, Any], key: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not all(part.isidentifier() for part in value.split(".")):
        raise ProjectError(f"[tool.intent] {key} = {value!r}: expected a dotted package name")
    return value
