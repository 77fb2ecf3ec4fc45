"""Runbooks: a recovery procedure as validated data (steps, kinds, dependencies, references).

Pure: pydantic and the standard library. A runbook is a list of steps; each step has a
kind (``manual``, ``job``, ``check``, ``approval``), its dependencies, a time budget and a
failure policy. Parameters may refer to the run's inputs (``${inputs.database}``), to the
run itself (``${run.id}``, ``${run.tag}``) and to outputs of steps it depends on
(``${steps.pick.outputs.backup_id}``). ``runbook_check.problems`` finds what the models
alone cannot: duplicate ids, unknown dependencies, cycles, bad references and budgets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from workers.core.durations import Duration
from workers.core.model import Model

STEP_ID = r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$"
RUNBOOK_NAME = r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
OPERATION = r"^[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*$"
MAX_BUDGET = timedelta(hours=24)
REFERENCE = re.compile(r"\$\{([^}]*)\}")
WHOLE_REFERENCE = re.compile(r"^\$\{([^}]*)\}$")
STEP_REF = re.compile(r"^steps\.([a-z][a-z0-9_-]*)\.outputs\.([A-Za-z_][A-Za-z0-9_]*)$")
INPUT_REF = re.compile(r"^inputs\.([A-Za-z_][A-Za-z0-9_]*)$")
RUN_FIELDS = ("id", "tag", "started_by", "started_at", "runbook")

Ref = Annotated[str, Field(pattern=r"^\$\{[^}]+\}$")]
"""A value given as one reference, resolved when the step runs."""


class _Model(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepKind(StrEnum):
    """What executes a step."""

    MANUAL = "manual"
    JOB = "job"
    CHECK = "check"
    APPROVAL = "approval"


class FailurePolicy(StrEnum):
    """What happens when a step fails: stop the run, retry the step, or ask a person."""

    STOP = "stop"
    RETRY = "retry"
    ASK = "ask"


class StepMode(StrEnum):
    """How a step is executed in this deployment (a job without its engine is not automated)."""

    AUTOMATED = "automated"
    MANUAL = "manual"
    SKIPPED = "skipped"


# -- probes ----------------------------------------------------------------------------------


class _Probe(_Model):
    label: str | None = Field(default=None, description="shown in results; default from type")
    timeout: Duration = timedelta(seconds=10)


class SqlProbe(_Probe):
    """A SQL query whose first column is compared with ``expect`` (or at least ``expect_min``)."""

    type: Literal["sql"]
    query: str = Field(min_length=1)
    component: str = "postgres"
    dsn: str | None = Field(default=None, description="default: the component's dsn")
    database: str | None = None
    expect: Any = None
    expect_min: float | Ref | None = None


class HttpProbe(_Probe):
    """An HTTP GET expecting one status code."""

    type: Literal["http"]
    url: str
    expect_status: int | Ref = 200


class TcpProbe(_Probe):
    """A TCP connect that must succeed."""

    type: Literal["tcp"]
    host: str
    port: int | Ref


class DeploymentProbe(_Probe):
    """A Kubernetes deployment (or every one in the namespace, ``name: "*"``) being ready."""

    type: Literal["deployment"]
    namespace: str
    name: str = "*"
    kubeconfig: str | None = None


class BucketCountProbe(_Probe):
    """A count of objects in a bucket (the backup storage or a component's endpoint)."""

    type: Literal["bucket-count"]
    bucket: str | None = Field(default=None, description="default: the storage bucket")
    prefix: str = ""
    source: str = Field(default="storage", description="'storage' or a minio component name")
    expect: int | Ref | None = None
    expect_min: int | Ref | None = 1


Probe = Annotated[
    SqlProbe | HttpProbe | TcpProbe | DeploymentProbe | BucketCountProbe,
    Field(discriminator="type"),
]


# -- steps -----------------------------------------------------------------------------------


class _Step(_Model):
    id: str = Field(pattern=STEP_ID, max_length=40)
    title: str = Field(min_length=1, max_length=150)
    depends_on: tuple[str, ...] = ()
    budget: Duration = timedelta(minutes=15)
    on_failure: FailurePolicy = FailurePolicy.STOP
    retries: int = Field(default=2, ge=0, le=10, description="extra attempts under 'retry'")
    always: bool = Field(default=False, description="runs even when the run stops (teardown)")
    commands: tuple[str, ...] = Field(default=(), description="exact commands a person runs")
    links: tuple[str, ...] = ()
    notes: str = ""


class ManualStep(_Step):
    """A person does it and confirms: Done, Skip (reason) or Failed (note)."""

    kind: Literal["manual"]


class JobStep(_Step):
    """An automated operation such as ``postgres.restore``; manual until its engine exists."""

    kind: Literal["job"]
    operation: str = Field(pattern=OPERATION)
    params: dict[str, Any] = Field(default_factory=dict)
    safe_to_repeat: bool | None = Field(
        default=None, description="default from the operation; unsafe steps ask after a crash"
    )
    unavailable: Literal["manual", "skip"] = Field(
        default="manual", description="what the step becomes while its engine is not built"
    )
    approval: bool = Field(
        default=False, description="waits for a two-person approval of its resolved params"
    )

    @property
    def engine(self) -> str:
        """The engine half of ``operation`` (``postgres`` of ``postgres.restore``)."""
        return self.operation.split(".", 1)[0]


class CheckStep(_Step):
    """Verification probes; every probe must pass."""

    kind: Literal["check"]
    probes: tuple[Probe, ...] = Field(min_length=1)


class ApprovalStep(_Step):
    """A two-person gate under the approval rules, bound to ``plan``."""

    kind: Literal["approval"]
    component: str = "postgres"
    plan: dict[str, Any] = Field(default_factory=dict)
    reason: str = "runbook approval gate"


Step = Annotated[
    ManualStep | JobStep | CheckStep | ApprovalStep,
    Field(discriminator="kind"),
]


class InputSpec(_Model):
    """A run parameter given with ``--param name=value``."""

    description: str = ""
    default: str | int | None = None

    @property
    def required(self) -> bool:
        """Whether the run must be given this input."""
        return self.default is None


class ReportSpec(_Model):
    """What the final report measures: the restore point (for RPO) and when service was back."""

    restore_point: str | None = Field(
        default=None, description="a reference to a timestamp, e.g. a pick step's output"
    )
    recovered_after: str | None = Field(
        default=None, description="the step whose end stops the RTO clock; default: the last"
    )


class Runbook(_Model):
    """A whole recovery procedure."""

    name: str = Field(pattern=RUNBOOK_NAME)
    title: str
    description: str = ""
    drill: bool = Field(default=False, description="a rehearsal: its result is the last drill")
    rto: Duration | None = Field(default=None, description="default: objectives.rto")
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    steps: tuple[Step, ...] = Field(min_length=1)
    report: ReportSpec = ReportSpec()

    def step(self, step_id: str) -> Step:
        """The step called ``step_id``; KeyError when absent."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def ids(self) -> list[str]:
        """Step ids in file order."""
        return [step.id for step in self.steps]


# -- automation and references at run time ---------------------------------------------------


def step_mode(step: Step, available: Callable[[str], bool]) -> StepMode:
    """Automated, or (for a job whose operation has no engine here) manual or skipped."""
    if isinstance(step, JobStep) and not available(step.operation):
        return StepMode.MANUAL if step.unavailable == "manual" else StepMode.SKIPPED
    if isinstance(step, ManualStep):
        return StepMode.MANUAL
    return StepMode.AUTOMATED


def resolve(value: Any, lookup: Callable[[str], Any]) -> Any:
    """Substitute every ``${…}``; a string that is one reference keeps the value's type."""
    if isinstance(value, str):
        whole = WHOLE_REFERENCE.match(value)
        if whole:
            return lookup(whole.group(1).strip())
        return REFERENCE.sub(lambda m: str(lookup(m.group(1).strip())), value)
    if isinstance(value, dict):
        return {key: resolve(item, lookup) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(item, lookup) for item in value]
    return value


def split_reference(expression: str) -> tuple[str, ...]:
    """``steps.pick.outputs.id`` -> ('steps', 'pick', 'outputs', 'id')."""
    return tuple(expression.split("."))
