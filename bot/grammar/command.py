"""What every command group's grammar is built from: the command model, verb tables, tokens.

Pure: no I/O. A table-driven group (``/backup``) is a :class:`Group` of verbs; each verb
names its model, its positional arguments and its options, so a new verb is one table entry,
and :func:`parse_group` binds typed words to it. ``/restore`` and ``/dr`` read their own
free-text forms on top of :func:`tokenize`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, ValidationError

from workers.core.errors import UsageError, cli_command
from workers.core.model import Model

CHAT_SPELLINGS: dict[tuple[str, ...], str] = {
    ("status",): "/backup status",
    ("list",): "/backup list",
    ("backup",): "/backup run",
    ("verify",): "/backup verify",
    ("audit", "show"): "/backup audit",
    ("dr", "start"): "/dr start",
    ("dr", "status"): "/dr status",
    ("dr", "resume"): "/dr resume",
    ("dr", "abort"): "/dr abort",
}
"""CLI commands (their leading words) that the chat has too, as typed in the chat."""
MAX_TEXT = 1000
"""Longer input is refused before it is tokenized."""
BACKUP_REF = re.compile(r"^[a-z][a-zA-Z0-9-]{0,79}$")
# Desktop clients turn "--" into an em or en dash; both are taken as the option prefix.
_DASHES = ("\u2014", "\u2013")


def chat_command(words: Sequence[str]) -> str:
    """A command suggested in the CLI's words, as typed in chat: ``/backup list postgres``.

    A command the chat does not have stays the CLI's, marked as one for a shell.
    """
    for length in (2, 1):
        spelled = CHAT_SPELLINGS.get(tuple(words[:length]))
        if spelled is not None:
            return " ".join((spelled, *words[length:]))
    return f"{cli_command(words)} (in a shell)"


class Command(Model):
    """A parsed chat command; ``action`` is what roles authorize."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: ClassVar[str] = ""


@dataclass(frozen=True)
class Argument:
    """A positional argument: a component name, a backup reference or a free word."""

    field: str
    required: bool
    kind: Literal["component", "ref", "word"] = "word"


@dataclass(frozen=True)
class Option:
    """An ``--option``: a flag (no value) or one that takes an integer."""

    name: str
    field: str
    takes_int: bool = False


@dataclass(frozen=True)
class Verb:
    """One subcommand: its model, its arguments and its usage line."""

    name: str
    model: type[Command]
    usage: str
    summary: str
    arguments: tuple[Argument, ...] = ()
    options: tuple[Option, ...] = ()


@dataclass(frozen=True)
class Group:
    """A slash command (``/backup``) and its verbs; empty text means ``default``."""

    name: str
    verbs: tuple[Verb, ...]
    default: str = "help"

    def verb(self, name: str) -> Verb | None:
        """The verb called ``name``, if any."""
        return next((v for v in self.verbs if v.name == name), None)

    def usage(self) -> str:
        """Every usage line of the group, one per line."""
        return "\n".join(v.usage for v in self.verbs)


def parse_group(group: Group, text: str, components: Sequence[str]) -> Command:
    """Parse ``text`` typed after ``/<group>`` against the group's verb table."""
    tokens = tokenize(text, group.usage())
    if not tokens:
        tokens = [group.default]
    verb = group.verb(tokens[0].lower())
    if verb is None:
        raise UsageError(
            f"unknown subcommand {_shown(tokens[0])!r} for /{group.name}",
            hint="usage:\n" + group.usage(),
        )
    values = _bind(verb, tokens[1:], components, group)
    try:
        return verb.model(**values)
    except ValidationError as exc:
        raise UsageError(_describe(exc), hint=f"usage: {verb.usage}") from None


def tokenize(text: str, usage: str) -> list[str]:
    """Split chat text like a shell would, after undoing Slack's escapes and smart dashes.

    ``usage`` is the command group's usage, shown when the text cannot be read.
    """
    if len(text) > MAX_TEXT:
        raise UsageError(f"command text is too long ({len(text)} characters, at most {MAX_TEXT})")
    clean = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    clean = clean.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'")
    clean = clean.replace("\u2019", "'").replace("\x00", " ")
    try:
        tokens = shlex.split(clean)
    except ValueError as exc:
        raise UsageError(f"cannot read the command: {exc}", hint="usage:\n" + usage) from None
    return [_undash(token) for token in tokens]


def _undash(token: str) -> str:
    for dash in _DASHES:
        if token.startswith(dash):
            return "--" + token[len(dash) :].lstrip("-")
    return token


def _bind(verb: Verb, tokens: list[str], components: Sequence[str], group: Group) -> dict[str, Any]:
    values: dict[str, Any] = {}
    positionals: list[str] = []
    items = iter(tokens)
    for token in items:
        if token.startswith("-") and len(token) > 1:
            name, eq, inline = token.partition("=")
            option = next((o for o in verb.options if o.name == name.lower()), None)
            if option is None:
                raise UsageError(
                    f"unknown option {_shown(name)!r} for /{group.name} {verb.name}",
                    hint=f"usage: {verb.usage}",
                )
            values[option.field] = _option_value(option, inline if eq else None, items, verb)
        else:
            positionals.append(token)
    if len(positionals) > len(verb.arguments):
        extra = positionals[len(verb.arguments)]
        raise UsageError(f"unexpected argument {_shown(extra)!r}", hint=f"usage: {verb.usage}")
    for argument, token in zip(verb.arguments, positionals, strict=False):
        values[argument.field] = _argument_value(argument, token, components, values, verb)
    for argument in verb.arguments[len(positionals) :]:
        if argument.required:
            raise UsageError(f"missing <{argument.field}>", hint=_with_components(verb, components))
    return values


def _option_value(option: Option, inline: str | None, items: Any, verb: Verb) -> bool | int:
    if not option.takes_int:
        if inline is not None:
            raise UsageError(f"{option.name} takes no value", hint=f"usage: {verb.usage}")
        return True
    raw = inline if inline is not None else next(items, None)
    if raw is None or not re.fullmatch(r"\d{1,6}", raw):
        shown = "nothing" if raw is None else repr(_shown(raw))
        raise UsageError(
            f"{option.name} needs a whole number, got {shown}", hint=f"usage: {verb.usage}"
        )
    return int(raw)


def _argument_value(
    argument: Argument,
    token: str,
    components: Sequence[str],
    values: dict[str, Any],
    verb: Verb,
) -> str:
    if argument.kind == "component":
        name = token.lower()
        if name not in components:
            raise UsageError(
                f"unknown component {_shown(token)!r}", hint=_with_components(verb, components)
            )
        return name
    if argument.kind == "ref":
        ref = "latest" if token.lower() == "latest" else token
        component = values.get("component")
        if ref != "latest" and (
            not BACKUP_REF.match(ref) or (component and not ref.startswith(f"{component}-"))
        ):
            raise UsageError(
                f"{_shown(token)!r} is not 'latest' or a backup id of {component}",
                hint=f"backup ids look like {component}-20261124T0300Z-7f3a; usage: {verb.usage}",
            )
        return ref
    return token.lower()


def _with_components(verb: Verb, components: Sequence[str]) -> str:
    return f"valid components: {', '.join(components) or '(none configured)'}\nusage: {verb.usage}"


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "input"
    return f"{field}: {first['msg'].lower()}"


def _shown(token: str) -> str:
    """A token as it may be echoed back: printable and short."""
    printable = "".join(ch if ch.isprintable() else "?" for ch in token)
    return printable if len(printable) <= 40 else printable[:39] + "…"
