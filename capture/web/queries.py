"""Event-centred journal queries for the gallery: one entry per event with all its frames.

`JournalReader.query` lists one row per frame, right for `capture events`;
the gallery pages by event and filters by production line, so it asks the
journal here, on its own read-only connection (WAL lets it read beside the
service's writer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from capture.events import CaptureResult, Value
from capture.journal import RESULT_COLUMNS, JournalReader, capture_result


@dataclass(frozen=True, slots=True)
class EventEntry:
    """An event as the gallery shows it: its trigger, values and every frame so far."""

    id: str
    time: datetime
    trigger: str
    values: dict[str, Value]
    rules: tuple[str, ...]
    frames: list[CaptureResult] = field(default_factory=list)
    #: What object detection made of its pictures (capture.detect.journal's rows).
    detections: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What the gallery asks for; `cameras` holds the cameras of the chosen line."""

    cameras: Sequence[str] | None = None
    rule: str | None = None
    failed_only: bool = False
    #: Only events where object detection found this class.
    detected: str | None = None


_EVENTS = """
    SELECT e.id, e.time, e.trigger, e.values_json, e.rules_json FROM events e
    WHERE EXISTS (
        SELECT 1 FROM captures c WHERE c.event_id = e.id
            AND (:rule IS NULL OR c.rule = :rule)
            AND (:cameras IS NULL OR c.camera IN (SELECT value FROM json_each(:cameras)))
            AND (:failed = 0 OR c.error_type IS NOT NULL)
    )
    AND (:detected IS NULL OR EXISTS (
        SELECT 1 FROM detections d
        WHERE d.event_id = e.id AND instr(d.classes, ',' || :detected || ',') > 0
    ))
    ORDER BY e.time DESC, e.id DESC LIMIT :limit OFFSET :offset
"""

_DETECTIONS = """
    SELECT event_id, rule, camera, seq, status, objects_json, error FROM detections
    WHERE event_id IN (SELECT value FROM json_each(?))
    ORDER BY rule, camera, seq
"""

_ONE_EVENT = "SELECT id, time, trigger, values_json, rules_json FROM events WHERE id = ?"

_FRAMES = f"""
    SELECT {RESULT_COLUMNS}
    FROM captures WHERE event_id IN (SELECT value FROM json_each(?))
    ORDER BY rule, camera, seq, id
"""  # noqa: S608 - constant columns


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class EventQueries(JournalReader):
    """Read-only gallery queries on the service's journal."""

    def events(self, where: EventFilter, limit: int, offset: int) -> list[EventEntry]:
        """Events with at least one frame matching `where`, newest first, with all their frames."""
        rows = self.select(
            _EVENTS,
            {
                "rule": where.rule,
                "cameras": json.dumps(list(where.cameras)) if where.cameras is not None else None,
                "failed": int(where.failed_only),
                "detected": where.detected,
                "limit": limit,
                "offset": offset,
            },
        )
        return self._with_frames(rows)

    def entry(self, event_id: str) -> EventEntry | None:
        """One event with all its frames, or None if the journal does not know it."""
        entries = self._with_frames(self.select(_ONE_EVENT, (event_id,)))
        return entries[0] if entries else None

    def _with_frames(self, rows: list[Any]) -> list[EventEntry]:
        entries = {
            row[0]: EventEntry(
                id=row[0],
                time=_time(row[1]) or datetime.min.replace(tzinfo=UTC),
                trigger=row[2],
                values=json.loads(row[3]) if row[3] else {},
                rules=tuple(json.loads(row[4])) if row[4] else (),
            )
            for row in rows
        }
        if entries:
            ids = json.dumps(list(entries))
            for frame in self.select(_FRAMES, (ids,)):
                entries[frame[0]].frames.append(capture_result(frame))
            for row in self.select(_DETECTIONS, (ids,)):
                entries[row[0]].detections.append(
                    {
                        "rule": row[1],
                        "camera": row[2],
                        "seq": row[3],
                        "status": row[4],
                        "objects": json.loads(row[5]),
                        "error": row[6],
                    }
                )
        return list(entries.values())
