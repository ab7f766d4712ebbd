"""Object detection on saved pictures: the Detector protocol, its registry and what it finds.

A detector turns one decoded picture into `Detection`s (a class, a score and
a box in the picture's own pixels); which classes and scores a rule keeps,
and what is journaled, published or drawn, is decided elsewhere
(capture.detect.worker), so a detector is one module with one job, like a
camera driver. Detection runs beside the capture path, never on it: its
worker takes finished firings from a bounded queue (docs/detection.md).

The runtime modules (onnxruntime, numpy) are imported only by the detector
that needs them, so `capture check` and a service without `[detection]` never
load them, and a Pi without the `detect` extra runs everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from capture.errors import CaptureError
from capture.registry import Registry

if TYPE_CHECKING:
    from PIL import Image

    from capture.config.schema import DetectionConfig


class DetectError(CaptureError, RuntimeError):
    """The detector cannot be loaded or cannot read a picture; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle in the picture's pixels: left, top (inclusive), right, bottom (exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    def as_list(self) -> list[int]:
        """`[left, top, right, bottom]`, as MQTT messages and the journal carry it."""
        return [self.left, self.top, self.right, self.bottom]

    @property
    def empty(self) -> bool:
        """No whole pixel inside: a box off the picture or thinner than a pixel, which a
        model can give and which can be neither drawn nor cropped."""
        return self.right <= self.left or self.bottom <= self.top


@dataclass(frozen=True, slots=True)
class Detection:
    """One object found in a picture: its class (a label of the model), score 0-1 and box."""

    label: str
    score: float
    box: Box

    def as_json(self) -> dict[str, object]:
        """The object as messages and the journal write it: class, score (3 decimals), box."""
        return {"class": self.label, "score": round(self.score, 3), "box": self.box.as_list()}

    def scaled(self, x: float, y: float) -> Detection:
        """The same object in a picture `x` times as wide and `y` times as high."""
        box = self.box
        return Detection(
            self.label,
            self.score,
            Box(
                round(box.left * x), round(box.top * y), round(box.right * x), round(box.bottom * y)
            ),
        )


class Detector(Protocol):
    """Finds objects in one decoded picture; one instance is used by one thread at a time."""

    @property
    def labels(self) -> tuple[str, ...]:
        """Every class this detector can report, in the model's order (blank: unused)."""
        ...

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(width, height) the model sees pictures at; None when it takes them as they are."""
        ...

    def detect(self, picture: Image.Image, min_score: float) -> list[Detection]:
        """Objects scoring at least `min_score`, best first, overlapping duplicates removed."""
        ...


#: Detector runtimes by the name `[detection].runtime` gives: each a function building the
#: detector from `[detection]`, its module imported only when a rule file uses it.
DETECTORS: Registry[Callable[[DetectionConfig], Detector]] = Registry(
    "detector runtime", {"onnx": "capture.detect.onnx:load"}
)


def load_detector(config: DetectionConfig) -> Detector:
    """The detector `[detection]` describes, its model loaded; DetectError when it cannot be."""
    if config.model is None:
        raise DetectError("[detection] has no model: set model and labels (docs/detection.md)")
    try:
        factory = DETECTORS.load(config.runtime)
    except ImportError as exc:
        raise DetectError(
            f"detection needs the detect extra ({exc.name or exc} is not installed): "
            "sudo deploy/install.sh --extras detect (docs/detection.md#setup)"
        ) from exc
    return factory(config)
