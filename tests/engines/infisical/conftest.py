"""Fixtures of the secrets engine: the fake Infisical API, age keys, settings and a context."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest
import yaml

from tests.engines.infisical.world import HBA, PROJECT
from tests.fakes.infisical import FakeInfisical
from tests.pgcluster import PgCluster, scratch_dir, write_for_postgres
from workers.config_loader import parse_settings
from workers.context import Context
from workers.core.config import Settings


@pytest.fixture
def infisical() -> Iterator[FakeInfisical]:
    """A fake Infisical with one project (prod, staging, dr-scratch) and a few secrets."""
    fake = FakeInfisical().start()
    fake.add_project(PROJECT, "prod", "staging", "dr-scratch")
    tag = fake.add_tag(PROJECT, "database")
    fake.put_secret(PROJECT, "prod", "/", "API_KEY", "api-Vq7-prod", comment="the public API")
    fake.put_secret(PROJECT, "prod", "/db", "PG_PASSWORD", "pg-Zr2-prod", tag_ids=(tag,))
    fake.put_secret(PROJECT, "prod", "/db/replica", "PG_REPLICA", "rep-Lk9-prod")
    fake.put_secret(PROJECT, "staging", "/", "API_KEY", "api-Wd3-staging")
    yield fake
    fake.stop()


@pytest.fixture
def age_keys(tmp_path: Path) -> tuple[str, Path]:
    """An age recipient and the identity file that decrypts for it."""
    identity = pyrage.x25519.Identity.generate()
    path = tmp_path / "age-identity.txt"
    path.write_text(f"{identity}\n")
    path.chmod(0o600)
    return str(identity.to_public()), path


@pytest.fixture
def secrets_config(
    tmp_path: Path, infisical: FakeInfisical, age_keys: tuple[str, Path]
) -> dict[str, Any]:
    """A config with one secrets component on the fake, encrypted to ``age_keys``."""
    recipient, identity_file = age_keys
    return {
        "storage": {"url": f"file://{tmp_path}/store"},
        "encryption": {"recipients": [recipient], "identity_file": str(identity_file)},
        "components": {
            "secrets": {
                "kind": "infisical",
                "frequency": "1d",
                "retention": "90d",
                "api_url": infisical.url,
                "client_id": "${INFISICAL_CLIENT_ID}",
                "client_secret": "${INFISICAL_CLIENT_SECRET}",
                "projects": [PROJECT],
                "environments": ["prod", "staging"],
            }
        },
    }


@pytest.fixture
def build_context(
    infisical: FakeInfisical, secrets_config: dict[str, Any]
) -> Callable[..., Context]:
    """A Context over ``secrets_config`` (changed by ``edit``), credentials from the env."""

    def build(edit: Callable[[dict[str, Any]], None] | None = None) -> Context:
        config = yaml.safe_load(yaml.safe_dump(secrets_config))
        if edit is not None:
            edit(config)
        env = {
            "INFISICAL_CLIENT_ID": infisical.client_id,
            "INFISICAL_CLIENT_SECRET": infisical.client_secret,
        }
        settings: Settings = parse_settings(yaml.safe_dump(config), env)
        return Context(settings)

    return build


@pytest.fixture
def ctx(build_context: Callable[..., Context]) -> Context:
    """The secrets engine's context on the fake."""
    return build_context()


@pytest.fixture(scope="session")
def scram_cluster() -> Iterator[PgCluster]:
    """A scratch cluster where every role but postgres logs in with a SCRAM password."""
    cluster = PgCluster(scratch_dir("rotate"), settings={"log_statement": "all"}).init()
    write_for_postgres(cluster.data_dir / "pg_hba.conf", HBA)
    cluster.start()
    yield cluster
    cluster.remove()
