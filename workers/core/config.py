"""Settings models: one validated tree per process, built in its entry point."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlparse, urlsplit, urlunsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from workers.core.durations import Duration
from workers.core.ids import COMPONENT_NAME
from workers.core.model import Model

QUEUE_DEFAULT = "kosmos-default"
QUEUE_POSTGRES = "kosmos-postgres"
QUEUE_ETCD = "kosmos-etcd"


def install_id(storage_url: str) -> str:
    """A short id of one install, from its backup store: the store is what makes it one."""
    return hashlib.sha256(storage_url.encode()).hexdigest()[:8]


def shown_url(url: str) -> str:
    """``url`` for people: any password (in the userinfo or a ``password=`` query) as ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = "&".join(
        "password=***" if item.lower().startswith("password=") else item
        for item in parts.query.split("&")
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class _Model(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSettings(_Model):
    """Where backups live: ``s3://bucket/prefix`` (any S3-compatible store) or ``file:///dir``."""

    url: str
    endpoint_url: str | None = None
    region: str | None = Field(
        default=None, description="passed as given; OSS regions are not AWS ones"
    )
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    checksums: Literal["when_required", "when_supported"] = Field(
        default="when_required",
        description="boto3 checksum trailers; OSS and older MinIO refuse 'when_supported'",
    )
    conditional_writes: bool = Field(
        default=False,
        description="the store refuses an overwrite on 'If-None-Match: *' (AWS S3, current "
        "MinIO); off: Alibaba OSS and older MinIO may ignore it, so WAL pushes look first",
    )
    part_size_mib: int = Field(default=16, ge=5, le=512)
    max_concurrency: int = Field(default=4, ge=1, le=32)
    connect_timeout: Duration = timedelta(seconds=10)
    read_timeout: Duration = timedelta(seconds=60)
    max_attempts: int = Field(default=5, ge=1, le=20)

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise ValueError(f"{value!r} has no bucket (expected s3://bucket/prefix)")
        elif parsed.scheme == "file":
            if not parsed.path or parsed.netloc not in ("", "localhost"):
                raise ValueError(f"{value!r} is not an absolute file:// path (file:///var/backups)")
        else:
            raise ValueError(f"{value!r} must start with s3:// or file://")
        return value

    @property
    def scheme(self) -> str:
        """``s3`` or ``file``."""
        return urlparse(self.url).scheme

    @property
    def bucket(self) -> str:
        """The bucket of an s3:// URL."""
        return urlparse(self.url).netloc

    @property
    def prefix(self) -> str:
        """The key prefix inside the bucket (no leading or trailing slash)."""
        return urlparse(self.url).path.strip("/")

    @property
    def path(self) -> str:
        """The directory of a file:// URL."""
        return urlparse(self.url).path


class EncryptionSettings(_Model):
    """Client-side age encryption: public recipients only; identities live with restorers."""

    recipients: tuple[str, ...] = ()
    identity_file: str | None = Field(default=None, description="age identity used by restores")

    @field_validator("recipients")
    @classmethod
    def _recipient_shape(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not item.startswith(("age1", "ssh-ed25519 ", "ssh-rsa ")):
                raise ValueError(f"{item[:16]!r}... is not an age recipient")
        return value


class CompressionSettings(_Model):
    """zstd settings for streamed objects."""

    level: int = Field(default=3, ge=1, le=19)
    threads: int = Field(default=2, ge=0, le=32, description="0 means single-threaded")


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
EMBEDDED_REDIS = "embedded"


class RedisSettings(_Model):
    """The one coordinator: queues, locks, events, approvals."""

    url: str | None = Field(
        default=None,
        description=(
            "redis://, rediss:// or unix:// URL. Unset: the machine's Redis when one answers at "
            f"{DEFAULT_REDIS_URL}, else the embedded one `up` runs; 'embedded': always that one"
        ),
    )
    key_prefix: str = Field(
        default="kosmos",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="namespace of every key and RQ queue; unset: kosmos-<install id>",
    )

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        if not value:
            return None  # ${REDIS_URL:-} with REDIS_URL unset: not configured
        if value != EMBEDDED_REDIS and urlparse(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL, or {EMBEDDED_REDIS!r}")
        return value

    @property
    def configured(self) -> bool:
        """Whether a URL names one Redis (no fallback: unreachable is an error)."""
        return self.url is not None and self.url != EMBEDDED_REDIS


class JobSettings(_Model):
    """Timing of workers and the scheduler: retries, heartbeats, monitor and upkeep cadence."""

    retry_intervals: tuple[Duration, ...] = Field(
        default=(timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10)),
        description="backoff between retries of a transient fault; its length is the budget",
    )
    heartbeat: Duration = timedelta(seconds=10)
    abandoned_after: Duration = Field(
        default=timedelta(seconds=60), description="a running job silent this long is failed"
    )
    lock_ttl: Duration = timedelta(seconds=60)
    scheduler_tick: Duration = timedelta(seconds=10)
    leader_ttl: Duration = timedelta(seconds=10)
    monitor_interval: Duration = timedelta(minutes=1)
    prune_interval: Duration = timedelta(days=1)
    sweep_interval: Duration = timedelta(hours=6)
    sweep_age: Duration = Field(
        default=timedelta(days=1), description="pending uploads older than this are aborted"
    )
    failure_retry_after: Duration = Field(
        default=timedelta(hours=1), description="a failed scheduled backup is tried again after"
    )


class DrSettings(_Model):
    """DR runbooks: the monthly drill (run by the scheduler) and where runbooks live."""

    dr_test_enabled: bool = True
    dr_test_frequency: Duration = timedelta(days=30)
    dr_test_runbook: str = "dr-test"
    dr_test_params: dict[str, str] = Field(default_factory=dict, description="--param values")
    channel: str | None = Field(default=None, description="drill board; default slack.channel")
    runbooks_dir: str | None = Field(default=None, description="default: the shipped runbooks/")


class Objectives(_Model):
    """Recovery objectives from the runbook page."""

    rpo: Duration = timedelta(hours=1)
    rto: Duration = timedelta(hours=4)


class ComponentSettings(_Model):
    """What every component kind's settings hold; each kind's model adds its ``kind`` literal."""

    enabled: bool = True
    frequency: Duration
    retention: Duration
    keep_last: int = Field(default=3, ge=1, description="newest good backups never pruned")
    rpo: Duration | None = Field(default=None, description="overrides objectives.rpo")
    queue: str = QUEUE_DEFAULT
    approvers_required: int = Field(default=1, ge=1, le=5)


class PostgresComponent(ComponentSettings):
    """PostgreSQL: hourly logical dumps plus continuous WAL (barman-cloud)."""

    kind: Literal["postgres"]
    dsn: SecretStr = SecretStr("host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    databases: tuple[str, ...] = ()
    dump_jobs: int = Field(default=2, ge=1, le=16, description="databases dumped at once")
    continuous: bool = True
    data_directory: str = "/var/lib/postgresql/data"
    base_frequency: Duration = timedelta(days=1)
    base_queue: str = QUEUE_POSTGRES
    server_name: str = "postgres"


class MinioComponent(ComponentSettings):
    """MinIO: incremental S3-to-S3 mirror of buckets."""

    kind: Literal["minio"]
    endpoint_url: str = "http://minio.kosmos-data:9000"
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    checksums: Literal["when_required", "when_supported"] = Field(
        default="when_required",
        description="boto3 checksum trailers; OSS and older MinIO refuse 'when_supported'",
    )
    buckets: tuple[str, ...] = Field(default=(), description="empty: every bucket of the source")
    workers: int = Field(default=8, ge=1, le=64, description="objects copied in parallel")
    gc_grace: Duration = Field(
        default=timedelta(days=1),
        description="an unreferenced blob younger than this is kept: a running snapshot may "
        "be about to reference it; longer than the longest snapshot run",
    )
    object_lock: Literal["off", "governance", "compliance"] = Field(
        default="off",
        description="S3 Object Lock on blobs, retained for the retention window; the backup "
        "bucket must have Object Lock enabled",
    )


class EtcdComponent(ComponentSettings):
    """K3s etcd: snapshots with etcdctl or k3s etcd-snapshot."""

    kind: Literal["etcd"]
    endpoints: tuple[str, ...] = ("https://127.0.0.1:2379",)
    snapshot_dir: str = "/var/lib/rancher/k3s/server/db/snapshots"
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    queue: str = QUEUE_ETCD


class VeleroComponent(ComponentSettings):
    """Kubernetes resources through Velero Backup/Restore/Schedule objects."""

    kind: Literal["velero"]
    namespaces: tuple[str, ...] = ()
    velero_namespace: str = "velero"
    kubeconfig: str | None = None
    storage_location: str = "default"


class RotatableSecret(_Model):
    """A secret whose value this tool may replace after an incident, and the system it opens."""

    project: str
    environment: str
    path: str = Field(default="/", pattern=r"^/")
    key: str
    system: Literal["postgres-role", "minio-user"]
    role: str | None = Field(default=None, description="postgres-role: the role to alter")
    dsn: SecretStr | None = Field(
        default=None, description="postgres-role: a connection allowed to ALTER ROLE"
    )


class InfisicalComponent(ComponentSettings):
    """Secrets exported from Infisical, always age-encrypted."""

    kind: Literal["infisical"]
    api_url: str = "https://app.infisical.com"
    client_id: SecretStr | None = Field(default=None, description="universal auth client id")
    client_secret: SecretStr | None = Field(
        default=None, description="universal auth client secret"
    )
    projects: tuple[str, ...] = Field(default=(), description="project ids to export")
    environments: tuple[str, ...] = ("prod",)
    root_path: str = Field(default="/", pattern=r"^/", description="folders below are walked")
    rotate: tuple[RotatableSecret, ...] = Field(
        default=(), description="secrets rotated after a security incident"
    )
    drill_environment: str | None = Field(
        default=None, description="an environment only the DR drill imports into"
    )

    @field_validator("client_id", "client_secret", mode="before")
    @classmethod
    def _unset(cls, value: Any) -> Any:
        return None if value == "" else value  # ${VAR:-} with VAR unset: not configured


Component = Annotated[
    PostgresComponent | MinioComponent | EtcdComponent | VeleroComponent | InfisicalComponent,
    Field(discriminator="kind"),
]
COMPONENT_KINDS = ("postgres", "minio", "etcd", "velero", "infisical")


class Roles(_Model):
    """Who may do what: Slack user ids (U…) or user-group handles (@sre)."""

    viewers: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    incident_commanders: tuple[str, ...] = ()


class SlackSettings(_Model):
    """The Slack app; tokens normally come from SLACK_* environment variables."""

    channel: str = "#kosmos-ops"
    alert_channel: str | None = None
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    api_url: str | None = None
    roles: Roles = Roles()

    @property
    def configured(self) -> bool:
        """True when the app can talk to Slack (a bot token and a way in)."""
        return self.bot_token is not None and (
            self.signing_secret is not None or self.app_token is not None
        )


class CliIdentity(_Model):
    """A person who may approve from the CLI (when Slack is down), keyed by Slack user id."""

    name: str
    token_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the person's own token, which they export as KOSMOS_USER_TOKEN",
    )
    roles: tuple[Literal["approvers", "incident_commanders"], ...] = Field(
        default=(), description="roles held offline, when Slack cannot resolve user groups"
    )


class ApprovalSettings(_Model):
    """Two-person restores: how long a request lives, break-glass reminders, CLI identities.

    ``trust_local_console`` trusts a claimed name on the CLI; the console chat's ``/as`` is
    always trusted (it is the local operator's own terminal: see ``bot.console``).
    """

    ttl: Duration = timedelta(minutes=30)
    review_reminder: Duration = Field(
        default=timedelta(hours=1), description="repeat interval of the break-glass review nag"
    )
    cli_identities: dict[str, CliIdentity] = Field(default_factory=dict)
    trust_local_console: bool = Field(
        default=False,
        description=(
            "trust this machine's command line to say who acts on a runbook run: "
            "`kosmos-backup dr start|confirm|abort … --as NAME` (else the login name) counts "
            "without KOSMOS_USER_TOKEN. Off, those need KOSMOS_USER + KOSMOS_USER_TOKEN like "
            "`approve`"
        ),
    )


class Settings(_Model):
    """The whole configuration of one kosmos-backup deployment."""

    storage: StorageSettings
    redis: RedisSettings = RedisSettings()
    objectives: Objectives = Objectives()
    jobs: JobSettings = JobSettings()
    dr: DrSettings = DrSettings()
    compression: CompressionSettings = CompressionSettings()
    encryption: EncryptionSettings = EncryptionSettings()
    components: dict[str, Component]
    slack: SlackSettings = SlackSettings()
    approvals: ApprovalSettings = ApprovalSettings()
    approval_key: SecretStr | None = Field(
        default=None, description="HMAC key shared by bot and workers to bind approvals"
    )

    @model_validator(mode="before")
    @classmethod
    def _own_namespace(cls, data: Any) -> Any:
        """Unless a key prefix is configured, this install's own: two installs on one Redis
        (two `up`s, two clusters) never see each other's keys or take each other's jobs."""
        if not isinstance(data, dict):
            return data
        redis = data.get("redis")
        if isinstance(redis, RedisSettings):
            return data
        redis = dict(redis or {})
        storage = data.get("storage")
        url = storage.url if isinstance(storage, StorageSettings) else (storage or {}).get("url")
        if redis.get("key_prefix") or not isinstance(url, str):
            return data  # a missing store URL is reported by its own field
        return {**data, "redis": {**redis, "key_prefix": f"kosmos-{install_id(url)}"}}

    @field_validator("components")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not COMPONENT_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid component name (lowercase, digits, -)")
        return value

    def rq_queue(self, queue: str) -> str:
        """The RQ queue behind a queue name of the config, inside this install's namespace."""
        return f"{self.redis.key_prefix}:{queue}"

    def component(self, name: str) -> Component:
        """The named component, or KeyError."""
        return self.components[name]

    def rpo_for(self, name: str) -> timedelta:
        """The component's RPO: its own, else the objective, never tighter than its frequency.

        A daily mirror cannot meet a 1-hour objective; flagging it breached 23 hours a day
        would only teach people to ignore the board. Set ``rpo`` on it to be stricter.
        """
        component = self.components[name]
        return component.rpo or max(self.objectives.rpo, component.frequency)
