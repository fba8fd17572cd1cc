"""The scaffold's pure parts: the names it derives, the edit it makes to the application's
module (an import, a list element, the layout kept), the import order it writes, and the
column types it gives payload fields."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

import pytest
from pydantic import Field

from tools.scaffold.files import sorted_imports
from tools.scaffold.names import BadNameError, SliceNames, singular
from tools.scaffold.projection import sql_type
from tools.scaffold.wiring import WiringError, register

FIRST_PARTY = {"domain", "projections", "helpdesk"}

SHOP = '''"""The app."""

from __future__ import annotations

from domain import inventory
from projections.application import Application
from projections.inventory import STOCK_LEVELS

application = Application.compose(
    "shop",
    slices=[inventory],  # the slices
    projections=[STOCK_LEVELS],
)
'''


@pytest.mark.parametrize(("plural", "one"), [
    ("tickets", "ticket"), ("entries", "entry"), ("boxes", "box"), ("classes", "class"),
    ("inventory", "inventory"), ("glass", "glass"),
])
def test_the_aggregate_is_named_after_the_slice_in_the_singular(plural: str, one: str) -> None:
    assert singular(plural) == one


def test_a_slice_name_gives_every_name_of_the_slice() -> None:
    names = SliceNames.of("support_desks")
    assert (names.aggregate, names.module, names.aggregate_type, names.id_field) == (
        "SupportDesk", "support_desk", "support_desks.support_desk", "support_desk_id")
    assert SliceNames.of("tickets", "Case").id_field == "case_id"


@pytest.mark.parametrize("bad", ["Tickets", "1st", "two__underscores", "trailing_", "class",
                                 "match", "pg_x", "x" * 41, "has-dash", ""])
def test_a_name_that_cannot_be_module_type_and_identifier_is_refused(bad: str) -> None:
    with pytest.raises(BadNameError):
        SliceNames.of(bad)


def test_registering_adds_to_an_existing_import_and_to_the_list() -> None:
    edited = register(SHOP, attribute="application", keyword="slices", module="domain",
                      name="tickets", first_party=FIRST_PARTY)
    assert "from domain import inventory, tickets\n" in edited
    assert "    slices=[inventory, tickets],  # the slices\n" in edited


def test_registering_a_new_module_sorts_its_import_among_the_first_party_ones() -> None:
    edited = register(SHOP, attribute="application", keyword="projections",
                      module="projections.boards", name="BOARDS", first_party=FIRST_PARTY)
    lines = edited.splitlines()
    imports = [line for line in lines if line.startswith("from projections")]
    assert imports == ["from projections.application import Application",
                       "from projections.boards import BOARDS",
                       "from projections.inventory import STOCK_LEVELS"]
    assert "    projections=[STOCK_LEVELS, BOARDS],\n" in edited
    first = register(SHOP, attribute="application", keyword="slices", module="helpdesk",
                     name="desk", first_party=FIRST_PARTY)
    assert first.index("from domain import inventory") < first.index("from helpdesk import")
    assert first.index("from helpdesk import desk") < first.index("from projections.app")


def test_a_list_grown_past_the_line_length_goes_one_element_per_line() -> None:
    long = "A_PROJECTION_WITH_A_NAME_LONG_ENOUGH_TO_PUSH_THE_LINE_PAST_ONE_HUNDRED_CHARACTERS"
    edited = register(SHOP, attribute="application", keyword="projections",
                      module="projections.long", name=long, first_party=FIRST_PARTY)
    assert f"    projections=[\n        STOCK_LEVELS,\n        {long},\n    ],\n" in edited
    assert max(len(line) for line in edited.splitlines()) <= 100


def test_a_composition_it_cannot_edit_is_refused_with_what_to_add_by_hand() -> None:
    with pytest.raises(WiringError, match=r"add `from domain import tickets`"):
        register("app = make()\n", attribute="application", keyword="slices",
                 module="domain", name="tickets", first_party=FIRST_PARTY)
    with pytest.raises(WiringError, match=r"no sagas=\[\.\.\.\] list"):
        register(SHOP, attribute="application", keyword="sagas", module="domain",
                 name="tickets", first_party=FIRST_PARTY)
    with pytest.raises(WiringError, match="already in slices"):
        register(SHOP, attribute="application", keyword="slices", module="domain",
                 name="inventory", first_party=FIRST_PARTY)


def test_a_run_of_from_imports_is_sorted_by_module() -> None:
    text = "from x.b import B\nfrom x.a.z import Z\nfrom x.a import A\n\nfrom c import C\n"
    assert sorted_imports(text) == (
        "from x.a import A\nfrom x.a.z import Z\nfrom x.b import B\n\nfrom c import C\n")


class Colour(StrEnum):
    RED = "red"


@pytest.mark.parametrize(("annotation", "column"), [
    (UUID, "uuid"), (str, "text"), (int, "bigint"), (bool, "boolean"),
    (datetime, "timestamptz"), (str | None, "text"), (Annotated[int, Field(ge=0)], "bigint"),
    (Literal["open", "closed"], "text"), (Colour, "text"), (list[str], None),
    (dict[str, int], None), (int | str, None),
])
def test_a_payload_field_gets_the_column_type_its_values_fit(
    annotation: object, column: str | None,
) -> None:
    assert sql_type(annotation) == column
