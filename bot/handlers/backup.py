"""``/backup``: status, list and help answered from the catalog; run and verify enqueued."""

from __future__ import annotations

from bot.grammar.backup import BACKUP, BackupHelp, BackupList, BackupRun, BackupStatus, BackupVerify
from bot.grammar.command import Command
from bot.handlers.desk import Caller, Desk
from bot.replies import Reply
from bot.replies.backup import AcceptedReply, HelpReply, ListReply, StatusReply
from workers import queues
from workers.core.errors import UsageError
from workers.core.ids import new_operation_id
from workers.core.operations import (
    AnyParams,
    BackupParams,
    OperationKind,
    OperationRequest,
    VerifyParams,
)


def answer(desk: Desk, caller: Caller, command: Command) -> Reply:
    """Answer one parsed, authorized ``/backup`` command."""
    settings = desk.ctx.settings
    if isinstance(command, BackupStatus):
        from workers.runbooks import drills  # the door's own process reads the run store

        rows = desk.statuses(command.component)
        drill = drills.last_drill(desk.ctx)
        return StatusReply(settings.objectives, rows, desk.ctx.clock(), drill)
    if isinstance(command, BackupList):
        backups = desk.backups(command.component)
        return ListReply(
            command.component, backups[: command.limit], len(backups), desk.ctx.clock()
        )
    if isinstance(command, BackupRun):
        what = f"{'Base backup' if command.base else 'Backup'} of {command.component}"
        backup = BackupParams(base=command.base)
        return submit(desk, caller, command, OperationKind.BACKUP, backup, what)
    if isinstance(command, BackupVerify):
        what = f"{'Deep verification' if command.deep else 'Verification'} of "
        what += f"{command.component} {command.ref}"
        desk.require_backup(command.component, command.ref)
        verify = VerifyParams(backup=command.ref, deep=command.deep)
        return submit(desk, caller, command, OperationKind.VERIFY, verify, what)
    if isinstance(command, BackupHelp):
        return help_reply(command.topic)
    raise UsageError(f"/backup cannot answer {type(command).__name__}")


def help_reply(topic: str | None) -> HelpReply:
    """Usage of every verb, or of the one named by ``topic``."""
    verbs = BACKUP.verbs
    if topic:
        verb = BACKUP.verb(topic)
        if verb is None:
            names = ", ".join(v.name for v in verbs)
            raise UsageError(f"no help on {topic!r}", hint=f"subcommands: {names}")
        verbs = (verb,)
    return HelpReply(BACKUP.name, [(v.usage, v.summary) for v in verbs], topic)


def submit(
    desk: Desk,
    caller: Caller,
    command: Command,
    kind: OperationKind,
    params: AnyParams,
    description: str,
) -> AcceptedReply:
    """Enqueue one operation, once per request even when Slack retries it."""
    now = desk.ctx.clock()
    op_id = new_operation_id(now)
    component = getattr(command, "component", None)
    if caller.request_key:
        earlier = desk.claim(caller.request_key, op_id)
        if earlier is not None:
            return AcceptedReply(earlier, command, description, repeated=True)
    request = OperationRequest(
        op_id=op_id,
        kind=kind,
        component=component,
        params=params,
        chat=caller.chat,
        requested_at=now,
        requested_by=caller.user,
    )
    try:
        queues.submit(desk.ctx.redis, desk.ctx.settings, request)
    except BaseException:
        if caller.request_key:
            desk.forget(caller.request_key)
        raise
    return AcceptedReply(op_id, command, description)
