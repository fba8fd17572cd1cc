"""The edge function's command catalogue: generated from the registry, checked in CI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, Field

from domain.aggregate import Aggregate
from domain.registry import Registry
from projections.shop import registry
from tools import settings
from tools.cli.generate import check_catalogue, generate_catalogue
from tools.cli.generate import generate as generate_command
from tools.codegen.json_schemas import (
    ANNOTATION_KEYWORDS,
    SCHEMAS_PATH,
    VALIDATION_KEYWORDS,
    SchemaError,
    check,
    document,
    expected_text,
    generate,
    payload_limit,
    payload_schema,
    render,
)

MIGRATIONS = settings.REPO_ROOT / "supabase" / "migrations"
VALIDATOR_TS = settings.REPO_ROOT / "supabase" / "functions" / "_shared" / "catalog.ts"

_SUBMIT = """\
create or replace function public.submit_command(command_type text, payload jsonb)
returns jsonb language plpgsql as $$
declare
  max_payload_bytes constant integer := {limit};
begin
  return null;
end
$$;
"""


def _migrations(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.sql").write_text(text, encoding="utf-8")
    return folder


# -- the repository ----------------------------------------------------------------------------


def test_the_committed_catalogue_matches_the_registry() -> None:
    result = check(SCHEMAS_PATH, registry, MIGRATIONS)
    assert result.ok, result.message


def test_generate_check_passes_on_the_repository() -> None:
    """`./run test` runs it too: every generated file matches the code."""
    outcome = CliRunner().invoke(generate_command, ["--check"])
    assert outcome.exit_code == 0, outcome.output
    assert "command_schemas.json is current" in outcome.output


def test_the_payload_limit_is_the_one_the_sql_ingress_declares() -> None:
    ingress = (MIGRATIONS / "20261122000200_command_ingress.sql").read_text(encoding="utf-8")
    declared = re.search(r"max_payload_bytes constant integer := (\d+);", ingress)
    assert declared is not None
    assert payload_limit(MIGRATIONS) == int(declared[1]) == 65536
    assert json.loads(SCHEMAS_PATH.read_text())["max_payload_bytes"] == 65536


def test_every_command_type_is_described() -> None:
    doc = json.loads(SCHEMAS_PATH.read_text(encoding="utf-8"))
    assert set(doc["commands"]) == set(registry.command_types())
    place = doc["commands"]["orders.place_order"]
    assert place["aggregate_type"] == "orders.order"
    assert place["aggregate_id_field"] == "order_id"
    assert place["roles"] == ["authenticated", "service_role"]
    schema = place["schema"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["order_id"] == {"format": "uuid", "title": "Order Id",
                                                "type": "string"}
    assert schema["properties"]["quantity"]["maximum"] == 10_000
    assert set(schema["required"]) == {"order_id", "item_id", "quantity"}


def test_generation_is_deterministic() -> None:
    first = expected_text(registry, MIGRATIONS)
    assert first == expected_text(registry, MIGRATIONS)
    assert first.endswith("}\n")
    assert first == SCHEMAS_PATH.read_text(encoding="utf-8")


def test_the_edge_validator_implements_the_same_keywords() -> None:
    """The generator's allow list and the TypeScript validator's must be the same."""
    source = VALIDATOR_TS.read_text(encoding="utf-8")

    def ts_list(name: str) -> set[str]:
        found = re.search(rf"export const {name}: readonly string\[\] = \[(.*?)\];", source,
                          re.S)
        assert found is not None, f"{name} not found in {VALIDATOR_TS.name}"
        return set(re.findall(r'"([^"]+)"', found[1]))

    assert ts_list("VALIDATION_KEYWORDS") == VALIDATION_KEYWORDS
    assert ts_list("ANNOTATION_KEYWORDS") == ANNOTATION_KEYWORDS


# -- the payload limit -------------------------------------------------------------------------


def test_the_newest_definition_of_submit_command_gives_the_limit(tmp_path: Path) -> None:
    folder = _migrations(
        tmp_path,
        **{
            "20260101000000_ingress": _SUBMIT.format(limit=1000),
            "20260102000000_other": "select 1;",
            "20260103000000_bigger": _SUBMIT.format(limit=2048),
            "notes": _SUBMIT.format(limit=1),  # not a migration name: ignored
        },
    )
    assert payload_limit(folder) == 2048


def test_a_definition_without_the_constant_is_an_error(tmp_path: Path) -> None:
    folder = _migrations(
        tmp_path,
        **{"20260101000000_ingress": _SUBMIT.format(limit=1000).replace("max_payload_bytes",
                                                                         "limit_bytes")},
    )
    with pytest.raises(SchemaError, match="max_payload_bytes"):
        payload_limit(folder)


def test_no_ingress_migration_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"defines public\.submit_command"):
        payload_limit(_migrations(tmp_path, **{"20260101000000_x": "select 1;"}))


# -- staleness ---------------------------------------------------------------------------------


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(render(doc), encoding="utf-8")


def test_check_names_each_difference(tmp_path: Path) -> None:
    path = tmp_path / "command_schemas.json"
    doc = document(registry, payload_limit(MIGRATIONS))
    stale = json.loads(render(doc))
    del stale["commands"]["orders.cancel_order"]
    stale["commands"]["inventory.receive_stock"]["roles"] = ["service_role"]
    stale["commands"]["orders.place_order"]["schema"]["properties"]["quantity"]["maximum"] = 5
    stale["commands"]["old.command"] = {"aggregate_type": "old.thing",
                                        "aggregate_id_field": "id", "roles": ["x"], "schema": {}}
    stale["max_payload_bytes"] = 1024
    _write(path, stale)

    result = check(path, registry, MIGRATIONS)

    assert not result.ok
    lines = result.message.splitlines()
    assert "  ~ max_payload_bytes: 1024 -> 65536" in lines
    assert any(line.startswith("  + orders.cancel_order: new") for line in lines)
    assert any(line.startswith("  - old.command: removed") for line in lines)
    assert "  ~ inventory.receive_stock: roles changed" in lines
    assert "  ~ orders.place_order: schema changed" in lines
    assert "run `intent generate`" in lines[-1]


def test_check_notices_a_missing_file_and_a_hand_edit(tmp_path: Path) -> None:
    path = tmp_path / "command_schemas.json"
    missing = check(path, registry, MIGRATIONS)
    assert not missing.ok
    assert "missing" in missing.message

    path.write_text(json.dumps(document(registry, 65536)), encoding="utf-8")  # one line
    edited = check(path, registry, MIGRATIONS)
    assert not edited.ok
    assert "written differently" in edited.message

    path.write_text("{", encoding="utf-8")
    assert "not valid JSON" in check(path, registry, MIGRATIONS).message


def test_generate_writes_only_when_something_changed(tmp_path: Path) -> None:
    path = tmp_path / "out" / "command_schemas.json"
    first = generate(path, registry, MIGRATIONS)
    assert first.written
    assert first.differences == ("  (new file)",)
    assert check(path, registry, MIGRATIONS).ok
    again = generate(path, registry, MIGRATIONS)
    assert not again.written
    limited = _migrations(tmp_path, **{"20260101000000_ingress": _SUBMIT.format(limit=512)})
    changed = generate(path, registry, limited)
    assert changed.written
    assert changed.differences == ("  ~ max_payload_bytes: 65536 -> 512",)


def test_the_check_exits_1_when_stale_and_generate_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "command_schemas.json"
    path.write_text("{}\n", encoding="utf-8")
    assert check_catalogue(path, registry, MIGRATIONS) == 1
    assert "stale" in capsys.readouterr().err
    outcome = CliRunner().invoke(generate_command, ["--check", "--catalogue", str(path)])
    assert outcome.exit_code == 1, outcome.output
    assert "stale: catalogue;" in outcome.output
    assert path.read_text() == "{}\n", "--check writes nothing"

    assert generate_catalogue(path, registry, MIGRATIONS) == 0
    assert "wrote" in capsys.readouterr().out
    assert check_catalogue(path, registry, MIGRATIONS) == 0
    assert generate_catalogue(path, registry, MIGRATIONS) == 0
    assert "nothing written" in capsys.readouterr().out


# -- self-contained schemas --------------------------------------------------------------------


class _Line(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class _Address(BaseModel):
    city: str


class _Bulk(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: UUID
    lines: list[_Line] = Field(max_length=10)
    ship_to: _Address | None = None


class _Tree(BaseModel):
    node_id: UUID
    children: list[_Tree] = []


class _Odd(BaseModel):
    order_id: UUID
    labels: dict[str, int] = Field(json_schema_extra={"propertyNames": {"minLength": 2}})


def test_nested_models_are_inlined() -> None:
    schema = payload_schema(_Bulk, "test.bulk")
    text = json.dumps(schema)
    assert "$ref" not in text
    assert "$defs" not in text
    line = schema["properties"]["lines"]["items"]
    assert line["properties"]["quantity"] == {"exclusiveMinimum": 0, "title": "Quantity",
                                              "type": "integer", "maximum": 2**63 - 1}
    assert schema["properties"]["lines"]["maxItems"] == 10
    ship_to = schema["properties"]["ship_to"]["anyOf"]
    assert ship_to[0]["properties"]["city"]["type"] == "string"
    assert ship_to[1] == {"type": "null"}
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_a_recursive_model_cannot_be_made_self_contained() -> None:
    with pytest.raises(SchemaError, match="recursive model"):
        payload_schema(_Tree, "test.tree")


def test_a_keyword_the_edge_does_not_enforce_is_refused_by_name() -> None:
    with pytest.raises(SchemaError, match=r"#/properties/labels/propertyNames"):
        payload_schema(_Odd, "test.odd")


def test_a_registry_with_such_a_model_cannot_be_generated() -> None:
    class OddState(BaseModel):
        pass

    class OddAggregate(Aggregate[OddState]):
        type_name = "test.odd"
        state_model = OddState

        @classmethod
        def decide(cls, command: BaseModel, state: OddState) -> list[BaseModel]:
            return []

        @classmethod
        def evolve(cls, state: OddState, event: BaseModel) -> OddState:
            return state

    odd = Registry()
    odd.aggregate(OddAggregate)
    odd.command("test.odd", aggregate=OddAggregate, aggregate_id="order_id",
                roles={"authenticated"})(_Odd)
    with pytest.raises(SchemaError, match=r"test\.odd"):
        document(odd, 100)
