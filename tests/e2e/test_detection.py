"""Object detection in a running service: simulator cameras, a real broker, a tiny ONNX model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from capture.detect.journal import read_event
from capture.events import Event, PlannedFrame
from capture.journal import Journal
from capture.service import JOURNAL_NAME
from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import wait_for
from tests.detect.models import detection_section
from tests.e2e.conftest import ServiceFactory, base_sections, camera_sections
from tests.mqtt_client import Recorder, publish

RULE = """
[triggers.plc]
type = "mqtt"
topic = "plc/result"
fields = ["id"]

[[rules]]
name = "inspect"
when = "plc"
cameras = ["cam_a"]
filename = "{rule}_{camera}_{id}.jpg"
detect = { min_score = 0.05, annotate = true, crops = true }
"""


def test_saved_picture_is_analysed_journaled_drawn_and_announced_after_the_event(
    tmp_path: Path, broker: Broker, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    detection = detection_section(tmp_path)
    service = start_service(
        base_sections(root, broker, prefix="d1") + camera_sections(simulator) + RULE + detection
    )
    messages = Recorder(broker, "d1/#")
    publish(broker, "plc/result", '{"id": 7}')
    wait_for(lambda: any(topic.startswith("d1/detections/") for topic, _ in messages.messages))
    messages.close()

    topics = [topic for topic, _ in messages.messages if topic != "d1/status"]
    assert topics == ["d1/events/inspect", "d1/detections/inspect"]  # the event never waits
    follow_up = json.loads(messages.messages[[t for t, _ in messages.messages].index(topics[1])][1])
    assert follow_up["schema"] == "event-capture/detections/1"
    [picture] = follow_up["pictures"]
    assert picture["path"] == "inspect_cam_a_7.jpg" and picture["status"] == "analysed"
    # The simulator's picture is grey-ish: red scores as a person on the left half, blue as
    # a truck on the right quarter (tests/detect/models.py); 640x480 pixels.
    objects = {obj["class"]: obj["box"] for obj in picture["objects"]}
    assert objects == {"person": [0, 0, 320, 480], "truck": [480, 120, 640, 360]}
    assert follow_up["classes"] == ["person", "truck"]
    assert picture["files"] == [
        "inspect_cam_a_7_boxes.jpg",
        "inspect_cam_a_7_person_1.jpg",
        "inspect_cam_a_7_truck_1.jpg",
    ]
    with Image.open(root / "inspect_cam_a_7_person_1.jpg") as crop:
        assert crop.size == (320, 480)
    # latest/ keeps the snapshot itself, not a picture made from it.
    assert (root / "latest" / "cam_a.jpg").read_bytes() == (
        root / "inspect_cam_a_7.jpg"
    ).read_bytes()
    service.journal.flush()
    [row] = read_event(service.journal, follow_up["event_id"])
    assert row["status"] == "analysed" and row["objects"] == picture["objects"]
    assert service.detection is not None and service.detection.stats.analysed == 1


FOLLOW_UP = """
[triggers.seen]
type = "detection"
rules = ["inspect"]
fields = ["person", "dog"]

[[rules]]
name = "person_follow_up"
when = "seen"
condition = "person >= 1"
cameras = ["cam_b"]
detect = { min_score = 0.05 }
filename = "follow_{event}.jpg"

[[rules]]
name = "dog_follow_up"
when = "seen"
condition = "dog >= 1"
cameras = ["cam_b"]
"""


def test_a_follow_up_rule_fires_on_what_detection_found_and_never_chains(
    tmp_path: Path, broker: Broker, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    detection = detection_section(tmp_path)
    rules = RULE.replace("annotate = true, crops = true", "annotate = false")
    service = start_service(
        base_sections(root, broker, prefix="d2")
        + camera_sections(simulator)
        + rules
        + FOLLOW_UP
        + detection
    )
    messages = Recorder(broker, "d2/#")
    publish(broker, "plc/result", '{"id": 8}')
    # The follow-up's own pictures are analysed too (its rule asks), which fires no trigger.
    detection = service.detection
    assert detection is not None
    wait_for(lambda: detection.stats.analysed == 2)
    detection.stop()  # returns once the last analysis (and what it fired) is done
    service.journal.flush()
    fired = service.journal.select("SELECT rules_json FROM events WHERE trigger = 'seen'")
    # One event, and only the person rule fired: the dog rule's condition was false.
    assert [json.loads(row[0]) for row in fired] == [["person_follow_up"]]
    try:
        wait_for(lambda: len([t for t, _ in messages.messages if t.startswith("d2/events/")]) == 2)
    finally:
        messages.close()

    events = {
        topic: json.loads(payload)
        for topic, payload in messages.messages
        if topic.startswith("d2/events/")
    }
    assert set(events) == {"d2/events/inspect", "d2/events/person_follow_up"}
    first, follow = events["d2/events/inspect"], events["d2/events/person_follow_up"]
    assert follow["trigger"] == "seen"
    assert follow["values"] == {
        "rule": "inspect",
        "event": first["event_id"],
        "objects": 2,
        "classes": "person,truck",
        "analysed": 1,
        "not_analysed": 0,
        "person": 1,
        "truck": 1,
    }
    assert follow["captures"][0]["path"] == f"follow_{first['event_id']}.jpg"
    seen = service.triggers["seen"].stats()
    assert seen.emitted == 1 and seen.ignored == 0  # not fired again by the follow-up's analysis


def test_a_picture_adopted_from_an_interrupted_firing_is_analysed_at_start_without_follow_ups(
    tmp_path: Path,
    broker: Broker,
    simulator: Simulator,
    start_service: ServiceFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kill after the file reached the disk, before the journal: recovery's picture is analysed.

    It fires no follow-up rule, however quickly the triggers start: pictures
    taken now would not show the moment the old picture did.
    """
    root = tmp_path / "data"
    root.mkdir()
    journal = Journal(root / JOURNAL_NAME)
    event = Event.now("plc", {"id": 9})
    journal.record_event(event, ["inspect"])
    planned = [PlannedFrame("cam_a", 1, "inspect_cam_a_9.jpg")]
    assert journal.open_firing(event.id, "inspect", False, planned).wait(5)
    journal.close()
    Image.new("RGB", (64, 48), (250, 0, 0)).save(root / "inspect_cam_a_9.jpg", "JPEG")
    messages = Recorder(broker, "d3/#")
    import capture.detect  # noqa: PLC0415 - onnx, for these tests only
    from tests.detect.models import GatedDetector  # noqa: PLC0415

    load = capture.detect.load_detector
    held: list[GatedDetector] = []
    monkeypatch.setattr(
        capture.detect,
        "load_detector",
        lambda config: held.append(GatedDetector(load(config))) or held[0],
    )

    service = start_service(
        base_sections(root, broker, prefix="d3")
        + camera_sections(simulator)
        + RULE
        + FOLLOW_UP
        + detection_section(tmp_path)
    )
    held[0].gate.set()  # analysed once the triggers run: the follow-up could fire now
    try:
        wait_for(lambda: any(t.startswith("d3/detections/") for t, _ in messages.messages))
    finally:
        messages.close()
    detection = service.detection
    assert detection is not None
    detection.stop()  # returns once the analysis and what it fired are done
    assert service.triggers["seen"].stats().emitted == 0

    by_topic = {
        topic: json.loads(payload) for topic, payload in messages.messages if topic != "d3/status"
    }
    assert by_topic["d3/events/inspect"]["interrupted"] is True
    [picture] = by_topic["d3/detections/inspect"]["pictures"]
    assert picture["path"] == "inspect_cam_a_9.jpg" and picture["status"] == "analysed"
    assert [obj["class"] for obj in picture["objects"]] == ["person"]
    service.journal.flush()
    [row] = read_event(service.journal, event.id)
    assert row["status"] == "analysed"
