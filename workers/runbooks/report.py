"""The final report of a runbook run: summary, Markdown and a PNG timeline.

The summary is plain data (per-step timings and who confirmed what, verification results,
measured RTO and achieved RPO against the objectives); the Markdown and the chart are
rendered from it (the chart by ``workers.runbooks.chart``); the bot's runbook board
uploads them to Slack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workers.core.durations import humanize
from workers.core.run_clock import rto_clock
from workers.core.run_resources import outstanding
from workers.core.runbook_run import RunState
from workers.runbooks.chart import render_chart

MARKS = {"done": "✅", "failed": "❌", "skipped": "⏭", "running": "⏳", "pending": "☐"}
_VERIFY_KEYS = ("backup_id", "tables", "rows", "checksums_matched", "state", "detail")


@dataclass(frozen=True)
class RunReport:
    """A rendered report: its data, its Markdown and its PNG chart."""

    summary: dict[str, Any]
    markdown: str
    png: bytes


def summarize(run: RunState, now: datetime) -> dict[str, Any]:
    """The report's data: result, objectives, per-step facts and verification results."""
    clock = rto_clock(run, now)
    point = _restore_point(run)
    rpo = (run.started_at - point) if point else None
    return {
        "run_id": run.run_id,
        "runbook": run.runbook.name,
        "title": run.runbook.title,
        "drill": run.runbook.drill,
        "result": run.status.value,
        "failure": run.failure,
        "abort_reason": run.abort_reason,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "started_by": run.started_by,
        "rto_objective_seconds": run.rto.total_seconds(),
        "rto_seconds": round(clock.elapsed.total_seconds(), 3),
        "rto_met": clock.level != "breached" and run.status.value == "done",
        "restore_point": point.isoformat() if point else None,
        "rpo_objective_seconds": run.rpo.total_seconds(),
        "rpo_seconds": round(rpo.total_seconds(), 3) if rpo is not None else None,
        "rpo_met": rpo is not None and rpo <= run.rpo,
        "steps": [_step_facts(run, step.id, now) for step in run.runbook.steps],
        "left_behind": [r.label() for r in outstanding(run.resources)],
    }


def _step_facts(run: RunState, step_id: str, now: datetime) -> dict[str, Any]:
    step, state = run.runbook.step(step_id), run.steps[step_id]
    offset = (state.started_at - run.started_at).total_seconds() if state.started_at else None
    return {
        "id": step_id,
        "title": step.title,
        "kind": str(step.kind),
        "mode": state.mode.value,
        "status": state.status.value,
        "offset_seconds": offset,
        "seconds": state.seconds(now),
        "budget_seconds": step.budget.total_seconds(),
        "attempts": state.attempts,
        "confirmed_by": state.confirmed_by,
        "note": state.note,
        "error": state.error,
        "probes": [p.model_dump() for p in state.probes],
        "verification": {k: state.outputs[k] for k in _VERIFY_KEYS if k in state.outputs},
    }


def _restore_point(run: RunState) -> datetime | None:
    expression = run.runbook.report.restore_point
    if not expression:
        return None
    try:
        value = run.resolved(expression)
    except Exception:  # noqa: BLE001 - a step that never produced it: no RPO to report
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def build_report(run: RunState, now: datetime) -> RunReport:
    """Summary, Markdown and chart of a (normally finished) run."""
    summary = summarize(run, now)
    return RunReport(summary, render_markdown(summary), render_chart(summary))


def render_markdown(summary: dict[str, Any]) -> str:
    """The report as Markdown, stored beside the run's state."""
    lines = [
        f"# {summary['title']}: {summary['result']}",
        "",
        f"- run: `{summary['run_id']}` (runbook `{summary['runbook']}`), "
        f"started by {summary['started_by']} at {summary['started_at']}",
        f"- measured RTO: {_span(summary['rto_seconds'])} against an objective of "
        f"{_span(summary['rto_objective_seconds'])} "
        f"({'met' if summary['rto_met'] else 'NOT met'})",
    ]
    if summary["rpo_seconds"] is not None:
        lines.append(
            f"- achieved RPO: {_span(summary['rpo_seconds'])} (restore point "
            f"{summary['restore_point']}) against an objective of "
            f"{_span(summary['rpo_objective_seconds'])} "
            f"({'met' if summary['rpo_met'] else 'NOT met'})"
        )
    else:
        lines.append("- achieved RPO: no restore point was reached")
    if summary["failure"]:
        lines.append(f"- failure: {summary['failure']}")
    if summary["abort_reason"]:
        lines.append(f"- aborted: {summary['abort_reason']}")
    for label in summary.get("left_behind", []):
        lines.append(f"- left behind (remove it by hand): {label}")
    lines += [
        "",
        "## Steps",
        "",
        "| | step | mode | took | by | note |",
        "|---|---|---|---|---|---|",
    ]
    for step in summary["steps"]:
        took = _span(step["seconds"]) if step["seconds"] is not None else "–"
        note = step["error"] or step["note"] or ""
        lines.append(
            f"| {MARKS[step['status']]} | {step['title']} (`{step['id']}`) | {step['mode']} "
            f"| {took} | {step['confirmed_by'] or ''} | {_cell(note)} |"
        )
    lines += ["", "## Verification", ""]
    lines += _verification_lines(summary) or ["No verification results were recorded."]
    return "\n".join(lines) + "\n"


def _verification_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for step in summary["steps"]:
        facts = step["verification"]
        if facts:
            shown = ", ".join(f"{k}: {_cell(str(v))}" for k, v in facts.items())
            lines.append(f"- `{step['id']}`: {shown}")
        for probe in step["probes"]:
            mark = "✅" if probe["ok"] else "❌"
            lines.append(f"- {mark} {probe['label']}: {_cell(probe['detail'])}")
    return lines


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")[:300]


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return humanize(seconds)


def drill_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """What ``/backup status`` shows about the last drill."""
    return {
        "run_id": summary["run_id"],
        "runbook": summary["runbook"],
        "finished_at": summary["finished_at"],
        "result": summary["result"],
        "rto_seconds": summary["rto_seconds"],
        "rto_objective_seconds": summary["rto_objective_seconds"],
        "rto_met": summary["rto_met"],
        "rpo_seconds": summary["rpo_seconds"],
        "rpo_met": summary["rpo_met"],
    }


def headline(summary: dict[str, Any]) -> str:
    """One line for the channel: result, measured RTO and achieved RPO against objectives."""
    mark = MARKS["done"] if summary["result"] == "done" else MARKS["failed"]
    rto = (
        f"RTO {_span(summary['rto_seconds'])} / {_span(summary['rto_objective_seconds'])}"
        f" {'met' if summary['rto_met'] else 'not met'}"
    )
    rpo = (
        f"RPO {_span(summary['rpo_seconds'])} / {_span(summary['rpo_objective_seconds'])}"
        f" {'met' if summary['rpo_met'] else 'not met'}"
        if summary["rpo_seconds"] is not None
        else "RPO: no restore point"
    )
    return f"{mark} {summary['title']} {summary['result']}: {rto}; {rpo}"
