"""Operation requests: what a front door asks a worker to do, as JSON-only data.

Each kind of operation has one frozen parameters model (:data:`PARAMS`), and a request's
``params`` is always an instance of its kind's model: an unknown or misspelt parameter is
refused where the request is built (CLI, chat, scheduler, runbook, approval) and again where
the job parses its payload, and a job reads attributes, never free dictionary keys.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from workers.core.errors import UsageError
from workers.core.events import ChatContext
from workers.core.model import Model

P = TypeVar("P", bound="OperationParams")
BackupRef = Annotated[
    str, Field(min_length=1, max_length=100, description="latest, a backup id or an id prefix")
]


class OperationKind(StrEnum):
    """Every kind of work the workers do."""

    BACKUP = "backup"
    VERIFY = "verify"
    RESTORE = "restore"
    PRUNE = "prune"
    RPO_CHECK = "rpo-check"
    SWEEP = "sweep"
    DR_STEP = "dr-step"


class OperationState(StrEnum):
    """Where an operation stands."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class OperationParams(Model):
    """The base of every operation's parameters: frozen, JSON-only, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def of(cls: type[P], request: OperationRequest) -> P:
        """``request``'s parameters as this model (a job reads only its own kind's)."""
        if not isinstance(request.params, cls):
            raise UsageError(
                f"a {request.kind.value} request carries no {cls.__name__}",
                hint="the job and its producer disagree: upgrade both",
            )
        return request.params


class BackupParams(OperationParams):
    """``backup``: one backup of the request's component."""

    base: bool = Field(default=False, description="a base backup for PITR instead of dumps")


class VerifyParams(OperationParams):
    """``verify``: check one backup of the request's component."""

    backup: BackupRef = "latest"
    deep: bool = Field(default=False, description="also restore into a scratch database")


class RestoreOptions(OperationParams):
    """The base of every engine's restore options: frozen, JSON-only, no unknown keys.

    An engine's subclass says everything its restore needs beyond the backup (a target, a
    database, a restore point); the approved plan's digest covers them (see core.engine).
    """

    door_target: ClassVar[str | None] = None
    """The field ``/restore … --target`` fills (a bucket, a data directory), if any."""

    def engine_options(self) -> dict[str, Any]:
        """The options as the engine's restore takes them (keyword arguments)."""
        return {name: getattr(self, name) for name in type(self).model_fields}


class PostgresRestoreOptions(RestoreOptions):
    """PostgreSQL's own restore options: a dump into a database, or PITR into an instance."""

    target_database: str | None = None
    target_dsn: str | None = None
    database: str | None = Field(default=None, description="which database of the backup")
    in_place: bool = False
    with_globals: bool = False
    base: bool = Field(default=False, description="PITR from a base backup")
    target_time: AwareDatetime | None = Field(default=None, description="PITR: replay to here")
    data_dir: str | None = Field(default=None, description="PITR: the new data directory")
    port: int | None = Field(default=None, ge=1, le=65535, description="PITR: the new port")


ENGINE_TARGET = "plan_target"
"""Where a job with an engine's own options carries its plan's target."""


class RestoreParams(OperationParams):
    """``restore``: one backup restored as ``options`` say, under an approval."""

    backup: BackupRef = "latest"
    options: PostgresRestoreOptions = PostgresRestoreOptions()
    engine_options: dict[str, str | bool] = Field(
        default_factory=dict,
        description="an engine's own options (its plan's target under 'target'), instead",
    )

    def restore_kwargs(self) -> dict[str, Any]:
        """The keyword options the engine's restore takes."""
        if self.engine_options:
            return {k: v for k, v in self.engine_options.items() if k != ENGINE_TARGET}
        return self.options.engine_options()

    request_id: str | None = Field(default=None, description="the approved restore request")
    approval_id: str | None = Field(default=None, description="the approval the worker spends")


class PruneParams(OperationParams):
    """``prune``: retention applied to the request's component, or to every component."""

    dry_run: bool = False


class SweepParams(OperationParams):
    """``sweep``: stale partial uploads aborted, manifest-less backups removed."""

    before: AwareDatetime | None = Field(
        default=None, description="sweep what started before this (the reaper's use)"
    )
    after_op: str | None = Field(default=None, description="the dead operation being cleaned up")


class RpoCheckParams(OperationParams):
    """``rpo-check``: the RPO monitor."""

    quiet: bool = Field(default=False, description="keep out of the stream and the registry")


class DrStepParams(OperationParams):
    """``dr-step``: one step of a runbook run (or its report)."""

    run_id: str = Field(min_length=1)
    step_id: str = Field(min_length=1)
    queue: str | None = Field(default=None, description="where the step must run")


AnyParams = (
    BackupParams
    | VerifyParams
    | RestoreParams
    | PruneParams
    | SweepParams
    | RpoCheckParams
    | DrStepParams
)
PARAMS: dict[OperationKind, type[OperationParams]] = {
    OperationKind.BACKUP: BackupParams,
    OperationKind.VERIFY: VerifyParams,
    OperationKind.RESTORE: RestoreParams,
    OperationKind.PRUNE: PruneParams,
    OperationKind.SWEEP: SweepParams,
    OperationKind.RPO_CHECK: RpoCheckParams,
    OperationKind.DR_STEP: DrStepParams,
}
"""The one parameters model of each kind of operation."""


class OperationRequest(Model):
    """A request for one operation; its JSON form is the job's only argument."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op_id: str
    kind: OperationKind
    component: str | None = None
    params: AnyParams
    chat: ChatContext = ChatContext()
    requested_at: datetime
    requested_by: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _params_of_kind(cls, data: Any) -> Any:
        """Parse ``params`` with the model of the request's kind (absent: its defaults)."""
        if not isinstance(data, dict):
            return data
        try:
            model = PARAMS[OperationKind(str(data.get("kind")))]
        except ValueError:
            return data  # the kind field reports it
        given = data.get("params")
        if isinstance(given, OperationParams):
            if type(given) is not model:
                wrong = type(given).__name__
                raise ValueError(f"{data['kind']} takes {model.__name__}, not {wrong}")
            return data
        try:
            return {**data, "params": model.model_validate(given or {})}
        except ValidationError as exc:
            raise ValueError(describe(exc, within="params")) from None

    @property
    def quiet(self) -> bool:
        """Quiet operations (the minutely monitor) keep out of the stream and the registry."""
        return isinstance(self.params, RpoCheckParams) and self.params.quiet

    @property
    def base(self) -> bool:
        """Whether it works on a base backup (PITR): routed beside the data, timed longer."""
        if isinstance(self.params, BackupParams):
            return self.params.base
        if isinstance(self.params, RestoreParams):
            return self.params.options.base
        return False


def describe(exc: ValidationError, within: str = "") -> str:
    """A validation error as one line: ``where: what`` for each problem (no input values)."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in (within, *error["loc"]) if part != "")
        what = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {what}" if where else what)
    return "; ".join(problems)
