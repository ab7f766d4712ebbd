"""Snapshot storage on real files: atomic, never overwriting, confined, pruned oldest first."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest

import capture.retention as retention_module
import capture.storage as storage_module
from capture.config.schema import StorageConfig
from capture.retention import MIB, RetentionReport
from capture.storage import DiskFull, Storage, StorageError, UnsafePath

KIB = 1024


def jpeg(size: int, fill: int = 0x42) -> bytes:
    """A JPEG-shaped payload whose every byte proves it was written whole."""
    return b"\xff\xd8" + bytes([fill]) * (size - 4) + b"\xff\xd9"


def snapshots(root: Path) -> dict[str, bytes]:
    """Every visible file under root except latest/, journal and hidden files."""
    found = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and relative.parts[0] != "latest" and not path.name.startswith("."):
            found[relative.as_posix()] = path.read_bytes()
    return found


def hidden_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(".capture-*.tmp"))


@pytest.fixture
def make_storage(tmp_path: Path) -> Iterator[type[Storage]]:
    created: list[Storage] = []

    def build(**options: object) -> Storage:
        options.setdefault("root", tmp_path / "store")
        options.setdefault("min_free_mb", 0)
        instance = Storage(StorageConfig(**options))  # type: ignore[arg-type]
        created.append(instance)
        return instance

    yield build  # type: ignore[misc]
    for instance in created:
        instance.close()


# --------------------------------------------------------------------------- saving


def test_new_names_are_made_durable_by_few_coalesced_folder_fsyncs(
    make_storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[float, Path]] = []
    real = storage_module._fsync_dir

    def recording(folder: Path) -> None:
        real(folder)
        synced.append((time.monotonic(), folder))

    monkeypatch.setattr(storage_module, "_fsync_dir", recording)
    storage = make_storage()
    began = time.monotonic()
    for n in range(60):
        storage.save(f"line/day/{n}.jpg", jpeg(KIB), "cam1")
    last_save = time.monotonic()
    storage.close()  # syncs what is pending
    elapsed = last_save - began
    folder = storage.root / "line" / "day"
    assert any(path == folder and at >= last_save for at, path in synced), "last name not synced"
    rounds = len([path for _, path in synced if path == folder])
    assert rounds <= elapsed / storage_module._FOLDER_SYNC_PERIOD_S + 2, (rounds, elapsed)
    assert rounds < 60


def test_save_writes_the_whole_jpeg_under_the_root(make_storage) -> None:
    storage = make_storage()
    data = jpeg(70 * KIB)

    stored = storage.save(PurePosixPath("Line 1/2026-11-25/r_cam1_120000_1.jpg"), data, "cam1")

    assert stored.relative == PurePosixPath("Line 1/2026-11-25/r_cam1_120000_1.jpg")
    assert stored.path == storage.root / stored.relative
    assert stored.bytes == len(data)
    assert stored.path.read_bytes() == data
    assert hidden_files(storage.root) == []


def test_a_taken_name_gets_a_counter_and_nothing_is_overwritten(make_storage) -> None:
    storage = make_storage()
    name = PurePosixPath("d/shot.jpg")

    stored = [storage.save(name, jpeg(1000, fill), "cam1") for fill in (1, 2, 3)]

    assert [s.relative.as_posix() for s in stored] == ["d/shot.jpg", "d/shot_2.jpg", "d/shot_3.jpg"]
    assert [s.path.read_bytes() for s in stored] == [jpeg(1000, fill) for fill in (1, 2, 3)]


def test_concurrent_saves_of_one_name_all_survive_intact(make_storage) -> None:
    storage = make_storage()
    name = PurePosixPath("d/shot.jpg")
    results: list[PurePosixPath] = []
    lock = threading.Lock()

    def save(fill: int) -> None:
        stored = storage.save(name, jpeg(20 * KIB, fill), f"cam{fill % 4}")
        with lock:
            results.append(stored.relative)

    threads = [threading.Thread(target=save, args=(fill,)) for fill in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    files = snapshots(storage.root)
    assert len(set(results)) == 16
    assert len(files) == 16
    assert sorted(files.values()) == sorted(jpeg(20 * KIB, fill) for fill in range(16))


def test_latest_holds_each_cameras_newest_snapshot(make_storage) -> None:
    storage = make_storage()
    storage.save(PurePosixPath("a.jpg"), jpeg(500, 1), "cam1")
    storage.save(PurePosixPath("b.jpg"), jpeg(500, 2), "cam2")
    storage.save(PurePosixPath("c.jpg"), jpeg(600, 3), "cam1")

    assert storage.latest("cam1") == storage.root / "latest" / "cam1.jpg"
    assert storage.root.joinpath("latest/cam1.jpg").read_bytes() == jpeg(600, 3)
    assert storage.root.joinpath("latest/cam2.jpg").read_bytes() == jpeg(500, 2)
    assert storage.latest("cam3") is None
    assert hidden_files(storage.root) == []


def test_latest_is_not_written_when_disabled(make_storage) -> None:
    storage = make_storage(latest=False)
    storage.save(PurePosixPath("a.jpg"), jpeg(500), "cam1")

    assert storage.latest("cam1") is None
    assert not (storage.root / "latest").exists()


def test_latest_is_copied_where_hard_links_are_not_supported(make_storage, monkeypatch) -> None:
    storage = make_storage()

    def no_links(source: object, target: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(storage_module.os, "link", no_links)
    first = storage.save(PurePosixPath("d/a.jpg"), jpeg(500, 1), "cam1")
    second = storage.save(PurePosixPath("d/a.jpg"), jpeg(500, 2), "cam1")

    assert second.relative == PurePosixPath("d/a_2.jpg")
    assert first.path.read_bytes() == jpeg(500, 1)
    assert storage.root.joinpath("latest/cam1.jpg").read_bytes() == jpeg(500, 2)
    assert hidden_files(storage.root) == []


@pytest.mark.parametrize(
    "relative",
    [
        "/etc/cron.d/x.jpg",
        "../outside.jpg",
        "a/../../outside.jpg",
        ".hidden.jpg",
        "a/.capture-1-1.tmp",
        "latest/cam1.jpg",
        "journal.sqlite3",
        "journal.sqlite3-wal",
        "a/b\x00.jpg",
    ],
)
def test_unsafe_paths_are_refused_and_nothing_is_written(make_storage, relative: str) -> None:
    storage = make_storage()

    with pytest.raises(UnsafePath) as caught:
        storage.save(PurePosixPath(relative), jpeg(100), "cam1")

    assert isinstance(caught.value, ValueError)
    assert "cam1" in str(caught.value)
    assert snapshots(storage.root.parent) == {}


def test_a_symlink_leading_out_of_the_root_is_refused(make_storage, tmp_path: Path) -> None:
    storage = make_storage()
    outside = tmp_path / "outside"
    outside.mkdir()
    (storage.root / "escape").symlink_to(outside)

    with pytest.raises(UnsafePath):
        storage.save(PurePosixPath("escape/x.jpg"), jpeg(100), "cam1")

    assert list(outside.iterdir()) == []


def test_a_root_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(StorageError, match="cannot be created"):
        Storage(StorageConfig(root=blocker / "store"))


def test_a_name_too_long_for_the_filesystem_says_to_shorten_the_template(make_storage) -> None:
    storage = make_storage()

    with pytest.raises(StorageError, match="shorten the rule's filename template") as caught:
        storage.save(PurePosixPath("d/" + "x" * 300 + ".jpg"), jpeg(100), "cam1")

    assert caught.value.errno == errno.ENAMETOOLONG
    assert hidden_files(storage.root) == []


def test_an_unsafe_camera_name_is_refused(make_storage) -> None:
    storage = make_storage()

    with pytest.raises(UnsafePath):
        storage.save(PurePosixPath("x.jpg"), jpeg(100), "../cam")


def test_a_failure_before_the_rename_leaves_no_file_at_all(make_storage, monkeypatch) -> None:
    storage = make_storage()

    def crash(source: object, target: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(storage_module.os, "link", crash)

    with pytest.raises(StorageError) as caught:
        storage.save(PurePosixPath("d/x.jpg"), jpeg(70 * KIB), "cam1")

    assert caught.value.camera == "cam1"
    assert caught.value.errno == errno.EIO
    assert snapshots(storage.root) == {}
    assert hidden_files(storage.root) == []


_WRITER = """
import os, stat, sys, threading
from pathlib import Path, PurePosixPath
from capture.config.schema import StorageConfig
from capture.storage import Storage
storage = Storage(StorageConfig(root=Path(sys.argv[1]), min_free_mb=0))
data = b"\\xff\\xd8" + b"\\x42" * 2_000_000 + b"\\xff\\xd9"
for n in range(5):
    storage.save(PurePosixPath(f"burst/frame_{n}.jpg"), data, "cam1")
real_fsync = os.fsync
def fsync_and_hang(fd):
    real_fsync(fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return  # a folder fsync (background thread), not the picture's
    print("between write and rename", flush=True)
    threading.Event().wait()
os.fsync = fsync_and_hang
storage.save(PurePosixPath("burst/frame_5.jpg"), data, "cam1")
"""


@pytest.mark.slow
def test_kill_9_between_write_and_rename_leaves_only_whole_files_and_recover_sweeps(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "between write and rename\n"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
        if process.stdout is not None:
            process.stdout.close()

    whole = b"\xff\xd8" + b"\x42" * 2_000_000 + b"\xff\xd9"
    files = snapshots(root)
    assert sorted(files) == [f"burst/frame_{n}.jpg" for n in range(5)]
    assert all(content == whole for content in files.values())
    assert len(hidden_files(root)) == 1  # the sixth picture, written but never named

    storage = Storage(StorageConfig(root=root, min_free_mb=0))
    report = storage.recover()
    storage.close()
    assert report.temp_files_removed == 1
    assert report.files_indexed == 5
    assert hidden_files(root) == []


def test_recover_removes_only_our_temporary_files(make_storage) -> None:
    storage = make_storage()
    folder = storage.root / "Line 1" / "2026-11-25"
    folder.mkdir(parents=True)
    (folder / ".capture-4242-7.tmp").write_bytes(b"\xff\xd8 half")
    (storage.root / "latest").mkdir()
    (storage.root / "latest" / ".capture-4242-8.tmp").write_bytes(b"half")
    (folder / ".someone-elses.tmp").write_bytes(b"keep")
    (folder / "notes.txt").write_text("keep")

    report = storage.recover()

    assert report.temp_files_removed == 2
    assert str(report) == "files=0 mib=0.0 temp_removed=2"  # a log line's key=value, no repr
    assert hidden_files(storage.root) == []
    assert (folder / ".someone-elses.tmp").exists()
    assert (folder / "notes.txt").exists()


# --------------------------------------------------------------------------- disk full


class SmallDisk:
    """A disk of `capacity` bytes: writes beyond its free space fail with ENOSPC."""

    def __init__(self, storage: Storage, capacity: int, monkeypatch: pytest.MonkeyPatch) -> None:
        self.storage = storage
        self.capacity = capacity
        self.partial_writes = 0
        real_write_all = storage_module._write_all

        def write_all(fd: int, data: bytes) -> None:
            free = self.free()
            if len(data) > free:
                real_write_all(fd, data[: max(free, 0)])  # what a real disk does: a part
                self.partial_writes += 1
                raise OSError(errno.ENOSPC, "No space left on device")
            real_write_all(fd, data)

        monkeypatch.setattr(storage_module, "_write_all", write_all)
        monkeypatch.setattr(storage, "free_bytes", self.free)

    def used(self) -> int:
        return sum(
            p.stat().st_size
            for p in self.storage.root.rglob("*")
            if p.is_file() and p.parent.name != "latest"
        )

    def free(self) -> int:
        return self.capacity - self.used()


def test_disk_full_raises_diskfull_and_leaves_no_partial_file(make_storage, monkeypatch) -> None:
    storage = make_storage()
    storage.save(PurePosixPath("old/a.jpg"), jpeg(100 * KIB), "cam1")
    disk = SmallDisk(storage, capacity=150 * KIB, monkeypatch=monkeypatch)

    with pytest.raises(DiskFull) as caught:
        storage.save(PurePosixPath("new/b.jpg"), jpeg(100 * KIB), "cam1")

    assert caught.value.errno == errno.ENOSPC
    assert "cam1" in str(caught.value) and "retention" in str(caught.value)
    assert isinstance(caught.value, OSError)
    assert disk.partial_writes == 2  # the first try and the retry after retention
    assert set(snapshots(storage.root)) == {"old/a.jpg"}  # the camera's newest is kept
    assert hidden_files(storage.root) == []


def test_on_a_full_disk_retention_frees_space_and_the_save_succeeds(
    make_storage, monkeypatch
) -> None:
    storage = make_storage()
    for n in range(4):
        storage.save(PurePosixPath(f"2026-11-2{n}/a{n}.jpg"), jpeg(100 * KIB, n), "cam1")
    storage.save(PurePosixPath("2026-11-23/b.jpg"), jpeg(100 * KIB, 9), "cam2")
    disk = SmallDisk(storage, capacity=520 * KIB, monkeypatch=monkeypatch)

    stored = storage.save(PurePosixPath("2026-11-24/a4.jpg"), jpeg(100 * KIB, 4), "cam1")

    files = snapshots(storage.root)
    assert disk.partial_writes == 1
    assert stored.path.read_bytes() == jpeg(100 * KIB, 4)
    assert "2026-11-20/a0.jpg" not in files
    assert "2026-11-23/b.jpg" in files  # cam2's only picture
    assert not (storage.root / "2026-11-20").exists()  # its emptied folder is gone
    assert hidden_files(storage.root) == []


# --------------------------------------------------------------------------- retention


def age_file(path: Path, days: float) -> None:
    moment = time.time() - days * 86400
    os.utime(path, (moment, moment))


def test_age_retention_keeps_each_cameras_newest_even_after_a_restart(make_storage) -> None:
    first = make_storage(keep_days=30)
    ages = {"d40/a.jpg": ("cam_a", 40), "d35/a.jpg": ("cam_a", 35), "d32/a.jpg": ("cam_a", 32)}
    ages |= {"d40/b.jpg": ("cam_b", 40), "d1/b.jpg": ("cam_b", 1)}
    for relative, (camera, _) in ages.items():
        first.save(PurePosixPath(relative), jpeg(1000), camera)
    first.close()
    for relative, (_, days) in ages.items():
        age_file(first.root / relative, days)

    restarted = make_storage(keep_days=30)
    # What the journal's snapshot_owners() answers (tests/e2e proves it with a real journal).
    restarted.recover({relative: camera for relative, (camera, _) in ages.items()})
    report = restarted.enforce_retention()

    assert set(snapshots(restarted.root)) == {"d32/a.jpg", "d1/b.jpg"}
    assert report.by_reason == {"age": 3}
    assert report.deleted_files == 3
    assert report.kept_newest == 1  # cam_a's 32-day-old picture is its newest
    assert report.remaining_files == 2
    assert not (restarted.root / "d40").exists()
    assert not (restarted.root / "d35").exists()


def test_after_a_restart_files_without_a_known_camera_protect_none(make_storage) -> None:
    first = make_storage(keep_days=30)
    for relative in ("d40/a.jpg", "d35/a.jpg"):
        first.save(PurePosixPath(relative), jpeg(1000), "cam_a")
        age_file(first.root / relative, int(relative[1:3]))
    first.close()
    (first.root / ".capture-index.jsonl").write_text('{"camera": "cam_a", "path": "d35/a.jpg"}\n')

    restarted = make_storage(keep_days=30)
    restarted.recover({})  # a journal moved aside: nobody knows whose they are
    report = restarted.enforce_retention()

    assert snapshots(restarted.root) == {}
    assert report.kept_newest == 0
    assert not (restarted.root / ".capture-index.jsonl").exists()  # the old index is dropped


def test_size_retention_deletes_the_oldest_until_under_the_limit(make_storage) -> None:
    storage = make_storage(keep_days=None, max_total_mb=0.5)
    for n in range(10):
        storage.save(PurePosixPath(f"s/{n}.jpg"), jpeg(100 * KIB), f"cam{n % 2}")

    report = storage.enforce_retention()

    assert set(snapshots(storage.root)) == {f"s/{n}.jpg" for n in range(5, 10)}
    assert report.by_reason == {"size": 5}
    assert report.remaining_bytes == 5 * 100 * KIB <= 0.5 * MIB
    assert report.freed_bytes == 5 * 100 * KIB


def test_free_space_retention_deletes_the_oldest_until_the_minimum_is_free(
    make_storage, monkeypatch
) -> None:
    storage = make_storage(keep_days=None, min_free_mb=0.3)
    for n in range(6):
        storage.save(PurePosixPath(f"f/{n}.jpg"), jpeg(100 * KIB), "cam1")
    SmallDisk(storage, capacity=700 * KIB, monkeypatch=monkeypatch)  # 100 KiB free

    report = storage.enforce_retention()

    assert set(snapshots(storage.root)) == {"f/3.jpg", "f/4.jpg", "f/5.jpg"}
    assert report.by_reason == {"free_space": 3}
    assert report.free_bytes >= 0.3 * MIB


def test_retention_never_deletes_the_last_picture_of_any_camera(make_storage) -> None:
    storage = make_storage(keep_days=None, max_total_mb=0.01)
    for camera in ("cam1", "cam2", "cam3"):
        for n in range(3):
            storage.save(PurePosixPath(f"{camera}/{n}.jpg"), jpeg(10 * KIB), camera)

    report = storage.enforce_retention()

    assert set(snapshots(storage.root)) == {"cam1/2.jpg", "cam2/2.jpg", "cam3/2.jpg"}
    assert report.kept_newest == 3
    assert {p.name for p in (storage.root / "latest").iterdir()} == {
        "cam1.jpg",
        "cam2.jpg",
        "cam3.jpg",
    }


def test_retention_leaves_latest_the_journal_and_foreign_files_alone(make_storage) -> None:
    storage = make_storage(keep_days=1)
    storage.save(PurePosixPath("x/old.jpg"), jpeg(1000), "cam1")
    storage.save(PurePosixPath("x/new.jpg"), jpeg(1000), "cam1")
    for name in ("journal.sqlite3", "journal.sqlite3-wal", "README.txt"):
        (storage.root / name).write_text("keep")
    for path in [*storage.root.rglob("*")]:
        if path.is_file():
            age_file(path, 5)

    restarted = make_storage(keep_days=1)
    restarted.recover({"x/old.jpg": "cam1", "x/new.jpg": "cam1"})  # as the journal knows them
    restarted.enforce_retention()

    assert set(snapshots(restarted.root)) == {
        "x/new.jpg",
        "journal.sqlite3",
        "journal.sqlite3-wal",
        "README.txt",
    }
    assert (restarted.root / "latest" / "cam1.jpg").exists()


def test_retention_of_a_future_now_keeps_only_newest_per_camera(make_storage) -> None:
    storage = make_storage(keep_days=7)
    for n in range(3):
        storage.save(PurePosixPath(f"t/{n}.jpg"), jpeg(1000), "cam1")

    assert storage.enforce_retention().deleted_files == 0
    report = storage.enforce_retention(now=datetime.now(UTC) + timedelta(days=8))

    assert report.deleted_files == 2
    assert set(snapshots(storage.root)) == {"t/2.jpg"}


def test_a_picture_made_from_a_snapshot_is_neither_latest_nor_the_newest_kept(
    make_storage,
) -> None:
    """A detection's crop, saved after its snapshot, must not stand in for it."""
    storage = make_storage(keep_days=7)
    storage.save(PurePosixPath("t/shot.jpg"), jpeg(1000, 1), "cam1")
    storage.save(PurePosixPath("t/shot_person_1.jpg"), jpeg(300, 2), "cam1", taken=False)

    assert storage.root.joinpath("latest/cam1.jpg").read_bytes() == jpeg(1000, 1)
    report = storage.enforce_retention(now=datetime.now(UTC) + timedelta(days=8))
    assert report.deleted_files == 1
    assert set(snapshots(storage.root)) == {"t/shot.jpg"}


def test_saves_keep_working_while_retention_runs(make_storage) -> None:
    storage = make_storage(keep_days=None, max_total_mb=0.2, fsync=False)
    errors: list[BaseException] = []
    stop = threading.Event()

    def prune() -> None:
        while not stop.is_set():
            storage.enforce_retention()

    pruner = threading.Thread(target=prune)
    pruner.start()
    try:
        for n in range(200):
            try:
                # Same folder as retention empties: the save must recreate it.
                storage.save(PurePosixPath(f"day{n % 3}/{n}.jpg"), jpeg(5 * KIB), f"cam{n % 3}")
            except OSError as exc:
                errors.append(exc)
    finally:
        stop.set()
        pruner.join()

    report = storage.enforce_retention()
    assert errors == []
    assert report.remaining_bytes <= 0.2 * MIB
    assert {"day0/198.jpg", "day1/199.jpg", "day2/197.jpg"} <= set(snapshots(storage.root))


def test_a_long_retention_pass_works_in_chunks_and_deletes_everything_due(
    make_storage, monkeypatch
) -> None:
    monkeypatch.setattr(retention_module, "CHUNK", 3)
    storage = make_storage(keep_days=None, max_total_mb=0.05)
    for n in range(20):
        storage.save(PurePosixPath(f"c/{n:02d}.jpg"), jpeg(10 * KIB), f"cam{n % 2}")

    report = storage.enforce_retention()

    assert set(snapshots(storage.root)) == {
        "c/15.jpg",
        "c/16.jpg",
        "c/17.jpg",
        "c/18.jpg",
        "c/19.jpg",
    }
    assert report.deleted_files == 15 and report.by_reason == {"size": 15}


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs, where the kernel itself answers ENOSPC (needs root)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mountpoint
    subprocess.run(["umount", str(mountpoint)], check=True)


def test_on_a_really_full_disk_saves_keep_succeeding_by_pruning_the_oldest(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = Storage(StorageConfig(root=tiny_disk / "store", min_free_mb=0, keep_days=None))
    caplog.set_level(logging.WARNING, logger="capture.storage")
    try:
        stored = [
            storage.save(PurePosixPath(f"day/{n:02d}.jpg"), jpeg(150 * KIB, n), "cam1")
            for n in range(30)
        ]
    finally:
        storage.close()

    files = snapshots(tiny_disk / "store")
    assert stored[-1].path.read_bytes() == jpeg(150 * KIB, 29)
    assert "day/29.jpg" in files and len(files) < 7
    assert all(content == jpeg(150 * KIB, int(name[4:6])) for name, content in files.items())
    assert hidden_files(tiny_disk) == []
    assert "disk full, running retention" in caplog.text  # the kernel did say ENOSPC


def test_a_retention_report_reads_as_key_value_pairs_in_the_log() -> None:
    report = RetentionReport(
        deleted_files=3, freed_bytes=3 * MIB, by_reason={"size": 1, "age": 2}, kept_newest=1,
        failed=0, remaining_files=10, remaining_bytes=10 * MIB, free_bytes=512 * MIB,
        kept_for_upload=4,
    )  # fmt: skip
    assert str(report) == (
        "deleted=3 freed_mib=3.0 reasons=age:2,size:1 kept_newest=1 kept_for_upload=4 failed=0 "
        "remaining=10 remaining_mib=10.0 free_mib=512.0"
    )
