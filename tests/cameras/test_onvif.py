"""The ONVIF driver: the snapshot URI asked over ONVIF, the picture fetched from the simulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from capture.cameras import build_camera
from capture.cameras.errors import AuthFailed, LockedOut, Unreachable, Unsupported
from capture.cameras.onvif import ASK_AGAIN_FIRST_S, OnvifCamera
from capture.simulator import SimulatedCamera, Simulator
from tests.cameras.helpers import camera_config
from tests.cameras.onvif_device import OnvifDevice

PASSWORD = "Onvif-Dock-Pass-9"
WRONG_PASSWORD = "Onvif-Bad-Pass-3"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """The HTTP side of the device: a digest-auth snapshot URL with real JPEGs."""
    with Simulator([SimulatedCamera("dock", "generic", password=PASSWORD, auth="digest")]) as s:
        yield s


@pytest.fixture
def device(sim: Simulator) -> Iterator[OnvifDevice]:
    snapshot = sim.url_of("dock") + "/snap.jpg?profile={token}"
    with OnvifDevice("admin", PASSWORD, snapshot) as onvif:
        yield onvif


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connect(device: OnvifDevice, clock: Clock | None = None, **options: Any) -> OnvifCamera:
    settings: dict[str, Any] = {"port": device.port, "user": "admin", "password": PASSWORD}
    settings.update(options)
    config = camera_config("onvif", **settings)
    if clock is None:
        camera = build_camera("dock", config)
    else:
        camera = OnvifCamera("dock", config, clock=clock)
    assert isinstance(camera, OnvifCamera)
    return camera


def test_a_snapshot_comes_from_the_main_profile_s_uri_and_the_device_is_asked_once(
    device: OnvifDevice, sim: Simulator
) -> None:
    camera = connect(device)
    try:
        first = camera.snapshot()
        second = camera.snapshot()
    finally:
        camera.close()
    assert first.jpeg.startswith(b"\xff\xd8") and first.width > 0
    assert first.source == sim.url_of("dock") + "/snap.jpg?profile=Profile_1"
    assert second.source == first.source
    assert device.calls.count("GetProfiles") == 1
    state = camera.state()
    assert state.ok and state.auth_scheme == "digest"
    assert state.note is not None and 'Profile_1 "mainStream" H264 2688x1520' in state.note


@pytest.mark.parametrize(
    ("options", "token"),
    [
        ({"stream": "sub"}, "Profile_2"),
        ({"profile": "subStream"}, "Profile_2"),
        ({"profile": "Profile_1", "stream": "sub"}, "Profile_1"),  # profile wins
        ({"profile": "first"}, "Profile_1"),
    ],
)
def test_the_profile_is_chosen_by_profile_else_by_stream(
    device: OnvifDevice, options: dict[str, Any], token: str
) -> None:
    camera = connect(device, **options)
    try:
        assert camera.snapshot().source.endswith(f"profile={token}")
    finally:
        camera.close()


def test_an_unknown_profile_is_unsupported_and_names_the_device_s_profiles(
    device: OnvifDevice,
) -> None:
    camera = connect(device, profile="Profile_9")
    try:
        with pytest.raises(Unsupported, match=r"no profile named .*Profile_2 \"subStream\""):
            camera.snapshot()
    finally:
        camera.close()


def test_a_wrong_password_is_auth_failed_then_backed_off_without_asking_again(
    device: OnvifDevice,
) -> None:
    camera = connect(device, password=WRONG_PASSWORD)
    try:
        with pytest.raises(AuthFailed) as caught:
            camera.snapshot()
        assert "refused the login" in str(caught.value)
        assert WRONG_PASSWORD not in str(caught.value)
        asked = len(device.calls)
        with pytest.raises(LockedOut):
            camera.snapshot()
        assert len(device.calls) == asked  # the back-off keeps the device's lockout counter safe
        locked = camera.state().locked_out_for_s
        assert locked is not None and locked > 0  # the dashboard's countdown
    finally:
        camera.close()


def _closed_port() -> int:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        return int(placeholder.getsockname()[1])


def test_a_failing_snapshot_uri_is_asked_again_after_a_back_off_and_a_new_one_is_used(
    device: OnvifDevice, sim: Simulator
) -> None:
    working = device.snapshot_uri
    device.snapshot_uri = f"http://127.0.0.1:{_closed_port()}/snap.jpg?profile={{token}}"
    clock = Clock()
    camera = connect(device, clock)
    try:
        with pytest.raises(Unreachable):
            camera.snapshot()
        with pytest.raises(Unreachable):
            camera.snapshot()  # within the back-off: the same URI, the device not asked
        assert device.calls.count("GetProfiles") == 1
        device.snapshot_uri = working  # e.g. the device moved its snapshot service
        clock.now += ASK_AGAIN_FIRST_S
        snapshot = camera.snapshot()
    finally:
        camera.close()
    assert device.calls.count("GetProfiles") == 2
    assert snapshot.source == sim.url_of("dock") + "/snap.jpg?profile=Profile_1"


def test_an_unreachable_onvif_service_is_asked_again_only_after_the_back_off() -> None:
    clock = Clock()
    config = camera_config("onvif", port=_closed_port(), user="admin", password=PASSWORD)
    camera = OnvifCamera("dock", config, clock=clock)
    try:
        with pytest.raises(Unreachable, match="cannot be reached"):
            camera.snapshot()
        with pytest.raises(Unreachable, match=r"asked again in 5 s"):
            camera.snapshot()
        clock.now += ASK_AGAIN_FIRST_S
        with pytest.raises(Unreachable, match="cannot be reached"):
            camera.snapshot()
        with pytest.raises(Unreachable, match=r"asked again in 10 s"):
            camera.snapshot()  # the wait doubles
    finally:
        camera.close()


def test_an_https_snapshot_uri_under_scheme_http_is_refused_not_fetched_unchecked(
    device: OnvifDevice,
) -> None:
    device.snapshot_uri = "https://127.0.0.1:9/snap.jpg?profile={token}"
    camera = connect(device)
    try:
        with pytest.raises(Unsupported, match="snapshot URI of profile Profile_1 is https://"):
            camera.snapshot()
    finally:
        camera.close()
