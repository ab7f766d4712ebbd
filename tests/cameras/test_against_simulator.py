"""Every driver, auth mode and fault over real sockets, against the camera simulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from capture.cameras import Snapshot, build_camera
from capture.cameras.base import HttpCamera
from capture.cameras.errors import (
    AuthFailed,
    CameraError,
    DeviceError,
    InvalidImage,
    LockedOut,
    Timeout,
    Unreachable,
)
from capture.simulator import SimulatedCamera, Simulator
from tests.cameras.helpers import camera_config

PASSWORD = "sim#pass&1"
DEVICES = [
    SimulatedCamera("hik-md5", "hikvision", password=PASSWORD),
    SimulatedCamera("hik-sha256", "hikvision", password=PASSWORD, digest_algorithms=("SHA-256",)),
    SimulatedCamera(
        "hik-both", "hikvision", password=PASSWORD, digest_algorithms=("MD5", "SHA-256")
    ),
    SimulatedCamera("hik-sess", "hikvision", password=PASSWORD, digest_algorithms=("MD5-sess",)),
    SimulatedCamera("hik-2069", "hikvision", password=PASSWORD, digest_qop=None),
    SimulatedCamera("hik-basic", "hikvision", password=PASSWORD, auth="basic"),
    SimulatedCamera("hik-open", "hikvision", password=PASSWORD, auth="none"),
    SimulatedCamera("nvr", "hikvision", password=PASSWORD, channels=4),
    SimulatedCamera("dahua", "dahua", password=PASSWORD),
    SimulatedCamera("dahua-basic", "dahua", password=PASSWORD, auth="basic"),
    SimulatedCamera("edimax", "edimax", password=PASSWORD),
    SimulatedCamera("edimax-digest", "edimax", password=PASSWORD, auth="digest"),
    SimulatedCamera("xrc", "xrc", password=PASSWORD),
    SimulatedCamera("xrc-basic", "xrc", password=PASSWORD, auth="basic"),
    SimulatedCamera("mjpeg", "mjpeg", password=PASSWORD, fps=20),
    SimulatedCamera("mjpeg-digest", "mjpeg", password=PASSWORD, auth="digest", fps=20),
    SimulatedCamera("generic", "generic", password=PASSWORD),
    SimulatedCamera("generic-query", "generic", password=PASSWORD, auth="query"),
    SimulatedCamera("generic-basic", "generic", password=PASSWORD, auth="basic"),
    SimulatedCamera("generic-digest", "generic", password=PASSWORD, auth="digest"),
]
VENDOR_OF = {device.name: device.vendor for device in DEVICES}
#: Options the driver needs for each simulated camera beyond host, port and credentials.
OPTIONS: dict[str, dict[str, Any]] = {
    "mjpeg": {"path": "/mjpg/video.mjpg"},
    "mjpeg-digest": {"path": "/mjpg/video.mjpg"},
    "generic": {"path": "/snap.jpg"},
    "generic-query": {"path": "/snap.jpg", "auth": "query"},
    "generic-basic": {"path": "/snap.jpg"},
    "generic-digest": {"path": "/snap.jpg"},
    "xrc-basic": {"auth": "basic"},
}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(DEVICES) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _faults_off(sim: Simulator) -> Iterator[None]:
    yield
    for device in DEVICES:
        sim.reset_faults(device.name)


def connect(sim: Simulator, name: str, **options: Any) -> HttpCamera:
    settings: dict[str, Any] = {
        "port": sim.port_of(name),
        "user": "admin",
        "password": PASSWORD,
        "timeout_s": 5,
        **OPTIONS.get(name, {}),
        **options,
    }
    camera = build_camera(name, camera_config(VENDOR_OF[name], **settings))
    assert isinstance(camera, HttpCamera)
    return camera


def snap(sim: Simulator, name: str, times: int = 1, **options: Any) -> list[Snapshot]:
    camera = connect(sim, name, **options)
    try:
        return [camera.snapshot() for _ in range(times)]
    finally:
        camera.close()


def failure(sim: Simulator, name: str, **options: Any) -> CameraError:
    camera = connect(sim, name, **options)
    try:
        with pytest.raises(CameraError) as caught:
            camera.snapshot()
    finally:
        camera.close()
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in (caught.value.excerpt or "")
    return caught.value


# ------------------------------------------------------------------ drivers and auth modes


@pytest.mark.parametrize("name", [device.name for device in DEVICES])
@pytest.mark.parametrize("auth", ["auto", "configured"])
def test_every_driver_and_auth_mode_delivers_fresh_valid_jpegs(
    sim: Simulator, name: str, auth: str
) -> None:
    device = next(d for d in DEVICES if d.name == name)
    options: dict[str, Any] = {}
    if auth == "configured":
        options["auth"] = device.effective_auth
    before = sim.bad_login_count(name)
    snapshots = snap(sim, name, times=3, **options)
    assert [(s.width, s.height) for s in snapshots] == [(640, 480)] * 3
    assert len({s.jpeg for s in snapshots}) == 3  # new pictures, not a cached one
    assert not any(s.stale for s in snapshots)
    assert all(PASSWORD not in s.source and "%23" not in s.source for s in snapshots)
    assert sim.bad_login_count(name) == before  # no handshake counted as a failed login


def test_digest_is_answered_once_then_sent_preemptively(sim: Simulator) -> None:
    before = sim.request_count("hik-md5")
    snap(sim, "hik-md5", times=5)
    assert sim.request_count("hik-md5") - before == 6  # one 401, then five answered requests


def test_strongest_digest_challenge_is_chosen(sim: Simulator) -> None:
    camera = connect(sim, "hik-both")
    try:
        camera.snapshot()
        state = camera.http.auth.memory.digest  # the challenge kept for pre-emptive answers
        assert state is not None and state.algorithm == "SHA-256"
    finally:
        camera.close()


def test_expired_nonce_is_rehashed_without_a_failed_login(sim: Simulator) -> None:
    camera = connect(sim, "hik-md5")
    authenticator = sim._device("hik-md5").auth  # no public way yet to age the nonces
    real_clock = authenticator._clock
    try:
        camera.snapshot()
        authenticator._clock = lambda: real_clock() + 3600  # every nonce issued so far expired
        before = (sim.request_count("hik-md5"), sim.bad_login_count("hik-md5"))
        camera.snapshot()
        after = (sim.request_count("hik-md5"), sim.bad_login_count("hik-md5"))
    finally:
        authenticator._clock = real_clock
        camera.close()
    assert after[0] - before[0] == 2  # stale 401, then the re-hashed answer
    assert after[1] == before[1]


def test_xrc_session_replaces_user_and_password(sim: Simulator) -> None:
    import httpx  # noqa: PLC0415

    answer = httpx.get(
        f"{sim.url_of('xrc')}/create_session.cgi", params={"user": "admin", "pwd": PASSWORD}
    )
    session = answer.text.split("var session = ")[1].split(";")[0]
    (snapshot,) = snap(sim, "xrc", session=session, user=None, password=None)
    assert "session=***" in snapshot.source and session not in snapshot.source


def test_xrc_snapshot_records_the_device_file_name_and_time(sim: Simulator) -> None:
    (snapshot,) = snap(sim, "xrc")
    assert snapshot.device_filename and snapshot.device_filename.startswith("snapshot_")
    assert snapshot.image_time is not None
    assert snapshot.image_time.strftime("snapshot_%Y%m%d%H%M%S.jpg") == snapshot.device_filename
    assert "user=admin&pwd=***" in snapshot.source


def test_xrc_resolution_is_passed_on(sim: Simulator) -> None:
    (snapshot,) = snap(sim, "xrc", resolution=8)
    assert (snapshot.width, snapshot.height) == (320, 240)


@pytest.mark.parametrize("stream", ["main", "sub"])
def test_xrc_stream_mode_grabs_one_frame(sim: Simulator, stream: str) -> None:
    (snapshot,) = snap(sim, "xrc", mode="stream", stream=stream)
    assert "/videostream.cgi?id=" in snapshot.source
    assert snapshot.width == (640 if stream == "main" else 320)


def test_hikvision_channel_stream_and_resolution(sim: Simulator) -> None:
    (sub,) = snap(sim, "nvr", channel=3, stream="sub")
    assert "/ISAPI/Streaming/channels/302/picture" in sub.source
    assert (sub.width, sub.height) == (320, 240)
    (sized,) = snap(sim, "nvr", channel=2, width=800, height=600)
    assert (sized.width, sized.height) == (800, 600)
    assert "videoResolutionWidth=800&videoResolutionHeight=600" in sized.source


def test_hikvision_missing_channel_is_a_device_error(sim: Simulator) -> None:
    error = failure(sim, "nvr", channel=9)
    assert isinstance(error, DeviceError)
    assert error.status == 403
    assert "invalidOperation" in str(error)


def test_dahua_channel_and_sub_stream(sim: Simulator) -> None:
    (snapshot,) = snap(sim, "dahua", stream="sub")
    assert snapshot.source.endswith("/cgi-bin/snapshot.cgi?channel=1&subtype=1")
    assert (snapshot.width, snapshot.height) == (320, 240)


def test_dahua_zero_based_firmware_gets_channel_zero(sim: Simulator) -> None:
    error = failure(sim, "dahua", zero_based_channel=True)  # the simulator counts from 1
    assert isinstance(error, DeviceError)
    assert "channel=0" in str(error)


def test_wrong_scheme_configured_is_explained(sim: Simulator) -> None:
    error = failure(sim, "hik-md5", auth="basic")
    assert isinstance(error, AuthFailed)
    assert "expects digest" in str(error)


# ------------------------------------------------------------------ faults


def test_latency_within_the_timeout_is_measured(sim: Simulator) -> None:
    sim.faults("edimax").latency_s = 0.3
    (snapshot,) = snap(sim, "edimax")
    assert snapshot.latency_ms >= 300


def test_latency_beyond_the_read_timeout_is_a_timeout(sim: Simulator) -> None:
    sim.faults("edimax").latency_s = 3
    error = failure(sim, "edimax", timeout_s=0.3)
    assert isinstance(error, Timeout)
    assert "no answer within 0.3 s" in str(error)


def test_overall_deadline_bounds_the_snapshot(sim: Simulator) -> None:
    sim.faults("hik-md5").latency_s = 0.3  # every request of the handshake is slow
    error = failure(sim, "hik-md5", deadline_s=0.5, timeout_s=5)
    assert isinstance(error, Timeout)


def test_the_login_handshake_does_not_overrun_the_deadline(sim: Simulator) -> None:
    # The 401 and the answered request take 1.6 s each: the second gets only 0.8 s.
    sim.faults("hik-md5").latency_s = 1.6
    camera = connect(sim, "hik-md5", timeout_s=2, deadline_s=2.4)
    started = time.monotonic()
    try:
        with pytest.raises(Timeout, match=r"deadline_s = 2\.4 s"):
            camera.snapshot()
    finally:
        camera.close()
    assert time.monotonic() - started < 2.9  # 3.2 s and more when the retry got timeout_s


@pytest.mark.parametrize("name", ["hik-md5", "dahua", "edimax", "generic-basic", "xrc"])
def test_always_401_is_rejected_credentials_then_back_off(sim: Simulator, name: str) -> None:
    sim.faults(name).always_401 = True
    camera = connect(sim, name)
    try:
        with pytest.raises(AuthFailed) as first:
            camera.snapshot()
        assert first.value.credentials_rejected
        count = sim.request_count(name)
        with pytest.raises(LockedOut):
            camera.snapshot()
        assert sim.request_count(name) == count  # backed off: the device was left alone
    finally:
        camera.close()


@pytest.mark.parametrize("name", ["hik-md5", "dahua", "edimax", "xrc", "generic-digest"])
def test_a_wrong_password_never_locks_the_account(sim: Simulator, name: str) -> None:
    sim.faults(name).lockout_after = 3
    before = sim.bad_login_count(name)
    camera = connect(sim, name, password="wrong-password")
    try:
        for _ in range(6):
            with pytest.raises(AuthFailed):
                camera.snapshot()
    finally:
        camera.close()
    assert sim.bad_login_count(name) - before == 1
    assert not sim.is_locked(name)


@pytest.mark.parametrize(
    ("name", "retry_after"), [("hik-md5", 1800), ("edimax", None), ("xrc", None)]
)
def test_a_locked_device_is_reported_as_locked_out(
    sim: Simulator, name: str, retry_after: float | None
) -> None:
    sim.faults(name).lockout_after = 1
    failure(sim, name, password="wrong-password")
    assert sim.is_locked(name)
    error = failure(sim, name)
    assert isinstance(error, LockedOut)
    assert error.retry_after_s == retry_after


@pytest.mark.parametrize(
    "name", sorted({"hik-md5", "dahua", "edimax", "xrc", "generic-query", "nvr"})
)
@pytest.mark.parametrize(
    ("fault", "text"),
    [
        ("html_200", "answered HTTP 200 with an HTML page instead of a JPEG"),
        ("truncated", "broken JPEG"),
        ("short_body", "truncated answer"),
        ("empty_body", "answered HTTP 200 with an empty body"),
    ],
)
def test_content_faults_are_invalid_images(
    sim: Simulator, name: str, fault: str, text: str
) -> None:
    setattr(sim.faults(name), fault, True)
    error = failure(sim, name)
    assert isinstance(error, InvalidImage)
    assert text in str(error)


def test_dropped_connection_is_unreachable_without_retry_on_a_new_connection(
    sim: Simulator,
) -> None:
    sim.faults("edimax").drop_connection = True
    before = sim.request_count("edimax")
    error = failure(sim, "edimax")
    assert isinstance(error, Unreachable)
    assert sim.request_count("edimax") - before == 1


def test_dropped_keepalive_connection_is_retried_once(sim: Simulator) -> None:
    camera = connect(sim, "edimax")
    try:
        camera.snapshot()  # leaves a pooled keep-alive connection
        sim.faults("edimax").drop_connection = True
        before = sim.request_count("edimax")
        with pytest.raises(Unreachable):
            camera.snapshot()
        assert sim.request_count("edimax") - before == 2  # reused connection, then one new one
        sim.faults("edimax").drop_connection = False
        assert camera.snapshot().width == 640
    finally:
        camera.close()


def test_stalled_stream_is_a_timeout(sim: Simulator) -> None:
    sim.faults("mjpeg").stall_stream = True
    error = failure(sim, "mjpeg", timeout_s=0.3)
    assert isinstance(error, Timeout)


@pytest.mark.parametrize("name", ["hik-md5", "dahua", "edimax", "xrc", "mjpeg", "generic"])
def test_frozen_camera_is_flagged_then_rejected(sim: Simulator, name: str) -> None:
    sim.faults(name).freeze = True
    first, second = snap(sim, name, times=2)
    assert not first.stale and second.stale
    camera = connect(sim, name, reject_stale=True)
    try:
        camera.snapshot()
        with pytest.raises(InvalidImage, match="frozen"):
            camera.snapshot()
    finally:
        camera.close()


def test_nvr_proxy_only_channel_falls_back_and_remembers(sim: Simulator) -> None:
    sim.faults("nvr").hikvision_nvr_proxy_only = True
    camera = connect(sim, "nvr", channel=2)
    try:
        first = camera.snapshot()
        assert "/ISAPI/ContentMgmt/StreamingProxy/channels/201/picture" in first.source
        before = sim.request_count("nvr")
        camera.snapshot()
        assert sim.request_count("nvr") - before == 1  # straight to StreamingProxy now
        assert camera.state().note and "StreamingProxy" in camera.state().note
    finally:
        camera.close()


def test_nvr_proxy_never_reports_bad_xml_content(sim: Simulator) -> None:
    sim.faults("nvr").hikvision_nvr_proxy_only = True
    error = failure(sim, "nvr", streaming_proxy="never")
    assert isinstance(error, DeviceError)
    assert error.status == 400
    assert "badXmlContent" in str(error) and "streaming_proxy" in str(error)


def test_nvr_proxy_always_goes_straight_to_streaming_proxy(sim: Simulator) -> None:
    (snapshot,) = snap(sim, "nvr", streaming_proxy="always")
    assert "/ISAPI/ContentMgmt/StreamingProxy/channels/101/picture" in snapshot.source


def test_dahua_error_body_is_a_device_error(sim: Simulator) -> None:
    sim.faults("dahua").dahua_error_body = True
    error = failure(sim, "dahua")
    assert isinstance(error, DeviceError)
    assert error.status == 200 and error.excerpt == "Error"


def test_dahua_authority_failure_is_auth_failed(sim: Simulator) -> None:
    sim.faults("dahua").dahua_403 = True
    error = failure(sim, "dahua")
    assert isinstance(error, AuthFailed) and not isinstance(error, LockedOut)
    assert "lacks the snapshot right" in str(error)


def test_xrc_too_many_viewers_is_a_device_error(sim: Simulator) -> None:
    sim.faults("xrc").xrc_too_many_viewers = True
    error = failure(sim, "xrc", mode="stream")
    assert isinstance(error, DeviceError)
    assert "too many viewers" in str(error) and "result -2" in str(error)


@pytest.mark.parametrize(
    "quirk",
    [
        "boundary_dashes",
        "no_first_delimiter",
        "no_part_length",
        "wrong_part_length",
        "lf_only",
        "chunked",
        "no_content_type",
    ],
)
@pytest.mark.parametrize("name", ["mjpeg", "xrc"])
def test_mjpeg_framing_quirks_still_give_a_frame(sim: Simulator, quirk: str, name: str) -> None:
    setattr(sim.faults(name), quirk, True)
    options = {"mode": "stream"} if name == "xrc" else {}
    (snapshot,) = snap(sim, name, **options)
    assert (snapshot.width, snapshot.height) == (640, 480)


def test_all_mjpeg_quirks_at_once(sim: Simulator) -> None:
    sim.faults("mjpeg").update(
        boundary_dashes=True,
        no_first_delimiter=True,
        wrong_part_length=True,
        lf_only=True,
        chunked=True,
    )
    assert snap(sim, "mjpeg")[0].width == 640


# ------------------------------------------------------------------ GoAhead-style heads


@pytest.mark.parametrize("name", [device.name for device in DEVICES])
def test_goahead_style_heads_work_through_the_lenient_fallback(
    sim: Simulator, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    sim.faults(name).sloppy_headers = True
    before = sim.request_count(name)
    snapshots = snap(sim, name, times=3)
    assert [(s.width, s.height) for s in snapshots] == [(640, 480)] * 3
    assert len({s.jpeg for s in snapshots}) == 3
    learned = [r for r in caplog.records if "event=lenient_http" in r.getMessage()]
    assert len(learned) == 1  # said once, then remembered for the device
    assert name in learned[0].getMessage()
    # The refused answer is asked once more through the fallback, never more.
    device = next(d for d in DEVICES if d.name == name)
    handshake = 0 if device.effective_auth in ("none", "query") else 1
    assert sim.request_count(name) - before <= 3 + handshake + 1
