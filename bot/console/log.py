"""Where the console's log lines go: a file, never the chat.

A log line printed between a prompt and an answer reads as part of the chat, and a JSON line
in the middle of a table breaks it. While the console is open every log record (structlog's
and the standard library's, warnings too) goes to ``console.log`` in the install's state
directory, the folder where ``up`` keeps its worker's and scheduler's logs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import structlog

from workers.local_state import state_dir

LOG_NAME = "console.log"


def default_log_file(environ: Mapping[str, str] | None = None) -> Path:
    """``console.log`` in the install's state directory (as ``up`` keeps its logs)."""
    return state_dir(environ) / LOG_NAME


@contextlib.contextmanager
def logs_to_file(path: Path) -> Iterator[None]:
    """Send every log record to ``path`` (JSON lines) while the block runs, then put back the
    handlers that were there before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [handler]
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers = saved
        handler.close()
