"""The WAL prefetcher against a real archive in moto: what it spools, and when it gives way.

The archive holds synthetic 1 MiB segments (a valid first page header, random bytes after
it), written by our own wal-push uploader. restore_command is played by the console script
with a config that does not exist: an exit 0 or 1 there is the lean answer, never the CLI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from tests.conftest import s3_client
from tests.pgcluster import CONFIG_TEMPLATE
from tests.services import MotoServer
from workers.config_loader import load_settings
from workers.core.errors import IntegrityError
from workers.engines.postgres import fetch_spool, wal_prefetch
from workers.engines.postgres.fetch_spool import SPOOL, lean_fetch
from workers.engines.postgres.wal_archive import Segment
from workers.engines.postgres.wal_upload import WalUploader

SIZE = 1 << 20
COUNT = wal_prefetch.DEPTH + 4
START = Segment(1, 0, 3)


def segment_bytes(segment: Segment, size: int = SIZE) -> bytes:
    """A segment PostgreSQL could have written: long page header first, then anything."""
    pageaddr = segment.log * 0x100000000 + segment.seg * size
    header = wal_prefetch.LONG_HEADER.pack(0xD113, 2, segment.timeline, pageaddr, 0, 7, size, 8192)
    return header + os.urandom(size - len(header))


@dataclass
class Archive:
    """A config, its archive's segments in order (name -> content), and a pg_wal folder."""

    config: Path
    segments: dict[str, bytes]
    pg_wal: Path

    @property
    def spool(self) -> Path:
        return self.pg_wal / SPOOL

    def start(self) -> wal_prefetch.Running:
        running = wal_prefetch.Running(self.config, "postgres", self.spool)
        running.begin(START.name, SIZE)
        return running


@pytest.fixture
def archive(s3_server: MotoServer, tmp_path: Path) -> Iterator[Archive]:
    bucket = f"kb-prefetch-{uuid.uuid4().hex[:10]}"
    s3_client(s3_server.url).create_bucket(Bucket=bucket)
    config = tmp_path / "kosmos.yaml"
    config.write_text(
        CONFIG_TEMPLATE.format(
            bucket=bucket, endpoint=s3_server.url, port=5432, data_dir="/nowhere", server_name="pg"
        )
    )
    uploader = WalUploader(load_settings(config, environ={}), "postgres")
    segments: dict[str, bytes] = {}
    segment = START
    for _ in range(COUNT):
        segments[segment.name] = segment_bytes(segment)
        (tmp_path / segment.name).write_bytes(segments[segment.name])
        uploader.push(str(tmp_path / segment.name))
        segment = segment.next(SIZE)
    (tmp_path / "00000002.history").write_text("1\t0/9000000\tno recovery target specified\n")
    uploader.push(str(tmp_path / "00000002.history"))
    (tmp_path / "pg_wal").mkdir()
    yield Archive(config, segments, tmp_path / "pg_wal")


def restore_command(pg_wal: Path, name: str) -> subprocess.CompletedProcess[str]:
    """``wal-fetch NAME pg_wal/RECOVERYXLOG`` through the console script, config missing."""
    kosmos = shutil.which("kosmos-backup")
    assert kosmos is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    argv = [kosmos, "--config", str(pg_wal / "missing.yaml"), "wal-fetch", name]
    argv.append(str(pg_wal / "RECOVERYXLOG"))
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=200)


def spooled(spool: Path) -> dict[str, int]:
    """The segments visible in the spool, with their sizes (hidden work files left out)."""
    found = {}
    for entry in spool.iterdir() if spool.is_dir() else ():
        if not entry.name.startswith("."):
            try:
                found[entry.name] = entry.stat().st_size
            except FileNotFoundError:
                continue  # delivered between the listing and the stat
    return found


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_plan_queues_segments_from_the_start_in_replay_order() -> None:
    wals = "kosmos/_barman/postgres/pg/wals/"
    listing = [
        ("000000010000000000000002", f"{wals}0000000100000000/000000010000000000000002.zst"),
        ("000000010000000000000004", f"{wals}0000000100000000/000000010000000000000004.zst"),
        ("000000010000000000000003", f"{wals}0000000100000000/000000010000000000000003"),
        ("000000020000000000000004", f"{wals}0000000200000000/000000020000000000000004.gz"),
        ("000000010000000000000005", f"{wals}0000000100000000/000000010000000000000005.lz4"),
        ("000000010000000000000006.partial", f"{wals}0000000100000000/0…06.partial.zst"),
        ("00000002.history", f"{wals}00000002.history"),
    ]

    work = wal_prefetch.plan(listing, START.name)

    assert [name for name, _ in work.queue] == [
        "000000010000000000000003",
        "000000010000000000000004",
        "000000020000000000000004",
    ]
    assert "000000010000000000000002" not in work.archived  # before the start: not covered
    assert {"000000010000000000000005", "000000010000000000000006"} <= set(work.archived)
    assert "00000002.history" in work.archived


def test_only_the_whole_named_segment_passes_verification() -> None:
    good = segment_bytes(START)
    wal_prefetch.verify_segment(START.name, good, SIZE)

    with pytest.raises(IntegrityError, match="bytes, expected"):
        wal_prefetch.verify_segment(START.name, good[: SIZE // 2], SIZE)
    with pytest.raises(IntegrityError, match="first page"):
        wal_prefetch.verify_segment(START.next(SIZE).name, good, SIZE)


NAMES = [Segment(1, 0, n).name for n in range(3, 3 + COUNT)]
DEPTH = wal_prefetch.DEPTH


def test_the_queue_fetches_a_bounded_window_and_moves_it_as_replay_takes_segments() -> None:
    queue = wal_prefetch.Queue(NAMES)
    assert queue.due(set(), set()) == NAMES[:DEPTH]
    for name in NAMES[:DEPTH]:
        queue.finished(name, ok=True)
    spooled = set(NAMES[1:DEPTH])  # replay took the first

    assert queue.due(spooled, set()) == [NAMES[DEPTH]]
    assert queue.stale(spooled) == []


def test_a_failed_download_does_not_move_the_window_past_segments_not_yet_taken() -> None:
    queue = wal_prefetch.Queue(NAMES)
    queue.finished(NAMES[0], ok=True)
    queue.finished(NAMES[2], ok=False)

    assert queue.position({NAMES[0]}) == 0
    assert queue.stale({NAMES[0]}) == []
    assert NAMES[2] not in queue.due({NAMES[0]}, set())  # restore_command asks barman


def test_replay_starting_over_fetches_taken_segments_again() -> None:
    queue = wal_prefetch.Queue(NAMES)
    for name in NAMES[:6]:
        queue.finished(name, ok=True)
    spooled = {NAMES[5]}  # 0-4 taken

    queue.wanted(NAMES[0], spooled, set())

    assert queue.due(spooled, set())[:5] == NAMES[:5]


def test_replay_asking_again_for_the_last_segment_it_took_gets_it_again() -> None:
    """A second recovery pass (the target was not reached: replay to the end) restarts at
    the first pass's last restartpoint, in the last segment it took."""
    queue = wal_prefetch.Queue(NAMES)
    for name in NAMES[:3]:
        queue.finished(name, ok=True)
    spooled: set[str] = set()  # 0-2 taken

    queue.wanted(NAMES[2], spooled, set())

    assert queue.due(spooled, set())[0] == NAMES[2]


def test_a_segment_replay_went_past_is_dropped_from_the_spool() -> None:
    queue = wal_prefetch.Queue(NAMES)
    for name in NAMES[:4]:
        queue.finished(name, ok=True)

    assert queue.stale({NAMES[1], NAMES[3]}) == [NAMES[1]]  # 2 was taken: 1 is behind


def test_the_spool_runs_a_bounded_queue_ahead_and_restore_command_is_answered_from_it(
    archive: Archive,
) -> None:
    running = archive.start()
    try:
        wait_for(lambda: len(spooled(archive.spool)) == wal_prefetch.DEPTH)
        for _ in range(20):  # the queue is full: nothing more arrives until replay takes some
            assert len(spooled(archive.spool)) == wal_prefetch.DEPTH
            time.sleep(0.02)
        for name, content in archive.segments.items():
            assert set(spooled(archive.spool).values()) <= {SIZE}
            assert restore_command(archive.pg_wal, name).returncode == 0
            assert (archive.pg_wal / "RECOVERYXLOG").read_bytes() == content
        past_the_end = Segment.parse(name).next(SIZE).name
        for missing in (past_the_end, "00000003.history"):
            done = restore_command(archive.pg_wal, missing)
            assert (done.returncode, done.stderr) == (fetch_spool.EXIT_NOT_ARCHIVED, "")
        # An archived history file is barman's to deliver: the lean answer steps aside.
        assert lean_fetch(["wal-fetch", "00000002.history", str(archive.pg_wal / "x")]) is None
    finally:
        running.stop()
    assert running.child.returncode is not None
    assert not archive.spool.exists()


def test_a_corrupt_archived_segment_never_reaches_the_spool(
    archive: Archive, s3_server: MotoServer
) -> None:
    settings = load_settings(archive.config, environ={})
    uploader = WalUploader(settings, "postgres")
    bad = START.next(SIZE)
    s3_client(s3_server.url).put_object(
        Bucket=uploader.archive.bucket,
        Key=uploader.key(bad.name),
        Body=zstandard.ZstdCompressor().compress(segment_bytes(START)),  # another segment
    )
    running = archive.start()
    try:
        wait_for(lambda: Path(fetch_spool.failed_mark(archive.spool, bad.name)).exists())
        assert bad.name not in spooled(archive.spool)
        dest = str(archive.pg_wal / "RECOVERYXLOG")
        assert lean_fetch(["wal-fetch", bad.name, dest]) is None  # left to the full wal-fetch
    finally:
        running.stop()


def test_a_killed_prefetcher_leaves_whole_files_and_the_full_wal_fetch_takes_over(
    archive: Archive,
) -> None:
    running = archive.start()
    try:
        wait_for(lambda: len(spooled(archive.spool)) == wal_prefetch.DEPTH)
        os.kill(running.child.pid, signal.SIGKILL)
        running.child.wait()
        assert set(spooled(archive.spool).values()) == {SIZE}
        beyond = list(archive.segments)[-1]  # queued, never brought
        dest = archive.pg_wal / "RECOVERYXLOG"
        assert lean_fetch(["wal-fetch", beyond, str(dest)]) is None
        kosmos = shutil.which("kosmos-backup")
        assert kosmos is not None
        done = subprocess.run(
            [kosmos, "--config", str(archive.config), "wal-fetch", beyond, str(dest)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert dest.read_bytes() == archive.segments[beyond]
        assert set(spooled(archive.spool).values()) == {SIZE}
    finally:
        running.stop()


def test_the_prefetcher_exits_when_the_restore_that_started_it_is_gone(archive: Archive) -> None:
    script = (
        "import sys, time; from pathlib import Path; "
        "from workers.engines.postgres.wal_prefetch import Running; "
        f"r = Running(Path({str(archive.config)!r}), 'postgres', Path({str(archive.spool)!r})); "
        f"r.begin({START.name!r}, {SIZE}); print(r.child.pid, flush=True); time.sleep(300)"
    )
    restore = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert restore.stdout is not None
    pid = int(restore.stdout.readline())
    wait_for(lambda: (archive.spool / fetch_spool.STATE).exists())
    restore.kill()
    restore.wait()
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), timeout=30)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True
