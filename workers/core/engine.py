"""The engine contract: what a component kind provides so the rest of kosmos-backup can use it.

One engine per kind (``postgres``, ``minio``, …) lives in ``workers/engines/<kind>/`` and is
listed once in the registry, ``workers/engines/__init__.py``: the only place outside its
folder that names the kind. Everything else (front doors, jobs, scheduler, status, runbooks)
reaches a kind only through this Protocol, so adding a kind is its folder, its registry line
and its contract-test fixture (``tests/engines/<kind>/contract.py``).

The Protocol is generic in the context type so the core stays pure: engines take the
workers' ``Context`` (settings, clock, ``repo``, ``redis``) and runbook operations of the
workers' ``runbooks`` type; the registry binds both. An engine module must import cheaply:
front doors load the registry, so clients (psycopg, boto3, kubernetes) are imported inside
the methods that use them.

Rules every engine keeps:

- Errors are KosmosErrors (``UsageError`` for bad input, ``NotFoundError``, ``EngineError``
  for the tool's own failure, ``IntegrityError`` for data that does not match), one line
  plus a hint, never a secret in the text. Bad input changes nothing.
- Backups go through ``ctx.repo.begin(component, manifest_kind)`` and end in ``commit``: a
  backup without a manifest does not exist. Manifest kinds start with the engine's kind
  (``postgres-logical``, ``postgres-base``).
- Subprocesses run only through ``workers.process`` (argv lists, never a shell).
- Long work reports through ``progress(phase, done_bytes=…, total_bytes=…, note=…)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import ConfigDict

from workers.core.catalog import ComponentStatus
from workers.core.config import ComponentSettings, Settings
from workers.core.manifest import Manifest
from workers.core.model import Model
from workers.core.operations import OperationRequest, RestoreOptions
from workers.core.ports import Progress
from workers.core.restore_plan import RestorePlan
from workers.core.retention import Deletion

Ctx = TypeVar("Ctx", contravariant=True)
Op = TypeVar("Op", covariant=True)


class StatusFact(Model):
    """One line the status board adds for a component beside freshness (e.g. WAL lag)."""

    model_config = ConfigDict(frozen=True)

    short: str
    """For the compact board (Slack, a table cell): ``WAL lag 30s``."""
    long: str
    """For a line of its own (the console): ``WAL archive lag: 30s``."""


class Engine(Protocol[Ctx, Op]):
    """What a component kind provides: backup, verify, restore, prune, and how to route it.

    ``component`` arguments are configured component names (``settings.components`` keys)
    whose settings are instances of :attr:`config_model`; ``ref`` is ``latest``, a backup
    id or a unique id prefix.
    """

    kind: str
    """The ``kind`` value of the component settings this engine serves."""

    config_model: type[ComponentSettings]
    """The pydantic model of this kind's component settings (in ``core.config``)."""

    base_backups: bool
    """Whether the kind has a second track, base backups (``backup(base=True)``)."""

    restore_options: type[RestoreOptions]
    """The model of this kind's restore options: job parameters, and covered by the digest
    an approval signs. Every field a restore reads must be in it, or the worker refuses."""

    def queues(self, component: ComponentSettings) -> list[str]:
        """Every queue this component's work may be routed to (the worker listens on them)."""
        ...

    def queue_for(self, component: ComponentSettings, request: OperationRequest) -> str:
        """The queue for a backup, verify or restore of this component (e.g. beside the data)."""
        ...

    def backup_tracks(self, component: ComponentSettings) -> list[bool]:
        """The scheduled backup tracks: ``[False]``, plus ``True`` for a base-backup track."""
        ...

    def backup(
        self, ctx: Ctx, component: str, *, base: bool = False, progress: Progress
    ) -> Manifest:
        """Take one backup now and return its committed manifest.

        ``base`` asks for the second track (PostgreSQL's base backups); an engine without
        one raises UsageError. A partial backup is committed only if marked failed.
        """
        ...

    def verify(
        self, ctx: Ctx, component: str, manifest: Manifest, *, deep: bool, progress: Progress
    ) -> Manifest:
        """Check one backup and record the result with ``ctx.repo.record_verification``.

        Shallow: every object's sha256 and that each parses. ``deep``: also restore into a
        scratch place and compare with what the manifest recorded. A fault of the backup is
        a FAILED record (returned, not raised); a verifier that cannot work raises.
        """
        ...

    def restore(
        self,
        ctx: Ctx,
        component: str,
        ref: str,
        options: RestoreOptions,
        *,
        progress: Progress,
    ) -> Any:
        """Restore backup ``ref`` as ``options`` (an instance of :attr:`restore_options`) say.

        Returns a pydantic model or dataclass the job reports as JSON; a field
        ``checksums_matched`` that is False fails the job (the restored data differs).
        """
        ...

    def prune(self, ctx: Ctx, component: str, *, dry_run: bool) -> list[Deletion | str]:
        """Delete backups past retention, never the newest ``keep_last`` good ones.

        ``workers.storage.expiry.expire_backups`` does it for plain repository backups.
        """
        ...

    def check_plan(self, ctx: Ctx, plan: RestorePlan, manifest: Manifest) -> RestorePlan:
        """Plan-time checks of this kind (UsageError): e.g. the target is not the live source.

        Runs after the generic ones (the backup exists and is this component's) and before
        anyone approves; returns the plan with what it learned (the target's identity).
        """
        ...

    def recheck_plan(self, ctx: Ctx, plan: RestorePlan) -> None:
        """The worker's check just before restoring (PermissionDenied if the world changed)."""
        ...

    def runbook_operations(self) -> Mapping[str, Op]:
        """Runbook ``job`` operations this kind offers, by full name (``<kind>.<action>``)."""
        ...

    def status_facts(self, status: ComponentStatus, now: datetime) -> list[StatusFact]:
        """Lines the status board shows for this component beyond freshness (may be none)."""
        ...

    def unreachable(self, ctx: Ctx, component: str) -> str | None:
        """Why the source cannot be reached now (cheap: the board asks on every look)."""
        ...

    def config_problems(self, settings: Settings, component: str) -> list[tuple[str, str]]:
        """Settings that validate but cannot work: ``(setting path, problem)`` pairs."""
        ...


class EngineDefaults:
    """What most kinds do, for an engine to inherit and override where it differs.

    One queue (the component's), one backup track and no base backups, no plan checks
    beyond the generic ones, and no status line beyond freshness.
    """

    base_backups = False

    def queues(self, component: ComponentSettings) -> list[str]:
        """The component's own queue."""
        return [component.queue]

    def queue_for(self, component: ComponentSettings, request: OperationRequest) -> str:
        """Everything on the component's queue."""
        return component.queue

    def backup_tracks(self, component: ComponentSettings) -> list[bool]:
        """One track, without base backups."""
        return [False]

    def check_plan(self, ctx: Any, plan: RestorePlan, manifest: Manifest) -> RestorePlan:
        """Nothing beyond the generic checks: the plan as it is."""
        return plan

    def recheck_plan(self, ctx: Any, plan: RestorePlan) -> None:
        """Nothing to check again before the restore starts."""

    def status_facts(self, status: ComponentStatus, now: datetime) -> list[StatusFact]:
        """Nothing beyond freshness."""
        return []
