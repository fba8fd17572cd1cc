"""What a slice author tests with beyond the pure kit (domain/testing.py): a pytest plugin
that starts a real PostgreSQL once per session, and projections folded on it."""
