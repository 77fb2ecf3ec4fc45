"""What the secrets engine's tests share: the project, the SCRAM cluster's rules, a login."""

from __future__ import annotations

import psycopg

from tests.pgcluster import PgCluster

PROJECT = "proj-kosmos"
HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


def login(cluster: PgCluster, password: str) -> None:
    """Connect as the application role over TCP (SCRAM)."""
    dsn = f"host=127.0.0.1 port={cluster.port} user=app_user dbname=postgres"
    with psycopg.connect(dsn, password=password, connect_timeout=5) as conn:
        conn.execute("SELECT 1")
