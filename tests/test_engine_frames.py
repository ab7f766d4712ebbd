"""frames_ms against real simulated cameras: a stream-backed one answers from its buffer, a snapshot one late."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from capture.cameras import build_camera
from capture.cameras.live import LiveCamera
from capture.config.loader import parse_rules
from capture.engine import Engine
from capture.events import Event, FiringReport, PlannedFrame
from capture.journal import Journal
from capture.simulator import SimulatedCamera, Simulator
from capture.storage import Storage
from tests.cameras.helpers import frame_counter as counter
from tests.conftest import wait_for

PASSWORD = "sim#frames&1"
FPS = 20


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    cameras = [
        SimulatedCamera("belt", "mjpeg", password=PASSWORD, fps=FPS),
        SimulatedCamera("gate", "dahua", password=PASSWORD),
    ]
    with Simulator(cameras) as simulator:
        yield simulator


def rules_text(root: Path, sim: Simulator) -> str:
    return f"""
[storage]
root = "{root}"
filename = "{{camera}}/{{event_id}}_{{offset_ms:+d}}.jpg"

[cameras.belt]
vendor = "mjpeg"
host = "127.0.0.1"
port = {sim.port_of("belt")}
path = "/mjpg/video.mjpg"
user = "admin"
password_env = "FRAMES_PW"

[cameras.belt.live]
buffer_s = 3

[cameras.gate]
vendor = "dahua"
host = "127.0.0.1"
port = {sim.port_of("gate")}
user = "admin"
password_env = "FRAMES_PW"

[triggers.plc]
type = "http"

[[rules]]
name = "moment"
when = "plc"
cameras = ["belt", "gate"]
frames_ms = [200, -500, 0]
"""


def test_frames_before_at_and_after_the_trigger_are_saved_with_their_offsets(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = parse_rules(rules_text(tmp_path, sim), "rules.toml", {"FRAMES_PW": PASSWORD}).rules
    cameras = {name: build_camera(name, config) for name, config in rules.cameras.items()}
    journal = Journal(tmp_path / "journal.sqlite3")
    plans: list[Sequence[PlannedFrame]] = []
    open_firing = journal.open_firing

    def recording(
        event_id: str, rule: str, manual: bool, frames: Sequence[PlannedFrame]
    ) -> threading.Event:
        plans.append(frames)
        return open_firing(event_id, rule, manual, frames)

    monkeypatch.setattr(journal, "open_firing", recording)
    storage = Storage(rules.storage)
    engine = Engine(rules, cameras, storage, journal)
    reports: list[FiringReport] = []
    engine.add_report_listener(reports.append)
    belt = cameras["belt"]
    assert isinstance(belt, LiveCamera)
    try:
        wait_for(lambda: belt.worker.ring.span_s() >= 1.0)
        event = Event.now("plc")
        engine.submit(event)
        wait_for(lambda: reports)
        journal.flush()
        [report] = reports
        assert report.ok
        # Every frame the stream brought, from before the trigger to after the last frame.
        buffered = {frame.arrived: frame.data for frame in belt.worker.ring._frames}
        by_camera = {
            camera: {r.offset_ms: r for r in report.results if r.camera == camera}
            for camera in ("belt", "gate")
        }
        for offset, result in by_camera["belt"].items():
            assert result.via == "stream"
            assert result.path == f"belt/{event.id}_{offset:+d}.jpg"
            # Which frame: the one whose arrival is nearest the moment asked, read by its number.
            nearest = min(buffered, key=lambda at: abs(at - (event.monotonic + offset / 1000)))
            saved = (tmp_path / str(result.path)).read_bytes()
            assert counter(saved) == counter(buffered[nearest]), offset
            assert result.trigger_to_image_ms == round((nearest - event.monotonic) * 1000, 3)
        assert by_camera["belt"][-500].trigger_to_image_ms < 0  # from before the trigger
        for result in by_camera["gate"].values():
            # A snapshot camera cannot look back: its delay is positive and said honestly.
            assert result.via == "snapshot"
            assert result.trigger_to_image_ms > 0
        assert by_camera["gate"][200].trigger_to_image_ms >= 200
        rows = journal.query()
        assert {(row.camera, row.offset_ms, row.via) for row in rows} == {
            ("belt", -500, "stream"), ("belt", 0, "stream"), ("belt", 200, "stream"),
            ("gate", -500, "snapshot"), ("gate", 0, "snapshot"), ("gate", 200, "snapshot"),
        }  # fmt: skip
        # The plan journaled before the first frame holds the offsets too, for a restart to
        # report them if a kill interrupts the firing (capture.recovery).
        [plan] = plans
        assert sorted((frame.camera, frame.offset_ms) for frame in plan) == [
            ("belt", -500), ("belt", 0), ("belt", 200),
            ("gate", -500), ("gate", 0), ("gate", 200),
        ]  # fmt: skip
    finally:
        engine.stop(5)
        for camera in cameras.values():
            camera.close()
        journal.close()
        storage.close()


def test_rule_file_errors_name_the_line_for_frames_ms_and_live(tmp_path: Path) -> None:
    from capture.config.problems import ConfigError  # noqa: PLC0415

    text = f"""
[storage]
root = "{tmp_path}"

[cameras.gate]
vendor = "dahua"
host = "127.0.0.1"

[cameras.gate.live]
buffer_s = 5

[triggers.plc]
type = "http"

[[rules]]
name = "moment"
when = "plc"
cameras = ["gate"]
frames_ms = [0, 0]
burst = 2
"""
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "rules.toml", {})
    message = str(caught.value)
    assert "rules.toml:9" in message and "no stream of its own: give live.url" in message
    assert "two frames at one moment" in message
