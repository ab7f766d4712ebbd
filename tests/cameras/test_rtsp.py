"""RTSP stream-backed cameras against a real RTSP server (GStreamer's) on loopback.

The server's frames show their number as a bar code (tests/rtsp_server.py), so
each test reads from the saved JPEG which frame it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from capture.cameras import build_camera
from capture.cameras.errors import CameraError
from capture.cameras.live import LiveCamera
from capture.simulator import SimulatedCamera, Simulator
from tests.cameras.helpers import camera_config
from tests.conftest import needs_tool, wait_for
from tests.rtsp_server import RtspServer, available, frame_number

FPS = 20
GOP = 10  # a keyframe every 10 frames: most frames must be decoded from an earlier keyframe

pytestmark = needs_tool(
    available(),
    "GStreamer's RTSP server for the system python (Debian packages gir1.2-gst-rtsp-server-1.0, "
    "python3-gi, gstreamer1.0-plugins-ugly, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad)",
)


@pytest.fixture(scope="module", params=["h264", "h265"])
def server(request: pytest.FixtureRequest) -> Iterator[RtspServer]:
    """The stream in each codec cameras send: H.264, and H.265 (most cameras' default today)."""
    with RtspServer(320, 240, FPS, GOP, codec=request.param) as rtsp:
        yield rtsp


def rtsp_camera(url: str, **live: object) -> LiveCamera:
    config = camera_config("generic", path="/unused.jpg", live={"url": url, "buffer_s": 3, **live})
    camera = build_camera("line_rtsp", config)
    assert isinstance(camera, LiveCamera)
    return camera


def test_the_server_sends_the_codec_the_test_asks_for(server: RtspServer) -> None:
    import av  # noqa: PLC0415 - the stream extra

    with av.open(server.url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
        name = container.streams.video[0].codec_context.name
    assert name == {"h264": "h264", "h265": "hevc"}[server.codec]


def test_packets_are_buffered_undecoded_and_any_frame_decodes_to_its_own_picture(
    server: RtspServer,
) -> None:
    camera = rtsp_camera(server.url)
    try:
        wait_for(lambda: camera.worker.ring.span_s() >= 1.5)
        frames = list(camera.worker.ring._frames)
        # Undecoded: a 320x240 H.264 packet is a few hundred bytes, its picture 75 KB.
        assert max(len(frame.data) for frame in frames) < 320 * 240 // 4
        assert any(f.keyframe for f in frames) and not all(f.keyframe for f in frames)
        pictures = frames[-GOP * 2 :]
        first = camera.frame_at(pictures[0].arrived)
        later = camera.frame_at(pictures[GOP + 3].arrived)
        assert (first.width, first.height) == (320, 240)
        # Which frame: GOP + 3 pictures later, decoded across a keyframe, shows a number
        # exactly GOP + 3 higher (a picture sent as several packets is one buffered frame).
        assert frame_number(later.jpeg) - frame_number(first.jpeg) == GOP + 3
        assert later.via == "stream" and later.received_monotonic == pictures[GOP + 3].arrived
    finally:
        camera.close()


def test_a_moment_half_a_second_ago_shows_the_frame_of_that_moment(server: RtspServer) -> None:
    camera = rtsp_camera(server.url)
    try:
        wait_for(lambda: camera.worker.ring.span_s() >= 1.5)
        now = camera.frame_at(time.monotonic())
        before = camera.frame_at(now.received_monotonic - 0.5)
        held = [frame.arrived for frame in camera.worker.ring._frames]
        nearest = min(held, key=lambda at: abs(at - (now.received_monotonic - 0.5)))
        assert before.received_monotonic == nearest
        # Each buffered frame is one picture: the numbers differ by the frames between them.
        between = held.index(now.received_monotonic) - held.index(nearest)
        assert frame_number(now.jpeg) - frame_number(before.jpeg) == between
        assert abs(between - FPS // 2) <= FPS // 4  # about half a second of pictures
        state = camera.state().stream
        assert state is not None and state.up and state.source == server.url
        assert state.fps > FPS / 2
    finally:
        camera.close()


def test_an_rtsp_server_that_is_not_there_is_reported_and_retried() -> None:
    camera = rtsp_camera("rtsp://127.0.0.1:9/stream", fallback=False)
    try:
        wait_for(lambda: camera.worker.state().last_error is not None)
        assert "RTSP rtsp://127.0.0.1:9/stream (opening)" in (
            camera.worker.state().last_error or ""
        )
        with pytest.raises(CameraError, match="fallback is off"):
            camera.frame_at(time.monotonic())
    finally:
        camera.close()


@pytest.mark.parametrize(
    ("password", "outcome"), [("Rtsp-Secret-77", "up"), ("Rtsp-Wrong-77", "refused")]
)
def test_the_camera_login_goes_to_the_server_and_never_into_what_is_shown(
    password: str, outcome: str
) -> None:
    with RtspServer(320, 240, FPS, GOP, login=("viewer", "Rtsp-Secret-77")) as guarded:
        config = camera_config(
            "generic",
            path="/unused.jpg",
            user="viewer",
            password=password,
            live={"url": guarded.url, "buffer_s": 2, "fallback": False},
        )
        camera = build_camera("line_rtsp", config)
        try:
            assert isinstance(camera, LiveCamera)
            if outcome == "up":
                wait_for(lambda: camera.worker.up)
            else:
                wait_for(lambda: camera.worker.state().last_error is not None)
                error = camera.worker.state().last_error or ""
                # The refusal, or (a second on) the back-off that it started, naming it.
                assert (
                    f"camera line_rtsp: RTSP {guarded.url} (opening): the camera refused the "
                    "login; check user and password (in the rule file)"
                ) in error
                # A failed login the device counts: no next one before the back-off ends.
                assert (camera.state().locked_out_for_s or 0) > 50
            shown = repr(camera.state())
            assert "Rtsp-Secret-77" not in shown and "Rtsp-Wrong-77" not in shown
        finally:
            camera.close()


def test_when_the_rtsp_server_goes_away_the_snapshot_url_answers_and_says_so() -> None:
    with Simulator([SimulatedCamera("gate", "generic", auth="none")]) as sim:
        rtsp = RtspServer(320, 240, FPS, GOP)
        config = camera_config(
            "generic",
            port=sim.port_of("gate"),
            path="/snap.jpg",
            live={"url": rtsp.url, "buffer_s": 2},
        )
        camera = build_camera("line_rtsp", config)
        try:
            assert isinstance(camera, LiveCamera)
            wait_for(lambda: camera.worker.up)
            assert camera.snapshot().via == "stream"
            rtsp.close()
            wait_for(lambda: not camera.worker.up, timeout=20)
            # Four frame intervals after the last frame: no frame of the stream shows it.
            last = camera.worker.ring.nearest(time.monotonic(), wait_s=0)
            assert last is not None
            snapshot = camera.frame_at(last[-1].arrived + 4 / FPS)
            assert snapshot.via == "fallback"
            assert snapshot.source.endswith("/snap.jpg")
        finally:
            camera.close()
            rtsp.close()


def test_a_keyframe_interval_longer_than_the_buffer_still_gives_every_moment() -> None:
    """A keyframe every 2 s (bandwidth settings, H.264+) with buffer_s = 1: the buffer keeps
    the group each buffered frame decodes from, so no picture fails for want of it."""
    with RtspServer(320, 240, FPS, 2 * FPS) as long_gop:
        camera = rtsp_camera(long_gop.url, buffer_s=1, fallback=False)
        try:
            wait_for(lambda: camera.worker.ring.span_s() >= 2.5, timeout=15)
            for _ in range(6):
                now = time.monotonic()
                snapshot = camera.frame_at(now - 0.5)
                assert snapshot.via == "stream" and (snapshot.width, snapshot.height) == (320, 240)
                assert frame_number(snapshot.jpeg) >= 0
                time.sleep(0.3)
            assert camera.worker.ring._frames[0].keyframe
        finally:
            camera.close()
