"""The plain data passed between the HTTP server and the vendor personalities.

Vendors decide *what* to answer and return one of these; only the server
writes bytes to sockets, so framing lives in one place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from io import BufferedIOBase


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request as a camera sees it."""

    method: str
    target: str
    """The request target exactly as sent (path and query, still percent-encoded)."""
    path: str
    """The decoded path without the query."""
    query: Mapping[str, str]
    """Decoded query parameters, first value of each."""
    headers: Mapping[str, str]
    """Header values by lower-cased name."""


@dataclass(frozen=True)
class Reply:
    """A complete response with a body."""

    status: int
    body: bytes = b""
    content_type: str | None = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    """Close the connection after this response."""
    declared_length: int | None = None
    """Announce this Content-Length instead of the body's (the short-body fault); implies close."""
    sloppy_headers: bool = False
    """Write the GoAhead-style malformed header lines too (the sloppy_headers fault)."""


class StreamControl:
    """Lets a stream writer pause between frames and learn when to give up."""

    def __init__(self, stopping: threading.Event, peer_closed: Callable[[], bool]) -> None:
        self._stopping = stopping
        self._peer_closed = peer_closed

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the stream must end (simulator stopping or client gone)."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if self._stopping.wait(max(0.0, min(remaining, 0.2))):
                return True
            if self._peer_closed():
                return True
            if remaining <= 0.2:
                return False


StreamWriter = Callable[[BufferedIOBase, StreamControl], None]
"""Writes a whole streaming response (status line included) until done or told to stop."""


@dataclass(frozen=True)
class StreamReply:
    """A response the vendor writes itself, byte for byte (MJPEG); the connection closes after."""

    write: StreamWriter


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering."""


DROP = Drop()

Answer = Reply | StreamReply | Drop


@dataclass(frozen=True)
class Html:
    """Small helpers for the HTML pages cameras answer errors with."""

    title: str
    message: str = field(default="")

    def render(self) -> bytes:
        """The page as bytes."""
        return (
            "<!DOCTYPE html>\n<html><head><title>"
            f"{self.title}</title></head>\n<body><h2>{self.title}</h2>\n"
            f"<p>{self.message}</p>\n</body>\n</html>\n"
        ).encode()
