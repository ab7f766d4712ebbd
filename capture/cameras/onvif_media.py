"""What an ONVIF device says about its pictures: who it is, its media profiles and their URIs.

One call, `ask_device`, asks a device (unicast, at a known host and port)
for its identity (GetDeviceInformation), its media profiles (GetProfiles)
and, per profile, the snapshot URI (GetSnapshotUri) and RTSP stream URI
(GetStreamUri), and returns them as plain frozen data: `DeviceMedia`. The
ONVIF driver (capture.cameras.onvif) takes its snapshot URI from it, `capture
discover` prints it, and a stream-backed camera can pick its RTSP URI from
`DeviceMedia.profile_for("sub", needs="stream")` (the fewest pixels: the
sub-stream, the cheapest on the network).

The SOAP, WS-Security UsernameToken and devices' quirks are onvif-zeep-async's
(the client Home Assistant uses); this module is the one place where its
exceptions (and zeep's and aiohttp's under it) become our typed `CameraError`,
with no password in any message. The library is asyncio; `ask_device` runs it
to completion on a private event loop, so callers stay plain threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from capture.cameras.errors import (
    AuthFailed,
    CameraError,
    DeviceError,
    Timeout,
    Unreachable,
    Unsupported,
)

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: What GetStreamUri is asked for: RTSP over unicast, what every Profile S device serves.
STREAM_SETUP = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
#: SOAP fault subcodes that mean the credentials were refused (ONVIF Core spec, 5.11.2.2).
#: How often a running question looks whether it was cancelled.
CANCEL_POLL_S = 0.05
_AUTH_SUBCODES = frozenset({"NotAuthorized", "FailedAuthentication", "InvalidSecurity"})
#: What a URI of each kind must start with: devices have been seen to answer GetSnapshotUri
#: with an rtsp:// URI, an empty one, or a relative path (camera-apis.md §2.13).
SNAPSHOT_SCHEMES = ("http://", "https://")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """GetDeviceInformation: enough to tell a technician which device answered."""

    manufacturer: str
    model: str
    firmware: str


@dataclass(frozen=True, slots=True)
class MediaProfile:
    """One media profile: its video encoding and resolution, and its URIs (None: not offered)."""

    token: str
    name: str
    encoding: str | None
    width: int | None
    height: int | None
    snapshot_uri: str | None
    stream_uri: str | None

    @property
    def pixels(self) -> int:
        """Width x height, 0 when the profile has no video encoder configured."""
        return (self.width or 0) * (self.height or 0)

    def describe(self) -> str:
        """`Profile_1 "mainStream" H264 1920x1080`: one line for people."""
        size = f" {self.width}x{self.height}" if self.width and self.height else ""
        return f'{self.token} "{self.name}" {self.encoding or "no video"}{size}'


@dataclass(frozen=True, slots=True)
class DeviceMedia:
    """What `ask_device` learned from one device."""

    info: DeviceInfo
    profiles: tuple[MediaProfile, ...]

    def profile_for(self, choice: str, *, needs: str = "snapshot") -> MediaProfile:
        """The profile a camera section asks for, among those offering `needs` ("snapshot" or "stream").

        `choice` is a profile token or name (exact, then case-insensitive),
        "first" (the device's own order, usually its main stream), "main" (the
        most pixels) or "sub" (the fewest: the sub-stream). Raises
        `LookupError` naming what the device offers.
        """
        offering = [p for p in self.profiles if _offers(p, needs)]
        if not offering:
            raise LookupError(f"no profile offers a {needs} URI ({self.listing()})")
        folded = choice.casefold()
        named = [p for p in self.profiles if choice in (p.token, p.name)] or [
            p for p in self.profiles if folded in (p.token.casefold(), p.name.casefold())
        ]
        if named:
            if not _offers(named[0], needs):
                raise LookupError(f"profile {named[0].describe()} offers no {needs} URI")
            return named[0]
        if choice == "first":
            return offering[0]
        if choice == "main":
            return max(offering, key=lambda p: p.pixels)  # max keeps the first of equals
        if choice == "sub":
            return min(offering, key=lambda p: p.pixels)
        raise LookupError(f"no profile named or with the token {choice!r} ({self.listing()})")

    def listing(self) -> str:
        """Every profile on one line, for messages."""
        return "profiles: " + (", ".join(p.describe() for p in self.profiles) or "none")


def _offers(profile: MediaProfile, needs: str) -> bool:
    return (profile.snapshot_uri if needs == "snapshot" else profile.stream_uri) is not None


@dataclass(frozen=True, slots=True)
class OnvifTarget:
    """Where a device's ONVIF service is and how to log in (the password only ever sent)."""

    camera: str
    host: str
    port: int
    user: str | None
    password: str | None
    https: bool = False

    @property
    def address(self) -> str:
        """`http://host:port` (no credentials), for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"OnvifTarget({self.camera!r}, {self.address!r}, user={self.user!r})"


def ask_device(
    target: OnvifTarget, timeout_s: float, *, cancel: threading.Event | None = None
) -> DeviceMedia:
    """Ask the device for its identity, profiles and their URIs, within `timeout_s` in all.

    Raises `CameraError`: `AuthFailed` (credentials refused, counted as a
    rejected login), `Unreachable`, `Timeout` (also when `cancel` is set
    before the answer is complete: the asker is going away), `Unsupported`
    (no ONVIF or no media service) or `DeviceError` (a SOAP fault, an answer
    that is not ONVIF).
    """
    library = _library()
    try:
        return _run(lambda: _ask(library, target), timeout_s, cancel)
    except TimeoutError:
        raise Timeout(
            target.camera,
            f"no complete ONVIF answer from {target.address} within {timeout_s:g} s; "
            "is port the device's ONVIF port (80, 8000, 8080, 2020...)?",
        ) from None
    except asyncio.CancelledError:
        raise Timeout(target.camera, f"ONVIF question to {target.address} abandoned") from None
    except CameraError:
        raise
    except Exception as exc:
        raise _translate(target, exc) from exc


def _library() -> Any:
    """The onvif module, imported without the logging set-up it does on import.

    onvif.client calls `logging.basicConfig(level=INFO)` when imported, which
    would add a second handler to the service's logging (every line twice)
    and let its INFO lines through: the root logger is put back as it was.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # Their DEBUG lines are whole SOAP envelopes (WS-Security nonce and digest included):
    # not for the service's log, even at log_level = "debug".
    for name in ("onvif", "zeep"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return importlib.import_module("onvif")
    except ImportError as exc:
        raise Unsupported(
            "onvif",
            "ONVIF needs the optional onvif-zeep-async library: install the `onvif` extra "
            "(pip install 'event-capture[onvif]')",
        ) from exc
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _run(
    make: Callable[[], Coroutine[Any, Any, _T]],
    timeout_s: float,
    cancel: threading.Event | None,
) -> _T:
    """Run a coroutine to completion on a private event loop, within `timeout_s`.

    `cancel`, set from another thread, cancels it (CancelledError) within
    `CANCEL_POLL_S`. From a thread already running a loop (the dashboard's),
    it runs on a thread of its own.
    """

    async def bounded() -> _T:
        task = asyncio.ensure_future(asyncio.wait_for(make(), timeout_s))
        while cancel is not None and not task.done():
            await asyncio.wait({task}, timeout=CANCEL_POLL_S)
            if cancel.is_set():
                task.cancel()
        return await task

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="onvif") as pool:
        return pool.submit(asyncio.run, bounded()).result()


async def _ask(library: Any, target: OnvifTarget) -> DeviceMedia:
    host = f"https://{target.host}" if target.https else target.host
    # no_cache: zeep's WSDL cache is a SQLite file in the home directory, which the
    # service's user has none of; the WSDLs are read from the package's own files.
    # adjust_time: WS-Security timestamps are signed with the device's clock, so a
    # camera without NTP does not refuse a correct password for a skewed clock.
    # ONVIFCamera() also removes http_proxy/https_proxy from os.environ; nothing of ours
    # uses them (camera clients ignore the environment: trust_env=False).
    # Without a user, an empty UsernameToken: a device that wants a login refuses it
    # with the usual fault, one with authentication off ignores it.
    device = library.ONVIFCamera(
        host,
        target.port,
        target.user or "",
        target.password or "",
        no_cache=True,
        adjust_time=True,
    )
    try:
        await device.update_xaddrs()
        management = await device.create_devicemgmt_service()
        information = await management.GetDeviceInformation()
        try:
            media = await device.create_media_service()
        except library.exceptions.ONVIFError as exc:
            raise Unsupported(
                target.camera,
                f"the ONVIF device at {target.address} offers no media service (it does not "
                "give pictures over ONVIF); use its vendor driver or a generic snapshot URL",
            ) from exc
        profiles = await media.GetProfiles()
        found = [await _profile(media, profile, target) for profile in profiles or ()]
    finally:
        await device.close()
    return DeviceMedia(
        info=DeviceInfo(
            manufacturer=_text(getattr(information, "Manufacturer", None)),
            model=_text(getattr(information, "Model", None)),
            firmware=_text(getattr(information, "FirmwareVersion", None)),
        ),
        profiles=tuple(found),
    )


async def _profile(media: Any, profile: Any, target: OnvifTarget) -> MediaProfile:
    token = str(profile.token)
    video = getattr(profile, "VideoEncoderConfiguration", None)
    resolution = getattr(video, "Resolution", None)
    snapshot = await _uri(media.GetSnapshotUri({"ProfileToken": token}), target, SNAPSHOT_SCHEMES)
    stream = await _uri(
        media.GetStreamUri({"ProfileToken": token, "StreamSetup": STREAM_SETUP}),
        target,
        STREAM_SCHEMES,
    )
    return MediaProfile(
        token=token,
        name=_text(getattr(profile, "Name", None)) or token,
        encoding=_text(getattr(video, "Encoding", None)) or None,
        width=_number(getattr(resolution, "Width", None)),
        height=_number(getattr(resolution, "Height", None)),
        snapshot_uri=snapshot,
        stream_uri=stream,
    )


async def _uri(call: Awaitable[Any], target: OnvifTarget, schemes: tuple[str, ...]) -> str | None:
    """The URI of a GetSnapshotUri/GetStreamUri answer; None when the profile offers no usable one."""
    try:
        answer = await call
    except Exception as exc:
        error = _translate(target, exc)
        if isinstance(error, AuthFailed | Unreachable):
            raise error from exc
        logger.debug("camera=%s event=onvif_no_uri error=%s", target.camera, error)
        return None  # a profile without snapshots (ter:ActionNotSupported) is common
    # Some devices repeat the port (`http://h:8106:8106/...`, camera-apis.md §2.13):
    # the library's own fix, or httpx would refuse the URL on every snapshot.
    normalize_url = importlib.import_module("onvif.util").normalize_url
    uri = str(normalize_url(_text(getattr(answer, "Uri", None))) or "")
    return uri if uri.lower().startswith(schemes) else None


def _translate(target: OnvifTarget, exc: BaseException) -> CameraError:
    """The typed error for what the library raised; its text scrubbed of the password."""
    import aiohttp  # noqa: PLC0415 - installed with onvif, which is optional
    import zeep.exceptions  # noqa: PLC0415

    cause = (
        exc.__cause__ if exc.__cause__ is not None and type(exc).__name__ == "ONVIFError" else exc
    )
    said = _scrub(str(cause), target.password)
    where = f"ONVIF at {target.address}"
    if isinstance(cause, zeep.exceptions.Error):
        return _soap_error(target, where, cause, said)
    if isinstance(cause, SyntaxError):  # lxml's XMLSyntaxError
        return DeviceError(target.camera, f"{where} answered, but not in ONVIF: {said}")
    if isinstance(cause, (asyncio.TimeoutError, TimeoutError)):
        return Timeout(target.camera, f"{where} did not answer in time")
    if isinstance(cause, (aiohttp.ClientError, OSError)):
        return Unreachable(target.camera, f"{where} cannot be reached: {said}")
    return DeviceError(target.camera, f"{where}: {type(cause).__name__}: {said}")


def _soap_error(target: OnvifTarget, where: str, cause: Any, said: str) -> CameraError:
    """A zeep error: a SOAP fault, an HTTP status without a SOAP answer, or an answer zeep refused."""
    import zeep.exceptions  # noqa: PLC0415 - installed with onvif, which is optional

    if isinstance(cause, zeep.exceptions.Fault) and cause.code is None:
        # zeep's "Unknown fault occured": an error answer without a SOAP Fault in it.
        return DeviceError(target.camera, f"{where} answered, but not in ONVIF (no SOAP answer)")
    if isinstance(cause, zeep.exceptions.Fault):
        # Most devices do not send ter:NotAuthorized for a wrong password, only a text:
        # the library's own test (subcodes, then "auth" in the text) knows them best.
        subcodes = {getattr(code, "localname", str(code)) for code in cause.subcodes or ()}
        if subcodes & _AUTH_SUBCODES or _library().util.is_auth_error(cause):
            return _refused(target, where, f"SOAP fault: {said}")
        return DeviceError(target.camera, f"{where} answered with a SOAP fault: {said}")
    status = getattr(cause, "status_code", None)
    if not isinstance(cause, zeep.exceptions.TransportError) or status is None:
        return DeviceError(target.camera, f"{where} answered, but not in ONVIF: {said}")
    return _http_error(target, where, status)


def _http_error(target: OnvifTarget, where: str, status: int) -> CameraError:
    """An HTTP error status without a SOAP answer."""
    if status in (401, 403):
        return _refused(target, where, f"HTTP {status}", status=status)
    if status == 404:
        return Unsupported(
            target.camera,
            f"{where}: no ONVIF service at /onvif/device_service (HTTP 404); is ONVIF "
            "enabled on the device, and is port its ONVIF port?",
            status=404,
        )
    return DeviceError(target.camera, f"{where} answered HTTP {status}", status=status)


def _refused(target: OnvifTarget, where: str, said: str, status: int | None = None) -> AuthFailed:
    who = f"user {target.user!r}" if target.user else "no user given"
    return AuthFailed(
        target.camera,
        f"{where} refused the login ({said}, {who}); check user and password_env",
        status=status,
        credentials_rejected=target.user is not None,
    )


def _scrub(text: str, password: str | None) -> str:
    """The text without the password, should a device or library ever echo it."""
    text = " ".join(text.split())[:300]
    return text.replace(password, "***") if password else text


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _number(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None
