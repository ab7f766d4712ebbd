"""Test helpers for the camera drivers: real JPEGs from Pillow, and configs from the schema."""

from __future__ import annotations

import io
import re
from typing import Any

from PIL import Image
from pydantic import TypeAdapter

from capture.config.schema import CameraConfig

_ADAPTER: TypeAdapter[Any] = TypeAdapter(CameraConfig)
PASSWORD = "s3cr#t&pw"


def make_jpeg(
    width: int = 64,
    height: int = 48,
    *,
    colour: tuple[int, int, int] = (200, 30, 30),
    progressive: bool = False,
    restart_interval: bool = False,
    thumbnail: bool = False,
) -> bytes:
    """A real JPEG written by Pillow; `thumbnail` embeds a complete EXIF thumbnail JPEG in APP1."""
    image = Image.new("RGB", (width, height), colour)
    for x in range(0, width, 3):
        image.putpixel((x, x % height), (x % 256, 255 - x % 256, 90))
    options: dict[str, Any] = {"quality": 85, "progressive": progressive}
    if restart_interval:
        options["restart_marker_blocks"] = 1
    if thumbnail:
        # A minimal EXIF block whose IFD1 points at a complete JPEG thumbnail.
        thumb = make_jpeg(16, 12, colour=(0, 0, 255))
        options["exif"] = _exif_with_thumbnail(thumb)
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def _exif_with_thumbnail(thumb: bytes) -> bytes:
    import struct  # noqa: PLC0415

    # TIFF header, IFD0 with no entries pointing to IFD1, IFD1 with JPEGInterchangeFormat(+Length).
    ifd1_offset = 8 + 2 + 4
    thumb_offset = ifd1_offset + 2 + 2 * 12 + 4
    tiff = b"II*\x00" + struct.pack("<I", 8)
    tiff += struct.pack("<H", 0) + struct.pack("<I", ifd1_offset)
    tiff += struct.pack("<H", 2)
    tiff += struct.pack("<HHII", 0x0201, 4, 1, thumb_offset)
    tiff += struct.pack("<HHII", 0x0202, 4, 1, len(thumb))
    tiff += struct.pack("<I", 0)
    return b"Exif\x00\x00" + tiff + thumb


def camera_config(vendor: str, **options: Any) -> Any:
    """A validated camera config of `vendor` on 127.0.0.1, as the loader would produce it."""
    data: dict[str, Any] = {"vendor": vendor, "host": "127.0.0.1"}
    data.update(options)
    return _ADAPTER.validate_python(data)


def frame_counter(jpeg: bytes) -> int:
    """The simulator's frame number, carried in the JPEG's comment segment: which frame this is."""
    match = re.search(rb"sim \S+ #(\d+)", jpeg[:200])
    assert match, "no frame counter in the JPEG"
    return int(match.group(1))
