"""The README and the pages under docs/ say only what is true: their Python runs as a user
copying it would run it, the `intent` / `./run` commands they name exist and answer --help,
their TOML parses, and every relative link (and its #anchor) resolves inside the repository.

Python blocks of the README run in order in one fresh module namespace (they build on each
other). A page under docs/ may continue the README's example: its blocks run after the
README's, in a namespace of their own that starts where the README's left off. A fragment that
is not meant to run is fenced as `text` (every fence names its language)."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import sys
import tomllib
import traceback
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from tests.support.docs import REPO, Block, fenced_blocks, prose, shown

README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
DOCUMENTS = [README, *PAGES]

# The languages a fence may name. Only python, toml and shell blocks are checked; the others
# (a JavaScript recipe, a diagram, a directory tree) are shown as they are.
LANGUAGES = {"python", "bash", "sh", "toml", "text", "js", "ts", "mermaid", "json", "sql"}
SHELL = {"bash", "sh"}
# Subcommands of the `run` script itself rather than of `intent`.
RUN_SCRIPT_ONLY = {"setup"}


# -- Python ------------------------------------------------------------------------------


@contextlib.contextmanager
def example_module(name: str) -> Iterator[dict[str, Any]]:
    """A fresh module to run blocks in, importable while they run (pydantic and dataclasses
    look a class's module up in sys.modules), as a user's own module would be."""
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        yield module.__dict__
    finally:
        sys.modules.pop(name, None)


def run_python(blocks: Sequence[Block], namespace: dict[str, Any]) -> None:
    """Run each block in `namespace`, in order; on an error, fail naming the block's file and
    line (the traceback's line numbers are the file's own)."""
    for block in blocks:
        code = compile("\n" * block.line + block.code, str(block.path), "exec")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(code, namespace)
        except Exception as error:
            details = "".join(traceback.format_exception(error)[-3:])
            raise AssertionError(
                f"{block.where}: the python block fails: {error!r}\n{details}"
            ) from error


def python_blocks(path: Path) -> list[Block]:
    """The Python a reader runs here (not a file's whole content: the tutorial's `file=`
    blocks, which tests/integration/test_tutorial.py writes into a copy of the repository;
    not a client recipe, which tests/e2e/test_readme_recipes.py runs against the stack)."""
    return [block for block in fenced_blocks(path)
            if block.language == "python" and block.file is None and "recipe" not in block.options]


def test_every_fence_names_a_known_language() -> None:
    unnamed = [
        f"{block.where} ({block.language or 'no language'})"
        for path in DOCUMENTS
        for block in fenced_blocks(path)
        if block.language not in LANGUAGES
    ]
    assert not unnamed, (
        "fence these as python (it runs), text (a fragment) or another known language: "
        f"{unnamed}"
    )


def test_the_readme_python_blocks_run_in_order() -> None:
    blocks = python_blocks(README)
    assert len(blocks) >= 3, "the README's slice example has lost its Python blocks"
    with example_module("readme_example") as namespace:
        run_python(blocks, namespace)
        # What the blocks build is what the README says they build.
        application = namespace["application"]
        assert application.registry.command_types().keys() >= {"helpdesk.open_ticket"}
        assert [projection.name for projection in application.catalog] == ["tickets"]


@pytest.mark.parametrize(
    "page",
    [page for page in PAGES if python_blocks(page)],
    ids=lambda page: page.name,
)
def test_a_page_python_blocks_run_after_the_readme(page: Path) -> None:
    with example_module("readme_example") as namespace:
        run_python(python_blocks(README), namespace)
        run_python(python_blocks(page), namespace)


def test_a_failing_block_is_named_by_its_file_and_line(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n```python\ntotal = 1\n```\n\nThen:\n\n```python\nassert total == 2\n```\n",
        encoding="utf-8",
    )
    blocks = python_blocks(page)
    assert [block.line for block in blocks] == [3, 9]
    with pytest.raises(AssertionError, match=r"page\.md:9: the python block fails") as failure:
        run_python(blocks, {})
    assert f'File "{page}", line 10' in str(failure.value)


def test_an_indented_block_in_a_list_item_is_found_unindented(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("1. Run:\n\n   ```python\n   x = 1\n   ```\n", encoding="utf-8")
    assert [(b.language, b.code) for b in fenced_blocks(page)] == [("python", "x = 1\n")]


# -- TOML --------------------------------------------------------------------------------


def test_every_toml_block_parses() -> None:
    for path in DOCUMENTS:
        for block in fenced_blocks(path):
            if block.language != "toml":
                continue
            try:
                tomllib.loads(block.code)
            except tomllib.TOMLDecodeError as error:
                raise AssertionError(
                    f"{block.where}: the toml block does not parse: {error}"
                ) from error


# -- commands ----------------------------------------------------------------------------

# In a shell line: `./run words` or `intent words` (also `.venv/bin/intent`), at the start or
# after a separator, up to the first option, placeholder or argument that is not a name.
_SHELL_COMMAND = re.compile(r"(?:^|[\s;&|($`])(?:\./run|(?:\S*/)?intent)((?:[ \t]+[a-z][a-z-]*)*)")
# In inline code: `./run words ...` or `intent words ...`.
_INLINE_COMMAND = re.compile(r"`(?:\./run|intent)((?:[ \t\n]+[a-z][a-z-]*)*)[^`]*`")


def cli_root() -> click.Group:
    """The `intent` command, as pyproject.toml's [project.scripts] names it."""
    with (REPO / "pyproject.toml").open("rb") as file:
        spec = tomllib.load(file)["project"]["scripts"]["intent"]
    module_name, _, attribute = spec.partition(":")
    root = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(root, click.Group), f"{spec} is not a click group"
    return root


@dataclass(frozen=True)
class Mention:
    where: str
    words: tuple[str, ...]


def mentions() -> list[Mention]:
    """Every `intent` / `./run` command the README and the pages name, in shell blocks and in
    inline code."""
    found: list[Mention] = []
    for path in DOCUMENTS:
        for block in fenced_blocks(path):
            if block.language not in SHELL:
                continue
            for offset, shell_line in enumerate(block.code.splitlines(), 1):
                command = re.sub(r"(^|\s)#.*", "", shell_line)  # without its comment
                where = f"{shown(path)}:{block.line + offset}"
                for match in _SHELL_COMMAND.finditer(command):
                    found.append(Mention(where, tuple(match.group(1).split())))
        text = prose(path)
        for match in _INLINE_COMMAND.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Mention(f"{shown(path)}:{line}", tuple(match.group(1).split())))
    return [mention for mention in found
            if mention.words and mention.words[0] not in RUN_SCRIPT_ONLY]


def resolve(root: click.Group, words: Sequence[str]) -> tuple[str, ...] | None:
    """The path of the command the words name (words after a leaf command are its arguments),
    or None when a group has no such subcommand."""
    command: click.Command = root
    path: list[str] = []
    for word in words:
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(click.Context(command), word)
        if sub is None:
            return None
        command = sub
        path.append(word)
    return tuple(path)


def test_the_documents_name_commands() -> None:
    # The extraction itself: if it found nothing, the checks below would check nothing.
    words = {mention.words for mention in mentions()}
    assert ("demo",) in words
    assert ("test",) in words


def test_every_command_the_documents_name_exists() -> None:
    root = cli_root()
    unknown = sorted(
        f"{mention.where}: {' '.join(mention.words)}"
        for mention in mentions()
        if resolve(root, mention.words) is None
    )
    assert not unknown, f"commands that `intent` does not have: {unknown}"


def command_paths() -> list[tuple[str, ...]]:
    try:
        root = cli_root()
    except Exception:  # reported by test_every_command_the_documents_name_exists
        return []
    paths = {resolve(root, mention.words) for mention in mentions()}
    return sorted(path for path in paths if path)


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_command_named_answers_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli_root(), [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


# -- paths -------------------------------------------------------------------------------

# A path in inline code that starts in one of the repository's own folders, e.g.
# `domain/decider.py`, `pump/sagas/`, `supabase/migrations/*_event_store.sql`.
_SOURCE_FOLDERS = ("domain", "projections", "pump", "tools", "tests", "supabase", "docs")
_PATH = re.compile(rf"`((?:{'|'.join(_SOURCE_FOLDERS)})/[\w./*-]*)`")


def created_by(path: Path) -> set[str]:
    """The files a page's `file=` blocks write (the tutorial's), and their folders."""
    made: set[str] = set()
    for block in fenced_blocks(path):
        if block.file is not None:
            made.add(block.file)
            made |= {str(parent) for parent in Path(block.file).parents if str(parent) != "."}
    return made


def test_every_repository_path_named_exists() -> None:
    missing: list[str] = []
    for path in DOCUMENTS:
        text = prose(path)
        made = created_by(path)
        for match in _PATH.finditer(text):
            named = match.group(1).rstrip("/")
            if not any(REPO.glob(named)) and named not in made:
                line = text.count("\n", 0, match.start()) + 1
                missing.append(f"{shown(path)}:{line}: {match.group(1)}")
    assert not missing, f"paths that are not in the repository: {missing}"


# -- links -------------------------------------------------------------------------------

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def anchors(path: Path) -> set[str]:
    """The #anchors GitHub gives a Markdown file's headings."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for heading in _HEADING.findall(prose(path)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
        text = re.sub(r"[^\w\- ]", "", text.replace("`", "").lower()).replace(" ", "-")
        count = seen.get(text, 0)
        seen[text] = count + 1
        found.add(text if count == 0 else f"{text}-{count}")
    return found


def links(path: Path) -> Iterator[tuple[int, str]]:
    text = re.sub(r"`[^`\n]*`", "", prose(path))  # inline code is not a link
    for pattern in (_LINK, _REFERENCE):
        for match in pattern.finditer(text):
            yield text.count("\n", 0, match.start()) + 1, match.group(1)


def test_every_relative_link_resolves_in_the_repository() -> None:
    broken: list[str] = []
    for path in DOCUMENTS:
        for line, target in links(path):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            where = f"{shown(path)}:{line}: {target}"
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.is_relative_to(REPO):
                broken.append(f"{where} (outside the repository)")
            elif not linked.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{where} (no such heading)")
    assert not broken, f"broken links: {broken}"


def test_every_page_is_linked_from_the_readme() -> None:
    linked = {
        (REPO / target.partition("#")[0]).resolve()
        for _, target in links(README)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)
    }
    unlinked = [page.name for page in PAGES if page.resolve() not in linked]
    assert not unlinked, f"pages under docs/ that the README does not link to: {unlinked}"


def test_link_and_anchor_checks_catch_breakage(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# The gateway's Realtime\n\n## `intent status`\n\nSee [x](other.md).\n",
                    encoding="utf-8")
    assert anchors(page) == {"the-gateways-realtime", "intent-status"}
    assert list(links(page)) == [(5, "other.md")]
