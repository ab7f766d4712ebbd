"""Where a stream-backed camera's frames come from: one `StreamSource` per kind of stream.

A source opens one connection per call to `frames` and yields each frame as
its last byte arrives, until the connection ends (then it returns or raises
a typed `CameraError`); the stream worker (capture.cameras.live) reconnects.
`to_jpeg` turns the frames the buffer picked into the picture to store: an
MJPEG frame is already one.

Which source a camera gets is decided in one place, `UrlSource`: a path on
the camera is MJPEG over the camera's own HTTP client (its auth, TLS and
secrets masking), an rtsp:// URL goes to PyAV (capture.cameras.rtsp); the
URL is asked for again before every connection, so a driver whose stream
address is learnt from the device (ONVIF's GetStreamUri) answers it fresh
each time.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from capture.cameras.errors import DeviceError
from capture.cameras.exchange import Deadline
from capture.cameras.http import MAX_ERROR_BYTES, CameraHttp
from capture.cameras.jpeg import JpegInfo
from capture.cameras.multipart import MjpegError, StreamFrameReader
from capture.cameras.ring import BufferedFrame
from capture.cameras.rtsp import RtspSource
from capture.config.schema import LIVE_SCHEMES, CameraBase

#: A stream connection lives until it fails; its "deadline" only bounds each read through
#: the configured timeouts (a day, then it is simply opened again).
STREAM_DEADLINE_S = 86_400.0

#: What opens the HTTP stream: the path and query parameters, asked before every connection.
HttpTarget = Callable[[Deadline], tuple[str, dict[str, str] | None]]


class StreamSource(Protocol):
    """A camera's stream, opened once per connection by its stream worker."""

    @property
    def source(self) -> str:
        """The stream's address as shown in logs and the dashboard (secrets masked)."""
        ...

    def frames(self, stop: threading.Event) -> Iterator[BufferedFrame]:
        """Connect and yield frames as they arrive until the stream ends or `stop` is set.

        Raises `CameraError` when the stream cannot be opened or breaks.
        """
        ...

    def to_jpeg(self, frames: Sequence[BufferedFrame]) -> JpegInfo:
        """The picture of the last of `frames` (which start at its keyframe)."""
        ...

    def close(self) -> None:
        """Release the connection pool; the source is not used afterwards."""
        ...


class MjpegHttpSource:
    """An MJPEG (`multipart/x-mixed-replace`) stream from the camera's own web server."""

    def __init__(self, http: CameraHttp, target: HttpTarget) -> None:
        self.http = http
        self._target = target
        self._source = http.redact(http.base_url)
        self._response: httpx.Response | None = None

    @property
    def source(self) -> str:
        """The redacted URL of the current (or last) connection."""
        return self._source

    def frames(self, stop: threading.Event) -> Iterator[BufferedFrame]:
        """Every complete JPEG of the stream, stamped with its arrival."""
        deadline = Deadline(STREAM_DEADLINE_S)
        path, params = self._target(deadline)
        self._source = self.http.source(path, params)
        with self.http.stream(path, params, deadline) as response:
            self._response = response
            if response.status_code != 200:
                body = self.http.read_body(response, deadline, MAX_ERROR_BYTES)
                raise self.http.failures.answer(self.http.reply(response, body))
            reader = StreamFrameReader(response.headers.get("content-type"))
            for chunk in response.iter_bytes():
                try:
                    found = reader.feed_all(chunk)
                except MjpegError as exc:
                    raise DeviceError(
                        self.http.camera, f"MJPEG stream {self._source} broke: {exc}"
                    ) from exc
                arrived, wall = time.monotonic(), datetime.now(UTC)
                for info in found:
                    yield BufferedFrame(arrived, wall, info.data, True, info.width, info.height)
                if stop.is_set():
                    return

    def to_jpeg(self, frames: Sequence[BufferedFrame]) -> JpegInfo:
        """MJPEG frames are pictures already."""
        frame = frames[-1]
        return JpegInfo(frame.data, frame.width, frame.height)

    def close(self) -> None:
        """Cut the open stream (a read blocked on a stalled camera returns at once), close the client."""
        response = self._response
        network = response.extensions.get("network_stream") if response is not None else None
        connection = network.get_extra_info("socket") if network is not None else None
        if isinstance(connection, socket.socket):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.http.close()


class UrlSource:
    """A stream given by URL, its kind judged per connection: MJPEG over HTTP, or RTSP.

    `url()` is asked before every connection (a driver may learn it from the
    device, as ONVIF's GetStreamUri does). A path, or an http(s) URL, is read
    through the camera's own HTTP client (its host, auth and TLS); an
    `rtsp://` URL through PyAV (capture.cameras.rtsp).
    """

    def __init__(self, http: CameraHttp, config: CameraBase, url: Callable[[], str | None]) -> None:
        self._url = url
        self._resolved = ""
        self._http = MjpegHttpSource(http, self._http_target)
        self._rtsp = RtspSource(http.camera, config, lambda: self._resolved)
        self._current: StreamSource = self._http
        self._camera = http.camera

    @property
    def source(self) -> str:
        """The address of the current (or last) connection, secrets masked."""
        return self._current.source

    def frames(self, stop: threading.Event) -> Iterator[BufferedFrame]:
        """Ask for the URL, then connect the matching source."""
        url = self._url()
        if url is None:
            raise DeviceError(self._camera, "the camera gave no stream URL")
        self._resolved = url
        rtsp = url.lower().startswith(LIVE_SCHEMES)
        self._current = self._rtsp if rtsp else self._http
        return self._current.frames(stop)

    def _http_target(self, deadline: Deadline) -> tuple[str, dict[str, str] | None]:
        parts = urlsplit(self._resolved)
        path = parts.path or "/"
        return (f"{path}?{parts.query}" if parts.query else path), None

    def to_jpeg(self, frames: Sequence[BufferedFrame]) -> JpegInfo:
        """The picture, made by the source that received the frames."""
        return self._current.to_jpeg(frames)

    def close(self) -> None:
        """Close both sources' resources."""
        self._http.close()
        self._rtsp.close()
