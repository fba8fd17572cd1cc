"""The causation tree of one request, read from the event store itself.

Every command and event carries the correlation id of the request that started it all and
the id of what caused it: an event's cause is its command, a saga's command's cause is the
event the saga reacted to. So one correlation id gives a tree: command -> events -> saga
commands -> their events ... It needs no tracing backend and works with tracing off.

Trees never cross tenants: a correlation id is only meaningful inside one tenant's data, so
nodes of different tenants are kept in separate trees even if their ids happen to link up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection


@dataclass
class Node:
    kind: str  # "command" or "event"
    id: UUID
    tenant_id: UUID
    name: str  # command or event type
    at: datetime
    causation_id: UUID | None
    detail: dict[str, Any]
    children: list[Node] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "id": str(self.id), "tenant_id": str(self.tenant_id),
            "type": self.name, "at": self.at.isoformat(),
            "causation_id": str(self.causation_id) if self.causation_id else None,
            **self.detail,
            "children": [child.as_json() for child in self.children],
        }


@dataclass
class Trace:
    correlation_id: UUID
    roots: list[Node]  # by tenant, then time

    @property
    def nodes(self) -> int:
        def count(node: Node) -> int:
            return 1 + sum(count(child) for child in node.children)

        return sum(count(root) for root in self.roots)

    def as_json(self) -> dict[str, Any]:
        return {"correlation_id": str(self.correlation_id), "nodes": self.nodes,
                "trees": [root.as_json() for root in self.roots]}


def dumps(trace: Trace) -> str:
    return json.dumps(trace.as_json(), indent=2) + "\n"


_COMMANDS = """
select command_id, tenant_id, command_type, created_at,
       (metadata->>'causation_id')::uuid, status, role, user_id, aggregate_type, aggregate_id,
       error
from intent.commands
where metadata->>'correlation_id' = %(correlation)s
  and (%(tenant)s::uuid is null or tenant_id = %(tenant)s::uuid)
"""
_EVENTS = """
select event_id, tenant_id, event_type, recorded_at,
       (metadata->>'causation_id')::uuid, aggregate_type, aggregate_id, version, position
from intent.events
where metadata->>'correlation_id' = %(correlation)s
  and (%(tenant)s::uuid is null or tenant_id = %(tenant)s::uuid)
"""


async def read_trace(
    conn: AsyncConnection[Any], correlation_id: UUID, *, tenant_id: UUID | None = None
) -> Trace:
    params = {"correlation": str(correlation_id), "tenant": tenant_id}
    nodes: list[Node] = []
    for row in await (await conn.execute(_COMMANDS, params)).fetchall():
        (command_id, tenant, name, at, cause, status, role, user, agg_type, agg_id,
         error) = row
        detail: dict[str, Any] = {"status": status, "role": role,
                                  "user_id": str(user) if user else None,
                                  "aggregate": f"{agg_type}/{agg_id}" if agg_type else None}
        if error is not None:
            detail["error"] = error
        nodes.append(Node("command", command_id, tenant, name, at, cause, detail))
    for row in await (await conn.execute(_EVENTS, params)).fetchall():
        event_id, tenant, name, at, cause, agg_type, agg_id, version, position = row
        nodes.append(Node("event", event_id, tenant, name, at, cause,
                          {"aggregate": f"{agg_type}/{agg_id}", "version": version,
                           "position": position}))
    return Trace(correlation_id, link(nodes))


def link(nodes: list[Node]) -> list[Node]:
    """Hang each node under its cause (same tenant only); the rest are roots. Children and
    roots in time order (events of one command by version)."""
    by_key = {(node.tenant_id, node.id): node for node in nodes}
    roots: list[Node] = []
    for node in nodes:
        parent = by_key.get((node.tenant_id, node.causation_id)) if node.causation_id else None
        if parent is not None and parent is not node:
            parent.children.append(node)
        else:
            roots.append(node)

    def order(node: Node) -> tuple[Any, ...]:
        return (node.at, node.detail.get("version") or 0, str(node.id))

    for node in nodes:
        node.children.sort(key=order)
    roots.sort(key=lambda node: (str(node.tenant_id), *order(node)))
    return roots


def render(trace: Trace) -> list[str]:
    """The tree as text lines, one node per line."""
    lines: list[str] = []
    tenant: UUID | None = None
    for root in trace.roots:
        if root.tenant_id != tenant:
            tenant = root.tenant_id
            lines.append(f"tenant {tenant}")
        _render(root, "", True, lines, first=True)
    return lines


def _describe(node: Node) -> str:
    at = node.at.strftime("%H:%M:%S.%f")[:-3]
    if node.kind == "command":
        saga = " (issued by a saga)" if node.detail.get("user_id") is None and \
            node.causation_id is not None else ""
        status = node.detail.get("status")
        extra = f" — {node.detail['error']}" if node.detail.get("error") else ""
        return f"{at} command {node.name} {node.id} [{status}]{saga}{extra}"
    return (f"{at} event {node.name} {node.detail['aggregate']} v{node.detail['version']} "
            f"{node.id}")


def _render(node: Node, prefix: str, last: bool, lines: list[str], *, first: bool = False) -> None:
    branch = "" if first else ("└─ " if last else "├─ ")
    lines.append(f"  {prefix}{branch}{_describe(node)}")
    deeper = prefix + ("" if first else ("   " if last else "│  "))
    for index, child in enumerate(node.children):
        _render(child, deeper, index == len(node.children) - 1, lines)
