"""The journal's file: its schema and migrations, how it is opened, how times are stored.

Every table is created here, whichever module owns its rows (the outbox's are
capture.outbox's), because a journal file moves through one sequence of
versions. `PRAGMA user_version` holds the file's version: a newer file than
this code knows is refused, an older one is read as it is by a reader and
migrated by the writer.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from capture.errors import CaptureError

#: Newest schema this code writes; `PRAGMA user_version` holds the file's own.
SCHEMA_VERSION = 8

# 4 -> 5 (issue 18, frames relative to the trigger): each frame's planned offset from the
# trigger (frames_ms, or delay_ms + the burst's interval) and how it was taken: "snapshot",
# "stream" (a stream-backed camera's buffer) or "fallback" (a snapshot while its stream was
# down). Self-contained: two nullable columns, older rows keep NULL (taken by snapshot).
_V5_FRAME_OFFSETS = """
    ALTER TABLE captures ADD COLUMN offset_ms INTEGER;
    ALTER TABLE captures ADD COLUMN via TEXT;
"""

#: The statements that bring a journal from version n to n + 1, at index n. A
#: released step is never edited: a file on a Pi went through it as it was.
MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1
    """
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        time TEXT NOT NULL,
        trigger TEXT NOT NULL,
        rules_json TEXT NOT NULL DEFAULT '[]',
        values_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_time ON events(time);
    CREATE INDEX events_unmatched ON events(time) WHERE rules_json = '[]';
    CREATE TABLE captures (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        camera TEXT NOT NULL,
        seq INTEGER NOT NULL,
        path TEXT,
        bytes INTEGER NOT NULL DEFAULT 0,
        latency_ms REAL NOT NULL DEFAULT 0,
        trigger_to_image_ms REAL NOT NULL DEFAULT 0,
        image_time TEXT,
        width INTEGER,
        height INTEGER,
        stale INTEGER NOT NULL DEFAULT 0,
        error_type TEXT,
        error_message TEXT,
        time TEXT NOT NULL,
        event_time TEXT NOT NULL
    );
    CREATE INDEX captures_event ON captures(event_id);
    CREATE INDEX captures_event_time ON captures(event_time);
    CREATE INDEX captures_camera_time ON captures(camera, event_time);
    CREATE INDEX captures_rule_time ON captures(rule, event_time);
    CREATE INDEX captures_errors ON captures(camera, event_time) WHERE error_type IS NOT NULL;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL,
        created TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 1 -> 2: the values a file name used that the event did not carry, comma-separated.
    "ALTER TABLE captures ADD COLUMN missing_fields TEXT",
    # 2 -> 3: rule firings not yet announced, with the frames they planned.
    """
    CREATE TABLE firings (
        event_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        manual INTEGER NOT NULL DEFAULT 0,
        frames_json TEXT NOT NULL,
        owner TEXT NOT NULL,
        opened TEXT NOT NULL,
        PRIMARY KEY (event_id, rule)
    ) WITHOUT ROWID;
    """,
    # 3 -> 4: the outbox's `attempts` column, never used (SQLite 3.35+; Bookworm has 3.40).
    "ALTER TABLE outbox DROP COLUMN attempts",
    # 4 -> 5: see _V5_FRAME_OFFSETS.
    _V5_FRAME_OFFSETS,
    # 5 -> 6: what object detection found on each picture (issue 17; capture.detect.journal).
    """
    CREATE TABLE detections (
        event_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        camera TEXT NOT NULL,
        seq INTEGER NOT NULL,
        path TEXT NOT NULL,
        status TEXT NOT NULL,
        objects_json TEXT NOT NULL DEFAULT '[]',
        classes TEXT NOT NULL DEFAULT ',',
        elapsed_ms REAL,
        error TEXT,
        time TEXT NOT NULL,
        PRIMARY KEY (event_id, rule, camera, seq)
    ) WITHOUT ROWID;
    CREATE INDEX detections_time ON detections(time);
    """,
)


def _uploads_table() -> str:
    """6 -> 7 (issue 20, self-contained): the object store's queue, one row per saved picture.

    A row is written in the commit of its capture row (capture.upload.queue), so
    while [upload] is on a picture the journal knows always has one; (event_id, rule,
    camera, seq) is the frame, so a recovered or re-recorded frame never gets a
    second row. `state` is `waiting`, `uploaded` (at `uploaded`, under `key`,
    kept until the journal is pruned) or `gone` (given up: the file vanished
    or cannot be read, or the store refuses its key for good; `error` says which).
    """
    return """
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        camera TEXT NOT NULL,
        seq INTEGER NOT NULL,
        path TEXT NOT NULL,
        key TEXT NOT NULL,
        bytes INTEGER NOT NULL DEFAULT 0,
        created TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'waiting',
        uploaded TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        UNIQUE (event_id, rule, camera, seq)
    );
    CREATE INDEX uploads_waiting ON uploads(id) WHERE state = 'waiting';
    """


MIGRATIONS += (_uploads_table(),)

# 7 -> 8 (self-contained): when an upload the store refused is tried again (UTC; NULL: now).
# One refused key (a bucket policy per line, a camera moved to another line) waits its own
# back-off instead of being first in every round and holding back the pictures behind it.
MIGRATIONS += ("ALTER TABLE uploads ADD COLUMN retry_at TEXT;",)
assert len(MIGRATIONS) == SCHEMA_VERSION

#: Sorts before every stored time: "since the beginning".
EPOCH = "0000"


class JournalError(CaptureError):
    """The journal cannot be opened, read or written; the message says what to do."""


def db_time(moment: datetime) -> str:
    """Fixed-width UTC text: readable in the sqlite3 shell and sortable as text."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def db_device_time(moment: datetime | None) -> str | None:
    """An image's own time: UTC when the device named a zone, else its naive local time."""
    if moment is None:
        return None
    return db_time(moment) if moment.tzinfo else moment.isoformat(timespec="microseconds")


def parse_db_time(text: str | None) -> datetime | None:
    """A stored time back as a datetime (None stays None)."""
    return datetime.fromisoformat(text) if text else None


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """A connection to the journal at `path`, refused if its schema is newer than ours."""
    try:
        if readonly:
            uri = f"file:{quote(str(path.resolve()))}?mode=ro"
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA busy_timeout = 5000")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise JournalError(
            f"journal {path}: cannot open ({exc}); if the file is damaged, move it aside "
            "and the service starts a new one"
        ) from exc
    if version > SCHEMA_VERSION:
        connection.close()
        raise JournalError(
            f"journal {path}: schema version {version} is newer than this program knows "
            f"({SCHEMA_VERSION}); update event-capture"
        )
    return connection
