"""Restores without Slack: request, approve, deny, review as a configured identity; the audit.

Who you are on the command line::

    export KOSMOS_USER=U0123ABCD          # your Slack user id, a key of approvals.cli_identities
    export KOSMOS_USER_TOKEN=…            # your own secret; the config holds only its sha256

``kosmos-backup identity-token`` prints a fresh token and the line to put in the config. The
same rules as in Slack apply: nobody approves their own request, the approvers role is
checked at the moment of the decision (a user id in ``slack.roles.approvers``, a user group
when Slack answers, else the identity's own ``roles``), denials need a reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from typing import Any

import click

from bot.cli.jobs import follow_to_end
from bot.cli.options import context_from, json_option
from bot.replies.restore import audit_line, card_facts, plain
from workers import queues
from workers.context import Context
from workers.core.approvals import ApprovalRequest, Verdict
from workers.core.config import Settings
from workers.core.errors import PermissionDenied
from workers.core.events import ChatContext
from workers.core.operations import OperationRequest
from workers.restore.planning import plan_from_options
from workers.restore.requests import (
    audit_of,
    decide_request,
    open_restore_request,
    review_request,
    store_of,
    verify_exported_audit,
)

USER_ENV = "KOSMOS_USER"
TOKEN_ENV = "KOSMOS_USER_TOKEN"


def identify(settings: Settings, environ: Mapping[str, str]) -> str:
    """The Slack user id the environment authenticates as; PermissionDenied otherwise."""
    user, token = environ.get(USER_ENV, "").strip(), environ.get(TOKEN_ENV, "")
    identities = settings.approvals.cli_identities
    if not user or not token:
        raise PermissionDenied(
            f"say who you are: export {USER_ENV}=<your Slack user id> and {TOKEN_ENV}=<your token>",
            hint="identities are configured under approvals.cli_identities",
        )
    found = next(((k, v) for k, v in identities.items() if user in (k, v.name)), None)
    digest = hashlib.sha256(token.encode()).hexdigest()
    # Compare even for an unknown user, so timing does not tell which users exist.
    matched = hmac.compare_digest(digest, found[1].token_sha256 if found else "0" * 64)
    if found is None or not matched:
        raise PermissionDenied(
            f"{TOKEN_ENV} does not authenticate {user}",
            hint="check approvals.cli_identities; kosmos-backup identity-token makes a new token",
        )
    return found[0]


def cli_roles(settings: Settings, user: str) -> frozenset[str]:
    """Roles held now: user ids in slack.roles, groups (when Slack answers), identity roles."""
    from bot.roles import ROLE_PERMISSIONS, Authorizer

    identity = settings.approvals.cli_identities.get(user)
    held: set[str] = set(identity.roles) if identity else set()
    authorizer = Authorizer(settings.slack.roles, _groups(settings))
    held |= authorizer.roles_of(user)
    return frozenset(role for role in held if role in ROLE_PERMISSIONS)


def _groups(settings: Settings) -> Any:
    from bot.roles import SlackGroups

    if settings.slack.bot_token is None:
        return _NoGroups()
    from bot.slack.app import web_client

    return SlackGroups(web_client(settings, retry_rate_limits=False), ttl=0.0)


class _NoGroups:
    """Without Slack no group has members: nobody gains a role through one."""

    def members(self, group: str) -> frozenset[str]:
        """Nobody."""
        return frozenset()


def _show(work: Context, request: ApprovalRequest, as_json: bool) -> None:
    if as_json:
        click.echo(request.model_dump_json(indent=2))
        return
    rto = work.settings.objectives.rto.total_seconds()
    for line in plain(card_facts(request, work.clock(), rto)):
        click.echo(line)


@click.command(name="restore-request")
@click.argument("component")
@click.argument("ref", default="latest")
@click.option("--reason", required=True, help="Why (required; shown to the approvers).")
@click.option("--target-database", metavar="NAME", help="A new database on the source server.")
@click.option("--target", metavar="NAME", help="Other kinds: a new bucket, a new data dir, ….")
@click.option("--target-dsn", metavar="DSN", help="Another instance (no password in it).")
@click.option("--database", metavar="DB", help="Which database of the backup.")
@click.option("--in-place", is_flag=True, help="Overwrite the live source (deliberately).")
@click.option("--to", "target_time", metavar="TIME", help="PITR restore point (ISO 8601).")
@click.option("--data-dir", help="PITR: the new data directory.")
@click.option("--port", type=click.IntRange(1, 65535), help="PITR: the new instance's port.")
@click.option("--target-env", metavar="ENV", help="Secrets: the environment to import into.")
@click.option("--namespaces", metavar="A,B", help="Kubernetes resources: only these namespaces.")
@json_option
@click.pass_context
def restore_request(ctx: click.Context, component: str, ref: str, **options: Any) -> None:
    """Ask for a restore; it runs once a second person approves (kosmos-backup approve)."""
    as_json, reason = options.pop("as_json"), options.pop("reason")
    work = context_from(ctx)
    user = identify(work.settings, os.environ)
    plan = plan_from_options(work, component, ref, **options)
    request_id = open_restore_request(
        work, plan, user, reason, ChatContext(source="cli", user=user)
    ).id
    if not as_json:
        click.echo(f"restore request {request_id} is waiting for approval")
    _show(work, store_of(work).get(request_id), as_json)


@click.command()
@click.argument("request_id")
@click.option(
    "--wait",
    is_flag=True,
    help="Follow the restore this approval queues until it ends (exit 1: it failed).",
)
@json_option
@click.pass_context
def approve(ctx: click.Context, request_id: str, wait: bool, as_json: bool) -> None:
    """Approve a pending restore as your configured identity."""
    _decide(ctx, request_id, Verdict.APPROVE, "", as_json, wait=wait)


@click.command()
@click.argument("request_id")
@click.option("--reason", required=True, help="Why it is denied (required).")
@json_option
@click.pass_context
def deny(ctx: click.Context, request_id: str, reason: str, as_json: bool) -> None:
    """Deny a pending restore (or withdraw your own), saying why."""
    _decide(ctx, request_id, Verdict.DENY, reason, as_json)


def _decide(
    ctx: click.Context,
    request_id: str,
    verdict: Verdict,
    reason: str,
    as_json: bool,
    *,
    wait: bool = False,
) -> None:
    work = context_from(ctx)
    user = identify(work.settings, os.environ)
    start = queues.last_event_id(work.redis, work.settings) if wait else "0-0"
    outcome = decide_request(
        work,
        request_id,
        user=user,
        verdict=verdict,
        holds_approver_role="approvers" in cli_roles(work.settings, user),
        reason=reason,
        via="cli",
    )
    if outcome.error is not None:
        raise outcome.error
    if outcome.enqueued and not as_json:
        click.echo(f"approved; restore {outcome.enqueued} is queued")
    _show(work, outcome.request, as_json)
    if wait and outcome.enqueued:
        record = queues.operation(work.redis, work.settings, outcome.enqueued) or {}
        request = OperationRequest.model_validate(record.get("request"))
        follow_to_end(work, request, start, as_json)


@click.command()
@click.argument("request_id")
@click.option("--notes", required=True, help="What the review found (required).")
@click.pass_context
def review(ctx: click.Context, request_id: str, notes: str) -> None:
    """Record the post-hoc review of a break-glass restore (approvers)."""
    work = context_from(ctx)
    user = identify(work.settings, os.environ)
    request = review_request(
        work,
        request_id,
        user=user,
        holds_approver_role="approvers" in cli_roles(work.settings, user),
        notes=notes,
    )
    _show(work, request, False)


@click.command(name="identity-token")
def identity_token() -> None:
    """Print a fresh personal token and the sha256 the config needs for it."""
    token = secrets.token_urlsafe(32)
    click.echo(f"export {TOKEN_ENV}={token}")
    click.echo(
        f"# approvals.cli_identities.<your Slack id>.token_sha256: "
        f"{hashlib.sha256(token.encode()).hexdigest()}"
    )


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command(name="verify")
@click.option("--exported", is_flag=True, help="Check the copy exported to the backup store.")
@click.pass_context
def audit_verify(ctx: click.Context, exported: bool) -> None:
    """Check the whole hash chain; name the first broken record (exit 1 if any)."""
    work = context_from(ctx)
    report = verify_exported_audit(work) if exported else audit_of(work).verify()
    click.echo(report.describe())
    if not report.ok:
        ctx.exit(1)


@audit.command(name="show")
@click.argument("count", type=click.IntRange(1, 10000), default=20)
@json_option
@click.pass_context
def audit_show(ctx: click.Context, count: int, as_json: bool) -> None:
    """The newest COUNT records, oldest first."""
    work = context_from(ctx)
    records = audit_of(work).tail(count)
    for record in records:
        click.echo(
            json.dumps(record.model_dump(mode="json"))
            if as_json
            else audit_line(record, work.clock())
        )


@audit.command(name="export")
@click.option("--full", is_flag=True, help="Rewrite every day, not only days with new records.")
@click.pass_context
def audit_export(ctx: click.Context, full: bool) -> None:
    """Export the audit log to the backup store as _audit/<day>.jsonl."""
    work = context_from(ctx)
    for key in audit_of(work).export(work.repo.store, full=full):
        click.echo(key)


commands = [restore_request, approve, deny, review, identity_token, audit]
