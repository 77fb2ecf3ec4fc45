"""``/backup``: status, run, list, verify, audit and help, as one verb table."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from bot.grammar.command import BACKUP_REF, Argument, Command, Group, Option, Verb


class BackupStatus(Command):
    """``/backup status [component]``."""

    action: ClassVar[str] = "backup.status"
    component: str | None = None


class BackupRun(Command):
    """``/backup run <component> [--base]``."""

    action: ClassVar[str] = "backup.run"
    component: str
    base: bool = False


class BackupList(Command):
    """``/backup list <component> [--limit N]``."""

    action: ClassVar[str] = "backup.list"
    component: str
    limit: int = Field(default=10, ge=1, le=200)


class BackupVerify(Command):
    """``/backup verify <component> [id|latest] [--deep]``."""

    action: ClassVar[str] = "backup.verify"
    component: str
    ref: str = Field(default="latest", pattern=BACKUP_REF.pattern)
    deep: bool = False


class BackupAudit(Command):
    """``/backup audit [N]``: the newest audit records."""

    action: ClassVar[str] = "backup.audit"
    limit: int = Field(default=20, ge=1, le=200)


class BackupHelp(Command):
    """``/backup help [verb]``."""

    action: ClassVar[str] = "backup.help"
    topic: str | None = None


BACKUP = Group(
    name="backup",
    verbs=(
        Verb(
            "status",
            BackupStatus,
            "/backup status [component]",
            "freshness of every component against the RPO",
            (Argument("component", required=False, kind="component"),),
        ),
        Verb(
            "run",
            BackupRun,
            "/backup run <component> [--base]",
            "start a backup now (--base: a PostgreSQL base backup)",
            (Argument("component", required=True, kind="component"),),
            (Option("--base", "base"),),
        ),
        Verb(
            "list",
            BackupList,
            "/backup list <component> [--limit N]",
            "committed backups, newest first",
            (Argument("component", required=True, kind="component"),),
            (Option("--limit", "limit", takes_int=True),),
        ),
        Verb(
            "verify",
            BackupVerify,
            "/backup verify <component> [id|latest] [--deep]",
            "check a backup's checksums (--deep: restore-test it)",
            (
                Argument("component", required=True, kind="component"),
                Argument("ref", required=False, kind="ref"),
            ),
            (Option("--deep", "deep"),),
        ),
        Verb(
            "audit",
            BackupAudit,
            "/backup audit [N]",
            "the newest N audit records (requests, decisions, restores)",
            (Argument("limit", required=False),),
        ),
        Verb(
            "help",
            BackupHelp,
            "/backup help [subcommand]",
            "this help",
            (Argument("topic", required=False),),
        ),
    ),
)
