"""The catalog commands through the installed ``kosmos-backup`` script, on real stores."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.drill_sample import DRILL, DRILL_LINE
from tests.fakes.kubernetes import FakeKubernetes
from tests.services import MotoServer, free_port
from tests.storage.stores import local_store, s3_store
from workers.core.manifest import Manifest, VerificationRecord, VerificationState
from workers.storage.repository import PipelineOptions, Repository, index_key

NAMES = ["postgres", "minio", "etcd", "kubernetes", "secrets"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``kosmos-backup --config examples/kosmos-backup.yaml ARGS`` with only ``env`` overrides."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    full_env.update(env)
    full_env["COLUMNS"] = "200"  # rich wraps tables to the terminal width
    return subprocess.run(
        ["kosmos-backup", "--config", str(EXAMPLE_CONFIG), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def backup(repo: Repository, component: str, started: datetime, took: timedelta) -> Manifest:
    """Commit one small backup that started at ``started``."""
    repo.clock = lambda: started
    with repo.begin(component, f"{component}-test") as writer:
        writer.write("data", [b"payload " * 1000])
        writer.write("notes.txt", [b"[error] brackets [/x] stay text"], compress=False)
        repo.clock = lambda: started + took
        return writer.commit(source={"note": "[bold]not markup[/bold]"})


@dataclass
class Catalog:
    """A store holding backups made moments ago, and the overrides that point the CLI at it."""

    env: dict[str, str]
    repo: Repository
    postgres: list[Manifest]
    etcd: Manifest
    kubernetes: Manifest
    now: datetime


def fill(repo: Repository, env: dict[str, str]) -> Catalog:
    now = datetime.now(UTC)
    older = backup(repo, "postgres", now - timedelta(minutes=50), timedelta(minutes=2))
    newer = backup(repo, "postgres", now - timedelta(minutes=12), timedelta(minutes=2))
    record = VerificationRecord(
        state=VerificationState.PASSED, at=now - timedelta(minutes=5), detail="[red]restored[/x]"
    )
    newer = repo.record_verification(newer, record)
    etcd = backup(repo, "etcd", now - timedelta(hours=2), timedelta(minutes=1))
    kubernetes = backup(repo, "kubernetes", now - timedelta(minutes=20), timedelta(minutes=1))
    # MinIO's engine is built, but its example endpoint answers nowhere here: off, it is
    # neither probed nor due, and the boards below speak of postgres and the kinds not built.
    return Catalog(
        {**env, "KOSMOS__COMPONENTS__MINIO__ENABLED": "false"},
        repo,
        [older, newer],
        etcd,
        kubernetes,
        now,
    )


@pytest.fixture
def local_catalog(tmp_path: Path) -> Catalog:
    root = tmp_path / "store"
    return fill(Repository(local_store(root)), {"KOSMOS__STORAGE__URL": f"file://{root}"})


@pytest.fixture
def s3_catalog(s3_server: MotoServer, bucket: str, s3_env: dict[str, str]) -> Catalog:
    repo = Repository(s3_store(s3_server.url, bucket), PipelineOptions())
    return fill(repo, s3_env)


@pytest.fixture(params=["local", "s3"])
def catalog(request: pytest.FixtureRequest) -> Catalog:
    return request.getfixturevalue(f"{request.param}_catalog")  # type: ignore[no-any-return]


def test_status_json_reports_every_component(catalog: Catalog) -> None:
    doc = json.loads(ok(run_cli("status", "--json", env=catalog.env)))
    rows = {row["name"]: row for row in doc["components"]}
    assert list(rows) == NAMES
    assert doc["objectives"] == {
        "rpo_seconds": 3600.0,
        "rto_seconds": 14400.0,
        "rpo": "1h",
        "rto": "4h",
    }

    latest = catalog.postgres[1]
    postgres = rows["postgres"]
    assert postgres["last_backup"]["id"] == latest.id
    assert postgres["state"] == "fresh" and postgres["rpo_breached"] is False
    assert 9 * 60 < postgres["age_seconds"] < 12 * 60
    assert postgres["rpo_seconds"] == 3600 and postgres["breached_by_seconds"] == 0
    assert postgres["retained"] == 2
    assert postgres["oldest"] == catalog.postgres[0].finished_at.isoformat()
    assert postgres["next_due"] == (latest.started_at + timedelta(hours=1)).isoformat()
    assert postgres["last_verification"]["state"] == "passed"

    assert postgres["engine"] == "built" and postgres["unreachable"] is None

    # etcd snapshots every 6 hours: a 2-hour-old one is fresh against its 6-hour RPO.
    etcd = rows["etcd"]
    assert etcd["engine"] == "built" and etcd["state"] == "fresh"
    assert etcd["last_backup"]["id"] == catalog.etcd.id
    assert etcd["rpo_breached"] is False and etcd["breached_by_seconds"] == 0
    assert etcd["rpo_seconds"] == 6 * 3600
    assert etcd["next_due"] == (catalog.etcd.started_at + timedelta(hours=6)).isoformat()
    assert etcd["last_verification"] is None

    # Velero's engine is built: its fresh backup counts, and the board says why the cluster
    # cannot be reached (the example config names no kubeconfig).
    kubernetes = rows["kubernetes"]
    assert kubernetes["engine"] == "built" and kubernetes["state"] == "fresh"
    assert kubernetes["last_backup"]["id"] == catalog.kubernetes.id
    assert kubernetes["rpo_breached"] is False and "kubeconfig" in kubernetes["unreachable"]

    minio = rows["minio"]  # built, but off in these tests
    assert minio["engine"] == "built" and minio["last_backup"] is None
    assert minio["rpo_breached"] is False and minio["enabled"] is False

    # secrets has an engine but ships disabled (its exports need age recipients).
    secrets = rows["secrets"]
    assert secrets["engine"] == "built" and secrets["state"] == "disabled"
    assert secrets["last_backup"] is None and secrets["rpo_breached"] is False


def test_a_stale_backup_is_in_breach_by_how_much(tmp_path: Path) -> None:
    root = tmp_path / "store"
    repo = Repository(local_store(root))
    now = datetime.now(UTC)
    backup(repo, "postgres", now - timedelta(hours=2, minutes=5), timedelta(minutes=2))
    env = {"KOSMOS__STORAGE__URL": f"file://{root}"}
    doc = json.loads(ok(run_cli("status", "postgres", "--json", env=env)))
    [postgres] = doc["components"]
    assert postgres["rpo_breached"] is True and postgres["state"] == "rpo breached"
    assert 3600 < postgres["breached_by_seconds"] < 3600 + 300  # finished 2h 3m ago
    board = ok(run_cli("status", "postgres", env=env))
    assert "RPO breached" in board and "(by 1h" in board and "overdue" in board


def test_status_board_for_people(local_catalog: Catalog) -> None:
    out = ok(run_cli("status", env=local_catalog.env))
    assert "RPO 1h, RTO 4h" in out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ ")}
    # Finished 10 minutes ago; started 12 minutes ago, so due again in about 48 minutes.
    assert "fresh" in lines["postgres"] and "10m ago" in lines["postgres"]
    assert "in 47m" in lines["postgres"] or "in 48m" in lines["postgres"]
    assert "passed" in lines["postgres"]
    assert "fresh" in lines["etcd"] and "1h 59m ago" in lines["etcd"]
    assert "RPO breached" not in out and "never backed up" not in out
    assert "fresh" in lines["kubernetes"] and "19m ago" in lines["kubernetes"]


def test_status_of_one_component(local_catalog: Catalog) -> None:
    doc = json.loads(ok(run_cli("status", "postgres", "--json", env=local_catalog.env)))
    assert [row["name"] for row in doc["components"]] == ["postgres"]
    out = ok(run_cli("status", "etcd", env=local_catalog.env))
    assert "etcd" in out and "postgres" not in out


def test_unknown_component_is_a_usage_error_naming_the_valid_ones(local_catalog: Catalog) -> None:
    for args in (("status", "nosuch"), ("list", "nosuch", "--json")):
        result = run_cli(*args, env=local_catalog.env)
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            "error: unknown component 'nosuch'",
            f"hint: valid components: {', '.join(NAMES)}",
        ]


def test_list_newest_first(catalog: Catalog) -> None:
    older, newer = catalog.postgres
    doc = json.loads(ok(run_cli("list", "postgres", "--json", env=catalog.env)))
    assert [b["id"] for b in doc["backups"]] == [newer.id, older.id]
    assert doc["backups"][0]["verification"]["state"] == "passed"
    assert doc["backups"][1]["size"] == older.total_size


def test_list_limit_empty_and_for_people(local_catalog: Catalog) -> None:
    older, newer = local_catalog.postgres
    env = local_catalog.env
    limited = json.loads(ok(run_cli("list", "postgres", "--limit", "1", "--json", env=env)))
    assert [b["id"] for b in limited["backups"]] == [newer.id]
    assert json.loads(ok(run_cli("list", "minio", "--json", env=env))) == {"backups": []}
    out = ok(run_cli("list", "postgres", env=env))
    assert "postgres: 2 backups" in out
    assert out.index(newer.id) < out.index(older.id)


def test_show_a_backup(catalog: Catalog) -> None:
    manifest = catalog.postgres[1]
    doc = json.loads(ok(run_cli("show", manifest.id, "--json", env=catalog.env)))
    assert Manifest.model_validate(doc) == manifest
    assert [o["name"] for o in doc["objects"]] == ["data.zst", "notes.txt"]


def test_show_for_people_prints_engine_text_literally(local_catalog: Catalog) -> None:
    manifest = local_catalog.postgres[1]
    out = ok(run_cli("show", manifest.id, env=local_catalog.env))
    assert manifest.id in out and "data.zst" in out and manifest.objects[0].sha256[:16] in out
    assert "[bold]not markup[/bold]" in out
    assert "verification: passed" in out and "[red]restored[/x]" in out


def test_show_takes_a_component_and_a_ref_like_verify(local_catalog: Catalog) -> None:
    older, newer = local_catalog.postgres
    env = local_catalog.env
    for args in (("postgres", "latest"), ("postgres",)):
        doc = json.loads(ok(run_cli("show", *args, "--json", env=env)))
        assert doc["id"] == newer.id
    for ref in (older.id, older.id[:-1]):
        doc = json.loads(ok(run_cli("show", "postgres", ref, "--json", env=env)))
        assert doc["id"] == older.id
    alone = run_cli("show", "latest", env=env)
    assert alone.returncode == 2
    assert alone.stderr.splitlines() == [
        "error: show latest needs a component",
        "hint: kosmos-backup show COMPONENT latest (components: " + ", ".join(NAMES) + ")",
    ]
    none = run_cli("show", "minio", "latest", env=env)
    assert none.returncode == 1 and none.stderr.splitlines() == [
        "error: minio: no good backup yet",
        "hint: see: kosmos-backup list minio",
    ]


@pytest.mark.parametrize(
    ("backup_id", "message"),
    [
        ("bogus", "error: 'bogus' is not a backup id (expected e.g. postgres-20261124T0300Z-7f3a)"),
        (
            "postgres-20261124T0300Z-0000",
            "error: backup postgres-20261124T0300Z-0000 does not exist",
        ),
    ],
)
def test_show_what_does_not_exist(local_catalog: Catalog, backup_id: str, message: str) -> None:
    result = run_cli("show", backup_id, env=local_catalog.env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith(message)
    assert "Traceback" not in result.stderr


def test_catalog_rebuild_after_losing_the_index(catalog: Catalog) -> None:
    store = catalog.repo.store
    store.delete([index_key(name) for name in NAMES])
    assert not store.exists(index_key("postgres"))
    out = ok(run_cli("catalog", "rebuild", env=catalog.env))
    assert out.splitlines() == [
        "postgres: 2 backups",
        "minio: 0 backups",
        "etcd: 1 backup",
        "kubernetes: 1 backup",
        "secrets: 0 backups",
    ]
    assert store.exists(index_key("postgres"))
    rebuilt = catalog.repo.index("postgres").backups
    assert [b.id for b in rebuilt] == [m.id for m in catalog.postgres]
    assert rebuilt[1].verification is not None  # the verification lives in the manifest too


def test_status_on_an_empty_store_breaches_what_has_an_engine(tmp_path: Path) -> None:
    env = {"KOSMOS__STORAGE__URL": f"file://{tmp_path}/empty"}
    doc = json.loads(ok(run_cli("status", "--json", env=env)))
    assert [
        (r["name"], r["last_backup"], r["rpo_breached"], r["engine"]) for r in doc["components"]
    ] == [
        ("postgres", None, True, "built"),
        ("minio", None, True, "built"),
        ("etcd", None, True, "built"),
        ("kubernetes", None, True, "built"),
        ("secrets", None, False, "built"),
    ]


def test_storage_outage_is_a_clear_error(s3_server: MotoServer, s3_env: dict[str, str]) -> None:
    from tests.services import free_port

    env = {**s3_env, "KOSMOS__STORAGE__ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    result = run_cli("status", "--json", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "storage unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_check_exits_1_on_any_breach_for_cron(local_catalog: Catalog) -> None:
    env = local_catalog.env
    calm = run_cli("status", "--check", env=env)
    assert calm.returncode == 0 and calm.stderr == ""  # nothing that has an engine is in breach
    strict = {**env, "KOSMOS__COMPONENTS__POSTGRES__RPO": "5m"}  # its newest dump is ~10 min old
    assert run_cli("status", env=strict).returncode == 0  # people read the board; cron asks --check
    breached = run_cli("status", "--check", env=strict)
    assert breached.returncode == 1
    assert "RPO breached" in breached.stdout  # the board still prints
    assert breached.stderr.splitlines() == ["RPO breached: postgres"]
    as_json = run_cli("status", "--check", "--json", env=strict)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["components"]
    other = run_cli("status", "etcd", "--check", env=strict)
    assert other.returncode == 0, other.stderr
    assert other.stderr == ""


def piped(*args: str, env: dict[str, str]) -> str:
    """Run the CLI as ``kosmos-backup ARGS | cat`` would, without a COLUMNS hint."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    full_env.pop("COLUMNS", None)
    full_env.pop("LINES", None)
    full_env.update(env)
    shell = subprocess.run(
        ["sh", "-c", 'kosmos-backup --config "$0" "$@" | cat', str(EXAMPLE_CONFIG), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    return shell.stdout


def test_piped_output_never_wraps_or_cuts_ids(local_catalog: Catalog, tmp_path: Path) -> None:
    # Every source answers (an unreachable one takes a second line on purpose).
    kube = FakeKubernetes().start()
    config = kube.kubeconfig(tmp_path / "kubeconfig")
    env = {**local_catalog.env, "KOSMOS__COMPONENTS__KUBERNETES__KUBECONFIG": str(config)}
    try:
        _piped_output(local_catalog, env)
    finally:
        kube.stop()


def _piped_output(local_catalog: Catalog, env: dict[str, str]) -> None:
    older, newer = local_catalog.postgres
    listed = piped("list", "postgres", env=env)
    assert "…" not in listed
    rows = [line for line in listed.splitlines() if line.startswith("│ ")]
    assert [row.split()[1] for row in rows] == [newer.id, older.id]
    board = piped("status", env={**env, "KOSMOS__COMPONENTS__POSTGRES__RPO": "5m"})
    rows = [line for line in board.splitlines() if line.startswith("│ ")]
    lines = {line.split()[1]: line for line in rows if line.split()[1] != "│"}
    assert list(lines) == NAMES  # one line per component: nothing wrapped onto a second
    # The only second lines are the board's own: a source that does not answer (no etcd here).
    assert all("✕ unreachable" in line for line in rows if line.split()[1] == "│")
    assert "RPO breached (by " in lines["postgres"] and "(postgres)" in lines["postgres"]
    assert "(infisical)" in lines["secrets"] and "disabled" in lines["secrets"]
    shown = piped("show", newer.id, env=env)
    assert "…" not in shown and newer.id in shown
    for entry in newer.objects:
        assert entry.sha256 in shown
    assert max(len(line) for line in shown.splitlines()) < 300  # no panel padded to the pipe


def test_status_shows_the_last_drill_a_finished_drill_left_in_storage(
    local_catalog: Catalog, redis_url: str
) -> None:
    # What a drill leaves beside the backups; Redis (another machine's, or restarted) has nothing.
    local_catalog.repo.store.put_bytes("_dr/last-drill.json", json.dumps(DRILL).encode())
    env = {**local_catalog.env, "KOSMOS__REDIS__URL": redis_url}
    board = piped("status", env=env)
    assert f"\n  {DRILL_LINE}\n" in board
    doc = json.loads(ok(run_cli("status", "--json", env=env)))
    assert doc["last_drill"] == DRILL
    # With Redis away the board still shows it, from the storage.
    away = {**env, "KOSMOS__REDIS__URL": f"redis://127.0.0.1:{free_port()}/0"}
    assert f"\n  {DRILL_LINE}\n" in piped("status", env=away)
