"""An etcd backup in its own process, for the test that kills it mid-upload.

Run as ``python -m tests.engines.etcd.backup_process '<json environ>' STALL_MIB``: it builds
settings from the example config and the given ``KOSMOS__…`` overrides, backs up ``etcd``,
prints ``uploading`` once STALL_MIB MiB have been read for upload, and then stalls there.
"""

from __future__ import annotations

import json
import sys
import time

from tests.conftest import EXAMPLE_CONFIG
from workers.config_loader import parse_settings
from workers.context import Context
from workers.engines.etcd import backup

MIB = 1 << 20


def main(environ_json: str, stall_mib: int) -> None:
    """Back up until the upload is under way, then hold still to be killed."""
    settings = parse_settings(EXAMPLE_CONFIG.read_text(), json.loads(environ_json))

    def progress(phase: str, *, done_bytes: int | None = None, **_: object) -> None:
        if phase == "upload" and (done_bytes or 0) >= stall_mib * MIB:
            print("uploading", flush=True)
            while True:  # the parent kills this process here
                time.sleep(1)

    backup.backup(Context(settings), "etcd", progress=progress)
    print("finished", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
