"""A picture file through a detector, decoded no larger than the model needs.

A 1080p JPEG decoded whole costs ~20 ms of CPU here, more than the
COCO-SSD model itself at 300x300; JPEG's DCT scaling (Pillow's `draft`)
decodes it at 1/2, 1/4 or 1/8 of its size for a fraction of that (~3 ms), so
a picture is decoded at the smallest such scale still at least as large as
the model's input, and the boxes are scaled back to the picture's own
pixels. The capture path gets that CPU back (README, Performance).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from capture.detect import Detection, Detector


def detect_file(
    detector: Detector, path: Path, min_score: float
) -> tuple[list[Detection], tuple[int, int]]:
    """The objects on the picture at `path` in its own pixels, and its (width, height)."""
    with Image.open(path) as picture:
        width, height = picture.size
        wanted = detector.input_size
        if wanted is not None:
            # At least the model's input in both directions; non-JPEG files ignore it.
            scale = max(wanted[0] / width, wanted[1] / height)
            picture.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))
        picture.load()
        found = detector.detect(picture, min_score)
        decoded = picture.size
    if decoded != (width, height):
        x, y = width / decoded[0], height / decoded[1]
        found = [detection.scaled(x, y) for detection in found]
    return [detection for detection in found if not detection.box.empty], (width, height)
