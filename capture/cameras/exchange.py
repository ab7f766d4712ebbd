"""The budget and progress of one HTTP exchange with a camera, and the typed transport failures.

Parsers (h11 under httpx, http.client in the lenient fallback) read from the
socket as long as the device keeps sending. They bound each `recv`, not the
whole answer, so a device that dribbles its head one byte at a time, floods
`100 Continue` or never ends its headers could hold a capture thread for ever.
The guard therefore sits *below* the parser, at the socket: every read and
write of an exchange is cut to what is left of the snapshot's deadline, and
the bytes of the answer's head are counted against a cap. The parser never
knows; it just sees a timeout or a refused read.

Because the exchange also knows where the device stopped (before answering,
inside the head, inside the body), a failure is classified by *state*, here,
once, into a typed exception (`Dropped`, `Truncated`, `HeadTooLarge`,
`Malformed`, `DeadlinePassed`), instead of by searching a library's message
text, which changes between releases.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from enum import Enum
from typing import Any

import httpx


class Deadline:
    """The overall time budget of one snapshot, shared by every request it makes."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._started = clock()
        self._expires = self._started + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._expires - self._clock())

    def elapsed(self) -> float:
        """Seconds since the snapshot began (for messages: the real time a failure took)."""
        return self._clock() - self._started

    @property
    def expired(self) -> bool:
        """True once the budget is spent."""
        return self._clock() >= self._expires

    def timeout(self, connect_s: float, read_s: float) -> httpx.Timeout:
        """Per-request timeouts: the configured ones, cut to what is left of the deadline."""
        left = max(self.remaining(), 0.001)
        return httpx.Timeout(
            connect=min(connect_s, left),
            read=min(read_s, left),
            write=min(read_s, left),
            pool=left,
        )


#: Bytes of an answer's head kept for a look after the parser refused it.
HEAD_SAMPLE_BYTES = 8 * 1024


class Phase(Enum):
    """Where an exchange is: what the device owes us next."""

    SEND = "sending the request"
    HEAD = "reading the status line and headers"
    BODY = "reading the body"


# --------------------------------------------------------------------------- typed failures


class DeadlinePassed(httpx.ReadTimeout):
    """The snapshot's deadline passed while the device was still sending (or silent)."""


class Dropped(httpx.RemoteProtocolError):
    """The device closed the connection before the first byte of an answer."""


class CutInHead(httpx.RemoteProtocolError):
    """The device closed the connection in the middle of the answer's head."""


class Truncated(httpx.RemoteProtocolError):
    """The device closed the connection before the body was complete."""


class HeadTooLarge(httpx.RemoteProtocolError):
    """The status line and headers (1xx answers included) went past `max_header_kb`."""


class Malformed(httpx.RemoteProtocolError):
    """The parser refused the answer: not HTTP, a broken header line, a bad chunk size..."""

    def __init__(
        self, message: str, *, in_head: bool, request: httpx.Request | None = None
    ) -> None:
        super().__init__(message, request=request)
        self.in_head = in_head


class Exchange:
    """One request and its answer: the deadline, the head's byte budget, and progress so far.

    Also the httpcore trace hook of its request (`exchange(event, info)`), which
    is how it learns when the head starts and ends and whether the request
    went out on a reused keep-alive connection. Requests of one snapshot's
    auth handshake share one exchange; each send starts its progress anew.
    """

    __slots__ = (
        "_connected",
        "closed_in",
        "deadline",
        "head_bytes",
        "head_sample",
        "head_too_large",
        "max_head_bytes",
        "phase",
        "reused",
    )

    def __init__(self, deadline: Deadline, max_head_bytes: int) -> None:
        self.deadline = deadline
        self.max_head_bytes = max_head_bytes
        self.phase = Phase.SEND
        self.head_bytes = 0
        self.head_sample = b""
        self.head_too_large = False
        self.closed_in: Phase | None = None
        self.reused = False
        self._connected = False

    # ------------------------------------------------------------------ progress

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook."""
        if event == "connection.connect_tcp.started":
            self._connected = True
        elif event == "http11.send_request_headers.started":
            self.request_sent(reused=not self._connected)
            self._connected = False
        elif event == "http11.receive_response_headers.started":
            self.phase = Phase.HEAD
        elif event == "http11.receive_response_headers.complete":
            self.phase = Phase.BODY

    def request_sent(self, *, reused: bool) -> None:
        """A request (first, or a resend of the handshake) goes out: progress starts over."""
        self.reused = reused
        self.phase = Phase.SEND
        self.head_bytes = 0
        self.head_sample = b""
        self.head_too_large = False
        self.closed_in = None

    def received(self, data: bytes | memoryview) -> None:
        """Account for one read off the socket (empty: the device closed the connection).

        The first bytes of the head are kept (`head_sample`, at most
        `HEAD_SAMPLE_BYTES`) so that a refused head can be looked at: the
        lenient fallback is only for the header-line quirks real cameras have.
        """
        if not data:
            self.closed_in = self.phase
        elif self.phase is not Phase.BODY:
            if self.head_bytes < HEAD_SAMPLE_BYTES:
                self.head_sample += bytes(data[: HEAD_SAMPLE_BYTES - self.head_bytes])
            self.head_bytes += len(data)

    # ------------------------------------------------------------------ the guard

    def read_timeout(self, timeout: float | None) -> float:
        """The timeout of the next read: the parser's, cut to the deadline; refuse a read past it.

        A read asked for while the head is still incomplete after
        `max_head_bytes` means the head is larger than allowed (a parser asks
        for more only while it has no complete head).
        """
        left = self._left()
        if self.phase is not Phase.BODY and self.head_bytes >= self.max_head_bytes:
            self.head_too_large = True
            raise HeadTooLarge(f"answer head larger than {self.max_head_bytes // 1024} KiB")
        return left if timeout is None else min(timeout, left)

    def write_timeout(self, timeout: float | None) -> float:
        """The timeout of the next write (or connect), cut to the deadline."""
        left = self._left()
        return left if timeout is None else min(timeout, left)

    def _left(self) -> float:
        left = self.deadline.remaining()
        if left <= 0:
            raise self.deadline_passed(None)
        return left

    def deadline_passed(self, request: httpx.Request | None) -> DeadlinePassed:
        """The failure of an exchange still unfinished when the deadline passed."""
        return DeadlinePassed(
            f"deadline passed after {self.deadline.elapsed():.2f} s while {self.phase.value}",
            request=request,
        )

    # ------------------------------------------------------------------ classification

    def classify(  # noqa: PLR0911 - one return per kind of failure
        self, exc: Exception, request: httpx.Request | None
    ) -> Exception:
        """The typed failure for `exc`, raised by a parser or socket during this exchange.

        Decided by where the exchange stood, not by the exception's text;
        anything that is not a read/protocol failure is returned unchanged.
        """
        if isinstance(
            exc, DeadlinePassed | Dropped | CutInHead | Truncated | HeadTooLarge | Malformed
        ):
            return exc
        if isinstance(exc, httpx.TimeoutException | TimeoutError) and self.deadline.expired:
            return self.deadline_passed(request)
        if not isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | OSError):
            return exc
        if self.head_too_large:
            return HeadTooLarge(
                f"answer head larger than {self.max_head_bytes // 1024} KiB", request=request
            )
        closed_in = self.closed_in
        if closed_in is None and isinstance(exc, httpx.ReadError | OSError):
            closed_in = self.phase  # reset by the device where the exchange stood
        if closed_in is Phase.BODY:
            return Truncated("connection closed before the body was complete", request=request)
        if closed_in is not None:
            if self.head_bytes == 0:
                return Dropped("connection closed before any answer", request=request)
            return CutInHead(
                "connection closed in the middle of the answer's head", request=request
            )
        in_head = self.phase is not Phase.BODY
        return Malformed(str(exc) or type(exc).__name__, in_head=in_head, request=request)


# --------------------------------------------------------------------------- the current one

_CURRENT: ContextVar[Exchange | None] = ContextVar("capture_camera_exchange", default=None)


def current() -> Exchange | None:
    """The exchange this thread is in, if any (the socket guards look it up per read)."""
    return _CURRENT.get()


@contextlib.contextmanager
def active(exchange: Exchange) -> Iterator[Exchange]:
    """Make `exchange` the current one while a request is sent and its answer read."""
    token = _CURRENT.set(exchange)
    try:
        yield exchange
    finally:
        _CURRENT.reset(token)
