"""Object detection in a running service: simulator cameras, a real broker, a tiny ONNX model."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from capture.detect.journal import read_event
from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import wait_for
from tests.detect.models import colour_detector
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
    model, labels = colour_detector(tmp_path)
    detection = (
        f"\n[detection]\nmodel = {json.dumps(str(model))}\nlabels = {json.dumps(str(labels))}\n"
    )
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
