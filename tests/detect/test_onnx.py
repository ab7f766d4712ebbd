"""The ONNX detector on tiny models built by the tests (tests/detect/models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from capture.config.schema import DetectionConfig
from capture.detect import Box, DetectError, Detection, load_detector
from capture.detect.onnx import OnnxDetector, read_labels
from capture.detect.picture import detect_file
from tests.detect.models import BOXES, colour_detector


def _detector(tmp_path: Path, **options: object) -> OnnxDetector:
    model, labels = colour_detector(tmp_path, **options)  # type: ignore[arg-type]
    return OnnxDetector(model, read_labels(labels))


def test_red_picture_gives_one_person_on_the_left_half_in_its_own_pixels(tmp_path: Path) -> None:
    found = _detector(tmp_path).detect(Image.new("RGB", (640, 480), (255, 0, 0)), 0.5)
    # Box 1 (score 0.9, most of box 0) is the same object: suppressed.
    assert found == [Detection("person", 1.0, Box(0, 0, 320, 480))]


def test_blue_picture_gives_a_truck_and_yxyx_boxes_are_read_as_rows_then_columns(
    tmp_path: Path,
) -> None:
    [truck] = _detector(tmp_path).detect(Image.new("RGB", (640, 480), (0, 0, 255)), 0.5)
    assert truck.label == "truck" and truck.score == pytest.approx(0.8)
    assert truck.box == Box(left=480, top=120, right=640, bottom=360)


def test_boxes_with_no_place_in_the_picture_are_left_out(tmp_path: Path) -> None:
    """A NaN corner (a broken export) and a box thinner than a pixel are not objects."""
    boxes = BOXES.copy()
    boxes[0] = [0.0, float("nan"), 1.0, 0.5]  # red's best box
    boxes[2] = [0.25, 0.75, 0.75, 0.7501]  # blue's box: 0.06 px wide at 640
    model, labels = colour_detector(tmp_path, boxes=boxes)
    detector = OnnxDetector(model, read_labels(labels))
    # Box 1, suppressed beside box 0 before, is what is left of the red object.
    [red] = detector.detect(Image.new("RGB", (640, 480), (255, 0, 0)), 0.5)
    assert (red.label, red.score, red.box) == ("person", pytest.approx(0.9), Box(32, 0, 320, 456))
    blue = Image.new("RGB", (640, 480), (0, 0, 255))
    assert detector.detect(blue, 0.5)[0].box.empty  # what the model said...
    blue.save(tmp_path / "blue.png")
    assert detect_file(detector, tmp_path / "blue.png", 0.5) == ([], (640, 480))  # ...not reported


def test_blank_label_line_is_never_reported_and_min_score_filters(tmp_path: Path) -> None:
    detector = _detector(tmp_path)
    assert detector.detect(Image.new("RGB", (64, 64), (0, 255, 0)), 0.1) == []  # class 1: blank
    assert detector.detect(Image.new("RGB", (64, 64), (0, 0, 255)), 0.81) == []


def test_model_of_any_input_size_takes_the_picture_as_it_is_or_scaled(tmp_path: Path) -> None:
    model, labels = colour_detector(tmp_path, size=None)
    picture = Image.new("RGB", (50, 40), (255, 0, 255))
    for size in (None, (16, 16)):
        found = OnnxDetector(model, read_labels(labels), input_size=size).detect(picture, 0.5)
        assert [(d.label, d.box) for d in found] == [
            ("person", Box(0, 0, 25, 40)),
            ("truck", Box(38, 10, 50, 30)),
        ]


def test_label_file_of_the_wrong_length_is_refused_naming_the_shapes(tmp_path: Path) -> None:
    model, _ = colour_detector(tmp_path)
    detector = OnnxDetector(model, ("person", "truck"))
    with pytest.raises(DetectError, match=r"scores \[1, N, 2\] \(2 lines in the label file\)"):
        detector.detect(Image.new("RGB", (8, 8)), 0.5)


def test_a_file_that_is_no_model_is_a_detect_error_naming_it(tmp_path: Path) -> None:
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(DetectError, match=f"model {bogus}: onnxruntime cannot load it"):
        OnnxDetector(bogus, ("person",))


def test_load_detector_reads_detection_config_and_refuses_a_missing_label_file(
    tmp_path: Path,
) -> None:
    model, labels = colour_detector(tmp_path)
    config = DetectionConfig(model=model, labels=labels, input_size=[32, 32])
    detector = load_detector(config)
    assert detector.labels == ("person", "", "truck")
    missing = DetectionConfig(model=model, labels=tmp_path / "none.txt")
    with pytest.raises(DetectError, match=r"none\.txt: cannot read it"):
        load_detector(missing)
