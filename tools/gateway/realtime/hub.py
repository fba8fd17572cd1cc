"""Who is subscribed to what, and who is present where (pure bookkeeping, no I/O).

The socket layer asks the hub which channels a broadcast, a database message or a change
goes to, and gets back the presence diffs to send; it does the sending. Public and private
channels of one name are separate groups, as on Supabase.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tools.gateway.realtime.filters import Binding

GroupKey = tuple[str, bool]  # (topic name without "realtime:", private)


@dataclass(eq=False)
class Channel:
    """One joined channel of one socket. `owner` is the socket layer's connection object;
    `claims`/`role` are what RLS sees for this channel (refreshed by `access_token`)."""

    owner: Any
    topic: str
    join_ref: str | None
    private: bool
    role: str
    claims: dict[str, Any]
    broadcast_self: bool = False
    broadcast_ack: bool = False
    presence_key: str = ""
    bindings: list[Binding] = field(default_factory=list)
    presence_ref: str | None = None
    presence_meta: dict[str, Any] | None = None
    # Whether broadcasts may be sent on this (private) channel; None: not checked yet.
    may_send: bool | None = None
    may_track: bool | None = None  # presence on a private channel: INSERT policies again

    @property
    def name(self) -> str:
        return self.topic.removeprefix("realtime:")

    @property
    def group(self) -> GroupKey:
        return (self.name, self.private)


@dataclass(frozen=True)
class PresenceDiff:
    joins: dict[str, dict[str, list[dict[str, Any]]]]
    leaves: dict[str, dict[str, list[dict[str, Any]]]]

    def payload(self) -> dict[str, Any]:
        return {"joins": self.joins, "leaves": self.leaves}


class Hub:
    """Channels by group, and the presence metas tracked in each group."""

    def __init__(self) -> None:
        self._groups: dict[GroupKey, list[Channel]] = {}
        self._refs = itertools.count(1)

    def add(self, channel: Channel) -> None:
        self._groups.setdefault(channel.group, []).append(channel)

    def remove(self, channel: Channel) -> PresenceDiff | None:
        """Take a channel out; the presence leave to send to the rest, if it was tracked."""
        members = self._groups.get(channel.group, [])
        if channel in members:
            members.remove(channel)
        if not members:
            self._groups.pop(channel.group, None)
        return self.untrack(channel)

    def members(self, name: str, private: bool) -> list[Channel]:
        return list(self._groups.get((name, private), []))

    def channels(self) -> Iterator[Channel]:
        for members in self._groups.values():
            yield from members

    def with_bindings(self) -> list[Channel]:
        return [c for c in self.channels() if c.bindings]

    def broadcast_targets(self, sender: Channel) -> list[Channel]:
        """The sender's group, without the sender unless it asked for `self`."""
        return [c for c in self.members(*sender.group)
                if c is not sender or sender.broadcast_self]

    def _new_ref(self) -> str:
        raw = next(self._refs).to_bytes(8, "big")
        return "F" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def track(self, channel: Channel, state: Any) -> PresenceDiff:
        """Track (or re-track) a channel's presence; the diff goes to the whole group,
        the tracker included. A re-track leaves the old meta and joins the new one."""
        leaves: dict[str, dict[str, list[dict[str, Any]]]] = {}
        if channel.presence_meta is not None:
            leaves = {channel.presence_key: {"metas": [channel.presence_meta]}}
        ref = self._new_ref()
        meta = dict(state) if isinstance(state, dict) else {"value": state}
        meta["phx_ref"] = ref
        if channel.presence_ref is not None:
            meta["phx_ref_prev"] = channel.presence_ref
        channel.presence_ref, channel.presence_meta = ref, meta
        return PresenceDiff({channel.presence_key: {"metas": [meta]}}, leaves)

    def untrack(self, channel: Channel) -> PresenceDiff | None:
        if channel.presence_meta is None:
            return None
        meta = channel.presence_meta
        channel.presence_ref, channel.presence_meta = None, None
        return PresenceDiff({}, {channel.presence_key: {"metas": [meta]}})

    def presence_state(self, name: str, private: bool) -> dict[str, dict[str, list[Any]]]:
        """`presence_state`: every tracked key of the group with its metas."""
        state: dict[str, dict[str, list[Any]]] = {}
        for channel in self._groups.get((name, private), []):
            if channel.presence_meta is not None:
                state.setdefault(channel.presence_key, {"metas": []})["metas"].append(
                    channel.presence_meta)
        return state
