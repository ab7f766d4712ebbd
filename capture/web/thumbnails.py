"""Thumbnails made once per picture with Pillow and kept in a bounded in-memory cache.

Memory rather than files: a Pi's SD card should not wear for something
remade in a few milliseconds after a restart, and a byte bound keeps the
cache from growing with the number of snapshots. JPEG's draft mode decodes
at 1/2, 1/4 or 1/8 scale directly, which makes a 1080p thumbnail about ten
times cheaper than a full decode.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict

from PIL import Image, UnidentifiedImageError

from capture.errors import CaptureError
from capture.web.media import MediaFile

log = logging.getLogger(__name__)

THUMB_SIZE = (480, 360)
"""Bounding box of a thumbnail: sharp on a wall-screen tile, small on a phone."""
THUMB_QUALITY = 75
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024


class ThumbnailError(CaptureError):
    """A picture cannot be decoded into a thumbnail (damaged or not a JPEG)."""


class Thumbnails:
    """Makes and caches thumbnails, keyed by the file's identity (inode, mtime, size)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.made = 0
        self.hits = 0
        self._cache: OrderedDict[tuple[str, int, int, int], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def cached_bytes(self) -> int:
        """Bytes of thumbnails held in memory now (never more than `max_bytes`, bar one)."""
        return self._bytes

    def get(self, media: MediaFile) -> bytes:
        """The thumbnail JPEG of a picture; made on first request, then from memory."""
        key = (str(media.path), media.inode, media.mtime_ns, media.size)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return cached
        data = self._make(media)
        with self._lock:
            if key not in self._cache:
                self.made += 1
                self._cache[key] = data
                self._bytes += len(data)
                while self._bytes > self.max_bytes and len(self._cache) > 1:
                    _, evicted = self._cache.popitem(last=False)
                    self._bytes -= len(evicted)
        return data

    @staticmethod
    def _make(media: MediaFile) -> bytes:
        try:
            with Image.open(media.path) as image:
                image.draft("RGB", THUMB_SIZE)
                image.thumbnail(THUMB_SIZE)
                output = io.BytesIO()
                image.convert("RGB").save(output, "JPEG", quality=THUMB_QUALITY, optimize=True)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            raise ThumbnailError(f"{media.relative}: cannot make a thumbnail ({exc})") from exc
        return output.getvalue()
