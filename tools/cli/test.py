"""`intent test`: the whole suite, as CI runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from tools import settings
from tools.cli.common import EXIT_FAILED, err


@click.command("test", context_settings={"ignore_unknown_options": True})
@click.option("--no-lint", is_flag=True,
              help="Skip ruff, mypy and the import contracts (for a quick re-run).")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def test(no_lint: bool, pytest_args: tuple[str, ...]) -> None:
    """Run the whole suite: ruff, mypy, the import contracts (lint-imports: the layers point
    one way, no module cycles, the framework never imports the example shop), `intent
    generate --check`, then pytest (unit, integration, pgTAP).

    Integration tests start their own throwaway PostgreSQL and stop it afterwards; they never
    touch .intent/pg. Extra arguments go to pytest, e.g. `./run test -k feed -x`.
    """
    bin_dir = os.path.dirname(sys.executable)
    steps: list[tuple[str, list[str]]] = []
    if not no_lint:
        steps += [
            ("ruff", [os.path.join(bin_dir, "ruff"), "check", "."]),
            ("mypy", [os.path.join(bin_dir, "mypy")]),
            ("import contracts", [os.path.join(bin_dir, "lint-imports"), "--no-cache"]),
        ]
    steps += [
        ("generate --check", [sys.executable, "-m", "tools.cli", "generate", "--check"]),
        ("pytest", [sys.executable, "-m", "pytest", *pytest_args]),
    ]
    for name, command in steps:
        err.print(f"[bold]== {name}[/bold]")
        code = subprocess.call(command, cwd=settings.REPO_ROOT)
        if code != 0:
            err.print(f"[red]intent: {name} failed (exit {code})[/red]")
            sys.exit(EXIT_FAILED)
