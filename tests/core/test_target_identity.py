"""Whether a restore target is the live source, from what the servers said (no services)."""

from __future__ import annotations

from workers.core.errors import EngineError
from workers.core.restore_plan import RestorePlan, targets_live
from workers.core.target_identity import MAX_REASON, TargetIdentity

SOURCE = "host=10.0.0.5 port=5432 user=postgres dbname=postgres"
LIVE = {"app", "postgres"}
SAME = TargetIdentity.found(source="7001", target="7001")
OTHER = TargetIdentity.found(source="7001", target="9002")
DOWN = TargetIdentity.found(source="7001", target=EngineError("cannot connect to x: refused\nmore"))


def test_identity_not_spelling_decides_whether_a_dsn_is_the_live_source() -> None:
    disguised = "host=db.internal port=05432 dbname=app"
    assert not targets_live(disguised, source=SOURCE, live_databases=LIVE)
    assert targets_live(disguised, source=SOURCE, live_databases=LIVE, identity=SAME)
    assert targets_live("host=db.internal", source=SOURCE, live_databases=LIVE, identity=SAME)
    assert not targets_live(
        "host=db.internal dbname=app_copy", source=SOURCE, live_databases=LIVE, identity=SAME
    )
    # Spelled like the source, yet another server: the server's word wins.
    assert not targets_live(
        "host=10.0.0.5 dbname=app", source=SOURCE, live_databases=LIVE, identity=OTHER
    )


def test_when_a_server_does_not_answer_the_spelling_stands_in() -> None:
    assert targets_live(
        "host=10.0.0.5 dbname=app", source=SOURCE, live_databases=LIVE, identity=DOWN
    )
    assert not targets_live(
        "host=10.0.0.9 dbname=app", source=SOURCE, live_databases=LIVE, identity=DOWN
    )
    assert targets_live("app", source=SOURCE, live_databases=LIVE, identity=DOWN)


def test_labels_say_what_was_found_in_one_line() -> None:
    assert SAME.label() == "same server as the live source (system id 7001)"
    assert OTHER.label() == "other server (system id 9002)"
    assert DOWN.label() == "target unreachable at plan time: cannot connect to x: refused"
    source_down = TargetIdentity.found(source=EngineError("no route"), target="9002")
    assert source_down.reachable and source_down.same_server is None
    assert source_down.label() == "system id 9002; the live source did not answer: no route"


def test_the_digest_covers_the_identity_and_is_unchanged_without_one() -> None:
    plan = RestorePlan(component="postgres", backup_id="postgres-20261124T0200Z-7f3a", target="x")
    before = "f249407a6a85"  # its digest before identities were recorded
    assert plan.digest().startswith(before)
    assert plan.model_copy(update={"target_identity": SAME}).digest() != plan.digest()
    assert plan.model_copy(update={"target_identity": OTHER}).digest() != (
        plan.model_copy(update={"target_identity": SAME}).digest()
    )


def test_found_keeps_each_answer_and_the_first_problem_in_one_line() -> None:
    assert TargetIdentity(target_id="7001", source_id="7001", reason="") == SAME
    assert (
        TargetIdentity(target_id=None, source_id="7001", reason="cannot connect to x: refused")
        == DOWN
    )
    silent = TargetIdentity.found(source=EngineError("source down"), target="9002")
    assert silent == TargetIdentity(target_id="9002", source_id=None, reason="source down")
    both = TargetIdentity.found(source=EngineError("source down"), target=EngineError("  \n "))
    assert both == TargetIdentity(target_id=None, source_id=None, reason="no answer")


def test_a_long_reason_is_cut_to_the_limit_with_an_ellipsis() -> None:
    fits = "x" * MAX_REASON
    assert TargetIdentity.found(source="1", target=EngineError(fits)).reason == fits
    cut = TargetIdentity.found(source="1", target=EngineError(fits + "y")).reason
    assert cut == "x" * (MAX_REASON - 1) + "…" and len(cut) == MAX_REASON


def test_found_is_decided_at_each_call_from_both_answers() -> None:
    # Built here, not at import: each answer's own field, the reason empty when both answered.
    assert TargetIdentity.found(source="7001", target="9002") == TargetIdentity(
        target_id="9002", source_id="7001", reason=""
    )
    same = TargetIdentity.found(source="7001", target="7001")
    assert (same.reachable, same.same_server, same.reason) == (True, True, "")
    assert same.label() == "same server as the live source (system id 7001)"
    down = TargetIdentity.found(source="7001", target=EngineError("refused"))
    assert down == TargetIdentity(target_id=None, source_id="7001", reason="refused")
    assert (down.reachable, down.same_server) == (False, None)
    # The target's problem is the one told when neither answered.
    both = TargetIdentity.found(source=EngineError("source down"), target=EngineError("refused"))
    assert both.reason == "refused"
