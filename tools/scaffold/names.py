"""The names a scaffolded slice or projection is written under, derived from the one name the
user gives, and refused early when they could not be a Python module, a type name and a SQL
identifier at once (the slice's name is all three)."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_PASCAL = re.compile(r"[A-Z][A-Za-z0-9]*")
MAX_NAME = 40  # leaves room in type names (100) and SQL identifiers (63) for what is added


class BadNameError(ValueError):
    """A name the scaffold cannot use; the message says why and what would do."""


def check_snake(name: str, what: str) -> str:
    if not _SNAKE.fullmatch(name) or len(name) > MAX_NAME:
        raise BadNameError(
            f"{what} {name!r}: use lower-case words joined by single underscores, starting "
            f"with a letter, at most {MAX_NAME} characters (e.g. tickets, support_desk)"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise BadNameError(f"{what} {name!r} is a Python keyword")
    if name.startswith(("pg_", "sql_")):
        raise BadNameError(f"{what} {name!r}: names starting with pg_ or sql_ are reserved")
    return name


def check_pascal(name: str, what: str) -> str:
    if not _PASCAL.fullmatch(name) or len(name) > MAX_NAME:
        raise BadNameError(
            f"{what} {name!r}: use a class name in PascalCase (e.g. Ticket, SupportCase)"
        )
    return name


def singular(word: str) -> str:
    """An English plural's singular, for the usual cases (tickets, entries, boxes); the
    user overrides it with --aggregate when it guesses wrong."""
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 1:
        return word[:-1]
    return word


def pascal(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def snake(pascal_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", pascal_name).lower()


@dataclass(frozen=True)
class SliceNames:
    """Every name of a new slice: `tickets` gives the aggregate Ticket (`tickets.ticket`),
    identified by `ticket_id`, and the commands tickets.create_ticket and
    tickets.rename_ticket."""

    slice: str
    aggregate: str  # the class

    @classmethod
    def of(cls, slice_name: str, aggregate: str | None = None) -> SliceNames:
        check_snake(slice_name, "slice")
        chosen = aggregate or pascal(singular(slice_name))
        return cls(slice_name, check_pascal(chosen, "aggregate"))

    @property
    def module(self) -> str:
        """The aggregate's module (and its snake-case name)."""
        return snake(self.aggregate)

    @property
    def aggregate_type(self) -> str:
        return f"{self.slice}.{self.module}"

    @property
    def id_field(self) -> str:
        return f"{self.module}_id"

    def mapping(self) -> dict[str, str]:
        """What the templates substitute."""
        return {
            "slice": self.slice,
            "Aggregate": self.aggregate,
            "aggregate": self.module,
            "aggregate_type": self.aggregate_type,
            "id_field": self.id_field,
        }
