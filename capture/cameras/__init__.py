"""Cameras: one `Camera` protocol, one registry of vendor drivers, and the `Snapshot` they return.

The engine never knows a vendor: it asks `build_camera(name, config)` for a
camera and calls `snapshot()`, which returns a `Snapshot` or raises a typed
`CameraError` (capture.cameras.errors). Adding a vendor is one module with
its driver class, an entry in `CAMERA_DRIVERS`, a config model in the
`CameraConfig` union, its tests and a section in docs/cameras.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from capture.registry import Registry

if TYPE_CHECKING:
    from capture.cameras.errors import CameraError
    from capture.cameras.live import StreamState
    from capture.cameras.logins import SharedLogins
    from capture.cameras.sources import StreamSource
    from capture.config.schema import CameraConfig

#: Vendor (the config's `vendor`) -> its driver class; a driver's module is imported when built.
CAMERA_DRIVERS: Registry[type] = Registry(
    "camera vendor",
    {
        "dahua": "capture.cameras.dahua:DahuaCamera",
        "edimax": "capture.cameras.edimax:EdimaxCamera",
        "generic": "capture.cameras.generic:GenericCamera",
        "hikvision": "capture.cameras.hikvision:HikvisionCamera",
        "mjpeg": "capture.cameras.mjpeg:MjpegCamera",
        "onvif": "capture.cameras.onvif:OnvifCamera",
        "xrc": "capture.cameras.xrc:XrcCamera",
    },
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One image from one camera, proven to be a complete JPEG.

    `received_wall` (aware, UTC) and `received_monotonic` mark when the last
    byte arrived; `latency_ms` is the time from the request leaving to that
    moment (waiting for a free slot excluded). `stale` means the image is
    byte-identical to this camera's previous one (a frozen device). `source`
    is the redacted URL that produced it. `image_time` is the device's own
    timestamp when it gives one: aware when the device names a zone (HTTP
    Last-Modified), naive device-local time otherwise (an XRC file name).
    `via` says how it was taken: "snapshot" (a request), "stream" (from a
    stream-backed camera's buffer, `received_*` being the frame's arrival) or
    "fallback" (a request because the camera's stream was down).
    """

    camera: str
    jpeg: bytes
    width: int
    height: int
    received_wall: datetime
    received_monotonic: float
    latency_ms: float
    stale: bool
    source: str
    device_filename: str | None = None
    image_time: datetime | None = None
    via: str = "snapshot"

    def __repr__(self) -> str:
        return (
            f"Snapshot(camera={self.camera!r}, {len(self.jpeg)} bytes, "
            f"{self.width}x{self.height}, latency_ms={self.latency_ms:.1f}, stale={self.stale})"
        )


@dataclass(frozen=True, slots=True)
class CameraState:
    """What the dashboard and `capture cameras` show about a camera between snapshots.

    `ok` is None before the first attempt. `locked_out_for_s` is set while the
    camera is backed off after rejected credentials (or a device lockout): no
    request reaches the device until it runs out. `auth_scheme` is the
    configured scheme or the one `auto` learned; `note` records driver
    decisions worth knowing, such as a Hikvision NVR served via StreamingProxy.
    `stream` is set for a stream-backed camera: is the stream up, what it costs.
    """

    name: str
    vendor: str
    ok: bool | None = None
    last_error_kind: str | None = None
    last_error: str | None = None
    last_error_wall: datetime | None = None
    last_success_wall: datetime | None = None
    last_latency_ms: float | None = None
    consecutive_failures: int = 0
    locked_out_for_s: float | None = None
    auth_scheme: str | None = None
    note: str | None = None
    stream: StreamState | None = None


@runtime_checkable
class Camera(Protocol):
    """A configured camera the engine can photograph from any thread."""

    name: str
    config: CameraConfig

    def snapshot(self) -> Snapshot:
        """Take one picture now, within `config.deadline_s`; raise `CameraError` on failure.

        Thread-safe; at most `config.max_concurrent` requests reach the device
        at once, further callers wait for a slot within their deadline.
        """
        ...

    def state(self) -> CameraState:
        """The camera's health: last error, back-off, learned auth scheme."""
        ...

    def close(self) -> None:
        """Release connections; the camera is not used afterwards."""
        ...


class LoginGuard(Protocol):
    """The device's login back-off, for a camera's stream as for its snapshots.

    Cameras lock an account after a few failed logins, so a stream that
    reconnects with a refused password must stop when a snapshot would, and a
    refusal it meets must hold back the device's snapshots and other channels.
    """

    def check_login(self) -> None:
        """Raise `LockedOut` (no login tried) while the back-off holds these credentials."""
        ...

    def login_refused(self, error: CameraError) -> None:
        """A login was refused (or the device locked): the back-off starts, shared as usual;
        any other error is ignored."""
        ...

    def login_accepted(self) -> None:
        """A login succeeded: a back-off these credentials had is over."""
        ...


@runtime_checkable
class StreamingDriver(Camera, LoginGuard, Protocol):
    """A driver that can say where its live stream comes from (every HttpCamera can).

    `LiveCamera` wraps such a driver when its section has `[cameras.X.live]`.
    A driver whose stream address is learnt from the device (ONVIF's
    GetStreamUri) overrides `HttpCamera.stream_url`, or, not being an
    HttpCamera, returns `capture.cameras.rtsp.RtspSource(name, config, url)`
    here with its own `url` callable. Its stream obeys its `LoginGuard`.
    """

    def stream_source(self) -> StreamSource:
        """The source of this camera's stream (capture.cameras.sources)."""
        ...


@runtime_checkable
class BufferedCamera(Camera, Protocol):
    """A camera that keeps a warm stream: it can give the frame of a past or coming moment."""

    def frame_at(self, moment: float) -> Snapshot:
        """The frame that arrived nearest `moment` (time.monotonic); see capture.cameras.live."""
        ...


def build_camera(name: str, config: CameraConfig, *, logins: SharedLogins | None = None) -> Camera:
    """The driver instance for a configured camera (one long-lived HTTP client inside).

    `logins` is the login back-off shared with other processes of the same
    storage root (capture.cameras.logins.shared_logins); without it the
    back-off stays in this process.
    """
    try:
        driver = CAMERA_DRIVERS.load(config.vendor)
    except KeyError as exc:
        raise ValueError(f"camera {name}: {exc.args[0]}") from None
    camera: Camera = driver(name, config) if logins is None else driver(name, config, logins=logins)
    if config.live is None:
        return camera
    from capture.cameras.live import LiveCamera  # noqa: PLC0415 - only stream-backed cameras need it

    try:
        if not isinstance(camera, StreamingDriver):
            raise ValueError(f"camera {name}: vendor {config.vendor} cannot keep a stream")
        return LiveCamera(camera, camera.stream_source())
    except BaseException:
        camera.close()
        raise
