"""The model of SQL scripts (migrations, generated projection DDL), replayed statement by
statement from PostgreSQL's own parse tree (libpg_query, through pglast).

What it follows: CREATE TABLE (columns, LIKE, PARTITION OF, INHERITS, AS), views and
materialized views (security_invoker), sequences, ALTER TABLE / VIEW (RLS switches,
columns, options, renames, schemas), policies, functions (their bodies, whether they are
triggers), DROP, GRANT and REVOKE. A statement PostgreSQL's parser rejects is a finding:
an error when it would change grants, policies or RLS, else a warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pglast import ast, enums, parse_sql, parser

from tools.checks.rls.conditions import called_functions
from tools.checks.rls.grants import replay_grant
from tools.checks.rls.model import PUBLIC, Function, Model, Policy, Relation
from tools.checks.rls.report import ERROR, WARNING, Finding
from tools.checks.rls.tree import (
    UnreadableError,
    deparse,
    is_temporary,
    names,
    option_on,
    qualified,
    relation_key,
    role_name,
)
from tools.local.migrations import SqlSplitError, split_sql

_OBJECT = enums.ObjectType
_AT = enums.AlterTableType
_VIEWS = (_OBJECT.OBJECT_VIEW, _OBJECT.OBJECT_MATVIEW)
_ROUTINES = (_OBJECT.OBJECT_FUNCTION, _OBJECT.OBJECT_PROCEDURE, _OBJECT.OBJECT_ROUTINE)
_DROPPED_RELATIONS = (_OBJECT.OBJECT_TABLE, *_VIEWS, _OBJECT.OBJECT_SEQUENCE)
_RLS_SWITCHES = {
    _AT.AT_EnableRowSecurity: ("rls_enabled", True),
    _AT.AT_DisableRowSecurity: ("rls_enabled", False),
    _AT.AT_ForceRowSecurity: ("rls_forced", True),
    _AT.AT_NoForceRowSecurity: ("rls_forced", False),
}
_IN_SCOPE = ("grant", "revoke", "create policy", "alter policy", "drop policy")
_DYNAMIC_PRIVILEGES = re.compile(r"\bgrant\b|\brevoke\b|\bpolicy\b|row\s+level\s+security")


def load_sql(sources: Sequence[tuple[str, str]]) -> Model:
    """Replay SQL scripts, given as (label, text) in order, into one model."""
    loader = SqlLoader()
    for label, script in sources:
        loader.model.sources.append(label)
        try:
            statements = split_sql(script)
        except SqlSplitError as exc:
            loader.model.notes.append(Finding(
                "unparsed", ERROR, label, f"cannot split into statements: {exc}", origin=label,
            ))
            continue
        for statement in statements:
            loader.statement(statement.text, f"{label}:{statement.line}")
    return loader.model


def _head(text: str) -> str:
    return " ".join(text.split())[:80]


@dataclass
class SqlLoader:
    model: Model = field(default_factory=lambda: Model(mode="sql"))

    def statement(self, text: str, origin: str) -> None:
        try:
            parsed = parse_sql(text)
        except parser.ParseError as exc:
            self._unreadable(text, origin, str(exc.args[0]))
            return
        for raw in parsed:
            handler = _HANDLERS.get(type(raw.stmt))
            if handler is None:
                continue
            try:
                handler(self, raw.stmt, text, origin)
            except UnreadableError as exc:
                self._unreadable(text, origin, str(exc))

    def _unreadable(self, text: str, origin: str, why: str) -> None:
        head = _head(text)
        lowered = head.lower()
        in_scope = lowered.startswith(_IN_SCOPE) or "row level security" in lowered
        self.model.notes.append(Finding(
            "unparsed" if in_scope else "unmodelled", ERROR if in_scope else WARNING,
            head, f"the SQL lint could not read this statement ({why}); lint the database "
            "live or simplify it", origin=origin,
        ))

    def _note(self, text: str, origin: str, message: str) -> None:
        self.model.notes.append(Finding("unmodelled", WARNING, _head(text), message,
                                        origin=origin))

    # relations ---------------------------------------------------------------------------

    def _named(self, target: ast.RangeVar, origin: str) -> Relation:
        return self.model.relation(*relation_key(target), origin)

    def _known(self, target: ast.RangeVar) -> Relation | None:
        return self.model.relations.get(relation_key(target))

    def _create(self, relation: Relation, *, if_not_exists: bool = False) -> None:
        key = (relation.schema, relation.name)
        replaced = self.model.relations.get(key)
        if replaced is not None and if_not_exists:
            return
        if replaced is not None and relation.kind in ("view", "materialized view"):
            # CREATE OR REPLACE keeps the view's grants
            relation.privileges = replaced.privileges
            relation.column_privileges = replaced.column_privileges
            relation.grant_origins = replaced.grant_origins
        self.model.relations[key] = relation

    def _create_table(self, node: ast.CreateStmt, text: str, origin: str) -> None:
        if is_temporary(node.relation):
            return
        schema, name = relation_key(node.relation)
        self._create(Relation(schema=schema, name=name, kind="table",
                              columns=self._table_columns(node), origin=origin),
                     if_not_exists=bool(node.if_not_exists))

    def _table_columns(self, node: ast.CreateStmt) -> list[str] | None:
        """The columns of a new table; None when they come from a table not read."""
        if node.ofTypename is not None:
            return None
        columns: list[str] = []
        copied = [*(node.inhRelations or ())]  # PARTITION OF / INHERITS: the parents' first
        copied += [item.relation for item in node.tableElts or ()
                   if isinstance(item, ast.TableLikeClause)]
        for source in copied:
            known = self._known(source)
            if known is None or known.columns is None:
                return None
            columns += [c for c in known.columns if c not in columns]
        for item in node.tableElts or ():
            if isinstance(item, ast.ColumnDef) and item.colname not in columns:
                columns.append(str(item.colname))
        return columns

    def _create_table_as(self, node: ast.CreateTableAsStmt, text: str, origin: str) -> None:
        target = node.into.rel
        if is_temporary(target):
            return
        schema, name = relation_key(target)
        given = names(node.into.colNames)
        selected = self._output_columns(node.query)
        columns = given + (selected or [])[len(given):] if given else selected
        kind = "materialized view" if node.objtype == _OBJECT.OBJECT_MATVIEW else "table"
        self._create(Relation(schema=schema, name=name, kind=kind, columns=columns,
                              origin=origin), if_not_exists=bool(node.if_not_exists))

    def _create_view(self, node: ast.ViewStmt, text: str, origin: str) -> None:
        if is_temporary(node.view):
            return
        schema, name = relation_key(node.view)
        columns = names(node.aliases) or self._output_columns(node.query)
        self._create(Relation(
            schema=schema, name=name, kind="view", columns=columns,
            security_invoker=bool(option_on(node.options, "security_invoker")), origin=origin,
        ))

    def _output_columns(self, query: Any) -> list[str] | None:
        """The column names a query yields, as PostgreSQL names them; None when a star
        stands for columns of something not read."""
        while isinstance(query, ast.SelectStmt) and query.op != enums.SetOperation.SETOP_NONE:
            query = query.larg
        if not isinstance(query, ast.SelectStmt):
            return None
        if query.valuesLists:
            return [f"column{i}" for i in range(1, len(query.valuesLists[0]) + 1)]
        columns: list[str] = []
        for target in query.targetList or ():
            value = target.val
            if target.name:
                columns.append(str(target.name))
            elif isinstance(value, ast.ColumnRef) and isinstance(value.fields[-1], ast.A_Star):
                sources: tuple[Any, ...] = query.fromClause or ()
                known = self._known(sources[0]) if len(sources) == 1 and isinstance(
                    sources[0], ast.RangeVar) else None
                if known is None or known.columns is None:
                    return None
                columns += known.columns
            else:
                columns.append(_column_name(value))
        return columns

    def _create_sequence(self, node: ast.CreateSeqStmt, text: str, origin: str) -> None:
        if is_temporary(node.sequence):
            return
        schema, name = relation_key(node.sequence)
        self._create(Relation(schema=schema, name=name, kind="sequence", columns=[],
                              origin=origin), if_not_exists=bool(node.if_not_exists))

    def _alter_table(self, node: ast.AlterTableStmt, text: str, origin: str) -> None:
        if node.objtype in _VIEWS:
            view = self._known(node.relation)
            for command in node.cmds or ():
                if view is not None:
                    _view_option(view, command)
        elif node.objtype == _OBJECT.OBJECT_TABLE:
            relation = self._named(node.relation, origin)
            for command in node.cmds or ():
                _table_action(relation, command)

    def _rename(self, node: ast.RenameStmt, text: str, origin: str) -> None:
        kind = node.renameType
        if kind == _OBJECT.OBJECT_POLICY:
            self._rename_policy(node, origin)
            return
        relation: Relation | None = None
        if _OBJECT.OBJECT_TABLE in (kind, node.relationType):
            relation = self._named(node.relation, origin)
        elif node.relation is not None:
            relation = self._known(node.relation)
        if relation is None:
            return
        if kind == _OBJECT.OBJECT_COLUMN:
            if relation.columns is not None and node.subname in relation.columns:
                relation.columns[relation.columns.index(node.subname)] = str(node.newname)
        elif kind == _OBJECT.OBJECT_TABLE or kind in _VIEWS:
            self._move(relation, relation.schema, str(node.newname))

    def _rename_policy(self, node: ast.RenameStmt, origin: str) -> None:
        policies = self._named(node.relation, origin).policies
        policy = policies.pop(node.subname, None) or _new_policy(str(node.subname), origin)
        policy.name = str(node.newname)
        policies[policy.name] = policy

    def _set_schema(self, node: ast.AlterObjectSchemaStmt, text: str, origin: str) -> None:
        if node.objectType == _OBJECT.OBJECT_TABLE:
            relation: Relation | None = self._named(node.relation, origin)
        elif node.objectType in _VIEWS:
            relation = self._known(node.relation)
        else:
            return
        if relation is not None:
            self._move(relation, str(node.newschema), relation.name)

    def _move(self, relation: Relation, schema: str, name: str) -> None:
        del self.model.relations[(relation.schema, relation.name)]
        relation.schema, relation.name = schema, name
        self.model.relations[(schema, name)] = relation

    # policies ----------------------------------------------------------------------------

    def _create_policy(self, node: ast.CreatePolicyStmt, text: str, origin: str) -> None:
        policy = _new_policy(str(node.policy_name), origin)
        policy.command = str(node.cmd_name or "all")
        policy.permissive = bool(node.permissive)
        if node.roles:
            policy.roles = frozenset(role_name(r) for r in node.roles)
        _conditions(policy, node.qual, node.with_check)
        self._named(node.table, origin).policies[policy.name] = policy

    def _alter_policy(self, node: ast.AlterPolicyStmt, text: str, origin: str) -> None:
        relation = self._named(node.table, origin)
        name = str(node.policy_name)
        policy = relation.policies.setdefault(name, _new_policy(name, origin))
        policy.origin = origin
        if node.roles:
            policy.roles = frozenset(role_name(r) for r in node.roles)
        _conditions(policy, node.qual, node.with_check)

    # functions, drops, the rest ----------------------------------------------------------

    def _create_function(self, node: ast.CreateFunctionStmt, text: str, origin: str) -> None:
        schema, name = qualified(names(node.funcname))
        returns = names(node.returnType.names) if node.returnType is not None else []
        is_trigger = returns[-1:] in (["trigger"], ["event_trigger"])
        body: str | None = None
        for option in node.options or ():
            if option.defname == "as" and isinstance(option.arg, tuple) and option.arg:
                body = str(option.arg[0].sval)  # a C function's object file: no SQL to read
        key = f"{schema}.{name}"
        existing = self.model.functions.get(key)
        if existing is None:  # a new function: PostgreSQL grants EXECUTE to PUBLIC
            self.model.functions[key] = Function(
                schema=schema, name=name, signature=f"{key}()",
                is_trigger=is_trigger, executors={PUBLIC}, origin=origin,
            )
        else:
            existing.is_trigger = is_trigger
        self.model.bodies[key] = [body or text]  # BEGIN ATOMIC / RETURN: the statement

    def _drop(self, node: ast.DropStmt, text: str, origin: str) -> None:
        kind = node.removeType
        for target in node.objects or ():
            if kind == _OBJECT.OBJECT_POLICY:
                *table, policy = names(target)
                relation = self.model.relations.get(qualified(table))
                if relation is not None:
                    relation.policies.pop(policy, None)
            elif kind in _DROPPED_RELATIONS:
                self.model.relations.pop(qualified(names(target)), None)
            elif kind in _ROUTINES:
                schema, name = qualified(names(target.objname))
                self.model.functions.pop(f"{schema}.{name}", None)

    def _grant(self, node: ast.GrantStmt, text: str, origin: str) -> None:
        replay_grant(self.model, node, origin)

    def _default_privileges(self, node: Any, text: str, origin: str) -> None:
        self._note(text, origin,
                   "ALTER DEFAULT PRIVILEGES is not modelled by the SQL lint: objects "
                   "created later may hold privileges it does not see; lint live too")

    def _do(self, node: ast.DoStmt, text: str, origin: str) -> None:
        if _DYNAMIC_PRIVILEGES.search(text.lower()):
            self._note(text, origin,
                       "a DO block changes grants, policies or RLS; the SQL lint cannot "
                       "follow dynamic SQL: lint live too")


_HANDLERS: dict[type, Callable[[SqlLoader, Any, str, str], None]] = {
    ast.CreateStmt: SqlLoader._create_table,
    ast.CreateTableAsStmt: SqlLoader._create_table_as,
    ast.ViewStmt: SqlLoader._create_view,
    ast.CreateSeqStmt: SqlLoader._create_sequence,
    ast.AlterTableStmt: SqlLoader._alter_table,
    ast.RenameStmt: SqlLoader._rename,
    ast.AlterObjectSchemaStmt: SqlLoader._set_schema,
    ast.CreatePolicyStmt: SqlLoader._create_policy,
    ast.AlterPolicyStmt: SqlLoader._alter_policy,
    ast.CreateFunctionStmt: SqlLoader._create_function,
    ast.DropStmt: SqlLoader._drop,
    ast.GrantStmt: SqlLoader._grant,
    ast.AlterDefaultPrivilegesStmt: SqlLoader._default_privileges,
    ast.DoStmt: SqlLoader._do,
}


def _new_policy(name: str, origin: str) -> Policy:
    return Policy(name=name, command="all", roles=frozenset({PUBLIC}), origin=origin)


def _conditions(policy: Policy, using: ast.Node | None, check: ast.Node | None) -> None:
    """Set the conditions a statement gives (as text, like pg_get_expr's) and what the
    policy's conditions call."""
    if using is not None:
        policy.using = deparse(using)
    if check is not None:
        policy.check = deparse(check)
    policy.calls = tuple(dict.fromkeys(
        called_functions(policy.using) + called_functions(policy.check)
    ))


def _column_name(value: Any) -> str:
    """The name PostgreSQL gives an unaliased output column (its FigureColname, roughly)."""
    if isinstance(value, ast.ColumnRef):
        return str(getattr(value.fields[-1], "sval", "?column?"))
    if isinstance(value, ast.FuncCall):
        return names(value.funcname)[-1]
    if isinstance(value, ast.TypeCast):
        inner = _column_name(value.arg)
        return inner if inner != "?column?" else (names(value.typeName.names) or [inner])[-1]
    return "?column?"


def _table_action(relation: Relation, command: ast.AlterTableCmd) -> None:
    switch = _RLS_SWITCHES.get(command.subtype)
    if switch is not None:
        setattr(relation, *switch)
    elif relation.columns is None:
        return
    elif command.subtype == _AT.AT_AddColumn and isinstance(command.def_, ast.ColumnDef):
        if command.def_.colname not in relation.columns:
            relation.columns.append(str(command.def_.colname))
    elif command.subtype == _AT.AT_DropColumn and command.name in relation.columns:
        relation.columns.remove(command.name)


def _view_option(view: Relation, command: ast.AlterTableCmd) -> None:
    if command.subtype == _AT.AT_SetRelOptions:
        invoker = option_on(command.def_, "security_invoker")
        if invoker is not None:
            view.security_invoker = invoker
    elif command.subtype == _AT.AT_ResetRelOptions and "security_invoker" in [
        d.defname for d in command.def_ or ()
    ]:
        view.security_invoker = False
