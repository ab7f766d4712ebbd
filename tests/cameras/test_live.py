"""Stream-backed cameras against the simulator: the buffer fills, frames by moment, fallback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from capture.cameras import BufferedCamera, build_camera
from capture.cameras.errors import CameraError, LockedOut
from capture.cameras.live import LiveCamera, StreamDown
from capture.simulator import SimulatedCamera, Simulator
from tests.cameras.helpers import camera_config
from tests.cameras.helpers import frame_counter as counter
from tests.conftest import wait_for

PASSWORD = "sim#live&1"
FPS = 20


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    cameras = [
        SimulatedCamera("belt", "mjpeg", password=PASSWORD, fps=FPS),
        SimulatedCamera("xrc", "xrc", password=PASSWORD, fps=FPS),
    ]
    with Simulator(cameras) as simulator:
        yield simulator


def live_camera(
    sim: Simulator, name: str, timeout_s: float = 10, password: str = PASSWORD, **live: object
) -> LiveCamera:
    vendor = {"belt": "mjpeg", "xrc": "xrc"}[name]
    options: dict[str, object] = {"path": "/mjpg/video.mjpg"} if vendor == "mjpeg" else {}
    config = camera_config(
        vendor,
        port=sim.port_of(name),
        user="admin",
        password=password,
        timeout_s=timeout_s,
        live={"buffer_s": 3, **live},
        **options,
    )
    camera = build_camera(name, config)
    assert isinstance(camera, LiveCamera)
    return camera


def test_the_buffer_fills_and_the_dashboard_sees_the_stream(sim: Simulator) -> None:
    camera = live_camera(sim, "belt")
    try:
        assert isinstance(camera, BufferedCamera)
        wait_for(lambda: camera.worker.ring.span_s() >= 1.0)
        state = camera.state().stream
        assert state is not None and state.up
        assert state.fps > FPS / 2
        assert state.kbit_s > 0
        assert state.source.endswith("/mjpg/video.mjpg")
        assert PASSWORD not in repr(camera.state())
    finally:
        camera.close()


def test_a_past_moment_gives_the_frame_that_arrived_nearest_it(sim: Simulator) -> None:
    camera = live_camera(sim, "belt")
    try:
        wait_for(lambda: camera.worker.ring.span_s() >= 1.0)
        held = camera.worker.ring.nearest(0.0, wait_s=0)
        assert held is not None
        frames = list(camera.worker.ring._frames)  # what the buffer held at this moment
        target = frames[len(frames) // 2]
        snapshot = camera.frame_at(target.arrived + 0.001)  # just after it: still the nearest
        assert counter(snapshot.jpeg) == counter(target.data)
        assert snapshot.received_monotonic == target.arrived
        assert snapshot.via == "stream"
        half_second_ago = time.monotonic() - 0.5
        earlier = camera.frame_at(half_second_ago)
        held = [frame.arrived for frame in camera.worker.ring._frames]
        assert earlier.received_monotonic == min(held, key=lambda at: abs(at - half_second_ago))
    finally:
        camera.close()


def test_a_coming_moment_waits_for_the_stream(sim: Simulator) -> None:
    camera = live_camera(sim, "belt")
    try:
        wait_for(lambda: camera.worker.up)
        moment = time.monotonic() + 0.2
        snapshot = camera.frame_at(moment)
        assert time.monotonic() >= snapshot.received_monotonic >= moment - 1 / FPS
        newer = camera.frame_at(moment)  # the same moment again: the same frame
        assert counter(newer.jpeg) == counter(snapshot.jpeg)
    finally:
        camera.close()


def test_xrc_streams_through_request_av_and_videostream(sim: Simulator) -> None:
    camera = live_camera(sim, "xrc")
    try:
        wait_for(lambda: len(camera.worker.ring) >= 3)
        snapshot = camera.snapshot()
        assert snapshot.via == "stream"
        assert "/videostream.cgi?id=" in snapshot.source
        assert snapshot.source.endswith("&stream=1")  # the sub-stream unless main is asked for
        assert (snapshot.width, snapshot.height) == (320, 240)
        assert PASSWORD not in snapshot.source
    finally:
        camera.close()


def test_a_dropped_stream_falls_back_to_snapshots_and_reconnects(sim: Simulator) -> None:
    camera = live_camera(sim, "xrc")
    try:
        wait_for(lambda: camera.worker.up)
        sim.faults("xrc").xrc_too_many_viewers = True  # no new stream, snapshot.cgi still answers
        sim.drop_connections("xrc")
        wait_for(lambda: not camera.worker.up)
        # Four frame intervals after the last frame: no frame of the stream shows it.
        last = camera.worker.ring.nearest(time.monotonic(), wait_s=0)
        assert last is not None
        snapshot = camera.frame_at(last[-1].arrived + 4 / FPS)
        assert snapshot.via == "fallback"
        assert "/snapshot.cgi" in snapshot.source
        wait_for(lambda: "too many viewers" in (camera.worker.state().last_error or ""))
        sim.reset_faults("xrc")
        wait_for(lambda: camera.worker.up, timeout=15)
        assert camera.snapshot().via == "stream"
        assert camera.state().stream.reconnects >= 1  # type: ignore[union-attr]
    finally:
        sim.reset_faults("xrc")
        camera.close()


def test_without_fallback_a_down_stream_fails_the_frame(sim: Simulator) -> None:
    sim.faults("belt").stall_stream = True  # headers, then nothing: never a frame
    # The first picture waits for the first connection's outcome: the read timeout, here 1 s.
    camera = live_camera(sim, "belt", timeout_s=1, fallback=False)
    try:
        with pytest.raises(StreamDown, match="fallback is off") as caught:
            camera.frame_at(time.monotonic())
        assert isinstance(caught.value, CameraError)
    finally:
        sim.reset_faults("belt")
        camera.close()


def test_a_picture_asked_right_after_start_waits_for_the_first_connection(
    sim: Simulator,
) -> None:
    camera = live_camera(sim, "belt", fallback=False)  # as `capture snap` builds and asks at once
    try:
        assert camera.snapshot().via == "stream"
    finally:
        camera.close()


def test_a_refused_stream_login_obeys_the_device_back_off_and_holds_its_snapshots(
    sim: Simulator,
) -> None:
    """Reconnecting every second with a wrong password would lock the camera's account."""
    before = sim.bad_login_count("belt")
    camera = live_camera(sim, "belt", password="not-" + PASSWORD, reconnect_max_s=1)
    try:
        wait_for(lambda: sim.bad_login_count("belt") - before == 1)
        wait_for(lambda: "not contacted for another" in (camera.worker.state().last_error or ""))
        # Long enough for three reconnects at reconnect_max_s = 1 without the back-off.
        time.sleep(3.5)
        assert sim.bad_login_count("belt") - before == 1
        assert (camera.state().locked_out_for_s or 0) > 50  # the dashboard's countdown
        with pytest.raises(LockedOut):  # the fallback snapshot tries no login either
            camera.snapshot()
        assert sim.bad_login_count("belt") - before == 1
    finally:
        camera.close()
