"""PostgreSQL adapters: connections, the event store, the command store, snapshots,
aggregates loaded and saved, the global feed."""
