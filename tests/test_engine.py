"""The rule engine with real storage and journal, and cameras that are plain in-memory devices."""

from __future__ import annotations

import io
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from capture.cameras import CameraState, Snapshot
from capture.cameras.errors import Unreachable
from capture.config.loader import parse_rules
from capture.config.schema import CameraBase
from capture.engine import MAX_PENDING_WRITES, WRITER_THREADS, Engine
from capture.events import Event, FiringReport
from capture.journal import Journal
from capture.rules import RuleDisabled
from capture.storage import Storage
from tests.conftest import wait_for


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


JPEG = _jpeg()


class MemoryCamera:
    """A camera that answers from memory, optionally slowly or with an error."""

    def __init__(
        self, name: str, config: CameraBase, delay_s: float = 0.0, error: Exception | None = None
    ) -> None:
        self.name = name
        self.config = config
        self.delay_s = delay_s
        self.error = error
        self.calls: list[float] = []
        #: Cleared, it holds every request until set: a test queues frames first.
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        self.gate.wait(30)
        with self._lock:
            self.calls.append(time.monotonic())
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return Snapshot(
            self.name, JPEG, 32, 24, datetime.now(UTC), time.monotonic(), 1.0, False, "memory"
        )

    def state(self) -> CameraState:
        return CameraState(self.name, self.config.vendor)  # type: ignore[attr-defined]

    def close(self) -> None:
        pass


RULES = """
[service]
site = "unit"
line = "Line 1"

[storage]
root = "{root}"

[mqtt]
enabled = false

[cameras.fast]
vendor = "edimax"
host = "127.0.0.1"
line = "Line 1"

[cameras.slow]
vendor = "edimax"
host = "127.0.0.2"
line = "Line 2"

[triggers.plc]
type = "http"
fields = ["station", "state", "temp"]

[[rules]]
name = "ng"
when = "plc"
condition = 'state == "NG"'
cameras = ["fast"]
cooldown_s = 60
cooldown_key = "station"
filename = "{{rule}}/{{station}}_{{camera}}_{{seq}}.jpg"

[[rules]]
name = "hot"
when = "plc"
condition = "temp > 50"
cameras = ["line:Line 2", "fast"]
burst = 2
interval_ms = 10
filename = "{{rule}}/{{camera}}_{{seq}}.jpg"

[[rules]]
name = "off"
when = "plc"
cameras = ["fast"]
enabled = false
"""


BURSTS = """
[[rules]]
name = "late"
when = "plc"
condition = 'state == "LATE"'
cameras = ["fast"]
delay_ms = 150
filename = "{{rule}}/{{camera}}_{{seq}}.jpg"

[[rules]]
name = "burst"
when = "plc"
condition = 'state == "BURST"'
cameras = ["fast", "slow"]
burst = 4
interval_ms = 150
filename = "{{rule}}/{{camera}}_{{seq}}.jpg"
"""


class Harness:
    def __init__(
        self,
        root: Path,
        delays: dict[str, float] | None = None,
        errors: dict[str, Exception] | None = None,
        extra: str = "",
    ) -> None:
        self.root = root
        self.rules = parse_rules((RULES + extra).format(root=root), "rules.toml", {}).rules
        self.cameras = {
            name: MemoryCamera(
                name, config, (delays or {}).get(name, 0.0), (errors or {}).get(name)
            )
            for name, config in self.rules.cameras.items()
        }
        self.journal = Journal(root / "journal.sqlite3")
        self.storage = Storage(self.rules.storage)
        self.engine = Engine(self.rules, self.cameras, self.storage, self.journal)
        self.reports: list[FiringReport] = []
        self.engine.add_report_listener(self.reports.append)

    def fire(self, **values: Any) -> Event:
        event = Event.now("plc", values)
        self.engine.submit(event)
        return event

    def reload(self, text: str) -> None:
        """Apply a new rule file as the service does: unchanged cameras keep their object."""
        rules = parse_rules(text.format(root=self.root), "rules.toml", {}).rules
        cameras = {
            name: self.cameras[name]
            if self.rules.cameras.get(name) == config
            else MemoryCamera(name, config)
            for name, config in rules.cameras.items()
        }
        self.engine.reload(rules, cameras)
        self.rules, self.cameras = rules, cameras

    def close(self) -> None:
        self.engine.stop(5)
        self.journal.close()
        self.storage.close()


@pytest.fixture
def harness(tmp_path: Path):  # type: ignore[no-untyped-def]
    created: list[Harness] = []

    def make(**kwargs: Any) -> Harness:
        created.append(Harness(tmp_path, **kwargs))
        return created[-1]

    yield make
    for item in created:
        item.close()


def test_condition_selects_rules_and_disabled_rules_never_fire(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness()
    h.fire(state="OK", station="S1", temp=20)
    h.fire(state="NG", station="S1", temp=20)
    assert h.engine.wait_idle(5)
    assert [r.rule for r in h.reports] == ["ng"]
    assert [res.path for res in h.reports[0].results] == ["ng/S1_fast_1.jpg"]


def test_cooldown_is_per_value_of_the_cooldown_key(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness()
    for station in ("S1", "S1", "S2", "S1"):
        h.fire(state="NG", station=station, temp=0)
    assert h.engine.wait_idle(5)
    assert sorted(r.event.values["station"] for r in h.reports) == ["S1", "S2"]


def test_line_selector_and_burst_cover_every_camera_of_the_line(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness()
    h.fire(state="OK", station="S1", temp=80)
    assert h.engine.wait_idle(5)
    [report] = h.reports
    assert [(r.camera, r.seq) for r in report.results] == [
        ("slow", 1),
        ("slow", 2),
        ("fast", 1),
        ("fast", 2),
    ]
    assert report.ok


def test_a_slow_camera_never_delays_another(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness(delays={"slow": 1.0})
    h.fire(state="OK", station="S1", temp=80)
    wait_for(lambda: len(h.cameras["fast"].calls) == 2, timeout=5)
    # the fast camera's two frames are done while the slow one is still on its first
    assert len(h.cameras["slow"].calls) == 1
    assert h.engine.wait_idle(10)


def test_a_lone_frame_is_written_by_its_camera_thread_and_a_queue_goes_to_the_writers(
    harness, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    h = harness()
    handed_over: list[str] = []
    submit = h.engine._writers.submit

    def counted(function: Any, frame: Any, snapshot: Any) -> Any:
        handed_over.append(frame.firing.event.values["station"])
        return submit(function, frame, snapshot)

    monkeypatch.setattr(h.engine._writers, "submit", counted)
    h.fire(state="NG", station="S1", temp=0)  # one frame, nothing queued behind it
    assert h.engine.wait_idle(5)
    assert handed_over == []
    camera = h.cameras["fast"]
    camera.gate.clear()  # four frames for one camera, all queued before the first is taken
    for station in ("S2", "S3", "S4", "S5"):
        h.fire(state="NG", station=station, temp=0)
    wait_for(lambda: h.engine.queued("fast") == 3)  # S2 is at the camera
    camera.gate.set()
    assert h.engine.wait_idle(5)
    # Each frame that found others waiting went to a writer; the last found none.
    assert handed_over == ["S2", "S3", "S4"]
    assert len({r.path for report in h.reports for r in report.results}) == 5


def test_camera_error_becomes_a_typed_result_and_the_firing_still_reports(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness(errors={"slow": Unreachable("slow", "connection refused; check host and port")})
    h.fire(state="OK", station="S1", temp=80)
    assert h.engine.wait_idle(5)
    [report] = h.reports
    failed = [r for r in report.results if not r.ok]
    assert [(r.camera, r.error_type) for r in failed] == [
        ("slow", "Unreachable"),
        ("slow", "Unreachable"),
    ]
    assert "connection refused" in (failed[0].error_message or "")
    assert not report.ok and all(r.path for r in report.results if r.camera == "fast")


def test_each_firing_logs_one_line_with_what_became_of_its_frames(
    harness, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    h = harness(errors={"slow": Unreachable("slow", "connection refused; check host and port")})
    with caplog.at_level(logging.INFO, logger="capture.engine"):
        event = h.fire(state="OK", station="S1", temp=80)
        assert h.engine.wait_idle(5)
    [report] = h.reports
    first = next(r.path for r in report.results if r.ok)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=")]
    assert line.startswith(f"event={event.id} trigger=plc rule=hot: 2/4 frame(s) saved within ")
    assert line.endswith(f" ms of the trigger, first {first}; failed: slow Unreachable")


def test_fire_rule_ignores_condition_and_snap_camera_takes_one_frame(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness()
    assert h.engine.fire_rule("ng", Event.now("command", {"station": "S9"}))
    assert h.engine.snap_camera("slow", Event.now("command"))
    assert not h.engine.snap_camera("nope", Event.now("command"))
    assert not h.engine.fire_rule("nope", Event.now("command"))
    assert h.engine.wait_idle(5)
    assert sorted((r.rule, r.manual) for r in h.reports) == [("ng", True), ("snap", True)]


def test_a_disabled_rule_is_refused_on_request_and_says_why(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness()
    request = Event.now("command", {"station": "S9"})
    with pytest.raises(RuleDisabled, match=r"rule 'off' is disabled \(enabled = false"):
        h.engine.fire_rule("off", request)
    assert h.engine.wait_idle(5)
    h.journal.flush()
    assert h.reports == [] and h.cameras["fast"].calls == []
    assert h.journal.query(limit=10) == []  # not even the request's event


def test_the_first_frame_is_not_taken_before_the_delay(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness(extra=BURSTS)
    event = h.fire(state="LATE", station="S1", temp=0)
    assert h.engine.wait_idle(5)
    [report] = h.reports
    [taken] = h.cameras["fast"].calls
    assert taken - event.monotonic >= 0.150
    assert report.results[0].ok and report.results[0].trigger_to_image_ms >= 150


def test_a_reload_mid_burst_takes_every_frame_of_the_burst_already_started(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness(extra=BURSTS)
    fast = h.cameras["fast"]
    h.fire(state="BURST", station="S1", temp=0)
    wait_for(lambda: fast.calls)
    # The new file drops the bursting rule and changes the other camera it names.
    h.reload(RULES.replace('host = "127.0.0.2"', 'host = "127.0.0.3"'))
    assert len(fast.calls) < 4, "the reload came too late to be mid-burst"
    assert h.cameras["fast"] is fast and h.cameras["slow"].config.host == "127.0.0.3"
    assert h.engine.wait_idle(5)
    [report] = h.reports
    assert report.ok
    assert sorted((r.camera, r.seq) for r in report.results) == [
        (camera, seq) for camera in ("fast", "slow") for seq in (1, 2, 3, 4)
    ]
    assert len(fast.calls) == 4 and len(h.cameras["slow"].calls) >= 1  # the replacement took some
    assert len({r.path for r in report.results}) == 8


def test_a_frame_queued_while_a_reload_retires_its_camera_is_taken_by_the_new_one(  # type: ignore[no-untyped-def]
    harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reload lands between the engine's look-up of the camera's workers and its put: the
    frame must not wait behind the retired workers' end markers, for ever."""
    h = harness()
    retired = h.engine._workers["slow"]
    submit = retired.submit

    def reload_first(frame: Any) -> bool:
        h.reload(RULES.replace('host = "127.0.0.2"', 'host = "127.0.0.3"'))
        return submit(frame)

    monkeypatch.setattr(retired, "submit", reload_first)
    h.fire(state="OK", station="S1", temp=80)
    assert h.engine.wait_idle(5)
    [report] = h.reports
    assert report.ok
    assert h.cameras["slow"].calls and h.cameras["slow"].config.host == "127.0.0.3"


def test_frames_of_a_camera_a_reload_removed_fail_saying_so(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness(extra=BURSTS)
    h.fire(state="BURST", station="S1", temp=0)
    wait_for(lambda: h.cameras["slow"].calls)
    without_slow = RULES.replace(
        '[cameras.slow]\nvendor = "edimax"\nhost = "127.0.0.2"\nline = "Line 2"\n', ""
    ).replace('cameras = ["line:Line 2", "fast"]', 'cameras = ["fast"]')
    assert "cameras.slow" not in without_slow
    h.reload(without_slow)
    assert h.engine.wait_idle(5)
    [report] = h.reports
    removed = [r for r in report.results if not r.ok]
    assert removed and all(r.camera == "slow" for r in removed)
    assert {(r.error_type, r.error_message) for r in removed} == {
        (
            "CameraRemoved",
            "camera slow: removed from the rule file by a reload before this frame was due",
        )
    }
    assert all(r.ok for r in report.results if r.camera == "fast")


def test_stop_waits_for_in_flight_frames(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness(delays={"slow": 0.3})
    h.fire(state="OK", station="S1", temp=80)
    wait_for(lambda: h.cameras["slow"].calls)
    assert h.engine.stop(5) is True
    assert len(h.reports) == 1 and len(h.reports[0].results) == 4


def test_stop_is_bounded_and_abandons_frames_still_queued(
    harness, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    h = harness(delays={"slow": 0.2})
    events = [h.fire(state="OK", station="S1", temp=80) for _ in range(20)]
    wait_for(lambda: h.cameras["slow"].calls)
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="capture.engine"):
        assert h.engine.stop(0.3) is False
    assert time.monotonic() - began < 2.0
    calls = len(h.cameras["slow"].calls)
    for thread in h.engine._workers["slow"].threads:  # the queue's frames end, untaken
        thread.join(5)
        assert not thread.is_alive()
    assert len(h.cameras["slow"].calls) <= calls + 1  # at most the frame in progress

    # Every frame of every firing has exactly one outcome: saved, or journaled as Abandoned
    # (a frame that was being saved when the grace period ended may finish just after).
    def journaled() -> list[Any]:
        h.journal.flush()
        return h.journal.query(limit=1000)

    wait_for(lambda: len(journaled()) >= 80)
    rows = journaled()
    assert sorted((r.event_id, r.camera, r.seq) for r in rows) == sorted(
        (event.id, camera, seq) for event in events for camera in ("slow", "fast") for seq in (1, 2)
    )
    abandoned = [r for r in rows if r.error_type == "Abandoned"]
    assert abandoned and all(r.camera == "slow" and not r.path for r in abandoned)
    assert abandoned[0].error_message == (
        "camera slow: the service stopped before this frame was taken (shutdown_grace_s)"
    )
    [warning] = [r.getMessage() for r in caplog.records if "grace period" in r.getMessage()]
    assert f"{len(abandoned)} frame(s) not taken, journaled as Abandoned" in warning
    wait_for(lambda: len(h.reports) == 20)
    assert all(len(report.results) == 4 for report in h.reports)


def test_repeated_failures_of_one_camera_are_logged_once_per_period(
    harness,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    h = harness(errors={"slow": Unreachable("slow", "connection refused; check host and port")})
    with caplog.at_level("WARNING", logger="capture.engine"):
        for _ in range(5):
            h.fire(state="OK", station="S1", temp=80)
        assert h.engine.wait_idle(5)
    lines = [r for r in caplog.records if "capture failed" in r.getMessage()]
    assert len(lines) == 1  # ten failures (5 events x 2 frames), one line
    assert sum(not r.ok for report in h.reports for r in report.results) == 10


def test_a_disk_slower_than_the_camera_slows_fetching_instead_of_filling_memory(
    harness, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    h = harness()
    store = h.engine._store
    real_save = store.save
    disk = threading.Event()  # set: the disk has caught up
    saving: list[str] = []
    lock = threading.Lock()

    def slow_save(relative: Any, jpeg: bytes, camera: str) -> Any:
        with lock:
            saving.append(str(relative))
        disk.wait(30)
        return real_save(relative, jpeg, camera)

    monkeypatch.setattr(store, "save", slow_save)
    camera = h.cameras["fast"]
    camera.gate.clear()  # all 60 frames wait in the camera's queue before the first is taken
    try:
        for n in range(60):
            h.fire(state="NG", station=f"S{n}", temp=0)
        wait_for(lambda: h.engine.queued("fast") == 59)  # the first is at the camera
        camera.gate.set()
        # Every writer is stuck, and so is the camera's own thread with the frame that
        # found all MAX_PENDING_WRITES slots taken: no further JPEG is fetched meanwhile.
        wait_for(lambda: len(saving) == WRITER_THREADS + 1)
        assert len(camera.calls) == MAX_PENDING_WRITES + 1
        assert h.engine.queued("fast") == 60 - (MAX_PENDING_WRITES + 1)
    finally:
        disk.set()
    assert h.engine.wait_idle(30)
    assert len(h.reports) == 60 and all(report.ok for report in h.reports)
