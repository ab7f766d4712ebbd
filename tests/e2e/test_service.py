"""The service end to end over real parts: broker, simulator, MockFactory pins, real files."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from capture.cameras.jpeg import validate_jpeg
from capture.events import FiringReport
from capture.journal import JournalReader
from capture.service import JOURNAL_NAME, Service
from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import wait_for
from tests.e2e.conftest import ServiceFactory, base_sections, camera_sections, client_id
from tests.mqtt_client import Recorder, publish

NG_RULE = """
[triggers.plc]
type = "mqtt"
topic = "plc/+/result"
payload = "json"
fields = ["id", "state", "station"]

[[rules]]
name = "ng_part"
when = "plc"
condition = 'state == "NG"'
cameras = ["line:Line 3"]
burst = 3
interval_ms = 100
filename = "{line}/{date}/ng_{station}_{camera}_{time:%H%M%S}_{id}_{seq}.jpg"
"""


def jpegs_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.jpg") if "latest" not in p.parts)


def test_mqtt_message_gives_named_burst_from_two_cameras_journal_and_one_event(
    tmp_path: Path, broker: Broker, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    start_service(base_sections(root, broker, prefix="t1") + camera_sections(simulator) + NG_RULE)
    events = Recorder(broker, "t1/events/#")
    publish(broker, "plc/S2/result", '{"id": 4711, "state": "NG", "station": "S2"}')
    publish(broker, "plc/S2/result", '{"id": 4712, "state": "OK", "station": "S2"}')
    [message] = wait_for(events.json)  # type: ignore[misc]
    events.close()

    assert message["rule"] == "ng_part" and message["trigger"] == "plc"
    assert message["values"] == {
        "id": 4711,
        "state": "NG",
        "station": "S2",
        "topic": "plc/S2/result",
        "topic_1": "plc",
        "topic_2": "S2",
        "topic_3": "result",
    }
    assert message["ok"] is True
    frames = [(c["camera"], c["seq"]) for c in message["captures"]]
    assert frames == [
        ("cam_a", 1),
        ("cam_a", 2),
        ("cam_a", 3),
        ("cam_b", 1),
        ("cam_b", 2),
        ("cam_b", 3),
    ]
    files = jpegs_under(root)
    assert len(files) == 6
    for capture in message["captures"]:
        path = root / capture["path"]
        assert path.name.startswith(f"ng_S2_{capture['camera']}_") and path.name.endswith(
            f"_4711_{capture['seq']}.jpg"
        )
        assert path.parts[-3] == "Line 3"
        assert validate_jpeg(path.read_bytes()).width == 640
        assert capture["bytes"] == path.stat().st_size
        assert capture["trigger_to_image_ms"] >= 0
    rows = JournalReader(root / JOURNAL_NAME).query(rule="ng_part")
    assert len(rows) == 6 and all(row.path for row in rows)
    assert (root / "latest" / "cam_a.jpg").exists() and (root / "latest" / "cam_b.jpg").exists()


def test_burst_frames_keep_their_interval(
    tmp_path: Path, broker: Broker, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    start_service(base_sections(root, broker, prefix="t2") + camera_sections(simulator) + NG_RULE)
    events = Recorder(broker, "t2/events/#")
    # The first event opens the connections and learns each camera's authentication.
    publish(broker, "plc/S1/result", '{"id": 1, "state": "NG", "station": "S1"}')
    wait_for(events.json)
    publish(broker, "plc/S1/result", '{"id": 2, "state": "NG", "station": "S1"}')
    _, message = wait_for(lambda: len(events.json()) == 2 and events.json())  # type: ignore[misc]
    events.close()
    for camera in ("cam_a", "cam_b"):
        delays = [c["trigger_to_image_ms"] for c in message["captures"] if c["camera"] == camera]
        # Frame n is due n x 100 ms after the trigger: never taken before, and the spacing
        # does not drift with capture time (a loaded machine may make any frame late).
        for n, delay in enumerate(delays):
            assert n * 100 <= delay < n * 100 + 1000, delays


THERMOMETER = """
[triggers.thermo]
type = "file"
path = "{path}"
parser = "regex"
pattern = 'T=(?P<temp>[0-9.]+)'

[[rules]]
name = "fever"
when = "thermo"
condition = "temp >= 37.5"
cameras = ["cam_b"]
filename = "gate/fever_{{temp:.1f}}C_{{seq}}.jpg"
"""


def test_thermometer_line_above_threshold_is_photographed_below_is_not(
    tmp_path: Path, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    log = tmp_path / "thermo.log"
    log.write_text("T=36.0\n")
    service = start_service(
        base_sections(root, None) + camera_sections(simulator) + THERMOMETER.format(path=log)
    )
    journal = JournalReader(root / JOURNAL_NAME)
    with log.open("a") as file:
        file.write("2026-11-25 10:15:02;T=36.5;C\n")
        file.flush()
        [below] = wait_for(journal.query)  # type: ignore[misc]
        assert (below.values["temp"], below.matched_rules, below.ok) == (36.5, (), None)
        assert service.engine.wait_idle(10)
        assert jpegs_under(root) == []
        file.write("2026-11-25 10:15:04;T=37.9;C\n")
    wait_for(lambda: jpegs_under(root))
    assert [p.name for p in jpegs_under(root)] == ["fever_37.9C_1.jpg"]
    [above] = wait_for(lambda: journal.query(rule="fever"))  # type: ignore[misc]
    assert above.ok and above.values["temp"] == 37.9


GATE = """
[triggers.gate]
type = "gpio"
pin = "GPIO17"
min_active_ms = 5

[[rules]]
name = "gate"
when = "gate"
cameras = ["cam_a"]
filename = "gate/{rule}_{camera}_{seq}.jpg"
"""


def pulse(pin: Any, seconds: float = 0.02) -> None:
    """An infrared beam broken for `seconds` (the pulse itself; longer than min_active_ms)."""
    pin.drive_low()
    time.sleep(seconds)
    pin.drive_high()


def test_gpio_pulse_takes_a_snapshot(
    tmp_path: Path, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    start_service(base_sections(root, None) + camera_sections(simulator) + GATE)
    pin = start_service.pin_factory.pin(17)  # type: ignore[attr-defined]
    pulse(pin)
    wait_for(lambda: jpegs_under(root))
    assert [p.name for p in jpegs_under(root)] == ["gate_cam_a_1.jpg"]


def test_camera_answering_html_is_an_error_in_the_event_and_the_other_camera_still_saves(
    tmp_path: Path, broker: Broker, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    simulator.faults("dahua").html_200 = True
    start_service(
        base_sections(root, broker, prefix="t5")
        + camera_sections(simulator)
        + NG_RULE.replace("burst = 3", "burst = 1")
    )
    events = Recorder(broker, "t5/events/#")
    publish(broker, "plc/S2/result", '{"id": 9, "state": "NG", "station": "S2"}')
    [message] = wait_for(events.json)  # type: ignore[misc]
    events.close()
    by_camera = {c["camera"]: c for c in message["captures"]}
    assert message["ok"] is False
    assert by_camera["cam_a"]["ok"] and (root / by_camera["cam_a"]["path"]).is_file()
    error = by_camera["cam_b"]["error"]
    assert by_camera["cam_b"]["path"] is None
    assert error["type"] == "InvalidImage" and "HTML" in error["message"]
    assert all("cam_b" not in p.name for p in jpegs_under(root))
    rows = JournalReader(root / JOURNAL_NAME).query(camera="cam_b", failed_only=True)
    assert [row.error_type for row in rows] == ["InvalidImage"]


def test_reload_with_broken_file_keeps_the_old_rules_and_a_good_file_applies(
    tmp_path: Path, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    text = base_sections(root, None) + camera_sections(simulator) + GATE
    service = start_service(text)
    path = tmp_path / "rules.toml"
    path.write_text(text.replace('cameras = ["cam_a"]', 'cameras = ["cam_x"]'))
    assert service.reload() is False
    assert any("unknown camera 'cam_x'" in error for error in service.reload_errors)
    pin = start_service.pin_factory.pin(17)  # type: ignore[attr-defined]
    pulse(pin)
    wait_for(lambda: jpegs_under(root))
    assert [p.name for p in jpegs_under(root)] == ["gate_cam_a_1.jpg"]

    path.write_text(text.replace('cameras = ["cam_a"]', 'cameras = ["cam_b"]'))
    wait_for(lambda: service.reloads == 1, timeout=10)  # picked up by the file watcher
    pulse(pin)
    wait_for(lambda: len(jpegs_under(root)) == 2)
    assert "gate_cam_b_1.jpg" in [p.name for p in jpegs_under(root)]


def test_events_while_broker_is_down_are_all_published_in_order_after_it_returns(
    tmp_path: Path, broker_fresh: Broker, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    service: Service = start_service(
        base_sections(root, broker_fresh, prefix="t7")
        + camera_sections(simulator)
        + GATE.replace("min_active_ms = 5", "min_active_ms = 0\nbounce_ms = 0")
    )
    publisher = service.publisher
    assert publisher is not None and publisher.wait_connected(10)
    # The promise is the order in which firings finished (docs/integration.md), which is
    # not always the trigger order: a frame handed to a writer may finish after the next.
    finished: list[str] = []
    handing = threading.Lock()
    publish_firing = publisher.publish_firing

    def recorded(report: FiringReport) -> None:
        with handing:
            finished.append(report.event.id)
            publish_firing(report)

    publisher.publish_firing = recorded  # type: ignore[method-assign]
    events = Recorder(broker_fresh, "t7/events/#", client_id="t7-consumer", persistent=True)
    broker_fresh.stop()
    wait_for(lambda: not service.publisher.connected)  # type: ignore[union-attr]
    pin = start_service.pin_factory.pin(17)  # type: ignore[attr-defined]
    for _ in range(5):
        pulse(pin, 0.01)
        time.sleep(0.01)
    wait_for(lambda: len(jpegs_under(root)) == 5)
    assert service.engine.wait_idle(10)
    fired = list(finished)
    assert sorted(fired) == sorted(
        row.event_id for row in JournalReader(root / JOURNAL_NAME).query()
    )
    broker_fresh.start()
    wait_for(lambda: len({m["event_id"] for m in events.json()}) == 5, timeout=60)
    received = list(dict.fromkeys(m["event_id"] for m in events.json()))
    events.close()
    assert received == fired


def test_snap_command_over_mqtt_answers_with_the_normal_event_message(
    tmp_path: Path, broker: Broker, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    service = start_service(
        base_sections(root, broker, prefix="t8") + camera_sections(simulator) + NG_RULE
    )
    assert service.publisher is not None and service.publisher.wait_connected(10)
    events = Recorder(broker, "t8/events/#")
    publish(broker, "t8/cmd/snap", '{"camera": "cam_b"}')
    publish(
        broker,
        "t8/cmd/snap",
        '{"rule": "ng_part", "values": {"id": 77, "station": "S9", "state": "OK"}}',
    )
    wait_for(lambda: len(events.json()) == 2)
    by_rule = {m["rule"]: m for m in events.json()}
    events.close()
    assert by_rule["snap"]["manual"] is True
    assert [c["camera"] for c in by_rule["snap"]["captures"]] == ["cam_b"]
    # an explicit request runs the rule even though its condition (state == "NG") is false
    assert len(by_rule["ng_part"]["captures"]) == 6 and by_rule["ng_part"]["values"]["id"] == 77


def test_retention_prunes_journal_rows_older_than_keep_days(
    tmp_path: Path, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    text = base_sections(root, None).replace(
        "retention_interval_s = 3600", "retention_interval_s = 3600\nkeep_days = 0.00002"
    )
    service = start_service(text + camera_sections(simulator) + GATE)
    journal = JournalReader(root / JOURNAL_NAME)
    for taken in (1, 2):
        assert service.handle_command({"camera": "cam_a"})
        wait_for(lambda taken=taken: len(journal.query(camera="cam_a")) == taken)
    newest = journal.query(camera="cam_a")[0]
    service.enforce_retention(now=datetime.now(UTC) + timedelta(seconds=2))  # past 1.7 s
    service.journal.flush()
    # The camera's newest picture stays, on disk and in the journal with its event.
    assert [(r.event_id, r.path, r.trigger) for r in journal.query()] == [
        (newest.event_id, newest.path, newest.trigger)
    ]
    assert newest.path is not None and (root / newest.path).is_file()


def test_after_a_restart_retention_still_keeps_each_cameras_newest_picture(
    tmp_path: Path, simulator: Simulator, start_service: ServiceFactory
) -> None:
    """Which file is whose comes back from the journal; the file names say nothing of it."""
    root = tmp_path / "data"
    text = base_sections(root, None).replace(
        "retention_interval_s = 3600", "retention_interval_s = 3600\nkeep_days = 1"
    )
    text += camera_sections(simulator) + GATE
    service = start_service(text)
    journal = JournalReader(root / JOURNAL_NAME)
    for taken, camera in enumerate(("cam_a", "cam_a", "cam_b"), start=1):
        assert service.handle_command({"camera": camera})
        wait_for(lambda taken=taken: len(journal.query()) == taken)
    service.stop()
    rows = journal.query()  # newest first
    for age, row in enumerate(rows, start=2):  # every picture older than keep_days
        assert row.path is not None
        moment = time.time() - age * 86400
        os.utime(root / row.path, (moment, moment))

    start_service(text).enforce_retention()

    newest = {row.camera: row.path for row in reversed(rows)}
    saved = [p.relative_to(root) for p in root.rglob("*.jpg")]
    assert sorted(p.as_posix() for p in saved if p.parts[0] != "latest") == sorted(
        path for path in newest.values() if path is not None
    )


def test_every_test_s_service_has_an_mqtt_client_id_of_its_own(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Persistent sessions on the session-wide broker must not carry over from test to test."""
    other = tmp_path_factory.mktemp("another_test")
    ids = {
        client_id(root)
        for root in (tmp_path / "data", other / "data", tmp_path / "disk" / "data", tmp_path / "x")
    }
    assert len(ids) == 4
    assert client_id(tmp_path / "data") == client_id(tmp_path / "data")  # a restart resumes
    text = base_sections(tmp_path / "data", Broker(tmp_path / "mosquitto"))
    assert f'client_id = "{client_id(tmp_path / "data")}"' in text
    assert tmp_path.name in client_id(tmp_path / "data")
