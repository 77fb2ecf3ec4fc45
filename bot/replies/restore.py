"""What the restore handlers answer, and the facts a restore card shows, as plain data.

Slack renders these with ``bot.blocks.restore``; the console and the CLI print ``lines()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.formats import size
from workers.core.approvals import ApprovalRequest, BackupFacts, RequestState
from workers.core.audit import AuditRecord
from workers.core.durations import humanize

USER_START, USER_END = "\x01", "\x02"
"""Around a user id in card text: Slack renders it as a mention, plain text drops them."""

STATE_MARKS = {
    RequestState.PENDING: "awaiting approval",
    RequestState.APPROVED: "approved",
    RequestState.DENIED: "denied",
    RequestState.EXPIRED: "expired",
    RequestState.EXECUTED: "restoring",
    RequestState.REFUSED: "refused by the worker",
}


@dataclass(frozen=True)
class CardFacts:
    """Everything a card says, before any markup."""

    title: str
    facts: list[tuple[str, str]]
    warnings: list[str]
    status: list[str]
    results: list[str] = field(default_factory=list)
    open_for_decision: bool = False


@dataclass(frozen=True)
class CardReply:
    """A request was opened (or broke glass): its card goes to the channel."""

    request: ApprovalRequest
    now: datetime
    rto_seconds: float
    notice: str
    repeated: bool = False

    def lines(self) -> list[str]:
        """The card as plain lines."""
        return [self.notice, *plain(card_facts(self.request, self.now, self.rto_seconds))]


@dataclass(frozen=True)
class DecisionReply:
    """A decision or review was recorded (or refused); the card is updated in place."""

    request: ApprovalRequest
    now: datetime
    rto_seconds: float
    notice: str

    def lines(self) -> list[str]:
        """The notice and the card as it stands."""
        return [self.notice, *plain(card_facts(self.request, self.now, self.rto_seconds))]


@dataclass(frozen=True)
class AuditReply:
    """The newest audit records, oldest first."""

    records: list[AuditRecord]
    now: datetime

    def lines(self) -> list[str]:
        """One line per record."""
        return [audit_line(r, self.now) for r in self.records] or ["the audit log is empty"]


RestoreReply = CardReply | DecisionReply | AuditReply


def card_facts(request: ApprovalRequest, now: datetime, rto_seconds: float) -> CardFacts:
    """The card of ``request`` as it stands at ``now``."""
    plan, backup = request.plan, request.backup
    facts = [("Component", plan.component)]
    if backup is not None:
        age = humanize((now - backup.finished_at).total_seconds())
        facts.append(("Backup", f"{plan.backup_id} ({age} old, {size(backup.size)})"))
        if backup.verification is not None:  # never verified: the warning below says so
            facts.append(("Verified", verified_fact(backup, now)))
    else:
        facts.append(("Backup", plan.backup_id))
    point = plan.point or (backup.finished_at if backup else None)
    shown = _stamp(point) if point else "the end of the backup"
    facts.append(("Restore point", shown + ("" if plan.point else " (end of the backup)")))
    target = plan.target_label() + (" (IN PLACE: overwrites live data)" if plan.in_place else "")
    facts.append(("Target", target))
    if plan.target_identity is not None:
        facts.append(("Target server", plan.target_identity.label()))
    if plan.database:
        facts.append(("Database", plan.database))
    facts += [("Requested by", user_ref(request.requester)), ("Reason", request.reason)]
    facts.append(("Request", request.id))
    if backup is not None and backup.dry_run:
        facts.append(("Dry run", "\n".join(backup.dry_run)))
    warnings = []
    if plan.target_identity is not None and not plan.target_identity.reachable:
        warnings.append("The target did not answer at plan time; the worker asks again first.")
    if backup is not None and backup.verification is None:
        warnings.append("This backup was never verified.")
    elif backup is not None and backup.verification == "failed":
        depth = "deep verification" if backup.deep else "last verification"
        warnings.append(f"This backup FAILED its {depth}.")
    title = f"Restore {plan.component} {plan.backup_id}"
    if request.break_glass:
        title = f"BREAK-GLASS restore of {plan.component} by {request.requester}"
    return CardFacts(
        title=title,
        facts=facts,
        warnings=warnings,
        status=status_lines(request, now),
        results=result_lines(request.outcome, rto_seconds),
        open_for_decision=request.state == RequestState.PENDING and now < request.expires_at,
    )


def verified_fact(backup: BackupFacts, now: datetime) -> str:
    """``passed, deep: restored and compared (2h ago)``: the verdict the backup is judged by."""
    if backup.verification is None:
        return "never"
    how = "deep: restored and compared" if backup.deep else "checksums and archives"
    if backup.verified_at is not None:
        how += f", {humanize((now - backup.verified_at).total_seconds())} ago"
    return f"{backup.verification} ({how})"


def status_lines(request: ApprovalRequest, now: datetime) -> list[str]:
    """Where the request stands: votes, decision, expiry, review."""
    lines = []
    state = request.state
    if state == RequestState.PENDING and now >= request.expires_at:
        lines.append(f"Expired at {_stamp(request.expires_at)}: no decision in time.")
    elif state == RequestState.PENDING:
        got = len(request.approvers)
        left = humanize((request.expires_at - now).total_seconds())
        lines.append(
            f"Awaiting approval: {got} of {request.required} approver(s); "
            f"expires {_stamp(request.expires_at)} (in {left})."
        )
    elif state == RequestState.DENIED and request.denial is not None:
        lines.append(f"Denied by {user_ref(request.denial.user)}: {request.denial.reason}")
    elif state == RequestState.EXPIRED:
        lines.append(f"Expired at {_stamp(request.expires_at)}: no decision in time.")
    elif state == RequestState.REFUSED:
        lines.append(f"Refused by the worker: {request.note}")
    if request.approvers and not request.break_glass:
        lines.append("Approved by " + ", ".join(map(user_ref, request.approvers)) + ".")
    if state in (RequestState.APPROVED, RequestState.EXECUTED) and request.op_id:
        running = "queued" if state == RequestState.APPROVED else "running"
        if request.outcome:
            running = "finished" if request.outcome.get("ok") else "failed"
        lines.append(f"Restore {request.op_id}: {running}.")
    if request.break_glass:
        if request.review is None:
            lines.append(
                f"Review required: an approver runs /restore review {request.id} -- <notes>"
            )
        else:
            lines.append(f"Reviewed by {user_ref(request.review.user)}: {request.review.reason}")
    return lines


def result_lines(outcome: dict[str, Any], rto_seconds: float) -> list[str]:
    """The restore's verification results and its duration against the RTO."""
    if not outcome:
        return []
    if not outcome.get("ok"):
        return [f"Restore failed: {outcome.get('error', 'see the thread')}"]
    summary = outcome.get("summary") or {}
    lines = []
    for item in summary.get("databases", []):
        match = "checksums match" if item.get("checksums_matched") else "CHECKSUMS DIFFER"
        where = f"{item.get('source_database')} -> {item.get('database')}"
        lines.append(f"{where}: {item.get('tables')} tables, {item.get('rows')} rows, {match}")
        lines += [f"  {line}" for line in item.get("mismatches", [])[:10]]
    if summary.get("summary"):  # an engine's own one-line summary and lines (never values)
        lines.append(str(summary["summary"]))
    lines += [str(line) for line in summary.get("lines", [])[:20]]
    seconds = summary.get("duration_seconds")
    if isinstance(seconds, int | float):
        share = 100.0 * seconds / rto_seconds if rto_seconds else 0.0
        lines.append(
            f"Took {humanize(seconds) if seconds >= 1 else f'{seconds:.1f}s'} "
            f"against an RTO of {humanize(rto_seconds)} ({share:.1f}% of it)."
        )
    if "checksums_matched" in summary:
        verdict = "all checksums match" if summary["checksums_matched"] else "checksums DIFFER"
        lines.append(f"Verification: {verdict}.")
    return lines


def audit_line(record: AuditRecord, now: datetime) -> str:
    """One audit record for people."""
    details = ", ".join(
        f"{k}={v}" for k, v in sorted(record.details.items()) if v not in (None, "", [], {})
    )
    subject = f" {record.subject}" if record.subject else ""
    age = humanize((now - record.at).total_seconds())
    line = f"#{record.seq} {_stamp(record.at)} ({age} ago) {record.action.value}{subject}"
    return f"{line} by {record.actor}" + (f": {details}" if details else "")


def user_ref(user: str) -> str:
    """A user id marked for rendering (a mention in Slack, the id elsewhere)."""
    return f"{USER_START}{user}{USER_END}"


def unmark(text: str) -> str:
    """Text with user marks removed (plain rendering)."""
    return text.replace(USER_START, "").replace(USER_END, "")


def plain(card: CardFacts) -> list[str]:
    """A card as plain text lines."""
    lines = [card.title, *(f"  {label}: {value}" for label, value in card.facts)]
    lines += [f"  ! {warning}" for warning in card.warnings]
    return [unmark(line) for line in lines + [f"  {line}" for line in card.status + card.results]]


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
