"""The processes that run projections: the async runner, rebuilds, inline application."""
