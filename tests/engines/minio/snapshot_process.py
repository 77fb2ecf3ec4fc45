"""A MinIO snapshot in its own process, for tests that kill it mid-run.

Run as ``python -m tests.engines.minio.snapshot_process`` with the ``KOSMOS__…`` overrides of
the test's settings in the environment; it prints ``{"committed": id}`` if it lives.
"""

from __future__ import annotations

import json
import os

from tests.conftest import EXAMPLE_CONFIG
from workers.config_loader import parse_settings
from workers.context import Context
from workers.engines.minio import mirror


def main() -> None:
    """Take one snapshot of the component named by KOSMOS_TEST_COMPONENT."""
    settings = parse_settings(EXAMPLE_CONFIG.read_text(), os.environ, origin=str(EXAMPLE_CONFIG))
    manifest = mirror.snapshot(Context(settings), os.environ["KOSMOS_TEST_COMPONENT"])
    print(json.dumps({"committed": manifest.id}), flush=True)


if __name__ == "__main__":
    main()
