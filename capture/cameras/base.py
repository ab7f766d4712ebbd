"""What every HTTP camera driver shares: slots, deadline, lockout back-off, stale detection, state.

A vendor driver only says how to fetch one frame (`_fetch`); this base turns
that into the `Camera` protocol: at most `max_concurrent` requests in flight
at the device (shared with the device's other sections, capture.cameras.device),
an overall deadline, no contact with the device while backed off after
rejected credentials (in this process, and across processes through the
storage root's shared back-off, capture.cameras.logins), frozen-image detection, and a `CameraState` for the
dashboard.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, ClassVar, TypedDict

from capture.cameras import CameraState, Snapshot
from capture.cameras.auth import CameraAuth, Credentials
from capture.cameras.device import DEVICES, DeviceRegistry, secret_material
from capture.cameras.errors import AuthFailed, CameraError, InvalidImage, LockedOut, Timeout
from capture.cameras.exchange import Deadline
from capture.cameras.http import CameraHttp, Reply
from capture.cameras.jpeg import JpegInfo
from capture.cameras.logins import Hold, SharedLogins
from capture.cameras.sources import StreamSource, UrlSource
from capture.config.schema import CameraBase

if TYPE_CHECKING:
    pass  # typing.Unpack for **kwargs is Python 3.12+

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Frame:
    """What a driver fetched: the JPEG and where it came from."""

    jpeg: JpegInfo
    source: str
    device_filename: str | None = None
    image_time: datetime | None = None


def frame_from_reply(jpeg: JpegInfo, reply: Reply) -> Frame:
    """A frame with the file name (Content-Disposition) and time (Last-Modified) the device gave."""
    return Frame(
        jpeg=jpeg,
        source=reply.source,
        device_filename=content_disposition_filename(reply.headers.get("content-disposition")),
        image_time=_last_modified(reply.headers.get("last-modified")),
    )


def content_disposition_filename(value: str | None) -> str | None:
    """`attachment; filename="snapshot_20110708163405.jpg"` -> the bare file name."""
    if not value:
        return None
    message = Message()
    message["content-disposition"] = value
    name = message.get_filename()
    if not name:
        return None
    return name.replace("\\", "/").rsplit("/", 1)[-1] or None


def _last_modified(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


class CameraOptions(TypedDict, total=False):
    """What a driver passes on to HttpCamera unchanged: shared state, for tests a clock."""

    clock: Clock
    devices: DeviceRegistry
    logins: SharedLogins | None


class HttpCamera:
    """Base of the HTTP drivers; subclasses implement `_fetch` and set `vendor`."""

    vendor: ClassVar[str]
    #: Query parameters this driver may put secrets in, masked wherever URLs are shown.
    secret_params: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        name: str,
        config: CameraBase,
        *,
        clock: Clock = time.monotonic,
        devices: DeviceRegistry = DEVICES,
        logins: SharedLogins | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        # Slots, back-off and learned auth belong to the device, shared with its other sections;
        # `logins` shares the back-off with the other processes of the same storage root.
        self._device = devices.attach(name, config, clock, logins)
        try:
            self.http = CameraHttp(
                name,
                config,
                self._build_auth(),
                secret_params=self._secret_params(),
                lenient=self._device.device.lenient,
            )
        except BaseException:
            self._device.release()
            raise
        self._slots = self._device.slots
        self._backoff = self._device.backoff
        self._lock = threading.Lock()
        self._previous_digest: bytes | None = None
        self._state = CameraState(name=name, vendor=self.vendor)
        self.note: str | None = None

    # ------------------------------------------------------------------ for drivers

    def _build_auth(self) -> CameraAuth:
        """The auth of this camera; query-string vendors override `_query_credentials`."""
        mode = self.config.effective_auth
        credentials = credentials_of(self.config)
        query = self._query_credentials() if mode == "query" else None
        return CameraAuth(
            self.name,
            mode,
            credentials,
            query,
            memory=self._device.auth,
            fingerprint=self._device.fingerprint,
        )

    def _query_credentials(self) -> dict[str, str]:
        """Query parameters carrying the credentials when auth = 'query'."""
        credentials = credentials_of(self.config)
        if credentials is None:
            return {}
        return {"user": credentials.user, "password": credentials.password}

    def _secret_params(self) -> tuple[str, ...]:
        return self.secret_params

    def _fetch(self, deadline: Deadline) -> Frame:
        """Fetch one frame; raise `CameraError`. Implemented by each driver."""
        raise NotImplementedError

    # ------------------------------------------------------------------ streams

    def stream_url(self) -> str | None:
        """The stream to keep warm when `live.url` is not given; None: the driver has none.

        Drivers whose config sets `own_stream` override it. Called on the
        stream's thread before every connection, so it may ask the device
        (an ONVIF driver's GetStreamUri) and may raise `CameraError`.
        """
        return None

    def stream_source(self) -> StreamSource:
        """Where this camera's live stream comes from (`live.url`, else `stream_url()`).

        The stream gets an HTTP client of its own, with this camera's auth:
        a stream holds its connection for good, and snapshots (the fallback)
        must not wait behind it.
        """
        live = self.config.live
        configured = live.url if live is not None else None
        return UrlSource(self.stream_http(), self.config, lambda: configured or self.stream_url())

    def stream_http(self) -> CameraHttp:
        """A separate HTTP client to this camera for its stream (same auth, secrets masked)."""
        return CameraHttp(
            self.name,
            self.config,
            self._build_auth(),
            secret_params=self._secret_params(),
            lenient=self._device.device.lenient,
        )

    # ------------------------------------------------------------------ Camera protocol

    def snapshot(self) -> Snapshot:
        """Take one picture now; see `capture.cameras.Camera.snapshot`."""
        self.check_login()
        deadline = Deadline(self.config.deadline_s, self._clock)
        if not self._slots.acquire(deadline.remaining()):
            error = self._no_slot()
            self._record_failure(error)
            raise error
        try:
            # Another section of the device may have had the password refused while we waited.
            self.check_login()
            started = time.monotonic()
            try:
                frame = self._fetch(deadline)
                snapshot = self._accept(frame, started)
            except CameraError as error:
                self._record_failure(error)
                raise
        finally:
            self._slots.release()
        self._record_success(snapshot)
        return snapshot

    # ------------------------------------------------------------------ LoginGuard (its stream)

    def check_login(self) -> None:
        """Raise `LockedOut` while this device's back-off, here or shared, holds our login."""
        self._backoff.check(self.name)
        self._check_shared_backoff()

    def login_refused(self, error: CameraError) -> None:
        """The stream's login was refused: recorded like a snapshot's (back-off, state)."""
        if isinstance(error, AuthFailed):
            self._record_failure(error)

    def login_accepted(self) -> None:
        """The stream logged in with these credentials."""
        self._credentials_accepted()

    def state(self) -> CameraState:
        """The camera's health now."""
        with self._lock:
            state = self._state
        shared = self._shared_hold()
        return replace(
            state,
            locked_out_for_s=self._backoff.remaining() or (shared.left_s if shared else None),
            auth_scheme=self.http.auth.scheme,
            note=self.note,
        )

    def close(self) -> None:
        """Close the camera's connections and detach it from its device."""
        self.http.close()
        self._device.release()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, host={self.config.host!r})"

    # ------------------------------------------------------------------ internals

    def _shared_hold(self) -> Hold | None:
        """The cross-process back-off holding this camera; never for credentials proven here."""
        device = self._device.device
        if device.logins is None or self._device.fingerprint in device.proven:
            return None  # the hot path of a working camera: no file is looked at
        return device.logins.hold(device.login_key, secret_material(self.config))

    def _check_shared_backoff(self) -> None:
        """Raise `LockedOut` (no login tried) while another section or process backs the device off."""
        hold = self._shared_hold()
        if hold is None:
            return
        raise LockedOut(
            self.name,
            f"skipped, no login tried: {hold.device} is in its login back-off for another "
            f"{hold.left_s:.0f} s, after: {hold.reason} (shared by the service and every "
            f"capture command through {hold.path}); a corrected password is tried at once",
            retry_after_s=hold.left_s,
            skipped_device=hold.device,
        )

    def _no_slot(self) -> Timeout:
        device = self._device.device
        others = [name for name in device.camera_names() if name != self.name]
        shared = f" (shared with {', '.join(others)})" if others else ""
        return Timeout(
            self.name,
            f"{device.slots.limit} request(s) already in flight at {device.address}{shared} "
            f"and none finished within deadline_s = {self.config.deadline_s:g} s; snapshots "
            "are requested faster than the device delivers them",
        )

    def _accept(self, frame: Frame, started: float) -> Snapshot:
        received_monotonic = time.monotonic()
        digest = hashlib.blake2b(frame.jpeg.data, digest_size=16).digest()
        with self._lock:
            stale = digest == self._previous_digest
            self._previous_digest = digest
        if stale and self.config.reject_stale:
            raise InvalidImage(
                self.name,
                f"image identical to the previous one from {frame.source}: the camera seems "
                "frozen (reject_stale is on); power-cycle it if this persists",
                status=200,
            )
        return Snapshot(
            camera=self.name,
            jpeg=frame.jpeg.data,
            width=frame.jpeg.width,
            height=frame.jpeg.height,
            received_wall=datetime.now(UTC),
            received_monotonic=received_monotonic,
            latency_ms=(received_monotonic - started) * 1000,
            stale=stale,
            source=frame.source,
            device_filename=frame.device_filename,
            image_time=frame.image_time,
        )

    def _record_failure(self, error: CameraError) -> None:
        if isinstance(error, AuthFailed) and (
            error.credentials_rejected or isinstance(error, LockedOut)
        ):
            wait = self._backoff.reject(error)
            self._share_rejection(error)
            logger.warning(
                "camera=%s event=backoff seconds=%.0f kind=%s error=%s",
                self.name,
                wait,
                error.kind,
                error,
            )
        with self._lock:
            previous = self._state
            self._state = CameraState(
                name=self.name,
                vendor=self.vendor,
                ok=False,
                last_error_kind=error.kind,
                last_error=str(error),
                last_error_wall=datetime.now(UTC),
                last_success_wall=previous.last_success_wall,
                last_latency_ms=previous.last_latency_ms,
                consecutive_failures=previous.consecutive_failures + 1,
            )
        if previous.ok is not False:
            logger.warning("camera=%s event=failing kind=%s error=%s", self.name, error.kind, error)

    def _share_rejection(self, error: AuthFailed) -> None:
        """These credentials are proven bad here, and every process learns the device said no."""
        device = self._device.device
        device.proven.discard(self._device.fingerprint)
        if device.logins is None:
            return
        device_says = error.retry_after_s if isinstance(error, LockedOut) else None
        try:
            device.logins.reject(
                device.login_key, error.message, secret_material(self.config), device_says
            )
        except OSError as exc:
            logger.warning(
                "camera=%s event=backoff_not_shared file=%s error=%s",
                self.name,
                device.logins.path,
                exc,
            )

    def _share_acceptance(self, logins: SharedLogins, key: str, secrets: bytes) -> None:
        try:
            logins.accepted(key, secrets)
        except OSError as exc:
            logger.warning(
                "camera=%s event=backoff_not_shared file=%s error=%s", self.name, logins.path, exc
            )

    def _credentials_accepted(self) -> None:
        self._backoff.reset()
        device = self._device.device
        if self._device.fingerprint not in device.proven:
            # The first success of these credentials here: a shared back-off, if any, is over.
            device.proven.add(self._device.fingerprint)
            if device.logins is not None:
                self._share_acceptance(
                    device.logins, device.login_key, secret_material(self.config)
                )

    def _record_success(self, snapshot: Snapshot) -> None:
        self._credentials_accepted()
        with self._lock:
            previous = self._state
            self._state = CameraState(
                name=self.name,
                vendor=self.vendor,
                ok=True,
                last_error_kind=previous.last_error_kind,
                last_error=previous.last_error,
                last_error_wall=previous.last_error_wall,
                last_success_wall=snapshot.received_wall,
                last_latency_ms=snapshot.latency_ms,
            )
        if previous.ok is False:
            logger.info(
                "camera=%s event=recovered after_failures=%d",
                self.name,
                previous.consecutive_failures,
            )
        logger.debug(
            "camera=%s event=snapshot bytes=%d size=%dx%d latency_ms=%.1f stale=%s",
            self.name,
            len(snapshot.jpeg),
            snapshot.width,
            snapshot.height,
            snapshot.latency_ms,
            snapshot.stale,
        )


def credentials_of(config: CameraBase) -> Credentials | None:
    """The configured user and password, or None when either is missing."""
    if config.user is None or config.password is None:
        return None
    return Credentials(config.user, config.password.get_secret_value())
