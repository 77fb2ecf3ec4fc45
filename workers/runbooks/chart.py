"""The drill report's PNG: the steps on a timeline, and the measured RTO against the objective.

Drawn with matplotlib (Agg backend, imported on use) from the report's summary. Step titles
are wrapped, never cut, and the figure is saved to fit everything drawn on it. A drill
recovers in seconds against an objective of hours, so the RTO panel is on a log scale with
the measured value written beside its bar: a linear bar of 15 s would be invisible next to 4 h.
"""

from __future__ import annotations

import io
import math
import textwrap
from typing import Any

from workers.core.durations import humanize

COLOURS = {
    "done": "#2e7d32",
    "failed": "#c62828",
    "skipped": "#9e9e9e",
    "running": "#f9a825",
    "pending": "#e0e0e0",
}
OBJECTIVE, WARNING, RECOVERED = "#263238", "#ef6c00", "#1565c0"
LABEL_WIDTH = 40
"""Characters per line of a step's label; longer titles wrap onto more lines."""
TITLE_WIDTH = 70
NICE_SECONDS = (1, 10, 60, 600, 3600, 6 * 3600, 86400, 7 * 86400)
"""Tick marks of the log-scaled RTO panel: 1s, 10s, 1m, 10m, 1h, 6h, 1d, 7d."""


def span_text(seconds: float | None) -> str:
    """``15.9s`` under a minute, else ``2h 5m``; ``–`` when unknown."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return humanize(seconds)


def render_chart(summary: dict[str, Any]) -> bytes:
    """A PNG: one bar per step coloured by outcome, then the measured RTO against its objective."""
    from matplotlib import pyplot

    figure = draw_chart(summary)
    buffer = io.BytesIO()
    # "tight" grows the canvas to whatever was drawn: a label or legend is never cut off.
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", pad_inches=0.2)
    pyplot.close(figure)
    return buffer.getvalue()


def draw_chart(summary: dict[str, Any]) -> Any:
    """The chart as a matplotlib Figure (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    steps = summary["steps"]
    labels = [textwrap.fill(s["title"], LABEL_WIDTH) for s in steps]
    rows = sum(label.count("\n") + 1 for label in labels)
    figure, (top, bottom) = pyplot.subplots(
        2,
        1,
        figsize=(10, 2.6 + 0.3 * rows + 0.25 * len(steps)),
        gridspec_kw={"height_ratios": [max(2.0, 0.3 * rows + 0.25 * len(steps)), 1.1]},
    )
    _timeline(top, summary, labels)
    _objective_panel(bottom, summary)
    title = f"{summary['title']} — {summary['run_id']} — {summary['result']}"
    figure.suptitle(textwrap.fill(title, TITLE_WIDTH), fontsize=11)
    figure.tight_layout()
    return figure


def _timeline(axes: Any, summary: dict[str, Any], labels: list[str]) -> None:
    """The steps as bars from their start, with when service was back and the objective."""
    from matplotlib.patches import Patch

    steps = summary["steps"]
    objective = summary["rto_objective_seconds"]
    span = max(summary["rto_seconds"], *(_end(s) for s in steps), 1.0)
    if objective <= 3 * span:
        span = max(span, objective)  # near enough to show on the same axis
    unit, scale = _unit(span)
    for row, step in enumerate(steps):
        start = (step["offset_seconds"] or 0.0) / scale
        width = max((step["seconds"] or 0.0) / scale, span / scale / 300)
        axes.barh(row, width, left=start, color=COLOURS[step["status"]], edgecolor="#424242")
    axes.set_yticks(range(len(steps)), labels=labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(f"time since the run started ({unit})")
    axes.set_xlim(0, span * 1.05 / scale)
    axes.axvline(summary["rto_seconds"] / scale, color=RECOVERED, linestyle=":", zorder=3)
    legend = [Patch(color=COLOURS[k], label=k) for k in ("done", "failed", "skipped")]
    legend.append(Patch(color=RECOVERED, label=f"recovered ({span_text(summary['rto_seconds'])})"))
    if objective <= span * 1.05:  # else far off this axis: the panel below shows it
        axes.axvline(objective / scale, color=OBJECTIVE, linestyle="--", zorder=3)
        legend.append(Patch(color=OBJECTIVE, label=f"RTO objective ({span_text(objective)})"))
    # Above the axes, under the title: never over the bars.
    axes.legend(
        handles=legend,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(legend),
        fontsize=8,
        frameon=False,
    )


def _objective_panel(axes: Any, summary: dict[str, Any]) -> None:
    """The measured RTO on a log scale beside the objective and its 75% warning."""
    objective = summary["rto_objective_seconds"]
    measured = max(summary["rto_seconds"], 0.1)
    low = min(measured, 1.0) / 2
    high = max(objective, measured) * 2
    colour = COLOURS["done"] if summary["rto_met"] else COLOURS["failed"]
    axes.set_xscale("log")
    axes.barh(0, measured - low, left=low, color=colour, height=0.6)
    # Drawn over the bar, which may reach past them.
    axes.axvline(objective, color=OBJECTIVE, linestyle="--", linewidth=1.6, zorder=3)
    axes.axvline(0.75 * objective, color=WARNING, linestyle=":", linewidth=1.6, zorder=3)
    axes.text(objective * 1.04, 0.42, f"RTO {span_text(objective)}", fontsize=8, color=OBJECTIVE)
    axes.set_xlim(low, high)
    ticks = [t for t in NICE_SECONDS if low <= t <= high]
    axes.set_xticks(ticks, labels=[humanize(t) for t in ticks])
    axes.minorticks_off()
    axes.set_yticks([0], labels=["measured RTO"], fontsize=8)
    share = 100.0 * summary["rto_seconds"] / objective if objective else 0.0
    measured_text = span_text(summary["rto_seconds"])
    said = f"{measured_text} = {_percent(share)} of the {span_text(objective)} RTO"
    inside = math.log(measured / low) > math.log(high / low) * 0.6
    # Inside a long bar the words end before the 75% line, so no line crosses them.
    axes.text(
        min(measured, 0.6 * objective) * 0.92 if inside else measured * 1.12,
        0,
        said,
        va="center",
        ha="right" if inside else "left",
        fontsize=9,
        color="white" if inside else "#212121",
        fontweight="bold",
    )
    axes.set_xlabel(
        f"log scale · dashed: RTO objective {span_text(objective)}; dotted: 75% of it",
        fontsize=8,
    )


def _percent(share: float) -> str:
    if 0 < share < 0.1:
        return "<0.1%"
    return f"{share:.1f}%" if share < 10 else f"{share:.0f}%"


def _end(step: dict[str, Any]) -> float:
    return (step["offset_seconds"] or 0.0) + (step["seconds"] or 0.0)


def _unit(seconds: float) -> tuple[str, float]:
    if seconds <= 180:
        return "seconds", 1.0
    if seconds <= 3 * 3600:
        return "minutes", 60.0
    return "hours", 3600.0
