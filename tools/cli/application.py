"""Finding the application a command runs: `--app module:attribute`, else INTENT_APP, else
`[tool.intent] app` in the nearest pyproject.toml above the working directory.

Processes started by the CLI (the dev stack, the benchmarks) inherit the choice through
INTENT_APP, so every process of one stack runs the same application."""

from __future__ import annotations

import importlib
import os
from functools import cache
from pathlib import Path

from projections.application import Application
from tools import settings

ENV = "INTENT_APP"


class ApplicationError(Exception):
    """No application is named, or the name does not lead to one."""


def configured_spec(start: Path | None = None) -> str:
    """The application's `module:attribute` as configured (INTENT_APP wins)."""
    spec = os.environ.get(ENV, "").strip()
    if spec:
        return spec
    found = settings.project_config(start)
    app = found[1].get("app") if found else None
    if isinstance(app, str) and app.strip():
        return app.strip()
    raise ApplicationError(
        "no application is configured: set [tool.intent] app = \"module:attribute\" in "
        f"pyproject.toml, or {ENV}"
    )


@cache
def load_application(spec: str | None = None) -> Application:
    """Import `module:attribute` and check it is an Application (cached per spec)."""
    spec = spec or configured_spec()
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ApplicationError(f"application {spec!r}: expected module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ApplicationError(
            f"application {spec!r}: cannot import {module_name}: {exc}"
        ) from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, Application):
        raise ApplicationError(
            f"application {spec!r}: {module_name}.{attribute} is "
            f"{type(app).__name__}, not an intent Application"
        )
    return app
