"""One camera down, slow, locked out or talking garbage: the others are unaffected."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from capture.journal import JournalReader
from capture.service import JOURNAL_NAME
from capture.simulator import Simulator
from tests.broker import Broker, free_port
from tests.conftest import wait_for
from tests.e2e.conftest import base_sections, camera_sections
from tests.faults.conftest import (
    FaultServiceFactory,
    assert_every_jpeg_valid,
    snapshots,
    with_cam_b,
)
from tests.mqtt_client import Recorder, publish

EVENTS = 3

RULE = """
[triggers.plc]
type = "mqtt"
topic = "plc/+/part"
payload = "json"
fields = ["id"]

[[rules]]
name = "part"
when = "plc"
cameras = ["cam_a", "cam_b"]
filename = "{camera}/{id}.jpg"
"""


@dataclass(frozen=True)
class Breakage:
    """How cam_b is broken: options of its section, simulator faults, the errors it may give."""

    options: dict[str, object]
    faults: dict[str, object]
    errors: frozenset[str]


CASES: dict[str, Callable[[], Breakage]] = {
    "down": lambda: Breakage({"port": free_port()}, {}, frozenset({"Unreachable"})),
    # Frames queued behind a stuck request give up as Overloaded instead of piling up.
    "slow": lambda: Breakage(
        {"timeout_s": 0.5, "deadline_s": 1},
        {"latency_s": 2.0},
        frozenset({"Timeout", "Overloaded"}),
    ),
    "locked_out": lambda: Breakage(
        {"password_env": '"FAULT_WRONG_PASSWORD"'},
        {"lockout_after": 1},
        frozenset({"AuthFailed", "LockedOut"}),
    ),
    "html_200": lambda: Breakage({}, {"html_200": True}, frozenset({"InvalidImage"})),
    "truncated": lambda: Breakage({}, {"truncated": True}, frozenset({"InvalidImage"})),
    "empty_body": lambda: Breakage({}, {"empty_body": True}, frozenset({"InvalidImage"})),
    "short_body": lambda: Breakage(
        {}, {"short_body": True}, frozenset({"InvalidImage", "Unreachable"})
    ),
    "drop_connection": lambda: Breakage({}, {"drop_connection": True}, frozenset({"Unreachable"})),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_camera_fails_typed_and_journaled_while_the_other_saves_fast(
    case: str,
    tmp_path: Path,
    broker: Broker,
    simulator: Simulator,
    fault_service: FaultServiceFactory,
) -> None:
    breakage = CASES[case]()
    root = tmp_path / "data"
    simulator.faults("dahua").update(**breakage.faults)
    prefix = f"cam-{case}"
    cameras = with_cam_b(camera_sections(simulator), **breakage.options)
    fault_service(base_sections(root, broker, prefix=prefix) + cameras + RULE)
    events = Recorder(broker, f"{prefix}/events/#")
    for part_id in range(EVENTS):
        publish(broker, "plc/S1/part", json.dumps({"id": part_id}))
    messages = wait_for(lambda: len(events.json()) == EVENTS and events.json(), timeout=30)
    events.close()

    assert isinstance(messages, list)
    for message in messages:
        by_camera = {c["camera"]: c for c in message["captures"]}
        good, bad = by_camera["cam_a"], by_camera["cam_b"]
        assert good["ok"] and (root / good["path"]).is_file()
        # cam_a does not wait for cam_b: its frame is taken as if cam_b were fine.
        assert good["trigger_to_image_ms"] < 1000, good  # cam_b answers after 2 s at best
        assert message["ok"] is False and bad["path"] is None
        assert bad["error"]["type"] in breakage.errors, bad["error"]
        assert "cam_b" in bad["error"]["message"]
    # The first failure is always the camera's own (not a queueing consequence).
    first = min(messages, key=lambda m: m["values"]["id"])
    [first_error] = [c["error"]["type"] for c in first["captures"] if c["camera"] == "cam_b"]
    assert first_error != "Overloaded"
    assert sorted(p.name for p in snapshots(root / "cam_a")) == [f"{i}.jpg" for i in range(EVENTS)]
    assert not (root / "cam_b").exists()
    assert_every_jpeg_valid(root)
    rows = JournalReader(root / JOURNAL_NAME).query(camera="cam_b", limit=1000)
    assert len(rows) == EVENTS
    assert all(not row.ok and row.error_type in breakage.errors for row in rows)
