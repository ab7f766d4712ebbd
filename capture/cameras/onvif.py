"""ONVIF cameras: the snapshot URI is asked of the device over ONVIF, then fetched like any other.

Most brands speak ONVIF Profile S, so a camera without a driver of its own
needs no recipe: when the camera is built (the service's start, a reload) a
thread of its own asks the device for its media profiles and their snapshot
URIs (capture.cameras.onvif_media) and picks the configured profile; from
then on the driver takes each picture from that URI
through the same HTTP path as every driver (auth learned from the 401,
deadline, JPEG validation, typed errors, login back-off). When a snapshot
fails for any reason but the password, the URI may have changed (a firmware
update, a profile edited): the device is asked again, no more often than a
back-off allows, and the last known URI is used meanwhile.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from capture.cameras.base import CameraOptions, Frame, HttpCamera, frame_from_reply
from capture.cameras.errors import AuthFailed, CameraError, LockedOut, Unsupported
from capture.cameras.exchange import Deadline
from capture.cameras.onvif_media import DeviceMedia, MediaProfile, OnvifTarget, ask_device
from capture.config.schema import OnvifCamera as OnvifConfig

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)

#: First wait before the device is asked again after a failed ask, doubled up to the cap.
ASK_AGAIN_FIRST_S = 5.0
ASK_AGAIN_MAX_S = 300.0


def target_of(name: str, config: OnvifConfig) -> OnvifTarget:
    """Where the ONVIF service of a configured camera is, and its credentials."""
    password = config.password.get_secret_value() if config.password is not None else None
    return OnvifTarget(
        camera=name,
        host=config.host,
        port=config.effective_port,
        user=config.user,
        password=password,
        https=config.scheme == "https",
    )


def choose_profile(name: str, config: OnvifConfig, media: DeviceMedia) -> MediaProfile:
    """The profile the section asks for (`profile`, else by `stream`), or a typed error."""
    choice = config.profile or config.stream
    try:
        profile = media.profile_for(choice)
    except LookupError as exc:
        raise Unsupported(
            name,
            f"ONVIF device {media.info.manufacturer} {media.info.model}: {exc}; set profile "
            "to one with a snapshot URI (capture discover lists them)",
        ) from None
    uri = profile.snapshot_uri or ""
    if uri.lower().startswith("https://") and config.scheme != "https":
        # Certificates are checked per the section's scheme and verify; an https URI
        # under scheme = "http" would be fetched unchecked without anyone having said so.
        raise Unsupported(
            name,
            f"the snapshot URI of profile {profile.token} is https://: set scheme = 'https' "
            "(and verify = false, as ONVIF over https requires)",
        )
    return profile


class OnvifCamera(HttpCamera):
    """A camera whose snapshot URI comes from ONVIF GetSnapshotUri."""

    vendor = "onvif"
    config: OnvifConfig

    def __init__(self, name: str, config: OnvifConfig, **kwargs: Unpack[CameraOptions]) -> None:
        super().__init__(name, config, **kwargs)
        self._ask_lock = threading.Lock()
        self._profile: MediaProfile | None = None
        self._stale = True  # ask the device before the first snapshot
        self._ask_after = 0.0
        self._ask_wait = ASK_AGAIN_FIRST_S
        self._ask_error: CameraError | None = None
        self._closing = threading.Event()
        #: Set once the question asked at start has its answer (or failed, or was skipped).
        self.warmed_up = threading.Event()
        self._warm_up_thread = threading.Thread(
            target=self._warm_up, name=f"onvif-{name}", daemon=True
        )
        self._warm_up_thread.start()

    def close(self) -> None:
        """Abandon a question still running, then close the connections."""
        self._closing.set()
        if self._warm_up_thread is not threading.current_thread():
            self._warm_up_thread.join()
        super().close()

    def _warm_up(self) -> None:
        """Ask the device at start, so that the first picture waits neither for it nor the WSDLs.

        Like a snapshot it holds one of the device's request slots and stays
        away while the device is in its login back-off; a failure is recorded
        as a snapshot's would be (a refused password starts the back-off, the
        dashboard shows the error), and the first snapshot asks again when
        the ask back-off allows.
        """
        try:
            self._backoff.check(self.name)
            self._check_shared_backoff()
            deadline = Deadline(self.config.deadline_s, self._clock)
            if not self._slots.acquire(deadline.remaining()):
                return
            try:
                self._snapshot_uri(deadline)
            finally:
                self._slots.release()
        except CameraError as error:
            if not self._closing.is_set() and not isinstance(error, LockedOut):
                self._record_failure(error)
        finally:
            self.warmed_up.set()

    def stream_url(self) -> str:
        """The RTSP URI of the profile to keep warm (`[cameras.X.live]` without `url`).

        Asked anew before every connection of the stream (a reconnect after a
        firmware update or an edited profile finds the new one); the sub-stream
        unless the section says `stream = "main"`, since a stream costs the
        network all the time. The URI comes without credentials: the stream
        adds the section's user and password when it connects.
        """
        wanted = self.config.stream if "stream" in self.config.model_fields_set else "sub"
        self._backoff.check(self.name)
        media = ask_device(
            target_of(self.name, self.config), self.config.timeout_s, cancel=self._closing
        )
        try:
            profile = media.profile_for(wanted, needs="stream")
        except LookupError as exc:
            raise Unsupported(self.name, f"ONVIF device has no stream to keep: {exc}") from None
        assert profile.stream_uri is not None  # profile_for(needs="stream") offers one
        return profile.stream_uri

    def _fetch(self, deadline: Deadline) -> Frame:
        uri = self._snapshot_uri(deadline)
        try:
            info, reply = self.http.get_jpeg(uri, None, deadline)
        except AuthFailed:
            raise  # the URI is right; the device-wide login back-off takes over
        except CameraError:
            with self._ask_lock:
                if not self._stale:  # the URI may have changed: ask again after the back-off
                    self._stale = True
                    self._back_off()
            raise
        with self._ask_lock:
            self._ask_wait = ASK_AGAIN_FIRST_S
        return frame_from_reply(info, reply)

    def _snapshot_uri(self, deadline: Deadline) -> str:
        """The snapshot URI, asked of the device when unknown or stale and not backed off."""
        with self._ask_lock:
            if self._stale and self._clock() >= self._ask_after:
                self._ask(deadline)
            if self._profile is not None and self._profile.snapshot_uri is not None:
                return self._profile.snapshot_uri
            error = self._ask_error
            wait = max(0.0, self._ask_after - self._clock())
        assert error is not None  # no profile is only ever left by a failed ask
        raise type(error)(
            self.name,
            f"{error.message} (the device is asked again in {wait:.0f} s)",
            status=error.status,
        )

    def _back_off(self) -> None:
        """No ONVIF question before `_ask_wait` has passed; the next wait is twice as long."""
        self._ask_after = self._clock() + self._ask_wait
        self._ask_wait = min(self._ask_wait * 2, ASK_AGAIN_MAX_S)

    def _ask(self, deadline: Deadline) -> None:
        try:
            media = ask_device(
                target_of(self.name, self.config), deadline.remaining(), cancel=self._closing
            )
            profile = choose_profile(self.name, self.config, media)
        except CameraError as error:
            self._ask_error = error
            self._back_off()
            logger.warning(
                "camera=%s event=onvif_ask_failed kind=%s ask_again_s=%.0f error=%s",
                self.name,
                error.kind,
                self._ask_after - self._clock(),
                error,
            )
            if self._profile is None or isinstance(error, AuthFailed):
                raise
            return  # keep taking pictures from the URI known so far
        self._profile = profile
        self._stale = False
        self._ask_error = None
        self.note = (
            f"ONVIF {media.info.manufacturer} {media.info.model}, profile "
            f"{profile.describe()}, snapshot {self.http.redact(profile.snapshot_uri)}"
        )
        logger.info("camera=%s event=onvif_profile %s", self.name, self.note)
