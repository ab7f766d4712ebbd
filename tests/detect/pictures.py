"""Pictures with a known object, drawn by the tests: a stop sign, which COCO-SSD knows well."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFont

#: Where `stop_sign` draws the sign on a 1920x1080 picture: its octagon's bounding box.
STOP_SIGN_BOX = (1040, 160, 1560, 680)


def _octagon(cx: float, cy: float, radius: float) -> list[tuple[float, float]]:
    # Flat top and bottom: corners at 22.5 + 45k degrees, the bounding box 2 x radius x cos(22.5).
    return [
        (
            cx + radius * math.cos(math.radians(22.5 + 45 * k)),
            cy + radius * math.sin(math.radians(22.5 + 45 * k)),
        )
        for k in range(8)
    ]


def stop_sign(width: int = 1920, height: int = 1080) -> Image.Image:
    """A grey yard with a stop sign (red octagon, white rim, STOP) on a post, at STOP_SIGN_BOX."""
    scale = width / 1920
    picture = Image.new("RGB", (width, height), (150, 160, 150))
    pen = ImageDraw.Draw(picture)
    pen.rectangle((0, height * 0.6, width, height), fill=(110, 110, 105))
    left, top, right, bottom = (value * scale for value in STOP_SIGN_BOX)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    radius = (right - left) / 2 / math.cos(math.radians(22.5))
    pen.polygon(_octagon(cx, cy, radius), fill=(255, 255, 255))
    pen.polygon(_octagon(cx, cy, radius * 0.9), fill=(200, 20, 30))
    font = ImageFont.load_default(size=round(150 * scale))
    pen.text((cx, cy), "STOP", fill=(255, 255, 255), font=font, anchor="mm")
    pen.rectangle((cx - 18 * scale, bottom, cx + 18 * scale, height * 0.95), fill=(120, 120, 120))
    return picture
