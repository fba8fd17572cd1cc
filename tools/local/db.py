"""The `intent db` operations: the embedded cluster plus bootstrap and migrations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from tools import settings
from tools.local.cluster import ClusterError, LocalCluster
from tools.local.migrations import Migration, MigrationReport, apply_bootstrap, migrate


def embedded_cluster(port: int | None = None) -> LocalCluster:
    return LocalCluster(
        data_dir=settings.state_dir() / "pg", port=port or settings.database().port
    )


def _embedded_for(db: settings.Database) -> LocalCluster:
    """The embedded cluster that DATABASE_URL (if set) must point at for start/stop/reset."""
    if db.from_env and not db.is_local:
        raise ClusterError(
            f"DATABASE_URL points at {db.redacted()}, which is not this machine; "
            "`db start|stop|reset` manage only the embedded cluster (unset DATABASE_URL, or use "
            "`intent db migrate` to migrate that database)"
        )
    return embedded_cluster(db.port)


@dataclass(frozen=True)
class StartResult:
    cluster: LocalCluster
    created: bool
    migrations: MigrationReport


def start(
    on_apply: Callable[[Migration], None] | None = None, *, wipe: bool = False
) -> StartResult:
    """Start the embedded cluster (creating it the first time), bootstrap it and migrate.
    With `wipe`, the `postgres` database is dropped and recreated first (`db reset`)."""
    db = settings.database()
    cluster = _embedded_for(db)
    created = cluster.init()
    cluster.start()
    cluster.wait_ready()
    report = prepare(cluster, db.url, wipe=wipe, on_apply=on_apply)
    return StartResult(cluster=cluster, created=created, migrations=report)


def prepare(
    cluster: LocalCluster, url: str, *, wipe: bool = False,
    on_apply: Callable[[Migration], None] | None = None,
) -> MigrationReport:
    """Bring a running embedded cluster's `postgres` database up to date: with `wipe`,
    dropped and recreated first; then the bootstrap and the pending migrations."""
    if wipe:
        template_url = settings.local_url(
            cluster.port, user=settings.LOCAL_SUPERUSER, dbname="template1"
        )
        with psycopg.connect(template_url, autocommit=True) as conn:
            conn.execute("drop database if exists postgres with (force)")
            conn.execute("create database postgres")
    apply_bootstrap(cluster.admin_url)
    return migrate(url, settings.migrations_dir(), on_apply=on_apply)


def stop() -> bool:
    return _embedded_for(settings.database()).stop()


def migrate_database(
    url: str | None = None, on_apply: Callable[[Migration], None] | None = None
) -> MigrationReport:
    """Migrations only (no bootstrap): safe against any database, hosted Supabase included."""
    return migrate(url or settings.database().url, settings.migrations_dir(), on_apply=on_apply)
