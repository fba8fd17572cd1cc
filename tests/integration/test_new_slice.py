"""`intent new slice` and `intent new projection` in a copy of the repository, as a slice
author runs them: the files are written and registered, `intent generate` has run, the
written tests pass, ruff and mypy find nothing; a second run refuses to overwrite and an
invalid name is bad usage, each leaving the project as it was."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.repo_copy import RepoCopy, repo_copy

pytestmark = pytest.mark.integration

SLICE_FILES = ["domain/widgets/__init__.py", "domain/widgets/commands.py",
               "domain/widgets/events.py", "domain/widgets/widget.py",
               "tests/unit/test_widgets.py"]
PROJECTION_FILES = ["projections/widget_board.py", "tests/integration/test_widget_board.py"]


@pytest.fixture(scope="module")
def project() -> Iterator[RepoCopy]:
    with repo_copy() as copy:
        # A name no slice of the project has (the tutorial's tickets may be there).
        assert not (copy.root / "domain/widgets").exists()
        yield copy


@pytest.fixture(scope="module")
def scaffolded(project: RepoCopy) -> RepoCopy:
    made = project.intent("new", "slice", "widgets")
    assert made.returncode == 0, made.stdout + made.stderr
    made = project.intent("new", "projection", "widget_board", "--slice", "widgets")
    assert made.returncode == 0, made.stdout + made.stderr
    return project


def test_a_new_slice_and_projection_are_written_and_registered(scaffolded: RepoCopy) -> None:
    for name in SLICE_FILES + PROJECTION_FILES:
        assert (scaffolded.root / name).is_file(), name
    shop = (scaffolded.root / "projections/shop.py").read_text()
    lines = shop.splitlines()
    [domain_import] = [line for line in lines if line.startswith("from domain import ")]
    assert domain_import.endswith(", widgets")  # sorted: after the slices already there
    [slices] = [line for line in lines if line.strip().startswith("slices=[")]
    assert slices.strip().endswith(", widgets],")
    assert "from projections.widget_board import WIDGET_BOARD" in lines
    [projections] = [line for line in lines if line.strip().startswith("projections=[")]
    assert projections.strip().endswith(", WIDGET_BOARD],")


def test_generate_has_run_for_them(scaffolded: RepoCopy) -> None:
    migrations = "".join(path.read_text() for path in
                         (scaffolded.root / "supabase/migrations").glob("*.sql"))
    assert "widgets.create_widget" in migrations
    assert "CREATE TABLE public.widget_board (" in migrations
    # The lock waits for the author's own first generate (the events are a draft until then).
    assert "widgets." not in (scaffolded.root / "supabase/schema.lock.json").read_text()
    checked = scaffolded.intent("generate", "--check")
    assert checked.returncode == 1
    assert "stale: schema lock" in checked.stderr
    locked = scaffolded.intent("generate")
    assert locked.returncode == 0, locked.stdout + locked.stderr
    assert "widgets.widget_created" in (scaffolded.root / "supabase/schema.lock.json").read_text()
    checked = scaffolded.intent("generate", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_written_tests_pass_on_the_framework(scaffolded: RepoCopy) -> None:
    ran = scaffolded.python("-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/unit/test_widgets.py", "tests/integration/test_widget_board.py")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "5 passed" in ran.stdout


def test_what_it_writes_is_lint_and_type_clean(scaffolded: RepoCopy) -> None:
    written = [*SLICE_FILES, *PROJECTION_FILES, "projections/shop.py"]
    linted = scaffolded.run([str(scaffolded.root / ".venv/bin/ruff"), "check", *written])
    assert linted.returncode == 0, linted.stdout
    typed = scaffolded.run([str(scaffolded.root / ".venv/bin/mypy"), *written])
    assert typed.returncode == 0, typed.stdout


def test_a_second_run_refuses_to_overwrite_and_changes_nothing(scaffolded: RepoCopy) -> None:
    before = {name: (scaffolded.root / name).read_text()
              for name in [*SLICE_FILES, "projections/shop.py"]}
    again = scaffolded.intent("new", "slice", "widgets")
    assert again.returncode == 1
    assert "not overwriting" in again.stderr
    assert "domain/widgets" in again.stderr
    again = scaffolded.intent("new", "projection", "widget_board", "--slice", "widgets")
    assert again.returncode == 1
    assert "not overwriting" in again.stderr
    assert before == {name: (scaffolded.root / name).read_text() for name in before}


@pytest.mark.parametrize(("args", "says"), [
    (["slice", "Tickets"], "lower-case words"),
    (["slice", "class"], "Python keyword"),
    (["slice", "pg_things"], "reserved"),
    (["slice", "desks", "--aggregate", "desk"], "PascalCase"),
    (["projection", "Board", "--slice", "widgets"], "lower-case words"),
])
def test_an_invalid_name_is_bad_usage(project: RepoCopy, args: list[str], says: str) -> None:
    refused = project.intent("new", *args)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert says in refused.stderr


def test_a_projection_of_an_unknown_slice_is_refused(project: RepoCopy) -> None:
    refused = project.intent("new", "projection", "board", "--slice", "nothing_here")
    assert refused.returncode == 1
    assert "cannot import domain.nothing_here" in refused.stderr
    assert not (project.root / "projections/board.py").exists()
