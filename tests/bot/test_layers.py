"""bot/'s folders import one way: shared modules, grammar, replies, blocks, handlers, relays, doors.

Checked on the source with ``ast``, imports inside functions included, so a circle cannot
hide behind a function-level import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {
    "": 0,  # roles, mrkdwn, formats, metrics: shared by everything above
    "grammar": 1,
    "replies": 2,
    "blocks": 3,
    "handlers": 4,
    "relays": 5,
    "slack": 6,
    "console": 6,
    "cli": 7,
    "launch": 8,  # the console script: the WAL commands' fast paths before the CLI loads
}
"""Each folder of bot/ and its layer: a module imports only from its own folder or lower layers."""


def module_of(path: Path) -> str:
    """``bot/grammar/__init__.py`` -> ``bot.grammar``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def folder_of(module: str) -> str:
    """The folder of bot/ a module is in (``""`` for bot/'s own modules)."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS and parts[1]):
        return parts[1]
    return ""


def bot_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import of a bot module, anywhere in the tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "bot":
                found += [(node.lineno, f"bot.{alias.name}") for alias in node.names]
            elif node.module.startswith("bot."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("bot.")]
    return found


def upward(module: str, tree: ast.AST) -> list[str]:
    """The imports of ``module`` that reach a higher layer or a sibling folder of its layer."""
    here = folder_of(module)
    bad = []
    for line, target in bot_imports(tree):
        there = folder_of(target)
        if there != here and LAYERS[there] >= LAYERS[here]:
            bad.append(f"line {line}: {target} ({there or 'bot'} is not below {here or 'bot'})")
    return bad


def sources() -> list[Path]:
    return sorted((ROOT / "bot").rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=module_of)
def test_bot_imports_run_one_way(path: Path) -> None:
    module = module_of(path)
    assert folder_of(module) in LAYERS, f"{module}: a new folder needs its layer in LAYERS"
    bad = upward(module, ast.parse(path.read_text(), filename=str(path)))
    assert not bad, f"{module} imports upwards: {bad}"


def test_no_import_circle_among_bot_modules() -> None:
    modules = {module_of(p): p for p in sources()}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        for _, target in bot_imports(ast.parse(path.read_text())):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                graph.setdefault(module, set()).add(target)
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                circles.append(" -> ".join([*stack[stack.index(child) :], child]))
            elif not state.get(child):
                visit(child)
        stack.pop()
        state[node] = 2

    for module in sorted(modules):
        if not state.get(module):
            visit(module)
    assert not circles, f"import circles in bot/: {circles}"


def test_the_check_sees_an_upward_import() -> None:
    # Guard against a checker that passes because it looks at nothing.
    tree = ast.parse(
        "from bot.mrkdwn import clip\n"
        "def f():\n"
        "    from bot.slack.app import web_client\n"
        "    from bot import console\n"
    )
    assert upward("bot.grammar.command", tree) == [
        "line 3: bot.slack.app (slack is not below grammar)",
        "line 4: bot.console (console is not below grammar)",
    ]
    assert upward("bot.slack.app", ast.parse("from bot.console.chat import ConsoleChat\n"))
    assert upward("bot.cli.bot", ast.parse("from bot.slack.server import serve_http\n")) == []
    assert len(sources()) > 20
