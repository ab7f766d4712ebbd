"""The SQLite journal: every event, every capture outcome and rule firing, kept across crashes.

`Journal` writes (one writer thread, group commits: capture.journal.writer),
`JournalReader` reads beside it (capture.journal.reader); the file's schema
and migrations are in capture.journal.schema. The MQTT outbox lives in the
same file and shares the writer, but its rows are capture.outbox's.

Durability: the database runs in WAL mode with `synchronous=NORMAL`, so a
committed row - outbox messages included - survives a crash or kill -9 of
the service; a power cut may lose the last commits (the pictures themselves
are fsynced by the storage). Commits are not fsynced one by one: a forced
fsync per message measured ~4 ms here and capped the event rate, while the
losses it would prevent need a power cut within the same second.

A rule firing is a row of `firings` (its planned frames included) from the
moment it is accepted until its event message is committed to the outbox, in
the same transaction that writes the message: a firing is therefore always
either open (the next start finishes it, see capture.recovery) or announced.
An event message is committed to the outbox before the publisher hands it to
the broker, so no acknowledgement can arrive for a message without its row.
"""

from capture.journal.reader import JournalReader
from capture.journal.records import (
    RESULT_COLUMNS,
    CameraStats,
    JournalRow,
    OpenFiring,
    capture_result,
    owner_alive,
    process_owner,
)
from capture.journal.schema import SCHEMA_VERSION, JournalError
from capture.journal.writer import Journal, close_firings

__all__ = [
    "RESULT_COLUMNS",
    "SCHEMA_VERSION",
    "CameraStats",
    "Journal",
    "JournalError",
    "JournalReader",
    "JournalRow",
    "OpenFiring",
    "capture_result",
    "close_firings",
    "owner_alive",
    "process_owner",
]
