"""Registering a new slice or projection in the module that composes the application: an
import, and the name appended to `slices=[...]` or `projections=[...]` of its
`application = Application.compose(...)`.

The edit is made on the module's concrete syntax tree (libcst), so the file keeps its
comments and layout, and the imports stay sorted as ruff's isort sorts them. A module
that composes its application some other way is not guessed at: `WiringError` says what
to add by hand."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import libcst as cst

LINE = 100  # the project's line length (pyproject.toml, [tool.ruff])


class WiringError(Exception):
    """The composition is not in the shape the scaffold edits; the message says what to add."""


def register(source: str, *, attribute: str, keyword: str, module: str, name: str,
             first_party: Collection[str]) -> str:
    """`source` with `from module import name` and `name` appended to the list literal
    `keyword=[...]` of the call assigned to `attribute`."""
    tree = cst.parse_module(source)
    by_hand = (f"add `from {module} import {name}` and {name} to {keyword}=[...] of "
               f"{attribute} = Application.compose(...) by hand")
    index, call = _compose_call(tree, attribute, by_hand)
    argument = next((a for a in call.args if a.keyword and a.keyword.value == keyword), None)
    if argument is None or not isinstance(argument.value, cst.List | cst.Tuple):
        raise WiringError(f"{attribute} = Application.compose(...) has no {keyword}=[...] "
                          f"list: {by_hand}")
    listed = argument.value
    present = [tree.code_for_node(e.value) for e in listed.elements]
    if name in present:
        raise WiringError(f"{name} is already in {keyword}=[...]")
    grown = _appended(listed, name)
    new_call = call.with_deep_changes(argument, value=grown)
    statement = tree.body[index]
    assert isinstance(statement, cst.SimpleStatementLine)
    assign = statement.body[0]
    assert isinstance(assign, cst.Assign)
    new_statement = statement.with_changes(body=[assign.with_changes(value=new_call)])
    if any(len(line) > LINE for line in tree.code_for_node(new_statement).splitlines()):
        new_call = call.with_deep_changes(argument, value=_one_per_line(tree, [*present, name]))
        new_statement = statement.with_changes(body=[assign.with_changes(value=new_call)])
    body = list(tree.body)
    body[index] = new_statement
    return _with_import(tree.with_changes(body=body), module, name, first_party).code


def _compose_call(tree: cst.Module, attribute: str, by_hand: str) -> tuple[int, cst.Call]:
    for index, statement in enumerate(tree.body):
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        assign = statement.body[0]
        if (isinstance(assign, cst.Assign) and len(assign.targets) == 1
                and isinstance(assign.targets[0].target, cst.Name)
                and assign.targets[0].target.value == attribute
                and isinstance(assign.value, cst.Call)):
            return index, assign.value
    raise WiringError(f"no `{attribute} = Application.compose(...)` at the top level: {by_hand}")


def _appended(listed: cst.List | cst.Tuple, name: str) -> cst.List | cst.Tuple:
    elements = list(listed.elements)
    if not elements:
        return listed.with_changes(elements=[cst.Element(cst.Name(name))])
    last = elements[-1]
    if isinstance(last.comma, cst.Comma):  # a trailing comma: the new element keeps it
        elements.append(cst.Element(cst.Name(name), comma=last.comma))
    else:
        elements[-1] = last.with_changes(
            comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        elements.append(cst.Element(cst.Name(name)))
    return listed.with_changes(elements=elements)


def _one_per_line(tree: cst.Module, names: Sequence[str]) -> cst.BaseExpression:
    inner = "".join(f"        {name},\n" for name in names)
    return cst.parse_expression(f"[\n{inner}    ]", config=tree.config_for_parsing)


def _module_name(tree: cst.Module, node: cst.ImportFrom) -> str | None:
    if node.relative or node.module is None:
        return None
    return tree.code_for_node(node.module)


def _import_from(statement: cst.BaseStatement) -> cst.ImportFrom | None:
    if isinstance(statement, cst.SimpleStatementLine) and isinstance(
            statement.body[0], cst.ImportFrom):
        return statement.body[0]
    return None


def _import_statement(module: str, names: Sequence[str]) -> cst.SimpleStatementLine:
    line = f"from {module} import {', '.join(names)}\n"
    if len(line) > LINE:
        inner = "".join(f"    {name},\n" for name in names)
        line = f"from {module} import (\n{inner})\n"
    statement = cst.parse_statement(line)
    assert isinstance(statement, cst.SimpleStatementLine)
    return statement


def _order(name: str) -> tuple[int, str]:
    """ruff's isort order of the names in one import: CONSTANTS, Classes, then the rest."""
    if name.isupper() and len(name) > 1:
        return 0, name
    return (1 if name[:1].isupper() else 2), name


def _with_import(tree: cst.Module, module: str, name: str,
                 first_party: Collection[str]) -> cst.Module:
    body = list(tree.body)
    after: int | None = None  # the first-party import the new one goes below
    first: int | None = None  # the first first-party import
    for index, statement in enumerate(body):
        node = _import_from(statement)
        found = _module_name(tree, node) if node is not None else None
        if node is None or found is None or found.split(".")[0] not in first_party:
            continue
        if found == module and isinstance(node.names, Sequence):
            names = sorted({*(tree.code_for_node(a.name) for a in node.names), name}, key=_order)
            merged = _import_statement(module, names)
            body[index] = merged.with_changes(leading_lines=statement.leading_lines)
            return tree.with_changes(body=body)
        first = index if first is None else first
        if found < module:
            after = index
    statement = _import_statement(module, [name])
    if after is not None:
        body.insert(after + 1, statement)
    elif first is not None:
        body[first] = body[first].with_changes(leading_lines=())
        body.insert(first, statement.with_changes(leading_lines=tree.body[first].leading_lines))
    else:
        last = max((i for i, s in enumerate(body) if _import_from(s) is not None), default=-1)
        blank = (cst.EmptyLine(),) if last >= 0 else ()
        body.insert(last + 1, statement.with_changes(leading_lines=blank))
    return tree.with_changes(body=body)
