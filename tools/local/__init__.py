"""The local stack: the embedded PostgreSQL cluster, local keys, migrations, `intent dev`."""
