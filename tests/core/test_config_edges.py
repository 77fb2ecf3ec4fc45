"""Settings models at their edges: each refusal's words, URL parts, namespaces and RPOs."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from workers.core.config import (
    EncryptionSettings,
    InfisicalComponent,
    RedisSettings,
    Settings,
    SlackSettings,
    StorageSettings,
    install_id,
    shown_url,
)

STORE = "s3://kosmos-backups/site-a"
ETCD = {"kind": "etcd", "frequency": "6h", "retention": "7d"}


def refusal(model: type[Any], **fields: Any) -> str:
    """The one message pydantic reports for a model refused on ``fields``."""
    with pytest.raises(ValidationError) as caught:
        model(**fields)
    [error] = caught.value.errors()
    return str(error["msg"])


def settings(**fields: Any) -> Settings:
    data: dict[str, Any] = {"storage": {"url": STORE}, "components": {"etcd": ETCD}}
    return Settings.model_validate(data | fields)


def test_an_install_is_named_by_the_first_eight_hex_digits_of_its_stores_hash() -> None:
    assert install_id(STORE) == hashlib.sha256(STORE.encode()).hexdigest()[:8]
    assert len(install_id(STORE)) == 8 and install_id(STORE) != install_id(STORE + "/b")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://bob:s3cret@cache:6379/0", "redis://bob:***@cache:6379/0"),
        ("redis://bob:s3@cr@t@cache:6379/0", "redis://bob:***@cache:6379/0"),
        ("redis://bob@cache:6379/0", "redis://bob@cache:6379/0"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://cache/0?password=s3cret&db=1", "redis://cache/0?password=***&db=1"),
        ("redis://cache/0?db=1&PASSWORD=s3cret", "redis://cache/0?db=1&password=***"),
        ("redis://cache/0?passwords=2", "redis://cache/0?passwords=2"),
    ],
)
def test_a_shown_url_hides_every_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert shown_url(url) == shown


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3:///prefix", "'s3:///prefix' has no bucket (expected s3://bucket/prefix)"),
        ("file://", "'file://' is not an absolute file:// path (file:///var/backups)"),
        (
            "file://host/srv",
            "'file://host/srv' is not an absolute file:// path (file:///var/backups)",
        ),
        ("ftp://host/dir", "'ftp://host/dir' must start with s3:// or file://"),
        ("/var/backups", "'/var/backups' must start with s3:// or file://"),
    ],
)
def test_a_storage_url_is_refused_word_for_word(url: str, message: str) -> None:
    assert refusal(StorageSettings, url=url) == f"Value error, {message}"


def test_a_storage_urls_parts() -> None:
    s3 = StorageSettings(url="s3://kosmos-backups/site-a/daily/")
    assert (s3.scheme, s3.bucket, s3.prefix) == ("s3", "kosmos-backups", "site-a/daily")
    assert StorageSettings(url="s3://kosmos-backups").prefix == ""
    local = StorageSettings(url="file://localhost/var/backups")
    assert (local.scheme, local.path) == ("file", "/var/backups")
    assert StorageSettings(url="file:///var/backups/").path == "/var/backups/"


def test_age_recipients_are_checked_and_named_by_their_start() -> None:
    kinds = ("age1qqqq", "ssh-ed25519 AAAA", "ssh-rsa AAAA")
    assert EncryptionSettings(recipients=kinds).recipients == kinds
    message = refusal(EncryptionSettings, recipients=("age1ok", "ssh-ed25519AAAAC3NzaC1lZDI1NTE5"))
    assert message == "Value error, 'ssh-ed25519AAAAC'... is not an age recipient"


@pytest.mark.parametrize(
    ("url", "kept", "configured"),
    [
        (None, None, False),
        ("", None, False),
        ("embedded", "embedded", False),
        ("redis://cache:6379/0", "redis://cache:6379/0", True),
        ("rediss://cache:6380/0", "rediss://cache:6380/0", True),
        ("unix:///run/redis.sock", "unix:///run/redis.sock", True),
    ],
)
def test_a_redis_url_is_one_redis_or_the_embedded_one(
    url: str | None, kept: str | None, configured: bool
) -> None:
    redis = RedisSettings(url=url)
    assert (redis.url, redis.configured) == (kept, configured)


@pytest.mark.parametrize("url", ["http://cache:6379", "Embedded", "cache:6379"])
def test_any_other_redis_url_is_refused_word_for_word(url: str) -> None:
    assert refusal(RedisSettings, url=url) == (
        "Value error, must be a redis://, rediss:// or unix:// URL, or 'embedded'"
    )


def test_an_infisical_client_left_empty_is_not_configured() -> None:
    fields = {"kind": "infisical", "frequency": "1d", "retention": "90d"}
    empty = InfisicalComponent.model_validate(fields | {"client_id": "", "client_secret": ""})
    assert (empty.client_id, empty.client_secret) == (None, None)
    given = InfisicalComponent.model_validate(fields | {"client_id": "id", "client_secret": "s"})
    assert given.client_id is not None and given.client_id.get_secret_value() == "id"
    assert given.client_secret is not None and given.client_secret.get_secret_value() == "s"


@pytest.mark.parametrize(
    ("tokens", "configured"),
    [
        ({"bot_token": "xoxb", "signing_secret": "s"}, True),
        ({"bot_token": "xoxb", "app_token": "xapp"}, True),
        ({"bot_token": "xoxb"}, False),
        ({"signing_secret": "s", "app_token": "xapp"}, False),
    ],
)
def test_slack_needs_a_bot_token_and_a_way_in(tokens: dict[str, str], configured: bool) -> None:
    assert SlackSettings.model_validate(tokens).configured is configured


def test_an_install_keeps_its_own_namespace_unless_one_is_configured() -> None:
    own = f"kosmos-{install_id(STORE)}"
    assert settings().redis.key_prefix == own
    assert settings(redis={"url": "redis://cache/0"}).redis == RedisSettings(
        url="redis://cache/0", key_prefix=own
    )
    assert settings(redis={"key_prefix": "shared"}).redis.key_prefix == "shared"
    assert settings(redis=RedisSettings(key_prefix="kosmos")).redis.key_prefix == "kosmos"
    built = Settings.model_validate(
        {"storage": StorageSettings(url=STORE), "components": {"etcd": ETCD}}
    )
    assert built.redis.key_prefix == own
    assert settings().rq_queue("kosmos-etcd") == f"{own}:kosmos-etcd"
    assert Settings.model_validate(settings()) == settings()


def test_a_missing_store_url_is_reported_by_its_own_field() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({"storage": {}, "components": {}})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [
        (("storage", "url"), "missing")
    ]


@pytest.mark.parametrize("name", ["Etcd", "etcd_main", "9etcd"])
def test_a_component_name_is_refused_word_for_word(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(components={name: ETCD})
    [error] = caught.value.errors()
    assert error["msg"] == (
        f"Value error, {name!r} is not a valid component name (lowercase, digits, -)"
    )


def test_a_component_is_found_by_name_or_not_at_all() -> None:
    assert settings().component("etcd").kind == "etcd"
    with pytest.raises(KeyError):
        settings().component("postgres")


@pytest.mark.parametrize(
    ("own", "frequency", "objective", "rpo"),
    [
        (None, "1h", "1h", timedelta(hours=1)),
        (None, "6h", "1h", timedelta(hours=6)),
        (None, "30m", "1h", timedelta(hours=1)),
        ("15m", "6h", "1h", timedelta(minutes=15)),
    ],
)
def test_a_components_rpo_is_its_own_else_the_objective_never_below_its_frequency(
    own: str | None, frequency: str, objective: str, rpo: timedelta
) -> None:
    component = ETCD | {"frequency": frequency, "rpo": own}
    configured = settings(components={"etcd": component}, objectives={"rpo": objective})
    assert configured.rpo_for("etcd") == rpo
