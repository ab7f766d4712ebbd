"""Token guessing is slowed per address, with a clock the test moves."""

from __future__ import annotations

from capture.web import throttle as throttle_module
from capture.web.throttle import GuessThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_after_too_many_wrong_tokens_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    throttle = GuessThrottle(limit=3, window_s=60, clock=clock)
    for _ in range(2):
        throttle.failed("10.0.0.5")
        clock.now += 10
    assert throttle.retry_after("10.0.0.5") == 0  # two wrong tokens: may still try
    throttle.failed("10.0.0.5")  # the third, at t = 1020
    assert throttle.retry_after("10.0.0.5") == 40  # until the first (t = 1000) is 60 s old
    assert throttle.retry_after("10.0.0.6") == 0, "other addresses are not affected"
    clock.now = 1059.0
    assert throttle.retry_after("10.0.0.5") == 1
    clock.now = 1060.0
    assert throttle.retry_after("10.0.0.5") == 0  # the first failure left the window


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    throttle = GuessThrottle(limit=2, window_s=5, clock=clock)
    throttle.failed("a")
    clock.now += 6
    throttle.failed("a")
    assert throttle.retry_after("a") == 0
    clock.now += 6
    assert throttle.retry_after("a") == 0
    assert throttle._failures == {}, "an address without recent failures is not remembered"


def test_memory_is_bounded_by_forgetting_the_least_recent_addresses(monkeypatch) -> None:
    monkeypatch.setattr(throttle_module, "MAX_ADDRESSES", 3)
    throttle = GuessThrottle(limit=1, window_s=60, clock=Clock())
    for address in ("a", "b", "c", "d"):
        throttle.failed(address)
    assert list(throttle._failures) == ["b", "c", "d"]
    assert throttle.retry_after("a") == 0
    assert throttle.retry_after("d") == 60
