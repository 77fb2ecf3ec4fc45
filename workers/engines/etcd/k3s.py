"""The K3s way: ``k3s etcd-snapshot save`` on the server node, and the cluster-reset restore."""

from __future__ import annotations

import shutil
from pathlib import Path

from workers import process
from workers.core.errors import EngineError, NotFoundError
from workers.core.ports import Progress, no_progress

K3S = "k3s"
SAVE_TIMEOUT = 1800.0


def present() -> bool:
    """Whether this node runs K3s (so snapshots and resets go through it)."""
    return shutil.which(K3S) is not None


def save(name: str, snapshot_dir: str) -> Path:
    """Take a snapshot called ``name`` into ``snapshot_dir``; the file K3s wrote."""
    process.run(
        [K3S, "etcd-snapshot", "save", "--name", name, "--dir", snapshot_dir],
        timeout=SAVE_TIMEOUT,
    )
    return pick(Path(snapshot_dir), name)


def pick(snapshot_dir: Path, name: str) -> Path:
    """The newest file K3s made for ``name`` (it adds ``-<node>-<unix time>``)."""
    try:
        found = [p for p in snapshot_dir.iterdir() if p.name.startswith(f"{name}-")]
    except OSError as exc:
        raise NotFoundError(f"cannot read the snapshot directory {snapshot_dir}: {exc}") from None
    if not found:
        raise NotFoundError(
            f"k3s etcd-snapshot save wrote no {name}-* file in {snapshot_dir}",
            hint="components.<name>.snapshot_dir must be K3s's --etcd-snapshot-dir",
        )
    newest = max(found, key=lambda p: (p.stat().st_mtime, p.name))
    if newest.suffix == ".zip":
        raise EngineError(
            f"{newest.name} is compressed by K3s; the snapshot's own checks need the raw file",
            hint="turn etcd-snapshot-compress off: kosmos-backup compresses it with zstd",
        )
    return newest


def reset_commands(snapshot: str) -> list[list[str]]:
    """The destructive sequence of a K3s restore, each a step a person confirms."""
    return [
        ["systemctl", "stop", "k3s"],
        [K3S, "server", "--cluster-reset", f"--cluster-reset-restore-path={snapshot}"],
        ["systemctl", "start", "k3s"],
    ]


def shown(argv: list[str]) -> str:
    """One command as people type it."""
    return " ".join(argv)


def reset(snapshot: str, progress: Progress = no_progress) -> list[str]:
    """Run the reset sequence on this node; the commands run, in order."""
    if not present():
        raise EngineError(
            "k3s is not installed on this worker's node",
            hint="run the commands shown on the K3s server node",
        )
    done = []
    for argv in reset_commands(snapshot):
        progress("k3s reset", note=shown(argv))
        # The reset exits once etcd is reset; K3s then starts again under systemd.
        process.run(argv, timeout=SAVE_TIMEOUT)
        done.append(shown(argv))
    return done
