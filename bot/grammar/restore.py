"""``/restore``: the request form and the decision verbs, parsed into models (pure, no I/O).

::

    /restore <component> <backup-id|latest> [--to TIME] [--target NAME|DSN] [--database DB]
             [--target-env ENV] [--in-place] [--break-glass] -- <reason>
    /restore approve <request-id>
    /restore deny <request-id> -- <reason>
    /restore review <request-id> -- <notes>
    /restore help

Everything after the first standalone ``--`` is free text (the reason), taken as typed, so
an apostrophe in "we can't wait" is never a parse error.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import Field, ValidationError, field_validator

from bot.grammar.command import Command, tokenize
from workers.core.errors import UsageError
from workers.core.restore_plan import MAX_DATABASE_BYTES

REQUEST_ID = re.compile(r"^rr-\d{8}T\d{4}Z-[0-9a-f]{6}$")
REF = re.compile(r"^(?:latest|[a-z][a-z0-9]*(?:-[A-Za-z0-9]+)+)$")
"""``latest``, a backup id (postgres-20261124T0300Z-7f3a) or a unique prefix of one."""
MAX_REASON = 500
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SEPARATOR = re.compile(r"(?:^|\s)(?:--|\u2014|\u2013)(?:\s|$)")
_VALUE_OPTIONS = {
    "--to": "point",
    "--target": "target",
    "--database": "database",
    "--target-env": "target_env",
    "--namespaces": "namespaces",
}
_FLAGS = {"--in-place": "in_place", "--break-glass": "break_glass"}
USAGE = (
    "/restore <component> <backup-id|latest> [--to TIME] [--target NAME|DSN] "
    "[--database DB] [--target-env ENV] [--namespaces A,B] [--in-place] [--break-glass]"
    " -- <reason>\n"
    "/restore approve <request-id>\n"
    "/restore deny <request-id> -- <reason>\n"
    "/restore review <request-id> -- <notes>"
)
HELP = [
    (USAGE.splitlines()[0], "ask for a restore; a second person must approve it"),
    ("/restore approve <request-id>", "approve a pending restore (approvers)"),
    ("/restore deny <request-id> -- <reason>", "deny it, saying why"),
    ("/restore review <request-id> -- <notes>", "review a break-glass restore (approvers)"),
    ("/backup audit [N]", "the newest N audit records"),
]


class RestoreRequest(Command):
    """A restore to be approved."""

    action: ClassVar[str] = "restore.request"
    component: str
    ref: str = Field(pattern=REF.pattern)
    point: datetime | None = None
    target: str | None = Field(default=None, min_length=1, max_length=300)
    database: str | None = None
    target_env: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", description="secrets' target"
    )
    namespaces: str | None = Field(
        default=None, max_length=300, description="Kubernetes resources: only these namespaces"
    )
    in_place: bool = False
    reason: str = Field(min_length=1, max_length=MAX_REASON)

    def engine_options(self) -> dict[str, str | bool]:
        """The options an engine reads itself (the plan carries them, the digest covers them)."""
        found: dict[str, str | bool] = {}
        if self.target_env:
            found["target_env"] = self.target_env
        if self.namespaces:
            found["namespaces"] = self.namespaces
        return found

    @field_validator("namespaces")
    @classmethod
    def _namespace_names(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for name in value.split(","):
            if not _NAMESPACE.match(name):
                raise ValueError(
                    f"{_shown(name)!r} is not a namespace name (lowercase letters, digits, '-')"
                )
        return value

    @field_validator("database")
    @classmethod
    def _database_name(cls, value: str | None) -> str | None:
        # Any name PostgreSQL keeps (quote it: --database "my db"); control characters
        # stay out of chat, where the card renders the name (the CLI takes those too).
        if value is None:
            return None
        size = len(value.encode("utf-8", "surrogatepass"))
        if not 0 < size <= MAX_DATABASE_BYTES or any(
            unicodedata.category(c) == "Cc" for c in value
        ):
            raise ValueError(
                f"must be a database name of 1 to {MAX_DATABASE_BYTES} bytes"
                " without control characters"
            )
        return value


class RestoreBreakGlass(RestoreRequest):
    """A restore an incident commander runs alone (reviewed afterwards)."""

    action: ClassVar[str] = "restore.break-glass"


class RestoreApprove(Command):
    """``/restore approve <id>``."""

    action: ClassVar[str] = "restore.approve"
    request_id: str = Field(pattern=REQUEST_ID.pattern)


class RestoreDeny(Command):
    """``/restore deny <id> -- <reason>``."""

    action: ClassVar[str] = "restore.deny"
    request_id: str = Field(pattern=REQUEST_ID.pattern)
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class RestoreReview(Command):
    """``/restore review <id> -- <notes>``."""

    action: ClassVar[str] = "restore.review"
    request_id: str = Field(pattern=REQUEST_ID.pattern)
    notes: str = Field(min_length=1, max_length=MAX_REASON)


class RestoreHelp(Command):
    """``/restore help``."""

    action: ClassVar[str] = "restore.help"


def parse_restore(text: str, components: Sequence[str]) -> Command:
    """Parse the text after ``/restore``."""
    head, free = _split(text)
    tokens = tokenize(head, USAGE)
    if not tokens or tokens[0].lower() == "help":
        return RestoreHelp()
    verb = tokens[0].lower()
    try:
        if verb in ("approve", "deny", "review"):
            return _decision(verb, tokens[1:], free)
        return _request(tokens, free, components)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "input"
        raise UsageError(f"{field}: {first['msg'].lower()}", hint="usage:\n" + USAGE) from None


def _split(text: str) -> tuple[str, str]:
    match = _SEPARATOR.search(text)
    if match is None:
        return text, ""
    free = text[match.end() :].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text[: match.start()], free.strip()


def _decision(verb: str, rest: list[str], free: str) -> Command:
    if len(rest) != 1:
        raise UsageError(f"/restore {verb} takes one request id", hint="usage:\n" + USAGE)
    request_id = rest[0]
    if not REQUEST_ID.match(request_id):
        raise UsageError(
            f"{_shown(rest[0])!r} is not a request id",
            hint="request ids look like rr-20261124T0300Z-a1b2c3",
        )
    if verb == "approve":
        return RestoreApprove(request_id=request_id)
    if not free:
        what = "a denial needs a reason" if verb == "deny" else "a review needs notes"
        raise UsageError(what, hint=f"/restore {verb} {request_id} -- <text>")
    if verb == "deny":
        return RestoreDeny(request_id=request_id, reason=free)
    return RestoreReview(request_id=request_id, notes=free)


def _request(tokens: list[str], reason: str, components: Sequence[str]) -> Command:
    values: dict[str, object] = {}
    positionals: list[str] = []
    items = iter(tokens)
    for token in items:
        name = token.lower()
        if name in _FLAGS:
            values[_FLAGS[name]] = True
        elif name in _VALUE_OPTIONS:
            value = next(items, None)
            if value is None:
                raise UsageError(f"{name} needs a value", hint="usage:\n" + USAGE)
            values[_VALUE_OPTIONS[name]] = _time(value) if name == "--to" else value
        elif token.startswith("-"):
            raise UsageError(
                f"unknown option {_shown(token)!r} for /restore", hint="usage:\n" + USAGE
            )
        else:
            positionals.append(token)
    if len(positionals) != 2:
        raise UsageError(
            "say which component and which backup (an id or latest)", hint="usage:\n" + USAGE
        )
    component, ref = positionals[0].lower(), positionals[1]
    ref = "latest" if ref.lower() == "latest" else ref
    if component not in components:
        raise UsageError(
            f"unknown component {_shown(positionals[0])!r}",
            hint=f"valid components: {', '.join(components)}",
        )
    if ref != "latest" and (not ref.startswith(f"{component}-") or not REF.match(ref)):
        raise UsageError(
            f"{_shown(positionals[1])!r} is not 'latest' or a backup id of {component}",
            hint=f"backup ids look like {component}-20261124T0300Z-7f3a",
        )
    if not reason:
        raise UsageError("a restore needs a reason", hint=f"/restore {component} {ref} … -- <why>")
    model = RestoreBreakGlass if values.pop("break_glass", False) else RestoreRequest
    return model(component=component, ref=ref, reason=reason, **values)  # type: ignore[arg-type]


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise UsageError(
            f"--to {_shown(text)!r} is not a time", hint="use ISO 8601, e.g. 2026-11-24T03:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _shown(token: str) -> str:
    printable = "".join(ch if ch.isprintable() else "?" for ch in token)
    return printable if len(printable) <= 40 else printable[:39] + "…"
