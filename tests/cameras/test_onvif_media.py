"""Asking an ONVIF device for its profiles and URIs, over real sockets, and choosing a profile."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from capture.cameras.errors import AuthFailed, DeviceError, Timeout, Unreachable, Unsupported
from capture.cameras.onvif_media import (
    DeviceInfo,
    DeviceMedia,
    MediaProfile,
    OnvifTarget,
    ask_device,
)
from capture.simulator import Simulator
from tests.cameras.onvif_device import OnvifDevice, Profile

PASSWORD = "Onvif-Right-Pass-1"
WRONG_PASSWORD = "Onvif-Wrong-Pass-2"
SNAPSHOT = "http://127.0.0.1:9/onvif-http/snapshot?{token}"


@pytest.fixture
def device() -> Iterator[OnvifDevice]:
    with OnvifDevice("admin", PASSWORD, SNAPSHOT) as onvif:
        yield onvif


def target(
    device: OnvifDevice, password: str | None = PASSWORD, user: str | None = "admin"
) -> OnvifTarget:
    return OnvifTarget("dock", "127.0.0.1", device.port, user, password)


def test_a_device_gives_its_identity_and_each_profile_with_encoding_size_and_uris(
    device: OnvifDevice,
) -> None:
    media = ask_device(target(device), 10)
    assert media.info == DeviceInfo("HIKVISION", "DS-2CD2143G0-I", "V5.5.82 build 190909")
    main, sub = media.profiles
    assert (main.token, main.name, main.encoding, main.width, main.height) == (
        "Profile_1", "mainStream", "H264", 2688, 1520,
    )  # fmt: skip
    assert main.snapshot_uri == "http://127.0.0.1:9/onvif-http/snapshot?Profile_1"
    assert main.stream_uri == "rtsp://127.0.0.1:554/Streaming/Channels/101?transportmode=unicast"
    assert (sub.width, sub.height) == (640, 360)
    assert sub.stream_uri == "rtsp://127.0.0.1:554/Streaming/Channels/102?transportmode=unicast"
    assert media.profile_for("sub", needs="stream") is sub
    assert {"GetDeviceInformation", "GetProfiles", "GetSnapshotUri", "GetStreamUri"} <= set(
        device.calls
    )


def test_a_wrong_password_is_a_rejected_login_that_never_shows_the_password(
    device: OnvifDevice,
) -> None:
    with pytest.raises(AuthFailed) as caught:
        ask_device(target(device, WRONG_PASSWORD), 10)
    assert caught.value.credentials_rejected
    assert "refused the login" in str(caught.value) and "user 'admin'" in str(caught.value)
    assert WRONG_PASSWORD not in str(caught.value) and PASSWORD not in str(caught.value)
    assert device.refused >= 1
    assert "GetProfiles" not in device.calls


def test_a_refusal_without_the_not_authorized_subcode_is_still_a_rejected_login() -> None:
    with (
        OnvifDevice("admin", PASSWORD, SNAPSHOT, bare_auth_fault=True) as device,
        pytest.raises(AuthFailed, match="You still have 22 attempt") as caught,
    ):
        ask_device(target(device, WRONG_PASSWORD), 10)
    assert caught.value.credentials_rejected


def test_a_snapshot_uri_that_is_not_http_counts_as_none() -> None:
    with OnvifDevice("admin", PASSWORD, "rtsp://127.0.0.1/snapshot?{token}") as device:
        media = ask_device(target(device), 10)
    assert [p.snapshot_uri for p in media.profiles] == [None, None]
    with pytest.raises(LookupError, match="no profile offers a snapshot URI"):
        media.profile_for("main")


def test_no_user_is_refused_by_a_device_that_wants_a_login(device: OnvifDevice) -> None:
    with pytest.raises(AuthFailed, match="no user given") as caught:
        ask_device(target(device, None, None), 10)
    assert not caught.value.credentials_rejected  # nothing to back off: no password was tried


def test_a_device_without_a_media_service_is_unsupported() -> None:
    with (
        OnvifDevice("admin", PASSWORD, SNAPSHOT, media=False) as device,
        pytest.raises(Unsupported, match="offers no media service"),
    ):
        ask_device(target(device), 10)


def test_a_profile_without_snapshots_keeps_its_stream_and_is_not_chosen_for_pictures() -> None:
    profiles = (
        Profile("Profile_1", "mainStream", "H265", 3840, 2160, snapshot=False),
        Profile("Profile_2", "subStream", "H264", 704, 576),
    )
    with OnvifDevice("admin", PASSWORD, SNAPSHOT, profiles=profiles) as device:
        media = ask_device(target(device), 10)
    main, sub = media.profiles
    assert main.snapshot_uri is None and main.stream_uri is not None
    assert media.profile_for("main") is sub  # the largest that gives snapshots
    assert media.profile_for("main", needs="stream") is main
    with pytest.raises(LookupError, match=r'Profile_1 "mainStream" H265 3840x2160 offers no'):
        media.profile_for("Profile_1")


def test_a_closed_port_is_unreachable() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with pytest.raises(Unreachable, match=f"ONVIF at http://127.0.0.1:{port} cannot be reached"):
        ask_device(OnvifTarget("dock", "127.0.0.1", port, "admin", PASSWORD), 5)


def test_an_http_server_that_is_not_onvif_is_a_device_error(simulator: Simulator) -> None:
    port = simulator.port_of("dahua")  # answers GET only: the POST gets HTTP 501
    with pytest.raises(DeviceError, match=r"answered, but not in ONVIF \(no SOAP answer\)"):
        ask_device(OnvifTarget("dock", "127.0.0.1", port, "admin", PASSWORD), 5)


def test_it_can_be_asked_from_a_thread_running_an_event_loop(device: OnvifDevice) -> None:
    async def from_the_dashboard() -> DeviceMedia:
        return ask_device(target(device), 10)

    assert len(asyncio.run(from_the_dashboard()).profiles) == 2


def _profile(token: str, name: str, width: int, snapshot: bool = True) -> MediaProfile:
    uri = f"http://cam/{token}.jpg" if snapshot else None
    return MediaProfile(token, name, "H264", width, width * 9 // 16, uri, f"rtsp://cam/{token}")


MEDIA = DeviceMedia(
    DeviceInfo("ACME", "X1", "1.0"),
    (
        _profile("prof0", "Sub", 640),
        _profile("prof1", "Main", 1920),
        _profile("prof2", "Third", 1280),
        _profile("prof3", "NoSnap", 3840, snapshot=False),
    ),
)


@pytest.mark.parametrize(
    ("choice", "token"),
    [
        ("first", "prof0"),
        ("main", "prof1"),
        ("sub", "prof0"),
        ("prof2", "prof2"),
        ("Third", "prof2"),
        ("third", "prof2"),
        ("PROF1", "prof1"),
    ],
)
def test_a_profile_is_chosen_by_token_name_first_main_or_sub(choice: str, token: str) -> None:
    assert MEDIA.profile_for(choice).token == token


def test_an_unknown_profile_names_those_the_device_has() -> None:
    with pytest.raises(LookupError, match=r"no profile named or with the token 'prof9'.*prof3 "):
        MEDIA.profile_for("prof9")


def test_a_device_that_accepts_but_never_answers_is_a_timeout_within_the_time_given() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the backlog; nothing ever answers
        port = silent.getsockname()[1]
        with pytest.raises(Timeout, match=r"no complete ONVIF answer .* within 0.5 s"):
            ask_device(OnvifTarget("dock", "127.0.0.1", port, "admin", PASSWORD), 0.5)
