"""A real RTSP server on loopback for the tests and the benchmark: GStreamer's, H.264 or H.265.

Run with the SYSTEM python (it needs Debian's python3-gi and
gir1.2-gst-rtsp-server-1.0, not in the venv):

    /usr/bin/python3 tests/rtsp_server.py WIDTH HEIGHT FPS [KEYFRAME_EVERY [noise|plain [USER]]]

With USER it asks for a basic login, the password read from the environment
variable RTSP_TEST_PASSWORD (never on the command line). RTSP_TEST_CODEC=h265
serves H.265 (x265, from gstreamer1.0-plugins-bad), as most cameras sold
today default to; H.264 otherwise.

It prints the port it listens on (127.0.0.1) and serves `/stream` until its
stdin closes. Every frame shows its number as a bar code: 16 vertical bands
across the picture, band i white when bit 15-i of the number is set, so a
test can read from a decoded JPEG *which* frame it is (`frame_number`),
whatever H.264 and JPEG did to the grey levels. With `noise` the lower half
is random noise, so that the encoder needs its whole bitrate (4 Mbit/s) as a
busy scene would: what the benchmark's memory figure must be measured with.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

BITS = 16
SYSTEM_PYTHON = "/usr/bin/python3"
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "assert all(Gst.ElementFactory.find(e) for e in "
    "('x264enc', 'rtph264pay', 'x265enc', 'rtph265pay', 'appsrc', 'videoconvert'))"
)
#: What each codec's stream is made with: encoder (tuned for low latency, no B-frames), payloader.
ENCODERS = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast bitrate=4000 key-int-max={gop} "
    "bframes=0 ! rtph264pay",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast bitrate=4000 key-int-max={gop} "
    "option-string=bframes=0 ! rtph265pay",
}


def available() -> bool:
    """True when the system python has GStreamer's RTSP server, x264 and x265 (./dev test installs them)."""
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, timeout=30, check=False
    )
    return probe.returncode == 0


class RtspServer:
    """This script in a process of its own, as a context manager: `url` is its stream."""

    def __init__(
        self,
        width: int,
        height: int,
        fps: int,
        keyframe_every: int | None = None,
        *,
        noise: bool = False,
        login: tuple[str, str] | None = None,
        codec: str = "h264",
    ) -> None:
        args = [str(width), str(height), str(fps), str(keyframe_every or fps)]
        args += ["noise" if noise else "plain"]
        environ = dict(os.environ, RTSP_TEST_CODEC=codec)
        if login is not None:
            args.append(login[0])
            environ["RTSP_TEST_PASSWORD"] = login[1]
        self.fps = fps
        self.codec = codec
        self._process = subprocess.Popen(
            [SYSTEM_PYTHON, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environ,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"the RTSP server did not start (said {line!r})")
        self.port = int(line)
        self.url = f"rtsp://127.0.0.1:{self.port}/stream"

    def close(self) -> None:
        """Stop the server (closing its stdin) and wait for it."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> RtspServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def bar_code(number: int, width: int, height: int) -> bytes:
    """A GRAY8 picture of `number`'s 16 bits as vertical bands (mid-grey where none fits)."""
    band = width // BITS
    row = b"".join(
        (b"\xff" if number >> (BITS - 1 - bit) & 1 else b"\x00") * band for bit in range(BITS)
    )
    row += b"\x80" * (width - len(row))
    return row * height


def frame_number(jpeg: bytes) -> int:
    """The number a frame shows, read from its JPEG (Pillow, in the venv)."""
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    image = Image.open(io.BytesIO(jpeg)).convert("L")
    band = image.width // BITS
    number = 0
    for bit in range(BITS):
        level = image.getpixel((bit * band + band // 2, image.height // 2))
        number = number << 1 | (1 if isinstance(level, int) and level > 128 else 0)
    return number


def main() -> int:  # pragma: no cover - runs in the system python, in a process of its own
    import gi  # noqa: PLC0415 - only the server process, in the system python, has it

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer  # noqa: PLC0415

    width, height, fps = (int(value) for value in sys.argv[1:4])
    keyframe_every = int(sys.argv[4]) if len(sys.argv) > 4 else fps
    noise = sys.argv[5:6] == ["noise"]
    encoder = ENCODERS[os.environ.get("RTSP_TEST_CODEC", "h264")].format(gop=keyframe_every)
    Gst.init(None)
    launch = (
        f"( appsrc name=src is-live=true do-timestamp=true format=time "
        f"caps=video/x-raw,format=GRAY8,width={width},height={height},framerate={fps}/1 "
        f"! videoconvert ! video/x-raw,format=I420 "
        f"! {encoder} name=pay0 pt=96 config-interval=-1 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    counter = {"n": 0}

    def push(source: object) -> bool:
        counter["n"] += 1
        data = bar_code(counter["n"] % (1 << BITS), width, height)
        if noise:
            half = width * (height // 2)
            data = data[:half] + os.urandom(len(data) - half)
        source.emit("push-buffer", Gst.Buffer.new_wrapped(data))  # type: ignore[attr-defined]
        return True

    def configure(_factory: object, media: object) -> None:
        source = media.get_element().get_by_name_recurse_up("src")  # type: ignore[attr-defined]
        timer = GLib.timeout_add(int(1000 / fps), push, source)
        media.connect("unprepared", lambda *_: GLib.source_remove(timer))  # type: ignore[attr-defined]

    factory.connect("media-configure", configure)
    server = GstRtspServer.RTSPServer()
    if len(sys.argv) > 6:
        require_login(GstRtspServer, Gst, server, factory, sys.argv[6])
    server.set_address("127.0.0.1")
    server.set_service("0")
    server.get_mount_points().add_factory("/stream", factory)
    server.attach(None)
    print(server.get_bound_port(), flush=True)
    loop = GLib.MainLoop()
    threading.Thread(
        target=lambda: (sys.stdin.read(), GLib.idle_add(loop.quit)), daemon=True
    ).start()
    loop.run()
    return 0


def require_login(
    rtsp: Any, gst: Any, server: Any, factory: Any, user: str
) -> None:  # pragma: no cover
    """Basic auth for `user` with the password of RTSP_TEST_PASSWORD; only that user may play."""
    auth = rtsp.RTSPAuth()
    token = rtsp.RTSPToken()
    token.set_string(rtsp.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
    auth.add_basic(rtsp.RTSPAuth.make_basic(user, os.environ["RTSP_TEST_PASSWORD"]), token)
    server.set_auth(auth)
    role = gst.Structure.from_string(
        "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
    )[0]
    factory.add_role_from_structure(role)


if __name__ == "__main__":
    sys.exit(main())
