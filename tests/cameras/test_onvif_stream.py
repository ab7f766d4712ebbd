"""An ONVIF camera keeping its stream warm: the RTSP URI asked over ONVIF, the frames from GStreamer."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from capture.cameras import build_camera
from capture.cameras.live import LiveCamera
from tests.cameras.helpers import camera_config
from tests.cameras.onvif_device import OnvifDevice, Profile
from tests.conftest import needs_tool, wait_for
from tests.rtsp_server import RtspServer, available, frame_number

PASSWORD = "Onvif-Stream-Pass-4"

pytestmark = needs_tool(
    available(),
    "GStreamer's RTSP server for the system python (Debian packages gir1.2-gst-rtsp-server-1.0, "
    "python3-gi, gstreamer1.0-plugins-ugly, gstreamer1.0-plugins-good)",
)


@pytest.fixture(scope="module")
def server() -> Iterator[RtspServer]:
    with RtspServer(320, 240, 15, 15) as rtsp:
        yield rtsp


@pytest.fixture
def device(server: RtspServer) -> Iterator[OnvifDevice]:
    """A device whose sub-stream profile (token "stream") is the RTSP server's only mount."""
    profiles = (
        Profile("Profile_1", "mainStream", "H264", 2688, 1520),
        Profile("stream", "subStream", "H264", 320, 240),
    )
    base = server.url.rsplit("/", 1)[0]
    with OnvifDevice(
        "admin", PASSWORD, "http://127.0.0.1:9/unused.jpg", profiles=profiles,
        stream_uri=base + "/{token}",
    ) as onvif:  # fmt: skip
        yield onvif


def onvif_camera(device: OnvifDevice, **options: object) -> LiveCamera:
    config = camera_config(
        "onvif", port=device.port, user="admin", password=PASSWORD, live={"buffer_s": 3}, **options
    )
    camera = build_camera("dock", config)
    assert isinstance(camera, LiveCamera)
    return camera


def test_a_live_section_without_url_keeps_the_sub_stream_the_device_names(
    device: OnvifDevice, server: RtspServer
) -> None:
    camera = onvif_camera(device)
    try:
        wait_for(lambda: camera.worker.ring.span_s() >= 1.0, timeout=20)
        picture = camera.frame_at(time.monotonic())
        assert (picture.width, picture.height) == (320, 240) and picture.via == "stream"
        assert frame_number(picture.jpeg) >= 0
        state = camera.state().stream
        assert state is not None and state.up and state.source == server.url
        assert "GetStreamUri" in device.calls
        assert PASSWORD not in repr(state)
    finally:
        camera.close()


def test_stream_main_asks_for_the_main_profile_s_uri(device: OnvifDevice) -> None:
    camera = onvif_camera(device, stream="main")
    try:
        # The main profile's URI is no mount of the server: the stream says so and retries.
        wait_for(lambda: camera.worker.state().last_error is not None, timeout=20)
        state = camera.state().stream
        assert state is not None and not state.up
        assert state.source.endswith("/Profile_1")
    finally:
        camera.close()
