"""Finishing interrupted firings at start: adopt complete files, remove torn ones, fail the rest."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from capture.events import CaptureResult, Event, FiringReport, PlannedFrame
from capture.journal import Journal, process_owner
from capture.publish import event_message
from capture.recovery import finish_interrupted_firings


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(buffer, "JPEG")
    return buffer.getvalue()


JPEG = _jpeg()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal(tmp_path / "journal.sqlite3")
    yield journal
    journal.close()


def open_firing(journal: Journal, event: Event, frames: list[PlannedFrame]) -> None:
    journal.record_event(event, ["ng"])
    assert journal.open_firing(event.id, "ng", False, frames).wait(5)


def frames(*cameras: str, burst: int = 2) -> list[PlannedFrame]:
    """Each camera's frames asked for at -200, -100... ms (`frames_ms` with a buffer)."""
    return [
        PlannedFrame(camera, seq, f"ng/{camera}_{seq}.jpg", offset_ms=-100 * (burst - seq + 1))
        for camera in cameras
        for seq in range(1, burst + 1)
    ]


def test_every_frame_of_an_interrupted_firing_gets_one_outcome_and_the_firing_is_announced(
    tmp_path: Path, journal: Journal
) -> None:
    event = Event.now("plc", {"station": "S1"})
    open_firing(journal, event, frames("cam1", "cam2"))
    # cam1 #1 was journaled before the kill; cam1 #2 reached the disk but not the journal;
    # cam2 #1 was being written without fsync when the power went; cam2 #2 was never taken.
    journal.record_result(
        CaptureResult(event.id, "ng", "cam1", 1, path="ng/cam1_1.jpg", bytes=len(JPEG))
    )
    (tmp_path / "ng").mkdir()
    (tmp_path / "ng/cam1_1.jpg").write_bytes(JPEG)
    (tmp_path / "ng/cam1_2.jpg").write_bytes(JPEG)
    (tmp_path / "ng/cam2_1.jpg").write_bytes(JPEG[: len(JPEG) // 2])
    announced: list[FiringReport] = []

    report = finish_interrupted_firings(journal, tmp_path, "plant", announced.append)

    assert (report.firings, report.adopted, report.removed, report.interrupted) == (1, 1, 1, 2)
    [firing] = announced
    assert firing.interrupted and not firing.ok
    outcomes = [(r.camera, r.seq, r.path, r.error_type) for r in firing.results]
    assert outcomes == [
        ("cam1", 1, "ng/cam1_1.jpg", None),
        ("cam1", 2, "ng/cam1_2.jpg", None),
        ("cam2", 1, None, "Interrupted"),
        ("cam2", 2, None, "Interrupted"),
    ]
    assert not (tmp_path / "ng/cam2_1.jpg").exists()  # the torn file is gone
    adopted = firing.results[1]
    assert (adopted.bytes, adopted.width, adopted.height) == (len(JPEG), 40, 30)
    assert "incomplete file of it was removed" in (firing.results[2].error_message or "")
    # Adopted or interrupted, a frame reports the moment it was asked for, like one on time;
    # how an adopted picture was taken is not known.
    assert [(r.offset_ms, r.via) for r in firing.results[1:]] == [
        (-100, None),
        (-200, None),
        (-100, None),
    ]
    # The journal now tells the same story, once per frame.
    journal.flush()
    rows = sorted((r.camera, r.seq, r.ok, r.path, r.offset_ms) for r in journal.query(rule="ng"))
    assert rows == [
        ("cam1", 1, True, "ng/cam1_1.jpg", None),  # journaled as the test recorded it
        ("cam1", 2, True, "ng/cam1_2.jpg", -100),
        ("cam2", 1, False, None, -200),
        ("cam2", 2, False, None, -100),
    ]
    message = event_message(firing, ZoneInfo("UTC"))
    assert message["interrupted"] is True and message["ok"] is False
    assert message["values"] == {"station": "S1"} and message["event_id"] == event.id


def test_without_mqtt_the_recovered_firing_is_closed_and_a_second_start_finds_nothing(
    tmp_path: Path, journal: Journal
) -> None:
    event = Event.now("plc", {})
    open_firing(journal, event, frames("cam1", burst=1))
    assert finish_interrupted_firings(journal, tmp_path, "plant", None).firings == 1
    journal.flush()
    assert journal.open_firings() == []
    assert finish_interrupted_firings(journal, tmp_path, "plant", None).firings == 0


def test_a_file_recorded_by_an_earlier_firing_is_not_taken_for_an_orphan(
    tmp_path: Path, journal: Journal
) -> None:
    """Two firings rendered the same name: the earlier one's file is its own, the `_2` the orphan."""
    (tmp_path / "ng").mkdir()
    earlier = Event.now("plc", {})
    journal.record_event(earlier, ["ng"])
    journal.record_result(CaptureResult(earlier.id, "ng", "cam1", 1, path="ng/cam1_1.jpg"))
    (tmp_path / "ng/cam1_1.jpg").write_bytes(JPEG)
    (tmp_path / "ng/cam1_1_2.jpg").write_bytes(JPEG)
    event = Event.now("plc", {})
    open_firing(journal, event, frames("cam1", burst=1))
    announced: list[FiringReport] = []
    finish_interrupted_firings(journal, tmp_path, "plant", announced.append)
    assert [r.path for r in announced[0].results] == ["ng/cam1_1_2.jpg"]


def test_a_firing_of_another_live_process_is_left_to_it(tmp_path: Path, journal: Journal) -> None:
    """A `capture fire` taking pictures right now is not interrupted by a service's start."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        journal.owner = process_owner().rsplit("/", 1)[0] + f"/{other.pid}"
        open_firing(journal, Event.now("plc", {}), frames("cam1", burst=1))
        journal.owner = process_owner()
        assert finish_interrupted_firings(journal, tmp_path, "plant", None).firings == 0
        other.kill()
        other.wait()
        assert finish_interrupted_firings(journal, tmp_path, "plant", None).firings == 1
    finally:
        other.kill()
        other.wait()


def test_a_firing_opened_by_this_very_pid_before_a_restart_is_recovered(
    tmp_path: Path, journal: Journal
) -> None:
    """In a container the service is PID 1 again after a restart: its own old rows are dead."""
    open_firing(journal, Event.now("plc", {}), frames("cam1", burst=1))
    assert journal.open_firings()[0].owner == f"{process_owner()}"
    assert os.getpid() == int(process_owner().rsplit("/", 1)[1])
    assert finish_interrupted_firings(journal, tmp_path, "plant", None).firings == 1


def test_a_plan_journaled_before_offsets_were_recorded_is_finished_without_them(
    tmp_path: Path, journal: Journal
) -> None:
    """An upgrade after a kill: the open firing's plan is `[camera, seq, path]` triples."""
    event = Event.now("plc", {})
    journal.record_event(event, ["ng"])
    journal.flush()
    with sqlite3.connect(tmp_path / "journal.sqlite3") as db:
        db.execute(
            "INSERT INTO firings (event_id, rule, manual, frames_json, owner, opened) "
            "VALUES (?, 'ng', 0, ?, 'gone/1', '2026-12-03T10:00:00+00:00')",
            (event.id, json.dumps([["cam1", 1, "ng/cam1_1.jpg"]])),
        )
    assert journal.open_firings()[0].frames == (PlannedFrame("cam1", 1, "ng/cam1_1.jpg"),)
    announced: list[FiringReport] = []
    finish_interrupted_firings(journal, tmp_path, "plant", announced.append)
    [result] = announced[0].results
    assert (result.error_type, result.offset_ms) == ("Interrupted", None)


def test_a_file_older_than_the_firing_is_an_earlier_picture_not_adopted(
    tmp_path: Path, journal: Journal
) -> None:
    """A template without a date: the part seen again three days later, killed before its
    picture; the file of that name is the old picture, not this firing's."""
    (tmp_path / "ng").mkdir()
    old = tmp_path / "ng/cam1_1.jpg"
    old.write_bytes(JPEG)
    three_days_ago = time.time() - 3 * 86400
    os.utime(old, (three_days_ago, three_days_ago))
    event = Event.now("plc", {})
    open_firing(journal, event, frames("cam1", burst=1))
    announced: list[FiringReport] = []
    report = finish_interrupted_firings(journal, tmp_path, "plant", announced.append)
    assert (report.adopted, report.interrupted) == (0, 1)
    assert [r.error_type for r in announced[0].results] == ["Interrupted"]
    assert old.read_bytes() == JPEG  # the earlier picture stays as it was
