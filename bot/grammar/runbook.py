"""``/dr``: runbook runs in the incident channel, parsed into models (pure, no I/O).

::

    /dr start <runbook> [--param name=value …]
    /dr status [run-id]
    /dr abort [run-id] -- <reason>
    /dr resume [run-id]
    /dr done|skip|failed <step> [run-id] [-- <reason or note>]
    /dr retry|fail <step> [run-id] [-- <note>]
    /dr confirm <step> <done|skip|failed|retry|fail> [run-id] [-- <reason or note>]
    /dr approve <step> [run-id]
    /dr help

Without a run id, a command means the newest run of this channel (or of this console).
The answers are the step card's buttons, typed: Done / Skip (reason) / Failed (note) on a
manual step, Retry / Mark done / Skip / Fail on a step that asks. Everything after the
first standalone ``--`` is the reason, taken as typed.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, ValidationError

from bot.grammar.command import Command, tokenize
from workers.core.errors import UsageError
from workers.core.runbook import RUNBOOK_NAME, STEP_ID

RUN_ID = re.compile(r"^dr-\d{8}T\d{6}Z-[0-9a-f]{4}$")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_PARAMS = 20
MAX_REASON = 500
_SEPARATOR = re.compile(r"(?:^|\s)(?:--|\u2014|\u2013)(?:\s|$)")
ANSWERS = ("done", "skip", "failed", "retry", "fail")
"""What a person answers a waiting step (the card's buttons)."""
NEEDS_TEXT = {"skip": "a reason", "failed": "a note"}
USAGE = (
    "/dr start <runbook> [--param name=value …]\n"
    "/dr status [run-id]\n"
    "/dr abort [run-id] -- <reason>\n"
    "/dr resume [run-id]\n"
    "/dr done|skip|failed <step> [run-id] [-- <reason or note>]\n"
    "/dr retry|fail <step> [run-id]\n"
    "/dr approve <step> [run-id]"
)
HELP = [
    ("/dr start <runbook> [--param name=value …]", "run a runbook here (operators, ICs)"),
    ("/dr status [run-id]", "show the run's checklist board again"),
    ("/dr abort [run-id] -- <reason>", "stop the run; teardown steps still run"),
    ("/dr resume [run-id]", "continue after a crash (from storage if Redis lost it)"),
    ("/dr done <step> [run-id]", "a manual step is done (operators, ICs)"),
    ("/dr skip <step> [run-id] -- <reason>", "skip a waiting step, saying why"),
    ("/dr failed <step> [run-id] -- <note>", "a manual step failed: the run stops"),
    ("/dr retry|fail <step> [run-id]", "decide on a step that asks after a failure"),
    ("/dr approve <step> [run-id]", "approve an approval step (approvers)"),
]


class DrStart(Command):
    """Start a runbook run in this channel."""

    action: ClassVar[str] = "dr.start"
    runbook: str = Field(pattern=RUNBOOK_NAME, max_length=60)
    params: dict[str, str] = Field(default_factory=dict)


class DrStatus(Command):
    """Show a run's board."""

    action: ClassVar[str] = "dr.status"
    run_id: str | None = Field(default=None, pattern=RUN_ID.pattern)


class DrAbort(Command):
    """Abort a run; the reason is required."""

    action: ClassVar[str] = "dr.abort"
    run_id: str | None = Field(default=None, pattern=RUN_ID.pattern)
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class DrResume(Command):
    """Resume a run after a crash."""

    action: ClassVar[str] = "dr.resume"
    run_id: str | None = Field(default=None, pattern=RUN_ID.pattern)


class DrAnswer(Command):
    """A person's answer to a waiting step: a step card's button, typed."""

    action: ClassVar[str] = "dr.confirm"
    step_id: str = Field(pattern=STEP_ID, max_length=40)
    answer: Literal["done", "skip", "failed", "retry", "fail"]
    run_id: str | None = Field(default=None, pattern=RUN_ID.pattern)
    note: str | None = Field(default=None, max_length=MAX_REASON)


class DrApprove(Command):
    """An approver's approval of an ``approval`` step (the two-person gate)."""

    action: ClassVar[str] = "dr.approve"
    step_id: str = Field(pattern=STEP_ID, max_length=40)
    run_id: str | None = Field(default=None, pattern=RUN_ID.pattern)


class DrHelp(Command):
    """``/dr help``."""

    action: ClassVar[str] = "dr.help"


def parse_dr(text: str) -> Command:
    """Parse what follows ``/dr``."""
    head, reason = _split_reason(text)
    tokens = tokenize(head, USAGE)
    verb = tokens[0].lower() if tokens else "help"
    rest = tokens[1:]
    try:
        if verb == "start":
            return _start(rest)
        if verb in ("status", "resume"):
            run_id = _run_id(rest)
            return DrStatus(run_id=run_id) if verb == "status" else DrResume(run_id=run_id)
        if verb == "abort":
            if not reason:
                raise UsageError("an abort needs a reason", hint="usage: /dr abort -- <reason>")
            return DrAbort(run_id=_run_id(rest), reason=reason)
        if verb in (*ANSWERS, "confirm"):
            return _answer(verb, rest, reason)
        if verb == "approve":
            step_id, run_id = _step_and_run(rest, verb)
            return DrApprove(step_id=step_id, run_id=run_id)
        if verb == "help":
            return DrHelp()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "input"
        raise UsageError(f"{field}: {first['msg'].lower()}", hint="usage:\n" + USAGE) from None
    raise UsageError(f"unknown subcommand {verb[:40]!r} for /dr", hint="usage:\n" + USAGE)


def _split_reason(text: str) -> tuple[str, str]:
    match = _SEPARATOR.search(text)
    if match is None:
        return text, ""
    return text[: match.start()], text[match.end() :].strip()[:MAX_REASON]


def _start(tokens: list[str]) -> DrStart:
    runbook: str | None = None
    params: dict[str, str] = {}
    items = iter(tokens)
    for token in items:
        name, eq, inline = token.partition("=")
        if name.lower() == "--param":
            pair = inline if eq else next(items, "")
            key, has_value, value = pair.partition("=")
            if not has_value or not PARAM_NAME.match(key):
                raise UsageError(
                    f"--param {pair[:40]!r} is not name=value", hint="e.g. --param backup=latest"
                )
            params[key] = value
        elif token.startswith("-"):
            raise UsageError(f"unknown option {token[:40]!r} for /dr start", hint=USAGE)
        elif runbook is None:
            runbook = token.lower()
        else:
            raise UsageError(f"unexpected argument {token[:40]!r}", hint="usage:\n" + USAGE)
    if runbook is None:
        raise UsageError("missing <runbook>", hint="e.g. /dr start dr-test")
    if len(params) > MAX_PARAMS:
        raise UsageError(f"at most {MAX_PARAMS} parameters")
    return DrStart(runbook=runbook, params=params)


def _answer(verb: str, tokens: list[str], note: str) -> DrAnswer:
    if verb == "confirm":
        if len(tokens) < 2 or tokens[1].lower() not in ANSWERS:
            raise UsageError(
                "usage: /dr confirm <step> <answer>", hint="answers: " + ", ".join(ANSWERS)
            )
        verb, tokens = tokens[1].lower(), [tokens[0], *tokens[2:]]
    step_id, run_id = _step_and_run(tokens, verb)
    if verb in NEEDS_TEXT and not note:
        raise UsageError(
            f"/dr {verb} needs {NEEDS_TEXT[verb]}",
            hint=f"/dr {verb} {step_id} -- <{NEEDS_TEXT[verb].split()[-1]}>",
        )
    return DrAnswer.model_validate(
        {"step_id": step_id, "answer": verb, "run_id": run_id, "note": note or None}
    )


def _step_and_run(tokens: list[str], verb: str) -> tuple[str, str | None]:
    if not tokens:
        raise UsageError(f"/dr {verb} needs the step's id", hint="see the ids with /dr status")
    return tokens[0].lower(), _run_id(tokens[1:])


def _run_id(tokens: list[str]) -> str | None:
    if len(tokens) > 1:
        raise UsageError(f"unexpected argument {tokens[1][:40]!r}", hint="usage:\n" + USAGE)
    if tokens and not RUN_ID.match(tokens[0]):
        raise UsageError(
            f"{tokens[0][:40]!r} is not a run id", hint="run ids look like dr-20261124T030000Z-7f3a"
        )
    return tokens[0] if tokens else None
