"""The engine contract, run for every registered kind on that kind's own fixture.

backup -> list -> verify (shallow, deep) -> restore -> what was restored matches -> prune.
A kind is registered in ``workers/engines/__init__.py``; its fixture is
``<kind>_contract_case`` in ``tests/engines/<kind>/contract.py`` (loaded by tests/conftest.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import get_args

import pytest

from tests.engines.case import ContractCase
from workers import engine as components
from workers.core.manifest import VerificationState
from workers.core.ports import no_progress
from workers.core.retention import Deletion
from workers.engines import ENGINES, engine_for


@pytest.fixture(params=sorted(ENGINES))
def case(request: pytest.FixtureRequest) -> ContractCase:
    """The contract case of one registered kind."""
    found: ContractCase = request.getfixturevalue(f"{request.param}_contract_case")
    assert found.ctx.settings.component(found.component).kind == request.param
    return found


def test_backup_list_verify_restore_and_prune(case: ContractCase) -> None:
    ctx, component = case.ctx, case.component
    kind = ctx.settings.component(component).kind
    engine = engine_for(kind)

    first = engine.backup(ctx, component, progress=no_progress)
    assert first.component == component and first.kind.startswith(kind)
    assert [b.id for b in components.list_backups(ctx, component)] == [first.id]

    shallow = engine.verify(ctx, component, first, deep=False, progress=no_progress)
    assert shallow.verification is not None
    assert shallow.verification.state == VerificationState.PASSED, shallow.verification.detail
    deep = engine.verify(ctx, component, first, deep=True, progress=no_progress)
    assert deep.verification is not None and deep.verification.deep
    assert deep.verification.state == VerificationState.PASSED, deep.verification.detail

    assert isinstance(case.restore_options, engine.restore_options)
    restored = engine.restore(ctx, component, first.id, case.restore_options, progress=no_progress)
    case.check_restored(restored)

    case.clock.tick(hours=1)
    second = engine.backup(ctx, component, progress=no_progress)
    retention = ctx.settings.component(component).retention
    case.clock.tick(seconds=(retention + timedelta(hours=1)).total_seconds())
    would = engine.prune(ctx, component, dry_run=True)
    assert [d.backup_id for d in would if isinstance(d, Deletion)] == [first.id]
    assert {b.id for b in components.list_backups(ctx, component)} == {first.id, second.id}
    gone = engine.prune(ctx, component, dry_run=False)
    assert [d.backup_id for d in gone if isinstance(d, Deletion)] == [first.id]
    assert [b.id for b in components.list_backups(ctx, component)] == [second.id]


def test_every_registered_engine_names_its_own_kind_and_models() -> None:
    for kind, engine in ENGINES.items():
        assert engine.kind == kind
        assert get_args(engine.config_model.model_fields["kind"].annotation) == (kind,)
        assert engine.restore_options.model_config.get("extra") == "forbid"
