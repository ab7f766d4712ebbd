"""Pictures decoded no larger than the model needs, boxes back in the picture's own pixels."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from capture.detect import Box, Detection
from capture.detect.onnx import OnnxDetector, read_labels
from capture.detect.picture import detect_file
from tests.detect.models import colour_detector


class _Seen:
    """The colour detector, remembering the size of the picture it was given."""

    def __init__(self, inner: OnnxDetector) -> None:
        self.inner = inner
        self.sizes: list[tuple[int, int]] = []
        self.labels = inner.labels
        self.input_size = inner.input_size

    def detect(self, picture: Image.Image, min_score: float) -> list[Detection]:
        self.sizes.append(picture.size)
        return self.inner.detect(picture, min_score)


def test_a_jpeg_is_decoded_reduced_and_boxes_come_back_in_its_pixels(tmp_path: Path) -> None:
    model, labels = colour_detector(tmp_path)  # a fixed 8x8 input
    detector = _Seen(OnnxDetector(model, read_labels(labels)))
    path = tmp_path / "red.jpg"
    Image.new("RGB", (1920, 1080), (255, 0, 0)).save(path)
    found, size = detect_file(detector, path, 0.5)
    assert detector.sizes == [(240, 135)]  # JPEG's 1/8 scale, still >= 8x8
    assert size == (1920, 1080)
    assert [(d.label, d.box) for d in found] == [("person", Box(0, 0, 960, 1080))]


def test_a_model_taking_pictures_as_they_are_gets_the_whole_picture(tmp_path: Path) -> None:
    model, labels = colour_detector(tmp_path, size=None)
    detector = _Seen(OnnxDetector(model, read_labels(labels)))
    path = tmp_path / "red.jpg"
    Image.new("RGB", (640, 480), (255, 0, 0)).save(path)
    found, _ = detect_file(detector, path, 0.5)
    assert detector.sizes == [(640, 480)]
    assert found[0].box == Box(0, 0, 320, 480)
