"""XRC / ReeCam / old Foscam CGI cameras: `/snapshot.cgi`, or one frame of `videostream.cgi`.

Credentials travel as `user`/`pwd` query parameters (or a `session` id) by
default, so every URL shown anywhere is redacted. In snapshot mode the file
name the device gives (`snapshot_20110708163405.jpg`) is recorded and its
timestamp becomes `image_time`. In stream mode `request_av.cgi` first
pre-authorizes a stream and answers JavaScript variables
(`var result = 0; var id = 1567918901;`), then one frame is read from
`videostream.cgi?id=N&stream=S`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime

from capture.cameras.base import Frame, HttpCamera, credentials_of, frame_from_reply
from capture.cameras.errors import AuthFailed, CameraError, DeviceError, LockedOut
from capture.cameras.exchange import Deadline
from capture.cameras.http import CameraHttp, Reply
from capture.cameras.sources import MjpegHttpSource, StreamSource
from capture.config.schema import XrcCamera as XrcConfig

_JS_VAR = re.compile(r"var\s+(\w+)\s*=\s*('[^']*'|\"[^\"]*\"|[^;\s]*)\s*;")
_STAMP = re.compile(r"(\d{14})")
#: request_av.cgi result codes.
_AV_RESULTS = {
    -1: "session not open (log in again, or check session)",
    -2: "too many viewers: the camera serves no more streams",
}


def js_variables(text: str) -> dict[str, str]:
    """`var result = 0; var id = 15679;` -> {'result': '0', 'id': '15679'} (quotes removed)."""
    return {name: value.strip("'\"") for name, value in _JS_VAR.findall(text)}


def filename_time(filename: str | None) -> datetime | None:
    """The device-local time in `snapshot_20110708163405.jpg` (naive: the device names no zone)."""
    match = _STAMP.search(filename or "")
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d%H%M%S")
    except ValueError:
        return None


class XrcCamera(HttpCamera):
    """A Shenzhen-style CGI camera (XRC, ReeCam, Foscam MJPEG era)."""

    vendor = "xrc"
    config: XrcConfig
    secret_params = ("pwd", "session")

    def _query_credentials(self) -> dict[str, str]:
        if self.config.session is not None:
            return {"session": self.config.session.get_secret_value()}
        credentials = credentials_of(self.config)
        if credentials is None:
            return {}
        return {"user": credentials.user, "pwd": credentials.password}

    def _fetch(self, deadline: Deadline) -> Frame:
        if self.config.mode == "stream":
            return self._stream_frame(deadline)
        params = {}
        if self.config.resolution is not None:
            params["resolution"] = str(self.config.resolution)
        info, reply = self.http.get_jpeg("/snapshot.cgi", params, deadline, self._classify)
        frame = frame_from_reply(info, reply)
        image_time = filename_time(frame.device_filename) or frame.image_time
        return replace(frame, image_time=image_time)

    def stream_source(self) -> StreamSource:
        """`live.url` when given, else the pair: request_av.cgi for an id, then videostream.cgi."""
        if self.config.live is not None and self.config.live.url is not None:
            return super().stream_source()
        http = self.stream_http()
        # The sub-stream unless `stream = "main"` is written: a held stream costs bandwidth.
        main = self.config.stream == "main" and "stream" in self.config.model_fields_set
        return MjpegHttpSource(http, lambda deadline: self._stream_request(http, deadline, main))

    def _stream_frame(self, deadline: Deadline) -> Frame:
        path, params = self._stream_request(self.http, deadline, self.config.stream == "main")
        info, source = self.http.get_stream_frame(path, params, deadline)
        return Frame(jpeg=info, source=source)

    def _stream_request(
        self, http: CameraHttp, deadline: Deadline, main: bool
    ) -> tuple[str, dict[str, str]]:
        """Pre-authorize a stream (request_av.cgi) and say where to read it: a one-off id each time."""
        reply = http.get("/request_av.cgi", None, deadline, limit=4096)
        if reply.status != 200:
            raise http.failures.answer(reply, self._classify)
        variables = js_variables(reply.body.decode("latin-1"))
        result, stream_id = variables.get("result"), variables.get("id")
        if result != "0" or not stream_id:
            raise self._classify(reply) or DeviceError(
                self.name,
                f"request_av.cgi gave no stream id ({http.failures.excerpt(reply.body)!r})",
                status=reply.status,
                excerpt=http.failures.excerpt(reply.body),
            )
        params = {"id": stream_id, "stream": "0" if main else "1"}
        if self.config.resolution is not None:
            params["resolution"] = str(self.config.resolution)
        return "/videostream.cgi", params

    def _classify(self, reply: Reply) -> CameraError | None:
        variables = js_variables(reply.body[:4096].decode("latin-1"))
        result = variables.get("result")
        if result is None or not result.lstrip("-").isdigit() or int(result) >= 0:
            return None
        code = int(result)
        text = self.http.failures.excerpt(reply.body)
        if code == -1 and self.config.session is None and "id" not in variables:
            return AuthFailed(
                self.name,
                f"the camera refused the login (result {code}); check user and "
                f"{self.http.failures.password}",
                status=reply.status,
                excerpt=text,
                credentials_rejected=True,
            )
        if code == -3 and reply.status == 403:
            return LockedOut(
                self.name,
                "the camera refuses access (HTTP 403, result -3), as it does after repeated "
                f"failed logins; wait, then check user and {self.http.failures.password}",
                retry_after_s=None,
                status=403,
                excerpt=text,
            )
        meaning = _AV_RESULTS.get(code, "device error")
        return DeviceError(
            self.name,
            f"{meaning} (result {code}) for {reply.source}",
            status=reply.status,
            excerpt=text,
        )
