"""Fixtures shared by the whole suite: a private broker, and a condition waiter."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capture.simulator import SimulatedCamera, Simulator
from tests.broker import Broker

SIM_PASSWORD = "Sim-Pass-4711"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A mosquitto started once for the session on a free port.

    Tests that stop or restart it must leave it running; `broker_fresh` is the
    one to use when a test wants a broker of its own.
    """
    instance = Broker(tmp_path_factory.mktemp("mosquitto"))
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def broker_fresh(tmp_path: Path) -> Iterator[Broker]:
    """A mosquitto of this test's own, free to be stopped and restarted."""
    instance = Broker(tmp_path / "mosquitto")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """Two simulated cameras on one line: an NVR channel and a Dahua."""
    cameras = [
        SimulatedCamera("nvr", "hikvision", password=SIM_PASSWORD, channels=2),
        SimulatedCamera("dahua", "dahua", password=SIM_PASSWORD),
    ]
    with Simulator(cameras) as sim:
        yield sim


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01
) -> object:
    """Poll `predicate` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)
