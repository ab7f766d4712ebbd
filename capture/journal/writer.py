"""The journal's one writer: group commits on a thread of its own, retried while the disk is full.

One writer thread owns the write connection and commits whatever the capture
threads queued since its last commit in one transaction ("group commit"): at
low load each row is committed within about a millisecond, under load batches
grow by themselves, so recording never waits for the disk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capture.events import CaptureResult, Event, PlannedFrame
from capture.journal.reader import JournalReader
from capture.journal.records import process_owner
from capture.journal.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    JournalError,
    connect,
    db_device_time,
    db_time,
)

log = logging.getLogger(__name__)

#: What a table's owning module asks the writer to run inside a commit.
Work = Callable[[sqlite3.Connection], Any]

_BATCH_MAX = 1000
#: Under load, how long the writer lets records gather before a commit.
_GATHER_S = 0.005
#: Rows per second from which the writer counts as under load (~100 events/s).
_BUSY_ROWS_PER_S = 500
_RATE_WINDOW_S = 0.1
_BACKLOG_MAX = 100_000
_RETRY_MAX_S = 5.0


class _Op:
    """One queued write; `done` is set when the caller waits for its commit, `then` runs after it."""

    __slots__ = ("args", "done", "error", "kind", "result", "sync", "then")

    def __init__(
        self,
        kind: str,
        args: tuple[Any, ...] = (),
        *,
        wait: bool = False,
        sync: bool = False,
        then: Callable[[], None] | None = None,
    ) -> None:
        self.kind = kind
        self.args = args
        self.sync = sync  # its commit must reach the disk (an fsync), not only the WAL file
        self.done = threading.Event() if wait else None
        self.then = then
        self.result: Any = None
        self.error: BaseException | None = None

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        if self.done is not None:
            self.done.set()
        if self.then is not None and error is None:
            try:
                self.then()
            except Exception:  # the writer thread must outlive a caller's bug
                log.exception("journal: a callback after a commit failed")


_INSERT_EVENT = (
    "INSERT OR IGNORE INTO events (id, time, trigger, rules_json, values_json) "
    "VALUES (?, ?, ?, ?, ?)"
)
_INSERT_FIRING = (
    "INSERT OR REPLACE INTO firings (event_id, rule, manual, frames_json, owner, opened) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_DELETE_FIRING = "DELETE FROM firings WHERE event_id = ? AND rule = ?"


def close_firings(connection: sqlite3.Connection, firings: Iterable[tuple[str, str]]) -> None:
    """End the journal rows of these firings (event id, rule): inside the commit announcing them."""
    connection.executemany(_DELETE_FIRING, firings)


_INSERT_CAPTURE = (
    "INSERT INTO captures (event_id, rule, camera, seq, path, bytes, latency_ms, "
    "trigger_to_image_ms, image_time, width, height, stale, error_type, error_message, time, "
    "event_time, missing_fields, offset_ms, via) "
    # An outcome is filed under its event's time; the event is queued first, so it is there.
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
    "COALESCE((SELECT time FROM events WHERE id = ?1), ?15), ?16, ?17, ?18)"
)

# Storage retention never deletes a camera's newest picture, whatever its age, and
# learns after a restart which file that is from these rows: each camera's newest
# saved picture keeps its row (and its event), however old. The subquery walks the
# (camera, event_time) index back from each camera's newest row.
_PRUNE_CAPTURES = """
    DELETE FROM captures WHERE event_time < ?1 AND id NOT IN (
        SELECT (SELECT newest.id FROM captures newest
                WHERE newest.camera = cameras.camera AND newest.path IS NOT NULL
                ORDER BY newest.event_time DESC, newest.id DESC LIMIT 1)
        FROM (SELECT DISTINCT camera FROM captures) cameras
    )
"""
# A picture's detections go with its capture row (the newest kept, as above).
_PRUNE_DETECTIONS = """
    DELETE FROM detections WHERE time < ?1 AND NOT EXISTS (
        SELECT 1 FROM captures WHERE captures.event_id = detections.event_id
            AND captures.rule = detections.rule AND captures.camera = detections.camera
            AND captures.seq = detections.seq)
"""
_PRUNE_EVENTS = """
    DELETE FROM events WHERE time < ?1
        AND NOT EXISTS (SELECT 1 FROM captures WHERE captures.event_id = events.id)
"""


class Journal(JournalReader):
    """The service's journal at `path`, created and migrated on open.

    `record_event`, `record_result`, `close_firing` and `queue_write` return at
    once and are committed by the writer thread within milliseconds; `write`,
    `prune` and `flush` return once committed. Measured on
    the development machine (2 cores): 26,000 rows/s recorded from one
    thread, 12,000 rows/s from 8 threads building events at the same time
    (the GIL, not SQLite, is the limit).
    """

    def __init__(self, path: Path, *, sync_firings: bool = True) -> None:
        path = Path(path)
        self._sync_firings = sync_firings
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = connect(path, readonly=False)
        try:
            self._writer.execute("PRAGMA journal_mode = WAL")
            self._writer.execute("PRAGMA synchronous = NORMAL")
            self._migrate(path)
        except sqlite3.Error as exc:
            self._writer.close()
            raise JournalError(
                f"journal {path}: cannot prepare ({exc}); if the file is damaged, move it "
                "aside and the service starts a new one"
            ) from exc
        super().__init__(path, _connection=connect(path, readonly=False))
        self.owner = process_owner()
        self._queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._wake = threading.Event()
        #: Rows another table's owner adds in the commit of each capture outcome
        #: (capture.upload.queue: a saved picture's upload row). Set before capturing.
        self.with_result: Callable[[CaptureResult], Work | None] | None = None
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    def _migrate(self, path: Path) -> None:
        version = self._writer.execute("PRAGMA user_version").fetchone()[0]
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[target - 1].split(";"):
                    if statement.strip():
                        self._writer.execute(statement)
                self._writer.execute(f"PRAGMA user_version = {target}")
                self._writer.execute("COMMIT")
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            log.info("journal migrated path=%s version=%d", path, target)

    # ------------------------------------------------------------------ API

    def record_event(self, event: Event, rules: Sequence[str]) -> None:
        """Queue an event with the rules it fired (empty when none matched)."""
        self._submit(
            _Op(
                "sql",
                (
                    _INSERT_EVENT,
                    (
                        event.id,
                        db_time(event.wall_time),
                        event.trigger,
                        json.dumps(list(rules)),
                        json.dumps(dict(event.values), ensure_ascii=False),
                    ),
                ),
            )
        )

    def record_result(self, result: CaptureResult) -> None:
        """Queue one capture outcome, stamped with the current time (and `with_result`'s rows)."""
        row = (
            result.event_id,
            result.rule,
            result.camera,
            result.seq,
            None if result.path is None else str(result.path),
            result.bytes,
            result.latency_ms,
            result.trigger_to_image_ms,
            db_device_time(result.image_time),
            result.width,
            result.height,
            int(result.stale),
            result.error_type,
            result.error_message,
            db_time(datetime.now(UTC)),
            ",".join(result.missing_fields) or None,
            result.offset_ms,
            result.via,
        )
        also = self.with_result(result) if self.with_result is not None else None
        if also is None:
            self._submit(_Op("sql", (_INSERT_CAPTURE, row)))
            return

        def both(connection: sqlite3.Connection) -> None:
            connection.execute(_INSERT_CAPTURE, row)
            also(connection)

        self._submit(_Op("work", (both, "capture")))

    def open_firing(
        self, event_id: str, rule: str, manual: bool, frames: Sequence[PlannedFrame]
    ) -> threading.Event:
        """Queue an accepted firing with its planned frames; the flag is set once it is committed.

        The commit is fsynced (unless `sync_firings=False`, for a storage that
        does not fsync its pictures either), so it survives a power cut.

        The flag is also set when the journal refused the row (a full disk): a
        capture must not wait forever for a journal that cannot take it.
        """
        frames_json = json.dumps(
            [[f.camera, f.seq, f.path, f.offset_ms] for f in frames], ensure_ascii=False
        )
        op = _Op(
            "sql",
            (
                _INSERT_FIRING,
                (event_id, rule, int(manual), frames_json, self.owner, db_time(datetime.now(UTC))),
            ),
            wait=True,
            sync=self._sync_firings,
        )
        self._submit(op)
        assert op.done is not None
        return op.done

    def close_firing(self, event_id: str, rule: str) -> None:
        """Queue the end of a firing that is announced by no event message (MQTT disabled)."""
        self._submit(_Op("sql", (_DELETE_FIRING, (event_id, rule))))

    def queue_write(self, work: Work, kind: str) -> None:
        """Queue `work(connection)` for the next commit; returns at once.

        For the modules that own a table of this file (capture.outbox): their
        rows share the writer's group commits. `kind` names the row in logs.
        """
        self._submit(_Op("work", (work, kind)))

    def write(self, work: Work, kind: str, timeout: float = 30.0) -> Any:
        """Run `work(connection)` in a commit and return its result once committed."""
        return self._wait(_Op("work", (work, kind), wait=True), timeout)

    def prune(self, older_than: datetime) -> int:
        """Delete events and captures from before `older_than`; returns rows deleted.

        Each camera's newest saved picture keeps its row and its event (see _PRUNE_CAPTURES).
        """
        return int(self._wait(_Op("prune", (db_time(older_than),))))

    def flush(self, timeout: float = 30.0) -> None:
        """Return once everything queued before this call is committed."""
        self._wait(_Op("flush"), timeout)

    def when_committed(self, callback: Callable[[], None]) -> None:
        """Call `callback` once everything queued before this call is committed; returns at once.

        For callers that must not wait for a commit (a listener running on a
        capture thread). `callback` runs on the writer thread, after a disk
        that was full has room again if need be: keep it short and non-blocking.
        """
        self._submit(_Op("flush", then=callback))

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the connections."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_Op("stop"))
        self._wake.set()
        self._thread.join()
        self._writer.close()
        super().close()

    def _submit(self, op: _Op) -> None:
        with self._close_lock:  # nothing may slip in behind the writer's stop
            if self._closed:
                raise JournalError(f"journal {self.path}: already closed")
            self._queue.put(op)

    def _wait(self, op: _Op, timeout: float = 30.0) -> Any:
        if op.done is None:
            op.done = threading.Event()
        self._submit(op)
        if not op.done.wait(timeout):
            raise JournalError(f"journal {self.path}: write not committed within {timeout} s")
        if op.error is not None:
            raise JournalError(f"journal {self.path}: write failed: {op.error}") from op.error
        return op.result

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        stopping = False
        window_start, window_rows, previous_rows = time.monotonic(), 0, 0
        busy_rows = _BUSY_ROWS_PER_S * _RATE_WINDOW_S
        while not stopping:
            first = self._queue.get()
            now = time.monotonic()
            if now - window_start >= _RATE_WINDOW_S:
                recent = now - window_start < 2 * _RATE_WINDOW_S
                window_start, window_rows, previous_rows = now, 0, window_rows if recent else 0
            if first.kind != "stop" and max(window_rows, previous_rows) >= busy_rows:
                # Under load, let rows gather: each commit rewrites the touched
                # pages of six B-trees to the WAL, so one commit for many rows is
                # far cheaper than one per row. A quiet line commits at once, so a
                # reader who heard of an event finds it in the journal.
                self._wake.wait(_GATHER_S)
            batch = [first, *self._drain()]
            window_rows += len(batch)
            stopping = self._commit_with_retry(batch)

    def _drain(self) -> list[_Op]:
        """Whatever else is queued, up to one batch, without waiting."""
        ops: list[_Op] = []
        while len(ops) < _BATCH_MAX:
            try:
                ops.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return ops

    def _commit_with_retry(self, batch: list[_Op]) -> bool:
        """Commit a batch; retry while the disk is full, isolate rows SQLite refuses.

        Returns True once the batch held the stop request.
        """
        stopping = any(op.kind == "stop" for op in batch)
        delay = 0.1
        while True:
            try:
                results = self._commit(batch)
            except sqlite3.OperationalError as exc:
                # Disk full, I/O error, locked: the same rows may well commit later.
                self._rollback()
                # Callers waiting on a commit learn at once; queued records are retried.
                for op in batch:
                    if op.done is not None:
                        op.finish(error=exc)
                batch = [op for op in batch if op.done is None]
                rows = sum(op.kind != "stop" for op in batch)
                if not batch:
                    return stopping
                if stopping or rows > _BACKLOG_MAX:
                    log.error("journal write failed, dropped rows=%d error=%s", rows, exc)
                    return stopping
                log.warning("journal write failed, retrying rows=%d error=%s", rows, exc)
                self._wake.wait(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                # Take in what arrived meanwhile, so a caller waiting on a commit
                # hears of the failure at the next attempt instead of timing out.
                batch += self._drain()
                stopping = self._closed or any(op.kind == "stop" for op in batch)
            except Exception:  # a row SQLite refuses must not take its batch with it
                self._rollback()
                self._commit_one_by_one(batch)
                return stopping
            else:
                for op, result in zip(batch, results, strict=True):
                    op.finish(result)
                return stopping

    def _commit_one_by_one(self, batch: list[_Op]) -> None:
        for op in batch:
            try:
                (result,) = self._commit([op])
            except Exception as exc:
                self._rollback()
                kind = op.args[1] if op.kind == "work" else op.kind
                log.error("journal refused a row, dropped kind=%s error=%s", kind, exc)
                op.finish(error=exc)
            else:
                op.finish(result)

    def _commit(self, batch: list[_Op]) -> list[Any]:
        # A batch that opens firings is fsynced: their pictures are stored next, and a
        # power cut must not keep a picture whose firing row it lost. One fsync covers
        # every firing of the batch, and runs while their cameras are still answering.
        sync = any(op.sync for op in batch)
        if sync:
            self._writer.execute("PRAGMA synchronous = FULL")
        try:
            self._writer.execute("BEGIN IMMEDIATE")
            results = [self._apply(op) for op in batch]
            self._writer.execute("COMMIT")
        except BaseException:
            self._rollback()  # the safety level cannot change inside a transaction
            raise
        finally:
            if sync:
                self._writer.execute("PRAGMA synchronous = NORMAL")
        return results

    def _apply(self, op: _Op) -> Any:
        if op.kind == "sql":
            self._writer.execute(*op.args)
        elif op.kind == "sql_many":
            self._writer.executemany(*op.args)
        elif op.kind == "work":
            return op.args[0](self._writer)
        elif op.kind == "prune":
            deleted = self._writer.execute(_PRUNE_CAPTURES, op.args).rowcount
            deleted += self._writer.execute(_PRUNE_DETECTIONS, op.args).rowcount
            deleted += self._writer.execute(_PRUNE_EVENTS, op.args).rowcount
            return deleted
        return None

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # no transaction was open
            self._writer.execute("ROLLBACK")
