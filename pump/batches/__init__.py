"""Batches: claiming pending commands, dispatching them (directly or as Temporal workflows)
and processing each in one transaction."""
