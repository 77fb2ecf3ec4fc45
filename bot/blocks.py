"""Block Kit builders (slack_sdk models): pure, and never past Slack's limits.

A message holds at most 50 blocks and a section's text at most 3,000 characters; builders
pack lines into sections and split into several messages rather than let Slack refuse one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.dr_replies import DrReply
from bot.grammar.command import chat_command
from bot.progress import OperationView, Stage, chat_hint, stage_text, title
from bot.replies import AcceptedReply, HelpReply, ListReply, Reply, StatusReply
from bot.restore_replies import AuditReply, CardReply, DecisionReply
from bot.results import database_lines
from bot.terminal import size, verified, when
from workers.core.catalog import ComponentStatus, Freshness
from workers.core.durations import format_duration, humanize
from workers.core.errors import KosmosError, PermissionDenied, UsageError
from workers.core.events import Event, EventType
from workers.core.rpo import wal_archive_lag

MAX_BLOCKS = 50
MAX_TEXT = 3000
MAX_HEADER = 150
ELLIPSIS = "…"

MARKS = {
    Freshness.FRESH: ":large_green_circle: fresh",
    Freshness.AGING: ":large_yellow_circle: aging",
    Freshness.BREACHED: ":red_circle: RPO breached",
    Freshness.NEVER: ":white_circle: never backed up",
    Freshness.DISABLED: ":heavy_minus_sign: disabled",
    Freshness.NOT_BUILT: ":construction: not built yet",
}
STAGE_MARKS = {
    Stage.QUEUED: ":hourglass_flowing_sand:",
    Stage.RUNNING: ":arrows_counterclockwise:",
    Stage.DONE: ":white_check_mark:",
    Stage.FAILED: ":x:",
}


@dataclass(frozen=True)
class Message:
    """One Slack message: fallback text plus blocks (already dicts)."""

    text: str
    blocks: list[dict[str, Any]]

    def payload(self) -> dict[str, Any]:
        """Keyword arguments for chat.postMessage / chat.update / a response."""
        return {"text": self.text, "blocks": self.blocks}


def escape(text: str) -> str:
    """Text safe inside mrkdwn: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def sections(lines: Iterable[str]) -> list[Block]:
    """Pack lines into as few mrkdwn sections as fit 3,000 characters each."""
    blocks: list[Block] = []
    current = ""
    for raw in lines:
        line = clip(raw)
        if current and len(current) + 1 + len(line) > MAX_TEXT:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=current)))
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=current)))
    return blocks


def fit(text: str, blocks: Sequence[Block], header: str | None = None) -> list[Message]:
    """Split blocks into messages of at most 50 blocks, repeating the header on each."""
    head = [_header(header)] if header else []
    room = MAX_BLOCKS - len(head)
    chunks = [list(blocks[i : i + room]) for i in range(0, len(blocks), room)] or [[]]
    messages = []
    for number, chunk in enumerate(chunks):
        title = head
        if header and number:
            title = [_header(f"{header} (continued)")]
        messages.append(Message(clip(text), [b.to_dict() for b in [*title, *chunk]]))
    return messages


def reply_messages(reply: Reply) -> list[Message]:
    """Render any handler reply."""
    if isinstance(reply, StatusReply):
        return status_board(reply)
    if isinstance(reply, ListReply):
        return backup_list(reply)
    if isinstance(reply, AcceptedReply):
        return [accepted(reply)]
    if isinstance(reply, DrReply):
        from bot.dr_blocks import reply_messages as dr_messages  # builds on this module

        return dr_messages(reply)
    if isinstance(reply, CardReply | DecisionReply | AuditReply):
        from bot.approval_blocks import reply_messages as restore_messages  # builds on this module

        return restore_messages(reply)
    return [help_message(reply)]


def status_board(reply: StatusReply) -> list[Message]:
    """The compact board: a header with the objectives, one section per component."""
    objectives = reply.objectives
    header = (
        f"Backups · RPO {format_duration(objectives.rpo)} · RTO {format_duration(objectives.rto)}"
    )
    lines = [status_line(row, reply.now) for row in reply.rows]
    breached = [row.name for row in reply.rows if row.rpo_breached]
    text = f"{header}: " + (f"RPO breached for {', '.join(breached)}" if breached else "all fresh")
    if reply.drill:
        from bot.dr_blocks import drill_line  # builds on this module

        lines.append(drill_line(reply.drill))
    blocks = [SectionBlock(text=MarkdownTextObject(text=clip(line))) for line in lines]
    return fit(text, blocks, header)


def status_line(row: ComponentStatus, now: datetime) -> str:
    """One component: state mark, age, size, next due, last verified, WAL lag."""
    mark = MARKS[row.freshness]
    if row.freshness == Freshness.BREACHED:
        mark += f" (by {humanize(row.breached_by_seconds)})"
    last = row.last_backup
    if not row.built:
        return f"*{escape(row.name)}* ({row.kind}) {mark}\nnot scheduled until its engine lands"
    facts = [f"last good {when(row.recovery_point, now)}" if last else "no good backup"]
    if last:
        facts.append(size(last.size))
    if row.enabled and row.next_due is not None:
        overdue = last is not None and row.next_due <= now
        facts.append("due now" if overdue or last is None else f"next {when(row.next_due, now)}")
    record = row.last_verification
    facts.append(f"verified {verified(record, now)}" if record else "never verified")
    if row.kind == "postgres":
        lag = wal_archive_lag(row, now)
        facts.append(f"WAL lag {humanize(lag)}" if lag is not None else "no WAL archived")
    line = f"*{escape(row.name)}* ({row.kind}) {mark}\n" + " · ".join(facts)
    if row.unreachable:
        line += f"\n:x: {escape(row.unreachable)}"
    return line


def backup_list(reply: ListReply) -> list[Message]:
    """A component's newest backups, one line each."""
    header = f"{reply.component}: {len(reply.backups)} of {reply.total} backups"
    lines = []
    for item in reply.backups:
        checked = verified(item.verification) if item.verification else "never verified"
        lines.append(
            f"`{item.id}` · {item.kind} · {when(item.finished_at, reply.now)} · "
            f"{size(item.size)} · {checked}"
        )
    if not lines:
        lines = [f"no backups of {escape(reply.component)} yet"]
    return fit(header, sections(lines), header)


def accepted(reply: AcceptedReply) -> Message:
    """The ephemeral answer to a command that queued an operation."""
    again = " (already accepted; this was a retry)" if reply.repeated else ""
    line = (
        f":hourglass_flowing_sand: {escape(reply.description)} queued as `{reply.op_id}`{again}. "
        "Progress follows in this channel."
    )
    return Message(clip(line), [SectionBlock(text=MarkdownTextObject(text=clip(line))).to_dict()])


def help_message(reply: HelpReply) -> Message:
    """Usage lines of a command group."""
    lines = [f"`{usage}` — {summary}" for usage, summary in reply.lines]
    title = f"/{reply.group}" + (f" {reply.topic}" if reply.topic else "")
    return fit(f"{title} usage", sections(lines), f"{title} usage")[0]


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
    return Message(clip(text), [_section(line)])


def internal_error(op_id: str) -> Message:
    """What people see for a bug: an id to quote, never a traceback."""
    line = f":boom: internal error, operation `{op_id}`"
    return Message(f"internal error, operation {op_id}", [_section(line)])


def operation(view: OperationView, rto_seconds: float | None = None) -> Message:
    """The one message of an operation, as it stands (a restore's duration against the RTO)."""
    name = title(view)
    status = clip(stage_text(view, rto_seconds), 2000)
    line = f"{STAGE_MARKS[view.stage]} *{escape(name)}* — {escape(status)}"
    who = f" · requested by <@{view.chat.user}>" if view.chat.user else ""
    context = ContextBlock(elements=[MarkdownTextObject(text=clip(f"`{view.op_id}`{who}"))])
    blocks = [_section(line), context.to_dict()]
    hint = chat_hint(view)
    if view.stage == Stage.FAILED and hint:
        blocks.insert(1, _section(f"_{escape(hint)}_"))
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
    return Message(clip(line), [_section(line)])


def _section(text: str) -> dict[str, Any]:
    return SectionBlock(text=MarkdownTextObject(text=clip(text))).to_dict()


def _header(text: str) -> Block:
    return HeaderBlock(text=PlainTextObject(text=clip(text, MAX_HEADER)))
