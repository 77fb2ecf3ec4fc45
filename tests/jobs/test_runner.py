"""The job runner's policy: which failures retry, what a failure says, progress, redaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import redis as redis_lib
import structlog
from pydantic import SecretStr
from rq.timeouts import JobTimeoutException

from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import EngineError, IntegrityError, StorageError, StorageUnavailable
from workers.core.events import EventType
from workers.core.operations import OperationKind, OperationRequest
from workers.jobs.redaction import Redactor
from workers.jobs.runner import JobRun, describe_failure, is_transient
from workers.state.redis_state import RedisState


def test_only_transient_faults_are_retried() -> None:
    assert is_transient(StorageUnavailable("storage unreachable"))
    assert is_transient(ConnectionResetError())
    assert is_transient(redis_lib.exceptions.ConnectionError())
    assert not is_transient(IntegrityError("sha256 mismatch"))
    assert not is_transient(StorageError("access denied"))
    assert not is_transient(EngineError("pg_dump failed"))
    assert not is_transient(ValueError("bad input"))
    assert not is_transient(JobTimeoutException("too long"))


def test_failure_descriptions_are_one_line_without_tracebacks() -> None:
    error_class, message, hint = describe_failure(
        EngineError('pg_dump failed: database "x" does not exist\nmore', hint="log tail " * 100),
        "op-1",
    )
    assert error_class == "EngineError"
    assert message == 'pg_dump failed: database "x" does not exist'
    assert len(hint) <= 501 and hint.startswith("…")
    assert describe_failure(RuntimeError("boom at 0x7f"), "op-9") == (
        "InternalError",
        "internal error, operation op-9",
        "the worker log has the details",
    )
    assert describe_failure(JobTimeoutException(), "op-2")[0] == "Timeout"


def test_redactor_masks_configured_secrets_and_inline_passwords(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        **{
            "components.postgres.dsn": "host=db user=backup password=Sup3rS3cret dbname=x",
            "storage.secret_access_key": "AKIAVERYSECRETKEY",
        }
    )
    redact = Redactor.from_settings(settings)
    text = "connect host=db password=Sup3rS3cret failed; key AKIAVERYSECRETKEY; token=abc123"
    cleaned = redact(text)
    assert "Sup3rS3cret" not in cleaned and "AKIAVERYSECRETKEY" not in cleaned
    assert "abc123" not in cleaned
    assert "password=***" in cleaned
    assert (
        Redactor({"ab"})("ab stays: too short to be a secret")
        == "ab stays: too short to be a secret"
    )
    assert isinstance(settings.storage.secret_access_key, SecretStr)


def test_progress_is_coalesced_and_each_phase_ends_full(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    settings = make_settings(**{"redis.url": redis_url})
    ctx = Context(settings)
    state = RedisState(ctx.redis, settings.redis.key_prefix)
    request = OperationRequest(
        op_id="op-p",
        kind=OperationKind.BACKUP,
        component="postgres",
        requested_at=datetime.now(UTC),
    )
    run = JobRun(ctx, request, state, Redactor(set()), structlog.get_logger())
    for done in range(0, 1001, 10):  # 101 updates within far less than a second
        run.progress("dump app", done_bytes=done, total_bytes=1000)
    run.progress("dump globals")
    run.progress("dump globals", note="roles")
    events = [e for _id, e in state.read_events()]
    progress = [(e.phase, e.done_bytes, e.percent) for e in events if e.type == EventType.PROGRESS]
    assert progress == [
        ("dump app", 0, 0.0),
        ("dump app", 1000, 100.0),
        ("dump globals", None, None),
    ]
    notes = [e.note for e in events if e.type == EventType.NOTE]
    assert notes == ["roles"]


def test_default_timings_fail_abandoned_work_within_two_minutes(
    make_settings: Callable[..., Settings],
) -> None:
    jobs = make_settings().jobs
    # Worst case: the last beat just before death, then a full silence and a full tick.
    worst = jobs.heartbeat + jobs.abandoned_after + jobs.scheduler_tick
    assert worst.total_seconds() < 120
    # A live job must never look dead: several beats fit in the silence allowed.
    assert jobs.abandoned_after >= 3 * jobs.heartbeat
    assert jobs.lock_ttl > 2 * jobs.heartbeat and jobs.leader_ttl.total_seconds() <= 30
