"""Metrics at scrape time: engines not built yet and unreachable sources are told apart."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import generate_latest

from tests.services import free_port
from workers.context import Context
from workers.core.config import Settings
from workers.metrics import build_registry


def test_not_built_engines_are_no_rpo_breach_and_a_dead_source_is_unreachable(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    dead = f"host=127.0.0.1 port={free_port()} user=postgres password=never-shown"
    settings = make_settings(**{"redis.url": redis_url, "components.postgres.dsn": dead})
    text = generate_latest(build_registry(Context(settings))).decode()
    assert 'kosmos_backup_engine_built{component="postgres"} 1.0' in text
    assert 'kosmos_backup_rpo_breached{component="postgres"} 1.0' in text
    assert 'kosmos_backup_source_reachable{component="postgres"} 0.0' in text
    # MinIO's engine is built: never backed up, it breaches, and its example endpoint is dead.
    assert 'kosmos_backup_engine_built{component="minio"} 1.0' in text
    assert 'kosmos_backup_rpo_breached{component="minio"} 1.0' in text
    assert 'kosmos_backup_source_reachable{component="minio"} 0.0' in text
    # secrets has an engine but ships disabled (no age recipients): no breach.
    assert 'kosmos_backup_engine_built{component="secrets"} 1.0' in text
    assert 'kosmos_backup_rpo_breached{component="secrets"} 0.0' in text
    # etcd's engine is built: never snapshotted, it breaches, and the example's endpoints are dead.
    assert 'kosmos_backup_engine_built{component="etcd"} 1.0' in text
    assert 'kosmos_backup_rpo_breached{component="etcd"} 1.0' in text
    assert 'kosmos_backup_source_reachable{component="etcd"} 0.0' in text
    # Velero's engine is built: never backed up is a breach, and no kubeconfig is no reach.
    assert 'kosmos_backup_engine_built{component="kubernetes"} 1.0' in text
    assert 'kosmos_backup_rpo_breached{component="kubernetes"} 1.0' in text
    assert 'kosmos_backup_source_reachable{component="kubernetes"} 0.0' in text
    assert "never-shown" not in text
