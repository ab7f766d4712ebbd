"""Snapshot files on disk: never half-written, never overwritten, pruned oldest first.

Layout under `[storage].root`::

    <template path>.jpg          snapshots, named by the rule's filename template
    latest/<camera>.jpg          the newest snapshot of each camera (a hard link when possible)
    journal.sqlite3              the journal (capture.journal), never touched here
    .capture-<pid>-<n>.tmp       a write in progress; swept by `Storage.recover()`

Which file belongs to which camera cannot be read back from a user's filename
template, yet retention must never delete the newest picture of a camera, also
right after a restart. The journal already has a row for every saved picture,
with its camera, so `recover()` takes that knowledge from its caller (the
journal's `snapshot_owners()`), scans the root once, and from then on an
in-memory index ordered by modification time answers every retention pass
without rescanning (capture.retention decides what is due; this module
deletes it). Snapshots the journal does not know (copied in by hand, a
journal moved aside) are managed too when they are `.jpg`/`.jpeg`, but
protect no camera.

Why one module of ~600 lines: writing, naming, latest/, the start-up scan and
deleting share one lock, the set of writes in flight and the index, and a
file's safety (never torn, never overwritten, never outside the root) is
only provable with all of them in view.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from capture.config.schema import NAME_PATTERN, StorageConfig
from capture.errors import CaptureError
from capture.retention import MIB, IndexEntry, RetentionIndex, RetentionPass, RetentionReport
from capture.sanitize import LATEST_DIR, storage_reserved
from capture.template import with_suffix_counter

log = logging.getLogger(__name__)

#: Where versions before 2026-12 kept which camera each file belongs to; the journal
#: knows it too, so `recover()` removes the file.
LEGACY_INDEX_NAME = ".capture-index.jsonl"
SNAPSHOT_SUFFIXES = frozenset({".jpg", ".jpeg"})

_TEMP_RE = re.compile(r"^\.capture-\d+-\d+\.tmp$")
_CAMERA_RE = re.compile(NAME_PATTERN)
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# Filesystems without hard links (FAT/exFAT USB sticks) answer one of these to link().
_NO_HARDLINKS = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV}
)
_MAX_SUFFIX = 10_000
_MAX_SAFE_FOLDERS = 10_000
_FOLDER_SYNC_IDLE_S = 5.0
#: Least time between two rounds of folder fsyncs: under load one fsync covers many new names.
_FOLDER_SYNC_PERIOD_S = 0.05


class StorageError(CaptureError, OSError):
    """A snapshot could not be stored; the message names the camera and what to do."""

    def __init__(
        self,
        message: str,
        *,
        camera: str | None = None,
        relative: PurePosixPath | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.camera = camera
        self.relative = relative
        if code is not None:
            self.errno = code


class DiskFull(StorageError):
    """No space left (ENOSPC or quota) even after an immediate retention pass."""


class UnsafePath(StorageError, ValueError):
    """A relative path that is absolute, hidden, reserved or leads out of the root."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A snapshot safely in place: its path under the root, absolute path and size."""

    relative: PurePosixPath
    path: Path
    bytes: int


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What `Storage.recover()` found at startup."""

    temp_files_removed: int
    files_indexed: int
    bytes_indexed: int

    def __str__(self) -> str:
        """`key=value` pairs, as every log line has them (never a Python repr)."""
        return (
            f"files={self.files_indexed} mib={self.bytes_indexed / 2**20:.1f} "
            f"temp_removed={self.temp_files_removed}"
        )


def _is_disk_full(exc: OSError) -> bool:
    return exc.errno in _DISK_FULL


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FolderSyncer:
    """fsyncs folders after new names appear in them, off the capture's path.

    The picture itself is fsynced before it gets its name, so a crash or
    power cut never leaves a torn JPEG; the folder fsync only makes the new
    name itself durable. Doing it here, coalesced, keeps a second fsync per
    frame off the trigger-to-event latency (it measured as much as the
    file's own). Rounds are at least `_FOLDER_SYNC_PERIOD_S` apart, so under
    load one folder fsync covers every name added meanwhile (2,000 saves in a
    row: kernel time per save 0.58 -> 0.37 ms); the window in which a power cut
    can lose the name of a finished picture is that period plus one fsync.
    """

    def __init__(self) -> None:
        self._dirty: set[Path] = set()
        self._wake = threading.Condition()
        self._stopped = False
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, folder: Path) -> None:
        with self._wake:
            self._dirty.add(folder)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="storage-fsync", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._dirty and not self._stopped:
                    if not self._wake.wait(_FOLDER_SYNC_IDLE_S) and not self._dirty:
                        self._thread = None  # idle: end; the next add() starts a new one
                        return
                if not self._dirty:
                    return
                folders, self._dirty = self._dirty, set()
            began = time.monotonic()
            for folder in folders:
                try:
                    _fsync_dir(folder)
                except FileNotFoundError:
                    pass  # retention removed an emptied date folder meanwhile
                except OSError as exc:
                    log.warning("could not fsync folder path=%s error=%s", folder, exc.strerror)
            # Not the condition: every add() notifies it, which would end the pause at once.
            self._closing.wait(_FOLDER_SYNC_PERIOD_S - (time.monotonic() - began))

    def close(self) -> None:
        """Sync what is pending, then stop the thread."""
        self._closing.set()
        with self._wake:
            self._stopped = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove temporary file path=%s error=%s", path, exc.strerror)


class Storage:
    """Stores snapshots under `config.root` and keeps the disk within its limits.

    `save()` is safe to call from many capture threads at once. It writes the
    JPEG to a hidden temporary file in the target folder, fsyncs it (when
    `config.fsync`), hard-links it to its final name - which fails rather than
    overwrite, so a taken name gets `_2`, `_3`... - and has the folder fsynced
    in the background (see `_FolderSyncer`). A reader, a crash or a power cut
    therefore sees the whole picture or none.

    Measured on the development machine (2 cores, ext4 on a virtio disk), one
    70 KB snapshot: 1.0 ms with fsync (file and folder), 0.36 ms without;
    updating latest/ (a hard link) adds about 0.2 ms. Raspberry Pi SD cards
    fsync more slowly (typically 5-20 ms): keep `fsync = true`, since a torn
    JPEG after a power cut is worse than a slow write, and captures of
    different cameras write in parallel anyway.

    Retention (capture.retention's in-memory index) takes under 0.1 ms for a
    pass with nothing to delete with 100,000 files indexed, deleting costs
    about 25 us per file, and `recover()` scans 100,000 files in about 1.5 s.

    Call `recover()` once at startup and `enforce_retention()` every
    `config.retention_interval_s`.
    """

    def __init__(self, config: StorageConfig) -> None:
        self.config = config
        self.root = Path(config.root)
        self._lock = threading.Lock()
        self._retention_lock = threading.Lock()
        self._latest_locks: dict[str, threading.Lock] = {}
        self._latest_order: dict[str, int] = {}
        self._index = RetentionIndex()
        self._order = itertools.count(1)
        self._temp_counter = itertools.count(1)
        self._inflight: set[str] = set()
        self._hardlinks = True
        self._recovered = False
        self._folders = _FolderSyncer()
        self._safe_folders: set[PurePosixPath] = set()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"storage root {self.root} cannot be created: {exc.strerror}; create it and "
                "let the service's user write to it",
                code=exc.errno,
            ) from exc
        self._root_resolved = self.root.resolve()

    # ------------------------------------------------------------------ saving

    def save(
        self, relative: PurePosixPath | str, jpeg: bytes, camera: str, *, taken: bool = True
    ) -> StoredFile:
        """Store one snapshot atomically under the root and return where it went.

        `taken=False` is for a picture made from a snapshot (a detection's
        annotated copy, its crops): stored the same way, but it leaves
        `latest/<camera>.jpg` alone and is not the camera's newest picture
        for retention (as after a restart, when the journal does not name it).

        On a full disk the temporary file is removed (no partial file is ever
        left), one retention pass runs at once - it deletes the oldest
        snapshots until the free-space minimum plus room for this picture is
        met, since on a full disk the newest picture matters more than the
        oldest - and the write is tried once more before `DiskFull` is raised.
        """
        relative = self._checked(relative, camera)
        try:
            return self._save_once(relative, jpeg, camera, taken)
        except OSError as exc:
            if not _is_disk_full(exc):
                raise self._error(StorageError, exc, relative, camera) from exc
            log.warning(
                "disk full, running retention camera=%s path=%s root=%s",
                camera,
                relative,
                self.root,
            )
        try:
            self.enforce_retention(extra_free_bytes=len(jpeg) + MIB)
        except OSError as exc:
            log.error("retention failed root=%s error=%s", self.root, exc.strerror or exc)
        try:
            return self._save_once(relative, jpeg, camera, taken)
        except OSError as exc:
            kind = DiskFull if _is_disk_full(exc) else StorageError
            raise self._error(kind, exc, relative, camera) from exc

    def latest(self, camera: str) -> Path | None:
        """The camera's `latest/<camera>.jpg`, or None if it has none yet."""
        path = self.root / LATEST_DIR / f"{camera}.jpg"
        return path if _CAMERA_RE.match(camera) and path.is_file() else None

    def _checked(self, relative: PurePosixPath | str, camera: str) -> PurePosixPath:
        relative = PurePosixPath(relative)
        reason = None
        if not _CAMERA_RE.match(camera):
            reason = f"camera name {camera!r} is not a safe file name"
        elif relative.is_absolute() or not relative.parts:
            reason = "path must be relative to the storage root"
        elif any(part in ("..", ".") or part.startswith(".") for part in relative.parts):
            reason = "'..' and hidden names are not allowed"
        elif "\x00" in str(relative):
            reason = "path contains a NUL byte"
        elif storage_reserved(relative.parts[0]):
            reason = f"{relative.parts[0]!r} is reserved by the storage"
        elif not self._inside_root(relative.parent):
            reason = "path leads out of the storage root through a symbolic link"
        if reason is None:
            return relative
        raise UnsafePath(
            f"camera {camera}: refusing to store {str(relative)!r}: {reason}; "
            "check the rule's filename template",
            camera=camera,
            relative=relative,
        )

    def _inside_root(self, folder: PurePosixPath) -> bool:
        """Whether `folder` resolves inside the root, following symbolic links.

        Resolving costs a system call per path component; a camera writes to
        the same few folders all day, so folders found safe are remembered.
        The file name itself needs no check: a link never replaces an
        existing name, symbolic link or not.
        """
        if folder in self._safe_folders:
            return True
        if not (self.root / folder).resolve().is_relative_to(self._root_resolved):
            return False
        if len(self._safe_folders) > _MAX_SAFE_FOLDERS:
            self._safe_folders.clear()
        self._safe_folders.add(folder)
        return True

    def _error(
        self, kind: type[StorageError], exc: OSError, relative: PurePosixPath, camera: str
    ) -> StorageError:
        if kind is DiskFull:
            hint = "retention could not free enough: lower keep_days or max_total_mb, or add space"
        elif exc.errno == errno.ENAMETOOLONG:
            hint = "shorten the rule's filename template"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = "let the service's user write to the storage root"
        else:
            hint = "check the disk and the storage root"
        return kind(
            f"camera {camera}: could not store {relative} under {self.root}: "
            f"{exc.strerror or exc}; {hint}",
            camera=camera,
            relative=relative,
            code=exc.errno,
        )

    def _save_once(
        self, relative: PurePosixPath, jpeg: bytes, camera: str, taken: bool = True
    ) -> StoredFile:
        target = self.root / relative
        temp = target.parent / f".capture-{os.getpid()}-{next(self._temp_counter)}.tmp"
        with self._lock:
            self._inflight.add(temp.name)
        try:
            fd = self._open_temp(temp)
            try:
                _write_all(fd, jpeg)
                if self.config.fsync:
                    os.fsync(fd)
                mtime_ns = os.fstat(fd).st_mtime_ns
            finally:
                os.close(fd)
            final = self._link_into_place(temp, relative)
            if self.config.fsync:
                self._folders.add(target.parent)
        except BaseException:
            _unlink_quietly(temp)
            raise
        finally:
            with self._lock:
                self._inflight.discard(temp.name)
        order = next(self._order)
        entry = IndexEntry(final.as_posix(), camera if taken else None, len(jpeg), mtime_ns, order)
        with self._lock:
            self._index.add(entry)
        stored = StoredFile(final, self.root / final, len(jpeg))
        if self.config.latest and taken:
            self._update_latest(camera, stored, jpeg, order)
        return stored

    def _open_temp(self, temp: Path) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        for _ in range(3):
            try:
                return os.open(temp, flags, 0o644)
            except FileNotFoundError:
                # A new folder, or retention removed an emptied one meanwhile.
                temp.parent.mkdir(parents=True, exist_ok=True)
        return os.open(temp, flags, 0o644)

    def _link_into_place(self, temp: Path, relative: PurePosixPath) -> PurePosixPath:
        candidate = relative
        for n in range(2, _MAX_SUFFIX):
            if self._hardlinks:
                try:
                    os.link(temp, self.root / candidate)
                except FileExistsError:
                    candidate = with_suffix_counter(relative, n)
                    continue
                except OSError as exc:
                    if exc.errno not in _NO_HARDLINKS:
                        raise
                    log.info("no hard links on this filesystem, using rename root=%s", self.root)
                    self._hardlinks = False
                else:
                    os.unlink(temp)
                    return candidate
            with self._lock:
                # Without link(), only our own lock keeps two saves off one name.
                if not (self.root / candidate).exists():
                    os.rename(temp, self.root / candidate)
                    return candidate
            candidate = with_suffix_counter(relative, n)
        raise FileExistsError(errno.EEXIST, f"{_MAX_SUFFIX} files named like this exist")

    def _update_latest(self, camera: str, stored: StoredFile, jpeg: bytes, order: int) -> None:
        with self._lock:
            camera_lock = self._latest_locks.setdefault(camera, threading.Lock())
        with camera_lock:
            if order < self._latest_order.get(camera, 0):
                return  # a newer frame of this camera got there first
            folder = self.root / LATEST_DIR
            temp = folder / f".capture-{os.getpid()}-{next(self._temp_counter)}.tmp"
            try:
                try:
                    self._write_latest_temp(stored.path, temp, jpeg)
                except FileNotFoundError:  # first picture, or latest/ was removed by hand
                    folder.mkdir(exist_ok=True)
                    self._write_latest_temp(stored.path, temp, jpeg)
                os.replace(temp, folder / f"{camera}.jpg")
            except OSError as exc:
                _unlink_quietly(temp)
                # The snapshot itself is stored; a stale latest/ is not worth failing for.
                log.warning("could not update latest camera=%s error=%s", camera, exc.strerror)
                return
            self._latest_order[camera] = order

    def _write_latest_temp(self, source: Path, temp: Path, jpeg: bytes) -> None:
        if self._hardlinks:
            try:
                os.link(source, temp)
                return
            except OSError as exc:
                if exc.errno not in _NO_HARDLINKS:
                    raise
                self._hardlinks = False
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, jpeg)
            if self.config.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _walk(self, directory: str, prefix: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
        """Files under `directory` as (path relative to the root, entry); plain strings
        because pathlib would dominate the time of a 100,000-file scan."""
        try:
            with os.scandir(directory) as entries:
                children = list(entries)
        except OSError as exc:
            log.warning("cannot read folder path=%s error=%s", directory, exc.strerror)
            return
        for child in children:
            relative = prefix + child.name
            if child.is_dir(follow_symlinks=False):
                if not child.name.startswith("."):
                    yield from self._walk(child.path, relative + "/")
            elif child.is_file(follow_symlinks=False):
                yield relative, child

    def recover(self, owners: Mapping[str, str] | None = None) -> RecoveryReport:
        """Sweep temporary files a kill left behind and index the snapshots on disk.

        `owners` maps a snapshot's path (relative to the root) to its camera,
        as the journal recorded it; a file it does not name protects no camera.
        Only files named like our own temporaries (`.capture-<pid>-<n>.tmp`) are
        removed, never one a save of this process is still writing.
        """
        owners = owners or {}
        _unlink_quietly(self.root / LEGACY_INDEX_NAME)
        with self._lock:
            removed = 0
            found: list[IndexEntry] = []
            for relative, item in self._walk(str(self.root)):
                if _TEMP_RE.match(item.name):
                    if item.name not in self._inflight:
                        _unlink_quietly(Path(item.path))
                        removed += 1
                    continue
                camera = owners.get(relative)
                if _is_reserved(relative) or (
                    camera is None
                    and os.path.splitext(item.name)[1].lower() not in SNAPSHOT_SUFFIXES
                ):
                    continue
                try:
                    stat = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                found.append(IndexEntry(relative, camera, stat.st_size, stat.st_mtime_ns, 0))
            found.sort(key=lambda entry: (entry.mtime_ns, entry.relative))
            known = {e.relative: e for e in self._index.entries.values()}
            self._index = RetentionIndex(held=self._index.held)  # parked: in the new heap
            for entry in found:
                previous = known.get(entry.relative)
                if previous is not None and entry.camera is None:
                    entry.camera = previous.camera
                entry.order = next(self._order)
                self._index.add(entry)
            self._recovered = True
        log.info(
            "storage ready root=%s files=%d mib=%.1f temp_removed=%d",
            self.root,
            len(found),
            self._index.total_bytes / MIB,
            removed,
        )
        return RecoveryReport(removed, len(found), self._index.total_bytes)

    # ------------------------------------------------------------------ retention

    def hold(self, relatives: Iterable[str]) -> None:
        """Keep these pictures from retention until released (not in the object store yet)."""
        with self._lock:
            self._index.hold(relatives)

    def release(self, relatives: Iterable[str]) -> None:
        """Let retention have these pictures again (uploaded)."""
        with self._lock:
            self._index.release(relatives)

    def free_bytes(self) -> int:
        """Free space available to the service on the storage filesystem."""
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize

    def enforce_retention(
        self, now: datetime | None = None, *, extra_free_bytes: int = 0
    ) -> RetentionReport:
        """Delete the oldest snapshots until age, total size and free space are within limits.

        The newest snapshot of every camera is always kept, so a camera's
        latest picture survives any limit. `extra_free_bytes` raises the
        free-space target for one pass (used when a write found the disk full).
        """
        if not self._recovered:
            self.recover()
        now_ns = int((now.timestamp() if now else time.time()) * 1e9)
        with self._retention_lock:
            pass_ = RetentionPass(free=self.free_bytes())
            while not pass_.done:
                # Chunks keep the lock that save() also needs short even when a
                # first pass after a long outage deletes tens of thousands of files.
                with self._lock:
                    victims = self._index.take_due(self.config, pass_, now_ns, extra_free_bytes)
                pass_.deleted += self._delete(victims, pass_)
            with self._lock:
                remaining, remaining_bytes = len(self._index.entries), self._index.total_bytes
                held_due = len(self._index.parked)
            report = RetentionReport(
                deleted_files=pass_.deleted,
                freed_bytes=pass_.freed,
                by_reason=dict(pass_.reasons),
                kept_newest=len(pass_.kept),
                kept_for_upload=held_due,
                failed=pass_.failed,
                remaining_files=remaining,
                remaining_bytes=remaining_bytes,
                free_bytes=self.free_bytes(),
            )
        if report.deleted_files or report.failed:
            log.info(
                "retention deleted=%d failed=%d freed_mib=%.1f reasons=%s kept_newest=%d "
                "free_mib=%.1f",
                report.deleted_files,
                report.failed,
                report.freed_bytes / MIB,
                ",".join(f"{k}:{v}" for k, v in sorted(pass_.reasons.items())),
                report.kept_newest,
                report.free_bytes / MIB,
            )
        return report

    def _delete(self, victims: list[IndexEntry], pass_: RetentionPass) -> int:
        deleted = 0
        root = str(self.root)
        folders: set[str] = set()
        for entry in victims:
            path = os.path.join(root, entry.relative)
            try:
                os.unlink(path)
                pass_.freed += entry.size
                deleted += 1
            except FileNotFoundError:
                deleted += 1  # someone removed it by hand
            except OSError as exc:
                pass_.failed += 1
                log.warning("retention could not delete path=%s error=%s", path, exc.strerror)
            folders.add(os.path.dirname(entry.relative))
        for folder in sorted(folders, key=lambda f: f.count("/"), reverse=True):
            self._remove_empty_folders(folder)
        return deleted

    def _remove_empty_folders(self, relative: str) -> None:
        """Remove `relative` and its parents while empty, up to (not including) the root."""
        while relative:
            try:
                os.rmdir(os.path.join(self.root, relative))
            except OSError:
                return  # not empty (or already gone): stop climbing
            relative = os.path.dirname(relative)

    def close(self) -> None:
        """Sync pending folders; the Storage must not be used afterwards."""
        self._folders.close()


def _is_reserved(relative: str) -> bool:
    """latest/, the journal and hidden files are never snapshots."""
    top = relative.split("/", 1)[0]
    return storage_reserved(top) or relative.rsplit("/", 1)[-1].startswith(".")
