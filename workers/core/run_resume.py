"""Resuming a runbook run after a worker, the bot or Redis was lost: what each step needs."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from workers.core.model import Model
from workers.core.runbook_run import RunState, crash_question


class ResumeAction(Model):
    """What resuming does with one step that was running."""

    model_config = ConfigDict(frozen=True)

    step: str
    action: Literal["requeue", "ask", "repost", "keep"]
    reason: str


def resume_plan(run: RunState, alive: set[str]) -> list[ResumeAction]:
    """For each running step: keep it, repost its card, requeue it, or ask a person.

    ``alive`` holds the steps whose worker still beats. A step whose worker is gone is
    requeued when repeating it is safe or its work never began; otherwise a person
    decides, because running half of a restore twice can destroy what the first made.
    """
    actions = []
    for step_id in run.running():
        state = run.steps[step_id]
        if state.awaiting is not None:
            actions.append(ResumeAction(step=step_id, action="repost", reason="waiting"))
        elif step_id in alive:
            actions.append(ResumeAction(step=step_id, action="keep", reason="still running"))
        elif state.executing and not state.safe_to_repeat:
            run.ask(step_id, crash_question(step_id))
            actions.append(ResumeAction(step=step_id, action="ask", reason="not safe to repeat"))
        else:
            run.requeue(step_id)
            actions.append(
                ResumeAction(step=step_id, action="requeue", reason="its worker was lost")
            )
    return actions
