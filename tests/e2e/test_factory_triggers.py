"""Modbus and OPC UA triggers end to end: a real device or PLC server -> pictures on disk and an MQTT event."""

from __future__ import annotations

from pathlib import Path

from capture.cameras.jpeg import validate_jpeg
from capture.journal import JournalReader
from capture.run_command import status_line
from capture.service import JOURNAL_NAME
from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import wait_for
from tests.e2e.conftest import ServiceFactory, base_sections, camera_sections
from tests.factory import ModbusDevice, OpcuaServer
from tests.mqtt_client import Recorder


def jpegs_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.jpg") if "latest" not in p.parts)


def assert_saved(root: Path, message: dict[str, object], *rules: str) -> None:
    """Every capture of `message` is a whole JPEG on disk, journaled, and nothing else was saved."""
    captures = message["captures"]
    assert isinstance(captures, list) and captures
    for capture in captures:
        path = root / capture["path"]
        assert validate_jpeg(path.read_bytes()).width == 640
        assert capture["bytes"] == path.stat().st_size
    assert [p.relative_to(root).as_posix() for p in jpegs_under(root)] == sorted(
        capture["path"] for capture in captures
    )
    reader = JournalReader(root / JOURNAL_NAME)
    rows = [row for rule in rules for row in reader.query(rule=rule)]
    assert len(rows) == len(captures) and all(row.path for row in rows)


def test_a_modbus_input_edge_gives_a_picture_and_an_mqtt_event(
    tmp_path: Path,
    broker: Broker,
    simulator: Simulator,
    modbus_device: ModbusDevice,
    start_service: ServiceFactory,
) -> None:
    root = tmp_path / "data"
    rules = (
        modbus_device.trigger_section("io_gate", address=0, count=4)
        + modbus_device.trigger_section("io_counter", table="holding_registers", address=10)
        + """
[[rules]]
name = "io_part"
when = "io_gate"
condition = "address == 3"
cameras = ["cam_a"]
filename = "modbus/part_{address}_{state}_{seq}.jpg"

[[rules]]
name = "io_full"
when = "io_counter"
condition = "value >= 500 and previous < 500"
cameras = ["cam_b"]
filename = "modbus/full_{value}_{seq}.jpg"
"""
    )
    service = start_service(
        base_sections(root, broker, prefix="mb") + camera_sections(simulator) + rules
    )
    assert set(service.triggers) == {"io_gate", "io_counter"}
    events = Recorder(broker, "mb/events/#")
    modbus_device.set_bits(1, True)  # address 1: the rule's condition says no
    modbus_device.set_bits(3, True)
    modbus_device.set_registers(10, 480)  # below the threshold: an event, no picture
    wait_for(lambda: service.triggers["io_counter"].stats().emitted == 1)
    modbus_device.set_registers(10, 512)
    messages = wait_for(lambda: len(events.json()) == 2 and events.json())
    events.close()
    assert isinstance(messages, list)
    by_rule = {message["rule"]: message for message in messages}
    part, full = by_rule["io_part"], by_rule["io_full"]
    assert part["trigger"] == "io_gate" and part["ok"] is True
    assert part["values"]["address"] == 3 and part["values"]["state"] == "active"
    assert full["values"]["value"] == 512 and full["values"]["previous"] == 480
    assert [c["path"] for c in part["captures"]] == ["modbus/part_3_active_1.jpg"]
    assert [c["path"] for c in full["captures"]] == ["modbus/full_512_1.jpg"]
    assert_saved(root, {"captures": part["captures"] + full["captures"]}, "io_part", "io_full")


def test_an_opcua_value_change_gives_a_picture_and_an_mqtt_event(
    tmp_path: Path,
    broker: Broker,
    simulator: Simulator,
    opcua_server: OpcuaServer,
    start_service: ServiceFactory,
) -> None:
    root = tmp_path / "data"
    gate = opcua_server.node("Gate")
    rules = f"""
[triggers.plc]
type = "opcua"
endpoint = "{opcua_server.endpoint}"
nodes = ["{gate}", "{opcua_server.node("Count")}"]

[[rules]]
name = "plc_part"
when = "plc"
condition = 'node == "{gate}" and value == true'
cameras = ["cam_a", "cam_b"]
filename = "opcua/{{camera}}_{{seq}}.jpg"
"""
    start_service(base_sections(root, broker, prefix="ua") + camera_sections(simulator) + rules)
    events = Recorder(broker, "ua/events/#")
    opcua_server.write("Count", 41)  # another node: the condition says no
    opcua_server.write("Gate", True)
    [message] = wait_for(events.json)  # type: ignore[misc]
    events.close()
    assert message["rule"] == "plc_part" and message["trigger"] == "plc"
    assert message["values"]["node"] == gate and message["values"]["value"] is True
    assert message["values"]["status"] == "Good" and message["values"]["source_time"]
    assert sorted(c["path"] for c in message["captures"]) == [
        "opcua/cam_a_1.jpg",
        "opcua/cam_b_1.jpg",
    ]
    assert_saved(root, message, "plc_part")


def test_a_device_that_stops_answering_shows_in_the_status_line_and_fires_nothing(
    tmp_path: Path,
    simulator: Simulator,
    modbus_device: ModbusDevice,
    start_service: ServiceFactory,
) -> None:
    rules = (
        modbus_device.trigger_section("io_gate", reconnect_max_s=0.5)
        + """
[[rules]]
name = "io_part"
when = "io_gate"
cameras = ["cam_a"]
"""
    )
    root = tmp_path / "data"
    service = start_service(base_sections(root, None) + camera_sections(simulator) + rules)
    assert status_line(service) == "capturing: 2 camera(s), 1/1 trigger(s) running, 1 rule(s)"
    modbus_device.stop()
    wait_for(lambda: "waiting" in status_line(service))
    assert status_line(service).endswith("; triggers waiting for their device: io_gate")
    modbus_device.start()
    wait_for(lambda: "waiting" not in status_line(service))
    assert jpegs_under(root) == []
