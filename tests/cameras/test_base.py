"""Behaviour every driver shares: lockout back-off, frozen images, slots, state."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
import respx

from capture.cameras import Camera, CameraState
from capture.cameras.base import content_disposition_filename
from capture.cameras.device import AuthBackoff
from capture.cameras.errors import AuthFailed, InvalidImage, LockedOut, Timeout
from capture.cameras.generic import GenericCamera
from tests.cameras.helpers import PASSWORD, camera_config, make_jpeg
from tests.conftest import wait_for

BASE = "http://127.0.0.1:8080"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="cam"'}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False, using="httpx") as router:
        yield router


def camera(clock: FakeClock | None = None, **options: object) -> GenericCamera:
    config = camera_config(
        "generic", port=8080, path="/snap.jpg", user="admin", password=PASSWORD, **options
    )
    if clock is None:
        return GenericCamera("gate", config)
    return GenericCamera("gate", config, clock=clock)


def test_drivers_satisfy_the_camera_protocol() -> None:
    cam = camera()
    try:
        assert isinstance(cam, Camera)
    finally:
        cam.close()


def test_rejected_credentials_back_the_camera_off_without_touching_it(
    mock: respx.MockRouter,
) -> None:
    route = mock.get("/snap.jpg").respond(401, headers=CHALLENGE)
    clock = FakeClock()
    cam = camera(clock, auth="basic")
    try:
        with pytest.raises(AuthFailed) as first:
            cam.snapshot()
        assert not isinstance(first.value, LockedOut)
        assert route.call_count == 1

        with pytest.raises(LockedOut) as locked:
            cam.snapshot()
        assert route.call_count == 1  # the device was not asked again
        assert locked.value.retry_after_s == pytest.approx(60)
        assert "not contacted for another 60 s: authentication failed" in str(locked.value)
        assert cam.state().locked_out_for_s == pytest.approx(60)

        clock.now += 61
        with pytest.raises(AuthFailed):
            cam.snapshot()
        assert route.call_count == 2
        with pytest.raises(LockedOut) as doubled:
            cam.snapshot()
        assert doubled.value.retry_after_s == pytest.approx(120)
    finally:
        cam.close()


def test_success_after_the_back_off_resets_it(mock: respx.MockRouter) -> None:
    route = mock.get("/snap.jpg")
    route.side_effect = [
        httpx.Response(401, headers=CHALLENGE),
        httpx.Response(200, content=make_jpeg()),
    ]
    clock = FakeClock()
    cam = camera(clock, auth="basic")
    try:
        with pytest.raises(AuthFailed):
            cam.snapshot()
        clock.now += 61
        cam.snapshot()
        state = cam.state()
        assert state.ok is True
        assert state.locked_out_for_s is None
        assert state.consecutive_failures == 0
        assert state.last_error_kind == "AuthFailed"  # history kept for the dashboard
    finally:
        cam.close()


def test_device_lockout_uses_the_longer_of_device_time_and_own_back_off() -> None:
    clock = FakeClock()
    backoff = AuthBackoff(clock)
    assert backoff.reject(LockedOut("c", "locked", retry_after_s=1800)) == 1800
    assert backoff.remaining() == pytest.approx(1800)
    backoff.reset()
    assert backoff.remaining() is None


def test_back_off_doubles_on_each_rejection_up_to_an_hour() -> None:
    clock = FakeClock()
    backoff = AuthBackoff(clock)
    waits = []
    for _ in range(10):
        waits.append(backoff.reject(AuthFailed("c", "bad")))
        clock.now += waits[-1] + 1  # the next login is tried once the back-off ran out
    assert waits[:3] == [60, 120, 240]
    assert max(waits) == 3600


def test_a_rejection_during_the_back_off_does_not_double_it() -> None:
    # Two requests in flight at once (max_concurrent = 2) both refused: one rejection.
    clock = FakeClock()
    backoff = AuthBackoff(clock)
    assert backoff.reject(AuthFailed("c", "bad")) == 60
    clock.now += 1
    assert backoff.reject(AuthFailed("c", "bad")) == pytest.approx(59)
    clock.now += 60
    assert backoff.reject(AuthFailed("c", "bad")) == 120


def test_device_errors_do_not_back_off(mock: respx.MockRouter) -> None:
    route = mock.get("/snap.jpg").respond(500)
    cam = camera(auth="none")
    try:
        for _ in range(3):
            with pytest.raises(Exception):  # noqa: B017 - any error, as long as we retry
                cam.snapshot()
        assert route.call_count == 3
        assert cam.state().consecutive_failures == 3
    finally:
        cam.close()


def test_identical_image_is_flagged_stale(mock: respx.MockRouter) -> None:
    frozen = make_jpeg()
    mock.get("/snap.jpg").respond(200, content=frozen)
    cam = camera(auth="none")
    try:
        assert not cam.snapshot().stale
        assert cam.snapshot().stale
    finally:
        cam.close()


def test_identical_image_is_rejected_with_reject_stale(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg").respond(200, content=make_jpeg())
    cam = camera(auth="none", reject_stale=True)
    try:
        cam.snapshot()
        with pytest.raises(InvalidImage, match="identical to the previous one"):
            cam.snapshot()
    finally:
        cam.close()


def test_a_changed_image_is_not_stale(mock: respx.MockRouter) -> None:
    route = mock.get("/snap.jpg")
    route.side_effect = [
        httpx.Response(200, content=make_jpeg(colour=(1, 2, 3))),
        httpx.Response(200, content=make_jpeg(colour=(9, 9, 9))),
    ]
    cam = camera(auth="none")
    try:
        cam.snapshot()
        assert not cam.snapshot().stale
    finally:
        cam.close()


def test_max_concurrent_limits_requests_in_flight(mock: respx.MockRouter) -> None:
    release = threading.Event()
    in_flight: list[int] = []
    current = [0]
    lock = threading.Lock()

    def slow(request: httpx.Request) -> httpx.Response:
        with lock:
            current[0] += 1
            in_flight.append(current[0])
        release.wait(5)
        with lock:
            current[0] -= 1
        return httpx.Response(200, content=make_jpeg())

    mock.get("/snap.jpg").mock(side_effect=slow)
    cam = camera(auth="none", max_concurrent=2)
    errors: list[BaseException] = []

    def shoot() -> None:
        try:
            cam.snapshot()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=shoot) for _ in range(5)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(in_flight) >= 2, timeout=5)
    release.set()
    for thread in threads:
        thread.join()
    cam.close()
    assert not errors
    assert max(in_flight) == 2


def test_waiting_for_a_slot_is_bounded_by_the_deadline(mock: respx.MockRouter) -> None:
    release = threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        release.wait(5)
        return httpx.Response(200, content=make_jpeg())

    mock.get("/snap.jpg").mock(side_effect=slow)
    cam = camera(auth="none", deadline_s=0.2)
    held: list[BaseException] = []

    def hold_the_slot() -> None:
        try:
            cam.snapshot()
        except Timeout as exc:
            held.append(exc)

    holder = threading.Thread(target=hold_the_slot)
    holder.start()
    wait_for(lambda: cam._slots.in_flight == 1, timeout=5)
    try:
        with pytest.raises(Timeout, match="already in flight"):
            cam.snapshot()
    finally:
        release.set()
        holder.join()
        cam.close()
    # The request holding the slot overran its own deadline too, and said so.
    assert len(held) == 1 and "deadline_s = 0.2 s" in str(held[0])


def test_state_starts_unknown_and_records_the_last_error(mock: respx.MockRouter) -> None:
    mock.get("/snap.jpg").respond(404)
    cam = camera(auth="none")
    try:
        assert cam.state() == CameraState(name="gate", vendor="generic", auth_scheme="none")
        with pytest.raises(Exception):  # noqa: B017
            cam.snapshot()
        state = cam.state()
        assert state.ok is False
        assert state.last_error_kind == "DeviceError"
        assert state.last_error and "HTTP 404" in state.last_error
        assert state.last_error_wall is not None
    finally:
        cam.close()


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('attachment; filename="snapshot_20110708163405.jpg"', "snapshot_20110708163405.jpg"),
        ("inline; filename=snap.jpg", "snap.jpg"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ("inline", None),
        (None, None),
    ],
)
def test_device_file_name_is_read_safely(header: str | None, name: str | None) -> None:
    assert content_disposition_filename(header) == name
