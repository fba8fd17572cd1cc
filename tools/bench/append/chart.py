"""The PNG `intent bench append` draws beside its JSON: each workload's ratio against its
target (matplotlib, Agg backend: no display, no pyplot state).

Left: W1-W4 and W5p, a bar per workload at the median of its per-round ratios (green when
the target is met, red when missed; the median written at its foot), each round's ratio as
a dot, the target as a dashed line over the bar, and parity (1.0) as a grey line. Right:
W5, an absolute time: Intent's median load time and RAW's (the same tail, for reference),
the rounds as dots, the target as a dashed line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.bench.append.results import Results, Workload

MET = "#3a923a"
MISSED = "#c0392b"
RAW_COLOUR = "#7f8c8d"


def _ratios(ax: Any, workloads: list[Workload]) -> None:
    for x, w in enumerate(workloads):
        ax.bar(x, w.ratio, width=0.6, color=MET if w.met else MISSED, alpha=0.75)
        spread = [x - 0.15 + 0.3 * i / max(1, len(w.ratios) - 1) for i in range(len(w.ratios))]
        ax.scatter(spread, w.ratios, s=14, color="black", zorder=3)
        ax.hlines(w.target.value, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
        ax.text(x + 0.4, w.target.value, f"{w.target.value:.2f}", ha="right", va="bottom",
                fontsize=7)
        _label(ax, x, f"{w.ratio:.2f}")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(workloads)), [f"{w.key}\n{_wrap(w.title)}" for w in workloads],
                  fontsize=8)
    ax.set_ylabel("Intent / RAW (W5p: RAW time / Intent time)")
    top = max([1.1, *(r for w in workloads for r in w.ratios)]) * 1.1
    ax.set_ylim(0, top)
    ax.set_title("ratios per workload (dashed: target)", fontsize=10)


def _load_time(ax: Any, w: Workload) -> None:
    intent, raw = w.intent, w.raw
    ax.bar(0, intent.median, width=0.6, color=MET if w.met else MISSED, alpha=0.75)
    ax.bar(1, raw.median, width=0.6, color=RAW_COLOUR, alpha=0.75)
    for x, series in ((0, intent), (1, raw)):
        ax.scatter([x] * len(series.per_round), series.per_round, s=14, color="black",
                   zorder=3)
        _label(ax, x, f"{series.median:.2f}")
    ax.axhline(w.target.value, color="black", linestyle="dashed")
    ax.text(1.45, w.target.value, f"{w.target.text}", ha="right", va="bottom", fontsize=7)
    ax.set_xticks([0, 1], ["Intent", "RAW\n(tail)"], fontsize=8)
    ax.set_ylabel("ms per load")
    top = max([w.target.value, *intent.per_round, *raw.per_round]) * 1.2
    ax.set_ylim(0, top)
    ax.set_title(f"{w.key}: {_wrap(w.title, 28)}", fontsize=10)


def _label(ax: Any, x: float, text: str) -> None:
    """A bar's median, written inside the bar at its foot (clear of the dots and lines)."""
    ax.annotate(text, (x, 0), textcoords="offset points", xytext=(0, 4), ha="center",
                va="bottom", fontsize=9, fontweight="bold", color="white")


def _wrap(text: str, width: int = 18) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def draw_chart(results: Results, path: Path) -> Path:
    """Draw the chart to `path` (a PNG); matplotlib is imported only here."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ratios = [w for w in results.workloads if w.target.kind == "min_ratio"]
    timed = [w for w in results.workloads if w.target.kind == "max_ms"]
    figure = Figure(figsize=(11, 5), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(1, 1 + len(timed), width_ratios=[5] + [1.6] * len(timed))
    _ratios(figure.add_subplot(grid[0, 0]), ratios)
    for index, w in enumerate(timed, start=1):
        _load_time(figure.add_subplot(grid[0, index]), w)
    plan, when = results.plan, results.started_at.strftime("%Y-%m-%d %H:%M UTC")
    figure.suptitle(
        f"intent bench append: {plan.name} plan, median of {plan.rounds} paired rounds, "
        f"broadcast {results.broadcast['mode']} ({when})", fontsize=11,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
