"""`intent new`: writing a working slice or read model into a project, and registering it."""
