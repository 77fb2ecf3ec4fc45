# kosmos-backup: one slim, non-root image for every process:
#   docker run IMAGE bot | worker --queues kosmos-default | scheduler
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, with the versions CI tested (.ci/constraints.txt): a change to the code
# alone reuses this layer instead of reinstalling every dependency.
COPY pyproject.toml .ci/constraints.txt ./
RUN python -m venv /opt/kosmos-backup \
 && python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' >requirements.txt \
 && /opt/kosmos-backup/bin/pip install --no-cache-dir -c constraints.txt -r requirements.txt
# The project itself; the shipped runbooks are package data of the wheel.
COPY README.md ./
COPY bot ./bot
COPY workers ./workers
COPY runbooks ./runbooks
RUN /opt/kosmos-backup/bin/pip install --no-cache-dir --no-deps -c constraints.txt . \
 && /opt/kosmos-backup/bin/kosmos-backup runbook check >/dev/null

FROM python:3.11-slim-bookworm
# PostgreSQL 15 client tools (pg_dump, pg_restore, psql), etcdctl and etcd (the scratch member
# a deep verify or a drill serves a snapshot on); libpq for psycopg2 (barman).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 etcd-client etcd-server libpq5 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/kosmos-backup --create-home kosmos
COPY --from=build /opt/kosmos-backup /opt/kosmos-backup
ENV PATH=/opt/kosmos-backup/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KOSMOS_BACKUP_CONFIG=/etc/kosmos-backup/config.yaml \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /var/lib/kosmos-backup
EXPOSE 3000 9100
ENTRYPOINT ["tini", "--", "kosmos-backup"]
CMD ["bot", "--http", "--port", "3000"]
