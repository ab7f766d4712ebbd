"""The ONVIF driver: the snapshot URI asked over ONVIF, the picture fetched from the simulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from capture.cameras import build_camera
from capture.cameras.errors import AuthFailed, DeviceError, LockedOut, Unreachable, Unsupported
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


def test_a_snapshot_uri_with_its_port_twice_is_mended_and_an_invalid_one_is_a_device_error(
    sim: Simulator,
) -> None:
    """camera-apis.md §2.13: `http://h:8106:8106/...`; httpx refuses such a URL outright."""
    port = sim.url_of("dock").rsplit(":", 1)[1]
    doubled = sim.url_of("dock") + f":{port}/snap.jpg?profile={{token}}"
    with OnvifDevice("admin", PASSWORD, doubled) as onvif:
        camera = connect(onvif)
        try:
            assert camera.snapshot().source == sim.url_of("dock") + "/snap.jpg?profile=Profile_1"
        finally:
            camera.close()
    with OnvifDevice("admin", PASSWORD, "http://127.0.0.1:81:81:81/snap.jpg") as onvif:
        camera = connect(onvif)
        try:
            with pytest.raises(DeviceError, match="is not a valid URL"):
                camera.snapshot()
            assert camera.state().last_error_kind == "DeviceError"
        finally:
            camera.close()


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


def test_the_device_is_asked_when_the_camera_is_built_before_any_snapshot(
    device: OnvifDevice,
) -> None:
    camera = connect(device)
    try:
        assert camera.warmed_up.wait(10)
        assert device.calls.count("GetProfiles") == 1
        note = camera.state().note
        assert note is not None and "HIKVISION DS-2CD2143G0-I" in note
        camera.snapshot()
        assert device.calls.count("GetProfiles") == 1  # the picture did not wait for ONVIF
    finally:
        camera.close()


def test_a_wrong_password_is_auth_failed_at_start_then_backed_off_without_asking_again(
    device: OnvifDevice,
) -> None:
    camera = connect(device, password=WRONG_PASSWORD)
    try:
        assert camera.warmed_up.wait(10)
        state = camera.state()
        assert state.ok is False and state.last_error_kind == "AuthFailed"
        assert state.last_error is not None and "refused the login" in state.last_error
        assert WRONG_PASSWORD not in state.last_error
        asked = len(device.calls)
        with pytest.raises(LockedOut):
            camera.snapshot()
        assert len(device.calls) == asked  # the back-off keeps the device's lockout counter safe
        locked = camera.state().locked_out_for_s
        assert locked is not None and locked > 0  # the dashboard's countdown
    finally:
        camera.close()


def test_a_password_changed_on_the_device_is_auth_failed_when_it_is_asked_again(
    device: OnvifDevice,
) -> None:
    clock = Clock()
    device.snapshot_uri = f"http://127.0.0.1:{_closed_port()}/snap.jpg?{{token}}"
    camera = connect(device, clock)
    try:
        assert camera.warmed_up.wait(10)
        with pytest.raises(Unreachable):
            camera.snapshot()  # the URI fails: ask again after the back-off
        device.password = "Changed-On-Device-5"
        clock.now += ASK_AGAIN_FIRST_S
        with pytest.raises(AuthFailed, match="refused the login") as caught:
            camera.snapshot()
        assert caught.value.credentials_rejected
        with pytest.raises(LockedOut):
            camera.snapshot()
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
        assert camera.warmed_up.wait(10)
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
        assert camera.warmed_up.wait(10)
        assert camera.state().last_error_kind == "Unreachable"  # the ask at start failed
        with pytest.raises(Unreachable, match=r"cannot be reached.*asked again in 5 s"):
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


@pytest.mark.timeout(30)
def test_closing_abandons_a_question_the_device_never_answers() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the backlog; nothing ever answers
        port = silent.getsockname()[1]
        config = camera_config("onvif", port=port, user="admin", password=PASSWORD, deadline_s=300)
        camera = OnvifCamera("dock", config)
        assert not camera.warmed_up.wait(0.2)  # still waiting for the device
        camera.close()  # within the test's timeout, not the 300 s deadline
    assert camera.warmed_up.is_set()
    assert camera.state().ok is None  # an abandoned question is no failure of the camera
