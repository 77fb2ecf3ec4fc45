"""The engine registry: one line per kind, each engine imported when that kind is asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workers.core.errors import EngineError
from workers.engines import ENGINE_MODULES, ENGINES, engine_for, has_engine

ROOT = Path(__file__).resolve().parents[2]


def engines_loaded_after(code: str) -> list[str]:
    """The kinds whose folder is imported once ``code`` ran in a fresh interpreter."""
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "kinds = {m.split('.')[2] for m in sys.modules if m.startswith('workers.engines.')}\n"
        "print(json.dumps(sorted(kinds)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_each_kind_is_the_engine_module_of_its_own_folder() -> None:
    for kind, module in ENGINE_MODULES.items():
        assert module == f"workers.engines.{kind}.engine"
        assert (ROOT / "workers" / "engines" / kind / "engine.py").is_file()


def test_the_registry_lists_every_kind_and_gives_each_its_engine() -> None:
    assert sorted(ENGINES) == sorted(ENGINE_MODULES) and len(ENGINES) == len(ENGINE_MODULES)
    for kind in ENGINE_MODULES:
        assert has_engine(kind) and kind in ENGINES
        assert engine_for(kind) is ENGINES[kind]
        assert engine_for(kind).kind == kind


def test_a_kind_without_an_engine_is_not_built_yet() -> None:
    assert not has_engine("mysql") and "mysql" not in ENGINES
    assert ENGINES.get("mysql") is None
    with pytest.raises(EngineError, match="the mysql engine is not built yet"):
        engine_for("mysql")


def test_asking_whether_a_kind_is_built_imports_no_engine() -> None:
    code = (
        "from workers.engines import ENGINES, has_engine\n"
        "assert has_engine('postgres') and 'minio' in ENGINES and len(sorted(ENGINES)) == 5"
    )
    assert engines_loaded_after(code) == []


def test_an_engine_is_imported_when_its_kind_is_asked_for_and_alone() -> None:
    code = "from workers.engines import engine_for\nengine_for('etcd')"
    assert engines_loaded_after(code) == ["etcd"]
    code = "from workers.engines import ENGINES\nlist(ENGINES.values())"
    assert engines_loaded_after(code) == sorted(ENGINE_MODULES)
