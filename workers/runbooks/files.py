"""Runbook YAML files: load, validate, and locate every problem by file, line and step.

YAML is parsed twice from the same text: once into plain data for pydantic, once into the
node tree whose marks give each key's line, so an error in ``steps[3].depends_on[1]``
is reported at the line where that dependency is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from workers.core.errors import ConfigError, NotFoundError
from workers.core.runbook import (
    InputSpec,
    ManualStep,
    ReportSpec,
    Runbook,
    Step,
    StepMode,
    step_mode,
)
from workers.core.runbook_check import Problem, problems

SUFFIXES = (".yaml", ".yml")
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "runbooks"
"""The runbooks shipped beside the package (``runbooks/`` at the repository root)."""


@dataclass(frozen=True)
class Located:
    """A problem with where it is: file, line (1-based, 0 when unknown) and step id."""

    file: str
    line: int
    step: str | None
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        step = f" step {self.step!r}:" if self.step else ""
        level = "warning" if self.warning else "error"
        return f"{where}: {level}:{step} {self.message}"


class RunbookError(ConfigError):
    """A runbook file that cannot be used; ``problems`` lists every error found."""

    def __init__(self, located: list[Located]) -> None:
        errors = [p for p in located if not p.warning]
        first = errors[0] if errors else located[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(str(first) + more, hint="see: kosmos-backup runbook check FILE")
        self.problems = located


@dataclass(frozen=True)
class Checked:
    """A runbook that loaded, with its warnings and how each step runs here."""

    runbook: Runbook
    file: str
    warnings: list[Located]
    modes: dict[str, StepMode]


def runbook_dir(configured: str | None = None) -> Path:
    """Where runbooks live: the configured directory, else the shipped one."""
    return Path(configured) if configured else DEFAULT_DIR


def runbook_files(directory: Path) -> list[Path]:
    """Every runbook file in ``directory``, by name."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())


def find_runbook(directory: Path, name: str) -> Path:
    """The file of runbook ``name``; NotFoundError naming the available ones."""
    for path in runbook_files(directory):
        if path.stem == name:
            return path
    names = ", ".join(p.stem for p in runbook_files(directory)) or "none"
    raise NotFoundError(f"no runbook {name!r} in {directory}", hint=f"runbooks: {names}")


def load_runbook(
    path: Path,
    *,
    available: Callable[[str], bool] = lambda op: True,
    objective: timedelta | None = None,
) -> Checked:
    """Parse and validate one file; RunbookError listing every located problem."""
    text = _read(path)
    return parse_runbook(text, str(path), available=available, objective=objective)


def parse_runbook(
    text: str,
    origin: str,
    *,
    available: Callable[[str], bool] = lambda op: True,
    objective: timedelta | None = None,
) -> Checked:
    """Validate runbook YAML ``text`` read from ``origin``."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        reason = getattr(exc, "problem", None) or str(exc)
        raise RunbookError([Located(origin, line, None, f"not valid YAML: {reason}")]) from None
    if not isinstance(data, dict):
        raise RunbookError([Located(origin, 1, None, "a runbook is a mapping (name, steps, …)")])
    locate = _Locator(origin, root, data)
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        found = [locate(_problem(error)) for error in exc.errors()]
        found += [locate(p) for p in problems(_lenient(data)) if not p.warning]
        raise RunbookError(found) from None
    found = [locate(p) for p in problems(runbook, objective)]
    if any(not p.warning for p in found):
        raise RunbookError(found)
    modes = {step.id: step_mode(step, available) for step in runbook.steps}
    return Checked(runbook, origin, [p for p in found if p.warning], modes)


def check_files(
    paths: Iterable[Path],
    *,
    available: Callable[[str], bool] = lambda op: True,
    objective: timedelta | None = None,
) -> tuple[list[Checked], list[Located]]:
    """Load every file; return what loaded and every problem found (errors and warnings)."""
    loaded: list[Checked] = []
    found: list[Located] = []
    for path in paths:
        try:
            checked = load_runbook(path, available=available, objective=objective)
        except RunbookError as exc:
            found += exc.problems
            continue
        except NotFoundError as exc:
            found.append(Located(str(path), 0, None, exc.message))
            continue
        loaded.append(checked)
        found += checked.warnings
    return loaded, found


def _lenient(data: dict[str, Any]) -> Runbook:
    """The runbook with each invalid step stood in for by a bare manual step, so the graph
    and reference checks still run and every problem of the file is reported at once."""
    steps: list[Any] = []
    raw_steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    for index, raw in enumerate(raw_steps or []):
        raw = raw if isinstance(raw, dict) else {}
        try:
            steps.append(TypeAdapter(Step).validate_python(raw))
            continue
        except ValidationError:
            pass
        deps = raw.get("depends_on")
        deps = [str(d) for d in deps] if isinstance(deps, list) else []
        given = raw.get("id")
        step_id = given if isinstance(given, str) else f"step-{index + 1}"
        with contextlib.suppress(ValidationError):
            steps.append(ManualStep(id=step_id, title="?", kind="manual", depends_on=tuple(deps)))
    inputs = data.get("inputs") if isinstance(data.get("inputs"), dict) else {}
    return Runbook.model_construct(
        name="lenient",
        title="?",
        inputs={k: InputSpec() for k in inputs or {}},
        steps=tuple(steps),
        report=ReportSpec(),
        rto=None,
    )


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise NotFoundError(f"runbook file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read runbook {path}: {exc.strerror}") from exc


_KINDS = "manual, job, check or approval"


def _problem(error: Any) -> Problem:
    """A pydantic error as a Problem, worded for the person editing the file."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid" and ctx.get("discriminator") == "'kind'":
        message = f"unknown step kind {ctx.get('tag')!r} (expected {_KINDS})"
        return Problem(path=(*loc, "kind"), message=message)
    if kind == "union_tag_invalid":
        message = f"unknown {ctx.get('discriminator', 'type')} {ctx.get('tag')!r}"
        return Problem(path=(*loc, "type"), message=f"{message} ({ctx.get('expected_tags')})")
    if kind == "union_tag_not_found":
        return Problem(path=loc, message=f"missing {ctx.get('discriminator', 'kind')}")
    field = ".".join(str(part) for part in loc if not isinstance(part, int)) or "runbook"
    if kind == "missing":
        return Problem(path=loc, message=f"{field} is required")
    if kind == "extra_forbidden":
        return Problem(path=loc, message=f"unknown field {str(loc[-1])!r}")
    return Problem(path=loc, message=f"{field}: {error.get('msg', 'invalid')}")


class _Locator:
    """Maps a problem's path to a line in the file and the step it belongs to."""

    def __init__(self, origin: str, root: yaml.Node | None, data: dict[str, Any]) -> None:
        self.origin = origin
        self.root = root
        self.data = data

    def __call__(self, problem: Problem) -> Located:
        return Located(
            self.origin,
            self.line(problem.path),
            problem.step or self.step(problem.path),
            problem.message,
            problem.warning,
        )

    def line(self, path: tuple[str | int, ...]) -> int:
        """The line of the deepest node of ``path`` that exists in the file."""
        node = self.root
        if node is None:
            return 0
        for part in path:
            child = _child(node, part)
            if child is None:
                continue  # a pydantic-only part (a union tag) or a missing field
            node = child
        return node.start_mark.line + 1

    def step(self, path: tuple[str | int, ...]) -> str | None:
        """The id of the step the path points into, when it has one."""
        if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
            steps = self.data.get("steps")
            if isinstance(steps, list) and path[1] < len(steps):
                item = steps[path[1]]
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    return item["id"]
                return f"#{path[1] + 1}"
        return None


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value  # type: ignore[no-any-return]
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        return node.value[part] if 0 <= part < len(node.value) else None  # type: ignore[no-any-return]
    return None
