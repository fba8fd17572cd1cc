"""`intent generate [--check]`: every file generated from the application's code.

Four artefacts, each written only when it no longer matches what its source says now:
the ingress's allow list (a `*_command_types.sql` migration, from the registry), the edge
function's command catalogue (`command_schemas.json`, from the registry and the ingress's
payload limit), the projection tables (a `*_projections.sql` migration, from the
projections' metadata) and the schema lock (`schema.lock.json`, the payload schemas of
every event and command type, which refuses incompatible changes). `--check` writes
nothing and names what is stale (CI runs it).

The projection step is also callable on metadata of a test's own (`generate_projections`,
`check_projections`), returning the exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tools.cli.application import load_application
from tools.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    MIGRATIONS_DIR_OPTION,
    migrations_folder,
    out,
    say_refusal,
    shown_path,
)

if TYPE_CHECKING:
    from domain.registry import Registry
    from projections.sql import Layout
    from tools.codegen.results import CheckResult

HELP = """Write every generated file that no longer matches the code (or, with --check,
name each one that does not).

\b
command types  <migrations>/<YYYYMMDDHHMMSS>_command_types.sql: the command types
               public.submit_command accepts (intent.command_types), from whom, with
               their payload limits, rendered from the application's registry
catalogue      supabase/functions/_shared/command_schemas.json: per command type the
               payload's JSON Schema, target aggregate, id field and roles, plus the
               SQL ingress's payload size limit, for the `command` edge function
projections    <migrations>/<YYYYMMDDHHMMSS>_projections.sql: the SQL between the
               state recorded in the newest such migration and the projections'
               metadata (tables, columns, indexes, readers, realtime, schema)
schema lock    supabase/schema.lock.json: per event type its schema version and the
               payload's JSON Schema at every version locked so far, per command type its
               payload's JSON Schema; an incompatible change is refused (see
               docs/event-store.md, "The schema lock")

A migration is compared with the newest generated one of its kind (never edit an old
one: generate a new one); output is deterministic, so unchanged code writes nothing.
Exit 0 when everything was written or is current; 1 when something is stale (--check)
or cannot be generated (a destructive projection change without --allow-destructive, a
NOT NULL column without default on an existing table, a payload model the edge
validator cannot express, an event payload narrowed without a version bump and an
upcaster, a command payload narrowed at all).
"""


@click.command("generate", help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--check", "check_only", is_flag=True,
              help="Write nothing; exit 1, naming each stale file, when one is stale.")
@click.option(
    "--allow-destructive",
    is_flag=True,
    help="Also write projection changes that drop data or may fail on existing rows (drop "
    "a table or column, change a type or primary key, make a column not null).",
)
@MIGRATIONS_DIR_OPTION
@click.option("--catalogue", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE",
              help="The catalogue file (default: supabase/functions/_shared/"
              "command_schemas.json).")
@click.option("--schema-lock", "schema_lock", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE",
              help="The schema lock file (default: supabase/schema.lock.json).")
@click.option("--no-lock", "skip_lock", is_flag=True,
              help="Write the other three and leave the schema lock as it is (`intent new` "
              "does: a new slice's schemas are locked by the first generate after its "
              "author made them theirs).")
def generate(check_only: bool, allow_destructive: bool, migrations_dir: Path | None,
             catalogue: Path | None, schema_lock: Path | None, skip_lock: bool) -> None:
    from tools.codegen.json_schemas import SCHEMAS_PATH
    from tools.codegen.schema_lock import LOCK_PATH

    app = load_application()
    folder = migrations_folder(migrations_dir)
    path = catalogue if catalogue is not None else SCHEMAS_PATH
    lock = schema_lock if schema_lock is not None else LOCK_PATH
    layouts = list(app.catalog)
    if check_only:
        codes = {
            "command types": check_command_types(folder, app.registry),
            "catalogue": check_catalogue(path, app.registry, folder),
            "projections": check_projections(folder, layouts),
            "schema lock": check_schema_lock(lock, app.registry),
        }
    else:
        codes = {
            "command types": generate_command_types(folder, app.registry),
            "catalogue": generate_catalogue(path, app.registry, folder),
            "projections": generate_projections(folder, layouts,
                                                allow_destructive=allow_destructive),
        }
        if not skip_lock:
            codes["schema lock"] = generate_schema_lock(lock, app.registry)
    failed = [name for name, code in codes.items() if code != EXIT_OK]
    if failed and check_only:
        say_refusal(f"stale: {', '.join(failed)}; run `intent generate` to write them")
    elif failed:
        say_refusal(f"not generated: {', '.join(failed)}")
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


# -- the command types -----------------------------------------------------------------------


def generate_command_types(folder: Path, registry: Registry) -> int:
    """A new allow-list migration when the registry's command types changed."""
    from tools.codegen.command_types import differences
    from tools.codegen.command_types import generate as write
    from tools.codegen.json_schemas import SchemaError

    try:
        result = write(folder, registry)
    except SchemaError as exc:
        say_refusal(str(exc))
        return EXIT_FAILED
    state = result.status
    count = len(state.expected_rows)
    if result.written is None:
        latest = state.latest.path.name if state.latest else "?"
        out.print(f"command types are current ({latest}, {count} command types); "
                  "nothing written")
        return EXIT_OK
    out.print(f"wrote {shown_path(result.written)} ({count} command types)")
    previous = state.latest
    if previous is None:
        out.print("  (the first generated command-types migration)")
    elif previous.rows is not None:
        for line in differences(previous.rows, state.expected_rows):
            out.print(line, markup=False)
    out.print("apply it with `./run db migrate`")
    return EXIT_OK


def check_command_types(folder: Path, registry: Registry) -> int:
    from tools.codegen.command_types import check
    from tools.codegen.json_schemas import SchemaError

    return _checked(lambda: check(folder, registry), SchemaError)


# -- the catalogue ---------------------------------------------------------------------------


def generate_catalogue(path: Path, registry: Registry, folder: Path) -> int:
    """The edge function's catalogue, when the registry or the payload limit changed."""
    from tools.codegen.json_schemas import SchemaError, display_path
    from tools.codegen.json_schemas import generate as write

    try:
        result = write(path, registry, folder)
    except SchemaError as exc:
        say_refusal(str(exc))
        return EXIT_FAILED
    if not result.written:
        out.print(f"{display_path(path)} is current; nothing written")
        return EXIT_OK
    out.print(f"wrote {display_path(path)}")
    for line in result.differences:
        out.print(line, markup=False)
    return EXIT_OK


def check_catalogue(path: Path, registry: Registry, folder: Path) -> int:
    from tools.codegen.json_schemas import SchemaError, check

    return _checked(lambda: check(path, registry, folder), SchemaError)


# -- the projections -------------------------------------------------------------------------


def generate_projections(
    folder: Path, layouts: Sequence[Layout], *, allow_destructive: bool = False
) -> int:
    """A migration for the projection tables when their metadata changed."""
    from projections.migration_state import RefusedError, StateError
    from projections.migration_state import generate as write

    try:
        result = write(folder, layouts, allow_destructive=allow_destructive)
    except (RefusedError, StateError) as exc:
        say_refusal(str(exc))
        return EXIT_FAILED
    if result.written is None:
        previous = result.plan.previous
        latest = previous.path.name if previous else "no projections declared"
        out.print(f"projection migrations are up to date ({latest}); nothing written")
        return EXIT_OK
    out.print(f"wrote {shown_path(result.written)}")
    for change in result.plan.changes:
        mark = "[yellow]![/yellow]" if change.severity == "destructive" else "+"
        out.print(f"  {mark} {change.qualified}: {change.detail}")
    if not result.plan.changes:
        out.print("  (no SQL changes: the state differs in form only, e.g. declaration order)")
    out.print("apply it with `./run db migrate`")
    return EXIT_OK


def check_projections(folder: Path, layouts: Sequence[Layout]) -> int:
    from projections.migration_state import check

    result = check(folder, layouts)
    return _verdict(result.ok, result.message)


# -- the schema lock -------------------------------------------------------------------------


def generate_schema_lock(path: Path, registry: Registry) -> int:
    """The lock updated from the registry, unless a change is incompatible (nothing written)."""
    from tools.codegen.schema_lock import LockError, display_path
    from tools.codegen.schema_lock import generate as write

    try:
        result = write(path, registry)
    except LockError as exc:
        say_refusal(str(exc))
        return EXIT_FAILED
    if not result.written:
        out.print(f"{display_path(path)} is current; nothing written")
        return EXIT_OK
    out.print(f"wrote {display_path(path)}")
    for line in result.changes:
        out.print(line, markup=False)
    return EXIT_OK


def check_schema_lock(path: Path, registry: Registry) -> int:
    from tools.codegen.schema_lock import LockError, check

    return _checked(lambda: check(path, registry), LockError)


def _checked(run: Callable[[], CheckResult], refusal: type[Exception]) -> int:
    """Run a generator's check: its verdict, or its refusal (a file it cannot build)."""
    try:
        result = run()
    except refusal as exc:
        say_refusal(str(exc))
        return EXIT_FAILED
    return _verdict(result.ok, result.message)


def _verdict(ok: bool, message: str) -> int:
    """A check's message: on stdout when current, as `intent: ...` on stderr when not."""
    if ok:
        out.print(message, markup=False)
        return EXIT_OK
    say_refusal(message)
    return EXIT_FAILED

