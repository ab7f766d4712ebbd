"""StopRequest: a stop signal is never missed, whichever thread the kernel hands it to."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from capture.stopping import POLL_S, StopRequest

#: Not SIGINT or SIGTERM: pytest and its timeout keep theirs.
SIGNAL = signal.SIGUSR1


@pytest.fixture
def stop() -> Iterator[StopRequest]:
    request = StopRequest()
    previous = request.install([SIGNAL])
    yield request
    for number, handler in previous.items():
        signal.signal(number, handler)


def waited(stop: StopRequest, send: threading.Thread) -> float:
    """Seconds the main thread waited for the stop that `send` asks for (a safety net at 10 s)."""
    safety = threading.Timer(10, stop.set)
    safety.start()
    started = time.monotonic()
    send.start()
    try:
        assert stop.wait() is True
    finally:
        safety.cancel()
        send.join()
    return time.monotonic() - started


def test_a_signal_the_kernel_hands_to_another_thread_still_ends_the_wait(
    stop: StopRequest,
) -> None:
    """Measured before the fix: a plain Event.wait() woke only when the safety net set it."""

    def signal_this_thread() -> None:
        time.sleep(0.1)  # the main thread is blocked in wait() by then
        signal.pthread_kill(threading.get_ident(), SIGNAL)

    elapsed = waited(stop, threading.Thread(target=signal_this_thread))

    assert elapsed < 0.1 + 5 * POLL_S + 1  # not the safety net's 10 s


def test_a_signal_to_the_process_ends_the_wait(stop: StopRequest) -> None:
    def signal_the_process() -> None:
        time.sleep(0.1)
        os.kill(os.getpid(), SIGNAL)

    assert waited(stop, threading.Thread(target=signal_the_process)) < 5


def test_a_stop_set_by_a_thread_ends_the_wait_at_once(stop: StopRequest) -> None:
    setter = threading.Timer(0.05, stop.set)
    assert waited(stop, setter) < 2


def test_without_a_request_the_wait_ends_at_its_timeout_and_says_so(stop: StopRequest) -> None:
    started = time.monotonic()
    assert stop.wait(0.3) is False
    assert 0.3 <= time.monotonic() - started < 3
    assert stop.requested is False


def test_the_handler_takes_no_lock_so_it_cannot_deadlock_the_thread_it_interrupts() -> None:
    """It runs inside whatever the main thread was doing, possibly Event.wait with its lock held."""
    request = StopRequest()
    with request._event._cond:  # the lock Event.set() would need, held as Event.wait holds it
        request.on_signal(SIGNAL, None)
    assert request.requested is True
