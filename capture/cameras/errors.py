"""The camera error hierarchy: one root, typed leaves, messages a technician can act on.

The rule engine, the journal and MQTT events record `error.kind` (the class
name) and `str(error)`; both must be safe to publish, so no message ever holds
a password, a session id or a query-string credential.
"""

from __future__ import annotations

from capture.errors import CaptureError

# The class names are the "error type" the journal and MQTT events publish,
# so they read as outcomes (AuthFailed, Timeout) rather than ending in Error.


class CameraError(CaptureError):
    """A snapshot failed; carries the camera name and what the device said.

    `status` is the HTTP status when the device answered at all, `excerpt` a
    short, printable, secret-free excerpt of its body. The message starts with
    `camera NAME:` and ends with what to check.
    """

    def __init__(
        self,
        camera: str,
        message: str,
        *,
        status: int | None = None,
        excerpt: str | None = None,
    ) -> None:
        self.camera = camera
        self.status = status
        self.excerpt = excerpt
        self.message = message
        super().__init__(f"camera {camera}: {message}")

    @property
    def kind(self) -> str:
        """The error type recorded in the journal and MQTT events, e.g. 'AuthFailed'."""
        return type(self).__name__


class AuthFailed(CameraError, PermissionError):
    """The camera refused our credentials or the user lacks the right to take snapshots.

    `credentials_rejected` is true when a complete login with a fresh challenge
    failed: the camera counts that against its lockout budget, so the driver
    backs off before trying again.
    """

    def __init__(
        self,
        camera: str,
        message: str,
        *,
        status: int | None = None,
        excerpt: str | None = None,
        credentials_rejected: bool = False,
    ) -> None:
        super().__init__(camera, message, status=status, excerpt=excerpt)
        self.credentials_rejected = credentials_rejected


class LockedOut(AuthFailed):
    """The camera is locked: by the device after bad logins, or by our own back-off.

    `retry_after_s` is how long until the next attempt will be made (or the
    device said it unlocks), so the dashboard can show a countdown.
    `skipped_device` names the device and user (`scheme://user@host:port`)
    when the back-off shared between processes (capture.cameras.logins)
    held the request, so a command can say which device it skipped.
    """

    def __init__(
        self,
        camera: str,
        message: str,
        *,
        retry_after_s: float | None,
        status: int | None = None,
        excerpt: str | None = None,
        skipped_device: str | None = None,
    ) -> None:
        super().__init__(camera, message, status=status, excerpt=excerpt)
        self.retry_after_s = retry_after_s
        self.skipped_device = skipped_device


class Timeout(CameraError, TimeoutError):
    """The camera accepted the connection but did not deliver an image in time."""


class Unreachable(CameraError, ConnectionError):
    """No usable connection: refused, no route, DNS, TLS failure, or dropped mid-request."""


class InvalidImage(CameraError, ValueError):
    """The camera answered, but not with a complete JPEG (HTML page, truncated, empty, frozen)."""


class DeviceError(CameraError):
    """The device reported an error of its own (Hikvision ResponseStatus, Dahua `Error`, XRC result)."""


class Unsupported(CameraError, NotImplementedError):
    """The device asks for something we cannot do, such as an unknown authentication scheme."""


ERROR_TYPES: tuple[type[CameraError], ...] = (
    AuthFailed,
    LockedOut,
    Timeout,
    Unreachable,
    InvalidImage,
    DeviceError,
    Unsupported,
)
"""Every leaf, in the order docs/cameras.md lists them."""
