"""Block Kit for runbook runs: the checklist board and the step cards in its thread. Pure.

The board is one message updated in place: ☐ pending, ⏳ running, ✅ done, ❌ failed,
⏭ skipped, each step with its duration, and the RTO clock (elapsed against the objective,
a warning from 75%). A step card shows what a person needs: the exact commands, outputs,
probe results, who confirmed; a manual step's card carries Done / Skip / Failed buttons
and a text field for the reason or note those need.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.blocks.message import MAX_BLOCKS, Message
from bot.mrkdwn import clip, escape
from bot.replies.runbook import MARKS, DrReply, clock_line, seconds_text, step_line, who
from workers.core.runbook import CheckStep, JobStep
from workers.core.runbook_run import Awaiting, RunState, RunStatus, StepRun, StepStatus

RESULT_MARKS = {
    RunStatus.RUNNING: "⏳",
    RunStatus.DONE: "✅",
    RunStatus.FAILED: "❌",
    RunStatus.ABORTED: "⏹",
}
APPROVE_ACTION = "dr_approve"
NOTE_BLOCK = "dr_note"
NOTE_ACTION = "note"
CONFIRM_ACTIONS = {"dr_done": "done", "dr_skip": "skip", "dr_failed": "failed"}
DECIDE_ACTIONS = {
    "dr_retry": "retry",
    "dr_mark_done": "done",
    "dr_decide_skip": "skip",
    "dr_fail": "fail",
}


def board(run: RunState, now: datetime) -> Message:
    """The checklist board of a run."""
    mark = RESULT_MARKS[run.status]
    header = f"{mark} {run.runbook.title}"
    lines = [step_line(run, step_id, now) for step_id in run.runbook.ids]
    facts = f"run `{run.run_id}` · runbook `{run.runbook.name}` · started by {who(run.started_by)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(header, 150)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(facts)}]},
        _section("\n".join(lines)),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": clock_line(run, now)}]},
    ]
    ending = _ending(run)
    if ending:
        blocks.append(_section(ending))
    text = f"{header}: {run.status.value}" + (f" · {run.failure}" if run.failure else "")
    return Message(clip(text), blocks[:MAX_BLOCKS])


def _ending(run: RunState) -> str:
    if run.abort_reason:
        return f"⏹ aborted by {who(run.aborted_by or '?')}: {escape(run.abort_reason)}"
    if run.failure:
        return f"❌ {escape(run.failure)}"
    headline = run.report.get("headline")
    return escape(str(headline)) if headline else ""


def step_card(run: RunState, step_id: str, now: datetime) -> Message:
    """A step's detail for the board's thread, with buttons when a person must answer."""
    step, state = run.runbook.step(step_id), run.steps[step_id]
    lines = [f"*{MARKS[state.status]} {escape(step.title)}* (`{step_id}`, {_kind(step, state)})"]
    if step.notes:
        lines.append(escape(step.notes.strip()))
    commands = [str(c) for c in run.resolved(list(step.commands))] if step.commands else []
    blocks: list[dict[str, Any]] = [_section("\n".join(lines))]
    if commands and state.mode.value == "manual":
        blocks.append(_section("```" + clip("\n".join(commands), 2900) + "```"))
    for link in step.links:
        blocks.append(_section(f"<{link}>"))
    detail = _detail_lines(state, now)
    if detail:
        blocks.append(_section("\n".join(detail)))
    blocks += _actions(run, step_id, state)
    text = f"{MARKS[state.status]} {step.title}: {state.status.value}"
    return Message(clip(text), blocks[:MAX_BLOCKS])


def _kind(step: Any, state: StepRun) -> str:
    if isinstance(step, JobStep):
        if state.mode.value == "automated":
            return f"job {step.operation}"
        return f"{state.mode.value}: no engine for {step.operation} yet"
    if isinstance(step, CheckStep):
        return f"check, {len(step.probes)} probe(s)"
    return str(step.kind)


def _detail_lines(state: StepRun, now: datetime) -> list[str]:
    lines = []
    took = seconds_text(state.seconds(now))
    if state.status in (StepStatus.DONE, StepStatus.FAILED, StepStatus.SKIPPED) and took:
        lines.append(
            f"took {took}" + (f" · attempts {state.attempts}" if state.attempts > 1 else "")
        )
    for key, value in list(state.outputs.items())[:12]:
        lines.append(f"• {escape(key)}: `{escape(clip(str(value), 200))}`")
    for probe in state.probes:
        mark = "✅" if probe.ok else "❌"
        lines.append(f"{mark} {escape(probe.label)}: {escape(clip(probe.detail, 300))}")
    if state.confirmed_by:
        lines.append(f"confirmed by {who(state.confirmed_by)}")
    if state.note:
        lines.append(f"note: {escape(clip(state.note, 500))}")
    if state.error:
        lines.append(f"error: {escape(clip(state.error, 500))}")
    if state.hint:
        lines.append(f"hint: {escape(clip(state.hint, 300))}")
    if state.question:
        lines.append(f":question: {escape(state.question)}")
    return lines


def _actions(run: RunState, step_id: str, state: StepRun) -> list[dict[str, Any]]:
    if (
        state.status == StepStatus.RUNNING
        and state.awaiting == Awaiting.APPROVAL
        and str(run.runbook.step(step_id).kind) == "approval"
    ):
        value = button_value(run.run_id, step_id)
        button = _button("Approve", APPROVE_ACTION, value, "primary")
        return [{"type": "actions", "block_id": f"dr_actions_{step_id}", "elements": [button]}]
    if state.status != StepStatus.RUNNING or state.awaiting not in (
        Awaiting.CONFIRMATION,
        Awaiting.DECISION,
    ):
        return []
    value = button_value(run.run_id, step_id)
    if state.awaiting == Awaiting.CONFIRMATION:
        buttons = [
            _button("Done", "dr_done", value, "primary"),
            _button("Skip", "dr_skip", value),
            _button("Failed", "dr_failed", value, "danger"),
        ]
        label = "Reason (Skip) or note (Failed)"
    else:
        buttons = [
            _button("Retry", "dr_retry", value, "primary"),
            _button("Mark done", "dr_mark_done", value),
            _button("Skip", "dr_decide_skip", value),
            _button("Fail the run", "dr_fail", value, "danger"),
        ]
        label = "Note (needed to skip)"
    note = {
        "type": "input",
        "block_id": NOTE_BLOCK,
        "optional": True,
        "label": {"type": "plain_text", "text": label},
        "element": {"type": "plain_text_input", "action_id": NOTE_ACTION},
    }
    return [note, {"type": "actions", "block_id": f"dr_actions_{step_id}", "elements": buttons}]


def button_value(run_id: str, step_id: str) -> str:
    """What a step button carries: which run and step it answers."""
    return json.dumps({"run": run_id, "step": step_id}, separators=(",", ":"))


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text) or " "}}


def reply_messages(reply: DrReply) -> list[Message]:
    """A ``/dr`` answer: the note, then the board when there is a run."""
    note = Message(clip(reply.note), [_section(escape(reply.note))])
    if reply.run is None:
        return [note]
    shown = board(reply.run, reply.now)
    return [Message(shown.text, [_section(escape(reply.note)), *shown.blocks][:MAX_BLOCKS])]
