"""The journal's `detections` table: one row per picture a rule or camera asked to analyse.

Its rows are this module's, written through the journal's one writer
(`Journal.queue_write`), like the outbox's. `status` says what became of the
picture: `analysed` (the objects kept, possibly none), `not_analysed` (the
detector was behind and its queue full, or the service stopped first: the
picture is on disk all the same) or `failed` (the detector could not read
it; `error` says why). `classes` holds the kept classes as `,person,truck,`
so that a filter by class is one indexed-free LIKE on a small table.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from capture.detect import Detection
from capture.events import Value
from capture.journal import Journal, JournalReader
from capture.journal.schema import db_time

Status = Literal["analysed", "not_analysed", "failed"]

_UPSERT = """
    INSERT OR REPLACE INTO detections
        (event_id, rule, camera, seq, path, status, objects_json, classes, elapsed_ms, error, time)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT = """
    SELECT event_id, rule, camera, seq, path, status, objects_json, elapsed_ms, error
    FROM detections
"""


@dataclass(frozen=True, slots=True)
class PictureAnalysis:
    """What became of one saved picture: its status, objects and the files made from it."""

    event_id: str
    rule: str
    camera: str
    seq: int
    path: str
    status: Status
    detections: tuple[Detection, ...] = ()
    elapsed_ms: float | None = None
    error: str | None = None
    derived: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        """The picture as the follow-up MQTT message carries it (docs/integration.md)."""
        return {
            "camera": self.camera,
            "seq": self.seq,
            "path": self.path,
            "status": self.status,
            "elapsed_ms": None if self.elapsed_ms is None else round(self.elapsed_ms, 1),
            "objects": [detection.as_json() for detection in self.detections],
            "files": list(self.derived),
            "error": self.error,
        }


def trigger_values(
    event_id: str, rule: str, analyses: Sequence[PictureAnalysis]
) -> dict[str, Value]:
    """The values of a `detection` trigger's event (capture.triggers.detection) for a firing."""
    counts: dict[str, int] = {}
    for analysis in analyses:
        for detection in analysis.detections:
            counts[detection.label] = counts.get(detection.label, 0) + 1
    values: dict[str, Value] = {
        "rule": rule,
        "event": event_id,
        "objects": sum(counts.values()),
        "classes": ",".join(sorted(counts)),
        "analysed": sum(1 for analysis in analyses if analysis.status == "analysed"),
        "not_analysed": sum(1 for analysis in analyses if analysis.status != "analysed"),
    }
    for label, count in counts.items():
        name = re.sub(r"\W", "_", label)
        values.setdefault(name, count)  # a class named like a value above keeps the value
    return values


def record(journal: Journal, analyses: Sequence[PictureAnalysis]) -> None:
    """Queue the rows of these pictures for the journal's next commit; returns at once."""
    now = db_time(datetime.now(UTC))
    rows = [
        (
            analysis.event_id,
            analysis.rule,
            analysis.camera,
            analysis.seq,
            analysis.path,
            analysis.status,
            json.dumps([detection.as_json() for detection in analysis.detections]),
            "," + "".join(f"{label}," for label in sorted({d.label for d in analysis.detections})),
            analysis.elapsed_ms,
            analysis.error,
            now,
        )
        for analysis in analyses
    ]

    def write(connection: sqlite3.Connection) -> None:
        connection.executemany(_UPSERT, rows)

    journal.queue_write(write, "detections")


def read_event(reader: JournalReader, event_id: str) -> list[dict[str, Any]]:
    """The detection rows of one event, as JSON-ready dicts, in camera and frame order."""
    rows = reader.select(_SELECT + " WHERE event_id = ? ORDER BY rule, camera, seq", (event_id,))
    return [
        {
            "rule": row[1],
            "camera": row[2],
            "seq": row[3],
            "path": row[4],
            "status": row[5],
            "objects": json.loads(row[6]),
            "elapsed_ms": row[7],
            "error": row[8],
        }
        for row in rows
    ]
