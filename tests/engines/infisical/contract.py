"""The secrets engine's contract-test fixture: the fake Infisical, a local store, age keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest
import yaml

from tests.engines.case import ContractCase
from tests.fakes.infisical import FakeInfisical
from tests.storage.backups import Clock
from workers.config_loader import parse_settings
from workers.context import Context
from workers.engines.infisical.options import InfisicalRestoreOptions

PROJECT = "proj-contract"


@pytest.fixture
def infisical_contract_case(tmp_path: Path) -> Iterator[ContractCase]:
    """Secrets in two folders of prod, exported to a local store; restores go to dr-scratch."""
    fake = FakeInfisical().start()
    fake.add_project(PROJECT, "prod", "dr-scratch")
    fake.put_secret(PROJECT, "prod", "/", "API_KEY", "contract-api-value", comment="api")
    fake.put_secret(PROJECT, "prod", "/db/main", "PASSWORD", "contract-db-value")
    identity = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "age-identity.txt"
    key_file.write_text(f"{identity}\n")
    config = {
        "storage": {"url": f"file://{tmp_path}/store"},
        "encryption": {"recipients": [str(identity.to_public())], "identity_file": str(key_file)},
        "components": {
            "secrets": {
                "kind": "infisical",
                "frequency": "1d",
                "retention": "90d",
                "keep_last": 1,
                "api_url": fake.url,
                "client_id": fake.client_id,
                "client_secret": "${CONTRACT_SECRET}",
                "projects": [PROJECT],
                "environments": ["prod"],
            }
        },
    }
    settings = parse_settings(yaml.safe_dump(config), {"CONTRACT_SECRET": fake.client_secret})
    clock = Clock()

    def check_restored(result: Any) -> None:
        assert result.totals == {"create": 2, "update": 0, "unchanged": 0}
        for path, key in (("/", "API_KEY"), ("/db/main", "PASSWORD")):
            assert fake.value(PROJECT, "dr-scratch", path, key) == fake.value(
                PROJECT, "prod", path, key
            )

    yield ContractCase(
        ctx=Context(settings, clock=clock),
        clock=clock,
        component="secrets",
        restore_options=InfisicalRestoreOptions(target_env="dr-scratch"),
        check_restored=check_restored,
    )
    fake.stop()
