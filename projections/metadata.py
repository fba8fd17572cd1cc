"""What a projection is, as data: its tables, who may read them, and the events it reads.

The metadata is the single source from which the SQL (tables, indexes, RLS, grants,
publication) is generated and against which a live database is checked for drift, so it is
validated strictly here: every name must be a plain lower-case identifier (it is quoted by
sqlglot when rendered, but a name that would need quoting is refused rather than rendered),
and every table is keyed by tenant.

The handler is plain Python with no I/O: it maps one stored event (and its upcast payload)
to row operations. The runner applies those operations; it adds `tenant_id` from the event
itself (a projection cannot write another tenant's rows) and the feed position of the event
(`event_txid`, `event_position`), which guards every upsert so that an older event is never
applied over a newer one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    model_validator,
)

from domain.contracts import Event

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Added by the generator to every projection table; a projection may not declare them.
TENANT_COLUMN = "tenant_id"
GUARD_COLUMNS = ("event_txid", "event_position")
RESERVED_PREFIXES = ("pg_", "sql_")

ColumnType = Literal[
    "uuid", "text", "integer", "bigint", "numeric", "double precision", "boolean",
    "timestamptz", "date", "jsonb",
]
# The column types a handler may add to.
NUMERIC_TYPES: frozenset[str] = frozenset({"integer", "bigint", "numeric", "double precision"})
Role = Literal["anon", "authenticated", "service_role"]
Mode = Literal["inline", "async"]


def _identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a safe SQL identifier: use lower-case letters, digits and "
            "underscores, starting with a letter or underscore, at most 63 characters"
        )
    if name.startswith(RESERVED_PREFIXES):
        raise ValueError(f"{name!r}: names starting with {RESERVED_PREFIXES} are reserved")
    return name


Identifier = Annotated[str, AfterValidator(_identifier)]


class SqlFunction(StrEnum):
    """The function calls a column default may be (any other default is a constant)."""

    NOW = "now()"
    GEN_RANDOM_UUID = "gen_random_uuid()"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Column(_Model):
    name: Identifier
    type: ColumnType
    nullable: bool = True
    # A constant (rendered as a literal) or one of SqlFunction's calls.
    default: SqlFunction | bool | int | float | str | None = None

    @field_serializer("default")
    def _tag_functions(self, value: object) -> object:
        """A function call and a text constant spelled alike must not look alike as data."""
        return {"sql_function": value.value} if isinstance(value, SqlFunction) else value


class Index(_Model):
    columns: tuple[Identifier, ...] = Field(min_length=1)
    unique: bool = False

    def name_on(self, table: str) -> str:
        """Derived, so that a rename of the index never shows up as drift."""
        kind = "key" if self.unique else "idx"
        name = f"{table}_{'_'.join(self.columns)}_{kind}"
        if len(name) > 63:
            digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
            name = f"{name[:54]}_{digest}"
        return name


class Table(_Model):
    name: Identifier
    columns: tuple[Column, ...] = Field(min_length=1)
    primary_key: tuple[Identifier, ...] = Field(min_length=1)
    indexes: tuple[Index, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Table:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: a column is declared twice")
        reserved = set(GUARD_COLUMNS) & set(names)
        if reserved:
            raise ValueError(f"table {self.name}: {sorted(reserved)} are added by Intent")
        columns = {c.name: c for c in self.columns}
        tenant = columns.get(TENANT_COLUMN)
        if tenant is None or tenant.type != "uuid" or tenant.nullable:
            raise ValueError(f"table {self.name}: needs a `tenant_id uuid not null` column")
        if self.primary_key[0] != TENANT_COLUMN:
            raise ValueError(f"table {self.name}: the primary key must start with tenant_id")
        if len(set(self.primary_key)) != len(self.primary_key):
            raise ValueError(f"table {self.name}: a primary key column is named twice")
        for name in self.primary_key:
            if name not in columns:
                raise ValueError(f"table {self.name}: primary key column {name} is not declared")
            if columns[name].nullable:
                raise ValueError(f"table {self.name}: primary key column {name} is nullable")
        seen: set[tuple[str, ...]] = set()
        for index in self.indexes:
            missing = [c for c in index.columns if c not in columns]
            if missing:
                raise ValueError(f"table {self.name}: index on undeclared columns {missing}")
            if index.columns in seen:
                raise ValueError(f"table {self.name}: two indexes on {list(index.columns)}")
            seen.add(index.columns)
        return self

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name} has no column {name}")

    @property
    def value_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.name not in self.primary_key)


# -- what a handler returns ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert the row `key` (+ `set`, + `add` as initial values) or, when it exists, set
    `set` and add `add` to the current values. `key` is the primary key without tenant_id.

    A plain dataclass, not a pydantic model: a handler makes one per event, and the applier
    checks every table, column and value against the metadata anyway (a name it does not
    know is refused there, never rendered)."""

    table: str
    key: Mapping[str, Any]
    set: Mapping[str, Any] = field(default_factory=dict)
    add: Mapping[str, int | float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delete:
    table: str
    key: Mapping[str, Any]


Op = Upsert | Delete
Handler = Callable[[Event, BaseModel], Sequence[Op]]


@runtime_checkable
class DeclaresReads(Protocol):
    """A handler that knows the event types it reads (Rules)."""

    @property
    def declared_reads(self) -> tuple[str, ...]: ...


class Projection(_Model):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: Identifier
    version: int = Field(ge=1, description="Bump when the handler changes: rebuild needed")
    reads: tuple[str, ...] = Field(
        default=(), description="event type names (by default, those its Rules name)"
    )
    tables: tuple[Table, ...] = Field(min_length=1)
    readers: tuple[Role, ...] = ("authenticated",)
    realtime: bool = False
    mode: Mode = "async"
    schema_name: Identifier = "public"
    handler: Handler = Field(exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _reads_from_rules(cls, data: Any) -> Any:
        """A handler that declares what it reads (Rules) needs no `reads=` of its own."""
        if isinstance(data, dict) and not data.get("reads"):
            handler = data.get("handler")
            if isinstance(handler, DeclaresReads):
                return {**data, "reads": handler.declared_reads}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Projection:
        if not self.reads:
            raise ValueError(f"projection {self.name}: say which event types it reads (`reads`)")
        names = [t.name for t in self.tables]
        if len(set(names)) != len(names):
            raise ValueError(f"projection {self.name}: a table is declared twice")
        if len(set(self.readers)) != len(self.readers):
            raise ValueError(f"projection {self.name}: a reader role is named twice")
        return self

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"projection {self.name} has no table {name}")

    @property
    def consumer(self) -> str:
        """Its checkpoint's name: one per version, so a rebuild has a checkpoint of its own."""
        return f"projection:{self.name}@{self.version}"

    def shape(self) -> dict[str, Any]:
        """Everything the SQL depends on (not the handler), as plain data."""
        return self.model_dump(mode="json", exclude={"handler"})

    def fingerprint(self) -> str:
        text = json.dumps(self.shape(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@runtime_checkable
class CheckedHandler(Protocol):
    """A handler that can be checked against its projection and the payload models (Rules)."""

    def check(self, projection: Projection, models: Mapping[str, type[BaseModel]]) -> None: ...


class Catalog:
    """The application's projections, checked together: unique names and tables, only
    event types the domain registry knows, and declared handlers (Rules) against the
    tables and the payload models (`models`: each event type's current payload model)."""

    def __init__(
        self,
        projections: Iterable[Projection],
        *,
        event_types: Iterable[str],
        models: Mapping[str, type[BaseModel]] | None = None,
    ):
        self._projections: dict[str, Projection] = {}
        known = set(event_types)
        tables: dict[tuple[str, str], str] = {}
        for projection in projections:
            if projection.name in self._projections:
                raise ValueError(f"two projections are named {projection.name}")
            unknown = sorted(set(projection.reads) - known)
            if unknown:
                raise ValueError(f"projection {projection.name} reads unknown events {unknown}")
            for table in projection.tables:
                key = (projection.schema_name, table.name)
                if key in tables:
                    raise ValueError(
                        f"table {'.'.join(key)} is declared by {tables[key]} and "
                        f"{projection.name}"
                    )
                tables[key] = projection.name
            if models is not None and isinstance(projection.handler, CheckedHandler):
                projection.handler.check(projection, models)
            self._projections[projection.name] = projection

    def __iter__(self) -> Iterator[Projection]:
        return iter(sorted(self._projections.values(), key=lambda p: p.name))

    def __len__(self) -> int:
        return len(self._projections)

    def get(self, name: str) -> Projection:
        try:
            return self._projections[name]
        except KeyError:
            known = ", ".join(sorted(self._projections)) or "none"
            raise KeyError(f"no projection named {name!r} (known: {known})") from None

    def inline(self) -> list[Projection]:
        return [p for p in self if p.mode == "inline"]
