"""A full disk under a running service: reported, survived, and capture resumes."""

from __future__ import annotations

import errno
import logging
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

import capture.storage
from capture.journal import JournalReader
from capture.service import JOURNAL_NAME
from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import wait_for
from tests.e2e.conftest import base_sections, camera_sections
from tests.faults.conftest import FaultServiceFactory, assert_every_jpeg_valid, snapshots
from tests.mqtt_client import Recorder

SNAP_RULE = """
[triggers.tick]
type = "interval"
every_s = 3600

[[rules]]
name = "part"
when = "tick"
cameras = ["cam_a"]
filename = "parts/{event_id}.jpg"
"""
MIN_FREE_0 = "retention_interval_s = 3600\nmin_free_mb = 0"
MIB = 1024 * 1024


class FullDisk:
    """capture.storage's view of `os`, whose `write` fails with ENOSPC while `full` is set.

    Only the storage module sees it: sockets, SQLite and logging keep the real disk.
    """

    def __init__(self) -> None:
        self.full = False
        self.refused = 0

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if self.full:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)


def test_injected_enospc_is_reported_as_diskfull_and_the_next_event_is_saved(
    tmp_path: Path,
    broker: Broker,
    simulator: Simulator,
    fault_service: FaultServiceFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = tmp_path / "data"
    service = fault_service(
        base_sections(root, broker, prefix="full") + camera_sections(simulator) + SNAP_RULE
    )
    events = Recorder(broker, "full/events/#")
    disk = FullDisk()
    monkeypatch.setattr(capture.storage, "os", disk)
    caplog.set_level(logging.WARNING)

    disk.full = True
    assert service.handle_command({"rule": "part"})
    [failed] = wait_for(events.json)  # type: ignore[misc]
    disk.full = False
    assert service.handle_command({"rule": "part"})
    saved = wait_for(lambda: len(events.json()) == 2 and events.json()[1])
    events.close()

    [capture_failed] = failed["captures"]
    assert capture_failed["ok"] is False and capture_failed["path"] is None
    assert capture_failed["error"]["type"] == "DiskFull"
    assert "cam_a" in capture_failed["error"]["message"]
    assert disk.refused >= 2  # the first try and the retry after a retention pass
    assert "disk full" in caplog.text
    assert isinstance(saved, dict) and saved["ok"] is True
    [capture_saved] = saved["captures"]
    assert [p.relative_to(root).as_posix() for p in snapshots(root)] == [capture_saved["path"]]
    assert_every_jpeg_valid(root)
    assert list(root.rglob("*.tmp")) == []  # no partial file left by a refused write
    rows = JournalReader(root / JOURNAL_NAME).query(rule="part")
    assert sorted((row.ok, row.error_type) for row in rows) == [(False, "DiskFull"), (True, None)]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB tmpfs (pictures and journal share it, as on a Pi's SD card): the kernel itself answers ENOSPC (needs root)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=True)


@pytest.mark.slow
def test_service_on_a_really_full_disk_keeps_capturing_by_pruning_the_oldest(
    tiny_disk: Path, simulator: Simulator, fault_service: FaultServiceFactory
) -> None:
    root = tiny_disk / "data"
    text = base_sections(root, None) + camera_sections(simulator) + SNAP_RULE
    service = fault_service(text.replace("retention_interval_s = 3600", "min_free_mb = 0"))
    assert service.handle_command({"rule": "part"})
    assert service.engine.wait_idle(10)
    [first] = snapshots(root)
    count = 2 * (16 * 1024 * 1024) // first.stat().st_size  # twice what the disk holds
    for n in range(1, count):
        assert service.handle_command({"rule": "part"})
        assert service.engine.wait_idle(10), n
    # While the disk is full the journal retries its rows (flush() fails fast meanwhile).
    journal = JournalReader(root / JOURNAL_NAME)
    rows = wait_for(
        lambda: (
            len(journal.query(rule="part", limit=10000)) == count
            and journal.query(rule="part", limit=10000)
        ),
        timeout=30,
    )
    assert isinstance(rows, list)
    # Retention made room each time: every capture succeeded, the newest are on disk.
    assert [row.error_type for row in rows if not row.ok] == []
    on_disk = {p.relative_to(root).as_posix() for p in snapshots(root)}
    assert rows[0].path in on_disk and len(on_disk) < count // 2
    assert_every_jpeg_valid(root)
    assert list(root.rglob("*.tmp")) == []  # no partial file left by a refused write


class SmallDisk:
    """capture.storage's view of `os` on a disk of `capacity` bytes: a write past it fails with ENOSPC.

    The bytes in use are those of the files under the storage root, counted at
    each write (each file once, so latest/'s hard links cost nothing; the
    journal, which SQLite writes, is left out), and `statvfs` reports what is
    left, so retention's free-space target is measured on this disk. Deleting a
    picture frees its bytes, as on a real disk.
    """

    def __init__(self, root: Path, capacity: int) -> None:
        self.root = root
        self.capacity = capacity
        self.refused = 0
        self.peak = 0

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def used(self) -> int:
        sizes: dict[int, int] = {}
        for path in self.root.rglob("*"):
            if path.name.startswith(JOURNAL_NAME):
                continue
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue  # renamed or deleted meanwhile
            if stat.S_ISREG(info.st_mode):
                sizes[info.st_ino] = info.st_size
        return sum(sizes.values())

    def write(self, fd: int, data: bytes | memoryview) -> int:
        used = self.used()
        if used + len(data) > self.capacity:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        written = os.write(fd, data)
        self.peak = max(self.peak, used + written)
        return written

    def statvfs(self, path: object) -> SimpleNamespace:
        return SimpleNamespace(f_bavail=max(self.capacity - self.used(), 0), f_frsize=1)


def test_on_an_injected_small_disk_retention_frees_space_and_capture_resumes(
    tmp_path: Path,
    simulator: Simulator,
    fault_service: FaultServiceFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tmpfs test's promise where no tmpfs can be mounted: the disk is a budget in the storage's `os`."""
    root = tmp_path / "data"
    text = base_sections(root, None) + camera_sections(simulator) + SNAP_RULE
    service = fault_service(text.replace("retention_interval_s = 3600", MIN_FREE_0))
    assert service.handle_command({"rule": "part"})
    assert service.engine.wait_idle(10)
    [first] = snapshots(root)
    # Room for the retention pass's 1 MiB margin and ten pictures more.
    disk = SmallDisk(root, capacity=MIB + 10 * first.stat().st_size)
    monkeypatch.setattr(capture.storage, "os", disk)
    caplog.set_level(logging.WARNING, logger="capture.storage")

    taken = 1
    while disk.refused < 2:  # the disk filled up twice, and retention emptied it each time
        assert taken < 1000, "the small disk never filled up"
        assert service.handle_command({"rule": "part"})
        assert service.engine.wait_idle(10)
        taken += 1
    for _ in range(3):  # and capture goes on
        assert service.handle_command({"rule": "part"})
        assert service.engine.wait_idle(10)
        taken += 1

    journal = JournalReader(root / JOURNAL_NAME)
    rows = wait_for(
        lambda: (
            len(journal.query(rule="part", limit=10000)) == taken
            and journal.query(rule="part", limit=10000)
        )
    )
    assert isinstance(rows, list)
    assert [
        row.error_type for row in rows if not row.ok
    ] == []  # every write that met a full disk was retried and saved
    assert "disk full, running retention" in caplog.text
    assert disk.peak <= disk.capacity
    on_disk = {p.relative_to(root).as_posix() for p in snapshots(root)}
    assert first.relative_to(root).as_posix() not in on_disk  # the oldest made the room
    assert {row.path for row in rows[:3]} <= on_disk  # the newest are there
    assert len(on_disk) < taken
    assert_every_jpeg_valid(root)
    assert list(root.rglob("*.tmp")) == []
