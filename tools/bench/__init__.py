"""Benchmarks: each measures Intent beside a raw baseline run in the same process."""
