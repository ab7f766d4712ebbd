"""One simulated device's request pipeline: faults, authentication, lockout, then its vendor.

The order is the one real cameras follow: a dropped or delayed connection
happens before anything else, a locked account answers before credentials
are looked at, and only an authenticated request reaches the vendor's routes.
Image bodies pass through one place (`image`) so every content fault applies
to every vendor alike.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import replace

from capture.simulator.auth import Authenticator, Credentials, Outcome
from capture.simulator.camera import SimulatedCamera
from capture.simulator.faults import Faults
from capture.simulator.images import FrameSource
from capture.simulator.mjpeg import mjpeg_writer
from capture.simulator.protocol import DROP, Answer, Html, Reply, Request, StreamReply
from capture.simulator.vendors import personality_for

logger = logging.getLogger(__name__)

HTML_ERROR_PAGE = Html(
    "Document Error: Service Unavailable",
    "The video service is not ready. Please try again later.",
).render()
"""What the html_200 fault serves where a JPEG should be."""


class Device:
    """A simulated camera's state and its request handling."""

    def __init__(self, camera: SimulatedCamera, stopping: threading.Event) -> None:
        self.camera = camera
        self.stopping = stopping
        self.faults = Faults()
        self.frames = FrameSource(camera.name, camera.line)
        self.personality = personality_for(self)
        self.auth = Authenticator(
            camera, self.personality.challenge_style(), self.personality.query_params
        )
        self._lock = threading.Lock()
        self._requests = 0
        self._bad_logins = 0
        self._bad_since_reset = 0
        self._locked = False
        self._frozen: dict[tuple[int, int, int], bytes] = {}
        self._in_flight = 0
        self._peak_in_flight = 0

    # ------------------------------------------------------------------ counters

    @property
    def request_count(self) -> int:
        """HTTP requests received, whatever their answer."""
        return self._requests

    @property
    def bad_login_count(self) -> int:
        """Requests rejected for wrong credentials (replayed nc and wrong scheme included)."""
        return self._bad_logins

    @property
    def peak_in_flight(self) -> int:
        """The most requests this device was handling at the same moment."""
        return self._peak_in_flight

    def request_started(self) -> None:
        """A request arrived (the server calls this before `handle`)."""
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def request_finished(self) -> None:
        """The answer to a request is complete and about to be sent (a stream: has ended)."""
        with self._lock:
            self._in_flight -= 1

    @property
    def locked(self) -> bool:
        """Whether the lockout fault has locked the account."""
        return self._locked

    def reset(self) -> None:
        """Faults off, account unlocked, frozen picture forgotten, peak in flight restarted.

        The request and bad-login counters are kept.
        """
        self.faults.reset()
        with self._lock:
            self._locked = False
            self._bad_since_reset = 0
            self._frozen.clear()
            self._peak_in_flight = self._in_flight

    # ------------------------------------------------------------------ pipeline

    def handle(self, request: Request) -> Answer:
        """The device's answer to one request."""
        with self._lock:
            self._requests += 1
        faults = self.faults.snapshot()
        answer = self._answer(request, faults)
        if faults.sloppy_headers and isinstance(answer, Reply):
            # A GoAhead-style server writes its malformed lines on every answer, 401s too.
            return replace(answer, sloppy_headers=True)
        return answer

    def _answer(self, request: Request, faults: Faults) -> Answer:
        early = self._before_auth(request, faults)
        if early is not None:
            return early
        personality = self.personality
        outcome = Outcome.OK if personality.accepts_token(request) else self._authenticate(request)
        if outcome is Outcome.OK:
            return personality.route(request, faults)
        if outcome is Outcome.MALFORMED:
            return personality.bad_request(request)
        if outcome is Outcome.BAD:
            logger.info("bad login camera=%s path=%s", self.camera.name, request.path)
            if self._count_bad_login(faults):
                logger.warning("account locked camera=%s", self.camera.name)
                return personality.locked(request, self.auth.challenges())
        return personality.unauthorized(
            request, self.auth.challenges(stale=outcome is Outcome.STALE)
        )

    def _before_auth(self, request: Request, faults: Faults) -> Answer | None:
        """Answers that come before credentials are looked at: faults and a locked account."""
        if faults.drop_connection:
            return DROP
        if faults.latency_s > 0 and self.stopping.wait(faults.latency_s):
            return DROP
        if self._locked:
            return self.personality.locked(request, self.auth.challenges())
        if faults.always_401:
            return self.personality.unauthorized(request, self.auth.challenges())
        return None

    def _authenticate(self, request: Request) -> Outcome:
        return self.auth.check(
            Credentials(
                authorization=request.headers.get("authorization"),
                query=request.query,
                method=request.method,
                target=request.target,
            )
        )

    def _count_bad_login(self, faults: Faults) -> bool:
        """Record a bad login; True when it locks the account."""
        with self._lock:
            self._bad_logins += 1
            self._bad_since_reset += 1
            if faults.lockout_after is not None and self._bad_since_reset >= faults.lockout_after:
                self._locked = True
            return self._locked

    # ------------------------------------------------------------------ bodies

    def image(
        self,
        faults: Faults,
        channel: int,
        width: int,
        height: int,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Reply:
        """A JPEG answer with the content faults applied."""
        extra = tuple(headers)
        if faults.html_200:
            return Reply(200, HTML_ERROR_PAGE, "text/html")
        if faults.empty_body:
            return Reply(200, b"", "image/jpeg", extra)
        jpeg = self.jpeg(faults, channel, width, height)
        if faults.truncated:
            return Reply(200, jpeg[: len(jpeg) // 2], "image/jpeg", extra)
        if faults.short_body:
            return Reply(
                200, jpeg[: len(jpeg) // 2], "image/jpeg", extra, declared_length=len(jpeg)
            )
        return Reply(200, jpeg, "image/jpeg", extra)

    def jpeg(self, faults: Faults, channel: int, width: int, height: int) -> bytes:
        """Fresh unique bytes, or the same bytes again while the freeze fault is on."""
        key = (channel, width, height)
        if not faults.freeze:
            if self._frozen:
                with self._lock:
                    self._frozen.clear()
            return self.frames.jpeg(channel, width, height)
        with self._lock:
            frozen = self._frozen.get(key)
            if frozen is None:
                frozen = self._frozen[key] = self.frames.jpeg(channel, width, height)
            return frozen

    def stream(
        self,
        faults: Faults,
        channel: int,
        width: int,
        height: int,
        headers: Iterable[tuple[str, str]] = (),
    ) -> StreamReply:
        """An MJPEG stream of this device's pictures with the stream faults applied."""

        def next_frame() -> bytes:
            return self.jpeg(self.faults.snapshot(), channel, width, height)

        return StreamReply(
            mjpeg_writer(
                next_frame,
                faults,
                fps=self.camera.fps,
                server=self.personality.server_header,
                headers=tuple(headers),
            )
        )
