"""The `intent` command line (also `./run ...`): `main.py` is the root group, one module per
command group, `common.py` what they share (exit codes, consoles, errors, options)."""
