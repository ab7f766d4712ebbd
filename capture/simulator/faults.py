"""Faults a simulated camera can be told to show, switched on and off while it serves.

Tests and the demo flip these from another thread while requests are in
flight, so every change goes through one lock and each request works from a
consistent copy taken when it arrives.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any

MJPEG_QUIRKS: tuple[str, ...] = (
    "boundary_dashes",
    "no_first_delimiter",
    "no_part_length",
    "wrong_part_length",
    "lf_only",
    "chunked",
    "no_content_type",
)
"""Framing deviations of real MJPEG cameras the stream writer can reproduce."""


@dataclass
class Faults:
    """Per-camera fault switches; all off by default.

    Set attributes directly (`sim.faults("cam").truncated = True`) or several
    at once with `update(...)`; each request sees the values current when it
    arrived. Unknown names raise `AttributeError`, so a typo cannot silently
    test nothing.
    """

    latency_s: float = 0.0
    """Extra delay before every answer."""
    always_401: bool = False
    """Answer every request 401 with a fresh challenge, whatever the credentials."""
    lockout_after: int | None = None
    """Lock the account after this many bad logins; locked answers as the vendor does."""
    html_200: bool = False
    """Answer image requests 200 with an HTML error page."""
    truncated: bool = False
    """Send only the first half of the JPEG (Content-Length matches the half)."""
    short_body: bool = False
    """Announce the full Content-Length, send half, close the connection."""
    empty_body: bool = False
    """Answer image requests 200 image/jpeg with an empty body."""
    drop_connection: bool = False
    """Close the socket without any response."""
    sloppy_headers: bool = False
    """Add GoAhead-style header lines h11 refuses (one without a colon, one with a space
    before it) to every answer, as cheap cameras do; the client must fall back to its
    lenient parser for this device."""
    stall_stream: bool = False
    """MJPEG: send the response headers, then nothing."""
    freeze: bool = False
    """Serve the same bytes every time (a camera stuck on a cached picture)."""
    hikvision_nvr_proxy_only: bool = False
    """Hikvision: Streaming path answers 400 badXmlContent; StreamingProxy works."""
    dahua_error_body: bool = False
    """Dahua: 200 with body 'Error'."""
    dahua_403: bool = False
    """Dahua: 403 'Authority:check failure.'."""
    xrc_too_many_viewers: bool = False
    """XRC: request_av.cgi answers result -2."""
    boundary_dashes: bool = False
    """MJPEG: boundary declared with leading '--' and written verbatim."""
    no_first_delimiter: bool = False
    """MJPEG: the first part is not preceded by a delimiter."""
    no_part_length: bool = False
    """MJPEG: parts carry no Content-Length."""
    wrong_part_length: bool = False
    """MJPEG: parts announce 48 bytes fewer than they carry."""
    lf_only: bool = False
    """MJPEG: LF instead of CRLF in the response head and part framing."""
    chunked: bool = False
    """MJPEG: Transfer-Encoding: chunked around the multipart body."""
    no_content_type: bool = False
    """MJPEG: no Content-Type header on the response."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "_lock" and name not in _FIELD_NAMES:
            raise AttributeError(
                f"unknown fault {name!r}; known: {', '.join(sorted(_FIELD_NAMES))}"
            )
        lock = self.__dict__.get("_lock")
        if lock is None:
            object.__setattr__(self, name, value)
            return
        with lock:
            object.__setattr__(self, name, value)

    def update(self, **changes: Any) -> None:
        """Change several faults atomically."""
        unknown = set(changes) - _FIELD_NAMES
        if unknown:
            raise AttributeError(f"unknown fault(s) {', '.join(sorted(unknown))}")
        with self._lock:
            for name, value in changes.items():
                object.__setattr__(self, name, value)

    def reset(self) -> None:
        """Switch every fault off."""
        self.update(**{name: _DEFAULTS[name] for name in _FIELD_NAMES})

    def snapshot(self) -> Faults:
        """A consistent copy for one request."""
        copy = object.__new__(Faults)
        with self._lock:
            copy.__dict__.update(self.__dict__)  # per request: avoid dataclass replace's cost
        copy.__dict__["_lock"] = threading.Lock()
        return copy

    def active(self) -> dict[str, Any]:
        """The faults that are on, by name (for logs and the CLI)."""
        current = self.snapshot()
        return {
            name: getattr(current, name)
            for name in sorted(_FIELD_NAMES)
            if getattr(current, name) != _DEFAULTS[name]
        }


_FIELD_NAMES = frozenset(f.name for f in fields(Faults) if f.name != "_lock")
_DEFAULTS = {f.name: f.default for f in fields(Faults) if f.name != "_lock"}
