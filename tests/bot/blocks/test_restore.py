"""The restore approval card, without services."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.blocks.restore import APPROVE_ACTION, card, reason_of
from workers.core.approvals import BackupFacts, Verdict, decide, open_request
from workers.core.restore_plan import RestorePlan

COMPONENTS = ["postgres", "minio"]
RID = "rr-20261124T0300Z-a1b2c3"
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def test_card_shows_the_plan_and_loses_its_buttons_once_decided() -> None:
    plan = RestorePlan(component="postgres", backup_id="postgres-20261124T0200Z-7f3a", target="a")
    facts = BackupFacts(kind="postgres-logical", finished_at=T0 - timedelta(hours=3), size=2048)
    request = open_request(
        plan,
        requester="UALICE",
        reason="<drill>",
        now=T0,
        ttl=timedelta(minutes=30),
        required=1,
        backup=facts,
    )
    pending = json.dumps(card(request, T0, 14400).blocks)
    for shown in ("3h old", "<@UALICE>", "&lt;drill&gt;", "never verified", APPROVE_ACTION):
        assert shown in pending
    denied = decide(
        request,
        user="UBOB",
        verdict=Verdict.DENY,
        holds_approver_role=True,
        now=T0,
        key=b"k",
        ttl=timedelta(minutes=30),
        reason="no",
    ).request
    shown = json.dumps(card(denied, T0, 14400).blocks)
    assert "Denied by <@UBOB>: no" in shown and APPROVE_ACTION not in shown
    expired = json.dumps(card(request, T0 + timedelta(hours=1), 14400).blocks)
    assert "Expired at" in expired and APPROVE_ACTION not in expired
    click = {"state": {"values": {"restore_reason": {"reason": {"value": "  typed  "}}}}}
    assert reason_of(click) == "typed" and reason_of({}) == ""
