"""`intent new slice NAME` and `intent new projection NAME --slice S`: write a working slice
or read model into the project, register it in the application, run `intent generate`,
and say what to edit next."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import click

from tools.cli.application import configured_spec
from tools.cli.common import EXIT_FAILED, EXIT_USAGE, Group, out, refuse
from tools.scaffold.files import Plan, WouldOverwriteError
from tools.scaffold.names import BadNameError, SliceNames
from tools.scaffold.project import Project, ProjectError
from tools.scaffold.wiring import WiringError

CONTEXT = {"help_option_names": ["-h", "--help"]}
EXIT_CODES = """Exit codes: 0 written and generated (all but the schema lock); 1 a file it
would write exists (nothing is written), the application cannot be edited, or `intent
generate` failed afterwards; 2 bad usage (an invalid name); 3 no project or application
configured."""


@click.group("new", cls=Group, context_settings=CONTEXT)
def new() -> None:
    """Write a new slice or projection into the project, registered and generated."""


@new.command("slice", context_settings=CONTEXT, epilog=EXIT_CODES)
@click.argument("name")
@click.option("--aggregate", metavar="CLASS",
              help="The aggregate's class (default: NAME's singular in PascalCase: "
              "tickets -> Ticket).")
def new_slice(name: str, aggregate: str | None) -> None:
    """Write the slice NAME: commands, events, an aggregate in the decider shape, its
    wiring table and a given/when/then test; list it in the application's
    `slices=[...]`; run `intent generate`.

    \b
    Example:
      intent new slice tickets
    writes domain/tickets/{__init__,commands,events,ticket}.py and tests/unit/test_tickets.py
    (where: [tool.intent] slices and tests), with the commands tickets.create_ticket and
    tickets.rename_ticket of the aggregate tickets.ticket, keyed by ticket_id.

    NAME is lower-case words joined by underscores. Nothing is overwritten.
    """
    from tools.scaffold.slice import next_steps, plan_slice

    project = _project()
    names = _valid(lambda: SliceNames.of(name, aggregate))
    plan = _planned(lambda: plan_slice(project, names))
    _write(project, plan)
    _generate(project)
    _say_next(next_steps(project, names))


@new.command("projection", context_settings=CONTEXT, epilog=EXIT_CODES)
@click.argument("name")
@click.option("--slice", "slice_name", required=True, metavar="SLICE",
              help="The slice whose events it reads.")
@click.option("--key", metavar="FIELD",
              help="The payload field that keys its rows (default: the field the slice's "
              "commands name their aggregate by).")
def new_projection(name: str, slice_name: str, key: str | None) -> None:
    """Write the read model NAME of a slice's aggregates, declared as Rules (one row per
    aggregate, a column per field its events carry), and its test with the projection kit;
    list it in the application's `projections=[...]`; run `intent generate`.

    \b
    Example:
      intent new projection ticket_board --slice tickets
    writes projections/ticket_board.py (TICKET_BOARD: table ticket_board, keyed by
    tenant_id and ticket_id) and tests/integration/test_ticket_board.py.

    NAME is the projection's and its table's name. Nothing is overwritten.
    """
    from tools.scaffold.projection import SliceNotFoundError, next_steps, plan_projection

    project = _project()
    try:
        plan = _planned(lambda: plan_projection(project, name, slice_name, key))
    except SliceNotFoundError as exc:
        refuse(str(exc), EXIT_FAILED)
    written = _write(project, plan)
    _generate(project)
    _say_next(next_steps(project, name, written))


def _project() -> Project:
    try:
        return Project.find(configured_spec())
    except ProjectError as exc:
        refuse(str(exc))


def _valid(make: Callable[[], SliceNames]) -> SliceNames:
    try:
        return make()
    except BadNameError as exc:
        refuse(str(exc), EXIT_USAGE)


def _planned(make: Callable[[], Plan]) -> Plan:
    try:
        plan = make()
        plan.refuse_existing()
    except BadNameError as exc:
        refuse(str(exc), EXIT_USAGE)
    except WouldOverwriteError as exc:
        refuse(f"not overwriting {exc}: nothing was written", EXIT_FAILED)
    except WiringError as exc:
        refuse(f"cannot register it in the application: {exc}; nothing was written",
               EXIT_FAILED)
    return plan


def _write(project: Project, plan: Plan) -> list[str]:
    plan.write()
    written = [project.shown(path) for path in plan.create]
    for shown in written:
        out.print(f"wrote       {shown}")
    for rewritten in plan.rewrite:
        out.print(f"registered  in {project.shown(rewritten)}")
    return written


def _generate(project: Project) -> None:
    """`intent generate --no-lock` in a process of its own (it imports the application
    afresh, with what was just written). The schema lock is left alone: the scaffold's
    events are a draft until their author has made them theirs and runs `intent generate`,
    which locks them (the next steps say so)."""
    out.print("running     intent generate --no-lock")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(project.root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "tools.cli", "generate", "--no-lock"],
                          cwd=project.root, env=env, check=False)
    if done.returncode != 0:
        refuse("intent generate failed (above); the files are written: fix and run "
               "`intent generate` again", EXIT_FAILED)


def _say_next(steps: list[str]) -> None:
    out.print("\nnext:")
    for number, step in enumerate(steps, 1):
        out.print(f"  {number}. {step}")
