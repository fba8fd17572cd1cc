"""Checks of a project, its SQL and its database (rls/: the row-level security lint)."""
