"""The CLI reference (docs/cli.md), the README and the commands' own help cannot drift apart."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from tools.cli.main import main
from tools.cli.reference import PATH, document, leaf_commands, render
from tools.settings import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
# `./run setup` is the run script's own (it installs, then has nothing to run).
RUN_SCRIPT_ONLY = {"setup"}
# A command named in the README: `intent db start ...` or `./run db start ...`, in backticks
# or at the start of a line of a shell block.
_MENTION = re.compile(r"(?:`|^)(?:\./run|intent) ([a-z][a-z-]*(?: [a-z][a-z-]*)*)", re.M)


def resolve(words: list[str]) -> click.Command | None:
    """The deepest command the words name (the rest are arguments), or None."""
    command: click.Command = main
    for word in words:
        if not isinstance(command, click.Group):
            return command
        sub = command.get_command(click.Context(command), word)
        if sub is None:
            return None if command is main else command
        command = sub
    return command


def test_docs_cli_md_matches_the_commands() -> None:
    assert PATH.read_text(encoding="utf-8") == document(main), (
        "docs/cli.md is stale: run `./run docs cli --write`"
    )


def test_docs_cli_check_passes_and_names_the_file() -> None:
    result = CliRunner().invoke(main, ["docs", "cli", "--check"])
    assert result.exit_code == 0, result.output
    assert "docs/cli.md matches the commands" in result.output


def test_every_command_named_in_the_readme_exists() -> None:
    unknown = []
    for words in {m.group(1) for m in _MENTION.finditer(README)}:
        first = words.split()[0]
        if first in RUN_SCRIPT_ONLY:
            continue
        command = resolve(words.split())
        if command is None or (isinstance(command, click.Group) and command is main):
            unknown.append(words)
    assert not unknown, f"the README names commands that do not exist: {sorted(unknown)}"


@pytest.mark.parametrize("path", [path for path, _ in leaf_commands(main)])
def test_every_command_answers_help(path: str) -> None:
    result = CliRunner().invoke(main, [*path.split()[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_the_reference_lists_every_command_once() -> None:
    table = render(main)
    paths = [path for path, _ in leaf_commands(main)]
    assert len(paths) == len(set(paths))
    for path in paths:
        assert f"| `{path}" in table


def test_the_reference_is_the_introduction_then_the_table() -> None:
    text = document(main)
    assert text.startswith("# The `intent` command line\n")
    assert text.endswith(render(main))
    assert "intent docs cli --write" in text
