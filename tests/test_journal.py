"""The SQLite journal on real files: round trips, filters, pruning, threads and kill -9."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest

import capture.journal.schema as schema_module
import capture.journal.writer as writer_module
from capture.events import CaptureResult, Event
from capture.journal import SCHEMA_VERSION, Journal, JournalError, JournalReader
from capture.outbox import Outbox
from tests.conftest import wait_for

T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    instance = Journal(tmp_path / "journal.sqlite3")
    yield instance
    instance.close()


def event(trigger: str = "plc", at: datetime = T0, **values: object) -> Event:
    return Event(trigger=trigger, values=values, wall_time=at)  # type: ignore[arg-type]


def ok(ev: Event, camera: str = "cam1", rule: str = "r1", seq: int = 1, **extra: object):
    fields = {"path": f"x/{ev.id}_{camera}_{seq}.jpg", "bytes": 70_000, "latency_ms": 120.0}
    return CaptureResult(ev.id, rule, camera, seq, **(fields | extra))  # type: ignore[arg-type]


def failed(ev: Event, camera: str = "cam1", rule: str = "r1", error: str = "CameraTimeout"):
    message = f"camera {camera}: no answer within 5 s; check the network"
    return CaptureResult(ev.id, rule, camera, 1, error_type=error, error_message=message)


# --------------------------------------------------------------------------- round trip


def test_an_event_and_its_outcomes_come_back_with_every_field(journal: Journal) -> None:
    ev = event(id="A-17", temp=37.9, ok=True, station=None)
    image_time = T0 + timedelta(milliseconds=180)
    journal.record_event(ev, ["fever"])
    journal.record_result(
        ok(
            ev,
            rule="fever",
            trigger_to_image_ms=210.5,
            image_time=image_time,
            width=1920,
            height=1080,
            stale=True,
        )
    )
    journal.record_result(failed(ev, camera="cam2", rule="fever"))
    journal.flush()

    rows = journal.query()

    assert [(r.camera, r.ok) for r in rows] == [("cam2", False), ("cam1", True)]
    bad, good = rows
    assert good.event_id == ev.id and good.time == T0
    assert good.trigger == "plc" and good.rule == "fever" and good.matched_rules == ("fever",)
    assert dict(good.values) == {"id": "A-17", "temp": 37.9, "ok": True, "station": None}
    assert good.path == f"x/{ev.id}_cam1_1.jpg" and good.bytes == 70_000
    assert good.latency_ms == 120.0 and good.trigger_to_image_ms == 210.5
    assert good.image_time == image_time
    assert (good.width, good.height, good.stale, good.seq) == (1920, 1080, True, 1)
    assert good.error_type is None
    assert bad.error_type == "CameraTimeout" and "cam2" in (bad.error_message or "")
    assert bad.path is None
    assert good.as_json()["time"] == "2026-11-25T08:00:00.000+00:00"
    assert good.recorded is not None and good.recorded > T0 - timedelta(days=1)


def test_a_device_local_image_time_stays_naive(journal: Journal) -> None:
    ev = event()
    journal.record_result(ok(ev, image_time=datetime(2026, 11, 25, 9, 0, 1)))  # XRC file name
    journal.flush()

    (row,) = journal.query(camera="cam1")

    assert row.image_time == datetime(2026, 11, 25, 9, 0, 1)
    assert row.as_json()["image_time"] == "2026-11-25T09:00:01.000"


def test_an_event_that_matched_no_rule_is_listed_without_outcome(journal: Journal) -> None:
    quiet = event(temp=36.5)
    journal.record_event(quiet, [])
    fired = event(at=T0 + timedelta(seconds=1), temp=37.9)
    journal.record_event(fired, ["fever"])
    journal.record_result(ok(fired, rule="fever"))
    journal.flush()

    rows = journal.query()
    assert [(r.event_id, r.ok) for r in rows] == [(fired.id, True), (quiet.id, None)]
    assert rows[1].rule is None and rows[1].time == T0 and rows[1].recorded is None
    assert [r.event_id for r in journal.query(rule="fever")] == [fired.id]
    assert [r.event_id for r in journal.query(camera="cam1")] == [fired.id]
    assert journal.query(failed_only=True) == []


def test_filters_combine_and_results_come_newest_first(journal: Journal) -> None:
    for n in range(6):
        ev, rule, camera = event(n=n), "r1" if n % 2 else "r2", f"cam{n % 3}"
        journal.record_event(ev, [rule])
        outcome = failed(ev, camera, rule) if n in (1, 4) else ok(ev, camera, rule)
        journal.record_result(outcome)
    journal.flush()

    def ns(rows) -> list[int]:
        return [r.values["n"] for r in rows]

    assert ns(journal.query()) == [5, 4, 3, 2, 1, 0]
    assert ns(journal.query(rule="r1")) == [5, 3, 1]
    assert ns(journal.query(camera="cam1")) == [4, 1]
    assert ns(journal.query(failed_only=True)) == [4, 1]
    assert ns(journal.query(rule="r2", failed_only=True)) == [4]
    assert ns(journal.query(limit=2, offset=1)) == [4, 3]
    assert ns(journal.query(since=T0 + timedelta(minutes=1))) == []
    assert ns(journal.query(since=T0 - timedelta(minutes=1), limit=3)) == [5, 4, 3]


def test_camera_stats_give_the_dashboard_its_figures(journal: Journal) -> None:
    ev = event()
    journal.record_event(ev, ["r1"])
    for seq, latency in enumerate((100.0, 300.0, 200.0), start=1):
        journal.record_result(
            ok(ev, "cam1", seq=seq, latency_ms=latency, trigger_to_image_ms=latency + 50)
        )
    journal.record_result(failed(ev, "cam1", error="CameraAuthError"))
    journal.record_result(failed(ev, "cam2"))
    journal.flush()

    stats = journal.camera_stats(since=T0 - timedelta(hours=1))

    cam1, cam2 = stats["cam1"], stats["cam2"]
    assert (cam1.captures, cam1.ok, cam1.failed) == (4, 3, 1)
    assert cam1.success_rate == 0.75
    assert cam1.median_latency_ms == 200.0 and cam1.median_trigger_to_image_ms == 250.0
    assert cam1.last_error_type == "CameraAuthError" and cam1.last_ok_time is not None
    assert cam2.success_rate == 0.0 and cam2.last_ok_time is None
    assert cam2.median_latency_ms is None and cam2.last_error_type == "CameraTimeout"
    assert journal.camera_stats(since=T0 + timedelta(hours=1)) == {}


def test_prune_deletes_rows_older_than_the_cut(journal: Journal) -> None:
    old = event(at=T0 - timedelta(days=40))
    journal.record_event(old, [])
    recent = event(at=datetime.now(UTC))
    journal.record_event(recent, [])
    journal.flush()

    deleted = journal.prune(T0 - timedelta(days=30))

    assert deleted == 1
    assert [r.event_id for r in journal.query()] == [recent.id]


def test_prune_keeps_each_cameras_newest_picture_with_its_event(journal: Journal) -> None:
    """Storage retention keeps those files, and learns whose they are from these rows."""
    days = {"cam_a": [40, 35, 32], "cam_b": [40, 1]}
    kept: dict[str, Event] = {}
    for camera, ages in days.items():
        for age in ages:
            ev = event(at=T0 - timedelta(days=age))
            journal.record_event(ev, ["r1"])
            journal.record_result(ok(ev, camera=camera))
            kept[camera] = ev  # the last one written is the newest
    failed_later = event(at=T0 - timedelta(days=31))
    journal.record_event(failed_later, ["r1"])
    journal.record_result(failed(failed_later, camera="cam_a"))  # newer, but no picture
    journal.flush()

    deleted = journal.prune(T0 - timedelta(days=30))

    assert deleted == 2 * 4  # 3 old pictures and the failure, each with its event
    rows = journal.query()
    assert {(r.camera, r.event_id) for r in rows} == {(c, ev.id) for c, ev in kept.items()}
    assert all(r.trigger == "plc" for r in rows)  # the kept rows' events were kept too
    assert journal.snapshot_owners() == {
        f"x/{ev.id}_{camera}_1.jpg": camera for camera, ev in kept.items()
    }


def test_rows_that_cannot_be_written_are_retried_until_the_disk_recovers(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLite's own page limit fails exactly as a full disk does ("database or
    # disk is full"); the writer thread is idle, so its connection is free.
    pages = journal._writer.execute("PRAGMA page_count").fetchone()[0]
    journal._writer.execute(f"PRAGMA max_page_count = {pages}")
    events = [event(n=n, blob="x" * 2000) for n in range(20)]
    with caplog.at_level(logging.WARNING, logger="capture.journal"):
        for ev in events:
            journal.record_event(ev, ["r1"])
            journal.record_result(ok(ev))
        wait_for(lambda: "database or disk is full" in caplog.text and "retrying" in caplog.text)
        with pytest.raises(JournalError, match="disk is full"):
            Outbox(journal).put("ec/events/r1", b"{}", 1, False)  # the publisher learns at once
        journal._writer.execute("PRAGMA max_page_count = 1073741823")  # space is back

        journal.flush()

    assert len(journal.query(limit=100)) == 20


def test_when_committed_calls_back_once_the_rows_before_it_are_readable_even_after_a_full_disk(
    journal: Journal,
) -> None:
    pages = journal._writer.execute("PRAGMA page_count").fetchone()[0]
    journal._writer.execute(f"PRAGMA max_page_count = {pages}")  # full, as in the test above
    seen: list[int] = []
    events = [event(n=n, blob="x" * 2000) for n in range(5)]
    for ev in events:
        journal.record_event(ev, [])  # matched no rule: listed as such
    journal.when_committed(lambda: seen.append(len(journal.query(limit=100))))
    journal.when_committed(lambda: 1 / 0)  # a caller's bug: logged, the writer goes on
    time.sleep(0.3)  # the writer retries meanwhile
    assert seen == []  # not before the rows are in
    journal._writer.execute("PRAGMA max_page_count = 1073741823")  # space is back
    wait_for(lambda: seen)
    assert seen == [5]  # read on another connection from inside the callback: committed
    journal.record_event(event(n=9), [])
    journal.flush()  # the writer survived the failing callback
    assert len(journal.query(limit=100)) == 6


def test_close_while_the_disk_is_full_drops_the_rows_and_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    pages = journal._writer.execute("PRAGMA page_count").fetchone()[0]
    journal._writer.execute(f"PRAGMA max_page_count = {pages}")
    with caplog.at_level(logging.WARNING, logger="capture.journal"):
        for n in range(20):
            journal.record_event(event(n=n, blob="x" * 2000), [])
        wait_for(lambda: "retrying" in caplog.text)

        journal.close()

    assert "dropped rows=20" in caplog.text
    assert not any(t.name == "journal-writer" for t in threading.enumerate())


def test_a_row_sqlite_refuses_is_dropped_alone(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = event(n=1), event(n=2)
    with caplog.at_level(logging.ERROR, logger="capture.journal"):
        journal.record_event(good, ["r1"])
        journal.record_result(CaptureResult(bad.id, None, "cam1", 1))  # type: ignore[arg-type]
        journal.record_result(ok(good, path=PurePosixPath("x/a.jpg")))  # a path object is fine
        journal.flush()

    assert [(r.event_id, r.path) for r in journal.query()] == [(good.id, "x/a.jpg")]
    assert "refused a row" in caplog.text and "NOT NULL" in caplog.text


# --------------------------------------------------------------------------- threads and crashes


def test_many_threads_record_at_once_and_every_row_arrives(journal: Journal) -> None:
    def record(worker: int) -> None:
        for n in range(500):
            ev = event(worker=worker, n=n)
            journal.record_event(ev, ["r1"])
            journal.record_result(ok(ev, camera=f"cam{worker}"))

    threads = [threading.Thread(target=record, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.flush()

    rows = journal.query(limit=10_000)
    assert len(rows) == 4000
    assert len({(r.values["worker"], r.values["n"]) for r in rows}) == 4000
    assert {c: s.captures for c, s in journal.camera_stats().items()} == {
        f"cam{w}": 500 for w in range(8)
    }


def test_rows_arriving_together_share_a_commit(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []
    real = Journal._commit

    def counting(self: Journal, batch: list) -> list:
        commits.append(len(batch))
        return real(self, batch)

    monkeypatch.setattr(Journal, "_commit", counting)
    for n in range(20):  # twenty events, 10 ms apart: a quiet line
        ev = event(n=n)
        journal.record_event(ev, ["r1"])
        time.sleep(0.003)  # the picture comes a few ms after the trigger
        journal.record_result(ok(ev))
        time.sleep(0.01)
    journal.flush()
    steady = len(commits)
    began = time.monotonic()
    for n in range(300):  # a busy line: an event every half millisecond or so
        ev = event(n=1000 + n)
        journal.record_event(ev, ["r1"])
        journal.record_result(ok(ev))
        time.sleep(0.0005)
    journal.flush()
    burst, elapsed = len(commits) - steady, time.monotonic() - began
    assert len(journal.query(limit=1000)) == 320
    # Once the writer notices the load (a rate window's worth of rows), at most one
    # commit per gathering window, not one per event.
    noticed = writer_module._BUSY_ROWS_PER_S * writer_module._RATE_WINDOW_S
    assert burst <= elapsed / writer_module._GATHER_S + noticed + 2, (burst, elapsed)
    assert burst < 150, (burst, elapsed)  # a commit per event would be 300
    assert steady >= 28  # a quiet line commits each row at once, not gathered (40)


_WRITER = """
import sys
from pathlib import Path, PurePosixPath
from capture.events import CaptureResult, Event
from capture.journal import Journal
journal = Journal(Path(sys.argv[1]))
from capture.outbox import Outbox
Outbox(journal).put("ec/status", b"online", 1, True)
for n in range(10_000_000):
    event = Event.now("plc", {"n": n})
    journal.record_event(event, ["r1"])
    journal.record_result(CaptureResult(event.id, "r1", "cam1", 1, path=f"x/{n}.jpg", bytes=9))
    if n % 50 == 49:
        journal.flush()
        print(n + 1, flush=True)
"""


@pytest.mark.slow
def test_after_kill_9_the_journal_opens_cleanly_and_lists_what_completed(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        committed = 0
        while committed < 1000:
            committed = int(process.stdout.readline())
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == -signal.SIGKILL

    reader = JournalReader(path)
    try:
        assert reader.select("PRAGMA integrity_check")[0][0] == "ok"
        rows = reader.query(limit=1_000_000)
        assert len(rows) >= committed
        assert all(r.ok and r.trigger == "plc" for r in rows)  # every capture has its event
        numbers = sorted(r.values["n"] for r in rows)
        assert numbers == list(range(len(numbers)))  # no hole: commits are in order
        assert [tuple(row) for row in reader.select("SELECT payload FROM outbox")] == [(b"online",)]
    finally:
        reader.close()
    Journal(path).close()  # and the service can open it for writing again


# --------------------------------------------------------------------------- files and lifecycle


def test_a_new_journal_is_created_at_the_current_schema_version(tmp_path: Path) -> None:
    Journal(tmp_path / "sub" / "journal.sqlite3").close()

    connection = sqlite3.connect(tmp_path / "sub" / "journal.sqlite3")
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def test_a_journal_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()

    with pytest.raises(JournalError, match="update event-capture"):
        Journal(path)


def test_a_damaged_file_is_reported_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"this is not a database, it is a shopping list" * 100)

    with pytest.raises(JournalError, match="move it aside"):
        Journal(path)


def test_reading_a_missing_journal_says_the_service_has_not_run(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="has not run"):
        JournalReader(tmp_path / "journal.sqlite3")
    assert not (tmp_path / "journal.sqlite3").exists()


def test_close_commits_what_was_queued_and_stops_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    ev = event()
    journal.record_event(ev, [])
    journal.close()
    journal.close()  # twice is harmless

    assert not any(t.name == "journal-writer" for t in threading.enumerate())
    with pytest.raises(JournalError, match="closed"):
        journal.record_event(ev, [])
    reader = JournalReader(path)
    assert [r.event_id for r in reader.query()] == [ev.id]
    reader.close()


def test_a_version_1_journal_is_read_as_it_is_and_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    connection = sqlite3.connect(path)
    connection.executescript(schema_module.MIGRATIONS[0] + "PRAGMA user_version = 1;")
    connection.execute(
        "INSERT INTO captures (event_id, rule, camera, seq, path, time, event_time) "
        "VALUES ('e1', 'r1', 'cam1', 1, 'a.jpg', '2026-11-25T08:00:00Z', '2026-11-25T08:00:00Z')"
    )
    connection.commit()
    connection.close()
    reader = JournalReader(path)  # an older service still runs: nothing is changed
    [row] = reader.query()
    reader.close()
    assert (row.path, row.missing_fields) == ("a.jpg", ())
    writer = Journal(path)
    new = event()
    writer.record_event(new, ["r1"])
    writer.record_result(ok(new, missing_fields=("id", "station")))
    writer.flush()
    rows = writer.query()
    writer.close()
    assert {row.path: row.missing_fields for row in rows} == {
        "a.jpg": (),
        f"x/{new.id}_cam1_1.jpg": ("id", "station"),
    }
