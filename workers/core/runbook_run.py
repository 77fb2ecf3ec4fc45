"""The state of one runbook run, and every transition it may take.

Pure: the clock is passed in, nothing here touches Redis, storage or Slack. Steps move
``pending -> running -> done | failed | skipped``; a running step may be waiting for a
person (a manual confirmation, an approval, or a decision after a failure or a crash).
The run stops starting new steps once a step failed under the ``stop`` policy or the run
was aborted; steps marked ``always`` (teardown) still run. What a lost worker leaves
running is sorted out by ``core.run_resume``; the RTO clock is ``core.run_clock``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ConfigDict, Field

from workers.core.errors import ConflictError, NotFoundError, PermissionDenied, UsageError
from workers.core.events import ChatContext
from workers.core.model import Model
from workers.core.run_resources import Resource
from workers.core.run_steps import (
    FINISHED_STEP,
    Awaiting,
    ProbeResult,
    RunStatus,
    StepRun,
    StepStatus,
)
from workers.core.runbook import (
    FailurePolicy,
    Runbook,
    StepKind,
    StepMode,
    resolve,
    split_reference,
)


class RunState(Model):
    """A runbook run: the definition it started with, its inputs and every step's state."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    runbook: Runbook
    inputs: dict[str, Any] = Field(default_factory=dict)
    status: RunStatus = RunStatus.RUNNING
    started_at: datetime
    started_by: str
    finished_at: datetime | None = None
    chat: ChatContext = ChatContext()
    board_ts: str | None = None
    rto: timedelta
    rpo: timedelta
    steps: dict[str, StepRun]
    stopping: bool = False
    failure: str | None = None
    abort_reason: str | None = None
    aborted_by: str | None = None
    report: dict[str, Any] = Field(default_factory=dict)
    resources: list[Resource] = Field(
        default_factory=list, description="what the run's steps created (claimed first)"
    )
    version: int = 0

    # -- reading ---------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Whether the run has ended."""
        return self.status != RunStatus.RUNNING

    def step_run(self, step_id: str) -> StepRun:
        """The named step's state; NotFoundError naming the valid ones."""
        if step_id not in self.steps:
            raise NotFoundError(
                f"run {self.run_id} has no step {step_id!r}",
                hint="steps: " + ", ".join(self.steps),
            )
        return self.steps[step_id]

    def running(self) -> list[str]:
        """Ids of steps now running."""
        return [sid for sid, s in self.steps.items() if s.status == StepStatus.RUNNING]

    def next_runnable(self) -> list[str]:
        """Pending steps whose dependencies all ended well, in file order.

        Once the run stops (a failure under ``stop``, or an abort), only ``always`` steps
        remain runnable; they wait for their dependencies to end in any way, and for every
        other step's work in flight, so a teardown never races what it tears down.
        """
        if self.finished:
            return []
        working = self.stopping and any(
            state.status == StepStatus.RUNNING
            and state.awaiting is None
            and not self.runbook.step(sid).always
            for sid, state in self.steps.items()
        )
        ready = []
        for step in self.runbook.steps:
            if self.steps[step.id].status != StepStatus.PENDING:
                continue
            deps = [d for d in step.depends_on if d in self.steps]
            if self.stopping:
                if step.always and not working and all(self._settled(d) for d in deps):
                    ready.append(step.id)
            elif all(self.steps[d].status in (StepStatus.DONE, StepStatus.SKIPPED) for d in deps):
                ready.append(step.id)
        return ready

    def _settled(self, step_id: str) -> bool:
        # While stopping, a pending step that is not ``always`` will never run: it no longer
        # holds back the teardown that depends on it.
        state = self.steps[step_id]
        if state.status == StepStatus.PENDING:
            return not self.runbook.step(step_id).always
        return state.status in FINISHED_STEP

    def lookup(self, expression: str) -> Any:
        """The value of a ``${…}`` expression in this run."""
        parts = split_reference(expression)
        if parts[0] == "inputs" and len(parts) == 2:
            if parts[1] not in self.inputs:
                raise UsageError(f"input {parts[1]!r} was not given to run {self.run_id}")
            return self.inputs[parts[1]]
        if parts[0] == "run" and len(parts) == 2:
            return {
                "id": self.run_id,
                "tag": self.run_id.rsplit("-", 1)[-1],
                "started_by": self.started_by,
                "started_at": self.started_at.isoformat(),
                "runbook": self.runbook.name,
            }[parts[1]]
        if parts[0] == "steps" and len(parts) == 4:
            outputs = self.step_run(parts[1]).outputs
            if parts[3] not in outputs:
                raise NotFoundError(
                    f"step {parts[1]!r} did not output {parts[3]!r}",
                    hint="its outputs: " + (", ".join(outputs) or "none"),
                )
            return outputs[parts[3]]
        raise UsageError(f"${{{expression}}} is not a reference")

    def resolved(self, value: Any) -> Any:
        """``value`` with every reference substituted from this run."""
        return resolve(value, self.lookup)

    # -- transitions -----------------------------------------------------------------------

    def start(self, step_id: str, now: datetime, op_id: str | None = None) -> StepRun:
        """Move a pending step to running (waiting for a person when it is manual)."""
        state = self._expect(step_id, StepStatus.PENDING)
        kind = self.runbook.step(step_id).kind
        state.status = StepStatus.RUNNING
        state.started_at = state.started_at or now
        state.attempt_at = now
        state.finished_at = None
        state.attempts += 1
        state.op_id = op_id
        state.executing = False
        state.error = state.hint = None
        if state.mode == StepMode.MANUAL:
            state.awaiting = Awaiting.CONFIRMATION
        elif kind == StepKind.APPROVAL or getattr(self.runbook.step(step_id), "approval", False):
            # Every attempt needs its own approval: an approval covers one execution.
            state.awaiting = Awaiting.APPROVAL
            state.approval_id = None
        return state

    def approve_gate(self, step_id: str, now: datetime, *, by: str, required: int) -> str:
        """One approver on an ``approval`` step: never the run's starter, never twice.

        The gate opens when ``required`` different people (besides the starter) approved.
        """
        state = self._expect(step_id, StepStatus.RUNNING)
        if self.runbook.step(step_id).kind != StepKind.APPROVAL:
            raise ConflictError(f"step {step_id!r} is not an approval step")
        if state.awaiting != Awaiting.APPROVAL:
            raise ConflictError(f"step {step_id!r} is not waiting for an approval")
        if by == self.started_by:
            raise PermissionDenied(
                "the person who started the run cannot approve its gate",
                hint="a second person from the approvers must approve",
            )
        if by in state.approvers:
            raise ConflictError(f"you already approved step {step_id!r}")
        state.approvers.append(by)
        if len(state.approvers) < required:
            return "waiting"
        gate = f"gate-{self.run_id}-{step_id}-{state.attempts}"
        return self.approved(step_id, now, approval_id=gate, by=", ".join(state.approvers))

    def approved(self, step_id: str, now: datetime, *, approval_id: str, by: str) -> str:
        """An approval was granted: a gate step is done; a gated job may now run."""
        state = self._expect(step_id, StepStatus.RUNNING)
        if state.awaiting != Awaiting.APPROVAL:
            raise ConflictError(f"step {step_id!r} is not waiting for an approval")
        state.approval_id = approval_id
        state.confirmed_by = by
        state.awaiting = None
        if self.runbook.step(step_id).kind == StepKind.APPROVAL:
            self.succeed(step_id, now, outputs={"approval_id": approval_id, "approved_by": by})
            return "done"
        return "run"

    def begin_execution(self, step_id: str, op_id: str | None) -> Literal["run", "ask", "stale"]:
        """A worker is about to do the step's work: run it, ask first, or drop a stale job."""
        state = self.steps.get(step_id)
        if self.finished or state is None or state.status != StepStatus.RUNNING:
            return "stale"
        if state.op_id != op_id or state.awaiting is not None:
            return "stale"
        if state.executing and not state.safe_to_repeat:
            self._ask(state, crash_question(step_id))
            return "ask"
        state.executing = True
        return "run"

    def succeed(
        self,
        step_id: str,
        now: datetime,
        *,
        outputs: dict[str, Any] | None = None,
        probes: list[ProbeResult] | None = None,
        by: str | None = None,
        note: str | None = None,
    ) -> StepRun:
        """The step is done."""
        state = self._expect(step_id, StepStatus.RUNNING)
        state.status = StepStatus.DONE
        state.finished_at = now
        state.outputs = dict(outputs or {})
        state.probes = list(probes or state.probes)
        state.confirmed_by = by or state.confirmed_by
        state.note = note or state.note
        state.awaiting = state.question = None
        state.error = state.hint = None
        return state

    def fail(
        self,
        step_id: str,
        now: datetime,
        message: str,
        *,
        hint: str | None = None,
        probes: list[ProbeResult] | None = None,
        by: str | None = None,
        transient: bool = False,
    ) -> Literal["retry", "ask", "stop"]:
        """Record a failure and apply the step's policy; return what the policy decided."""
        state = self._expect(step_id, StepStatus.RUNNING)
        step = self.runbook.step(step_id)
        state.error, state.hint = message, hint
        state.probes = list(probes or [])
        state.confirmed_by = by or state.confirmed_by
        retry_allowed = step.on_failure == FailurePolicy.RETRY or transient
        if retry_allowed and state.attempts <= step.retries and not self.stopping:
            state.status = StepStatus.PENDING
            state.executing = False
            state.awaiting = None
            return "retry"
        if step.on_failure == FailurePolicy.ASK and not self.stopping:
            self._ask(state, f"step {step_id!r} failed: {message}. Retry, skip it, or abort?")
            return "ask"
        self._close_failed(step_id, state, now)
        return "stop"

    def skip(self, step_id: str, now: datetime, *, by: str | None, reason: str) -> StepRun:
        """Skip a pending or running step; a reason is required."""
        if not reason.strip():
            raise UsageError("skipping a step needs a reason", hint="Skip -- <reason>")
        state = self.step_run(step_id)
        if state.status in FINISHED_STEP:
            raise ConflictError(f"step {step_id!r} is already {state.status}")
        state.status = StepStatus.SKIPPED
        state.started_at = state.started_at or now
        state.finished_at = now
        state.confirmed_by = by
        state.note = reason
        state.awaiting = state.question = None
        return state

    def confirm(
        self, step_id: str, action: str, *, by: str, note: str | None, now: datetime
    ) -> str:
        """A person's answer on a manual step: done, skip (reason) or failed (note)."""
        state = self._expect(step_id, StepStatus.RUNNING)
        if state.awaiting != Awaiting.CONFIRMATION:
            raise ConflictError(f"step {step_id!r} is not waiting for a confirmation")
        if action == "done":
            self.succeed(step_id, now, by=by, note=note, outputs=state.outputs)
            return "done"
        if action == "skip":
            self.skip(step_id, now, by=by, reason=note or "")
            return "skipped"
        if action == "failed":
            if not (note or "").strip():
                raise UsageError("marking a step failed needs a note", hint="Failed -- <note>")
            state.awaiting = None
            return self.fail(step_id, now, note or "", by=by)
        raise UsageError(f"unknown answer {action!r}", hint="done, skip or failed")

    def decide(
        self, step_id: str, decision: str, *, by: str, note: str | None, now: datetime
    ) -> str:
        """A person's decision on a step waiting after a failure or a crash."""
        state = self._expect(step_id, StepStatus.RUNNING)
        if state.awaiting != Awaiting.DECISION:
            raise ConflictError(f"step {step_id!r} is not waiting for a decision")
        state.confirmed_by = by
        if decision == "retry":
            state.status = StepStatus.PENDING
            state.awaiting = state.question = None
            state.executing = False
            state.note = note
            return "retry"
        if decision == "skip":
            self.skip(step_id, now, by=by, reason=note or "")
            return "skipped"
        if decision == "done":
            self.succeed(step_id, now, by=by, note=note or "confirmed done by a person")
            return "done"
        if decision == "fail":
            self._close_failed(step_id, state, now)
            return "stop"
        raise UsageError(f"unknown decision {decision!r}", hint="retry, skip, done or fail")

    def abort(self, *, by: str, reason: str, now: datetime) -> None:
        """Stop the run: nothing new starts except ``always`` steps; waiting steps are skipped."""
        if not reason.strip():
            raise UsageError("an abort needs a reason", hint="/dr abort -- <reason>")
        if self.finished:
            raise ConflictError(f"run {self.run_id} has already ended ({self.status})")
        self.stopping = True
        self.abort_reason, self.aborted_by = reason, by
        for step_id, state in self.steps.items():
            if state.status == StepStatus.RUNNING and state.awaiting is not None:
                self.skip(step_id, now, by=by, reason=f"run aborted: {reason}")

    def settle(self, now: datetime) -> bool:
        """End the run when nothing runs and nothing can start; return whether it ended now."""
        if self.finished or self.running() or self.next_runnable():
            return False
        for state in self.steps.values():
            if state.status == StepStatus.PENDING:
                state.status = StepStatus.SKIPPED
                state.note = "not reached"
        self.finished_at = now
        if self.abort_reason is not None:
            self.status = RunStatus.ABORTED
        elif any(s.status == StepStatus.FAILED for s in self.steps.values()):
            self.status = RunStatus.FAILED
        else:
            self.status = RunStatus.DONE
        return True

    def set_board(self, channel: str, ts: str) -> None:
        """Where the run's board message is; its thread holds the steps' details."""
        self.board_ts = ts
        self.chat = self.chat.model_copy(update={"channel": channel})

    def gate_requested(self, step_id: str, request_id: str) -> None:
        """A gated job step waits for the restore request ``request_id``."""
        self._expect(step_id, StepStatus.RUNNING).approval_id = request_id

    def gate_approved(self, step_id: str, op_id: str, *, by: str | None) -> None:
        """The gated step's request was approved: its own restore job ``op_id`` does the work."""
        state = self._expect(step_id, StepStatus.RUNNING)
        state.awaiting = None
        state.op_id = op_id
        state.executing = True  # the request's own job runs it; a crash asks a person
        state.confirmed_by = by

    def gate_job_done(
        self, step_id: str, op_id: str, now: datetime, *, outputs: dict[str, Any]
    ) -> Literal["done", "stale"]:
        """The gated step's restore job finished: the step is done (unless it moved on)."""
        state = self.steps[step_id]
        if state.status != StepStatus.RUNNING or state.op_id != op_id:
            return "stale"
        self.succeed(step_id, now, outputs=outputs)
        return "done"

    def gate_failed(
        self, step_id: str, now: datetime, message: str, *, hint: str | None
    ) -> Literal["retry", "ask", "stop", "stale"]:
        """The gated step's request was refused or its job failed: the step's policy applies."""
        if self.steps[step_id].status != StepStatus.RUNNING:
            return "stale"
        self.steps[step_id].awaiting = None
        return self.fail(step_id, now, message, hint=hint)

    def ask(self, step_id: str, question: str) -> None:
        """Stop the step until a person decides (retry, done, skip or fail)."""
        self._ask(self.step_run(step_id), question)

    def requeue(self, step_id: str) -> None:
        """Put a running step back to pending, to be started again."""
        state = self._expect(step_id, StepStatus.RUNNING)
        state.status = StepStatus.PENDING
        state.executing = False
        state.op_id = None

    # -- internals -------------------------------------------------------------------------

    def _expect(self, step_id: str, status: StepStatus) -> StepRun:
        state = self.step_run(step_id)
        if state.status != status:
            raise ConflictError(
                f"step {step_id!r} is {state.status}, not {status}",
                hint="see /dr status",
            )
        return state

    def _ask(self, state: StepRun, question: str) -> None:
        state.awaiting = Awaiting.DECISION
        state.question = question

    def _close_failed(self, step_id: str, state: StepRun, now: datetime) -> None:
        state.status = StepStatus.FAILED
        state.finished_at = now
        state.awaiting = state.question = None
        self.stopping = True
        if self.failure is None:
            self.failure = f"step {step_id!r} failed: {state.error or 'no detail'}"


def crash_question(step_id: str) -> str:
    """What a person is asked about a step that was running when its worker stopped."""
    return (
        f"step {step_id!r} was running when its worker stopped and is not safe to repeat. "
        "Check what it left behind, then retry it, mark it done, skip it, or fail the run."
    )
