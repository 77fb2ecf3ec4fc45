"""Import directions and the one-subprocess-runner rule, checked on the source with ``ast``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = frozenset(sys.stdlib_module_names)

# What bot/ may import when a module loads: the core, the job contract, its own modules,
# and the light front-door libraries. Anything else is imported inside the function that
# needs it, so a Slack bot or a CLI never pays for boto3 or the Kubernetes client.
BOT_WORKERS_MODULES = (
    "workers.core",
    "workers.config_loader",
    "workers.local_state",
    "workers.context",
    "workers.components",
    "workers.queues",
    "workers.jobs",
    "workers.restore.requests",
    "workers.restore.planning",
)
BOT_THIRD_PARTY = frozenset({"click", "rich", "slack_bolt", "slack_sdk", "pydantic", "structlog"})
HEAVY = ("boto3", "botocore", "kubernetes", "psycopg", "barman", "pyrage", "zstandard")
SUBPROCESS_RUNNER = "workers/process.py"


def python_files(*folders: str) -> list[Path]:
    """Every .py file under the given top-level folders."""
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def module_name(path: Path) -> str:
    """``bot/cli/__init__.py`` -> ``bot.cli``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Absolute dotted names an import statement loads (``from a import b`` gives a.b)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        keep = len(base) - node.level + (1 if is_package else 0)
        anchor = ".".join(base[:keep])
        target = f"{anchor}.{node.module}" if node.module else anchor
    else:
        target = node.module or ""
    # `from workers import queues` loads workers.queues; `from x import func` just loads x.
    return [f"{target}.{alias.name}" for alias in node.names] + [target]


def all_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement anywhere in the module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def load_time_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: module and class bodies, not functions.

    ``if TYPE_CHECKING:`` blocks never run and are skipped.
    """
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []) or []:
                    if isinstance(child, ast.ExceptHandler):
                        pending.extend(child.body)
                    elif isinstance(child, ast.stmt):
                        pending.append(child)


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def top(name: str) -> str:
    return name.split(".", 1)[0]


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", python_files("workers/core"), ids=module_name)
def test_core_imports_only_stdlib_pydantic_and_core(path: Path) -> None:
    module = module_name(path)
    bad = []
    for node in all_imports(parse(path)):
        for name in imported_names(node, module, path.name == "__init__.py"):
            if top(name) in STDLIB or top(name) == "pydantic" or name == "__future__":
                continue
            if within(name, ("workers.core",)) or name == "workers":
                continue
            bad.append(f"line {node.lineno}: {name}")
    assert not bad, f"{module} must stay pure (stdlib + pydantic + workers.core): {bad}"


@pytest.mark.parametrize("path", python_files("bot"), ids=module_name)
def test_bot_loads_only_the_core_the_contract_and_front_door_libraries(path: Path) -> None:
    module = module_name(path)
    bad = []
    for node in load_time_imports(parse(path)):
        for name in imported_names(node, module, path.name == "__init__.py"):
            first = top(name)
            if first in STDLIB or first in BOT_THIRD_PARTY or first == "bot" or name == "workers":
                continue
            if name == "__future__" or within(name, BOT_WORKERS_MODULES):
                continue
            # `from workers.core.x import Name` also yields workers.core.x.Name: fine.
            bad.append(f"line {node.lineno}: {name}")
    assert not bad, f"{module} imports at load time what front doors must not: {bad}"


@pytest.mark.parametrize("path", python_files("bot", "workers"), ids=module_name)
def test_only_the_process_module_runs_subprocesses(path: Path) -> None:
    relative = path.relative_to(ROOT).as_posix()
    tree = parse(path)
    problems = []
    for node in ast.walk(tree):
        literal_false = isinstance(node, ast.keyword) and ast.unparse(node.value) == "False"
        if isinstance(node, ast.keyword) and node.arg == "shell" and not literal_false:
            problems.append(f"line {node.value.lineno}: shell={ast.unparse(node.value)}")
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.system", "os.popen"):
            problems.append(f"line {node.lineno}: {ast.unparse(node.func)}()")
    if relative != SUBPROCESS_RUNNER:
        for node in all_imports(tree):
            names = imported_names(node, module_name(path), path.name == "__init__.py")
            if any(top(n) in ("subprocess", "pty") for n in names):
                problems.append(f"line {node.lineno}: imports {names[-1]}")
    assert not problems, f"{relative}: subprocesses go through {SUBPROCESS_RUNNER}: {problems}"


def test_the_subprocess_runner_itself_never_uses_a_shell() -> None:
    source = (ROOT / SUBPROCESS_RUNNER).read_text()
    assert "import subprocess" in source
    assert "shell=True" not in source


def test_importing_the_cli_loads_no_heavy_client() -> None:
    probe = (
        "import json, sys\n"
        "import bot.cli\n"
        f"print(json.dumps(sorted(n for n in {list(HEAVY)!r} if n in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


MODEL_BASE = "workers/core/model.py"


def direct_basemodels(path: Path) -> list[str]:
    """Classes in a file that derive from pydantic's BaseModel itself."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(
            (isinstance(b, ast.Name) and b.id == "BaseModel")
            or (isinstance(b, ast.Attribute) and b.attr == "BaseModel")
            for b in node.bases
        )
    ]


def test_every_model_builds_its_validator_on_first_use() -> None:
    # A model built at import costs every CLI process its schema build (issue 14's start-up
    # target); workers.core.model.Model defers that to first use.
    offenders = {
        str(path.relative_to(ROOT)): names
        for path in python_files("bot", "workers")
        if path.relative_to(ROOT).as_posix() != MODEL_BASE and (names := direct_basemodels(path))
    }
    assert offenders == {}
    assert direct_basemodels(ROOT / MODEL_BASE) == ["Model"]


def test_a_deferred_model_still_validates() -> None:
    probe = (
        "from workers.core.model import Model\n"
        "class Point(Model):\n"
        "    x: int\n"
        "assert not Point.__pydantic_complete__\n"
        "assert Point.model_validate({'x': '3'}).x == 3\n"
        "assert Point.__pydantic_complete__\n"
        "try:\n"
        "    Point(x='three')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ValidationError"


def test_the_checks_see_a_violation_when_there_is_one() -> None:
    # Guard against a checker that passes because it looks at nothing.
    bad = ast.parse(
        "import boto3\n"
        "from workers.storage import store_s3\n"
        "import subprocess\n"
        "def f():\n"
        "    import kubernetes\n"
        "    subprocess.run(['x'], shell=True)\n"
    )
    loaded = [n for node in load_time_imports(bad) for n in imported_names(node, "bot.x", False)]
    assert "boto3" in loaded and "workers.storage.store_s3" in loaded
    assert "kubernetes" not in loaded
    everywhere = [n for node in all_imports(bad) for n in imported_names(node, "bot.x", False)]
    assert "kubernetes" in everywhere
    shells = [n for n in ast.walk(bad) if isinstance(n, ast.keyword) and n.arg == "shell"]
    assert len(shells) == 1
    assert len(python_files("bot")) > 3 and len(python_files("workers/core")) > 5


# -- directions over every import, function-level ones included ----------------------------------

PRODUCT = {module_name(p) for p in python_files("bot", "workers")}
SHARED_IO = (
    "workers.storage",
    "workers.state",
    "workers.process",
    "workers.context",
    "workers.config_loader",
    "workers.runbooks.call",
)
"""What every kind shares, which an engine may use beside the core and its own folder."""
BOT_MAY_USE = (
    "workers.core",
    "workers.queues",
    "workers.components",
    "workers.restore.planning",
    "workers.restore.requests",
    "workers.runbooks.flow",
    "workers.runbooks.gates",
    "workers.runbooks.durability",
    "workers.runbooks.drills",
    "workers.runbooks.operations",
    "workers.config_loader",
    "workers.local_state",
    "workers.context",
)
"""The core; the contract (queues for jobs; components, restore and runbook flows by name in
the door's own process); the settings (their loader, the state directory, the context)."""
BOT_EXCEPTIONS = {
    # The CLI is the whole product's: its worker, scheduler and up commands run the workers'
    # own loops, and up its embedded Redis, in the same process.
    ("bot.cli.bot", "workers.worker"),
    ("bot.cli.jobs", "workers.worker"),
    ("bot.cli.jobs", "workers.scheduler"),
    ("bot.cli.up", "workers.worker"),
    ("bot.cli.up", "workers.process"),
    ("bot.cli.up", "workers.state.embedded_redis"),
}
ENGINE_EXCEPTIONS = {
    # PostgreSQL's runbook operations claim databases and instances through the runbooks'
    # resource ledger, which still knows PostgreSQL itself.
    ("workers.engines.postgres.runbook_ops", "workers.runbooks.resources"),
}
INTO_ENGINE_EXCEPTIONS = {
    # Modules outside an engine's folder that still open it directly instead of going through
    # the registry (workers.engines): the runbooks' resource ledger and restore planning's
    # PostgreSQL checks, which belong in workers/engines/postgres/.
    ("workers.runbooks.resources", "workers.engines.postgres.queries"),
    ("workers.runbooks.resources", "workers.engines.postgres.logical"),
    ("workers.runbooks.resources", "workers.engines.postgres.pitr"),
    # A runbook check's SQL probe asks PostgreSQL.
    ("workers.runbooks.probes", "workers.engines.postgres.queries"),
    ("workers.runbooks.probes", "workers.engines.postgres.conninfo"),
    ("workers.runbooks.resources", "workers.engines.postgres.cluster"),
    ("workers.runbooks.resources", "workers.engines.postgres.conninfo"),
    ("workers.runbooks.resources", "workers.engines.postgres.restoration"),
    ("workers.restore.planning", "workers.engines.postgres.identity"),
    ("workers.restore.planning", "workers.engines.postgres.conninfo"),
}
KNOWN_CIRCLES: set[frozenset[str]] = set()
"""Import circles still to break, each with its reason (none today)."""


def product_imports(path: Path) -> set[tuple[int, str]]:
    """(line, module of ours) for every import anywhere in ``path`` (the longest module name)."""
    module = module_name(path)
    found = set()
    for node in all_imports(parse(path)):
        names = set()
        for name in imported_names(node, module, path.name == "__init__.py"):
            while name and name not in PRODUCT:
                name = name.rpartition(".")[0]
            if name and name != module and name != "workers":
                names.add(name)
        # `from workers.runbooks import flow` is an import of flow, not of the package's own code.
        found |= {(node.lineno, n) for n in names if not any(o.startswith(n + ".") for o in names)}
    return found


def crossings(paths: list[Path], allowed: Callable[[str, str], bool]) -> set[tuple[str, str]]:
    """(module, imported) pairs among ``paths`` that ``allowed`` refuses."""
    return {
        (module_name(p), name)
        for p in paths
        for _, name in product_imports(p)
        if not allowed(module_name(p), name)
    }


def engine_may_import(module: str, name: str) -> bool:
    """Engines import the core, the shared I/O and their own folder (the registry: engines)."""
    own = ".".join(module.split(".")[:3])  # workers.engines.<kind>
    return within(name, ("workers.core", *SHARED_IO, own)) or (
        module == "workers.engines" and name.startswith("workers.engines.")
    )


def test_engines_import_the_core_the_shared_io_and_their_own_folder() -> None:
    found = crossings(python_files("workers/engines"), engine_may_import)
    assert found - ENGINE_EXCEPTIONS == set()


def test_only_the_registry_opens_an_engine_folder() -> None:
    outside = [p for p in python_files("bot", "workers") if "engines" not in p.parts]
    found = crossings(outside, lambda module, name: not name.startswith("workers.engines."))
    assert found - INTO_ENGINE_EXCEPTIONS == set()


def test_bot_uses_only_the_core_the_contract_and_the_settings() -> None:
    def allowed(module: str, name: str) -> bool:
        return not name.startswith("workers") or within(name, BOT_MAY_USE)

    assert crossings(python_files("bot"), allowed) - BOT_EXCEPTIONS == set()


def test_the_exceptions_are_all_still_needed() -> None:
    # An exception nobody needs any more would let that import come back unnoticed.
    every = {
        (module_name(p), n) for p in python_files("bot", "workers") for _, n in product_imports(p)
    }
    stale = (BOT_EXCEPTIONS | ENGINE_EXCEPTIONS | INTO_ENGINE_EXCEPTIONS) - every
    assert stale == set(), "remove these from the exception lists"
    circles = {frozenset(c) for c in import_circles()}
    assert KNOWN_CIRCLES - circles == set(), "remove these from KNOWN_CIRCLES"


def import_circles() -> list[list[str]]:
    """Every strongly connected group of two or more product modules (Tarjan), by imports."""
    graph = {
        module_name(p): {n for _, n in product_imports(p)} for p in python_files("bot", "workers")
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                top_node = stack.pop()
                group.append(top_node)
                if top_node == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_circle_among_product_modules() -> None:
    circles = [c for c in import_circles() if frozenset(c) not in KNOWN_CIRCLES]
    assert circles == []


def test_the_direction_checks_see_function_level_imports() -> None:
    # The etcd engine imports its drivers inside its methods: the checks see those imports.
    engine_file = ROOT / "workers" / "engines" / "etcd" / "engine.py"
    inside_functions = [
        n
        for node in ast.walk(parse(engine_file))
        if isinstance(node, ast.FunctionDef)
        for n in ast.walk(node)
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("workers.engines.etcd")
    ]
    assert inside_functions, "the etcd engine imports its drivers inside its methods"
    assert ("workers.engines.etcd.engine", "workers.engines.etcd.backup") in crossings(
        [engine_file], lambda module, name: not name.startswith("workers.engines.etcd.")
    )
