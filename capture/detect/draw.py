"""The pictures made from a detection: a copy with the boxes drawn, and each object cut out.

Their names follow the picture's own, so they sort beside it and carry the
same template fields: `<name>_boxes.jpg` and `<name>_<class>_<n>.jpg`, the
class made safe for any file system by the same sanitizing as a template
value (capture.sanitize). They are written through the storage, atomically,
like the snapshot itself.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath

from PIL import Image, ImageDraw

from capture.detect import Detection
from capture.sanitize import clean, finish

#: Outline colour of the boxes: magenta, as the Node-RED flow drew them.
BOX_COLOUR = (255, 0, 255)
JPEG_QUALITY = 85


def annotated_name(picture: PurePosixPath) -> PurePosixPath:
    """Where the copy with boxes goes: beside the picture, `<name>_boxes.jpg`."""
    return picture.with_name(finish(f"{picture.stem}_boxes.jpg"))


def crop_name(picture: PurePosixPath, label: str, number: int) -> PurePosixPath:
    """Where object `number` (1-based) of class `label` goes: `<name>_<class>_<n>.jpg`."""
    return picture.with_name(finish(clean(f"{picture.stem}_{label}_{number}") + ".jpg"))


def annotated(picture: Image.Image, detections: list[Detection]) -> bytes:
    """The picture as a JPEG with each object's box and its class and score drawn on it."""
    copy = picture.convert("RGB")
    pen = ImageDraw.Draw(copy)
    width = max(2, round(min(copy.size) / 300))
    for detection in detections:
        box = detection.box
        pen.rectangle(
            (box.left, box.top, box.right - 1, box.bottom - 1), outline=BOX_COLOUR, width=width
        )
        caption = f"{detection.label} {detection.score:.2f}"
        pen.text((box.left + width + 1, box.top + width + 1), caption, fill=BOX_COLOUR)
    return _jpeg(copy)


def crop(picture: Image.Image, detection: Detection) -> bytes:
    """The object's box cut out of the picture, as a JPEG."""
    box = detection.box
    return _jpeg(picture.convert("RGB").crop((box.left, box.top, box.right, box.bottom)))


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
