"""Temporal: connection settings (temporalio.envconfig plus Intent's own) and the client."""
