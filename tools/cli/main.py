"""`intent`: the root group, with every command group registered on it.

Exit codes a script can rely on (tools.cli.common): 0 done, 1 the work failed (a test, a
check, a migration), 2 bad usage, 3 the environment is not usable (a missing program, a
port in use, a bad setting), 130 interrupted.
"""

from __future__ import annotations

import os

import click

from tools.cli.application import ENV as APP_ENV
from tools.cli.common import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="intent")
@click.option("--app", metavar="MODULE:ATTRIBUTE",
              help="The application to run (default: INTENT_APP, else [tool.intent] app in "
                   "pyproject.toml); processes started from here inherit it.")
def main(app: str | None) -> None:
    """Intent: an event-sourced CQRS backend for Supabase.

    Every command reads its database from DATABASE_URL, or else uses the embedded cluster
    under .intent/pg on 127.0.0.1:$INTENT_DB_PORT (default 54322), and runs the application
    pyproject.toml names.
    """
    if app:
        os.environ[APP_ENV] = app


def _register() -> None:
    from tools.cli.bench import bench
    from tools.cli.console import console
    from tools.cli.db import db
    from tools.cli.demo import demo
    from tools.cli.dev import dev
    from tools.cli.docs import docs
    from tools.cli.gateway import gateway
    from tools.cli.generate import generate
    from tools.cli.new import new
    from tools.cli.operator import operator
    from tools.cli.processes import pump, sagas, worker
    from tools.cli.projections import projections
    from tools.cli.relay import relay
    from tools.cli.rls import rls
    from tools.cli.snapshots import snapshots
    from tools.cli.status import status
    from tools.cli.test import test
    from tools.cli.token import token
    from tools.cli.trace import trace

    for command in (bench, console, db, demo, dev, docs, gateway, generate, new, operator,
                    projections, pump, relay, rls, sagas, snapshots, status, test, token,
                    trace, worker):
        main.add_command(command)


_register()
