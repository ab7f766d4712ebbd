"""The upload queue: the journal's `uploads` rows, one per saved picture, kept until pruned.

A row is added in the same commit as its picture's capture row (the
journal's `with_result` hook), so whatever kills the service, a picture the
journal knows is either queued or uploaded: never forgotten. A frame has one
row ((event_id, rule, camera, seq) is unique): a recovered firing or a
retried commit adds none twice. An uploaded row keeps its key, which is how
`capture events`, the dashboard and the follow-up message learn it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from capture.config.schema import RuleFile
from capture.events import CaptureResult
from capture.journal import Journal, JournalReader
from capture.journal.schema import db_time
from capture.journal.writer import Work
from capture.upload.keys import KeyFields, render_key

_INSERT = (
    "INSERT OR IGNORE INTO uploads (event_id, rule, camera, seq, path, key, bytes, created) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_DONE = (
    "UPDATE uploads SET state = 'uploaded', uploaded = ?, attempts = attempts + 1, error = NULL "
    "WHERE id = ?"
)
_FAILED = "UPDATE uploads SET attempts = attempts + 1, error = ?, retry_at = ? WHERE id = ?"
_GONE = "UPDATE uploads SET state = 'gone', attempts = attempts + 1, error = ? WHERE id = ?"
_WAITING = (
    "SELECT id, event_id, rule, camera, seq, path, key, bytes, attempts FROM uploads "
    "WHERE state = 'waiting' AND id > ? AND (retry_at IS NULL OR retry_at <= ?) "
    "ORDER BY id LIMIT ?"
)
_WAITING_PATHS = "SELECT path FROM uploads WHERE state = 'waiting'"
_BACKLOG = "SELECT COUNT(*), SUM(bytes), MIN(created) FROM uploads WHERE state = 'waiting'"
_PRUNE = "DELETE FROM uploads WHERE state != 'waiting' AND created < ?"


def key_namer(
    rules: RuleFile, current: Callable[[], RuleFile] | None = None
) -> Callable[[CaptureResult], str]:
    """Names a saved picture's object by `[upload].key`: site, camera's line, path and so on.

    The template is `rules`' (a changed [upload] applies after a restart);
    site and lines are those of `current()`, the rule file in force, so a
    camera moved to another line by a reload is named by its new line. The
    key is fixed when the picture is queued, so a later change never renames
    what already waits.
    """
    template = rules.upload.key
    in_force = current or (lambda: rules)

    def key_of(result: CaptureResult) -> str:
        now = in_force()
        camera = now.cameras.get(result.camera)
        fields = KeyFields(
            site=now.service.site,
            line=(camera.line if camera is not None else None) or now.service.line,
            camera=result.camera,
            rule=result.rule,
            path=str(result.path),
            event_id=result.event_id,
            seq=result.seq,
        )
        return render_key(template, fields)

    return key_of


@dataclass(frozen=True, slots=True)
class Upload:
    """A picture waiting for the object store."""

    id: int
    event_id: str
    rule: str
    camera: str
    seq: int
    path: str
    key: str
    bytes: int
    attempts: int


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits for the store, for the dashboard and the API."""

    waiting: int
    waiting_bytes: int
    oldest: datetime | None


def backlog_of(reader: JournalReader) -> Backlog:
    """What waits for the store, read on any connection (the dashboard has its own)."""
    count, size, oldest = reader.select(_BACKLOG)[0]
    return Backlog(int(count), int(size or 0), datetime.fromisoformat(oldest) if oldest else None)


class UploadQueue:
    """The `uploads` table of `journal`'s file; safe from several threads, like the journal."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def hook(
        self, key_of: Callable[[CaptureResult], str]
    ) -> Callable[[CaptureResult], Work | None]:
        """The journal's `with_result`: a saved picture's row, named by `key_of`, in its commit."""

        def rows(result: CaptureResult) -> Work | None:
            if result.path is None:
                return None
            row = (
                result.event_id,
                result.rule,
                result.camera,
                result.seq,
                str(result.path),
                key_of(result),
                result.bytes,
                db_time(datetime.now(UTC)),
            )
            return lambda connection: connection.execute(_INSERT, row)

        return rows

    def waiting(self, limit: int, after: int = 0) -> list[Upload]:
        """Pictures not uploaded yet and due (not in a refusal's back-off), oldest first, from
        row id `after` on."""
        now = db_time(datetime.now(UTC))
        rows = self._journal.select(_WAITING, (after, now, limit))
        return [Upload(*row) for row in rows]

    def waiting_paths(self) -> list[str]:
        """Every picture not uploaded yet: local retention keeps these."""
        return [row[0] for row in self._journal.select(_WAITING_PATHS)]

    def backlog(self) -> Backlog:
        """How many pictures (and bytes) wait, and since when."""
        return backlog_of(self._journal)

    def done(self, uploads: Sequence[Upload], also: Work | None = None) -> None:
        """Mark uploads stored, in one commit with `also` (their follow-up messages)."""
        now = db_time(datetime.now(UTC))
        rows = [(now, upload.id) for upload in uploads]

        def mark(connection: sqlite3.Connection) -> None:
            connection.executemany(_DONE, rows)
            if also is not None:
                also(connection)

        self._journal.write(mark, "uploads")

    def failed(self, failures: Iterable[tuple[Upload, str]], *, retry_in_s: float = 0.0) -> None:
        """Count a failed attempt with what went wrong; tried again `retry_in_s` from now.

        Queued, not waited for: a crash first only loses the count.
        """
        retry_at = (
            db_time(datetime.now(UTC) + timedelta(seconds=retry_in_s)) if retry_in_s else None
        )
        rows = [(error[:500], retry_at, upload.id) for upload, error in failures]
        self._journal.queue_write(
            lambda connection: connection.executemany(_FAILED, rows), "uploads"
        )

    def given_up(self, failures: Iterable[tuple[Upload, str]]) -> None:
        """These can never be uploaded (gone, unreadable, a key refused for good): say why."""
        rows = [(error[:500], upload.id) for upload, error in failures]
        self._journal.queue_write(lambda connection: connection.executemany(_GONE, rows), "uploads")

    def prune(self, older_than: datetime) -> int:
        """Forget uploaded rows from before `older_than` (the journal's keep_days); returns how many."""
        cutoff = db_time(older_than)
        return int(
            self._journal.write(
                lambda connection: connection.execute(_PRUNE, (cutoff,)).rowcount, "uploads"
            )
        )
