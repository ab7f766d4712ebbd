"""The journal's detections table: written through the journal's writer, pruned with its pictures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from capture.detect import Box, Detection
from capture.detect.journal import PictureAnalysis, read_event, record, trigger_values
from capture.events import CaptureResult, Event
from capture.journal import Journal


def _analysis(event: Event, seq: int, *labels: str) -> PictureAnalysis:
    found = tuple(Detection(label, 0.9, Box(0, 0, 10, 10)) for label in labels)
    return PictureAnalysis(event.id, "r", "cam", seq, f"{seq}.jpg", "analysed", found, 12.0)


def test_rows_read_back_per_event_and_go_with_their_pictures_when_pruned(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    try:
        event = Event.now("plc")
        journal.record_event(event, ["r"])
        journal.record_result(CaptureResult(event.id, "r", "cam", 1, path="1.jpg"))
        record(journal, [_analysis(event, 1, "person", "stop sign")])
        journal.flush()
        [row] = read_event(journal, event.id)
        assert row["status"] == "analysed" and [o["class"] for o in row["objects"]] == [
            "person",
            "stop sign",
        ]
        # Each camera's newest picture keeps its capture row, so its detections stay too.
        journal.prune(datetime.now(UTC) + timedelta(days=1))
        assert len(read_event(journal, event.id)) == 1
        later = Event.now("plc")
        journal.record_event(later, ["r"])
        journal.record_result(CaptureResult(later.id, "r", "cam", 1, path="2.jpg"))
        journal.flush()
        journal.prune(datetime.now(UTC) + timedelta(days=1))
        assert read_event(journal, event.id) == []
    finally:
        journal.close()


def test_trigger_values_count_each_class_under_a_value_name() -> None:
    event = Event.now("plc")
    values = trigger_values(
        event.id, "r", [_analysis(event, 1, "person", "stop sign"), _analysis(event, 2, "person")]
    )
    assert values == {
        "rule": "r",
        "event": event.id,
        "objects": 3,
        "classes": "person,stop sign",
        "analysed": 2,
        "not_analysed": 0,
        "person": 2,
        "stop_sign": 1,
    }
