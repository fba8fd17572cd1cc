"""A durable PostgreSQL cluster of the benchmark's own, removed when the run ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tools.local.cluster import LocalCluster, scratch_cluster


@contextmanager
def durable_cluster(say: Callable[[str], None] | None = None) -> Iterator[LocalCluster]:
    """PostgreSQL's durable defaults (fsync, synchronous_commit, full_page_writes on)."""
    with scratch_cluster(throwaway=False, say=say) as cluster:
        yield cluster
