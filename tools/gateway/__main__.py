"""`python -m tools.gateway`: the same as `intent gateway` (used by the test fixtures)."""

from tools.gateway.cli import gateway

gateway(prog_name="intent gateway")
