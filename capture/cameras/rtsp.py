"""RTSP streams (H.264, H.265) through PyAV: undecoded packets in the buffer, decoded on demand.

Why undecoded: 10 s of 1080p at 15 fps decoded is ~470 MB, the packets
~5 MB at 4 Mbit/s. The buffer keeps each packet as it arrived (with its
keyframe flag); a picture is made only for a frame a rule asks for, by
decoding from the last keyframe up to it (a fresh decoder each time, so no
state is shared between threads) and encoding that frame as a JPEG, all in
FFmpeg through PyAV (the `stream` extra; it ships FFmpeg in its wheels).
Assumes no B-frames (reordered frames), as camera streams have none: the
last decoded frame is the one asked for.

Credentials go into the URL only when connecting; every address shown is the
configured one, and FFmpeg's messages are reduced to their reason, never
quoting the URL. PyAV's errors are translated here, in `_translate`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from capture.cameras.errors import (
    AuthFailed,
    CameraError,
    DeviceError,
    InvalidImage,
    Timeout,
    Unreachable,
    Unsupported,
)
from capture.cameras.hints import password_source
from capture.cameras.jpeg import JpegError, JpegInfo, validate_jpeg
from capture.cameras.redact import redact_url
from capture.cameras.ring import BufferedFrame

if TYPE_CHECKING:
    from capture.config.schema import CameraBase

#: JPEG quality of a decoded frame, on FFmpeg's qscale (2 best .. 31 worst); 3 is ~q90.
JPEG_QSCALE = 3


def _av() -> Any:
    """PyAV, imported on first use: only RTSP cameras need it (the `stream` extra)."""
    try:
        import av  # noqa: PLC0415
    except ImportError:
        return None
    return av


class RtspSource:
    """An RTSP camera stream: packets as they arrive, a JPEG of any buffered frame on demand."""

    def __init__(self, camera: str, config: CameraBase, url: Callable[[], str | None]) -> None:
        self.camera = camera
        self.config = config
        self._url = url
        self._source = "rtsp://"
        self._codec: tuple[str, bytes] | None = None

    @property
    def source(self) -> str:
        """The stream's address without credentials."""
        return self._source

    def frames(self, stop: threading.Event) -> Iterator[BufferedFrame]:
        """Open the stream over TCP and yield each video packet, stamped with its arrival."""
        av = _av()
        if av is None:
            raise Unsupported(
                self.camera,
                "RTSP needs PyAV: install event-capture with the `stream` extra "
                "(pip install 'event-capture[stream]')",
            )
        url = self._url()
        if url is None:
            raise DeviceError(self.camera, "the camera gave no stream URL")
        self._source = redact_url(url)
        try:
            container = av.open(
                self._with_credentials(url),
                # TCP: no lost packets on a busy LAN. No probing: the stream's parameters
                # come with its SDP, and probing would hold the first ~1.5 s of packets
                # back and hand them over at once, all stamped with the same arrival.
                options={
                    "rtsp_transport": "tcp",
                    "analyzeduration": "0",
                    "probesize": "32",
                    "fflags": "nobuffer",
                },
                timeout=(self.config.connect_timeout_s, self.config.timeout_s),
            )
        except av.FFmpegError as exc:
            raise self._translate(exc, "opening") from None
        try:
            yield from self._packets(av, container, stop)
        except av.FFmpegError as exc:
            raise self._translate(exc, "reading") from None
        finally:
            container.close()

    def _packets(self, av: Any, container: Any, stop: threading.Event) -> Iterator[BufferedFrame]:
        """One buffered frame per picture: the packets of one timestamp joined.

        FFmpeg's RTP depacketizer can hand one picture over as several packets
        (a camera's slices, parameter sets before a keyframe), each with the
        picture's timestamp; the picture is complete, and yielded, when a packet
        of the next timestamp arrives, stamped with its own last packet's arrival.
        """
        if not container.streams.video:
            raise DeviceError(self.camera, f"RTSP {self._source} has no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context
        self._codec = (context.name, bytes(context.extradata or b""))
        pending: _Picture | None = None
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            arrived, wall = time.monotonic(), datetime.now(UTC)
            if (
                pending is not None
                and packet.pts is not None
                and pending.pts not in (None, packet.pts)
            ):
                yield pending.frame(context.width, context.height)
                pending = None
            if pending is None:
                pending = _Picture(packet.pts)
            pending.add(bytes(packet), bool(packet.is_keyframe), packet.pts, arrived, wall)
            if stop.is_set():
                return

    def to_jpeg(self, frames: Sequence[BufferedFrame]) -> JpegInfo:
        """Decode from the keyframe to the last of `frames`, and encode that picture as a JPEG."""
        av = _av()
        codec = self._codec
        if av is None or codec is None:
            raise InvalidImage(self.camera, f"RTSP {self._source}: no decoder for the stream")
        try:
            picture = self._decode(av, codec, frames)
            data = self._encode(av, picture)
        except av.FFmpegError as exc:
            raise InvalidImage(
                self.camera,
                f"RTSP {self._source}: the buffered frame did not decode ({_reason(exc)})",
            ) from None
        try:
            return validate_jpeg(data)
        except JpegError as exc:
            raise InvalidImage(
                self.camera, f"RTSP {self._source}: encoded JPEG invalid: {exc}"
            ) from None

    def _decode(self, av: Any, codec: tuple[str, bytes], frames: Sequence[BufferedFrame]) -> Any:
        decoder = av.CodecContext.create(codec[0], "r")
        if codec[1]:
            decoder.extradata = codec[1]
        last = None
        for frame in frames:
            for picture in decoder.decode(av.Packet(frame.data)):
                last = picture
        for picture in decoder.decode(None):  # what the decoder still holds
            last = picture
        if last is None:
            raise InvalidImage(
                self.camera, f"RTSP {self._source}: no picture decoded from {len(frames)} packet(s)"
            )
        return last

    @staticmethod
    def _encode(av: Any, picture: Any) -> bytes:
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width = picture.width
        encoder.height = picture.height
        encoder.pix_fmt = "yuvj420p"
        encoder.time_base = Fraction(1, 25)
        encoder.options = {"qmin": str(JPEG_QSCALE), "qmax": str(JPEG_QSCALE)}
        packets = [*encoder.encode(picture.reformat(format="yuvj420p")), *encoder.encode(None)]
        return b"".join(bytes(packet) for packet in packets)

    def close(self) -> None:
        """Nothing held between connections (each `frames` closes its own container)."""

    def _with_credentials(self, url: str) -> str:
        """The URL with the camera's user and password, for FFmpeg only; never shown."""
        user, password = self.config.user, self.config.password
        if user is None or password is None:
            return url
        parts = urlsplit(url)
        login = f"{quote(user, safe='')}:{quote(password.get_secret_value(), safe='')}"
        return urlunsplit(parts._replace(netloc=f"{login}@{parts.netloc}"))

    def _translate(self, exc: Exception, doing: str) -> CameraError:
        """PyAV's error as ours, by its errno and class; FFmpeg's text never quotes the URL here."""
        reason = _reason(exc)
        name = type(exc).__name__
        where = f"RTSP {self._source} ({doing})"
        if "Unauthorized" in name or "Forbidden" in name:
            return AuthFailed(
                self.camera,
                f"{where}: the camera refused the login; check user and "
                f"{password_source(self.config)}",
                # FFmpeg answered the challenge with our credentials: a failed login the
                # device counts, so the back-off starts (none were sent without them).
                credentials_rejected=self.config.user is not None
                and self.config.password is not None,
            )
        if isinstance(exc, TimeoutError) or "timed out" in reason.lower():
            return Timeout(self.camera, f"{where}: no answer within timeout_s ({reason})")
        if isinstance(exc, ConnectionError | OSError) and getattr(exc, "errno", None) in (
            111,
            113,
            101,
        ):
            return Unreachable(
                self.camera, f"{where}: {reason}; is the camera on and the port right?"
            )
        return DeviceError(self.camera, f"{where}: {reason}")


class _Picture:
    """The packets of one picture, gathered until the next picture's first packet arrives."""

    def __init__(self, pts: int | None) -> None:
        self.pts = pts
        self.parts: list[bytes] = []
        self.keyframe = False
        self.arrived = 0.0
        self.wall = datetime.now(UTC)

    def add(
        self, data: bytes, keyframe: bool, pts: int | None, arrived: float, wall: datetime
    ) -> None:
        self.parts.append(data)
        self.keyframe = self.keyframe or keyframe
        self.pts = self.pts if pts is None else pts
        self.arrived, self.wall = arrived, wall

    def frame(self, width: int, height: int) -> BufferedFrame:
        return BufferedFrame(
            self.arrived, self.wall, b"".join(self.parts), self.keyframe, width, height
        )


def _reason(exc: Exception) -> str:
    """FFmpeg's reason without the file name (which holds the URL and its password)."""
    text = getattr(exc, "strerror", None)
    return str(text) if text else type(exc).__name__
