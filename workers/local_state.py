"""The per-install state directory: `up`'s logs, the demo's approval key, the embedded Redis.

``$KOSMOS_BACKUP_STATE_DIR``, else ``$XDG_STATE_HOME/kosmos-backup``, else
``~/.local/state/kosmos-backup``. Every process of one install finds the same folder from the
same environment, so `up`'s worker and scheduler read the key the console generated.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

STATE_ENV = "KOSMOS_BACKUP_STATE_DIR"
APPROVAL_KEY_FILE = "approval.key"


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where this install keeps its local state (not created here)."""
    env = os.environ if environ is None else environ
    if env.get(STATE_ENV):
        return Path(env[STATE_ENV]).expanduser().absolute()
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "kosmos-backup"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".local" / "state" / "kosmos-backup"


def ensure_private_dir(folder: Path) -> Path:
    """Create ``folder`` (and parents) readable by its owner only; return it."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)  # mkdir's mode is masked by the umask, and skipped when it exists
    return folder


def demo_approval_key(folder: Path) -> str:
    """The install's generated approval key: made once, atomically, mode 0600; then read back.

    Two processes starting at once (the console and `up`'s worker) must end up with one key:
    each writes a candidate to a private temporary file and links it into place; the link
    fails for every process but the first, which then all read the winner's key.
    """
    import secrets  # here: the console script's lean paths read state_dir only

    ensure_private_dir(folder)
    path = folder / APPROVAL_KEY_FILE
    if not path.exists():
        candidate = folder / f".{APPROVAL_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(candidate, path)
        finally:
            candidate.unlink(missing_ok=True)
    return path.read_text().strip()
