"""Dahua cameras and NVRs, and their OEMs (Amcrest, Lorex, IMOU...): `/cgi-bin/snapshot.cgi`.

Channels are 1-based on current firmware; old firmware counts from 0
(`zero_based_channel`). Dahua answers some failures with HTTP 200 and the body
`Error`, and a lacking right with 403 `Authority:check failure`; both become
typed errors instead of a ".jpg" holding five bytes of text.
"""

from __future__ import annotations

from capture.cameras.base import Frame, HttpCamera, frame_from_reply
from capture.cameras.errors import AuthFailed, CameraError, DeviceError
from capture.cameras.exchange import Deadline
from capture.cameras.http import Reply
from capture.config.schema import DahuaCamera as DahuaConfig


class DahuaCamera(HttpCamera):
    """A Dahua-family camera or NVR channel."""

    vendor = "dahua"
    config: DahuaConfig

    def params(self) -> dict[str, str]:
        """`channel` as the firmware counts, and `subtype=1` for the sub stream."""
        channel = self.config.channel
        if self.config.zero_based_channel and channel > 0:
            channel -= 1
        params = {"channel": str(channel)}
        if self.config.stream == "sub":
            params["subtype"] = "1"
        return params

    def _fetch(self, deadline: Deadline) -> Frame:
        info, reply = self.http.get_jpeg(
            "/cgi-bin/snapshot.cgi", self.params(), deadline, self._classify
        )
        return frame_from_reply(info, reply)

    def _classify(self, reply: Reply) -> CameraError | None:
        text = reply.body.strip()[:200]
        lowered = text.lower()
        if reply.status == 403 and b"authority" in lowered:
            return AuthFailed(
                self.name,
                f"access denied (HTTP 403 {self.http.failures.excerpt(text)!r}): user "
                f"{self.config.user!r} lacks the snapshot right; grant it on the device",
                status=403,
                excerpt=self.http.failures.excerpt(text),
            )
        if reply.status == 200 and lowered.startswith(b"error"):
            return DeviceError(
                self.name,
                f"device answered HTTP 200 {self.http.failures.excerpt(text)!r} instead of a JPEG for "
                f"{reply.source}; check channel (old firmware: zero_based_channel = true)",
                status=200,
                excerpt=self.http.failures.excerpt(text),
            )
        if reply.status == 400:
            return DeviceError(
                self.name,
                f"bad request (HTTP 400) for {reply.source}: the device does not serve this "
                "channel on snapshot.cgi (an ONVIF-attached NVR channel?); check channel",
                status=400,
                excerpt=self.http.failures.excerpt(text),
            )
        return None
