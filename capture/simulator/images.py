"""Generated camera pictures: drawn a few times per second, made unique per response cheaply.

Drawing and encoding a 640x480 frame with Pillow costs about 5 ms, far too
much to do per request when the benchmark wants thousands per second. So each
(channel, size) picture is redrawn at most `RENDER_FPS` times per second and
every response gets a JPEG comment segment, right after the header, carrying a
counter: bytes are identical only when the freeze fault asks for it.

Only the very first picture of a (channel, size) is drawn while a request
waits; after that a due redraw runs on a thread of its own and requests get
the current picture meanwhile, as a real camera's encoder runs beside its web
server. Drawing on the request made one answer in five take ~5 ms longer at
20 requests/s, which is the camera, not the client, a benchmark should not
measure.
"""

from __future__ import annotations

import io
import itertools
import struct
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

RENDER_FPS = 4.0
"""How often a picture is redrawn; the clock drawn in it ticks at this rate."""

JPEG_QUALITY = 80
_NOISE_SIGMA = 16  # gives ~25 KB at 640x480, the size of a real sub-stream still


@dataclass(frozen=True)
class _Rendered:
    at: float
    jpeg: bytes


def with_comment(jpeg: bytes, text: str) -> bytes:
    """The same JPEG with a COM segment holding `text`, after SOI and the JFIF APP0 header if any.

    JFIF wants APP0 right after SOI, and some sniffers look for it there.
    """
    payload = text.encode("ascii", "replace")[:65000]
    at = 2
    if jpeg[2:4] == b"\xff\xe0":
        at = 4 + struct.unpack(">H", jpeg[4:6])[0]
    segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:at] + segment + jpeg[at:]


class FrameSource:
    """Pictures of one camera: its name, channel, the time and a moving marker drawn in."""

    def __init__(self, camera_name: str, label: str = "") -> None:
        self.camera_name = camera_name
        self.label = label
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, int, int], _Rendered] = {}
        self._redrawing: set[tuple[int, int, int]] = set()
        self._counter = itertools.count(1)

    def jpeg(self, channel: int, width: int, height: int) -> bytes:
        """A unique JPEG of the current picture of `channel` at `width` x `height`."""
        return with_comment(
            self.picture(channel, width, height), f"sim {self.camera_name} #{next(self._counter)}"
        )

    def picture(self, channel: int, width: int, height: int) -> bytes:
        """The current picture (shared between responses until it is redrawn)."""
        key = (channel, width, height)
        now = time.monotonic()
        rendered = self._cache.get(key)
        if rendered is not None and now - rendered.at < 1.0 / RENDER_FPS:
            return rendered.jpeg
        if rendered is None:
            with self._lock:
                rendered = self._cache.get(key)
                if rendered is None:
                    rendered = _Rendered(now, self._render(channel, width, height))
                    self._cache[key] = rendered
            return rendered.jpeg
        with self._lock:
            start = key not in self._redrawing
            self._redrawing.add(key)
        if start:
            threading.Thread(target=self._redraw, args=(key,), daemon=True).start()
        return rendered.jpeg

    def _redraw(self, key: tuple[int, int, int]) -> None:
        try:
            self._cache[key] = _Rendered(time.monotonic(), self._render(*key))
        finally:
            with self._lock:
                self._redrawing.discard(key)

    def _render(self, channel: int, width: int, height: int) -> bytes:
        image = _background(channel, width, height).copy()
        draw = ImageDraw.Draw(image)
        now = datetime.now()
        tick = int(time.time() * RENDER_FPS)
        # A bright block sweeping across, so consecutive frames differ visibly.
        block = max(8, width // 8)
        x = (tick * block // 2) % max(1, width - block)
        draw.rectangle(
            (x, height // 2 - block // 2, x + block, height // 2 + block // 2), fill=(230, 200, 40)
        )
        size = max(10, height // 18)
        font = _font(size)
        lines = [
            f"{self.camera_name}  ch{channel}",
            now.strftime("%Y-%m-%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}",
            f"{width}x{height}  {self.label}".rstrip(),
        ]
        for row, text in enumerate(lines):
            draw.text(
                (size // 2, size // 2 + row * (size + size // 3)),
                text,
                font=font,
                fill=(255, 255, 255),
                stroke_width=max(1, size // 12),
                stroke_fill=(0, 0, 0),
            )
        out = io.BytesIO()
        image.save(out, "JPEG", quality=JPEG_QUALITY)
        return out.getvalue()


_shared_lock = threading.Lock()
_backgrounds: dict[tuple[int, int, int], Image.Image] = {}
_fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}


def _background(channel: int, width: int, height: int) -> Image.Image:
    """The static scene behind a channel's picture, made once per process and size."""
    key = (channel, width, height)
    with _shared_lock:
        background = _backgrounds.get(key)
        if background is None:
            # Sensor-like noise over a gradient: compresses like a real scene
            # (tens of KB), unlike a flat fill that would make a 3 KB JPEG.
            hue = (channel * 67) % 256
            gradient = Image.linear_gradient("L").rotate(90).resize((width, height))
            base = Image.merge(
                "RGB",
                (
                    gradient,
                    Image.new("L", (width, height), hue),
                    Image.new("L", (width, height), 60),
                ),
            )
            noise = Image.effect_noise((width, height), _NOISE_SIGMA).convert("RGB")
            background = ImageChops.add(base, noise, scale=2.0).filter(ImageFilter.GaussianBlur(1))
            _backgrounds[key] = background
        return background


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    with _shared_lock:
        font = _fonts.get(size)
        if font is None:
            try:
                font = ImageFont.load_default(size=size)
            except (OSError, TypeError):  # Pillow built without FreeType
                font = ImageFont.load_default()
            _fonts[size] = font
        return font
