"""A libpq connection string, split so the password never reaches argv, logs or messages."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from workers.core.errors import ConfigError

DEFAULT_PORT = "5432"
MAINTENANCE_DB = "postgres"


@dataclass(frozen=True)
class Conninfo:
    """Connection parameters without the password, plus the password held apart."""

    params: dict[str, str]
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, dsn: str, setting: str = "components.postgres.dsn") -> Conninfo:
        """Parse a keyword/value string or a postgresql:// URI; ConfigError naming ``setting``."""
        try:
            raw: dict[str, Any] = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            # The libpq message may quote the string, password included: never repeat it.
            raise ConfigError(
                f"{setting} is not a valid libpq connection string",
                hint="e.g. host=127.0.0.1 port=5432 user=postgres dbname=postgres",
            ) from None
        password = raw.pop("password", None)
        return cls({k: str(v) for k, v in raw.items()}, str(password) if password else None)

    @property
    def dbname(self) -> str | None:
        """The database named in the string, if any."""
        return self.params.get("dbname")

    @property
    def host(self) -> str:
        """The host as written (libpq's default socket shows as ``localhost``)."""
        return self.params.get("host") or self.params.get("hostaddr") or "localhost"

    @property
    def port(self) -> str:
        """The port as written, else libpq's default."""
        return self.params.get("port") or DEFAULT_PORT

    @property
    def user(self) -> str | None:
        """The role named in the string, if any."""
        return self.params.get("user")

    def with_dbname(self, dbname: str) -> Conninfo:
        """The same server and credentials, another database."""
        return replace(self, params={**self.params, "dbname": dbname})

    def maintenance(self) -> Conninfo:
        """Where to run CREATE/DROP DATABASE: the named database, else ``postgres``."""
        return self if self.dbname else self.with_dbname(MAINTENANCE_DB)

    def tool_dsn(self) -> str:
        """The string for a tool's ``--dbname``: no password (argv is visible in ps)."""
        return make_conninfo("", **self.params)

    def tool_env(self) -> dict[str, str]:
        """Environment for a tool: the password travels as PGPASSWORD, never in argv."""
        return {"PGPASSWORD": self.password} if self.password else {}

    def client_dsn(self) -> str:
        """The full string for an in-process client (psycopg), password included."""
        extra = {"password": self.password} if self.password else {}
        return make_conninfo("", **self.params, **extra)

    def same_server(self, other: Conninfo) -> bool:
        """Whether both point at the same host and port."""
        return (_host_key(self.host), self.port) == (_host_key(other.host), other.port)

    def describe(self, dbname: str | None = None) -> str:
        """``user@host:port/db`` for messages: never the password."""
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.host}:{self.port}/{dbname or self.dbname or MAINTENANCE_DB}"


def _host_key(host: str) -> str:
    # libpq treats a missing host, "localhost" and a socket directory as this machine.
    if host.startswith("/") or host in {"localhost", "127.0.0.1", "::1"}:
        return "localhost"
    return host
