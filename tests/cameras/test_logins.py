"""The login back-off shared through the storage root: holds, tags, doubling, the file itself."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from capture.cameras.logins import (
    FIRST_S,
    LOCK_NAME,
    MAX_S,
    STATE_NAME,
    SharedLogins,
    shared_logins,
)

DEVICE = "http://admin@10.0.0.5:80"
WRONG = b"\x00\x00\x00\x06not-it"
RIGHT = b"\x00\x00\x00\x0ccorrect-horse"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def logins(tmp_path: Path, clock: Clock) -> SharedLogins:
    return SharedLogins(tmp_path / STATE_NAME, clock)


def test_a_rejected_password_is_held_for_every_process_of_the_root(
    tmp_path: Path, clock: Clock
) -> None:
    service, command = logins(tmp_path, clock), logins(tmp_path, clock)
    assert command.hold(DEVICE, WRONG) is None
    assert service.reject(DEVICE, "authentication failed (HTTP 401)", WRONG) == FIRST_S
    hold = command.hold(DEVICE, WRONG)  # another instance, as another process reads the file
    assert hold is not None
    assert (hold.device, hold.left_s, hold.reason) == (
        DEVICE,
        FIRST_S,
        "authentication failed (HTTP 401)",
    )
    clock.now += FIRST_S - 1
    assert command.hold(DEVICE, WRONG) is not None
    clock.now += 1
    assert command.hold(DEVICE, WRONG) is None  # the period is over: one more try


def test_other_passwords_and_devices_are_not_held(tmp_path: Path, clock: Clock) -> None:
    shared = logins(tmp_path, clock)
    shared.reject(DEVICE, "refused", WRONG)
    assert shared.hold(DEVICE, RIGHT) is None  # a correct section, or a corrected password
    assert shared.hold("http://admin@10.0.0.6:80", WRONG) is None


def test_each_new_rejection_doubles_the_back_off_up_to_an_hour(
    tmp_path: Path, clock: Clock
) -> None:
    shared = logins(tmp_path, clock)
    waits = []
    for _ in range(8):
        waits.append(shared.reject(DEVICE, "refused", WRONG))
        clock.now += waits[-1]
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert max(waits) == MAX_S


def test_a_refusal_while_held_is_not_a_new_rejection(tmp_path: Path, clock: Clock) -> None:
    """A request sent before the back-off began, refused after: the period does not grow."""
    shared = logins(tmp_path, clock)
    shared.reject(DEVICE, "refused", WRONG)
    clock.now += 10
    assert shared.reject(DEVICE, "refused", WRONG) == FIRST_S - 10
    clock.now += FIRST_S
    assert shared.reject(DEVICE, "refused", WRONG) == 2 * FIRST_S


def test_a_second_wrong_password_is_tried_once_then_both_are_held(
    tmp_path: Path, clock: Clock
) -> None:
    shared = logins(tmp_path, clock)
    other = b"\x00\x00\x00\x05typo!"
    shared.reject(DEVICE, "refused", WRONG)
    assert shared.hold(DEVICE, other) is None
    assert shared.reject(DEVICE, "refused", other) == 2 * FIRST_S  # the device counts both
    assert shared.hold(DEVICE, WRONG) is not None
    assert shared.hold(DEVICE, other) is not None


def test_the_device_says_how_long_it_locks(tmp_path: Path, clock: Clock) -> None:
    shared = logins(tmp_path, clock)
    assert shared.reject(DEVICE, "account locked", WRONG, device_says_s=1800) == 1800
    hold = shared.hold(DEVICE, WRONG)
    assert hold is not None
    assert hold.left_s == 1800


def test_an_accepted_held_password_ends_the_hold_and_others_stay_held(
    tmp_path: Path, clock: Clock
) -> None:
    shared = logins(tmp_path, clock)
    shared.reject(DEVICE, "locked for now", WRONG)
    shared.reject(DEVICE, "refused", RIGHT)  # refused once (the account was locked), then fine
    before = (tmp_path / STATE_NAME).stat().st_mtime_ns
    shared.accepted(DEVICE, b"\x00\x00\x00\x03new")  # never rejected: nothing to write
    assert (tmp_path / STATE_NAME).stat().st_mtime_ns == before
    shared.accepted(DEVICE, RIGHT)
    assert shared.hold(DEVICE, RIGHT) is None
    assert shared.hold(DEVICE, WRONG) is not None
    shared.accepted(DEVICE, WRONG)
    assert json.loads((tmp_path / STATE_NAME).read_text())["devices"] == {}


def test_the_file_holds_no_secret_and_only_its_owner_reads_it(tmp_path: Path, clock: Clock) -> None:
    secret = b"\x00\x00\x00\x10Sup3r-Secret-PW!"
    logins(tmp_path, clock).reject(DEVICE, "refused", secret)
    path = tmp_path / STATE_NAME
    text = path.read_text(encoding="utf-8")
    assert "Sup3r" not in text
    entry = json.loads(text)["devices"][DEVICE]
    assert sorted(entry) == ["next_s", "reason", "salt", "tags", "until"]
    assert [len(tag) for tag in entry["tags"]] == [4]  # 16 bits, hex
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="only root gives files away")
def test_run_as_root_the_file_and_its_lock_go_to_the_owner_of_the_storage_root(
    tmp_path: Path, clock: Clock
) -> None:
    """`sudo capture cameras` must not leave the service a lock it cannot open."""
    os.chown(tmp_path, 4321, 4321)  # the service's user owns the storage root
    logins(tmp_path, clock).reject(DEVICE, "refused", WRONG)
    for name in (STATE_NAME, LOCK_NAME):
        info = (tmp_path / name).stat()
        assert (info.st_uid, info.st_gid) == (4321, 4321), name


@pytest.mark.parametrize("content", ["", "{", "[]", '{"devices": {"x": 5}}', "\x00\xff"])
def test_a_damaged_file_holds_nothing_and_is_rewritten(
    tmp_path: Path, clock: Clock, content: str
) -> None:
    (tmp_path / STATE_NAME).write_text(content, encoding="utf-8", errors="surrogateescape")
    shared = logins(tmp_path, clock)
    assert shared.hold(DEVICE, WRONG) is None
    shared.reject(DEVICE, "refused", WRONG)
    assert logins(tmp_path, clock).hold(DEVICE, WRONG) is not None


def test_an_entry_without_tags_holds_every_password(tmp_path: Path, clock: Clock) -> None:
    """A file written by hand (or an older release): the safe side is to hold."""
    entry = {"until": clock.now + 30, "next_s": 120, "reason": "refused"}
    (tmp_path / STATE_NAME).write_text(json.dumps({"devices": {DEVICE: entry}}))
    assert logins(tmp_path, clock).hold(DEVICE, RIGHT) is not None


def test_deleting_the_file_clears_every_hold(tmp_path: Path, clock: Clock) -> None:
    shared = logins(tmp_path, clock)
    shared.reject(DEVICE, "refused", WRONG)
    (tmp_path / STATE_NAME).unlink()
    assert shared.hold(DEVICE, WRONG) is None


def _reject_in_a_process(path: str, device: str) -> None:
    SharedLogins(Path(path)).reject(device, "refused", WRONG)


def test_processes_rejecting_at_once_lose_no_entry(tmp_path: Path) -> None:
    devices = [f"http://admin@10.0.0.{n}:80" for n in range(8)]
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_reject_in_a_process, args=(str(tmp_path / STATE_NAME), device))
        for device in devices
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * len(workers)
    saved = json.loads((tmp_path / STATE_NAME).read_text())["devices"]
    assert sorted(saved) == sorted(devices)


def test_no_sharing_without_a_writable_storage_root(tmp_path: Path) -> None:
    assert shared_logins(tmp_path / "missing") is None
    assert shared_logins(tmp_path) is shared_logins(tmp_path)  # one instance per process
