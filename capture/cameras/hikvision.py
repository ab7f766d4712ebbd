"""Hikvision cameras and NVR channels over ISAPI, including the NVR StreamingProxy fallback.

`/ISAPI/Streaming/channels/{channel}{01|02}/picture` (101 = camera 1 main,
102 = its sub stream, 201 = NVR camera 2). Some NVRs refuse that path for IP
channels with HTTP 400 `badXmlContent` and serve the picture only under
`/ISAPI/ContentMgmt/StreamingProxy/...`; in `streaming_proxy = "auto"` the
driver tries it then, and keeps using it once it served a picture. `<ResponseStatus>` and locked-account
`<userCheck>` bodies become typed errors.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from capture.cameras.base import CameraOptions, Frame, HttpCamera, frame_from_reply
from capture.cameras.errors import CameraError, DeviceError, LockedOut
from capture.cameras.exchange import Deadline
from capture.cameras.http import Reply
from capture.config.schema import HikvisionCamera as HikvisionConfig

if TYPE_CHECKING:
    from typing_extensions import Unpack


def _field(body: bytes, name: str) -> str | None:
    """The text of the first element `name` in any namespace (ISAPI XML, parsed leniently)."""
    match = re.search(rb"<(?:\w+:)?" + name.encode() + rb"\b[^>]*>([^<]*)<", body)
    return match.group(1).decode("utf-8", "replace").strip() if match else None


def isapi_status(body: bytes) -> tuple[str, str, str] | None:
    """(statusCode, statusString, subStatusCode) of a `<ResponseStatus>` body, else None."""
    if b"ResponseStatus" not in body[:512]:
        return None
    return (
        _field(body, "statusCode") or "?",
        _field(body, "statusString") or "",
        _field(body, "subStatusCode") or "",
    )


class HikvisionCamera(HttpCamera):
    """A Hikvision camera or NVR channel."""

    vendor = "hikvision"
    config: HikvisionConfig

    def __init__(self, name: str, config: HikvisionConfig, **kwargs: Unpack[CameraOptions]) -> None:
        super().__init__(name, config, **kwargs)
        self._via_proxy = config.streaming_proxy == "always"

    def channel_id(self) -> str:
        """ISAPI channel id: camera number then stream, e.g. 101, 102, 201."""
        return f"{self.config.channel}{'01' if self.config.stream == 'main' else '02'}"

    def path(self, via_proxy: bool) -> str:
        """The picture path, direct or through the NVR's StreamingProxy."""
        root = "/ISAPI/ContentMgmt/StreamingProxy" if via_proxy else "/ISAPI/Streaming"
        return f"{root}/channels/{self.channel_id()}/picture"

    def params(self) -> dict[str, str]:
        """Requested resolution, when configured (honoured by NVRs)."""
        params = {}
        if self.config.width:
            params["videoResolutionWidth"] = str(self.config.width)
        if self.config.height:
            params["videoResolutionHeight"] = str(self.config.height)
        return params

    def _fetch(self, deadline: Deadline) -> Frame:
        via_proxy = self._via_proxy
        reply = self.http.get(self.path(via_proxy), self.params(), deadline)
        if not via_proxy and self.config.streaming_proxy == "auto" and _is_bad_xml(reply):
            return self._fetch_via_proxy(reply, deadline)
        return frame_from_reply(self.http.expect_jpeg(reply, self._classify), reply)

    def _fetch_via_proxy(self, direct: Reply, deadline: Deadline) -> Frame:
        """After a badXmlContent: try StreamingProxy, and keep using it only if it served a JPEG."""
        reply = self.http.get(self.path(True), self.params(), deadline)
        try:
            jpeg = self.http.expect_jpeg(reply, self._classify)
        except DeviceError as proxy_error:
            # Not an NVR channel after all (or a proxy error): report both answers. Any other
            # error (a refused login, a broken picture, the deadline) is the one to act on.
            error = self.http.failures.answer(direct, self._classify)
            raise DeviceError(
                self.name,
                f"{error.message}; StreamingProxy failed too: {proxy_error.message}",
                status=error.status,
                excerpt=error.excerpt,
            ) from proxy_error
        self._via_proxy = True
        self.note = "NVR channel served via ContentMgmt/StreamingProxy"
        return frame_from_reply(jpeg, reply)

    def _classify(self, reply: Reply) -> CameraError | None:
        locked = _field(reply.body, "lockStatus")
        if locked and locked.lower() == "lock":
            unlock = _field(reply.body, "unlockTime")
            seconds = float(unlock) if unlock and unlock.isdigit() else None
            when = f" for {seconds:.0f} s" if seconds else ""
            return LockedOut(
                self.name,
                f"the camera locked user {self.config.user!r}{when} after failed logins "
                f"(HTTP {reply.status}); fix {self.http.failures.password}, then wait",
                retry_after_s=seconds,
                status=reply.status,
                excerpt=self.http.failures.excerpt(reply.body),
            )
        status = isapi_status(reply.body)
        if status is None or reply.status == 401:
            return None
        code, text, sub = status
        hint = ""
        if sub == "badXmlContent" and self.config.streaming_proxy == "never":
            hint = "; for an NVR IP channel set streaming_proxy = 'auto' or 'always'"
        elif reply.status == 403 and self.config.streaming_proxy != "always":
            # PnP cameras behind some NVRs refuse the direct path with a 403 while the
            # StreamingProxy path works (camera-apis.md §2.1, §3.4): never tried on our own.
            hint = (
                "; if this is an NVR's IP (PnP) channel, try streaming_proxy = 'always', "
                "else check the user's rights on this channel"
            )
        elif sub == "deviceBusy":
            hint = "; the device is busy: lower the snapshot rate"
        return DeviceError(
            self.name,
            f"device error (HTTP {reply.status}, ISAPI statusCode {code} {text!r}, "
            f"subStatusCode {sub or '-'}) for {reply.source}{hint}",
            status=reply.status,
            excerpt=self.http.failures.excerpt(reply.body),
        )


def _is_bad_xml(reply: Reply) -> bool:
    """HTTP 400 with subStatusCode badXmlContent: how NVRs refuse the direct path for IP channels.

    Only that sub-status: statusCode 6 alone also covers badParameters (a
    resolution the channel cannot give), which StreamingProxy would not fix.
    """
    status = isapi_status(reply.body) if reply.status == 400 else None
    return status is not None and status[2] == "badXmlContent"
