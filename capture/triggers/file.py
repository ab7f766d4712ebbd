"""The `file` trigger: lines or whole files written by a sensor, watched with watchdog.

In `append` mode it behaves like `tail -F`: it starts at the end (history is
never replayed), fires once per complete line, lets a partial line wait for
its end, follows truncation (the file shrank: read from the start again) and
rotation (the name now points to a new file: finish the old one, then read
the new one from its start). In `replace` mode the whole file is read each
time a writer closes it or renames a new version over it.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    FileAttribEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from capture.config import schema
from capture.events import Event
from capture.triggers.base import (
    Emit,
    StatsKeeper,
    TriggerContext,
    TriggerError,
    TriggerStats,
)
from capture.triggers.parsing import LineSplitter, ValueParser, merge
from capture.triggers.values import PayloadFormatError

log = logging.getLogger(__name__)

#: Events about a file that say nothing of its content.
_READ_ONLY_EVENTS = (FileOpenedEvent, FileClosedNoWriteEvent, FileAttribEvent)

READ_CHUNK = 64 * 1024
SEEN_BYTES = 64
MAX_REPLACE_BYTES = 1024 * 1024
"""Largest file read whole in replace mode; a sensor reading is a few bytes."""
MAX_REMEMBERED_VERSIONS = 1024
"""Replace mode: files whose last version read is remembered (so two events of one version
fire once); a glob matching ever new names (reading-<time>.json) forgets the oldest."""
MAX_OPEN_FILES = 64
"""Files of a glob held open at once; the least recently written beyond are closed (parked)
and opened again at their next event: daily logs nobody removes must not use up the
process's file descriptors (1024 by default) that cameras and the journal need too."""


@dataclass
class _Tail:
    """An open file being followed in append mode."""

    path: str
    fd: int  # -1 while parked (closed until its next event)
    key: tuple[int, int]  # (st_dev, st_ino): a different key under the same name is a rotation
    offset: int
    splitter: LineSplitter = field(default_factory=LineSplitter)
    seen: bytes = b""  # the last bytes before offset, to notice a file rewritten in place
    used: int = 0  # when it was last read, in reads of its trigger: the most idle is parked

    @classmethod
    def open(cls, path: str, at_end: bool) -> _Tail:
        """Open `path` for following, at its end or its start."""
        fd = os.open(path, os.O_RDONLY)
        info = os.fstat(fd)
        tail = cls(path, fd, (info.st_dev, info.st_ino), info.st_size if at_end else 0)
        tail.seen = tail.bytes_before_offset()
        return tail

    def bytes_before_offset(self) -> bytes:
        """The bytes just before `offset`, as they are in the file now."""
        start = max(0, self.offset - SEEN_BYTES)
        return os.pread(self.fd, self.offset - start, start)

    def was_rewritten(self) -> bool:
        """True if the file shrank below `offset` or no longer holds what was read before it.

        Size alone misses a file truncated and refilled to at least its old
        size between two looks; the remembered bytes catch that too.
        """
        if os.fstat(self.fd).st_size < self.offset:
            return True
        return self.bytes_before_offset() != self.seen

    def read_chunk(self) -> bytes:
        """The next chunk after `offset` (empty at the end), advancing `offset`."""
        chunk = os.pread(self.fd, READ_CHUNK, self.offset)
        self.offset += len(chunk)
        self.seen = (self.seen + chunk)[-SEEN_BYTES:]
        return chunk

    def rewind(self) -> None:
        """Start again from the beginning, forgetting any partial line."""
        self.offset = 0
        self.seen = b""
        self.splitter.reset()

    def reopen(self, path: str) -> bool:
        """Open a parked file again through `path`; False if `path` no longer names it."""
        if self.fd >= 0:
            return True
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != self.key:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def close(self) -> None:
        """Close the file descriptor (parked: opened again by `reopen`)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _key(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file `path` names now, None if there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino)


class _Handler(FileSystemEventHandler):
    """Forwards watchdog's events to the trigger (observer separate from handler, watchdog-style)."""

    def __init__(self, trigger: FileTrigger) -> None:
        self.trigger = trigger

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Opening and reading change nothing: they are also what this trigger does to
        # a file (a parked one opened again), which must not wake it up once more.
        if not event.is_directory and not isinstance(event, _READ_ONLY_EVENTS):
            self.trigger.on_file_event(event)


class FileTrigger:
    """Fires for each new line of a file (append) or each new version of it (replace).

    Values: what the parser found, `line` (the line, or the whole content in
    replace mode, stripped) and `file` (the full path of the file).
    """

    def __init__(self, name: str, config: schema.FileTrigger, context: TriggerContext) -> None:
        self.name = name
        self.config = config
        self.source = f"file {config.path}"
        path = Path(os.path.abspath(Path(config.path).expanduser()))
        self.folder = str(path.parent)
        self.pattern = path.name
        self.is_glob = glob.has_magic(self.pattern)
        self._stats = StatsKeeper()
        self._lock = threading.Lock()
        self._tails: dict[str, _Tail] = {}
        self._reads = 0  # the clock of _Tail.used
        self._versions: dict[str, tuple[int, int, int]] = {}  # replace: the last one read
        self._observer: BaseObserver | None = None
        self._emit: Emit | None = None
        self._parser: ValueParser | None = None

    def start(self, emit: Emit) -> None:
        """Watch the folder; `TriggerError` if it does not exist or cannot be watched."""
        if self._observer is not None:
            return
        self._check_startable()
        self._emit = emit
        observer = (
            PollingObserver(timeout=self.config.poll_interval_s)
            if self.config.polling
            else Observer()
        )
        observer.schedule(_Handler(self), self.folder, recursive=False)
        with self._lock:
            try:
                observer.start()
            except OSError as exc:
                raise self._error(f"cannot watch {self.folder}: {exc}; try polling = true") from exc
            try:
                if self.config.mode == "append":
                    for path in self._existing():
                        self._follow(path, at_end=True)
            except OSError as exc:
                observer.stop()
                observer.join()
                for tail in self._tails.values():
                    tail.close()
                self._tails.clear()
                raise self._error(f"cannot read: {exc}") from exc
            self._observer = observer
        log.info(
            "file trigger started trigger=%s path=%s mode=%s polling=%s following=%d",
            self.name,
            self.config.path,
            self.config.mode,
            self.config.polling,
            len(self._tails),
        )

    def _check_startable(self) -> None:
        if glob.has_magic(self.folder):
            raise self._error("a glob may only be in the file name, e.g. /data/thermo/*.log")
        if not os.path.isdir(self.folder):
            raise self._error(f"folder {self.folder} does not exist; create it or fix path")
        try:
            self._parser = ValueParser(self.config)
        except LookupError as exc:
            raise self._error(f"unknown encoding {self.config.encoding!r}") from exc

    def _error(self, why: str) -> TriggerError:
        return TriggerError(self.name, f"cannot start: {why}", self.source)

    def stop(self) -> None:
        """Stop watching, join watchdog's threads and close the files."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join()
        with self._lock:
            for tail in self._tails.values():
                tail.close()
            self._tails.clear()
        self._emit = None

    def stats(self) -> TriggerStats:
        """Lines fired and lines that did not parse."""
        return self._stats.snapshot()

    def matches(self, path: str) -> bool:
        """Whether `path` is the watched file, or matches the glob (hidden files excepted)."""
        folder, name = os.path.split(path)
        if folder != self.folder:
            return False
        if not self.is_glob:
            return name == self.pattern
        hidden = name.startswith(".") and not self.pattern.startswith(".")
        return not hidden and fnmatch.fnmatchcase(name, self.pattern)

    def _existing(self) -> list[str]:
        if not self.is_glob:
            path = os.path.join(self.folder, self.pattern)
            return [path] if os.path.isfile(path) else []
        return sorted(
            entry.path
            for entry in os.scandir(self.folder)
            if entry.is_file() and self.matches(entry.path)
        )

    # watchdog's dispatch thread --------------------------------------------------

    def on_file_event(self, event: FileSystemEvent) -> None:
        """Follow one watchdog event; I/O problems are logged, never raised into watchdog."""
        source = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if isinstance(event, FileMovedEvent) else ""
        try:
            with self._lock:
                if self._observer is None:
                    return
                if self.config.mode == "append":
                    self._on_append_event(source, dest)
                else:
                    self._on_replace_event(event, source, dest)
        except OSError as exc:
            self._stats.error(f"{exc}")
            log.warning("file trigger cannot read trigger=%s error=%r", self.name, str(exc))
        except Exception as exc:
            # An exception here would end watchdog's dispatch thread: no more events at all.
            self._stats.error(f"{exc}")
            log.exception("file event handling failed trigger=%s path=%s", self.name, source)

    def _on_append_event(self, source: str, dest: str) -> None:
        moved = self._tails.get(source)
        # Events arrive late: by now `source` may already name a newer file,
        # followed since; only the file that really went to `dest` moves with it.
        if dest and moved is not None and _key(dest) == moved.key:
            tail = self._tails.pop(source)
            self._read(tail, dest)
            if self.matches(dest) and dest not in self._tails:
                tail.path = dest  # renamed within the watched set: keep following it
                self._tails[dest] = tail
            else:
                tail.close()
        for path in (source, dest):
            if path and self.matches(path):
                self._sync(path)

    def _sync(self, path: str) -> None:
        tail = self._tails.get(path)
        key = _key(path)
        if tail is not None and key != tail.key:
            self._read(tail)  # lines written just before the rotation
            tail.close()
            del self._tails[path]
            log.info("file rotated or removed trigger=%s file=%s", self.name, path)
            tail = None
        if tail is None and key is not None:
            tail = self._follow(path, at_end=False)
        if tail is not None:
            self._read(tail)

    def _follow(self, path: str, at_end: bool) -> _Tail | None:
        if not os.path.isfile(path):
            return None
        tail = _Tail.open(path, at_end)
        self._tails[path] = tail
        self._touch(tail)
        log.debug("file followed trigger=%s file=%s offset=%d", self.name, path, tail.offset)
        return tail

    def _touch(self, tail: _Tail) -> None:
        """`tail` was just used; beyond MAX_OPEN_FILES open, the most idle one is parked."""
        self._reads += 1
        tail.used = self._reads
        open_tails = [t for t in self._tails.values() if t.fd >= 0]
        if len(open_tails) > MAX_OPEN_FILES:
            min(open_tails, key=lambda t: t.used).close()

    def _read(self, tail: _Tail, path: str | None = None) -> None:
        """Read what was added to `tail`'s file (reached through `path`, if it moved)."""
        if not tail.reopen(path or tail.path):
            # Parked, and replaced under its name before this event: what was added to the
            # old version just before cannot be reached any more (an open file could).
            log.info("file replaced while idle trigger=%s file=%s", self.name, tail.path)
            return
        self._touch(tail)
        if tail.was_rewritten():
            log.info("file truncated or rewritten trigger=%s file=%s", self.name, tail.path)
            tail.rewind()
        while chunk := tail.read_chunk():
            lines, dropped = tail.splitter.feed(chunk)
            for _ in range(dropped):
                self._reject(tail.path, "line longer than 64 KiB")
            for line in lines:
                self._fire(tail.path, line)

    def _on_replace_event(self, event: FileSystemEvent, source: str, dest: str) -> None:
        if dest:
            path = dest  # a new version renamed into place (atomic replace)
        elif isinstance(event, FileClosedEvent | FileCreatedEvent) or (
            self.config.polling and isinstance(event, FileModifiedEvent)
        ):
            # A writer finished (inotify), a version renamed in from another folder
            # (inotify reports that as created), or polling saw a change.
            path = source
        else:
            return
        if not self.matches(path):
            return
        with open(path, "rb") as handle:
            version = os.fstat(handle.fileno())
            if isinstance(event, FileCreatedEvent) and not version.st_size:
                return  # a writer creating it in place: its close event comes
            this = (version.st_ino, version.st_mtime_ns, version.st_size)
            if self._versions.get(path) == this:
                return  # the same version, seen by two events (created, then closed)
            self._versions.pop(path, None)
            self._versions[path] = this  # newest last: a glob of ever new names stays bounded
            if len(self._versions) > MAX_REMEMBERED_VERSIONS:
                del self._versions[next(iter(self._versions))]
            content = handle.read(MAX_REPLACE_BYTES + 1)
        if len(content) > MAX_REPLACE_BYTES:
            self._reject(path, f"file larger than {MAX_REPLACE_BYTES} bytes")
        elif content.strip():
            self._fire(path, content)
        else:
            self._stats.ignored()  # emptied, or a writer that truncates before writing

    def _fire(self, path: str, raw: bytes) -> None:
        assert self._parser is not None and self._emit is not None
        try:
            values = self._parser.parse_bytes(raw)
        except PayloadFormatError as exc:
            self._reject(path, str(exc))
            return
        event = Event(trigger=self.name, values=merge(values, {"file": path}))
        self._stats.deliver(self._emit, event)

    def _reject(self, path: str, why: str) -> None:
        self._stats.rejected(f"{path}: {why}")
        log.info("file line rejected trigger=%s file=%s reason=%r", self.name, path, why)
