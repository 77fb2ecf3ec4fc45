"""Backup, verify, restore and prune commands.

Every command builds its kind's parameters model (workers.core.operations), the one form
both paths take: ``_enqueue`` hands it to a worker (the default for backup, verify and
prune; ``--wait`` follows the operation and exits 1 when it failed, ``--json`` prints the
operation and then its outcome), ``_run`` does the work in this process (``--local``).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from bot.cli.options import context_from, json_option
from bot.formats import size
from workers import components
from workers.context import Context
from workers.core.catalog import require_backup
from workers.core.errors import IntegrityError, PermissionDenied
from workers.core.manifest import Manifest, VerificationState
from workers.core.operations import (
    AnyParams,
    BackupParams,
    OperationKind,
    PostgresRestoreOptions,
    PruneParams,
    RestoreParams,
    VerifyParams,
)
from workers.core.restore_plan import job_params
from workers.restore.planning import own_options, plan_from_options, validate_plan

local_option = click.option(
    "--local",
    is_flag=True,
    help="Run in this process, without Redis or a worker (for the day Redis is down).",
)


class StderrProgress:
    """Progress on stderr: each new phase, and byte counts every few seconds on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.phase: str | None = None
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def __call__(
        self,
        phase: str,
        *,
        done_bytes: int | None = None,
        total_bytes: int | None = None,
        note: str | None = None,
    ) -> None:
        """Print a line when the phase changes, or bytes done now and then."""
        if not self.enabled:
            return
        now = time.monotonic()
        if phase != self.phase or note:
            self.phase, self.last = phase, now
            click.echo(f"… {phase}{': ' + note if note else ''}", err=True)
        elif self.tty and done_bytes is not None and now - self.last >= 2:
            self.last = now
            of = f" of ~{size(total_bytes)}" if total_bytes else ""
            click.echo(f"… {phase}: {size(done_bytes)}{of}", err=True)


def _run(work: Context, component: str | None, params: AnyParams, quiet: bool) -> Any:
    """Run one operation in this process (``--local``), as its job would."""
    progress = StderrProgress(enabled=not quiet)
    if isinstance(params, PruneParams):
        return components.prune(work, component, dry_run=params.dry_run)
    assert component is not None
    if isinstance(params, BackupParams):
        return components.backup(work, component, base=params.base, progress=progress)
    if isinstance(params, VerifyParams):
        return components.verify(
            work, component, params.backup, deep=params.deep, progress=progress
        )
    if isinstance(params, RestoreParams):
        options = params.restore_kwargs()
        return components.restore(work, component, params.backup, progress=progress, **options)
    raise click.UsageError(f"{type(params).__name__} cannot run here")


wait_option = click.option(
    "--wait", is_flag=True, help="Follow the enqueued operation until it ends (exit 1: it failed)."
)
queued_json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Machine-readable: the operation as a JSON line at once, its outcome after --wait.",
)


def _enqueue(
    work: Context,
    kind: OperationKind,
    component: str | None,
    params: AnyParams,
    wait: bool,
    as_json: bool,
) -> None:
    """Hand the operation to a worker: print it at once, and with --wait follow it."""
    from bot.cli.jobs import submit_and_render
    from workers import queues
    from workers.core.events import ChatContext

    if component:
        components.require_component(work, component)
    user = os.environ.get("KOSMOS_USER") or getpass.getuser()
    request = queues.new_request(
        kind,
        component,
        params=params,
        chat=ChatContext(source="cli", user=user),
        requested_by=user,
        now=work.clock(),
    )
    submit_and_render(work, request, wait, as_json)


def _require_backup(work: Context, component: str, ref: str) -> None:
    """Refuse a ref that names no backup before anything runs or is queued (exit 2)."""
    components.require_component(work, component)
    require_backup(work.repo.index(component), ref, listing=f"kosmos-backup list {component}")


def _as_json(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    return value


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(_as_json(value), indent=2, default=str))


@click.command()
@click.argument("component")
@click.option(
    "--base", is_flag=True, help="A base backup for PITR (barman-cloud) instead of dumps."
)
@local_option
@wait_option
@queued_json_option
@click.pass_context
def backup(
    ctx: click.Context, component: str, base: bool, local: bool, wait: bool, as_json: bool
) -> None:
    """Back up a component now (PostgreSQL: pg_dump of each database plus the globals).

    Enqueued for a worker by default (prints the operation id; --wait shows progress);
    --local runs it in this process.
    """
    work = context_from(ctx)
    params = BackupParams(base=base)
    if not local:
        _enqueue(work, OperationKind.BACKUP, component, params, wait, as_json)
        return
    manifest = _run(work, component, params, quiet=as_json)
    if as_json:
        _echo_json(manifest)
    else:
        from bot.console.terminal import console, manifest_panel  # rich: for people only

        console().print(manifest_panel(manifest))


@click.command()
@click.argument("component")
@click.argument("ref", default="latest")
@click.option("--deep", is_flag=True, help="Also restore into a scratch database and compare.")
@local_option
@wait_option
@queued_json_option
@click.pass_context
def verify(
    ctx: click.Context,
    component: str,
    ref: str,
    deep: bool,
    local: bool,
    wait: bool,
    as_json: bool,
) -> None:
    """Check a backup's checksums and archives (REF: an id, a prefix, or latest).

    Enqueued for a worker by default; --local runs it in this process. Either way exit 1
    when the backup fails verification.
    """
    work = context_from(ctx)
    _require_backup(work, component, ref)
    params = VerifyParams(backup=ref, deep=deep)
    if not local:
        _enqueue(work, OperationKind.VERIFY, component, params, wait, as_json)
        return
    manifest: Manifest = _run(work, component, params, quiet=as_json)
    record = manifest.verification
    assert record is not None
    if as_json:
        _echo_json(manifest)
    else:
        from bot.console.terminal import console  # rich: for people only

        mark = "[green]passed[/]" if record.state == VerificationState.PASSED else "[red]FAILED[/]"
        console().print(f"{manifest.id}: {mark}{' (deep)' if deep else ''}: {record.detail}")
        for name, check in record.checks.items():
            console().print(f"  {name}: {', '.join(f'{k} {v}' for k, v in check.items())}")
    if record.state != VerificationState.PASSED:
        # main() ignores click's ctx.exit codes (standalone_mode=False): raise to exit 1.
        raise IntegrityError(f"verification of {manifest.id} failed", hint=record.detail)


def _time_option(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a time (use 2026-11-24T03:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command()
@click.argument("component")
@click.argument("ref", default="latest")
@click.option("--target-database", metavar="NAME", help="A new database on the source server.")
@click.option(
    "--target-dsn",
    metavar="DSN",
    envvar="KOSMOS_TARGET_DSN",
    help="Another instance (libpq string; $KOSMOS_TARGET_DSN keeps a password out of argv).",
)
@click.option("--database", metavar="DB", help="Which database of the backup (if it has several).")
@click.option("--target", metavar="NAME", help="Other kinds: a new bucket, a new data dir, ….")
@click.option("--in-place", is_flag=True, help="Allow replacing an existing (even live) database.")
@click.option("--with-globals", is_flag=True, help="Also restore roles and tablespaces first.")
@click.option(
    "--to",
    "--to-time",
    "target_time",
    callback=_time_option,
    metavar="TIME",
    help="PITR: replay WAL up to this time (ISO 8601; UTC when no zone).",
)
@click.option("--base", is_flag=True, help="PITR from a base backup (to the end of the archive).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="PITR: new data directory.")
@click.option("--port", type=click.IntRange(1, 65535), help="PITR: port of the new instance.")
@local_option
@json_option
@click.pass_context
def restore(ctx: click.Context, component: str, ref: str, **options: Any) -> None:
    """Restore a backup into a new database or instance (never over the live one by default).

    With ``approval_key`` configured (any real deployment), restores need two people: this
    command refuses and points at ``restore-request``; the worker enforces it again.
    """
    as_json = options.pop("as_json")
    options.pop("local")
    work = context_from(ctx)
    if work.settings.approval_key is not None:
        raise PermissionDenied(
            "restores need two people here: approval_key is configured",
            hint=f"kosmos-backup restore-request {component} {ref} … --reason '…', "
            "then another approver runs: kosmos-backup approve <id>",
        )
    click.echo(
        "warning: approval_key is not configured, so this restore runs on your word alone "
        "(development set-ups only)",
        err=True,
    )
    params = _restore_params(work, component, ref, options)
    result = _run(work, component, params, quiet=as_json)
    if as_json:
        _echo_json(result)
    else:
        _print_restore(result, work.settings.objectives.rto.total_seconds())
    if getattr(result, "checksums_matched", True) is False:
        raise IntegrityError(
            "the restored data differs from what the backup recorded",
            hint="see the mismatches above; the restored database was kept for inspection",
        )


def _restore_params(work: Context, component: str, ref: str, options: dict[str, Any]) -> Any:
    """PostgreSQL's options as given; another kind's as its checked plan would carry them."""
    if own_options(work, component):
        plan = plan_from_options(work, component, ref, **options)
        validate_plan(work, plan)
        return job_params(plan)
    if options.pop("target"):
        raise click.UsageError("--target is for other kinds: --target-database or --target-dsn")
    pitr = options["base"] or options["target_time"] is not None
    keys = _PITR_KEYS if pitr else _DUMP_RESTORE_KEYS
    chosen = PostgresRestoreOptions(**{key: options[key] for key in keys})
    return RestoreParams(backup=ref, options=chosen)


_DUMP_RESTORE_KEYS = ("target_database", "target_dsn", "database", "in_place", "with_globals")
_PITR_KEYS = ("target_time", "base", "data_dir", "port")


def _print_restore(result: Any, rto_seconds: float) -> None:
    doc = _as_json(result)
    if not isinstance(doc, dict) or "databases" not in doc:
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    from bot.console.terminal import console  # rich and the replies: for people only
    from bot.replies.results import restore_facts

    out = console()
    out.print(f"restored {doc['backup_id']}: " + " · ".join(restore_facts(doc, rto_seconds)))
    if isinstance(doc["databases"], dict):
        _print_pitr(doc)
        return
    if doc.get("globals_restored"):
        out.print(f"  globals: {len(doc['globals_errors'])} statement(s) failed")
        for line in doc["globals_errors"]:
            out.print(f"    {line}")
    for item in doc["databases"]:
        verdict = "[green]match[/]" if item["checksums_matched"] else "[red]DIFFER[/]"
        out.print(
            f"  {item['source_database']} -> {item['server']}: {item['tables']} tables, "
            f"{item['rows']} rows, {item['seconds']:.1f}s, checksums {verdict}"
        )
        for line in item["mismatches"] + item["notes"]:
            out.print(f"    {line}")


def _print_pitr(doc: dict[str, Any]) -> None:
    """A point-in-time restore: where the instance runs, the point reached, and its counts."""
    from bot.console.terminal import console

    out = console()
    point = doc.get("restore_point") or "the end of the archive"
    out.print(
        f"  running on port {doc['port']} from {doc['data_dir']}: timeline {doc['timeline']},"
        f" restore point {point}"
    )
    for name, item in doc["databases"].items():
        out.print(f"  {name}: {item['tables']} tables, {item['rows']} rows")


@click.command()
@click.argument("component", required=False)
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@local_option
@wait_option
@queued_json_option
@click.pass_context
def prune(
    ctx: click.Context,
    component: str | None,
    dry_run: bool,
    local: bool,
    wait: bool,
    as_json: bool,
) -> None:
    """Delete backups past retention; the newest keep_last good ones always stay.

    Enqueued for a worker by default (it takes the component's lock); --local runs it here.
    """
    work = context_from(ctx)
    params = PruneParams(dry_run=dry_run)
    if not local:
        _enqueue(work, OperationKind.PRUNE, component, params, wait, as_json)
        return
    deleted = _run(work, component, params, quiet=as_json)
    if as_json:
        _echo_json({"dry_run": dry_run, "deleted": deleted})
        return
    verb = "would delete" if dry_run else "deleted"
    for item in _as_json(deleted):
        if isinstance(item, dict):
            click.echo(f"{verb} {item.get('backup_id', item)}: {item.get('reason', '')}")
        else:
            click.echo(f"{verb} {item}")
    click.echo(f"{len(deleted)} backup{'s' * (len(deleted) != 1)} {verb}")


commands = [backup, verify, restore, prune]
