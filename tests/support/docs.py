"""The fenced blocks of the project's Markdown, as the documentation tests read them: the
README's and the pages' (tests/unit/test_readme.py) and the tutorial's, which a test follows
step by step in a copy of the repository (tests/integration/test_tutorial.py).

A fence's info string is its language, then optional words: `file=PATH` (the block is that
file's whole content), `keep-running` (a shell block that starts a server and stays up),
`until=TEXT` (the line a keep-running block prints once it is ready)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"(`{3,}|~{3,})\s*([^`]*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    options: dict[str, str] = field(default_factory=dict)  # `key=value`, or `flag` -> ""

    @property
    def where(self) -> str:
        return f"{shown(self.path)}:{self.line}"

    @property
    def file(self) -> str | None:
        return self.options.get("file")


def shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _info(text: str) -> tuple[str, dict[str, str]]:
    words = shlex.split(text)
    if not words:
        return "", {}
    options = dict(word.partition("=")[::2] for word in words[1:])
    return words[0], options


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, its indentation (inside a list item) removed."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    opening: tuple[int, str, str, str] | None = None  # line, indent, fence, info
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        stripped = line.lstrip(" ")
        indent = line[: len(line) - len(stripped)]
        if opening is None:
            found = _FENCE.match(stripped)
            if found:
                opening, body = (number, indent, found.group(1), found.group(2).strip()), []
            continue
        start, block_indent, fence, info = opening
        if stripped.startswith(fence) and not stripped[len(fence):].strip():
            language, options = _info(info)
            blocks.append(Block(path, start, language, "\n".join(body) + "\n", options))
            opening = None
        else:
            body.append(line[len(block_indent):] if line.startswith(block_indent) else line)
    assert opening is None, f"{shown(path)}:{opening[0]}: a fence is never closed"
    return blocks


def prose(path: Path) -> str:
    """The file's text with its fenced blocks blanked (line numbers kept)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for block in fenced_blocks(path):
        last = block.line + block.code.count("\n")
        for index in range(block.line - 1, min(last, len(lines))):
            lines[index] = ""
    return "\n".join(lines)
