"""Extracts the first complete JPEG frame from an MJPEG (`multipart/x-mixed-replace`) stream.

Cameras bend the multipart format in every way (docs/cameras.md lists them):
boundaries declared with or without the leading `--`, no delimiter before the
first part, missing or wrong per-part Content-Length, LF-only lines, extra
blank lines, no part headers at all, a missing or wrong Content-Type. So the
reader trusts structure, not declarations: delimiters only say where a part
may start, and the frame ends where the JPEG walk (`JpegScanner`) finds EOI —
as soon as those bytes arrive, without waiting for the next delimiter. Broken
or non-image parts are skipped; memory is bounded.
"""

from __future__ import annotations

import re
from email.message import Message

from capture.cameras.jpeg import SOI, JpegError, JpegInfo, JpegScanner

#: Largest single frame accepted.
MAX_FRAME_BYTES = 16 * 1024 * 1024
#: Give up after this many bytes without a complete frame.
MAX_STREAM_BYTES = 48 * 1024 * 1024
#: Give up after this many parts that were not valid JPEGs.
MAX_BAD_PARTS = 8
#: Part headers longer than this are not headers.
MAX_HEADER_BYTES = 16 * 1024

_HEADER_LINE = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+[ \t]*:")
_BLANK = b"\r\n \t"


class MjpegError(JpegError):
    """The stream ended or went wrong before a complete frame arrived."""


def boundary_from_content_type(content_type: str | None) -> bytes | None:
    """The boundary token of a Content-Type, without quotes or leading dashes (None if absent)."""
    if not content_type:
        return None
    message = Message()
    message["content-type"] = content_type
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str):
        return None
    token = boundary.strip().strip('"').lstrip("-")
    return token.encode("latin-1") if token else None


class FirstFrameReader:
    """Feed stream bytes with `feed`; it returns the first valid frame once complete.

    `bad_parts` keeps why earlier parts were rejected (and an excerpt of a
    non-image part), so a stream of error documents can be reported as such.
    """

    def __init__(self, content_type: str | None = None) -> None:
        self.boundary = boundary_from_content_type(content_type)
        self.bad_parts: list[str] = []
        self._buffer = bytearray()
        self._pos = 0
        self._scanner: JpegScanner | None = None
        self._skipping = False
        self._search_from = 0
        self._delimiter_search_from = 0
        self._received = 0
        self._frame_end = 0

    def feed(self, chunk: bytes) -> JpegInfo | None:
        """Add bytes; return the first complete, valid frame as soon as it is there."""
        self._received += len(chunk)
        self._buffer += chunk
        frame = self._advance()
        if frame is None and self._received > MAX_STREAM_BYTES:
            raise MjpegError(
                f"no complete JPEG frame in the first {MAX_STREAM_BYTES // (1024 * 1024)} MB "
                f"of the stream{self._why()}"
            )
        return frame

    def finish(self) -> JpegError:
        """The error to report when the stream ended before a frame was found."""
        if self._scanner is not None:
            return MjpegError(f"stream ended in the middle of a frame (truncated){self._why()}")
        return MjpegError(f"stream ended without a complete JPEG frame{self._why()}")

    def _why(self) -> str:
        return f"; earlier parts: {'; '.join(self.bad_parts[-3:])}" if self.bad_parts else ""

    # ------------------------------------------------------------------ state machine

    def _advance(self) -> JpegInfo | None:
        while True:
            if self._skipping:
                if not self._skip_to_next_part():
                    return None
                continue
            if self._scanner is None:
                if not self._start_part():
                    return None
                continue
            scanner = self._scanner
            try:
                end = scanner.scan(self._buffer)
            except JpegError as exc:
                self._reject(f"invalid JPEG part ({exc})", resume_at=scanner.position)
                continue
            if end is not None:
                data = bytes(self._buffer[scanner.start : end])
                self._frame_end = end
                return JpegInfo(data, scanner.width, scanner.height)
            if self._part_ended_early():
                self._reject("part ended before its JPEG was complete (truncated)")
                continue
            if len(self._buffer) - scanner.start > MAX_FRAME_BYTES:
                raise MjpegError(f"frame larger than {MAX_FRAME_BYTES // (1024 * 1024)} MB")
            return None

    def _part_ended_early(self) -> bool:
        """True when the next delimiter line has arrived while the JPEG is still incomplete."""
        if self.boundary is None:
            return False
        buffer, marker = self._buffer, b"\n--" + self.boundary
        while True:
            found = buffer.find(marker, self._delimiter_search_from)
            if found < 0 or found + len(marker) >= len(buffer):
                if found < 0:
                    self._delimiter_search_from = max(
                        self._delimiter_search_from, len(buffer) - len(marker)
                    )
                return False
            # A real delimiter line goes on with CR, LF or the closing "--".
            if buffer[found + len(marker)] in b"\r\n-":
                return True
            self._delimiter_search_from = found + 1

    def _start_part(self) -> bool:
        """Start scanning the next part's JPEG, or reject the part; False if more bytes are needed."""
        buffer = self._buffer
        while True:
            while self._pos < len(buffer) and buffer[self._pos] in _BLANK:
                self._pos += 1
            if self._pos + 2 > len(buffer):
                return False
            if buffer.startswith(SOI, self._pos):
                self._begin_scan(self._pos)
                return True
            if buffer.startswith(b"--", self._pos):
                if not self._consume_delimiter():
                    return False
                continue
            if buffer.find(b"\n", self._pos, self._pos + MAX_HEADER_BYTES) < 0:
                if len(buffer) - self._pos <= MAX_HEADER_BYTES:
                    return False  # judge the line once it is complete
            elif _HEADER_LINE.match(buffer, self._pos):
                return self._consume_headers()
            self._reject(f"part without JPEG data: {_excerpt(buffer, self._pos)!r}")
            return True

    def _consume_delimiter(self) -> bool:
        line_end = self._buffer.find(b"\n", self._pos)
        if line_end < 0:
            if len(self._buffer) - self._pos > MAX_HEADER_BYTES:
                self._reject("delimiter line too long")
            return False
        line = bytes(self._buffer[self._pos : line_end]).strip()
        if self.boundary is None:
            token = line.lstrip(b"-")
            self.boundary = token or None
        elif line.endswith(b"--") and line.rstrip(b"-").endswith(self.boundary):
            raise MjpegError(f"stream closed by its final delimiter{self._why()}")
        self._pos = line_end + 1
        return True

    def _consume_headers(self) -> bool:
        buffer = self._buffer
        ends = [
            (index, len(separator))
            for separator in (b"\r\n\r\n", b"\n\n")
            if (index := buffer.find(separator, self._pos, self._pos + MAX_HEADER_BYTES)) >= 0
        ]
        if not ends:
            if len(buffer) - self._pos > MAX_HEADER_BYTES:
                self._reject("part headers too long")
                return True
            return False
        index, length = min(ends)
        headers = bytes(buffer[self._pos : index]).decode("latin-1")
        body = index + length
        content_type = _header(headers, "content-type")
        if content_type and not content_type.lower().startswith(("image/", "application/octet")):
            self._reject(f"{content_type} part: {_excerpt(buffer, body)!r}")
            return True
        while body < len(buffer) and buffer[body] in b"\r\n":
            body += 1  # extra blank lines before the image
        self._pos = body
        if body + 2 > len(buffer):
            return False
        self._begin_scan(body)
        return True

    def _begin_scan(self, start: int) -> None:
        if start > 0:
            del self._buffer[:start]  # keep memory bounded: earlier parts are done with
        self._pos = 0
        self._scanner = JpegScanner(0)
        self._delimiter_search_from = 0

    def _reject(self, reason: str, resume_at: int | None = None) -> None:
        """Give up on the current part and skip to the next one.

        With a boundary the search restarts just after the part's start (the
        next delimiter may sit inside a truncated part); without one it
        restarts where the walk failed, never inside the walked segments,
        where an EXIF thumbnail would pass for a frame.
        """
        self.bad_parts.append(reason)
        if len(self.bad_parts) >= MAX_BAD_PARTS:
            raise MjpegError(f"{len(self.bad_parts)} parts were not valid JPEGs{self._why()}")
        start = self._scanner.start if self._scanner is not None else self._pos
        self._scanner = None
        self._skipping = True
        if self.boundary is None and resume_at is not None:
            self._search_from = resume_at
        else:
            self._search_from = start + 1

    def _skip_to_next_part(self) -> bool:
        """Discard bytes up to the next delimiter (or SOI without a boundary); False if not yet seen."""
        buffer = self._buffer
        marker = b"--" + self.boundary if self.boundary else SOI + b"\xff"
        found = buffer.find(marker, self._search_from)
        if found < 0:
            self._search_from = max(self._search_from, len(buffer) - len(marker) + 1)
            if self._search_from > MAX_FRAME_BYTES:
                del buffer[: self._search_from]
                self._search_from = 0
            return False
        self._skipping = False
        self._pos = found
        return True


class StreamFrameReader(FirstFrameReader):
    """Every frame of a stream in order, each as soon as it is complete (the live buffer's reader).

    The same tolerant framing as the first frame; after each frame its bytes
    are dropped and the count of bad parts starts again, so a stream that
    runs for weeks is judged by its recent parts only.
    """

    def feed_all(self, chunk: bytes) -> list[JpegInfo]:
        """Add bytes; return the frames they completed (often none, sometimes several)."""
        frames = []
        frame = self.feed(chunk)
        while frame is not None:
            frames.append(frame)
            del self._buffer[: self._frame_end]
            self._pos = 0
            self._scanner = None
            self._received = len(self._buffer)
            self.bad_parts.clear()
            frame = self.feed(b"")
        return frames


def _header(headers: str, name: str) -> str | None:
    for line in headers.splitlines():
        key, separator, value = line.partition(":")
        if separator and key.strip().lower() == name:
            return value.strip()
    return None


def _excerpt(buffer: bytearray, start: int) -> str:
    text = bytes(buffer[start : start + 80]).decode("latin-1")
    return re.sub(r"[^\x20-\x7e]+", " ", text).strip()
