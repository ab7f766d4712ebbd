"""`capture fire` (dry run and real) and `capture demo`, as a technician runs them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from capture.cameras.jpeg import validate_jpeg
from capture.config.schema import MqttConfig
from capture.oneshot import fire_client_id
from capture.outbox import Outbox
from capture.service import Service
from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import wait_for
from tests.e2e.conftest import ENVIRON, base_sections, camera_sections
from tests.mqtt_client import Recorder, publish

RULE = """
[triggers.plc]
type = "mqtt"
topic = "plc/+/result"
fields = ["state", "station"]

[[rules]]
name = "ng_part"
when = "plc"
condition = 'state == "NG"'
cameras = ["cam_a", "cam_b"]
burst = 2
interval_ms = 50
filename = "{line}/ng_{station}_{camera}_{seq}.jpg"
"""


# The same rule on an http trigger, so no broker is needed (the web server is not started by fire).
HTTP_RULE = RULE.replace('type = "mqtt"\ntopic = "plc/+/result"', 'type = "http"')


def sections(root: Path, sim: Simulator) -> str:
    return base_sections(root, None).replace(
        "[web]\nenabled = false", "[web]\nenabled = true"
    ) + camera_sections(sim)


def capture(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "capture", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **ENVIRON, **(env or {})},
    )  # fmt: skip


def test_fire_dry_run_lists_cameras_and_file_names_and_touches_nothing(
    tmp_path: Path, simulator: Simulator, broker: Broker
) -> None:
    root = tmp_path / "data"
    rules = tmp_path / "rules.toml"
    rules.write_text(base_sections(root, broker) + camera_sections(simulator) + RULE)
    result = capture(
        "fire", "-c", str(rules), "plc", "--value", "state=NG", "--value", "station=S2", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert "rule ng_part: 4 frame(s)" in result.stdout
    assert f"cam_b #2 -> {root}/Line 3/ng_S2_cam_b_2.jpg" in result.stdout
    assert not root.exists()
    quiet = capture("fire", "-c", str(rules), "plc", "--value", "state=OK", "--dry-run")
    assert "no rule matches" in quiet.stdout and "condition false" in quiet.stdout


def test_fire_takes_the_pictures_through_the_real_pipeline(
    tmp_path: Path, simulator: Simulator
) -> None:
    root = tmp_path / "data"
    rules = tmp_path / "rules.toml"
    rules.write_text(sections(root, simulator) + HTTP_RULE)
    result = capture(
        "fire", "-c", str(rules), "plc", "--value", "state=NG", "--value", "station=S2"
    )
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in (root / "Line 3").iterdir())
    assert files == [
        "ng_S2_cam_a_1.jpg",
        "ng_S2_cam_a_2.jpg",
        "ng_S2_cam_b_1.jpg",
        "ng_S2_cam_b_2.jpg",
    ]
    simulator.faults("dahua").html_200 = True
    failed = capture(
        "fire", "-c", str(rules), "plc", "--value", "state=NG", "--value", "station=S3"
    )
    assert failed.returncode == 1
    assert "cam_b #1: InvalidImage" in failed.stdout


def test_fire_with_upload_on_queues_its_pictures_for_the_running_service(
    tmp_path: Path, simulator: Simulator
) -> None:
    root = tmp_path / "data"
    rules = tmp_path / "rules.toml"
    upload = '\n[upload]\nenabled = true\nendpoint = "http://127.0.0.1:9"\nbucket = "pictures"\n'
    rules.write_text(sections(root, simulator) + HTTP_RULE + upload)

    result = capture(
        "fire", "-c", str(rules), "plc", "--value", "state=NG", "--value", "station=S4"
    )

    assert result.returncode == 0, result.stderr
    events = capture("events", "-c", str(rules), "--json")
    rows = [json.loads(line) for line in events.stdout.splitlines()]
    assert sorted((row["upload"], row["object_key"]) for row in rows) == [
        ("waiting", f"test-plant/Line 3/Line 3/ng_S4_{camera}_{seq}.jpg")
        for camera in ("cam_a", "cam_b") for seq in (1, 2)
    ]  # fmt: skip


def test_fire_beside_a_running_service_leaves_it_online_and_connected(
    tmp_path: Path, simulator: Simulator, broker: Broker
) -> None:
    root = tmp_path / "data"
    rules = tmp_path / "rules.toml"
    web = "[web]\nenabled = true\nport = 0"  # the http trigger needs it; port 0: any free one
    rules.write_text(
        base_sections(root, broker, prefix="fire-beside").replace("[web]\nenabled = false", web)
        + camera_sections(simulator)
        + HTTP_RULE
    )
    service = Service(rules, environ=ENVIRON)
    service.start()
    status = Recorder(broker, "fire-beside/status")
    events = Recorder(broker, "fire-beside/events/#")
    try:
        wait_for(lambda: status.payloads() == [b"online"])
        result = capture(
            "fire", "-c", str(rules), "plc", "--value", "state=NG", "--value", "station=S2"
        )
        assert result.returncode == 0, result.stderr
        [event] = wait_for(events.json)  # type: ignore[misc]
        assert event["rule"] == "ng_part" and event["manual"] is False
        publish(broker, "fire-beside/status", b"marker")  # not retained: after what fire sent
        wait_for(lambda: status.payloads()[-1:] == [b"marker"])
        assert status.payloads() == [b"online", b"marker"]  # no offline, no reconnect's online
        assert service.publisher is not None and service.publisher.connected
        fresh = Recorder(broker, "fire-beside/status")
        assert wait_for(fresh.payloads) == [b"online"]
        fresh.close()
    finally:
        status.close()
        events.close()
        service.stop()


def test_fire_with_the_broker_down_warns_and_the_running_service_delivers_its_message(
    tmp_path: Path, simulator: Simulator, broker_fresh: Broker
) -> None:
    """No restart needed: the service sends what `fire` left in the outbox once it reconnects."""
    root = tmp_path / "data"
    rules = tmp_path / "rules.toml"
    web = "[web]\nenabled = true\nport = 0"
    rules.write_text(
        base_sections(root, broker_fresh, prefix="fire-down").replace("[web]\nenabled = false", web)
        + camera_sections(simulator)
        + HTTP_RULE
    )
    # A consumer as docs/integration.md advises: fixed id, persistent session, QoS 1.
    events = Recorder(
        broker_fresh, "fire-down/events/#", client_id="mes-fire-down", persistent=True
    )
    service = Service(rules, environ=ENVIRON)
    service.start()
    try:
        assert service.publisher is not None and service.publisher.wait_connected(10)
        broker_fresh.stop()
        wait_for(lambda: not service.publisher.connected)  # type: ignore[union-attr]
        result = capture(
            "fire", "-c", str(rules), "plc", "--value", "state=NG", "--value", "station=S4"
        )
        assert result.returncode == 0, result.stderr
        assert f"MQTT broker 127.0.0.1:{broker_fresh.port} could not be reached" in result.stderr
        assert "1 event message(s) wait in the outbox" in result.stderr
        assert events.json() == []
        broker_fresh.start()
        [event] = wait_for(events.json, timeout=60)  # type: ignore[misc]
        assert event["rule"] == "ng_part" and event["values"]["station"] == "S4"
        assert len(event["captures"]) == 4 and event["ok"] is True
        wait_for(lambda: Outbox(service.journal).count() == 0)
    finally:
        events.close()
        service.stop()


def test_fire_connects_with_an_id_of_its_own_even_beside_the_longest_service_id() -> None:
    for client_id in ("line3", "x" * 128):
        config = MqttConfig(client_id=client_id)
        fire_id = fire_client_id(config, "plant")
        assert fire_id != config.client_id_for("plant")
        assert len(fire_id) <= 128 and f"-fire-{os.getpid()}" in fire_id


def test_fire_rejects_bad_values_and_unknown_triggers(tmp_path: Path, simulator: Simulator) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(sections(tmp_path / "data", simulator) + HTTP_RULE)
    unknown = capture("fire", "-c", str(rules), "plx", "--dry-run")
    assert unknown.returncode == 1 and "unknown trigger 'plx'; known: plc" in unknown.stderr
    assert (
        capture("fire", "-c", str(rules), "plc", "--value", "novalue", "--dry-run").returncode == 2
    )


def test_demo_runs_on_its_own_and_stops_cleanly(tmp_path: Path, broker: Broker) -> None:
    data = tmp_path / "demo"
    result = capture("demo", "--data", str(data), "--duration", "8", "--period", "0.5",
                     "--mqtt", f"{broker.host}:{broker.port}", timeout=90)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    pictures = [p for p in (data / "snapshots").rglob("*.jpg") if "latest" not in p.parts]
    rules_fired = {p.name.split("_")[0] for p in pictures}
    assert {"fever", "ng", "part"} <= rules_fired, rules_fired
    for picture in pictures:
        validate_jpeg(picture.read_bytes())
    assert "demo: stopped" in result.stdout


def test_demo_publishes_its_events_and_ctrl_c_stops_it_cleanly(
    tmp_path: Path, broker: Broker
) -> None:
    data = tmp_path / "demo"
    events = Recorder(broker, "demo/event-capture/events/#")
    process = subprocess.Popen(
        [sys.executable, "-m", "capture", "demo", "--data", str(data), "--period", "0.5",
         "--mqtt", f"{broker.host}:{broker.port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **ENVIRON, "PYTHONFAULTHANDLER": "1"},
    )  # fmt: skip
    try:
        wait_for(lambda: len(events.json()) >= 3, timeout=60)
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # Where every thread stands (faulthandler prints them on SIGABRT) says why.
            process.send_signal(signal.SIGABRT)
            stdout, stderr = process.communicate(timeout=30)
            pytest.fail(f"capture demo did not stop within 60 s of SIGINT:\n{stderr[-20000:]}")
    finally:
        process.kill()
        events.close()
    assert process.returncode == 0, stderr[-3000:]
    assert "demo: stopped" in stdout
    for message in events.json():
        assert message["schema"] == "event-capture/event/1"
        for capture in message["captures"]:
            if capture["ok"]:
                validate_jpeg((data / "snapshots" / capture["path"]).read_bytes())


def test_values_the_file_name_needs_but_the_event_lacks_are_named_in_dry_run_and_journal(
    tmp_path: Path, simulator: Simulator
) -> None:
    root = tmp_path / "data"
    rules = tmp_path / "rules.toml"
    rule = HTTP_RULE.replace('"state", "station"', '"state", "station", "id"').replace(
        "ng_{station}_{camera}_{seq}", "ng_{station}_{camera}_{id}_{seq}"
    )
    rules.write_text(sections(root, simulator) + rule)
    values = ("--value", "state=NG", "--value", "station=S2")
    dry = capture("fire", "-c", str(rules), "plc", *values, "--dry-run")
    assert dry.stdout.splitlines()[:3] == [
        "rule ng_part: 4 frame(s)",
        '  not in the event: id; the file name says "unknown" instead (give --value id=...)',
        f"  cam_a #1 -> {root}/Line 3/ng_S2_cam_a_unknown_1.jpg",
    ]
    fired = capture("fire", "-c", str(rules), "plc", *values)
    assert fired.returncode == 0, fired.stderr
    assert fired.stdout.splitlines()[1] == (
        '  not in the event: id; the file name says "unknown" instead (give --value id=...)'
    )
    listed = capture("events", "-c", str(rules), "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == 4 and all(row["missing_fields"] == ["id"] for row in rows)
    table = capture("events", "-c", str(rules)).stdout.splitlines()
    assert len(table) == 5 and all(
        re.search(r"ng_S2_cam_[ab]_unknown_[12]\.jpg \(not in the event: id\)$", row)
        for row in table[1:]
    ), table
    complete = capture("fire", "-c", str(rules), "plc", *values, "--value", "id=8812", "--dry-run")
    assert "not in the event" not in complete.stdout


def test_values_without_value_are_answered_with_the_command_to_type(tmp_path: Path) -> None:
    result = capture("fire", "plc_result", "state=NG", "--value", "station=S2", "--dry-run")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "capture fire: unexpected 'state=NG': give values with --value, e.g. "
        "capture fire plc_result --value state=NG --value station=S2 --dry-run\n"
    )
