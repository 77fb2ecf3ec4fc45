"""What ``/dr`` answers, before rendering: a note and, usually, the run's board.

The lines of a run (its steps, its RTO clock, the last drill) are mrkdwn text that the
board, the console and the CLI all show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.mrkdwn import clip, escape
from workers.core.durations import format_duration, humanize
from workers.core.runbook_run import Awaiting, RunState, StepStatus

MARKS = {
    StepStatus.PENDING: "☐",
    StepStatus.RUNNING: "⏳",
    StepStatus.DONE: "✅",
    StepStatus.FAILED: "❌",
    StepStatus.SKIPPED: "⏭",
}


@dataclass(frozen=True)
class DrReply:
    """A note for the person who typed the command, and the run it is about."""

    note: str
    run: RunState | None
    now: datetime

    def lines(self) -> list[str]:
        """Plain text for the console and the CLI."""
        lines = [self.note]
        if self.run is not None:
            run = self.run
            lines.append(f"{run.runbook.title} · run {run.run_id} · {run.status.value}")
            lines += [step_line(run, step_id, self.now) for step_id in run.runbook.ids]
            lines.append(clock_line(run, self.now))
            if run.failure:
                lines.append(f"failure: {run.failure}")
        return lines


def seconds_text(seconds: float | None) -> str:
    """A step duration: ``4.2s`` under a minute, else humanized."""
    if seconds is None:
        return ""
    return f"{seconds:.1f}s" if seconds < 60 else humanize(seconds)


def step_line(run: RunState, step_id: str, now: datetime) -> str:
    """One checklist line: mark, number, title, duration and what it waits for."""
    step, state = run.runbook.step(step_id), run.steps[step_id]
    number = run.runbook.ids.index(step_id) + 1
    parts = [f"{MARKS[state.status]} {number}. {escape(step.title)}"]
    took = seconds_text(state.seconds(now))
    if took and state.status != StepStatus.PENDING:
        parts.append(took)
    if state.mode.value != "automated":
        parts.append(state.mode.value)
    if state.awaiting == Awaiting.CONFIRMATION:
        parts.append("waiting for a person")
    elif state.awaiting == Awaiting.APPROVAL:
        parts.append("waiting for a two-person approval")
    elif state.awaiting == Awaiting.DECISION:
        parts.append("needs a decision")
    if state.confirmed_by and state.status in (StepStatus.DONE, StepStatus.SKIPPED):
        parts.append(f"by {who(state.confirmed_by)}")
    if state.status == StepStatus.FAILED and state.error:
        parts.append(escape(clip(state.error, 200)))
    return " · ".join(parts)


def clock_line(run: RunState, now: datetime) -> str:
    """The RTO clock: elapsed against the objective, warned at 75%, stopped at recovery."""
    clock = run.rto_clock(now)
    elapsed = clock.elapsed.total_seconds()
    percent = int(clock.fraction * 100)
    text = f"⏱ RTO clock {_clock(elapsed)} of {format_duration(clock.objective)} ({percent}%)"
    if clock.level == "breached":
        text += " · :rotating_light: objective breached"
    elif clock.level == "warning":
        text += " · :warning: past 75% of the objective"
    if clock.stopped:
        text += " · stopped"
    return text


def who(user: str) -> str:
    """A Slack user id as a mention; any other name escaped."""
    return f"<@{user}>" if user[:1] in ("U", "W") and user[1:].isalnum() else escape(user)


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def drill_line(drill: dict[str, Any]) -> str:
    """The status board's line about the last DR drill: date, result, measured RTO."""
    mark = "✅" if drill.get("result") == "done" else "❌"
    when = str(drill.get("finished_at") or "?")[:16].replace("T", " ")
    rto = seconds_text(drill.get("rto_seconds"))
    objective = drill.get("rto_objective_seconds")
    of = f" of {humanize(float(objective))}" if objective else ""
    return f"{mark} last DR drill {when} UTC: {drill.get('result')} · measured RTO {rto}{of}"
