"""Artefacts generated from the application's code, never edited by hand: the ingress's
allow list of command types (command_types) and the edge function's command catalogue
(json_schemas). `intent generate` writes them, with the projection migrations
(projections.migration_state); `intent generate --check` says which are stale."""
