"""Block Kit for an operation's life: its message, its thread's details, alerts and errors."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject

from bot.blocks.message import MAX_BLOCKS, Message, section, sections
from bot.formats import size
from bot.grammar.command import chat_command
from bot.mrkdwn import clip, escape
from bot.replies.progress import OperationView, Stage, chat_hint, stage_text, title
from bot.replies.results import database_lines
from workers.core.durations import humanize
from workers.core.errors import KosmosError, PermissionDenied, UsageError
from workers.core.events import Event, EventType

STAGE_MARKS = {
    Stage.QUEUED: ":hourglass_flowing_sand:",
    Stage.RUNNING: ":arrows_counterclockwise:",
    Stage.DONE: ":white_check_mark:",
    Stage.FAILED: ":x:",
}


def error_message(error: KosmosError) -> Message:
    """An error for the person who typed the command (sent ephemerally)."""
    if isinstance(error, UsageError):
        mark = ":warning:"
    elif isinstance(error, PermissionDenied):
        mark = ":no_entry:"
    else:
        mark = ":x:"
    line = f"{mark} {escape(error.message)}"
    said = error.hint_for(chat_command)
    if said:
        hint = escape(said)
        line += f"\n```{hint}```" if isinstance(error, UsageError) else f"\n_{hint}_"
    text = f"{error.message} ({said})" if said else error.message
    return Message(clip(text), [section(line)])


def internal_error(op_id: str) -> Message:
    """What people see for a bug: an id to quote, never a traceback."""
    line = f":boom: internal error, operation `{op_id}`"
    return Message(f"internal error, operation {op_id}", [section(line)])


def operation(view: OperationView, rto_seconds: float | None = None) -> Message:
    """The one message of an operation, as it stands (a restore's duration against the RTO)."""
    name = title(view)
    status = clip(stage_text(view, rto_seconds), 2000)
    line = f"{STAGE_MARKS[view.stage]} *{escape(name)}* — {escape(status)}"
    who = f" · requested by <@{view.chat.user}>" if view.chat.user else ""
    context = ContextBlock(elements=[MarkdownTextObject(text=clip(f"`{view.op_id}`{who}"))])
    blocks = [section(line), context.to_dict()]
    hint = chat_hint(view)
    if view.stage == Stage.FAILED and hint:
        blocks.insert(1, section(f"_{escape(hint)}_"))
    return Message(clip(f"{name}: {status}"), blocks)


def detail(event: Event) -> Message:
    """A thread reply under an operation's message: a note, or the end's details."""
    if event.type == EventType.NOTE:
        line = escape(event.note or "")
        if event.phase:
            line = f"*{escape(event.phase)}*: {line}"
    else:
        pairs = [
            f"*{escape(k.replace('_', ' '))}*: {_fact(k, v)}"
            for k, v in event.summary.items()
            if not _restored(k, v)
        ]
        databases = event.summary.get("databases")
        if isinstance(databases, list) and _restored("databases", databases):
            pairs += [escape(line) for line in database_lines(databases)]
        line = "\n".join(pairs) or "no details"
        if event.type == EventType.FAILED:
            kind = escape(event.error_class or "error")
            error = f"*error* ({kind}): {escape(event.message or '')}"
            line = "\n".join([error, *pairs])
    return Message(clip(line), [b.to_dict() for b in sections(line.splitlines())][:MAX_BLOCKS])


def _restored(key: str, value: Any) -> bool:
    """Whether this is a dump restore's list of databases, shown one line each."""
    listed = isinstance(value, list) and all(isinstance(v, dict) for v in value)
    return key == "databases" and listed


def _fact(key: str, value: Any) -> str:
    if isinstance(value, int) and key in ("size", "total_size", "bytes"):
        return f"{size(value)} ({value} bytes)"
    if isinstance(value, int | float) and key.endswith("_seconds"):
        return humanize(value) if value >= 1 else f"{value:.2f}s"
    if key.endswith("id") and isinstance(value, str):
        return f"`{escape(value)}`"
    return escape(str(value))


def alert(event: Event) -> Message:
    """An RPO alert, or its recovery, for the alert channel."""
    component = escape(event.component or "kosmos")
    kind = "Review needed" if event.operation == "restore" else "RPO alert"  # break-glass nag
    if event.type == EventType.ALERT:
        line = f":rotating_light: *{kind} — {component}*: {escape(event.message or '')}"
    else:
        line = f":white_check_mark: *Recovered — {component}*: {escape(event.message or '')}"
    hint = event.suggestion.text(chat_command) if event.suggestion else event.hint
    if hint:
        line += f"\n_{escape(hint)}_"
    return Message(clip(line), [section(line)])
