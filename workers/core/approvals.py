"""Two-person restores: the plan and its digest, the request state machine, signed approvals.

A request moves through these states; every arrow is a pure function here, applied by the
store under an atomic compare-and-set::

    pending ──approve×N──> approved ──consume──> executed
       │ ├──deny────────> denied        └──refuse──> refused
       │ └──(time)──────> expired
    (break-glass) ──────> approved (signed by an incident commander, reviewed afterwards)

The approval is an HMAC-SHA256 over the plan's digest with a key the bot and workers share
through configuration; Redis only ever holds the signature, so a record written there by
hand does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator

from workers.core.errors import ConflictError, KosmosError, PermissionDenied, UsageError
from workers.core.events import ChatContext
from workers.core.model import Model
from workers.core.restore_plan import RestorePlan, canonical_json, plan_mismatch
from workers.core.restore_plan import utc as _utc

APPROVERS = "approvers"
INCIDENT_COMMANDERS = "incident_commanders"
_SIGN_DOMAIN = b"kosmos-approval/v1\n"


class _Frozen(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MissingRole(PermissionDenied):
    """The person does not hold the role the step needs (audited as a role refusal)."""


class RequestState(StrEnum):
    """Where a restore request stands."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    EXECUTED = "executed"
    REFUSED = "refused"


class Verdict(StrEnum):
    """What one person decided."""

    APPROVE = "approve"
    DENY = "deny"
    REVIEW = "review"


class Decision(_Frozen):
    """One person's approval, denial or post-hoc review, with when and how."""

    user: str
    verdict: Verdict
    at: datetime
    reason: str = ""
    via: str = "slack"

    _at = field_validator("at")(_utc)


class BackupFacts(_Frozen):
    """What the card shows about the backup being restored."""

    kind: str
    finished_at: datetime
    size: int
    verification: Literal["passed", "failed"] | None = None
    verified_at: datetime | None = None
    deep: bool = Field(default=False, description="the verdict came from a deep verification")
    dry_run: tuple[str, ...] = Field(
        default=(), description="what a dry run of the plan found (counts, never values)"
    )

    _at = field_validator("finished_at")(_utc)


class _Signed(_Frozen):
    approval_id: str
    request_id: str
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    requester: str
    issued_at: datetime
    expires_at: datetime
    signature: str = ""

    _issued = field_validator("issued_at")(_utc)
    _expires = field_validator("expires_at")(_utc)

    def payload(self) -> bytes:
        """The signed bytes: every field but the signature, the kind included."""
        return _SIGN_DOMAIN + canonical_json(self.model_dump(mode="json", exclude={"signature"}))


class Approval(_Signed):
    """Two-person approval: the requester plus ``approvers``, bound to one plan digest."""

    kind: Literal["approval"] = "approval"
    approvers: tuple[str, ...]


class BreakGlass(_Signed):
    """An incident commander's lone authorization, announced and reviewed afterwards."""

    kind: Literal["break-glass"] = "break-glass"
    commander: str
    reason: str


SignedRecord = Annotated[Approval | BreakGlass, Field(discriminator="kind")]


def sign(record: Approval | BreakGlass, key: bytes) -> Approval | BreakGlass:
    """The record with its HMAC-SHA256 signature set."""
    mac = hmac.new(key, record.payload(), hashlib.sha256).hexdigest()
    return record.model_copy(update={"signature": mac})


def signature_valid(record: Approval | BreakGlass, key: bytes) -> bool:
    """Whether the record's signature is the one ``key`` makes (constant-time compare)."""
    expected = hmac.new(key, record.payload(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, record.signature)


class ApprovalRequest(_Frozen):
    """One restore request: the plan, who asked and why, and every decision on it."""

    id: str
    plan: RestorePlan
    digest: str
    requester: str
    reason: str
    created_at: datetime
    expires_at: datetime
    required: int = Field(ge=1, description="approvers needed besides the requester")
    state: RequestState = RequestState.PENDING
    decisions: tuple[Decision, ...] = ()
    backup: BackupFacts | None = None
    chat: ChatContext = ChatContext()
    card_channel: str | None = None
    card_ts: str | None = None
    break_glass: bool = False
    approval: SignedRecord | None = None
    op_id: str | None = None
    closed_at: datetime | None = None
    note: str = Field(default="", description="why it was refused or expired")
    outcome: dict[str, Any] = Field(default_factory=dict, description="the restore's summary")
    review: Decision | None = None
    reminded_at: datetime | None = None

    _created = field_validator("created_at")(_utc)
    _expires = field_validator("expires_at")(_utc)
    _closed = field_validator("closed_at")(_utc)
    _reminded = field_validator("reminded_at")(_utc)

    @property
    def approvers(self) -> list[str]:
        """Who approved so far."""
        return [d.user for d in self.decisions if d.verdict == Verdict.APPROVE]

    @property
    def denial(self) -> Decision | None:
        """The denial, if any."""
        return next((d for d in self.decisions if d.verdict == Verdict.DENY), None)

    @property
    def awaiting_review(self) -> bool:
        """A break-glass restore nobody has reviewed yet."""
        return self.break_glass and self.review is None


class Transition(Model):
    """What a decision did: the request to store, and the refusal to report (if any)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    request: ApprovalRequest
    changed: bool
    error: KosmosError | None = None


def new_request_id(now: datetime) -> str:
    """A request id such as ``rr-20261124T0300Z-a1b2c3``: short, sortable, quotable."""
    return f"rr-{now.astimezone(UTC).strftime('%Y%m%dT%H%MZ')}-{secrets.token_hex(3)}"


def open_request(
    plan: RestorePlan,
    *,
    requester: str,
    reason: str,
    now: datetime,
    ttl: timedelta,
    required: int,
    backup: BackupFacts | None = None,
    chat: ChatContext | None = None,
    request_id: str | None = None,
) -> ApprovalRequest:
    """A new pending request; the reason is required."""
    if not reason.strip():
        raise UsageError(
            "a restore needs a reason", hint="/restore <component> <backup|latest> -- <reason>"
        )
    return ApprovalRequest(
        id=request_id or new_request_id(now),
        plan=plan,
        digest=plan.digest(),
        requester=requester,
        reason=reason.strip(),
        created_at=now,
        expires_at=now + ttl,
        required=required,
        backup=backup,
        chat=chat or ChatContext(),
    )


def expire_if_due(request: ApprovalRequest, now: datetime) -> ApprovalRequest:
    """The request, marked expired when it is still pending past its deadline."""
    if request.state == RequestState.PENDING and now >= request.expires_at:
        return request.model_copy(
            update={"state": RequestState.EXPIRED, "closed_at": now, "note": "no decision in time"}
        )
    return request


def decide(
    request: ApprovalRequest,
    *,
    user: str,
    verdict: Verdict,
    holds_approver_role: bool,
    now: datetime,
    key: bytes,
    ttl: timedelta,
    reason: str = "",
    via: str = "slack",
) -> Transition:
    """Apply one approve or deny click; the rules are all enforced here, never by the UI."""
    expired = expire_if_due(request, now)
    if expired is not request:
        return Transition(
            request=expired,
            changed=True,
            error=PermissionDenied(
                f"restore request {request.id} expired at {_hhmm(request.expires_at)}",
                hint="ask for the restore again",
            ),
        )
    refusal = _refusal(request, user, verdict, holds_approver_role, reason)
    if refusal is not None:
        return Transition(request=request, changed=False, error=refusal)
    decision = Decision(user=user, verdict=verdict, at=now, reason=reason.strip(), via=via)
    decisions = (*request.decisions, decision)
    if verdict == Verdict.DENY:
        update: dict[str, Any] = {"state": RequestState.DENIED, "closed_at": now}
    elif len({d.user for d in decisions if d.verdict == Verdict.APPROVE}) >= request.required:
        approvers = tuple(d.user for d in decisions if d.verdict == Verdict.APPROVE)
        record = Approval(
            approval_id=f"ap-{secrets.token_hex(8)}",
            request_id=request.id,
            digest=request.digest,
            requester=request.requester,
            issued_at=now,
            expires_at=now + ttl,
            approvers=approvers,
        )
        update = {"state": RequestState.APPROVED, "approval": sign(record, key)}
    else:
        update = {}
    changed = request.model_copy(update={"decisions": decisions, **update})
    return Transition(request=changed, changed=True)


def _refusal(
    request: ApprovalRequest, user: str, verdict: Verdict, holds_role: bool, reason: str
) -> KosmosError | None:
    if request.state != RequestState.PENDING:
        return ConflictError(
            f"restore request {request.id} is already {request.state.value}",
            hint=_decided_by(request),
        )
    if verdict == Verdict.DENY:
        if not reason.strip():
            return UsageError("a denial needs a reason", hint=f"deny {request.id} --reason …")
        if not holds_role and user != request.requester:
            return MissingRole(
                "only an approver (or the requester, to withdraw) may deny a restore",
                hint="approvers are listed in slack.roles.approvers",
            )
        return None
    if verdict != Verdict.APPROVE:
        return UsageError(f"{verdict.value} is not a decision on a pending request")
    if user == request.requester:
        return PermissionDenied(
            "you asked for this restore, so you cannot approve it",
            hint="a different member of the approvers group must approve",
        )
    if not holds_role:
        return MissingRole(
            "only members of the approvers group may approve a restore",
            hint="approvers are listed in slack.roles.approvers",
        )
    if user in request.approvers:
        waiting = request.required - len(set(request.approvers))
        return ConflictError(
            "you already approved this restore", hint=f"waiting for {waiting} more approver(s)"
        )
    return None


def _decided_by(request: ApprovalRequest) -> str:
    if request.denial is not None:
        return f"denied by {request.denial.user}: {request.denial.reason}"
    if request.approvers:
        return "approved by " + ", ".join(request.approvers)
    return request.note


def _hhmm(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%H:%M UTC")


def authorize(
    request: ApprovalRequest, *, key: bytes, plan: RestorePlan, now: datetime
) -> Approval | BreakGlass:
    """The request's signed approval if it lets exactly ``plan`` run now; else PermissionDenied."""
    record = request.approval
    if request.state in (RequestState.EXECUTED, RequestState.REFUSED):
        spent = "used" if request.state == RequestState.EXECUTED else "refused"
        raise PermissionDenied(
            f"the approval of {request.id} was already {spent}",
            hint="an approval runs one restore, once; ask again",
        )
    if request.state != RequestState.APPROVED or record is None:
        raise PermissionDenied(
            f"restore request {request.id} is {request.state.value}, not approved",
            hint="a restore runs only after a second person approves it",
        )
    if record.request_id != request.id or not signature_valid(record, key):
        raise PermissionDenied(
            f"the approval of {request.id} does not carry a valid signature",
            hint="it was not made with this deployment's approval_key; ask again",
        )
    if record.digest != plan.digest():
        raise plan_mismatch(request.id, request.plan, plan)
    if now >= record.expires_at:
        raise PermissionDenied(
            f"the approval of {request.id} expired at {_hhmm(record.expires_at)}",
            hint="ask for the restore again",
        )
    return record


def consume(request: ApprovalRequest, *, op_id: str, now: datetime) -> ApprovalRequest:
    """The request marked executed by operation ``op_id``: its approval is now spent."""
    return request.model_copy(
        update={"state": RequestState.EXECUTED, "op_id": op_id, "closed_at": now}
    )


def refuse(request: ApprovalRequest, *, note: str, now: datetime) -> ApprovalRequest:
    """The approved request burned after the worker refused its job; it can never run.

    Only an approved request is burned: a job that names a pending request was never
    approved, and letting it close the request would let anyone who can write to the
    queue kill a legitimate request before its approver gets to it.
    """
    if request.state != RequestState.APPROVED:
        return request
    return request.model_copy(
        update={"state": RequestState.REFUSED, "closed_at": now, "note": note}
    )


def record_outcome(request: ApprovalRequest, outcome: dict[str, Any]) -> ApprovalRequest:
    """The executed request with its restore's result summary (for the final card)."""
    return request.model_copy(update={"outcome": dict(outcome)})
