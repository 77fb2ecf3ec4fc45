"""A runbook run as a feed of plain lines: what the console prints as its steps move. Pure.

The console cannot edit what it printed, so where Slack updates the board in place the
console prints a new line each time a step changes: started, done, skipped, failed (with
its hint), waiting for a person (with the commands to run and how to answer, the typed
form of the card's buttons), and the end with where the report is stored. The failure and
end texts are the ones the Slack board relay announces in the channel too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.replies.runbook import seconds_text
from workers.core.events import Event, EventType
from workers.core.runbook import ApprovalStep
from workers.core.runbook_run import Awaiting, RunState

Line = tuple[str, str]
"""A style (``green``, ``red``, ``yellow``, ``cyan``, ``dim`` or empty) and the text."""

_MARKS = {
    "running": ("cyan", "⏳"),
    "done": ("green", "✅"),
    "approved": ("cyan", "✔"),
    "skipped": ("dim", "⏭"),
    "retry": ("yellow", "↻"),
    "stop": ("red", "❌"),
    "ask": ("red", "❌"),
    "waiting": ("yellow", "⏸"),
}
_SAID = {"stop": "failed", "ask": "failed, asks a person", "retry": "failed, retrying"}
APPROVAL_REQUESTED = "approval requested"
"""How a gated step's event begins once its restore request is open (``runbook_gates``)."""
_QUIET = ("stale", APPROVAL_REQUESTED)
"""Step events the feed does not print (the console prints a request's card itself)."""


def event_lines(run: RunState, event: Event, now: datetime) -> list[Line]:
    """What to print for one event of ``run`` (nothing for events the board alone needs)."""
    if event.type in (EventType.FINISHED, EventType.FAILED):
        style = "green" if event.type == EventType.FINISHED else "red"
        lines = [(style, f"{run.run_id} {line}") for line in report_lines(event.summary)[:1]]
        lines += [("", f"    {line}") for line in report_lines(event.summary)[1:]]
        if run.failure:
            lines.append(("red", f"    {run.failure}"))
        return lines
    step_id = str(event.summary.get("step") or "")
    if event.type != EventType.NOTE:
        return []
    if step_id not in run.steps:
        return [("yellow", f"{run.run_id} {event.note}")] if event.note else []
    what = str(event.summary.get("what") or "")
    if what.startswith(_QUIET):
        return []
    return step_lines(run, step_id, what, now)


def step_lines(run: RunState, step_id: str, what: str, now: datetime) -> list[Line]:
    """A step's new state as a line, and what a person needs when one must act."""
    step, state = run.runbook.step(step_id), run.steps[step_id]
    style, mark = _MARKS.get(what, ("", "·"))
    head = f"{run.run_id} {mark} {run.runbook.ids.index(step_id) + 1}. {step.title}: "
    said = _SAID.get(what, what)
    took = seconds_text(state.seconds(now)) if what in ("done", "skipped", "stop") else ""
    tail = f" in {took}" if took else ""
    if state.confirmed_by and what in ("done", "skipped", "approved"):
        tail += f" by {state.confirmed_by}"
    if what == "skipped" and state.note:
        tail += f" ({state.note})"
    if what == "waiting":
        return [(style, head + _waiting(run, step_id)), *answer_lines(run, step_id)]
    lines = [(style, head + said + tail)]
    if what in _SAID and state.error:
        lines.append((style, f"    {state.error}"))
        if state.hint:
            lines.append(("dim", f"    hint: {state.hint}"))
    if what == "ask":
        lines += answer_lines(run, step_id)
    return lines


def _waiting(run: RunState, step_id: str) -> str:
    awaiting = run.steps[step_id].awaiting
    if awaiting == Awaiting.APPROVAL:
        return "waiting for a two-person approval"
    if awaiting == Awaiting.DECISION:
        return "needs a decision"
    return "waiting for a person"


def answer_lines(run: RunState, step_id: str) -> list[Line]:
    """What a person runs, and how to answer: the step card's buttons, typed."""
    step, state = run.runbook.step(step_id), run.steps[step_id]
    lines: list[Line] = []
    if state.awaiting == Awaiting.CONFIRMATION:
        lines += [("", f"    $ {command}") for command in run.resolved(list(step.commands))]
        if step.notes:
            lines.append(("dim", f"    {step.notes.strip()}"))
        lines.append(
            (
                "yellow",
                f"    answer: /dr done {step_id} · /dr skip {step_id} -- <reason> · "
                f"/dr failed {step_id} -- <note>",
            )
        )
    elif state.awaiting == Awaiting.DECISION:
        lines.append(("yellow", f"    {state.question}"))
        lines.append(
            (
                "yellow",
                f"    answer: /dr retry {step_id} · /dr done {step_id} · "
                f"/dr skip {step_id} -- <note> · /dr fail {step_id}",
            )
        )
    elif state.awaiting == Awaiting.APPROVAL and isinstance(step, ApprovalStep):
        lines.append(("yellow", f"    approvers: /dr approve {step_id}"))
    return lines


def request_lines(request_id: str, card: list[str]) -> list[Line]:
    """A gated step's restore request: its card, and the Approve / Deny, typed."""
    lines: list[Line] = [("yellow", f"    {line}") for line in card]
    lines.append(
        (
            "yellow",
            f"    approvers: /restore approve {request_id} · "
            f"/restore deny {request_id} -- <reason>",
        )
    )
    return lines


def failure_text(run: RunState, step_id: str) -> str:
    """The announcement of a failed step: run, step, error and hint."""
    step, state = run.runbook.step(step_id), run.steps[step_id]
    number = run.runbook.ids.index(step_id) + 1
    text = f"❌ {run.runbook.title} ({run.run_id}): step {number}. {step.title} failed"
    if state.error:
        text += f": {state.error}"
    if state.hint:
        text += f"\nhint: {state.hint}"
    if state.awaiting == Awaiting.DECISION:
        text += "\nA person decides: retry, mark done, skip or fail the run (the step's card)."
    return text


def report_lines(summary: dict[str, Any]) -> list[str]:
    """The end of a run: its headline, then where each report file is stored."""
    lines = [str(summary.get("headline", ""))]
    where = summary.get("stored_in")
    for name, key in (summary.get("files") or {}).items():
        lines.append(f"report {name}: {key}" + (f" in {where}" if where else ""))
    return lines
