"""Decides whether bytes are a complete JPEG by walking its structure, without decoding pixels.

Cameras answer with HTML pages, XML errors and truncated bodies under a 200
and an `image/jpeg` type, so the body itself is the only proof of an image:
SOI, marker segments skipped by their length (so EXIF thumbnails are jumped
over, not mistaken for the end), a frame header for the size, a scan, and EOI.
Bytes after EOI (Dahua's `dhav` trailer, padding) are trimmed.

`JpegScanner` does the walk incrementally over a growing buffer, which is how
the MJPEG reader finds the end of a frame as soon as it has arrived.
"""

from __future__ import annotations

from dataclasses import dataclass

from capture.errors import CaptureError

SOI = b"\xff\xd8"
_SOF_CODES = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_STANDALONE_CODES = frozenset({0x01, *range(0xD0, 0xD8)})
_SOS = 0xDA
_EOI = 0xD9
_SOI_CODE = 0xD8


class JpegError(CaptureError, ValueError):
    """The bytes are not a complete JPEG; the message says why and where."""


@dataclass(frozen=True, slots=True)
class JpegInfo:
    """A structurally valid JPEG: its bytes (trimmed at EOI) and its size in pixels."""

    data: bytes
    width: int
    height: int

    def __repr__(self) -> str:
        return f"JpegInfo({len(self.data)} bytes, {self.width}x{self.height})"


class JpegScanner:
    """Walks one JPEG starting at `start` in a buffer that may still be growing.

    Call `scan(buffer)` each time the buffer has grown (its prefix must not
    change): it returns the offset just past EOI once the image is complete,
    None while more bytes are needed, and raises `JpegError` as soon as the
    bytes cannot be a JPEG. Work already done is not repeated.
    """

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.width = 0
        self.height = 0
        self._pos = start + 2
        self._in_scan = False
        self._seen_scan = False
        self._checked_soi = False

    @property
    def position(self) -> int:
        """Offset the walk has reached; where it stopped when `scan` raised."""
        return self._pos

    def scan(self, buffer: bytes | bytearray) -> int | None:
        """Advance over the bytes available; return the end offset when EOI is reached."""
        if not self._checked_soi:
            if len(buffer) < self.start + 2:
                return None
            if buffer[self.start : self.start + 2] != SOI:
                raise JpegError("does not start with the JPEG SOI marker (FF D8)")
            self._checked_soi = True
        size = len(buffer)
        while True:
            if self._in_scan and not self._skip_entropy_data(buffer, size):
                return None
            if self._pos + 2 > size:
                return None
            before = self._pos
            end = self._read_marker(buffer, size)
            if end is not None:
                return end
            if self._pos == before and not self._in_scan:
                return None  # the segment header is not complete yet

    def _skip_entropy_data(self, buffer: bytes | bytearray, size: int) -> bool:
        """Move past compressed data to the next real marker; False if more bytes are needed."""
        while True:
            if self._pos >= size:
                return False
            found = buffer.find(b"\xff", self._pos, size)
            if found < 0:
                self._pos = size
                return False
            if found + 1 >= size:
                self._pos = found
                return False
            following = buffer[found + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                self._pos = found + 2  # stuffed byte or restart marker: still in the scan
            elif following == 0xFF:
                self._pos = found + 1  # fill byte
            else:
                self._pos = found
                self._in_scan = False
                return True

    def _read_marker(self, buffer: bytes | bytearray, size: int) -> int | None:
        """Handle the marker at the current position; return the end offset at EOI."""
        pos = self._pos
        if buffer[pos] != 0xFF:
            raise JpegError(
                f"expected a marker at byte {pos - self.start}, found 0x{buffer[pos]:02X}"
            )
        code = buffer[pos + 1]
        if code == 0xFF:
            self._pos = pos + 1  # fill byte before a marker
            return None
        if code == _EOI:
            if self.width == 0 or not self._seen_scan:
                raise JpegError("EOI before any image data (no frame header or scan)")
            return pos + 2
        if code == _SOI_CODE:
            raise JpegError(f"second SOI at byte {pos - self.start}: the image is truncated")
        if code in _STANDALONE_CODES:
            self._pos = pos + 2
            return None
        if pos + 4 > size:
            return None
        length = (buffer[pos + 2] << 8) | buffer[pos + 3]
        if length < 2:
            raise JpegError(f"segment 0x{code:02X} at byte {pos - self.start} has length {length}")
        if code in _SOF_CODES:
            if pos + 9 > size:
                return None
            self._read_frame_header(buffer, pos)
        elif code == _SOS:
            if self.width == 0:
                raise JpegError("scan before any frame header")
            self._in_scan = True
            self._seen_scan = True
        self._pos = pos + 2 + length
        return None

    def _read_frame_header(self, buffer: bytes | bytearray, pos: int) -> None:
        height = (buffer[pos + 5] << 8) | buffer[pos + 6]
        width = (buffer[pos + 7] << 8) | buffer[pos + 8]
        if width == 0 or height == 0:
            raise JpegError(f"frame header gives an image of {width}x{height} pixels")
        self.width, self.height = width, height


def validate_jpeg(data: bytes) -> JpegInfo:
    """Return the JPEG trimmed at EOI with its size, or raise `JpegError` saying what is wrong."""
    if not data:
        raise JpegError("empty body")
    scanner = JpegScanner()
    end = scanner.scan(data)
    if end is None:
        raise JpegError(f"truncated: no EOI marker in {len(data)} bytes")
    return JpegInfo(
        data=data[:end] if end < len(data) else data, width=scanner.width, height=scanner.height
    )
