"""Block Kit for ``/backup``: the status board, a backup list, an accepted command, help."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

from bot.blocks.message import Message, fit, sections
from bot.formats import size, verified, when
from bot.mrkdwn import clip, escape
from bot.replies.backup import AcceptedReply, HelpReply, ListReply, StatusReply
from bot.replies.runbook import drill_line
from workers import engine
from workers.core.catalog import ComponentStatus, Freshness
from workers.core.durations import format_duration, humanize

MARKS = {
    Freshness.FRESH: ":large_green_circle: fresh",
    Freshness.AGING: ":large_yellow_circle: aging",
    Freshness.BREACHED: ":red_circle: RPO breached",
    Freshness.NEVER: ":white_circle: never backed up",
    Freshness.DISABLED: ":heavy_minus_sign: disabled",
    Freshness.NOT_BUILT: ":construction: not built yet",
}


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
    facts += [fact.short for fact in engine.status_facts(row, now)]
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
