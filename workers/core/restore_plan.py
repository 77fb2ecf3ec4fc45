"""The restore plan: exactly what a restore will do, its canonical digest, and its checks."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import ConfigDict, Field, ValidationError, field_validator

from workers.core.errors import PermissionDenied, UsageError
from workers.core.model import Model
from workers.core.operations import ENGINE_TARGET, PostgresRestoreOptions, RestoreParams
from workers.core.target_identity import TargetIdentity

_PLAN_DOMAIN = b"kosmos-restore-plan/v1\n"
_KEYWORD = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")
_SAME_HOST = {"", "localhost", "127.0.0.1", "::1"}
MAX_DATABASE_BYTES = 63
"""PostgreSQL's NAMEDATALEN - 1: the longest name, in bytes, it keeps as it is."""


def canonical_json(data: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8 (what digests are taken over)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def utc(value: datetime | None) -> datetime | None:
    """A timezone-aware datetime in UTC (naive ones are refused), or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a timezone")
    return value.astimezone(UTC)


class RestorePlan(Model):
    """Exactly what a restore will do; an approval covers its digest and nothing else."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    component: str
    backup_id: str
    target: str = Field(min_length=1, description="a new database/instance name, or a DSN")
    database: str | None = Field(default=None, description="which database of the backup")
    point: datetime | None = Field(default=None, description="--to: the restore point")
    in_place: bool = False
    base: bool = Field(default=False, description="PITR from a base backup; target is a data dir")
    port: int | None = Field(default=None, ge=1, le=65535, description="PITR: the new port")
    with_globals: bool = False
    options: dict[str, str | bool] = Field(
        default_factory=dict,
        description="the engine's own restore options (e.g. the environment secrets go to)",
    )
    target_identity: TargetIdentity | None = Field(
        default=None, description="which server the target was at plan time (not a job param)"
    )

    _point = field_validator("point")(utc)

    def canonical(self) -> bytes:
        """The plan's canonical bytes (a plan without an identity digests as it always did)."""
        data = self.model_dump(mode="json")
        if data["target_identity"] is None:
            del data["target_identity"]
        if not data["options"]:
            del data["options"]  # plans without engine options digest as they always did
        return canonical_json(data)

    def digest(self) -> str:
        """sha256 of the canonical plan, hex."""
        return hashlib.sha256(_PLAN_DOMAIN + self.canonical()).hexdigest()

    def params(self) -> dict[str, Any]:
        """The plan as JSON-only job parameters."""
        return self.model_dump(mode="json")

    @property
    def target_is_dsn(self) -> bool:
        """Whether the target is a connection string rather than a new database's name."""
        return is_dsn(self.target)

    def target_label(self) -> str:
        """The target for people: a DSN without its password."""
        return redact_target(self.target)


def check_database_name(name: str) -> None:
    """UsageError unless PostgreSQL keeps ``name`` as it is: 1 to 63 bytes of UTF-8, no NUL."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if "\x00" in name or not 0 < size <= MAX_DATABASE_BYTES:
        # A longer name is cut short by the server, even mid-character: the restore would
        # land in (and then look for) a database of another name.
        raise UsageError(
            f"{name[:80]!r} is not a database name PostgreSQL keeps as it is ({size} bytes)",
            hint=f"choose a target name of 1 to {MAX_DATABASE_BYTES} bytes (UTF-8), without NUL",
        )


def database_name_with(database: str, suffix: str) -> str:
    """``database`` then ``suffix``, the name cut (never mid-character) to fit 63 bytes."""
    room = MAX_DATABASE_BYTES - len(suffix.encode())
    return database.encode()[:room].decode("utf-8", "ignore") + suffix


def is_dsn(target: str) -> bool:
    """A libpq keyword/value string or a URI, as opposed to a plain name."""
    return "=" in target or "://" in target


def target_fields(target: str) -> dict[str, str]:
    """host, port, dbname, user of a DSN (libpq keyword/value or URI); a name gives dbname."""
    if not is_dsn(target):
        return {"dbname": target}
    if "://" in target:
        parts = urlsplit(target)
        found = {
            "host": parts.hostname or "",
            "port": str(parts.port or ""),
            "dbname": unquote(parts.path.lstrip("/")),
            "user": unquote(parts.username or ""),
        }
        return {k: v for k, v in found.items() if v}
    fields = {}
    for match in _KEYWORD.finditer(target):
        value = match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        fields[match.group(1).lower()] = value
    fields.pop("password", None)
    return fields


def has_password(target: str) -> bool:
    """Whether a DSN carries a password (keyword ``password=`` or a URI's ``user:pw@``)."""
    if not is_dsn(target):
        return False
    if "://" in target:
        return urlsplit(target).password is not None
    return any(m.group(1).lower() == "password" for m in _KEYWORD.finditer(target))


def redact_target(target: str) -> str:
    """A DSN as ``user@host:port/db`` (no password); a name as itself."""
    if not is_dsn(target):
        return target
    fields = target_fields(target)
    who = f"{fields['user']}@" if fields.get("user") else ""
    where = fields.get("host", "localhost") + (f":{fields['port']}" if fields.get("port") else "")
    return f"{who}{where}/{fields.get('dbname', '')}"


def same_server(target: str, source: str) -> bool:
    """Whether a target (name or DSN) points at the source DSN's server (a name always does)."""
    if not is_dsn(target):
        return True
    mine, theirs = target_fields(target), target_fields(source)

    def key(fields: dict[str, str]) -> tuple[str, str]:
        host = fields.get("host", "")
        host = "localhost" if host in _SAME_HOST or host.startswith("/") else host
        return host, fields.get("port") or "5432"

    return key(mine) == key(theirs)


def targets_live(
    target: str,
    *,
    source: str,
    live_databases: Collection[str],
    identity: TargetIdentity | None = None,
) -> bool:
    """Whether restoring to ``target`` would overwrite a live database of ``source``.

    The servers' identity decides whether the target is the source's server; the spelling
    stands in only when one of them did not answer (a target written like the source is
    the source). A DSN without a database name puts every dump under its own name, so it
    is live whenever it is the source's server.
    """
    same = identity.same_server if identity is not None else None
    if same is None:
        same = same_server(target, source)
    dbname = target_fields(target).get("dbname")
    return same and (dbname is None or dbname in live_databases)


def check_plan(
    plan: RestorePlan,
    *,
    live: bool,
    window: tuple[datetime, datetime] | None,
) -> None:
    """Refuse a plan that overwrites the live source without --in-place, or misses the window."""
    if live and not plan.in_place:
        raise UsageError(
            f"target {plan.target_label()} is the live source",
            hint="restore into a new name with --target NAME, or say --in-place deliberately",
        )
    if plan.in_place and not live:
        raise UsageError(
            f"--in-place given but {plan.target_label()} is not the live source",
            hint="drop --in-place to restore into a new database",
        )
    if plan.point is None:
        return
    if window is None:
        raise UsageError(
            f"{plan.backup_id} cannot be restored to a chosen time",
            hint="--to needs continuous archiving (a base backup with its WAL)",
        )
    start, end = window
    if not start <= plan.point <= end:
        raise UsageError(
            f"--to {_stamp(plan.point)} is outside the recoverable window",
            hint=f"choose a time between {_stamp(start)} and {_stamp(end)}",
        )


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def job_params(plan: RestorePlan) -> RestoreParams:
    """The restore job's parameters that carry out exactly ``plan`` (no approval attached)."""
    if plan.options:
        return RestoreParams(
            backup=plan.backup_id, engine_options={ENGINE_TARGET: plan.target, **plan.options}
        )
    if plan.base:
        options = PostgresRestoreOptions(
            base=True, data_dir=plan.target, target_time=plan.point, port=plan.port
        )
    else:
        options = PostgresRestoreOptions(
            target_database=None if plan.target_is_dsn else plan.target,
            target_dsn=plan.target if plan.target_is_dsn else None,
            database=plan.database or None,
            in_place=plan.in_place,
            with_globals=plan.with_globals,
        )
    return RestoreParams(backup=plan.backup_id, options=options)


def plan_from_params(component: str, params: RestoreParams) -> RestorePlan:
    """The plan a restore job's parameters would carry out; PermissionDenied if none would."""
    if params.engine_options:
        return _engine_plan(component, params)
    options = params.options
    target = options.data_dir if options.base else options.target_dsn or options.target_database
    try:
        plan = RestorePlan(
            component=component,
            backup_id=params.backup,
            target=target or "",
            database=options.database,
            point=options.target_time,
            in_place=options.in_place,
            base=options.base,
            port=options.port,
            with_globals=options.with_globals,
        )
    except ValidationError as exc:
        raise PermissionDenied(
            f"the restore job's parameters describe no plan ({exc.errors()[0]['loc'][0]})",
            hint="restores are enqueued only by an approved request",
        ) from None
    expected = job_params(plan).options
    extra = sorted(
        name
        for name in PostgresRestoreOptions.model_fields
        if getattr(options, name) != getattr(expected, name)
    )
    if extra:
        raise PermissionDenied(
            f"the restore job carries parameters no approval covers: {', '.join(extra)}",
            hint="restores are enqueued only by an approved request",
        )
    return plan


def _engine_plan(component: str, params: RestoreParams) -> RestorePlan:
    """The plan of a job that carries an engine's own options (and nothing else)."""
    options = dict(params.engine_options)
    target = options.pop(ENGINE_TARGET, "")
    try:
        plan = RestorePlan(
            component=component, backup_id=params.backup, target=str(target), options=options
        )
    except ValidationError as exc:
        raise PermissionDenied(
            f"the restore job's parameters describe no plan ({exc.errors()[0]['loc'][0]})",
            hint="restores are enqueued only by an approved request",
        ) from None
    # The options themselves become the plan, which the worker compares with the approved
    # one; what must not ride along is anything else.
    if params.options != PostgresRestoreOptions():
        raise PermissionDenied(
            "the restore job carries parameters no approval covers",
            hint="restores are enqueued only by an approved request",
        )
    return plan


PLAN_FIELDS = (
    "component",
    "backup_id",
    "target",
    "database",
    "point",
    "in_place",
    "base",
    "port",
    "with_globals",
    "options",
)
"""What a plan says about the restore (its target's identity is what plan time found)."""


def differing(one: RestorePlan, other: RestorePlan) -> list[str]:
    """The fields in which two plans differ."""
    return [name for name in PLAN_FIELDS if getattr(one, name) != getattr(other, name)]


def lost_in_job(plan: RestorePlan) -> list[str]:
    """Fields of ``plan`` its restore job would not carry out (a port for a dump, …).

    The worker rebuilds the plan from the job's parameters: a field they do not carry makes
    that plan differ from the approved one, and the worker refuses it. Such a plan must be
    refused before anyone approves it.
    """
    return differing(plan, plan_from_params(plan.component, job_params(plan)))


def plan_mismatch(request_id: str, approved: RestorePlan, job: RestorePlan) -> PermissionDenied:
    """Why the worker refuses a job whose plan is not the approved one, said plainly.

    When the job carries exactly the parameters the approved plan gives, nobody changed
    anything: the plan held a field no job can carry, and kosmos-backup says it was its own
    doing. Otherwise the job was not made from the request as approved.
    """
    fields = ", ".join(differing(approved, job)) or "the target's identity"
    if job_params(approved) == job_params(job):
        return PermissionDenied(
            f"kosmos-backup cannot carry out the approved plan of {request_id} as approved: "
            f"its {fields} does not reach the restore job. This mismatch is kosmos-backup's "
            "own doing; nobody changed the request",
            hint="nothing was touched; ask again without that option, and report this as a bug",
        )
    return PermissionDenied(
        f"the job's plan does not match what was approved for {request_id}: {fields} differ",
        hint="the job was not made from the approved request (changed after approval, or "
        "enqueued by hand); nothing was touched",
    )
