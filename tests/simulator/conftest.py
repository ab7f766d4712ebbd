"""Fixtures for the simulator tests: started simulators that are always stopped, and a leak check."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from capture.simulator import SimulatedCamera, Simulator


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running (simulator handlers included)."""
    before = set(threading.enumerate())
    yield
    leaked = [thread for thread in threading.enumerate() if thread not in before]
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture
def start_simulator() -> Iterator[Callable[..., Simulator]]:
    """Start a simulator with the given cameras; it is stopped after the test."""
    started: list[Simulator] = []

    def start(*cameras: SimulatedCamera, **kwargs: object) -> Simulator:
        simulator = Simulator(list(cameras), **kwargs)  # type: ignore[arg-type]
        simulator.start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()
