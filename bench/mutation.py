"""Mutation score of the core: mutmut over ``workers/core/`` (and the restore guard) with its tests.

mutmut rewrites the source it mutates, so it runs on a copy of the tree in a temporary
directory, never in the checkout. Prints the score per scope and every surviving mutant::

    python -m bench.mutation [--guard] [--only approvals.py] [--children 2] [--keep]

``--guard`` adds ``workers/restore/guard.py`` with the restore-approval scenarios (slow: a
bot under gunicorn and real restores per mutant). CI does not run this; it is a bench.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = "workers/core/*"
GUARD = "workers/restore/guard.py"
CORE_TESTS = ["tests/core/"]
GUARD_TESTS = ["tests/scenarios/test_restore_replay.py", "tests/scenarios/test_restore_guard.py"]
COPIED = ("bot", "workers", "tests", "examples", "runbooks", "pyproject.toml")
RESULT = re.compile(r"^\s+(?P<name>\S+): (?P<status>.+)$")


def copy_tree(into: Path) -> None:
    """The files mutmut needs, without caches, virtual environments or earlier runs."""
    skip = shutil.ignore_patterns("__pycache__", ".mypy_cache", ".pytest_cache", "mutants")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=skip)
        else:
            shutil.copy2(source, into / name)


def configure(tree: Path, only: list[str], tests: list[str]) -> None:
    """Append mutmut's section to the copy's pyproject (the checkout's stays as it is)."""
    lines = [
        "",
        "[tool.mutmut]",
        'source_paths = ["workers/"]',
        f"only_mutate = {only!r}",
        'also_copy = ["bot/", "examples/", "runbooks/"]',
        f"pytest_add_cli_args_test_selection = {tests!r}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]',
    ]
    with open(tree / "pyproject.toml", "a", encoding="utf-8") as out:
        out.write("\n".join(lines).replace("'", '"') + "\n")


def mutmut(tree: Path, *args: str, timeout: float | None = None) -> str:
    """Run ``mutmut`` in the copy; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if not k.startswith("KOSMOS__")},
    )
    if done.returncode != 0:
        raise SystemExit(f"mutmut {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr}")
    return done.stdout


def results(tree: Path) -> dict[str, str]:
    """Every mutant's status, by its name (``workers.core.x.x_f__mutmut_3``)."""
    found = {}
    for line in mutmut(tree, "results", "--all", "true").splitlines():
        match = RESULT.match(line)
        if match:
            found[match["name"]] = match["status"].strip()
    return found


def report(statuses: dict[str, str], tree: Path, show: bool) -> float:
    """Print the score per scope and the survivors; return the core's score in percent."""
    core_score = 0.0
    for scope, prefix in (("core", "workers.core."), ("restore guard", "workers.restore.guard.")):
        mine = {k: v for k, v in statuses.items() if k.startswith(prefix)}
        if not mine:
            continue
        counts = Counter(mine.values())
        # A mutant no test runs is a survivor too: only killed and timed-out ones count as dead.
        tested = sum(counts[s] for s in ("killed", "survived", "timeout", "no tests"))
        dead = counts["killed"] + counts["timeout"]
        score = 100.0 * dead / tested if tested else 0.0
        core_score = score if scope == "core" else core_score
        print(f"{scope}: {score:.1f}% killed ({dead} of {tested}); {dict(sorted(counts.items()))}")
        for name in sorted(k for k, v in mine.items() if v in ("survived", "no tests")):
            print(f"  {mine[name]}: {name}")
            if show:
                print(mutmut(tree, "show", name))
    return core_score


def main(argv: list[str] | None = None) -> int:
    """Copy the tree, run mutmut there, print the score; exit 1 below ``--goal``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guard", action="store_true", help="also mutate the restore guard")
    parser.add_argument("--only", action="append", default=[], help="a core file, e.g. rpo.py")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    parser.add_argument("--keep", action="store_true", help="keep the copy and say where")
    parser.add_argument("--goal", type=float, default=90.0)
    args = parser.parse_args(argv)
    only = [f"workers/core/{name}" for name in args.only] or [CORE]
    tests = CORE_TESTS + (GUARD_TESTS if args.guard else [])
    tree = Path(tempfile.mkdtemp(prefix="kosmos-mutation-"))
    try:
        copy_tree(tree)
        configure(tree, only + ([GUARD] if args.guard else []), tests)
        started = time.monotonic()
        mutmut(tree, "run", "--max-children", str(args.children))
        print(f"mutmut {time.monotonic() - started:.0f}s in {tree}")
        score = report(results(tree), tree, args.show)
    finally:
        if args.keep:
            print(f"kept {tree}")
        else:
            shutil.rmtree(tree, ignore_errors=True)
    return 0 if score >= args.goal else 1


if __name__ == "__main__":
    raise SystemExit(main())
