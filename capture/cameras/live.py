"""Stream-backed cameras: a warm stream, a buffer of its last seconds, and pictures by moment.

A camera with a `[cameras.X.live]` section is built as its vendor driver
wrapped in `LiveCamera`. One thread per such camera (`StreamWorker`) keeps
the stream open and fills a `FrameRing`; when it drops, the worker reconnects
after 1, 2, 4... s up to `reconnect_max_s`. A refused login is the exception:
the stream obeys the device's login back-off like a snapshot (the driver's
`LoginGuard`), so a wrong password costs one failed login per back-off period,
not one per reconnect, and the camera's account is not locked. The engine asks
`frame_at(moment)`: the frame whose arrival is nearest that moment, from the
buffer when the moment has passed, waited for when it is still to come.

Why a thread per camera and not the camera's worker threads: the stream
must be read continuously, also when no rule fires, or the buffer would not
hold the moment before a trigger. While the stream is down, the driver's own
snapshot request answers instead (`fallback`), and the result says so.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime

from capture.cameras import CameraState, LoginGuard, Snapshot, StreamingDriver
from capture.cameras.errors import CameraError, LockedOut
from capture.cameras.ring import FrameRing
from capture.cameras.sources import StreamSource
from capture.config.schema import LiveStream

logger = logging.getLogger(__name__)

#: A buffered frame farther than this from the moment asked is not "the frame of that moment".
MAX_GAP_S = 1.0
#: First wait before reconnecting; doubles up to `reconnect_max_s`.
FIRST_RECONNECT_S = 1.0


class StreamDown(CameraError):
    """The camera's stream holds no frame near the moment asked and fallback is off (or failed)."""


@dataclass(frozen=True, slots=True)
class StreamState:
    """What the dashboard shows about a camera's stream: is it up, and what does it cost."""

    source: str
    up: bool
    fps: float
    kbit_s: float
    buffered_s: float
    buffered_kib: int
    reconnects: int
    last_error: str | None = None
    down_since: datetime | None = None


class StreamWorker:
    """The thread that keeps one camera's stream open and its buffer filled."""

    def __init__(
        self, camera: str, source: StreamSource, live: LiveStream, guard: LoginGuard | None = None
    ) -> None:
        self.camera = camera
        self.source = source
        self.live = live
        self._guard = guard
        self.ring = FrameRing(live.buffer_s, int(live.buffer_mb * 1024 * 1024))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._up = False
        self._reconnects = 0
        self._last_error: str | None = None
        self._down_since: datetime | None = None
        #: Set once the first connection delivered a frame or failed: until then a
        #: picture waits for it rather than falling back at once (`capture snap`).
        self.first_attempt = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"capture-stream-{camera}", daemon=True
        )

    def start(self) -> None:
        """Open the stream in the background; frames arrive in `ring`."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the stream and wait for the thread (it notices within one frame or read timeout)."""
        self._stop.set()
        self.source.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def up(self) -> bool:
        """True while a connection is delivering frames."""
        return self._up

    def state(self) -> StreamState:
        """The stream's health and cost, measured over what the buffer holds."""
        ring = self.ring
        span = ring.span_s()
        frames = len(ring)
        with self._lock:
            return StreamState(
                source=self.source.source,
                up=self._up,
                fps=round((frames - 1) / span, 1) if span > 0 else 0.0,
                kbit_s=round(ring.size_bytes * 8 / 1000 / span, 1) if span > 0 else 0.0,
                buffered_s=round(span, 1),
                buffered_kib=ring.size_bytes // 1024,
                reconnects=self._reconnects,
                last_error=self._last_error,
                down_since=self._down_since,
            )

    def _run(self) -> None:
        wait = FIRST_RECONNECT_S
        while not self._stop.is_set():
            held = self._login_held()
            if held is not None:  # no login tried: wait the back-off out
                self._mark_down(str(held), held.retry_after_s or wait)
                if self._stop.wait(max(held.retry_after_s or 0.0, wait)):
                    break
                continue
            try:
                self.ring.new_connection()
                for frame in self.source.frames(self._stop):
                    self.ring.add(frame)
                    if not self._up:
                        self._mark_up()
                        wait = FIRST_RECONNECT_S
                reason = "the stream ended"
            except CameraError as exc:
                reason = str(exc)
                if self._guard is not None:
                    self._guard.login_refused(exc)  # a refused login starts the back-off
            except Exception as exc:  # a bug must not end the stream for good
                logger.exception("camera=%s event=stream_failed", self.camera)
                reason = f"{type(exc).__name__}: {exc}"
            if self._stop.is_set():
                break
            self._mark_down(reason, wait)
            if self._stop.wait(wait):
                break
            wait = min(wait * 2, self.live.reconnect_max_s)
            with self._lock:
                self._reconnects += 1
        self._up = False

    def _login_held(self) -> LockedOut | None:
        """The device's login back-off holding this stream's next connection, if any."""
        if self._guard is None:
            return None
        try:
            self._guard.check_login()
        except LockedOut as held:
            return held
        return None

    def _mark_up(self) -> None:
        if self._guard is not None:
            self._guard.login_accepted()
        with self._lock:
            self._up = True
            self._down_since = None
        self.first_attempt.set()
        logger.info(
            "camera=%s event=stream_up source=%s reconnects=%d",
            self.camera,
            self.source.source,
            self._reconnects,
        )

    def _mark_down(self, reason: str, retry_s: float) -> None:
        with self._lock:
            was_up = self._up
            self._up = False
            self._last_error = reason
            if self._down_since is None:
                self._down_since = datetime.now().astimezone()
        self.first_attempt.set()
        if was_up or self._reconnects == 0:
            logger.warning(
                "camera=%s event=stream_down retry_s=%.0f error=%s", self.camera, retry_s, reason
            )


class LiveCamera:
    """A vendor driver with a warm stream: `frame_at` a moment, `snapshot` for now."""

    def __init__(self, driver: StreamingDriver, source: StreamSource) -> None:
        live = driver.config.live
        if live is None:
            raise ValueError(f"camera {driver.name}: no [cameras.{driver.name}.live] section")
        self.name = driver.name
        self.config = driver.config
        self.driver = driver
        self.worker = StreamWorker(driver.name, source, live, guard=driver)
        self.worker.start()

    def snapshot(self) -> Snapshot:
        """The frame nearest now (the dashboard's snap, a rule without offsets)."""
        return self.frame_at(time.monotonic())

    def frame_at(self, moment: float) -> Snapshot:
        """The frame that arrived nearest `moment` (monotonic); waits while it is still to come.

        With no frame within `MAX_GAP_S` of the moment (the stream is down,
        or was when the moment passed), the driver's snapshot answers if
        `fallback` is on, marked `via = "fallback"`; else `StreamDown`.
        """
        started = time.monotonic()
        if not self.worker.first_attempt.is_set():  # just built: let the stream connect first
            self.worker.first_attempt.wait(self.config.connect_timeout_s + self.config.timeout_s)
        wait = moment - started + MAX_GAP_S if self.worker.up else 0.0
        frames = self.worker.ring.nearest(moment, max(wait, 0.0))
        if frames is None or abs(frames[-1].arrived - moment) > MAX_GAP_S:
            return self._fallback()
        if not self.worker.up and moment - frames[-1].arrived > 1.5 * self.worker.ring.interval_s():
            return self._fallback()  # the last frame before the drop is not the moment's
        jpeg = self.worker.source.to_jpeg(frames)
        frame = frames[-1]
        return Snapshot(
            camera=self.name,
            jpeg=jpeg.data,
            width=jpeg.width,
            height=jpeg.height,
            received_wall=frame.arrived_wall,
            received_monotonic=frame.arrived,
            latency_ms=(time.monotonic() - started) * 1000,
            stale=False,
            source=self.worker.source.source,
            via="stream",
        )

    def _fallback(self) -> Snapshot:
        state = self.worker.state()
        why = state.last_error or "no frame yet"
        if not self.worker.live.fallback:
            raise StreamDown(
                self.name,
                f"no stream frame within {MAX_GAP_S:g} s of the moment asked (stream "
                f"{state.source}: {why}); fallback is off",
            )
        snapshot = self.driver.snapshot()
        return replace(snapshot, via="fallback")

    def state(self) -> CameraState:
        """The driver's health, with the stream's."""
        return replace(self.driver.state(), stream=self.worker.state())

    def close(self) -> None:
        """Stop the stream, then the driver."""
        self.worker.stop()
        self.driver.close()

    def __repr__(self) -> str:
        return f"LiveCamera({self.name!r}, source={self.worker.source.source!r})"
