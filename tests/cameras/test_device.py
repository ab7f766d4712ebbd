"""Camera sections on one device share its slots, login back-off and learned auth.

The NVR cases run over real sockets against the simulator: four channels of
one NVR configured as four cameras, as a line with four cameras on one
recorder is set up.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from capture.cameras import Snapshot
from capture.cameras.base import HttpCamera
from capture.cameras.device import DEVICES, DeviceRegistry, device_key
from capture.cameras.errors import AuthFailed, CameraError, LockedOut, Timeout
from capture.cameras.generic import GenericCamera
from capture.cameras.hikvision import HikvisionCamera
from capture.simulator import SimulatedCamera, Simulator
from tests.cameras.helpers import camera_config
from tests.conftest import wait_for

PASSWORD = "nvr#pass&4"
CHANNELS = 4


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator([SimulatedCamera("nvr", "hikvision", password=PASSWORD, channels=4)]) as s:
        yield s


@pytest.fixture(autouse=True)
def _faults_off(sim: Simulator) -> Iterator[None]:
    sim.reset_faults("nvr")
    yield
    sim.reset_faults("nvr")


def nvr_config(sim: Simulator, channel: int, **options: Any) -> Any:
    settings: dict[str, Any] = {
        "port": sim.port_of("nvr"),
        "channel": channel,
        "user": "admin",
        "password": PASSWORD,
        "timeout_s": 5,
        **options,
    }
    return camera_config("hikvision", **settings)


def channels(
    sim: Simulator, clock: Callable[[], float] | None = None, **options: Any
) -> list[HikvisionCamera]:
    """One camera per NVR channel, as four [cameras.*] sections of one NVR."""
    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    return [
        HikvisionCamera(f"press_{n}", nvr_config(sim, n, **options), **extra)
        for n in range(1, CHANNELS + 1)
    ]


def all_at_once(cameras: list[HikvisionCamera], rounds: int = 1) -> list[Snapshot | CameraError]:
    """Every camera snapshots `rounds` times on a thread of its own (the engine's layout)."""
    results: list[Snapshot | CameraError] = []
    lock = threading.Lock()
    start = threading.Barrier(len(cameras))

    def shoot(camera: HikvisionCamera) -> None:
        start.wait(5)
        for _ in range(rounds):
            try:
                outcome: Snapshot | CameraError = camera.snapshot()
            except CameraError as error:
                outcome = error
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=shoot, args=(camera,)) for camera in cameras]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def close_all(cameras: list[HikvisionCamera]) -> None:
    for camera in cameras:
        camera.close()


# ------------------------------------------------------------------ over real sockets


def test_four_channels_with_a_wrong_password_make_one_bad_login_per_back_off(
    sim: Simulator,
) -> None:
    sim.faults("nvr").lockout_after = 6
    clock = FakeClock()
    cameras = channels(sim, clock, password="wrong-password")
    before = sim.bad_login_count("nvr")
    try:
        for round_number in range(1, 6):
            results = all_at_once(cameras)
            assert all(isinstance(r, AuthFailed) for r in results), results
            rejected = [r for r in results if not isinstance(r, LockedOut)]
            assert len(rejected) == 1 and rejected[0].credentials_rejected
            # One bad login per round for the whole NVR, however many channels asked.
            assert sim.bad_login_count("nvr") - before == round_number
            wait = cameras[0].state().locked_out_for_s
            assert wait is not None
            assert all(c.state().locked_out_for_s == pytest.approx(wait) for c in cameras)
            clock.now += wait + 1  # the back-off (60, 120, 240... s) runs out
        assert not sim.is_locked("nvr")  # 5 bad logins where the NVR locks at 6
    finally:
        close_all(cameras)


def test_channels_allowing_two_requests_cost_at_most_two_bad_logins(sim: Simulator) -> None:
    sim.faults("nvr").update(lockout_after=6, latency_s=0.2)  # the two logins overlap
    cameras = channels(sim, FakeClock(), password="wrong-password", max_concurrent=2)
    before = sim.bad_login_count("nvr")
    try:
        results = all_at_once(cameras)
    finally:
        close_all(cameras)
    assert all(isinstance(r, AuthFailed) for r in results)
    assert 1 <= sim.bad_login_count("nvr") - before <= 2
    assert not sim.is_locked("nvr")


def test_one_request_in_flight_at_the_nvr_whatever_the_number_of_channels(
    sim: Simulator,
) -> None:
    sim.faults("nvr").latency_s = 0.05  # each answer takes long enough for the others to pile up
    cameras = channels(sim)
    try:
        results = all_at_once(cameras, rounds=3)
    finally:
        close_all(cameras)
    assert all(isinstance(r, Snapshot) for r in results), results
    assert sim.peak_in_flight("nvr") == 1


def test_the_device_limit_is_the_smallest_max_concurrent_of_its_sections(
    sim: Simulator,
) -> None:
    sim.faults("nvr").latency_s = 0.2
    limits = [3, 2, 4, 3]
    cameras = [
        HikvisionCamera(f"press_{n}", nvr_config(sim, n, max_concurrent=limit))
        for n, limit in enumerate(limits, start=1)
    ]
    try:
        assert cameras[0]._slots.limit == 2
        results = all_at_once(cameras, rounds=2)
    finally:
        close_all(cameras)
    assert all(isinstance(r, Snapshot) for r in results), results
    assert sim.peak_in_flight("nvr") == 2


def test_channels_waiting_for_the_device_give_up_at_their_deadline(sim: Simulator) -> None:
    cameras = channels(sim, deadline_s=1.0)
    try:
        cameras[0].snapshot()  # learns digest for the whole NVR: one request per snapshot now
        sim.faults("nvr").latency_s = 0.6  # one fits in the deadline, a second one does not
        results = all_at_once(cameras)
    finally:
        close_all(cameras)
    timeouts = [r for r in results if isinstance(r, Timeout)]
    assert sum(isinstance(r, Snapshot) for r in results) == 1
    assert len(timeouts) == CHANNELS - 1
    # Each gave up in the slot's queue or in its own late request, by load (the next test
    # pins the message of one that waited).


def test_a_channel_that_waited_for_the_device_says_where_the_slot_went(sim: Simulator) -> None:
    busy = HikvisionCamera("press_1", nvr_config(sim, 1, deadline_s=20))
    waiting = HikvisionCamera("press_2", nvr_config(sim, 2, deadline_s=0.5))
    try:
        busy.snapshot()  # learns digest: one request per snapshot now
        sim.faults("nvr").latency_s = 3
        before = sim.request_count("nvr")
        holder = threading.Thread(target=busy.snapshot)
        holder.start()
        wait_for(lambda: sim.request_count("nvr") > before)  # it holds the device's one slot
        with pytest.raises(Timeout) as caught:
            waiting.snapshot()
        holder.join(10)
    finally:
        close_all([busy, waiting])
    message = str(caught.value)
    assert "1 request(s) already in flight at 127.0.0.1:" in message
    assert "(shared with press_1)" in message and "deadline_s = 0.5 s" in message


def test_the_handshake_is_learned_once_for_all_channels(sim: Simulator) -> None:
    cameras = channels(sim)
    try:
        before = sim.request_count("nvr")
        for camera in cameras:
            camera.snapshot()
        # One 401 for the NVR, then every channel answered pre-emptively.
        assert sim.request_count("nvr") - before == CHANNELS + 1
        assert all(camera.state().auth_scheme == "digest" for camera in cameras)
    finally:
        close_all(cameras)


def test_a_wrong_password_beside_a_correct_one_costs_one_bad_login_per_attempt(
    sim: Simulator,
) -> None:
    # Same host, port and user: the sections share the learned digest challenge, but the
    # wrong one must not answer it pre-emptively (that answer is a failed login of its own).
    sim.faults("nvr").lockout_after = 10
    clock = FakeClock()
    good = HikvisionCamera("press_1", nvr_config(sim, 1), clock=clock)
    wrong = HikvisionCamera("press_2", nvr_config(sim, 2, password="wrong"), clock=clock)
    before = sim.bad_login_count("nvr")
    try:
        for attempt in range(1, 4):
            assert good.snapshot().width == 640
            with pytest.raises(AuthFailed) as refused:
                wrong.snapshot()
            assert refused.value.credentials_rejected
            assert sim.bad_login_count("nvr") - before == attempt
            requests = sim.request_count("nvr")
            assert good.snapshot().width == 640  # still pre-emptive: one request, no handshake
            assert sim.request_count("nvr") - requests == 1
            clock.now += (wrong.state().locked_out_for_s or 0) + 1
        assert not sim.is_locked("nvr")
    finally:
        wrong.close()
        good.close()


def test_a_reload_keeps_what_the_device_taught_and_its_back_off(sim: Simulator) -> None:
    clock = FakeClock()
    old = HikvisionCamera("press_1", nvr_config(sim, 1), clock=clock)
    old.snapshot()
    # A reload builds the changed camera before the old one finishes and is closed.
    new = HikvisionCamera("press_1", nvr_config(sim, 1, timeout_s=7), clock=clock)
    old.close()
    try:
        before = sim.request_count("nvr")
        new.snapshot()
        assert sim.request_count("nvr") - before == 1  # no new handshake
    finally:
        new.close()

    wrong = HikvisionCamera("press_1", nvr_config(sim, 1, password="wrong"), clock=clock)
    with pytest.raises(AuthFailed):
        wrong.snapshot()
    reloaded = HikvisionCamera("press_1", nvr_config(sim, 1, password="wrong"), clock=clock)
    wrong.close()
    try:
        before = sim.bad_login_count("nvr")
        with pytest.raises(LockedOut):
            reloaded.snapshot()  # the same wrong password after a reload: still backed off
        assert sim.bad_login_count("nvr") == before
        fixed = HikvisionCamera("press_1", nvr_config(sim, 1), clock=clock)
        try:
            assert fixed.snapshot().width == 640  # a fixed password is tried at once
        finally:
            fixed.close()
    finally:
        reloaded.close()


# ------------------------------------------------------------------ the registry


def generic(name: str, registry: DeviceRegistry, **options: Any) -> GenericCamera:
    settings: dict[str, Any] = {"port": 8080, "path": "/snap.jpg", "user": "admin", **options}
    settings.setdefault("password", PASSWORD)
    return GenericCamera(name, camera_config("generic", **settings), devices=registry)


def test_sections_of_one_device_share_one_entry_removed_with_the_last() -> None:
    registry = DeviceRegistry()
    first = generic("a", registry, max_concurrent=3)
    second = generic("b", registry, host="127.0.0.1", max_concurrent=2)
    try:
        assert len(registry) == 1
        assert first._slots is second._slots and first._slots.limit == 2
        assert first._backoff is second._backoff
        assert first.http.auth.memory is second.http.auth.memory
    finally:
        second.close()
    assert first._slots.limit == 3  # the careful section left: its limit goes with it
    first.close()
    first.close()  # closing twice detaches once
    assert len(registry) == 0


@pytest.mark.parametrize(
    "other",
    [{"user": "viewer"}, {"port": 8081}, {"scheme": "https", "port": 8080}, {"host": "10.0.0.9"}],
)
def test_another_user_port_scheme_or_host_is_another_device(other: dict[str, Any]) -> None:
    registry = DeviceRegistry()
    one, two = generic("a", registry), generic("b", registry, **other)
    try:
        assert len(registry) == 2
        assert one._slots is not two._slots and one._backoff is not two._backoff
    finally:
        one.close()
        two.close()


def test_host_names_differing_in_case_are_one_device() -> None:
    config = camera_config("generic", host="NVR.Plant.Local", path="/snap.jpg", user="admin")
    assert device_key(config) == (
        "http",
        "nvr.plant.local",
        80,
        "admin",
    )


def test_another_password_on_the_same_device_has_its_own_back_off() -> None:
    registry = DeviceRegistry()
    good, bad = generic("a", registry), generic("b", registry, password="other")
    try:
        assert good._slots is bad._slots  # still one device for the request slots
        assert good._backoff is not bad._backoff
    finally:
        bad.close()
        good.close()
    assert len(registry) == 0


def test_many_reloads_leave_one_entry_per_device_and_nothing_else() -> None:
    registry = DeviceRegistry()
    cameras = [generic(f"cam{n}", registry, channel=n) for n in range(1, 5)]
    backoff = cameras[0]._backoff
    for reload in range(200):
        # Every section changed: the new cameras are built, then the old ones closed.
        password = "rotated" if reload % 2 else PASSWORD  # cam1's changes every time
        rebuilt = [generic("cam1", registry, channel=1, password=password)]
        rebuilt += [generic(c.name, registry, channel=c.config.channel) for c in cameras[1:]]
        for camera in cameras:
            camera.close()
        cameras = rebuilt
    try:
        assert len(registry) == 1
        device = registry.get(cameras[0].config)
        assert device is not None
        assert len(device.holders) == 4
        assert len(device.backoffs) == 2  # the two passwords in use now, not one per reload
        assert cameras[1]._backoff is backoff  # unchanged credentials kept their back-off
    finally:
        for camera in cameras:
            camera.close()
    assert len(registry) == 0


def test_a_camera_dropped_without_close_detaches_when_collected() -> None:
    registry = DeviceRegistry()
    camera: HttpCamera | None = generic("a", registry)
    assert len(registry) == 1
    camera.http.close()  # type: ignore[union-attr]
    camera = None
    gc.collect()
    assert len(registry) == 0


def test_cameras_attach_to_the_process_registry_by_default() -> None:
    before = len(DEVICES)
    camera = generic("a", DEVICES, port=18_080)
    other = GenericCamera("b", camera.config)
    try:
        assert len(DEVICES) == before + 1 and other._slots is camera._slots
    finally:
        camera.close()
        other.close()
    assert len(DEVICES) == before
