"""Read-only queries on the journal, safe from several threads beside the writer.

WAL lets these run while the writer commits; opened read-only, a reader never
creates or migrates a file, so `capture events` can look at a running
service's journal without disturbing it.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capture.events import CaptureResult, Event, PlannedFrame
from capture.journal.records import (
    RESULT_COLUMNS,
    CameraStats,
    JournalRow,
    OpenFiring,
    capture_result,
)
from capture.journal.schema import EPOCH, JournalError, connect, db_time, parse_db_time

#: Successful captures a camera's median latencies are taken over.
_MEDIAN_WINDOW = 1000

_ROW_COLUMNS = """
    event_id, time, recorded, trigger, values_json, rules_json, rule, camera, seq, path,
    bytes, latency_ms, trigger_to_image_ms, image_time, width, height, stale, error_type,
    error_message, cid, missing_fields, offset_ms, via, upload_state, object_key, upload_error
"""

_CAPTURE_ROWS = """
    SELECT c.event_id AS event_id, c.event_time AS time, c.time AS recorded, e.trigger AS trigger,
        e.values_json AS values_json, e.rules_json AS rules_json, c.rule AS rule,
        c.camera AS camera, c.seq AS seq, c.path AS path, c.bytes AS bytes,
        c.latency_ms AS latency_ms, c.trigger_to_image_ms AS trigger_to_image_ms,
        c.image_time AS image_time, c.width AS width, c.height AS height, c.stale AS stale,
        c.error_type AS error_type, c.error_message AS error_message, c.id AS cid,
        c.missing_fields AS missing_fields, c.offset_ms AS offset_ms, c.via AS via,
        u.state AS upload_state, u.key AS object_key, u.error AS upload_error
    FROM captures c LEFT JOIN events e ON e.id = c.event_id
        LEFT JOIN uploads u ON u.event_id = c.event_id AND u.rule = c.rule
            AND u.camera = c.camera AND u.seq = c.seq
    WHERE c.event_time >= :since
        AND (:rule IS NULL OR c.rule = :rule)
        AND (:camera IS NULL OR c.camera = :camera)
        AND (:failed = 0 OR c.error_type IS NOT NULL)
    ORDER BY c.event_time DESC, c.id DESC LIMIT :window
"""

_UNMATCHED_EVENT_ROWS = """
    SELECT e.id, e.time, NULL, e.trigger, e.values_json, e.rules_json, NULL, NULL, NULL,
        NULL, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL
    FROM events e
    WHERE e.rules_json = '[]' AND e.time >= :since
    ORDER BY e.time DESC LIMIT :window
"""


def _journal_row(row: sqlite3.Row) -> JournalRow:
    is_capture = row["rule"] is not None
    return JournalRow(
        event_id=row["event_id"],
        time=parse_db_time(row["time"]) or datetime.min.replace(tzinfo=UTC),
        recorded=parse_db_time(row["recorded"]),
        trigger=row["trigger"],
        values=json.loads(row["values_json"]) if row["values_json"] else {},
        matched_rules=tuple(json.loads(row["rules_json"])) if row["rules_json"] else (),
        rule=row["rule"],
        camera=row["camera"],
        seq=row["seq"],
        ok=(row["error_type"] is None) if is_capture else None,
        path=row["path"],
        bytes=row["bytes"],
        latency_ms=row["latency_ms"],
        trigger_to_image_ms=row["trigger_to_image_ms"],
        image_time=parse_db_time(row["image_time"]),
        width=row["width"],
        height=row["height"],
        stale=bool(row["stale"]),
        error_type=row["error_type"],
        error_message=row["error_message"],
        missing_fields=tuple(row["missing_fields"].split(",")) if row["missing_fields"] else (),
        offset_ms=row["offset_ms"],
        via=row["via"],
        upload=row["upload_state"],
        object_key=row["object_key"],
        upload_error=row["upload_error"],
    )


def _planned(frame: list[Any]) -> PlannedFrame:
    """A planned frame from `firings.frames_json`: [camera, seq, path, offset_ms], the
    offset missing in plans an older version journaled before a stop it did not finish."""
    camera, seq, path, *rest = frame
    offset_ms = rest[0] if rest else None
    return PlannedFrame(camera, int(seq), path, None if offset_ms is None else int(offset_ms))


def _capture_rows(version: int) -> str:
    """The capture query for a journal of `version`: a service not yet upgraded keeps an old one."""
    sql = _CAPTURE_ROWS
    if version < 7:  # no uploads table
        sql = sql.replace("u.state", "NULL").replace("u.key", "NULL").replace("u.error", "NULL")
        sql = sql[: sql.index("LEFT JOIN uploads")] + sql[sql.index("WHERE c.event_time") :]
    if version < 5:  # no frame offsets
        sql = sql.replace("c.offset_ms", "NULL").replace("c.via", "NULL")
    if version < 2:
        sql = sql.replace("c.missing_fields", "NULL")
    return sql


class JournalReader:
    """Read-only queries on a journal; safe to use from several threads.

    Opened read-only, it never creates or migrates a file, so `capture events`
    can look at a running service's journal without disturbing it.
    """

    def __init__(self, path: Path, *, _connection: sqlite3.Connection | None = None) -> None:
        self.path = Path(path)
        if _connection is None:
            if not self.path.is_file():
                raise JournalError(
                    f"no journal at {self.path}: the service has not run with this storage "
                    "root yet (or give --journal PATH)"
                )
            _connection = connect(self.path, readonly=True)
        self._connection = _connection
        self._connection.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        # A service not yet upgraded keeps an older journal, without the newer columns.
        version = self._connection.execute("PRAGMA user_version").fetchone()[0]
        self._capture_rows = _capture_rows(version)

    def select(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._connection.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: query failed: {exc}") from exc

    def query(
        self,
        since: datetime | None = None,
        *,
        rule: str | None = None,
        camera: str | None = None,
        failed_only: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[JournalRow]:
        """Outcomes newest first, filtered; naive datetimes are taken as UTC.

        Events that matched no rule are listed too (as rows with `ok` None), so a
        technician sees that a trigger fired; not when filtering by rule, camera
        or failures.
        """
        parameters = {
            "since": db_time(since) if since else EPOCH,
            "rule": rule,
            "camera": camera,
            "failed": int(failed_only),
            "window": limit + offset,
            "limit": limit,
            "offset": offset,
        }
        branches = [self._capture_rows]
        if rule is None and camera is None and not failed_only:
            branches.append(_UNMATCHED_EVENT_ROWS)
        # Only constant fragments are joined; every value is a bound parameter.
        union = " UNION ALL ".join(f"SELECT * FROM ({branch})" for branch in branches)  # noqa: S608
        sql = (
            f"SELECT {_ROW_COLUMNS} FROM ({union}) "  # noqa: S608
            "ORDER BY time DESC, cid DESC LIMIT :limit OFFSET :offset"
        )
        return [_journal_row(row) for row in self.select(sql, parameters)]

    def camera_stats(self, since: datetime | None = None) -> dict[str, CameraStats]:
        """Success rate, median latencies, last error and last success per camera.

        Every figure comes from an index, so the dashboard can ask often.
        """
        since_text = db_time(since) if since else EPOCH
        counts = self.select(
            "SELECT camera, COUNT(*) FROM captures WHERE event_time >= ? GROUP BY camera",
            (since_text,),
        )
        return {camera: self._camera_stats(camera, total, since_text) for camera, total in counts}

    def _camera_stats(self, camera: str, total: int, since: str) -> CameraStats:
        failed = self.select(
            "SELECT COUNT(*) FROM captures WHERE camera = ? AND event_time >= ? "
            "AND error_type IS NOT NULL",
            (camera, since),
        )[0][0]
        error = self.select(
            "SELECT event_time, error_type, error_message FROM captures WHERE camera = ? AND event_time >= ? "
            "AND error_type IS NOT NULL ORDER BY event_time DESC LIMIT 1",
            (camera, since),
        )
        recent_ok = self.select(
            "SELECT event_time, latency_ms, trigger_to_image_ms FROM captures WHERE camera = ? "
            "AND event_time >= ? AND error_type IS NULL ORDER BY event_time DESC LIMIT ?",
            (camera, since, _MEDIAN_WINDOW),
        )
        return CameraStats(
            camera=camera,
            captures=total,
            ok=total - failed,
            failed=failed,
            success_rate=(total - failed) / total if total else None,
            median_latency_ms=statistics.median(r[1] for r in recent_ok) if recent_ok else None,
            median_trigger_to_image_ms=(
                statistics.median(r[2] for r in recent_ok) if recent_ok else None
            ),
            last_ok_time=parse_db_time(recent_ok[0][0]) if recent_ok else None,
            last_error_time=parse_db_time(error[0][0]) if error else None,
            last_error_type=error[0][1] if error else None,
            last_error_message=error[0][2] if error else None,
        )

    def open_firings(self) -> list[OpenFiring]:
        """Rule firings accepted but not yet announced, oldest first."""
        rows = self.select(
            "SELECT event_id, rule, manual, frames_json, owner, opened FROM firings "
            "ORDER BY opened, event_id, rule"
        )
        return [
            OpenFiring(
                event_id=row[0],
                rule=row[1],
                manual=bool(row[2]),
                frames=tuple(_planned(frame) for frame in json.loads(row[3])),
                owner=row[4],
                opened=datetime.fromisoformat(row[5]),
            )
            for row in rows
        ]

    def event(self, event_id: str) -> Event | None:
        """The journaled event with this id (its monotonic time is meaningless), or None."""
        rows = self.select(
            "SELECT id, time, trigger, values_json FROM events WHERE id = ?", (event_id,)
        )
        if not rows:
            return None
        row = rows[0]
        return Event(
            trigger=row[2],
            values=json.loads(row[3]),
            wall_time=datetime.fromisoformat(row[1]),
            id=row[0],
        )

    def results_of(self, event_id: str, rule: str) -> list[CaptureResult]:
        """Every outcome journaled for one rule firing, in the order recorded."""
        rows = self.select(
            f"SELECT {RESULT_COLUMNS} FROM captures "  # noqa: S608 - a constant
            "WHERE event_id = ? AND rule = ? ORDER BY id",
            (event_id, rule),
        )
        return [capture_result(row) for row in rows]

    def recorded_paths_since(self, since: datetime) -> set[str]:
        """The snapshot paths of captures whose event is at or after `since`.

        Recovery asks once per start; paths have no index of their own (one
        more B-tree on every capture row), the event time does.
        """
        rows = self.select(
            "SELECT path FROM captures WHERE event_time >= ? AND path IS NOT NULL",
            (db_time(since),),
        )
        return {row[0] for row in rows}

    def snapshot_owners(self) -> dict[str, str]:
        """Which camera each journaled snapshot belongs to: path -> camera.

        Storage retention asks once per start, so that no camera's newest
        picture is taken for a stranger's; `prune` keeps those rows.
        """
        return dict(self.select("SELECT path, camera FROM captures WHERE path IS NOT NULL"))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._connection.close()
