"""Configuration: the example file, ${VAR} substitution, KOSMOS__ overrides, error messages."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG
from workers.config_loader import load_settings, parse_settings
from workers.core.config import PostgresComponent, Settings
from workers.core.errors import ConfigError

SECRETS = {
    "OSS_ACCESS_KEY": "LTAI5tSECRETaccess",
    "OSS_SECRET_KEY": "oss-secret-Zq8vW2",
    "KOSMOS_PG_DSN": "host=db user=backup password=pg-secret-7Yh3",
    "MINIO_SECRET_KEY": "minio-secret-Pp41",
    "INFISICAL_CLIENT_SECRET": "st.infisical-secret-Kk9",
    "SLACK_BOT_TOKEN": "xoxb-slack-secret-1",
    "SLACK_SIGNING_SECRET": "signing-secret-2",
    "SLACK_APP_TOKEN": "xapp-slack-secret-3",
}


def example() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    return loaded


def parse(raw: dict[str, Any] | str, env: dict[str, str] | None = None) -> Settings:
    text = raw if isinstance(raw, str) else yaml.safe_dump(raw)
    return parse_settings(text, env or {}, origin="test.yaml")


def problem(raw: dict[str, Any] | str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(raw, env)
    message = caught.value.message
    assert "\n" not in message
    assert caught.value.exit_code == 2
    return message


def test_example_mirrors_the_reference_page() -> None:
    settings = parse(EXAMPLE_CONFIG.read_text())
    schedule = {name: (c.kind, c.frequency, c.retention) for name, c in settings.components.items()}
    assert schedule == {
        "postgres": ("postgres", timedelta(hours=1), timedelta(days=30)),
        "minio": ("minio", timedelta(days=1), timedelta(days=90)),
        "etcd": ("etcd", timedelta(hours=6), timedelta(days=7)),
        "kubernetes": ("velero", timedelta(days=1), timedelta(days=30)),
        "secrets": ("infisical", timedelta(days=1), timedelta(days=90)),
    }
    postgres = settings.components["postgres"]
    assert postgres.kind == "postgres" and postgres.continuous
    assert settings.storage.scheme == "s3"
    assert settings.storage.bucket == "kosmos-backups-staging"
    assert settings.storage.prefix == "kosmos"
    assert settings.storage.addressing_style == "path"
    assert settings.storage.region == "me-central-1"
    assert settings.storage.checksums == "when_required"
    assert settings.objectives.rpo == timedelta(hours=1)
    assert settings.objectives.rto == timedelta(hours=4)
    assert settings.slack.roles.approvers == ("@sre-leads",)
    # A daily component cannot meet a 1 h objective; its RPO is its frequency.
    assert settings.rpo_for("postgres") == timedelta(hours=1)
    assert settings.rpo_for("minio") == timedelta(days=1)


def test_embedded_defaults_validate(tmp_path: Path) -> None:
    settings = load_settings(environ={"HOME": str(tmp_path)})
    assert list(settings.components) == ["postgres", "minio", "etcd", "kubernetes", "secrets"]
    assert settings.storage.url == f"file://{tmp_path}/.local/share/kosmos-backup/store"


def test_config_path_from_environment(tmp_path: Path) -> None:
    raw = example()
    raw["objectives"]["rpo"] = "2h"
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_settings(environ={"KOSMOS_BACKUP_CONFIG": str(path)}).objectives.rpo == timedelta(
        hours=2
    )


def test_bad_duration_names_the_key() -> None:
    raw = example()
    raw["components"]["postgres"]["retention"] = "30x"
    assert problem(raw).startswith("components.postgres.retention: '30x' is not a duration")


@pytest.mark.parametrize("url", ["s3:///kosmos", "s3://", "s3:/kosmos"])
def test_s3_url_without_bucket_names_the_key(url: str) -> None:
    raw = example()
    raw["storage"]["url"] = url
    message = problem(raw)
    assert message.startswith("storage.url: ")
    assert "bucket" in message or "s3://" in message


def test_other_url_schemes_are_refused() -> None:
    raw = example()
    raw["storage"]["url"] = "ftp://host/dir"
    assert problem(raw).startswith("storage.url: 'ftp://host/dir' must start with s3:// or file://")


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("components", "postgres", "retension"), "components.postgres.retension"),
        (("storage", "bukket"), "storage.bukket"),
        (("colour",), "colour"),
    ],
)
def test_unknown_key_names_the_key(path: tuple[str, ...], key: str) -> None:
    raw = example()
    node = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = "1d"
    assert problem(raw) == f"{key}: is not a known setting"


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("components", "etcd", "frequency"), "components.etcd.frequency"),
        (("storage", "url"), "storage.url"),
        (("storage",), "storage"),
        (("components",), "components"),
    ],
)
def test_missing_required_key_names_the_key(path: tuple[str, ...], key: str) -> None:
    raw = example()
    node = raw
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    assert problem(raw) == f"{key}: is required"


def test_bad_kind_names_the_component_and_hides_its_settings() -> None:
    raw = example()
    raw["components"]["postgres"]["kind"] = "postgresql"
    raw["components"]["postgres"]["dsn"] = "host=db password=hunter2"
    message = problem(raw)
    assert message.startswith("components.postgres: kind 'postgresql' is unknown")
    assert "hunter2" not in message
    del raw["components"]["postgres"]["kind"]
    assert problem(raw).startswith("components.postgres: needs a 'kind'")


def test_bad_component_name_is_refused() -> None:
    raw = example()
    raw["components"]["Bad_Name"] = raw["components"].pop("etcd")
    assert "'Bad_Name' is not a valid component name" in problem(raw)


def test_wrongly_typed_secret_is_not_echoed() -> None:
    raw = example()
    raw["storage"]["secret_access_key"] = 123456789
    message = problem(raw)
    assert message.startswith("storage.secret_access_key: ")
    assert "123456789" not in message


def test_yaml_syntax_error_names_the_line() -> None:
    message = problem("storage:\n  url: [unclosed\ncomponents: {}\n")
    assert message.startswith("test.yaml line ")


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "missing.yaml", environ={})
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="binary.yaml"):
        load_settings(binary, environ={})


def test_variables_are_substituted() -> None:
    settings = parse(EXAMPLE_CONFIG.read_text(), SECRETS | {"REDIS_URL": "redis://r:6379/3"})
    assert settings.storage.access_key_id is not None
    assert settings.storage.access_key_id.get_secret_value() == SECRETS["OSS_ACCESS_KEY"]
    postgres = settings.components["postgres"]
    assert isinstance(postgres, PostgresComponent)
    assert postgres.dsn.get_secret_value() == SECRETS["KOSMOS_PG_DSN"]
    assert settings.redis.url == "redis://r:6379/3"


def test_defaults_apply_when_variables_are_unset() -> None:
    settings = parse(EXAMPLE_CONFIG.read_text(), {})
    assert settings.redis.url == "redis://127.0.0.1:6379/0"
    postgres = settings.components["postgres"]
    assert isinstance(postgres, PostgresComponent)
    assert (
        postgres.dsn.get_secret_value() == "host=localhost port=5432 user=postgres dbname=postgres"
    )


def test_variables_inside_text_and_lists() -> None:
    raw = example()
    raw["storage"]["url"] = "s3://${BUCKET}/${PREFIX:-kosmos}/x"
    raw["components"]["minio"]["buckets"] = ["${B1}", "media"]
    settings = parse(raw, {"BUCKET": "b1", "B1": "docs"})
    assert settings.storage.url == "s3://b1/kosmos/x"
    assert settings.components["minio"].buckets == ("docs", "media")  # type: ignore[union-attr]


def test_missing_variable_names_the_key_and_the_variable() -> None:
    raw = example()
    raw["components"]["secrets"]["client_secret"] = "${INFISICAL_SECRET_MISSING}"
    message = problem(raw)
    assert message == (
        "components.secrets.client_secret: environment variable INFISICAL_SECRET_MISSING is not set"
    )


def test_overrides_reach_sections_nested_keys_and_lists() -> None:
    env = {
        "KOSMOS__STORAGE__URL": "file:///var/backups",
        "KOSMOS__COMPONENTS__POSTGRES__DSN": "host=10.0.0.5 user=backup",
        "KOSMOS__COMPONENTS__POSTGRES__DATABASES": "[app, auth]",
        "KOSMOS__COMPONENTS__ETCD__FREQUENCY": "3h",
        "KOSMOS__SLACK__ROLES__APPROVERS": "[U01, '@leads']",
        "KOSMOS__OBJECTIVES__RPO": "30m",
        "KOSMOS__STORAGE__MAX_CONCURRENCY": "8",
    }
    settings = parse(EXAMPLE_CONFIG.read_text(), env)
    assert settings.storage.scheme == "file" and settings.storage.path == "/var/backups"
    postgres = settings.components["postgres"]
    assert postgres.dsn.get_secret_value() == "host=10.0.0.5 user=backup"  # type: ignore[union-attr]
    assert postgres.databases == ("app", "auth")  # type: ignore[union-attr]
    assert settings.components["etcd"].frequency == timedelta(hours=3)
    assert settings.slack.roles.approvers == ("U01", "@leads")
    assert settings.objectives.rpo == timedelta(minutes=30)
    assert settings.storage.max_concurrency == 8


def test_override_wins_over_an_unset_variable() -> None:
    raw = example()
    raw["storage"]["url"] = "${NOT_SET_ANYWHERE}"
    settings = parse(raw, {"KOSMOS__STORAGE__URL": "file:///srv/b"})
    assert settings.storage.url == "file:///srv/b"


def test_override_scalars_stay_text() -> None:
    # A secret such as 0123 must not become the number 83 (YAML 1.1 octal).
    settings = parse(EXAMPLE_CONFIG.read_text(), {"KOSMOS__STORAGE__SECRET_ACCESS_KEY": "0123"})
    assert settings.storage.secret_access_key is not None
    assert settings.storage.secret_access_key.get_secret_value() == "0123"


def test_bad_overrides_name_the_variable() -> None:
    env = {"KOSMOS__OBJECTIVES__RPO__UNIT": "h"}
    assert problem(EXAMPLE_CONFIG.read_text(), env).startswith("KOSMOS__OBJECTIVES__RPO__UNIT: ")
    assert problem(EXAMPLE_CONFIG.read_text(), {"KOSMOS__STORAGE__": "x"}).startswith(
        "KOSMOS__STORAGE__: "
    )
    assert problem(
        EXAMPLE_CONFIG.read_text(), {"KOSMOS__COMPONENTS__ETCD__RETENTION": "7days"}
    ).startswith("components.etcd.retention: '7days' is not a duration")


def test_slack_tokens_come_from_the_environment() -> None:
    settings = parse(EXAMPLE_CONFIG.read_text(), SECRETS)
    slack = settings.slack
    assert (
        slack.bot_token is not None and slack.bot_token.get_secret_value() == "xoxb-slack-secret-1"
    )
    assert slack.signing_secret is not None
    assert slack.signing_secret.get_secret_value() == "signing-secret-2"
    assert (
        slack.app_token is not None and slack.app_token.get_secret_value() == "xapp-slack-secret-3"
    )
    assert slack.configured
    assert not parse(EXAMPLE_CONFIG.read_text(), {}).slack.configured


def test_config_file_tokens_win_over_the_environment() -> None:
    raw = example()
    raw["slack"]["bot_token"] = "xoxb-from-file"
    settings = parse(raw, SECRETS)
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-from-file"


def test_secrets_never_show_in_repr_or_json() -> None:
    settings = parse(
        EXAMPLE_CONFIG.read_text(), SECRETS | {"KOSMOS__APPROVAL_KEY": "approval-secret-4"}
    )
    shown = " ".join(
        [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    )
    for value in [*SECRETS.values(), "approval-secret-4"]:
        assert value not in shown
    assert "**********" in settings.model_dump_json()
